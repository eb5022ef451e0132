"""course_lib.model: GPTConfig, Block, GPT (forward, generate with a key-value cache).

References: F.cross_entropy for the loss (computed on either path by the model); ln(vocab_size) for an untrained model's loss; GPT-2's
published initialisation (Normal(0, 0.02), residual projections 0.02 / sqrt(2 · n_layers)); a
full forward pass over the whole sequence for what the cache must reproduce; argmax and the
softmax probabilities computed by hand for sampling. Logits compare at float32 tolerance
(atol 1e-5): cached and uncached attention add the same numbers in different orders.
"""

import math

import pytest
import torch
import torch._dynamo
import torch.nn.functional as F

from course_lib.device import get_device
from course_lib.model import GPT, GPTConfig
from pairwise import all_pairs

DEVICE = get_device()
ATOL = 1e-5
RTOL = 1e-5

TINY = dict(vocab_size=37, block_size=16, n_layers=2, d_model=32, n_heads=4)
GPT2_LIKE = dict(TINY)
LLAMA_LIKE = dict(
    TINY, norm="rmsnorm", mlp="swiglu", rope_theta=500000.0, n_kv_heads=2, bias=False, tie_weights=False
)

# The switches, each independent of the others, and the layers' path: every pair of settings
# appears together in some configuration (8 configurations where every combination would be 128).
SWITCHES = [
    dict(TINY, **row)
    for row in all_pairs(
        {
            "norm": ["layernorm", "rmsnorm"],
            "mlp": ["gelu_tanh", "swiglu"],
            "rope_theta": [None, 10000.0],
            "n_kv_heads": [None, 2],
            "tie_weights": [True, False],
            "bias": [True, False],
            "fast": [True, False],
        }
    )
]


def switch_id(config: dict) -> str:
    return "-".join(
        [
            config["norm"],
            config["mlp"],
            "rope" if config["rope_theta"] else "learnedpos",
            f"kv{config['n_kv_heads'] or config['n_heads']}",
            "tied" if config["tie_weights"] else "untied",
            "bias" if config["bias"] else "nobias",
            "fused" if config["fast"] else "written-out",
        ]
    )


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: a second thread barely helps, and when other processes share the
    cores, threads waiting for each other make the tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(**overrides) -> GPT:
    return GPT(GPTConfig(**overrides)).to(DEVICE)


def random_ids(config: GPTConfig, B: int = 2, T: int = 10) -> torch.Tensor:
    return torch.randint(0, config.vocab_size, (B, T), device=DEVICE)


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL)


# --------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False], ids=["fused", "written-out"])
@pytest.mark.parametrize("config", [GPT2_LIKE, LLAMA_LIKE], ids=["gpt2-like", "llama-like"])
def test_forward_shapes_and_loss_is_f_cross_entropy(config, fast):
    """The model's own loss (F.cross_entropy when fast, course_lib's cross_entropy when not)."""
    model = make(**config, fast=fast)
    idx = random_ids(model.config, B=3, T=7)
    targets = random_ids(model.config, B=3, T=7)
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 7, model.config.vocab_size)
    expected = F.cross_entropy(logits.reshape(21, -1), targets.reshape(21))
    close(loss, expected)
    logits_alone, no_loss = model(idx)
    assert no_loss is None
    close(logits_alone, logits)


@pytest.mark.parametrize("tie", [True, False])
def test_untrained_loss_is_about_ln_vocab(tie):
    """Small initial weights make the logits nearly equal: the model bets 1/V on every token."""
    model = make(**dict(TINY, vocab_size=1000, d_model=64, tie_weights=tie))
    idx, targets = random_ids(model.config, B=8, T=16), random_ids(model.config, B=8, T=16)
    _, loss = model(idx, targets)
    assert loss.item() == pytest.approx(math.log(1000), abs=0.05)


@pytest.mark.parametrize("config", SWITCHES, ids=switch_id)
def test_no_information_flows_from_the_future(config):
    model = make(**config)
    idx = random_ids(model.config)
    t = 6
    changed = idx.clone()
    changed[:, t] = (idx[:, t] + 1) % model.config.vocab_size  # change the token at t only
    logits, _ = model(idx)
    logits_changed, _ = model(changed)
    close(logits_changed[:, :t], logits[:, :t])  # earlier positions cannot see it
    assert (logits_changed[:, t] - logits[:, t]).abs().amax() > 1e-4  # position t does


@pytest.mark.parametrize("config", [GPT2_LIKE, LLAMA_LIKE], ids=["gpt2-like", "llama-like"])
def test_fused_and_written_out_paths_give_the_same_logits_and_gradients(config):
    fast = make(**config)
    slow = make(**dict(config, fast=False))
    slow.load_state_dict(fast.state_dict())
    idx = random_ids(fast.config)
    targets = random_ids(fast.config)
    fast_logits, fast_loss = fast(idx, targets)
    slow_logits, slow_loss = slow(idx, targets)
    close(slow_logits, fast_logits)
    fast_loss.backward()
    slow_loss.backward()
    slow_grads = {name: p.grad for name, p in slow.named_parameters()}
    for name, p in fast.named_parameters():
        torch.testing.assert_close(slow_grads[name], p.grad, atol=ATOL, rtol=RTOL, msg=lambda m: f"{name}: {m}")


def test_rotary_model_has_no_position_embedding_and_learned_one_has_block_size_rows():
    assert make(**LLAMA_LIKE).pos_emb is None
    assert make(**GPT2_LIKE).pos_emb.weight.shape == (16, 32)


def test_forward_rejects_sequences_longer_than_block_size():
    model = make(**TINY)
    with pytest.raises(
        ValueError, match=r"length 17 exceeds the context length block_size=16.*ids\[:, -16:\]"
    ):
        model(random_ids(model.config, T=17))
    model(random_ids(model.config, T=16))  # exactly block_size is allowed


def test_forward_errors_say_what_is_wrong():
    model = make(**TINY)
    with pytest.raises(ValueError, match=r"\(B, T\).*unsqueeze\(0\)"):
        model(torch.tensor([1, 2, 3], device=DEVICE))
    with pytest.raises(IndexError, match=r"token id 37, outside 0\.\.36"):
        model(torch.tensor([[1, 37]], device=DEVICE))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(d_model=30), r"d_model=30 must be divisible by n_heads=4"),
        (dict(n_kv_heads=3), r"n_heads=4 must be divisible by n_kv_heads=3"),
        (dict(norm="batchnorm"), r"norm must be one of \('layernorm', 'rmsnorm'\)"),
        (dict(mlp="tanh"), r"mlp must be one of .*'swiglu'"),
        (dict(d_model=12, n_heads=4, rope_theta=10000.0), r"even head_dim"),
        (dict(n_layers=0), r"n_layers must be a positive integer"),
        (dict(n_kv_heads=0), r"n_kv_heads must be a positive integer"),
    ],
)
def test_config_errors_say_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**dict(TINY, **overrides))


def test_default_config_is_gpt2_small_and_hidden_dims():
    config = GPTConfig()
    assert (config.vocab_size, config.block_size, config.n_layers, config.d_model, config.n_heads) == (
        50257,
        1024,
        12,
        768,
        12,
    )
    assert config.head_dim == 64 and config.kv_heads == 12 and config.hidden_dim == 3072
    # SwiGLU's default: 8/3 · d_model rounded up to a multiple of 8 (8/3 · 32 = 85.3 -> 88).
    assert GPTConfig(**dict(TINY, mlp="swiglu")).hidden_dim == 88
    assert GPTConfig(**dict(TINY, mlp="swiglu", d_ff=100)).hidden_dim == 100


# --------------------------------------------------------------------------------------------
# weights: tying and initialisation
# --------------------------------------------------------------------------------------------


def test_tied_head_is_the_token_embedding_tensor():
    tied = make(**TINY)
    assert tied.lm_head.weight is tied.tok_emb.weight
    # One tensor: a gradient step through the head moves the embedding too.
    with torch.no_grad():
        tied.lm_head.weight[0, 0] = 123.0
    assert tied.tok_emb.weight[0, 0].item() == 123.0
    untied = make(**dict(TINY, tie_weights=False))
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.lm_head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()


def test_initialisation_is_gpt2s():
    n_layers = 4
    model = make(vocab_size=2000, block_size=64, n_layers=n_layers, d_model=256, n_heads=4)
    residual_std = 0.02 / math.sqrt(2 * n_layers)  # GPT-2: 0.02 / sqrt(2 · n_layers)
    for name, p in model.named_parameters():
        p = p.detach().double()
        if name.endswith(("attn.out_proj.weight", "mlp.down_proj.weight")):
            assert p.std().item() == pytest.approx(residual_std, rel=0.03), name
        elif name.endswith("norm.weight"):
            assert (p == 1).all(), name
        elif name.endswith("bias"):
            assert (p == 0).all(), name
        else:  # embeddings and the other linear weights
            assert p.std().item() == pytest.approx(0.02, rel=0.03), name
            assert abs(p.mean().item()) < 5 * 0.02 / math.sqrt(p.numel()), name


# --------------------------------------------------------------------------------------------
# generation and the key-value cache
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", SWITCHES, ids=switch_id)
def test_cached_logits_equal_a_full_forward_pass(config):
    """Prefill 5 tokens, then 1, then 3, then 1 through the cache: each step's logits are those
    of the full sequence at the same positions."""
    model = make(**config)
    idx = random_ids(model.config, T=10)
    full, _ = model(idx)  # (B, 10, V)
    caches = model.new_kv_caches()
    pieces = []
    for lo, hi in [(0, 5), (5, 6), (6, 9), (9, 10)]:
        logits, _ = model(idx[:, lo:hi], kv_caches=caches)
        pieces.append(logits)
    close(torch.cat(pieces, dim=1), full)
    assert caches[0].length == 10
    # Grouped-query attention caches n_kv_heads heads, not n_heads.
    assert caches[0].k.shape == (2, model.config.kv_heads, 10, model.config.head_dim)


def test_cache_cannot_exceed_block_size():
    model = make(**TINY)
    caches = model.new_kv_caches()
    model(random_ids(model.config, T=12), kv_caches=caches)
    with pytest.raises(ValueError, match=r"length 17 exceeds the context length block_size=16"):
        model(random_ids(model.config, T=5), kv_caches=caches)


@pytest.mark.parametrize("config", [GPT2_LIKE, LLAMA_LIKE], ids=["gpt2-like", "llama-like"])
def test_greedy_generation_takes_the_argmax_of_a_full_forward_pass(config):
    """Past block_size too: 5 + 20 tokens with block_size 16, cropping as nanoGPT does."""
    model = make(**config)
    prompt = random_ids(model.config, B=2, T=5)
    out = model.generate(prompt, 20, temperature=0.0)
    assert out.shape == (2, 25)
    assert torch.equal(out[:, :5], prompt)
    for t in range(5, 25):
        context = out[:, max(0, t - 16) : t]  # the last block_size tokens before t
        logits, _ = model(context)
        assert torch.equal(out[:, t], logits[:, -1].argmax(dim=-1)), f"token {t}"


@pytest.mark.parametrize("config", SWITCHES, ids=switch_id)
def test_generation_with_cache_equals_without(config):
    model = make(**config)
    prompt = random_ids(model.config, B=2, T=5)
    greedy_cached = model.generate(prompt, 20, temperature=0.0)
    greedy_recomputed = model.generate(prompt, 20, temperature=0.0, use_cache=False)
    assert torch.equal(greedy_cached, greedy_recomputed)

    def sample(use_cache: bool) -> torch.Tensor:
        generator = torch.Generator(device=DEVICE).manual_seed(1234)
        return model.generate(prompt, 20, temperature=1.5, top_k=10, generator=generator, use_cache=use_cache)

    assert torch.equal(sample(True), sample(False))


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    model = make(**TINY)
    prompt = random_ids(model.config, B=1, T=3)

    def sample(seed: int) -> torch.Tensor:
        return model.generate(prompt, 12, generator=torch.Generator(device=DEVICE).manual_seed(seed))

    assert torch.equal(sample(7), sample(7))
    assert not torch.equal(sample(7), sample(8))


def test_generate_zero_tokens_returns_the_prompt_and_rejects_negative():
    model = make(**TINY)
    prompt = random_ids(model.config, B=1, T=3)
    assert torch.equal(model.generate(prompt, 0), prompt)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0"):
        model.generate(prompt, -1)


def test_generated_text_can_be_trained_on():
    """generate runs in inference mode; what it returns must still work as training data."""
    model = make(**TINY)
    out = model.generate(random_ids(model.config, B=2, T=3), 6)
    _, loss = model(out[:, :-1], out[:, 1:])
    loss.backward()
    assert model.tok_emb.weight.grad is not None


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [GPT2_LIKE, LLAMA_LIKE], ids=["gpt2-like", "llama-like"])
def test_a_tiny_model_overfits_a_tiny_batch(config):
    """100 AdamW steps memorise 4 random sequences: the loss falls from ln(37) = 3.6 to near 0."""
    model = make(**config)
    data = random_ids(model.config, B=4, T=17)
    idx, targets = data[:, :-1], data[:, 1:]  # predict each next token
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):
        _, loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


@pytest.mark.parametrize("fast", [True, False], ids=["fused", "written-out"])
@pytest.mark.parametrize("config", [GPT2_LIKE, LLAMA_LIKE], ids=["gpt2-like", "llama-like"])
def test_mixed_precision_and_bfloat16_weights(config, fast):
    """Under autocast the matmuls run in bfloat16 (8 significant bits) and the loss stays close to
    float32's; a model cast to bfloat16 runs forward and generates. Both paths of the layers."""
    model = make(**config, fast=fast)
    idx = random_ids(model.config)
    _, loss32 = model(idx, idx)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        logits, loss = model(idx, idx)
    assert logits.dtype == torch.bfloat16
    assert loss.item() == pytest.approx(loss32.item(), rel=1e-2)
    loss.backward()  # gradients reach the float32 weights
    assert model.tok_emb.weight.grad.dtype == torch.float32
    model16 = model.to(torch.bfloat16)
    assert model16(idx)[0].dtype == torch.bfloat16
    assert model16.generate(idx[:, :3], 4, temperature=0.0).shape == (2, 7)


@pytest.mark.parametrize("fast", [True, False], ids=["fused", "written-out"])
def test_torch_compile_sees_one_graph(fast):
    """No graph breaks (the token embedding's range check steps aside under torch.compile), so a
    compiled model fuses even the written-out layers into as few kernels as a torch.nn model."""
    model = make(**GPT2_LIKE, fast=fast)
    idx = random_ids(model.config)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(idx, idx)
    torch._dynamo.reset()  # leave no compiled code behind for other tests
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0

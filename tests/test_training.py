"""course_lib.training: data, loss, schedule, optimizer groups, the Trainer and its checkpoints.

References: torch.nn.functional.cross_entropy (values and gradients, extreme logits included);
torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ for the written-out AdamW and clipping;
torch.randint with the same seed for get_batch's draws and the data itself for the shift;
hand-computed learning rates; torch.optim.AdamW stepped by hand on the same batches for the
Trainer's step and its gradient accumulation; a run in one go for resumption (bit-identical on
a CPU). Models are tiny and run on one thread (see test_model.py for why).
"""

import math
import random

import pytest
import torch
import torch.nn.functional as F

import course_lib.training.trainer
from course_lib.model import GPT, GPTConfig
from course_lib.tokenization import CharTokenizer
from course_lib.training.optim import AdamW, clip_grad_norm
from course_lib.training import (
    CheckpointError,
    TrainConfig,
    Trainer,
    configure_optimizer,
    cross_entropy,
    get_batch,
    load_checkpoint,
    load_model,
    lr_at,
    split_data,
)

TINY_MODEL = dict(vocab_size=11, block_size=8, n_layers=2, d_model=16, n_heads=2)
TINY_TRAIN = dict(max_iters=10, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_iters=2, eval_interval=5, eval_iters=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_data(n: int = 400, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, TINY_MODEL["vocab_size"], (n,), generator=torch.Generator().manual_seed(seed))


def tiny_trainer(out_dir=None, **train) -> Trainer:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY_MODEL))
    data = tiny_data()
    return Trainer(model, data[:300], data[300:], TrainConfig(**{**TINY_TRAIN, **train}), device="cpu",
                   out_dir=out_dir, progress=False)


# ---- cross_entropy ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 11), (2, 2, 2, 4)])
def test_cross_entropy_matches_torch_values_and_gradients(shape):
    logits = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, shape[-1], shape[:-1])
    ours = cross_entropy(logits, targets)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    theirs = F.cross_entropy(logits.reshape(-1, shape[-1]), targets.reshape(-1))
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert ours.shape == ()
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-6, atol=1e-6)


def test_cross_entropy_hand_example():
    # -log softmax([2, 1, 0])[0] = log(e² + e + 1) - 2
    expected = math.log(math.e**2 + math.e + 1) - 2
    assert cross_entropy(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_extreme_logits_stay_finite_and_match_torch():
    logits = torch.tensor([[1e4, 0.0, -1e4], [-1e4, -1e4, 1e4], [1e4, 1e4, 1e4]], requires_grad=True)
    targets = torch.tensor([1, 2, 0])
    ours = cross_entropy(logits, targets)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    theirs = F.cross_entropy(logits, targets)
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert torch.isfinite(ours) and torch.isfinite(grad_ours).all()
    torch.testing.assert_close(ours, theirs)  # (1e4 + 0 + log 3) / 3
    torch.testing.assert_close(grad_ours, grad_theirs)


def test_cross_entropy_of_half_precision_logits_is_computed_in_float32():
    logits = (torch.randn(4, 6, 50) * 10).to(torch.bfloat16)
    targets = torch.randint(0, 50, (4, 6))
    expected = F.cross_entropy(logits.float().view(-1, 50), targets.view(-1))
    assert cross_entropy(logits, targets).dtype == torch.float32
    torch.testing.assert_close(cross_entropy(logits, targets), expected)


def test_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"logits \(2, 3, 5\) and targets \(3, 2\)"):
        cross_entropy(torch.zeros(2, 3, 5), torch.zeros(3, 2, dtype=torch.long))


# ---- data --------------------------------------------------------------------------------------


def test_split_data_keeps_order_ninety_ten():
    train, val = split_data(list(range(100)))
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))


def test_get_batch_draws_like_torch_randint_and_shifts_by_one():
    data = torch.arange(1000, 1100)
    x, y = get_batch(data, 6, 5, generator=torch.Generator().manual_seed(3))
    starts = torch.randint(0, 100 - 5, (6,), generator=torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (6, 5) and x.dtype == torch.long
    for row, s in enumerate(starts.tolist()):
        assert x[row].tolist() == data[s : s + 5].tolist()
        assert y[row].tolist() == data[s + 1 : s + 6].tolist()


def test_get_batch_reaches_every_valid_start_and_no_other():
    data = torch.arange(10)
    x, y = get_batch(data, 2000, 4, generator=torch.Generator().manual_seed(0))
    assert set(x[:, 0].tolist()) == set(range(6))  # starts 0..5: the last window's y ends at 9
    assert y.max().item() == 9


def test_get_batch_rejects_data_shorter_than_a_window():
    with pytest.raises(ValueError, match="block_size \\+ 1 = 9"):
        get_batch(torch.arange(8), 2, 8)


# ---- schedule and optimizer --------------------------------------------------------------------


def test_lr_schedule_hand_values():
    # warm-up over 10 steps to 1.0, cosine down to 0.1 at step 110
    assert lr_at(0, 1.0, 0.1, 10, 110) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 0.1, 10, 110) == pytest.approx(1.0)
    assert lr_at(10, 1.0, 0.1, 10, 110) == pytest.approx(1.0)
    assert lr_at(60, 1.0, 0.1, 10, 110) == pytest.approx(0.55)  # cos(π/2) = 0: halfway
    assert lr_at(35, 1.0, 0.1, 10, 110) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, 1.0, 0.1, 10, 110) == lr_at(10_000, 1.0, 0.1, 10, 110) == 0.1
    lrs = [lr_at(s, 1.0, 0.1, 10, 110) for s in range(120)]
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_optimizer_decays_matrices_only_and_lists_the_tied_weight_once():
    model = GPT(GPTConfig(**TINY_MODEL))
    opt = configure_optimizer(model, lr=1e-3, weight_decay=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["fused"]  # one kernel for all parameters (test_train_step_equals_adamw_by_hand: same update)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    named = dict(model.named_parameters())  # tied weights appear once here
    assert {id(p) for p in decay["params"]} == {id(p) for p in named.values() if p.dim() == 2}
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in named.values() if p.dim() == 1}
    assert model.tok_emb.weight is model.lm_head.weight and len(decay["params"]) + len(no_decay["params"]) == len(named)
    written_out = configure_optimizer(model, lr=1e-3, weight_decay=0.1, fast=False)  # the same groups
    assert isinstance(written_out, AdamW)
    for group, ours in zip(opt.param_groups, written_out.param_groups, strict=True):
        assert [id(p) for p in group["params"]] == [id(p) for p in ours["params"]]
        assert (group["weight_decay"], group["betas"], group["lr"]) == (ours["weight_decay"], ours["betas"], ours["lr"])


def model_pair() -> tuple[GPT, GPT]:
    """Two copies of one tiny GPT in float64 (Adam divides by sqrt(v), which magnifies float32's
    last-bit differences for near-zero gradients; float64 keeps them far below a real mistake)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY_MODEL)).double()
    twin = GPT(GPTConfig(**TINY_MODEL)).double()
    twin.load_state_dict(model.state_dict())
    return model, twin


def test_written_out_adamw_matches_torch_over_several_steps():
    """configure_optimizer's two groups (decay on matrices only), betas, eps and the bias
    correction: 8 steps on real batches, every parameter compared after each."""
    ours_model, torch_model = model_pair()
    settings = dict(lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95))
    ours = configure_optimizer(ours_model, fast=False, **settings)
    theirs = configure_optimizer(torch_model, **settings)
    assert isinstance(ours, AdamW) and isinstance(theirs, torch.optim.AdamW)
    generator = torch.Generator().manual_seed(1)
    data = tiny_data()
    initial = [p.detach().clone() for p in ours_model.parameters()]
    for step in range(8):
        x, y = get_batch(data, 4, 8, generator=generator)
        for model, optimizer in [(ours_model, ours), (torch_model, theirs)]:
            _, loss = model(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for (name, a), b in zip(ours_model.named_parameters(), torch_model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda m: f"step {step}, {name}: {m}")
    moved = max((p - p0).abs().max().item() for p, p0 in zip(ours_model.parameters(), initial))
    assert moved > 0.05  # the steps were real (lr 1e-2, 8 steps)


@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_written_out_adamw_bias_correction_and_decay_by_hand(weight_decay):
    """One parameter, two steps, against the equations computed by hand: the bias-corrected first
    step moves by lr · g / |g| (plus the decay), whatever the gradient's size."""
    w = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = AdamW([w], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay)
    expected, m, v = 2.0, 0.0, 0.0
    for t, g in [(1, 4.0), (2, -1.0)]:
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.99 * v + 0.01 * g * g
        m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.99**t)
        expected -= 0.1 * (m_hat / (math.sqrt(v_hat) + 1e-8) + weight_decay * expected)
        assert w.item() == pytest.approx(expected, rel=1e-12)
    assert opt.state[w]["t"] == 2


def test_written_out_adamw_skips_parameters_without_gradients_and_saves_its_state():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = AdamW([a, b], lr=0.1)
    a.grad = torch.ones(3)
    opt.step()
    assert torch.equal(b, torch.ones(3)) and b not in opt.state and (a < 1).all()
    again = AdamW([a, b], lr=0.1)
    again.load_state_dict(opt.state_dict())
    assert again.state[a]["t"] == 1 and torch.equal(again.state[a]["m"], opt.state[a]["m"])


@pytest.mark.parametrize("max_norm", [0.5, 1e3], ids=["clips", "leaves-alone"])
def test_clip_grad_norm_matches_torch(max_norm):
    """The global norm over several tensors (one parameter without a gradient), scaled in place."""
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(shape)) for shape in [(4, 3), (3,), (2, 2, 2), (5,)]]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for p, q in zip(ours[:3], theirs[:3]):
        p.grad = torch.randn_like(p)
        q.grad = p.grad.clone()
    total = clip_grad_norm(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    torch.testing.assert_close(total, expected)
    assert total.item() > 1.0  # so the first case clips and the second does not
    for p, q in zip(ours[:3], theirs[:3]):
        torch.testing.assert_close(p.grad, q.grad)
    assert ours[3].grad is None
    clipped = torch.sqrt(sum((p.grad**2).sum() for p in ours[:3]))
    assert clipped.item() == pytest.approx(min(max_norm, total.item()), rel=1e-5)


def test_configs_reject_nonsense_with_a_readable_message():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="decay cannot end before the warm-up"):
        TrainConfig(max_iters=10, warmup_iters=11)


# ---- the Trainer ------------------------------------------------------------------------------


@pytest.mark.parametrize("accum", [1, 2])
def test_train_step_equals_adamw_by_hand(accum):
    """The Trainer's step (with accumulation) against one AdamW step on the whole batch by hand."""
    trainer = tiny_trainer(batch_size=4, grad_accum_steps=accum, grad_clip=0.5)
    reference = GPT(GPTConfig(**TINY_MODEL))
    reference.load_state_dict(trainer.model.state_dict())
    decay = [p for p in reference.parameters() if p.dim() >= 2]
    rest = [p for p in reference.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr_at(0, 1e-2, 1e-3, 2, 10), betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(TrainConfig().seed)
    batches = [get_batch(trainer.train_data, 4, 8, generator=generator) for _ in range(accum)]
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])  # the whole batch
    logits, _ = reference(x)
    loss = F.cross_entropy(logits.view(-1, 11), y.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
    opt.step()

    reported = trainer.train_step()
    assert reported == pytest.approx(loss.item(), rel=1e-5)
    for (name, ours), theirs in zip(trainer.model.state_dict().items(), reference.state_dict().values()):
        if name.endswith("k_proj.bias"):
            # Adding a bias to every key adds the same q·b to a query's scores, which softmax
            # ignores: its true gradient is 0, its computed one rounding noise, and Adam scales
            # noise up to a full step of either sign. Nothing to compare.
            continue
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)


def test_trainer_reports_the_models_own_loss(monkeypatch):
    """One loss: the Trainer's step and its evaluation use what GPT.forward(x, y) returns. A model
    whose loss is doubled makes the Trainer report doubled numbers."""
    trainer = tiny_trainer()
    before = trainer.evaluate()
    forward = GPT.forward

    def doubled(self, ids, targets=None, kv_caches=None):
        logits, loss = forward(self, ids, targets, kv_caches)
        return logits, None if loss is None else 2 * loss

    monkeypatch.setattr(GPT, "forward", doubled)
    assert trainer.evaluate() == pytest.approx(2 * before, rel=1e-6)


def test_run_learns_and_records_history():
    trainer = tiny_trainer(max_iters=40, eval_interval=15)
    data = torch.tensor([0, 1, 2, 3, 4] * 80)  # a cycle: perfectly predictable
    trainer.train_data, trainer.val_data = data[:300], data[300:]
    before = trainer.evaluate()
    history = trainer.run()
    assert [h["step"] for h in history] == list(range(1, 41))
    assert set(history[0]) == {"step", "train_loss", "val_loss", "lr", "tokens_per_s"}
    assert [h["step"] for h in history if h["val_loss"] is not None] == [15, 30, 40]
    assert before > 2.0 and history[-1]["val_loss"] < 0.5  # ln(11) ≈ 2.4 at the start
    assert history[0]["lr"] == pytest.approx(lr_at(0, 1e-2, 1e-3, 2, 40)) and history[-1]["tokens_per_s"] > 0


def test_resume_is_bit_identical_to_one_run(tmp_path):
    straight = tiny_trainer()
    straight.run()

    first = tiny_trainer(out_dir=tmp_path)
    first.run(until=5)
    first.save()
    random.random(), torch.rand(3)  # disturb the global random states: the checkpoint restores them
    second = tiny_trainer(out_dir=tmp_path)
    second.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt"))
    assert second.step == 5
    second.run()

    assert [h["train_loss"] for h in second.history] == [h["train_loss"] for h in straight.history]
    assert [h["val_loss"] for h in second.history] == [h["val_loss"] for h in straight.history]
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_loads_with_weights_only_and_restores_a_model(tmp_path):
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=4, checkpoint_interval=2)
    trainer.tokenizer = CharTokenizer("abcdefghijk")
    trainer.run()
    raw = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert raw["step"] == 4 and raw["model_config"]["d_model"] == 16 and raw["train_config"]["max_iters"] == 4
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed into place
    model, tokenizer, _ = load_model(tmp_path / "ckpt.pt")
    x = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(model(x)[0], trainer.model.eval()(x)[0])
    assert tokenizer.decode([0, 10]) == "ak"


def test_missing_corrupt_and_foreign_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a course_lib training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=2)
    trainer.run()
    data = (tmp_path / "ckpt.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_resuming_with_other_settings_is_refused(tmp_path):
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=2)
    trainer.run()
    other = tiny_trainer(max_iters=2, lr=5e-3, eval_interval=1)  # eval_interval may change, lr may not
    with pytest.raises(CheckpointError, match=r"train.lr: checkpoint 0.01, now 0.005") as err:
        other.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt"))
    assert "eval_interval" not in str(err.value)


def test_a_run_resumes_with_the_other_layer_path(tmp_path):
    """`fast` picks kernels, not weights: a checkpoint of the fused model resumes in the written-out
    one (and the reverse), and the next step computes the same loss to float32 rounding."""
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=4)
    trainer.run()
    checkpoint = load_checkpoint(tmp_path / "ckpt.pt")
    losses = {}
    for fast in (True, False):
        torch.manual_seed(0)
        model = GPT(GPTConfig(**TINY_MODEL, fast=fast))
        data = tiny_data()
        resumed = Trainer(model, data[:300], data[300:], TrainConfig(**{**TINY_TRAIN, "max_iters": 4}),
                          device="cpu", progress=False)
        resumed.load_state_dict(checkpoint)
        losses[fast] = resumed.train_step()
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)


def test_a_checkpoint_from_another_course_lib_version_is_refused_readably(tmp_path):
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=2)
    trainer.run()
    checkpoint = load_checkpoint(tmp_path / "ckpt.pt")
    checkpoint["model_config"]["n_experts"] = 8  # a setting this version does not know
    torch.save(checkpoint, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=r"another version of course_lib: its model settings \['n_experts'\]"):
        load_model(tmp_path / "future.pt")


def test_trainer_rejects_data_shorter_than_a_window():
    model = GPT(GPTConfig(**TINY_MODEL))
    with pytest.raises(ValueError, match="val_data must be 1-D token ids longer than block_size=8"):
        Trainer(model, tiny_data(), tiny_data(5), TrainConfig(), device="cpu")


def test_no_autocast_on_cpu():
    assert course_lib.training.trainer._autocast_dtype(torch.device("cpu")) is None


@pytest.mark.parametrize("bad_id", [-1, 11])
def test_trainer_rejects_token_ids_outside_the_vocabulary(bad_id):
    """Caught once, up front, with the fix: not as a failed lookup at some later step."""
    model = GPT(GPTConfig(**TINY_MODEL))
    data = tiny_data()
    data[100] = bad_id
    with pytest.raises(ValueError, match=rf"train_data holds token id {bad_id}, outside the model's vocabulary 0\.\.10"):
        Trainer(model, data, tiny_data(), TrainConfig(), device="cpu")


@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16+GradScaler"])
def test_mixed_precision_path_trains(monkeypatch, amp_dtype):
    """The path a GPU takes (autocast; for float16 also the GradScaler: scale, unscale before
    clipping, step), run on the CPU, whose autocast supports both dtypes: it learns as float32 does."""
    data = torch.arange(400) % 7  # 0, 1, ..., 6, 0, 1, ...: learnable, unlike random ids

    def pattern_trainer() -> Trainer:
        torch.manual_seed(0)
        config = TrainConfig(**{**TINY_TRAIN, "max_iters": 40, "eval_interval": 40})
        return Trainer(GPT(GPTConfig(**TINY_MODEL)), data, data, config, device="cpu", progress=False)

    reference = pattern_trainer()  # float32: autocast is off on a CPU
    assert reference.amp_dtype is None
    monkeypatch.setattr(course_lib.training.trainer, "_autocast_dtype", lambda device: amp_dtype)
    trainer = pattern_trainer()
    assert trainer.amp_dtype == amp_dtype and (trainer.scaler is not None) == (amp_dtype == torch.float16)
    history, reference_history = trainer.run(), reference.run()
    # From about ln 7 = 1.95 to a small fraction of it, as in float32 (to the precision's noise).
    assert history[0]["train_loss"] > 1.5 and reference_history[-1]["val_loss"] < 0.4
    assert history[-1]["val_loss"] == pytest.approx(reference_history[-1]["val_loss"], abs=0.05)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in trainer.model.parameters())


# ---- train_recipe and load_or_train ------------------------------------------------------------


def test_train_recipe_trains_what_the_command_line_trains(tmp_path):
    """Reference: `python -m course_lib.cli.train --preset shakespeare-char-tiny`, run in-process."""
    from course_lib.cli.train import main
    from course_lib.training import train_recipe

    assert main(["--preset", "shakespeare-char-tiny", "--device", "cpu", "--out", str(tmp_path / "cli"),
                 "--no-progress"]) == 0
    trainer = train_recipe("shakespeare-char-tiny", tmp_path / "ours", device="cpu")
    cli, ours = load_checkpoint(tmp_path / "cli" / "ckpt.pt"), load_checkpoint(trainer.checkpoint_path)
    assert ours["step"] == cli["step"] == 20 and ours["recipe"] == "shakespeare-char-tiny"
    for key, weight in cli["model"].items():
        assert torch.equal(ours["model"][key], weight), key  # the same run, bit for bit on a CPU
    with pytest.raises(KeyError, match="unknown recipe 'shakespeare'; known recipes"):
        train_recipe("shakespeare", tmp_path / "nothing")


def test_load_or_train_trains_once_then_loads(tmp_path, monkeypatch):
    from course_lib.training import load_or_train

    path = tmp_path / "kept" / "tiny.pt"
    model, tokenizer, checkpoint = load_or_train("shakespeare-char-tiny", path)  # nothing there: trains
    assert path.is_file() and checkpoint["step"] == 20 and not model.training
    assert tokenizer.vocab_size == 65 and model.config.vocab_size == 65

    def no_training(*args, **kwargs):
        raise AssertionError("load_or_train trained although a finished checkpoint was there")

    monkeypatch.setattr(course_lib.training.recipes, "train_recipe", no_training)
    again, _, _ = load_or_train("shakespeare-char-tiny", path)
    ids = torch.tensor([tokenizer.encode("ROMEO:")])
    torch.testing.assert_close(again(ids)[0], model(ids)[0], rtol=0, atol=0)


@pytest.mark.parametrize("spoil", ["other settings", "unfinished", "other recipe", "damaged"])
def test_load_or_train_retrains_a_checkpoint_that_does_not_match(tmp_path, monkeypatch, spoil):
    from course_lib.training import load_or_train
    from course_lib.training.checkpoint import save_checkpoint

    path = tmp_path / "tiny.pt"
    _, _, checkpoint = load_or_train("shakespeare-char-tiny", path)
    if spoil == "damaged":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        changes = {"other settings": {"train_config": {**checkpoint["train_config"], "lr": 0.5}},
                   "unfinished": {"step": 10}, "other recipe": {"recipe": "shakespeare-char"}}[spoil]
        save_checkpoint(path, {**checkpoint, **changes})
    calls = []
    real = course_lib.training.recipes.train_recipe
    monkeypatch.setattr(course_lib.training.recipes, "train_recipe",
                        lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs))
    _, _, fresh = load_or_train("shakespeare-char-tiny", path)
    assert len(calls) == 1, f"a checkpoint with {spoil} was loaded instead of trained again"
    assert fresh["step"] == 20 and fresh["train_config"] == checkpoint["train_config"]
    assert load_checkpoint(path)["recipe"] == "shakespeare-char-tiny"  # the new run replaced it

"""The shapes of GPT-2, GPT-3 and Llama 3, and how many parameters each shape has.

`count_parameters(config)` adds up the parameters of `GPT(config)` with a formula, term by
term, without building the model, so it works for a 405-billion-parameter shape as quickly as
for a toy. GPT-2 small, term by term (d = 768, V = 50257, 12 layers):

    token embedding       V · d                                  = 38,597,376
    position embedding    1024 · d                               =    786,432
    per block: 2 LayerNorms 2 · 2d, attention 4d² + 4d, MLP 8d² + 5d = 7,087,872
    12 blocks                                                    = 85,054,464
    final LayerNorm       2d                                     =      1,536
    head                  tied to the token embedding            =          0
    total                                                        = 124,439,808

Each `Preset` keeps the parameter count its authors published and where they published it,
so that a table can put the two side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import GPTConfig


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    """Parameters of Linear(n_in, n_out): the (n_out, n_in) weight and, with bias, n_out more."""
    return n_in * n_out + (n_out if bias else 0)


def parameter_breakdown(config: GPTConfig) -> dict[str, int]:
    """The parameters of GPT(config) by part: embeddings, attention, feed-forward, norms, head.

    Summed over all layers. For GPT-2 small: {"embeddings": 39,383,808, "attention": 28,348,416,
    "feed_forward": 56,669,184, "norms": 38,400, "head": 0}.
    """
    d, V = config.d_model, config.vocab_size
    kv_dim = config.kv_heads * config.head_dim  # width of k and v: smaller under grouped-query attention
    f, bias = config.hidden_dim, config.bias

    token_embedding = V * d
    position_embedding = config.block_size * d if config.rope_theta is None else 0  # rotary has no weights
    # q_proj and out_proj are (d, d); k_proj and v_proj (kv_dim, d).
    attention = _linear(d, d, bias) + 2 * _linear(d, kv_dim, bias) + _linear(d, d, bias)
    if config.mlp == "swiglu":
        feed_forward = 2 * _linear(d, f, bias) + _linear(f, d, bias)  # gate_proj, up_proj, down_proj
    else:
        feed_forward = _linear(d, f, bias) + _linear(f, d, bias)  # up_proj, down_proj
    # A LayerNorm has a weight and (with bias) a bias of size d; an RMSNorm has the weight only.
    norm = d + (d if config.norm == "layernorm" and config.bias else 0)
    norms = (2 * config.n_layers + 1) * norm  # two per block and the final one
    head = 0 if config.tie_weights else V * d  # tied: the token embedding's matrix, already counted

    return {
        "embeddings": token_embedding + position_embedding,
        "attention": config.n_layers * attention,
        "feed_forward": config.n_layers * feed_forward,
        "norms": norms,
        "head": head,
    }


def count_parameters(config: GPTConfig) -> int:
    """sum(p.numel() for p in GPT(config).parameters()), from the config alone.

    count_parameters(GPTConfig()) -> 124,439,808 (GPT-2 small).
    """
    return sum(parameter_breakdown(config).values())


@dataclass(frozen=True)
class Preset:
    """A published model's shape, with the parameter count its authors state and where.

    paper_count is for GPT-2 only: its paper's table gives counts that differ from the released
    models' (see the note).
    """

    config: GPTConfig
    published: float  # parameters, as the source states them (e.g. 124e6)
    source: str
    note: str = ""
    paper_count: float | None = None


GPT2_SOURCE = (
    "Radford et al. 2019, Language Models are Unsupervised Multitask Learners (sizes); released"
    " counts from github.com/openai/gpt-2 (README, download_model.py) and its 1.5B release post"
)
GPT2_NOTE = (
    "The GPT-2 paper's Table 2 gives 117M, 345M, 762M and 1542M. OpenAI's gpt-2 README: 'our"
    " original parameter counts were wrong due to an error (in our previous blog posts and"
    " paper)'; the released models, renamed 124M, 355M, 774M and 1558M, have the counts here."
    " The error is not described. A reconstruction (ours, not OpenAI's) fits all four to 0.1%:"
    " the paper's numbers are what the released shapes give with a vocabulary of 40,478"
    " tokens, GPT-1's, instead of GPT-2's 50,257."
)
GPT3_SOURCE = "Brown et al. 2020, Language Models are Few-Shot Learners, Table 2.1"
GPT3_XL_NOTE = (
    "Table 2.1 lists n_heads 24 and d_head 128, which multiply to 3072, not d_model 2048. We keep"
    " d_model 2048 and d_head 128, so 16 heads; the count does not depend on the number of heads"
    " as long as n_heads · d_head = d_model."
)
GPT3_13B_NOTE = (
    "Table 2.1 lists d_model 5140, not a multiple of its 40 heads of d_head 128; we use 40 · 128 = 5120."
)
LLAMA3_SOURCE = (
    "Llama Team 2024, The Llama 3 Herd of Models, Table 3 (layers, widths, heads, RoPE base);"
    " vocabulary 128,256 and untied head from the released weights' config.json"
)
LLAMA3_NOTE = (
    "Table 3 rounds the vocabulary to 128,000; the released weights have 128,256 tokens. The"
    " count from this shape is what the weights hold (Hugging Face lists 8.03B and 70.6B)."
)


def _gpt2(n_layers: int, d_model: int, n_heads: int, released: float, paper: float) -> Preset:
    config = GPTConfig(vocab_size=50257, block_size=1024, n_layers=n_layers, d_model=d_model, n_heads=n_heads)
    return Preset(config, published=released, source=GPT2_SOURCE, note=GPT2_NOTE, paper_count=paper)


def _gpt3(n_layers: int, d_model: int, n_heads: int, published: float, note: str = "") -> Preset:
    # GPT-3 is GPT-2's architecture with a 2048 context (and alternating sparse attention
    # layers, which change no parameter counts and which this model does not reproduce).
    config = GPTConfig(vocab_size=50257, block_size=2048, n_layers=n_layers, d_model=d_model, n_heads=n_heads)
    return Preset(config, published=published, source=GPT3_SOURCE, note=note)


def _llama3(
    n_layers: int, d_model: int, n_heads: int, d_ff: int, block_size: int, published: float
) -> Preset:
    config = GPTConfig(
        vocab_size=128256,
        block_size=block_size,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=8,
        d_ff=d_ff,
        mlp="swiglu",
        norm="rmsnorm",
        bias=False,
        rope_theta=500000.0,
        tie_weights=False,
    )
    return Preset(config, published=published, source=LLAMA3_SOURCE, note=LLAMA3_NOTE)


PRESETS: dict[str, Preset] = {
    # GPT-2: the released checkpoints (vocab 50257, context 1024, tied head, biases).
    "gpt2": _gpt2(12, 768, 12, released=124e6, paper=117e6),
    "gpt2-medium": _gpt2(24, 1024, 16, released=355e6, paper=345e6),
    "gpt2-large": _gpt2(36, 1280, 20, released=774e6, paper=762e6),
    "gpt2-xl": _gpt2(48, 1600, 25, released=1558e6, paper=1542e6),
    # GPT-3, Table 2.1 (n_layers, d_model, n_heads; d_head = d_model / n_heads).
    "gpt3-small": _gpt3(12, 768, 12, 125e6),
    "gpt3-medium": _gpt3(24, 1024, 16, 350e6),
    "gpt3-large": _gpt3(24, 1536, 16, 760e6),
    "gpt3-xl": _gpt3(24, 2048, 16, 1.3e9, note=GPT3_XL_NOTE),
    "gpt3-2.7b": _gpt3(32, 2560, 32, 2.7e9),
    "gpt3-6.7b": _gpt3(32, 4096, 32, 6.7e9),
    "gpt3-13b": _gpt3(40, 5120, 40, 13e9, note=GPT3_13B_NOTE),
    "gpt3-175b": _gpt3(96, 12288, 96, 175e9),
    # Llama 3 (8B and 70B: context 8192; 405B was released as Llama 3.1, context 131072).
    "llama3-8b": _llama3(32, 4096, 32, 14336, block_size=8192, published=8e9),
    "llama3-70b": _llama3(80, 8192, 64, 28672, block_size=8192, published=70e9),
    "llama3-405b": _llama3(126, 16384, 128, 53248, block_size=131072, published=405e9),
}

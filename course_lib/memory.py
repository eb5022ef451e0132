"""How much memory training a model takes, and how many GPUs that memory fills.

Training keeps, for every parameter, more than the parameter itself:

| what | fp32 training | bf16/fp16 mixed precision |
|---|---|---|
| weights | 4 bytes | 2 bytes (a 16-bit copy for the forward and backward passes) |
| gradients | 4 bytes | 2 bytes |
| master weights | none (the weights are fp32) | 4 bytes (the fp32 copy the optimizer updates) |
| AdamW's two moments | 4 + 4 bytes | 4 + 4 bytes (kept in fp32) |
| total | 16 bytes | 16 bytes |

Mixed precision does not shrink this part (Rajbhandari et al. 2020, ZeRO, section 3.1, count
the same 16 bytes); it speeds up the arithmetic and halves the activations. The weights of
Llama 3 405B alone, in fp32, take 405e9 · 4 bytes = 1.62 TB:

    >>> print(format_bytes(training_memory(405e9).weights))
    1.62 TB

On top come the activations: the intermediate tensors the forward pass keeps for the backward
pass. They grow with the batch and the sequence length, not with the optimizer; see
`activation_bytes_per_layer`.

Units are decimal, as GPU makers count: 1 GB = 1e9 bytes, 1 TB = 1e12 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .model import GPTConfig
from .presets import count_parameters

MB = 10**6
GB = 10**9
TB = 10**12
# An H100 as sold ("80 GB"). The card has 80 GiB = 85.9e9 bytes, of which the driver reserves some.
H100_MEMORY = 80 * GB

# Bytes per parameter of each kind of state, for each precision (see the module docstring).
PRECISIONS = {
    #               weights, gradients, master weights
    "fp32": (4, 4, 0),
    "bf16-mixed": (2, 2, 4),
    "fp16-mixed": (2, 2, 4),
}
# Optimizer state per parameter, in fp32: AdamW keeps two moments, SGD with momentum one, SGD none.
OPTIMIZER_STATE_BYTES = {"adamw": 8, "sgd-momentum": 4, "sgd": 0}
RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class MemoryBreakdown:
    """The bytes each part of training occupies; `total` adds them, `str()` prints a table."""

    weights: int
    gradients: int
    master_weights: int
    optimizer_states: int
    activations: int

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def __str__(self) -> str:
        rows = [(f.name.replace("_", " "), getattr(self, f.name)) for f in fields(self)]
        rows.append(("total", self.total))
        return "\n".join(f"{name:<17} {format_bytes(n):>10}" for name, n in rows)


def format_bytes(n: float) -> str:
    """A byte count with three significant digits, in TB, GB or MB: format_bytes(1.62e12) -> '1.62 TB'.

    format_bytes(80e9) -> '80 GB'; format_bytes(312) -> '312 bytes'.
    """
    for unit, size in (("TB", TB), ("GB", GB), ("MB", MB)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g} bytes"


def activation_bytes_per_layer(
    seq_len: int, batch_size: int, d_model: int, n_heads: int, recompute: str = "none"
) -> int:
    """Bytes of activations one transformer layer keeps for the backward pass, in 16-bit precision.

    From Korthikanti et al. 2022, Reducing Activation Recomputation in Large Transformer Models,
    section 4 (s = seq_len, b = batch_size, h = d_model, a = n_heads):

    - recompute="none": s·b·h·(34 + 5·a·s/h) bytes = 34·s·b·h + 5·a·s²·b. The 34·s·b·h are the
      layer's (s, b, h)-sized tensors (attention 11, MLP 19, two LayerNorms 4: inputs and
      intermediates at 2 bytes, dropout masks at 1); the 5·a·s²·b are the (a, s, s) attention
      scores: the softmax output (2 bytes), its dropout mask (1) and the dropout output (2).
    - recompute="selective": 34·s·b·h, recomputing the attention scores in the backward pass.
      A fused attention kernel (flash attention, F.scaled_dot_product_attention on a GPU) never
      stores them either, so this is also the estimate for it.
    - recompute="full": 2·s·b·h, only each layer's input, the rest recomputed in the backward pass.

    The formula assumes a GPT-2-shaped layer with dropout; our model has no dropout, and SwiGLU
    or grouped-query attention change the constants a little. Take it as an estimate.
    With s=2, b=1, h=4, a=2: 34·8 + 5·2·4·1 = 312 bytes.
    """
    if recompute not in RECOMPUTE:
        raise ValueError(f"recompute must be one of {RECOMPUTE}, got {recompute!r}")
    sbh = seq_len * batch_size * d_model
    if recompute == "full":
        return 2 * sbh
    if recompute == "selective":
        return 34 * sbh
    return 34 * sbh + 5 * n_heads * seq_len**2 * batch_size


def training_memory(
    model: GPTConfig | float,
    precision: str = "fp32",
    optimizer: str = "adamw",
    batch_size: int = 0,
    seq_len: int | None = None,
    recompute: str = "none",
) -> MemoryBreakdown:
    """The memory to train `model` (a GPTConfig, or a number of parameters), by part.

    Weights, gradients, master weights and optimizer states follow from the parameter count
    (see the module docstring's table). Activations need the model's shape, so they are counted
    only for a GPTConfig and batch_size > 0: n_layers · `activation_bytes_per_layer`, doubled
    for fp32 activations (the formula counts 16-bit values). seq_len defaults to the config's
    block_size. Not counted: the embedding and logits activations, temporary buffers, and the
    framework's own overhead, so real runs need somewhat more.

    A 1-billion-parameter model in fp32 with AdamW: 4 GB weights + 4 GB gradients + 8 GB
    optimizer states = 16 GB before activations.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    if optimizer not in OPTIMIZER_STATE_BYTES:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZER_STATE_BYTES)}, got {optimizer!r}")
    is_config = isinstance(model, GPTConfig)
    if batch_size > 0 and not is_config:
        raise ValueError(
            "training_memory: activations depend on the model's shape; pass a GPTConfig"
            " (e.g. PRESETS['gpt2'].config) instead of a parameter count, or batch_size=0"
        )
    n_params = count_parameters(model) if is_config else model
    weight_bytes, gradient_bytes, master_bytes = PRECISIONS[precision]
    activations = 0
    if is_config and batch_size > 0:
        per_layer = activation_bytes_per_layer(
            seq_len or model.block_size, batch_size, model.d_model, model.n_heads, recompute
        )
        bytes_factor = 2 if precision == "fp32" else 1  # 4-byte instead of 2-byte activations
        activations = model.n_layers * per_layer * bytes_factor
    return MemoryBreakdown(
        weights=round(n_params * weight_bytes),
        gradients=round(n_params * gradient_bytes),
        master_weights=round(n_params * master_bytes),
        optimizer_states=round(n_params * OPTIMIZER_STATE_BYTES[optimizer]),
        activations=activations,
    )


def gpus_needed(total_bytes: float, gpu_memory_bytes: float = H100_MEMORY) -> int:
    """How many GPUs of gpu_memory_bytes each it takes to hold total_bytes, if split evenly.

    gpus_needed(1.62e12) -> 21 H100s of 80 GB (1620 / 80 = 20.25, rounded up). A lower bound:
    splitting a model across GPUs (ZeRO, tensor or pipeline parallelism) duplicates some memory.
    """
    if gpu_memory_bytes <= 0:
        raise ValueError(f"gpu_memory_bytes must be positive, got {gpu_memory_bytes}")
    return math.ceil(total_bytes / gpu_memory_bytes)


def kv_cache_bytes(
    config: GPTConfig, batch_size: int = 1, seq_len: int | None = None, bytes_per_value: int = 2
) -> int:
    """The memory a key-value cache takes to generate from `config`: every layer's keys and values.

    Each layer keeps, for every position of every sequence, a key and a value of head_dim
    numbers for each of its kv_heads key-value heads:

        2 (k and v) · n_layers · kv_heads · head_dim · seq_len · batch_size · bytes_per_value

    seq_len defaults to the config's block_size (a full context); bytes_per_value is 2 for
    bf16/fp16, 4 for fp32. Grouped-query attention caches kv_heads heads, not n_heads: Llama 3
    8B (32 layers, 8 key-value heads of 128 dimensions) in bf16 keeps
    2 · 32 · 8 · 128 · 2 = 131,072 bytes (128 KiB) per token, a quarter of what 32 heads would:

        >>> from course_lib.presets import PRESETS
        >>> kv_cache_bytes(PRESETS["llama3-8b"].config, seq_len=1)
        131072
        >>> kv_cache_bytes(PRESETS["llama3-8b"].config) == 8192 * 131072   # 8,192 tokens: 1 GiB
        True
    """
    for name, value in (("batch_size", batch_size), ("bytes_per_value", bytes_per_value)):
        if value < 1:
            raise ValueError(f"kv_cache_bytes: {name} must be a positive integer, got {value}")
    seq_len = config.block_size if seq_len is None else seq_len
    if seq_len < 0:
        raise ValueError(f"kv_cache_bytes: seq_len must be >= 0, got {seq_len}")
    per_position = 2 * config.n_layers * config.kv_heads * config.head_dim  # numbers per token
    return per_position * seq_len * batch_size * bytes_per_value

"""The layers a transformer is built from, written out with plain tensor operations.

Each class here does what its `torch.nn` namesake does (same parameter names and shapes, same
default initialisation, same numbers to float32 rounding), but spells the computation out, in
its `forward` or in a function beside it, so that a reader can check it by hand:

    >>> layer = Linear(2, 1)
    >>> with torch.no_grad():
    ...     layer.weight[:] = torch.tensor([[1.0, 2.0]])     # (out_features, in_features)
    ...     layer.bias[:] = 0.5
    >>> layer(torch.tensor([3.0, 4.0])).tolist()              # 1*3 + 2*4 + 0.5
    [11.5]

Every layer acts on the last dimension and accepts any number of leading dimensions, so the same
`Linear` maps one vector (C,), a sequence (T, C) or a batch of sequences (B, T, C).

Initialisation follows PyTorch's defaults, so that a model built from these layers trains like
one built from `torch.nn`:

- `Linear`: weight and bias ~ Uniform(-1/sqrt(in_features), 1/sqrt(in_features)). PyTorch
  writes this as `kaiming_uniform_(weight, a=sqrt(5))`, whose bound works out to the same number.
- `Embedding`: weight ~ Normal(0, 1).
- `LayerNorm`, `RMSNorm`: weight = 1 and bias = 0, so a fresh norm only normalises.

The GPT model configures its feed-forward block with `MLP` (GPT-2: GELU, with biases) or
`SwiGLU` (Llama: a gated SiLU, no biases), and its normalisation with `LayerNorm` or `RMSNorm`.

Two paths, one result. Every computation with a fused PyTorch kernel is written out here as a
function (`linear`, `layer_norm`, `rms_norm`, `relu`, `gelu`, `silu`), and the module that uses it chooses
between the two in one line of its `forward`:

    y = F.layer_norm(x, ...) if self.fast else layer_norm(x, ...)

fast=True (the default) runs PyTorch's kernel, fast=False the lines written out here. The fused
kernel reads the tensor once instead of once per operation, and its backward is one kernel too;
written out, tanh-GELU alone is eight element-wise operations forward and more backward. The
tests check the written-out functions against `torch.nn`, so read them and train with the
fused ones.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# Where a layer creates its parameters (None: PyTorch's defaults, the CPU and float32).
Device = torch.device | str | None
Dtype = torch.dtype | None

# --------------------------------------------------------------------------------------------
# Input checks: a shape or dtype mistake is reported by the layer that received it, in the
# learner's terms, instead of as a matmul error three frames deeper.
# --------------------------------------------------------------------------------------------


def _check_features(layer: str, x: torch.Tensor, features: int, dtype: torch.dtype) -> None:
    """Raise if `x` is not a floating tensor of shape (..., features) matching the layer's dtype."""
    if x.ndim == 0 or x.shape[-1] != features:
        raise ValueError(
            f"{layer} expected x of shape (..., {features}), got {tuple(x.shape)}:"
            f" the last dimension must be the layer's input size {features}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{layer} expected a floating-point x, got {x.dtype}:"
            f" convert with x.float() (token ids go through an Embedding first)"
        )
    # Under torch.autocast, bfloat16 activations meeting float32 weights is the intended mix.
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"{layer} has {dtype} parameters but x is {x.dtype}:"
            f" convert one to match, e.g. x.to({dtype}) or layer.to({x.dtype})"
        )


def _at_least_float32(x: torch.Tensor, *parameters: torch.Tensor | None) -> list[torch.Tensor | None]:
    """x and the parameters in float32 if x is float16 or bfloat16 (float64 stays float64).

    Norms compute at this precision and round to x's dtype once, at the end. In bfloat16, with
    8 significant bits, each step (centring, squaring, dividing) would round again. A no-op in
    float32 training; the parameters follow x so that a fused kernel sees one dtype throughout.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    # A tensor already in that dtype is passed as it is (.to() would return it too, after a call).
    return [t if t is None or t.dtype == dtype else t.to(dtype) for t in (x, *parameters)]


# --------------------------------------------------------------------------------------------
# Linear and Embedding
# --------------------------------------------------------------------------------------------


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x Wᵀ + b, written out: (..., in_features) -> (..., out_features); the twin of `F.linear`.

        >>> linear(torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 2.0]]), torch.tensor([0.5]))
        tensor([11.5000])
    """
    y = x @ weight.T  # (..., in) @ (in, out) -> (..., out)
    if bias is not None:
        # Under autocast `y` is bfloat16; casting the bias keeps it so (a no-op otherwise).
        y = y + bias.to(y.dtype)  # (..., out) + (out,) broadcasts over the leading dims
    return y


class Linear(nn.Module):
    """y = x Wᵀ + b: every output is a weighted sum of all inputs, plus a bias.

    The weight has shape (out_features, in_features), as in `torch.nn.Linear`, so row i of the
    weight holds the coefficients of output i. With in_features=2, out_features=1,
    W = [[1, 2]] and b = [0.5]: Linear(x=[3, 4]) = 1*3 + 2*4 + 0.5 = [11.5].
    fast=True (the default) computes it with `F.linear`, which adds the bias inside the matrix
    product (one kernel instead of two, forward and backward).
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, fast: bool = True, device: Device = None,
        dtype: Dtype = None,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.fast = fast
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight and bias ~ Uniform(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's default.

        The bound shrinks as the layer widens, so that outputs do not grow with the width: an
        output sums `in_features` terms whose weights have variance bound²/3 = 1/(3 in_features),
        so for inputs of variance 1 it has variance 1/3, whatever in_features is.
        """
        bound = 1 / math.sqrt(self.in_features)
        with torch.no_grad():  # initialising is not part of the computation to differentiate
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features("Linear", x, self.in_features, self.weight.dtype)
        return F.linear(x, self.weight, self.bias) if self.fast else linear(x, self.weight, self.bias)  # (..., out)

    def extra_repr(self) -> str:
        # fast=True, the default, is left out: a model's printout keeps torch.nn.Linear's line length.
        fast = "" if self.fast else ", fast=False"
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}{fast}"


class Embedding(nn.Module):
    """A lookup table: token id i becomes row i of the weight, a learned vector of size `embedding_dim`.

    With weight = [[0, 0], [1, 2], [3, 4]] (3 ids, 2 dims), the ids [2, 1, 2] become
    [[3, 4], [1, 2], [3, 4]]. It computes the same as one-hot(ids) @ weight, without building
    the one-hot matrix.

    check_range=True (the default) checks every call that the ids lie in 0..num_embeddings-1
    and raises a readable IndexError otherwise. On a GPU that check reads two numbers back from
    the device, which makes the CPU wait for the GPU once per call; a training loop whose ids
    are known to be valid can set check_range=False (or `emb.check_range = False`) to skip it.
    Under torch.compile the check is skipped too: reading a number back would split the
    compiled graph in three.
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, check_range: bool = True, device: Device = None, dtype: Dtype = None
    ):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.check_range = check_range
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight ~ Normal(0, 1), PyTorch's default. GPT-2 used Normal(0, 0.02); a model may re-initialise."""
        with torch.no_grad():
            self.weight.normal_(0.0, 1.0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype == torch.bool or ids.is_floating_point():
            raise TypeError(
                f"Embedding expected integer token ids, got a {ids.dtype} tensor:"
                f" build ids with torch.tensor(ids, dtype=torch.long)"
            )
        # Indexing would read a negative id from the end of the table, and on a GPU an id past
        # the end fails with an unreadable device-side assert, so check the range first.
        # (This reads two numbers back from the device: a synchronisation per call; see check_range.)
        if self.check_range and ids.numel() > 0 and not torch.compiler.is_compiling():
            low, high = ids.min().item(), ids.max().item()
            if low < 0 or high >= self.num_embeddings:
                bad = low if low < 0 else high
                raise IndexError(
                    f"Embedding got token id {bad}, outside 0..{self.num_embeddings - 1}:"
                    f" the table has {self.num_embeddings} rows (is the vocabulary size right?)"
                )
        return self.weight[ids]  # (...) -> (..., embedding_dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


def layer_norm(
    x: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Normalise the last dimension to mean 0 and variance 1, then scale and shift: F.layer_norm written out.

    For x = [1, 2, 3]: mean 2, variance ((-1)² + 0² + 1²)/3 = 2/3, so without weight and bias the
    output is [-1, 0, 1] / sqrt(2/3 + eps):

        >>> layer_norm(torch.tensor([1.0, 2.0, 3.0]), (3,))
        tensor([-1.2247,  0.0000,  1.2247])

    The variance divides by n, not n - 1 (as `torch.nn.LayerNorm`); `eps` keeps the division
    finite for a constant vector. Only the last dimension is normalised: normalized_shape
    is (C,) for x (..., C) (the argument is there to take F.layer_norm's arguments unchanged).
    """
    mean = x.mean(dim=-1, keepdim=True)  # (..., C) -> (..., 1)
    # Centre first, then average the squares: E[(x - mean)²] stays accurate when the mean is
    # large, where E[x²] - mean² would subtract two nearly equal numbers.
    centred = x - mean  # (..., C)
    variance = (centred * centred).mean(dim=-1, keepdim=True)  # (..., 1)
    y = centred / torch.sqrt(variance + eps)  # (..., C)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(
    x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None = None, eps: float = 1e-5
) -> torch.Tensor:
    """Divide the last dimension by its root mean square, then scale: F.rms_norm written out.

    For x = [3, 4]: RMS = sqrt((9 + 16)/2) = sqrt(12.5) ≈ 3.5355, so the output is

        >>> rms_norm(torch.tensor([3.0, 4.0]), (2,))
        tensor([0.8485, 1.1314])

    Unlike layer_norm it neither subtracts the mean nor adds a bias: fewer operations, and in
    practice it trains as well (Llama's choice).
    """
    mean_square = (x * x).mean(dim=-1, keepdim=True)  # (..., C) -> (..., 1)
    y = x / torch.sqrt(mean_square + eps)  # (..., C)
    return y if weight is None else y * weight


class LayerNorm(nn.Module):
    """`layer_norm` as a module, with a learned scale `weight` and shift `bias` per feature.

    They start at 1 and 0, so a fresh LayerNorm only normalises. The statistics are computed in
    at least float32, then cast back to x's dtype. fast=True (the default) computes with
    `F.layer_norm`, fast=False with `layer_norm` (see the module docstring).
    """

    def __init__(
        self, normalized_shape: int, eps: float = 1e-5, bias: bool = True, fast: bool = True,
        device: Device = None, dtype: Dtype = None,
    ):
        super().__init__()
        self.normalized_shape, self.eps, self.fast = normalized_shape, eps, fast
        self.weight = nn.Parameter(torch.ones(normalized_shape, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(normalized_shape, device=device, dtype=dtype)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features("LayerNorm", x, self.normalized_shape, self.weight.dtype)
        x32, weight, bias = _at_least_float32(x, self.weight, self.bias)
        args = (x32, (self.normalized_shape,), weight, bias, self.eps)
        y = F.layer_norm(*args) if self.fast else layer_norm(*args)  # (..., C)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, bias={self.bias is not None}, fast={self.fast}"


class RMSNorm(nn.Module):
    """`rms_norm` as a module, with a learned scale `weight` per feature (starting at 1).

    `eps` defaults to 1e-5, the value of Llama 3's configuration. (`torch.nn.RMSNorm`'s default,
    eps=None, means the dtype's machine epsilon instead; pass eps explicitly when comparing.)
    fast=True (the default) computes with `F.rms_norm`, fast=False with `rms_norm`.
    """

    def __init__(
        self, normalized_shape: int, eps: float = 1e-5, fast: bool = True, device: Device = None, dtype: Dtype = None
    ):
        super().__init__()
        self.normalized_shape, self.eps, self.fast = normalized_shape, eps, fast
        self.weight = nn.Parameter(torch.ones(normalized_shape, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_features("RMSNorm", x, self.normalized_shape, self.weight.dtype)
        x32, weight = _at_least_float32(x, self.weight)
        args = (x32, (self.normalized_shape,), weight, self.eps)
        y = F.rms_norm(*args) if self.fast else rms_norm(*args)  # (..., C)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, fast={self.fast}"


# --------------------------------------------------------------------------------------------
# Activations: the non-linearity between two linear layers (without one, two linear layers
# collapse into a single linear map).
# --------------------------------------------------------------------------------------------


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0), elementwise; its gradient is 1 where x > 0, else 0.

        >>> relu(torch.tensor([-2.0, 0.0, 3.0]))
        tensor([0., 0., 3.])
    """
    return torch.where(x > 0, x, 0.0)


def gelu(x: torch.Tensor, approximate: Literal["none", "tanh"] = "none") -> torch.Tensor:
    """x · Φ(x), where Φ is the standard normal CDF: a smooth ReLU that lets a little negative through.

    gelu(1) = Φ(1) ≈ 0.8413 and gelu(-1) = -(1 - Φ(1)):

        >>> gelu(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.1587,  0.0000,  0.8413])

    The exact form uses Φ(x) = (1 + erf(x/√2))/2; approximate="tanh" uses the formula GPT-2 was
    trained with, Φ(x) ≈ (1 + tanh(√(2/π) (x + 0.044715 x³)))/2, which differs by less than 1e-3.
    """
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if approximate == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x: torch.Tensor) -> torch.Tensor:
    """x · sigmoid(x), also called swish.

        >>> silu(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.2689,  0.0000,  0.7311])

    torch.sigmoid rather than 1/(1 + exp(-x)): for x = -1000, exp(1000) overflows to inf and
    the gradient of the hand-written form becomes inf/inf = NaN.
    """
    return x * torch.sigmoid(x)


class _TwoPaths(nn.Module):
    """A module whose forward runs PyTorch's fused kernel (fast=True) or the written-out function."""

    def __init__(self, fast: bool = True):
        super().__init__()
        self.fast = fast

    def extra_repr(self) -> str:
        return f"fast={self.fast}"


class ReLU(_TwoPaths):
    """`relu` as a module; fast=True calls `F.relu`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.fast else relu(x)


class SiLU(_TwoPaths):
    """`silu` as a module; fast=True calls `F.silu`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x) if self.fast else silu(x)


class GELU(_TwoPaths):
    """`gelu` as a module; approximate="tanh" selects GPT-2's tanh formula. fast=True calls `F.gelu`."""

    def __init__(self, approximate: Literal["none", "tanh"] = "none", fast: bool = True):
        super().__init__(fast)
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate=self.approximate) if self.fast else gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}, fast={self.fast}"


# The names `MLP(activation=...)` accepts; "gelu_tanh" is GPT-2's variant.
ACTIVATIONS = {
    "relu": ReLU,
    "gelu": GELU,
    "gelu_tanh": functools.partial(GELU, approximate="tanh"),
    "silu": SiLU,
}


# --------------------------------------------------------------------------------------------
# Feed-forward blocks: the per-position part of a transformer block
# --------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Widen, apply a non-linearity, narrow back: down_proj(act(up_proj(x))).

    Each position is transformed on its own (attention is where positions mix). GPT-2 uses
    d_hidden = 4 · d_model and GELU. With d_model=768 that is 768·3072 + 3072 + 3072·768 + 768
    = 4,722,432 parameters per block, about two thirds of the block. `fast` goes to every part.
    """

    def __init__(
        self, d_model: int, d_hidden: int | None = None, activation: str = "gelu", bias: bool = True,
        fast: bool = True, device: Device = None, dtype: Dtype = None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MLP: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
                f" (for Llama's gated feed-forward use SwiGLU)"
            )
        d_hidden = 4 * d_model if d_hidden is None else d_hidden
        self.up_proj = Linear(d_model, d_hidden, bias=bias, fast=fast, device=device, dtype=dtype)
        self.act = ACTIVATIONS[activation](fast=fast)
        self.down_proj = Linear(d_hidden, d_model, bias=bias, fast=fast, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.up_proj(x))  # (..., d_model) -> (..., d_hidden)
        return self.down_proj(h)  # (..., d_hidden) -> (..., d_model)


class SwiGLU(nn.Module):
    """Llama's gated feed-forward: down_proj(silu(gate_proj(x)) * up_proj(x)).

    Two projections up instead of one: one (through SiLU) decides, elementwise, how much of the
    other passes. With three weight matrices instead of two, d_hidden ≈ (2/3) · 4 · d_model
    spends as many parameters as a 4x MLP: Llama 2 7B has d_model 4096 and d_hidden 11008
    (that, rounded up to a multiple of 256). No biases by default, as in Llama; the names match
    Hugging Face's Llama checkpoints. fast=True (the default) uses `F.silu` and `F.linear`.
    """

    def __init__(
        self, d_model: int, d_hidden: int, bias: bool = False, fast: bool = True, device: Device = None,
        dtype: Dtype = None,
    ):
        super().__init__()
        self.act = SiLU(fast=fast)
        self.gate_proj = Linear(d_model, d_hidden, bias=bias, fast=fast, device=device, dtype=dtype)
        self.up_proj = Linear(d_model, d_hidden, bias=bias, fast=fast, device=device, dtype=dtype)
        self.down_proj = Linear(d_hidden, d_model, bias=bias, fast=fast, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.gate_proj(x)) * self.up_proj(x)  # (..., d_model) -> (..., d_hidden)
        return self.down_proj(h)  # (..., d_hidden) -> (..., d_model)

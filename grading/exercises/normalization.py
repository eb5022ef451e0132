"""The checks of exercise 02_normalization: softmax, layer_norm, rms_norm and gelu.

The learner writes, in exercises/02_normalization/normalization.ipynb:

    softmax(x, dim=-1)                      # exp(x) / sum exp(x) along dim, the maximum subtracted first
    layer_norm(x, weight, bias, eps=1e-5)   # over the last dimension, biased variance: F.layer_norm
    rms_norm(x, weight, eps=1e-6)           # x / sqrt(mean(x²) + eps) * weight: Llama's RMSNorm
    gelu(x, approximate="none")             # x Φ(x) with erf; GPT-2's tanh form for "tanh"

each for any leading dimensions, returning a tensor of x's dtype, without torch's own version
(FORBIDDEN). The references are torch's (torch.softmax, F.layer_norm, F.rms_norm, F.gelu),
computed in float64 on the grader's side and rounded to the input's dtype. Visible checks use the
notebook's hand-worked examples; hidden ones random inputs from fixed seeds, inputs far from zero,
inputs so small that eps matters, and half-precision inputs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from grading import seeds
from grading.checks import Call, Check, call, tensor_returns
from grading.compare import ATOL, RTOL, show_tensors, tensors_close

NOTEBOOK = "normalization.ipynb"
# Each task must compute what torch's own function would: calling it (or its module) is not allowed.
FORBIDDEN: dict[str, list[str]] = {
    "softmax": ["torch.softmax", "torch.nn.functional.softmax", "torch.nn.functional.log_softmax",
                "torch.log_softmax", "torch.Tensor.softmax", "torch.Tensor.log_softmax", "torch.special.softmax",
                "torch.nn.Softmax", "torch.nn.LogSoftmax"],
    "layer_norm": ["torch.nn.functional.layer_norm", "torch.layer_norm", "torch.native_layer_norm",
                   "torch.nn.LayerNorm", "torch.nn.functional.group_norm", "torch.nn.GroupNorm"],
    "rms_norm": ["torch.nn.functional.rms_norm", "torch.rms_norm", "torch.nn.RMSNorm"],
    "gelu": ["torch.nn.functional.gelu", "torch.nn.GELU"],
}
# Why a result can hold NaN or infinity, task by task.
HINTS = {
    "softmax": "exp overflows from about 88.7 in float32: subtract each row's maximum first",
    "layer_norm": "the variance of one number is 0 when it divides by n (unbiased=False), NaN when by n - 1",
    "rms_norm": "add eps inside the square root, so that a row of zeros divides by sqrt(eps)",
    "gelu": "for large |x|, x³ or exp can overflow: use torch.erf and torch.tanh as the formulas do",
}

# Half-precision results are compared with a tolerance of a few units in their last place:
# bfloat16 keeps 8 significant bits (a relative step of 2^-8 = 0.004), float16 11 (2^-11). A
# correct answer computed in the half type itself rounds a few times (0.016 at most for bfloat16 in
# our trials); the mistakes these checks look for change values by far more, and the float32
# checks catch them anyway. What the half-precision checks ask is mainly: is the dtype kept?
HALF_TOLERANCE = {"bfloat16": 2e-2, "float16": 4e-3}


def close_in_dtype(expected: Any, actual: Any) -> bool:
    """tensors_close with the tolerance of the expected dtype: the usual one for float32 and
    float64, a few units in the last place for bfloat16 and float16 (see HALF_TOLERANCE)."""
    if type(expected) is dict and expected.get("dtype") in HALF_TOLERANCE:
        tolerance = HALF_TOLERANCE[expected["dtype"]]
        return tensors_close(expected, actual, rtol=tolerance, atol=tolerance)
    return tensors_close(expected, actual, rtol=RTOL, atol=ATOL)


# ---- inputs -----------------------------------------------------------------------------------


def randn(seed: int, *shape: int, scale: float = 1.0, shift: float = 0.0,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normal draws from a fixed seed, times `scale` plus `shift`, in `dtype`."""
    draws = torch.randn(*shape, generator=torch.Generator().manual_seed(seeds.seed(seed)), dtype=torch.float64)
    return (shift + scale * draws).to(dtype)


def task_call(task: str, *args: Any, **kwargs: Any) -> Call:
    return call(task, *args, returns=tensor_returns(floating=True, hint=HINTS[task]), **kwargs)


def random_norm(task: str, seed: int, shape: tuple[int, ...], scale: float = 1.0, shift: float = 0.0,
                dtype: torch.dtype = torch.float32, **kwargs: Any) -> Call:
    """layer_norm or rms_norm of a random x of `shape` with a random weight (and bias) of its last
    dimension, all from `seed`."""
    x = randn(seed, *shape, scale=scale, shift=shift, dtype=dtype)
    weight = randn(seed + 1, shape[-1], shift=1.0, scale=0.5, dtype=dtype)
    if task == "layer_norm":
        return task_call(task, x, weight, randn(seed + 2, shape[-1], scale=0.5, dtype=dtype), **kwargs)
    return task_call(task, x, weight, **kwargs)


# ---- references (grader's side): torch in float64, rounded to the input's dtype ----------------


def torch_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.softmax(x.double(), dim=dim).to(x.dtype)


def torch_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return F.layer_norm(x.double(), (x.shape[-1],), weight.double(), bias.double(), eps).to(x.dtype)


def torch_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return F.rms_norm(x.double(), (x.shape[-1],), weight.double(), eps).to(x.dtype)


def torch_gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return F.gelu(x.double(), approximate=approximate).to(x.dtype)


def norm_check(task: str, reference: Any) -> Any:
    """A maker of `task`'s checks, compared with `reference` within the dtype's tolerance."""

    def make(name: str, calls: Call | tuple[Call, ...], points: float = 1, hidden: bool = False) -> Check:
        return Check(task, name, calls, reference=reference, compare=close_in_dtype, show=show_tensors,
                     points=points, hidden=hidden)

    return make


softmax_check = norm_check("softmax", torch_softmax)
layer_norm_check = norm_check("layer_norm", torch_layer_norm)
rms_norm_check = norm_check("rms_norm", torch_rms_norm)
gelu_check = norm_check("gelu", torch_gelu)

# ---- the notebook's worked examples -------------------------------------------------------------

T = torch.tensor
INF = math.inf
LOGS = T([0.0, math.log(2), math.log(3)])  # softmax -> [1/6, 2/6, 3/6]
ROWS = T([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])  # softmax rows [0.0900, 0.2447, 0.6652], [1/3] * 3
ONES3, ZEROS3 = torch.ones(3), torch.zeros(3)
# layer_norm: (x - 2) / sqrt(2/3): [-1.2247, 0, 1.2247]; then * weight + bias per feature.
WEIGHT3, BIAS3 = T([1.0, 2.0, 0.5]), T([0.0, 1.0, -1.0])
SMALL = randn(40, 2, 16, scale=1e-3)  # std 1e-3: variance 1e-6, below layer_norm's eps

CHECKS: list[Check] = [
    # softmax: 9 points
    softmax_check("softmax([0, log 2, log 3]) is [1/6, 2/6, 3/6]", task_call("softmax", LOGS)),
    softmax_check("softmax of a batch: each row sums to 1", task_call("softmax", ROWS)),
    softmax_check("softmax is finite for logits of ±1e4",
                  (task_call("softmax", T([1e4, -1e4, 0.0])), task_call("softmax", T([[1e4, 1e4], [-1e4, -1e4]]))),
                  points=2),
    softmax_check("softmax of a row of -inf except one", task_call("softmax", T([[-INF, 2.0, -INF], [0.0, -INF, 0.0]]))),
    softmax_check("softmax along dim=0, and of a single element",
                  (task_call("softmax", T([[1.0, 2.0], [3.0, 4.0]]), dim=0), task_call("softmax", T([[5.0], [-3.0]])))),
    softmax_check("softmax matches torch.softmax on random logits of rank 1 to 4, along every dimension",
                  (task_call("softmax", randn(1, 7)), task_call("softmax", randn(2, 3, 5, scale=4.0), dim=0),
                   task_call("softmax", randn(3, 2, 3, 6), dim=1), task_call("softmax", randn(4, 2, 2, 3, 5), dim=-2)),
                  hidden=True),
    softmax_check("softmax of large random logits (std 1000) and a leading dimension of size 1",
                  (task_call("softmax", randn(5, 4, 9, scale=1000.0)), task_call("softmax", randn(6, 1, 1, 8, scale=30.0))),
                  hidden=True),
    softmax_check("softmax keeps float64, bfloat16 and float16",
                  (task_call("softmax", LOGS.double()), task_call("softmax", randn(7, 3, 8, scale=3.0, dtype=torch.bfloat16)),
                   task_call("softmax", randn(8, 2, 5, scale=3.0, dtype=torch.float16)))),
    # layer_norm: 8 points
    layer_norm_check("layer_norm of [1, 2, 3] is [-1.2247, 0, 1.2247]", task_call("layer_norm", T([1.0, 2.0, 3.0]), ONES3, ZEROS3)),
    layer_norm_check("layer_norm scales by weight and shifts by bias, feature by feature",
                     task_call("layer_norm", T([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]), WEIGHT3, BIAS3)),
    # Biased variance 1 (unbiased 2) and eps 1: (x - 2) / sqrt(1 + 1).
    layer_norm_check("layer_norm([1, 3], eps=1.0) divides by sqrt(biased variance + eps)",
                     task_call("layer_norm", T([1.0, 3.0]), torch.ones(2), torch.zeros(2), eps=1.0)),
    layer_norm_check("layer_norm of one feature gives the bias", task_call("layer_norm", T([[4.0], [-1.0]]), T([2.0]), T([0.5]))),
    layer_norm_check("layer_norm matches F.layer_norm on random inputs of rank 1 to 4",
                     tuple(random_norm("layer_norm", seed, shape) for seed, shape in
                           [(10, (12,)), (13, (4, 7)), (16, (2, 3, 16)), (19, (2, 1, 3, 5))]), points=2, hidden=True),
    layer_norm_check("layer_norm of inputs far from zero (mean 100) and of inputs so close that eps matters",
                     (random_norm("layer_norm", 22, (3, 64), shift=100.0), random_norm("layer_norm", 25, (2, 16), scale=1e-3)),
                     hidden=True),
    layer_norm_check("layer_norm keeps float64, bfloat16 and float16",
                     (task_call("layer_norm", T([1.0, 2.0, 3.0]).double(), ONES3.double(), ZEROS3.double()),
                      random_norm("layer_norm", 28, (3, 8), dtype=torch.bfloat16),
                      random_norm("layer_norm", 31, (2, 8), dtype=torch.float16))),
    # rms_norm: 7 points
    rms_norm_check("rms_norm of [3, 4] is [0.8485, 1.1314]", task_call("rms_norm", T([3.0, 4.0]), torch.ones(2))),
    rms_norm_check("rms_norm multiplies by the weight, feature by feature",
                   task_call("rms_norm", T([[3.0, 4.0], [1.0, -1.0]]), T([2.0, 0.5]))),
    # Mean square 1, eps 3: x / sqrt(1 + 3) = 0.5.
    rms_norm_check("rms_norm([1, 1], eps=3.0) divides by sqrt(mean square + eps)",
                   task_call("rms_norm", T([1.0, 1.0]), torch.ones(2), eps=3.0)),
    rms_norm_check("rms_norm of one feature, and of zeros", (task_call("rms_norm", T([[-2.0], [0.5]]), T([3.0])),
                                                          task_call("rms_norm", torch.zeros(2, 4), torch.ones(4)))),
    rms_norm_check("rms_norm matches F.rms_norm on random inputs of rank 1 to 4, and on small ones where eps matters",
                   (*(random_norm("rms_norm", seed, shape) for seed, shape in
                      [(40, (10,)), (42, (5, 6)), (44, (2, 3, 16)), (46, (1, 2, 1, 7))]),
                    random_norm("rms_norm", 48, (3, 8), scale=1e-3)), points=2, hidden=True),
    rms_norm_check("rms_norm keeps float64, bfloat16 and float16",
                   (task_call("rms_norm", T([3.0, 4.0]).double(), torch.ones(2, dtype=torch.float64)),
                    random_norm("rms_norm", 50, (3, 8), dtype=torch.bfloat16),
                    random_norm("rms_norm", 52, (2, 8), dtype=torch.float16))),
    # gelu: 6 points
    gelu_check("gelu(x) = x Φ(x) at 0, 1, -1 and 2", task_call("gelu", T([0.0, 1.0, -1.0, 2.0]))),
    gelu_check("gelu(x, approximate='tanh') is GPT-2's tanh form",
               task_call("gelu", T([0.0, 1.0, -1.0, 2.0, -2.5]), approximate="tanh")),
    gelu_check("gelu of large inputs: x far above 0, 0 far below",
               (task_call("gelu", T([-1e4, -50.0, 50.0, 1e4])), task_call("gelu", T([-1e4, -50.0, 50.0, 1e4]), approximate="tanh"))),
    gelu_check("gelu matches F.gelu on random inputs of rank 1 to 4, both forms",
               (task_call("gelu", randn(60, 9, scale=3.0)), task_call("gelu", randn(61, 2, 3, 4, 5, scale=3.0)),
                task_call("gelu", randn(62, 4, 6, scale=3.0), approximate="tanh"),
                task_call("gelu", randn(63, 1, 3, 5, scale=3.0), approximate="tanh")), points=2, hidden=True),
    gelu_check("gelu keeps float64, bfloat16 and float16",
               (task_call("gelu", T([0.0, 1.0, -1.0, 2.0]).double()), task_call("gelu", randn(64, 3, 8, scale=3.0, dtype=torch.bfloat16)),
                task_call("gelu", randn(65, 2, 8, scale=3.0, dtype=torch.float16), approximate="tanh"))),
]

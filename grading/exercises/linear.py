"""The checks of exercise 02_linear: the linear layer, forward and backward.

The learner writes, in exercises/02_linear/linear.ipynb:

    class Linear(nn.Module):
        __init__(self, in_features, out_features, bias=True)
            # weight (out_features, in_features) and bias (out_features,) as nn.Parameters, both
            # ~ Uniform(-1/sqrt(in_features), 1/sqrt(in_features)); no bias parameter if bias=False
        forward(self, x)            # x (..., in_features) -> x @ weight.T + bias, (..., out_features)
    linear_backward(x, weight, grad_output) -> (grad_x, grad_weight, grad_bias)
        # for y = x Wᵀ + b, by hand: grad_output @ W, grad_outputᵀ x and grad_output summed over
        # the leading dimensions

The references are torch's: torch.nn.Linear called exactly as the learner's layer is (its
parameters, outputs and autograd's gradients), autograd through F.linear for linear_backward,
and PyTorch's documented initialisation, Uniform(-k, k) with k = 1/sqrt(in_features). Visible
checks use the chapter's example (x = 0.5, 1, 0.5, 2 and its 1x4 and 2x4 weights); hidden ones
random inputs of every rank from fixed seeds.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grading import seeds
from grading.checks import Call, Check, Substitute, call, tensor_returns
from grading.compare import show_tensor, tensor_checks

NOTEBOOK = "linear.ipynb"
# Linear must not hand its work to torch's layer (or the op under F.linear); linear_backward must
# not ask autograd for the gradients it is meant to derive.
FORBIDDEN: dict[str, list[str]] = {
    "Linear": ["torch.nn.functional.linear", "torch._C._nn.linear", "torch.nn.Linear", "torch.nn.LazyLinear",
               "torch.nn.Bilinear"],
    "linear_backward": ["torch.Tensor.backward", "torch.autograd.backward", "torch.autograd.grad",
                        "torch.autograd.functional.vjp", "torch.autograd.functional.jacobian", "torch.func.grad",
                        "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd"],
}
TORCH_LINEAR = Substitute(nn.Linear)
GRADIENTS = {"kind": "tensors", "names": ["grad_x", "grad_weight", "grad_bias"], "floating": True}

# ---- inputs -----------------------------------------------------------------------------------

# The chapter's example: four inputs, one output (then two), worked by hand in section 2.2.
X = torch.tensor([0.5, 1.0, 0.5, 2.0])
W1, B1 = torch.tensor([[0.4, -0.2, 0.6, 0.1]]), torch.tensor([0.1])
W2, B2 = torch.tensor([[0.4, -0.2, 0.6, 0.1], [-0.2, 0.3, 0.4, -0.1]]), torch.tensor([0.1, 0.2])
BATCH = torch.tensor([[0.5, 1.0, 0.5, 2.0], [1.0, 0.0, -1.0, 0.5], [2.0, 2.0, 0.0, 0.0]])  # (3, 4), section 2.4


def randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seeds.seed(seed)))


def layer(method: str, in_features: int, out_features: int, weight: torch.Tensor, bias: torch.Tensor | None,
          x: torch.Tensor, grad_output: torch.Tensor | None = None) -> Call:
    """Linear(in, out) (bias=False when `bias` is None) with these parameters, then `method`:
    "forward" (the output for x) or "gradients" (x.grad, weight.grad, bias.grad by autograd)."""
    then = {"weight": weight, "bias": bias, "x": x}
    steps = "with weight = {weight}" + (", bias = {bias}" if bias is not None else "") + ", on x = {x}"
    if method == "gradients":
        then["grad_output"] = grad_output
        steps += ", then backward(grad_output = {grad_output}): x.grad, weight.grad, bias.grad"
    returns = tensor_returns(floating=True) if method == "forward" else {"kind": "plain"}
    kwargs = {} if bias is not None else {"bias": False}
    return Call("Linear", (in_features, out_features), kwargs, returns, f"exercises.linear_calls.{method}", then, steps)


def random_layer(method: str, seed: int, in_features: int, out_features: int, x_shape: tuple[int, ...],
                 bias: bool = True) -> Call:
    """`layer` with random parameters, x of shape x_shape (..., in_features) and, for gradients,
    grad_output of the output's shape, all from a fixed seed."""
    grad_output = randn(seed + 3, *x_shape[:-1], out_features) if method == "gradients" else None
    return layer(method, in_features, out_features, randn(seed, out_features, in_features),
                 randn(seed + 1, out_features) if bias else None, randn(seed + 2, *x_shape), grad_output)


def parameters(*args: Any, **kwargs: Any) -> Call:
    return Call("Linear", args, kwargs, adapter="exercises.linear_calls.parameters", steps="then its named_parameters()")


def init(in_features: int, out_features: int, seeds: list[int]) -> Call:
    return Call("Linear", (in_features, out_features), adapter="exercises.linear_calls.init_statistics",
                then={"seeds": seeds}, steps="built after torch.manual_seed(s) for s in {seeds}")


def backward(x: torch.Tensor, weight: torch.Tensor, grad_output: torch.Tensor) -> Call:
    return call("linear_backward", x, weight, grad_output, returns=GRADIENTS)


def random_backward(seed: int, in_features: int, out_features: int, x_shape: tuple[int, ...]) -> Call:
    return backward(randn(seed, *x_shape), randn(seed + 1, out_features, in_features),
                    randn(seed + 2, *x_shape[:-1], out_features))


# ---- references (grader's side) ---------------------------------------------------------------


def autograd_backward(x: torch.Tensor, weight: torch.Tensor, grad_output: torch.Tensor) -> tuple:
    """autograd's gradients through F.linear with a zero bias (the gradients do not depend on it)."""
    x, weight = x.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    bias = torch.zeros(weight.shape[0], requires_grad=True)
    F.linear(x, weight, bias).backward(grad_output)
    return x.grad, weight.grad, bias.grad


def uniform_statistics(in_features: int, out_features: int, seeds: list[int]) -> dict:
    """PyTorch's default initialisation of nn.Linear, weight and bias ~ Uniform(-k, k) with
    k = 1/sqrt(in_features): range, mean 0, std k/sqrt(3); two seeds give different weights."""
    bound = 1 / math.sqrt(in_features)

    def stats(count: int) -> dict:
        return {"count": count, "min": -bound, "max": bound, "mean": 0.0, "std": bound / math.sqrt(3)}

    return {"weight": stats(out_features * in_features), "bias": stats(out_features), "same_fraction": 0.0}


# How far a statistic of random draws may stray from its expected value, in standard errors. The
# learner may draw weight and bias in another order (or with kaiming_uniform_), so their numbers
# are other draws from the same distribution; 5 standard errors wrongly fails one correct layer in
# a million, while every wrong bound (1/in_features, 1/sqrt(out_features), randn) is off by many more.
_STANDARD_ERRORS = 5.0
# The std of a sample std of n uniform draws is about std * sqrt(0.2 / n) (the uniform
# distribution's kurtosis, 9/5: sqrt((9/5 - 1) / 4) = sqrt(0.2)).
_UNIFORM_STD_SPREAD = 0.2
# At most this fraction of weights may come out the same when built after two different seeds.
_SAME_FRACTION = 0.01


def _stats_match(expected: dict, actual: Any) -> bool:
    """True when the learner's statistics could come from the expected uniform distribution."""
    if type(actual) is not dict or actual.keys() != expected.keys() or actual["count"] != expected["count"]:
        return False
    if any(type(actual[key]) is not float for key in ("min", "max", "mean", "std")):
        return False
    bound, std, count = expected["max"], expected["std"], expected["count"]
    slack = 1e-6 * bound  # float32 rounding of a value drawn right at the bound
    return (actual["min"] >= -bound - slack and actual["max"] <= bound + slack
            and abs(actual["mean"]) <= _STANDARD_ERRORS * std / math.sqrt(count)
            and abs(actual["std"] - std) <= _STANDARD_ERRORS * std * math.sqrt(_UNIFORM_STD_SPREAD / count))


def init_matches(expected: dict, actual: Any) -> bool:
    """Weight and bias statistics as expected, and the two seeds giving different weights."""
    return (type(actual) is dict and actual.keys() == expected.keys()
            and _stats_match(expected["weight"], actual["weight"]) and _stats_match(expected["bias"], actual["bias"])
            and type(actual["same_fraction"]) is float and actual["same_fraction"] <= _SAME_FRACTION)


# ---- how visible messages show values --------------------------------------------------------


def show_parameters(value: dict) -> str:
    """'parameters bias (2,) float32 requires_grad=True, weight ...; layer.bias is a Parameter'"""
    rows = ", ".join(f"{name} {tuple(shape)} {dtype} requires_grad={grad}" for name, shape, dtype, grad in value["parameters"])
    bias = "None" if value["bias"] == "None" else f"a {value['bias']}"
    return f"parameters {rows or 'none'}; layer.bias is {bias}"


def show_init(value: dict) -> str:
    """The statistics the initialisation checks compare, one part per parameter."""
    parts = [f"{name}: {s['count']:,} values in [{s['min']:.4g}, {s['max']:.4g}], mean {s['mean']:.3g}, std {s['std']:.4g}"
             for name, s in ((name, value[name]) for name in ("weight", "bias"))]
    return "; ".join(parts + [f"{value['same_fraction']:.0%} of weights the same after two different seeds"])


def show_gradients(value: list) -> str:
    """'grad_x = tensor(...), grad_weight = tensor(...), grad_bias = tensor(...)'"""
    return ", ".join(f"{name} = {show_tensor(t)}" for name, t in zip(("grad_x", "grad_weight", "grad_bias"), value))


# ---- the checks -------------------------------------------------------------------------------


linear_check = tensor_checks("Linear", TORCH_LINEAR)
backward_check = tensor_checks("linear_backward", autograd_backward, show_gradients)


ONES = torch.ones(2, 3, 2)
CHECKS: list[Check] = [
    # Linear: 13 points
    Check("Linear", "Linear registers weight (out, in) and bias (out,) as trainable parameters",
          parameters(4, 2), reference=TORCH_LINEAR, show=show_parameters),
    Check("Linear", "Linear with bias=False has a weight and no bias", parameters(4, 2, bias=False),
          reference=TORCH_LINEAR, show=show_parameters),
    linear_check("Linear computes the chapter's example: one input, then a batch of three",
                 (layer("forward", 4, 1, W1, B1, X), layer("forward", 4, 2, W2, B2, X),
                  layer("forward", 4, 2, W2, B2, BATCH)), points=2),
    linear_check("Linear without bias computes x Wᵀ",
                 (layer("forward", 4, 2, W2, None, X), layer("forward", 4, 2, W2, None, BATCH))),
    # One layer is square, so that x @ W (instead of x @ W.T) runs and gives wrong numbers.
    linear_check("Linear matches torch.nn.Linear on inputs of rank 1, 2, 3 and 4",
                 tuple(random_layer("forward", *case) for case in
                       [(11, 5, 3, (5,)), (12, 7, 4, (6, 7)), (13, 6, 6, (2, 5, 6)), (14, 3, 5, (2, 3, 4, 3))]),
                 points=2, hidden=True),
    linear_check("Linear without bias matches torch.nn.Linear(bias=False) on a batch of sequences",
                 random_layer("forward", 15, 8, 6, (3, 4, 8), bias=False), hidden=True),
    linear_check("Linear with one input and one output", layer("forward", 1, 1, torch.tensor([[-2.0]]),
                                                              torch.tensor([0.5]), torch.tensor([[3.0], [0.0]]))),
    Check("Linear", "Linear initialises weight and bias from Uniform(-1/sqrt(in_features), 1/sqrt(in_features))",
          init(256, 128, [0, 1]), reference=uniform_statistics, compare=init_matches, show=show_init, points=2),
    Check("Linear", "Linear's initialisation depends on in_features, not out_features", init(3, 4000, [7, 8]),
          reference=uniform_statistics, compare=init_matches, hidden=True),
    linear_check("gradients through Linear match torch.nn.Linear's",
                 (random_layer("gradients", 16, 5, 4, (2, 3, 5)), random_layer("gradients", 17, 6, 3, (4, 6), bias=False)),
                 hidden=True),
    # linear_backward: 8 points
    backward_check("linear_backward on the chapter's example (one input, one output)",
                   backward(X, W1, torch.tensor([1.0]))),
    backward_check("linear_backward on a batch of three with two outputs",
                   backward(BATCH, W2, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))),
    # x of shape (2, 3, 4): the batch of three and twice the batch, grad_output all ones.
    backward_check("linear_backward sums grad_weight and grad_bias over every leading dimension",
                   backward(torch.stack([BATCH, 2 * BATCH]), W2, ONES)),
    backward_check("linear_backward matches autograd on inputs of rank 1 and 2",
                   (random_backward(21, 6, 4, (6,)), random_backward(22, 5, 7, (9, 5))), points=2, hidden=True),
    backward_check("linear_backward matches autograd on inputs of rank 3 and 4",
                   (random_backward(23, 4, 4, (3, 5, 4)), random_backward(24, 7, 3, (2, 3, 2, 7))), points=2, hidden=True),
    backward_check("linear_backward with one input, one output and a batch of one",
                   backward(torch.tensor([[3.0]]), torch.tensor([[-2.0]]), torch.tensor([[1.5]]))),
]

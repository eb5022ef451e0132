"""The checks of exercise 02_linear: the linear layer, forward and backward.

The learner writes, in exercises/02_linear/linear.ipynb (generated from solutions/02_linear/linear.ipynb):

    class Linear(nn.Module):
        __init__(self, in_features: int, out_features: int, bias: bool = True)
            # weight (out_features, in_features) and bias (out_features,) as nn.Parameters, both
            # ~ Uniform(-1/sqrt(in_features), 1/sqrt(in_features)); no bias parameter if bias=False
        forward(self, x)            # x (..., in_features) -> x @ weight.T + bias, (..., out_features)
    linear_backward(x, weight, grad_output) -> (grad_x, grad_weight, grad_bias)
        # for y = x Wᵀ + b: grad_output @ W, grad_outputᵀ x and grad_output summed over the
        # leading dimensions, by hand

Every reference is computed here, with torch: `torch.nn.Linear` (its parameters, its outputs,
and the gradients autograd computes through it), autograd through `torch.nn.functional.linear`
(for linear_backward) and PyTorch's documented initialisation (Uniform(-k, k) with
k = 1/sqrt(in_features)). The references of `Linear` run the learner's adapters on
`torch.nn.Linear` itself, so both sides are called exactly alike.
Visible checks use the chapter's example (the input 0.5, 1, 0.5, 2 and its 1x4 and 2x4
weights); hidden checks random inputs of every rank from fixed seeds.

FORBIDDEN: `Linear` must not hand its work to torch's own linear layer (F.linear, nn.Linear,
nn.LazyLinear, nn.Bilinear, or the op under F.linear), and `linear_backward` must not ask
autograd for the gradients it is meant to derive.

This module is the trusted side; the adapters (`call_*`) are in linear_calls.py, which runs in
the grader's sandbox.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.grading.checks import Check
from course_lib.grading.compare import show_tensor, show_tensors, tensor_plain, tensors_close
from course_lib.grading.exercises.linear_calls import (
    call_linear,
    call_linear_backward,
    call_linear_gradients,
    call_linear_init,
    call_linear_parameters,
)

FORBIDDEN: dict[str, list[str]] = {
    "Linear": [
        "torch.nn.functional.linear",
        "torch._C._nn.linear",  # what F.linear calls: the same computation under another name
        "torch.nn.Linear",
        "torch.nn.LazyLinear",
        "torch.nn.Bilinear",
    ],
    "linear_backward": [
        "torch.Tensor.backward",
        "torch.autograd.backward",
        "torch.autograd.grad",
        "torch.autograd.functional.vjp",
        "torch.autograd.functional.jacobian",
        "torch.func.grad",
        "torch.func.grad_and_value",
        "torch.func.vjp",
        "torch.func.jacrev",
        "torch.func.jacfwd",
    ],
}

# torch's own layer, called through the same adapters as the learner's Linear.
TORCH = {"Linear": nn.Linear}

# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

# The chapter's example: four inputs, one output (then two), worked by hand in section 2.2.
X = [0.5, 1.0, 0.5, 2.0]
W1, B1 = [[0.4, -0.2, 0.6, 0.1]], [0.1]
W2, B2 = [[0.4, -0.2, 0.6, 0.1], [-0.2, 0.3, 0.4, -0.1]], [0.1, 0.2]
BATCH = [[0.5, 1.0, 0.5, 2.0], [1.0, 0.0, -1.0, 0.5], [2.0, 2.0, 0.0, 0.0]]  # (3, 4), as in section 2.4


def case(in_features: int, out_features: int, weight: list, bias_values: list | None, x: Any) -> dict:
    """One layer and one input, as the adapters take them (bias_values None: a layer without bias)."""
    return {
        "in_features": in_features,
        "out_features": out_features,
        "bias": bias_values is not None,
        "weight": weight,
        "bias_values": bias_values,
        "x": x,
    }


def random_case(seed: int, in_features: int, out_features: int, x_shape: tuple[int, ...], bias: bool = True,
                gradient: bool = False) -> dict:
    """A layer with random parameters and a random x of shape x_shape (..., in_features), drawn
    from a fixed seed; with gradient=True also a random grad_output of the output's shape."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> list:
        return torch.randn(*shape, generator=generator).tolist()

    drawn = case(in_features, out_features, draw(out_features, in_features),
                 draw(out_features) if bias else None, draw(*x_shape))
    if gradient:
        drawn["grad_output"] = draw(*x_shape[:-1], out_features)
    return drawn


def backward_case(x: list, weight: list, grad_output: list) -> dict:
    return {"x": x, "weight": weight, "grad_output": grad_output}


def random_backward_case(seed: int, in_features: int, out_features: int, x_shape: tuple[int, ...]) -> dict:
    """x, weight and grad_output for linear_backward, drawn from a fixed seed."""
    drawn = random_case(seed, in_features, out_features, x_shape, bias=False, gradient=True)
    return backward_case(drawn["x"], drawn["weight"], drawn["grad_output"])


# ---------------------------------------------------------------------------------------------
# References (trusted side)
# ---------------------------------------------------------------------------------------------

reference_parameters = partial(call_linear_parameters, TORCH)
reference_linear = partial(call_linear, TORCH)
reference_gradients = partial(call_linear_gradients, TORCH)


def reference_linear_backward(cases: list) -> list[list[dict]]:
    """autograd's gradients through torch.nn.functional.linear (what torch.nn.Linear computes)
    with the case's weight and a zero bias (the gradients do not depend on the bias):
    [x.grad, weight.grad, bias.grad] per case."""
    results = []
    for given in cases:
        x = torch.tensor(given["x"], requires_grad=True)
        weight = torch.tensor(given["weight"], requires_grad=True)
        bias = torch.zeros(weight.shape[0], requires_grad=True)
        F.linear(x, weight, bias).backward(torch.tensor(given["grad_output"]))
        results.append([tensor_plain(x.grad), tensor_plain(weight.grad), tensor_plain(bias.grad)])
    return results


def _expected_stats(count: int, bound: float) -> dict:
    """What `count` draws from Uniform(-bound, bound) look like: range, mean 0, std bound/sqrt(3)."""
    return {"count": count, "min": -bound, "max": bound, "mean": 0.0, "std": bound / math.sqrt(3)}


def reference_init(in_features: int, out_features: int, seeds: list) -> dict:
    """PyTorch's default initialisation of nn.Linear: weight and bias ~ Uniform(-k, k) with
    k = 1/sqrt(in_features) (torch.nn.Linear's documentation); two seeds give different weights."""
    bound = 1 / math.sqrt(in_features)
    return {
        "weight": _expected_stats(out_features * in_features, bound),
        "bias": _expected_stats(out_features, bound),
        "same_fraction": 0.0,
    }


# How far a statistic of random draws may stray from its expected value, in standard errors.
# The seeds are fixed, but the learner may draw weight and bias in another order (or with
# kaiming_uniform_), so their numbers are other draws from the same distribution; 5 standard
# errors wrongly fails one correct layer in a million, while every wrong bound (1/in_features,
# 1/sqrt(out_features), randn) is off by many more.
_STANDARD_ERRORS = 5.0
# The standard deviation of a sample std of n uniform draws is about std * sqrt(0.2 / n)
# (from the uniform distribution's kurtosis, 9/5: sqrt((9/5 - 1) / 4) = sqrt(0.2)).
_UNIFORM_STD_SPREAD = 0.2
# At most this fraction of weights may come out the same when built after two different seeds.
_SAME_FRACTION = 0.01


def _stats_match(expected: dict, actual: Any) -> bool:
    """True when the learner's statistics could come from the expected uniform distribution."""
    if type(actual) is not dict or actual.keys() != expected.keys():
        return False
    if actual["count"] != expected["count"]:
        return False
    if any(type(actual[key]) is not float for key in ("min", "max", "mean", "std")):
        return False
    bound, std, count = expected["max"], expected["std"], expected["count"]
    slack = 1e-6 * bound  # float32 rounding of a value drawn right at the bound
    return (
        actual["min"] >= -bound - slack
        and actual["max"] <= bound + slack
        and abs(actual["mean"]) <= _STANDARD_ERRORS * std / math.sqrt(count)
        and abs(actual["std"] - std) <= _STANDARD_ERRORS * std * math.sqrt(_UNIFORM_STD_SPREAD / count)
    )


def init_matches(expected: dict, actual: Any) -> bool:
    """compare for the initialisation checks: weight and bias statistics as expected (see
    _stats_match) and the two seeds giving different weights."""
    return (
        type(actual) is dict
        and actual.keys() == expected.keys()
        and _stats_match(expected["weight"], actual["weight"])
        and _stats_match(expected["bias"], actual["bias"])
        and type(actual["same_fraction"]) is float
        and actual["same_fraction"] <= _SAME_FRACTION
    )


# ---------------------------------------------------------------------------------------------
# Showing values in visible checks' messages
# ---------------------------------------------------------------------------------------------


def show_parameters(value: dict) -> str:
    """{"parameters": [["bias", [2], "float32", True], ...], "bias": "Parameter"} ->
    'parameters bias (2,) float32 requires_grad=True, weight ...; layer.bias is a Parameter'"""
    rows = ", ".join(
        f"{name} {tuple(shape)} {dtype} requires_grad={grad}" for name, shape, dtype, grad in value["parameters"]
    )
    bias = "None" if value["bias"] == "None" else f"a {value['bias']}"
    return f"parameters {rows or 'none'}; layer.bias is {bias}"


def _show_stats(name: str, stats: dict) -> str:
    return (f"{name}: {stats['count']:,} values in [{stats['min']:.4g}, {stats['max']:.4g}], "
            f"mean {stats['mean']:.3g}, std {stats['std']:.4g}")


def show_init(value: dict) -> str:
    """The statistics the initialisation checks compare, one part per parameter."""
    parts = [_show_stats("weight", value["weight"]), _show_stats("bias", value["bias"])]
    parts.append(f"{value['same_fraction']:.0%} of weights the same after two different seeds")
    return "; ".join(parts)


def show_gradients(value: list) -> str:
    """[[grad_x, grad_weight, grad_bias], ...] -> 'grad_x = tensor(...), grad_weight = ...' per call."""
    names = ("grad_x", "grad_weight", "grad_bias")
    return "; ".join(
        ", ".join(f"{name} = {show_tensor(tensor)}" for name, tensor in zip(names, gradients)) for gradients in value
    )


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------

CHAPTER_CASES = [case(4, 1, W1, B1, X), case(4, 2, W2, B2, X), case(4, 2, W2, B2, BATCH)]
NO_BIAS_CASES = [case(4, 2, W2, None, X), case(4, 2, W2, None, BATCH)]
# x of rank 1, 2, 3 and 4. One layer is square, so that x @ W (instead of x @ W.T) runs and
# gives wrong numbers instead of failing on the shapes.
RANDOM_CASES = [
    partial(random_case, 11, 5, 3, (5,)),
    partial(random_case, 12, 7, 4, (6, 7)),
    partial(random_case, 13, 6, 6, (2, 5, 6)),
    partial(random_case, 14, 3, 5, (2, 3, 4, 3)),
]
# grad_output of the chapter's example: 1 for its only output, then per row of the batch.
CHAPTER_BACKWARD = [
    backward_case(X, W1, [1.0]),
    backward_case(BATCH, W2, [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
]
# Two copies of the batch, the second doubled: x of shape (2, 3, 4), grad_output all ones.
SEQUENCES = [BATCH, [[2 * value for value in row] for row in BATCH]]

CHECKS: list[Check] = [
    # ---- Linear: 12 points ----------------------------------------------------------------
    Check(
        name="Linear registers weight (out, in) and bias (out,) as trainable parameters",
        task="Linear",
        points=1,
        visibility="visible",
        call=call_linear_parameters,
        inputs={"in_features": 4, "out_features": 2, "bias": True},
        reference=reference_parameters,
        describe="Linear(4, 2).named_parameters()",
        show=show_parameters,
    ),
    Check(
        name="Linear with bias=False has a weight and no bias",
        task="Linear",
        points=1,
        visibility="visible",
        call=call_linear_parameters,
        inputs={"in_features": 4, "out_features": 2, "bias": False},
        reference=reference_parameters,
        describe="Linear(4, 2, bias=False).named_parameters()",
        show=show_parameters,
    ),
    Check(
        name="Linear computes the chapter's example: one input, then a batch of three",
        task="Linear",
        points=2,
        visibility="visible",
        call=call_linear,
        inputs={"cases": CHAPTER_CASES},
        reference=reference_linear,
        describe="Linear(4, 1) with weight [[0.4, -0.2, 0.6, 0.1]] and bias [0.1] on x = [0.5, 1, 0.5, 2]; "
        "Linear(4, 2) with weight [[0.4, -0.2, 0.6, 0.1], [-0.2, 0.3, 0.4, -0.1]] and bias [0.1, 0.2] "
        "on the same x, then on the batch [[0.5, 1, 0.5, 2], [1, 0, -1, 0.5], [2, 2, 0, 0]]",
        compare=tensors_close,
        show=show_tensors,
    ),
    Check(
        name="Linear without bias computes x Wᵀ",
        task="Linear",
        points=1,
        visibility="visible",
        call=call_linear,
        inputs={"cases": NO_BIAS_CASES},
        reference=reference_linear,
        describe="Linear(4, 2, bias=False) with weight [[0.4, -0.2, 0.6, 0.1], [-0.2, 0.3, 0.4, -0.1]] "
        "on x = [0.5, 1, 0.5, 2], then on the batch of three",
        compare=tensors_close,
        show=show_tensors,
    ),
    Check(
        name="Linear matches torch.nn.Linear on inputs of rank 1, 2, 3 and 4",
        task="Linear",
        points=2,
        visibility="hidden",
        call=call_linear,
        inputs={"cases": RANDOM_CASES},
        reference=reference_linear,
        describe="Linear(5, 3), Linear(7, 4), Linear(6, 6), Linear(3, 5) with random parameters on random x "
        "of shapes (5,), (6, 7), (2, 5, 6), (2, 3, 4, 3)",
        compare=tensors_close,
    ),
    Check(
        name="Linear without bias matches torch.nn.Linear(bias=False) on a batch of sequences",
        task="Linear",
        points=1,
        visibility="hidden",
        call=call_linear,
        inputs={"cases": [partial(random_case, 15, 8, 6, (3, 4, 8), bias=False)]},
        reference=reference_linear,
        describe="Linear(8, 6, bias=False) with a random weight on a random x of shape (3, 4, 8)",
        compare=tensors_close,
    ),
    Check(
        name="Linear initialises weight and bias from Uniform(-1/sqrt(in_features), 1/sqrt(in_features))",
        task="Linear",
        points=2,
        visibility="visible",
        call=call_linear_init,
        inputs={"in_features": 256, "out_features": 128, "seeds": [0, 1]},
        reference=reference_init,
        describe="Linear(256, 128) after torch.manual_seed(0), and again after torch.manual_seed(1)",
        compare=init_matches,
        show=show_init,
    ),
    Check(
        name="Linear's initialisation depends on in_features, not out_features",
        task="Linear",
        points=1,
        visibility="hidden",
        call=call_linear_init,
        inputs={"in_features": 3, "out_features": 4000, "seeds": [7, 8]},
        reference=reference_init,
        describe="Linear(3, 4000) after torch.manual_seed(7), and again after torch.manual_seed(8)",
        compare=init_matches,
    ),
    Check(
        name="gradients through Linear match torch.nn.Linear's",
        task="Linear",
        points=1,
        visibility="hidden",
        call=call_linear_gradients,
        inputs={"cases": [partial(random_case, 16, 5, 4, (2, 3, 5), gradient=True),
                          partial(random_case, 17, 6, 3, (4, 6), bias=False, gradient=True)]},
        reference=reference_gradients,
        describe="autograd through Linear(5, 4) on a random x of shape (2, 3, 5) and through "
        "Linear(6, 3, bias=False) on one of shape (4, 6): x.grad, weight.grad, bias.grad",
        compare=tensors_close,
    ),
    # ---- linear_backward: 7 points --------------------------------------------------------
    Check(
        name="linear_backward on the chapter's example (one input, one output)",
        task="linear_backward",
        points=1,
        visibility="visible",
        call=call_linear_backward,
        inputs={"cases": CHAPTER_BACKWARD[:1]},
        reference=reference_linear_backward,
        describe="linear_backward(x=[0.5, 1, 0.5, 2], weight=[[0.4, -0.2, 0.6, 0.1]], grad_output=[1.0])",
        compare=tensors_close,
        show=show_gradients,
    ),
    Check(
        name="linear_backward on a batch of three with two outputs",
        task="linear_backward",
        points=1,
        visibility="visible",
        call=call_linear_backward,
        inputs={"cases": CHAPTER_BACKWARD[1:]},
        reference=reference_linear_backward,
        describe="linear_backward(x=[[0.5, 1, 0.5, 2], [1, 0, -1, 0.5], [2, 2, 0, 0]], "
        "weight=[[0.4, -0.2, 0.6, 0.1], [-0.2, 0.3, 0.4, -0.1]], grad_output=[[1, 0], [0, 1], [1, 1]])",
        compare=tensors_close,
        show=show_gradients,
    ),
    Check(
        name="linear_backward sums grad_weight and grad_bias over every leading dimension",
        task="linear_backward",
        points=1,
        visibility="visible",
        call=call_linear_backward,
        inputs={"cases": [backward_case(SEQUENCES, W2, [[[1.0, 1.0]] * 3] * 2)]},
        reference=reference_linear_backward,
        describe="linear_backward(x of shape (2, 3, 4): the batch of three and twice the batch, "
        "weight=[[0.4, -0.2, 0.6, 0.1], [-0.2, 0.3, 0.4, -0.1]], grad_output=torch.ones(2, 3, 2))",
        compare=tensors_close,
        show=show_gradients,
    ),
    Check(
        name="linear_backward matches autograd on inputs of rank 1 and 2",
        task="linear_backward",
        points=2,
        visibility="hidden",
        call=call_linear_backward,
        inputs={"cases": [partial(random_backward_case, 21, 6, 4, (6,)),
                          partial(random_backward_case, 22, 5, 7, (9, 5))]},
        reference=reference_linear_backward,
        describe="linear_backward on random x of shapes (6,) and (9, 5), weights (4, 6) and (7, 5)",
        compare=tensors_close,
    ),
    Check(
        name="linear_backward matches autograd on inputs of rank 3 and 4",
        task="linear_backward",
        points=2,
        visibility="hidden",
        call=call_linear_backward,
        inputs={"cases": [partial(random_backward_case, 23, 4, 4, (3, 5, 4)),
                          partial(random_backward_case, 24, 7, 3, (2, 3, 2, 7))]},
        reference=reference_linear_backward,
        describe="linear_backward on random x of shapes (3, 5, 4) and (2, 3, 2, 7), weights (4, 4) and (3, 7)",
        compare=tensors_close,
    ),
]

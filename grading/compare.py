"""How the trusted side compares tensors that came back as plain data (exercises that use torch).

A tensor cannot cross the sandbox: it comes back as {"shape", "dtype", "values"} (what
learner_side.returns_tensor writes, on both sides: the expected value goes through the same
conversion). `tensors_close` compares: same shape, same dtype, and values within the tolerances
below, or exactly equal for booleans and integers; lists and dicts of tensors item by item:

    >>> expected = {"shape": [2], "dtype": "float32", "values": [1.0, 2.0]}
    >>> tensors_close(expected, {"shape": [2], "dtype": "float32", "values": [1.0, 2.000001]})
    True
    >>> tensors_close(expected, {"shape": [2], "dtype": "float64", "values": [1.0, 2.0]})
    False
    >>> show_tensors([expected, {"shape": [1], "dtype": "bool", "values": [True]}])
    'tensor([1., 2.]); tensor([True])'
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from grading.checks import Check, plain_equal

# Float tolerances: |actual - expected| <= ATOL + RTOL * |expected|, elementwise. float32 keeps
# about 7 significant digits; a learner's correct code that adds or multiplies in another order
# than torch (scaling q before the product, a softmax written out by hand) differs from torch by
# about 1e-6 relative, while every mistake these checks look for changes values by 1e-2 or more.
RTOL = 1e-4
ATOL = 1e-5


def _is_tensor(value: Any) -> bool:
    return type(value) is dict and set(value) == {"shape", "dtype", "values"}


def _values_close(expected: dict, actual: dict, rtol: float, atol: float) -> bool:
    if expected["dtype"] in ("bool", "int64", "int32"):
        return plain_equal(expected["values"], actual["values"])
    try:
        # float64, so that the comparison itself adds no rounding.
        want = torch.tensor(expected["values"], dtype=torch.float64)
        got = torch.tensor(actual["values"], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):  # ragged lists, or not numbers
        return False
    return got.shape == want.shape and bool(torch.allclose(got, want, rtol=rtol, atol=atol))


def tensors_close(expected: Any, actual: Any, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """True when `actual` (from the learner's side) matches `expected` (a plain tensor, or lists
    and dicts of them): tensors by shape, dtype and values within
    tolerance; anything else exactly (plain_equal). Never raises: `actual` may be any plain data."""
    if _is_tensor(expected):
        return (
            _is_tensor(actual)
            and plain_equal(expected["shape"], actual["shape"])
            and expected["dtype"] == actual["dtype"]
            and _values_close(expected, actual, rtol, atol)
        )
    if type(expected) is list:
        return (
            type(actual) is list
            and len(actual) == len(expected)
            and all(tensors_close(want, got, rtol, atol) for want, got in zip(expected, actual))
        )
    if type(expected) is dict:
        return (
            type(actual) is dict
            and actual.keys() == expected.keys()
            and all(tensors_close(expected[key], actual[key], rtol, atol) for key in expected)
        )
    return plain_equal(expected, actual)


def show_tensor(value: dict) -> str:
    """A plain tensor as torch prints it, on one line, 4 decimals: "tensor([[0.8808, 0.1192]])";
    torch adds the dtype when it is not the default (", dtype=torch.float64")."""
    text = str(torch.tensor(value["values"], dtype=getattr(torch, value["dtype"], None)))
    return " ".join(text.split())


def show_tensors(value: Any) -> str:
    """A plain tensor, or a list of them, for a visible check's message ("; " between tensors)."""
    if type(value) is list:
        return "; ".join(show_tensors(item) for item in value)
    if _is_tensor(value):
        return show_tensor(value)
    return repr(value)


def tensor_checks(task: str, reference: Any, show: Callable[[Any], str] = show_tensors) -> Callable[..., Check]:
    """A maker of `task`'s checks whose calls return tensors, compared with `reference` within the
    tolerances above: attention = tensor_checks("causal_mask", torch_causal_mask); then
    attention("causal_mask(3) is lower-triangular", call("causal_mask", 3, returns="tensor"))."""
    return partial(Check, task, reference=reference, compare=tensors_close, show=show)

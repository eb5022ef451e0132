"""What 04_optimizer's checks do beyond a plain call (the learner's side: the standard library
and torch only, copied into the sandbox next to learner_side.py).

`chain` runs the learner's adamw_step for several steps in a row, each step taking the m and v
the previous one returned, the way an optimizer keeps them between steps:

    >>> import torch
    >>> def sgd_step(param, grad, m, v, step, lr, **settings):  # not AdamW: just a stand-in
    ...     return param - lr * grad, m, v
    >>> chain(sgd_step, [torch.tensor([1.0])], {"lr": 0.5}, grads=[torch.tensor([1.0])] * 3)[0]
    tensor([-0.5000])

`inputs_after` calls a function and hands back what it was given, as it is after the call (a
function that changed its inputs in place shows it there); `clipped` and `a_number` turn what
clip_grad_norm and lr_at return into plain data, or say what is wrong with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..learner_side import CheckFailure, quote, returns_tensor


def _triple(result: Any, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """adamw_step's (param, m, v), or a CheckFailure that says what came back instead."""
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise CheckFailure(f"adamw_step should return three tensors (param, m, v), got {type(result).__name__} "
                           f"{quote(result, 80)} at step {step}")
    for name, value in zip(("param", "m", "v"), result):
        if not isinstance(value, torch.Tensor):
            raise CheckFailure(f"adamw_step's {name} should be a torch.Tensor, got {type(value).__name__} "
                               f"{quote(value, 80)} at step {step}")
    return result[0], result[1], result[2]


def chain(adamw_step: Callable, args: list, kwargs: dict, grads: list) -> tuple:
    """Steps 1, 2, ..., len(grads) of adamw_step from `param` = args[0], with m and v zero at the
    start and then what each step returned: (param, m, v) after the last step."""
    (param,) = args
    m, v = torch.zeros_like(param), torch.zeros_like(param)
    for step, grad in enumerate(grads, start=1):
        param, m, v = _triple(adamw_step(param, grad, m, v, step, **kwargs), step)
    return param, m, v


def inputs_after(function: Callable, args: list, kwargs: dict) -> list:
    """function(*args, **kwargs), then the tensors it was given (those in a list argument too),
    as they are after the call."""
    function(*args, **kwargs)
    given = [item for arg in args for item in (arg if isinstance(arg, list) else [arg])]
    return [item for item in given if isinstance(item, torch.Tensor)]


def clipped(value: Any, function: str, count: int) -> dict:
    """clip_grad_norm's (clipped, total_norm) as {"clipped": [plain tensors], "norm": float}:
    `count` floating-point tensors, and the norm as a Python number or a one-number tensor."""
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not isinstance(value[0], (list, tuple)):
        raise CheckFailure(f"{function} should return a pair (clipped, total_norm), a list of tensors and a number, "
                           f"got {type(value).__name__} {quote(value, 80)}")
    tensors, norm = value
    if len(tensors) != count:
        raise CheckFailure(f"{function}'s clipped should be a list of {count} tensors, one per gradient, got "
                           f"{type(tensors).__name__} {quote(tensors, 80)}")
    if isinstance(norm, torch.Tensor) and norm.numel() == 1:
        norm = norm.item()
    if isinstance(norm, bool) or not isinstance(norm, (int, float)) or not math.isfinite(norm):
        raise CheckFailure(f"{function}'s total_norm should be a number (a float or a 0-dim tensor), got "
                           f"{quote(norm, 80)}")
    plain = [returns_tensor(tensor, function, floating=True, what=f"clipped[{i}]") for i, tensor in enumerate(tensors)]
    return {"clipped": plain, "norm": float(norm)}


def a_number(value: Any, function: str) -> float:
    """A Python number, as float: a_number(0.5, "lr_at") -> 0.5; a tensor is refused with a hint."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckFailure(f"{function} should return a Python float (use math.cos, not torch.cos), got "
                           f"{type(value).__name__} {quote(value, 80)}")
    if not math.isfinite(value):
        raise CheckFailure(f"{function} returned {value!r}: is there a division by zero?")
    return float(value)

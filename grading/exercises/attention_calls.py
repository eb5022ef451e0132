"""What 03_attention's checks do with the learner's `MultiHeadSelfAttention` beyond a plain call
(the learner's side: the standard library and torch only, copied into the sandbox next to
learner_side.py).

The module is built with the check's (d_model, n_heads) and its four projections are loaded with
the check's weights before it runs, so that the grader can give torch.nn.MultiheadAttention the
very same weights:

    >>> import torch
    >>> class Shapes(torch.nn.Module):
    ...     def __init__(self, d_model, n_heads):
    ...         super().__init__()
    ...         for name in PROJECTIONS:
    ...             setattr(self, name, torch.nn.Linear(d_model, d_model))
    >>> projection_shapes(Shapes, [8, 2], {})["q_proj"]
    {'weight': [8, 8], 'bias': [8]}
"""

from __future__ import annotations

from typing import Any

import torch

from ..learner_side import CheckFailure

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def build(attention_class: type, args: list, kwargs: dict) -> Any:
    """attention_class(*args, **kwargs). Its layers draw their initial weights from torch's global
    generator; fork_rng puts it back, so a check cell leaves the learner's random numbers as they were."""
    with torch.random.fork_rng(devices=[]):
        return attention_class(*args, **kwargs)


def projection_shapes(attention_class: type, args: list, kwargs: dict) -> dict:
    """The shapes of the four projections' weight and bias ({"q_proj": {"weight": [8, 8], "bias":
    [8]}, ...}; a missing tensor is None)."""
    module = build(attention_class, args, kwargs)
    shapes = {}
    for name in PROJECTIONS:
        layer = getattr(module, name, None)
        if layer is None:
            raise CheckFailure(f"MultiHeadSelfAttention has no attribute `{name}`: create it in __init__")
        shapes[name] = {part: list(tensor.shape) if isinstance(tensor, torch.Tensor) else None
                        for part, tensor in (("weight", getattr(layer, "weight", None)), ("bias", getattr(layer, "bias", None)))}
    return shapes


def _load(module: Any, name: str, part: str, value: torch.Tensor) -> None:
    """Copy `value` into module.<name>.<part>, or say why the projection cannot take it."""
    tensor = getattr(getattr(module, name, None), part, None)
    if not isinstance(tensor, torch.Tensor):
        raise CheckFailure(f"{type(module).__name__} has no tensor {name}.{part}: make {name} an nn.Linear(d_model, d_model) with bias")
    if tensor.shape != value.shape:
        raise CheckFailure(f"{name}.{part} has shape {tuple(tensor.shape)}, expected {tuple(value.shape)}: "
                           f"{name} should be nn.Linear(d_model, d_model)")
    tensor.copy_(value)


def forward(attention_class: type, args: list, kwargs: dict, weights: dict, x: torch.Tensor | list) -> Any:
    """The module with `weights` ({name: {"weight", "bias"}} per projection) loaded, applied to x
    (or to each x of a list: the same module on several inputs)."""
    module = build(attention_class, args, kwargs)
    with torch.no_grad():
        for name in PROJECTIONS:
            for part in ("weight", "bias"):
                _load(module, name, part, weights[name][part])
        return [module(each) for each in x] if isinstance(x, list) else module(x)

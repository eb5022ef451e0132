"""How the checks of exercise 03_attention call the learner's code (the learner's side).

The standard library and torch only: the batch grader copies this file into its sandbox, next to
learner_side.py, where course_lib cannot be imported. Inputs arrive as plain data (nested lists
of floats, booleans for masks) and become float32 tensors here; each result leaves as a plain
tensor {"shape", "dtype", "values"}, the form course_lib/grading/compare.py compares:

    >>> namespace = {"causal_mask": lambda T: torch.ones(T, T, dtype=torch.bool).tril()}
    >>> call_causal_mask(namespace, sizes=[2])
    [{'shape': [2, 2], 'dtype': 'bool', 'values': [[True, False], [True, True]]}]

The learner's MultiHeadSelfAttention is built with the check's (d_model, n_heads) and its four
projections are loaded with the check's weights before it runs, so that the grader can give
torch.nn.MultiheadAttention the very same weights.
"""

from __future__ import annotations

from typing import Any

import torch

from ..learner_side import CheckFailure, learner_function, tensor_data

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


# Why attention's result can hold NaN or infinity.
NOT_FINITE = (
    "does an exponential overflow (torch.softmax subtracts each row's maximum first), or does a row "
    "of the mask allow nothing?"
)


def _float32(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _parameter(module: Any, name: str, part: str, shape: list[int], describe: str) -> torch.Tensor:
    """`module.<name>.<part>` (a projection's weight or bias), checked to have `shape`."""
    layer = getattr(module, name, None)
    if layer is None:
        raise CheckFailure(f"{describe} has no attribute `{name}`: create it in __init__ as nn.Linear(d_model, d_model)")
    tensor = getattr(layer, part, None)
    if not isinstance(tensor, torch.Tensor):
        raise CheckFailure(f"{describe}.{name}.{part} is not a tensor: make {name} an nn.Linear(d_model, d_model) with bias")
    if list(tensor.shape) != shape:
        raise CheckFailure(
            f"{describe}.{name}.{part} has shape {tuple(tensor.shape)}, expected {tuple(shape)}: "
            f"{name} should be nn.Linear(d_model, d_model)"
        )
    return tensor


# ---- the adapters: (namespace, **inputs) -> plain data ------------------------------------------


def call_attention(namespace: dict, cases: list) -> list[dict]:
    """scaled_dot_product_attention(q, k, v) for each case {"q", "k", "v", "mask"}; a mask of
    None is left out of the call, others are passed as `mask=` (a boolean tensor)."""
    attention = learner_function(namespace, "scaled_dot_product_attention")
    outputs = []
    for case in cases:
        q, k, v = _float32(case["q"]), _float32(case["k"]), _float32(case["v"])
        if case["mask"] is None:
            out = attention(q, k, v)
        else:
            out = attention(q, k, v, mask=torch.tensor(case["mask"], dtype=torch.bool))
        outputs.append(tensor_data(out, "the result of scaled_dot_product_attention", if_not_finite=NOT_FINITE))
    return outputs


def call_causal_mask(namespace: dict, sizes: list) -> list[dict]:
    """causal_mask(T) for each T in `sizes`."""
    causal_mask = learner_function(namespace, "causal_mask")
    return [tensor_data(causal_mask(T), "the result of causal_mask") for T in sizes]


def call_projections(namespace: dict, d_model: int, n_heads: int) -> dict:
    """The shapes of the four projections of MultiHeadSelfAttention(d_model, n_heads):
    {"q_proj": {"weight": [d_model, d_model], "bias": [d_model]}, ...}; a missing bias is None."""
    module = learner_function(namespace, "MultiHeadSelfAttention")(d_model, n_heads)
    shapes = {}
    for name in PROJECTIONS:
        layer = getattr(module, name, None)
        if layer is None:
            raise CheckFailure(f"MultiHeadSelfAttention has no attribute `{name}`: create it in __init__")
        weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
        shapes[name] = {
            "weight": list(weight.shape) if isinstance(weight, torch.Tensor) else None,
            "bias": list(bias.shape) if isinstance(bias, torch.Tensor) else None,
        }
    return shapes


def call_self_attention(namespace: dict, cases: list) -> list[dict]:
    """For each case {"d_model", "n_heads", "weights", "x"}: build MultiHeadSelfAttention(d_model,
    n_heads), load weights[name] = {"weight", "bias"} into each projection, return module(x)."""
    attention_class = learner_function(namespace, "MultiHeadSelfAttention")
    outputs = []
    for case in cases:
        d_model, n_heads = case["d_model"], case["n_heads"]
        describe = f"MultiHeadSelfAttention({d_model}, {n_heads})"
        module = attention_class(d_model, n_heads)
        with torch.no_grad():
            for name in PROJECTIONS:
                for part, shape in (("weight", [d_model, d_model]), ("bias", [d_model])):
                    _parameter(module, name, part, shape, describe).copy_(_float32(case["weights"][name][part]))
            out = module(_float32(case["x"]))
        outputs.append(tensor_data(out, f"the result of {describe}.forward", if_not_finite=NOT_FINITE))
    return outputs


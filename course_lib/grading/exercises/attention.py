"""The checks of exercise 03_attention: scaled_dot_product_attention, causal_mask, MultiHeadSelfAttention.

The learner writes, in exercises/03_attention/attention.ipynb (generated from
solutions/03_attention/attention.ipynb):

    scaled_dot_product_attention(q, k, v, mask=None) -> Tensor   # q (..., T_q, d_k), k (..., T_k, d_k),
                                                                 # v (..., T_k, d_v) -> (..., T_q, d_v)
    causal_mask(T) -> BoolTensor of shape (T, T)                 # True = may attend (j <= i)
    class MultiHeadSelfAttention(nn.Module)                      # __init__(d_model, n_heads): q_proj,
                                                                 # k_proj, v_proj, out_proj; causal forward(x)

without torch's own attention (FORBIDDEN below). The references are torch's:
F.scaled_dot_product_attention, nn.Transformer.generate_square_subsequent_mask, and
nn.MultiheadAttention(batch_first=True) given the same weights as the learner's module (the
adapter loads them into it, see attention_calls.py). Visible checks use small hand-made inputs,
the notebook's worked examples; hidden ones random inputs from fixed seeds. Tensors cross the
sandbox as plain data and are compared with the tolerances of course_lib/grading/compare.py.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.grading.checks import Check, expect
from course_lib.grading.compare import ATOL, show_tensors, tensor_plain, tensors_close
from course_lib.grading.exercises.attention_calls import (
    PROJECTIONS,
    call_attention,
    call_causal_mask,
    call_projections,
    call_self_attention,
)

# torch's attention, which would do the learner's work: no task may call it.
_TORCH_ATTENTION = [
    "torch.nn.functional.scaled_dot_product_attention",
    "torch.nn.MultiheadAttention",
    "torch.nn.functional.multi_head_attention_forward",
]
FORBIDDEN: dict[str, list[str]] = {
    task: _TORCH_ATTENTION for task in ("scaled_dot_product_attention", "causal_mask", "MultiHeadSelfAttention")
}

# ---------------------------------------------------------------------------------------------
# Inputs: hand-made (visible) or drawn from a fixed seed (hidden), always plain data
# ---------------------------------------------------------------------------------------------


def random_values(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> list:
    """Normal random numbers of `shape` times `scale`, the same for the same seed, as nested lists."""
    generator = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=generator)).tolist()


def random_mask(seed: int, shape: tuple[int, ...]) -> list:
    """A random boolean mask of `shape` (about half True) with at least one True in every row,
    so that every query has a key to attend to."""
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(shape, generator=generator)
    return ((draws < 0.5) | (draws == draws.max(dim=-1, keepdim=True).values)).tolist()


def random_case(seed: int, q: tuple, k: tuple, v: tuple, scale: float = 1.0, mask: tuple | None = None) -> dict:
    """An input of call_attention: q, k, v (and a mask) of the given shapes from `seed`."""
    return {
        "q": random_values(seed, q, scale),
        "k": random_values(seed + 1, k, scale),
        "v": random_values(seed + 2, v),
        "mask": None if mask is None else random_mask(seed + 3, mask),
    }


def random_weights(seed: int, d_model: int) -> dict:
    """Weights and biases for the four projections, uniform in ±1/sqrt(d_model) as nn.Linear
    initialises them (biases too, so that a forgotten bias shows)."""
    generator = torch.Generator().manual_seed(seed)
    bound = d_model**-0.5

    def uniform(*shape: int) -> list:
        return ((2 * torch.rand(shape, generator=generator) - 1) * bound).tolist()

    return {name: {"weight": uniform(d_model, d_model), "bias": uniform(d_model)} for name in PROJECTIONS}


def random_module_case(seed: int, d_model: int, n_heads: int, B: int, T: int) -> dict:
    """An input of call_self_attention: random weights and a random x of shape (B, T, d_model)."""
    return {
        "d_model": d_model,
        "n_heads": n_heads,
        "weights": random_weights(seed, d_model),
        "x": random_values(seed + 1, (B, T, d_model)),
    }


def perturbed_pair(seed: int, d_model: int, n_heads: int, B: int, T: int, position: int) -> list[dict]:
    """Two inputs with the same weights: x, and x with the vectors at `position` replaced."""
    case = random_module_case(seed, d_model, n_heads, B, T)
    x = torch.tensor(case["x"])
    x[:, position] = torch.randn((B, d_model), generator=torch.Generator().manual_seed(seed + 2))
    return [case, case | {"x": x.tolist()}]


def identity(n: int, scale: float = 1.0) -> list:
    """`scale` times the n x n identity matrix, as nested lists."""
    return (scale * torch.eye(n)).tolist()


# The notebook's worked example of MultiHeadSelfAttention(4, 2): q, k and v projections are the
# identity without bias, so head 0 attends with channels 0-1 and head 1 with channels 2-3 of x
# itself; out_proj doubles and adds 1, so its output is 2 * (the heads side by side) + 1.
HAND_MADE_MODULE = {
    "d_model": 4,
    "n_heads": 2,
    "weights": {
        "q_proj": {"weight": identity(4), "bias": [0.0] * 4},
        "k_proj": {"weight": identity(4), "bias": [0.0] * 4},
        "v_proj": {"weight": identity(4), "bias": [0.0] * 4},
        "out_proj": {"weight": identity(4, 2.0), "bias": [1.0] * 4},
    },
    "x": [[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 2.0]]],
}

# ---------------------------------------------------------------------------------------------
# References (trusted side): torch's own attention on the same plain inputs
# ---------------------------------------------------------------------------------------------


def reference_attention(cases: list) -> list[dict]:
    """F.scaled_dot_product_attention (whose boolean attn_mask also means True = may attend)."""
    outputs = []
    for case in cases:
        q, k, v = (torch.tensor(case[name], dtype=torch.float32) for name in "qkv")
        mask = None if case["mask"] is None else torch.tensor(case["mask"], dtype=torch.bool)
        outputs.append(tensor_plain(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)))
    return outputs


def reference_causal_mask(sizes: list) -> list[dict]:
    """torch's own causal mask, an additive float mask (-inf above the diagonal, 0 elsewhere),
    turned into booleans: True where the score is kept."""
    return [tensor_plain(nn.Transformer.generate_square_subsequent_mask(T) == 0) for T in sizes]


def reference_self_attention(cases: list) -> list[dict]:
    """nn.MultiheadAttention(batch_first=True) with the learner's projections packed into it
    (in_proj_weight is q, k and v's weights stacked) and torch's causal mask."""
    outputs = []
    for case in cases:
        d_model, weights = case["d_model"], case["weights"]
        attention = nn.MultiheadAttention(d_model, case["n_heads"], bias=True, batch_first=True)
        with torch.no_grad():
            attention.in_proj_weight.copy_(torch.tensor([row for n in PROJECTIONS[:3] for row in weights[n]["weight"]]))
            attention.in_proj_bias.copy_(torch.tensor([b for n in PROJECTIONS[:3] for b in weights[n]["bias"]]))
            attention.out_proj.weight.copy_(torch.tensor(weights["out_proj"]["weight"]))
            attention.out_proj.bias.copy_(torch.tensor(weights["out_proj"]["bias"]))
            x = torch.tensor(case["x"])
            mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])  # (T, T), -inf = hidden
            out, _ = attention(x, x, x, attn_mask=mask, need_weights=False)  # (B, T, d_model)
        outputs.append(tensor_plain(out))
    return outputs


# ---------------------------------------------------------------------------------------------
# The future-positions check compares how each position's output moved, not the outputs
# ---------------------------------------------------------------------------------------------


def output_changes(outputs: list) -> list[float]:
    """For two outputs [y, y'] of shape (B, T, C): per position t, the largest |y - y'| over the
    batch and the channels. Outputs that are not two (B, T, C) tensors of one shape raise."""
    first, second = (torch.tensor(output["values"], dtype=torch.float64) for output in outputs)
    if first.ndim != 3 or first.shape != second.shape:
        raise ValueError("not two outputs of the same shape (B, T, C)")
    return (first - second).abs().amax(dim=(0, 2)).tolist()  # (T,)


def only_later_positions_change(expected: list, actual: Any) -> bool:
    """True when the learner's outputs moved exactly where the reference's did: not at all before
    the changed position (up to ATOL), and visibly (more than 100 * ATOL) from it on, since every
    later position attends to it. (The values themselves are other checks' business.)"""
    try:
        reference, changes = output_changes(expected), output_changes(actual)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError):  # anything but two tensors
        return False
    if len(changes) != len(reference):
        return False
    return all((change > 100 * ATOL) == (want > 100 * ATOL) for change, want in zip(changes, reference))


def show_changes(outputs: list) -> str:
    """'output at positions 0..T-1 moved by: 0, 0, 0, 0.3117, 0.2025, 0.1388'"""
    changes = output_changes(outputs)
    return f"output at positions 0..{len(changes) - 1} moved by: " + ", ".join(f"{c:.4g}" for c in changes)


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------

# The notebook's worked examples (d_k = 1 in the first, so the scale does not matter there).
ONE_D = {"q": [[1.0], [2.0]], "k": [[1.0], [0.0], [-1.0]], "v": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]}
SCALED = {"q": [[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], "k": [[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
          "v": [[1.0, 0.0], [0.0, 1.0]]}
MASK = [[True, False, True], [True, True, False]]
LARGE = {"q": [[100.0, 100.0]], "k": [[100.0, 100.0], [99.0, 99.0], [0.0, 0.0]],
         "v": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}

_tensor_check = partial(Check, compare=tensors_close, show=show_tensors)
_sdpa = partial(_tensor_check, task="scaled_dot_product_attention", call=call_attention, reference=reference_attention)
_mask = partial(_tensor_check, task="causal_mask", call=call_causal_mask, reference=reference_causal_mask)
_module = partial(_tensor_check, task="MultiHeadSelfAttention", call=call_self_attention,
                  reference=reference_self_attention)

CHECKS: list[Check] = [
    # ---- scaled_dot_product_attention: 8 points -------------------------------------------
    _sdpa(
        name="attention weighs the values by a softmax over the keys",
        points=1,
        visibility="visible",
        inputs={"cases": [ONE_D | {"mask": None}]},
        describe="scaled_dot_product_attention(q, k, v) with q = [[1.], [2.]], k = [[1.], [0.], [-1.]], "
        "v = [[1., 0.], [0., 1.], [1., 1.]] (d_k = 1)",
    ),
    _sdpa(
        name="attention divides the scores by sqrt(d_k)",
        points=1,
        visibility="visible",
        inputs={"cases": [SCALED | {"mask": None}]},
        describe="scaled_dot_product_attention(q, k, v) with q = k = [[2., 0., 0., 0.], [0., 0., 0., 0.]], "
        "v = [[1., 0.], [0., 1.]] (d_k = 4)",
    ),
    _sdpa(
        name="attention gives masked keys no weight",
        points=1,
        visibility="visible",
        inputs={"cases": [ONE_D | {"mask": MASK}]},
        describe="scaled_dot_product_attention(q, k, v, mask) with the first example's q, k, v and "
        "mask = [[True, False, True], [True, True, False]]",
    ),
    _sdpa(
        name="attention is stable when the scores are large",
        points=1,
        visibility="visible",
        inputs={"cases": [LARGE | {"mask": None}]},
        describe="scaled_dot_product_attention(q, k, v) with q = [[100., 100.]], "
        "k = [[100., 100.], [99., 99.], [0., 0.]], v = [[1., 2.], [3., 4.], [5., 6.]] (scores up to 14,142)",
    ),
    _sdpa(
        name="attention with T_q != T_k and d_v != d_k",
        points=1,
        visibility="hidden",
        inputs={"cases": [partial(random_case, 10, (3, 8), (5, 8), (5, 6)),
                          partial(random_case, 20, (7, 16), (2, 16), (2, 3))]},
        describe="scaled_dot_product_attention(q, k, v) with random q (3, 8), k (5, 8), v (5, 6) "
        "and q (7, 16), k (2, 16), v (2, 3)",
    ),
    _sdpa(
        name="attention over leading batch dimensions",
        points=1,
        visibility="hidden",
        inputs={"cases": [partial(random_case, 30, (5, 8), (7, 8), (7, 4)),
                          partial(random_case, 40, (3, 5, 8), (3, 7, 8), (3, 7, 4)),
                          partial(random_case, 50, (2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4))]},
        describe="scaled_dot_product_attention(q, k, v) with random q, k, v of no, one and two "
        "leading dimensions: q (5, 8), (3, 5, 8), (2, 3, 5, 8)",
    ),
    _sdpa(
        name="attention with random masks that broadcast",
        points=1,
        visibility="hidden",
        inputs={"cases": [partial(random_case, 60, (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), mask=shape)
                          for shape in [(4, 6), (2, 1, 1, 6), (1, 3, 4, 6), (2, 3, 4, 6)]]},
        describe="scaled_dot_product_attention(q, k, v, mask) with random q (2, 3, 4, 8), k and v "
        "(2, 3, 6, ...) and random masks of shapes (4, 6), (2, 1, 1, 6), (1, 3, 4, 6), (2, 3, 4, 6)",
    ),
    _sdpa(
        name="attention is stable with large random scores",
        points=1,
        visibility="hidden",
        inputs={"cases": [partial(random_case, 70, (2, 6, 16), (2, 6, 16), (2, 6, 8), scale=60.0),
                          partial(random_case, 80, (2, 6, 16), (2, 6, 16), (2, 6, 8), scale=60.0,
                                  mask=(6, 6))]},
        describe="scaled_dot_product_attention(q, k, v) with random q and k of entries about 60 "
        "(scores in the thousands), without and with a mask",
    ),
    # ---- causal_mask: 3 points --------------------------------------------------------------
    _mask(
        name="causal_mask(3) is a lower-triangular bool tensor",
        points=1,
        visibility="visible",
        inputs={"sizes": [3]},
        describe="causal_mask(3)",
    ),
    _mask(
        name="causal_mask of one and two positions",
        points=1,
        visibility="visible",
        inputs={"sizes": [1, 2]},
        describe="causal_mask(1), causal_mask(2)",
    ),
    _mask(
        name="causal_mask of longer sequences",
        points=1,
        visibility="hidden",
        inputs={"sizes": [5, 16]},
        describe="causal_mask(5), causal_mask(16)",
    ),
    # ---- MultiHeadSelfAttention: 8 points -----------------------------------------------------
    Check(
        name="MultiHeadSelfAttention has four d_model x d_model projections with bias",
        task="MultiHeadSelfAttention",
        points=1,
        visibility="visible",
        call=call_projections,
        inputs={"d_model": 8, "n_heads": 2},
        reference=expect({name: {"weight": [8, 8], "bias": [8]} for name in PROJECTIONS}),
        describe="MultiHeadSelfAttention(8, 2), then the shapes of q_proj, k_proj, v_proj and out_proj's "
        "weight and bias",
    ),
    _module(
        name="MultiHeadSelfAttention on the hand-made example",
        points=2,
        visibility="visible",
        inputs={"cases": [HAND_MADE_MODULE]},
        describe="MultiHeadSelfAttention(4, 2) with q_proj, k_proj, v_proj = identity (bias 0), "
        "out_proj = 2 * identity (bias 1), on x = [[[1., 0., 1., 0.], [0., 1., 0., 1.], [1., 1., 0., 2.]]]",
    ),
    Check(
        name="MultiHeadSelfAttention takes no information from later positions",
        task="MultiHeadSelfAttention",
        points=2,
        visibility="visible",
        call=call_self_attention,
        inputs={"cases": partial(perturbed_pair, 90, 8, 2, 2, 6, 3)},
        reference=reference_self_attention,
        describe="MultiHeadSelfAttention(8, 2) with random weights on a random x (2, 6, 8), then on "
        "the same x with position 3 changed: positions 0..2 must not move, 3..5 must",
        compare=only_later_positions_change,
        show=show_changes,
    ),
    _module(
        name="MultiHeadSelfAttention matches nn.MultiheadAttention with the same weights",
        points=2,
        visibility="hidden",
        inputs={"cases": [partial(random_module_case, 100, 12, 3, 2, 5)]},
        describe="MultiHeadSelfAttention(12, 3) with random weights on a random x (2, 5, 12)",
    ),
    _module(
        name="MultiHeadSelfAttention with 1 head, 8 heads and one position",
        points=1,
        visibility="hidden",
        inputs={"cases": [partial(random_module_case, 110, 8, 1, 1, 4),
                          partial(random_module_case, 120, 8, 8, 2, 3),
                          partial(random_module_case, 130, 8, 2, 3, 1)]},
        describe="MultiHeadSelfAttention(8, 1) on x (1, 4, 8), MultiHeadSelfAttention(8, 8) on x (2, 3, 8), "
        "MultiHeadSelfAttention(8, 2) on x (3, 1, 8), random weights",
    ),
]

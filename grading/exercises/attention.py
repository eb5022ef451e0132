"""The checks of exercise 03_attention: scaled_dot_product_attention, causal_mask, MultiHeadSelfAttention.

The learner writes, in exercises/03_attention/attention.ipynb:

    scaled_dot_product_attention(q, k, v, mask=None) -> Tensor   # q (..., T_q, d_k), k (..., T_k, d_k),
                                                                 # v (..., T_k, d_v) -> (..., T_q, d_v)
    causal_mask(T) -> BoolTensor of shape (T, T)                 # True = may attend (j <= i)
    class MultiHeadSelfAttention(nn.Module)                      # __init__(d_model, n_heads): q_proj,
                                                                 # k_proj, v_proj, out_proj; causal forward(x)

without torch's own attention (FORBIDDEN). The references are torch's:
F.scaled_dot_product_attention, nn.Transformer.generate_square_subsequent_mask, and
nn.MultiheadAttention(batch_first=True) given the same weights as the learner's module. Visible
checks use the notebook's worked examples; hidden ones random inputs from fixed seeds.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grading import seeds
from grading.checks import Call, Check, Input, call, tensor_returns
from grading.compare import ATOL, tensor_checks
from grading.exercises.attention_calls import PROJECTIONS

NOTEBOOK = "attention.ipynb"
# torch's attention would do the learner's work: no task may call it.
FORBIDDEN: dict[str, list[str]] = dict.fromkeys(
    ("scaled_dot_product_attention", "causal_mask", "MultiHeadSelfAttention"),
    ["torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
     "torch.nn.functional.multi_head_attention_forward"],
)
# Why attention's result can hold NaN or infinity.
NOT_FINITE = ("does an exponential overflow (torch.softmax subtracts each row's maximum first), or does a row "
              "of the mask allow nothing?")
OUTPUT = tensor_returns(hint=NOT_FINITE)

# ---- inputs -----------------------------------------------------------------------------------


def randn(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(shape, generator=torch.Generator().manual_seed(seeds.seed(seed)))


def random_mask(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """About half True, with at least one True in every row (every query has a key to attend to)."""
    draws = torch.rand(shape, generator=torch.Generator().manual_seed(seeds.seed(seed)))
    return (draws < 0.5) | (draws == draws.max(dim=-1, keepdim=True).values)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> Call:
    masked = {} if mask is None else {"mask": mask}
    return call("scaled_dot_product_attention", q, k, v, returns=OUTPUT, **masked)


def random_attention(seed: int, q: tuple, k: tuple, v: tuple, scale: float = 1.0, mask: tuple | None = None) -> Call:
    return attention(randn(seed, q, scale), randn(seed + 1, k, scale), randn(seed + 2, v),
                     None if mask is None else random_mask(seed + 3, mask))


def random_weights(seed: int, d_model: int) -> dict:
    """Weights and biases for the four projections, uniform in ±1/sqrt(d_model) as nn.Linear
    initialises them (biases too, so that a forgotten bias shows)."""
    generator = torch.Generator().manual_seed(seeds.seed(seed))

    def uniform(*shape: int) -> torch.Tensor:
        return (2 * torch.rand(shape, generator=generator) - 1) * d_model**-0.5

    return {name: {"weight": uniform(d_model, d_model), "bias": uniform(d_model)} for name in PROJECTIONS}


def module(d_model: int, n_heads: int, weights: dict, x: torch.Tensor | list, returns: dict = OUTPUT) -> Call:
    return Call("MultiHeadSelfAttention", (d_model, n_heads), returns=returns,
                adapter="exercises.attention_calls.forward", then={"weights": weights, "x": x},
                steps="with its projections' weights set to {weights}, on x = {x}")


def random_module(seed: int, d_model: int, n_heads: int, B: int, T: int) -> Call:
    weights = Input(lambda: random_weights(seed, d_model), "random weights")
    return module(d_model, n_heads, weights, randn(seed + 1, (B, T, d_model)))


# The notebook's worked example of MultiHeadSelfAttention(4, 2): q, k and v projections are the
# identity without bias, so head 0 attends with channels 0-1 and head 1 with channels 2-3 of x
# itself; out_proj doubles and adds 1, so its output is 2 * (the heads side by side) + 1.
IDENTITY = {"weight": torch.eye(4), "bias": torch.zeros(4)}
HAND_MADE = Input(lambda: {"q_proj": IDENTITY, "k_proj": IDENTITY, "v_proj": IDENTITY,
                           "out_proj": {"weight": 2 * torch.eye(4), "bias": torch.ones(4)}},
                  "identity for q_proj, k_proj and v_proj (bias 0), 2 * identity for out_proj (bias 1)")
HAND_X = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 2.0]]])

# x (2, 6, 8), and the same x with the vectors at position 3 replaced.
PERTURBED_X = randn(91, (2, 6, 8))
PERTURBED = PERTURBED_X.clone()
PERTURBED[:, 3] = randn(92, (2, 8))

# ---- references (grader's side) ---------------------------------------------------------------


def torch_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """F.scaled_dot_product_attention, whose boolean attn_mask also means True = may attend."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def torch_causal_mask(T: int) -> torch.Tensor:
    """torch's causal mask, additive (-inf above the diagonal, 0 elsewhere), as booleans: True = kept."""
    return nn.Transformer.generate_square_subsequent_mask(T) == 0


def torch_self_attention(d_model: int, n_heads: int, weights: dict, x: torch.Tensor | list) -> Any:
    """nn.MultiheadAttention(batch_first=True) with the same projections (in_proj_weight is q, k
    and v's weights stacked) and torch's causal mask."""
    # Its initial weights, overwritten below, would be drawn from the learner's generator: in a
    # notebook's check cell this runs in the learner's process.
    with torch.random.fork_rng(devices=[]):
        attention = nn.MultiheadAttention(d_model, n_heads, bias=True, batch_first=True)
    with torch.no_grad():
        attention.in_proj_weight.copy_(torch.cat([weights[name]["weight"] for name in PROJECTIONS[:3]]))
        attention.in_proj_bias.copy_(torch.cat([weights[name]["bias"] for name in PROJECTIONS[:3]]))
        attention.out_proj.weight.copy_(weights["out_proj"]["weight"])
        attention.out_proj.bias.copy_(weights["out_proj"]["bias"])

        def run(inputs: torch.Tensor) -> torch.Tensor:
            mask = nn.Transformer.generate_square_subsequent_mask(inputs.shape[1])  # (T, T), -inf = hidden
            return attention(inputs, inputs, inputs, attn_mask=mask, need_weights=False)[0]  # (B, T, d_model)

        return [run(each) for each in x] if isinstance(x, list) else run(x)


# ---- the future-positions check compares how each position's output moved ----------------------


def output_changes(outputs: list) -> list[float]:
    """For two outputs [y, y'] of shape (B, T, C): per position t, the largest |y - y'| over the
    batch and the channels. Outputs that are not two (B, T, C) tensors of one shape raise."""
    first, second = (torch.tensor(output["values"], dtype=torch.float64) for output in outputs)
    if first.ndim != 3 or first.shape != second.shape:
        raise ValueError("not two outputs of the same shape (B, T, C)")
    return (first - second).abs().amax(dim=(0, 2)).tolist()  # (T,)


def only_later_positions_change(expected: list, actual: Any) -> bool:
    """The learner's outputs moved exactly where the reference's did: not at all before the
    changed position (up to ATOL), and visibly (more than 100 * ATOL) from it on."""
    try:
        reference, changes = output_changes(expected), output_changes(actual)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError):  # anything but two tensors
        return False
    return len(changes) == len(reference) and all(
        (change > 100 * ATOL) == (want > 100 * ATOL) for change, want in zip(changes, reference))


def show_changes(outputs: list) -> str:
    """'output at positions 0..5 moved by: 0, 0, 0, 0.3117, 0.2025, 0.1388'"""
    changes = output_changes(outputs)
    return f"output at positions 0..{len(changes) - 1} moved by: " + ", ".join(f"{c:.4g}" for c in changes)


# ---- the checks -------------------------------------------------------------------------------

# The notebook's worked examples (d_k = 1 in the first, so the scale does not matter there).
ONE_D = (torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [0.0], [-1.0]]),
         torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
SCALED = (torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]),) * 2 + (torch.tensor([[1.0, 0.0], [0.0, 1.0]]),)
MASK = torch.tensor([[True, False, True], [True, True, False]])
LARGE = (torch.tensor([[100.0, 100.0]]), torch.tensor([[100.0, 100.0], [99.0, 99.0], [0.0, 0.0]]),
         torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))


attention_check = tensor_checks("scaled_dot_product_attention", torch_attention)
module_check = tensor_checks("MultiHeadSelfAttention", torch_self_attention)


def mask_check(name: str, sizes: list[int], **options: Any) -> Check:
    return tensor_checks("causal_mask", torch_causal_mask)(
        name, tuple(call("causal_mask", T, returns="tensor") for T in sizes), **options)


CHECKS: list[Check] = [
    # scaled_dot_product_attention: 9 points
    attention_check("attention weighs the values by a softmax over the keys", attention(*ONE_D)),
    attention_check("attention divides the scores by sqrt(d_k)", attention(*SCALED)),
    attention_check("attention gives masked keys no weight", attention(*ONE_D, MASK)),
    attention_check("attention is stable when the scores are large", attention(*LARGE)),
    attention_check("attention with T_q != T_k and d_v != d_k",
                    (random_attention(10, (3, 8), (5, 8), (5, 6)), random_attention(20, (7, 16), (2, 16), (2, 3))),
                    hidden=True),
    attention_check("attention over leading batch dimensions",
                    tuple(random_attention(seed, (*lead, 5, 8), (*lead, 7, 8), (*lead, 7, 4))
                          for seed, lead in [(30, ()), (40, (3,)), (50, (2, 3))]), hidden=True),
    attention_check("attention with random masks that broadcast",
                    tuple(random_attention(60, (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5), mask=shape)
                          for shape in [(4, 6), (2, 1, 1, 6), (1, 3, 4, 6), (2, 3, 4, 6)]), hidden=True),
    attention_check("attention is stable with large random scores",
                    (random_attention(70, (2, 6, 16), (2, 6, 16), (2, 6, 8), scale=60.0),
                     random_attention(80, (2, 6, 16), (2, 6, 16), (2, 6, 8), scale=60.0, mask=(6, 6))), hidden=True),
    attention_check("attention with one query and one key", attention(torch.tensor([[0.5]]), torch.tensor([[2.0]]),
                                                                      torch.tensor([[3.0, -1.0]]))),
    # causal_mask: 3 points
    mask_check("causal_mask(3) is a lower-triangular bool tensor", [3]),
    mask_check("causal_mask of one and two positions", [1, 2]),
    mask_check("causal_mask of longer sequences", [5, 16], hidden=True),
    # MultiHeadSelfAttention: 8 points
    Check("MultiHeadSelfAttention", "MultiHeadSelfAttention has four d_model x d_model projections with bias",
          Call("MultiHeadSelfAttention", (8, 2), adapter="exercises.attention_calls.projection_shapes",
               steps="then the shapes of q_proj, k_proj, v_proj and out_proj's weight and bias"),
          expect={name: {"weight": [8, 8], "bias": [8]} for name in PROJECTIONS}),
    module_check("MultiHeadSelfAttention on the hand-made example", module(4, 2, HAND_MADE, HAND_X), points=2),
    Check("MultiHeadSelfAttention", "MultiHeadSelfAttention takes no information from later positions",
          module(8, 2, Input(lambda: random_weights(90, 8), "random weights"),
                 Input(lambda: [PERTURBED_X, PERTURBED], "a random x (2, 6, 8), then x with position 3 changed"),
                 returns={"kind": "tensors", "names": ["its output for x", "its output with position 3 changed"]}),
          reference=torch_self_attention, compare=only_later_positions_change, show=show_changes, points=2),
    module_check("MultiHeadSelfAttention matches nn.MultiheadAttention with the same weights",
                 random_module(100, 12, 3, 2, 5), points=2, hidden=True),
    module_check("MultiHeadSelfAttention with 1 head, 8 heads and one position",
                 (random_module(110, 8, 1, 1, 4), random_module(120, 8, 8, 2, 3), random_module(130, 8, 2, 3, 1)),
                 hidden=True),
]

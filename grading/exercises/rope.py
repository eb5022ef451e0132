"""The checks of exercise 03_rope: rotary position embeddings, rotary_cos_sin and apply_rotary.

The learner writes, in exercises/03_rope/rope.ipynb:

    rotary_cos_sin(positions, head_dim, theta=10000.0) -> (cos, sin)
        # positions (T,) ints -> two float32 (T, head_dim) tensors; pair i (dimensions i and
        # i + head_dim/2) turns by positions * theta ** (-2i / head_dim); odd head_dim: ValueError
    apply_rotary(x, cos, sin) -> Tensor
        # x (..., T, head_dim): each pair (a, b) -> (a cos - b sin, a sin + b cos), x's dtype;
        # odd head_dim: ValueError

The references are written out independently of the rotate-half formula: the angles in float64
from the definition, and each pair (x[i], x[i + head_dim/2]) taken as the complex number
x[i] + j x[i + head_dim/2] and multiplied by e^(j angle) (torch.polar). The relative property (the
dot product of a query turned to position m and a key turned to position n depends on m - n only)
is checked as a property of the learner's numbers, which any rotation has, whatever its layout. Visible checks use the notebook's worked
examples; hidden ones random positions, sizes, theta and leading dimensions from fixed seeds.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from grading import seeds
from grading.checks import Call, Check, call, tensor_returns
from grading.compare import ATOL, RTOL, show_tensors, tensors_close

NOTEBOOK = "rope.ipynb"
# Nothing in torch computes rotary embeddings; the course's own are off limits (the grader refuses
# any import of course_lib), so no torch function is forbidden.
FORBIDDEN: dict[str, list[str]] = {}
COS_SIN = {"kind": "tensors", "names": ["cos", "sin"], "floating": True}
ROTATED = tensor_returns(floating=True)
# cos and sin of angles up to ~100 radians computed in float32: the angle itself is rounded to
# ~1e-5 (float32 keeps 7 digits of 100), which moves cos and sin by as much. A frequency or a
# layout that is wrong moves them by 0.1 or more.
ANGLE_ATOL = 1e-4


# ---- inputs -----------------------------------------------------------------------------------


def randn(seed: int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seeds.seed(seed)), dtype=torch.float64).to(dtype)


def positions(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def cos_sin_call(position_ids: torch.Tensor, head_dim: int, **kwargs: Any) -> Call:
    return call("rotary_cos_sin", position_ids, head_dim, returns=COS_SIN, **kwargs)


def raises(function: str, *args: Any) -> Call:
    return Call(function, args, adapter="exercises.rope_calls.raised", steps="expecting ValueError")


def rotary_call(x: torch.Tensor, position_ids: torch.Tensor, theta: float = 10000.0) -> Call:
    """apply_rotary(x, cos, sin) with cos and sin the reference's for these positions."""
    cos, sin = reference_cos_sin(position_ids, x.shape[-1], theta)
    return call("apply_rotary", x, cos.to(x.dtype), sin.to(x.dtype), returns=ROTATED)


def scores_call(seed: int, head_dim: int, T: int) -> Call:
    """A random query and key turned to positions 0..T-1 by the learner's apply_rotary, their dot
    products as a (T, T) table (rope_calls.scores)."""
    cos, sin = reference_cos_sin(torch.arange(T), head_dim)
    return Call("apply_rotary", returns=ROTATED, adapter="exercises.rope_calls.scores",
                then={"q": randn(seed, head_dim), "k": randn(seed + 1, head_dim), "cos": cos, "sin": sin},
                steps=f"that is, apply_rotary(q, cos, sin) and apply_rotary(k, cos, sin) with q and k copied to "
                      f"positions 0..{T - 1}, q = {{q}}, k = {{k}}, cos = {{cos}}, sin = {{sin}}; then the table of "
                      f"dot products q_m · k_n")


# ---- references (grader's side), written out from the definition ------------------------------


def reference_angles(position_ids: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """(T, head_dim/2) angles in float64: position m times theta ** (-2i / head_dim), pair i."""
    pair = torch.arange(head_dim // 2, dtype=torch.float64)
    return position_ids.double()[:, None] * theta ** (-2.0 * pair / head_dim)[None, :]


def reference_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin in the rotate-half layout (dimension i and i + head_dim/2 share pair i's angle),
    computed in float64 and rounded to float32; ValueError for an odd head_dim."""
    if head_dim % 2:
        raise ValueError(f"head_dim={head_dim} is odd")
    angles = reference_angles(position_ids, head_dim, theta).repeat(1, 2)  # (T, head_dim)
    return angles.cos().float(), angles.sin().float()


def complex_rotation(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Pair i of x as the complex number x[i] + j x[i + d/2], times e^(j angle) with the angle
    whose cosine and sine are pair i's (the first half of cos and sin), in float64."""
    half = x.shape[-1] // 2
    pairs = torch.complex(x[..., :half].double(), x[..., half:].double())  # (..., T, d/2)
    turn = torch.polar(torch.ones_like(cos[..., :half], dtype=torch.float64),
                       torch.atan2(sin[..., :half].double(), cos[..., :half].double()))  # (T, d/2), |turn| = 1
    turned = pairs * turn
    return torch.cat([turned.real, turned.imag], dim=-1).to(x.dtype)  # (..., T, d)


def reference_scores(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    T = cos.shape[0]
    turned_q, turned_k = (complex_rotation(v.expand(T, -1), cos, sin) for v in (q, k))
    return turned_q @ turned_k.T  # (T, T)


# ---- the relative property --------------------------------------------------------------------


def _table(value: Any) -> torch.Tensor | None:
    """A plain (T, T) tensor as float64, or None if it is not one."""
    if not (type(value) is dict and set(value) == {"shape", "dtype", "values"}):
        return None
    try:
        table = torch.tensor(value["values"], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None
    return table if table.ndim == 2 and table.shape[0] == table.shape[1] else None


def depends_only_on_distance(expected: Any, actual: Any) -> bool:
    """The learner's table of q_m · k_n has the property rotary embeddings exist for, whatever the
    layout or direction of their turn: it is constant along every diagonal (it depends on m - n
    only), its main diagonal is q · k (turning both by the same angle keeps their dot product: the
    reference's [0, 0], where nothing turns), and it is not constant (something did turn)."""
    table, reference = _table(actual), _table(expected)
    if table is None or reference is None or table.shape != reference.shape:
        return False
    T = table.shape[0]
    for distance in range(-(T - 1), T):
        diagonal = table.diagonal(distance)
        if not torch.allclose(diagonal, diagonal[:1].expand_as(diagonal), rtol=RTOL, atol=10 * ATOL):
            return False
    unturned = reference[0, 0]
    return bool(torch.isclose(table[0, 0], unturned, rtol=RTOL, atol=10 * ATOL)) and bool(
        (table - unturned).abs().max() > 1e-2)


def show_by_distance(value: Any) -> str:
    """'q_m · k_n by distance m - n: -2: [0.1, 0.1]; -1: ...' (a table that is not one: its repr)."""
    table = _table(value)
    if table is None:
        return repr(value)
    T = table.shape[0]
    parts = [f"{-d}: [{', '.join(f'{v:.4g}' for v in table.diagonal(d).tolist())}]" for d in range(T - 1, -T, -1)]
    return "q_m · k_n by distance m - n, " + "; ".join(parts)


# ---- the checks -------------------------------------------------------------------------------


def angles_close(expected: Any, actual: Any) -> bool:
    """tensors_close, with the absolute tolerance of cos and sin of float32 angles (ANGLE_ATOL)."""
    return tensors_close(expected, actual, rtol=RTOL, atol=ANGLE_ATOL)


def _cos_sin(name: str, calls: Call | tuple[Call, ...], points: float = 1, hidden: bool = False) -> Check:
    return Check("rotary_cos_sin", name, calls, reference=reference_cos_sin, compare=angles_close, show=show_tensors,
                 points=points, hidden=hidden)


def _rotary(name: str, calls: Call | tuple[Call, ...], points: float = 1, hidden: bool = False) -> Check:
    return Check("apply_rotary", name, calls, reference=complex_rotation, compare=tensors_close,
                 show=show_tensors, points=points, hidden=hidden)


# The notebook's worked examples: a pair (1, 0) turned by 1 radian; x = [1, 2, 3, 4] with pair 0,
# (x[0], x[2]) = (1, 3), turned a quarter turn to (-3, 1) and pair 1, (2, 4), not turned.
QUARTER = (torch.tensor([[0.0, 1.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0, 1.0, 0.0]]))  # cos, sin

CHECKS: list[Check] = [
    # rotary_cos_sin: 8 points
    _cos_sin("rotary_cos_sin(positions=[0, 1], head_dim=4, theta=100)", cos_sin_call(positions(0, 1), 4, theta=100.0)),
    # theta 10000, head_dim 8: the four pairs turn by 10000 ** (-i / 4) = 1, 0.1, 0.01, 0.001 radians per position.
    _cos_sin("rotary_cos_sin's frequencies are theta ** (-2i / head_dim): position 1, head_dim 8",
             cos_sin_call(positions(1), 8), points=2),
    _cos_sin("rotary_cos_sin at position 0 is cos 1, sin 0; head_dim 2 has one pair",
             (cos_sin_call(positions(0), 6), cos_sin_call(positions(0, 1, 2), 2))),
    Check("rotary_cos_sin", "rotary_cos_sin raises ValueError for an odd head_dim",
          (raises("rotary_cos_sin", positions(0, 1), 5), raises("rotary_cos_sin", positions(3), 1)),
          expect=["raised ValueError"] * 2),
    _cos_sin("rotary_cos_sin for positions in any order, head_dim 16 and 64, and Llama 3's theta 500000",
             (cos_sin_call(positions(7, 3, 40, 12, 0), 16), cos_sin_call(torch.arange(50, 60), 64),
              cos_sin_call(positions(5, 1, 9), 32, theta=500000.0)), points=2, hidden=True),
    _cos_sin("rotary_cos_sin of one position and of many", (cos_sin_call(positions(17), 10),
                                                           cos_sin_call(torch.arange(96), 12, theta=10.0)),
             hidden=True),
    # apply_rotary: 8 points
    _rotary("apply_rotary turns the pair (1, 0) by 1 radian to (cos 1, sin 1)",
            call("apply_rotary", torch.tensor([[1.0, 0.0]]), torch.full((1, 2), math.cos(1.0)),
                 torch.full((1, 2), math.sin(1.0)), returns=ROTATED)),
    _rotary("apply_rotary pairs dimension i with i + head_dim/2 (a quarter turn of pair 0)",
            call("apply_rotary", torch.tensor([[1.0, 2.0, 3.0, 4.0]]), *QUARTER, returns=ROTATED)),
    _rotary("apply_rotary at position 0 leaves x unchanged", rotary_call(torch.tensor([[0.5, -1.0, 2.0, 3.0, -0.25, 1.5]]), positions(0))),
    Check("apply_rotary", "apply_rotary: the score of a turned query and key depends only on their distance",
          scores_call(70, 8, 5), reference=reference_scores, compare=depends_only_on_distance,
          show=show_by_distance, points=2),
    Check("apply_rotary", "apply_rotary raises ValueError for an odd head_dim",
          raises("apply_rotary", torch.ones(2, 5), torch.ones(2, 5), torch.zeros(2, 5)), expect="raised ValueError"),
    _rotary("apply_rotary on (B, n_heads, T, head_dim) at random positions, and with leading dimensions of size 1",
            (rotary_call(randn(80, 2, 3, 5, 16), positions(4, 9, 10, 11, 30)), rotary_call(randn(81, 1, 1, 1, 8), positions(6)),
             rotary_call(randn(82, 3, 4, 12), torch.arange(3, 7), theta=500.0)), points=2, hidden=True),
    _rotary("apply_rotary keeps float64", rotary_call(randn(83, 2, 4, 6, dtype=torch.float64), positions(0, 1, 2, 3)),
            hidden=True),
]

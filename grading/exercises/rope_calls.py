"""What 03_rope's checks do with the learner's functions beyond a plain call (the learner's side:
the standard library and torch only, copied into the sandbox next to learner_side.py).

`raised` says whether a call raised ValueError, as an odd head_dim must; `scores` rotates one
query and one key to every position with the learner's apply_rotary and returns the table of their
dot products, whose entries must depend only on the distance between the two positions:

    >>> import torch
    >>> def turn(x, cos, sin):  # rotate-half, as the notebook asks
    ...     half = x.shape[-1] // 2
    ...     return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin
    >>> angles = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # positions 0 and 1, head_dim 2
    >>> scores(turn, [], {}, q=torch.tensor([1.0, 0.0]), k=torch.tensor([1.0, 0.0]), cos=angles.cos(), sin=angles.sin())
    tensor([[1.0000, 0.5403],
            [0.5403, 1.0000]])
    >>> raised(lambda head_dim: None, [5], {})
    'returned without raising'
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..learner_side import CheckFailure


def raised(function: Callable, args: list, kwargs: dict) -> str:
    """'raised ValueError' if function(*args, **kwargs) raises ValueError, 'returned without
    raising' if it returns; any other exception goes on to the check's message as it is."""
    try:
        function(*args, **kwargs)
    except ValueError:
        return "raised ValueError"
    return "returned without raising"


def scores(apply_rotary: Callable, args: list, kwargs: dict, q: torch.Tensor, k: torch.Tensor,
           cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The dot products of q turned to every position m with k turned to every position n: a
    (T, T) table, entry [m, n] = rotate(q, m) · rotate(k, n), for cos and sin of shape (T, head_dim)."""
    T = cos.shape[0]
    turned = []
    for vector in (q, k):
        rotated = apply_rotary(vector.expand(T, -1).clone(), cos, sin)  # (T, head_dim): one copy per position
        if not isinstance(rotated, torch.Tensor) or tuple(rotated.shape) != tuple(cos.shape):
            shape = tuple(rotated.shape) if isinstance(rotated, torch.Tensor) else type(rotated).__name__
            raise CheckFailure(f"apply_rotary of x of shape {tuple(cos.shape)} should return the same shape, got {shape}")
        turned.append(rotated)
    return turned[0] @ turned[1].T  # (T, hd) @ (hd, T) -> (T, T)

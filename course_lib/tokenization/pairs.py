"""The two moves of byte-pair encoding: count adjacent pairs, and merge one pair into a new id.

Training (trainer.py) and encoding (bpe.py) are both built from these two functions:

    >>> ids = list("aaab".encode("utf-8"))     # [97, 97, 97, 98]
    >>> get_pair_counts(ids)
    {(97, 97): 2, (97, 98): 1}
    >>> merge(ids, (97, 97), 256)
    [256, 97, 98]
"""

from __future__ import annotations

from collections.abc import Iterable

Pair = tuple[int, int]


def get_pair_counts(ids: Iterable[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """Count how often each adjacent pair occurs in `ids`, adding to `counts` if given.

    get_pair_counts([1, 2, 3, 1, 2]) -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}

    Overlapping pairs all count: get_pair_counts([7, 7, 7]) -> {(7, 7): 2}. Passing `counts`
    accumulates over several chunks, since merges never cross a chunk boundary.
    """
    counts = {} if counts is None else counts
    ids = list(ids)
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair` in `ids` with `new_id`, left to right.

    merge([5, 6, 6, 7, 9], (6, 7), 99) -> [5, 6, 99, 9]
    merge([7, 7, 7], (7, 7), 99)       -> [99, 7]      (the leftmost occurrence wins)
    """
    first, second = pair
    merged = []
    i = 0
    while i < len(ids):
        if ids[i] == first and i + 1 < len(ids) and ids[i + 1] == second:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged

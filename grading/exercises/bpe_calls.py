"""What 01_bpe's checks need on the learner's side beyond a plain call (standard library only:
the batch grader copies this file into its sandbox, next to learner_side.py).

    >>> pair_counts({(2, 3): 1, (1, 2): 2}, "get_pair_counts")
    [[1, 2, 2], [2, 3, 1]]
    >>> merge_keeping_input(lambda ids, pair, new_id: [new_id], [[1, 2], (1, 2), 9], {})
    [[9], [1, 2]]
"""

from __future__ import annotations

from typing import Any, Callable

from ..learner_side import CheckFailure, quote, returns_ints, returns_text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pair_counts(counts: Any, function: str) -> list[list[int]]:
    """A dict {(a, b): count} as sorted rows [[a, b, count], ...] (JSON has no tuple keys)."""
    if not isinstance(counts, dict):
        raise CheckFailure(f"{function} should return a dict mapping pairs (a, b) to counts, got {type(counts).__name__}")
    rows = []
    for pair, count in counts.items():
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(map(_is_int, pair))):
            raise CheckFailure(f"{function}'s keys should be pairs of ints like (1, 2), got {quote(pair, 80)}")
        if not _is_int(count):
            raise CheckFailure(f"{function}'s values should be int counts, got {quote(count, 80)} for {quote(pair, 80)}")
        rows.append([int(pair[0]), int(pair[1]), int(count)])
    return sorted(rows)


def pairs(merges: Any, function: str) -> list[list[int]]:
    """A list of pairs [(a, b), ...] as rows [[a, b], ...]."""
    if not isinstance(merges, list):
        raise CheckFailure(f"{function} should return a list of pairs (a, b), got {type(merges).__name__}")
    for pair in merges:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(_is_int, pair))):
            raise CheckFailure(f"{function} should return a list of pairs of ints like (97, 98), "
                               f"but it contains {quote(pair, 80)}")
    return [[int(a), int(b)] for a, b in merges]


def merge_keeping_input(merge: Callable, args: list, kwargs: dict) -> list[list[int]]:
    """[merge's result, the ids list as it is after the call]: merge must not change its input."""
    return [returns_ints(merge(*args, **kwargs), "merge"), returns_ints(args[0], "the input list")]


def decode_each(decode: Callable, args: list, kwargs: dict) -> list[str]:
    """decode([id], merges) for every id of args[0]: one token at a time, so characters get split."""
    ids, merges = args
    return [returns_text(decode([token_id], list(merges)), "decode") for token_id in ids]

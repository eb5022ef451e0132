"""How the checks of exercise 01_bpe call the learner's functions (the learner's side).

Standard library only: the batch grader copies this file into its sandbox, next to
learner_side.py, where course_lib cannot be imported. Each adapter takes the learner's namespace
and the check's inputs (plain data computed by the grader: lists, ints, str; a pair arrives as a
list [a, b]) and returns plain data, or raises CheckFailure when the learner's function returned
the wrong type:

    >>> namespace = {"merge": lambda ids, pair, new_id: [new_id]}
    >>> call_merge(namespace, cases=[[[1, 2], [1, 2], 256]])
    [[256]]
    >>> pair_count_rows({(2, 3): 1, (1, 2): 2})
    [[1, 2, 2], [2, 3, 1]]

Each call gets fresh inputs: the learner's code may change the lists it is given.
"""

from __future__ import annotations

from typing import Any

from ..learner_side import CheckFailure, learner_function, quote


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pairs(merges: list) -> list[tuple[int, int]]:
    """Merges as the learner's functions expect them: a list of tuples (a, b)."""
    return [(a, b) for a, b in merges]


def int_list(value: Any, function: str) -> list[int]:
    """`value` as a plain list of ints, or a CheckFailure naming what `function` returned instead."""
    if not isinstance(value, list):
        raise CheckFailure(f"{function} should return a list of ints, got {type(value).__name__} {quote(value, 80)}")
    for item in value:
        if not _is_int(item):
            raise CheckFailure(f"{function} should return a list of ints, but it contains {quote(item, 80)}")
    return [int(item) for item in value]


def pair_count_rows(counts: Any, function: str = "get_pair_counts") -> list[list[int]]:
    """A dict {(a, b): count} as sorted rows [[a, b, count], ...], or a CheckFailure."""
    if not isinstance(counts, dict):
        raise CheckFailure(
            f"{function} should return a dict mapping pairs (a, b) to counts, got {type(counts).__name__}"
        )
    rows = []
    for pair, count in counts.items():
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(map(_is_int, pair))):
            raise CheckFailure(f"{function}'s keys should be pairs of ints like (1, 2), got {quote(pair, 80)}")
        if not _is_int(count):
            raise CheckFailure(f"{function}'s values should be int counts, got {quote(count, 80)} for {quote(pair, 80)}")
        rows.append([int(pair[0]), int(pair[1]), int(count)])
    return sorted(rows)


def pair_list(merges: Any, function: str = "train_bpe") -> list[list[int]]:
    """A list of pairs [(a, b), ...] as plain rows [[a, b], ...], or a CheckFailure."""
    if not isinstance(merges, list):
        raise CheckFailure(f"{function} should return a list of pairs (a, b), got {type(merges).__name__}")
    rows = []
    for pair in merges:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(_is_int, pair))):
            raise CheckFailure(
                f"{function} should return a list of pairs of ints like (97, 98), but it contains {quote(pair, 80)}"
            )
        rows.append([int(pair[0]), int(pair[1])])
    return rows


def text_result(value: Any, function: str) -> str:
    """`value` as a plain str, or a CheckFailure."""
    if not isinstance(value, str):
        raise CheckFailure(f"{function} should return a str, got {type(value).__name__} {quote(value, 80)}")
    return str(value)


# ---- the adapters: (namespace, **inputs) -> plain data ------------------------------------------


def call_get_pair_counts(namespace: dict, cases: list) -> list[list[list[int]]]:
    """get_pair_counts(ids) for each ids in `cases`, as sorted rows [a, b, count]."""
    get_pair_counts = learner_function(namespace, "get_pair_counts")
    return [pair_count_rows(get_pair_counts(ids)) for ids in cases]


def call_merge(namespace: dict, cases: list) -> list[list[int]]:
    """merge(ids, pair, new_id) for each [ids, pair, new_id] in `cases`."""
    merge = learner_function(namespace, "merge")
    return [int_list(merge(ids, tuple(pair), new_id), "merge") for ids, pair, new_id in cases]


def call_merge_keeps_input(namespace: dict, cases: list) -> list[list[list[int]]]:
    """For each case, [merge's result, the ids list as it is after the call] (it must be unchanged)."""
    merge = learner_function(namespace, "merge")
    results = []
    for ids, pair, new_id in cases:
        results.append([int_list(merge(ids, tuple(pair), new_id), "merge"), int_list(ids, "the input list")])
    return results


def call_train_bpe(namespace: dict, text: str, vocab_size: int) -> list[list[int]]:
    """train_bpe(text, vocab_size) as rows [a, b]."""
    return pair_list(learner_function(namespace, "train_bpe")(text, vocab_size), "train_bpe")


def call_encode(namespace: dict, text: str, merges: list) -> list[int]:
    """encode(text, merges), the merges given as a list of tuples."""
    return int_list(learner_function(namespace, "encode")(text, _pairs(merges)), "encode")


def call_decode(namespace: dict, cases: list) -> list[str]:
    """decode(ids, merges) for each [ids, merges] in `cases`, each result a str."""
    decode = learner_function(namespace, "decode")
    return [text_result(decode(ids, _pairs(merges)), "decode") for ids, merges in cases]


def call_decode_each(namespace: dict, ids: list, merges: list) -> list[str]:
    """decode([id], merges) for every id in `ids`: one token at a time, so characters get split."""
    decode = learner_function(namespace, "decode")
    merges = _pairs(merges)
    return [text_result(decode([token_id], list(merges)), "decode") for token_id in ids]

"""All-pairs ("pairwise") test configurations: every pair of values of any two switches appears
together in at least one configuration, with far fewer configurations than the full product.

Six on/off switches have 2⁶ = 64 combinations but only 15 · 4 = 60 pairs of settings, and a
handful of rows covers them all. A bug that needs two settings together (rotary embeddings with
grouped-query attention, say) is caught; one that needs three particular settings at once may
not be, which is the usual trade (Cohen et al. 1997, "The AETG system").

    >>> rows = all_pairs({"a": [0, 1], "b": [0, 1], "c": [0, 1]})
    >>> len(rows), sorted({(r["a"], r["b"]) for r in rows})
    (4, [(0, 0), (0, 1), (1, 0), (1, 1)])
"""

from __future__ import annotations

import itertools
from typing import Any


def all_pairs(switches: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """A small list of configurations ({name: value}) covering every pair of values of any two switches.

    Greedy and deterministic: each new configuration starts from the first pair not yet covered,
    then sets every other switch to the value that covers the most uncovered pairs with what is
    already set (ties: the earlier value). The result is checked before it is returned.
    """
    names = list(switches)
    uncovered = {
        ((a, x), (b, y))
        for a, b in itertools.combinations(names, 2)
        for x, y in itertools.product(switches[a], switches[b])
    }
    rows = []
    while uncovered:
        (a, x), (b, y) = min(uncovered, key=lambda pair: _order(switches, pair))
        row = {a: x, b: y}
        for name in names:
            if name not in row:
                row[name] = max(
                    switches[name],
                    key=lambda value: sum(((n, v), (name, value)) in uncovered or ((name, value), (n, v)) in uncovered
                                          for n, v in row.items()),
                )
        row = {name: row[name] for name in names}
        uncovered -= {((a, row[a]), (b, row[b])) for a, b in itertools.combinations(names, 2)}
        rows.append(row)
    assert all(
        any(row[a] == x and row[b] == y for row in rows)
        for a, b in itertools.combinations(names, 2)
        for x, y in itertools.product(switches[a], switches[b])
    ), "all_pairs missed a pair"
    return rows


def _order(switches: dict[str, list[Any]], pair: tuple) -> tuple[int, ...]:
    """Sort key of a pair: by switch position, then by value position (values need not be comparable)."""
    names = list(switches)
    (a, x), (b, y) = pair
    return names.index(a), switches[a].index(x), names.index(b), switches[b].index(y)

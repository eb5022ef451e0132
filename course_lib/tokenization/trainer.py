"""Learning the merges: an incremental BPE trainer.

The textbook loop recounts every pair of the whole text after each merge. This one counts once,
over the distinct chunks weighted by how often each occurs, and after each merge only revisits
the chunks that contain the merged pair. It learns exactly the merges of the textbook loop, with
the same tie rule: the highest count wins, and among equal counts the smallest pair (a, b).

    >>> train_merges({b"ab": 3, b"bc": 3, b"cd": 1}, 2)
    [(97, 98), (98, 99)]

The tie rule is a choice, and others choose differently. Here pairs are compared by their ids (a,
then b), as minbpe does. GPT-2-style trainers (the reference trainer of Stanford's CS336, for one)
break ties by the tokens' bytes instead and take the lexicographically greatest pair: on the
chunks {"ab": 2, "cd": 2} they merge "cd" first (id 256) where this trainer merges "ab" first, and
with one merge to learn from "cdab" they make "da" where this one makes "ab". Comparing ids is not
comparing bytes in reverse either: a merged token such as "zz" has a high id (256) but its bytes
sort above "c". Ties are common only in tiny corpora; on real text the counts decide almost every
merge. tests/test_bpe.py works these examples by hand.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

from .pairs import Pair, merge


class _PairStats:
    """Pair counts over a list of distinct chunks, kept up to date as merges are applied.

    `counts[pair]` is the number of occurrences of `pair` in the corpus (each chunk's pairs times
    the chunk's frequency). `chunks_with[pair]` holds the indices of the chunks that contain the
    pair, or once did: it may over-approximate (removing stale indices would cost more than
    skipping them in `apply_merge`). `heap` holds (-count, a, b) entries so that the best pair is
    the smallest entry; an entry can be stale (see `best_pair`).
    """

    def __init__(self, chunks: list[list[int]], freqs: list[int]):
        self.chunks = chunks
        self.freqs = freqs
        self.counts: dict[Pair, int] = defaultdict(int)
        self.chunks_with: dict[Pair, set[int]] = defaultdict(set)
        for index, (chunk, freq) in enumerate(zip(chunks, freqs)):
            for pair in zip(chunk, chunk[1:]):
                self.counts[pair] += freq
                self.chunks_with[pair].add(index)
        self.heap = [(-count, a, b) for (a, b), count in self.counts.items()]
        heapq.heapify(self.heap)

    def best_pair(self) -> Pair | None:
        """The most frequent pair; among equal counts the smallest (a, b). None if no pair is left.

        Counts of existing pairs only ever go down (a merge removes occurrences; the pairs it
        creates all contain the new id, so they are new pairs). A heap entry therefore never
        understates its pair's count: an entry whose count is out of date is pushed back with
        the current count, and the first up-to-date entry popped is the true best pair.
        """
        while self.heap:
            negative_count, a, b = heapq.heappop(self.heap)
            count = self.counts.get((a, b), 0)
            if count == -negative_count:
                return (a, b)
            if count > 0:
                heapq.heappush(self.heap, (-count, a, b))
        return None

    def apply_merge(self, pair: Pair, new_id: int) -> None:
        """Merge `pair` into `new_id` in every chunk that has it, updating counts by the difference."""
        new_pairs = set()
        for index in self.chunks_with.pop(pair):
            old = self.chunks[index]
            new = merge(old, pair, new_id)
            if len(new) == len(old):  # a stale index: an earlier merge took this pair away
                continue
            freq = self.freqs[index]
            # Remove the chunk's old pairs and add its new ones; pairs away from the merge
            # cancel out, and only the pairs containing `new_id` need an index entry.
            for old_pair in zip(old, old[1:]):
                self.counts[old_pair] -= freq
            for new_pair in zip(new, new[1:]):
                self.counts[new_pair] += freq
                if new_id in new_pair:
                    self.chunks_with[new_pair].add(index)
                    new_pairs.add(new_pair)
            self.chunks[index] = new
        del self.counts[pair]  # every occurrence is gone
        for a, b in new_pairs:
            heapq.heappush(self.heap, (-self.counts[(a, b)], a, b))


def train_merges(chunk_counts: dict[bytes, int], num_merges: int) -> list[Pair]:
    """Learn up to `num_merges` merges from chunks given with their frequencies; merge i makes id 256 + i.

    Each step merges the most frequent pair; ties go to the smallest pair (a, b) (compare a,
    then b), so the result never depends on dict order. Stops early if no pair is left.

        >>> train_merges({b"ab": 3, b"bc": 3, b"cd": 1}, 2)
        [(97, 98), (98, 99)]

    (a, b) and (b, c) tie at 3 occurrences; (97, 98) < (98, 99) goes first.
    """
    stats = _PairStats([list(chunk) for chunk in chunk_counts], list(chunk_counts.values()))
    merges = []
    for new_id in range(256, 256 + num_merges):
        pair = stats.best_pair()
        if pair is None:
            break
        stats.apply_merge(pair, new_id)
        merges.append(pair)
    return merges

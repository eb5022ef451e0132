"""Convert between the course's `BPETokenizer` and OpenAI's `tiktoken.Encoding`.

A tiktoken encoding stores no merges, only "mergeable ranks": each token's bytes and its id,
where a lower id means the token was learned earlier. The merges can be recovered from them:
run BPE on a token's own bytes using only the tokens ranked below it; it stops with exactly two
parts, and those two parts are the merge that made the token.

    >>> import tiktoken
    >>> enc = tiktoken.get_encoding("cl100k_base")
    >>> enc.encode(" hello")
    [24748]
    >>> recover_merge(enc._mergeable_ranks, b" hello", 24748)   # " h" (id 305) + "ello" (id 4896)
    (b' h', b'ello')

`to_tiktoken` goes the other way: the vocabulary (bytes -> id) is exactly tiktoken's mergeable
ranks, because our ids also grow with merge order.

Two ways to choose the next merge. `BPETokenizer` applies, inside a chunk, the pair whose merge
was learned first (the lowest merge id, as minbpe does). tiktoken merges the adjacent parts whose
concatenated bytes form the lowest-ranked token, and takes a chunk that is itself a token in one
piece. They could only disagree if some token's bytes could also be reached from a pair of parts
other than the merge that made it. Measured, they never did: identical ids on all of Tiny
Shakespeare and on 6.7 MB of text in 70 languages (Sphinx's translation catalogues), for
tokenizers trained by course_lib (GPT-2, GPT-4 and GPT-4o patterns; 4096 and 8192 tokens) and for
the merges recovered from r50k_base, cl100k_base and o200k_base; identical ids in 400 random
trainings on tiny alphabets ("aab", "ab\n", ...) meant to provoke a difference; and every token of
the three tiktoken vocabularies encodes to itself. The tests keep checking this.
"""

from __future__ import annotations

import functools

import tiktoken

from .bpe import BPETokenizer, Pair

# tiktoken needs a split pattern; this one keeps the whole text as one chunk (pattern=None).
NO_SPLIT_PATTERN = r"[\s\S]+"


def to_tiktoken(tokenizer: BPETokenizer, name: str = "course-bpe") -> tiktoken.Encoding:
    """A `tiktoken.Encoding` with the tokenizer's pattern, vocabulary and special tokens.

    It encodes every text to the same ids as `tokenizer.encode` (the tests check this on Tiny
    Shakespeare and on text in many scripts), only much faster.
    """
    special_ids = set(tokenizer.special_tokens.values())
    mergeable_ranks: dict[bytes, int] = {}
    for token_id, token in tokenizer.vocab.items():
        if token_id in special_ids:
            continue
        if token in mergeable_ranks:
            raise ValueError(
                f"ids {mergeable_ranks[token]} and {token_id} both stand for {token!r}; tiktoken "
                "needs every token to have different bytes"
            )
        mergeable_ranks[token] = token_id
    return tiktoken.Encoding(
        name=name,
        pat_str=NO_SPLIT_PATTERN if tokenizer.pattern is None else tokenizer.pattern,
        mergeable_ranks=mergeable_ranks,
        special_tokens=dict(tokenizer.special_tokens),
    )


def recover_merge(mergeable_ranks: dict[bytes, int], token: bytes, rank: int) -> tuple[bytes, bytes]:
    """The two tokens that were merged into `token`, found by replaying BPE on its bytes.

    The replay merges, at each step, the adjacent parts whose concatenation has the lowest rank,
    and only uses tokens ranked below `rank` (the token itself is not known yet when it is made):

        ranks {a: 0, b: 1, c: 2, ab: 3, abc: 4}, token b"abc" (rank 4):
        [a, b, c] -> [ab, c] (rank 3) -> no pair left below rank 4 -> merge (b"ab", b"c")
    """
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best_rank, best_index = rank, -1
        for index in range(len(parts) - 1):
            pair_rank = mergeable_ranks.get(parts[index] + parts[index + 1], rank)
            if pair_rank < best_rank:
                best_rank, best_index = pair_rank, index
        if best_index < 0:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} (rank {rank}) cannot be built by merging two lower-ranked tokens")
    return parts[0], parts[1]


@functools.lru_cache(maxsize=8)
def _recover_merges(encoding: tiktoken.Encoding) -> tuple[list[int], dict[Pair, int]]:
    """The byte ids and the merges of an encoding, in rank order. Cached: o200k_base takes seconds."""
    ranks = encoding._mergeable_ranks
    byte_ids = [ranks[bytes([b])] for b in range(256)]
    merges: dict[Pair, int] = {}
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1:
            left, right = recover_merge(ranks, token, rank)
            merges[ranks[left], ranks[right]] = rank
    return byte_ids, merges


def from_tiktoken(encoding: str | tiktoken.Encoding) -> BPETokenizer:
    """A `BPETokenizer` with the merges, split pattern and special tokens of a tiktoken encoding.

        >>> tok = from_tiktoken("cl100k_base")
        >>> tok.encode("hello world") == tiktoken.get_encoding("cl100k_base").encode("hello world")
        True
    """
    if isinstance(encoding, str):
        encoding = tiktoken.get_encoding(encoding)  # tiktoken returns the same object each time
    byte_ids, merges = _recover_merges(encoding)
    tokenizer = BPETokenizer(pattern=encoding._pat_str)
    tokenizer._set_state(byte_ids, merges, encoding._special_tokens)
    return tokenizer

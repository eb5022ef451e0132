"""The checks of exercise 01_bpe: get_pair_counts, merge, train_bpe, encode, decode.

The learner writes, in exercises/01_bpe/bpe.ipynb (generated from solutions/01_bpe/bpe.ipynb):

    get_pair_counts(ids: list[int]) -> dict[tuple[int, int], int]
    merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]
    train_bpe(text: str, vocab_size: int) -> list[tuple[int, int]]    # merge i creates 256 + i
    encode(text: str, merges: list[tuple[int, int]]) -> list[int]
    decode(ids: list[int], merges: list[tuple[int, int]]) -> str       # errors="replace"

train_bpe and encode cut the text with GPT4_SPLIT_PATTERN first (merges never cross chunks), and
train_bpe breaks ties as course_lib does: the highest count wins, among equal counts the
smallest pair (a, b).

Visible checks use small inputs worked out by hand (the same examples as the notebook's text).
Hidden checks use inputs the learner has not seen, and their expected values come from
course_lib.tokenization and from tiktoken, never from stored literals.

This module is the trusted side: it builds the inputs (plain data, cached) and the references.
The adapters that call the learner's functions (`call_*`) are in bpe_calls.py, which imports
only the standard library, because it runs in the grader's sandbox.
"""

from __future__ import annotations

import functools
import random
from functools import partial
from typing import Any

import tiktoken

from course_lib.data import load_text
from course_lib.grading.checks import Check, expect
from course_lib.grading.exercises.bpe_calls import (
    call_decode,
    call_decode_each,
    call_encode,
    call_get_pair_counts,
    call_merge,
    call_merge_keeps_input,
    call_train_bpe,
    pair_count_rows,
)
from course_lib.tokenization.bpe import BPETokenizer, get_pair_counts, merge
from course_lib.tokenization.patterns import GPT4_SPLIT_PATTERN

# No torch function is forbidden in this exercise (it uses no torch at all).
FORBIDDEN: dict[str, list[str]] = {}

# ---------------------------------------------------------------------------------------------
# Inputs of the hidden checks: built from a fixed seed or a fixed slice, identical on both sides
# ---------------------------------------------------------------------------------------------

MULTILINGUAL = (
    "Grüße aus München! Привет, как дела? こんにちは、世界。 مرحبا بالعالم. 你好，朋友们！"
    " Ελληνικά και naïve café — ¿Qué tal? 🌍🚀 नमस्ते दुनिया. Zoë's façade costs 1234.50€ today."
)
EMOJI = "Family 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵🇧🇷; hands 👋🏽👋🏿; hearts ❤️💙💚 — 😀😃😄😁 done."


def shakespeare(start: int, length: int) -> str:
    """`length` characters of Tiny Shakespeare from character `start`."""
    return load_text("tinyshakespeare")[start : start + length]


@functools.lru_cache(maxsize=None)
def digits_and_spaces(seed: int = 1234, words: int = 300) -> str:
    """A generated text of numbers, words and runs of spaces, tabs and newlines (fixed seed).

    GPT-4's pattern cuts digit runs into groups of at most 3 and keeps whitespace runs apart from
    the next word, so this text has many short chunks that the learner's splitting must match.
    """
    rng = random.Random(seed)
    pieces = []
    for _ in range(words):
        kind = rng.random()
        if kind < 0.4:
            pieces.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9))))
        elif kind < 0.7:
            pieces.append(rng.choice(["id", "x", "total", "pi", "rate", "v2", "2nd"]))
        else:
            pieces.append(rng.choice([".", ",", "%", "+", "=", "-"]))
        pieces.append(rng.choice([" ", " ", "  ", "   ", "\t", "\n", " \n  ", "\n\n"]))
    return "".join(pieces) + "end"


def random_ids(seed: int, length: int, alphabet: int) -> list[int]:
    """`length` ids drawn from range(alphabet) with a fixed seed: few symbols, many overlaps."""
    rng = random.Random(seed)
    return [rng.randrange(alphabet) for _ in range(length)]


@functools.lru_cache(maxsize=None)
def shakespeare_tokenizer(num_merges: int = 200) -> BPETokenizer:
    """course_lib's tokenizer trained on the first 20,000 characters of Tiny Shakespeare."""
    tokenizer = BPETokenizer(pattern=GPT4_SPLIT_PATTERN)
    tokenizer.train(shakespeare(0, 20_000), vocab_size=256 + num_merges)
    return tokenizer


@functools.lru_cache(maxsize=None)
def cl100k_prefix(num_merges: int = 2_000) -> tuple[tiktoken.Encoding, list[tuple[int, int]], list[int]]:
    """GPT-4's cl100k_base cut to its first `num_merges` merges, in the exercise's id convention.

    Returns (encoding, merges, to_learner): the cut tiktoken encoding, its merges numbered as the
    exercise numbers them (bytes are 0..255, merge i creates 256 + i) and the table that turns a
    tiktoken id into that numbering. cl100k_base gives single bytes ids 0..255 in another order
    and its merged tokens ids 256, 257, ... in merge order, so only the bytes need renaming.
    A cut keeps encode fast even for a learner who replays every merge over the whole text.
    """
    full = tiktoken.get_encoding("cl100k_base")
    ranks = {token: rank for token, rank in full._mergeable_ranks.items() if rank < 256 + num_merges}
    encoding = tiktoken.Encoding(
        name=f"cl100k_base_first_{num_merges}_merges",
        pat_str=full._pat_str,
        mergeable_ranks=ranks,
        special_tokens={},
    )
    tokenizer = BPETokenizer.from_tiktoken(encoding)
    to_learner = list(range(256 + num_merges))
    for byte, token_id in enumerate(tokenizer.byte_ids):
        to_learner[token_id] = byte
    merges = [(to_learner[a], to_learner[b]) for a, b in tokenizer.merges]
    return encoding, merges, to_learner


def shakespeare_merges() -> list[tuple[int, int]]:
    """The 200 merges course_lib learns from the start of Tiny Shakespeare, in learning order."""
    return list(shakespeare_tokenizer().merges)


def cl100k_merges() -> list[tuple[int, int]]:
    """GPT-4's first 2,000 merges, numbered as the exercise numbers ids."""
    return list(cl100k_prefix()[1])


@functools.lru_cache(maxsize=None)
def cl100k_ids(text: str) -> list[int]:
    """tiktoken's cl100k prefix encoding of `text`, renumbered as the exercise numbers ids."""
    encoding, _, to_learner = cl100k_prefix()
    return [to_learner[token_id] for token_id in encoding.encode_ordinary(text)]


# ---------------------------------------------------------------------------------------------
# Showing plain values as the learner's code would print them (messages of visible checks)
# ---------------------------------------------------------------------------------------------


def show_pair_counts(cases: list) -> str:
    """[[[1, 2, 2], [2, 3, 1]], []] -> '{(1, 2): 2, (2, 3): 1}, {}'"""
    return ", ".join("{" + ", ".join(f"({a}, {b}): {n}" for a, b, n in rows) + "}" for rows in cases)


def show_pairs(rows: list) -> str:
    """[[97, 97], [97, 98]] -> '[(97, 97), (97, 98)]'"""
    return "[" + ", ".join(f"({a}, {b})" for a, b in rows) + "]"


def show_each(cases: list) -> str:
    """One result per call, in the order of the calls: [[256, 1], [256, 256]] -> '[256, 1], [256, 256]'"""
    return ", ".join(map(repr, cases))


def show_result_and_input(cases: list) -> str:
    """[[[300, 1], [7, 8]]] -> '[300, 1] (the input list is now [7, 8])'"""
    return ", ".join(f"{result!r} (the input list is now {given!r})" for result, given in cases)


# ---------------------------------------------------------------------------------------------
# References (trusted side): each gets the check's inputs as plain data
# ---------------------------------------------------------------------------------------------


def expect_pair_counts(*counts: dict) -> Any:
    """Hand-written dicts {(a, b): n} as a reference, in the form call_get_pair_counts returns."""
    return expect([pair_count_rows(c) for c in counts])


def reference_get_pair_counts(cases: list) -> list[list[list[int]]]:
    return [pair_count_rows(get_pair_counts(ids)) for ids in cases]


def reference_merge(cases: list) -> list[list[int]]:
    return [merge(ids, tuple(pair), new_id) for ids, pair, new_id in cases]


def reference_train_bpe(text: str, vocab_size: int) -> list[list[int]]:
    tokenizer = BPETokenizer(pattern=GPT4_SPLIT_PATTERN)
    tokenizer.train(text, vocab_size)
    return [list(pair) for pair in tokenizer.merges]


def reference_encode_shakespeare(text: str, merges: list) -> list[int]:
    """tiktoken's encoding of `text` with course_lib's Shakespeare merges (the `merges` the learner
    gets; tiktoken's ids agree with the exercise's by design)."""
    return shakespeare_tokenizer().to_tiktoken().encode_ordinary(text)


def reference_encode_cl100k(text: str, merges: list) -> list[int]:
    """tiktoken's encoding of `text` with GPT-4's first merges (the `merges` the learner gets)."""
    return cl100k_ids(text)


def reference_decode_each(ids: list, merges: list) -> list[str]:
    """tiktoken's own decode of each cl100k-prefix token alone (it also decodes with errors="replace")."""
    encoding, _, to_learner = cl100k_prefix()
    to_tiktoken = {learner_id: token_id for token_id, learner_id in enumerate(to_learner)}
    return [encoding.decode([to_tiktoken[token_id]]) for token_id in ids]


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------

# The notebook's running example: "aaabdaaabac" (a=97, b=98, c=99, d=100) is a single chunk.
# Counts: aa 4, ab 2, ... -> (97, 97) -> 256. Then (256, 97) and (97, 98) tie at 2; the smaller
# pair (97, 98) -> 257. Then (256, 257) occurs twice -> 258.
ABC_MERGES = [(97, 97), (97, 98), (256, 257)]

SHAKESPEARE_SLICE = partial(shakespeare, 500_000, 3_000)
HELD_OUT_SHAKESPEARE = partial(shakespeare, 700_000, 2_000)
UTF8_CASES = [list(MULTILINGUAL.encode("utf-8")), list(EMOJI.encode("utf-8"))]
MIXED = MULTILINGUAL + " " + EMOJI

CHECKS: list[Check] = [
    # ---- get_pair_counts: 3 points -------------------------------------------------------
    Check(
        name="get_pair_counts counts each adjacent pair",
        task="get_pair_counts",
        points=1,
        visibility="visible",
        call=call_get_pair_counts,
        inputs={"cases": [[1, 2, 3, 1, 2]]},
        reference=expect_pair_counts({(1, 2): 2, (2, 3): 1, (3, 1): 1}),
        describe="get_pair_counts([1, 2, 3, 1, 2])",
        show=show_pair_counts,
    ),
    Check(
        name="get_pair_counts counts overlapping repeats and handles short lists",
        task="get_pair_counts",
        points=1,
        visibility="visible",
        call=call_get_pair_counts,
        inputs={"cases": [[5, 5, 5, 5], [], [7]]},
        reference=expect_pair_counts({(5, 5): 3}, {}, {}),
        describe="get_pair_counts([5, 5, 5, 5]), get_pair_counts([]), get_pair_counts([7])",
        show=show_pair_counts,
    ),
    Check(
        name="get_pair_counts on the UTF-8 bytes of multilingual text",
        task="get_pair_counts",
        points=1,
        visibility="hidden",
        call=call_get_pair_counts,
        inputs={"cases": UTF8_CASES},
        reference=reference_get_pair_counts,
        describe="get_pair_counts(<UTF-8 bytes of text in 8 scripts>), "
        "get_pair_counts(<UTF-8 bytes of emoji>)",
    ),
    # ---- merge: 4 points -----------------------------------------------------------------
    Check(
        name="merge replaces non-overlapping pairs",
        task="merge",
        points=1,
        visibility="visible",
        call=call_merge,
        inputs={"cases": [([5, 6, 6, 7, 9], (6, 7), 99)]},
        reference=expect([[5, 6, 99, 9]]),
        describe="merge([5, 6, 6, 7, 9], (6, 7), 99)",
        show=show_each,
    ),
    Check(
        name="merge scans runs of the same id from left to right",
        task="merge",
        points=1,
        visibility="visible",
        call=call_merge,
        inputs={"cases": [([1, 1, 1], (1, 1), 256), ([1, 1, 1, 1], (1, 1), 256)]},
        reference=expect([[256, 1], [256, 256]]),
        describe="merge([1, 1, 1], (1, 1), 256), merge([1, 1, 1, 1], (1, 1), 256)",
        show=show_each,
    ),
    Check(
        name="merge handles pairs at both ends and leaves its input unchanged",
        task="merge",
        points=1,
        visibility="visible",
        call=call_merge_keeps_input,
        inputs={"cases": [([7, 8, 1, 7, 8], (7, 8), 300), ([1, 2, 3], (3, 1), 9)]},
        # For each call: [its result, the list that was passed in as it is after the call]
        reference=expect([[[300, 1, 300], [7, 8, 1, 7, 8]], [[1, 2, 3], [1, 2, 3]]]),
        describe="merge([7, 8, 1, 7, 8], (7, 8), 300), merge([1, 2, 3], (3, 1), 9)",
        show=show_result_and_input,
    ),
    Check(
        name="merge on a long random sequence with many overlaps",
        task="merge",
        points=1,
        visibility="hidden",
        call=call_merge,
        inputs={"cases": [(partial(random_ids, 7, 3_000, 3), (1, 1), 256)]},
        reference=reference_merge,
        describe="merge(<3,000 random ids from 0..2>, (1, 1), 256)",
    ),
    # ---- train_bpe: 6 points -------------------------------------------------------------
    Check(
        name="train_bpe learns merges in order and breaks ties by the smallest pair",
        task="train_bpe",
        points=1,
        visibility="visible",
        call=call_train_bpe,
        inputs={"text": "aaabdaaabac", "vocab_size": 259},
        reference=expect([list(pair) for pair in ABC_MERGES]),
        describe='train_bpe("aaabdaaabac", 259)',
        show=show_pairs,
    ),
    Check(
        # Chunks: "1", "a", "1", "a", "1", "a", " hello", " hello". Counting across chunks would
        # make (49, 97) = "1a" (3 times) the first merge. Inside chunks the top count is 2, shared
        # by " h" (32, 104), "he", "el", "ll", "lo": (32, 104) is smallest -> 256. Then (256, 101),
        # "el", "ll", "lo" tie: (101, 108) -> 257; then (256, 257), (257, 108), "lo": (108, 111).
        name="train_bpe counts pairs only inside chunks",
        task="train_bpe",
        points=1,
        visibility="visible",
        call=call_train_bpe,
        inputs={"text": "1a1a1a hello hello", "vocab_size": 259},
        reference=expect([[32, 104], [101, 108], [108, 111]]),
        describe='train_bpe("1a1a1a hello hello", 259)',
        show=show_pairs,
    ),
    Check(
        name="train_bpe on a slice of Tiny Shakespeare",
        task="train_bpe",
        points=2,
        visibility="hidden",
        call=call_train_bpe,
        inputs={"text": SHAKESPEARE_SLICE, "vocab_size": 256 + 40},
        reference=reference_train_bpe,
        describe="train_bpe(<3,000 characters of Tiny Shakespeare>, 296)",
    ),
    Check(
        name="train_bpe on multilingual text with emoji",
        task="train_bpe",
        points=1,
        visibility="hidden",
        call=call_train_bpe,
        inputs={"text": MULTILINGUAL + "\n" + EMOJI, "vocab_size": 256 + 30},
        reference=reference_train_bpe,
        describe="train_bpe(<text in 8 scripts with emoji>, 286)",
    ),
    Check(
        name="train_bpe on runs of digits and whitespace",
        task="train_bpe",
        points=1,
        visibility="hidden",
        call=call_train_bpe,
        inputs={"text": digits_and_spaces, "vocab_size": 256 + 25},
        reference=reference_train_bpe,
        describe="train_bpe(<generated numbers, words, spaces, tabs and newlines>, 281)",
    ),
    # ---- encode: 5 points ----------------------------------------------------------------
    Check(
        name="encode without merges gives the UTF-8 bytes",
        task="encode",
        points=1,
        visibility="visible",
        call=call_encode,
        inputs={"text": "héllo 👋", "merges": []},
        reference=expect([104, 195, 169, 108, 108, 111, 32, 240, 159, 145, 139]),
        describe='encode("héllo 👋", [])',
    ),
    Check(
        # Both (97, 98) and (98, 99) occur in "abc"; (98, 99) was learned first (id 256), so it
        # wins even though (97, 98) comes first in the text.
        name="encode applies the earliest learned merge first",
        task="encode",
        points=1,
        visibility="visible",
        call=call_encode,
        inputs={"text": "abc", "merges": [(98, 99), (97, 98)]},
        reference=expect([97, 256]),
        describe='encode("abc", [(98, 99), (97, 98)])',
    ),
    Check(
        name="encode never merges across chunks",
        task="encode",
        points=1,
        visibility="visible",
        call=call_encode,
        inputs={"text": "aaabdaaabac ab ab", "merges": ABC_MERGES + [(99, 32)]},
        # "aaabdaaabac" -> [258, 100, 258, 97, 99]; " ab" -> [32, 257] twice. (99, 32) = "c " never
        # applies: the "c" ends one chunk and the space starts the next.
        reference=expect([258, 100, 258, 97, 99, 32, 257, 32, 257]),
        describe='encode("aaabdaaabac ab ab", [(97, 97), (97, 98), (256, 257), (99, 32)])',
    ),
    Check(
        name="encode matches tiktoken with merges trained on Tiny Shakespeare",
        task="encode",
        points=1,
        visibility="hidden",
        call=call_encode,
        inputs={"text": HELD_OUT_SHAKESPEARE, "merges": shakespeare_merges},
        reference=reference_encode_shakespeare,
        describe="encode(<2,000 other characters of Tiny Shakespeare>, "
        "<200 merges trained on Tiny Shakespeare>)",
    ),
    Check(
        name="encode matches tiktoken's cl100k_base (first 2,000 merges) on multilingual text",
        task="encode",
        points=1,
        visibility="hidden",
        call=call_encode,
        inputs={"text": MIXED, "merges": cl100k_merges},
        reference=reference_encode_cl100k,
        describe="encode(<text in 8 scripts with emoji>, <GPT-4's first 2,000 merges>)",
    ),
    # ---- decode: 4 points ----------------------------------------------------------------
    Check(
        name="decode reads UTF-8 and expands merged ids",
        task="decode",
        points=1,
        visibility="visible",
        call=call_decode,
        inputs={"cases": [([104, 195, 169, 108, 108, 111], []), ([258, 100, 258, 97, 99], ABC_MERGES)]},
        reference=expect(["héllo", "aaabdaaabac"]),
        describe="decode([104, 195, 169, 108, 108, 111], []), "
        "decode([258, 100, 258, 97, 99], [(97, 97), (97, 98), (256, 257)])",
        show=show_each,
    ),
    Check(
        # 128 (0x80) can only continue a character; 228 189 (E4 BD) starts "你" (E4 BD A0) and stops.
        name="decode replaces invalid UTF-8 with U+FFFD",
        task="decode",
        points=1,
        visibility="visible",
        call=call_decode,
        inputs={"cases": [([128], []), ([104, 105, 228, 189], []), ([228, 189, 160], [])]},
        reference=expect(["\ufffd", "hi\ufffd", "你"]),
        describe="decode([128], []), decode([104, 105, 228, 189], []), decode([228, 189, 160], [])",
        show=show_each,
    ),
    Check(
        name="decode inverts tiktoken's cl100k_base (first 2,000 merges) on multilingual text",
        task="decode",
        points=1,
        visibility="hidden",
        call=call_decode,
        inputs={"cases": [(partial(cl100k_ids, MIXED), cl100k_merges)]},
        # The text tiktoken encoded: decoding its ids must give it back.
        reference=expect([MIXED]),
        describe="decode(<ids of text in 8 scripts with emoji>, <GPT-4's first 2,000 merges>)",
    ),
    Check(
        name="decode handles tokens that split characters, like tiktoken",
        task="decode",
        points=1,
        visibility="hidden",
        call=call_decode_each,
        inputs={"ids": partial(cl100k_ids, EMOJI + " " + MULTILINGUAL), "merges": cl100k_merges},
        reference=reference_decode_each,
        describe="decode([id], <GPT-4's first 2,000 merges>) for each id of <emoji and text in 8 scripts>",
    ),
]

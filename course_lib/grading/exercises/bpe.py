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

Each `call_*` function runs on the learner's side and turns what the learner returned into plain
data, with a clear CheckFailure when it has the wrong type; each `reference_*` function runs on
the trusted side.
"""

from __future__ import annotations

import functools
import random
from functools import partial
from typing import Any

import tiktoken

from course_lib.data import load_text
from course_lib.grading.checks import Check, CheckFailure, CheckSetupError, learner_function, quote
from course_lib.tokenization.bpe import BPETokenizer, get_pair_counts, merge
from course_lib.tokenization.patterns import GPT4_SPLIT_PATTERN

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


def resolve(value: Any) -> Any:
    """An input given directly, or built by calling a zero-argument function (a hidden input).

    Building can fail for reasons that are not the learner's (offline, no Tiny Shakespeare file):
    that is a CheckSetupError, reported as such.
    """
    if not callable(value):
        return value
    try:
        return value()
    except Exception as err:
        raise CheckSetupError(f"could not prepare its input: {type(err).__name__}: {err}") from err


def _merges_of(source: str) -> list[tuple[int, int]]:
    # A new list each time: the learner's code may change the list it is given.
    if source == "shakespeare":
        return list(shakespeare_tokenizer().merges)
    if source == "cl100k_prefix":
        return list(cl100k_prefix()[1])
    raise ValueError(f"unknown merges source {source!r}")


def merges_of(merges: Any) -> list[tuple[int, int]]:
    """The merges a check hands to the learner: a list of pairs, or the name of a source of merges
    ("shakespeare": course_lib trained on Tiny Shakespeare; "cl100k_prefix": GPT-4's first ones)."""
    if isinstance(merges, str):
        return resolve(partial(_merges_of, merges))
    return [tuple(pair) for pair in merges]


# ---------------------------------------------------------------------------------------------
# Turning the learner's return values into plain data (learner's side)
# ---------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_list(value: Any, function: str) -> list[int]:
    """`value` as a plain list of ints, or a CheckFailure naming what `function` returned instead."""
    if not isinstance(value, list):
        got = f"{type(value).__name__} {quote(value, 80)}"
        raise CheckFailure(f"{function} should return a list of ints, got {got}")
    for item in value:
        if not _is_int(item):
            raise CheckFailure(f"{function} should return a list of ints, but it contains {quote(item, 80)}")
    return [int(item) for item in value]


def pair_count_rows(counts: Any, function: str = "get_pair_counts") -> list[list[int]]:
    """A dict {(a, b): count} as sorted rows [[a, b, count], ...], or a CheckFailure.

    pair_count_rows({(2, 3): 1, (1, 2): 2}) -> [[1, 2, 2], [2, 3, 1]]
    """
    if not isinstance(counts, dict):
        raise CheckFailure(
            f"{function} should return a dict mapping pairs (a, b) to counts, got {type(counts).__name__}"
        )
    rows = []
    for pair, count in counts.items():
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(map(_is_int, pair))):
            raise CheckFailure(f"{function}'s keys should be pairs of ints like (1, 2), got {quote(pair, 80)}")
        if not _is_int(count):
            raise CheckFailure(f"{function}'s values should be int counts, got {quote(count, 80)} for {pair}")
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


# ---------------------------------------------------------------------------------------------
# Calls (learner's side): each takes the learner's namespace and the check's inputs
# ---------------------------------------------------------------------------------------------


def call_get_pair_counts(namespace: dict, cases: list) -> list[list[list[int]]]:
    """get_pair_counts(ids) for each ids in `cases`, as sorted rows [a, b, count]."""
    get_pair_counts = learner_function(namespace, "get_pair_counts")
    cases = [list(resolve(ids)) for ids in cases]
    return [pair_count_rows(get_pair_counts(ids)) for ids in cases]


def call_merge(namespace: dict, cases: list) -> list[list[int]]:
    """merge(ids, pair, new_id) for each (ids, pair, new_id) in `cases`."""
    merge = learner_function(namespace, "merge")
    cases = [(list(resolve(ids)), tuple(pair), new_id) for ids, pair, new_id in cases]
    return [int_list(merge(ids, pair, new_id), "merge") for ids, pair, new_id in cases]


def call_merge_keeps_input(namespace: dict, cases: list) -> list[list[list[int]]]:
    """For each case, [merge's result, the ids list as it is after the call] (it must be unchanged)."""
    merge = learner_function(namespace, "merge")
    results = []
    for ids, pair, new_id in cases:
        given = list(ids)
        results.append([int_list(merge(given, tuple(pair), new_id), "merge"), given])
    return results


def call_train_bpe(namespace: dict, text: Any, vocab_size: int) -> list[list[int]]:
    """train_bpe(text, vocab_size) as rows [a, b]."""
    train_bpe = learner_function(namespace, "train_bpe")
    text = resolve(text)
    return pair_list(train_bpe(text, vocab_size), "train_bpe")


def call_encode(namespace: dict, text: Any, merges: Any) -> list[int]:
    """encode(text, merges); `merges` is a list or the name of a merges source (see `merges_of`)."""
    encode = learner_function(namespace, "encode")
    text, merges = resolve(text), merges_of(merges)
    return int_list(encode(text, merges), "encode")


def call_decode(namespace: dict, cases: list) -> list[str]:
    """decode(ids, merges) for each (ids, merges) in `cases`, each result a str."""
    decode = learner_function(namespace, "decode")
    results = []
    for ids, merges in cases:
        ids, merges = list(resolve(ids)), merges_of(merges)
        text = decode(ids, merges)
        if not isinstance(text, str):
            raise CheckFailure(f"decode should return a str, got {type(text).__name__} {quote(text, 80)}")
        results.append(str(text))
    return results


def call_decode_each_token(namespace: dict, text: Any) -> list[str]:
    """decode([id], merges) for every id of `text` under the cl100k prefix: many split characters."""
    ids = resolve(partial(cl100k_ids, resolve(text)))
    return call_decode(namespace, [([token_id], "cl100k_prefix") for token_id in ids])


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
# References (trusted side)
# ---------------------------------------------------------------------------------------------


def expect(value: Any) -> Any:
    """A value worked out by hand (visible checks only; the notebook shows the same examples)."""
    return value


def expect_pair_counts(*counts: dict) -> list[list[list[int]]]:
    """Hand-written dicts {(a, b): n}, in the form call_get_pair_counts returns."""
    return [pair_count_rows(c) for c in counts]


def reference_get_pair_counts(cases: list) -> list[list[list[int]]]:
    return [pair_count_rows(get_pair_counts(resolve(ids))) for ids in cases]


def reference_merge(cases: list) -> list[list[int]]:
    return [merge(resolve(ids), tuple(pair), new_id) for ids, pair, new_id in cases]


def reference_train_bpe(text: Any, vocab_size: int) -> list[list[int]]:
    tokenizer = BPETokenizer(pattern=GPT4_SPLIT_PATTERN)
    tokenizer.train(resolve(text), vocab_size)
    return [list(pair) for pair in tokenizer.merges]


def reference_encode_shakespeare(text: Any) -> list[int]:
    """tiktoken's encoding of `text` with course_lib's Shakespeare merges (the ids agree by design)."""
    return shakespeare_tokenizer().to_tiktoken().encode_ordinary(resolve(text))


def cl100k_ids(text: str) -> list[int]:
    """tiktoken's cl100k prefix encoding of `text`, renumbered as the exercise numbers ids."""
    encoding, _, to_learner = cl100k_prefix()
    return [to_learner[token_id] for token_id in encoding.encode_ordinary(text)]


def reference_decode_each_token(text: Any) -> list[str]:
    """tiktoken's own decode of each token alone (tiktoken also decodes with errors="replace")."""
    encoding = cl100k_prefix()[0]
    return [encoding.decode([token_id]) for token_id in encoding.encode_ordinary(resolve(text))]


def reference_text(text: Any) -> list[str]:
    """The text itself: what decode must give back for ids that encode it."""
    return [resolve(text)]


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
MIXED_IDS = partial(cl100k_ids, MIXED)

CHECKS: list[Check] = [
    # ---- get_pair_counts: 3 points -------------------------------------------------------
    Check(
        name="get_pair_counts counts each adjacent pair",
        task="get_pair_counts",
        points=1,
        visibility="visible",
        call=partial(call_get_pair_counts, cases=[[1, 2, 3, 1, 2]]),
        reference=partial(expect_pair_counts, {(1, 2): 2, (2, 3): 1, (3, 1): 1}),
        describe="get_pair_counts([1, 2, 3, 1, 2])",
        show=show_pair_counts,
    ),
    Check(
        name="get_pair_counts counts overlapping repeats and handles short lists",
        task="get_pair_counts",
        points=1,
        visibility="visible",
        call=partial(call_get_pair_counts, cases=[[5, 5, 5, 5], [], [7]]),
        reference=partial(expect_pair_counts, {(5, 5): 3}, {}, {}),
        describe="get_pair_counts([5, 5, 5, 5]), get_pair_counts([]), get_pair_counts([7])",
        show=show_pair_counts,
    ),
    Check(
        name="get_pair_counts on the UTF-8 bytes of multilingual text",
        task="get_pair_counts",
        points=1,
        visibility="hidden",
        call=partial(call_get_pair_counts, cases=UTF8_CASES),
        reference=partial(reference_get_pair_counts, cases=UTF8_CASES),
        describe="get_pair_counts(<UTF-8 bytes of text in 8 scripts>), "
        "get_pair_counts(<UTF-8 bytes of emoji>)",
    ),
    # ---- merge: 4 points -----------------------------------------------------------------
    Check(
        name="merge replaces non-overlapping pairs",
        task="merge",
        points=1,
        visibility="visible",
        call=partial(call_merge, cases=[([5, 6, 6, 7, 9], (6, 7), 99)]),
        reference=partial(expect, [[5, 6, 99, 9]]),
        describe="merge([5, 6, 6, 7, 9], (6, 7), 99)",
        show=show_each,
    ),
    Check(
        name="merge scans runs of the same id from left to right",
        task="merge",
        points=1,
        visibility="visible",
        call=partial(call_merge, cases=[([1, 1, 1], (1, 1), 256), ([1, 1, 1, 1], (1, 1), 256)]),
        reference=partial(expect, [[256, 1], [256, 256]]),
        describe="merge([1, 1, 1], (1, 1), 256), merge([1, 1, 1, 1], (1, 1), 256)",
        show=show_each,
    ),
    Check(
        name="merge handles pairs at both ends and leaves its input unchanged",
        task="merge",
        points=1,
        visibility="visible",
        call=partial(call_merge_keeps_input, cases=[([7, 8, 1, 7, 8], (7, 8), 300), ([1, 2, 3], (3, 1), 9)]),
        # For each call: [its result, the list that was passed in as it is after the call]
        reference=partial(expect, [[[300, 1, 300], [7, 8, 1, 7, 8]], [[1, 2, 3], [1, 2, 3]]]),
        describe="merge([7, 8, 1, 7, 8], (7, 8), 300), merge([1, 2, 3], (3, 1), 9)",
        show=show_result_and_input,
    ),
    Check(
        name="merge on a long random sequence with many overlaps",
        task="merge",
        points=1,
        visibility="hidden",
        call=partial(call_merge, cases=[(partial(random_ids, 7, 3_000, 3), (1, 1), 256)]),
        reference=partial(reference_merge, cases=[(partial(random_ids, 7, 3_000, 3), (1, 1), 256)]),
        describe="merge(<3,000 random ids from 0..2>, (1, 1), 256)",
    ),
    # ---- train_bpe: 6 points -------------------------------------------------------------
    Check(
        name="train_bpe learns merges in order and breaks ties by the smallest pair",
        task="train_bpe",
        points=1,
        visibility="visible",
        call=partial(call_train_bpe, text="aaabdaaabac", vocab_size=259),
        reference=partial(expect, [list(pair) for pair in ABC_MERGES]),
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
        call=partial(call_train_bpe, text="1a1a1a hello hello", vocab_size=259),
        reference=partial(expect, [[32, 104], [101, 108], [108, 111]]),
        describe='train_bpe("1a1a1a hello hello", 259)',
        show=show_pairs,
    ),
    Check(
        name="train_bpe on a slice of Tiny Shakespeare",
        task="train_bpe",
        points=2,
        visibility="hidden",
        call=partial(call_train_bpe, text=SHAKESPEARE_SLICE, vocab_size=256 + 40),
        reference=partial(reference_train_bpe, text=SHAKESPEARE_SLICE, vocab_size=256 + 40),
        describe="train_bpe(<3,000 characters of Tiny Shakespeare>, 296)",
    ),
    Check(
        name="train_bpe on multilingual text with emoji",
        task="train_bpe",
        points=1,
        visibility="hidden",
        call=partial(call_train_bpe, text=MULTILINGUAL + "\n" + EMOJI, vocab_size=256 + 30),
        reference=partial(reference_train_bpe, text=MULTILINGUAL + "\n" + EMOJI, vocab_size=256 + 30),
        describe="train_bpe(<text in 8 scripts with emoji>, 286)",
    ),
    Check(
        name="train_bpe on runs of digits and whitespace",
        task="train_bpe",
        points=1,
        visibility="hidden",
        call=partial(call_train_bpe, text=digits_and_spaces, vocab_size=256 + 25),
        reference=partial(reference_train_bpe, text=digits_and_spaces, vocab_size=256 + 25),
        describe="train_bpe(<generated numbers, words, spaces, tabs and newlines>, 281)",
    ),
    # ---- encode: 5 points ----------------------------------------------------------------
    Check(
        name="encode without merges gives the UTF-8 bytes",
        task="encode",
        points=1,
        visibility="visible",
        call=partial(call_encode, text="héllo 👋", merges=[]),
        reference=partial(expect, [104, 195, 169, 108, 108, 111, 32, 240, 159, 145, 139]),
        describe='encode("héllo 👋", [])',
    ),
    Check(
        # Both (97, 98) and (98, 99) occur in "abc"; (98, 99) was learned first (id 256), so it
        # wins even though (97, 98) comes first in the text.
        name="encode applies the earliest learned merge first",
        task="encode",
        points=1,
        visibility="visible",
        call=partial(call_encode, text="abc", merges=[(98, 99), (97, 98)]),
        reference=partial(expect, [97, 256]),
        describe="encode(\"abc\", [(98, 99), (97, 98)])",
    ),
    Check(
        name="encode never merges across chunks",
        task="encode",
        points=1,
        visibility="visible",
        call=partial(call_encode, text="aaabdaaabac ab ab", merges=ABC_MERGES + [(99, 32)]),
        # "aaabdaaabac" -> [258, 100, 258, 97, 99]; " ab" -> [32, 257] twice. (99, 32) = "c " never
        # applies: the "c" ends one chunk and the space starts the next.
        reference=partial(expect, [258, 100, 258, 97, 99, 32, 257, 32, 257]),
        describe='encode("aaabdaaabac ab ab", [(97, 97), (97, 98), (256, 257), (99, 32)])',
    ),
    Check(
        name="encode matches tiktoken with merges trained on Tiny Shakespeare",
        task="encode",
        points=1,
        visibility="hidden",
        call=partial(call_encode, text=HELD_OUT_SHAKESPEARE, merges="shakespeare"),
        reference=partial(reference_encode_shakespeare, text=HELD_OUT_SHAKESPEARE),
        describe="encode(<2,000 other characters of Tiny Shakespeare>, "
        "<200 merges trained on Tiny Shakespeare>)",
    ),
    Check(
        name="encode matches tiktoken's cl100k_base (first 2,000 merges) on multilingual text",
        task="encode",
        points=1,
        visibility="hidden",
        call=partial(call_encode, text=MIXED, merges="cl100k_prefix"),
        reference=MIXED_IDS,
        describe="encode(<text in 8 scripts with emoji>, <GPT-4's first 2,000 merges>)",
    ),
    # ---- decode: 4 points ----------------------------------------------------------------
    Check(
        name="decode reads UTF-8 and expands merged ids",
        task="decode",
        points=1,
        visibility="visible",
        call=partial(
            call_decode, cases=[([104, 195, 169, 108, 108, 111], []), ([258, 100, 258, 97, 99], ABC_MERGES)]
        ),
        reference=partial(expect, ["héllo", "aaabdaaabac"]),
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
        call=partial(call_decode, cases=[([128], []), ([104, 105, 228, 189], []), ([228, 189, 160], [])]),
        reference=partial(expect, ["\ufffd", "hi\ufffd", "你"]),
        describe="decode([128], []), decode([104, 105, 228, 189], []), decode([228, 189, 160], [])",
        show=show_each,
    ),
    Check(
        name="decode inverts tiktoken's cl100k_base (first 2,000 merges) on multilingual text",
        task="decode",
        points=1,
        visibility="hidden",
        call=partial(call_decode, cases=[(MIXED_IDS, "cl100k_prefix")]),
        reference=partial(reference_text, MIXED),
        describe="decode(<ids of text in 8 scripts with emoji>, <GPT-4's first 2,000 merges>)",
    ),
    Check(
        name="decode handles tokens that split characters, like tiktoken",
        task="decode",
        points=1,
        visibility="hidden",
        call=partial(call_decode_each_token, text=EMOJI + " " + MULTILINGUAL),
        reference=partial(reference_decode_each_token, text=EMOJI + " " + MULTILINGUAL),
        describe="decode([id], <GPT-4's first 2,000 merges>) for each id of <emoji and text in 8 scripts>",
    ),
]

"""The checks of exercise 01_bpe: get_pair_counts, merge, train_bpe, encode, decode.

The learner writes, in exercises/01_bpe/bpe.ipynb:

    get_pair_counts(ids: list[int]) -> dict[tuple[int, int], int]
    merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]
    train_bpe(text: str, vocab_size: int) -> list[tuple[int, int]]    # merge i creates 256 + i
    encode(text: str, merges: list[tuple[int, int]]) -> list[int]
    decode(ids: list[int], merges: list[tuple[int, int]]) -> str       # errors="replace"

train_bpe and encode cut the text with GPT4_SPLIT_PATTERN first (merges never cross chunks), and
train_bpe breaks ties as course_lib does: the highest count wins, among equal counts the
smallest pair (a, b). Visible checks use small inputs worked out by hand (the notebook's
examples); hidden ones inputs the learner has not seen, with expected values from
course_lib.tokenization and tiktoken.
"""

from __future__ import annotations

import functools
import random

import tiktoken

from course_lib.datasets import load_text
from course_lib.tokenization.bpe import BPETokenizer, get_pair_counts, merge
from course_lib.tokenization.patterns import GPT4_SPLIT_PATTERN
from course_lib.tokenization.tiktoken_bridge import from_tiktoken, to_tiktoken
from grading import seeds
from grading.checks import Call, Check, Input, call

NOTEBOOK = "bpe.ipynb"
FORBIDDEN: dict[str, list[str]] = {}  # no torch in this exercise

PAIR_COUNTS = {"kind": "exercises.bpe_calls.pair_counts"}
PAIRS = {"kind": "exercises.bpe_calls.pairs"}

# ---- hidden inputs: built on the grader's side from fixed seeds and slices ---------------------

MULTILINGUAL = (
    "Grüße aus München! Привет, как дела? こんにちは、世界。 مرحبا بالعالم. 你好，朋友们！"
    " Ελληνικά και naïve café — ¿Qué tal? 🌍🚀 नमस्ते दुनिया. Zoë's façade costs 1234.50€ today."
)
EMOJI = "Family 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵🇧🇷; hands 👋🏽👋🏿; hearts ❤️💙💚 — 😀😃😄😁 done."
MIXED = MULTILINGUAL + " " + EMOJI


def digits_and_spaces(seed: int = 1234, words: int = 300) -> str:
    """Numbers, words and runs of spaces, tabs and newlines: GPT-4's pattern cuts digit runs into
    groups of at most 3 and keeps whitespace apart from the next word, so many short chunks."""
    rng = random.Random(seeds.seed(seed))
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
    """`length` ids drawn from range(alphabet): few symbols, many overlapping pairs."""
    rng = random.Random(seeds.seed(seed))
    return [rng.randrange(alphabet) for _ in range(length)]


@functools.cache
def shakespeare_tokenizer() -> BPETokenizer:
    """course_lib's tokenizer with 200 merges trained on the first 20,000 characters of Tiny Shakespeare."""
    tokenizer = BPETokenizer(pattern=GPT4_SPLIT_PATTERN)
    tokenizer.train(load_text("tinyshakespeare")[:20_000], vocab_size=256 + 200)
    return tokenizer


@functools.cache
def cl100k_prefix(num_merges: int = 2_000) -> tuple[tiktoken.Encoding, list[tuple[int, int]], list[int]]:
    """GPT-4's cl100k_base cut to its first `num_merges` merges, in the exercise's numbering.

    Returns (encoding, merges, to_learner): the cut encoding, its merges numbered as the exercise
    numbers them (bytes 0..255, merge i creates 256 + i) and the table that turns a tiktoken id
    into that numbering (cl100k_base numbers single bytes in another order; merged tokens are
    256, 257, ... in merge order). A cut keeps encode fast for a learner who replays every merge.
    """
    full = tiktoken.get_encoding("cl100k_base")
    ranks = {token: rank for token, rank in full._mergeable_ranks.items() if rank < 256 + num_merges}
    encoding = tiktoken.Encoding(name=f"cl100k_base_first_{num_merges}_merges", pat_str=full._pat_str,
                                 mergeable_ranks=ranks, special_tokens={})
    tokenizer = from_tiktoken(encoding)
    to_learner = list(range(256 + num_merges))
    for byte, token_id in enumerate(tokenizer.byte_ids):
        to_learner[token_id] = byte
    return encoding, [(to_learner[a], to_learner[b]) for a, b in tokenizer.merges], to_learner


def cl100k_ids(text: str) -> list[int]:
    """tiktoken's cl100k-prefix encoding of `text`, renumbered as the exercise numbers ids."""
    encoding, _, to_learner = cl100k_prefix()
    return [to_learner[token_id] for token_id in encoding.encode_ordinary(text)]


def shakespeare(start: int, length: int) -> Input:
    return Input(lambda: load_text("tinyshakespeare")[start : start + length],
                 f"{length:,} characters of Tiny Shakespeare")


SHAKESPEARE_MERGES = Input(lambda: list(shakespeare_tokenizer().merges), "200 merges trained on Tiny Shakespeare")
CL100K_MERGES = Input(lambda: cl100k_prefix()[1], "GPT-4's first 2,000 merges")

# ---- references (grader's side) ---------------------------------------------------------------


def train_reference(text: str, vocab_size: int) -> list[tuple[int, int]]:
    tokenizer = BPETokenizer(pattern=GPT4_SPLIT_PATTERN)
    tokenizer.train(text, vocab_size)
    return list(tokenizer.merges)


def shakespeare_encode(text: str, merges: list) -> list[int]:
    """tiktoken's encoding with course_lib's Shakespeare merges (the `merges` given; their
    tiktoken ids are the exercise's by design)."""
    return to_tiktoken(shakespeare_tokenizer()).encode_ordinary(text)


def cl100k_encode(text: str, merges: list) -> list[int]:
    """tiktoken's encoding with GPT-4's first merges (the `merges` given), renumbered."""
    return cl100k_ids(text)


def tiktoken_decode_each(ids: list[int], merges: list) -> list[str]:
    """tiktoken's own decode of each cl100k-prefix token alone (errors="replace" too)."""
    encoding, _, to_learner = cl100k_prefix()
    to_tiktoken = {learner_id: token_id for token_id, learner_id in enumerate(to_learner)}
    return [encoding.decode([to_tiktoken[token_id]]) for token_id in ids]


# ---- the checks -------------------------------------------------------------------------------

# The notebook's running example: "aaabdaaabac" (a=97, b=98, c=99, d=100) is a single chunk.
# Counts: aa 4, ab 2, ... -> (97, 97) -> 256. Then (256, 97) and (97, 98) tie at 2; the smaller
# pair (97, 98) -> 257. Then (256, 257) occurs twice -> 258.
ABC_MERGES = [(97, 97), (97, 98), (256, 257)]


def counts(*ids: list[int]) -> tuple[Call, ...]:
    return tuple(call("get_pair_counts", each, returns=PAIR_COUNTS) for each in ids)


def merges(*cases: tuple) -> tuple[Call, ...]:
    return tuple(call("merge", *case, returns="ints") for case in cases)


def decodes(*cases: tuple) -> tuple[Call, ...]:
    return tuple(call("decode", *case, returns="text") for case in cases)


def show_pair_counts(rows: list) -> str:
    """[[1, 2, 2], [2, 3, 1]] -> '{(1, 2): 2, (2, 3): 1}'"""
    return "{" + ", ".join(f"({a}, {b}): {n}" for a, b, n in rows) + "}"


def show_pairs(rows: list) -> str:
    """[[97, 97], [97, 98]] -> '[(97, 97), (97, 98)]'"""
    return "[" + ", ".join(f"({a}, {b})" for a, b in rows) + "]"


CHECKS: list[Check] = [
    # get_pair_counts: 3 points
    Check("get_pair_counts", "get_pair_counts counts each adjacent pair", counts([1, 2, 3, 1, 2]),
          expect={(1, 2): 2, (2, 3): 1, (3, 1): 1}, show=show_pair_counts),
    Check("get_pair_counts", "get_pair_counts counts overlapping repeats and handles short lists",
          counts([5, 5, 5, 5], [], [7]), expect=[{(5, 5): 3}, {}, {}], show=show_pair_counts),
    Check("get_pair_counts", "get_pair_counts on the UTF-8 bytes of multilingual text",
          counts(list(MULTILINGUAL.encode()), list(EMOJI.encode())), reference=get_pair_counts, hidden=True),
    # merge: 4 points
    Check("merge", "merge replaces non-overlapping pairs", merges(([5, 6, 6, 7, 9], (6, 7), 99)),
          expect=[5, 6, 99, 9]),
    Check("merge", "merge scans runs of the same id from left to right",
          merges(([1, 1, 1], (1, 1), 256), ([1, 1, 1, 1], (1, 1), 256)), expect=[[256, 1], [256, 256]]),
    Check("merge", "merge handles pairs at both ends and leaves its input unchanged",
          tuple(Call("merge", case, adapter="exercises.bpe_calls.merge_keeping_input",
                     steps="then the list it was given (it must not change)")
                for case in [([7, 8, 1, 7, 8], (7, 8), 300), ([1, 2, 3], (3, 1), 9)]),
          expect=[[[300, 1, 300], [7, 8, 1, 7, 8]], [[1, 2, 3], [1, 2, 3]]]),
    Check("merge", "merge on a long random sequence with many overlaps",
          merges((Input(lambda: random_ids(7, 3_000, 3), "3,000 random ids from 0..2"), (1, 1), 256)),
          reference=merge, hidden=True),
    Check("merge", "merge of an empty list and of a single id", merges(([], (1, 2), 256), ([1], (1, 2), 256)),
          expect=[[], [1]]),
    # train_bpe: 6 points
    Check("train_bpe", "train_bpe learns merges in order and breaks ties by the smallest pair",
          call("train_bpe", "aaabdaaabac", 259, returns=PAIRS), expect=ABC_MERGES, show=show_pairs),
    # Chunks: "1", "a", "1", "a", "1", "a", " hello", " hello". Counting across chunks would make
    # (49, 97) = "1a" (3 times) the first merge. Inside chunks the top count is 2, shared by " h"
    # (32, 104), "he", "el", "ll", "lo": (32, 104) is smallest -> 256. Then (256, 101), "el", "ll",
    # "lo" tie: (101, 108) -> 257; then (256, 257), (257, 108), "lo": (108, 111).
    Check("train_bpe", "train_bpe counts pairs only inside chunks",
          call("train_bpe", "1a1a1a hello hello", 259, returns=PAIRS),
          expect=[(32, 104), (101, 108), (108, 111)], show=show_pairs),
    Check("train_bpe", "train_bpe on a slice of Tiny Shakespeare",
          call("train_bpe", shakespeare(500_000, 3_000), 256 + 40, returns=PAIRS),
          reference=train_reference, points=2, hidden=True),
    Check("train_bpe", "train_bpe on multilingual text with emoji",
          call("train_bpe", MULTILINGUAL + "\n" + EMOJI, 256 + 30, returns=PAIRS), reference=train_reference,
          hidden=True),
    Check("train_bpe", "train_bpe on runs of digits and whitespace",
          call("train_bpe", Input(digits_and_spaces, "generated numbers, words, spaces, tabs and newlines"),
               256 + 25, returns=PAIRS),
          reference=train_reference, hidden=True),
    Check("train_bpe", "train_bpe with no merges to learn, or nothing to merge",
          (call("train_bpe", "hello", 256, returns=PAIRS), call("train_bpe", "", 256, returns=PAIRS)),
          expect=[[], []], show=show_pairs),
    # encode: 5 points
    Check("encode", "encode without merges gives the UTF-8 bytes", call("encode", "héllo 👋", [], returns="ints"),
          expect=[104, 195, 169, 108, 108, 111, 32, 240, 159, 145, 139]),
    # Both (97, 98) and (98, 99) occur in "abc"; (98, 99) was learned first (id 256), so it wins
    # even though (97, 98) comes first in the text.
    Check("encode", "encode applies the earliest learned merge first",
          call("encode", "abc", [(98, 99), (97, 98)], returns="ints"), expect=[97, 256]),
    # "aaabdaaabac" -> [258, 100, 258, 97, 99]; " ab" -> [32, 257] twice. (99, 32) = "c " never
    # applies: the "c" ends one chunk and the space starts the next.
    Check("encode", "encode never merges across chunks",
          call("encode", "aaabdaaabac ab ab", ABC_MERGES + [(99, 32)], returns="ints"),
          expect=[258, 100, 258, 97, 99, 32, 257, 32, 257]),
    Check("encode", "encode matches tiktoken with merges trained on Tiny Shakespeare",
          call("encode", shakespeare(700_000, 2_000), SHAKESPEARE_MERGES, returns="ints"),
          reference=shakespeare_encode, hidden=True),
    Check("encode", "encode matches tiktoken's cl100k_base (first 2,000 merges) on multilingual text",
          call("encode", Input(lambda: MIXED, "text in 8 scripts with emoji"), CL100K_MERGES, returns="ints"),
          reference=cl100k_encode, hidden=True),
    Check("encode", "encode of an empty text and of one character",
          (call("encode", "", ABC_MERGES, returns="ints"), call("encode", "a", ABC_MERGES, returns="ints")),
          expect=[[], [97]]),
    # decode: 4 points
    Check("decode", "decode reads UTF-8 and expands merged ids",
          decodes(([104, 195, 169, 108, 108, 111], []), ([258, 100, 258, 97, 99], ABC_MERGES)),
          expect=["héllo", "aaabdaaabac"]),
    # 128 (0x80) can only continue a character; 228 189 (E4 BD) starts "你" (E4 BD A0) and stops.
    Check("decode", "decode replaces invalid UTF-8 with U+FFFD",
          decodes(([128], []), ([104, 105, 228, 189], []), ([228, 189, 160], [])), expect=["\ufffd", "hi\ufffd", "你"]),
    Check("decode", "decode inverts tiktoken's cl100k_base (first 2,000 merges) on multilingual text",
          decodes((Input(lambda: cl100k_ids(MIXED), "ids of text in 8 scripts with emoji"), CL100K_MERGES)),
          expect=MIXED, hidden=True),
    Check("decode", "decode handles tokens that split characters, like tiktoken",
          Call("decode", (Input(lambda: cl100k_ids(EMOJI + " " + MULTILINGUAL), "ids of emoji and text in 8 scripts"),
                          CL100K_MERGES),
               adapter="exercises.bpe_calls.decode_each", steps="one id at a time"),
          reference=tiktoken_decode_each, hidden=True),
    Check("decode", "decode of no ids", decodes(([], ABC_MERGES)), expect=""),
]

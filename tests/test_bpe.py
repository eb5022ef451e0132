"""Tests for course_lib.tokenization.bpe.

References trusted here: examples worked out by hand (in the comments), a deliberately naive
trainer written below that recounts every pair after every merge, and tiktoken (its decoding of
broken UTF-8 and its rules for special tokens).
"""

from __future__ import annotations

import doctest
import json
import random
from collections import Counter

import pytest
import regex
import tiktoken

from course_lib.datasets import load_text
from course_lib.tokenization import bpe, patterns
from course_lib.tokenization import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    GPT4O_SPLIT_PATTERN,
    BPETokenizer,
    get_pair_counts,
    merge,
    to_tiktoken,
    train_merges,
)

# Text in many scripts, emoji (skin tones, ZWJ families, flags), code, numbers and whitespace.
TEXT_ZOO = [
    "",
    "a",
    "Hello, world! It's 2024 and we're tokenizing; I'LL SAY YOU'VE won.",
    "Où se trouve la gare ? Je voudrais un café crème, s'il vous plaît.",
    "Größere Straßenbahnen fahren über die Brücke; Äpfel, Öl und Übermut.",
    "我们今天学习分词器，它把文本切成词元。",
    "東京の天気は晴れです。カタカナとひらがなも混ざります。",
    "안녕하세요, 토크나이저를 배우고 있습니다.",
    "مرحبا بالعالم، هذه جملة قصيرة للاختبار.",
    "नमस्ते दुनिया, यह एक छोटा परीक्षण वाक्य है।",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵🇰🇷 ❤️‍🔥 🙂🙂🙂",
    "def square(x):\n\treturn x ** 2  # comment\n\nif __name__ == '__main__':\n    print(square(3))\n",
    "1234567890 3.14159 1,000,000 000000000000 12345678901234567890",
    "a  b   c    d\n\n\n\t\t  \r\n end",
    "trailing spaces   ",
    "   ",
    "\n\n",
    "x \n",
    "e\u0301 combining accent, \ufb01 ligature, zero\u200bwidth, \ufeffBOM, \x00\x1c\x1f\x7f controls",
]


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return load_text("tinyshakespeare")


@pytest.fixture(scope="module")
def trained(shakespeare: str) -> BPETokenizer:
    """A small tokenizer trained on the first 100k characters, with two special tokens."""
    tok = BPETokenizer()
    tok.train(shakespeare[:100_000], vocab_size=512, special_tokens=["<|endoftext|>", "<|pad|>"])
    return tok


def naive_train(text: str, pattern: str | None, num_merges: int) -> list[tuple[int, int]]:
    """The reference trainer: split, then before every merge count all pairs of all chunks afresh."""
    chunks = regex.findall(pattern, text) if pattern else [text]
    sequences = [list(chunk.encode("utf-8")) for chunk in chunks]
    merges = []
    for new_id in range(256, 256 + num_merges):
        counts = Counter(pair for seq in sequences for pair in zip(seq, seq[1:]))
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))  # the documented tie rule
        merges.append(best)
        for i, seq in enumerate(sequences):
            out, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and (seq[j], seq[j + 1]) == best:
                    out.append(new_id)
                    j += 2
                else:
                    out.append(seq[j])
                    j += 1
            sequences[i] = out
    return merges


# ---- the two helpers ----------------------------------------------------------------------


def test_get_pair_counts_by_hand():
    assert get_pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_pair_counts([7, 7, 7]) == {(7, 7): 2}  # overlapping occurrences both count
    assert get_pair_counts([4]) == {} and get_pair_counts([]) == {}
    counts = get_pair_counts([1, 2])
    assert get_pair_counts([1, 2, 5], counts) == {(1, 2): 2, (2, 5): 1}  # accumulates across chunks


def test_merge_by_hand():
    assert merge([5, 6, 6, 7, 9], (6, 7), 99) == [5, 6, 99, 9]
    assert merge([7, 7, 7], (7, 7), 99) == [99, 7]  # leftmost occurrence wins
    assert merge([7, 7, 7, 7], (7, 7), 99) == [99, 99]
    assert merge([1, 2, 1, 2], (1, 2), 3) == [3, 3]
    assert merge([1, 2], (2, 1), 3) == [1, 2]
    assert merge([], (1, 2), 3) == []


def test_docstring_examples_hold():
    for module in (bpe, patterns):
        assert doctest.testmod(module).failed == 0


# ---- training -----------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [None, r"(?s).+"])
def test_classic_aaabdaaabac_worked_by_hand(pattern):
    # Pairs of "aaabdaaabac": aa x4, ab x2, bd, da, ba, ac x1 -> "aa" = 256.
    # Now 256 a b d 256 a b a c: (256, a) x2 and (a, b) x2 tie; (97, 98) < (256, 97) -> "ab" = 257.
    # Now 256 257 d 256 257 a c: (256, 257) x2 -> "aaab" = 258.
    # pattern None (no split) and a pattern matching the whole text must agree.
    tok = BPETokenizer(pattern=pattern)
    tok.train("aaabdaaabac", vocab_size=259)
    assert tok.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert list(tok.merges.values()) == [256, 257, 258]
    assert tok.vocab[258] == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_ties_go_to_the_smallest_pair_whatever_the_dict_order():
    # Every pair of "cdab" occurs once: (c,d)=(99,100), (d,a)=(100,97), (a,b)=(97,98) -> (97, 98).
    tok = BPETokenizer(pattern=None)
    tok.train("cdab", vocab_size=257)
    assert tok.merges == {(97, 98): 256}
    # Same counts, chunks listed in the other order: the rule compares a, then b.
    assert train_merges({b"cd": 3, b"ab": 3}, 1) == [(97, 98)]
    assert train_merges({b"ab": 3, b"cd": 3}, 1) == [(97, 98)]
    assert train_merges({b"bc": 2, b"ba": 2}, 1) == [(98, 97)]  # same a=98, smaller b wins
    assert train_merges({b"cd": 5, b"ab": 3}, 1) == [(99, 100)]  # the count comes first


def gpt2_style_train(chunk_counts: dict[bytes, int], num_merges: int) -> list[tuple[bytes, bytes]]:
    """A textbook trainer with the other tie rule: among equal counts, the lexicographically
    greatest pair of byte strings (as GPT-2-style trainers, e.g. CS336's reference, choose)."""
    words = {tuple(bytes([b]) for b in chunk): count for chunk, count in chunk_counts.items()}
    merges = []
    for _ in range(num_merges):
        counts = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                counts[pair] += count
        if not counts:
            break
        best = max(counts, key=lambda pair: (counts[pair], pair))
        merges.append(best)
        merged = {}
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + count
        words = merged
    return merges


def test_tie_rule_differs_from_gpt2_style_lexicographically_greatest_pair():
    # "ab" and "cd" both occur twice: the course takes the smallest ids (97, 98) -> "ab" = 256;
    # a GPT-2-style trainer takes the greatest bytes (b"c", b"d") -> "cd" = 256. Same tokens,
    # other ids.
    assert train_merges({b"ab": 2, b"cd": 2}, 2) == [(97, 98), (99, 100)]
    assert gpt2_style_train({b"ab": 2, b"cd": 2}, 2) == [(b"c", b"d"), (b"a", b"b")]
    # One merge from "cdab" (every pair once): "ab" here, "da" there: other tokens.
    assert train_merges({b"cdab": 1}, 1) == [(97, 98)]
    assert gpt2_style_train({b"cdab": 1}, 1) == [(b"d", b"a")]
    # Ids are not bytes: {zza: 2, cd: 2, zz: 1}: "zz" (3 times) = 256 first under both rules.
    # Then (256, a) and (c, d) tie at 2. By id (99, 100) < (256, 97): "cd" = 257, "zza" = 258.
    # By bytes (b"zz", b"a") > (b"c", b"d"): "zza" = 257, "cd" = 258.
    assert train_merges({b"zza": 2, b"cd": 2, b"zz": 1}, 3) == [(122, 122), (99, 100), (256, 97)]
    assert gpt2_style_train({b"zza": 2, b"cd": 2, b"zz": 1}, 3) == [(b"z", b"z"), (b"zz", b"a"), (b"c", b"d")]
    # Where the counts differ, both rules agree.
    assert train_merges({b"ab": 3, b"cd": 2}, 2) == [(97, 98), (99, 100)]
    assert gpt2_style_train({b"ab": 3, b"cd": 2}, 2) == [(b"a", b"b"), (b"c", b"d")]


def test_merges_never_cross_chunk_boundaries():
    # GPT-2 chunks of "ab ab ab ab": "ab", " ab", " ab", " ab". Pairs: ab x4, " a" x3 ("b " never
    # occurs inside a chunk). Merges: (97, 98) -> 256, then (32, 256) -> 257, then nothing is left.
    tok = BPETokenizer(pattern=GPT2_SPLIT_PATTERN)
    with pytest.warns(UserWarning, match="only allows 2 merges"):
        tok.train("ab ab ab ab", vocab_size=300)
    assert tok.merges == {(97, 98): 256, (32, 256): 257}
    assert len(tok) == 258


def test_trained_tokens_lie_inside_chunks(shakespeare, trained):
    chunks = [chunk.encode("utf-8") for chunk in trained.split(shakespeare[:100_000])]
    corpus = b"\x00".join(set(chunks))  # no chunk contains a NUL byte
    for (a, b), new_id in trained.merges.items():
        token = trained.vocab[new_id]
        assert token == trained.vocab[a] + trained.vocab[b]
        assert token in corpus and b"\x00" not in token


def test_merge_ids_follow_merge_order_and_specials_come_last(trained):
    assert list(trained.merges.values()) == list(range(256, 510))
    assert trained.special_tokens == {"<|endoftext|>": 510, "<|pad|>": 511}
    assert trained.vocab[510] == b"<|endoftext|>"
    assert len(trained) == 512


# Some texts run out of pairs before num_merges: that checks stopping early, too.
@pytest.mark.filterwarnings("ignore:the text only allows")
@pytest.mark.parametrize(
    ("text", "pattern", "num_merges"),
    [
        ("aaabdaaabac", None, 5),
        ("aaaa aaaaa aaaaaaa bab abab", GPT2_SPLIT_PATTERN, 20),
        ("ééé 🙂🙂 你好你好 " * 7, GPT4_SPLIT_PATTERN, 40),
        ("The cat's hat: 12345 CATS! " * 5 + "cafébabe" * 9, GPT4O_SPLIT_PATTERN, 40),
        ("shakespeare", GPT4_SPLIT_PATTERN, 150),
        ("shakespeare", None, 60),
        ("random-ab", None, 80),
    ],
)
def test_incremental_trainer_equals_full_recount(text, pattern, num_merges, shakespeare):
    if text == "shakespeare":
        text = shakespeare[:10_000] if pattern else shakespeare[:2_000]
    elif text == "random-ab":
        rng = random.Random(0)
        text = "".join(rng.choice("aab ") for _ in range(3_000))
    tok = BPETokenizer(pattern=pattern)
    tok.train(text, vocab_size=256 + num_merges)
    assert list(tok.merges) == naive_train(text, pattern, num_merges)


def test_training_cuts_special_tokens_out(shakespeare):
    text = "<|endoftext|>".join(shakespeare[i : i + 300] for i in range(0, 6_000, 300))
    tok = BPETokenizer()
    tok.train(text, vocab_size=400, special_tokens=["<|endoftext|>"])
    learned = [tok.vocab[new_id] for new_id in tok.merges.values()]
    assert not any(b"<|" in token or b"|>" in token or b"endoftext" in token for token in learned)
    assert tok.special_tokens == {"<|endoftext|>": 399}


def test_vocab_size_too_small_is_a_clear_error():
    with pytest.raises(ValueError, match="vocab_size >= 258"):
        BPETokenizer().train("hello", vocab_size=257, special_tokens=["<|a|>", "<|b|>"])


# ---- encoding and decoding ----------------------------------------------------------------


@pytest.mark.parametrize("text", TEXT_ZOO)
def test_encode_decode_round_trip(trained, text):
    ids = trained.encode(text)
    assert all(0 <= i < 510 for i in ids)
    assert trained.decode(ids) == text


def test_round_trip_of_shakespeare_slice_compresses(trained, shakespeare):
    text = shakespeare[200_000:230_000]
    ids = trained.encode(text)
    assert trained.decode(ids) == text
    assert len(ids) < 0.6 * len(text.encode("utf-8"))  # 254 merges already save over 40%


def test_decoding_split_characters_matches_tiktoken(trained):
    # "é" is C3 A9, "🙂" is F0 9F 99 82: single bytes of them are not valid UTF-8.
    reference = to_tiktoken(trained)  # tiktoken's own decode, errors="replace"
    ids = trained.encode("é🙂 你好 é")
    for stop in range(len(ids) + 1):
        for start in range(stop):
            assert trained.decode(ids[start:stop]) == reference.decode(ids[start:stop])
    assert trained.decode([0xC3]) == "\ufffd"
    assert trained.decode([0xC3, 0xA9]) == "é"


def test_unknown_id_is_a_clear_error(trained):
    with pytest.raises(ValueError, match=r"unknown token id 512.*0\.\.511"):
        trained.decode([104, 512])


# ---- special tokens: tiktoken's rules -----------------------------------------------------

SPECIAL_CASES = [
    # (text, allowed_special, disallowed_special)
    ("hi<|endoftext|>there", set(), "all"),
    ("hi<|endoftext|>there", {"<|endoftext|>"}, "all"),
    ("hi<|endoftext|>there", "all", "all"),
    ("hi<|endoftext|>there", set(), set()),
    ("hi<|endoftext|>there", set(), {"<|pad|>"}),
    ("hi<|endoftext|>there", set(), {"<|endoftext|>"}),
    ("<|pad|><|endoftext|><|pad|>", {"<|pad|>"}, "all"),
    ("<|pad|><|endoftext|><|pad|>", {"<|pad|>"}, set()),
    ("<|pad|><|endoftext|><|pad|>", "all", set()),
    ("no special tokens here <|nope|>", set(), "all"),
]


@pytest.mark.parametrize(("text", "allowed", "disallowed"), SPECIAL_CASES)
def test_special_tokens_follow_tiktoken(trained, text, allowed, disallowed):
    reference = to_tiktoken(trained)
    try:
        expected = reference.encode(text, allowed_special=allowed, disallowed_special=disallowed)
    except ValueError:
        with pytest.raises(ValueError, match="allowed_special"):
            trained.encode(text, allowed_special=allowed, disallowed_special=disallowed)
    else:
        assert trained.encode(text, allowed_special=allowed, disallowed_special=disallowed) == expected


def test_special_token_ids_and_error_message(trained):
    ids = trained.encode("hi<|endoftext|>", allowed_special="all")
    assert ids[-1] == 510 and trained.decode(ids) == "hi<|endoftext|>"
    with pytest.raises(ValueError, match=r"'<\|endoftext\|>'.*allowed_special"):
        trained.encode("hi<|endoftext|>")
    with pytest.raises(ValueError, match="not special tokens of this tokenizer"):
        trained.encode("hi", allowed_special={"<|typo|>"})
    with pytest.raises(ValueError, match="takes a set of special tokens"):
        trained.encode("hi", allowed_special="<|endoftext|>")


# ---- saving and loading -------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [GPT4_SPLIT_PATTERN, None])
def test_save_load_round_trip(tmp_path, shakespeare, pattern):
    tok = BPETokenizer(pattern=pattern)
    tok.train(shakespeare[:20_000], vocab_size=320, special_tokens=["<|endoftext|>"])
    path = tmp_path / "tok.json"
    tok.save(path)
    loaded = BPETokenizer.load(path)
    assert list(loaded.merges.items()) == list(tok.merges.items())  # same merges, same order
    assert loaded.vocab == tok.vocab
    assert loaded.pattern == tok.pattern and loaded.byte_ids == tok.byte_ids
    assert loaded.special_tokens == tok.special_tokens
    for text in TEXT_ZOO + [shakespeare[50_000:53_000] + "<|endoftext|>"]:
        assert loaded.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")


def test_saved_file_is_readable_json(tmp_path):
    tok = BPETokenizer(pattern=None)
    tok.train("aaabdaaabac", vocab_size=260, special_tokens=["<|end|>"])
    path = tmp_path / "tok.json"
    tok.save(path)
    text = path.read_text(encoding="utf-8")
    assert '  [97, 97, 256, "aa"],' in text.splitlines()  # one merge per line, with its text
    data = json.loads(text)
    assert data["format"] == "course_lib.bpe.v1" and data["pattern"] is None
    assert data["byte_ids"] == list(range(256))
    assert [m[:3] for m in data["merges"]] == [[97, 97, 256], [97, 98, 257], [256, 257, 258]]
    assert data["special_tokens"] == {"<|end|>": 259}


# ---- from a vocabulary and merges ---------------------------------------------------------


def test_from_vocab_and_merges_worked_by_hand():
    # CS336's numbering: the special token first (id 0), the 256 bytes at 1..256, merges after.
    vocab = {0: b"<|endoftext|>"} | {b + 1: bytes([b]) for b in range(256)} | {257: b"aa", 258: b"aab"}
    merges = [(b"a", b"a"), (b"aa", b"b")]
    tok = BPETokenizer.from_vocab_and_merges(vocab, merges, special_tokens=["<|endoftext|>"], pattern=None)
    assert tok.byte_ids == [b + 1 for b in range(256)]  # "a" (97) is id 98
    assert tok.merges == {(98, 98): 257, (257, 99): 258}
    assert tok.vocab == vocab and tok.special_tokens == {"<|endoftext|>": 0}
    # "aaab": [a a a b] -> "aa" first (lowest merge id) -> [aa a b] -> no "aab" (a+b is no merge)
    assert tok.encode("aaab") == [257, 98, 99]
    # "aab" + the special token: [aa b] -> [aab], then id 0
    assert tok.encode("aab<|endoftext|>", allowed_special="all") == [258, 0]
    assert tok.decode([258, 0, 98]) == "aab<|endoftext|>a"
    assert tok.vocab_size == 259


def test_from_vocab_and_merges_reproduces_a_trained_tokenizer(shakespeare, trained):
    vocab = dict(trained.vocab)
    merges = [(trained.vocab[a], trained.vocab[b]) for a, b in trained.merges]
    again = BPETokenizer.from_vocab_and_merges(vocab, merges, trained.special_tokens)
    assert again.to_dict() == trained.to_dict()


def test_from_vocab_and_merges_gives_new_special_tokens_the_next_ids():
    vocab = {i: bytes([i]) for i in range(256)}
    tok = BPETokenizer.from_vocab_and_merges(vocab, [], special_tokens=["<|a|>", "<|b|>"])
    assert tok.special_tokens == {"<|a|>": 256, "<|b|>": 257} and tok.vocab_size == 258


def test_from_vocab_and_merges_errors():
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab", 257: b"cd"}
    with pytest.raises(ValueError, match="lower than an earlier merge's"):
        BPETokenizer.from_vocab_and_merges(vocab, [(b"c", b"d"), (b"a", b"b")])
    with pytest.raises(ValueError, match="neither a byte, nor made by a merge, nor a special token"):
        BPETokenizer.from_vocab_and_merges(vocab, [(b"a", b"b")])
    with pytest.raises(ValueError, match=r"the single byte b'\\xff' is not in the vocabulary"):
        BPETokenizer.from_vocab_and_merges({i: bytes([i]) for i in range(255)}, [])
    with pytest.raises(ValueError, match="merging b'x' and b'y'"):
        BPETokenizer.from_vocab_and_merges(vocab, [(b"x", b"y")])
    with pytest.raises(ValueError, match="ids 97 and 256 both stand for b'a'"):
        BPETokenizer.from_vocab_and_merges({i: bytes([i]) for i in range(256)} | {256: b"a"}, [])


def test_load_refuses_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"vocab": {}}')
    with pytest.raises(ValueError, match="not a tokenizer saved by BPETokenizer.save"):
        BPETokenizer.load(path)


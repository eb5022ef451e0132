"""Tests for course_lib.tokenization.tiktoken_bridge: the course's BPE against OpenAI's tiktoken.

The reference is tiktoken itself: its encodings' ids, its decoding, its special-token rules.
Recovering the merges of o200k_base takes a few seconds; it is done once per test session.
"""

from __future__ import annotations

import doctest
import json
import random
import warnings

import pytest
import tiktoken

from course_lib.datasets import load_text
from course_lib.tokenization import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    GPT4O_SPLIT_PATTERN,
    BPETokenizer,
    bytes_to_unicode,
    from_gpt2_files,
    from_tiktoken,
    gpt2_files,
    recover_merge,
    tiktoken_bridge,
    to_tiktoken,
)
from test_bpe import TEXT_ZOO

ENCODINGS = ["r50k_base", "cl100k_base", "o200k_base"]


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return load_text("tinyshakespeare")


@pytest.fixture(scope="module", params=ENCODINGS)
def pair(request) -> tuple[BPETokenizer, tiktoken.Encoding]:
    """(merges recovered by course_lib, tiktoken's own encoding) for each encoding."""
    return from_tiktoken(request.param), tiktoken.get_encoding(request.param)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("r50k_base", GPT2_SPLIT_PATTERN), ("cl100k_base", GPT4_SPLIT_PATTERN), ("o200k_base", GPT4O_SPLIT_PATTERN)],
)
def test_split_patterns_are_tiktokens(name, pattern):
    assert tiktoken.get_encoding(name)._pat_str == pattern


def test_docstring_examples_hold():
    for module in (tiktoken_bridge, gpt2_files):
        assert doctest.testmod(module).failed == 0


# ---- from_tiktoken ------------------------------------------------------------------------


def test_recover_merge_by_hand():
    # ranks a=0 b=1 c=2 ab=3 abc=4: BPE on "abc" with ranks < 4 gives [ab, c], so abc = ab + c.
    ranks = {b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"abc": 4}
    assert recover_merge(ranks, b"abc", 4) == (b"ab", b"c")
    # With bc ranked below ab, the replay makes "bc" first, and abc = a + bc.
    ranks = {b"a": 0, b"b": 1, b"c": 2, b"bc": 3, b"ab": 4, b"abc": 5}
    assert recover_merge(ranks, b"abc", 5) == (b"a", b"bc")
    with pytest.raises(ValueError, match="cannot be built"):
        recover_merge({b"a": 0, b"b": 1, b"c": 2, b"abc": 3}, b"abc", 3)


def test_recovered_tokenizer_has_tiktokens_vocabulary(pair):
    tok, enc = pair
    assert tok.pattern == enc._pat_str
    assert tok.special_tokens == enc._special_tokens
    assert len(tok.merges) == len(enc._mergeable_ranks) - 256
    assert {token: i for i, token in tok.vocab.items() if i not in enc._special_tokens.values()} == enc._mergeable_ranks
    assert list(tok.merges.values()) == sorted(tok.merges.values())  # merges in rank order


@pytest.mark.parametrize("text", TEXT_ZOO)
def test_recovered_encoders_give_tiktokens_ids(pair, text):
    tok, enc = pair
    assert tok.encode(text) == enc.encode(text)
    assert tok.decode(enc.encode(text)) == text


def test_recovered_encoders_on_shakespeare_and_mixed_text(pair, shakespeare):
    tok, enc = pair
    text = shakespeare[:30_000] + "\n".join(TEXT_ZOO) * 3 + "   \n\n  "
    assert tok.encode(text) == enc.encode(text)


def test_recovered_special_tokens(pair):
    tok, enc = pair
    for token in enc.special_tokens_set:
        text = f"before{token} after"
        assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
        assert tok.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())
        with pytest.raises(ValueError):
            enc.encode(text)
        with pytest.raises(ValueError, match="allowed_special"):
            tok.encode(text)


def test_from_tiktoken_accepts_an_encoding_and_gives_independent_copies():
    first = from_tiktoken(tiktoken.get_encoding("r50k_base"))
    second = from_tiktoken("r50k_base")
    assert first is not second and first.merges == second.merges
    first.train("abc abc", vocab_size=257)  # retraining one must not change the other
    assert len(second.merges) == 50_000


def test_r50k_numbers_bytes_differently():
    tok = from_tiktoken("r50k_base")
    assert tok.byte_ids[ord("!")] == 0 and tok.byte_ids[0] == 188  # GPT-2's printable bytes come first


# ---- cl100k_base: special tokens and split characters, tiktoken as the reference -----------

CL100K_CASES = [
    ("<|endoftext|>", set(), "all"),
    ("<|endoftext|>", "all", "all"),
    ("<|endoftext|>", set(), set()),
    ("a<|fim_prefix|>b<|fim_middle|>c<|fim_suffix|>d", "all", "all"),
    ("a<|fim_prefix|>b<|fim_middle|>c<|fim_suffix|>d", {"<|fim_prefix|>"}, "all"),
    ("a<|fim_prefix|>b<|fim_middle|>c<|fim_suffix|>d", {"<|fim_prefix|>"}, set()),
    ("a<|fim_prefix|>b<|fim_middle|>c<|fim_suffix|>d", set(), {"<|fim_middle|>"}),
    ("x<|endofprompt|>y<|endoftext|>", {"<|endofprompt|>"}, {"<|endoftext|>"}),
    ("x<|endofprompt|>y<|endoftext|>", {"<|endofprompt|>", "<|endoftext|>"}, "all"),
    ("<|endoftext|>", {"<|endoftext|>"}, {"<|endoftext|>"}),  # disallowing wins, as in tiktoken
    ("<|endoftext", set(), "all"),  # an unfinished special token is just text
]


@pytest.mark.parametrize(("text", "allowed", "disallowed"), CL100K_CASES)
def test_cl100k_special_token_rules(text, allowed, disallowed):
    tok, enc = from_tiktoken("cl100k_base"), tiktoken.get_encoding("cl100k_base")
    try:
        expected = enc.encode(text, allowed_special=allowed, disallowed_special=disallowed)
    except ValueError:
        with pytest.raises(ValueError, match="allowed_special"):
            tok.encode(text, allowed_special=allowed, disallowed_special=disallowed)
    else:
        assert tok.encode(text, allowed_special=allowed, disallowed_special=disallowed) == expected


def test_cl100k_decoding_of_split_characters():
    tok, enc = from_tiktoken("cl100k_base"), tiktoken.get_encoding("cl100k_base")
    ids = enc.encode("é🙂 你好 👨‍👩‍👧 नमस्ते")
    for stop in range(len(ids) + 1):
        for start in range(stop):
            assert tok.decode(ids[start:stop]) == enc.decode(ids[start:stop])


def test_recovered_tokenizer_saves_and_loads(tmp_path):
    tok = from_tiktoken("r50k_base")  # permuted byte ids must survive the file
    tok.save(tmp_path / "r50k.json")
    loaded = BPETokenizer.load(tmp_path / "r50k.json")
    enc = tiktoken.get_encoding("r50k_base")
    assert loaded.byte_ids == tok.byte_ids and list(loaded.merges.items()) == list(tok.merges.items())
    for text in TEXT_ZOO:
        assert loaded.encode(text) == enc.encode(text)


# ---- to_tiktoken --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(shakespeare) -> BPETokenizer:
    tok = BPETokenizer()
    tok.train(shakespeare[:200_000], vocab_size=1024, special_tokens=["<|endoftext|>"])
    return tok


def test_to_tiktoken_gives_identical_ids(trained, shakespeare):
    enc = to_tiktoken(trained)
    assert enc.n_vocab == 1024
    for start in (0, 300_000, 700_000, 1_000_000):
        text = shakespeare[start : start + 50_000]
        assert trained.encode(text) == enc.encode(text)
    for text in TEXT_ZOO + ["one<|endoftext|>two"]:
        assert trained.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
        assert trained.decode(enc.encode(text, disallowed_special=())) == text


def test_to_tiktoken_without_pre_splitting(shakespeare):
    tok = BPETokenizer(pattern=None)
    tok.train(shakespeare[:5_000], vocab_size=300)
    enc = to_tiktoken(tok)
    for text in [shakespeare[5_000:7_000], "aaabdaaabac", "   trailing \n", ""]:
        assert tok.encode(text) == enc.encode(text)


def test_to_tiktoken_refuses_two_ids_with_the_same_bytes():
    tok = BPETokenizer(pattern=None)
    tok._set_state(list(range(256)), {(97, 98): 256, (256, 99): 257, (98, 99): 258, (97, 258): 259}, {})
    with pytest.raises(ValueError, match="both stand for b'abc'"):
        to_tiktoken(tok)


def test_to_tiktoken_on_tiny_alphabets():
    # Texts like "aabab aab" make many overlapping candidate pairs: the likeliest place for our
    # merge-order encoder and tiktoken's lowest-rank-bytes encoder to disagree (see the module).
    rng = random.Random(0)
    for trial in range(40):
        alphabet = ["ab", "aab", "abc", "ab \n", "aé", "a🙂"][trial % 6]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(50, 1500)))
        tok = BPETokenizer(pattern=[None, GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN][trial % 3])
        with warnings.catch_warnings():  # some texts run out of pairs: fine here
            warnings.simplefilter("ignore")
            tok.train(text, vocab_size=256 + rng.randint(1, 150))
        enc = to_tiktoken(tok)
        for sample in [text, text[::-1], "".join(rng.choice(alphabet) for _ in range(500))]:
            assert tok.encode(sample) == enc.encode(sample)


# ---- GPT-2's published files (encoder.json, vocab.bpe) -------------------------------------


def test_gpt2_byte_characters_by_hand():
    character = bytes_to_unicode()
    assert sorted(character) == list(range(256)) and len(set(character.values())) == 256
    assert character[ord("a")] == "a" and character[ord("!")] == "!" and character[0xE9] == "é"
    # The 68 bytes that are not printable get U+0100, U+0101, ... in byte order:
    # 0x00..0x20 (33 of them), 0x7F..0xA0 (34), 0xAD (the last one, U+0100 + 67 = U+0143).
    assert character[0x00] == "\u0100" and character[ord(" ")] == "\u0120" == "Ġ" and character[0x0A] == "Ċ"
    assert character[0x7F] == "\u0121" and character[0xA0] == "\u0142" and character[0xAD] == "\u0143"


@pytest.fixture(scope="module")
def gpt2_file_paths(tmp_path_factory):
    """encoder.json and vocab.bpe in GPT-2's format, written from r50k_base (GPT-2's vocabulary)."""
    ranks = tiktoken.get_encoding("r50k_base")._mergeable_ranks
    recovered = from_tiktoken("r50k_base")
    character = bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(character[b] for b in token)

    folder = tmp_path_factory.mktemp("gpt2")
    encoder = {as_text(token): rank for token, rank in ranks.items()} | {"<|endoftext|>": 50256}
    (folder / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    lines = [f"{as_text(recovered.vocab[a])} {as_text(recovered.vocab[b])}\n" for a, b in recovered.merges]
    (folder / "vocab.bpe").write_text("#version: 0.2\n" + "".join(lines), encoding="utf-8")
    return folder / "encoder.json", folder / "vocab.bpe"


def test_written_gpt2_files_are_what_tiktoken_reads_as_gpt2(gpt2_file_paths, monkeypatch):
    # tiktoken's own reader of GPT-2's files (its own byte characters) rebuilds r50k_base's ranks
    # from them, and checks that the merges' order matches encoder.json's ids.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the files directly, cache nothing
    encoder_json, vocab_bpe = gpt2_file_paths
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(vocab_bpe), str(encoder_json))
    assert ranks == tiktoken.get_encoding("r50k_base")._mergeable_ranks


def test_from_gpt2_files_encodes_like_r50k_base(gpt2_file_paths):
    tok = from_gpt2_files(*gpt2_file_paths)
    enc = tiktoken.get_encoding("r50k_base")
    assert tok.pattern == enc._pat_str and tok.special_tokens == {"<|endoftext|>": 50256}
    assert tok.vocab_size == enc.n_vocab == 50257 and len(tok.merges) == 50000
    for text in TEXT_ZOO + ["one<|endoftext|>two", "<|endoftext|>\n\n<|endoftext|>"]:
        ids = tok.encode(text, allowed_special="all")
        assert ids == enc.encode(text, allowed_special="all")
        assert tok.decode(ids) == text


def test_from_gpt2_files_refuses_a_malformed_merge_line(tmp_path):
    (tmp_path / "encoder.json").write_text("{}", encoding="utf-8")
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\nĠ t h\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not two tokens separated by a space"):
        from_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe")

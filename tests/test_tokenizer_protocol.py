"""The tokenizer protocol (course_lib.tokenization.protocol): CharTokenizer and BPETokenizer alike.

References: hand-worked ids, tiktoken's `n_vocab`, json and torch.load(weights_only=True)
(what a checkpoint goes through), and the checkpoint format written before `to_dict` existed.
"""

from __future__ import annotations

import doctest
import json

import pytest
import torch

from course_lib.datasets import load_text
from course_lib.tokenization import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    char,
    protocol,
    to_tiktoken,
    tokenizer_from_dict,
)
from course_lib.training import build_tokenizer

TEXT = "the cat sat on the mat; the hat!"


def test_docstring_examples_hold():
    for module in (char, protocol):
        assert doctest.testmod(module).failed == 0


def test_char_tokenizer_on_tiny_shakespeare():
    text = load_text("tinyshakespeare")
    tok = CharTokenizer(text)
    assert tok.vocab_size == 65 and tok.chars == "".join(sorted(set(text)))
    assert tok.encode("\n !") == [0, 1, 2]  # the three smallest characters
    assert tok.decode(tok.encode(text[:1000])) == text[:1000]
    with pytest.raises(ValueError, match="'é' is not in this tokenizer's vocabulary"):
        tok.encode("café")
    with pytest.raises(ValueError, match="unknown token id 65: this tokenizer has ids 0..64"):
        tok.decode([0, 65])
    with pytest.raises(ValueError, match="unknown token id -1"):
        tok.decode([-1])  # not the last character, as Python's negative indexing would give


@pytest.fixture(params=["char", "bpe"])
def tokenizer(request) -> Tokenizer:
    return build_tokenizer(TEXT, request.param, vocab_size=270)


def test_both_tokenizers_follow_the_protocol(tokenizer):
    assert isinstance(tokenizer, Tokenizer)
    ids = tokenizer.encode(TEXT)
    assert tokenizer.decode(ids) == TEXT
    assert 0 <= min(ids) and max(ids) < tokenizer.vocab_size


def test_both_tokenizers_refuse_an_unknown_id_alike(tokenizer):
    # Reference: the messages written out by hand. TEXT has 12 distinct characters ("!", " ",
    # ";" and 9 letters); the BPE tokenizer has the 256 bytes and 14 merges.
    first_unknown, expected = {
        CharTokenizer: (12, "unknown token id 12: this tokenizer has ids 0..11 (12 tokens)"),
        BPETokenizer: (270, "unknown token id 270: this tokenizer has ids 0..269 (270 tokens)"),
    }[type(tokenizer)]
    with pytest.raises(protocol.UnknownTokenIdError) as refused:
        tokenizer.decode([0, first_unknown])
    assert str(refused.value) == expected
    assert isinstance(refused.value, ValueError)  # what callers catch, the command lines included


def test_state_survives_json_and_a_weights_only_checkpoint(tokenizer, tmp_path):
    state = tokenizer.to_dict()
    assert json.loads(json.dumps(state)) == state  # JSON-able: dicts, lists, strings, numbers
    torch.save({"tokenizer": state}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)["tokenizer"]
    for again in (tokenizer_from_dict(loaded), type(tokenizer).from_dict(loaded)):
        assert type(again) is type(tokenizer)
        assert again.to_dict() == state and again.vocab_size == tokenizer.vocab_size
        assert again.encode(TEXT) == tokenizer.encode(TEXT)


def test_checkpoints_written_before_to_dict_still_load(tmp_path):
    # Before, a checkpoint held {"kind": "char", "chars": ...} or {"kind": "bpe", "json": <the
    # text of BPETokenizer.save's file, written without a "kind" entry>}.
    assert tokenizer_from_dict({"kind": "char", "chars": "ehlo"}).encode("hole") == [1, 3, 2, 0]
    bpe = BPETokenizer()
    bpe.train(TEXT, vocab_size=270, special_tokens=["<|end|>"])
    old_file = {key: value for key, value in bpe.to_dict().items() if key != "kind"}
    old_file["merges"] = [[a, b, new_id, bpe.vocab[new_id].decode()] for a, b, new_id in old_file["merges"]]
    again = tokenizer_from_dict({"kind": "bpe", "json": json.dumps(old_file)})
    assert again.to_dict() == bpe.to_dict()
    (tmp_path / "old.json").write_text(json.dumps(old_file), encoding="utf-8")
    assert BPETokenizer.load(tmp_path / "old.json").to_dict() == bpe.to_dict()


def test_unknown_states_are_clear_errors():
    with pytest.raises(ValueError, match="unknown tokenizer kind 'sentencepiece'"):
        tokenizer_from_dict({"kind": "sentencepiece"})
    with pytest.raises(ValueError, match="not a BPETokenizer's state"):
        BPETokenizer.from_dict({"kind": "bpe", "format": "other"})
    with pytest.raises(ValueError, match="not a character tokenizer's state"):
        CharTokenizer.from_dict({"kind": "bpe"})


def test_bpe_vocab_size_counts_ids_not_tokens():
    # Ids can have gaps (cl100k_base's special tokens start at 100257 and skip some); the model
    # needs a row for every id up to the largest, which is tiktoken's n_vocab.
    vocab = {i: bytes([i]) for i in range(256)} | {300: b"<|end|>"}
    tok = BPETokenizer.from_vocab_and_merges(vocab, [], special_tokens=["<|end|>"])
    assert len(tok) == 257 and tok.vocab_size == 301 == to_tiktoken(tok).n_vocab
    assert tok.encode("a<|end|>", allowed_special="all") == [97, 300]

"""The smallest tokenizer: one token per character of a text's alphabet.

    >>> tok = CharTokenizer("hello")
    >>> tok.chars, tok.vocab_size
    ('ehlo', 4)
    >>> tok.encode("hell"), tok.decode([0, 3])
    ([1, 0, 2, 2], 'eo')
    >>> tok.to_dict()
    {'kind': 'char', 'chars': 'ehlo'}
    >>> CharTokenizer.from_dict(tok.to_dict()).encode("hole")
    [1, 3, 2, 0]

Tiny Shakespeare has 65 distinct characters, so a model over them has a 65-way output.
Character tokens make the smallest vocabulary and the longest sequences: a trade-off that suits
a model small enough to train on a CPU in minutes. It follows the same protocol as
`BPETokenizer` (see `protocol.py`), so the training code never asks which one it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .protocol import UnknownTokenIdError


class CharTokenizer:
    """One token per character: the vocabulary is the sorted set of characters in a text."""

    kind = "char"  # the "kind" entry of `to_dict`, which `tokenizer_from_dict` dispatches on

    def __init__(self, text: str):
        if not text:
            raise ValueError("CharTokenizer needs a non-empty text to take its characters from")
        self.chars = "".join(sorted(set(text)))
        self._ids = {ch: i for i, ch in enumerate(self.chars)}

    def __repr__(self) -> str:
        return f"CharTokenizer({self.vocab_size} characters)"

    @property
    def vocab_size(self) -> int:
        """How many ids there are (0 .. vocab_size - 1): the rows of the model's embedding table."""
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """The id of each character: encode("hell") -> [1, 0, 2, 2] for CharTokenizer("hello")."""
        try:
            return [self._ids[ch] for ch in text]
        except KeyError as err:
            raise ValueError(
                f"character {err.args[0]!r} is not in this tokenizer's vocabulary"
                f" ({self.vocab_size} characters: {self.chars!r}); use only those characters"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of `ids`: decode([0, 3]) -> "eo" for CharTokenizer("hello").

        An id outside 0..vocab_size - 1 (-1 included) raises UnknownTokenIdError (a ValueError).
        """
        ids = list(ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise UnknownTokenIdError(bad[0], known_ids=range(self.vocab_size))
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        """The tokenizer as JSON-able data: its kind and its alphabet."""
        return {"kind": self.kind, "chars": self.chars}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CharTokenizer:
        """The tokenizer `to_dict` described; it encodes exactly as the original."""
        if state.get("kind") != cls.kind or not isinstance(state.get("chars"), str):
            raise ValueError(f"not a character tokenizer's state: {str(state)[:80]}")
        return cls(state["chars"])

"""What every tokenizer of the course offers, and how to rebuild one from its saved form.

The training code, checkpoints and `course_lib.cli.sample` only use these five members, so they
work the same with a `CharTokenizer` and a `BPETokenizer` (and anything else that has them):

    vocab_size            how many ids there are: the rows of the model's embedding table
    encode(text)          text -> list of ids
    decode(ids)           ids -> text; an id it does not have raises UnknownTokenIdError
    to_dict()             the tokenizer as JSON-able data (dicts, lists, strings, numbers),
                          with a "kind" entry naming its class
    from_dict(state)      (a classmethod) the tokenizer that `to_dict` described

A checkpoint stores `tokenizer.to_dict()`; `tokenizer_from_dict` reads the "kind" and hands the
data to that class's `from_dict`:

    >>> from course_lib.tokenization import CharTokenizer
    >>> state = CharTokenizer("hello").to_dict()
    >>> state
    {'kind': 'char', 'chars': 'ehlo'}
    >>> tokenizer_from_dict(state).encode("hole")
    [1, 3, 2, 0]
    >>> isinstance(CharTokenizer("hello"), Tokenizer)   # a structural check: the members exist
    True
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    """A tokenizer as the training code sees it (see the module docstring)."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Tokenizer: ...


class UnknownTokenIdError(ValueError):
    """`decode` was given an id the tokenizer does not have; the message says which ids it has.

        >>> print(UnknownTokenIdError(70, known_ids=range(65)))    # a CharTokenizer of 65 characters
        unknown token id 70: this tokenizer has ids 0..64 (65 tokens)
    """

    def __init__(self, token_id: int, known_ids: Collection[int]):
        super().__init__(
            f"unknown token id {token_id!r}: this tokenizer has ids {min(known_ids)}..{max(known_ids)}"
            f" ({len(known_ids)} tokens)"
        )


def tokenizer_from_dict(state: dict[str, Any]) -> Tokenizer:
    """The tokenizer that `some_tokenizer.to_dict()` described; it encodes exactly as the original."""
    # Imported here, not at the top: bpe.py and char.py import this module for UnknownTokenIdError.
    from .bpe import BPETokenizer
    from .char import CharTokenizer

    kinds = {cls.kind: cls for cls in (CharTokenizer, BPETokenizer)}  # by the "kind" their to_dict writes
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in kinds:
        raise ValueError(f"unknown tokenizer kind {kind!r} (known: {sorted(kinds)}) in {str(state)[:80]}")
    return kinds[kind].from_dict(state)

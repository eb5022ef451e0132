"""What every tokenizer of the course offers, and how to rebuild one from its saved form.

The training code, checkpoints and `course_lib.cli.sample` only use these five members, so they
work the same with a `CharTokenizer` and a `BPETokenizer` (and anything else that has them):

    vocab_size            how many ids there are: the rows of the model's embedding table
    encode(text)          text -> list of ids
    decode(ids)           ids -> text
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

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from .bpe import BPETokenizer
from .char import CharTokenizer


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


# The classes `tokenizer_from_dict` can rebuild, by the "kind" their `to_dict` writes.
TOKENIZER_KINDS: dict[str, type[Tokenizer]] = {cls.kind: cls for cls in (CharTokenizer, BPETokenizer)}


def tokenizer_from_dict(state: dict[str, Any]) -> Tokenizer:
    """The tokenizer that `some_tokenizer.to_dict()` described; it encodes exactly as the original."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in TOKENIZER_KINDS:
        raise ValueError(
            f"unknown tokenizer kind {kind!r} (known: {sorted(TOKENIZER_KINDS)}) in {str(state)[:80]}"
        )
    return TOKENIZER_KINDS[kind].from_dict(state)

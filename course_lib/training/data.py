"""Text to training examples: a character-level tokenizer, a train/validation split, `get_batch`.

A language model learns from (context, next token) pairs cut out of one long sequence of ids.
For the ids [5, 6, 7, 8, 9] and block_size 3, a window starting at 1 gives

    x = [6, 7, 8]      the context the model reads
    y = [7, 8, 9]      the token that follows each position of x

so one window of block_size tokens holds block_size examples: predict 7 from [6], 8 from [6, 7]
and 9 from [6, 7, 8].

    >>> tok = CharTokenizer("hello")
    >>> tok.chars, tok.encode("hell"), tok.decode([0, 3])
    ('ehlo', [1, 0, 2, 2], 'eo')
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from ..tokenization import BPETokenizer


class CharTokenizer:
    """One token per character: the vocabulary is the sorted set of characters in a text.

    Tiny Shakespeare has 65 distinct characters, so a model over them has a 65-way output.
    Character tokens make the smallest vocabulary and the longest sequences: a trade-off that
    suits a model small enough to train on a CPU in minutes.
    """

    def __init__(self, text: str):
        if not text:
            raise ValueError("CharTokenizer needs a non-empty text to take its characters from")
        self.chars = "".join(sorted(set(text)))
        self._ids = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
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

    def decode(self, ids: list[int]) -> str:
        """The characters of `ids`: decode([0, 3]) -> "eo" for CharTokenizer("hello")."""
        return "".join(self.chars[i] for i in ids)


Tokenizer = CharTokenizer | BPETokenizer


def build_tokenizer(text: str, kind: str = "char", vocab_size: int | None = None) -> Tokenizer:
    """A tokenizer trained on `text`: "char" (a `CharTokenizer`) or "bpe" (the course's `BPETokenizer`)."""
    if kind == "char":
        return CharTokenizer(text)
    if kind == "bpe":
        if vocab_size is None or vocab_size <= 256:
            raise ValueError(f"a BPE tokenizer needs vocab_size > 256 (the 256 bytes come first), got {vocab_size}")
        tokenizer = BPETokenizer()
        tokenizer.train(text, vocab_size)
        return tokenizer
    raise ValueError(f"unknown tokenizer kind {kind!r}: use 'char' or 'bpe'")


def vocab_size_of(tokenizer: Tokenizer) -> int:
    """How many ids the model's embedding and head need for this tokenizer."""
    return tokenizer.vocab_size if isinstance(tokenizer, CharTokenizer) else len(tokenizer)


def tokenizer_state(tokenizer: Tokenizer) -> dict[str, str]:
    """The tokenizer as plain strings, to store in a checkpoint (which loads with weights_only=True)."""
    if isinstance(tokenizer, CharTokenizer):
        return {"kind": "char", "chars": tokenizer.chars}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        tokenizer.save(path)
        return {"kind": "bpe", "json": path.read_text(encoding="utf-8")}


def tokenizer_from_state(state: dict[str, str]) -> Tokenizer:
    """The tokenizer `tokenizer_state` described: it encodes exactly as the original."""
    if state.get("kind") == "char":
        return CharTokenizer(state["chars"])
    if state.get("kind") == "bpe":
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "tokenizer.json"
            path.write_text(state["json"], encoding="utf-8")
            return BPETokenizer.load(path)
    raise ValueError(f"unknown tokenizer in checkpoint: {json.dumps(state)[:80]}")


def split_data(ids: torch.Tensor | list[int], val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The first (1 - val_fraction) of the ids for training, the rest for validation.

    A split by position, not at random: validation text is then text the model never saw, not
    windows that overlap its training windows. split_data([1, ..., 10]) -> ([1..9], [10]).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    data = torch.as_tensor(ids, dtype=torch.long)
    n_train = int(len(data) * (1 - val_fraction))
    return data[:n_train], data[n_train:]


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """batch_size random windows of `data` (1-D ids): x (batch_size, block_size) and y, x shifted by one.

    Every start 0 .. len(data) - block_size - 1 is equally likely, the last one being the last
    window whose y still fits. With data = [10, 11, 12, 13] and block_size 2 the possible
    windows are x = [10, 11], y = [11, 12] and x = [11, 12], y = [12, 13].
    """
    if data.ndim != 1:
        raise ValueError(f"get_batch expected 1-D token ids, got shape {tuple(data.shape)}")
    if len(data) <= block_size:
        raise ValueError(
            f"get_batch: data has {len(data)} tokens but a window needs block_size + 1 = {block_size + 1};"
            f" use a smaller block_size or more text"
        )
    starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size)  # (T,)
    x = data[starts[:, None] + offsets]  # (B, 1) + (T,) -> (B, T)
    y = data[starts[:, None] + offsets + 1]  # (B, T), one position later
    if device is not None and torch.device(device).type != "cpu":
        # Pinned memory lets the copy to the GPU overlap with the work already queued there.
        x = x.pin_memory().to(device, non_blocking=True)
        y = y.pin_memory().to(device, non_blocking=True)
    return x, y

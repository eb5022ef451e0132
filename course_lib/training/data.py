"""Text to training examples: a tokenizer (`build_tokenizer`), a train/validation split, `get_batch`.

A language model learns from (context, next token) pairs cut out of one long sequence of ids.
For the ids [5, 6, 7, 8, 9] and block_size 3, a window starting at 1 gives

    x = [6, 7, 8]      the context the model reads
    y = [7, 8, 9]      the token that follows each position of x

so one window of block_size tokens holds block_size examples: predict 7 from [6], 8 from [6, 7]
and 9 from [6, 7, 8].

    >>> tok = build_tokenizer("hello", "char")     # a CharTokenizer (course_lib.tokenization)
    >>> split_data(tok.encode("hellohello"), val_fraction=0.2)
    (tensor([1, 0, 2, 2, 3, 1, 0, 2]), tensor([2, 3]))

The tokenizers themselves live in `course_lib.tokenization` (`CharTokenizer`, `BPETokenizer`,
and the `Tokenizer` protocol both follow).
"""

from __future__ import annotations

import torch

from ..tokenization import BPETokenizer, CharTokenizer, Tokenizer


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

"""Read GPT-2's published tokenizer: `encoder.json` (token -> id) and `vocab.bpe` (the merges).

GPT-2's files store tokens as text, not bytes. Each byte is written as one printable character:
the printable bytes stand for themselves ("a" is "a") and the 68 others (controls, the space,
some Latin-1 bytes) get the characters from U+0100 on, in byte order, so the space 0x20 is "Ġ"
(U+0120) and the newline 0x0A is "Ċ" (U+010A):

    >>> printable = bytes_to_unicode()
    >>> printable[ord(" ")], printable[ord("\\n")], printable[ord("a")]
    ('Ġ', 'Ċ', 'a')

so the token " the" is "Ġthe" in `encoder.json`, and the line "Ġ t" of `vocab.bpe` is the merge
of b" " and b"t". `vocab.bpe` starts with a line "#version: 0.2", then one merge per line,
earliest first; GPT-2's ids grow in that order, and split the text with GPT2_SPLIT_PATTERN.
tiktoken's "r50k_base" encoding is the same vocabulary (`from_tiktoken("r50k_base")` gives the same
tokenizer without the files).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .bpe import BPETokenizer
from .patterns import GPT2_SPLIT_PATTERN


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable character for each byte value 0..255 (see the module docstring)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    character = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in character]
    character.update({b: chr(256 + n) for n, b in enumerate(others)})
    return character


def from_gpt2_files(
    encoder_json: str | Path,
    vocab_bpe: str | Path,
    special_tokens: Iterable[str] = ("<|endoftext|>",),
    pattern: str | None = GPT2_SPLIT_PATTERN,
) -> BPETokenizer:
    """A `BPETokenizer` from GPT-2's `encoder.json` and `vocab.bpe` (or files in their format).

    With GPT-2's own files it encodes like tiktoken's r50k_base (the tests check this on files
    written from r50k_base's vocabulary). `special_tokens` name the entries of `encoder.json` that
    no merge makes; GPT-2 has one, "<|endoftext|>" (id 50256).
    """
    byte_of = {char: b for b, char in bytes_to_unicode().items()}

    def as_bytes(token: str) -> bytes:
        try:
            return bytes(byte_of[char] for char in token)
        except KeyError as err:
            raise ValueError(f"{token!r} has {err.args[0]!r}, which is none of GPT-2's 256 byte characters") from None

    special_tokens = list(special_tokens)
    encoder = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    vocab = {
        token_id: token.encode("utf-8") if token in special_tokens else as_bytes(token)
        for token, token_id in encoder.items()
    }
    lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = []
    for line in filter(None, lines):
        # Two tokens separated by one space; no token holds a space (the space byte is "Ġ").
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{vocab_bpe}: the line {line!r} is not two tokens separated by a space")
        merges.append((as_bytes(parts[0]), as_bytes(parts[1])))
    return BPETokenizer.from_vocab_and_merges(vocab, merges, special_tokens, pattern=pattern)

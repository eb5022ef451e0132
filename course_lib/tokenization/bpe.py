"""Byte-level byte-pair encoding (BPE): the tokenizer family of GPT-2, GPT-4 and Llama 3.

Text becomes UTF-8 bytes, so ids 0..255 can spell anything. Training then repeatedly finds the
most frequent adjacent pair of ids and gives it a new id (256, 257, ...). Encoding replays those
merges, earliest first. A regular expression first cuts the text into chunks (words, numbers,
runs of spaces; see `patterns.py`) and merges never cross a chunk boundary, so " dog" can become
one token but "dog." cannot.

    >>> tok = BPETokenizer(pattern=None)      # None: one chunk, no pre-splitting
    >>> tok.train("aaabdaaabac", vocab_size=259)
    >>> tok.merges                           # 'a'=97 'b'=98: "aa" -> 256, "ab" -> 257, "aaab" -> 258
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    >>> tok.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> tok.decode([258, 100])
    'aaabd'

The pieces live in small modules: `pairs.py` (get_pair_counts, merge), `trainer.py` (learning the
merges, incrementally), `patterns.py` (the split patterns) and `tiktoken_bridge.py`.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections import Counter
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Literal

import regex

from .pairs import Pair, get_pair_counts, merge
from .patterns import GPT4_SPLIT_PATTERN
from .trainer import train_merges

__all__ = ["BPETokenizer", "Pair", "get_pair_counts", "merge", "train_merges"]

# The "format" tag of files written by `BPETokenizer.save`; `load` refuses anything else.
FILE_FORMAT = "course_lib.bpe.v1"
# How many distinct chunks `encode` remembers; when full the memory is simply emptied.
CHUNK_CACHE_SIZE = 100_000

SpecialSet = Collection[str] | Literal["all"]


class BPETokenizer:
    """A byte-level BPE tokenizer: train it, encode and decode, save it, swap it with tiktoken.

    Attributes (treat them as read-only; `train`, `load` and tiktoken_bridge.from_tiktoken set them):
        pattern: the split pattern (a `regex` string), or None for no pre-splitting.
        byte_ids: `byte_ids[b]` is the id of the single byte b (b for a trained tokenizer;
            tiktoken's GPT-2 and GPT-4 encodings number the bytes differently).
        merges: (a, b) -> new id, in the order they were learned. The encoder applies the
            earliest learned merge first: ids grow with merge order, so "earliest" is "lowest id".
        vocab: id -> the bytes it stands for, special tokens included (as UTF-8).
        special_tokens: special token text -> id, e.g. {"<|endoftext|>": 100257}.
    """

    def __init__(self, pattern: str | None = GPT4_SPLIT_PATTERN):
        self.pattern = pattern
        self._set_state(list(range(256)), {}, {})

    # ---- state -------------------------------------------------------------------------------

    def _set_state(self, byte_ids: list[int], merges: dict[Pair, int], special_tokens: dict[str, int]) -> None:
        """Install byte ids, merges and special tokens, and rebuild everything derived from them."""
        if len(byte_ids) != 256 or len(set(byte_ids)) != 256:
            raise ValueError("byte_ids must give 256 distinct ids, one for each byte value 0..255")
        self.byte_ids = list(byte_ids)
        self.merges = dict(merges)
        self.special_tokens = dict(special_tokens)
        self.vocab: dict[int, bytes] = {token_id: bytes([b]) for b, token_id in enumerate(self.byte_ids)}
        for (a, b), new_id in self.merges.items():
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        for text, token_id in self.special_tokens.items():
            self.vocab[token_id] = text.encode("utf-8")
        self._split_regex = None if self.pattern is None else regex.compile(self.pattern)
        self._chunk_cache: dict[str, list[int]] = {}

    def __len__(self) -> int:
        """The vocabulary size: bytes, merges and special tokens."""
        return len(self.vocab)

    def __repr__(self) -> str:
        return (
            f"BPETokenizer({len(self.merges)} merges, {len(self.special_tokens)} special tokens, "
            f"vocab size {len(self)})"
        )

    # ---- training ----------------------------------------------------------------------------

    def split(self, text: str) -> list[str]:
        """Cut text into the chunks that merges never cross (the whole text if pattern is None)."""
        if self._split_regex is None:
            return [text] if text else []
        return self._split_regex.findall(text)

    def train(self, text: str, vocab_size: int, special_tokens: Iterable[str] = ()) -> None:
        """Learn `vocab_size - 256 - len(special_tokens)` merges from `text`, replacing any earlier ones.

        Merge i creates id 256 + i; the special tokens get the ids after the last merge. Occurrences
        of the special tokens in `text` are cut out before counting, so no merge is learned across
        or inside them. Ties between equally frequent pairs go to the smallest pair (a, b).
        """
        special_tokens = list(dict.fromkeys(special_tokens))
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges < 0:
            raise ValueError(
                f"vocab_size={vocab_size} leaves no room for the 256 byte tokens and "
                f"{len(special_tokens)} special tokens; use vocab_size >= {256 + len(special_tokens)}"
            )
        pieces = regex.split("|".join(map(regex.escape, special_tokens)), text) if special_tokens else [text]
        chunk_counts = Counter(chunk for piece in pieces for chunk in self.split(piece))
        byte_counts = {chunk.encode("utf-8"): count for chunk, count in chunk_counts.items()}
        merge_list = train_merges(byte_counts, num_merges)
        if len(merge_list) < num_merges:
            warnings.warn(
                f"the text only allows {len(merge_list)} merges (asked for {num_merges}): "
                f"the vocabulary has {256 + len(merge_list) + len(special_tokens)} tokens",
                stacklevel=2,
            )
        merges = {pair: 256 + i for i, pair in enumerate(merge_list)}
        first_special = 256 + len(merges)
        specials = {token: first_special + i for i, token in enumerate(special_tokens)}
        self._set_state(list(range(256)), merges, specials)

    # ---- encoding and decoding ---------------------------------------------------------------

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Apply the merges to one chunk, earliest learned merge (lowest id) first.

        With merges {(97, 97): 256, (256, 97): 257}: b"aaaa" -> [97, 97, 97, 97] -> [256, 256].
        """
        ids = [self.byte_ids[b] for b in chunk]
        merges = self.merges
        while len(ids) >= 2:
            # The pair whose merge was learned first; pairs that are no merge rank last.
            pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                break
            ids = merge(ids, pair, merges[pair])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token text like any other text (no checks)."""
        ids: list[int] = []
        cache = self._chunk_cache
        for chunk in self.split(text):
            # Text repeats its words; a chunk seen before costs one dict look-up.
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(cache) >= CHUNK_CACHE_SIZE:
                    cache.clear()
                cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def _special_set(self, tokens: SpecialSet, argument: str) -> set[str]:
        """Resolve "all" and check that every name is one of this tokenizer's special tokens."""
        if tokens == "all":
            return set(self.special_tokens)
        if isinstance(tokens, str):
            raise ValueError(f'{argument} takes a set of special tokens, e.g. {{{tokens!r}}}, or "all"')
        unknown = set(tokens) - set(self.special_tokens)
        if unknown:
            raise ValueError(
                f"{argument} names {sorted(unknown)}, which are not special tokens of this "
                f"tokenizer; its special tokens are {sorted(self.special_tokens)}"
            )
        return set(tokens)

    def encode(
        self,
        text: str,
        allowed_special: SpecialSet = frozenset(),
        disallowed_special: SpecialSet = "all",
    ) -> list[int]:
        """Encode text to ids, with tiktoken's rules for special tokens.

        Special-token text that is allowed becomes its special id. Special-token text that is
        disallowed raises ValueError (by default every special token not allowed is disallowed,
        so that text from users cannot smuggle in control tokens). Special tokens that are
        neither are encoded as ordinary text. Unlike tiktoken, naming a token that is not one of
        this tokenizer's special tokens raises ValueError instead of being ignored (a typo).

            tok.encode("hi<|endoftext|>")                            -> ValueError
            tok.encode("hi<|endoftext|>", allowed_special="all")     -> [..., id of <|endoftext|>]
            tok.encode("hi<|endoftext|>", disallowed_special=())     -> ids of the plain text
        """
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = set(self.special_tokens) - allowed
        else:
            disallowed = self._special_set(disallowed_special, "disallowed_special")
        if disallowed:
            found = regex.search("|".join(map(regex.escape, sorted(disallowed))), text)
            if found:
                token = found.group()
                raise ValueError(
                    f"the text contains the special token {token!r}, which is disallowed. To encode "
                    f"it as the special token, pass allowed_special={{{token!r}}} (or "
                    f'allowed_special="all"); to encode it as ordinary text, pass '
                    f"disallowed_special=()."
                )
        if not allowed:
            return self.encode_ordinary(text)
        # Longest first, so that a special token that starts another one cannot cut it short.
        specials_regex = "|".join(regex.escape(t) for t in sorted(allowed, key=len, reverse=True))
        ids: list[int] = []
        start = 0
        for found in regex.finditer(specials_regex, text):
            ids.extend(self.encode_ordinary(text[start : found.start()]))
            ids.append(self.special_tokens[found.group()])
            start = found.end()
        ids.extend(self.encode_ordinary(text[start:]))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes that `ids` stand for. An unknown id raises ValueError."""
        try:
            return b"".join(self.vocab[token_id] for token_id in ids)
        except KeyError as error:
            raise ValueError(
                f"unknown token id {error.args[0]!r}: this tokenizer has ids "
                f"{min(self.vocab)}..{max(self.vocab)} ({len(self.vocab)} tokens)"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into text. Bytes that are not valid UTF-8 become '\ufffd', as in tiktoken.

        Ids can end in the middle of a character: "é" is the two bytes C3 A9, and decoding
        only the id of C3 gives '\ufffd' instead of an error.
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---- saving and loading ------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the tokenizer to a JSON file a person can read: one merge per line, with its text.

            {"format": "course_lib.bpe.v1", "pattern": "...", "byte_ids": [0, 1, ..., 255],
             "merges": [
              [97, 97, 256, "aa"],
              ...],
             "special_tokens": {"<|endoftext|>": 4095}}

        A merge [a, b, new_id, text] says "a followed by b becomes new_id", and text shows the
        new token (bytes that are not valid UTF-8 as \\x escapes); `load` ignores the text.
        """

        def readable(token: bytes) -> str:
            return token.decode("utf-8", errors="backslashreplace")

        dump = functools.partial(json.dumps, ensure_ascii=False)  # show "é", not "\\u00e9"
        merge_lines = ",\n".join(
            f"  {dump([a, b, new_id, readable(self.vocab[new_id])])}" for (a, b), new_id in self.merges.items()
        )
        text = (
            f"{{\n"
            f'"format": {dump(FILE_FORMAT)},\n'
            f'"pattern": {dump(self.pattern)},\n'
            f'"byte_ids": {dump(self.byte_ids)},\n'
            f'"merges": [\n{merge_lines}\n],\n'
            f'"special_tokens": {dump(self.special_tokens)}\n'
            f"}}\n"
        )
        Path(path).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer written by `save`; it encodes exactly like the one that was saved."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError(f"{path} is not a tokenizer saved by BPETokenizer.save (format {FILE_FORMAT!r})")
        tokenizer = cls(pattern=data["pattern"])
        merges = {(a, b): new_id for a, b, new_id, *_text in data["merges"]}
        tokenizer._set_state(data["byte_ids"], merges, data["special_tokens"])
        return tokenizer

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
merges, incrementally), `patterns.py` (the split patterns), `tiktoken_bridge.py` and `gpt2_files.py`
(GPT-2's published encoder.json and vocab.bpe). A `BPETokenizer` follows the course's tokenizer
protocol (`protocol.py`): `vocab_size`, `encode`, `decode`, `to_dict`, `from_dict`.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import regex

from .pairs import Pair, get_pair_counts, merge
from .patterns import GPT4_SPLIT_PATTERN
from .protocol import UnknownTokenIdError
from .trainer import train_merges

__all__ = ["BPETokenizer", "Pair", "get_pair_counts", "merge", "train_merges"]

# The "format" tag of files written by `BPETokenizer.save`; `load` refuses anything else.
FILE_FORMAT = "course_lib.bpe.v1"
# How many distinct chunks `encode` remembers; when full the memory is simply emptied.
CHUNK_CACHE_SIZE = 100_000

# How many characters `encode_iterable` gathers before it encodes what it safely can.
STREAM_BLOCK = 1 << 16

SpecialSet = Collection[str] | Literal["all"]


class BPETokenizer:
    """A byte-level BPE tokenizer: train it, encode and decode, save it, swap it with tiktoken.

    Attributes (treat them as read-only; `train`, `from_dict`, `from_vocab_and_merges` and
    tiktoken_bridge.from_tiktoken set them):
        pattern: the split pattern (a `regex` string), or None for no pre-splitting.
        byte_ids: `byte_ids[b]` is the id of the single byte b (b for a trained tokenizer;
            tiktoken's GPT-2 and GPT-4 encodings number the bytes differently).
        merges: (a, b) -> new id, in the order they were learned. The encoder applies the
            earliest learned merge first: ids grow with merge order, so "earliest" is "lowest id".
        vocab: id -> the bytes it stands for, special tokens included (as UTF-8).
        special_tokens: special token text -> id, e.g. {"<|endoftext|>": 100257}.
    """

    kind = "bpe"  # the "kind" entry of `to_dict`, which `tokenizer_from_dict` dispatches on

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
        """How many tokens there are: bytes, merges and special tokens."""
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        """How many ids the model's embedding table needs: one more than the largest id.

        For a trained tokenizer this is len(self): its ids are 0 .. len - 1. Ids can have gaps:
        cl100k_base's special tokens start at 100257 and skip some, so from_tiktoken("cl100k_base")
        has 100,261 tokens but vocab_size 100,277 (tiktoken's `n_vocab`).
        """
        return max(self.vocab) + 1

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

    @classmethod
    def from_vocab_and_merges(
        cls,
        vocab: dict[int, bytes],
        merges: Iterable[tuple[bytes, bytes]],
        special_tokens: Iterable[str] | None = None,
        pattern: str | None = GPT4_SPLIT_PATTERN,
    ) -> BPETokenizer:
        """A tokenizer from a vocabulary (id -> bytes) and its merges as byte pairs, in learned order.

        This is the form other BPE code publishes (GPT-2's files, see `gpt2_files.py`; Hugging
        Face's `tokenizers`; the CS336 assignment). Every byte must have a token of its own, each
        merge (left, right) must join two tokens of the vocabulary into a third, and each special
        token keeps its id in `vocab` if it has one (else it gets the next free id).

            >>> vocab = {i: bytes([i]) for i in range(256)} | {256: b"aa", 257: b"aab"}
            >>> tok = BPETokenizer.from_vocab_and_merges(vocab, [(b"a", b"a"), (b"aa", b"b")])
            >>> tok.merges
            {(97, 97): 256, (256, 98): 257}
            >>> tok.encode("aab"), tok.encode("aaab")   # "aaab": "aa" first, then a, b stay apart
            ([257], [256, 97, 98])

        The encoder applies the merge with the lowest new id first, so the merged tokens' ids must
        grow along `merges` (true of every BPE vocabulary numbered as it was learned); a vocabulary
        numbered otherwise raises ValueError, as does a token that is neither a byte, nor made by a
        merge, nor a special token (name it in `special_tokens`).
        """
        special_tokens = list(dict.fromkeys(special_tokens or ()))
        special_bytes = {token.encode("utf-8") for token in special_tokens}
        id_of: dict[bytes, int] = {}  # the bytes of each ordinary token -> its id
        special_ids: dict[bytes, int] = {}
        for token_id, token in vocab.items():
            table = special_ids if token in special_bytes else id_of
            if token in table:
                raise ValueError(f"ids {table[token]} and {token_id} both stand for {token!r}")
            table[token] = token_id

        def id_for(token: bytes, role: str) -> int:
            if token not in id_of:
                raise ValueError(f"{role} {token!r} is not in the vocabulary")
            return id_of[token]

        byte_ids = [id_for(bytes([b]), "the single byte") for b in range(256)]
        merge_ids: dict[Pair, int] = {}
        last_id = -1
        for left, right in merges:
            new_id = id_for(left + right, f"the token made by merging {left!r} and {right!r},")
            if new_id <= last_id:
                raise ValueError(
                    f"the merge {left!r} + {right!r} makes id {new_id}, lower than an earlier merge's: "
                    "BPETokenizer applies merges in the order of their ids, so a merge's token must "
                    "have a higher id than every earlier merge's"
                )
            merge_ids[id_for(left, "the merge part"), id_for(right, "the merge part")] = last_id = new_id
        next_id = max(vocab, default=255) + 1
        specials: dict[str, int] = {}
        for token in special_tokens:
            if token.encode("utf-8") in special_ids:
                specials[token] = special_ids[token.encode("utf-8")]
            else:
                specials[token], next_id = next_id, next_id + 1
        unexplained = set(vocab) - set(byte_ids) - set(merge_ids.values()) - set(specials.values())
        if unexplained:
            examples = {token_id: vocab[token_id] for token_id in sorted(unexplained)[:3]}
            raise ValueError(
                f"{len(unexplained)} tokens of the vocabulary, e.g. {examples}, are neither a byte, nor "
                "made by a merge, nor a special token: pass them in special_tokens"
            )
        tokenizer = cls(pattern=pattern)
        tokenizer._set_state(byte_ids, merge_ids, specials)
        return tokenizer

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
            ids.extend(cache.get(chunk) or self._chunk_ids(chunk))
        return ids

    def _chunk_ids(self, chunk: str) -> list[int]:
        """`_encode_chunk` of the chunk's bytes, remembered (up to CHUNK_CACHE_SIZE chunks)."""
        chunk_ids = self._chunk_cache.get(chunk)
        if chunk_ids is None:
            chunk_ids = self._encode_chunk(chunk.encode("utf-8"))
            if len(self._chunk_cache) >= CHUNK_CACHE_SIZE:
                self._chunk_cache.clear()
            self._chunk_cache[chunk] = chunk_ids
        return chunk_ids

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
        allowed, disallowed = self._resolve_specials(allowed_special, disallowed_special)
        self._refuse_disallowed(text, disallowed)
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for _start, piece, is_special in self._pieces(text, allowed):
            if is_special:
                ids.append(self.special_tokens[piece])
            else:
                ids.extend(self._chunk_ids(piece))
        return ids

    def _pieces(self, text: str, allowed: Collection[str]) -> list[tuple[int, str, bool]]:
        """What `encode` turns into ids, in order: (start, text, is_special) for each allowed
        special token and each chunk of the split pattern in the text around them."""
        pieces = []
        start = 0
        for found in regex.finditer(self._specials_regex(allowed), text) if allowed else ():
            pieces += [(start + offset, chunk, False) for offset, chunk in self._chunks(text[start : found.start()])]
            pieces.append((found.start(), found.group(), True))
            start = found.end()
        pieces += [(start + offset, chunk, False) for offset, chunk in self._chunks(text[start:])]
        return pieces

    def _chunks(self, text: str) -> list[tuple[int, str]]:
        """`split(text)`, each chunk with the position where it starts."""
        if self._split_regex is None:
            return [(0, text)] if text else []
        return [(found.start(), found.group()) for found in self._split_regex.finditer(text)]

    def _resolve_specials(self, allowed_special: SpecialSet, disallowed_special: SpecialSet) -> tuple[set[str], set[str]]:
        """The allowed and the disallowed special tokens, as sets of their texts."""
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            return allowed, set(self.special_tokens) - allowed
        return allowed, self._special_set(disallowed_special, "disallowed_special")

    @staticmethod
    def _specials_regex(tokens: Collection[str]) -> str:
        # Longest first, so that a special token that starts another one cannot cut it short.
        return "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True))

    @staticmethod
    def _refuse_disallowed(text: str, disallowed: set[str]) -> None:
        """Raise ValueError if `text` contains one of the `disallowed` special tokens."""
        if not disallowed:
            return
        found = regex.search(BPETokenizer._specials_regex(disallowed), text)
        if found:
            token = found.group()
            raise ValueError(
                f"the text contains the special token {token!r}, which is disallowed. To encode "
                f"it as the special token, pass allowed_special={{{token!r}}} (or "
                f'allowed_special="all"); to encode it as ordinary text, pass '
                f"disallowed_special=()."
            )

    def encode_iterable(
        self,
        lines: Iterable[str],
        allowed_special: SpecialSet = frozenset(),
        disallowed_special: SpecialSet = "all",
    ) -> Iterator[int]:
        """Encode a text given in parts (the lines of an open file), yielding ids as it goes.

        The ids are exactly `encode("".join(lines), allowed_special, disallowed_special)`, but
        only a little text is held at a time, however long the file:

            with open("corpus.txt", encoding="utf-8") as file:
                for token_id in tok.encode_iterable(file): ...

        Where it is safe to cut: merges stop at the split pattern's chunks (and at special
        tokens), so the text read so far is split as `encode` would split it, and the chunks are
        encoded except the last two, which wait for the next line. The last chunk may go on (a
        word or a run of whitespace continued on the next line: "\\n" then "\\n" is one chunk
        under GPT-4's pattern), and GPT-4o's pattern even glues the next line to the chunk before
        the last ("he'" is the chunks "he" and "'", but "he's" is one chunk). For the GPT-2, GPT-4
        and GPT-4o patterns a chunk depends on what follows it only through the next chunk, so the
        chunks before the last two are final (the tests check this on random texts cut at random
        places). If the text ends with the beginning of a special token ("...<|endof" may be
        followed by "text|>"), that is where the text may end, so the two chunks before it wait
        too (a special token ends the text before it). Memory is bounded by STREAM_BLOCK characters
        (lines are gathered to that size before each cut) plus the two longest chunks (words,
        runs of whitespace), not by the file.
        (With pattern=None the whole text is one chunk: nothing is encoded before the end.)
        """
        allowed, disallowed = self._resolve_specials(allowed_special, disallowed_special)
        watched = allowed | disallowed  # special tokens whose text must not be cut in two
        pending = ""  # text not encoded yet: the two chunks held back, then the lines read since
        batch: list[str] = []
        batch_size = 0
        for line in lines:
            batch.append(line)
            batch_size += len(line)
            if batch_size < STREAM_BLOCK:  # cutting after every short line would cost more
                continue
            pending += "".join(batch)
            batch, batch_size = [], 0
            self._refuse_disallowed(pending, disallowed)
            pieces = self._pieces(pending, allowed)
            # The text may end with the start of a special token, which would end the text
            # before it: the last two pieces before that point wait, as at the end of the text.
            end = self._special_prefix_start(pending, watched)
            keep = max(0, sum(1 for start, _, _ in pieces if start < end) - 2)
            for _start, piece, is_special in pieces[:keep]:
                if is_special:
                    yield self.special_tokens[piece]
                else:
                    yield from self._chunk_ids(piece)
            if keep > 0:
                pending = pending[pieces[keep][0] :]
        yield from self.encode(pending + "".join(batch), allowed_special, disallowed_special)

    @staticmethod
    def _special_prefix_start(text: str, tokens: Collection[str]) -> int:
        """Where the longest end of `text` that begins one of `tokens` starts (len(text) if none).

            _special_prefix_start("ab<|end", ["<|endoftext|>"]) -> 2
        """
        start = len(text)
        for token in tokens:
            for length in range(min(len(token) - 1, len(text)), 0, -1):
                if text.endswith(token[:length]):
                    start = min(start, len(text) - length)
                    break
        return start

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes that `ids` stand for. An unknown id raises UnknownTokenIdError (a ValueError)."""
        try:
            return b"".join(self.vocab[token_id] for token_id in ids)
        except KeyError as error:
            raise UnknownTokenIdError(error.args[0], known_ids=self.vocab) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into text. Bytes that are not valid UTF-8 become '\ufffd', as in tiktoken.

        Ids can end in the middle of a character: "é" is the two bytes C3 A9, and decoding
        only the id of C3 gives '\ufffd' instead of an error.
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---- saving and loading ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The tokenizer as JSON-able data (what a checkpoint stores; `save` writes it to a file).

            {"kind": "bpe", "format": "course_lib.bpe.v1", "pattern": "...",
             "byte_ids": [0, 1, ..., 255], "merges": [[97, 97, 256], ...],
             "special_tokens": {"<|endoftext|>": 4095}}

        A merge [a, b, new_id] says "a followed by b becomes new_id"; merges are in learned order.
        """
        return {
            "kind": self.kind,
            "format": FILE_FORMAT,
            "pattern": self.pattern,
            "byte_ids": list(self.byte_ids),
            "merges": [[a, b, new_id] for (a, b), new_id in self.merges.items()],
            "special_tokens": dict(self.special_tokens),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> BPETokenizer:
        """The tokenizer that `to_dict` (or a file written by `save`) described.

        Checkpoints written before `to_dict` existed stored the text of the saved file, as
        {"kind": "bpe", "json": "..."}; they load too.
        """
        if isinstance(state, dict) and isinstance(state.get("json"), str):
            state = json.loads(state["json"])
        if not isinstance(state, dict) or state.get("format") != FILE_FORMAT:
            raise ValueError(f"not a BPETokenizer's state (format {FILE_FORMAT!r}): {str(state)[:80]}")
        tokenizer = cls(pattern=state["pattern"])
        merges = {(a, b): new_id for a, b, new_id, *_text in state["merges"]}
        tokenizer._set_state(state["byte_ids"], merges, state["special_tokens"])
        return tokenizer

    def save(self, path: str | Path) -> None:
        """Write `to_dict()` to a JSON file a person can read: one merge per line, with its text.

            {
            "kind": "bpe",
            ...
            "merges": [
              [97, 97, 256, "aa"],
              ...],
            "special_tokens": {"<|endoftext|>": 4095}
            }

        The text shows the new token (bytes that are not valid UTF-8 as \\x escapes); `load`
        ignores it.
        """

        def readable(token: bytes) -> str:
            return token.decode("utf-8", errors="backslashreplace")

        dump = functools.partial(json.dumps, ensure_ascii=False)  # show "é", not "\\u00e9"
        entries = []
        for key, value in self.to_dict().items():
            if key == "merges":
                merge_lines = ",\n".join(f"  {dump([*merge, readable(self.vocab[merge[2]])])}" for merge in value)
                entries.append(f'"merges": [\n{merge_lines}\n]')
            else:
                entries.append(f"{dump(key)}: {dump(value)}")
        Path(path).write_text("{\n" + ",\n".join(entries) + "\n}\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer written by `save`; it encodes exactly like the one that was saved."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError(f"{path} is not a tokenizer saved by BPETokenizer.save (format {FILE_FORMAT!r})")
        return cls.from_dict(data)

"""See how a tokenizer cuts text into tokens, one coloured span per token.

`show_tokens` works with a `tiktoken.Encoding` and with the course's `BPETokenizer`. In Jupyter
(and in the built book) the result renders as coloured spans with each token's id on hover, like
the tiktokenizer web app; in a terminal it prints the tokens between visible dividers:

    >>> import tiktoken
    >>> view = show_tokens("Hello world!", tiktoken.get_encoding("cl100k_base"))
    >>> view
    TokenView(3 tokens): 'Hello' | ' world' | '!'
    >>> view.ids
    [9906, 1917, 0]

A token is a sequence of bytes, not of characters: an emoji or a Chinese character often takes
several tokens, none of which is valid UTF-8 alone. Such tokens cannot be drawn one by one, so a
span holds the tokens that together complete a character (drawn with a dashed outline, all their
ids on hover). Joining the spans' texts always gives back the input text.
"""

from __future__ import annotations

import codecs
import html
from dataclasses import dataclass
from typing import Any, Callable, Collection, Literal

# Paul Tol's "light" scheme, designed for labelled regions with black text on top and
# distinguishable for colour-blind readers (https://personal.sron.nl/~pault/#sec:qualitative).
PALETTE: tuple[str, ...] = (
    "#77AADD",  # light blue
    "#EE8866",  # orange
    "#EEDD88",  # light yellow
    "#FFAABB",  # pink
    "#99DDFF",  # light cyan
    "#44BB99",  # mint
    "#BBCC33",  # pear
    "#AAAA00",  # olive
    "#DDDDDD",  # pale grey
)


def _hex_bytes(error: UnicodeDecodeError) -> tuple[str, int]:
    """Codec error handler that writes undecodable bytes as <0xE2> instead of failing."""
    bad = error.object[error.start : error.end]
    return "".join(f"<0x{b:02X}>" for b in bad), error.end


codecs.register_error("course_lib_hex", _hex_bytes)


def token_text(token: bytes) -> str:
    """Readable text of one token's bytes; bytes that are not valid UTF-8 alone appear as <0x..>.

    token_text(b" world") -> " world"
    token_text(b"\\xf0\\x9f") -> "<0xF0><0x9F>"   (the first two of the four bytes of an emoji)
    """
    return token.decode("utf-8", errors="course_lib_hex")


@dataclass(frozen=True)
class Span:
    """One coloured piece of the display: whole characters and the token ids that produced them.

    `ids` has more than one id only when a character is split over several tokens.
    """

    text: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class TokenView:
    """The tokens of a text, ready to display; build it with `show_tokens`.

    `ids` and `tokens` (each token's bytes) follow the tokenizer's order; `spans` is what gets
    drawn. `len(view)` is the number of tokens.
    """

    ids: list[int]
    tokens: list[bytes]
    spans: list[Span]
    special_ids: frozenset[int] = frozenset()

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def text(self) -> str:
        """The displayed text: the input text again (split characters are joined back)."""
        return "".join(span.text for span in self.spans)

    @property
    def token_texts(self) -> list[str]:
        """Each token as readable text, e.g. ['Hello', ' world', '<0xF0><0x9F>']."""
        return [token_text(token) for token in self.tokens]

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        pieces = []
        for span in self.spans:
            piece = repr(span.text)  # quotes make spaces visible, escapes show '\n'
            if len(span.ids) > 1:
                piece += f"({len(span.ids)} tokens)"
            pieces.append(piece)
        return f"TokenView({self.n_tokens} tokens): " + " | ".join(pieces)

    def _repr_html_(self) -> str:
        """Inline-styled HTML (no JavaScript), so it also survives in the static book."""
        n_chars = len(self.text)
        header = (
            f'<div style="font-size:0.85em;margin-bottom:0.3em">'
            f"{self.n_tokens} tokens, {n_chars} characters</div>"
        )
        body = "".join(
            self._span_html(span, PALETTE[i % len(PALETTE)]) for i, span in enumerate(self.spans)
        )
        box_style = "white-space:pre-wrap;font-family:ui-monospace,monospace;line-height:1.9"
        return f'<div class="token-view">{header}<div style="{box_style}">{body}</div></div>'

    def _span_html(self, span: Span, colour: str) -> str:
        style = f"background:{colour};color:#000;border-radius:2px"
        if len(span.ids) > 1:  # a character split over several tokens
            style += ";outline:1px dashed #000"
        if any(i in self.special_ids for i in span.ids):
            style += ";font-weight:bold;outline:2px solid #000"
        label = "id" if len(span.ids) == 1 else "ids"
        title = f"{label} {', '.join(map(str, span.ids))}"
        if len(span.ids) > 1:
            title += f" ({len(span.ids)} tokens that split a character)"
        # A faint arrow marks each newline, which would otherwise be invisible.
        shown = html.escape(span.text).replace("\n", '<span style="opacity:0.5">↵</span>\n')
        return f'<span title="{html.escape(title)}" style="{style}">{shown}</span>'


def _adapt(tokenizer: Any) -> tuple[Callable[..., list[int]], Callable[[int], bytes], set[int]]:
    """Return (encode, bytes_of_id, special_ids) for a tiktoken.Encoding or a BPETokenizer."""
    if hasattr(tokenizer, "decode_single_token_bytes"):  # tiktoken.Encoding
        specials = {tokenizer.encode_single_token(s) for s in tokenizer.special_tokens_set}
        return tokenizer.encode, tokenizer.decode_single_token_bytes, specials
    if hasattr(tokenizer, "vocab") and hasattr(tokenizer, "encode"):  # course_lib BPETokenizer
        return tokenizer.encode, tokenizer.vocab.__getitem__, set(tokenizer.special_tokens.values())
    raise TypeError(
        f"show_tokens needs a tiktoken.Encoding or a course_lib BPETokenizer, "
        f"got {type(tokenizer).__name__}"
    )


def group_spans(ids: list[int], tokens: list[bytes]) -> list[Span]:
    """Group tokens into spans of whole characters, so that every span can be drawn.

    Each token gets its own span unless its bytes end inside a character: then the following
    tokens join its span until a token ends on a character boundary. Bytes that never form a character are shown
    as U+FFFD (the replacement character).

    group_spans([1, 2], [b"a", b"b"]) -> [Span("a", (1,)), Span("b", (2,))]
    group_spans([7, 8], [b"\\xc3", b"\\xa9!"]) -> [Span("é!", (7, 8))]
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    spans: list[Span] = []
    text, pending = "", []  # the open span: its text so far and its ids
    for token_id, token in zip(ids, tokens):
        text += decoder.decode(token)
        pending.append(token_id)
        unfinished_bytes, _ = decoder.getstate()
        if not unfinished_bytes:  # the token ends on a character boundary: close the span
            spans.append(Span(text, tuple(pending)))
            text, pending = "", []
    if pending:  # the text ends inside a character
        spans.append(Span(text + decoder.decode(b"", final=True), tuple(pending)))
    return spans


def show_tokens(
    text: str,
    tokenizer: Any,
    allowed_special: Collection[str] | Literal["all"] = frozenset(),
) -> TokenView:
    """Tokenize `text` and return a `TokenView` that displays one coloured span per token.

    `tokenizer` is a `tiktoken.Encoding` or a course_lib `BPETokenizer`. `allowed_special` is
    passed to `encode` (tiktoken semantics): use "all" to show special tokens such as
    <|endoftext|> as one token each (drawn in bold) instead of raising an error.

    show_tokens("Hello world!", tiktoken.get_encoding("cl100k_base")).ids -> [9906, 1917, 0]
    """
    encode, bytes_of_id, special_ids = _adapt(tokenizer)
    ids = list(encode(text, allowed_special=allowed_special))
    tokens = [bytes_of_id(i) for i in ids]
    return TokenView(ids, tokens, group_spans(ids, tokens), frozenset(special_ids & set(ids)))

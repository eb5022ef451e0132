"""Tests for course_lib.tokenization.visualize.

References trusted: tiktoken's own `encode` and `decode_single_token_bytes`, the course's
BPETokenizer `encode` and `vocab`, Python's HTML parser (what a browser would read), and
hand-computed UTF-8 examples.
"""

from html.parser import HTMLParser

import pytest
import tiktoken

from course_lib.tokenization import BPETokenizer, from_tiktoken
from course_lib.tokenization.visualize import PALETTE, Span, group_spans, show_tokens

TEXTS = [
    "Hello world!",
    "I love machine learning",
    "def add(a, b):\n    return a + b\n\n",
    "Prices rose 12.5% to $1,234,567 in 2024.",
    "Llama 🦙 says 你好世界, ça va? Привет!",
    "   leading spaces\tand a tab",
]


@pytest.fixture(scope="module", params=["cl100k_base", "o200k_base"])
def encoding(request) -> tiktoken.Encoding:
    return tiktoken.get_encoding(request.param)


class TokenSpans(HTMLParser):
    """Read back what a browser would show: each titled span's title, style and visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[dict] = []
        self._depth = 0  # nesting inside a token span (the newline marker is a nested span)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "title" in attrs:
            self.spans.append({"title": attrs["title"], "style": attrs["style"], "text": ""})
            self._depth = 1
        elif tag == "span" and self._depth:
            self._depth += 1

    def handle_endtag(self, tag):
        if tag == "span" and self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth == 1:  # skip the nested newline marker, keep the token's own text
            self.spans[-1]["text"] += data


def parse(view) -> list[dict]:
    parser = TokenSpans()
    parser.feed(view._repr_html_())
    return parser.spans


def background(style: str) -> str:
    return next(p.split(":")[1] for p in style.split(";") if p.startswith("background:"))


@pytest.mark.parametrize("text", TEXTS)
def test_ids_and_bytes_match_tiktoken(encoding, text):
    view = show_tokens(text, encoding)
    assert view.ids == encoding.encode(text)
    assert view.tokens == [encoding.decode_single_token_bytes(i) for i in view.ids]
    assert len(view) == view.n_tokens == len(encoding.encode(text))


@pytest.mark.parametrize("text", TEXTS)
def test_spans_join_back_to_the_text(encoding, text):
    view = show_tokens(text, encoding)
    assert "".join(span.text for span in view.spans) == text
    assert [i for span in view.spans for i in span.ids] == view.ids
    # What the browser shows (HTML unescaped by a real parser) is the text, too.
    assert "".join(span["text"] for span in parse(view)) == text


@pytest.mark.parametrize("text", TEXTS)
def test_neighbouring_spans_have_different_colours(encoding, text):
    colours = [background(span["style"]) for span in parse(show_tokens(text, encoding))]
    assert len(colours) > 1
    assert set(colours) <= set(PALETTE)
    assert all(a != b for a, b in zip(colours, colours[1:]))


def test_html_escapes_token_text(encoding):
    text = '<script>alert("hi")</script> & <b>bold</b>'
    html = show_tokens(text, encoding)._repr_html_()
    assert "<script" not in html and "<b>" not in html
    assert "&lt;" in html and "&amp;" in html
    assert "".join(span["text"] for span in parse(show_tokens(text, encoding))) == text


@pytest.mark.parametrize("text", TEXTS)
def test_hover_titles_list_the_ids(encoding, text):
    titles = [span["title"] for span in parse(show_tokens(text, encoding))]
    ids_in_titles = []
    for title in titles:
        numbers = title.split(" (")[0].removeprefix("ids ").removeprefix("id ")
        ids_in_titles += [int(n) for n in numbers.split(", ")]
    assert ids_in_titles == encoding.encode(text)


def test_split_utf8_character_does_not_raise():
    enc = tiktoken.get_encoding("cl100k_base")
    text = "a llama 🦙!"
    view = show_tokens(text, enc)
    # The reference confirms the emoji really is split: some of its tokens are not UTF-8 alone.
    undecodable = []
    for token in view.tokens:
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            undecodable.append(token)
    assert undecodable
    assert view.text == text
    assert any(len(span.ids) > 1 and "🦙" in span.text for span in view.spans)
    assert any("<0x" in t for t in view.token_texts)
    assert "🦙" in repr(view) and "🦙" in view._repr_html_()


def test_group_spans_hand_computed():
    # "é" is b"\xc3\xa9" in UTF-8; split over two tokens it becomes one span with both ids.
    assert group_spans([7, 8], [b"\xc3", b"\xa9!"]) == [Span("é!", (7, 8))]
    assert group_spans([1, 2], [b"a", b"b"]) == [Span("a", (1,)), Span("b", (2,))]
    # A lone start byte at the very end cannot become a character: shown as U+FFFD.
    assert group_spans([3], [b"\xe2"]) == [Span("\ufffd", (3,))]


def test_special_tokens_follow_tiktoken_semantics():
    enc = tiktoken.get_encoding("cl100k_base")
    text = "end<|endoftext|>start"
    with pytest.raises(ValueError):
        show_tokens(text, enc)  # disallowed by default, as in tiktoken
    view = show_tokens(text, enc, allowed_special="all")
    assert view.ids == enc.encode(text, allowed_special="all")
    assert enc.eot_token in view.ids
    assert view.text == text
    special = [s for s in parse(view) if s["text"] == "<|endoftext|>"]
    assert len(special) == 1 and "bold" in special[0]["style"]


def test_terminal_repr_shows_tokens_with_dividers():
    view = show_tokens("Hello world!\n", tiktoken.get_encoding("cl100k_base"))
    shown = repr(view)
    assert shown.startswith(f"TokenView({len(view.ids)} tokens)")
    assert "' world'" in shown and " | " in shown and "\\n" in shown
    assert str(view) == shown


def test_works_with_course_bpe_tokenizer():
    tokenizer = BPETokenizer()
    tokenizer.train("the cat sat on the mat; the cat ate the rat " * 20, vocab_size=270)
    text = "the cat sat on a hat 🦙\nthe end"
    view = show_tokens(text, tokenizer)
    assert view.ids == tokenizer.encode(text)
    assert view.tokens == [tokenizer.vocab[i] for i in view.ids]
    assert b"".join(view.tokens) == text.encode("utf-8")
    assert view.text == text
    assert len(view.ids) < len(text.encode("utf-8"))  # merges were used, not only raw bytes


def test_rejects_objects_that_are_not_tokenizers():
    with pytest.raises(TypeError, match="tiktoken.Encoding or a course_lib BPETokenizer"):
        show_tokens("hi", object())


def test_course_tokenizer_rebuilt_from_tiktoken_shows_the_same_tokens():
    # cl100k_base numbers its bytes differently from 0..255, so the bytes must come from vocab.
    enc = tiktoken.get_encoding("cl100k_base")
    text = "Llama 🦙 says 你好世界 and <b>hi</b>"
    ours = show_tokens(text, from_tiktoken(enc))
    theirs = show_tokens(text, enc)
    assert ours.ids == enc.encode(text)
    assert ours.tokens == theirs.tokens
    assert ours.spans == theirs.spans

"""BPETokenizer.encode_iterable: a text given in pieces (a file's lines) encodes to encode(whole text),
in memory that does not grow with the file.

References: `encode` on the whole text (itself tested against tiktoken), tiktoken's encoding of
the same vocabulary (`to_tiktoken`) for the large file, and tracemalloc for the memory.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from course_lib.tokenization import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    GPT4O_SPLIT_PATTERN,
    BPETokenizer,
    bpe,
    to_tiktoken,
)

# Letters, digits, punctuation, every kind of whitespace, contractions, CamelCase, "/" (which
# GPT-4o's pattern glues to punctuation and newlines before it).
ATOMS = [*"ab \n\r\t'sS19!./é<|>", "'s", "'ll", "'re", "he", "Ab", "1234", "\n\n", "  "]
SPECIALS = ["<|end|>", "<|end|>x"]  # one is the start of the other


def random_text(rng: random.Random, atoms: int) -> str:
    return "".join(rng.choice([*ATOMS, "<|end|>"]) for _ in range(atoms))


def pieces_of(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 10))))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]


@pytest.mark.parametrize("pattern", [GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, GPT4O_SPLIT_PATTERN, None])
def test_pieces_cut_anywhere_give_the_ids_of_the_whole_text(pattern, monkeypatch):
    monkeypatch.setattr(bpe, "STREAM_BLOCK", 1)  # cut after every piece, the hardest case
    rng = random.Random(0)
    tok = BPETokenizer(pattern=pattern)
    tok.train(random_text(rng, 1000).replace("<|end|>", ""), vocab_size=400, special_tokens=SPECIALS)
    for _ in range(300):
        text = random_text(rng, rng.randint(0, 30))
        pieces = pieces_of(text, rng)
        for rules in ({"allowed_special": "all"}, {"allowed_special": {"<|end|>"}}, {"disallowed_special": ()}):
            assert list(tok.encode_iterable(pieces, **rules)) == tok.encode(text, **rules), (pieces, rules)


def test_a_chunk_continued_on_the_next_line_waits_for_it(monkeypatch):
    monkeypatch.setattr(bpe, "STREAM_BLOCK", 1)
    tok = BPETokenizer(pattern=GPT4_SPLIT_PATTERN)
    tok.train("a\n\nb a\n\nb\n\n", vocab_size=258)
    lines = ["a\n", "\n", "b"]
    # GPT-4's pattern makes "\n\n" one chunk: encoding line by line would give other ids.
    assert tok.split("a\n\nb") == ["a", "\n\n", "b"]
    line_by_line = [token_id for line in lines for token_id in tok.encode(line)]
    assert line_by_line != tok.encode("a\n\nb")
    assert list(tok.encode_iterable(lines)) == tok.encode("a\n\nb")


def test_gpt4o_glues_a_contraction_to_the_word_before(monkeypatch):
    monkeypatch.setattr(bpe, "STREAM_BLOCK", 1)
    tok = BPETokenizer(pattern=GPT4O_SPLIT_PATTERN)
    tok.train("he's he's he'll a!\n/b a!\n/b", vocab_size=265)
    # "he'" alone is the chunks "he" and "'"; with the "s" of the next line it is one chunk.
    assert tok.split("he'") == ["he", "'"] and tok.split("he's") == ["he's"]
    assert len(tok.encode("he's")) == 1
    assert list(tok.encode_iterable(["he'", "s"])) == tok.encode("he's")
    # Punctuation takes the line breaks and slashes after it: "!\n/" is one chunk, one token.
    assert tok.split("a!\n/b") == ["a", "!\n/", "b"] and len(tok.encode("!\n/")) == 1
    assert list(tok.encode_iterable(["a!\n", "/b"])) == tok.encode("a!\n/b")


def test_a_special_token_split_across_lines(monkeypatch):
    monkeypatch.setattr(bpe, "STREAM_BLOCK", 1)
    tok = BPETokenizer(pattern=GPT4_SPLIT_PATTERN)
    tok.train("one two three", vocab_size=260, special_tokens=["<|endoftext|>"])
    lines = ["one <|endof", "text|> two"]
    ids = list(tok.encode_iterable(lines, allowed_special="all"))
    assert ids == tok.encode("one <|endoftext|> two", allowed_special="all")
    assert tok.special_tokens["<|endoftext|>"] in ids
    with pytest.raises(ValueError, match="contains the special token '<|endoftext|>', which is disallowed"):
        list(tok.encode_iterable(lines))


# ---- a large file -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus():
    """A tokenizer and a 1 MiB block of text: documents of long made-up words, one special token.

    Long words, each learned as one token, keep pure-Python encoding of tens of MB to seconds.
    """
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(150, 250))) for _ in range(20)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) + "\n" for _ in range(500)]
    tok = BPETokenizer(pattern=GPT4_SPLIT_PATTERN)
    with pytest.warns(UserWarning, match="only allows"):  # every word is one token before 6000
        tok.train("".join(lines), vocab_size=6000, special_tokens=["<|endoftext|>"])
    assert all(len(tok.encode(" " + word)) == 1 for word in words)
    block = []
    size = 0
    while size < 2**20:
        document = "".join(rng.choice(lines) for _ in range(rng.randint(1, 30))) + "<|endoftext|>\n"
        block.append(document)
        size += len(document)
    return tok, "".join(block)


def write_file(path, block: str, megabytes: int):
    with open(path, "w", encoding="utf-8") as file:
        for _ in range(megabytes):
            file.write(block)
    return path


def streaming_peak(tok: BPETokenizer, path) -> tuple[int, int]:
    """(how many ids, the peak of memory allocated) while encode_iterable reads the file."""
    tracemalloc.start()
    try:
        with open(path, encoding="utf-8") as file:
            count = sum(1 for _ in tok.encode_iterable(file, allowed_special={"<|endoftext|>"}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def test_memory_does_not_grow_with_the_file(corpus, tmp_path):
    tok, block = corpus
    small = write_file(tmp_path / "small.txt", block, 10)
    large = write_file(tmp_path / "large.txt", block, 40)
    small_count, small_peak = streaming_peak(tok, small)
    large_count, large_peak = streaming_peak(tok, large)
    assert large_count == 4 * small_count
    # A 10 MB and a 40 MB file take the same few hundred kB (the text alone is 10 and 40 MB).
    assert small_peak < 2**20 and large_peak < 2**20
    assert large_peak < 1.25 * small_peak
    print(f"peak memory: {small_peak / 1e3:.0f} kB for 10 MB, {large_peak / 1e3:.0f} kB for 40 MB")


def test_ids_of_a_file_equal_those_of_the_whole_text(corpus, tmp_path):
    tok, block = corpus
    path = write_file(tmp_path / "file.txt", block, 3)
    expected = to_tiktoken(tok).encode(path.read_text(encoding="utf-8"), allowed_special={"<|endoftext|>"})
    with open(path, encoding="utf-8") as file:
        assert list(tok.encode_iterable(file, allowed_special={"<|endoftext|>"})) == expected

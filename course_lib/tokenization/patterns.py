"""The regular expressions that cut text into chunks before byte-pair merging.

BPE never merges across a chunk boundary, so the pattern decides what a token can span. All
three split a word from the space in front of it (" world" stays one chunk, so it can become one
token) and keep letters, digits and punctuation apart:

    >>> import regex
    >>> regex.findall(GPT2_SPLIT_PATTERN, "Hello world's 2024!!")
    ['Hello', ' world', "'s", ' 2024', '!!']
    >>> regex.findall(GPT4_SPLIT_PATTERN, "Hello world's 2024!!")
    ['Hello', ' world', "'s", ' ', '202', '4', '!!']

GPT-4's pattern cuts digit runs into groups of at most three, matches contractions in any case
("'S" as well as "'s") and lets a word start with a punctuation mark; GPT-4o's also splits
CamelCase words and keeps contractions attached to the word ("world's" is one chunk).

The strings are exactly those of the tiktoken encodings (`tiktoken.get_encoding(name)._pat_str`),
in the syntax of the `regex` package (`\\p{L}` = any letter, `\\p{N}` = any digit, possessive
`++` quantifiers for speed); the standard library's `re` cannot compile them.
"""

# GPT-2 and GPT-3 (tiktoken's r50k_base / p50k_base). An equivalent, faster form of the pattern in
# the GPT-2 release: contractions | letters | digits | other symbols | whitespace.
GPT2_SPLIT_PATTERN: str = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)

# GPT-3.5 and GPT-4 (tiktoken's cl100k_base).
GPT4_SPLIT_PATTERN: str = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

# GPT-4o (tiktoken's o200k_base), one alternative per line.
GPT4O_SPLIT_PATTERN: str = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

"""Tokenization: byte-level BPE, characters, the split patterns of GPT-2/GPT-4/GPT-4o, tiktoken interop, pictures.

    >>> from course_lib.tokenization import BPETokenizer
    >>> tok = BPETokenizer()
    >>> tok.train("the cat sat on the mat with the hat", vocab_size=260)
    >>> tok.decode(tok.encode("the mat")) == "the mat"
    True

The modules:

    protocol.py         Tokenizer, tokenizer_from_dict,     what every tokenizer offers
                        UnknownTokenIdError
    char.py             CharTokenizer                       one token per character
    bpe.py              BPETokenizer                        byte-level BPE: train, encode, save
    pairs.py            get_pair_counts, merge              the two moves of BPE
    trainer.py          train_merges                        learning the merges, incrementally
    patterns.py         GPT2/GPT4/GPT4O_SPLIT_PATTERN       where merges stop
    tiktoken_bridge.py  from_tiktoken, to_tiktoken          OpenAI's encodings
    gpt2_files.py       from_gpt2_files                     GPT-2's encoder.json + vocab.bpe
    visualize.py        show_tokens                         colour the tokens of a text
"""

from .bpe import BPETokenizer
from .char import CharTokenizer
from .gpt2_files import bytes_to_unicode, from_gpt2_files
from .pairs import get_pair_counts, merge
from .patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, GPT4O_SPLIT_PATTERN
from .protocol import Tokenizer, UnknownTokenIdError, tokenizer_from_dict
from .tiktoken_bridge import from_tiktoken, recover_merge, to_tiktoken
from .trainer import train_merges
from .visualize import TokenView, show_tokens

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "UnknownTokenIdError",
    "tokenizer_from_dict",
    "get_pair_counts",
    "merge",
    "train_merges",
    "GPT2_SPLIT_PATTERN",
    "GPT4_SPLIT_PATTERN",
    "GPT4O_SPLIT_PATTERN",
    "bytes_to_unicode",
    "from_gpt2_files",
    "from_tiktoken",
    "recover_merge",
    "to_tiktoken",
    "show_tokens",
    "TokenView",
]

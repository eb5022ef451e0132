"""Tokenization: byte-level BPE, the split patterns of GPT-2/GPT-4/GPT-4o, tiktoken interop, pictures.

    >>> from course_lib.tokenization import BPETokenizer
    >>> tok = BPETokenizer()
    >>> tok.train("the cat sat on the mat with the hat", vocab_size=260)
    >>> tok.decode(tok.encode("the mat")) == "the mat"
    True
"""

from .bpe import BPETokenizer
from .pairs import get_pair_counts, merge
from .patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, GPT4O_SPLIT_PATTERN
from .tiktoken_bridge import from_tiktoken, recover_merge, to_tiktoken
from .trainer import train_merges
from .visualize import TokenView, show_tokens

__all__ = [
    "BPETokenizer",
    "get_pair_counts",
    "merge",
    "train_merges",
    "GPT2_SPLIT_PATTERN",
    "GPT4_SPLIT_PATTERN",
    "GPT4O_SPLIT_PATTERN",
    "from_tiktoken",
    "recover_merge",
    "to_tiktoken",
    "show_tokens",
    "TokenView",
]

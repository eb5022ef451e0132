"""Benchmark: train a 4096-token byte-level BPE on Tiny Shakespeare, course_lib against Hugging Face.

The peer is the Rust trainer of Hugging Face `tokenizers` (byte-level BPE, GPT-2 style
pre-tokenizer), timed in the same run on the same machine. course_lib is timed with the GPT-2
split pattern (the closest to the peer's pre-tokenizer) and with the GPT-4 pattern. Each time
includes splitting the text. Prints the median of several repetitions and the ratio to the peer.

    python benchmarks/bench_bpe_train.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from course_lib.datasets import load_text
from course_lib.tokenization import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BPETokenizer

VOCAB_SIZE = 4096


def train_course_lib(text: str, pattern: str) -> int:
    tokenizer = BPETokenizer(pattern=pattern)
    tokenizer.train(text, vocab_size=VOCAB_SIZE)
    return len(tokenizer)


def train_hugging_face(text: str) -> int:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer=trainer)
    return tokenizer.get_vocab_size()


def median_seconds(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Median wall time of `repeats` calls, and what the last call returned (the vocab size)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        vocab_size = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), vocab_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    text = load_text("tinyshakespeare")
    print(f"Training a {VOCAB_SIZE}-token BPE on Tiny Shakespeare ({len(text.encode()):,} bytes), "
          f"median of {args.repeats}, {os.cpu_count()} CPUs")
    runs = {
        "tokenizers (Rust), byte-level": lambda: train_hugging_face(text),
        "course_lib, GPT-2 pattern": lambda: train_course_lib(text, GPT2_SPLIT_PATTERN),
        "course_lib, GPT-4 pattern": lambda: train_course_lib(text, GPT4_SPLIT_PATTERN),
    }
    results = {name: median_seconds(run, args.repeats) for name, run in runs.items()}
    peer_seconds = results["tokenizers (Rust), byte-level"][0]
    print(f"{'trainer':32s} {'vocab':>6s} {'seconds':>8s} {'x peer':>7s}")
    for name, (seconds, vocab_size) in results.items():
        print(f"{name:32s} {vocab_size:6d} {seconds:8.2f} {seconds / peer_seconds:7.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: encode all of Tiny Shakespeare, pure-Python BPE against tiktoken, in MB/s.

Rows: course_lib's pure-Python encoder with a 4096-token vocabulary trained on the text and with
the merges recovered from cl100k_base; the trained tokenizer exported with `to_tiktoken`; and
tiktoken's own cl100k_base and o200k_base. Every pure-Python run starts with an empty chunk
cache, so repeated words are encoded once per run, not once per benchmark. Prints the median of
several repetitions and the speed relative to tiktoken's cl100k_base, measured in the same run.

    python benchmarks/bench_encode.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import tiktoken

from course_lib.datasets import load_text
from course_lib.tokenization import BPETokenizer, from_tiktoken, to_tiktoken


def median_seconds(run: Callable[[], list[int]], repeats: int) -> tuple[float, int]:
    """Median wall time of `repeats` calls, and the number of tokens the last call returned."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ids = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(ids)


def cold_encode(tokenizer: BPETokenizer, text: str) -> list[int]:
    """Encode with an empty chunk cache (a fresh tokenizer would start the same way)."""
    tokenizer._chunk_cache.clear()
    return tokenizer.encode(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    text = load_text("tinyshakespeare")
    megabytes = len(text.encode("utf-8")) / 1e6
    trained = BPETokenizer()
    trained.train(text, vocab_size=4096)
    recovered = from_tiktoken("cl100k_base")
    trained_tiktoken = to_tiktoken(trained)
    cl100k, o200k = tiktoken.get_encoding("cl100k_base"), tiktoken.get_encoding("o200k_base")

    runs = {
        "tiktoken cl100k_base": lambda: cl100k.encode(text),
        "tiktoken o200k_base": lambda: o200k.encode(text),
        "to_tiktoken() of trained 4096": lambda: trained_tiktoken.encode(text),
        "course_lib trained 4096": lambda: cold_encode(trained, text),
        "course_lib from_tiktoken cl100k": lambda: cold_encode(recovered, text),
    }
    print(f"Encoding Tiny Shakespeare ({megabytes:.2f} MB), median of {args.repeats}, "
          f"{os.cpu_count()} CPUs, tiktoken {tiktoken.__version__}")
    results = {name: median_seconds(run, args.repeats) for name, run in runs.items()}
    peer_speed = megabytes / results["tiktoken cl100k_base"][0]
    print(f"{'encoder':34s} {'tokens':>8s} {'seconds':>8s} {'MB/s':>7s} {'x cl100k':>9s}")
    for name, (seconds, num_tokens) in results.items():
        speed = megabytes / seconds
        print(f"{name:34s} {num_tokens:8d} {seconds:8.3f} {speed:7.2f} {speed / peer_speed:9.3f}")


if __name__ == "__main__":
    main()

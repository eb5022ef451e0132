"""The benchmark scripts still run: each once, at a toy size, on the CPU.

Benchmarks are not tests (their timings would be flaky here); these only catch a script that
no longer matches course_lib's API before someone needs its numbers, e.g. on a GPU machine
lent for a few minutes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    ("script", "arguments", "expected"),
    [
        ("bench_train_throughput.py", ["--steps", "2", "--threads", "1"], "course_lib / plain (nanoGPT's AdamW):"),
        (
            "bench_gpu_gpt2.py",
            ["--tiny", "--no-compile", "--device", "cpu", "--steps", "2", "--warmup-steps", "1"],
            "MFU: unknown peak for this device",
        ),
        ("bench_generate.py", ["--quick", "--threads", "1"], "cache / transformers"),
    ],
)
def test_benchmark_runs_at_toy_size(script: str, arguments: list[str], expected: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout

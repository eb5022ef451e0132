"""Benchmark: the batch grader on 20 submissions of exercise 01_bpe, in seconds per submission.

The batch is 7 copies of the solution, 7 partly solved notebooks (get_pair_counts, merge and
decode: 11 of 22 points) and 6 unedited releases, graded as an instructor grades them, by the
command line in a fresh interpreter (so the time includes starting Python, building the hidden
checks' inputs and references once per worker, and one sandbox per submission):

    python -m grading grade 01_bpe DIR --jobs 2 --format jsonl

The same batch with --jobs 1, in the same run, is the peer. Target: under 5 s per submission
with --jobs 2 on a 2-core machine.

    python benchmarks/bench_grading.py [--jobs 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the made-up submissions the grading tests use

from submission_notebooks import ALL, points_of, write_submission

PARTLY_SOLVED = {"get_pair_counts", "merge", "decode"}
BATCH = (
    [("solved", ALL, 22)] * 7 + [("partial", PARTLY_SOLVED, points_of(PARTLY_SOLVED))] * 7 + [("release", set(), 0)] * 6
)


def grade_batch(folder: Path, jobs: int) -> tuple[float, list[dict]]:
    """Wall seconds of one `grade` run over `folder`, and its JSON lines."""
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grading",
            "grade",
            "01_bpe",
            str(folder),
            "--jobs",
            str(jobs),
            "--format",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return time.perf_counter() - start, [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each setting; the median is reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        expected = {}
        for index, (kind, answered, points) in enumerate(BATCH):
            name = f"{kind}-{index:02d}"
            write_submission(folder / f"{name}.ipynb", answered)
            expected[name] = points

        print(f"{len(BATCH)} submissions of 01_bpe; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
        print("jobs  wall s (median)  s per submission  one submission's grading s (median / max)")
        for jobs in sorted({1, args.jobs}):
            runs = [grade_batch(folder, jobs) for _ in range(args.repeats)]
            walls = [wall for wall, _ in runs]
            lines = runs[-1][1]
            scores = {line["id"]: line["score"] for line in lines}
            if scores != expected:
                raise SystemExit(f"wrong scores with --jobs {jobs}: {scores}")
            each = [line["execution_time"] for line in lines]
            wall = statistics.median(walls)
            print(
                f"{jobs:>4}  {wall:>15.1f}  {wall / len(BATCH):>16.2f}  {statistics.median(each):>.2f} / {max(each):.2f}"
            )
        print(f"isolation: {lines[0]['isolation']}")


if __name__ == "__main__":
    main()

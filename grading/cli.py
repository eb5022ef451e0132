"""The batch grader's command line: grade many notebooks, write grades for people and for Gradescope.

    python -m grading grade 01_bpe submitted/ --out grades/ --jobs 2
    python -m grading grade 01_bpe alice.ipynb bob.ipynb --format jsonl
    python -m grading gradescope-zip 01_bpe --out dist/
    python -m grading gradescope-run            # what gradescope/run_autograder calls

`grade` takes notebooks and folders. A folder is searched for notebooks; in nbgrader's layout
`submitted/<student>/<assignment>/<notebook>.ipynb` only the assignment's folders count and the
student's name becomes the submission's id (other notebooks in a student's folder are reported,
not graded). Elsewhere the id is the notebook's name without .ipynb, or its folder's name when
several notebooks share a name (alice/bpe.ipynb, bob/bpe.ipynb). Two submissions with the same
id are graded neither (see batch.py).

Each submission is graded by `grader.grade_submission`, which runs the learner's code in its own
sandboxed process; `--jobs N` grades N submissions at a time (in N worker processes).

Exit status: 0 when the batch was graded, whatever the scores (a notebook that cannot be read
scores 0 with a message); 1 when some results could not be written or two submissions share an
id (each is named on stderr; the rest of the batch was graded and written); 2 when the grader was misused (unknown assignment, a path that does not
exist, bad options), with a message on stderr.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from grading import gradescope
from grading.batch import (
    ID_COLLISION, GradingOptions, Submission, UsageError, find_submissions, grade_all, positive_seconds,
)
from grading.checks import SetupError
from grading.grader import SubmissionReport
from grading.registry import checks_for, tasks
from grading.results import (
    GRADES_CSV,
    grades_csv,
    gradescope_results,
    json_line,
    printable,
    task_scores,
    to_json,
    write_atomic,
)

# Exit status for misuse, as argparse uses it.
USAGE_ERROR = 2
# What to do when the references cannot be built (checks.SetupError): the downloads they need.
SETUP_HINT = ("The references need Tiny Shakespeare and tiktoken's encodings. Without a network, point "
              "COURSE_LIB_DATA at a folder holding tinyshakespeare.txt and TIKTOKEN_CACHE_DIR at tiktoken's "
              "cache (see the README); with one, run the command again to download them.")
# --sandbox: bubblewrap where it works here (else the grader says it fell back), or never.
_SANDBOX_CHOICES = {"auto": None, "rlimits": False}


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def format_table(graded: Sequence[tuple[Submission, SubmissionReport]], task_names: Sequence[str],
                 verbose: bool = False) -> str:
    """A plain-text table: one row per submission, one column per task, the total last; then the
    notebook-level problems, one line each; with `verbose`, every failed check's message too. All
    text that a submission controls goes through `printable`."""
    header = ["submission", *task_names, "score"]
    rows = []
    for submission, report in graded:
        per_task = task_scores(report, task_names)
        rows.append(
            [submission.id]
            + [f"{per_task[task][0]:g}/{per_task[task][1]:g}" for task in task_names]
            + [f"{report.score:g}/{report.max_score:g}"]
        )
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    for submission, report in graded:
        lines.extend(f"{submission.id}: {printable(problem)}" for problem in report.problems)
        if verbose:
            for result in report.results:
                if not result.passed:
                    lines.append(f"{submission.id}: FAIL {result.name} ({result.score:g}/{result.points:g})")
                    lines.extend(f"    {printable(line)}" for line in result.message.rstrip("\n").split("\n"))
    return "\n".join(lines)


def written(what: str, path: Path, content: str) -> bool:
    """Write `content` to `path` atomically; on failure say so on stderr and return False, so
    that one output that cannot be written (a full disk, a folder in the way) ends nothing else."""
    try:
        write_atomic(path, content)
    except (OSError, ValueError) as err:
        print(f"error: cannot write the results of {what} to {path}: {printable(str(err))}", file=sys.stderr)
        return False
    return True


def exercise_tasks(exercise: str) -> list[str]:
    """The tasks of `exercise`, or a UsageError naming the exercises there are."""
    try:
        checks_for(exercise)
    except KeyError as err:
        raise UsageError(err.args[0]) from None
    return tasks(exercise)


def run_grade(args: argparse.Namespace) -> int:
    """The `grade` command."""
    exercise = args.assignment
    task_names = exercise_tasks(exercise)
    submissions = find_submissions(exercise, args.paths)
    options = GradingOptions(exercise, args.timeout, _SANDBOX_CHOICES[args.sandbox])
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")

    started = time.monotonic()
    graded = []
    all_written = True
    for submission, report in zip(submissions, grade_all(options, submissions, args.jobs)):
        graded.append((submission, report))
        if submission.status == ID_COLLISION:
            all_written = False  # neither submission's results may take the shared folder
        elif out is not None:
            results_json = to_json(gradescope_results(report), indent=2) + "\n"
            all_written &= written(submission.id, out / submission.id / "results.json", results_json)
        if args.format == "jsonl":
            print(to_json(json_line(report, submission.id, submission.student or report.student)), flush=True)
    elapsed = time.monotonic() - started

    if out is not None:
        csv_text = grades_csv([(s.id, report) for s, report in graded], task_names)
        all_written &= written("the batch", out / GRADES_CSV, csv_text)
    if args.format == "table":
        print(format_table(graded, task_names, args.verbose))
        # Each sandbox gets its own uid: count "bubblewrap (as uid 1234)" and "(as uid 5678)" together.
        isolations = Counter(re.sub(r"uid \d+", "uid …", report.isolation) for _, report in graded)
        print(f"\n{len(graded)} submission(s) of {exercise} graded in {elapsed:.1f} s")
        print("isolation: " + "; ".join(f"{how} ×{count}" for how, count in sorted(isolations.items())))
        if out is not None:
            print(f"results: {out}/<submission>/results.json and {out / GRADES_CSV}")
    return 0 if all_written else 1


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m grading`."""
    parser = argparse.ArgumentParser(
        prog="python -m grading",
        description="Grade exercise notebooks with the course's checks, each submission in its own sandbox.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = commands.add_parser("grade", help="grade notebooks (or folders of them) of one assignment")
    grade.add_argument("assignment", metavar="ASSIGNMENT", help="the exercise, e.g. 01_bpe")
    grade.add_argument("paths", metavar="PATH", nargs="+", help="a notebook, or a folder searched for notebooks")
    grade.add_argument(
        "--out", metavar="DIR", help="write DIR/<submission>/results.json (Gradescope) and DIR/grades.csv"
    )
    grade.add_argument("--format", choices=["table", "jsonl"], default="table", help="what to print (default: table)")
    grade.add_argument("-v", "--verbose", action="store_true", help="also print each failed check's message")
    grade.add_argument("--jobs", type=_positive_int, default=1, metavar="N", help="grade N submissions at a time")
    grade.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="time limit of each check (default: 10)",
    )
    grade.add_argument(
        "--sandbox",
        choices=sorted(_SANDBOX_CHOICES),
        default="auto",
        help="isolation of the learner's code: bubblewrap where it works here (auto, the default; "
        "results say when it fell back), or resource limits only (rlimits)",
    )
    grade.set_defaults(run=run_grade)

    gradescope.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 graded, 1 some results not written, 2 misused)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 and a message on bad options
    try:
        return args.run(args)
    except UsageError as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except SetupError as err:
        print(f"{parser.prog} {args.command}: error: the grader cannot compute its expected values, so "
              f"nothing was graded: {err}\n{SETUP_HINT}", file=sys.stderr)
        return USAGE_ERROR

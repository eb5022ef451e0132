"""The batch grader's command line: grade many notebooks, write grades for people and for Gradescope.

    python -m course_lib.grading grade 01_bpe submitted/ --out grades/ --jobs 2
    python -m course_lib.grading grade 01_bpe alice.ipynb bob.ipynb --format jsonl
    python -m course_lib.grading gradescope-zip 01_bpe --out dist/
    python -m course_lib.grading gradescope-run            # what gradescope/run_autograder calls

`grade` takes notebooks and folders. A folder is searched for notebooks; in nbgrader's layout
`submitted/<student>/<assignment>/<notebook>.ipynb` only the assignment's folders count and the
student's name becomes the submission's id. Elsewhere the id is the notebook's name without
.ipynb, or its folder's name when several notebooks share a name (alice/bpe.ipynb, bob/bpe.ipynb).

Each submission is graded by `grader.grade_submission`, which runs the learner's code in its own
sandboxed process; `--jobs N` grades N submissions at a time (in N worker processes).

Exit status: 0 when the batch was graded, whatever the scores (a notebook that cannot be read
scores 0 with a message); 2 when the grader was misused (unknown assignment, a path that does not
exist, bad options), with a message on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from course_lib.grading.checks import failed
from course_lib.grading.exercises import checks_for, tasks
from course_lib.grading.grader import SubmissionReport, grade_submission
from course_lib.grading.results import (
    grades_csv,
    gradescope_results,
    json_line,
    task_scores,
    write_atomic,
    write_json,
)

# Exit status for misuse, as argparse uses it.
USAGE_ERROR = 2
# Folders a search for notebooks skips: Jupyter's autosaves and what zip tools add.
_SKIPPED_FOLDERS = {".ipynb_checkpoints", "__MACOSX"}
# --sandbox: bubblewrap where it works here (else the grader says it fell back), or never.
_SANDBOX_CHOICES = {"auto": None, "rlimits": False}


class UsageError(Exception):
    """The grader was called wrongly (not a problem of any submission); the message says how."""


@dataclass(frozen=True)
class Submission:
    """One notebook to grade: its id (a folder name in --out), its path, its nbgrader student."""

    id: str
    path: Path
    student: str | None


# ---------------------------------------------------------------------------------------------
# Finding the submissions
# ---------------------------------------------------------------------------------------------


def nbgrader_student(path: Path, assignment: str, base: Path | None = None) -> str | None:
    """The student of a notebook in nbgrader's layout, else None.

    nbgrader_student(Path("course/submitted/alice/01_bpe/bpe.ipynb"), "01_bpe") -> "alice"
    nbgrader_student(Path("solutions/01_bpe/bpe.ipynb"), "01_bpe") -> None
    Inside a folder `base` given on the command line, <base>/<student>/<assignment>/x.ipynb counts
    too, whatever the folder is called (a copy of submitted/ named collected/, say).
    """
    if base is not None:
        relative = path.relative_to(base).parts
        if len(relative) == 3 and relative[1] == assignment:
            return relative[0]
    parts = path.resolve().parts
    if len(parts) >= 4 and parts[-2] == assignment and parts[-4] == "submitted":
        return parts[-3]
    return None


def notebooks_in(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*.ipynb")
        if path.is_file()
        and not any(part in _SKIPPED_FOLDERS or part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _safe_id(text: str) -> str:
    """A name that is safe as one folder name: _safe_id("Zoë O'Neil") -> 'Zoë_O_Neil'."""
    cleaned = re.sub(r"[^\w.@+-]", "_", text).strip(".")
    return cleaned or "submission"


def _unique(ids: list[str]) -> list[str]:
    """Ids made unique with a counter: ["a", "b", "a"] -> ["a", "b", "a-2"]."""
    seen: Counter[str] = Counter()
    unique = []
    for name in ids:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def _path_ids(paths: list[Path]) -> list[str]:
    """Ids for notebooks outside nbgrader's layout: each notebook's name, or, when another
    notebook has the same name, its folder's name (as many folders up as it takes):

    _path_ids([Path("alice.ipynb"), Path("bob.ipynb")]) -> ["alice", "bob"]
    _path_ids([Path("x/alice/bpe.ipynb"), Path("y/bob/bpe.ipynb")]) -> ["alice", "bob"]
    _path_ids([Path("a/x/bpe.ipynb"), Path("b/x/bpe.ipynb")]) -> ["a-x", "b-x"]
    """
    folders = [path.resolve().parent.parts[1:] for path in paths]

    def at_depth(index: int, depth: int) -> str:
        return paths[index].stem if depth == 0 else "-".join(folders[index][-depth:])

    ids = []
    for index, parts in enumerate(folders):
        for depth in range(len(parts) + 1):
            candidate = at_depth(index, depth)
            if sum(at_depth(other, depth) == candidate for other in range(len(paths))) == 1:
                break
        else:  # the same file given twice: _unique numbers the copies
            candidate = paths[index].stem
        ids.append(candidate)
    return ids


def find_submissions(assignment: str, paths: Sequence[str | Path]) -> list[Submission]:
    """The notebooks to grade, in a stable order, each with an id (see the module docstring).

    Raises UsageError for a path that does not exist or when there is nothing to grade at all.
    """
    found: list[tuple[Path, str | None]] = []
    for given in map(Path, paths):
        if not given.exists():
            raise UsageError(f"{given}: no such file or folder")
        if not given.is_dir():
            found.append((given, nbgrader_student(given, assignment)))
            continue
        notebooks = [(path, nbgrader_student(path, assignment, given)) for path in notebooks_in(given)]
        in_layout = [(path, student) for path, student in notebooks if student is not None]
        if in_layout:  # nbgrader's layout: other assignments' notebooks are not this batch's
            notebooks = in_layout
        if not notebooks:
            print(f"warning: no notebooks (.ipynb) found in {given}", file=sys.stderr)
        found.extend(notebooks)
    if not found:
        raise UsageError("no notebooks to grade: give notebooks, or folders that contain them")
    outside = iter(_path_ids([path for path, student in found if student is None]))
    ids = [student if student is not None else next(outside) for path, student in found]
    return [
        Submission(id=submission_id, path=path, student=student)
        for submission_id, (path, student) in zip(_unique([_safe_id(name) for name in ids]), found)
    ]


# ---------------------------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------------------------


def ungraded_report(
    exercise: str, submission: str, message: str, *, student: str | None = None, isolation: str = "not run"
) -> SubmissionReport:
    """A report scoring 0 on every check, each with `message`: for a submission that could not
    be graded at all (no notebook uploaded, or the grader itself failed on it)."""
    results = [failed(check, message) for check in checks_for(exercise)]
    return SubmissionReport(
        submission=submission,
        student=student,
        exercise=exercise,
        results=results,
        execution_time=0.0,
        isolation=isolation,
        problems=[message],
    )


@dataclass(frozen=True)
class GradingOptions:
    """What every submission of a batch is graded with (picklable, for the worker processes)."""

    exercise: str
    timeout: float
    use_bubblewrap: bool | None


def grade_one(options: GradingOptions, submission: Submission) -> SubmissionReport:
    """Grade one submission; never raises. grade_submission already turns everything a submission
    can do into a report; this also keeps a bug of the grader from ending the whole batch."""
    try:
        report = grade_submission(
            options.exercise, submission.path, timeout=options.timeout, use_bubblewrap=options.use_bubblewrap
        )
    except Exception as err:  # noqa: BLE001 - a grader bug: this submission scores 0, the batch goes on
        print(f"error: the grader failed on {submission.path}: {type(err).__name__}: {err}", file=sys.stderr)
        report = ungraded_report(
            options.exercise,
            str(submission.path),
            f"The grader failed on this submission ({type(err).__name__}); ask your instructor to look at it.",
            student=submission.student,
        )
    return report


def _grade_pair(job: tuple[GradingOptions, Submission]) -> SubmissionReport:
    return grade_one(*job)


def grade_all(options: GradingOptions, submissions: Sequence[Submission], jobs: int) -> Iterator[SubmissionReport]:
    """Reports in the order of `submissions`, graded `jobs` at a time.

    Workers are processes, not threads: each submission already runs in its own sandboxed child,
    but the trusted side redirects sys.stdout while it computes references, which threads would
    share, and each worker keeps its own cache of those references.
    """
    if jobs == 1 or len(submissions) == 1:
        yield from (grade_one(options, submission) for submission in submissions)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(submissions))) as pool:
        yield from pool.map(_grade_pair, [(options, submission) for submission in submissions])


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def format_table(graded: Sequence[tuple[Submission, SubmissionReport]], task_names: Sequence[str]) -> str:
    """A plain-text table: one row per submission, one column per task, the total last; then the
    notebook-level problems, one line each."""
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
        lines.extend(f"{submission.id}: {problem}" for problem in report.problems)
    return "\n".join(lines)


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
    for submission, report in zip(submissions, grade_all(options, submissions, args.jobs)):
        graded.append((submission, report))
        if out is not None:
            write_json(out / submission.id / "results.json", gradescope_results(report))
        if args.format == "jsonl":
            print(
                json.dumps(json_line(report, submission.id, submission.student or report.student), ensure_ascii=False),
                flush=True,
            )
    elapsed = time.monotonic() - started

    if out is not None:
        write_atomic(out / "grades.csv", grades_csv([(s.id, report) for s, report in graded], task_names))
    if args.format == "table":
        print(format_table(graded, task_names))
        # Each sandbox gets its own uid: count "bubblewrap (as uid 1234)" and "(as uid 5678)" together.
        isolations = Counter(re.sub(r"uid \d+", "uid …", report.isolation) for _, report in graded)
        print(f"\n{len(graded)} submission(s) of {exercise} graded in {elapsed:.1f} s")
        print("isolation: " + "; ".join(f"{how} ×{count}" for how, count in sorted(isolations.items())))
        if out is not None:
            print(f"results: {out}/<submission>/results.json and {out / 'grades.csv'}")
    return 0


def positive_seconds(text: str) -> float:
    """An option's value as a finite number of seconds > 0, or argparse's error."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m course_lib.grading`."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.grading",
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

    # Imported here: gradescope.py builds on this module.
    from course_lib.grading import gradescope

    gradescope.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 graded, 2 misused)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 and a message on bad options
    try:
        return args.run(args)
    except UsageError as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR

"""Gradescope: pack an assignment's autograder into a zip, and grade one upload on a worker.

    python -m grading gradescope-zip 01_bpe --out dist/   # -> dist/gradescope-01_bpe.zip

The zip holds, at its root: setup.sh and run_autograder (from gradescope/), grading/ (the
checks) and course_lib/ (the references they compute), requirements.txt and pyproject.toml (to install it),
and assignment.json naming the assignment and its notebook:

    {"assignment": "01_bpe", "notebooks": ["bpe.ipynb"], "allow_rlimits": false}

With a course secret set (see seeds.py) the zip also holds it, as course_secret, and the hidden
checks' inputs on Gradescope are derived from it: keep such a zip as private as the secret.

A worker grades only with bubblewrap: where it cannot isolate the learner's code, every upload
gets a "not graded" result saying why, and the run exits with status 2, unless the zip was made
with --allow-rlimits (then the learner's code runs with resource limits only, as its own uid,
and the results say so). Every process a learner's code started is ended before results.json
is written, and results.json is written last.

It holds no solutions/ and no exercises/: each check computes its expected values with course_lib
(or tiktoken), so the instructor's answers never travel.

On Gradescope the zip is unpacked into /autograder/source; setup.sh installs everything once,
then for each upload run_autograder calls `python -m grading gradescope-run`, which
finds the notebook in /autograder/submission, grades it in the sandbox and writes
/autograder/results/results.json. AUTOGRADER_ROOT (default /autograder) moves all three folders,
so a test can lay out a temporary folder the same way.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import zipfile
from pathlib import Path

from grading.batch import (
    GradingOptions,
    Submission,
    UsageError,
    choose_notebook,
    grade_one,
    notebooks_in,
    positive_seconds,
)
from grading import seeds
from grading.grader import SubmissionReport, ungraded_report
from grading.registry import EXERCISES, notebook_for
from grading.results import gradescope_results, summary_output, write_atomic, write_json
from grading.sandbox import bubblewrap_problem

CONFIG = "assignment.json"
# The course secret's file in the zip; run_autograder points $GRADING_SECRET_FILE at it.
SECRET_FILE = "course_secret"
# The repository that this grader belongs to: its gradescope/, requirements, course_lib and notebooks.
REPOSITORY = Path(__file__).resolve().parent.parent
# The packages the zip carries: the grader, and course_lib for the references it computes.
PACKAGES = ("grading", "course_lib")
# Gradescope runs these two from the zip's root; they must be executable.
SCRIPTS = ("setup.sh", "run_autograder")
# Files the zip takes from the repository root so that `pip install -r requirements.txt` works.
INSTALL_FILES = ("requirements.txt", "pyproject.toml")


def _zip_write(archive: zipfile.ZipFile, content: bytes, name: str, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed date: the same zip twice
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, content)


def zip_members(repository: Path = REPOSITORY) -> list[tuple[Path, str]]:
    """(file on disk, name in the zip) for everything but assignment.json, in a stable order."""
    members = [(repository / "gradescope" / script, script) for script in SCRIPTS]
    members += [(repository / name, name) for name in INSTALL_FILES]
    members += [
        (path, path.relative_to(repository).as_posix())
        for package in PACKAGES
        for path in sorted((repository / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    ]
    missing = [str(path) for path, _ in members if not path.is_file()]
    if missing:
        raise UsageError(f"cannot build the Gradescope zip, missing: {', '.join(missing)}")
    return members


def build_zip(assignment: str, out: str | Path, repository: Path = REPOSITORY, allow_rlimits: bool = False) -> Path:
    """Write <out>/gradescope-<assignment>.zip (see the module docstring); return its path."""
    if assignment not in EXERCISES:
        raise UsageError(f"unknown exercise {assignment!r}; the exercises are {sorted(EXERCISES)}")
    config = {"assignment": assignment, "notebooks": [notebook_for(assignment)], "allow_rlimits": allow_rlimits}
    secret = seeds.course_secret()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for source, name in zip_members(repository):
            _zip_write(archive, source.read_bytes(), name, executable=name in SCRIPTS)
        _zip_write(archive, (json.dumps(config, indent=2) + "\n").encode(), CONFIG)
        if secret is not None:
            _zip_write(archive, secret, SECRET_FILE)
    target = Path(out) / f"gradescope-{assignment}.zip"
    write_atomic(target, buffer.getvalue())
    return target


def run_autograder(root: Path, timeout: float) -> SubmissionReport:
    """Grade the upload in <root>/submission, write <root>/results/results.json, return the report."""
    config = json.loads((root / "source" / CONFIG).read_text(encoding="utf-8"))
    assignment, names = config["assignment"], config["notebooks"]
    uploaded = notebooks_in(root / "submission") if (root / "submission").is_dir() else []
    problem = bubblewrap_problem()
    if problem is not None and not config.get("allow_rlimits", False):
        report = ungraded_report(
            assignment, root / "submission",
            f"the autograder cannot isolate your code here ({problem}), so nothing was graded; "
            "tell your instructor (who can rebuild the autograder with --allow-rlimits)",
            status="grader error",
        )
    elif not uploaded:
        report = ungraded_report(
            assignment, root / "submission",
            f"no notebook (.ipynb) found in your submission: upload your {' and '.join(names)}",
            status="no notebook",
        )
    else:
        notebook, extra = choose_notebook(uploaded, names[0])
        report = grade_one(GradingOptions(assignment, timeout, use_bubblewrap=None),
                           Submission("upload", notebook, extra=tuple(extra)))
    results = gradescope_results(report)
    write_json(root / "results" / "results.json", results)
    print(summary_output(report))
    print(f"score: {report.score:g} / {report.max_score:g}")
    return report


def _run_zip(args: argparse.Namespace) -> int:
    path = build_zip(args.assignment, args.out, allow_rlimits=args.allow_rlimits)
    print(path)
    print(f"hidden inputs: {seeds.hidden_inputs()}", file=sys.stderr)
    return 0


def _run_autograder(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not (root / "source" / CONFIG).is_file():
        raise UsageError(f"{root / 'source' / CONFIG} not found: is {root} an unpacked Gradescope autograder?")
    report = run_autograder(root, args.timeout)
    return 2 if report.status == "grader error" else 0  # Gradescope shows the instructor a failed run


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `gradescope-zip` and `gradescope-run` to the command line."""
    zip_command = commands.add_parser("gradescope-zip", help="pack the Gradescope autograder of one assignment")
    zip_command.add_argument("assignment", metavar="ASSIGNMENT", help="the exercise, e.g. 01_bpe")
    zip_command.add_argument("--out", metavar="DIR", default=".", help="where to write gradescope-ASSIGNMENT.zip")
    zip_command.add_argument("--allow-rlimits", action="store_true",
                             help="let workers without bubblewrap grade with resource limits only (default: refuse)")
    zip_command.set_defaults(run=_run_zip)

    run_command = commands.add_parser("gradescope-run", help="grade one upload in Gradescope's /autograder layout")
    run_command.add_argument(
        "--root",
        default=os.environ.get("AUTOGRADER_ROOT", "/autograder"),
        help="the folder holding source/, submission/ and results/ (default: $AUTOGRADER_ROOT or /autograder)",
    )
    run_command.add_argument(
        "--timeout", type=positive_seconds, default=10.0, metavar="SECONDS", help="time limit of each check"
    )
    run_command.set_defaults(run=_run_autograder)

"""Gradescope: pack an assignment's autograder into a zip, and grade one upload on a worker.

    python -m course_lib.grading gradescope-zip 01_bpe --out dist/   # -> dist/gradescope-01_bpe.zip

The zip holds, at its root: setup.sh and run_autograder (from gradescope/), course_lib/ (the
checks and the references they compute), requirements.txt and pyproject.toml (to install it),
and assignment.json naming the assignment and its notebook:

    {"assignment": "01_bpe", "notebooks": ["bpe.ipynb"]}

It holds no solutions/ and no exercises/: each check computes its expected values with course_lib
(or tiktoken), so the instructor's answers never travel.

On Gradescope the zip is unpacked into /autograder/source; setup.sh installs everything once,
then for each upload run_autograder calls `python -m course_lib.grading gradescope-run`, which
finds the notebook in /autograder/submission, grades it in the sandbox and writes
/autograder/results/results.json. AUTOGRADER_ROOT (default /autograder) moves all three folders,
so a test can lay out a temporary folder the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from pathlib import Path

import course_lib
from course_lib.grading.cli import (
    GradingOptions,
    Submission,
    UsageError,
    exercise_tasks,
    grade_one,
    notebooks_in,
    positive_seconds,
    ungraded_report,
)
from course_lib.grading.results import gradescope_results, summary_output, write_json

CONFIG = "assignment.json"
# The repository that this course_lib belongs to: its gradescope/, requirements and notebooks.
REPOSITORY = Path(course_lib.__file__).resolve().parent.parent
# Gradescope runs these two from the zip's root; they must be executable.
SCRIPTS = ("setup.sh", "run_autograder")
# Files the zip takes from the repository root so that `pip install -r requirements.txt` works.
INSTALL_FILES = ("requirements.txt", "pyproject.toml")


def release_notebooks(assignment: str, repository: Path = REPOSITORY) -> list[str]:
    """The names of the assignment's notebooks, from its release (or, failing that, its source).

    release_notebooks("01_bpe") -> ["bpe.ipynb"]
    """
    for folder in ("exercises", "solutions"):
        names = sorted(path.name for path in (repository / folder / assignment).glob("*.ipynb"))
        if names:
            return names
    raise UsageError(f"no notebook for {assignment} in {repository}/exercises/ or solutions/")


def _zip_write(archive: zipfile.ZipFile, source: Path, name: str, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed date: the same zip twice
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, source.read_bytes())


def zip_members(repository: Path = REPOSITORY) -> list[tuple[Path, str]]:
    """(file on disk, name in the zip) for everything but assignment.json, in a stable order."""
    members = [(repository / "gradescope" / script, script) for script in SCRIPTS]
    members += [(repository / name, name) for name in INSTALL_FILES]
    package = repository / "course_lib"
    members += [
        (path, path.relative_to(repository).as_posix())
        for path in sorted(package.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]
    missing = [str(path) for path, _ in members if not path.is_file()]
    if missing:
        raise UsageError(f"cannot build the Gradescope zip, missing: {', '.join(missing)}")
    return members


def build_zip(assignment: str, out: str | Path, repository: Path = REPOSITORY) -> Path:
    """Write <out>/gradescope-<assignment>.zip (see the module docstring); return its path."""
    exercise_tasks(assignment)  # a UsageError for an unknown assignment
    config = {"assignment": assignment, "notebooks": release_notebooks(assignment, repository)}
    members = zip_members(repository)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"gradescope-{assignment}.zip"
    temporary = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(temporary, "w") as archive:
        for source, name in members:
            _zip_write(archive, source, name, executable=name in SCRIPTS)
        info = zipfile.ZipInfo(CONFIG, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        archive.writestr(info, json.dumps(config, indent=2) + "\n")
    os.replace(temporary, target)
    return target


def choose_notebook(folder: Path, names: list[str]) -> Path | None:
    """The uploaded notebook to grade: the one named like the release, else the only one, else
    the first whose name starts like the release's ("bpe (1).ipynb"), else the first; None if none.
    """
    candidates = notebooks_in(folder) if folder.is_dir() else []
    for wanted in (
        [path for path in candidates if path.name in names],
        candidates if len(candidates) == 1 else [],
        [path for path in candidates if any(path.name.startswith(Path(name).stem) for name in names)],
        candidates,
    ):
        if wanted:
            return wanted[0]
    return None


def run_autograder(root: Path, timeout: float) -> dict:
    """Grade the upload in <root>/submission, write <root>/results/results.json, return it."""
    config = json.loads((root / "source" / CONFIG).read_text(encoding="utf-8"))
    assignment, names = config["assignment"], config["notebooks"]
    notebook = choose_notebook(root / "submission", names)
    if notebook is None:
        report = ungraded_report(
            assignment,
            str(root / "submission"),
            f"No notebook (.ipynb) found in your submission: upload your {' and '.join(names)}.",
        )
    else:
        report = grade_one(
            GradingOptions(assignment, timeout, use_bubblewrap=None), Submission("upload", notebook, None)
        )
    results = gradescope_results(report)
    write_json(root / "results" / "results.json", results)
    print(summary_output(report))
    print(f"score: {report.score:g} / {report.max_score:g}")
    return results


def _run_zip(args: argparse.Namespace) -> int:
    print(build_zip(args.assignment, args.out))
    return 0


def _run_autograder(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not (root / "source" / CONFIG).is_file():
        raise UsageError(f"{root / 'source' / CONFIG} not found: is {root} an unpacked Gradescope autograder?")
    run_autograder(root, args.timeout)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `gradescope-zip` and `gradescope-run` to the command line."""
    zip_command = commands.add_parser("gradescope-zip", help="pack the Gradescope autograder of one assignment")
    zip_command.add_argument("assignment", metavar="ASSIGNMENT", help="the exercise, e.g. 01_bpe")
    zip_command.add_argument("--out", metavar="DIR", default=".", help="where to write gradescope-ASSIGNMENT.zip")
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

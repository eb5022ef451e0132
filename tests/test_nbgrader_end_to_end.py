"""nbgrader end to end on exercise 01_bpe, in a temporary course directory, as an instructor runs it:

    nbgrader generate_assignment 01_bpe     solutions/ -> release/ (answers removed)
    (three students hand in)                submitted/<student>/01_bpe/bpe.ipynb
    nbgrader autograde 01_bpe               runs each notebook, records the check cells' scores
    nbgrader generate_feedback 01_bpe       feedback/<student>/01_bpe/bpe.html
    nbgrader export --to grades.csv         one row per student

then the batch grader on the same submitted/ folder must give every student the same total.

References: the scores expected are the points the check cells state for the tasks a student
solved (3 + 4 + 6 + 5 + 4 = 22 for all five; 3 + 4 + 4 = 11 for the partial one).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from submission_notebooks import ALL, points_of, submission_notebook

REPO = Path(__file__).resolve().parent.parent
PARTLY_SOLVED = {"get_pair_counts", "merge", "decode"}
EXPECTED = {"correct": 22, "partial": points_of(PARTLY_SOLVED), "empty": 0}


def run(course: Path, *args: str) -> subprocess.CompletedProcess:
    """A command in the course directory, with the venv's bin/ first on PATH (nbgrader runs
    `alembic` for the gradebook, and the kernel it starts is the venv's python3)."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run(args, cwd=course, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course directory after generate, hand-in, autograde, feedback and export."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "nbgrader_config.py", course)  # its root and sqlite gradebook: this folder
    shutil.copytree(REPO / "solutions" / "01_bpe", course / "solutions" / "01_bpe")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    run(course, *nbgrader, "generate_assignment", "01_bpe", "--force")
    # Each student hands in the notebook just released, with some answers filled in.
    released = course / "exercises" / "01_bpe" / "bpe.ipynb"
    for student, answered in [("correct", ALL), ("partial", PARTLY_SOLVED), ("empty", set())]:
        target = course / "submitted" / student / "01_bpe" / "bpe.ipynb"
        target.parent.mkdir(parents=True)
        notebook = submission_notebook(answered, release=released)
        target.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    run(course, *nbgrader, "autograde", "01_bpe", "--force")
    run(course, *nbgrader, "generate_feedback", "01_bpe", "--force")
    run(course, *nbgrader, "export", "--to", "grades.csv")
    return course


def test_export_has_the_expected_score_per_student(course: Path) -> None:
    with open(course / "grades.csv", newline="", encoding="utf-8") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file)}
    assert {student: float(row["score"]) for student, row in rows.items()} == EXPECTED
    assert {float(row["max_score"]) for row in rows.values()} == {22}


def test_feedback_html_exists_for_every_student(course: Path) -> None:
    for student in EXPECTED:
        html = course / "feedback" / student / "01_bpe" / "bpe.html"
        assert html.is_file(), f"no feedback for {student}"
        assert "get_pair_counts" in html.read_text(encoding="utf-8")


def test_batch_grader_agrees_with_nbgrader(course: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "course_lib.grading",
            "grade",
            "01_bpe",
            "submitted",
            "--format",
            "jsonl",
            "--jobs",
            "2",
        ],
        cwd=course,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    totals = {line["student"]: line["score"] for line in map(json.loads, done.stdout.splitlines())}
    assert totals == EXPECTED

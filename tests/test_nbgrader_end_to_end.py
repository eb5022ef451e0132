"""nbgrader end to end on every exercise, as an instructor runs it in a course directory:

    nbgrader generate_assignment <name>     solutions/ -> exercises/ (answers removed)
    (three students hand in)                submitted/<student>/<name>/<notebook>.ipynb
    nbgrader autograde <name>               runs each notebook, records the check cells' scores
    nbgrader generate_feedback <name>       feedback/<student>/<name>/<notebook>.html
    nbgrader export --to grades.csv         one row per student and assignment

(here <name> is "*", every assignment of the course directory in one nbgrader process),

then the batch grader on the same submitted/ folder must give every student the same score. The
exercises are split between two temporary course directories (conftest.py's generated_courses),
each with its own gradebook, in which the steps above run at the same time; a test reads the
course directory that holds its exercise.

References: the scores expected are the points the check cells state for the tasks a student
solved (tests/submission_notebooks.py's task_points: all of them for the full submission, those
in PARTLY_SOLVED for the partial one, none for the empty one).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import in_each_course, nbgrader
from submission_notebooks import ASSIGNMENTS, points_of, submission_notebook

# The tasks the "partial" student solved: each a set whose checks do not need the unsolved tasks.
PARTLY_SOLVED = {
    "01_bpe": {"get_pair_counts", "merge", "decode"},
    "02_linear": {"Linear"},
    "02_normalization": {"softmax", "rms_norm"},
    "03_attention": {"scaled_dot_product_attention", "causal_mask"},
    "03_rope": {"apply_rotary"},
    "04_training_loop": {"cross_entropy", "get_batch"},
    "04_optimizer": {"lr_at", "clip_grad_norm"},
    "05_generation": {"sample_next_token", "KVCache"},
}


# A learner's cell whose output is HTML with a script: feedback must show it inert.
SCRIPT_OUTPUT = "from IPython.display import HTML, display\ndisplay(HTML(\"<b>hi</b><script>document.title = 'owned'</script>\"))\n"


def expected_scores(name: str) -> dict[str, int]:
    assignment = ASSIGNMENTS[name]
    return {
        "correct": assignment.max_score,
        "partial": points_of(PARTLY_SOLVED[name], assignment),
        "empty": 0,
    }


def hand_in_and_grade(course: Path, names: list[str]) -> None:
    """In the course directory `course`, where nbgrader generated the assignments `names` (and only
    those): every student hands in each of them; then autograde and feedback, each one nbgrader
    process for all of the course's assignments (ASSIGNMENT is a glob to nbgrader; a process costs
    seconds of start-up alone); then export."""
    for name in names:
        assignment = ASSIGNMENTS[name]
        # Each student hands in the notebook just released, with some answers filled in.
        released = course / "exercises" / name / assignment.notebook
        for student, answered in [
            ("correct", set(assignment.task_points)),
            ("partial", PARTLY_SOLVED[name]),
            ("empty", set()),
        ]:
            target = course / "submitted" / student / name / assignment.notebook
            target.parent.mkdir(parents=True)
            notebook = submission_notebook(answered, release=released, assignment=assignment)
            if student == "partial":  # a cell of their own whose output is a script
                notebook["cells"].append({"cell_type": "code", "id": "their-own", "metadata": {}, "outputs": [],
                                          "execution_count": None, "source": SCRIPT_OUTPUT})
            target.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    nbgrader(course, "autograde", "*", "--force")
    nbgrader(course, "generate_feedback", "*", "--force")
    nbgrader(course, "export", "--to", "grades.csv")


@pytest.fixture(scope="module")
def courses(generated_courses: dict[str, Path]) -> dict[str, Path]:
    """Exercise -> the course directory in which it was generated (conftest.py), after hand-in,
    autograde and feedback of each of its exercises, then export; the course directories at the
    same time."""
    courses = {name: generated_courses[name] for name in ASSIGNMENTS}
    in_each_course(hand_in_and_grade, courses)
    return courses


@pytest.fixture
def course(courses: dict[str, Path], name: str) -> Path:
    """The course directory of the test's exercise, graded (`courses`)."""
    return courses[name]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_export_has_the_expected_score_per_student(course: Path, name: str) -> None:
    with open(course / "grades.csv", newline="", encoding="utf-8") as file:
        rows = {row["student_id"]: row for row in csv.DictReader(file) if row["assignment"] == name}
    assert {student: float(row["score"]) for student, row in rows.items()} == expected_scores(name)
    assert {float(row["max_score"]) for row in rows.values()} == {ASSIGNMENTS[name].max_score}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_feedback_html_exists_for_every_student(course: Path, name: str) -> None:
    assignment = ASSIGNMENTS[name]
    first_task = next(iter(assignment.task_points))
    for student in expected_scores(name):
        html = course / "feedback" / student / name / assignment.notebook.replace(".ipynb", ".html")
        assert html.is_file(), f"no feedback for {student}"
        assert first_task in html.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_feedback_html_runs_no_script_of_the_learners(course: Path, name: str) -> None:
    # nbgrader_config.py turns on nbconvert's HTML sanitising: the learner's <script> is dropped
    # from the feedback page (it would run in the instructor's and the learner's browser).
    html = (course / "feedback" / "partial" / name / ASSIGNMENTS[name].notebook.replace(".ipynb", ".html")).read_text()
    assert "<b>hi</b>" in html  # the output is on the page (its source shows only escaped)
    assert "<script>document.title" not in html


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_batch_grader_agrees_with_nbgrader(course: Path, name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "grading", "grade", name, "submitted", "--format", "jsonl", "--jobs", "2"],
        cwd=course,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    totals = {line["student"]: line["score"] for line in map(json.loads, done.stdout.splitlines())}
    assert totals == expected_scores(name)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_run_all_on_the_untouched_release_reaches_every_check_cell(course: Path, name: str) -> None:
    # The empty student's notebook is the release as handed out, run top to bottom by autograde as
    # "Run All" runs it: each Try it cell that calls an unwritten function raises (it is tagged
    # raises-exception, so Jupyter goes on too), and every check cell reports its task at 0
    # instead of never running.
    path = course / "autograded" / "empty" / name / ASSIGNMENTS[name].notebook
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    checks = [cell for cell in cells if cell["metadata"].get("nbgrader", {}).get("grade")]
    assert checks
    for cell in checks:
        printed = "".join("".join(output.get("text", "")) for output in cell["outputs"] if output["output_type"] == "stream")
        assert f"{name} · " in printed and ": 0 / " in printed, printed
    raised = [cell for cell in cells if any(output["output_type"] == "error" for output in cell.get("outputs", []))]
    assert raised and all("raises-exception" in cell["metadata"].get("tags", []) for cell in raised)

"""Shared pytest options and fixtures.

`--submission PATH` points the exercise tests at a learner's notebook instead of the solution:

    pytest tests/test_exercise_01_bpe.py --submission ~/Downloads/bpe.ipynb

Then only the tests that grade the submission run, one per check, and a failing one prints a
line with the check's message. The exercise test modules name their EXERCISE and SOLUTION, which
the fixtures below read: `submission_report` grades --submission for the module's exercise, or
the module's solution without --submission or where --submission is another exercise's notebook.

`notebook_with(path, {"merge": source})` writes the solution notebook with answer cells replaced,
the way a learner's submission with those answers would look.
"""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from grading import SubmissionReport, grade_submission, load_namespace, tasks
from grading.notebook import graded_cells, read_notebook

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SUBMISSION = REPO / "solutions" / "01_bpe" / "bpe.ipynb"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--submission",
        default=None,
        help="grade this notebook with the exercise's checks, and run only those tests "
        "(default: every test, the checks graded on the solution notebook)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --submission, keep only the tests that grade it (they use `submission_report`)."""
    if config.getoption("--submission") is None:
        return
    kept = [item for item in items if "submission_report" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


@pytest.fixture(scope="session")
def submission(request: pytest.FixtureRequest) -> Path | None:
    """The notebook under test (--submission), as an existing path, or None."""
    given = request.config.getoption("--submission")
    if given is None:
        return None
    path = Path(given).expanduser().resolve()
    if not path.is_file():
        raise pytest.UsageError(f"--submission {path}: no such notebook")
    return path


def _is_another_exercises_notebook(path: Path, exercise: str) -> bool:
    """True if `path` is a notebook with answer cells, none of them for one of `exercise`'s tasks.
    A file that is no notebook, or a notebook without answer cells, is not: grading it says what
    is wrong with it, where falling back to the solution would hide it."""
    try:
        answers = {cell.grade_id for cell in graded_cells(read_notebook(path)) if cell.kind == "answer"}
    except ValueError:
        return False
    return bool(answers) and answers.isdisjoint(tasks(exercise))


@pytest.fixture(scope="module")
def submission_report(request: pytest.FixtureRequest, submission: Path | None) -> SubmissionReport:
    """The notebook under test graded for the requesting module's EXERCISE as the batch grader grades
    it, in a sandboxed process: --submission, unless it is absent or another exercise's notebook,
    then the module's SOLUTION."""
    exercise = request.module.EXERCISE
    if submission is None or _is_another_exercises_notebook(submission, exercise):
        return grade_submission(exercise, request.module.SOLUTION)
    notebook = submission
    return grade_submission(exercise, notebook)


@pytest.fixture(scope="module")
def solution_namespace(request: pytest.FixtureRequest) -> dict:
    """The requesting module's SOLUTION run as grading runs it (setup and answer cells only): what a
    check cell in the notebook calls. Shared by the module's tests: copy it before changing it."""
    namespace, problems = load_namespace(request.module.SOLUTION)
    assert problems == []
    return namespace


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tests on tiny tensors gain nothing from more threads, which only compete with the other
    processes of a busy machine; a module asks for it with pytest.mark.usefixtures."""
    import torch  # here, not above: conftest itself needs no torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_notebook_with(path: Path, answers: dict[str, str], base: Path = DEFAULT_SUBMISSION) -> Path:
    """Write `base` with the source of each answer (or setup) cell whose nbgrader grade id is in
    `answers` replaced; a grade id the notebook lacks is an error in the test."""
    notebook = json.loads(base.read_text(encoding="utf-8"))
    ids = [cell["metadata"].get("nbgrader", {}).get("grade_id") for cell in notebook["cells"]]
    missing = set(answers) - set(ids)
    assert not missing, f"no cells with grade ids {missing}"
    for cell, grade_id in zip(notebook["cells"], ids):
        if grade_id in answers:
            cell["source"] = answers[grade_id]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


@pytest.fixture
def notebook_with(tmp_path: Path) -> Callable[..., Path]:
    """write_notebook_with, into this test's temporary folder: notebook_with({"merge": src}) -> path."""

    def write(answers: dict[str, str], name: str = "submission.ipynb", base: Path = DEFAULT_SUBMISSION) -> Path:
        return write_notebook_with(tmp_path / name, answers, base)

    return write


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` in the course directory `course`, with the venv's bin/ first on PATH
    (nbgrader runs `alembic` for the gradebook, and the kernel it starts is the venv's python3)."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def generated_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course directory (nbgrader_config.py and a copy of solutions/) in which nbgrader has
    generated every assignment's release: what tests/test_exercises_generated.py compares with
    exercises/, and where tests/test_nbgrader_end_to_end.py hands in and autogrades."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "nbgrader_config.py", course)  # its root and sqlite gradebook: this folder
    for solution in sorted(path for path in (REPO / "solutions").iterdir() if path.is_dir()):
        shutil.copytree(solution, course / "solutions" / solution.name)
        nbgrader(course, "generate_assignment", solution.name, "--force")
    return course

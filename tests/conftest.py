"""Shared pytest options and fixtures.

`--submission PATH` points the exercise tests at a learner's notebook instead of the solution:

    pytest tests/test_exercise_01_bpe.py --submission ~/Downloads/bpe.ipynb

Then only the tests that grade the submission run, one per check, and a failing one prints a
line with the check's message. Those tests are written once for every exercise, in
tests/test_exercises.py; tests/test_exercise_<id>.py holds what only exercise <id> has (its
typical mistakes). So, with --submission, an exercise's test file named on the command line
stands for that exercise's tests in tests/test_exercises.py (pytest_configure below).
`submission_report` grades --submission for the test's exercise, or the exercise's solution
without --submission or where --submission is another exercise's notebook.

A test's exercise is the `exercise` fixture: its module's EXERCISE, or one parameter of
tests/test_exercises.py, which runs each of its tests for every exercise under test.

`notebook_with(path, {"merge": source})` writes the solution notebook with answer cells replaced,
the way a learner's submission with those answers would look.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from exercise_testing import Gradings
from submission_notebooks import ASSIGNMENTS

from grading import SubmissionReport, load_namespace, tasks
from grading.notebook import graded_cells, read_notebook
from grading.registry import EXERCISES

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SUBMISSION = REPO / "solutions" / "01_bpe" / "bpe.ipynb"
EVERY_EXERCISE_TESTS = "test_exercises.py"  # the tests every exercise must pass, in this folder
EXERCISE_TESTS = re.compile(r"test_exercise_(?P<exercise>\w+)\.py")  # one exercise's own tests
UNDER_TEST = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--submission",
        default=None,
        help="grade this notebook with the exercise's checks, and run only those tests "
        "(default: every test, the checks graded on the solution notebook)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Decide the exercises under test: every one, unless --submission is given and the command
    line names only exercises' test files (tests/test_exercise_<id>.py); then those exercises,
    whose submission tests are in tests/test_exercises.py, which is collected in their place."""
    config.stash[UNDER_TEST] = list(EXERCISES)
    if config.getoption("--submission") is None:
        return
    named = [EXERCISE_TESTS.fullmatch(Path(arg).name) for arg in config.args]
    if config.args and all(match and match["exercise"] in EXERCISES for match in named):
        config.stash[UNDER_TEST] = [match["exercise"] for match in named]
        every = dict.fromkeys(str(Path(arg).with_name(EVERY_EXERCISE_TESTS)) for arg in config.args)
        config.args[:] = list(every)


def exercises_under_test(config: pytest.Config) -> list[str]:
    """The exercises whose tests in tests/test_exercises.py run (see pytest_configure)."""
    return config.stash[UNDER_TEST]


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


def notebook_under_test(exercise: str, submission: Path | None) -> Path:
    """What `submission_report` grades for `exercise`: --submission, unless it is absent or another
    exercise's notebook, then the exercise's solution."""
    if submission is None or _is_another_exercises_notebook(submission, exercise):
        return ASSIGNMENTS[exercise].solution
    return submission


@pytest.fixture
def exercise(request: pytest.FixtureRequest) -> str:
    """The exercise the test is about: its module's EXERCISE (tests/test_exercises.py gives it as
    a parameter instead)."""
    return request.module.EXERCISE


@pytest.fixture(scope="session")
def gradings(request: pytest.FixtureRequest, submission: Path | None) -> Gradings:
    """The session's sandboxed gradings of whole notebooks, each graded once. The first one asked
    for grades, two at a time, every one that the session's tests ask for through
    `submission_report` or `release_report` (tests/test_exercises.py)."""

    def wanted() -> Iterator[tuple[str, Path]]:
        for item in request.session.items:
            callspec = getattr(item, "callspec", None)
            exercise = callspec.params.get("exercise") if callspec is not None else None
            if exercise is None:
                continue
            if "submission_report" in item.fixturenames:
                yield exercise, notebook_under_test(exercise, submission)
            if "release_report" in item.fixturenames:
                yield exercise, ASSIGNMENTS[exercise].release

    return Gradings(wanted)


@pytest.fixture
def submission_report(exercise: str, submission: Path | None, gradings: Gradings) -> SubmissionReport:
    """The notebook under test (`notebook_under_test`) graded for the test's exercise as the batch
    grader grades it, in a sandboxed process; shared by every test that asks for it."""
    return gradings.report(exercise, notebook_under_test(exercise, submission))


class SolutionNamespaces(dict):
    """Exercise -> its solution run as grading runs it (setup and answer cells only), each run on
    first use."""

    def __missing__(self, exercise: str) -> dict:
        namespace, problems = load_namespace(ASSIGNMENTS[exercise].solution)
        assert problems == []
        self[exercise] = namespace
        return namespace


@pytest.fixture(scope="session")
def solution_namespaces() -> SolutionNamespaces:
    return SolutionNamespaces()


@pytest.fixture
def solution_namespace(exercise: str, solution_namespaces: SolutionNamespaces) -> dict:
    """The exercise's solution run as grading runs it: what a check cell in the notebook calls.
    Run once a session and shared by every test of the exercise: copy it before changing it."""
    return solution_namespaces[exercise]


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


# Seconds that nbgrader spends on each assignment in these tests: generate_assignment, then
# autograde and generate_feedback of tests/test_nbgrader_end_to_end.py's three students (measured
# 2026-11-30 on 2 busy cores). Only used to split the assignments between course directories.
NBGRADER_SECONDS = {
    "01_bpe": 21,
    "02_linear": 26,
    "02_normalization": 25,
    "03_attention": 24,
    "03_rope": 24,
    "04_optimizer": 32,
    "04_training_loop": 38,
    "05_generation": 36,
}
COURSES = 2  # course directories, each with its own gradebook and nbgrader process at any time


def split_by_cost(names: list[str], parts: int) -> list[list[str]]:
    """`names` in `parts` lists of about equal nbgrader time: the costliest first, each to the list
    with the least time so far. An assignment missing from NBGRADER_SECONDS counts as the costliest."""
    unknown = max(NBGRADER_SECONDS.values())

    def cost(name: str) -> int:
        return NBGRADER_SECONDS.get(name, unknown)

    lists: list[list[str]] = [[] for _ in range(parts)]
    for name in sorted(names, key=lambda name: (-cost(name), name)):
        min(lists, key=lambda listed: sum(map(cost, listed))).append(name)
    return [sorted(listed) for listed in lists if listed]


def in_each_course(work: Callable[[Path, list[str]], None], courses: dict[str, Path]) -> None:
    """`work(course, its assignments)` for every course directory of `courses` (assignment -> its
    course directory), all at the same time, one thread each: the work is nbgrader subprocesses,
    which never share a gradebook this way. A failure is raised once every thread is done."""
    assignments: dict[Path, list[str]] = {}
    for name, course in courses.items():
        assignments.setdefault(course, []).append(name)
    with ThreadPoolExecutor(len(assignments)) as pool:
        for done in [pool.submit(work, course, names) for course, names in assignments.items()]:
            done.result()


@pytest.fixture(scope="session")
def generated_courses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Assignment -> the course directory (nbgrader_config.py and a copy of the assignment's folder
    in solutions/) in which nbgrader has generated its release: what
    tests/test_exercises_generated.py compares with exercises/, and where
    tests/test_nbgrader_end_to_end.py hands in and autogrades. The assignments are split between
    COURSES directories of about equal work, each with its own gradebook, so that as many nbgrader
    processes run at once (nbgrader autogrades one notebook after another, and two processes
    writing one SQLite gradebook at once may find it locked)."""
    courses = {}
    solutions = sorted(path.name for path in (REPO / "solutions").iterdir() if path.is_dir())
    for names in split_by_cost(solutions, COURSES):
        course = tmp_path_factory.mktemp("course")
        shutil.copy(REPO / "nbgrader_config.py", course)  # its root and sqlite gradebook: this folder
        for name in names:
            shutil.copytree(REPO / "solutions" / name, course / "solutions" / name)
            courses[name] = course

    def generate(course: Path, names: list[str]) -> None:
        # One nbgrader process for all of the course's assignments (ASSIGNMENT is a glob to nbgrader,
        # and the course holds exactly `names`): each process costs seconds of start-up alone.
        nbgrader(course, "generate_assignment", "*", "--force")
        missing = [name for name in names if not (course / "exercises" / name).is_dir()]
        assert not missing, f"nbgrader generated no release of {missing}"

    in_each_course(generate, courses)
    return courses

"""What every exercise's grading must do, tested once for each exercise of grading.registry.EXERCISES
(the test ids end in the exercise: `test_checks_are_well_formed[02_linear]`).

Its checks are well formed and pass plain data to the sandbox; its notebook's check cells are worth
the points of their task, and grading runs only the setup and answer cells; the modules copied into
the sandbox need nothing the sandbox lacks; the solution scores full marks, in the sandbox and in
the notebook, and leaves the learner's random numbers alone; the released stub scores zero. What
only one exercise has (above all its typical mistakes, each losing the checks that name it) is in
tests/test_exercise_<id>.py.

The points each task is worth are those the notebook's text states, written down in
submission_notebooks.ASSIGNMENTS. To grade a learner's notebook instead of the solution, name its
exercise's test file (conftest.py says how):

    pytest tests/test_exercise_01_bpe.py --submission ~/Downloads/bpe.ipynb

which runs the two submission tests below for that exercise only, one test a check.
"""

import doctest
import importlib.util
import json
from pathlib import Path

import pytest
import regex
import torch
from conftest import exercises_under_test
from exercise_testing import STANDARD_LIBRARY, Gradings, check_names, top_level_imports
from submission_notebooks import ASSIGNMENTS

from grading import SubmissionReport, check_task, checks_for, extract_source, load_namespace, run_checks, tasks
from grading import task_points as points_per_task
from grading.grader import _learner_side_modules
from grading.notebook import graded_cells, read_notebook
from grading.registry import EXERCISES, notebook_for

TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `exercise` runs for each exercise under test (all of them, unless
    --submission names some: conftest.py); test_submission_passes runs for each of their checks."""
    if "exercise" not in metafunc.fixturenames:
        return
    exercises = exercises_under_test(metafunc.config)
    if "name" in metafunc.fixturenames:
        metafunc.parametrize(("exercise", "name"), [(each, name) for each in exercises for name in check_names(each)])
    else:
        metafunc.parametrize("exercise", exercises)


@pytest.fixture
def release_report(exercise: str, gradings: Gradings) -> SubmissionReport:
    """The exercise's released notebook (answers stubbed out) graded in the sandbox, once a session."""
    return gradings.report(exercise, ASSIGNMENTS[exercise].release)


# ---- the registry, the notebooks and the tests agree --------------------------------------------


def test_every_exercise_has_its_stated_points() -> None:
    assert sorted(ASSIGNMENTS) == sorted(EXERCISES)


def test_exercise_has_its_notebooks_and_its_own_tests(exercise: str) -> None:
    # Its own tests: the typical mistakes, and the file a learner names with --submission (README).
    assignment = ASSIGNMENTS[exercise]
    assert assignment.notebook == notebook_for(exercise)
    assert assignment.solution.is_file() and assignment.release.is_file()
    assert (TESTS / f"test_exercise_{exercise}.py").is_file()


# ---- the check definitions --------------------------------------------------------------------


def test_checks_are_well_formed(exercise: str) -> None:
    # Check names are unique (reports and tests find checks by name); the tasks and their points are
    # those the notebook's text states (in notebook order); and each task has at least three checks,
    # some visible (the learner sees what to fix) and some hidden (a learner cannot pass by copying
    # expected values).
    task_points = ASSIGNMENTS[exercise].task_points
    names = check_names(exercise)
    assert len(names) == len(set(names)), "check names must be unique"
    assert tasks(exercise) == list(task_points)
    assert points_per_task(exercise) == task_points
    for task in task_points:
        task_checks = checks_for(exercise, task)
        assert len(task_checks) >= 3, task
        assert {check.visibility for check in task_checks} == {"visible", "hidden"}, task


def test_inputs_and_references_are_plain_data(exercise: str) -> None:
    # The sandbox gets a check's calls as JSON, and the expected values are compared with what
    # comes back as JSON: both must survive the round trip, and the calls must be the same on every
    # run (a submission graded twice gets the same questions).
    for check in checks_for(exercise):
        calls = check.plain_calls()
        assert json.loads(json.dumps(calls)) == calls, check.name
        expected = check.expected()
        assert len(expected) == len(calls) and json.loads(json.dumps(expected)) == expected, check.name
        assert check.plain_calls() == calls, f"{check.name}: inputs must not change between runs"


def test_notebook_check_cells_are_worth_the_points_of_their_task(exercise: str) -> None:
    # nbgrader takes the value of a check cell as its partial credit: it must not exceed the cell's
    # points, and a full score must fill them, so each cell's points are those of its task.
    call = regex.compile(rf'check_task\(globals\(\), "{regex.escape(exercise)}", "(\w+)"\)')
    points = {}
    for cell in read_notebook(ASSIGNMENTS[exercise].solution)["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade"):
            points[call.search("".join(cell["source"])).group(1)] = meta["points"]
    assert points == ASSIGNMENTS[exercise].task_points == points_per_task(exercise)


def test_only_setup_and_answer_cells_are_graded(exercise: str, solution_namespace: dict) -> None:
    # Grading runs the setup cell and one answer cell a task, in the tasks' order, and nothing else
    # (not the demos, which may download data or take long, nor the check cells).
    notebook = read_notebook(ASSIGNMENTS[exercise].solution)
    graded = [(cell.kind, cell.grade_id) for cell in graded_cells(notebook)]
    assert graded == [("setup", "setup")] + [("answer", task) for task in tasks(exercise)]
    assert "check_task" not in solution_namespace  # the check cells did not run
    # The same code as one file, for a grader that runs it elsewhere.
    source = extract_source(ASSIGNMENTS[exercise].solution)
    assert source.count("\n# ---- ") + source.startswith("# ---- ") == len(graded)
    assert "check_task" not in source
    compile(source, "submission.py", "exec")


def adapters_of(exercise: str) -> set[str]:
    """The exercise's own module of adapters (grading/exercises/<name>_calls.py), if it has one."""
    checks = EXERCISES[exercise]
    name = f"{checks if isinstance(checks, str) else checks.__name__}_calls"
    return {name} if importlib.util.find_spec(name) else set()


def test_sandbox_modules_import_only_the_standard_library_and_torch(exercise: str) -> None:
    # The sandbox gets grading's learner side and the exercise's own adapters, nothing else:
    # course_lib, and whatever else the grader imports, may not exist there.
    modules = _learner_side_modules(checks_for(exercise))
    assert modules == {"grading.learner_side"} | adapters_of(exercise)
    for name in modules:
        assert top_level_imports(Path(importlib.import_module(name).__file__)) <= STANDARD_LIBRARY | {"torch"}, name


def test_sandbox_modules_docstring_examples_hold(exercise: str) -> None:
    # Each module the sandbox gets teaches with worked examples (every one has at least two), and
    # they hold.
    for name in sorted(_learner_side_modules(checks_for(exercise))):
        result = doctest.testmod(importlib.import_module(name))
        assert result.attempted >= 2 and result.failed == 0, (name, result)


# ---- the submission (the solution by default) passes everything, graded in the sandbox ---------


def test_submission_runs_without_problems(submission_report: SubmissionReport, exercise: str) -> None:
    # Every cell ran and every check has a result, in order: a score without a problem behind it.
    if submission_report.problems:
        pytest.fail("problems with the notebook: " + "; ".join(submission_report.problems), pytrace=False)
    assert [result.name for result in submission_report.results] == check_names(exercise)


def test_submission_passes(submission_report: SubmissionReport, name: str) -> None:
    # The check called `name` passed with all its points (one test a check says which one failed,
    # in one readable line: what was called and what went wrong, without a traceback).
    (result,) = [result for result in submission_report.results if result.name == name]
    if not (result.passed and result.score == result.points):
        pytest.fail(f"{result.name} ({result.score:g}/{result.points:g}): {' '.join(result.message.split())}",
                    pytrace=False)


# ---- the solution passes everything in the notebook too ------------------------------------------


def test_solution_passes_in_the_notebook(exercise: str, solution_namespace: dict,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # The check cells, run in the solution's namespace as the notebook runs them, give every task
    # its points and report every check as passed, writing nothing to stderr (nbgrader scores a cell
    # that writes to stderr as 0).
    task_points = ASSIGNMENTS[exercise].task_points
    for task, points in task_points.items():
        assert check_task(solution_namespace, exercise, task) == points
    printed = capsys.readouterr()
    assert printed.err == ""
    for task, points in task_points.items():
        assert f"{exercise} · {task}: {points} / {points} points" in printed.out
    assert "FAIL" not in printed.out and printed.out.count("PASS") == len(checks_for(exercise))


def test_checks_leave_the_learners_random_numbers_alone(exercise: str, solution_namespace: dict, capsys) -> None:
    # The models and generators of the checks are seeded on their own: check cells run between two
    # draws of the learner's do not change the second.
    torch.manual_seed(0)
    torch.rand(1)
    after_one = torch.rand(3)
    torch.manual_seed(0)
    torch.rand(1)
    for task in tasks(exercise):
        check_task(solution_namespace, exercise, task)
    assert torch.equal(torch.rand(3), after_one)


# ---- the released stub fails everything, cleanly ---------------------------------------------


def test_release_scores_zero_in_the_notebook_and_in_the_sandbox(exercise: str,
                                                                release_report: SubmissionReport) -> None:
    # The released stub, run in the notebook and graded in the sandbox, runs cleanly (the stubs
    # define every function and class) and fails every check because calling a stub raises
    # NotImplementedError, never because of a problem in grading.
    namespace, problems = load_namespace(ASSIGNMENTS[exercise].release)
    assert problems == []
    assert release_report.problems == [] and release_report.score == 0
    assert release_report.max_score == ASSIGNMENTS[exercise].max_score
    for results in (run_checks(namespace, exercise), release_report.results):
        assert len(results) == len(checks_for(exercise))
        for result in results:
            assert not result.passed and result.score == 0, result.name
            assert "raised NotImplementedError" in result.message, result.message
    # Every call raises at once: far below the 10 s per check that a stub which hangs would take.
    assert release_report.execution_time < 20

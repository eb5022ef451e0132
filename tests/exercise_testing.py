"""What the four exercise test files (tests/test_exercise_0*.py) check alike, written once.

Every exercise's grading must hold to the same rules: its checks are well formed and pass plain
data to the sandbox, its notebook's check cells are worth the points of their task, the solution
scores full marks and the released stub zero, and a mistake fails the checks that name it. Each
test file keeps its own test functions (so that a file still lists every test it runs) and calls
the functions here with its exercise's constants (EXERCISE, SOLUTION, RELEASE, TASK_POINTS, TOTAL).

The fixtures that grade the solution or the --submission notebook are in conftest.py.
"""

import ast
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
import regex

from grading import (
    Check,
    Result,
    SubmissionReport,
    check_task,
    checks_for,
    forbidden_for,
    load_namespace,
    run_checks,
    tasks,
)
from grading import task_points as points_per_task
from grading.checks import judge
from grading.in_process import collect, format_report
from grading.notebook import graded_cells, read_notebook

REPO = Path(__file__).resolve().parent.parent
# What a module copied into the sandbox may import: course_lib (and its dependencies) are not there.
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"__future__"}


def notebooks(exercise: str, file_name: str) -> tuple[Path, Path]:
    """The solution notebook of `exercise` and the one released to learners (its answers stubbed
    out), where nbgrader's source and release folders keep them."""
    return REPO / "solutions" / exercise / file_name, REPO / "exercises" / exercise / file_name


def check_named(exercise: str, name: str) -> Check:
    """The one check of `exercise` called `name`: a test about a particular check fails, rather than
    testing nothing, if the check is renamed or its name is no longer unique."""
    (check,) = [check for check in checks_for(exercise) if check.name == name]
    return check


def judged(exercise: str, name: str, namespace: dict) -> Result:
    """The check of `exercise` called `name` run on the functions in `namespace` and judged in this
    process: its verdict and the message a learner would read, without grading the whole notebook."""
    check = check_named(exercise, name)
    return judge(check, collect(check, namespace, forbidden_for(exercise)))


def check_names(exercise: str) -> list[str]:
    """The names of `exercise`'s checks in grading order, to parametrize a test with one case a check."""
    return [check.name for check in checks_for(exercise)]


def check_points(exercise: str, names: Iterable[str]) -> float:
    """What the checks called `names` are worth together: the least a submission failing them loses."""
    wanted = set(names)
    return sum(check.points for check in checks_for(exercise) if check.name in wanted)


def with_answer(namespace: dict, *sources: str) -> dict:
    """A copy of `namespace` with each source (a learner's answer) run over it in turn, as the
    notebook's cells would run; the copy keeps a module-scoped solution namespace intact."""
    answered = dict(namespace)
    for source in sources:
        exec(source, answered)  # noqa: S102 - a learner's answer, as a notebook cell runs it
    return answered


def grade_in_process(notebook: Path, exercise: str, task: str | None = None) -> list[Result]:
    """`notebook`'s graded cells run and its checks (of `task`, or all) judged in this process: the
    same verdicts as the sandbox without the cost of a child process that imports torch."""
    namespace, problems = load_namespace(notebook)
    assert problems == []
    return run_checks(namespace, exercise, task)


def top_level_imports(path: Path) -> set[str]:
    """The top-level packages the module at `path` imports when it is imported (relative imports
    and imports inside functions aside): what must be importable wherever the file is copied."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split(".")[0])
    return names


# ---- the check definitions --------------------------------------------------------------------


def assert_checks_are_well_formed(exercise: str, task_points: dict[str, int]) -> None:
    """Check names are unique (reports and tests find checks by name); the tasks and their points are
    those the notebook's text states (`task_points`, in notebook order); and each task has at least
    three checks, some visible (the learner sees what to fix) and some hidden (a learner cannot
    pass by copying expected values)."""
    names = check_names(exercise)
    assert len(names) == len(set(names)), "check names must be unique"
    assert tasks(exercise) == list(task_points)
    assert points_per_task(exercise) == task_points
    for task in task_points:
        task_checks = checks_for(exercise, task)
        assert len(task_checks) >= 3, task
        assert {check.visibility for check in task_checks} == {"visible", "hidden"}, task


def assert_inputs_and_references_are_plain_data(exercise: str) -> None:
    """The sandbox gets a check's calls as JSON, and the expected values are compared with what
    comes back as JSON: both must survive the round trip, and the calls must be the same on every
    run (a submission graded twice gets the same questions)."""
    for check in checks_for(exercise):
        calls = check.plain_calls()
        assert json.loads(json.dumps(calls)) == calls, check.name
        expected = check.expected()
        assert len(expected) == len(calls) and json.loads(json.dumps(expected)) == expected, check.name
        assert check.plain_calls() == calls, f"{check.name}: inputs must not change between runs"


def assert_check_cells_are_worth_their_task_points(
    solution: Path, exercise: str, task_points: dict[str, int], total: int
) -> None:
    """nbgrader takes the value of a check cell as its partial credit: it must not exceed the cell's
    points, and a full score must fill them, so each cell's points are those of its task."""
    call = regex.compile(rf'check_task\(globals\(\), "{regex.escape(exercise)}", "(\w+)"\)')
    points = {}
    for cell in read_notebook(solution)["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade"):
            points[call.search("".join(cell["source"])).group(1)] = meta["points"]
    assert points == task_points == points_per_task(exercise)
    assert sum(points.values()) == total


def assert_only_setup_and_answer_cells_are_graded(notebook: Path, task_names: Iterable[str]) -> None:
    """Grading runs the setup cell and one answer cell a task, in the order of `task_names`, and
    nothing else (not the demos, which may download data or take long, nor the check cells)."""
    graded = [(cell.kind, cell.grade_id) for cell in graded_cells(read_notebook(notebook))]
    assert graded == [("setup", "setup")] + [("answer", task) for task in task_names]


# ---- whole notebooks: the solution scores full marks, the released stub zero ---------------------


def assert_graded_without_problems(report: SubmissionReport, exercise: str) -> None:
    """Every cell ran and every check has a result, in order: a score without a problem behind it."""
    if report.problems:
        pytest.fail("problems with the notebook: " + "; ".join(report.problems), pytrace=False)
    assert [result.name for result in report.results] == check_names(exercise)


def assert_check_passed(report: SubmissionReport, name: str) -> None:
    """The check called `name` passed with all its points (one test a check says which one failed,
    in one readable line: what was called and what went wrong, without a traceback)."""
    (result,) = [result for result in report.results if result.name == name]
    if not (result.passed and result.score == result.points):
        pytest.fail(f"{result.name} ({result.score:g}/{result.points:g}): {' '.join(result.message.split())}",
                    pytrace=False)


def assert_full_marks_in_the_notebook(
    namespace: dict, exercise: str, task_points: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """The check cells, run in the solution's namespace as the notebook runs them, give every task
    its points and report every check as passed, writing nothing to stderr (nbgrader scores a cell
    that writes to stderr as 0)."""
    for task, points in task_points.items():
        assert check_task(namespace, exercise, task) == points
    printed = capsys.readouterr()
    assert printed.err == ""
    for task, points in task_points.items():
        assert f"{exercise} · {task}: {points} / {points} points" in printed.out
    assert "FAIL" not in printed.out and printed.out.count("PASS") == len(checks_for(exercise))


def assert_release_scores_zero(exercise: str, release: Path, report: SubmissionReport, total: int) -> None:
    """The released stub, run in the notebook and graded in the sandbox (`report`), runs cleanly
    (the stubs define every function and class) and fails every check because calling a stub raises
    NotImplementedError, never because of a problem in grading."""
    namespace, problems = load_namespace(release)
    assert problems == []
    assert report.problems == [] and report.score == 0 and report.max_score == total
    for results in (run_checks(namespace, exercise), report.results):
        assert len(results) == len(checks_for(exercise))
        for result in results:
            assert not result.passed and result.score == 0, result.name
            assert "raised NotImplementedError" in result.message, result.message


# ---- mistakes -----------------------------------------------------------------------------------


def assert_fails_naming(results: list[Result], must_fail: set[str], exercise: str, mistake: str) -> set[str]:
    """The checks in `must_fail` failed and the report the learner reads names each as failed; returns
    the names of every failed check, for the caller's own arithmetic on the score."""
    failed = {result.name for result in results if not result.passed}
    assert must_fail <= failed, f"{mistake}: failed only {failed}"
    report = format_report(results, exercise)
    for name in must_fail:
        assert f"FAIL {name}" in report or f"FAIL [hidden] {name}" in report, name
    return failed

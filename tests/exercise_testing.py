"""Helpers for the exercise tests: tests/test_exercises.py (what every exercise's grading must do,
run for each exercise) and tests/test_exercise_<id>.py (what one exercise's mistakes must cost).

The fixtures that grade the solution or the --submission notebook, and the solution's namespace,
are in conftest.py; they share what they run through the classes here.
"""

import ast
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from submission_notebooks import ASSIGNMENTS

from grading import Check, Result, SubmissionReport, checks_for, forbidden_for, grade_submission, load_namespace
from grading import run_checks
from grading.checks import SetupError, judge
from grading.in_process import collect, format_report
from grading.notebook import read_notebook

REPO = Path(__file__).resolve().parent.parent
# What a module copied into the sandbox may import: course_lib (and its dependencies) are not there.
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"__future__"}


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


# ---- whole notebooks graded in the sandbox, shared -------------------------------------------


def grade_all(notebooks: Iterable[tuple[str, Path]], **options: float) -> list[SubmissionReport]:
    """Each (exercise, notebook) graded in the sandbox with `options` (grade_submission's), two at
    a time: a grading is mostly a child process on one core. The expected values are computed
    first, here, one exercise after another (a reference may seed torch's global generator), and
    the caller waits for every report, so that no in-process check, whose tripwires wrap torch's
    functions for the whole process, runs beside the gradings."""
    notebooks = list(notebooks)
    for exercise in dict.fromkeys(exercise for exercise, _ in notebooks):
        for check in checks_for(exercise):
            check.expected()
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda graded: grade_submission(*graded, **options), notebooks))


class Gradings:
    """Whole notebooks graded in the sandbox, each (exercise, notebook) once. `wanted` lists those
    the tests will ask for: the first report asked for grades all of them together (grade_all).
    Where an exercise's expected values cannot be computed (a missing download), that stops the
    batch; then each notebook is graded when asked for, so the error is its own exercise's."""

    def __init__(self, wanted: Callable[[], Iterable[tuple[str, Path]]]) -> None:
        self._wanted = wanted
        self._reports: dict[tuple[str, Path], SubmissionReport] = {}

    def report(self, exercise: str, notebook: Path) -> SubmissionReport:
        key = (exercise, notebook)
        if key not in self._reports:
            wanted, self._wanted = self._wanted(), tuple
            todo = [graded for graded in dict.fromkeys([key, *wanted]) if graded not in self._reports]
            try:
                self._reports.update(zip(todo, grade_all(todo)))
            except SetupError:
                self._reports[key] = grade_submission(exercise, notebook)
        return self._reports[key]


# ---- the notebook's own cells ------------------------------------------------------------------


def run_demo_cells(solution: Path, namespace: dict) -> dict:
    """A copy of `namespace` (the solution's graded cells) after the notebook's other code cells,
    its demos and "Try it" cells, which grading never runs; figures are drawn off screen."""
    import matplotlib  # here, not above: conftest imports this module, and most tests draw nothing

    matplotlib.use("Agg")
    namespace = dict(namespace)
    for cell in read_notebook(solution)["cells"]:
        if cell["cell_type"] == "code" and "nbgrader" not in cell["metadata"]:
            exec("".join(cell["source"]), namespace)  # noqa: S102 - our own notebook
    return namespace


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


def checks_naming(exercise: str, task: str, *fragments: str) -> set[str]:
    """The names of `task`'s checks that contain one of `fragments` (all of them without any)."""
    return {c.name for c in checks_for(exercise, task) if not fragments or any(f in c.name for f in fragments)}


def assert_costs_exactly(namespace: dict, exercise: str, answers: dict[str, str], must_fail: set[str],
                         mistake: str) -> None:
    """The solution's `namespace` with one task's answer replaced (`answers`, run over a copy as
    the notebook's cell would run) fails exactly the checks in `must_fail`, all of that task."""
    (task,) = answers
    results = run_checks(with_answer(namespace, *answers.values()), exercise)
    failed = assert_fails_naming(results, must_fail, exercise, mistake)
    assert failed == must_fail, f"{mistake}: also failed {failed - must_fail}"
    assert all(result.task == task for result in results if not result.passed)


def assert_variants_pass(notebook_with: Callable[..., Path], exercise: str, answers: dict[str, str],
                         variant: str) -> None:
    """The solution notebook with the answer cell of one task replaced by `answers` (another way to
    be right) passes every check of that task, graded in this process."""
    (task,) = answers
    results = grade_in_process(notebook_with(answers, base=ASSIGNMENTS[exercise].solution), exercise, task)
    assert all(result.passed for result in results), format_report(results, variant)


def assert_comparisons_say_false(exercise: str, garbage: list) -> None:
    """What comes back from the sandbox is plain data of any shape: each check's comparison says
    False to every value in `garbage` (not the result it expects), and never raises, which would
    crash the grader."""
    for check in checks_for(exercise):
        expected = check.expected()[0]
        for value in garbage:
            assert check.compare(expected, value) is False, (check.name, value)

"""A check: one call to the learner's code, compared with a trusted reference.

A check is data. It names the learner's function it grades (its task), the points it is worth, who
may see its details, the adapter that calls the learner's code, the inputs, and the reference:

    Check(
        name="merge replaces non-overlapping pairs",
        task="merge",
        points=1,
        visibility="visible",
        call=call_merge,                                   # in exercises/bpe_calls.py
        inputs={"cases": [([5, 6, 6, 7, 9], (6, 7), 99)]},  # -> call_merge(namespace, cases=...)
        reference=expect([[5, 6, 99, 9]]),
        describe="merge([5, 6, 6, 7, 9], (6, 7), 99)",
    )

(from course_lib/grading/exercises/bpe.py, which holds the checks of exercise 01_bpe.)

Running it has two halves that never mix, so that a sandbox can sit between them:

- the TRUSTED side (this module, the grader's process): `check.arguments()` builds the inputs as
  plain data (an input may be a zero-argument function, e.g. a slice of Tiny Shakespeare, built
  here with course_lib and cached), and `judge(check, outcome)` computes
  `check.reference(**arguments)`, compares, and writes the `Result` with a message that helps
  (for a hidden check, without the expected value).
- the LEARNER's side (learner_side.py, standard library only): `call_adapter` runs
  `check.call(namespace, **arguments)` and returns an outcome holding only plain data. In the
  batch grader that happens in a sandboxed process (grader.py); the outcome comes back as JSON
  and `Outcome.from_plain` validates it again, so an object whose `__eq__` lies never reaches
  the comparison.

`run_checks` does both halves in one process; `check_task` is what a notebook's check cell calls.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from course_lib.grading.learner_side import (
    CheckFailure,
    Tripwires,
    call_adapter,
    learner_function,
    quiet,
    quote,
    shorten,
    to_plain,
)

__all__ = [
    "Check",
    "CheckFailure",
    "CheckSetupError",
    "Outcome",
    "Result",
    "check_task",
    "collect",
    "expect",
    "format_report",
    "judge",
    "learner_function",
    "plain_equal",
    "run_checks",
    "to_plain",
]

Visibility = Literal["visible", "hidden"]

# Lists up to this long are compared by eye; longer ones get "first difference at index i".
_SHORT_LIST = 8


class CheckSetupError(Exception):
    """A check could not prepare its inputs or its expected value (no Tiny Shakespeare file, no
    tiktoken download): not the learner's fault, so the message is shown even for hidden checks."""


# How a result's message starts when the check itself could not run (see CheckSetupError).
SETUP_FAILED = "This check could not run"
# How it starts when the submission used what it must not (course_lib, a forbidden torch function).
NOT_ALLOWED = "Not allowed"


def plain_equal(expected: Any, actual: Any) -> bool:
    """True when `actual` is exactly `expected`: same plain types all the way down, same values.

    plain_equal([1, 2], [1, 2]) -> True;  plain_equal(1, True) -> False (bool is not int here);
    plain_equal({"a": 1.0}, {"a": 1}) -> False (a float was expected).
    """
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(plain_equal, expected, actual))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            plain_equal(expected[key], actual[key]) for key in expected
        )
    return expected == actual


def _constant(value: Any, **arguments: Any) -> Any:
    return value


def expect(value: Any) -> Callable[..., Any]:
    """A reference that is a value worked out by hand (visible checks; the notebook shows the same
    examples): expect([[5, 6, 99, 9]])(cases=...) -> [[5, 6, 99, 9]]."""
    return partial(_constant, value)


def _build(value: Any) -> Any:
    """Call every zero-argument function inside `value` (lists, tuples and dict values included)."""
    if callable(value):
        return value()
    if isinstance(value, (list, tuple)):
        return [_build(item) for item in value]
    if isinstance(value, dict):
        return {key: _build(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Check:
    """One graded question about one of the learner's functions (see the module docstring).

    `call` is an adapter, a module-level function `(namespace, **arguments) -> plain data` of a
    learner-side module (standard library only: learner_side.py or exercises/*_calls.py), so the
    sandbox can import it without course_lib. `inputs` are its keyword arguments; a value may be
    a zero-argument function that builds it on the trusted side (a hidden input). `reference`
    gets the same arguments and returns the expected plain data (trusted side);
    `compare(expected, actual)` says if they agree. `show` writes a plain value the way the
    learner's code would print it (rows [[1, 2, 2]] as {(1, 2): 2}) in a visible check's message.
    """

    name: str
    task: str
    points: float
    visibility: Visibility
    call: Callable[..., Any]
    inputs: Mapping[str, Any]
    reference: Callable[..., Any]
    describe: str
    compare: Callable[[Any, Any], bool] = plain_equal
    show: Callable[[Any], str] = repr

    def __post_init__(self) -> None:
        if self.visibility not in ("visible", "hidden"):
            raise ValueError(f"visibility must be 'visible' or 'hidden', got {self.visibility!r}")
        if self.points < 0:
            raise ValueError(f"points must be >= 0, got {self.points}")
        if not self.call.__module__.startswith("course_lib.grading.") or "." in self.call.__qualname__:
            raise ValueError(
                f"check {self.name!r}: call must be a module-level function of course_lib.grading's "
                f"learner-side modules, got {self.call.__module__}.{self.call.__qualname__}"
            )

    def arguments(self) -> dict:
        """The adapter's keyword arguments as fresh plain data (tuples become lists), built on
        the trusted side; CheckSetupError if building one fails."""
        try:
            return to_plain(_build(dict(self.inputs)))
        except Exception as err:
            raise CheckSetupError(f"could not prepare its input: {type(err).__name__}: {err}") from err


@dataclass(frozen=True)
class Outcome:
    """What came back from the learner's side: a plain value, or an explanation of what went wrong.

    `printed` is whatever the learner's code wrote to stdout/stderr during the call; `forbidden`
    the forbidden torch functions it called.
    """

    value: Any = None
    error: str | None = None
    printed: str = ""
    interrupted: bool = False
    timed_out: bool = False
    setup_failed: bool = False
    forbidden: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_plain(cls, data: Any) -> Outcome:
        """An Outcome from the dict `call_adapter` wrote, checked strictly; ValueError if it is
        not exactly that shape (the learner's code may have tampered with it)."""
        if type(data) is not dict or set(data) != {"value", "error", "printed", "interrupted", "timed_out", "forbidden"}:
            raise ValueError("the outcome is not a dict with the expected keys")
        if not (data["error"] is None or type(data["error"]) is str) or type(data["printed"]) is not str:
            raise ValueError("the outcome's error or printed output is not text")
        if type(data["interrupted"]) is not bool or type(data["timed_out"]) is not bool:
            raise ValueError("the outcome's flags are not booleans")
        if type(data["forbidden"]) is not list or not all(type(name) is str for name in data["forbidden"]):
            raise ValueError("the outcome's list of forbidden calls is not a list of str")
        try:
            value = to_plain(data["value"])
        except CheckFailure as err:
            raise ValueError(f"the outcome's value is not plain data: {err}") from None
        return cls(
            value=value,
            error=data["error"],
            printed=data["printed"],
            interrupted=data["interrupted"],
            timed_out=data["timed_out"],
            forbidden=tuple(data["forbidden"]),
        )


@dataclass(frozen=True)
class Result:
    """The score of one check, as a grader records it."""

    name: str
    task: str
    points: float
    score: float
    passed: bool
    visibility: Visibility
    message: str


def failed(check: Check, message: str) -> Result:
    """A Result of 0 points for `check` with `message` (the check could not be run or scored)."""
    return Result(check.name, check.task, check.points, 0.0, False, check.visibility, message)


def _first_difference(expected: Any, actual: Any) -> str:
    """Where two long lists first differ, which is hard to spot by eye (visible checks only)."""
    if not (isinstance(expected, list) and isinstance(actual, list)) or len(expected) <= _SHORT_LIST:
        return ""
    for index, (want, got) in enumerate(zip(expected, actual)):
        if not plain_equal(want, got):
            return f"\n  first difference at index {index}: expected {quote(want, 80)}, got {quote(got, 80)}"
    if len(expected) != len(actual):
        return f"\n  expected {len(expected)} items, got {len(actual)}"
    return ""


def _show(check: Check, value: Any) -> str:
    """`check.show(value)`, shortened; plain repr if `value` has a shape `show` does not expect."""
    try:
        return shorten(check.show(value))
    except Exception:  # the value came from the learner's side and may be any plain data
        return quote(value)


def judge(check: Check, outcome: Outcome, arguments: dict | None = None) -> Result:
    """Score `outcome` against `check.reference(**arguments)`: the trusted side.

    Messages follow visibility: a visible check shows what was expected and what came back, a
    hidden one only what was called and whether it raised or differed. A call to a forbidden
    torch function scores 0 whatever the value.
    """
    called = f"Called {check.describe}"
    if outcome.setup_failed:
        return failed(check, f"{outcome.error} (not a problem with your code).")
    if outcome.forbidden:
        names = ", ".join(outcome.forbidden)
        return failed(
            check,
            f"{NOT_ALLOWED}: {check.describe} called {names}, which {check.task} must not use, "
            "so this check scores 0. Write the computation yourself.",
        )
    if outcome.error is not None:
        passed, message = False, f"{called}: it {outcome.error}."
    else:
        try:
            with quiet(io.StringIO()):
                expected = to_plain(check.reference(**(check.arguments() if arguments is None else arguments)))
        except Exception as err:
            return failed(check, f"{SETUP_FAILED}: could not compute its expected value: {type(err).__name__}: "
                                 f"{err} (not a problem with your code).")
        passed = check.compare(expected, outcome.value)
        if passed:
            message = f"{called}: correct."
        elif check.visibility == "visible":
            message = (
                f"{called}:\n  expected {_show(check, expected)}\n  got      {_show(check, outcome.value)}"
                + _first_difference(expected, outcome.value)
            )
        else:
            message = f"{called}: the result differs from the reference."
    if outcome.printed and not passed:
        message += f"\n  your code printed: {quote(outcome.printed)}"
    return Result(
        name=check.name,
        task=check.task,
        points=check.points,
        score=float(check.points) if passed else 0.0,
        passed=passed,
        visibility=check.visibility,
        message=message,
    )


def collect(check: Check, namespace: dict, arguments: dict | None = None, forbidden: list[str] = ()) -> Outcome:
    """Call the learner's code in THIS process through `check.call` (see learner_side.call_adapter),
    watching the `forbidden` torch functions; never raises for anything the learner's code does.

    collect(check, {"merge": lambda ids, pair, new_id: ids}) -> Outcome(value=[[5, 6, 6, 7, 9]], ...)
    """
    if arguments is None:
        try:
            arguments = check.arguments()
        except CheckSetupError as err:
            return Outcome(error=f"{SETUP_FAILED}: {err}", setup_failed=True)
    tripwires = Tripwires(list(forbidden)).install() if forbidden else None
    try:
        outcome = call_adapter(check.call, namespace, arguments, tripwires=tripwires, forbidden=forbidden)
    finally:
        if tripwires is not None:
            tripwires.remove()
    try:
        return Outcome.from_plain(outcome)
    except ValueError as err:  # only if the learner's code replaced parts of learner_side
        return Outcome(error=f"broke the grading code: {err}")


def run_checks(namespace: dict, exercise: str, task: str | None = None) -> list[Result]:
    """Run every check of `exercise` (only those of `task`, if given) against `namespace`.

    Both halves run in this process (a notebook's check cell, nbgrader). An interrupt (Ctrl-C in
    Jupyter, or a KeyboardInterrupt the code raises) scores its check 0 and skips the rest, so a
    learner can stop a loop that hangs. Forbidden torch functions are watched during each call.
    """
    from course_lib.grading.exercises import checks_for, forbidden_for  # the registry imports this module

    results: list[Result] = []
    interrupted = False
    for check in checks_for(exercise, task):
        if interrupted:
            results.append(failed(check, "Not run: an earlier check of this run was interrupted."))
            continue
        try:
            arguments = check.arguments()
        except CheckSetupError as err:
            results.append(judge(check, Outcome(error=f"{SETUP_FAILED}: {err}", setup_failed=True)))
            continue
        outcome = collect(check, namespace, arguments, forbidden_for(exercise, check.task))
        interrupted = outcome.interrupted
        results.append(judge(check, outcome, arguments))
    return results


def format_report(results: list[Result], title: str) -> str:
    """The report a learner reads: every visible check with its message; hidden checks by name and
    pass/fail only (their inputs and expected values appear nowhere), unless the check itself could
    not run or the code used what it must not (those messages hold no expected values)."""
    score = sum(result.score for result in results)
    total = sum(result.points for result in results)
    lines = [f"{title}: {score:g} / {total:g} points"]
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        points = f"{result.score:g}/{result.points:g}"
        hidden = result.visibility == "hidden"
        lines.append(f"  {mark} {'[hidden] ' if hidden else ''}{result.name} ({points})")
        if not result.passed and (not hidden or result.message.startswith((SETUP_FAILED, NOT_ALLOWED))):
            lines.extend("      " + line for line in result.message.splitlines())
    return "\n".join(lines)


def check_task(namespace: dict, exercise: str, task: str) -> float:
    """Print the report of one task's checks and return its score (a notebook's check cell).

    In a check cell, `check_task(globals(), "01_bpe", "merge")` as the last line shows the report
    and leaves the score as the cell's value: nbgrader reads that number as the cell's partial
    credit (it must not exceed the cell's points, which equal the task's total points).
    """
    results = run_checks(namespace, exercise, task)
    if not results:
        raise ValueError(f"exercise {exercise!r} has no checks for task {task!r}")
    print(format_report(results, f"{exercise} · {task}"))
    return float(sum(result.score for result in results))

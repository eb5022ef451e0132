"""A check: one call to the learner's code, compared with a trusted reference.

A check is data. It names the learner's function it grades (its task), the points it is worth, who
may see its details, the call to make and the reference to compare with:

    Check(
        name="merge replaces non-overlapping pairs",
        task="merge",
        points=1,
        visibility="visible",
        call=partial(call_merge, cases=[([5, 6, 6, 7, 9], (6, 7), 99)]),  # -> [learner's result]
        reference=partial(expect, [[5, 6, 99, 9]]),
        describe="merge([5, 6, 6, 7, 9], (6, 7), 99)",
    )

(from course_lib/grading/exercises/bpe.py, which holds the checks of exercise 01_bpe.)

Running it has two halves that never mix, so that a sandbox can sit between them:

- `collect(check, namespace)` runs in the LEARNER's process: it calls `check.call(namespace)`,
  catches everything (even SystemExit and KeyboardInterrupt) and returns an `Outcome` holding only
  plain data: None, bool, int, float, str, lists and dicts with str keys. Nothing else may cross,
  so a returned object cannot lie about its value (an `__eq__` that always says True is never run).
- `judge(check, outcome)` runs in the TRUSTED process: it computes `check.reference()`, compares,
  and writes the `Result` with a message that helps (for a hidden check, without the expected value).

`run_checks` does both in one process; `check_task` is what a notebook's check cell calls.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, Literal

Visibility = Literal["visible", "hidden"]

# How much of a value or of the learner's printed output a message quotes.
_QUOTE_LIMIT = 300
# Lists up to this long are compared by eye; longer ones get "first difference at index i".
_SHORT_LIST = 8


class CheckFailure(Exception):
    """Raised by a check's `call` when the learner's code misbehaves in a way it can explain.

    The message is shown to the learner as it is: "merge should return a list of ints, got tuple".
    """


class CheckSetupError(Exception):
    """Raised by a check's `call` when it cannot prepare its own inputs (no Tiny Shakespeare file,
    no tiktoken download): not the learner's fault, so the message is shown even for hidden checks."""


# How a result's message starts when the check itself could not run (see CheckSetupError).
SETUP_FAILED = "This check could not run"


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


@dataclass(frozen=True)
class Check:
    """One graded question about one of the learner's functions (see the module docstring).

    `call` runs in the learner's process and returns plain data; `reference` runs in the trusted
    process and returns the expected plain data; `compare(expected, actual)` says if they agree.
    `call` and `reference` are module-level functions or `functools.partial`s of them, so a sandbox
    can name them and ship them to another process. `show` writes a plain value the way the
    learner's code would print it (rows [[1, 2, 2]] as {(1, 2): 2}) in a visible check's message.
    """

    name: str
    task: str
    points: float
    visibility: Visibility
    call: Callable[[dict], Any]
    reference: Callable[[], Any]
    describe: str
    compare: Callable[[Any, Any], bool] = plain_equal
    show: Callable[[Any], str] = repr

    def __post_init__(self) -> None:
        if self.visibility not in ("visible", "hidden"):
            raise ValueError(f"visibility must be 'visible' or 'hidden', got {self.visibility!r}")
        if self.points < 0:
            raise ValueError(f"points must be >= 0, got {self.points}")


@dataclass(frozen=True)
class Outcome:
    """What came back from the learner's side: a plain value, or an explanation of what went wrong.

    `printed` is whatever the learner's code wrote to stdout/stderr during the call; it is kept
    out of the notebook's output (a grader scores a cell that writes to stderr as 0).
    """

    value: Any = None
    error: str | None = None
    printed: str = ""
    interrupted: bool = False
    setup_failed: bool = False


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


def to_plain(value: Any) -> Any:
    """Copy `value` into exact plain types (tuples become lists), or raise CheckFailure.

    to_plain((1, [2, 3])) -> [1, [2, 3]]; to_plain({"a": None}) -> {"a": None};
    to_plain({1: 2}) and to_plain(numpy.int64(3)) raise: only str keys and built-in types cross.
    """
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if not math.isfinite(value):
            raise CheckFailure(f"got the non-finite float {value!r}")
        return value
    if kind in (list, tuple):
        return [to_plain(item) for item in value]
    if kind is dict:
        if not all(type(key) is str for key in value):
            raise CheckFailure("a dict crossing the check boundary must have str keys")
        return {key: to_plain(item) for key, item in value.items()}
    raise CheckFailure(f"got a value of type {kind.__name__}, which is not plain data")


def shorten(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """`text` cut to `limit` characters: shorten("abcdefgh", 3) -> 'abc… (8 characters)'."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def quote(value: Any, limit: int = _QUOTE_LIMIT) -> str:
    """`repr(value)`, shortened: quote([1, 2, 3]) -> '[1, 2, 3]'."""
    return shorten(repr(value), limit)


def _describe_exception(err: BaseException) -> str:
    if isinstance(err, NotImplementedError):
        return "raised NotImplementedError: replace the `raise NotImplementedError()` line with your code"
    if isinstance(err, RecursionError):
        return "raised RecursionError (maximum recursion depth exceeded): is there a call that never stops?"
    detail = str(err)
    return f"raised {type(err).__name__}" + (f": {shorten(detail)}" if detail else "")


@contextlib.contextmanager
def _quiet(printed: io.StringIO) -> Iterator[None]:
    """Catch everything a check would print: stdout, stderr, warnings and log records (a download
    logs its progress). nbgrader scores a cell that writes to stderr as 0, so nothing may leak."""
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def collect(check: Check, namespace: dict) -> Outcome:
    """Run `check.call(namespace)` and return its plain result or what went wrong. Never raises.

    This is the learner's side: whatever the learner's code does (raise, exit, print, return
    something odd) ends up as an Outcome.
    """
    printed = io.StringIO()
    try:
        with _quiet(printed):
            value = to_plain(check.call(namespace))
        return Outcome(value=value, printed=printed.getvalue())
    except CheckFailure as err:
        return Outcome(error=str(err), printed=printed.getvalue())
    except CheckSetupError as err:
        return Outcome(error=f"{SETUP_FAILED}: {err}", printed=printed.getvalue(), setup_failed=True)
    except KeyboardInterrupt:
        return Outcome(error="was interrupted", printed=printed.getvalue(), interrupted=True)
    except BaseException as err:  # the learner's code may raise anything, SystemExit included
        return Outcome(error=_describe_exception(err), printed=printed.getvalue())


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


def judge(check: Check, outcome: Outcome) -> Result:
    """Score `outcome` against `check.reference()`: the trusted side. Messages follow visibility:
    a visible check shows what was expected and what came back, a hidden one only what was called
    and whether it raised or differed."""
    called = f"Called {check.describe}"
    if outcome.setup_failed:
        passed, message = False, f"{outcome.error} (not a problem with your code)."
    elif outcome.error is not None:
        passed, message = False, f"{called}: it {outcome.error}."
    else:
        with _quiet(io.StringIO()):
            expected = to_plain(check.reference())
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


def learner_function(namespace: dict, name: str) -> Callable:
    """The learner's function `name`, or a CheckFailure saying how to provide it.

    Used inside a check's `call`: learner_function(globals(), "merge") -> the learner's merge.
    """
    if name not in namespace:
        raise CheckFailure(
            f"no function named `{name}` is defined: run the cell that defines it (keep the name `{name}`)"
        )
    function = namespace[name]
    if not callable(function):
        raise CheckFailure(f"`{name}` is a {type(function).__name__}, not a function")
    return function


def _skipped(check: Check) -> Result:
    return Result(
        name=check.name,
        task=check.task,
        points=check.points,
        score=0.0,
        passed=False,
        visibility=check.visibility,
        message="Not run: an earlier check of this run was interrupted.",
    )


def run_checks(namespace: dict, exercise: str, task: str | None = None) -> list[Result]:
    """Run every check of `exercise` (only those of `task`, if given) against `namespace`.

    Both halves run in this process. An interrupt (Ctrl-C in Jupyter, or a KeyboardInterrupt the
    code raises) scores its check 0 and skips the rest, so a learner can stop a loop that hangs.
    """
    from course_lib.grading.exercises import checks_for  # the registry imports this module

    results = []
    interrupted = False
    for check in checks_for(exercise, task):
        if interrupted:
            results.append(_skipped(check))
            continue
        outcome = collect(check, namespace)
        interrupted = outcome.interrupted
        results.append(judge(check, outcome))
    return results


def format_report(results: list[Result], title: str) -> str:
    """The report a learner reads: every visible check with its message; hidden checks by name and
    pass/fail only (their inputs and expected values appear nowhere), unless the check itself could
    not run."""
    score = sum(result.score for result in results)
    total = sum(result.points for result in results)
    lines = [f"{title}: {score:g} / {total:g} points"]
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        points = f"{result.score:g}/{result.points:g}"
        hidden = result.visibility == "hidden"
        lines.append(f"  {mark} {'[hidden] ' if hidden else ''}{result.name} ({points})")
        if not result.passed and (not hidden or result.message.startswith(SETUP_FAILED)):
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

"""A check: calls to the learner's code, compared with what a trusted reference says.

A check is data. It names the task (the learner's function or class) it grades, the calls to
make, the expected values (worked out by hand, or computed by a reference on the trusted side),
how to compare, the points and whether the learner may see its details:

    Check("merge", "merge replaces non-overlapping pairs",
          call("merge", [5, 6, 6, 7, 9], (6, 7), 99, returns=INTS), expect=[5, 6, 99, 9])
    Check("merge", "merge on a long random sequence", call("merge", LONG_IDS, (1, 1), 256, returns=INTS),
          reference=course_lib.tokenization.merge, hidden=True)

What the learner reads about a check is generated from its calls ("Called merge([5, 6, 6, 7,
9], (6, 7), 99)"), so the message cannot drift from what was called. A hidden check's inputs
are described without their values: `Input(build, "3,000 random ids")` or a tensor's shape.

Running a check has two halves that never mix, so that a sandbox can sit between them:

- the TRUSTED side (this module, the grader's process): `check.plain_calls()` builds the
  inputs (an `Input` is built here, with course_lib, and cached) and encodes them as plain
  data; `judge(check, outcome)` computes the expected values, compares, and writes the `Result`
  with a message that helps (for a hidden check, without the expected value).
- the LEARNER's side (learner_side.py, standard library only): `run_check` makes the calls and
  returns an outcome of plain data. In the batch grader that happens in a sandboxed process
  (grader.py); the outcome comes back as JSON and `Outcome.from_plain` validates it again, so
  an object whose `__eq__` lies never reaches the comparison.

The expected value goes through the same `returns` conversion as the learner's (a dict of pair
counts becomes the same sorted rows, a tensor the same plain form), so both are compared alike.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from grading.learner_side import CheckFailure, make_call, quiet, quote, returned, shorten, to_plain

Visibility = Literal["visible", "hidden"]

# How a result's message starts when the submission used what it must not (course_lib, a
# forbidden torch function).
NOT_ALLOWED = "Not allowed"
# Lists up to this long are compared by eye; longer ones get "first difference at index i".
_SHORT_LIST = 8
# Inputs whose text is longer than this are described, not shown ("<a list of 3,000 items>").
_SHOWN_LENGTH = 100


class SetupError(Exception):
    """The grader could not build an input or an expected value (no Tiny Shakespeare file, no
    tiktoken download): not the learner's fault, so grading stops with this message instead of
    scoring anyone 0 for a file the grader lacks."""


# ---------------------------------------------------------------------------------------------
# Inputs and calls
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Input:
    """An input built on the trusted side when a check first needs it (a slice of Tiny
    Shakespeare, merges trained by course_lib), described by `label` instead of its value."""

    build: Callable[[], Any]
    label: str

    @functools.cached_property
    def value(self) -> Any:
        try:
            with quiet(io.StringIO()):  # a download's progress line is not the learner's output
                return self.build()
        except Exception as err:
            raise SetupError(f"could not build the input <{self.label}>: {type(err).__name__}: {err}") from err


def built(value: Any) -> Any:
    """`value` with every Input replaced by what it builds (lists, tuples and dict values too)."""
    if isinstance(value, Input):
        return value.value
    if isinstance(value, (list, tuple)):
        return type(value)(built(item) for item in value)
    if isinstance(value, dict):
        return {key: built(item) for key, item in value.items()}
    return value


def encode(value: Any) -> Any:
    """A Python value as plain data for the learner's side (learner_side.decode reverses it):
    encode((6, 7)) -> {"__tuple__": [6, 7]}; a tensor keeps its dtype and values."""
    if isinstance(value, tuple):
        return {"__tuple__": [encode(item) for item in value]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        if any(type(key) is not str or key.startswith("__") for key in value):
            raise ValueError(f"a dict input needs str keys that do not start with '__', got {list(value)}")
        return {key: encode(item) for key, item in value.items()}
    if type(value).__name__ == "Tensor":  # torch.Tensor, without importing torch for 01_bpe
        return {"__tensor__": value.tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    return to_plain(value)


def describe(value: Any, hidden: bool) -> str:
    """How a message shows an input: its Python form when short and visible, else what it is.

    describe((6, 7), False) -> '(6, 7)'; describe(torch.zeros(2, 3), True) -> '<a (2, 3) tensor>';
    describe(Input(f, "3,000 random ids"), False) -> '<3,000 random ids>'.
    """
    if isinstance(value, Input):
        return f"<{value.label}>"
    if type(value).__name__ == "Tensor":
        shown = f"tensor({_compact(value.tolist())})"
        if hidden or len(shown) > _SHOWN_LENGTH:
            dtype = "" if value.is_floating_point() else f" {str(value.dtype).removeprefix('torch.')}"
            return f"<a {tuple(value.shape)}{dtype} tensor>"
        return shown
    shown = repr(value)
    if len(shown) <= _SHOWN_LENGTH:
        return shown
    if isinstance(value, str):
        return f"<a text of {len(value):,} characters>"
    if isinstance(value, (list, tuple)):
        return f"<a list of {len(value):,} items>"
    return f"<a {type(value).__name__}>"


def _compact(values: Any) -> str:
    """Nested lists of numbers as a reader would write them: [[0.4, -0.2], [1.0, True]]."""
    if isinstance(values, list):
        return "[" + ", ".join(_compact(item) for item in values) + "]"
    return repr(float(f"{values:.4g}")) if isinstance(values, float) else repr(values)


@dataclass(frozen=True, eq=False)
class Call:
    """One call to the learner's code: `function(*args, **kwargs)`, its result converted and
    checked as `returns` says (learner_side.RETURNS: ints, text, floats, tensor, ...).

    A call that needs more than that names a learner-side `adapter` ("exercises.linear_calls.
    forward"): it gets the learner's function or class, the arguments, and the `then` inputs,
    and `steps` says in words what it does with them, `{name}` standing for a `then` input
    ("set its weights to {weights}, then call it on x = {x}").
    """

    function: str
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    returns: Mapping[str, Any] = field(default_factory=lambda: {"kind": "plain"})
    adapter: str | None = None
    then: Mapping[str, Any] = field(default_factory=dict)
    steps: str = ""

    def plain(self) -> dict:
        """The call as plain data for learner_side.run_call, inputs built."""
        return {
            "function": self.function,
            "args": encode(built(list(self.args))),
            "kwargs": encode(built(dict(self.kwargs))),
            "adapter": self.adapter,
            "then": encode(built(dict(self.then))),
            "returns": dict(self.returns),
        }

    def describe(self, hidden: bool) -> str:
        """merge([5, 6, 6, 7, 9], (6, 7), 99), as a message shows the call."""
        shown = [describe(arg, hidden) for arg in self.args]
        shown += [f"{key}={describe(value, hidden)}" for key, value in self.kwargs.items()]
        if not shown and self.steps:  # train(model, optimizer, batches), with model = ...
            shown = list(self.then)
        text = f"{self.function}({', '.join(shown)})"
        if self.steps:
            text += ", " + self.steps.format(**{key: describe(value, hidden) for key, value in self.then.items()})
        return text


def call(function: str, *args: Any, returns: Mapping[str, Any] | str = "plain", **kwargs: Any) -> Call:
    """call("merge", [5, 6], (5, 6), 256, returns="ints") -> Call: merge([5, 6], (5, 6), 256)."""
    return Call(function, args, kwargs, {"kind": returns} if isinstance(returns, str) else returns)


def tensor_returns(floating: bool = False, hint: str = "") -> dict:
    """`returns` for a tensor (learner_side.returns_tensor): floating-point if asked, with a
    `hint` for the learner when it holds NaN or infinity."""
    return {"kind": "tensor", "floating": floating, "hint": hint}


# ---------------------------------------------------------------------------------------------
# Expected values and comparisons
# ---------------------------------------------------------------------------------------------


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
        return actual.keys() == expected.keys() and all(plain_equal(expected[key], actual[key]) for key in expected)
    return expected == actual


@dataclass(frozen=True)
class Substitute:
    """A reference that makes the same call with `substitute` in place of the learner's code
    (torch.nn.Linear for the learner's Linear): both sides are called exactly alike."""

    substitute: Any


_NOT_GIVEN = object()


@dataclass(frozen=True, eq=False)
class Check:
    """One graded question about one of the learner's functions (see the module docstring).

    `calls` is one Call or several (a check passes when every call does). `expect` is the value
    each call must give (a list, one per call, when there are several), worked out by hand;
    otherwise `reference(*args, **kwargs)` computes it on the trusted side (`**then` too for an
    adapter's call), or a Substitute makes the same call. `compare(expected, actual)` on plain
    data says if one call's answer is right; `show` writes a plain value for a visible message.
    """

    task: str
    name: str
    calls: Call | tuple[Call, ...]
    expect: Any = _NOT_GIVEN
    reference: Callable[..., Any] | Substitute | None = None
    compare: Callable[[Any, Any], bool] = plain_equal
    points: float = 1
    hidden: bool = False
    show: Callable[[Any], str] = repr

    def __post_init__(self) -> None:
        if isinstance(self.calls, Call):
            object.__setattr__(self, "calls", (self.calls,))
        if (self.expect is _NOT_GIVEN) == (self.reference is None):
            raise ValueError(f"check {self.name!r}: give exactly one of expect and reference")
        if self.points < 0:
            raise ValueError(f"check {self.name!r}: points must be >= 0, got {self.points}")

    @property
    def visibility(self) -> Visibility:
        return "hidden" if self.hidden else "visible"

    def plain_calls(self) -> list[dict]:
        """The calls as plain data, for the learner's side."""
        return [each.plain() for each in self.calls]

    def describe(self) -> str:
        return ", ".join(each.describe(self.hidden) for each in self.calls)

    def expected(self) -> list[Any]:
        """The plain value each call must give; SetupError if it cannot be computed."""
        return _expected(self)


@functools.cache
def _expected(check: Check) -> list[Any]:
    """check.expected(), computed once per process (references may train a tokenizer)."""
    if check.expect is not _NOT_GIVEN:
        values = [check.expect] if len(check.calls) == 1 else list(check.expect)
    else:
        values = [_reference_value(check.reference, each) for each in check.calls]
    try:
        return [returned(value, dict(each.returns), each.function) for value, each in zip(values, check.calls)]
    except CheckFailure as err:  # a bug in the check itself: its expected value is not what it returns
        raise SetupError(f"check {check.name!r}: its expected value is not of the kind it expects: {err}") from None


def _reference_value(reference: Callable[..., Any] | Substitute, each: Call) -> Any:
    try:
        with quiet(io.StringIO()):
            if isinstance(reference, Substitute):
                return make_call({each.function: reference.substitute}, each.plain())
            args, kwargs, then = built(each.args), built(dict(each.kwargs)), built(dict(each.then))
            return reference(*args, **kwargs, **then)
    except SetupError:
        raise
    except Exception as err:
        raise SetupError(f"could not compute the expected value of {each.describe(False)}: "
                         f"{type(err).__name__}: {err}") from err


# ---------------------------------------------------------------------------------------------
# What comes back, and the verdict
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What came back from the learner's side (learner_side.run_check): a plain value per call
    that finished, or a sentence saying what went wrong at call `failed_call`; what the code
    printed; and the forbidden torch functions it called, with the task whose code called each."""

    values: tuple = ()
    error: str | None = None
    failed_call: int | None = None
    printed: str = ""
    interrupted: bool = False
    timed_out: bool = False
    forbidden: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_plain(cls, data: Any) -> Outcome:
        """An Outcome from the dict run_check wrote, checked strictly; ValueError if it is not
        exactly that shape (the learner's code may have tampered with it)."""
        keys = {"values", "error", "failed_call", "printed", "interrupted", "timed_out", "forbidden"}
        if type(data) is not dict or set(data) != keys:
            raise ValueError("the outcome is not a dict with the expected keys")
        if not (data["error"] is None or type(data["error"]) is str) or type(data["printed"]) is not str:
            raise ValueError("the outcome's error or printed output is not text")
        if not (data["failed_call"] is None or type(data["failed_call"]) is int):
            raise ValueError("the outcome's failed call is not a number")
        if type(data["interrupted"]) is not bool or type(data["timed_out"]) is not bool:
            raise ValueError("the outcome's flags are not booleans")
        forbidden = data["forbidden"]
        if type(forbidden) is not list or not all(
            type(pair) is list and len(pair) == 2 and all(type(text) is str for text in pair) for pair in forbidden
        ):
            raise ValueError("the outcome's list of forbidden calls is not a list of [name, task]")
        if type(data["values"]) is not list:
            raise ValueError("the outcome's values are not a list")
        try:
            values = tuple(to_plain(value) for value in data["values"])
        except CheckFailure as err:
            raise ValueError(f"the outcome's value is not plain data: {err}") from None
        return cls(values, data["error"], data["failed_call"], data["printed"], data["interrupted"],
                   data["timed_out"], tuple((name, task) for name, task in forbidden))


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


def not_allowed(name: str, task: str) -> str:
    """Why every check of `task` scores 0 when its code called the forbidden `name`."""
    return (f"{NOT_ALLOWED}: {task}'s code called {name}, which {task} must not use, so every check of "
            f"{task} scores 0. Write the computation yourself.")


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
    """Score `outcome` against the check's expected values: the trusted side.

    A visible check's message shows what was called, what was expected and what came back; a
    hidden one's only what was called and whether it raised or differed. A call to a forbidden
    torch function by this task's code scores 0 whatever the value. SetupError if the expected
    values cannot be computed (the grader's problem: it stops rather than score the learner 0).
    """
    for name, task in outcome.forbidden:
        if task == check.task:
            return failed(check, not_allowed(name, task))
    expected = check.expected()
    failing, message = None, ""
    if outcome.error is not None:
        failing = outcome.failed_call if outcome.failed_call in range(len(check.calls)) else 0
        message = f"{outcome.error.rstrip('.')}."
    else:
        for index, want in enumerate(expected):
            got = outcome.values[index] if index < len(outcome.values) else None
            if index >= len(outcome.values) or not check.compare(want, got):
                failing = index
                if check.hidden:
                    message = "the result differs from the reference."
                else:
                    message = (f"\n  expected {_show(check, want)}\n  got      {_show(check, got)}"
                               + _first_difference(want, got))
                break
    passed = failing is None
    if passed:
        text = f"Called {check.describe()}: correct."
    else:
        text = f"Called {check.calls[failing].describe(check.hidden)}:" + ("" if message.startswith("\n") else " ")
        text += message
        if outcome.printed:
            text += f"\n  your code printed: {quote(outcome.printed)}"
    return Result(check.name, check.task, check.points, float(check.points) if passed else 0.0, passed,
                  check.visibility, text)

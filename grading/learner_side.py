"""The learner's side of grading: everything that runs in the same process as the learner's code.

Standard library only (torch is imported lazily, when a check's inputs or results are tensors):
the batch grader copies this file into its sandbox, where neither `course_lib` nor the grader
can be imported, and runs `main()` there. In a notebook's check cell the same functions run in
the learner's own kernel. Either way, what leaves this side is plain data, never a learner's
object:

    >>> namespace = {}
    >>> run_cells([("answer cell 'merge'", "def merge(ids, pair, new_id):\\n    return ids[:1]\\n")], namespace)
    []
    >>> call = {"function": "merge", "args": [[5, 6], {"__tuple__": [1, 2]}, 9], "kwargs": {},
    ...         "adapter": None, "then": {}, "returns": {"kind": "ints"}}
    >>> run_check(namespace, "merge", [call])["values"]
    [[5]]

A call arrives as plain data (checks.Call writes it on the trusted side): the learner's function
by name, its arguments, and how to check what comes back (`returns`: a list of ints, a tensor,
...). `run_call` decodes the arguments, calls the learner's code, and turns the answer into
plain data, raising CheckFailure with a helpful message when it has the wrong type; the few
checks that need more than one call (load weights into a module, run a training loop) name an
adapter in exercises/*_calls.py. `run_check` makes a check's calls and reports an outcome as a
dict of plain data: the values, the error, what the code printed, whether it was interrupted,
ran out of time, or called a forbidden torch function.

Nothing here is trusted by the grader: the learner's code can monkeypatch this module while it
runs. The grader's process therefore re-validates every value (`checks.Outcome.from_plain`) and
compares it with a reference that never enters this process.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import io
import json
import logging
import math
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

# How much of a value or of the learner's printed output a message quotes.
QUOTE_LIMIT = 300
# The first bytes of every result line the sandboxed child writes; the run's nonce follows.
RESULT_MARKER = "@@course-grading-result "
# How much of what a call printed is kept (messages quote less; this bounds the result's size).
_PRINTED_LIMIT = 2_000
# While a timed-out call keeps running (its code caught the timeout), it is interrupted again
# this often, in seconds.
_TIMEOUT_REPEAT = 0.25


class CheckFailure(Exception):
    """Raised by an adapter when the learner's code misbehaves in a way it can explain.

    The message is shown to the learner as it is: "merge should return a list of ints, got tuple".
    """


class CheckTimeout(BaseException):
    """Raised inside the learner's code when a call runs past its time limit. A BaseException, so
    that the learner's `except Exception:` does not swallow it."""


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` cut to `limit` characters: shorten("abcdefgh", 3) -> 'abc… (8 characters)'."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)`, shortened: quote([1, 2, 3]) -> '[1, 2, 3]'. Never raises (a learner's
    object may have a broken __repr__)."""
    try:
        text = repr(value)
    except BaseException:  # noqa: BLE001 - any object of the learner's making may end up here
        text = f"<a {type(value).__name__} that cannot be shown>"
    return shorten(text, limit)


def to_plain(value: Any) -> Any:
    """Copy `value` into exact plain types (tuples become lists), or raise CheckFailure.

    to_plain((1, [2, 3])) -> [1, [2, 3]]; to_plain({"a": None}) -> {"a": None};
    to_plain({1: 2}) and to_plain(numpy.int64(3)) raise: only str keys and built-in types cross.
    Subclasses do not count as plain (a list whose __eq__ always says True is refused).
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


def learner_function(namespace: dict, name: str) -> Callable:
    """The learner's function (or class) `name`, or a CheckFailure saying how to provide it.

    learner_function({"merge": merge}, "merge") -> merge; learner_function({}, "merge") raises
    CheckFailure("no function named `merge` is defined: ...").
    """
    if name not in namespace:
        raise CheckFailure(
            f"no function named `{name}` is defined: run the cell that defines it (keep the name `{name}`)"
        )
    function = namespace[name]
    if not callable(function):
        raise CheckFailure(f"`{name}` is a {type(function).__name__}, not a function")
    return function


def describe_exception(err: BaseException, who: str = "it") -> str:
    """What the learner's code raised, as a sentence about `who` raised it:
    describe_exception(ValueError("bad"), "merge") -> 'merge raised ValueError: bad'."""
    if isinstance(err, NotImplementedError):
        return f"{who} raised NotImplementedError: replace the `raise NotImplementedError()` line with your code"
    if isinstance(err, RecursionError):
        return f"{who} raised RecursionError (maximum recursion depth exceeded): is there a call that never stops?"
    try:
        detail = str(err)
    except BaseException:  # noqa: BLE001 - a learner's exception may have a broken __str__
        detail = ""
    return f"{who} raised {type(err).__name__}" + (f": {shorten(detail)}" if detail else "")


# ---------------------------------------------------------------------------------------------
# A call, as plain data: the arguments going in, and what must come back
# ---------------------------------------------------------------------------------------------


def decode(value: Any) -> Any:
    """Plain data (as JSON carries it) -> the Python values the learner's functions take.

    Tuples and tensors travel as markers, since JSON has neither: decode({"__tuple__": [6, 7]})
    -> (6, 7); decode({"__tensor__": [[1.0]], "dtype": "float32"}) -> tensor([[1.]]). Lists and
    dicts are fresh copies: the learner's code may change what it is given.
    """
    if type(value) is list:
        return [decode(item) for item in value]
    if type(value) is not dict:
        return value
    if "__tuple__" in value:
        return tuple(decode(item) for item in value["__tuple__"])
    if "__tensor__" in value:
        import torch  # only exercises with tensor inputs need torch here

        return torch.tensor(value["__tensor__"], dtype=getattr(torch, value["dtype"]))
    return {key: decode(item) for key, item in value.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def returns_plain(value: Any, function: str) -> Any:
    """Any plain data (numbers, str, lists, dicts with str keys), copied."""
    try:
        return to_plain(value)
    except CheckFailure as err:
        raise CheckFailure(f"{function} should return plain data (numbers, str, lists), but it {err}") from None


def returns_ints(value: Any, function: str) -> list[int]:
    """A list of ints: returns_ints((1, 2), "merge") raises "merge should return a list of ints, got tuple"."""
    if not isinstance(value, list):
        raise CheckFailure(f"{function} should return a list of ints, got {type(value).__name__} {quote(value, 80)}")
    for item in value:
        if not _is_int(item):
            raise CheckFailure(f"{function} should return a list of ints, but it contains {quote(item, 80)}")
    return [int(item) for item in value]


def returns_text(value: Any, function: str) -> str:
    """A str."""
    if not isinstance(value, str):
        raise CheckFailure(f"{function} should return a str, got {type(value).__name__} {quote(value, 80)}")
    return str(value)


def returns_floats(value: Any, function: str) -> list[float]:
    """A list of Python floats, one number per item (as `loss.item()` gives)."""
    if not isinstance(value, (list, tuple)) or not all(type(item) is float for item in value):
        shown = value if not isinstance(value, (list, tuple)) else next(i for i in value if type(i) is not float)
        raise CheckFailure(f"{function} should return a list of Python floats (use `loss.item()`), "
                           f"got {quote(shown, 80)}")
    return [float(item) for item in value]


def returns_tensor(value: Any, function: str, floating: bool = False, hint: str = "", what: str = "") -> dict:
    """A tensor as plain data {"shape", "dtype", "values"}; `what` names it in messages (by
    default "the result of `function`"):

        returns_tensor(torch.ones(2), "f") -> {"shape": [2], "dtype": "float32", "values": [1.0, 1.0]}
        returns_tensor([0.0], "f") -> CheckFailure("the result of f should be a torch.Tensor, got list [0.0]")

    `floating=True` also requires a floating-point dtype. NaN and infinity cannot cross as plain
    data, so they fail here, with `hint` saying the likely cause.
    """
    what = what or f"the result of {function}"
    # A tensor can only exist if the learner's code imported torch; this module never imports it
    # itself, so that 01_bpe's sandbox runs on the standard library alone.
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        raise CheckFailure(f"{what} should be a torch.Tensor, got {type(value).__name__} {quote(value, 80)}")
    if floating and not value.is_floating_point():
        raise CheckFailure(f"{what} should be a floating-point tensor, got dtype {value.dtype}")
    value = value.detach().cpu()
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise CheckFailure(f"{what} holds NaN or infinity" + (f": {hint}" if hint else ""))
    return {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."), "values": value.tolist()}


def returns_tensors(value: Any, function: str, names: list[str], floating: bool = False) -> list[dict]:
    """A tuple of tensors, one per name: ("grad_x", "grad_weight") for linear_backward."""
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        raise CheckFailure(f"{function} should return {len(names)} tensors ({', '.join(names)}), "
                           f"got {type(value).__name__} {quote(value, 80)}")
    return [returns_tensor(item, function, floating, what=name) for item, name in zip(value, names)]


# What a call's `returns` may name: each converts the learner's value to plain data or explains.
RETURNS = {
    "plain": returns_plain,
    "ints": returns_ints,
    "text": returns_text,
    "floats": returns_floats,
    "tensor": returns_tensor,
    "tensors": returns_tensors,
}


def _learner_side_function(dotted: str) -> Callable[..., Any]:
    """A function of a learner-side module of this package, by "module.function"
    ("exercises.bpe_calls.pair_counts"); modules are copied into the sandbox with this file."""
    module, name = dotted.rsplit(".", 1)
    package = __name__.rsplit(".", 1)[0]
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def returned(value: Any, returns: dict, function: str) -> Any:
    """`value` as plain data, converted by `returns` ({"kind": "ints"}, {"kind": "tensor",
    "floating": True}, or a learner-side function {"kind": "exercises.bpe_calls.pair_counts"})."""
    options = {key: item for key, item in returns.items() if key != "kind"}
    convert = RETURNS.get(returns["kind"]) or _learner_side_function(returns["kind"])
    return to_plain(convert(value, function, **options))


def make_call(namespace: dict, call: dict) -> Any:
    """Make one call of a check with the code in `namespace`; return what it returned, as it is.

    `call` is plain data: {"function": the learner's name, "args": [...], "kwargs": {...},
    "adapter": None or a learner-side "module.function", "then": {...}, "returns": {...}}. Without
    an adapter this is `function(*args, **kwargs)`; an adapter gets the learner's function (or
    class), the arguments and `then` (weights to load into a module, a loop to run) and does what
    a plain call cannot.
    """
    function = learner_function(namespace, call["function"])
    args, kwargs = decode(call["args"]), decode(call["kwargs"])
    if call["adapter"] is None:
        return function(*args, **kwargs)
    return _learner_side_function(call["adapter"])(function, args, kwargs, **decode(call["then"]))


def run_call(namespace: dict, call: dict) -> Any:
    """make_call, its result converted to plain data as the call's `returns` says:

        >>> run_call({"merge": lambda ids, pair, new_id: [new_id]}, {"function": "merge",
        ...     "args": [[1, 2], {"__tuple__": [1, 2]}, 256], "kwargs": {}, "adapter": None,
        ...     "then": {}, "returns": {"kind": "ints"}})
        [256]
    """
    return returned(make_call(namespace, call), call["returns"], call["function"])


class CappedText(io.TextIOBase):
    """A text stream that keeps the first `limit` characters written to it and counts the rest,
    so that code printing gigabytes costs neither memory nor time here.

        stream = CappedText(5); print("hello world", file=stream); stream.getvalue()
          -> 'hello… (12 characters)'
    """

    def __init__(self, limit: int = _PRINTED_LIMIT) -> None:
        super().__init__()
        self.limit = limit
        self.kept: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.limit - min(self.size, self.limit)
        if room:
            self.kept.append(text[:room])
        self.size += len(text)
        return len(text)

    def getvalue(self) -> str:
        kept = "".join(self.kept)
        return kept if self.size <= self.limit else f"{kept}… ({self.size} characters)"


@contextlib.contextmanager
def quiet(printed: io.TextIOBase) -> Iterator[None]:
    """Catch everything the learner's code prints: stdout, stderr, warnings and log records.

    In a notebook, nbgrader scores a cell that writes to stderr as 0, so nothing may leak; in the
    sandbox, stdout carries the results, so the learner's prints must not mix with them.
    """
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise CheckTimeout inside the block once it has run `seconds` (None: no limit).

    Uses SIGALRM, so it works in the main thread only (the sandboxed child's). The alarm repeats
    until the block ends, in case the learner's code catches the first one.
    """
    if seconds is None:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds, _TIMEOUT_REPEAT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Tripwires:
    """Record calls to forbidden torch functions, and the task whose code made each call.

    `forbidden` maps every task to the dotted names it must not call ({"Linear":
    ["torch.nn.functional.linear", "torch.nn.Linear"], "linear_backward": [...]}). Each name is replaced in its module by a
    wrapper that notes the call and then does the real work (the score, not the result, is what
    the call costs); for a class, its __init__ and forward are wrapped. Installed before the
    learner's cells run, so that `from torch.nn.functional import linear` in a cell already gets
    the wrapper; the grader's static scan catches the plain uses as well.

    A call is charged to the task whose code made it: the innermost function of the learner's
    cells on the call stack named like a task ("scaled_dot_product_attention", or
    "MultiHeadSelfAttention.forward" for a method), else the task being checked. So a correct MultiHeadSelfAttention that calls the
    learner's own attention costs nothing when that attention breaks the rule: the attention does.

        tripwires = Tripwires({"Linear": ["torch.nn.functional.linear"]}).install()
        tripwires.watch("Linear")
        ...  # the learner's Linear.forward calls F.linear
        tripwires.called -> [["torch.nn.functional.linear", "Linear"]]
    """

    def __init__(self, forbidden: dict[str, list[str]]) -> None:
        self.forbidden = {task: set(names) for task, names in forbidden.items()}
        self.called: list[list[str]] = []
        self._task: str | None = None
        self._originals: list[tuple[Any, str, Any]] = []

    def watch(self, task: str) -> None:
        """Start recording, with `task` the one being checked; forget earlier calls."""
        self._task = task
        self.called = []

    def _charged_task(self) -> str | None:
        frame = sys._getframe(2)  # the caller of the wrapper
        while frame is not None:
            code = frame.f_code
            owner = getattr(code, "co_qualname", code.co_name).split(".")[0]
            if owner in self.forbidden and _is_learner_code(code.co_filename):
                return owner
            frame = frame.f_back
        return self._task

    def _wrap(self, name: str, original: Callable) -> Callable:
        def tripwire(*args: Any, **kwargs: Any) -> Any:
            if self._task is not None:
                task = self._charged_task()
                if name in self.forbidden.get(task, ()) and [name, task] not in self.called:
                    self.called.append([name, task])
            return original(*args, **kwargs)

        tripwire.__name__ = getattr(original, "__name__", name.rsplit(".", 1)[-1])
        tripwire.__doc__ = getattr(original, "__doc__", None)
        return tripwire

    def install(self) -> Tripwires:
        """Put the wrappers in place; a name that does not exist in this torch is skipped."""
        for name in sorted(set().union(*self.forbidden.values())):
            found = _find_attribute(name)
            if found is None:
                continue
            owner, attribute, original = found
            if isinstance(original, type):
                for method in ("__init__", "forward"):
                    if method in vars(original):
                        self._replace(original, method, self._wrap(name, vars(original)[method]))
            else:
                self._replace(owner, attribute, self._wrap(name, original))
        return self

    def _replace(self, owner: Any, attribute: str, value: Any) -> None:
        self._originals.append((owner, attribute, getattr(owner, attribute)))
        setattr(owner, attribute, value)

    def remove(self) -> None:
        """Put the original functions back (in-notebook checks leave torch as they found it)."""
        for owner, attribute, original in reversed(self._originals):
            setattr(owner, attribute, original)
        self._originals = []


def _is_learner_code(filename: str) -> bool:
    """True for code a notebook cell defined: compiled by run_cells ("<answer cell 'merge' (cell
    11)>"), or by Jupyter ("/tmp/ipykernel_41/2718.py"); torch's own `Linear.forward` is not."""
    return filename.startswith("<") or "/ipykernel_" in filename


def _find_attribute(dotted: str) -> tuple[Any, str, Any] | None:
    """("torch.nn.functional.linear") -> (the module torch.nn.functional, "linear", the function)."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:-1]:
                owner = getattr(owner, part)
            return owner, parts[-1], getattr(owner, parts[-1])
        except AttributeError:
            return None
    return None


def run_check(
    namespace: dict, task: str, calls: list[dict], *, timeout: float | None = None, tripwires: Tripwires | None = None
) -> dict:
    """Make a check's calls (see run_call) in order and report what happened as plain data;
    never raises.

    Returns {"values", "error", "failed_call", "printed", "interrupted", "timed_out",
    "forbidden"}: one plain value per call that finished; for the call that failed (its index in
    failed_call), a sentence saying what went wrong; what the code printed; whether a
    KeyboardInterrupt or the time limit (per call) stopped it; and [name, task] for each forbidden
    torch function the code called (see Tripwires).
    """
    printed = CappedText()
    outcome: dict = {"values": [], "error": None, "failed_call": None, "interrupted": False, "timed_out": False}
    if tripwires is not None:
        tripwires.watch(task)
    with quiet(printed):
        for index, call in enumerate(calls):
            try:
                with time_limit(timeout):
                    outcome["values"].append(run_call(namespace, call))
                continue
            except CheckFailure as err:
                outcome["error"] = str(err)
            except CheckTimeout:
                outcome["error"] = f"{call['function']} did not finish within {timeout:g} s (an infinite loop, or far too slow?)"
                outcome["timed_out"] = True
            except KeyboardInterrupt:
                outcome["error"] = f"{call['function']} was interrupted"
                outcome["interrupted"] = True
            except BaseException as err:  # noqa: BLE001 - the learner's code may raise anything, SystemExit included
                outcome["error"] = describe_exception(err, call["function"])
            outcome["failed_call"] = index
            break
    outcome["printed"] = printed.getvalue()
    outcome["forbidden"] = list(tripwires.called) if tripwires is not None else []
    return outcome


def run_cells(cells: list[tuple[str, str]], namespace: dict, timeout: float | None = None) -> list[str]:
    """Run each (label, source) cell in `namespace`, each on its own, as Jupyter does; return the
    problems, one line per cell that failed. What the cells print is dropped.

    run_cells([("answer cell 'x' (cell 2)", "x = 1 / 0\\n")], {})
      -> ["answer cell 'x' (cell 2) raised ZeroDivisionError: division by zero (line 1)"]
    """
    problems = []
    for label, source in cells:
        filename = f"<{label}>"
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as err:
            problems.append(f"{label} has a syntax error: {err.msg} (line {err.lineno})")
            continue
        except BaseException as err:  # noqa: BLE001 - e.g. ValueError for a null byte in the source
            problems.append(f"{label} cannot be compiled: {describe_exception(err, 'it')}")
            continue
        try:
            with quiet(CappedText()), time_limit(timeout):
                exec(code, namespace)  # noqa: S102 - running the learner's code is the point
        except CheckTimeout:
            problems.append(f"{label} did not finish within {timeout:g} s and was stopped")
        except BaseException as err:  # noqa: BLE001 - the learner's top-level code may raise or exit
            # The line of the cell that was running, not a line inside a function it called.
            lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__) if frame.filename == filename]
            where = f" (line {lines[-1]})" if lines else ""
            problems.append(f"{describe_exception(err, label)}{where}")
    return problems


# ---------------------------------------------------------------------------------------------
# The sandboxed child's driver
# ---------------------------------------------------------------------------------------------

# The course's own packages: the reference implementation and this grader. Learner code graded
# here may import neither (its answers would then be the course's, not the learner's).
COURSE_PACKAGES = ("course_lib", "grading")
# The name the grader gives its learner-side modules inside the sandbox (the driver imports them
# from there; a learner's code importing them would get the checks' adapters: the scan refuses it).
CHILD_PACKAGE = "grading_child"
NOT_AVAILABLE = "{} is not available while grading: write your own implementation"


def is_course_module(name: str) -> bool:
    """is_course_module("course_lib.attention") -> True; is_course_module("grading_child") -> False."""
    return any(name == package or name.startswith(package + ".") for package in COURSE_PACKAGES)


class _CourseBlocker(importlib.abc.MetaPathFinder):
    """Makes `import course_lib...` and `import grading...` fail with a clear message, wherever
    they are installed (the sandbox hides their files; without bubblewrap, an editable install
    could still find them)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if is_course_module(name):
            raise ModuleNotFoundError(NOT_AVAILABLE.format(name.split(".")[0]), name=name)
        return None  # not the course's: the other finders look for it


def block_course_packages() -> None:
    """Make the course's packages unimportable here (first on sys.meta_path, out of sys.modules)."""
    sys.meta_path.insert(0, _CourseBlocker())
    for name in [name for name in sys.modules if is_course_module(name)]:
        del sys.modules[name]


def main() -> None:
    """The sandboxed child: read the job on stdin, write one result line per step on stdout.

    The job (JSON): {"nonce": str, "cells": [[label, source]], "checks": [[index, task, calls]],
    "timeout": seconds, "forbidden": {task: [torch names]}}. Each result line is RESULT_MARKER +
    nonce + " " + JSON: {"cells": problems} first, then {"check": index, "outcome": ...} per
    check (see run_check). Lines go out one at a time, so a crash loses only the checks that had
    not finished.
    """
    block_course_packages()
    job = json.loads(sys.stdin.read())
    # The results leave through a copy of stdout, and the driver's own errors through a copy of
    # stderr; stdout and stderr themselves go to /dev/null, so that what the learner's code
    # writes there (even from C, or with os.write) neither mixes with the results nor floods them.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    sys.stderr = os.fdopen(os.dup(2), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    prefix = f"{RESULT_MARKER}{job['nonce']} "
    dumps = json.dumps  # bound now: the learner's code may replace json.dumps later

    def send(record: dict) -> None:
        try:
            line = dumps(record)
        except BaseException as err:  # noqa: BLE001 - only if the learner's code broke this module
            line = dumps({"check": record.get("check"), "outcome": {"error": describe_exception(err)}})
        channel.write(prefix + line + "\n")
        channel.flush()

    tripwires = Tripwires(job["forbidden"]).install()
    namespace: dict = {"__name__": "__submission__"}
    send({"cells": run_cells([tuple(cell) for cell in job["cells"]], namespace, job["timeout"])})
    for index, task, calls in job["checks"]:
        outcome = run_check(namespace, task, calls, timeout=job["timeout"], tripwires=tripwires)
        send({"check": index, "outcome": outcome})
    # Skip the learner's atexit handlers and threads: their work cannot change the results.
    os._exit(0)

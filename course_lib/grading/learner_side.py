"""The learner's side of grading: everything that runs in the same process as the learner's code.

Standard library only (torch is imported lazily, and only for an exercise that forbids torch
functions): the batch grader copies this file into its sandbox, where `course_lib` cannot be
imported, and runs `main()` there. In a notebook's check cell the same functions run in the
learner's own kernel. Either way, what leaves this side is plain data, never a learner's object:

    >>> namespace = {}
    >>> run_cells([("answer cell 'merge'", "def merge(ids, pair, new_id):\\n    return ids[:1]\\n")], namespace)
    []
    >>> def call_first(namespace, ids):       # an adapter: call the learner, return plain data
    ...     return learner_function(namespace, "merge")(ids, (1, 2), 9)
    >>> call_adapter(call_first, namespace, {"ids": [5, 6]})["value"]
    [5]

An adapter (`call_first` above; the real ones are in `exercises/*_calls.py`) calls the learner's
function on the check's inputs and turns the answer into plain data, raising CheckFailure with a
helpful message when the answer has the wrong type. `call_adapter` runs it and reports an
outcome as a dict of plain data: value, error, what the code printed, whether it was
interrupted, ran out of time, or called a forbidden torch function.

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
from collections.abc import Callable, Collection, Iterator
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


def tensor_data(value: Any, what: str, *, floating: bool = False, if_not_finite: str = "") -> dict:
    """A tensor the learner's code returned, as plain data {"shape", "dtype", "values"}, or a
    CheckFailure that names `what` it should have been:

        tensor_data(torch.ones(2), "the output") -> {"shape": [2], "dtype": "float32", "values": [1.0, 1.0]}
        tensor_data([0.0], "grad_x") -> CheckFailure("grad_x should be a torch.Tensor, got list [0.0]")

    `floating=True` also requires a floating-point dtype. NaN and infinity cannot cross as plain
    data, so they fail here, with `if_not_finite` saying the likely cause to the learner.
    """
    # A tensor can only exist if the learner's code imported torch; this module never imports it
    # itself, so that 01_bpe's sandbox runs on the standard library alone.
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        raise CheckFailure(f"{what} should be a torch.Tensor, got {type(value).__name__} {quote(value, 80)}")
    if floating and not value.is_floating_point():
        raise CheckFailure(f"{what} should be a floating-point tensor, got dtype {value.dtype}")
    value = value.detach().cpu()
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise CheckFailure(f"{what} holds NaN or infinity" + (f": {if_not_finite}" if if_not_finite else ""))
    return {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."), "values": value.tolist()}


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
    """The learner's function `name`, or a CheckFailure saying how to provide it.

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


def call_function(namespace: dict, function: str, args: list) -> Any:
    """The generic adapter: the learner's `function(*args)` as plain data.

    For exercises whose functions take and return plain values (lists of floats, str, ...):
    call_function(ns, "scale", [[1.0, 2.0], 3.0]) -> ns["scale"]([1.0, 2.0], 3.0), checked plain.
    """
    value = learner_function(namespace, function)(*args)
    try:
        return to_plain(value)
    except CheckFailure as err:
        raise CheckFailure(f"{function} should return plain data (numbers, str, lists), but {err}") from None


def describe_exception(err: BaseException) -> str:
    """What the learner's code raised, as the end of a sentence starting with "it"."""
    if isinstance(err, NotImplementedError):
        return "raised NotImplementedError: replace the `raise NotImplementedError()` line with your code"
    if isinstance(err, RecursionError):
        return "raised RecursionError (maximum recursion depth exceeded): is there a call that never stops?"
    try:
        detail = str(err)
    except BaseException:  # noqa: BLE001 - a learner's exception may have a broken __str__
        detail = ""
    return f"raised {type(err).__name__}" + (f": {shorten(detail)}" if detail else "")


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
    """Record calls to forbidden torch functions while a task's check runs.

    Each name ("torch.nn.functional.linear", "torch.nn.Linear") is replaced in its module by a
    wrapper that notes the call and then does the real work (the score, not the result, is what
    the call costs). For a class, its __init__ and forward are wrapped. Installed in the sandbox
    before the learner's cells run, so that `from torch.nn.functional import linear` in a cell
    already gets the wrapper; the grader's static scan catches the plain uses as well.

        tripwires = Tripwires(["torch.nn.functional.linear"]).install()
        tripwires.watch({"torch.nn.functional.linear"})
        ...  # the learner calls F.linear
        tripwires.called -> ["torch.nn.functional.linear"]
    """

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.called: list[str] = []
        self._watching: set[str] = set()
        self._originals: list[tuple[Any, str, Any]] = []

    def watch(self, names: set[str]) -> None:
        """Start recording calls to `names` (a subset of the installed ones); forget earlier calls."""
        self._watching = set(names)
        self.called = []

    def _wrap(self, name: str, original: Callable) -> Callable:
        def tripwire(*args: Any, **kwargs: Any) -> Any:
            if name in self._watching and name not in self.called:
                self.called.append(name)
            return original(*args, **kwargs)

        tripwire.__name__ = getattr(original, "__name__", name.rsplit(".", 1)[-1])
        tripwire.__doc__ = getattr(original, "__doc__", None)
        return tripwire

    def install(self) -> Tripwires:
        """Put the wrappers in place; a name that does not exist in this torch is skipped."""
        for name in self.names:
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


def call_adapter(
    adapter: Callable[..., Any],
    namespace: dict,
    arguments: dict,
    *,
    timeout: float | None = None,
    tripwires: Tripwires | None = None,
    forbidden: Collection[str] = (),
) -> dict:
    """Run `adapter(namespace, **arguments)` and report what happened as plain data. Never raises.

    Returns {"value", "error", "printed", "interrupted", "timed_out", "forbidden"}: the plain
    value (or None), an error ending a sentence that starts with "it" (or None), what the code
    printed, whether a KeyboardInterrupt or the time limit stopped it, and which of the
    `forbidden` torch functions it called (recorded by `tripwires`).
    """
    printed = CappedText()
    outcome: dict = {"value": None, "error": None, "printed": "", "interrupted": False, "timed_out": False}
    if tripwires is not None:
        tripwires.watch(set(forbidden))
    try:
        with quiet(printed), time_limit(timeout):
            outcome["value"] = to_plain(adapter(namespace, **arguments))
    except CheckFailure as err:
        outcome["error"] = str(err)
    except CheckTimeout:
        outcome["error"] = f"did not finish within {timeout:g} s (an infinite loop, or far too slow?)"
        outcome["timed_out"] = True
    except KeyboardInterrupt:
        outcome["error"] = "was interrupted"
        outcome["interrupted"] = True
    except BaseException as err:  # noqa: BLE001 - the learner's code may raise anything, SystemExit included
        outcome["error"] = describe_exception(err)
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
            problems.append(f"{label} cannot be compiled: {describe_exception(err)}")
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
            problems.append(f"{label} {describe_exception(err)}{where}")
    return problems


# ---------------------------------------------------------------------------------------------
# The sandboxed child's driver
# ---------------------------------------------------------------------------------------------

NO_COURSE_LIB = "course_lib is not available while grading: write your own implementation"


class _CourseLibBlocker(importlib.abc.MetaPathFinder):
    """Makes `import course_lib...` fail with a clear message, wherever course_lib is installed
    (the sandbox hides its files; without bubblewrap, an editable install could still find it)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "course_lib" or name.startswith("course_lib."):
            raise ModuleNotFoundError(NO_COURSE_LIB, name=name)
        return None  # not course_lib: the other finders look for it


def block_course_lib() -> None:
    """Make course_lib unimportable in this process (first on sys.meta_path, out of sys.modules)."""
    sys.meta_path.insert(0, _CourseLibBlocker())
    for name in [name for name in sys.modules if name == "course_lib" or name.startswith("course_lib.")]:
        del sys.modules[name]


def _import_adapter(module: str, name: str) -> Callable[..., Any]:
    """An adapter by module and name; modules are relative to this package ("exercises.bpe_calls")."""
    package = __name__.rsplit(".", 1)[0]
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def main() -> None:
    """The sandboxed child: read the job on stdin, write one result line per step on stdout.

    The job (JSON): {"nonce": str, "cells": [[label, source]], "calls": [[index, module, adapter,
    arguments, forbidden]], "timeout": seconds, "tripwires": [torch names]}. Each result line is
    RESULT_MARKER + nonce + " " + JSON: {"cells": problems} first, then {"check": index,
    "outcome": ...} per call. Lines go out one at a time, so a crash loses only the checks that
    had not finished.
    """
    block_course_lib()
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

    adapters = [_import_adapter(module, name) for _, module, name, _, _ in job["calls"]]
    tripwires = Tripwires(job["tripwires"]).install() if job["tripwires"] else None
    namespace: dict = {"__name__": "__submission__"}
    send({"cells": run_cells([tuple(cell) for cell in job["cells"]], namespace, job["timeout"])})
    for adapter, (index, _, _, arguments, forbidden) in zip(adapters, job["calls"]):
        outcome = call_adapter(
            adapter, namespace, arguments, timeout=job["timeout"], tripwires=tripwires, forbidden=forbidden
        )
        send({"check": index, "outcome": outcome})
    # Skip the learner's atexit handlers and threads: their work cannot change the results.
    os._exit(0)

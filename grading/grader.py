"""Grade one submitted notebook, with the learner's code in a sandboxed process.

    >>> report = grade_submission("01_bpe", "solutions/01_bpe/bpe.ipynb")
    >>> report.score, report.max_score, report.problems
    (22.0, 22.0, [])
    >>> report.isolation               # or "rlimits only: bubblewrap unavailable (...)"
    'bubblewrap (as uid 231547)'

The steps, and which process does each:

1. (grader) read the notebook, only reading it; take its setup and answer cells (notebook.py);
   scan their text for course_lib imports, the course's files and forbidden torch functions
   (static_scan.py).
2. (grader) build every check's calls as plain data, and its expected values (cached: Tiny
   Shakespeare, tiktoken, course_lib).
3. (sandbox) ONE child process for the whole submission runs learner_side.main(): it runs the
   cells, then every check's calls under a time limit, and writes one JSON line per check on
   its stdout, tagged with a random nonce. Neither course_lib nor the grader is importable
   there, and with bubblewrap the repository (solutions, tests) and other submissions are not
   even visible.
4. (grader) read those lines as they come, as plain data, in the order it asked for them
   (`_Records`): each line starts the clock of the next check, and a child whose next line does
   not come in time is stopped by the grader (the learner's code can switch off a timer inside
   its own process, not this one). That check scores 0, the task's later checks are not run,
   and a fresh child runs the other tasks' remaining checks. A line the grader did not ask for
   at that point (a second result for a check, one for a check not running) is tampering:
   the tasks it concerns score 0. Then compare each result with its reference, and score. A
   check whose line never came (the child crashed, ran out of memory or of the submission's
   whole time, or broke its own output) scores 0 with a message that says what happened.

Nothing a submission does raises here; only misuse (an unknown exercise) and a grader that
cannot compute its expected values (checks.SetupError) do.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grading import learner_side, seeds
from grading.checks import Check, Outcome, Result, failed, judge, not_allowed
from grading.notebook import cells_to_run, graded_cells, read_notebook
from grading.learner_side import shorten
from grading.registry import EXERCISES, checks_for, forbidden_for, released_cells, tasks
from grading.sandbox import Limits, SandboxResult, run_sandboxed
from grading.static_scan import scan

# Seconds the child may spend starting, on top of `timeout` per cell and per call (starting
# Python takes 0.1 s; importing torch, for the exercises that use it, about 2 s).
STARTUP_SECONDS = 10.0
# Seconds a check may take beyond `timeout` per call before the grader stops the child: the
# child's own timer interrupts a slow call at `timeout`; this is for code that switched it off,
# and generous, so that a loaded machine never stops an honest check.
GRACE_SECONDS = 10.0
# The most a submission may take in all, however many checks and however long `timeout`.
MAX_SUBMISSION_SECONDS = 600.0
# The package name the learner-side modules get inside the sandbox (course_lib is not there).
_CHILD_PACKAGE = learner_side.CHILD_PACKAGE
_GRADING_PACKAGE = "grading"
# The child's script: find the copied modules in its working directory and run the driver.
# The sandbox starts Python with -I, which ignores PYTHONHASHSEED, so str hashes (and with them
# the order of a set of str) would change from run to run, and so could a submission's result.
# The script therefore starts Python once more, as -I would (-s: no user site, -P: no script
# folder on sys.path, an environment of our making) but with a fixed hash seed.
_BOOTSTRAP = f"""import os, sys
if os.environ.get("PYTHONHASHSEED") != "0":
    flags = ["-s", "-B"] + (["-P"] if sys.version_info >= (3, 11) else [])  # -P is new in 3.11
    os.execve(sys.executable, [sys.executable, *flags, __file__], {{**os.environ, "PYTHONHASHSEED": "0"}})
sys.path.insert(0, os.getcwd())
from {_CHILD_PACKAGE}.learner_side import main
main()
"""


@dataclass
class SubmissionReport:
    """How one submission did: a Result per check, and what went wrong around them.

    problems are notebook-level messages for the learner (malformed JSON, a cell that raised, the
    grading process crashed); isolation says how the learner's code was confined; status says
    whether the score is an honest one ("graded") or why not ("unreadable", "crashed", "wrong
    assignment", "grader error", "killed": the batch's worker grading it died); hidden_inputs
    where the hidden checks' random inputs came from (see seeds.py).
    """

    submission: str
    student: str | None
    exercise: str
    results: list[Result]
    execution_time: float
    isolation: str
    problems: list[str] = field(default_factory=list)
    status: str = "graded"
    hidden_inputs: str = field(default_factory=seeds.hidden_inputs)

    @property
    def score(self) -> float:
        return float(sum(result.score for result in self.results))

    @property
    def max_score(self) -> float:
        return float(sum(result.points for result in self.results))


def _learner_side_modules(checks: list[Check]) -> set[str]:
    """The learner-side modules the checks' calls name (adapters and `returns` conversions), as
    modules of this package: {"grading.learner_side", "grading.exercises.bpe_calls"}."""
    names = {learner_side.__name__}
    for check in checks:
        for each in check.calls:
            for dotted in (each.adapter, each.returns["kind"]):
                if dotted and "." in dotted:
                    names.add(f"{_GRADING_PACKAGE}.{dotted.rsplit('.', 1)[0]}")
    return names


def _child_files(checks: list[Check]) -> dict[str, str]:
    """The learner-side modules the child needs, as files of the package `grading_child`:
    learner_side.py and the modules the checks' calls name (e.g. exercises/bpe_calls.py)."""
    files = {f"{_CHILD_PACKAGE}/__init__.py": ""}
    for module in sorted(_learner_side_modules(checks)):
        relative = module[len(_GRADING_PACKAGE) + 1 :].split(".")
        for depth in range(1, len(relative)):
            files[f"{_CHILD_PACKAGE}/{'/'.join(relative[:depth])}/__init__.py"] = ""
        source = Path(importlib.import_module(module).__file__).read_text(encoding="utf-8")
        files[f"{_CHILD_PACKAGE}/{'/'.join(relative)}.py"] = source
    return files


class _Records:
    """What one child reports, read line by line as it arrives (`on_line`, called by the sandbox).

    The grader expects exactly: {"cells": problems}, then {"check": i, "outcome": ...} for each
    check i of `order`, in that order. Lines without this run's nonce are the learner's own
    output and are ignored; a tagged line that is not the one expected next is tampering, and
    the tasks of the check it names and of the check then running are recorded in `tampered`.
    on_line returns the seconds the child has for its next line: the next check's budget.
    """

    def __init__(self, nonce: str, order: list[int], checks: list[Check], timeout: float) -> None:
        self.prefix = f"{learner_side.RESULT_MARKER}{nonce} ".encode()
        self.order = order
        self.checks = checks
        self.timeout = timeout
        self.cell_problems: list[str] | None = None
        self.outcomes: dict[int, Outcome] = {}
        self.refused: dict[int, str] = {}  # check index -> why its outcome was refused
        self.tampered: dict[str, str] = {}  # task -> what was sent that was not asked for
        self.done = 0  # how many checks of `order` have reported

    def absorb(self, later: _Records) -> _Records:
        """These records and those of a later child that ran the remaining checks."""
        self.outcomes.update(later.outcomes)
        self.refused.update(later.refused)
        for task, what in later.tampered.items():
            self.tampered.setdefault(task, what)
        return self

    def budget(self, index: int) -> float:
        """Seconds check `index` may take: `timeout` per call, and a grace for the rest."""
        return self.timeout * len(self.checks[index].calls) + GRACE_SECONDS

    def running(self) -> int | None:
        """The check the child is running (None while it runs the cells, or when all are done)."""
        return self.order[self.done] if self.cell_problems is not None and self.done < len(self.order) else None

    def on_line(self, line: bytes) -> float | None:
        if not line.startswith(self.prefix):
            return None
        try:
            record = json.loads(line[len(self.prefix) :], parse_constant=_refuse)
        except ValueError:  # UnicodeDecodeError is a ValueError too
            record = None
        if type(record) is dict and self.cell_problems is None and type(record.get("cells")) is list:
            self.cell_problems = [p for p in record["cells"] if type(p) is str]
        elif type(record) is dict and self.running() is not None and record.get("check") == self.running() \
                and type(record.get("check")) is int:
            index = self.order[self.done]
            try:
                self.outcomes[index] = Outcome.from_plain(record.get("outcome"))
            except ValueError as err:
                self.refused[index] = str(err)
            self.done += 1
        else:
            self._tamper(record)
            return None
        following = self.running()
        return None if following is None else self.budget(following)

    def _tamper(self, record: Any) -> None:
        named = record.get("check") if type(record) is dict else None
        suspects = [index for index in (named, self.running()) if type(index) is int and 0 <= index < len(self.checks)]
        tasks_hit = {self.checks[index].task for index in suspects} or {check.task for check in self.checks}
        for task in tasks_hit:
            self.tampered.setdefault(task, f"a result line that the grader did not ask for ({shorten(str(record))})")


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not allowed")


def _how_it_ended(run: SandboxResult) -> str:
    """How the child ended, for a message about checks it did not finish."""
    how = "stopped early (does your code call exit() or os._exit()?)" if run.ok else run.describe()
    return how + (" (it printed too much: its output was cut)" if run.output_truncated else "")


def ungraded_report(exercise: str, submission: str | Path, problem: str, *, student: str | None = None,
                    elapsed: float = 0.0, status: str = "unreadable") -> SubmissionReport:
    """A report scoring 0 on every check, each saying "Not graded: `problem`": for a submission
    that could not be graded at all (no notebook, an unreadable one, a grader bug)."""
    results = [failed(check, f"Not graded: {problem}") for check in checks_for(exercise)]
    return SubmissionReport(str(submission), student, exercise, results, elapsed, "not run", [problem], status)


def other_exercise(cells: list, exercise: str) -> str | None:
    """The exercise whose tasks the notebook's answer cells are, when none is one of `exercise`'s
    tasks ("01_bpe" for a BPE notebook graded as 02_linear), else None."""
    answers = {cell.grade_id for cell in cells if cell.kind == "answer"}
    if not answers or answers & set(tasks(exercise)):
        return None
    return next((other for other in EXERCISES if other != exercise and answers & set(tasks(other))), None)


def _cell_problems_by_task(problems: list[str], task_names: list[str]) -> dict[str, str]:
    """The problem of each task's answer cell, if it had one ("answer cell 'merge' (cell 11) has
    a syntax error ..."): that, not "no function named `merge`", is what its checks report."""
    found = {}
    for problem in problems:
        for task in task_names:
            if problem.startswith(f"answer cell '{task}' "):
                found.setdefault(task, problem)
    return found


def _run_children(
    cells: list, checks: list[Check], to_run: list[int], forbidden: dict[str, list[str]], timeout: float,
    limits: Limits, deadline: float, use_bubblewrap: bool | None,
) -> tuple[_Records, SandboxResult, dict[int, str]]:
    """Run the checks `to_run` in sandboxed children, one after another, until all have reported
    or the submission's `deadline` passes: (their records, merged; the last child's run; the
    checks the grader stopped or skipped, with the message each scores 0 with).

    A child that stalls on check i (its result does not come within i's budget) is stopped; i
    and its task's later checks score 0, and a fresh child runs the remaining checks of the
    other tasks, so one task's runaway code costs no other task anything.
    """
    merged: _Records | None = None
    stopped: dict[int, str] = {}
    remaining = list(to_run)
    while True:
        nonce = secrets.token_hex(16)
        records = _Records(nonce, remaining, checks, timeout)
        job = {
            "nonce": nonce,
            "cells": cells_to_run(cells),
            "checks": [[index, checks[index].task, checks[index].plain_calls()] for index in remaining],
            "timeout": timeout,
            "forbidden": forbidden,
        }
        run = run_sandboxed(
            _BOOTSTRAP,
            json.dumps(job),
            files=_child_files(checks),
            limits=dataclasses.replace(limits, wall_seconds=max(deadline - time.monotonic(), 0.1)),
            # The checks use tiny tensors, and a batch runs several children side by side: one
            # thread each is faster than every child fighting for every core.
            env={"OMP_NUM_THREADS": "1"},
            use_bubblewrap=use_bubblewrap is not False,
            on_line=records.on_line,  # the cells (timed inside the child) have the submission's budget
        )
        merged = records if merged is None else merged.absorb(records)
        stuck = records.running()
        if not run.stalled or stuck is None:
            return merged, run, stopped
        task = checks[stuck].task
        stopped[stuck] = (f"Not graded: this check ran longer than its {records.budget(stuck):g} s, so the grader "
                          "stopped your code (an infinite loop?).")
        later = remaining[remaining.index(stuck) + 1 :]
        for index in later:
            if checks[index].task == task:
                stopped[index] = f"Not run: an earlier check of `{task}` ran longer than its time limit."
        remaining = [index for index in later if checks[index].task != task]
        if not remaining:
            return merged, run, stopped


def grade_submission(
    exercise: str,
    notebook: str | Path,
    *,
    student: str | None = None,
    timeout: float = 10.0,
    limits: Limits | None = None,
    use_bubblewrap: bool | None = None,
) -> SubmissionReport:
    """Grade the notebook at `notebook` on every check of `exercise` (see the module docstring).

    student: whose submission it is, as the report records it. timeout: seconds each call of a
    check (and each cell) may run. limits: the child's limits, used as given; by default
    `Limits()` with wall and CPU time of STARTUP_SECONDS plus `timeout` per cell of the released
    notebook and per call of the checks, at most MAX_SUBMISSION_SECONDS (a budget for the whole
    submission, which cells added to it do not raise), and a uid of its own (see
    `sandbox.fresh_uid`). use_bubblewrap: None uses it when it works here, False never (the report's
    `isolation` says which it got). Raises KeyError for an unknown exercise, and checks.SetupError
    when the grader cannot compute the expected values (a missing download, not the learner's
    fault).
    """
    started = time.monotonic()
    checks = checks_for(exercise)
    for check in checks:  # before any learner code runs: a missing reference stops the grader
        check.expected()
    task_names = tasks(exercise)
    path = Path(notebook)
    try:
        cells = graded_cells(read_notebook(path))
    except ValueError as err:
        return ungraded_report(exercise, notebook, str(err), student=student, elapsed=time.monotonic() - started)

    forbidden = forbidden_for(exercise)
    banned: dict[str, str] = {}  # task -> the message of the first finding that costs it
    for finding in scan(cells, task_names, forbidden):
        for task in finding.tasks:
            banned.setdefault(task, finding.message)

    to_run = [index for index, check in enumerate(checks) if check.task not in banned]
    if limits is None:
        wall = min(MAX_SUBMISSION_SECONDS, STARTUP_SECONDS + timeout * (
            released_cells(exercise) + sum(len(checks[index].calls) for index in to_run)))
        limits = Limits(wall_seconds=wall, cpu_seconds=math.ceil(wall))
    deadline = time.monotonic() + limits.wall_seconds  # for the whole submission, every child together

    records, run, stopped = _run_children(cells, checks, to_run, forbidden, timeout, limits, deadline, use_bubblewrap)
    cell_problems = records.cell_problems
    problems = list(cell_problems or [])
    unfinished = [index for index in to_run if index not in records.outcomes and index not in stopped]
    status = "graded" if cell_problems is not None and not unfinished else "crashed"
    looks_like = other_exercise(cells, exercise)
    if looks_like is not None:
        status = "wrong assignment"
        problems.insert(0, f"This notebook looks like one of {looks_like} (its answer cells define "
                           f"{', '.join(tasks(looks_like))}), not of {exercise}: was it handed in to the right assignment?")
    broken_cells = _cell_problems_by_task(problems, task_names)
    how = _how_it_ended(run)
    if unfinished:
        problems.append(
            f"The process running your code {how} before {len(unfinished)} of {len(to_run)} checks "
            "finished; those checks score 0."
        )
    for outcome in records.outcomes.values():  # a forbidden call costs the task whose code made it
        for name, task in outcome.forbidden:
            if task in task_names:
                banned.setdefault(task, not_allowed(name, task))
    for task, what in records.tampered.items():
        banned.setdefault(task, f"Not graded: the process running your code sent {what}, so no result of "
                                f"`{task}` can be trusted.")
    results: list[Result] = []
    for index, check in enumerate(checks):
        if check.task in banned:
            result = failed(check, banned[check.task])
        elif index in records.outcomes:
            result = judge(check, records.outcomes[index])
        elif index in records.refused:
            result = failed(check, f"Not graded: the result of this check was tampered with ({records.refused[index]}).")
        elif index in stopped:
            result = failed(check, stopped[index])
        else:
            result = failed(check, f"Not graded: the process running your code {how} before this check finished.")
        if not result.passed and check.task in broken_cells and "no function named" in result.message:
            result = failed(check, f"Not graded: {broken_cells[check.task]}. Fix that cell, run it, then check again.")
        results.append(result)
    return SubmissionReport(
        submission=str(notebook),
        student=student,
        exercise=exercise,
        results=results,
        execution_time=time.monotonic() - started,
        isolation=run.isolation,
        problems=problems,
        status=status,
    )

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
   its stdout, tagged with a random nonce. Neither course_lib nor the grader is importable there, and with
   bubblewrap the repository (solutions, tests) and other submissions are not even visible.
4. (grader) read those lines back as plain data, validate them strictly, compare each with its
   reference, score. A check whose line never came (the child crashed, ran out of time or
   memory, or broke its own output) scores 0 with a message that says what happened.

Nothing a submission does raises here; only misuse (an unknown exercise) and a grader that
cannot compute its expected values (checks.SetupError) do.
"""

from __future__ import annotations

import importlib
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grading import learner_side
from grading.checks import Check, Outcome, Result, failed, judge, not_allowed
from grading.notebook import cells_to_run, graded_cells, read_notebook
from grading.registry import EXERCISES, checks_for, forbidden_for, tasks
from grading.sandbox import Limits, SandboxResult, run_sandboxed
from grading.static_scan import scan

# Seconds the child may spend starting, on top of `timeout` per cell and per check (starting
# Python takes 0.1 s; importing torch, for the exercises that use it, about 2 s).
STARTUP_SECONDS = 10.0
# The package name the learner-side modules get inside the sandbox (course_lib is not there).
_CHILD_PACKAGE = "grading_child"
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
    assignment", "grader error", "killed": the batch's worker grading it died).
    """

    submission: str
    student: str | None
    exercise: str
    results: list[Result]
    execution_time: float
    isolation: str
    problems: list[str] = field(default_factory=list)
    status: str = "graded"

    @property
    def score(self) -> float:
        return float(sum(result.score for result in self.results))

    @property
    def max_score(self) -> float:
        return float(sum(result.points for result in self.results))


def _fresh_uid() -> int:
    """A uid for one sandboxed child (used when the grader runs as root with bubblewrap). The
    kernel's process limit counts all processes of a uid, so children graded at the same time
    under one uid would share it: a fork bomb in one submission could stop the next from starting.
    A random uid from a range no real user has keeps them apart."""
    return 200_000 + secrets.randbelow(100_000)


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


def _read_results(stdout: bytes, nonce: str) -> list[Any]:
    """The records on stdout lines tagged with this run's nonce, in order (untagged or broken
    lines are skipped). json.loads builds only plain types; NaN and Infinity are refused."""
    prefix = f"{learner_side.RESULT_MARKER}{nonce} ".encode()
    records = []
    for line in stdout.split(b"\n")[:-1]:  # [:-1]: a line without its newline was cut off
        if line.startswith(prefix):
            try:
                records.append(json.loads(line[len(prefix) :], parse_constant=_refuse))
            except ValueError:
                continue
    return records


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not allowed")


def _outcomes(records: list[Any]) -> tuple[list[str] | None, dict[int, Outcome], dict[int, str]]:
    """(cell problems, outcome per check index, why a record was refused per check index)."""
    cell_problems = None
    outcomes: dict[int, Outcome] = {}
    refused: dict[int, str] = {}
    for record in records:
        if type(record) is not dict:
            continue
        if cell_problems is None and type(record.get("cells")) is list:
            cell_problems = [p for p in record["cells"] if type(p) is str]
        index = record.get("check")
        if type(index) is int and index not in outcomes and index not in refused:
            try:
                outcomes[index] = Outcome.from_plain(record.get("outcome"))
            except ValueError as err:
                refused[index] = str(err)
    return cell_problems, outcomes, refused


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
    `Limits()` with wall and CPU time of STARTUP_SECONDS plus `timeout` per cell and per check
    (the last resort when the code stops the per-call timer), and a uid of its own (see
    `_fresh_uid`). use_bubblewrap: None uses it when it works here, False never (the report's
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
    nonce = secrets.token_hex(16)
    job = {
        "nonce": nonce,
        "cells": cells_to_run(cells),
        "checks": [[index, checks[index].task, checks[index].plain_calls()] for index in to_run],
        "timeout": timeout,
        "forbidden": forbidden,
    }
    if limits is None:
        wall = STARTUP_SECONDS + timeout * (len(cells) + sum(len(checks[index].calls) for index in to_run))
        limits = Limits(wall_seconds=wall, cpu_seconds=math.ceil(wall), uid=_fresh_uid())
    run = run_sandboxed(
        _BOOTSTRAP,
        json.dumps(job),
        files=_child_files(checks),
        limits=limits,
        # The checks use tiny tensors, and a batch runs several children side by side: one
        # thread each is faster than every child fighting for every core.
        env={"OMP_NUM_THREADS": "1"},
        use_bubblewrap=use_bubblewrap is not False,
    )
    cell_problems, outcomes, refused = _outcomes(_read_results(run.stdout, nonce))

    problems = list(cell_problems or [])
    unfinished = [index for index in to_run if index not in outcomes]
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
    for outcome in outcomes.values():  # a forbidden call costs the task whose code made it
        for name, task in outcome.forbidden:
            if task in task_names:
                banned.setdefault(task, not_allowed(name, task))
    results: list[Result] = []
    for index, check in enumerate(checks):
        if check.task in banned:
            result = failed(check, banned[check.task])
        elif index in outcomes:
            result = judge(check, outcomes[index])
        elif index in refused:
            result = failed(check, f"Not graded: the result of this check was tampered with ({refused[index]}).")
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

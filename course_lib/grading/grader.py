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
2. (grader) build every check's inputs as plain data (cached: Tiny Shakespeare, tiktoken).
3. (sandbox) ONE child process for the whole submission runs learner_side.main(): it runs the
   cells, then every check's adapter under a time limit, and writes one JSON line per check
   on its stdout, tagged with a random nonce. course_lib is not importable there, and with
   bubblewrap the repository (solutions, tests) and other submissions are not even visible.
4. (grader) read those lines back as plain data, validate them strictly, compare each with its
   reference, score. A check whose line never came (the child crashed, ran out of time or
   memory, or broke its own output) scores 0 with a message that says what happened.

Nothing a submission does raises here; only misuse (an unknown exercise) does.
"""

from __future__ import annotations

import json
import math
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_lib.grading import learner_side
from course_lib.grading.checks import SETUP_FAILED, Check, CheckSetupError, Outcome, Result, failed, judge
from course_lib.grading.exercises import checks_for, forbidden_for, tasks
from course_lib.grading.notebook import cells_to_run, graded_cells, read_notebook
from course_lib.grading.sandbox import Limits, SandboxResult, run_sandboxed
from course_lib.grading.static_scan import scan

# Seconds the child may spend starting, on top of `timeout` per cell and per check (starting
# Python takes 0.1 s; importing torch, for the exercises that use it, about 2 s).
STARTUP_SECONDS = 10.0
# The package name the learner-side modules get inside the sandbox (course_lib is not there).
_CHILD_PACKAGE = "grading_child"
_GRADING_PACKAGE = "course_lib.grading"
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
    grading process crashed); isolation says how the learner's code was confined.
    """

    submission: str
    student: str | None
    exercise: str
    results: list[Result]
    execution_time: float
    isolation: str
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return float(sum(result.score for result in self.results))

    @property
    def max_score(self) -> float:
        return float(sum(result.points for result in self.results))


def student_of(path: Path, exercise: str) -> str | None:
    """The student id in nbgrader's layout .../submitted/<student>/<exercise>/<notebook>, else None.

    student_of(Path("course/submitted/ada/01_bpe/bpe.ipynb"), "01_bpe") -> "ada"
    """
    parts = path.parts
    if len(parts) >= 4 and parts[-4] == "submitted" and parts[-2] == exercise:
        return parts[-3]
    return None


def _fresh_uid() -> int:
    """A uid for one sandboxed child (used when the grader runs as root with bubblewrap). The
    kernel's process limit counts all processes of a uid, so children graded at the same time
    under one uid would share it: a fork bomb in one submission could stop the next from starting.
    A random uid from a range no real user has keeps them apart."""
    return 200_000 + secrets.randbelow(100_000)


def _child_files(checks: list[Check]) -> dict[str, str]:
    """The learner-side modules the child needs, as files of the package `grading_child`:
    learner_side.py and the modules of the checks' adapters (e.g. exercises/bpe_calls.py)."""
    modules = {learner_side.__name__, *(check.call.__module__ for check in checks)}
    files = {f"{_CHILD_PACKAGE}/__init__.py": ""}
    for module in sorted(modules):
        relative = module[len(_GRADING_PACKAGE) + 1 :].split(".")
        for depth in range(1, len(relative)):
            files[f"{_CHILD_PACKAGE}/{'/'.join(relative[:depth])}/__init__.py"] = ""
        source = Path(sys.modules[module].__file__).read_text(encoding="utf-8")
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


def _empty_report(path: Path, student: str | None, exercise: str, checks: list[Check], problem: str,
                  started: float) -> SubmissionReport:
    results = [failed(check, f"Not graded: {problem}") for check in checks]
    return SubmissionReport(str(path), student, exercise, results, time.monotonic() - started, "not run", [problem])


def grade_submission(
    exercise: str,
    notebook: str | Path,
    *,
    timeout: float = 10.0,
    limits: Limits | None = None,
    use_bubblewrap: bool | None = None,
) -> SubmissionReport:
    """Grade the notebook at `notebook` on every check of `exercise` (see the module docstring).

    timeout: seconds each check's call (and each cell) may run. limits: the child's limits, used
    as given; by default `Limits()` with wall and CPU time of STARTUP_SECONDS plus `timeout` per
    cell and per check (the last resort when the code stops the per-check timer), and a uid of
    its own (see `_fresh_uid`). use_bubblewrap: None uses it when it works here, False never (the
    report's `isolation` says which it got). Raises KeyError only for an unknown exercise.
    """
    started = time.monotonic()
    checks = checks_for(exercise)
    exercise_tasks = tasks(exercise)
    path = Path(notebook)
    student = student_of(path.absolute(), exercise)
    try:
        cells = graded_cells(read_notebook(path))
    except ValueError as err:
        return _empty_report(path, student, exercise, checks, str(err), started)

    forbidden = {task: forbidden_for(exercise, task) for task in exercise_tasks}
    banned: dict[str, str] = {}  # task -> the message of the first finding that costs it
    for finding in scan(cells, exercise_tasks, forbidden):
        for task in finding.tasks:
            banned.setdefault(task, finding.message)

    results: dict[int, Result] = {}
    calls = []
    arguments: dict[int, dict] = {}
    for index, check in enumerate(checks):
        if check.task in banned:
            results[index] = failed(check, banned[check.task])
            continue
        try:
            arguments[index] = check.arguments()
        except CheckSetupError as err:
            results[index] = judge(check, Outcome(error=f"{SETUP_FAILED}: {err}", setup_failed=True))
            continue
        module = check.call.__module__[len(_GRADING_PACKAGE) + 1 :]
        calls.append([index, module, check.call.__name__, arguments[index], forbidden[check.task]])

    nonce = secrets.token_hex(16)
    job = {
        "nonce": nonce,
        "cells": cells_to_run(cells),
        "calls": calls,
        "timeout": timeout,
        "tripwires": sorted({name for index, *_, names in calls for name in names}),
    }
    if limits is None:
        wall = STARTUP_SECONDS + timeout * (len(cells) + len(calls))
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
    unfinished = [index for index, *_ in calls if index not in outcomes]
    how = _how_it_ended(run)
    if unfinished:
        problems.append(
            f"The process running your code {how} before {len(unfinished)} of {len(calls)} checks "
            "finished; those checks score 0."
        )
    for index, *_ in calls:
        check = checks[index]
        if index in outcomes:
            results[index] = judge(check, outcomes[index], arguments[index])
        elif index in refused:
            results[index] = failed(check, f"Not graded: the result of this check was tampered with ({refused[index]}).")
        else:
            results[index] = failed(check, f"Not graded: the process running your code {how} before this "
                                           "check finished.")
    return SubmissionReport(
        submission=str(notebook),
        student=student,
        exercise=exercise,
        results=[results[index] for index in range(len(checks))],
        execution_time=time.monotonic() - started,
        isolation=run.isolation,
        problems=problems,
    )

"""Checks run in the learner's own process: what a notebook's check cell does.

Both halves of a check (checks.py) run here, in the kernel: no sandbox, which is fine for a
learner checking their own work (the batch grader, grader.py, never does this). Each call has a
time limit, so a function that loops forever ends its check with a message instead of leaving
the cell at [*]:

    >>> results = run_checks({"merge": lambda ids, pair, new_id: ids}, "01_bpe", "merge")
    >>> [result.passed for result in results][:2]
    [False, False]

In a notebook, `check_task(globals(), "01_bpe", "merge")` as the last line of a check cell prints
the report and leaves the score as the cell's value, which nbgrader records.
"""

from __future__ import annotations

from grading.checks import NOT_ALLOWED, Check, Outcome, Result, failed, judge, not_allowed
from grading.learner_side import Tripwires, run_check
from grading.registry import checks_for, forbidden_for

# Seconds each call of a check may run in a notebook before it is stopped (the slowest correct
# call, 04_training_loop's 50 training steps, takes well under a second).
CALL_SECONDS = 20.0


def collect(check: Check, namespace: dict, forbidden: dict[str, list[str]] | None = None,
            timeout: float | None = CALL_SECONDS) -> Outcome:
    """Make `check`'s calls on the code in `namespace`, in THIS process, watching the `forbidden`
    torch functions; never raises for anything the learner's code does."""
    tripwires = Tripwires(forbidden).install() if forbidden is not None else None
    try:
        outcome = run_check(namespace, check.task, check.plain_calls(), timeout=timeout, tripwires=tripwires)
    finally:
        if tripwires is not None:
            tripwires.remove()
    try:
        return Outcome.from_plain(outcome)
    except ValueError as err:  # only if the learner's code replaced parts of learner_side
        return Outcome(error=f"the code broke the grading code: {err}", failed_call=0)


def run_checks(namespace: dict, exercise: str, task: str | None = None,
               timeout: float | None = CALL_SECONDS) -> list[Result]:
    """Run every check of `exercise` (only those of `task`, if given) against `namespace`.

    An interrupt (Ctrl-C in Jupyter, or a KeyboardInterrupt the code raises) scores its check 0
    and skips the rest, so a learner can stop a loop that hangs. A forbidden torch function
    called by a task's code scores every check of that task 0.
    """
    forbidden = forbidden_for(exercise)
    checks = checks_for(exercise, task)
    results: list[Result] = []
    banned: dict[str, str] = {}  # task -> why it scores 0
    interrupted = False
    for check in checks:
        if interrupted:
            results.append(failed(check, "Not run: an earlier check of this run was interrupted."))
            continue
        outcome = collect(check, namespace, forbidden, timeout)
        interrupted = outcome.interrupted
        for name, charged in outcome.forbidden:
            banned.setdefault(charged, not_allowed(name, charged))
        results.append(judge(check, outcome))
    return [failed(check, banned[check.task]) if check.task in banned else result
            for check, result in zip(checks, results)]


def format_report(results: list[Result], title: str) -> str:
    """The report a learner reads: every visible check with its message; hidden checks by name and
    pass/fail only (their inputs and expected values appear nowhere), unless the code used what it
    must not (that message holds no expected values)."""
    score = sum(result.score for result in results)
    total = sum(result.points for result in results)
    lines = [f"{title}: {score:g} / {total:g} points"]
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        points = f"{result.score:g}/{result.points:g}"
        hidden = result.visibility == "hidden"
        lines.append(f"  {mark} {'[hidden] ' if hidden else ''}{result.name} ({points})")
        if not result.passed and (not hidden or result.message.startswith(NOT_ALLOWED)):
            lines.extend("      " + line for line in result.message.splitlines())
    return "\n".join(lines)


def check_task(namespace: dict, exercise: str, task: str) -> float:
    """Print the report of one task's checks and return its score (a notebook's check cell).

    nbgrader reads the returned number as the cell's partial credit (it must not exceed the
    cell's points, which equal the task's total points).
    """
    results = run_checks(namespace, exercise, task)
    print(format_report(results, f"{exercise} · {task}"))
    return float(sum(result.score for result in results))

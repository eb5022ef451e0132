"""The registry: exercise name -> its module of checks (grading/exercises/), the only
exercise-specific part of grading.

An exercise module defines NOTEBOOK (its notebook's file name), CHECKS (a list of checks.Check)
and FORBIDDEN, the torch functions each task must not call ({"Linear": ["torch.nn.functional.linear",
"torch.nn.Linear"]}; empty for 01_bpe):

    >>> [check.name for check in checks_for("01_bpe", "merge")][:1]
    ['merge replaces non-overlapping pairs']
    >>> task_points("01_bpe")["merge"]
    5
    >>> forbidden_for("01_bpe")["merge"]
    []

A notebook's check cell for task T is worth exactly task_points(exercise)[T] (tests keep the
two equal), so nbgrader's partial credit and this registry always agree.
"""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace

from grading.checks import Check

# Each exercise's module of checks, imported on first use: the tensor exercises import torch,
# which a grader of 01_bpe (or `python -m grading --help`) should not wait for.
EXERCISES: dict[str, str | ModuleType | SimpleNamespace] = {
    "01_bpe": "grading.exercises.bpe",
    "02_linear": "grading.exercises.linear",
    "02_normalization": "grading.exercises.normalization",
    "03_attention": "grading.exercises.attention",
    "03_rope": "grading.exercises.rope",
    "04_training_loop": "grading.exercises.training_loop",
    "04_optimizer": "grading.exercises.optimizer",
    "05_generation": "grading.exercises.generation",
}


def _exercise(exercise: str) -> ModuleType | SimpleNamespace:
    if exercise not in EXERCISES:
        raise KeyError(f"unknown exercise {exercise!r}; the exercises are {sorted(EXERCISES)}")
    module = EXERCISES[exercise]
    if isinstance(module, str):
        module = EXERCISES[exercise] = importlib.import_module(module)
    return module


def checks_for(exercise: str, task: str | None = None) -> list[Check]:
    """The checks of `exercise`, in order; only those grading `task` if it is given."""
    checks = _exercise(exercise).CHECKS
    if task is not None and task not in tasks(exercise):
        raise KeyError(f"exercise {exercise!r} has no task {task!r}; its tasks are {tasks(exercise)}")
    return [check for check in checks if task is None or check.task == task]


def tasks(exercise: str) -> list[str]:
    """The learner's functions that `exercise` grades, in the order the notebook asks for them."""
    return list(dict.fromkeys(check.task for check in _exercise(exercise).CHECKS))


def task_points(exercise: str) -> dict[str, float]:
    """Points per task: what each of the notebook's check cells is worth."""
    points: dict[str, float] = {}
    for check in checks_for(exercise):
        points[check.task] = points.get(check.task, 0) + check.points
    return points


def released_cells(exercise: str) -> int:
    """How many setup and answer cells the exercise's released notebook has: one setup cell and
    one answer cell per task (a test checks every release). The grader's time budget counts these,
    not the cells a submission claims to have."""
    return 1 + len(tasks(exercise))


def notebook_for(exercise: str) -> str:
    """The file name of the exercise's notebook, as released and handed in: "bpe.ipynb"."""
    return _exercise(exercise).NOTEBOOK


def forbidden_for(exercise: str) -> dict[str, list[str]]:
    """The torch functions and classes (dotted names) each task of `exercise` must not call
    (every task is a key, [] when nothing is forbidden to it)."""
    forbidden = getattr(_exercise(exercise), "FORBIDDEN", {})
    return {task: list(forbidden.get(task, [])) for task in tasks(exercise)}

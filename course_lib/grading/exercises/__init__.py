"""The registry: exercise name -> its module of checks. The only exercise-specific part of grading.

An exercise module defines CHECKS (a list of Check) and FORBIDDEN, the torch functions each task
must not call ({"linear": ["torch.nn.functional.linear", "torch.nn.Linear"]}; empty for 01_bpe):

    >>> [check.name for check in checks_for("01_bpe", "merge")][:1]
    ['merge replaces non-overlapping pairs']
    >>> task_points("01_bpe")["merge"]
    4
    >>> forbidden_for("01_bpe", "merge")
    []

A notebook's check cell for task T is worth exactly task_points(exercise)[T] (tests keep the
two equal), so nbgrader's partial credit and this registry always agree.
"""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace

from course_lib.grading.checks import Check

# Each exercise's module of checks, imported on first use: the tensor exercises import torch,
# which a grader of 01_bpe (or `python -m course_lib.grading --help`) should not wait for.
EXERCISES: dict[str, str | ModuleType | SimpleNamespace] = {
    "01_bpe": "course_lib.grading.exercises.bpe",
    "02_linear": "course_lib.grading.exercises.linear",
    "03_attention": "course_lib.grading.exercises.attention",
    "04_training_loop": "course_lib.grading.exercises.training_loop",
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


def forbidden_for(exercise: str, task: str) -> list[str]:
    """The torch functions and classes (dotted names) that `task` of `exercise` must not call."""
    return list(getattr(_exercise(exercise), "FORBIDDEN", {}).get(task, []))

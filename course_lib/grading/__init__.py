"""Grading: checks defined once per exercise, run from a notebook's check cells or by a grader.

    submitted notebook -> notebook.load_namespace (answer and setup cells only)
      -> checks.collect (the learner's side: call their code, keep plain data)
      -> checks.judge (the trusted side: compare with course_lib/tiktoken, score, message)

In a notebook, a check cell is two lines; its value is the score nbgrader records:

    from course_lib.grading import check_task
    check_task(globals(), "01_bpe", "merge")
"""

from course_lib.grading.checks import Check, Outcome, Result, check_task, collect, judge, run_checks
from course_lib.grading.exercises import checks_for, task_points, tasks
from course_lib.grading.notebook import extract_source, load_namespace

__all__ = [
    "Check",
    "Outcome",
    "Result",
    "check_task",
    "checks_for",
    "collect",
    "extract_source",
    "judge",
    "load_namespace",
    "run_checks",
    "task_points",
    "tasks",
]

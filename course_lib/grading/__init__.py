"""Grading: checks defined once per exercise, run from a notebook's check cells or by a grader.

    submitted notebook -> notebook.graded_cells (answer and setup cells only)
      -> learner_side (the learner's process: run the cells, call their code, keep plain data)
      -> checks.judge (the trusted process: compare with course_lib/tiktoken, score, message)

`grade_submission` (grader.py) does all of it with the learner's code in a sandboxed process:

    report = grade_submission("01_bpe", "submitted/ada/01_bpe/bpe.ipynb")
    report.score, report.max_score -> 22.0, 22.0

In a notebook, a check cell is two lines; its value is the score nbgrader records:

    from course_lib.grading import check_task
    check_task(globals(), "01_bpe", "merge")
"""

from course_lib.grading.checks import Check, Outcome, Result, check_task, judge, run_checks
from course_lib.grading.exercises import checks_for, forbidden_for, task_points, tasks
from course_lib.grading.grader import SubmissionReport, grade_submission
from course_lib.grading.notebook import extract_source, load_namespace

__all__ = [
    "Check",
    "Outcome",
    "Result",
    "SubmissionReport",
    "check_task",
    "checks_for",
    "extract_source",
    "forbidden_for",
    "grade_submission",
    "judge",
    "load_namespace",
    "run_checks",
    "task_points",
    "tasks",
]

"""The course's grader: checks defined once per exercise, run from a notebook's check cells or by a
batch grader, with the learner's code in a sandbox.

    submitted notebook -> notebook.graded_cells (answer and setup cells only)
      -> learner_side (the learner's process: run the cells, call their code, keep plain data)
      -> checks.judge (the trusted process: compare with course_lib/tiktoken/torch, score, message)

`grade_submission` (grader.py) does all of it with the learner's code in a sandboxed process:

    report = grade_submission("01_bpe", "submitted/ada/01_bpe/bpe.ipynb")
    report.score, report.max_score -> 22.0, 22.0

In a notebook, a check cell is two lines; its value is the score nbgrader records:

    from grading import check_task
    check_task(globals(), "01_bpe", "merge")

`python -m grading grade ...` grades a batch (cli.py). This package imports course_lib (for the
references); course_lib never imports it, and learner code graded here can import neither.
"""

from grading.checks import Check, Outcome, Result, judge
from grading.grader import SubmissionReport, grade_submission
from grading.in_process import check_task, run_checks
from grading.notebook import extract_source, load_namespace
from grading.registry import checks_for, forbidden_for, task_points, tasks

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

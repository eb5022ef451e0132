"""Made-up submissions for the grading tests: the released notebook with some answers filled in.

    write_submission(tmp / "alice.ipynb", answered={"merge"})        # only merge solved
    write_submission(tmp / "bob.ipynb", answered=ALL, replaced={"encode": WRONG_ENCODE})

A filled-in answer is the solution's answer cell without nbgrader's `### BEGIN/END SOLUTION`
markers, which is what a learner who wrote the same code would submit.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOLUTION = REPO / "solutions" / "01_bpe" / "bpe.ipynb"
RELEASE = REPO / "exercises" / "01_bpe" / "bpe.ipynb"
TASK_POINTS = {"get_pair_counts": 3, "merge": 4, "train_bpe": 6, "encode": 5, "decode": 4}
ALL = frozenset(TASK_POINTS)


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _source(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def solution_answers() -> dict[str, str]:
    """The solution's answer cells by grade id, without the solution markers."""
    answers = {}
    for cell in json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            lines = _source(cell).splitlines(keepends=True)
            answers[_grade_id(cell)] = "".join(
                line for line in lines if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
            )
    return answers


def submission_notebook(
    answered: frozenset[str] | set[str] = frozenset(), replaced: dict[str, str] | None = None, release: Path = RELEASE
) -> dict:
    """The `release` notebook with the solution's answers for the tasks in `answered` and the given
    sources for the tasks in `replaced` (grade id -> cell source)."""
    notebook = json.loads(release.read_text(encoding="utf-8"))
    answers = solution_answers()
    sources = {task: answers[task] for task in answered} | (replaced or {})
    for cell in notebook["cells"]:
        if _grade_id(cell) in sources:
            cell["source"] = sources[_grade_id(cell)]
    return notebook


def write_submission(
    path: Path, answered: frozenset[str] | set[str] = frozenset(), replaced: dict[str, str] | None = None
) -> Path:
    """Write `submission_notebook(answered, replaced)` to `path` (folders created); return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(submission_notebook(answered, replaced), indent=1), encoding="utf-8")
    return path


def points_of(tasks: set[str] | frozenset[str]) -> int:
    """The points of `tasks` as the notebook's check cells state them (3 + 4 + 6 + 5 + 4 = 22)."""
    return sum(TASK_POINTS[task] for task in tasks)


# A wrong encode: it ignores the merges, so only the check without merges passes (1 of 5 points).
ENCODE_IGNORING_MERGES = """def encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    return list(text.encode("utf-8"))
"""

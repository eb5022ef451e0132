"""Made-up submissions for the grading tests: the released notebook with some answers filled in.

    write_submission(tmp / "alice.ipynb", answered={"merge"})        # only merge solved
    write_submission(tmp / "bob.ipynb", answered=ALL, replaced={"encode": WRONG_ENCODE})
    submission_notebook({"Linear"}, assignment=ASSIGNMENTS["02_linear"])   # another exercise

A filled-in answer is the solution's answer cell without nbgrader's `### BEGIN/END SOLUTION`
markers, which is what a learner who wrote the same code would submit. Without `assignment`,
everything here is about 01_bpe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Assignment:
    """One exercise as nbgrader sees it, and the points its check cells state for each task."""

    name: str  # the folder under solutions/ and exercises/
    notebook: str  # the notebook's file name
    task_points: dict[str, int]  # answer cell's grade id -> points of its check cell

    @property
    def solution(self) -> Path:
        return REPO / "solutions" / self.name / self.notebook

    @property
    def release(self) -> Path:
        return REPO / "exercises" / self.name / self.notebook

    @property
    def max_score(self) -> int:
        return sum(self.task_points.values())


ASSIGNMENTS = {
    a.name: a
    for a in [
        Assignment("01_bpe", "bpe.ipynb", {"get_pair_counts": 3, "merge": 5, "train_bpe": 7, "encode": 6, "decode": 5}),
        Assignment("02_linear", "linear.ipynb", {"Linear": 13, "linear_backward": 8}),
        Assignment("02_normalization", "normalization.ipynb", {"softmax": 9, "layer_norm": 8, "rms_norm": 7, "gelu": 6}),
        Assignment(
            "03_attention",
            "attention.ipynb",
            {"scaled_dot_product_attention": 9, "causal_mask": 3, "MultiHeadSelfAttention": 8},
        ),
        Assignment("03_rope", "rope.ipynb", {"rotary_cos_sin": 8, "apply_rotary": 9}),
        Assignment("04_training_loop", "training_loop.ipynb", {"cross_entropy": 7, "get_batch": 7, "train": 7}),
        Assignment("04_optimizer", "optimizer.ipynb", {"adamw_step": 9, "lr_at": 6, "clip_grad_norm": 7}),
        Assignment("05_generation", "generation.ipynb", {"sample_next_token": 10, "generate": 6, "KVCache": 4, "cached_attention": 6}),
    ]
}
BPE = ASSIGNMENTS["01_bpe"]
SOLUTION = BPE.solution
RELEASE = BPE.release
TASK_POINTS = BPE.task_points
ALL = frozenset(TASK_POINTS)


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _source(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def solution_answers(assignment: Assignment = BPE) -> dict[str, str]:
    """The solution's answer cells by grade id, without the solution markers."""
    answers = {}
    for cell in json.loads(assignment.solution.read_text(encoding="utf-8"))["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            lines = _source(cell).splitlines(keepends=True)
            answers[_grade_id(cell)] = "".join(
                line for line in lines if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
            )
    return answers


def submission_notebook(
    answered: frozenset[str] | set[str] = frozenset(),
    replaced: dict[str, str] | None = None,
    release: Path | None = None,
    assignment: Assignment = BPE,
) -> dict:
    """The `release` notebook (default: the assignment's, as committed) with the solution's answers
    for the tasks in `answered` and the given sources for the tasks in `replaced` (grade id -> source)."""
    notebook = json.loads((release or assignment.release).read_text(encoding="utf-8"))
    answers = solution_answers(assignment)
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


def points_of(tasks: set[str] | frozenset[str], assignment: Assignment = BPE) -> int:
    """The points of `tasks` as the notebook's check cells state them (01_bpe: 3 + 5 + 7 + 6 + 5 = 26)."""
    return sum(assignment.task_points[task] for task in tasks)


# A wrong encode: it ignores the merges, so only the check without merges passes (1 of 5 points).
ENCODE_IGNORING_MERGES = """def encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    return list(text.encode("utf-8"))
"""

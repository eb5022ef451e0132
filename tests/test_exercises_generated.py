"""The learner notebooks in exercises/ are exactly what nbgrader generates from solutions/.

Each assignment is generated again, by nbgrader itself, into a temporary course folder (a copy of
nbgrader_config.py and the assignment's folder in solutions/: conftest.py's generated_courses, where
the end-to-end test then hands in and autogrades), and compared with the committed release, cell by
cell. So an edit to a solution that was not followed by

    nbgrader generate_assignment <assignment> --force

fails here, and a hand edit of exercises/ does too.
"""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = sorted(path.name for path in (REPO / "solutions").iterdir() if any(path.glob("*.ipynb")))


def comparable(path: Path) -> dict:
    """A notebook without what may change between two generations of the same source: cell
    outputs and execution counts (nbgrader clears them anyway) and the notebook-level metadata
    other than the kernel (Jupyter stamps versions there)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return {
        "kernelspec": notebook["metadata"].get("kernelspec"),
        "cells": [
            {
                "cell_type": cell["cell_type"],
                "source": "".join(cell["source"]),
                "metadata": cell.get("metadata", {}),
            }
            for cell in notebook["cells"]
        ],
    }


def notebooks_under(release: Path, assignment: str) -> list[Path]:
    """The assignment's notebooks in a release folder, as paths relative to that folder."""
    return sorted(path.relative_to(release) for path in (release / assignment).rglob("*.ipynb"))


def test_every_solution_has_a_release() -> None:
    assert ASSIGNMENTS == sorted(path.name for path in (REPO / "exercises").iterdir() if path.is_dir())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_generated_from_solution(assignment: str, generated_courses: dict[str, Path]) -> None:
    generated_course = generated_courses[assignment]
    generated = notebooks_under(generated_course / "exercises", assignment)
    assert generated == notebooks_under(REPO / "exercises", assignment)
    for notebook in generated:
        assert comparable(REPO / "exercises" / notebook) == comparable(generated_course / "exercises" / notebook), (
            f"exercises/{notebook} differs from what nbgrader generates from solutions/: run "
            f"`nbgrader generate_assignment {assignment} --force` from the repository root"
        )

"""The learner notebooks in exercises/ are exactly what nbgrader generates from solutions/.

Each assignment is generated again, by nbgrader itself, into a temporary course folder (a copy of
nbgrader_config.py and solutions/), and compared with the committed release, cell by cell. So an
edit to a solution that was not followed by

    nbgrader generate_assignment <assignment> --force

fails here, and a hand edit of exercises/ does too.
"""

import json
import os
import shutil
import subprocess
import sys
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
def test_release_is_generated_from_solution(assignment: str, tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course)  # its root is the folder it sits in
    shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    # nbgrader runs `alembic` (the gradebook's migrations) as a subprocess, found on PATH.
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    generated = notebooks_under(course / "exercises", assignment)
    assert generated == notebooks_under(REPO / "exercises", assignment)
    for notebook in generated:
        assert comparable(REPO / "exercises" / notebook) == comparable(course / "exercises" / notebook), (
            f"exercises/{notebook} differs from what nbgrader generates from solutions/: run "
            f"`nbgrader generate_assignment {assignment} --force` from the repository root"
        )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_run_all_on_the_untouched_release_reaches_every_check_cell(assignment: str) -> None:
    # A learner who opens the notebook and clicks "Run All" before writing anything: each Try it
    # cell that calls an unwritten function raises (it is tagged raises-exception, as Jupyter asks),
    # and the run goes on, so every check cell reports its task at 0 instead of never running.
    import nbformat
    from nbclient import NotebookClient

    (path,) = (REPO / "exercises" / assignment).glob("*.ipynb")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    checks = [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")]
    assert checks
    for cell in checks:
        printed = "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")
        assert f"{assignment} · " in printed and ": 0 / " in printed, printed
    raised = [cell for cell in notebook.cells if any(o.output_type == "error" for o in cell.get("outputs", []))]
    assert raised and all("raises-exception" in cell.metadata.get("tags", []) for cell in raised)

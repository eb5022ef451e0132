"""Take the learner's definitions out of a notebook, without running their experiments.

A notebook has four kinds of cells, told apart by nbgrader's cell metadata:

| cell                         | nbgrader metadata                        | graded run executes it? |
|------------------------------|------------------------------------------|-------------------------|
| setup (imports, the pattern) | locked, not solution, not grade ("Read-only") | yes                |
| answer (the learner's code)  | solution                                 | yes                     |
| check (calls check_task)     | grade, locked                            | no: the grader runs the checks itself |
| anything else (text, demos)  | none                                     | no                      |

So the grader runs only the read-only code cells and the answer cells, top to bottom, each on its
own: a learner's long demo in an ordinary cell never runs during grading, and an answer must not
depend on it. (Read-only cells are for what every learner needs; demos belong in ordinary cells.)
Notebook magics (`%time`, `!pip install`) become `pass`; a cell that fails (a syntax error, an
exception at its top level) is reported and the next cells still run, as in Jupyter.

    >>> namespace, problems = load_namespace("solutions/01_bpe/bpe.ipynb")
    >>> namespace["merge"]([5, 6, 6, 7, 9], (6, 7), 99)
    [5, 6, 99, 9]
    >>> problems
    []
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class GradedCell:
    """A code cell the grader runs: its position in the notebook (from 1, as people count), kind,
    nbgrader id and source."""

    number: int
    kind: Literal["setup", "answer"]
    grade_id: str
    source: str

    @property
    def label(self) -> str:
        """How messages name the cell: "answer cell 'merge' (cell 11)"."""
        return f"{self.kind} cell {self.grade_id!r} (cell {self.number})"


def read_notebook(path: str | Path) -> dict:
    """The notebook at `path` as JSON (nbformat 4), with a clear error if it is not one."""
    try:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {path} as a notebook: {err}") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError(f"{path} is not a Jupyter notebook (no list of cells)")
    return notebook


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _without_magics(source: str) -> str:
    """Turn IPython-only lines (`%time`, `%%time`, `!ls`) into `pass`, keeping line numbers."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines) + "\n"


def graded_cells(notebook: dict) -> list[GradedCell]:
    """The setup and answer code cells of `notebook`, in order (see the module docstring)."""
    cells = []
    for index, cell in enumerate(notebook["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or meta.get("grade"):
            continue
        if meta.get("solution"):
            kind = "answer"
        elif meta.get("locked"):
            kind = "setup"
        else:
            continue
        number = index + 1
        cells.append(GradedCell(number, kind, str(meta.get("grade_id", f"cell-{number}")), _source(cell)))
    return cells


def extract_source(path: str | Path) -> str:
    """The code the grader runs, as one Python file: each graded cell under a comment naming it."""
    return "\n".join(
        f"# ---- {cell.label}\n{_without_magics(cell.source)}" for cell in graded_cells(read_notebook(path))
    )


def load_namespace(path: str | Path) -> tuple[dict, list[str]]:
    """Run the notebook's setup and answer cells in a fresh namespace; return it and the problems.

    A problem is one line per cell that failed, e.g.
    "answer cell 'merge' (cell 11) raised NameError: name 'x' is not defined (line 3)".
    """
    namespace: dict = {"__name__": "__submission__"}
    problems = []
    for cell in graded_cells(read_notebook(path)):
        try:
            code = compile(_without_magics(cell.source), f"<{cell.label}>", "exec")
            exec(code, namespace)  # noqa: S102 - running the learner's code is the point
        except SyntaxError as err:
            problems.append(f"{cell.label} has a syntax error: {err.msg} (line {err.lineno})")
        except BaseException as err:  # the learner's top-level code may raise or exit
            # The line of the cell that was running, not a line inside a function it called.
            lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if f.filename == f"<{cell.label}>"]
            where = f" (line {lines[-1]})" if lines else ""
            problems.append(f"{cell.label} raised {type(err).__name__}: {err}{where}")
    return namespace, problems

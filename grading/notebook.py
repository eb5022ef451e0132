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

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from grading.learner_side import run_cells

MiB = 2**20
# The most a notebook file and one graded cell's source may hold: a released notebook is a few
# hundred KiB and an answer a few KiB, so only a submission meant to exhaust the grader's memory
# reaches these. Beyond them the notebook scores 0 with a message that says why.
MAX_NOTEBOOK_BYTES = 20 * MiB
MAX_CELL_CHARACTERS = 1 * MiB
# What a path that is not a regular file is, for the message that refuses it.
_FILE_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


@dataclass(frozen=True)
class GradedCell:
    """A code cell the grader runs: its position in the notebook (from 1, as people count), kind,
    nbgrader id and source."""

    number: int
    kind: Literal["setup", "answer"]
    grade_id: str
    source: str

    @property
    def code(self) -> str:
        """The source as the grader runs it (and scans it): magics turned into `pass`."""
        return _without_magics(self.source)

    @property
    def label(self) -> str:
        """How messages name the cell: "answer cell 'merge' (cell 11)"."""
        return f"{self.kind} cell {self.grade_id!r} (cell {self.number})"


def _regular_file_bytes(path: str | Path, limit: int) -> bytes:
    """The content of `path` if it is a regular file of at most `limit` bytes, else a ValueError
    that says what it is. The path is a submission's: a symbolic link is not followed (it could
    point at the solution, another learner's notebook or /dev/zero), and a FIFO must not block
    the open (O_NONBLOCK); fstat then checks the file actually opened, not a name that may have
    changed since."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symbolic link, not a notebook file: links are not followed") from None
        raise ValueError(f"cannot read {path} as a notebook: {err.strerror}") from None
    with os.fdopen(handle, "rb") as file:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(mode), "something else")
            raise ValueError(f"{path} is not a regular file ({kind}), so it is not read as a notebook")
        content = file.read(limit + 1)
    if len(content) > limit:
        raise ValueError(f"{path} is more than the {limit // MiB} MiB a notebook may have, so it is not read")
    return content


def read_notebook(path: str | Path) -> dict:
    """The notebook at `path` as JSON (nbformat 4), with a clear ValueError if it is not one:
    not a regular file, a symbolic link, larger than MAX_NOTEBOOK_BYTES, not JSON. The file is
    only read (opened read-only), never written."""
    content = _regular_file_bytes(path, MAX_NOTEBOOK_BYTES)
    try:
        notebook = json.loads(content.decode("utf-8-sig"))  # -sig: a byte-order mark, as some editors write, is skipped
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {path} as a notebook: {err}") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError(f"{path} is not a Jupyter notebook (no list of cells)")
    return notebook


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(map(str, source)) if isinstance(source, list) else str(source)


def _dict(value: object) -> dict:
    """`value` if it is a dict, else {}: a hand-edited notebook may hold anything anywhere."""
    return value if isinstance(value, dict) else {}


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
    """The setup and answer code cells of `notebook`, in order (see the module docstring).
    Raises ValueError for a cell longer than MAX_CELL_CHARACTERS."""
    cells = []
    for index, cell in enumerate(notebook["cells"]):
        cell = _dict(cell)
        meta = _dict(_dict(cell.get("metadata")).get("nbgrader"))
        if cell.get("cell_type") != "code" or meta.get("grade"):
            continue
        if meta.get("solution"):
            kind = "answer"
        elif meta.get("locked"):
            kind = "setup"
        else:
            continue
        number = index + 1
        source = _source(cell)
        if len(source) > MAX_CELL_CHARACTERS:
            raise ValueError(f"cell {number} is more than the {MAX_CELL_CHARACTERS // MiB} MiB a cell may have "
                             f"({len(source):,} characters), so the notebook is not graded")
        cells.append(GradedCell(number, kind, str(meta.get("grade_id", f"cell-{number}")), source))
    return cells


def extract_source(path: str | Path) -> str:
    """The code the grader runs, as one Python file: each graded cell under a comment naming it."""
    return "\n".join(
        f"# ---- {cell.label}\n{cell.code}" for cell in graded_cells(read_notebook(path))
    )


def cells_to_run(cells: list[GradedCell]) -> list[tuple[str, str]]:
    """(label, source) per graded cell, magics turned into `pass`: what learner_side.run_cells runs."""
    return [(cell.label, cell.code) for cell in cells]


def load_namespace(path: str | Path) -> tuple[dict, list[str]]:
    """Run the notebook's setup and answer cells in a fresh namespace, in THIS process; return the
    namespace and the problems. (The batch grader runs them in a sandbox instead: grader.py.)

    A problem is one line per cell that failed, e.g.
    "answer cell 'merge' (cell 11) raised NameError: name 'x' is not defined (line 3)".
    """
    namespace: dict = {"__name__": "__submission__"}
    problems = run_cells(cells_to_run(graded_cells(read_notebook(path))), namespace)
    return namespace, problems

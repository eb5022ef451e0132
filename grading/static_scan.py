"""Read the learner's source before running it: what it must not use costs the points of its task.

Three things are looked for in the graded cells (setup and answer cells), without running them:

- `import course_lib` (or `from course_lib... import ...`): the course's reference implementation.
  The sandbox makes it unimportable anyway; this gives the learner the reason in words.
- text naming the course's files: a notebook (".ipynb"), the `solutions/` folder, the gradebook.
  Reading the solution notebook, or another learner's, is borrowing the answer.
- the torch functions an exercise forbids for a task (`FORBIDDEN` in its module), however they
  are reached: `F.linear` after `import torch.nn.functional as F`, `torch.nn.functional.linear`,
  `from torch.nn.functional import linear`, `getattr(F, "linear")`.

    >>> cells = [GradedCell(3, "answer", "linear", "import torch.nn.functional as F\\n"
    ...                     "def linear(x, w):\\n    return F.linear(x, w)\\n")]
    >>> [f.message for f in scan(cells, ["linear"], {"linear": ["torch.nn.functional.linear"]})]
    ["Not allowed: answer cell 'linear' (cell 3) uses torch.nn.functional.linear (line 3), which linear must not call, so linear scores 0. Write the computation yourself."]

A finding costs the task of the cell it is in; a finding in a cell that belongs to no task (the
setup cell, a renamed cell) costs every task it could concern. The sandbox's tripwires catch
forbidden calls the text hides (see learner_side.Tripwires).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from grading.checks import NOT_ALLOWED
from grading.learner_side import is_course_module
from grading.notebook import GradedCell

# Text in a string that points at the course's files rather than at the learner's own work.
_COURSE_FILES = (".ipynb", "solutions/", "solutions\\", "gradebook")


@dataclass(frozen=True)
class Finding:
    """Something the source must not do: the tasks it costs and the message that says why."""

    tasks: tuple[str, ...]
    message: str


def _aliases(trees: list[ast.AST]) -> dict[str, str]:
    """Local name -> the dotted module or object it stands for, from every import of every cell
    (cells share one namespace): `import torch.nn.functional as F` gives {"F": "torch.nn.functional"}."""
    names: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        names[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        names[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted name an expression stands for (`F.linear` -> "torch.nn.functional.linear"),
    or None when it is not a chain of names rooted in an import."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        base = _dotted(node.args[0], aliases)
        return f"{base}.{node.args[1].value}" if base else None
    return None


def _uses(tree: ast.AST, aliases: dict[str, str]) -> list[tuple[str, int]]:
    """(dotted name, line) for every name the tree refers to through an import."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, (ast.Name, ast.Attribute, ast.Call)):
            name = _dotted(node, aliases)
            if name:
                found.append((name, node.lineno))
    return found


def _imports_course(tree: ast.AST) -> tuple[str, int] | None:
    """The first import of course_lib or the grader in `tree`, as (package, line), or None."""
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules = [node.module or ""]
        for module in modules:
            if is_course_module(module):
                return module.split(".")[0], node.lineno
    return None


def _course_file(tree: ast.AST) -> tuple[str, int] | None:
    """The first string constant that names a course file, and its line, or None."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(part in node.value for part in _COURSE_FILES):
                return node.value, node.lineno
    return None


def _tasks_of(cell: GradedCell, tasks: list[str]) -> tuple[str, ...]:
    return (cell.grade_id,) if cell.grade_id in tasks else tuple(tasks)


def _cost(tasks: tuple[str, ...]) -> str:
    return f"{tasks[0]} scores 0" if len(tasks) == 1 else f"{', '.join(tasks)} score 0"


def scan(cells: list[GradedCell], tasks: list[str], forbidden: dict[str, list[str]]) -> list[Finding]:
    """Every finding in `cells` (see the module docstring); cells that do not parse are skipped
    (running them reports the syntax error)."""
    trees: list[tuple[GradedCell, ast.AST]] = []
    for cell in cells:
        try:
            trees.append((cell, ast.parse(cell.source)))
        except (SyntaxError, ValueError):
            continue
    aliases = _aliases([tree for _, tree in trees])
    findings = []
    for cell, tree in trees:
        cost = _tasks_of(cell, tasks)
        imported = _imports_course(tree)
        if imported is not None:
            package, line = imported
            findings.append(Finding(cost, (
                f"{NOT_ALLOWED}: {cell.label} imports {package} (line {line}), the course's own code, "
                f"which is not available while grading, so {_cost(cost)}. "
                "Write your own implementation."
            )))
        named = _course_file(tree)
        if named is not None:
            findings.append(Finding(cost, (
                f"{NOT_ALLOWED}: {cell.label} refers to {named[0]!r} (line {named[1]}): the course's notebooks "
                f"and files are not yours to read while grading, so {_cost(cost)}."
            )))
        uses = _uses(tree, aliases)
        for task in cost:
            banned = set(forbidden.get(task, ()))
            hits = [(name, line) for name, line in uses if name in banned]
            if hits:
                name, line = hits[0]
                findings.append(Finding((task,), (
                    f"{NOT_ALLOWED}: {cell.label} uses {name} (line {line}), which {task} must not call, "
                    f"so {task} scores 0. Write the computation yourself."
                )))
    return findings

"""Read the learner's source before running it: what it must not use costs the points of its task.

What is read is exactly the text the sandbox runs (magics already turned into `pass`), and these
are looked for, without running anything:

- `import course_lib` or `import grading` (or `from ... import ...`): the course's own code; and
  `import grading_child`, the grader's learner-side modules as the sandbox names them.
  The sandbox makes them unimportable anyway; this gives the learner the reason in words.
- text naming the course's files: a notebook (".ipynb"), the `solutions/` folder, the gradebook.
  Reading the solution notebook, or another learner's, is borrowing the answer.
- the torch functions an exercise forbids for a task (`FORBIDDEN` in its module), however they
  are reached by name: `F.linear` after `import torch.nn.functional as F`,
  `torch.nn.functional.linear`, `from torch.nn.functional import linear`, `getattr(F, "linear")`.
- ways around those rules, which no answer needs: torch's internal namespaces (`torch.ops`,
  `torch._C`, `torch._VF`, autograd's engine), `__import__`, `importlib`, `sys.modules`,
  `eval`/`exec`/`compile` of a built string, `getattr` on a torch object with a name that is not
  written out, and a function's `__closure__`/`__globals__` (where a tripwire keeps the real one).

    >>> cells = [GradedCell(3, "answer", "linear", "import torch.nn.functional as F\\n"
    ...                     "def linear(x, w):\\n    return F.linear(x, w)\\n")]
    >>> [f.message for f in scan(cells, ["linear"], {"linear": ["torch.nn.functional.linear"]})]
    ["Not allowed: answer cell 'linear' (cell 3) uses torch.nn.functional.linear (line 3), which linear must not call, so linear scores 0. Write the computation yourself."]

A finding costs the task the flagged code serves: the task whose function or class (a top-level
`def merge` or `class Linear`) holds it, wherever the cell is; outside any, the task of its cell,
or every task for a cell that belongs to none (the setup cell, a renamed cell). The sandbox's
tripwires catch forbidden calls the text hides (see learner_side.Tripwires); neither is a proof,
and a determined bypass of both is for an instructor's review.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from grading.checks import NOT_ALLOWED
from grading.learner_side import CHILD_PACKAGE, is_course_module
from grading.notebook import GradedCell

# Text in a string that points at the course's files rather than at the learner's own work.
_COURSE_FILES = (".ipynb", "solutions/", "solutions\\", "gradebook")
# Names that reach torch's kernels or autograd behind the public functions (torch.ops.aten.linear
# is F.linear under another name), or code and modules by a name built at run time.
_BACKDOOR_PREFIXES = ("torch.ops", "torch._C", "torch._VF", "torch.autograd.variable.Variable._execution_engine",
                      "torch.autograd.Variable._execution_engine", "importlib", "sys.modules")
_DYNAMIC_CODE = {"eval", "exec", "compile", "__import__"}
# Attributes where a function keeps what it closes over: the real function behind a tripwire.
_FUNCTION_INSIDES = {"__closure__", "__globals__"}


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
            if is_course_module(module) or module.split(".")[0] == CHILD_PACKAGE:
                return module.split(".")[0], node.lineno
    return None


def _course_file(tree: ast.AST) -> tuple[str, int] | None:
    """The first string constant that names a course file, and its line, or None."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(part in node.value for part in _COURSE_FILES):
                return node.value, node.lineno
    return None


def _backdoor(tree: ast.AST, aliases: dict[str, str]) -> tuple[str, int] | None:
    """The first way around the rules in `tree` (see the module docstring), as (what, line)."""
    for name, line in _uses(tree, aliases):
        if name.startswith(_BACKDOOR_PREFIXES):
            return name, line
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "importlib" for alias in node.names):
            return "importlib", node.lineno
        if isinstance(node, ast.Attribute) and node.attr in _FUNCTION_INSIDES:
            return node.attr, node.lineno
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        if node.func.id in _DYNAMIC_CODE and not isinstance(node.args[0], ast.Constant):
            return f"{node.func.id}() of a built string", node.lineno
        if node.func.id == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
            owner = _dotted(node.args[0], aliases)
            if owner is not None and owner.split(".")[0] == "torch":
                return f"getattr({owner}, <a name built at run time>)", node.lineno
    return None


def _tasks_of(cell: GradedCell, tasks: list[str]) -> tuple[str, ...]:
    return (cell.grade_id,) if cell.grade_id in tasks else tuple(tasks)


def _served(tree: ast.Module, cell: GradedCell, tasks: list[str]) -> list[tuple[tuple[str, ...], ast.Module]]:
    """The cell's code split by the task each part serves: each top-level `def task` or `class
    task` is that task's wherever it stands; the rest is the cell's."""
    own = [statement for statement in tree.body
           if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and statement.name in tasks]
    rest = [statement for statement in tree.body if statement not in own]
    parts = [((statement.name,), ast.Module(body=[statement], type_ignores=[])) for statement in own]
    return parts + [(_tasks_of(cell, tasks), ast.Module(body=rest, type_ignores=[]))]


def _cost(tasks: tuple[str, ...]) -> str:
    return f"{tasks[0]} scores 0" if len(tasks) == 1 else f"{', '.join(tasks)} score 0"


def scan(cells: list[GradedCell], tasks: list[str], forbidden: dict[str, list[str]]) -> list[Finding]:
    """Every finding in `cells` (see the module docstring); cells that do not parse are skipped
    (running them reports the syntax error: the same text fails the same way in the sandbox)."""
    trees: list[tuple[GradedCell, ast.Module]] = []
    for cell in cells:
        try:
            trees.append((cell, ast.parse(cell.code)))
        except (SyntaxError, ValueError):
            continue
    aliases = _aliases([tree for _, tree in trees])
    findings = []
    for cell, tree in trees:
        for cost, part in _served(tree, cell, tasks):
            findings += _part_findings(cell, part, cost, aliases, forbidden)
    return findings


def _part_findings(cell: GradedCell, tree: ast.Module, cost: tuple[str, ...], aliases: dict[str, str],
                   forbidden: dict[str, list[str]]) -> list[Finding]:
    """The findings in one part of a cell, each costing the tasks `cost` that part serves."""
    findings = []
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
    around = _backdoor(tree, aliases)
    if around is not None:
        what, line = around
        findings.append(Finding(cost, (
            f"{NOT_ALLOWED}: {cell.label} uses {what} (line {line}), a way around the exercise's rules that no "
            f"answer needs, so {_cost(cost)}. Write the computation with torch's ordinary functions."
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

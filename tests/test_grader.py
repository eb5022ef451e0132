"""grade_submission: broken notebooks get clear messages and zero, never an exception; grading is
repeatable and leaves the submission as it was; forbidden torch functions cost their task.

The solution's full marks, the release's zero and the typical mistakes of exercise 1, all graded
through grade_submission, are in test_exercise_01_bpe.py; attacks are in test_hostile_submissions.py.
"""

import doctest
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from grading import grade_submission, learner_side, registry, run_checks, static_scan
from grading.checks import NOT_ALLOWED, Check, Input, SetupError, call
from grading.exercises import bpe_calls
from grading.in_process import format_report
from grading.notebook import GradedCell
from grading.registry import EXERCISES, checks_for
from grading.static_scan import scan

REPO = Path(__file__).resolve().parent.parent
SOLUTION = REPO / "solutions" / "01_bpe" / "bpe.ipynb"
NUMBER_OF_CHECKS = len(checks_for("01_bpe"))


def write_cells(path: Path, cells: list[tuple[str, str]]) -> Path:
    """A minimal nbgrader notebook: one answer cell per (grade id, source)."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"nbgrader": {"grade_id": grade_id, "solution": True, "grade": False, "locked": False}},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for grade_id, source in cells
        ],
    }
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


def assert_all_zero(report, message: str) -> None:
    assert report.score == 0 and report.max_score == 26
    assert len(report.results) == NUMBER_OF_CHECKS
    for result in report.results:
        assert result.score == 0 and not result.passed
        assert message in result.message, result.message


# ---- broken notebooks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"cells": [', "cannot read"),
        ("", "cannot read"),
        ("[1, 2, 3]", "is not a Jupyter notebook"),
        (b"\xff\xfe\x00garbage", "cannot read"),
    ],
)
def test_unreadable_notebook_scores_zero_with_a_clear_message(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    report = grade_submission("01_bpe", path)
    assert_all_zero(report, "Not graded: ")
    assert len(report.problems) == 1 and message in report.problems[0]
    assert message in report.results[0].message


def test_missing_file_scores_zero(tmp_path: Path) -> None:
    report = grade_submission("01_bpe", tmp_path / "nowhere.ipynb")
    assert_all_zero(report, "cannot read")


def test_notebook_without_cells_scores_zero_and_says_which_function_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "empty.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}))
    report = grade_submission("01_bpe", path)
    assert report.problems == []
    assert_all_zero(report, "no function named")
    assert "no function named `merge` is defined" in report.results[3].message


def test_hand_edited_cells_of_any_shape_do_not_break_the_grader(tmp_path: Path) -> None:
    path = tmp_path / "odd.ipynb"
    path.write_text(json.dumps({"cells": [1, None, {"cell_type": "code", "metadata": []}, {"metadata": {"nbgrader": 3}}]}))
    assert_all_zero(grade_submission("01_bpe", path), "no function named")


@pytest.mark.parametrize(
    ("answers", "check_name", "message"),
    [
        ({"merge": "x = 1\n"}, "merge replaces non-overlapping pairs", "no function named `merge` is defined"),
        ({"merge": "merge = 42\n"}, "merge replaces non-overlapping pairs", "`merge` is a int, not a function"),
        (
            {"merge": "def merge(ids, pair):\n    return ids\n"},
            "merge replaces non-overlapping pairs",
            "raised TypeError: merge() takes 2 positional arguments but 3 were given",
        ),
        (
            {"merge": "def merge(ids, pair, new_id):\n    return tuple(ids)\n"},
            "merge replaces non-overlapping pairs",
            "merge should return a list of ints, got tuple",
        ),
        (
            {"get_pair_counts": "def get_pair_counts(ids):\n    return [(a, b) for a, b in zip(ids, ids[1:])]\n"},
            "get_pair_counts counts each adjacent pair",
            "get_pair_counts should return a dict mapping pairs (a, b) to counts, got list",
        ),
        (
            {"decode": "def decode(ids, merges):\n    return bytes(ids)\n"},
            "decode replaces invalid UTF-8 with U+FFFD",
            "decode should return a str, got bytes",
        ),
    ],
)
def test_wrong_definitions_score_zero_with_a_clear_message(notebook_with, answers, check_name, message) -> None:
    # A merge that returns its input unchanged makes the solution's encode loop: a short timeout.
    report = grade_submission("01_bpe", notebook_with(answers), timeout=1)
    (task,) = answers
    assert report.problems == []
    assert all(result.score == 0 for result in report.results if result.task == task)
    independent = "decode" if task != "decode" else "get_pair_counts"  # uses no other function
    assert all(result.passed for result in report.results if result.task == independent)
    (result,) = [result for result in report.results if result.name == check_name]
    assert message in result.message, result.message
    # Messages read as English: a sentence per problem, no "it merge should ...", no "..".
    assert ": it " not in result.message and ".." not in result.message, result.message


def test_a_broken_cell_is_a_problem_and_the_other_cells_still_run(notebook_with) -> None:
    path = notebook_with({"merge": "def merge(ids, pair, new_id)\n    return ids\n", "decode": "raise SystemExit('stop')\n"})
    report = grade_submission("01_bpe", path)
    assert report.problems == [
        "answer cell 'merge' (cell 11) has a syntax error: expected ':' (line 1)",
        "answer cell 'decode' (cell 26) raised SystemExit: stop (line 1)",
    ]
    scores = {task: sum(r.score for r in report.results if r.task == task) for task in ("get_pair_counts", "decode")}
    assert scores == {"get_pair_counts": 3, "decode": 0}
    # The merge checks say what is wrong with the cell, not that there is no merge.
    merge_messages = [r.message for r in report.results if r.task == "merge"]
    assert merge_messages == ["Not graded: answer cell 'merge' (cell 11) has a syntax error: expected ':' (line 1). "
                              "Fix that cell, run it, then check again."] * len(merge_messages)


# ---- repeatable, read-only --------------------------------------------------------------------


def test_grading_twice_gives_the_same_scores_and_leaves_the_file_alone(notebook_with) -> None:
    path = notebook_with({"encode": "def encode(text, merges):\n    return list(text.encode())\n"})
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    first, second = (grade_submission("01_bpe", path) for _ in range(2))
    assert [r.score for r in first.results] == [r.score for r in second.results]
    assert [r.message for r in first.results] == [r.message for r in second.results]
    assert 0 < first.score < 26
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before


def test_results_do_not_depend_on_hash_randomisation(notebook_with) -> None:
    # The order of a set of str changes with Python's hash seed; the child fixes the seed, so a
    # submission that (unwisely) depends on that order is still graded the same every time.
    path = notebook_with({"decode": "def decode(ids, merges):\n    return ''.join({'ab', 'cd', 'ef', 'gh', 'ij'})\n"})
    first, second = (grade_submission("01_bpe", path) for _ in range(2))
    name = "decode reads UTF-8 and expands merged ids"  # a visible check: it shows what came back
    (message,) = [result.message for result in first.results if result.name == name]
    assert "\n  got      '" in message
    assert [result.message for result in second.results if result.name == name] == [message]


def test_the_report_names_the_student_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "bpe.ipynb"
    path.write_text("")
    report = grade_submission("01_bpe", path, student="bob")
    assert (report.student, report.submission, report.exercise, report.status) == ("bob", str(path), "01_bpe", "unreadable")


def test_a_reference_that_cannot_be_built_stops_grading_before_any_learner_code_runs(tmp_path, monkeypatch) -> None:
    # Offline without the Tiny Shakespeare file: no learner may score 0 for the grader's missing
    # file, so grading stops with a message naming what is missing.
    from course_lib.datasets import DatasetUnavailableError

    def offline() -> str:
        raise DatasetUnavailableError("no network: set COURSE_LIB_DATA")

    check = Check("affine", "needs a download", call("affine", Input(offline, "Tiny Shakespeare")), expect=[])
    monkeypatch.setitem(EXERCISES, "99_offline", SimpleNamespace(NOTEBOOK="x.ipynb", CHECKS=[check], FORBIDDEN={}))
    marker = tmp_path / "ran"
    notebook = write_cells(tmp_path / "x.ipynb", [("affine", f"open({str(marker)!r}, 'w')\n")])
    with pytest.raises(SetupError, match="<Tiny Shakespeare>: DatasetUnavailableError: no network: set COURSE_LIB_DATA"):
        grade_submission("99_offline", notebook, use_bubblewrap=False)
    assert not marker.exists()


def test_an_unknown_exercise_is_misuse() -> None:
    with pytest.raises(KeyError, match="unknown exercise"):
        grade_submission("99_nothing", SOLUTION)


# ---- forbidden torch functions ----------------------------------------------------------------


def close_to(expected: list, actual: object) -> bool:
    return isinstance(actual, list) and len(actual) == len(expected) and all(
        isinstance(a, float) and abs(a - e) <= 1e-5 for e, a in zip(expected, actual)
    )


X, W, B = [1.0, -2.0, 0.5], [[0.5, 1.0, -1.0], [2.0, 0.0, 3.0]], [0.25, -1.0]


def reference_affine(x: list, w: list, b: list) -> list[float]:
    return (torch.tensor(w, dtype=torch.float64) @ torch.tensor(x, dtype=torch.float64) + torch.tensor(b)).tolist()


AFFINE = SimpleNamespace(
    NOTEBOOK="affine.ipynb",
    CHECKS=[Check("affine", "affine computes W x + b", call("affine", X, W, B), reference=reference_affine,
                  compare=close_to, points=2, hidden=True)],
    FORBIDDEN={"affine": ["torch.nn.functional.linear", "torch.nn.Linear"]},
)

HONEST = """
import torch
def affine(x, w, b):
    return (torch.tensor(w) @ torch.tensor(x) + torch.tensor(b)).tolist()
"""
PLAIN_CALL = """
import torch
import torch.nn.functional as F
def affine(x, w, b):
    return F.linear(torch.tensor(x), torch.tensor(w), torch.tensor(b)).tolist()
"""
# The name never appears as such in the text: only the sandbox's tripwire can see the call.
HIDDEN_CALL = """
import torch
layer_function = vars(torch.nn.functional)["lin" + "ear"]
def affine(x, w, b):
    return layer_function(torch.tensor(x), torch.tensor(w), torch.tensor(b)).tolist()
"""
MODULE_CALL = """
import torch
from torch import nn
def affine(x, w, b):
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
        layer.bias.copy_(torch.tensor(b))
        return layer(torch.tensor(x)).tolist()
"""


@pytest.fixture
def affine_exercise(monkeypatch):
    monkeypatch.setitem(EXERCISES, "99_affine", AFFINE)
    return "99_affine"


@pytest.mark.parametrize(
    ("source", "score", "message"),
    [
        (HONEST, 2, "correct"),
        (PLAIN_CALL, 0, "answer cell 'affine' (cell 1) uses torch.nn.functional.linear (line 5), which affine must not call"),
        (HIDDEN_CALL, 0, "affine's code called torch.nn.functional.linear, which affine must not use"),
        (MODULE_CALL, 0, "uses torch.nn.Linear (line 5), which affine must not call"),
    ],
    ids=["honest", "F.linear", "F.linear-hidden-from-the-text", "nn.Linear"],
)
def test_forbidden_torch_function_costs_its_task(tmp_path: Path, affine_exercise: str, source, score, message) -> None:
    report = grade_submission(affine_exercise, write_cells(tmp_path / "affine.ipynb", [("affine", source)]))
    (result,) = report.results
    assert report.problems == []
    assert result.score == score, result.message
    assert message in result.message
    if score == 0:
        assert result.message.startswith(NOT_ALLOWED)
        # A hidden check shows this message: it holds no expected value.
        assert message in format_report(report.results, "99_affine")


def test_forbidden_call_is_caught_in_the_notebook_too(affine_exercise: str) -> None:
    # In the learner's own kernel the tripwires are in place only while a check runs, so they
    # see F.linear looked up at call time (an alias made earlier escapes them: the batch grader,
    # which installs them before the cells run and also scans the text, is the one that counts).
    original = torch.nn.functional.linear
    namespace: dict = {}
    exec(PLAIN_CALL, namespace)
    (result,) = run_checks(namespace, affine_exercise)
    assert result.score == 0 and "called torch.nn.functional.linear" in result.message
    assert torch.nn.functional.linear is original  # torch is left as it was
    namespace = {}
    exec(HONEST, namespace)
    assert run_checks(namespace, affine_exercise)[0].passed


def test_static_scan_follows_imports_and_aliases() -> None:
    def uses(source: str, cell: str = "affine") -> list[str]:
        cells = [GradedCell(1, "answer", cell, source)]
        return [finding.message for finding in scan(cells, ["affine", "other"], AFFINE.FORBIDDEN)]

    assert uses("from torch.nn.functional import linear as lin\n")
    assert uses("import torch\ny = torch.nn.functional.linear\n")
    assert uses("from torch import nn\nclass L(nn.Linear):\n    pass\n")
    assert uses("import torch as t\nf = getattr(t.nn.functional, 'linear')\n")
    assert not uses("import torch\ny = torch.nn.functional.relu\n")
    assert not uses("import torch.nn.functional as F\ny = F.linear\n", cell="other")  # other's cell
    assert uses("import course_lib\n", cell="other")[0].startswith(
        "Not allowed: answer cell 'other' (cell 1) imports course_lib (line 1), the course"
    )
    assert "refers to '../solutions/01_bpe/bpe.ipynb'" in uses("open('../solutions/01_bpe/bpe.ipynb')\n")[0]


@pytest.mark.parametrize("module", [learner_side, static_scan, registry, bpe_calls], ids=lambda m: m.__name__)
def test_docstring_examples_hold(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


# ---- the notebook's check cells -----------------------------------------------------------------


def test_a_check_cell_stops_a_call_that_never_returns_and_says_which() -> None:
    namespace: dict = {}
    exec("def merge(ids, pair, new_id):\n    while True:\n        pass\n", namespace)
    first, second, *_ = run_checks(namespace, "01_bpe", "merge", timeout=0.2)
    assert first.message == ("Called merge([5, 6, 6, 7, 9], (6, 7), 99): merge did not finish within 0.2 s "
                             "(an infinite loop, or far too slow?).")
    assert second.message.startswith("Called merge([1, 1, 1], (1, 1), 256): merge did not finish")


def test_a_forbidden_call_in_the_notebook_costs_the_whole_task_and_only_it() -> None:
    # F.linear in Linear.forward: the parameter checks never call forward, yet score 0 too.
    namespace: dict = {}
    exec("import math, torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
         "class Linear(nn.Module):\n"
         "    def __init__(self, in_features, out_features, bias=True):\n"
         "        super().__init__()\n        k = in_features ** -0.5\n"
         "        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-k, k))\n"
         "        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-k, k)) if bias else None\n"
         "    def forward(self, x):\n        return F.linear(x, self.weight, self.bias)\n", namespace)
    results = run_checks(namespace, "02_linear")
    linear = [r for r in results if r.task == "Linear"]
    assert all(r.score == 0 and "Linear's code called torch.nn.functional.linear" in r.message for r in linear)
    assert all("linear_backward raised" in r.message or "no function named" in r.message
               for r in results if r.task == "linear_backward")


# ---- ways around the forbidden-function rule ----------------------------------------------------


def findings_in(source: str, exercise: str, grade_id: str) -> dict[tuple[str, ...], list[str]]:
    """What the static scan finds in one answer cell of `exercise`, by the tasks each finding costs."""
    cells = [GradedCell(5, "answer", grade_id, source)]
    found: dict[tuple[str, ...], list[str]] = {}
    for finding in scan(cells, registry.tasks(exercise), registry.forbidden_for(exercise)):
        found.setdefault(finding.tasks, []).append(finding.message)
    return found


@pytest.mark.parametrize(
    ("exercise", "task", "body", "what"),
    [
        ("02_linear", "Linear", "return torch.ops.aten.linear(x, self.weight, self.bias)", "torch.ops.aten.linear"),
        ("03_attention", "scaled_dot_product_attention",
         "return torch._C._nn.scaled_dot_product_attention(q, k, v)", "torch._C._nn.scaled_dot_product_attention"),
        ("04_training_loop", "cross_entropy", "return torch._C._nn.cross_entropy_loss(logits, targets)",
         "torch._C._nn.cross_entropy_loss"),
        ("04_training_loop", "cross_entropy", "return -torch._C.TensorBase.log_softmax(logits, -1).mean()",
         "torch._C.TensorBase.log_softmax"),
        ("02_linear", "linear_backward",
         "return Variable._execution_engine.run_backward((x,), (grad_output,), False)",
         "torch.autograd.Variable._execution_engine.run_backward"),
        ("02_linear", "Linear", "return torch.nn.functional.linear.__closure__[0].cell_contents(x, self.weight)",
         "__closure__"),
        ("03_attention", "scaled_dot_product_attention", "return getattr(torch.nn.functional, name)(q, k, v)",
         "getattr(torch.nn.functional, <a name built at run time>)"),
        ("04_training_loop", "cross_entropy", "return eval('F.cross' + '_entropy')(logits, targets)",
         "eval() of a built string"),
        ("04_training_loop", "cross_entropy", "import importlib; return importlib.import_module('torch.nn.functional')",
         "importlib.import_module"),
        ("04_training_loop", "cross_entropy",
         "import sys; return sys.modules['torch'].nn.functional.cross_entropy(logits, targets)", "sys.modules"),
    ],
)
def test_ways_around_the_rule_cost_the_task_whose_code_uses_them(exercise, task, body, what) -> None:
    # Each reaches a forbidden computation under a name the tripwires do not wrap, or takes the
    # real function from where a tripwire keeps it. The code sits in the notebook's *other* task's
    # cell: it costs the task whose function holds it, wherever it is.
    other = next(name for name in registry.tasks(exercise) if name != task)
    header = {"Linear": "class Linear(nn.Module):\n    def forward(self, x):\n",
              "linear_backward": "def linear_backward(x, weight, grad_output):\n",
              "scaled_dot_product_attention": "def scaled_dot_product_attention(q, k, v, mask=None):\n",
              "cross_entropy": "def cross_entropy(logits, targets):\n"}[task]
    indent = "        " if task == "Linear" else "    "
    source = ("import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
              "from torch.autograd import Variable\nname = 'scaled_dot_product_' + 'attention'\n"
              + header + indent + body + "\n")
    found = findings_in(source, exercise, other)
    assert list(found) == [(task,)], found  # the other task's own code is clean
    assert any(f"uses {what} (line" in message for message in found[(task,)]), found
    assert all(message.startswith(NOT_ALLOWED) for message in found[(task,)])


def test_the_scan_reads_what_the_sandbox_runs_not_the_raw_cell() -> None:
    # In the raw cell F.linear sits inside a string; once the `%` line becomes `pass` (as the
    # grader runs it) the string ends earlier and the line is code.
    source = ('text = """\n%"""\n"""\nimport torch.nn.functional as F; hidden = F.linear\n#"""\n'
              "class Linear:\n    pass\n")
    found = findings_in(source, "02_linear", "Linear")
    assert any("uses torch.nn.functional.linear (line 4)" in message for message in found[("Linear",)]), found


def test_ordinary_code_is_not_flagged() -> None:
    source = ("import torch\nfrom torch import nn\n"
              "class Linear(nn.Module):\n    def forward(self, x):\n"
              "        kind = getattr(torch, 'float32')\n        return (x @ self.weight.T).to(kind)\n"
              "def linear_backward(x, weight, grad_output):\n    name = 'weight'\n"
              "    return getattr(grad_output, 'sum')(0), compile('1 + 1', 'x', 'eval'), name\n")
    assert findings_in(source, "02_linear", "Linear") == {}


def test_a_way_around_the_rule_scores_0_in_the_sandbox(notebook_with) -> None:
    source = ("import math\nimport torch\nfrom torch import nn\n\n"
              "class Linear(nn.Module):\n"
              "    def __init__(self, in_features, out_features, bias=True):\n"
              "        super().__init__()\n        k = 1 / math.sqrt(in_features)\n"
              "        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-k, k))\n"
              "        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-k, k)) if bias else None\n"
              "    def forward(self, x):\n        return torch.ops.aten.linear(x, self.weight, self.bias)\n")
    solution = REPO / "solutions" / "02_linear" / "linear.ipynb"
    report = grade_submission("02_linear", notebook_with({"Linear": source}, base=solution))
    linear = [r for r in report.results if r.task == "Linear"]
    assert all(r.score == 0 and "uses torch.ops.aten.linear (line 12)" in r.message for r in linear)
    assert all(r.passed for r in report.results if r.task == "linear_backward")


def test_every_release_has_the_cells_the_time_budget_counts() -> None:
    """The grader's budget counts registry.released_cells(exercise): one setup cell and one
    answer cell per task, which every released notebook must have."""
    from grading.notebook import graded_cells, read_notebook
    from grading.registry import EXERCISES, notebook_for, released_cells, tasks

    for exercise in EXERCISES:
        cells = graded_cells(read_notebook(REPO / "exercises" / exercise / notebook_for(exercise)))
        assert [cell.kind for cell in cells] == ["setup"] + ["answer"] * len(tasks(exercise)), exercise
        assert len(cells) == released_cells(exercise)

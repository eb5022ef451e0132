"""Exercise 02_linear: typical mistakes lose the points of the checks that name them, correct code
written another way keeps them, and torch's own linear layer or autograd cost their task. What
every exercise must do (the solution passes every check, the released stub none) is tested in
tests/test_exercises.py.

References: torch.nn.Linear and autograd (computed in the checks' references), the chapter's
example worked by hand (below), and PyTorch's documented initialisation, Uniform(-k, k) with
k = 1/sqrt(in_features), which torch.nn.Linear's own parameters must pass too.
"""

import math

import pytest
import torch
from torch import nn
from conftest import write_notebook_with
from exercise_testing import assert_fails_naming, check_named, check_points, grade_all, judged, run_demo_cells
from exercise_testing import with_answer
from submission_notebooks import ASSIGNMENTS

from grading import SubmissionReport, checks_for, run_checks
from grading.checks import NOT_ALLOWED, judge
from grading.in_process import collect, format_report
from grading.learner_side import make_call

EXERCISE = "02_linear"
SOLUTION = ASSIGNMENTS[EXERCISE].solution
TASK_POINTS = ASSIGNMENTS[EXERCISE].task_points


def values(plain: dict) -> list:
    return plain["values"]


# ---- answers: a Linear is built from an __init__ body and a forward ------------------------------

LINEAR_PREFIX = '''
class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
'''
UNIFORM_INIT = '''
        k = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-k, k))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-k, k)) if bias else None
'''
CORRECT_FORWARD = '''
    def forward(self, x):
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y
'''


def linear_with(init: str = UNIFORM_INIT, forward: str = CORRECT_FORWARD) -> str:
    """A Linear whose __init__ body is `init` (8 spaces in) and whose forward is `forward`."""
    return LINEAR_PREFIX + init + forward


# ---- submissions graded in the sandbox: all at once, two at a time (each child imports torch) --

LINEAR_WITH_F_LINEAR = "import torch.nn.functional as F\n" + linear_with(forward='''
    def forward(self, x):
        return F.linear(x, self.weight, self.bias)
''')
BACKWARD_WITH_AUTOGRAD = '''
def linear_backward(x, weight, grad_output):
    x = x.clone().requires_grad_()
    weight = weight.clone().requires_grad_()
    bias = torch.zeros(weight.shape[0], requires_grad=True)
    (x @ weight.T + bias).backward(grad_output)
    return x.grad, weight.grad, bias.grad
'''
# Two mistakes in one notebook, one per task (the tasks are graded independently).
MISSING_TRANSPOSE = linear_with(forward=CORRECT_FORWARD.replace("x @ self.weight.T", "x @ self.weight"))
GRAD_WEIGHT_NOT_SUMMED = '''
def linear_backward(x, weight, grad_output):
    grad_x = grad_output @ weight
    if x.ndim == 1:
        grad_weight = torch.outer(grad_output, x)
    else:
        grad_weight = grad_output.transpose(-2, -1) @ x  # (..., out, in): one per leading index
    grad_bias = grad_output.reshape(-1, weight.shape[0]).sum(0)
    return grad_x, grad_weight, grad_bias
'''

SANDBOXED = {
    "F.linear in Linear": {"Linear": LINEAR_WITH_F_LINEAR},
    ".backward() in linear_backward": {"linear_backward": BACKWARD_WITH_AUTOGRAD},
    "two mistakes": {"Linear": MISSING_TRANSPOSE, "linear_backward": GRAD_WEIGHT_NOT_SUMMED},
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SubmissionReport]:
    folder = tmp_path_factory.mktemp(EXERCISE)
    paths = [write_notebook_with(folder / f"submission{index}.ipynb", answers, SOLUTION)
             for index, answers in enumerate(SANDBOXED.values())]
    return dict(zip(SANDBOXED, grade_all((EXERCISE, path) for path in paths)))


def scores_by_task(report: SubmissionReport) -> dict[str, float]:
    scores = {task: 0.0 for task in TASK_POINTS}
    for result in report.results:
        scores[result.task] += result.score
    return scores


def assert_not_allowed(report: SubmissionReport, task: str, says: str) -> None:
    """Every check of `task` scored 0 because the answer used what the task asks the learner to
    write, with a message that says what it used."""
    for result in report.results:
        if result.task == task:
            assert result.message.startswith(NOT_ALLOWED), result.message
            assert says in result.message, result.message


# ---- the references agree with the chapter's example worked by hand ---------------------------


def test_forward_references_are_the_chapters_numbers() -> None:
    # Section 2.2: 0.4*0.5 - 0.2*1 + 0.6*0.5 + 0.1*2 + 0.1 = 0.6; second row -0.1+0.3+0.2-0.2+0.2 = 0.4.
    # Batch rows 2 and 3: 0.4 - 0.6 + 0.05 + 0.1 = -0.05, -0.2 - 0.4 - 0.05 + 0.2 = -0.45;
    # 0.8 - 0.4 + 0.1 = 0.5, -0.4 + 0.6 + 0.2 = 0.4. Without bias: 0.6 - 0.1, 0.4 - 0.2.
    chapter = check_named(EXERCISE, "Linear computes the chapter's example: one input, then a batch of three")
    one, two, batch = chapter.expected()
    torch.testing.assert_close(torch.tensor(values(one)), torch.tensor([0.6]))
    torch.testing.assert_close(torch.tensor(values(two)), torch.tensor([0.6, 0.4]))
    torch.testing.assert_close(torch.tensor(values(batch)), torch.tensor([[0.6, 0.4], [-0.05, -0.45], [0.5, 0.4]]))
    no_bias = check_named(EXERCISE, "Linear without bias computes x Wᵀ")
    single, rows = no_bias.expected()
    torch.testing.assert_close(torch.tensor(values(single)), torch.tensor([0.5, 0.2]))
    torch.testing.assert_close(torch.tensor(values(rows)), torch.tensor([[0.5, 0.2], [-0.15, -0.65], [0.4, 0.2]]))


def test_backward_references_are_the_hand_computed_gradients() -> None:
    expected = {
        # g = [1]: grad_x = g W, grad_weight = gᵀ x = x, grad_bias = g.
        "linear_backward on the chapter's example (one input, one output)": [
            [[0.4, -0.2, 0.6, 0.1], [[0.5, 1.0, 0.5, 2.0]], [1.0]],
        ],
        # g rows [1, 0], [0, 1], [1, 1]: grad_x rows W[0], W[1], W[0] + W[1];
        # grad_weight row 0 = x rows 0 + 2, row 1 = x rows 1 + 2; grad_bias = column sums of g.
        "linear_backward on a batch of three with two outputs": [
            [
                [[0.4, -0.2, 0.6, 0.1], [-0.2, 0.3, 0.4, -0.1], [0.2, 0.1, 1.0, 0.0]],
                [[2.5, 3.0, 0.5, 2.0], [3.0, 2.0, -1.0, 0.5]],
                [2.0, 2.0],
            ]
        ],
        # g all ones over (2, 3): grad_bias = 6 per output; each row of grad_weight is the sum of
        # all six x rows, 3 times the batch's column sums (3.5, 3, -0.5, 2.5).
        "linear_backward sums grad_weight and grad_bias over every leading dimension": [
            [[[[0.2, 0.1, 1.0, 0.0]] * 3] * 2, [[10.5, 9.0, -1.5, 7.5]] * 2, [6.0, 6.0]],
        ],
    }
    for name, cases in expected.items():
        check = check_named(EXERCISE, name)
        for got, want in zip(check.expected(), cases, strict=True):
            for gradient, hand in zip(got, want, strict=True):
                torch.testing.assert_close(torch.tensor(values(gradient)), torch.tensor(hand))


def test_parameter_reference_is_what_torch_registers() -> None:
    check = check_named(EXERCISE, "Linear registers weight (out, in) and bias (out,) as trainable parameters")
    assert check.expected()[0] == {
        "parameters": [["bias", [2], "float32", True], ["weight", [2, 4], "float32", True]],
        "bias": "Parameter",
    }
    no_bias = check_named(EXERCISE, "Linear with bias=False has a weight and no bias")
    assert no_bias.expected()[0] == {
        "parameters": [["weight", [2, 4], "float32", True]],
        "bias": "None",
    }


INIT_CHECKS = [check for check in checks_for(EXERCISE) if str(check.calls[0].adapter).endswith("init_statistics")]


class KaimingBiasFirst(nn.Module):
    """A correct initialisation written differently: bias drawn first, weight by kaiming_uniform_."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-in_features**-0.5, in_features**-0.5))
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))


@pytest.mark.parametrize("layer_class", [nn.Linear, KaimingBiasFirst], ids=["torch.nn.Linear", "kaiming-bias-first"])
def test_torchs_initialisation_passes_the_init_checks(layer_class: type) -> None:
    # The reference is PyTorch's documented rule; torch's own layer, and a correct layer that
    # draws in another order, must both pass it.
    assert len(INIT_CHECKS) == 2
    for check in INIT_CHECKS:
        actual = make_call({"Linear": layer_class}, check.plain_calls()[0])
        assert check.compare(check.expected()[0], actual), (check.name, actual)


# ---- the notebook's demos ----------------------------------------------------------------------


def test_notebook_demo_cells_run(solution_namespace: dict) -> None:
    # The Try it cells and the closing training loop (only the graded cells run when grading).
    namespace = run_demo_cells(SOLUTION, solution_namespace)
    # Trained by hand with linear_backward: the rule y = 2 x1 - x2 + 0.5 x3 + 0.3 is found.
    torch.testing.assert_close(namespace["model"].weight.data, torch.tensor([[2.0, -1.0, 0.5, 0.0]]), atol=0.02, rtol=0)
    torch.testing.assert_close(namespace["model"].bias.data, torch.tensor([0.3]), atol=0.02, rtol=0)


# ---- torch's own linear layer and autograd cost their task --------------------------------------


def test_f_linear_in_linear_scores_zero_for_linear(reports: dict) -> None:
    report = reports["F.linear in Linear"]
    assert scores_by_task(report) == {"Linear": 0, "linear_backward": 8}
    assert_not_allowed(report, "Linear", "uses torch.nn.functional.linear")


def test_backward_in_linear_backward_scores_zero_for_it(reports: dict) -> None:
    # .backward() on a tensor cannot be seen in the text; the sandbox's tripwire sees the call.
    report = reports[".backward() in linear_backward"]
    assert scores_by_task(report) == {"Linear": 13, "linear_backward": 0}
    assert_not_allowed(report, "linear_backward", "called torch.Tensor.backward")
    for result in report.results:
        if result.task == "linear_backward":
            assert "which linear_backward must not use" in format_report([result], EXERCISE)


@pytest.mark.parametrize(
    ("task", "source", "forbidden"),
    [
        ("Linear", "class Linear(nn.Linear):\n    pass\n", "torch.nn.Linear"),
        ("linear_backward", BACKWARD_WITH_AUTOGRAD.replace(
            "(x @ weight.T + bias).backward(grad_output)\n    return x.grad, weight.grad, bias.grad",
            "return torch.autograd.grad(x @ weight.T + bias, (x, weight, bias), grad_output)"),
         "torch.autograd.grad"),
    ],
    ids=["subclass-of-nn.Linear", "torch.autograd.grad"],
)
def test_forbidden_calls_cost_their_task_in_the_notebook_too(solution_namespace: dict, task, source, forbidden) -> None:
    results = run_checks(with_answer(solution_namespace, source), EXERCISE, task)
    assert all(result.score == 0 for result in results)
    assert f"called {forbidden}" in results[0].message


# ---- typical mistakes lose the points of the checks that catch them ----------------------------

WRONG = {
    "x @ W instead of x @ W.T": (
        MISSING_TRANSPOSE,
        {"Linear computes the chapter's example: one input, then a batch of three",
         "Linear matches torch.nn.Linear on inputs of rank 1, 2, 3 and 4",
         "gradients through Linear match torch.nn.Linear's"},
    ),
    "bias created even with bias=False": (
        linear_with(UNIFORM_INIT.replace(" if bias else None", "")),
        {"Linear with bias=False has a weight and no bias", "Linear without bias computes x Wᵀ",
         "Linear without bias matches torch.nn.Linear(bias=False) on a batch of sequences"},
    ),
    "weight of shape (in_features, out_features)": (
        linear_with(
            UNIFORM_INIT.replace("empty(out_features, in_features)", "empty(in_features, out_features)"),
            CORRECT_FORWARD.replace("x @ self.weight.T", "x @ self.weight"),
        ),
        {"Linear registers weight (out, in) and bias (out,) as trainable parameters",
         "Linear computes the chapter's example: one input, then a batch of three",
         "Linear matches torch.nn.Linear on inputs of rank 1, 2, 3 and 4"},
    ),
    "initialised with randn": (
        linear_with('''
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.randn(out_features)) if bias else None
'''),
        {"Linear initialises weight and bias from Uniform(-1/sqrt(in_features), 1/sqrt(in_features))",
         "Linear's initialisation depends on in_features, not out_features"},
    ),
    "init bound 1/in_features instead of 1/sqrt(in_features)": (
        linear_with(UNIFORM_INIT.replace("k = 1 / math.sqrt(in_features)", "k = 1 / in_features")),
        {"Linear initialises weight and bias from Uniform(-1/sqrt(in_features), 1/sqrt(in_features))",
         "Linear's initialisation depends on in_features, not out_features"},
    ),
    "init bound 1/sqrt(out_features)": (
        linear_with(UNIFORM_INIT.replace("math.sqrt(in_features)", "math.sqrt(out_features)")),
        {"Linear's initialisation depends on in_features, not out_features"},
    ),
    "bias initialised to zero": (
        linear_with(UNIFORM_INIT.replace("torch.empty(out_features).uniform_(-k, k)", "torch.zeros(out_features)")),
        {"Linear initialises weight and bias from Uniform(-1/sqrt(in_features), 1/sqrt(in_features))"},
    ),
    "plain tensors instead of nn.Parameter": (
        linear_with('''
        k = 1 / math.sqrt(in_features)
        self.weight = torch.empty(out_features, in_features).uniform_(-k, k)
        self.bias = torch.empty(out_features).uniform_(-k, k) if bias else None
'''),
        {"Linear registers weight (out, in) and bias (out,) as trainable parameters",
         "gradients through Linear match torch.nn.Linear's"},
    ),
    "forward only for 2-D inputs": (
        linear_with(forward=CORRECT_FORWARD.replace("x @ self.weight.T", "torch.mm(x, self.weight.t())")),
        {"Linear computes the chapter's example: one input, then a batch of three",
         "Linear matches torch.nn.Linear on inputs of rank 1, 2, 3 and 4",
         "Linear without bias matches torch.nn.Linear(bias=False) on a batch of sequences",
         "gradients through Linear match torch.nn.Linear's"},
    ),
    "grad_weight not summed over the leading dimensions": (
        GRAD_WEIGHT_NOT_SUMMED,
        {"linear_backward sums grad_weight and grad_bias over every leading dimension",
         "linear_backward matches autograd on inputs of rank 3 and 4"},
    ),
    "grad_x = grad_output @ weight.T": (
        '''
def linear_backward(x, weight, grad_output):
    g = grad_output.reshape(-1, weight.shape[0])
    return grad_output @ weight.T, g.T @ x.reshape(-1, weight.shape[1]), g.sum(0)
''',
        {"linear_backward on the chapter's example (one input, one output)",
         "linear_backward on a batch of three with two outputs",
         "linear_backward matches autograd on inputs of rank 3 and 4"},
    ),
    "grad_bias not summed over the batch": (
        '''
def linear_backward(x, weight, grad_output):
    g = grad_output.reshape(-1, weight.shape[0])
    return grad_output @ weight, g.T @ x.reshape(-1, weight.shape[1]), grad_output
''',
        {"linear_backward on a batch of three with two outputs",
         "linear_backward sums grad_weight and grad_bias over every leading dimension",
         "linear_backward matches autograd on inputs of rank 1 and 2"},
    ),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_mistake_loses_points_of_the_checks_it_breaks(solution_namespace: dict, mistake: str) -> None:
    source, must_fail = WRONG[mistake]
    task = "Linear" if "class Linear" in source else "linear_backward"
    # The mistake replaces the solution's definition.
    results = run_checks(with_answer(solution_namespace, source), EXERCISE, task)
    assert_fails_naming(results, must_fail, EXERCISE, mistake)
    assert sum(result.score for result in results) <= TASK_POINTS[task] - check_points(EXERCISE, must_fail)


def test_mistakes_lose_the_same_points_in_the_sandbox(reports: dict, solution_namespace: dict) -> None:
    report = reports["two mistakes"]
    assert report.problems == []
    must_fail = WRONG["x @ W instead of x @ W.T"][1] | WRONG["grad_weight not summed over the leading dimensions"][1]
    assert_fails_naming(report.results, must_fail, EXERCISE, "two mistakes")
    in_process = run_checks(with_answer(solution_namespace, MISSING_TRANSPOSE, GRAD_WEIGHT_NOT_SUMMED), EXERCISE)
    assert [r.passed for r in report.results] == [r.passed for r in in_process]


def test_visible_failure_shows_expected_and_got_as_torch_prints_them(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["bias created even with bias=False"][0])
    message = judged(EXERCISE, "Linear without bias computes x Wᵀ", namespace).message
    assert message.startswith("Called Linear(4, 2, bias=False), with weight = tensor([[0.4, -0.2, 0.6, 0.1], "
                              "[-0.2, 0.3, 0.4, -0.1]]), on x = tensor([0.5, 1.0, 0.5, 2.0]):")
    assert "\n  expected tensor([0.5000, 0.2000])\n" in message
    assert "\n  got      tensor([" in message


def test_visible_init_failure_says_what_came_back(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["initialised with randn"][0])
    check = INIT_CHECKS[0]
    message = judge(check, collect(check, namespace)).message
    assert "expected weight: 32,768 values in [-0.0625, 0.0625], mean 0, std 0.03608" in message
    assert "got      weight: 32,768 values in [-4." in message


def test_hidden_failure_never_shows_the_expected_value(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["bias created even with bias=False"][0])
    result = judged(
        EXERCISE, "Linear without bias matches torch.nn.Linear(bias=False) on a batch of sequences", namespace
    )
    assert not result.passed
    assert result.message == (
        "Called Linear(8, 6, bias=False), with weight = <a (6, 8) tensor>, on x = <a (3, 4, 8) tensor>: "
        "the result differs from the reference."
    )
    assert "tensor(" not in format_report([result], EXERCISE)


def test_wrong_return_types_get_clear_messages() -> None:
    namespace: dict = {"linear_backward": lambda x, weight, grad_output: (x, weight)}
    (first, *_) = run_checks(namespace, EXERCISE, "linear_backward")
    assert "linear_backward should return 3 tensors (grad_x, grad_weight, grad_bias), got tuple" in first.message
    namespace = {"linear_backward": lambda x, weight, grad_output: ([0.0], weight, grad_output)}
    (first, *_) = run_checks(namespace, EXERCISE, "linear_backward")
    assert "grad_x should be a torch.Tensor, got list [0.0]" in first.message
    namespace = {"Linear": lambda in_features, out_features, bias=True: "layer"}
    (first, *_) = run_checks(namespace, EXERCISE, "Linear")
    assert first.message == ("Called Linear(4, 2), then its named_parameters(): Linear should be a torch.nn.Module "
                             "(write `class Linear(nn.Module)`), got str.")


# ---- correct code written another way passes: the checks test behaviour, not the solution's text --

CORRECT_VARIANTS = {
    "einsum, kaiming_uniform_, self.bias = None": '''
class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # the same bound, 1/sqrt(in_features)
        k = 1 / math.sqrt(in_features)
        self.bias = nn.Parameter(torch.rand(out_features) * 2 * k - k) if bias else None

    def forward(self, x):
        y = torch.einsum("...i,oi->...o", x, self.weight)
        return y if self.bias is None else y + self.bias

def linear_backward(x, weight, grad_output):
    leading = tuple(range(grad_output.ndim - 1))
    grad_bias = grad_output.sum(dim=leading) if leading else grad_output.clone()
    grad_weight = torch.einsum("...o,...i->oi", grad_output, x)
    return torch.einsum("...o,oi->...i", grad_output, weight), grad_weight, grad_bias
''',
    "broadcast products, no bias attribute at all, float64 inside": '''
class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        k = in_features ** -0.5
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-k, k))
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-k, k))

    def forward(self, x):
        y = (x.unsqueeze(-2) * self.weight).sum(-1)  # (..., 1, in) * (out, in) -> (..., out)
        return y + self.bias if hasattr(self, "bias") else y

def linear_backward(x, weight, grad_output):
    g, rows = grad_output.double(), x.double()
    grad_x = (g.unsqueeze(-1) * weight.double()).sum(-2)
    grad_weight = (g.unsqueeze(-1) * rows.unsqueeze(-2)).reshape(-1, *weight.shape).sum(0)
    grad_bias = g.reshape(-1, weight.shape[0]).sum(0)
    return grad_x.float(), grad_weight.float(), grad_bias.float()
''',
}


@pytest.mark.parametrize("variant", list(CORRECT_VARIANTS))
def test_correct_code_written_another_way_gets_full_marks(variant: str) -> None:
    namespace: dict = {"math": math, "torch": torch, "nn": nn}
    exec(CORRECT_VARIANTS[variant], namespace)  # noqa: S102
    results = run_checks(namespace, EXERCISE)
    assert [result.message for result in results if not result.passed] == []

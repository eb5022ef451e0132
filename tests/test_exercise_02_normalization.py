"""Exercise 02_normalization: typical mistakes lose exactly the checks that name them, and torch's
own softmax, layer_norm, rms_norm and gelu cost their task. What every exercise must do (the
solution passes every check, the released stub none) is tested in tests/test_exercises.py.

References: the checks compare with torch.softmax, F.layer_norm, F.rms_norm and F.gelu computed in
float64; the numbers of the visible checks are worked out by hand below (math.exp, math.erf).

To grade a learner's notebook instead of the solution (conftest.py says how):

    pytest tests/test_exercise_02_normalization.py --submission ~/Downloads/normalization.ipynb
"""

import math

import pytest
import torch
from exercise_testing import assert_costs_exactly, check_named, check_points, checks_naming, judged, run_demo_cells
from exercise_testing import with_answer
from submission_notebooks import ASSIGNMENTS

from grading import grade_submission, run_checks
from grading.checks import NOT_ALLOWED
from grading.exercises.normalization import close_in_dtype
from grading.learner_side import returns_tensor

EXERCISE = "02_normalization"
SOLUTION = ASSIGNMENTS[EXERCISE].solution
TASKS = list(ASSIGNMENTS[EXERCISE].task_points)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def values(name: str) -> list:
    """The expected values of the check called `name`, one list per call."""
    return [expected["values"] for expected in check_named(EXERCISE, name).expected()]


# ---- the references ---------------------------------------------------------------------------


def test_visible_references_are_the_notebooks_hand_worked_numbers() -> None:
    approx = lambda numbers: pytest.approx(numbers, abs=1e-6)  # noqa: E731 - float32 rounding of the references
    assert values("softmax([0, log 2, log 3]) is [1/6, 2/6, 3/6]") == [approx([1 / 6, 2 / 6, 3 / 6])]
    e = [math.exp(i) for i in (1, 2, 3)]
    assert values("softmax of a batch: each row sums to 1") == [[approx([v / sum(e) for v in e]), approx([1 / 3] * 3)]]
    assert values("softmax is finite for logits of ±1e4") == [[1.0, 0.0, 0.0], [[0.5, 0.5], [0.5, 0.5]]]
    assert values("softmax of a row of -inf except one") == [[[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]]
    column = [1 / (1 + math.exp(2)), 1 / (1 + math.exp(-2))]  # softmax([1, 3]) and softmax([2, 4])
    assert values("softmax along dim=0, and of a single element") == [
        [approx([column[0]] * 2), approx([column[1]] * 2)], [[1.0], [1.0]]]
    # layer_norm: mean 2, biased variance 2/3; then weight [1, 2, 0.5], bias [0, 1, -1].
    z = 1 / math.sqrt(2 / 3 + 1e-5)
    assert values("layer_norm of [1, 2, 3] is [-1.2247, 0, 1.2247]") == [approx([-z, 0.0, z])] and round(z, 4) == 1.2247
    z2 = 2 / math.sqrt(8 / 3 + 1e-5)  # the row [2, 4, 6]: mean 4, biased variance 8/3
    assert values("layer_norm scales by weight and shifts by bias, feature by feature") == [
        [approx([-z, 1.0, 0.5 * z - 1]), approx([-z2, 1.0, 0.5 * z2 - 1])]]
    assert values("layer_norm([1, 3], eps=1.0) divides by sqrt(biased variance + eps)") == [approx([-0.5**0.5, 0.5**0.5])]
    assert values("layer_norm of one feature gives the bias") == [[[0.5], [0.5]]]
    # rms_norm: [3, 4] has mean square 12.5; [1, -1] has 1, times weight [2, 0.5].
    r = math.sqrt(12.5 + 1e-6)
    assert values("rms_norm of [3, 4] is [0.8485, 1.1314]") == [approx([3 / r, 4 / r])] and round(3 / r, 4) == 0.8485
    assert values("rms_norm multiplies by the weight, feature by feature") == [
        [approx([6 / r, 2 / r]), approx([2.0, -0.5])]]
    assert values("rms_norm([1, 1], eps=3.0) divides by sqrt(mean square + eps)") == [[0.5, 0.5]]
    assert values("rms_norm of one feature, and of zeros") == [
        [approx([-6 / math.sqrt(4 + 1e-6)]), approx([1.5 / math.sqrt(0.25 + 1e-6)])], [[0.0] * 4] * 2]
    # gelu: x Φ(x) with Φ from math.erf; the tanh form from its formula.
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    tanh_form = lambda x: 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))  # noqa: E731
    assert values("gelu(x) = x Φ(x) at 0, 1, -1 and 2") == [approx([x * phi(x) for x in (0, 1, -1, 2)])]
    assert values("gelu(x, approximate='tanh') is GPT-2's tanh form") == [
        approx([tanh_form(x) for x in (0, 1, -1, 2, -2.5)])]
    assert values("gelu of large inputs: x far above 0, 0 far below") == [[0.0, 0.0, 50.0, 1e4]] * 2


def plain(tensor: torch.Tensor) -> dict:
    return returns_tensor(tensor, "test")


def test_half_precision_tolerance_is_a_few_units_in_the_last_place() -> None:
    expected = plain(torch.tensor([1.0, 0.5], dtype=torch.bfloat16))
    assert close_in_dtype(expected, plain(torch.tensor([1.0078125, 0.5], dtype=torch.bfloat16)))  # one unit
    assert not close_in_dtype(expected, plain(torch.tensor([1.0625, 0.5], dtype=torch.bfloat16)))  # eight units
    assert not close_in_dtype(expected, plain(torch.tensor([1.0, 0.5])))  # float32: the dtype was not kept
    float32 = plain(torch.tensor([1.0, 0.5]))
    assert not close_in_dtype(float32, plain(torch.tensor([1.001, 0.5])))  # float32: the usual tolerance


# ---- the notebook's demos ----------------------------------------------------------------------


def test_notebook_demo_cells_run(solution_namespace: dict) -> None:
    namespace = run_demo_cells(SOLUTION, solution_namespace)
    # The closing cell compares the four functions with PyTorch's, and the bfloat16 dtypes.
    for ours, theirs in namespace["pairs"].values():
        torch.testing.assert_close(ours, theirs)


# ---- typical mistakes lose exactly the checks that catch them ----------------------------------

SOFTMAX = "def softmax(x, dim=-1):\n"
LAYER_NORM = "def layer_norm(x, weight, bias, eps=1e-5):\n    mean = x.mean(dim=-1, keepdim=True)\n"
RMS_NORM = "def rms_norm(x, weight, eps=1e-6):\n"
GELU = "def gelu(x, approximate='none'):\n"
GELU_ERF = "    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))\n"


def names(task: str, *fragments: str) -> set[str]:
    return checks_naming(EXERCISE, task, *fragments)


# (answer cell replaced, the checks that must fail: exactly those).
WRONG = {
    "softmax without subtracting the maximum": (
        {"softmax": SOFTMAX + "    e = torch.exp(x)\n    return e / e.sum(dim=dim, keepdim=True)\n"},
        names("softmax", "±1e4", "std 1000"),
    ),
    "softmax always along the last dimension": (
        {"softmax": SOFTMAX + "    e = torch.exp(x - x.amax(dim=-1, keepdim=True))\n"
         "    return e / e.sum(dim=-1, keepdim=True)\n"},
        names("softmax", "dim=0", "along every dimension"),
    ),
    "softmax shifted by the maximum of the whole tensor": (
        {"softmax": SOFTMAX + "    e = torch.exp(x - x.max())\n    return e / e.sum(dim=dim, keepdim=True)\n"},
        names("softmax", "±1e4", "std 1000"),
    ),
    "layer_norm with the unbiased variance (torch.var's default)": (
        {"layer_norm": LAYER_NORM + "    var = x.var(dim=-1, keepdim=True)\n"
         "    return (x - mean) / torch.sqrt(var + eps) * weight + bias\n"},
        names("layer_norm"),
    ),
    "layer_norm with eps outside the square root": (
        {"layer_norm": LAYER_NORM + "    std = x.var(dim=-1, keepdim=True, unbiased=False).sqrt()\n"
         "    return (x - mean) / (std + eps) * weight + bias\n"},
        names("layer_norm", "eps=1.0", "eps matters"),
    ),
    "layer_norm with the variance as mean(x²) - mean(x)²": (
        {"layer_norm": LAYER_NORM + "    var = (x * x).mean(dim=-1, keepdim=True) - mean**2\n"
         "    return (x - mean) / torch.sqrt(var + eps) * weight + bias\n"},
        names("layer_norm", "far from zero"),
    ),
    "layer_norm that ignores its eps argument": (
        {"layer_norm": LAYER_NORM + "    var = x.var(dim=-1, keepdim=True, unbiased=False)\n"
         "    return (x - mean) / torch.sqrt(var + 1e-5) * weight + bias\n"},
        names("layer_norm", "eps=1.0"),
    ),
    "rms_norm without the weight": (
        {"rms_norm": RMS_NORM + "    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)\n"},
        names("rms_norm", "weight", "one feature", "random inputs", "keeps"),
    ),
    "rms_norm by the root of the sum of squares, not of their mean": (
        {"rms_norm": RMS_NORM + "    return x / torch.sqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps) * weight\n"},
        names("rms_norm") - names("rms_norm", "one feature"),
    ),
    "rms_norm with eps outside the square root": (
        {"rms_norm": RMS_NORM + "    return x / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps) * weight\n"},
        names("rms_norm", "eps=3.0", "eps matters"),
    ),
    "rms_norm in float32 whatever the input's dtype": (
        {"rms_norm": RMS_NORM + "    x = x.float()\n"
         "    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight.float()\n"},
        names("rms_norm", "keeps"),
    ),
    "gelu's tanh form with sqrt(2 pi) instead of sqrt(2 / pi)": (
        {"gelu": GELU + "    if approximate == 'tanh':\n"
         "        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 * math.pi) * (x + 0.044715 * x**3)))\n" + GELU_ERF},
        names("gelu", "tanh form", "both forms", "keeps"),
    ),
    "gelu that ignores approximate='tanh'": (
        {"gelu": GELU + GELU_ERF},
        names("gelu", "tanh form", "both forms"),
    ),
    "gelu as x sigmoid(1.702 x)": (
        {"gelu": GELU + "    return x * torch.sigmoid(1.702 * x)\n"},
        names("gelu") - names("gelu", "large inputs"),
    ),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_mistake_loses_exactly_the_checks_it_breaks(solution_namespace: dict, mistake: str) -> None:
    assert_costs_exactly(solution_namespace, EXERCISE, *WRONG[mistake], mistake)


def test_a_mistake_graded_in_the_sandbox_with_a_forbidden_call(notebook_with) -> None:
    # One notebook: F.layer_norm in layer_norm (the whole task scores 0), softmax without the
    # shift (two checks lost), the two other tasks untouched.
    answers = {"layer_norm": "import torch.nn.functional as F\n\ndef layer_norm(x, weight, bias, eps=1e-5):\n"
               "    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)\n",
               **WRONG["softmax without subtracting the maximum"][0]}
    report = grade_submission(EXERCISE, notebook_with(answers, base=SOLUTION))
    assert report.problems == []
    scores = {task: sum(r.score for r in report.results if r.task == task) for task in TASKS}
    lost = check_points(EXERCISE, WRONG["softmax without subtracting the maximum"][1])
    assert scores == {"softmax": 9 - lost, "layer_norm": 0, "rms_norm": 7, "gelu": 6}
    for result in report.results:
        if result.task == "layer_norm":
            assert result.message.startswith(NOT_ALLOWED) and "torch.nn.functional.layer_norm" in result.message


def test_visible_failure_says_what_was_called_and_what_came_back(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, *WRONG["layer_norm with eps outside the square root"][0].values())
    assert judged(EXERCISE, "layer_norm([1, 3], eps=1.0) divides by sqrt(biased variance + eps)", namespace).message == (
        "Called layer_norm(tensor([1.0, 3.0]), tensor([1.0, 1.0]), tensor([0.0, 0.0]), eps=1.0):\n"
        "  expected tensor([-0.7071, 0.7071])\n"
        "  got      tensor([-0.5000, 0.5000])"
    )
    float32 = with_answer(solution_namespace, *WRONG["rms_norm in float32 whatever the input's dtype"][0].values())
    message = judged(EXERCISE, "rms_norm keeps float64, bfloat16 and float16", float32).message
    assert message.startswith("Called rms_norm(tensor([3.0, 4.0]), tensor([1.0, 1.0])):\n")
    assert message.endswith("expected tensor([0.8485, 1.1314], dtype=torch.float64)\n  got      tensor([0.8485, 1.1314])")


def test_overflow_is_explained(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, *WRONG["softmax without subtracting the maximum"][0].values())
    message = judged(EXERCISE, "softmax is finite for logits of ±1e4", namespace).message
    assert message == ("Called softmax(tensor([10000.0, -10000.0, 0.0])): the result of softmax holds NaN or infinity: "
                       "exp overflows from about 88.7 in float32: subtract each row's maximum first.")
    unbiased = with_answer(solution_namespace, *WRONG["layer_norm with the unbiased variance (torch.var's default)"][0].values())
    assert "NaN when by n - 1" in judged(EXERCISE, "layer_norm of one feature gives the bias", unbiased).message


def test_hidden_failure_never_shows_the_expected_value(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, *WRONG["layer_norm with the variance as mean(x²) - mean(x)²"][0].values())
    message = judged(EXERCISE, "layer_norm of inputs far from zero (mean 100) and of inputs so close that eps matters",
                     namespace).message
    assert message == ("Called layer_norm(<a (3, 64) tensor>, <a (64,) tensor>, <a (64,) tensor>): "
                       "the result differs from the reference.")


# ---- torch's own functions cost their task -----------------------------------------------------


@pytest.mark.parametrize(
    ("task", "source", "forbidden"),
    [
        ("softmax", SOFTMAX + "    return torch.softmax(x, dim=dim)\n", "torch.softmax"),
        ("softmax", SOFTMAX + "    return x.softmax(dim)\n", "torch.Tensor.softmax"),
        ("softmax", SOFTMAX + "    import torch.nn.functional as F\n    return F.log_softmax(x, dim=dim).exp()\n",
         "torch.nn.functional.log_softmax"),
        ("layer_norm", "def layer_norm(x, weight, bias, eps=1e-5):\n    ln = torch.nn.LayerNorm(x.shape[-1], eps=eps)\n"
         "    ln.weight.data, ln.bias.data = weight, bias\n    return ln(x).detach()\n", "torch.nn.LayerNorm"),
        ("rms_norm", RMS_NORM + "    return getattr(torch.nn.functional, 'rms_' + 'norm')(x, (x.shape[-1],), weight, eps)\n",
         "torch.nn.functional.rms_norm"),
        ("gelu", GELU + "    return torch.nn.GELU(approximate)(x)\n", "torch.nn.GELU"),
    ],
    ids=["torch.softmax", "Tensor.softmax", "F.log_softmax", "nn.LayerNorm", "F.rms_norm-by-getattr", "nn.GELU"],
)
def test_forbidden_calls_cost_their_task_only(solution_namespace: dict, task: str, source: str, forbidden: str) -> None:
    # Run in the notebook's way: the tripwires see the calls that the text hides (x.softmax, getattr).
    results = run_checks(with_answer(solution_namespace, source), EXERCISE)
    for result in results:
        if result.task == task:
            assert result.score == 0 and result.message.startswith(NOT_ALLOWED), result.message
            assert f"called {forbidden}" in result.message
        else:
            assert result.passed, result.name

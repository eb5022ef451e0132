"""Exercise 03_attention: typical mistakes lose the points of the checks that name them, and torch's
own attention costs its task. What every exercise must do (the solution passes every check, the
released stub none) is tested in tests/test_exercises.py.

References: every check compares with PyTorch (F.scaled_dot_product_attention,
nn.MultiheadAttention with the same weights, nn.Transformer.generate_square_subsequent_mask);
the messages asserted below hold numbers worked out by hand in the notebook's text.

To grade a learner's notebook instead of the solution (conftest.py says how):

    pytest tests/test_exercise_03_attention.py --submission ~/Downloads/attention.ipynb
"""

import doctest

import pytest
import torch
from exercise_testing import assert_fails_naming, check_named, check_points, grade_in_process, judged, with_answer
from submission_notebooks import ASSIGNMENTS

from grading import checks_for, compare, grade_submission, run_checks
from grading.checks import built
from grading.compare import tensors_close
from grading.exercises.attention import only_later_positions_change
from grading.learner_side import returns_tensor

EXERCISE = "03_attention"
SOLUTION = ASSIGNMENTS[EXERCISE].solution
TASKS = list(ASSIGNMENTS[EXERCISE].task_points)
TOTAL = ASSIGNMENTS[EXERCISE].max_score
F_SDPA = "torch.nn.functional.scaled_dot_product_attention"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- the comparisons and the references ------------------------------------------------------


def test_docstring_examples() -> None:
    # grading.compare's examples (tests/test_exercises.py runs attention_calls').
    assert doctest.testmod(compare).failed == 0


def test_a_float64_result_fails_and_says_so(solution_namespace: dict) -> None:
    in_float64 = "    return torch.softmax(q.double() @ k.double().transpose(-2, -1), dim=-1) @ v.double()\n"
    namespace = with_answer(solution_namespace, SDPA + in_float64)
    result = run_checks(namespace, EXERCISE, "scaled_dot_product_attention")[0]
    assert not result.passed
    assert result.message.endswith("got      tensor([[0.7553, 0.3348], [0.8827, 0.1332]], dtype=torch.float64)")


def plain(tensor: torch.Tensor) -> dict:
    return returns_tensor(tensor, "course_lib")


def test_hidden_references_agree_with_the_course_library() -> None:
    # A second opinion on the references: course_lib.attention computes every expected value too.
    from course_lib import attention

    for check in checks_for(EXERCISE, "scaled_dot_product_attention"):
        ours = [plain(attention.scaled_dot_product_attention(*built(each.args), built(each.kwargs).get("mask")))
                for each in check.calls]
        assert tensors_close(check.expected(), ours), check.name
    assert check_named(EXERCISE, "causal_mask of longer sequences").expected() == [
        plain(attention.causal_mask(T)) for T in (5, 16)
    ]


# ---- typical mistakes -----------------------------------------------------------------------

SDPA = "def scaled_dot_product_attention(q, k, v, mask=None):\n"
SCALE = "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])"

SOFTMAX_BY_HAND = SDPA + f"""    {SCALE}
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = torch.exp(scores)
    return e / e.sum(dim=-1, keepdim=True) @ v
"""

MHA = """class MultiHeadSelfAttention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj, self.k_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.v_proj, self.out_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)

    def forward(self, x):
        B, T, C = x.shape
        hd = C // self.n_heads
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
"""
MHA_CORRECT_SPLIT = "        q, k, v = (t.view(B, T, self.n_heads, hd).transpose(1, 2) for t in (q, k, v))\n"

# (answer cells replaced, the checks that must fail). Each is a mistake learners make.
WRONG = {
    "scores divided by d_k": (
        {"scaled_dot_product_attention": SDPA + f"    {SCALE.replace('math.sqrt(q.shape[-1])', 'q.shape[-1]')}\n"
         "    if mask is not None:\n        scores = scores.masked_fill(~mask, float('-inf'))\n"
         "    return torch.softmax(scores, dim=-1) @ v\n"},
        {"attention divides the scores by sqrt(d_k)", "attention with T_q != T_k and d_v != d_k",
         "MultiHeadSelfAttention matches nn.MultiheadAttention with the same weights"},
    ),
    "scores not scaled": (
        {"scaled_dot_product_attention": SDPA + "    scores = q @ k.transpose(-2, -1)\n"
         "    if mask is not None:\n        scores = scores.masked_fill(~mask, float('-inf'))\n"
         "    return torch.softmax(scores, dim=-1) @ v\n"},
        {"attention divides the scores by sqrt(d_k)", "attention over leading batch dimensions"},
    ),
    "masked scores set to 0 instead of -inf": (
        {"scaled_dot_product_attention": SDPA + f"    {SCALE}\n"
         "    if mask is not None:\n        scores = scores.masked_fill(~mask, 0.0)\n"
         "    return torch.softmax(scores, dim=-1) @ v\n"},
        {"attention gives masked keys no weight", "attention with random masks that broadcast",
         "MultiHeadSelfAttention takes no information from later positions"},
    ),
    "softmax over the queries (dim=-2)": (
        {"scaled_dot_product_attention": SDPA + f"    {SCALE}\n"
         "    if mask is not None:\n        scores = scores.masked_fill(~mask, float('-inf'))\n"
         "    return torch.softmax(scores, dim=-2) @ v\n"},
        {"attention weighs the values by a softmax over the keys", "attention over leading batch dimensions"},
    ),
    "mask applied after the softmax": (
        {"scaled_dot_product_attention": SDPA + f"    {SCALE}\n"
         "    weights = torch.softmax(scores, dim=-1)\n"
         "    if mask is not None:\n        weights = weights * mask\n"
         "    return weights @ v\n"},
        {"attention gives masked keys no weight", "attention with random masks that broadcast"},
    ),
    "softmax by hand, without subtracting the maximum": (
        {"scaled_dot_product_attention": SOFTMAX_BY_HAND},
        {"attention is stable when the scores are large", "attention is stable with large random scores"},
    ),
    "causal mask upper-triangular": (
        {"causal_mask": "def causal_mask(T):\n    return torch.ones(T, T, dtype=torch.bool).triu()\n"},
        {"causal_mask(3) is a lower-triangular bool tensor", "causal_mask of one and two positions",
         "causal_mask of longer sequences", "MultiHeadSelfAttention takes no information from later positions"},
    ),
    "causal mask of 0.0 and 1.0": (
        {"causal_mask": "def causal_mask(T):\n    return torch.ones(T, T).tril()\n"},
        {"causal_mask(3) is a lower-triangular bool tensor", "causal_mask of one and two positions"},
    ),
    "heads split by reshape without transpose": (
        {"MultiHeadSelfAttention": MHA
         + "        q, k, v = (t.reshape(B, self.n_heads, T, hd) for t in (q, k, v))\n"
         "        y = scaled_dot_product_attention(q, k, v, causal_mask(T))\n"
         "        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))\n"},
        {"MultiHeadSelfAttention on the hand-made example",
         "MultiHeadSelfAttention matches nn.MultiheadAttention with the same weights"},
    ),
    "no out_proj": (
        {"MultiHeadSelfAttention": MHA + MHA_CORRECT_SPLIT
         + "        y = scaled_dot_product_attention(q, k, v, causal_mask(T))\n"
         "        return y.transpose(1, 2).reshape(B, T, C)\n"},
        {"MultiHeadSelfAttention on the hand-made example",
         "MultiHeadSelfAttention matches nn.MultiheadAttention with the same weights"},
    ),
    "no causal mask in forward": (
        {"MultiHeadSelfAttention": MHA + MHA_CORRECT_SPLIT
         + "        y = scaled_dot_product_attention(q, k, v)\n"
         "        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))\n"},
        {"MultiHeadSelfAttention takes no information from later positions",
         "MultiHeadSelfAttention on the hand-made example"},
    ),
    "projections without bias": (
        {"MultiHeadSelfAttention": MHA.replace("d_model, d_model)", "d_model, d_model, bias=False)") + MHA_CORRECT_SPLIT
         + "        y = scaled_dot_product_attention(q, k, v, causal_mask(T))\n"
         "        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))\n"},
        {check.name for check in checks_for(EXERCISE, "MultiHeadSelfAttention")},
    ),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_mistake_loses_points_of_the_checks_it_breaks(notebook_with, mistake: str) -> None:
    answers, must_fail = WRONG[mistake]
    results = grade_in_process(notebook_with(answers, base=SOLUTION), EXERCISE)
    assert_fails_naming(results, must_fail, EXERCISE, mistake)
    # A mistake in one task costs only that task, and the tasks built on it.
    (task,) = answers
    later = TASKS[TASKS.index(task) + 1 :] if task != "MultiHeadSelfAttention" else []
    assert {r.task for r in results if not r.passed} <= {task, *later}, mistake


def test_a_mistake_graded_in_the_sandbox(notebook_with) -> None:
    answers, must_fail = WRONG["scores divided by d_k"]
    report = grade_submission(EXERCISE, notebook_with(answers, base=SOLUTION))
    assert report.problems == []
    failed = assert_fails_naming(report.results, must_fail, EXERCISE, "scores divided by d_k")
    assert report.score == TOTAL - check_points(EXERCISE, failed)
    assert sum(r.score for r in report.results if r.task == "causal_mask") == 3  # untouched


def test_visible_failure_shows_expected_and_got(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["scores divided by d_k"][0]["scaled_dot_product_attention"])
    assert judged(EXERCISE, "attention divides the scores by sqrt(d_k)", namespace).message == (
        "Called scaled_dot_product_attention(tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), "
        "tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), tensor([[1.0, 0.0], [0.0, 1.0]])):\n"
        "  expected tensor([[0.8808, 0.1192], [0.5000, 0.5000]])\n"
        "  got      tensor([[0.7311, 0.2689], [0.5000, 0.5000]])"
    )


def test_overflow_is_explained(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, SOFTMAX_BY_HAND)
    result = run_checks(namespace, EXERCISE, "scaled_dot_product_attention")[3]
    assert result.name == "attention is stable when the scores are large" and not result.passed
    assert "holds NaN or infinity: does an exponential overflow" in result.message


def test_future_check_says_which_positions_moved(notebook_with) -> None:
    results = grade_in_process(notebook_with(WRONG["no causal mask in forward"][0], base=SOLUTION), EXERCISE)
    (result,) = [r for r in results if r.name == "MultiHeadSelfAttention takes no information from later positions"]
    expected, got = result.message.split("\n")[1:3]
    assert expected.startswith("  expected output at positions 0..5 moved by: 0, 0, 0, ")
    assert got.startswith("  got      output at positions 0..5 moved by: ") and ": 0, 0, 0, " not in got


def test_future_check_needs_the_later_positions_to_move() -> None:
    # An output that ignores the other positions (here: x itself) hides nothing from the future,
    # but it does not attend either: only the changed position moves, so the check fails.
    check = check_named(EXERCISE, "MultiHeadSelfAttention takes no information from later positions")
    (expected,) = check.expected()
    assert only_later_positions_change(expected, expected)
    identity = [plain(x) for x in built(check.calls[0].then["x"])]
    assert not only_later_positions_change(expected, identity)
    assert not only_later_positions_change(expected, [{"shape": [1], "dtype": "float32", "values": "x"}] * 2)


def test_hidden_failure_never_shows_the_expected_value(notebook_with) -> None:
    results = grade_in_process(notebook_with(WRONG["no out_proj"][0], base=SOLUTION), EXERCISE)
    (result,) = [r for r in results if r.name == "MultiHeadSelfAttention matches nn.MultiheadAttention with the same weights"]
    assert result.message == (
        "Called MultiHeadSelfAttention(12, 3), with its projections' weights set to <random weights>, "
        "on x = <a (2, 5, 12) tensor>: the result differs from the reference."
    )


def test_missing_projection_gets_a_clear_message(solution_namespace: dict) -> None:
    without_out_proj = MHA.replace("self.v_proj, self.out_proj", "self.v_proj, self.mix")
    namespace = with_answer(solution_namespace, without_out_proj + MHA_CORRECT_SPLIT + "        return x\n")
    results = run_checks(namespace, EXERCISE, "MultiHeadSelfAttention")
    assert "MultiHeadSelfAttention has no attribute `out_proj`: create it in __init__" in results[0].message
    assert "MultiHeadSelfAttention has no tensor out_proj.weight: make out_proj an nn.Linear(d_model, d_model)" in results[1].message


# ---- torch's own attention is not allowed ---------------------------------------------------

USES_TORCH_SDPA = SDPA + """    import torch.nn.functional as F
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
"""


def test_torch_attention_costs_its_task_in_the_sandbox(notebook_with) -> None:
    report = grade_submission(EXERCISE, notebook_with({"scaled_dot_product_attention": USES_TORCH_SDPA}, base=SOLUTION))
    by_task = {task: [r for r in report.results if r.task == task] for task in TASKS}
    assert all(r.score == 0 for r in by_task["scaled_dot_product_attention"])
    assert all(F_SDPA in r.message and r.message.startswith("Not allowed") for r in by_task["scaled_dot_product_attention"])
    # The module attends through the learner's own scaled_dot_product_attention: the forbidden
    # call is that function's, so it costs that task and nothing else.
    assert all(r.passed for r in by_task["MultiHeadSelfAttention"] + by_task["causal_mask"])
    assert report.score == 3 + 8


def test_hidden_call_to_torch_attention_is_caught_while_it_runs(solution_namespace: dict) -> None:
    # getattr with a computed name escapes the static scan; the tripwire sees the call.
    namespace = with_answer(
        solution_namespace,
        SDPA + "    return getattr(torch.nn.functional, 'scaled_dot_product_' + 'attention')(q, k, v, mask)\n",
        "class MultiHeadSelfAttention(nn.MultiheadAttention):\n"
        "    def __init__(self, d_model, n_heads):\n        super().__init__(d_model, n_heads, batch_first=True)\n",
    )
    results = run_checks(namespace, EXERCISE)
    for result in results:
        if result.task != "causal_mask":
            assert result.score == 0 and result.message.startswith("Not allowed"), result.name
    assert F_SDPA in results[0].message
    assert "torch.nn.MultiheadAttention" in [r for r in results if r.task == "MultiHeadSelfAttention"][0].message
    assert sum(r.score for r in results) == 3

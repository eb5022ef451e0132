"""Exercise 03_rope: typical mistakes lose exactly the checks that name them. What every exercise
must do (the solution passes every check, the released stub none) is tested in
tests/test_exercises.py.

References: the checks' expected values come from the definition (angles in float64, each pair a
complex number multiplied by e^(j angle)); below, the notebook's worked examples by hand (math.cos),
and a second opinion from course_lib.attention's rotary_cos_sin and apply_rotary.

To grade a learner's notebook instead of the solution (conftest.py says how):

    pytest tests/test_exercise_03_rope.py --submission ~/Downloads/rope.ipynb
"""

import math

import pytest
import torch
from exercise_testing import assert_costs_exactly, assert_fails_naming, check_named, check_points, checks_naming
from exercise_testing import judged, run_demo_cells, with_answer
from submission_notebooks import ASSIGNMENTS

from grading import checks_for, grade_submission
from grading.checks import built
from grading.compare import tensors_close
from grading.exercises import rope_calls
from grading.exercises.rope import depends_only_on_distance
from grading.learner_side import returns_tensor

EXERCISE = "03_rope"
SOLUTION = ASSIGNMENTS[EXERCISE].solution
TOTAL = ASSIGNMENTS[EXERCISE].max_score
RELATIVE = "apply_rotary: the score of a turned query and key depends only on their distance"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def plain(tensor: torch.Tensor) -> dict:
    return returns_tensor(tensor, "test")


# ---- the references ---------------------------------------------------------------------------


def test_visible_references_are_the_notebooks_hand_worked_numbers() -> None:
    approx = lambda numbers: pytest.approx(numbers, abs=1e-6)  # noqa: E731 - float32 rounding
    # theta 100, head_dim 4: frequencies 1 and 0.1; positions 0 and 1.
    cos, sin = check_named(EXERCISE, "rotary_cos_sin(positions=[0, 1], head_dim=4, theta=100)").expected()[0]
    assert cos["values"] == [[1.0] * 4, approx([math.cos(1), math.cos(0.1)] * 2)]
    assert sin["values"] == [[0.0] * 4, approx([math.sin(1), math.sin(0.1)] * 2)]
    # theta 10000, head_dim 8, position 1: the angles 1, 0.1, 0.01, 0.001.
    frequencies = "rotary_cos_sin's frequencies are theta ** (-2i / head_dim): position 1, head_dim 8"
    cos, sin = check_named(EXERCISE, frequencies).expected()[0]
    angles = [1.0, 0.1, 0.01, 0.001]
    assert cos["values"] == [approx([math.cos(a) for a in angles] * 2)]
    assert sin["values"] == [approx([math.sin(a) for a in angles] * 2)]
    (turned,) = check_named(EXERCISE, "apply_rotary turns the pair (1, 0) by 1 radian to (cos 1, sin 1)").expected()
    assert turned["values"] == [approx([math.cos(1), math.sin(1)])]
    (quarter,) = check_named(EXERCISE, "apply_rotary pairs dimension i with i + head_dim/2 (a quarter turn of pair 0)").expected()
    assert quarter["values"] == [[-3.0, 2.0, 1.0, 4.0]]
    (unchanged,) = check_named(EXERCISE, "apply_rotary at position 0 leaves x unchanged").expected()
    assert unchanged["values"] == [[0.5, -1.0, 2.0, 3.0, -0.25, 1.5]]


def test_references_agree_with_the_course_library() -> None:
    # A second opinion: course_lib.attention (rotate-half, float32) gives every expected value too.
    from course_lib import attention

    for check in checks_for(EXERCISE):
        for each, expected in zip(check.calls, check.expected()):
            args, kwargs = built(each.args), built(dict(each.kwargs))
            if each.adapter is not None:
                continue
            if check.task == "rotary_cos_sin":
                ours = [plain(t) for t in attention.rotary_cos_sin(args[0], args[1], **kwargs)]
                assert tensors_close(expected, ours, rtol=1e-4, atol=1e-4), check.name
            else:
                assert tensors_close(expected, plain(attention.apply_rotary(*args))), check.name


def test_the_relative_property_holds_for_any_rotation_and_nothing_else() -> None:
    check = check_named(EXERCISE, RELATIVE)
    (expected,) = check.expected()
    assert depends_only_on_distance(expected, expected)
    then = built(dict(check.calls[0].then))
    q, k, cos, sin = then["q"], then["k"], then["cos"], then["sin"]
    T = cos.shape[0]

    def table(turn) -> dict:
        return plain(rope_calls.scores(turn, [], {}, q=q, k=k, cos=cos, sin=sin))

    def interleaved(x, cos, sin):  # pairs (2i, 2i + 1): another rotation
        half = x.shape[-1] // 2
        a, b = x[..., 0::2], x[..., 1::2]
        c, s = cos[..., :half], sin[..., :half]
        return torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)

    assert depends_only_on_distance(expected, table(interleaved))
    assert depends_only_on_distance(expected, table(lambda x, cos, sin: interleaved(x, cos, -sin)))
    assert not depends_only_on_distance(expected, table(lambda x, cos, sin: x))  # nothing turns
    assert not depends_only_on_distance(expected, table(lambda x, cos, sin: x * cos))  # not a rotation
    assert not depends_only_on_distance(expected, plain(torch.zeros(T, T + 1)))
    assert not depends_only_on_distance(expected, {"shape": [2, 2], "dtype": "float32", "values": "x"})


# ---- the notebook's demos ----------------------------------------------------------------------


def test_notebook_demo_cells_run(solution_namespace: dict) -> None:
    namespace = run_demo_cells(SOLUTION, solution_namespace)
    # The closing cell: the functions against the complex-number definition.
    torch.testing.assert_close(namespace["ours"], namespace["by_complex_numbers"])


# ---- typical mistakes lose exactly the checks that catch them ----------------------------------

COS_SIN = "def rotary_cos_sin(positions, head_dim, theta=10000.0):\n"
ODD = "    if head_dim % 2:\n        raise ValueError('head_dim must be even')\n"
PAIR = "    i = torch.arange(head_dim // 2)\n"
ANGLES = "    angles = positions.float()[:, None] * frequencies[None, :]\n"
BOTH_HALVES = "    angles = torch.cat([angles, angles], dim=-1)\n    return angles.cos(), angles.sin()\n"
APPLY = "def apply_rotary(x, cos, sin):\n    half = x.shape[-1] // 2\n"
APPLY_ODD = "    if x.shape[-1] % 2:\n        raise ValueError('head_dim must be even')\n"
HALVES = "    x1, x2 = x[..., :half], x[..., half:]\n"


def names(task: str, *fragments: str) -> set[str]:
    return checks_naming(EXERCISE, task, *fragments)


# (answer cell replaced, the checks that must fail: exactly those).
WRONG = {
    "frequencies theta ** (-i / head_dim) instead of (-2i / head_dim)": (
        {"rotary_cos_sin": COS_SIN + ODD + PAIR + "    frequencies = theta ** (-i / head_dim)\n" + ANGLES + BOTH_HALVES},
        names("rotary_cos_sin", "theta=100", "frequencies", "any order", "one position"),
    ),
    "angles interleaved (repeat_interleave) instead of the two halves side by side": (
        {"rotary_cos_sin": COS_SIN + ODD + PAIR + "    frequencies = theta ** (-2 * i / head_dim)\n" + ANGLES
         + "    angles = angles.repeat_interleave(2, dim=-1)\n    return angles.cos(), angles.sin()\n"},
        names("rotary_cos_sin", "theta=100", "frequencies", "any order", "one position"),
    ),
    "positions taken as 0..T-1 whatever they are": (
        {"rotary_cos_sin": COS_SIN + ODD + PAIR + "    frequencies = theta ** (-2 * i / head_dim)\n"
         + "    angles = torch.arange(len(positions)).float()[:, None] * frequencies[None, :]\n" + BOTH_HALVES},
        names("rotary_cos_sin", "frequencies", "any order", "one position"),
    ),
    "rotary_cos_sin without the check of an odd head_dim": (
        {"rotary_cos_sin": COS_SIN + PAIR + "    frequencies = theta ** (-2 * i / head_dim)\n" + ANGLES + BOTH_HALVES},
        names("rotary_cos_sin", "odd"),
    ),
    "interleaved pairs (2i, 2i + 1) instead of rotate-half": (
        {"apply_rotary": APPLY + APPLY_ODD + "    a, b = x[..., 0::2], x[..., 1::2]\n"
         "    c, s = cos[..., :half], sin[..., :half]\n"
         "    return torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)\n"},
        names("apply_rotary", "quarter turn", "random positions", "float64"),
    ),
    "sin's sign flipped (a turn the other way)": (
        {"apply_rotary": APPLY + APPLY_ODD + HALVES + "    return x * cos + torch.cat([x2, -x1], dim=-1) * sin\n"},
        names("apply_rotary", "1 radian", "quarter turn", "random positions", "float64"),
    ),
    "the quarter turn without its minus sign: not a rotation": (
        {"apply_rotary": APPLY + APPLY_ODD + HALVES + "    return x * cos + torch.cat([x2, x1], dim=-1) * sin\n"},
        names("apply_rotary") - names("apply_rotary", "1 radian", "position 0", "odd"),
    ),
    "apply_rotary without the check of an odd head_dim": (
        {"apply_rotary": APPLY + HALVES + "    return x * cos + torch.cat([-x2, x1], dim=-1) * sin\n"},
        names("apply_rotary", "odd"),
    ),
    "apply_rotary in float32 whatever the input's dtype": (
        {"apply_rotary": APPLY + APPLY_ODD + "    x = x.float()\n" + HALVES
         + "    return x * cos.float() + torch.cat([-x2, x1], dim=-1) * sin.float()\n"},
        names("apply_rotary", "float64"),
    ),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_mistake_loses_exactly_the_checks_it_breaks(solution_namespace: dict, mistake: str) -> None:
    assert_costs_exactly(solution_namespace, EXERCISE, *WRONG[mistake], mistake)


def test_two_mistakes_graded_in_the_sandbox(notebook_with) -> None:
    frequencies, wrong_frequencies = WRONG["frequencies theta ** (-i / head_dim) instead of (-2i / head_dim)"]
    interleaved, wrong_pairs = WRONG["interleaved pairs (2i, 2i + 1) instead of rotate-half"]
    report = grade_submission(EXERCISE, notebook_with(frequencies | interleaved, base=SOLUTION))
    assert report.problems == []
    failed = assert_fails_naming(report.results, wrong_frequencies | wrong_pairs, EXERCISE, "two mistakes")
    assert failed == wrong_frequencies | wrong_pairs
    assert report.score == TOTAL - check_points(EXERCISE, failed)


def test_visible_failure_says_what_was_called_and_what_came_back(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, *WRONG["sin's sign flipped (a turn the other way)"][0].values())
    assert judged(EXERCISE, "apply_rotary pairs dimension i with i + head_dim/2 (a quarter turn of pair 0)",
                  namespace).message == (
        "Called apply_rotary(tensor([[1.0, 2.0, 3.0, 4.0]]), tensor([[0.0, 1.0, 0.0, 1.0]]), "
        "tensor([[1.0, 0.0, 1.0, 0.0]])):\n"
        "  expected tensor([[-3., 2., 1., 4.]])\n"
        "  got      tensor([[ 3., 2., -1., 4.]])"
    )
    no_check = with_answer(solution_namespace, *WRONG["apply_rotary without the check of an odd head_dim"][0].values())
    message = judged(EXERCISE, "apply_rotary raises ValueError for an odd head_dim", no_check).message
    assert message.startswith("Called apply_rotary(tensor([[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0]]), ")
    assert message.endswith(", expecting ValueError:\n  expected 'raised ValueError'\n  got      'returned without raising'")


def test_relative_failure_shows_the_scores_by_distance(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, *WRONG["the quarter turn without its minus sign: not a rotation"][0].values())
    message = judged(EXERCISE, RELATIVE, namespace).message
    assert "that is, apply_rotary(q, cos, sin) and apply_rotary(k, cos, sin) with q and k copied to positions 0..4" in message
    expected, got = message.split("\n")[1:3]
    assert expected.startswith("  expected q_m · k_n by distance m - n, -4: [")
    assert got.startswith("  got      q_m · k_n by distance m - n, -4: [")


def test_hidden_failure_never_shows_the_expected_value(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, *WRONG["positions taken as 0..T-1 whatever they are"][0].values())
    message = judged(EXERCISE, "rotary_cos_sin of one position and of many", namespace).message
    assert message == "Called rotary_cos_sin(<a (1,) int64 tensor>, 10): the result differs from the reference."

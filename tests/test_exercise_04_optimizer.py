"""Exercise 04_optimizer: typical mistakes lose exactly the checks that name them, correct code
written another way keeps them, and torch's optimizers and clipping cost their task only. What
every exercise must do (the solution passes every check, the released stub none) is tested in
tests/test_exercises.py.

References: torch.optim.AdamW (stepped on a copy of the parameter, its state loaded with the
learner's m and v, or run for several steps from the start), course_lib.training.lr_at, and
torch.nn.utils.clip_grad_norm_ on copies of the gradients; the tests below also hold the
references to the numbers the notebook works out by hand.

To grade a learner's notebook instead of the solution (conftest.py says how):

    pytest tests/test_exercise_04_optimizer.py --submission ~/Downloads/optimizer.ipynb
"""

import math

import pytest
import torch
from exercise_testing import assert_comparisons_say_false, assert_fails_naming, assert_variants_pass, check_named
from exercise_testing import check_names, check_points, grade_in_process, judged, with_answer
from submission_notebooks import ASSIGNMENTS

from grading import grade_submission, run_checks
from grading.exercises.optimizer import torch_adamw_run, torch_adamw_step

EXERCISE = "04_optimizer"
SOLUTION = ASSIGNMENTS[EXERCISE].solution
TASK_POINTS = ASSIGNMENTS[EXERCISE].task_points
TOTAL = ASSIGNMENTS[EXERCISE].max_score

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- the references ---------------------------------------------------------------------------


def _values(name: str) -> list:
    """The expected values of the one call of the check `name`, tensors as lists of numbers."""
    (expected,) = check_named(EXERCISE, name).expected()
    return [tensor["values"] for tensor in expected] if isinstance(expected, list) else expected


def test_hand_made_references_are_the_notebooks_numbers() -> None:
    # AdamW's worked example: the first step moves every weight by lr = 0.1 against the sign of its
    # gradient after a 1% decay; the second, with the same gradient, again (m-hat = g, v-hat = g²).
    first = _values("adamw_step's first step moves each weight by lr against its gradient's sign, and decays it")
    for got, want in zip(first, ([0.89, -1.88, 2.87], [0.01, -0.4, 0.2], [0.0005, 0.8, 0.2])):
        assert got == pytest.approx(want, rel=1e-6)
    second = _values("adamw_step's second step with the same gradient moves by lr again (bias correction)")
    for got, want in zip(second, ([0.7811, -1.7612, 2.7413], [0.019, -0.76, 0.38], [0.000975, 1.56, 0.39])):
        assert got == pytest.approx(want, rel=1e-5)
    decayed = _values("adamw_step with a zero gradient only decays the weights")
    assert decayed[0] == pytest.approx([0.99, -1.98, 2.97], rel=1e-6) and decayed[1:] == [[0.0] * 3] * 2
    # lr_at's table: 0.1, 0.5, 1.0 in the warm-up; 1.0, 0.1 + 0.45 (1 + cos(pi/4)), 0.55, 0.1 down the cosine.
    warmup = check_named(EXERCISE, "lr_at warms up linearly: max_lr * (step + 1) / warmup_iters").expected()
    assert warmup == pytest.approx([0.1, 0.5, 1.0])
    cosine = check_named(EXERCISE, "lr_at decays along half a cosine from max_lr at warmup_iters to min_lr at "
                                   "decay_iters").expected()
    assert cosine == pytest.approx([1.0, 0.1 + 0.45 * (1 + math.cos(math.pi / 4)), 0.55, 0.1])
    assert round(cosine[1], 4) == 0.8682
    # Clipping [3, 0] and [[0], [4]] (global norm 5) to 1: a fifth of each; [0.3, -0.4] (norm 0.5) stays.
    clipped = check_named(EXERCISE, "clip_grad_norm scales every gradient by max_norm / total_norm when the global "
                                    "norm is above it").expected()[0]
    assert clipped["norm"] == 5.0
    assert [t["values"] for t in clipped["clipped"]] == [pytest.approx([0.6, 0.0]), [[0.0], pytest.approx([0.8])]]
    (kept,) = check_named(EXERCISE, "clip_grad_norm leaves gradients whose norm is below max_norm as they "
                                    "are").expected()
    assert kept["norm"] == pytest.approx(0.5) and kept["clipped"][0]["values"] == pytest.approx([0.3, -0.4])
    (empty,) = check_named(EXERCISE, "clip_grad_norm of an empty list: nothing to clip, a norm of 0").expected()
    assert empty == {"clipped": [], "norm": 0.0}


def test_adamw_with_loaded_state_is_adamw_run_from_the_start() -> None:
    # The single-step reference loads m, v and step - 1 into torch's AdamW: chaining it over five
    # steps must give what AdamW itself does over the same five steps.
    generator = torch.Generator().manual_seed(0)
    param, grads = torch.randn(3, 2, generator=generator), [torch.randn(3, 2, generator=generator) for _ in range(5)]
    chained, m, v = param, torch.zeros_like(param), torch.zeros_like(param)
    for step, grad in enumerate(grads, start=1):
        chained, m, v = torch_adamw_step(chained, grad, m, v, step, 0.05, betas=(0.8, 0.99), weight_decay=0.3)
    for ours, theirs in zip((chained, m, v), torch_adamw_run(param, grads, 0.05, betas=(0.8, 0.99), weight_decay=0.3)):
        torch.testing.assert_close(ours, theirs)


def test_adamw_reference_is_the_papers_equations() -> None:
    # A second opinion on one step from given moments: Loshchilov and Hutter's AdamW, by hand in float64.
    generator = torch.Generator().manual_seed(1)
    param, grad, m, v = (torch.randn(5, generator=generator, dtype=torch.float64) for _ in range(4))
    v = v * v
    step, lr, (beta1, beta2), eps, decay = 4, 0.1, (0.9, 0.95), 1e-8, 0.2
    m_new, v_new = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
    update = (m_new / (1 - beta1**step)) / ((v_new / (1 - beta2**step)).sqrt() + eps)
    by_hand = (param - lr * decay * param - lr * update, m_new, v_new)
    for ours, theirs in zip(torch_adamw_step(param, grad, m, v, step, lr, weight_decay=decay), by_hand):
        torch.testing.assert_close(ours, theirs)


# ---- typical mistakes -----------------------------------------------------------------------

ADAMW = "def adamw_step(param, grad, m, v, step, lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):\n"
BETAS = "    beta1, beta2 = betas\n"
MOMENTS = "    m = beta1 * m + (1 - beta1) * grad\n    v = beta2 * v + (1 - beta2) * grad * grad\n"
CORRECTED = "    m_hat = m / (1 - beta1**step)\n    v_hat = v / (1 - beta2**step)\n"
UPDATE = "m_hat / (v_hat.sqrt() + eps)"


def adamw(moments: str = MOMENTS, corrected: str = CORRECTED, last: str = "") -> str:
    """adamw_step with its parts replaced; `last` (the update and return) by default decays, then steps."""
    last = last or f"    return param * (1 - lr * weight_decay) - lr * {UPDATE}, m, v\n"
    return ADAMW + BETAS + moments + corrected + last


LR_AT = "def lr_at(step, max_lr, min_lr, warmup_iters, decay_iters):\n"
WARMUP = "    if step < warmup_iters:\n        return max_lr * (step + 1) / warmup_iters\n"
FLOOR = "    if step >= decay_iters:\n        return min_lr\n"
PROGRESS = "    p = (step - warmup_iters) / (decay_iters - warmup_iters)\n"
COSINE = "    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (max_lr - min_lr)\n"
CLIP = "def clip_grad_norm(grads, max_norm):\n"
GLOBAL_NORM = "    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))\n"
SCALED = "    return [g * min(1.0, max_norm / (norm + 1e-6)) for g in grads], norm\n"

ALL_ADAMW = set(check_names(EXERCISE)[:8])
FIRST, SECOND, ZERO_GRAD, UNCHANGED, FIVE_STEPS, OTHER_BETAS, TINY, SCALAR = check_names(EXERCISE)[:8]
WARMUP_CHECK, COSINE_CHECK, AFTER, EVERY_STEP, NO_WARMUP, NO_DECAY = check_names(EXERCISE)[8:14]
ABOVE, BELOW, CLIP_UNCHANGED, RANDOM_CLIP, EMPTY, ZERO_DIM, EXACTLY = check_names(EXERCISE)[14:]

# (answer cells replaced, the checks that must fail and no others). Each is a mistake learners make.
WRONG = {
    "Adam with L2 regularisation: the decay added to the gradient": (
        {"adamw_step": adamw(moments="    grad = grad + weight_decay * param\n" + MOMENTS,
                             last=f"    return param - lr * {UPDATE}, m, v\n")},
        {FIRST, SECOND, ZERO_GRAD, FIVE_STEPS, TINY, SCALAR},  # with weight_decay=0 it is AdamW
    ),
    "no bias correction": (
        {"adamw_step": adamw(corrected="    m_hat, v_hat = m, v\n")},
        {FIRST, SECOND, FIVE_STEPS, OTHER_BETAS, TINY},  # at step 1000 the correction is 1.0000
    ),
    "steps counted from 0 in the bias correction": (
        {"adamw_step": adamw(corrected=CORRECTED.replace("**step", "**(step + 1)"))},
        {FIRST, SECOND, FIVE_STEPS, OTHER_BETAS, TINY},
    ),
    "eps inside the square root": (
        {"adamw_step": adamw(last=f"    return param * (1 - lr * weight_decay) - lr * m_hat / (v_hat + eps).sqrt(), "
                                  "m, v\n")},
        {TINY},  # only where the gradients are as small as sqrt(eps)
    ),
    "the decay applied after the update, to the new weight": (
        {"adamw_step": adamw(last=f"    param = param - lr * {UPDATE}\n"
                                  "    return param - lr * weight_decay * param, m, v\n")},
        {FIRST, SECOND, FIVE_STEPS, TINY},  # off by lr² · weight_decay · update: seen where lr is 0.1
    ),
    "no eps: zero gradients divide 0 by 0": (
        {"adamw_step": adamw(last="    return param * (1 - lr * weight_decay) - lr * m_hat / v_hat.sqrt(), m, v\n")},
        {ZERO_GRAD, TINY},
    ),
    "the moments updated in place": (
        {"adamw_step": adamw(moments="    m.mul_(beta1).add_((1 - beta1) * grad)\n"
                                     "    v.mul_(beta2).add_((1 - beta2) * grad * grad)\n")},
        {UNCHANGED},  # the values returned are right; the caller's m and v are gone
    ),
    "the default betas written in": (
        {"adamw_step": adamw().replace(BETAS, "    beta1, beta2 = 0.9, 0.95\n")},
        {OTHER_BETAS},
    ),
    "lr_at's warm-up one step late": (
        {"lr_at": LR_AT + WARMUP.replace("(step + 1)", "step") + FLOOR + PROGRESS + COSINE},
        {WARMUP_CHECK, EVERY_STEP, NO_DECAY},
    ),
    "the cosine's progress over decay_iters: it never reaches min_lr": (
        {"lr_at": LR_AT + WARMUP + FLOOR + PROGRESS.replace("(decay_iters - warmup_iters)", "decay_iters") + COSINE},
        {COSINE_CHECK, EVERY_STEP},  # without warm-up the two are the same
    ),
    "a straight line down instead of the cosine": (
        {"lr_at": LR_AT + WARMUP + FLOOR + PROGRESS + "    return max_lr - p * (max_lr - min_lr)\n"},
        {COSINE_CHECK, EVERY_STEP, NO_WARMUP},
    ),
    "progress computed before the end of the decay is checked": (
        {"lr_at": LR_AT + WARMUP + PROGRESS + FLOOR + COSINE},
        {NO_DECAY},  # ZeroDivisionError when decay_iters == warmup_iters
    ),
    "clip always scales, up as well as down": (
        {"clip_grad_norm": CLIP + GLOBAL_NORM + "    return [g * max_norm / (norm + 1e-6) for g in grads], norm\n"},
        {BELOW, RANDOM_CLIP},
    ),
    "each tensor clipped on its own": (
        {"clip_grad_norm": CLIP + "    clipped = [g * min(1.0, max_norm / (float(g.norm()) + 1e-6)) for g in grads]\n"
         + GLOBAL_NORM + "    return clipped, norm\n"},
        {ABOVE, RANDOM_CLIP},
    ),
    "the tensors' norms added instead of their squares": (
        {"clip_grad_norm": CLIP + "    norm = sum(float(g.norm()) for g in grads)\n" + SCALED},
        {ABOVE, RANDOM_CLIP},
    ),
    "clip scales the gradients it was given in place": (
        {"clip_grad_norm": CLIP + GLOBAL_NORM + "    for g in grads:\n"
         "        g.mul_(min(1.0, max_norm / (norm + 1e-6)))\n    return grads, norm\n"},
        {CLIP_UNCHANGED},
    ),
    "the norm of torch.cat(...), which fails on an empty list": (
        {"clip_grad_norm": CLIP + "    norm = torch.cat([g.flatten() for g in grads]).norm()\n" + SCALED},
        {EMPTY},
    ),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_mistake_loses_exactly_the_checks_it_breaks(notebook_with, mistake: str) -> None:
    answers, must_fail = WRONG[mistake]
    (task,) = answers
    # Only the task's own checks: the tasks do not call each other.
    results = grade_in_process(notebook_with(answers, base=SOLUTION), EXERCISE, task)
    failed = assert_fails_naming(results, must_fail, EXERCISE, mistake)
    assert failed == must_fail, f"{mistake}: also failed {failed - must_fail}"
    assert sum(result.score for result in results) == TASK_POINTS[task] - check_points(EXERCISE, must_fail)


# Other ways to be right: each passes every check of its task.
RIGHT = {
    "adamw_step with torch.lerp and addcdiv, the way torch writes it": {
        "adamw_step": ADAMW + BETAS + "    m = torch.lerp(m, grad, 1 - beta1)\n"
        "    v = v * beta2 + (1 - beta2) * grad.square()\n"
        "    denom = (v.sqrt() / math.sqrt(1 - beta2**step)).add(eps)\n"
        "    param = (param * (1 - lr * weight_decay)).addcdiv(m, denom, value=-lr / (1 - beta1**step))\n"
        "    return param, m, v\n"},
    "adamw_step with the decay from the old weight, after the update": {
        "adamw_step": adamw(last=f"    new = param - lr * {UPDATE}\n"
                                 "    return new - lr * weight_decay * param, m, v\n")},
    "lr_at with the cosine written as a decay ratio": {
        "lr_at": LR_AT + WARMUP + FLOOR + PROGRESS
        + "    coeff = 0.5 * (1.0 + math.cos(math.pi * p))\n    return max_lr - (1 - coeff) * (max_lr - min_lr)\n"},
    "clip_grad_norm with torch.linalg.vector_norm, a tensor norm, always scaled by a clamp": {
        "clip_grad_norm": CLIP + "    if not grads:\n        return [], torch.tensor(0.0)\n"
        "    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))\n"
        "    factor = torch.clamp(max_norm / (norm + 1e-6), max=1.0)\n"
        "    return [g * factor for g in grads], norm\n"},
}


@pytest.mark.parametrize("variant", list(RIGHT))
def test_correct_variants_pass(notebook_with, variant: str) -> None:
    assert_variants_pass(notebook_with, EXERCISE, RIGHT[variant], variant)


def test_comparisons_never_raise_on_tampered_values() -> None:
    # What comes back from the sandbox is plain data of any shape; a comparison says False to
    # anything that is not the result it expects (it must never crash the grader).
    not_numbers = {"shape": [3], "dtype": "float32", "values": "abc"}
    garbage = [None, 1, True, "x", [], [not_numbers] * 3, [[1.0]], {"clipped": None, "norm": 1.0},
               {"clipped": [not_numbers], "norm": "5"}, {"norm": 5.0}, float("nan")]
    assert_comparisons_say_false(EXERCISE, garbage)


def test_visible_failures_show_expected_and_got(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["no bias correction"][0]["adamw_step"])
    assert judged(EXERCISE, FIRST, namespace).message == (
        "Called adamw_step(tensor([1.0, -2.0, 3.0]), tensor([0.1, -4.0, 2.0]), tensor([0.0, 0.0, 0.0]), "
        "tensor([0.0, 0.0, 0.0]), 1, 0.1):\n"
        "  expected param tensor([ 0.8900, -1.8800, 2.8700]), m tensor([ 0.0100, -0.4000, 0.2000]), "
        "v tensor([5.0000e-04, 8.0000e-01, 2.0000e-01])\n"
        "  got      param tensor([ 0.9453, -1.9353, 2.9253]), m tensor([ 0.0100, -0.4000, 0.2000]), "
        "v tensor([5.0000e-04, 8.0000e-01, 2.0000e-01])"
    )
    namespace = with_answer(solution_namespace, WRONG["lr_at's warm-up one step late"][0]["lr_at"])
    assert judged(EXERCISE, WARMUP_CHECK, namespace).message == (
        "Called lr_at(0, 1.0, 0.1, 10, 110):\n  expected 0.1\n  got      0.0")
    namespace = with_answer(solution_namespace, WRONG["each tensor clipped on its own"][0]["clip_grad_norm"])
    assert judged(EXERCISE, ABOVE, namespace).message == (
        "Called clip_grad_norm(<[tensor([3.0, 0.0]), tensor([[0.0], [4.0]])]>, 1.0):\n"
        "  expected clipped [tensor([0.6000, 0.0000]), tensor([[0.0000], [0.8000]])], total_norm 5\n"
        "  got      clipped [tensor([1.0000, 0.0000]), tensor([[0.0000], [1.0000]])], total_norm 5")


def test_mistakes_are_explained(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["no eps: zero gradients divide 0 by 0"][0]["adamw_step"])
    assert judged(EXERCISE, ZERO_GRAD, namespace).message.endswith(": param holds NaN or infinity.")
    namespace = with_answer(solution_namespace, LR_AT + "    return torch.tensor(0.1)\n")
    assert "lr_at should return a Python float (use math.cos, not torch.cos), got Tensor tensor(0.1000)" in (
        judged(EXERCISE, WARMUP_CHECK, namespace).message)
    namespace = with_answer(solution_namespace, CLIP + "    return grads\n")
    assert "clip_grad_norm should return a pair (clipped, total_norm), a list of tensors and a number, got list" in (
        judged(EXERCISE, ABOVE, namespace).message)


def test_hidden_failure_never_shows_the_expected_value(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["no bias correction"][0]["adamw_step"])
    assert judged(EXERCISE, FIVE_STEPS, namespace).message == (
        "Called adamw_step(<a (4, 3) tensor>, lr=0.05), as steps 1, 2, ... of one run: grad = grads[step - 1] from "
        "grads = <5 random gradients (4, 3)>, m and v zeros at step 1, then the m and v the previous step returned: "
        "the result differs from the reference."
    )


# ---- torch's optimizers and clipping, however they are reached, cost their task only ---------

USES_ADAMW = ADAMW + (
    "    p = param.clone().requires_grad_(True)\n"
    "    opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)\n"
    "    opt.state[p] = {'step': torch.tensor(float(step - 1)), 'exp_avg': m.clone(), 'exp_avg_sq': v.clone()}\n"
    "    p.grad = grad.clone()\n    opt.step()\n"
    "    return p.detach(), opt.state[p]['exp_avg'], opt.state[p]['exp_avg_sq']\n")


def test_torch_adamw_and_a_mistake_graded_in_the_sandbox(notebook_with) -> None:
    # adamw_step hands its work to torch.optim.AdamW: 0 for that task, with a message naming it.
    # lr_at's warm-up is one step late: exactly the checks of that mistake fail. clip_grad_norm
    # is right and keeps its points.
    answers, must_fail = WRONG["lr_at's warm-up one step late"]
    report = grade_submission(EXERCISE, notebook_with({"adamw_step": USES_ADAMW} | answers, base=SOLUTION))
    assert report.problems == []
    for result in report.results:
        if result.task == "adamw_step":
            assert result.score == 0 and result.message.startswith("Not allowed"), result.name
            assert "torch.optim.AdamW" in result.message and "adamw_step scores 0" in result.message
        else:
            assert result.passed == (result.name not in must_fail), result.name
    assert report.score == TOTAL - TASK_POINTS["adamw_step"] - check_points(EXERCISE, must_fail)


@pytest.mark.parametrize("task, source", [
    ("adamw_step", USES_ADAMW.replace("torch.optim.AdamW(", "getattr(torch.optim, 'Adam' + 'W')(")),
    ("adamw_step", USES_ADAMW.replace("torch.optim.AdamW(", "torch.optim.Adam(")
     .replace("weight_decay=weight_decay)", "weight_decay=weight_decay, decoupled_weight_decay=True)")),
    ("clip_grad_norm", CLIP + "    copies = [g.clone() for g in grads]\n"
     "    norm = getattr(torch.nn.utils, 'get_' + 'total_norm')(copies)\n" + SCALED),
])
def test_hidden_call_to_torch_is_caught_while_it_runs(solution_namespace: dict, task: str, source: str) -> None:
    # A computed name escapes the static scan; the tripwires see the call, and charge its task only.
    namespace = with_answer(solution_namespace, source)
    results = run_checks(namespace, EXERCISE)
    for result in results:
        if result.task == task:
            assert result.score == 0 and result.message.startswith("Not allowed"), result.name
        else:
            assert result.passed, result.name
    # The tripwires are gone again once the checks have run.
    assert torch.optim.AdamW.__init__.__module__ == "torch.optim.adamw"
    assert torch.nn.utils.get_total_norm.__module__ == "torch.nn.utils.clip_grad"

"""Exercise 04_training_loop: typical mistakes lose the points of the checks that name them, correct
code written another way keeps them, and torch's own loss costs its task. What every exercise must
do (the solution passes every check, the released stub none) is tested in tests/test_exercises.py.

References: every check compares with PyTorch (F.cross_entropy and autograd, torch.randint with
the same seed, a plain loop with F.cross_entropy on the same model and optimizer); the messages
asserted below hold numbers worked out by hand in the notebook's text.

To grade a learner's notebook instead of the solution (conftest.py says how):

    pytest tests/test_exercise_04_training_loop.py --submission ~/Downloads/training_loop.ipynb
"""

import math

import pytest
import torch
import torch.nn.functional as F
from exercise_testing import assert_fails_naming, check_named, check_points, grade_in_process, judged, with_answer
from submission_notebooks import ASSIGNMENTS

from grading import checks_for, grade_submission, run_checks
from grading.checks import built
from grading.compare import tensors_close
from grading.exercises.training_loop import HAND_BATCHES, LEARNED
from grading.in_process import format_report
from grading.learner_side import returns_tensor

EXERCISE = "04_training_loop"
SOLUTION = ASSIGNMENTS[EXERCISE].solution
TASK_POINTS = ASSIGNMENTS[EXERCISE].task_points
TOTAL = ASSIGNMENTS[EXERCISE].max_score


# ---- the references ---------------------------------------------------------------------------


def test_hand_made_references_are_the_notebooks_numbers() -> None:
    # The worked examples of the notebook's text, by hand: -log(e^2 / (e^2 + e + e^0.1)), the mean
    # with log 3, the log-sum-exp example, and the windows starting at [4, 3, 0, 2].
    one = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + math.exp(0.1)))
    (loss,) = check_named(EXERCISE, "cross_entropy of one position is -log p(target)").expected()
    assert loss["shape"] == [] and loss["values"] == pytest.approx(one, rel=1e-6) and round(one, 4) == 0.4170
    (mean,) = check_named(EXERCISE, "cross_entropy is the mean over positions").expected()
    assert mean["values"] == pytest.approx((one + math.log(3)) / 2, rel=1e-6)
    (extreme,) = check_named(EXERCISE, "cross_entropy is finite for logits of ±1e4").expected()
    assert extreme["values"] == 5000.0
    draw = check_named(EXERCISE, "get_batch draws its starts with torch.randint(0, len(data) - block_size, ...)")
    [[[x, y]]] = draw.expected()
    assert x["values"] == [[14, 15, 16], [13, 14, 15], [10, 11, 12], [12, 13, 14]]
    assert y["values"] == [[v + 1 for v in row] for row in x["values"]] and x["dtype"] == "int64"


def test_reachability_check_expects_every_valid_start() -> None:
    check = check_named(EXERCISE, "get_batch reaches every valid start, the last one included, and no other")
    (data, _, block_size), = (check.calls[0].args,)
    assert check.expected() == [list(range(len(data) - block_size))]


def test_reference_loop_learns_the_pattern() -> None:
    check = check_named(EXERCISE, "train lowers a tiny model's loss over 50 steps")
    losses = check.expected()[0]["losses"]
    assert len(losses) == 50 and sum(losses[-5:]) / 5 < 0.1 * losses[0] < (1 - LEARNED) * losses[0]


def test_references_agree_with_the_course_library() -> None:
    # A second opinion: course_lib.training computes the same losses and draws the same windows.
    from course_lib import training

    for check in checks_for(EXERCISE, "cross_entropy")[:5]:
        ours = [_plain(training.cross_entropy(*built(each.args))) for each in check.calls]
        assert tensors_close(check.expected(), ours), check.name
    draw = check_named(EXERCISE, "get_batch on random data, several calls in a row")
    (data, batch_size, block_size), then = draw.calls[0].args, draw.calls[0].then
    generator = torch.Generator().manual_seed(then["seed"])
    ours = [training.get_batch(data, batch_size, block_size, generator=generator) for _ in range(then["calls"])]
    assert draw.expected() == [[[_plain(x), _plain(y)] for x, y in ours]]


def _plain(tensor: torch.Tensor) -> dict:
    return returns_tensor(tensor, "course_lib")


# ---- typical mistakes -----------------------------------------------------------------------

CE = "def cross_entropy(logits, targets):\n"
GATHER = "    correct = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)\n"
LSE = ("    m = logits.max(dim=-1, keepdim=True).values\n"
       "    lse = m.squeeze(-1) + torch.log(torch.exp(logits - m).sum(-1))\n")
GET_BATCH = "def get_batch(data, batch_size, block_size, generator=None):\n"
WINDOWS = ("    x = torch.stack([data[s : s + block_size] for s in starts.tolist()])\n"
           "    y = torch.stack([data[s + 1 : s + block_size + 1] for s in starts.tolist()])\n    return x, y\n")


def draws(high: str) -> str:
    return f"    starts = torch.randint(0, {high}, (batch_size,), generator=generator)\n"


TRAIN = "def train(model, optimizer, batches):\n    losses = []\n    for x, y in batches:\n"
STEP = ("        optimizer.zero_grad()\n        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())\n"
        "        loss.backward()\n        optimizer.step()\n")

# (answer cells replaced, the checks that must fail). Each is a mistake learners make.
WRONG = {
    "no max subtraction: exp overflows": (
        {"cross_entropy": CE + "    lse = torch.log(torch.exp(logits).sum(-1))\n" + GATHER
         + "    return (lse - correct).mean()\n"},
        {"cross_entropy is finite for logits of ±1e4", "cross_entropy with large random logits"},
    ),
    "sum instead of mean": (
        {"cross_entropy": CE + LSE + GATHER + "    return (lse - correct).sum()\n"},
        {"cross_entropy is the mean over positions", "cross_entropy over (B, T, V) logits and more leading dimensions",
         "cross_entropy's gradient equals F.cross_entropy's"},
    ),
    "target gathered for the first dimension only": (
        {"cross_entropy": CE + LSE + "    correct = logits[torch.arange(len(targets)), targets]\n"
         "    return (lse - correct).mean()\n"},
        {"cross_entropy over (B, T, V) logits and more leading dimensions"},
    ),
    "the target's probability, not its log": (
        {"cross_entropy": CE + "    p = torch.softmax(logits, dim=-1)\n"
         "    return (-p.gather(-1, targets.unsqueeze(-1))).mean()\n"},
        {"cross_entropy of one position is -log p(target)", "cross_entropy is the mean over positions",
         "cross_entropy's gradient equals F.cross_entropy's"},
    ),
    "get_batch never draws the last start": (
        {"get_batch": GET_BATCH + draws("len(data) - block_size - 1") + WINDOWS},
        {"get_batch draws its starts with torch.randint(0, len(data) - block_size, ...)",
         "get_batch reaches every valid start, the last one included, and no other",
         "get_batch on random data, several calls in a row", "get_batch when only one window fits"},
    ),
    "get_batch draws starts up to len(data)": (
        {"get_batch": GET_BATCH + draws("len(data)") + WINDOWS},
        {"get_batch draws its starts with torch.randint(0, len(data) - block_size, ...)",
         "get_batch reaches every valid start, the last one included, and no other",
         "get_batch on random data, several calls in a row"},
    ),
    "y not shifted": (
        {"get_batch": GET_BATCH + draws("len(data) - block_size")
         + "    x = torch.stack([data[s : s + block_size] for s in starts.tolist()])\n    return x, x.clone()\n"},
        {"get_batch's y is x shifted by one",
         "get_batch draws its starts with torch.randint(0, len(data) - block_size, ...)",
         "get_batch on random data, several calls in a row"},
    ),
    "get_batch ignores the generator": (
        {"get_batch": GET_BATCH + "    starts = torch.randint(0, len(data) - block_size, (batch_size,))\n" + WINDOWS},
        {"get_batch draws its starts with torch.randint(0, len(data) - block_size, ...)",
         "get_batch on random data, several calls in a row"},
    ),
    "train without zero_grad": (
        {"train": TRAIN + STEP.replace("        optimizer.zero_grad()\n", "") + "        losses.append(loss.item())\n"
         "    return losses\n"},
        {"train's losses are the reference loop's (SGD)",
         "train's losses are the reference loop's (AdamW, random batches)",
         "train leaves the model trained as the reference loop does"},
    ),
    "train returns the loss tensors": (
        {"train": TRAIN + STEP + "        losses.append(loss)\n    return losses\n"},
        {"train returns a list with one Python float per batch"},
    ),
    "train steps before backward": (
        {"train": TRAIN + STEP.replace("        loss.backward()\n        optimizer.step()\n",
                                       "        optimizer.step()\n        loss.backward()\n")
         + "        losses.append(loss.item())\n    return losses\n"},
        {"train's losses are the reference loop's (SGD)",
         "train's losses are the reference loop's (AdamW, random batches)",
         "train leaves the model trained as the reference loop does", "train lowers a tiny model's loss over 50 steps"},
    ),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_mistake_loses_points_of_the_checks_it_breaks(notebook_with, mistake: str) -> None:
    answers, must_fail = WRONG[mistake]
    (task,) = answers
    # Only the task's own checks: the other tasks are the sandboxed test's below.
    results = grade_in_process(notebook_with(answers, base=SOLUTION), EXERCISE, task)
    assert_fails_naming(results, must_fail, EXERCISE, mistake)


USES_TORCH_LOSS = CE + "    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))\n"


# Other ways to be right: each passes every check of its task.
RIGHT = {
    "cross_entropy with torch.logsumexp": {
        "cross_entropy": CE + GATHER + "    return (logits.logsumexp(-1) - correct).mean()\n"},
    "cross_entropy by flattening to (N, V)": {
        "cross_entropy": CE + "    flat = logits.reshape(-1, logits.shape[-1])\n"
        "    m = flat.max(dim=1, keepdim=True).values.detach()\n"
        "    log_p = flat - m - torch.log(torch.exp(flat - m).sum(1, keepdim=True))\n"
        "    return -log_p[torch.arange(len(flat)), targets.reshape(-1)].mean()\n"},
    "get_batch by index arithmetic": {
        "get_batch": GET_BATCH + draws("len(data) - block_size")
        + "    index = starts[:, None] + torch.arange(block_size)\n    return data[index], data[index + 1]\n"},
    "train with F.cross_entropy, zeroing after the step": {
        "train": TRAIN + "        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())\n"
        "        loss.backward()\n        optimizer.step()\n        optimizer.zero_grad()\n"
        "        losses.append(float(loss))\n    return losses\n"},
}


@pytest.mark.parametrize("variant", list(RIGHT))
def test_correct_variants_pass(notebook_with, variant: str) -> None:
    answers = RIGHT[variant]
    (task,) = answers
    results = grade_in_process(notebook_with(answers, base=SOLUTION), EXERCISE, task)
    assert all(result.passed for result in results), format_report(results, variant)


def test_comparisons_never_raise_on_tampered_values() -> None:
    # What comes back from the sandbox is plain data of any shape; a comparison says False to
    # anything that is not the result it expects (it must never crash the grader).
    not_ids = {"shape": [4, 3], "dtype": "int64", "values": "ab"}  # the shape get_batch's checks expect
    garbage = [None, 1, "x", [], [[not_ids, not_ids]], [[not_ids]], {"losses": ["x"]},
               {"losses": None, "parameters": 3}, {"parameters": {"embedding": [1]}}]
    for check in checks_for(EXERCISE):
        expected = check.expected()[0]
        for value in garbage:
            assert check.compare(expected, value) is False, (check.name, value)


def test_torch_loss_and_a_mistake_graded_in_the_sandbox(notebook_with) -> None:
    # cross_entropy calls F.cross_entropy: 0 for that task, with a message naming it. train forgets
    # zero_grad: exactly the checks of that mistake fail. get_batch is right and keeps its points;
    # train's other checks pass although they run the learner's cross_entropy, and with it
    # F.cross_entropy, which train may use.
    answers, must_fail = WRONG["train without zero_grad"]
    report = grade_submission(EXERCISE, notebook_with({"cross_entropy": USES_TORCH_LOSS} | answers, base=SOLUTION))
    assert report.problems == []
    for result in report.results:
        if result.task == "cross_entropy":
            assert result.score == 0 and result.message.startswith("Not allowed"), result.name
            assert "torch.nn.functional.cross_entropy" in result.message
            assert "cross_entropy scores 0" in result.message
        else:
            assert result.passed == (result.name not in must_fail), result.name
    assert report.score == TOTAL - TASK_POINTS["cross_entropy"] - check_points(EXERCISE, must_fail)


def test_visible_failures_show_expected_and_got(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["sum instead of mean"][0]["cross_entropy"])
    assert judged(EXERCISE, "cross_entropy is the mean over positions", namespace).message == (
        "Called cross_entropy(tensor([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]]), tensor([0, 2])):\n"
        "  expected tensor(0.7578)\n"
        "  got      tensor(1.5156)"
    )
    namespace = with_answer(solution_namespace, WRONG["train without zero_grad"][0]["train"])
    message = judged(EXERCISE, "train's losses are the reference loop's (SGD)", namespace).message
    assert message.endswith("\n  expected losses [2.7503, 1.5125, 1.3710]\n  got      losses [2.7503, 1.5125, 1.0560]")


def test_overflow_is_explained(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["no max subtraction: exp overflows"][0]["cross_entropy"])
    result = judged(EXERCISE, "cross_entropy is finite for logits of ±1e4", namespace)
    assert "holds NaN or infinity: does an exponential overflow?" in result.message
    assert "log-sum-exp trick" in result.message


def test_returned_tensors_are_named(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["train returns the loss tensors"][0]["train"])
    message = judged(EXERCISE, "train returns a list with one Python float per batch", namespace).message
    assert message.endswith("train should return a list of Python floats (use `loss.item()`), got tensor(2.7503, "
                            "grad_fn=<NllLossBackward0>).")


def test_hidden_failure_never_shows_the_expected_value(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["train without zero_grad"][0]["train"])
    assert judged(EXERCISE, "train leaves the model trained as the reference loop does", namespace).message == (
        "Called train(model, optimizer, batches), with model = TinyLM(7, 5, seed=2), optimizer = SGD(lr=0.5), "
        "batches = <6 random batches (4, 6)>: the result differs from the reference."
    )


def test_train_accepts_a_generator_of_batches(solution_namespace: dict) -> None:
    # The notebook's demo feeds train from a generator expression: one step per batch drawn.
    from grading.exercises.training_loop_calls import TinyLM

    model = TinyLM(5, 4, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    batches = ((torch.tensor(x), torch.tensor(y)) for x, y in HAND_BATCHES.value)
    losses = solution_namespace["train"](model, optimizer, batches)
    assert [round(loss, 4) for loss in losses] == [2.7503, 1.5125, 1.3710]


# ---- torch's own loss, however it is reached, costs cross_entropy's points ------------------


@pytest.mark.parametrize("call", [
    "getattr(torch.nn.functional, 'cross_' + 'entropy')(logits.flatten(0, -2), targets.flatten())",
    "-logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).mean()",
    "torch.nn.NLLLoss()(getattr(torch, 'log_' + 'softmax')(logits, -1).flatten(0, -2), targets.flatten())",
])
def test_hidden_call_to_torch_loss_is_caught_while_it_runs(solution_namespace: dict, call: str) -> None:
    # A computed name or a Tensor method escapes the static scan; the tripwires see the call.
    namespace = with_answer(solution_namespace, CE + f"    return {call}\n")
    results = run_checks(namespace, EXERCISE, "cross_entropy")
    assert all(r.score == 0 and r.message.startswith("Not allowed") for r in results)
    # The tripwires are gone again once the checks have run.
    assert F.cross_entropy.__module__ == "torch.nn.functional" and torch.log_softmax.__module__ != __name__
    assert type(torch.Tensor.log_softmax).__name__ == "method_descriptor"

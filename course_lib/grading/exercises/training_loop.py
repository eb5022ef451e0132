"""The checks of exercise 04_training_loop: cross_entropy, get_batch, train.

The learner writes, in exercises/04_training_loop/training_loop.ipynb (generated from
solutions/04_training_loop/training_loop.ipynb):

    cross_entropy(logits, targets) -> 0-dim Tensor      # logits (..., V), targets (...): the mean
                                                        # of -log softmax(logits)[target]
    get_batch(data, batch_size, block_size, generator)  # -> x, y (batch_size, block_size), y = x
                                                        # shifted by one; starts drawn as
        torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    train(model, optimizer, batches) -> list[float]     # one step per (x, y): zero the gradients,
                                                        # forward, loss, backward, step

cross_entropy must not call torch's own (FORBIDDEN below, log_softmax included: the point is the
log-sum-exp trick; torch.logsumexp is allowed). train may use torch.nn.functional.cross_entropy.
The references are torch's: F.cross_entropy and autograd; torch.randint with the same seed and
windows cut with Tensor.unfold; a plain loop with F.cross_entropy on the same TinyLM and
optimizer (see training_loop_calls.py). Visible checks use the notebook's hand-made examples,
hidden ones inputs from fixed seeds. Floats are compared with the tolerances of compare.py, ids
exactly.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from course_lib.grading.checks import Check, plain_equal
from course_lib.grading.compare import ATOL, RTOL, show_tensors, tensors_close
from course_lib.grading.exercises.training_loop_calls import (
    TinyLM,
    call_cross_entropy,
    call_cross_entropy_grad,
    call_get_batch,
    call_get_batch_starts,
    call_train,
    call_train_types,
    long_tensor,
    make_optimizer,
    one_thread,
)

# torch's losses, and log-softmax, which would leave the log-sum-exp trick undone. train may use them.
FORBIDDEN: dict[str, list[str]] = {
    "cross_entropy": [
        "torch.nn.functional.cross_entropy",
        "torch.nn.functional.nll_loss",
        "torch.nn.CrossEntropyLoss",
        "torch.nn.NLLLoss",
        "torch.nn.functional.log_softmax",
        "torch.log_softmax",
        "torch.Tensor.log_softmax",
        "torch.special.log_softmax",
        "torch.nn.LogSoftmax",
    ],
}

# ---------------------------------------------------------------------------------------------
# Inputs: hand-made (visible) or drawn from a fixed seed (hidden), always plain data
# ---------------------------------------------------------------------------------------------


def random_logits_case(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> dict:
    """An input of call_cross_entropy: normal logits of `shape` (..., V) times `scale`, and
    uniform targets of shape (...)."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, generator=generator)
    targets = torch.randint(0, shape[-1], shape[:-1], generator=generator)
    return {"logits": logits.tolist(), "targets": targets.tolist()}


def random_ids(seed: int, size: int, vocab_size: int) -> list[int]:
    """`size` uniform token ids below `vocab_size`."""
    return torch.randint(0, vocab_size, (size,), generator=torch.Generator().manual_seed(seed)).tolist()


def random_batches(seed: int, count: int, batch_size: int, block_size: int, vocab_size: int) -> list:
    """`count` batches [x, y] of uniform ids, x and y of shape (batch_size, block_size)."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, vocab_size, (2, batch_size, block_size), generator=generator).tolist() for _ in range(count)
    ]


def pattern_batches(count: int, batch_size: int, block_size: int, vocab_size: int) -> list:
    """`count` batches cut from the repeating text 0, 1, ..., V-1, 0, 1, ...: each id has one
    next id, which a bigram model learns in a few dozen steps (its loss falls towards 0)."""
    text = torch.arange(count * batch_size + block_size + 1) % vocab_size
    windows = text.unfold(0, block_size + 1, 1)  # (positions, block_size + 1)
    batches = []
    for i in range(count):
        rows = windows[i * batch_size : (i + 1) * batch_size]  # (batch_size, block_size + 1)
        batches.append([rows[:, :-1].tolist(), rows[:, 1:].tolist()])
    return batches


# ---------------------------------------------------------------------------------------------
# References (trusted side): torch's loss, torch's generator, a plain loop
# ---------------------------------------------------------------------------------------------


def _logits_and_targets(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(case["logits"]), long_tensor(case["targets"])


def reference_cross_entropy(cases: list) -> list[dict]:
    """F.cross_entropy, which wants (N, V) and (N,): every leading dimension flattened into N."""
    losses = []
    for case in cases:
        logits, targets = _logits_and_targets(case)
        losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)))
    return [_plain(loss) for loss in losses]


def reference_cross_entropy_grad(cases: list) -> list[dict]:
    """The gradient of F.cross_entropy with respect to the logits, by autograd."""
    grads = []
    for case in cases:
        logits, targets = _logits_and_targets(case)
        logits.requires_grad_(True)
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).backward()
        grads.append(_plain(logits.grad))
    return grads


def reference_get_batch(data: list, batch_size: int, block_size: int, seed: int, calls: int = 1) -> list:
    """The draw the exercise prescribes, with windows of block_size + 1 ids cut by Tensor.unfold:
    x is a window without its last id, y without its first."""
    generator = torch.Generator().manual_seed(seed)
    ids = long_tensor(data)
    windows = ids.unfold(0, block_size + 1, 1)  # (len(data) - block_size, block_size + 1): one per valid start
    batches = []
    for _ in range(calls):
        starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
        chosen = windows[starts]  # (batch_size, block_size + 1)
        batches.append([_plain(chosen[:, :-1]), _plain(chosen[:, 1:])])
    return batches


def reference_starts(size: int, batch_size: int, block_size: int, seed: int, calls: int) -> list[int]:
    """The distinct starts that the prescribed draw reaches (every one of 0 .. size - block_size - 1)."""
    batches = reference_get_batch(list(range(size)), batch_size, block_size, seed, calls)
    return sorted({row[0] for x, _ in batches for row in x["values"]})


def reference_train(model: dict, optimizer: dict, batches: list) -> dict:
    """The loop the exercise describes, on the same TinyLM and optimizer as the learner's."""
    lm = TinyLM(**model)
    adjust = make_optimizer(lm, optimizer)
    losses = []
    with one_thread():
        for x, y in batches:
            adjust.zero_grad()
            logits = lm(long_tensor(x))  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), long_tensor(y).reshape(-1))
            loss.backward()
            adjust.step()
            losses.append(loss.item())
    return {"losses": losses, "parameters": {name: _plain(p) for name, p in lm.named_parameters()}}


def reference_train_types(model: dict, optimizer: dict, batches: list) -> dict:
    """A list with one Python float per batch (what loss.item() gives)."""
    return {"type": "list", "items": ["float"] * len(batches)}


def _plain(tensor: torch.Tensor) -> dict:
    tensor = tensor.detach()
    return {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch."), "values": tensor.tolist()}


# ---------------------------------------------------------------------------------------------
# Comparisons that look at one property of the result
# ---------------------------------------------------------------------------------------------


def _shape_and_dtype(value: Any) -> Any:
    """A result with every tensor's values left out: what the shape check compares. Values that
    do not have the shape they claim (only a tampered result) leave None instead."""
    if type(value) is dict and set(value) == {"shape", "dtype", "values"}:
        try:
            consistent = list(torch.tensor(value["values"]).shape) == value["shape"]
        except (TypeError, ValueError, RuntimeError):  # ragged lists, or not numbers
            consistent = False
        return {"shape": value["shape"], "dtype": value["dtype"]} if consistent else None
    if type(value) is list:
        return [_shape_and_dtype(item) for item in value]
    return value


def same_shapes_and_dtypes(expected: Any, actual: Any) -> bool:
    """The same tensors' shapes and dtypes, in the same places; the values may differ."""
    return plain_equal(_shape_and_dtype(expected), _shape_and_dtype(actual))


def show_shapes(value: Any) -> str:
    """'x: (4, 3) int64, y: (4, 3) int64' for one get_batch result [[x, y]]."""
    (x, y), *_ = value
    return "; ".join(f"{name}: {tuple(t['shape'])} {t['dtype']}" for name, t in (("x", x), ("y", y)))


def shifted_by_one(expected: list, actual: Any) -> bool:
    """For data = [offset, offset + 1, ...]: every row of x is a run of consecutive ids (a window
    of the data), and y = x + 1 (the next id at every position), whatever the starts drawn."""
    if not same_shapes_and_dtypes(expected, actual):
        return False
    for x, y in actual:
        try:
            x_ids, y_ids = long_tensor(x["values"]), long_tensor(y["values"])
        except (TypeError, ValueError, RuntimeError):  # values that are not ids (tampered with)
            return False
        if not (bool((x_ids[:, 1:] == x_ids[:, :-1] + 1).all()) and bool((y_ids == x_ids + 1).all())):
            return False
    return True


def show_batch(value: list) -> str:
    """'x = tensor([[14, 15, 16], ...]), y = tensor(...)' for a list of get_batch results."""
    return "; ".join(f"x = {show_tensors(x)}, y = {show_tensors(y)}" for x, y in value)


def _floats_close(expected: list, actual: Any) -> bool:
    if type(actual) is not list or len(actual) != len(expected) or not all(type(a) is float for a in actual):
        return False
    return bool(torch.allclose(torch.tensor(actual, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                               rtol=RTOL, atol=ATOL))


def same_losses(expected: dict, actual: Any) -> bool:
    """The learner's losses are the reference loop's, step by step (the tolerances of compare.py)."""
    return type(actual) is dict and "losses" in actual and _floats_close(expected["losses"], actual["losses"])


def same_parameters(expected: dict, actual: Any) -> bool:
    """The model's weights after the learner's train are those after the reference loop."""
    return type(actual) is dict and tensors_close(expected["parameters"], actual.get("parameters"))


def show_losses(value: dict) -> str:
    """'losses [2.0794, 1.9031, ...]' (4 decimals)."""
    return "losses [" + ", ".join(f"{loss:.4f}" for loss in value["losses"]) + "]"


# The loss must fall at least this far, as a fraction of the first loss (the reference loop's
# falls from 2.35 to under 0.01: more than 99%).
LEARNED = 0.5


def loss_went_down(expected: dict, actual: Any) -> bool:
    """One loss per batch, and the mean of the last five at most (1 - LEARNED) times the first."""
    losses = actual.get("losses") if type(actual) is dict else None
    if type(losses) is not list or len(losses) != len(expected["losses"]) or not all(type(x) is float for x in losses):
        return False
    return sum(losses[-5:]) / 5 <= (1 - LEARNED) * losses[0]


def show_progress(value: dict) -> str:
    """'50 losses, first 2.7726, mean of the last five 0.0412'."""
    losses = value["losses"]
    return f"{len(losses)} losses, first {losses[0]:.4f}, mean of the last five {sum(losses[-5:]) / 5:.4f}"


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------

# The notebook's worked examples.
ONE_POSITION = {"logits": [[2.0, 1.0, 0.1]], "targets": [0]}
TWO_POSITIONS = {"logits": [[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]], "targets": [0, 2]}
EXTREME = {"logits": [[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], "targets": [0, 1]}
DATA = list(range(10, 20))  # get_batch's example: 10 ids whose values show where each window starts
HAND_MODEL = {"vocab_size": 5, "width": 4, "seed": 0}
HAND_BATCHES = [
    [[[0, 1, 2, 3]], [[1, 2, 3, 4]]],
    [[[4, 0, 1, 2]], [[0, 1, 2, 3]]],
    [[[2, 3, 4, 0]], [[3, 4, 0, 1]]],
]
SGD = {"name": "SGD", "lr": 0.5}
ADAMW = {"name": "AdamW", "lr": 0.05, "weight_decay": 0.1}

_tensor_check = partial(Check, compare=tensors_close, show=show_tensors)
_loss = partial(_tensor_check, task="cross_entropy", call=call_cross_entropy, reference=reference_cross_entropy)
_batch = partial(Check, task="get_batch", call=call_get_batch, reference=reference_get_batch, show=show_batch)
_train = partial(Check, task="train", call=call_train, reference=reference_train)

CHECKS: list[Check] = [
    # ---- cross_entropy: 6 points -----------------------------------------------------------
    _loss(
        name="cross_entropy of one position is -log p(target)",
        points=1,
        visibility="visible",
        inputs={"cases": [ONE_POSITION]},
        describe="cross_entropy(logits, targets) with logits = [[2.0, 1.0, 0.1]], targets = [0] "
        "(expected a 0-dim tensor)",
    ),
    _loss(
        name="cross_entropy is the mean over positions",
        points=1,
        visibility="visible",
        inputs={"cases": [TWO_POSITIONS]},
        describe="cross_entropy(logits, targets) with logits = [[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]], targets = [0, 2]",
    ),
    _loss(
        name="cross_entropy is finite for logits of ±1e4",
        points=1,
        visibility="visible",
        inputs={"cases": [EXTREME]},
        describe="cross_entropy(logits, targets) with logits = [[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], targets = [0, 1]",
    ),
    _loss(
        name="cross_entropy over (B, T, V) logits and more leading dimensions",
        points=1,
        visibility="hidden",
        inputs={"cases": [partial(random_logits_case, 10, (6, 7)), partial(random_logits_case, 20, (4, 8, 10)),
                          partial(random_logits_case, 30, (2, 3, 5, 7))]},
        describe="cross_entropy(logits, targets) with random logits of shapes (6, 7), (4, 8, 10) and (2, 3, 5, 7)",
    ),
    _loss(
        name="cross_entropy with large random logits",
        points=1,
        visibility="hidden",
        inputs={"cases": [partial(random_logits_case, 40, (3, 5, 11), scale=3e3)]},
        describe="cross_entropy(logits, targets) with random logits (3, 5, 11) in the thousands",
    ),
    _tensor_check(
        name="cross_entropy's gradient equals F.cross_entropy's",
        task="cross_entropy",
        points=1,
        visibility="hidden",
        call=call_cross_entropy_grad,
        inputs={"cases": [partial(random_logits_case, 50, (2, 4, 6)),
                          partial(random_logits_case, 60, (5, 9), scale=50.0)]},
        reference=reference_cross_entropy_grad,
        describe="cross_entropy(logits, targets).backward() with random logits (2, 4, 6) and (5, 9), "
        "then logits.grad",
    ),
    # ---- get_batch: 6 points ----------------------------------------------------------------
    _batch(
        name="get_batch returns x and y of shape (batch_size, block_size), dtype int64",
        points=1,
        visibility="visible",
        inputs={"data": DATA, "batch_size": 4, "block_size": 3, "seed": 0},
        describe="get_batch(data, 4, 3, generator) with data = torch.arange(10, 20)",
        compare=same_shapes_and_dtypes,
        show=show_shapes,
    ),
    _batch(
        name="get_batch's y is x shifted by one",
        points=1,
        visibility="visible",
        inputs={"data": DATA, "batch_size": 4, "block_size": 3, "seed": 0},
        describe="get_batch(data, 4, 3, generator) with data = torch.arange(10, 20): each row of x a "
        "window of data, y = the ids one position later",
        compare=shifted_by_one,
    ),
    _batch(
        name="get_batch draws its starts with torch.randint(0, len(data) - block_size, ...)",
        points=1,
        visibility="visible",
        inputs={"data": DATA, "batch_size": 4, "block_size": 3, "seed": 0},
        describe="get_batch(data, 4, 3, generator) with data = torch.arange(10, 20) and "
        "generator = torch.Generator().manual_seed(0)",
        compare=tensors_close,
    ),
    Check(
        name="get_batch reaches every valid start, the last one included, and no other",
        task="get_batch",
        points=1,
        visibility="hidden",
        call=call_get_batch_starts,
        inputs={"size": 12, "batch_size": 64, "block_size": 4, "seed": 7, "calls": 4},
        reference=reference_starts,
        describe="get_batch(data, 64, 4, generator) four times with data = torch.arange(12): the "
        "distinct starts of the windows drawn",
    ),
    _batch(
        name="get_batch on random data, several calls in a row",
        points=1,
        visibility="hidden",
        inputs={"data": partial(random_ids, 70, 200, 50), "batch_size": 8, "block_size": 16, "seed": 123, "calls": 3},
        describe="get_batch(data, 8, 16, generator) three times with one generator on 200 random ids",
        compare=tensors_close,
    ),
    _batch(
        name="get_batch when only one window fits",
        points=1,
        visibility="hidden",
        inputs={"data": partial(random_ids, 75, 9, 50), "batch_size": 3, "block_size": 8, "seed": 5},
        describe="get_batch(data, 3, 8, generator) with 9 random ids: every window must start at 0",
        compare=tensors_close,
    ),
    # ---- train: 6 points --------------------------------------------------------------------
    Check(
        name="train returns a list with one Python float per batch",
        task="train",
        points=1,
        visibility="visible",
        call=call_train_types,
        inputs={"model": HAND_MODEL, "optimizer": SGD, "batches": HAND_BATCHES},
        reference=reference_train_types,
        describe="train(model, optimizer, batches) with the notebook's three batches; the types it returned",
    ),
    _train(
        name="train's losses are the reference loop's (SGD)",
        points=1,
        visibility="visible",
        inputs={"model": HAND_MODEL, "optimizer": SGD, "batches": HAND_BATCHES},
        describe="train(TinyLM(5, 4, seed=0), SGD(lr=0.5), batches) with the notebook's three batches",
        compare=same_losses,
        show=show_losses,
    ),
    _train(
        name="train's losses are the reference loop's (AdamW, random batches)",
        points=1,
        visibility="hidden",
        inputs={"model": {"vocab_size": 11, "width": 6, "seed": 1}, "optimizer": ADAMW,
                "batches": partial(random_batches, 80, 8, 3, 5, 11)},
        describe="train(TinyLM(11, 6, seed=1), AdamW(lr=0.05, weight_decay=0.1), 8 random batches (3, 5))",
        compare=same_losses,
    ),
    _train(
        name="train leaves the model trained as the reference loop does",
        points=2,
        visibility="hidden",
        inputs={"model": {"vocab_size": 7, "width": 5, "seed": 2}, "optimizer": SGD,
                "batches": partial(random_batches, 90, 6, 4, 6, 7)},
        describe="train(TinyLM(7, 5, seed=2), SGD(lr=0.5), 6 random batches (4, 6)), then the model's parameters",
        compare=same_parameters,
    ),
    _train(
        name="train lowers a tiny model's loss over 50 steps",
        points=1,
        visibility="visible",
        inputs={"model": {"vocab_size": 8, "width": 8, "seed": 3}, "optimizer": ADAMW,
                "batches": partial(pattern_batches, 50, 4, 8, 8)},
        describe="train(TinyLM(8, 8, seed=3), AdamW(lr=0.05, weight_decay=0.1), 50 batches (4, 8) of "
        "the repeating ids 0, 1, ..., 7, 0, 1, ...): the mean of the last five losses must be at most "
        f"{1 - LEARNED:g} times the first",
        compare=loss_went_down,
        show=show_progress,
    ),
]

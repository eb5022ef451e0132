"""The checks of exercise 04_training_loop: cross_entropy, get_batch, train.

The learner writes, in exercises/04_training_loop/training_loop.ipynb:

    cross_entropy(logits, targets) -> 0-dim Tensor      # logits (..., V), targets (...): the mean
                                                        # of -log softmax(logits)[target]
    get_batch(data, batch_size, block_size, generator)  # -> x, y (batch_size, block_size), y = x
                                                        # shifted by one; starts drawn as
        torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    train(model, optimizer, batches) -> list[float]     # one step per (x, y): zero the gradients,
                                                        # forward, loss, backward, step

cross_entropy must not call torch's own (FORBIDDEN, log_softmax included: the point is the
log-sum-exp trick; torch.logsumexp is allowed); train may use F.cross_entropy. The references are
torch's: F.cross_entropy and autograd; torch.randint with the same seed and windows cut with
Tensor.unfold; a plain loop with F.cross_entropy on the same TinyLM and optimizer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grading import seeds
from grading.checks import Call, Check, Input, Substitute, call, plain_equal, tensor_returns
from grading.compare import ATOL, RTOL, show_tensors, tensor_checks, tensors_close
from grading.exercises.training_loop_calls import TinyLM, one_thread

NOTEBOOK = "training_loop.ipynb"
# torch's losses, and log-softmax, would leave the log-sum-exp trick undone. train may use them.
FORBIDDEN: dict[str, list[str]] = {
    "cross_entropy": ["torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss", "torch.nn.CrossEntropyLoss",
                      "torch.nn.NLLLoss", "torch.nn.functional.log_softmax", "torch.log_softmax",
                      "torch.Tensor.log_softmax", "torch.special.log_softmax", "torch.nn.LogSoftmax"],
}
NOT_FINITE = ("does an exponential overflow? exp(10000.) is inf in float32; subtract each row's largest logit "
              "before exponentiating (the log-sum-exp trick)")

# ---- inputs -----------------------------------------------------------------------------------


def loss(logits: torch.Tensor, targets: torch.Tensor) -> Call:
    return call("cross_entropy", logits, targets, returns=tensor_returns(hint=NOT_FINITE))


def random_logits(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal logits of `shape` (..., V) times `scale`, and uniform targets of shape (...)."""
    generator = torch.Generator().manual_seed(seeds.seed(seed))
    logits = scale * torch.randn(shape, generator=generator)
    return logits, torch.randint(0, shape[-1], shape[:-1], generator=generator)


def gradient(logits: torch.Tensor, targets: torch.Tensor) -> Call:
    return Call("cross_entropy", (logits, targets), adapter="exercises.training_loop_calls.loss_gradient",
                steps="then .backward() and logits.grad")


def get_batch(data: Any, batch_size: int, block_size: int, seed: int, calls: int = 1,
              adapter: str = "batches") -> Call:
    """get_batch(data, batch_size, block_size, generator) `calls` times with one generator."""
    steps = "with generator = torch.Generator().manual_seed({seed})" + (", {calls} times" if calls > 1 else "")
    return Call("get_batch", (data, batch_size, block_size), adapter=f"exercises.training_loop_calls.{adapter}",
                then={"seed": seeds.seed(seed), "calls": calls}, steps=steps)


def random_ids(seed: int, size: int, vocab_size: int) -> torch.Tensor:
    return torch.randint(0, vocab_size, (size,), generator=torch.Generator().manual_seed(seeds.seed(seed)))


def train(model: dict, optimizer: dict, batches: Any, adapter: str = "train_run", returns: str = "plain") -> Call:
    """train(model, optimizer, batches) with a fresh TinyLM(**model) and make_optimizer(optimizer)."""
    settings = ", ".join(f"{key}={value}" for key, value in optimizer.items() if key != "name")
    return Call("train", (), returns={"kind": returns}, adapter=f"exercises.training_loop_calls.{adapter}",
                then={"model": model, "optimizer": optimizer, "batches": batches},
                steps=f"with model = TinyLM({model['vocab_size']}, {model['width']}, seed={model['seed']}), "
                      f"optimizer = {optimizer['name']}({settings}), batches = {{batches}}")


def random_batches(seed: int, count: int, batch_size: int, block_size: int, vocab_size: int) -> Input:
    """`count` batches [x, y] of uniform ids, x and y of shape (batch_size, block_size)."""
    generator = torch.Generator().manual_seed(seeds.seed(seed))
    return Input(lambda: [torch.randint(0, vocab_size, (2, batch_size, block_size), generator=generator).tolist()
                          for _ in range(count)], f"{count} random batches ({batch_size}, {block_size})")


def pattern_batches(count: int, batch_size: int, block_size: int, vocab_size: int) -> Input:
    """`count` batches cut from the repeating ids 0, 1, ..., V-1, 0, 1, ...: each id has one next
    id, which a bigram model learns in a few dozen steps (its loss falls towards 0)."""
    text = torch.arange(count * batch_size + block_size + 1) % vocab_size
    windows = text.unfold(0, block_size + 1, 1)  # (positions, block_size + 1)
    rows = [windows[i * batch_size : (i + 1) * batch_size] for i in range(count)]  # each (batch_size, block_size + 1)
    return Input(lambda: [[r[:, :-1].tolist(), r[:, 1:].tolist()] for r in rows],
                 f"{count} batches ({batch_size}, {block_size}) of the repeating ids 0, 1, ..., {vocab_size - 1}")


# ---- references (grader's side) ---------------------------------------------------------------


def torch_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """F.cross_entropy, which wants (N, V) and (N,): every leading dimension flattened into N."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def unfold_get_batch(data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator) -> tuple:
    """The draw the exercise prescribes, windows of block_size + 1 ids cut by Tensor.unfold."""
    windows = data.unfold(0, block_size + 1, 1)  # (len(data) - block_size, block_size + 1): one per start
    chosen = windows[torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)]
    return chosen[:, :-1], chosen[:, 1:]  # (batch_size, block_size) each


def reference_loop(model: TinyLM, optimizer: torch.optim.Optimizer, batches: list) -> list[float]:
    """The loop the exercise describes, with F.cross_entropy."""
    losses = []
    with one_thread():
        for x, y in batches:
            optimizer.zero_grad()
            step_loss = torch_cross_entropy(model(x), y)
            step_loss.backward()
            optimizer.step()
            losses.append(step_loss.item())
    return losses


# ---- comparisons that look at one property of the result --------------------------------------


def _shape_and_dtype(value: Any) -> Any:
    """A result with every tensor's values left out; a tensor whose values do not have the shape
    it claims (only a tampered result) leaves None."""
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


def shifted_by_one(expected: list, actual: Any) -> bool:
    """For data = [offset, offset + 1, ...]: every row of x is a window of the data, and y = x + 1
    (the next id at every position), whatever the starts drawn."""
    if not same_shapes_and_dtypes(expected, actual):
        return False
    for x, y in actual:
        try:
            x_ids, y_ids = torch.tensor(x["values"], dtype=torch.long), torch.tensor(y["values"], dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):  # values that are not ids (tampered with)
            return False
        if not (bool((x_ids[:, 1:] == x_ids[:, :-1] + 1).all()) and bool((y_ids == x_ids + 1).all())):
            return False
    return True


def show_batches(value: list) -> str:
    """'x = tensor([[14, 15, 16], ...]), y = tensor(...)' per get_batch call."""
    return "; ".join(f"x = {show_tensors(x)}, y = {show_tensors(y)}" for x, y in value)


def show_shapes(value: list) -> str:
    """'x: (4, 3) int64, y: (4, 3) int64' for one get_batch call."""
    (x, y), *_ = value
    return "; ".join(f"{name}: {tuple(t['shape'])} {t['dtype']}" for name, t in (("x", x), ("y", y)))


def _floats_close(expected: list, actual: Any) -> bool:
    if type(actual) is not list or len(actual) != len(expected) or not all(type(a) is float for a in actual):
        return False
    return bool(torch.allclose(torch.tensor(actual, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                               rtol=RTOL, atol=ATOL))


def same_losses(expected: dict, actual: Any) -> bool:
    """The learner's losses are the reference loop's, step by step."""
    return type(actual) is dict and _floats_close(expected["losses"], actual.get("losses"))


def same_parameters(expected: dict, actual: Any) -> bool:
    """The model's weights after the learner's train are those after the reference loop."""
    return type(actual) is dict and tensors_close(expected["parameters"], actual.get("parameters"))


# The loss must fall at least this far, as a fraction of the first loss (the reference loop's
# falls from 2.35 to under 0.01: more than 99%).
LEARNED = 0.5


def loss_went_down(expected: dict, actual: Any) -> bool:
    """One loss per batch, and the mean of the last five at most (1 - LEARNED) times the first."""
    losses = actual.get("losses") if type(actual) is dict else None
    if type(losses) is not list or len(losses) != len(expected["losses"]) or not all(type(x) is float for x in losses):
        return False
    return sum(losses[-5:]) / 5 <= (1 - LEARNED) * losses[0]


def show_losses(value: dict) -> str:
    """'losses [2.0794, 1.9031, ...]' (4 decimals)."""
    return "losses [" + ", ".join(f"{x:.4f}" for x in value["losses"]) + "]"


def show_progress(value: dict) -> str:
    """'50 losses, first 2.7726, mean of the last five 0.0412'."""
    losses = value["losses"]
    return f"{len(losses)} losses, first {losses[0]:.4f}, mean of the last five {sum(losses[-5:]) / 5:.4f}"


# ---- the checks -------------------------------------------------------------------------------

ONE_POSITION = (torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([0]))
TWO_POSITIONS = (torch.tensor([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]]), torch.tensor([0, 2]))
EXTREME = (torch.tensor([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]]), torch.tensor([0, 1]))
DATA = torch.arange(10, 20)  # get_batch's example: 10 ids whose values show where each window starts
HAND_MODEL = {"vocab_size": 5, "width": 4, "seed": 0}
HAND_BATCHES = Input(lambda: [[[[0, 1, 2, 3]], [[1, 2, 3, 4]]], [[[4, 0, 1, 2]], [[0, 1, 2, 3]]],
                              [[[2, 3, 4, 0]], [[3, 4, 0, 1]]]], "the notebook's three batches")
SGD = {"name": "SGD", "lr": 0.5}
ADAMW = {"name": "AdamW", "lr": 0.05, "weight_decay": 0.1}
GET_BATCH = Substitute(unfold_get_batch)
TRAIN = Substitute(reference_loop)


loss_check = tensor_checks("cross_entropy", torch_cross_entropy)


CHECKS: list[Check] = [
    # cross_entropy: 7 points
    loss_check("cross_entropy of one position is -log p(target)", loss(*ONE_POSITION)),
    loss_check("cross_entropy is the mean over positions", loss(*TWO_POSITIONS)),
    loss_check("cross_entropy is finite for logits of ±1e4", loss(*EXTREME)),
    loss_check("cross_entropy over (B, T, V) logits and more leading dimensions",
               tuple(loss(*random_logits(seed, shape)) for seed, shape in [(10, (6, 7)), (20, (4, 8, 10)),
                                                                           (30, (2, 3, 5, 7))]), hidden=True),
    loss_check("cross_entropy with large random logits", loss(*random_logits(40, (3, 5, 11), scale=3e3)), hidden=True),
    Check("cross_entropy", "cross_entropy's gradient equals F.cross_entropy's",
          (gradient(*random_logits(50, (2, 4, 6))), gradient(*random_logits(60, (5, 9), scale=50.0))),
          reference=Substitute(torch_cross_entropy), compare=tensors_close, hidden=True),
    loss_check("cross_entropy with a vocabulary of one", loss(torch.tensor([[3.0], [-1.0]]), torch.tensor([0, 0]))),
    # get_batch: 7 points
    Check("get_batch", "get_batch returns x and y of shape (batch_size, block_size), dtype int64",
          get_batch(DATA, 4, 3, seed=0), reference=GET_BATCH, compare=same_shapes_and_dtypes, show=show_shapes),
    Check("get_batch", "get_batch's y is x shifted by one", get_batch(DATA, 4, 3, seed=0), reference=GET_BATCH,
          compare=shifted_by_one, show=show_batches),
    Check("get_batch", "get_batch draws its starts with torch.randint(0, len(data) - block_size, ...)",
          get_batch(DATA, 4, 3, seed=0), reference=GET_BATCH, compare=tensors_close, show=show_batches),
    Check("get_batch", "get_batch reaches every valid start, the last one included, and no other",
          get_batch(torch.arange(12), 64, 4, seed=7, calls=4, adapter="starts"), reference=GET_BATCH, hidden=True),
    Check("get_batch", "get_batch on random data, several calls in a row",
          get_batch(random_ids(70, 200, 50), 8, 16, seed=123, calls=3), reference=GET_BATCH, compare=tensors_close,
          hidden=True),
    Check("get_batch", "get_batch when only one window fits", get_batch(random_ids(75, 9, 50), 3, 8, seed=5),
          reference=GET_BATCH, compare=tensors_close, hidden=True),
    Check("get_batch", "get_batch with a batch of one and windows of one id", get_batch(DATA, 1, 1, seed=3),
          reference=GET_BATCH, compare=tensors_close, show=show_batches),
    # train: 7 points
    Check("train", "train returns a list with one Python float per batch",
          train(HAND_MODEL, SGD, HAND_BATCHES, adapter="train_returned", returns="floats"),
          reference=TRAIN, compare=lambda expected, actual: type(actual) is list and len(actual) == len(expected)),
    Check("train", "train's losses are the reference loop's (SGD)", train(HAND_MODEL, SGD, HAND_BATCHES),
          reference=TRAIN, compare=same_losses, show=show_losses),
    Check("train", "train's losses are the reference loop's (AdamW, random batches)",
          train({"vocab_size": 11, "width": 6, "seed": 1}, ADAMW, random_batches(80, 8, 3, 5, 11)),
          reference=TRAIN, compare=same_losses, hidden=True),
    Check("train", "train leaves the model trained as the reference loop does",
          train({"vocab_size": 7, "width": 5, "seed": 2}, SGD, random_batches(90, 6, 4, 6, 7)),
          reference=TRAIN, compare=same_parameters, points=2, hidden=True),
    Check("train", "train lowers a tiny model's loss over 50 steps",
          train({"vocab_size": 8, "width": 8, "seed": 3}, ADAMW, pattern_batches(50, 4, 8, 8)),
          reference=TRAIN, compare=loss_went_down, show=show_progress),
    Check("train", "train with no batches returns no losses", train(HAND_MODEL, SGD, []), reference=TRAIN,
          compare=same_losses, show=show_losses),
]

"""How the checks of exercise 04_training_loop call the learner's code (the learner's side).

The standard library and torch only: the batch grader copies this file into its sandbox, next to
learner_side.py, where course_lib cannot be imported. Inputs arrive as plain data (nested lists of
floats for logits, of ints for token ids, a seed for a generator) and results leave as plain data:
a tensor as {"shape", "dtype", "values"} (the form course_lib/grading/compare.py compares), a
list of losses as a list of floats:

    >>> namespace = {"cross_entropy": lambda logits, targets: (logits.logsumexp(-1) - logits[0, targets]).mean()}
    >>> call_cross_entropy(namespace, cases=[{"logits": [[0.0, 0.0]], "targets": [1]}])
    [{'shape': [], 'dtype': 'float32', 'values': 0.6931471824645996}]

`train` needs a model and an optimizer. `TinyLM`, a model small enough to train in milliseconds,
and `make_optimizer` are defined here so that the grader's process builds exactly the same model
and optimizer for its reference loop (it imports them from this module): both start from the
same seed, so their weights agree to the last bit before the first step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..learner_side import CheckFailure, learner_function, quote, tensor_data


class TinyLM(nn.Module):
    """A bigram language model: an embedding per token and a linear head, ids (B, T) -> logits (B, T, V).

    Its weights are drawn from `seed` with a generator of its own (not torch's global one), so the
    same seed gives the same model in every process and a check leaves the learner's random
    numbers as they were: TinyLM(8, 4, seed=0)(torch.zeros(2, 3, dtype=torch.long)).shape -> (2, 3, 8).
    """

    def __init__(self, vocab_size: int, width: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embedding = nn.Parameter(torch.randn(vocab_size, width, generator=generator))
        self.head = nn.Parameter(torch.randn(vocab_size, width, generator=generator) * width**-0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding[ids] @ self.head.T  # (B, T) -> (B, T, width) -> (B, T, V)


def make_optimizer(model: nn.Module, spec: dict) -> torch.optim.Optimizer:
    """The optimizer `spec` names, over `model`'s parameters: {"name": "SGD", "lr": 0.5} or
    {"name": "AdamW", "lr": 0.05, "weight_decay": 0.1} (the other keys are its arguments)."""
    kinds = {"SGD": torch.optim.SGD, "AdamW": torch.optim.AdamW}
    arguments = {key: value for key, value in spec.items() if key != "name"}
    return kinds[spec["name"]](model.parameters(), **arguments)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then as before. The checks' models are tiny: a
    second thread only adds synchronisation, which costs 20 times the work itself when other
    processes share the cores (a grading batch with --jobs 2 on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Why cross_entropy's result can hold NaN or infinity.
NOT_FINITE = (
    "does an exponential overflow? exp(10000.) is inf in float32; subtract each row's largest "
    "logit before exponentiating (the log-sum-exp trick)"
)


def long_tensor(values: list) -> torch.Tensor:
    """Token ids (nested lists of int) as an int64 tensor."""
    return torch.tensor(values, dtype=torch.long)


def call_cross_entropy(namespace: dict, cases: list) -> list[dict]:
    """cross_entropy(logits, targets) for each case {"logits": floats (..., V), "targets": ints (...)}."""
    cross_entropy = learner_function(namespace, "cross_entropy")
    return [
        tensor_data(cross_entropy(torch.tensor(case["logits"]), long_tensor(case["targets"])), "cross_entropy's result", if_not_finite=NOT_FINITE)
        for case in cases
    ]


def call_cross_entropy_grad(namespace: dict, cases: list) -> list[dict]:
    """The gradient of cross_entropy(logits, targets) with respect to the logits, for each case."""
    cross_entropy = learner_function(namespace, "cross_entropy")
    grads = []
    for case in cases:
        logits = torch.tensor(case["logits"], requires_grad=True)
        loss = cross_entropy(logits, long_tensor(case["targets"]))
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            raise CheckFailure(
                "cross_entropy's result carries no gradient: compute it from `logits` with torch operations "
                "(no .item(), .tolist() or .detach() on the way)"
            )
        if loss.numel() != 1:
            raise CheckFailure(
                f"cross_entropy should return one number (a 0-dim tensor), got shape {tuple(loss.shape)}"
            )
        loss.sum().backward()
        grads.append(tensor_data(logits.grad, "the gradient of cross_entropy's result"))
    return grads


# ---- get_batch ----------------------------------------------------------------------------------


def _batches(namespace: dict, data: list, batch_size: int, block_size: int, seed: int, calls: int) -> Iterator[tuple]:
    """`calls` successive get_batch(data, batch_size, block_size, generator) with one generator
    seeded with `seed`, each checked to be a pair of tensors."""
    get_batch = learner_function(namespace, "get_batch")
    generator = torch.Generator().manual_seed(seed)
    ids = long_tensor(data)
    for _ in range(calls):
        batch = get_batch(ids, batch_size, block_size, generator)
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise CheckFailure(f"get_batch should return a pair (x, y), got {type(batch).__name__} {quote(batch, 80)}")
        yield batch


def call_get_batch(namespace: dict, data: list, batch_size: int, block_size: int, seed: int, calls: int = 1) -> list:
    """[x, y] of each of `calls` successive calls with one generator seeded with `seed`."""
    return [
        [tensor_data(x, "get_batch's x"), tensor_data(y, "get_batch's y")]
        for x, y in _batches(namespace, data, batch_size, block_size, seed, calls)
    ]


def call_get_batch_starts(
    namespace: dict, size: int, batch_size: int, block_size: int, seed: int, calls: int
) -> list[int]:
    """The distinct starts of the windows drawn in `calls` calls on data = [0, 1, ..., size - 1]
    (where each window's first id is its start), sorted."""
    starts: set[int] = set()
    for x, _ in _batches(namespace, list(range(size)), batch_size, block_size, seed, calls):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] == 0:
            raise CheckFailure(
                f"get_batch's x should be a tensor of shape (batch_size, block_size), got {quote(x, 80)}"
            )
        starts.update(int(start) for start in x[:, 0].tolist())
    return sorted(starts)


# ---- train --------------------------------------------------------------------------------------


def _run_train(namespace: dict, model: dict, optimizer: dict, batches: list) -> tuple[Any, TinyLM]:
    """train(model, optimizer, batches) on a fresh TinyLM(**model) and make_optimizer(optimizer);
    batches arrive as [x, y] pairs of nested ints and go in as (x, y) pairs of int64 tensors."""
    train = learner_function(namespace, "train")
    lm = TinyLM(**model)
    with one_thread():
        returned = train(lm, make_optimizer(lm, optimizer), [(long_tensor(x), long_tensor(y)) for x, y in batches])
    return returned, lm


def _losses(returned: Any) -> list[float]:
    """The losses train returned as floats; Python floats or one-number tensors are accepted here
    (whether they are Python floats is one check of its own, call_train_types)."""
    if not isinstance(returned, (list, tuple)):
        raise CheckFailure(f"train should return a list of losses, one per batch, got {type(returned).__name__} "
                           f"{quote(returned, 80)}")
    losses = []
    for loss in returned:
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            loss = loss.item()
        if type(loss) not in (float, int):
            raise CheckFailure(f"train should return one number per batch (loss.item()), got {quote(loss, 80)}")
        losses.append(float(loss))
    return losses


def call_train(namespace: dict, model: dict, optimizer: dict, batches: list) -> dict:
    """{"losses": what train returned, as floats; "parameters": the model's weights after train}."""
    returned, lm = _run_train(namespace, model, optimizer, batches)
    return {
        "losses": _losses(returned),
        "parameters": {name: tensor_data(p, f"the model's {name} after train") for name, p in lm.named_parameters()},
    }


def call_train_types(namespace: dict, model: dict, optimizer: dict, batches: list) -> dict:
    """The type of what train returned and of each item: {"type": "list", "items": ["float", ...]}."""
    returned, _ = _run_train(namespace, model, optimizer, batches)
    items = returned if isinstance(returned, (list, tuple)) else []
    return {"type": type(returned).__name__, "items": [type(item).__name__ for item in items]}

"""What 04_training_loop's checks do beyond a plain call (the learner's side: the standard library
and torch only, copied into the sandbox next to learner_side.py).

`train` needs a model and an optimizer: `TinyLM`, small enough to train in milliseconds, and
`make_optimizer` are defined here so that the grader's reference loop gets exactly the same
model and optimizer (both from the same seed, equal to the last bit before the first step):

    >>> import torch
    >>> loop = lambda model, optimizer, batches: [0.5 for _ in batches]
    >>> batch = [[[0, 1]], [[1, 0]]]
    >>> train_run(loop, [], {}, model={"vocab_size": 2, "width": 2, "seed": 0},
    ...           optimizer={"name": "SGD", "lr": 0.1}, batches=[batch])["losses"]
    [0.5]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ..learner_side import CheckFailure, quote, returns_floats, returns_tensor


class TinyLM(nn.Module):
    """A bigram language model: an embedding per token and a linear head, ids (B, T) -> logits (B, T, V).

    Its weights come from `seed` with a generator of its own (not torch's global one), so the same
    seed gives the same model in every process and a check leaves the learner's random numbers
    alone: TinyLM(8, 4, seed=0)(torch.zeros(2, 3, dtype=torch.long)).shape -> (2, 3, 8).
    """

    def __init__(self, vocab_size: int, width: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embedding = nn.Parameter(torch.randn(vocab_size, width, generator=generator))
        self.head = nn.Parameter(torch.randn(vocab_size, width, generator=generator) * width**-0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding[ids] @ self.head.T  # (B, T) -> (B, T, width) -> (B, T, V)


def make_optimizer(model: nn.Module, spec: dict) -> torch.optim.Optimizer:
    """{"name": "SGD", "lr": 0.5} or {"name": "AdamW", "lr": 0.05, "weight_decay": 0.1} over
    `model`'s parameters (the other keys are the optimizer's arguments)."""
    kinds = {"SGD": torch.optim.SGD, "AdamW": torch.optim.AdamW}
    return kinds[spec["name"]](model.parameters(), **{key: value for key, value in spec.items() if key != "name"})


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block: the checks' models are tiny, and a second thread only
    adds synchronisation (20 times the work itself when a batch grades two submissions at once)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def loss_gradient(cross_entropy: Callable, args: list, kwargs: dict) -> dict:
    """The gradient of cross_entropy(logits, targets) with respect to the logits, by autograd."""
    logits, targets = args
    logits.requires_grad_(True)
    loss = cross_entropy(logits, targets)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise CheckFailure("cross_entropy's result carries no gradient: compute it from `logits` with torch "
                           "operations (no .item(), .tolist() or .detach() on the way)")
    if loss.numel() != 1:
        raise CheckFailure(f"cross_entropy should return one number (a 0-dim tensor), got shape {tuple(loss.shape)}")
    loss.sum().backward()
    return returns_tensor(logits.grad, "cross_entropy", what="the gradient of its result")


def batches(get_batch: Callable, args: list, kwargs: dict, seed: int, calls: int = 1) -> list:
    """[x, y] of `calls` successive get_batch(*args, generator) with one generator seeded `seed`."""
    generator = torch.Generator().manual_seed(seed)
    drawn = []
    for _ in range(calls):
        batch = get_batch(*args, generator)
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise CheckFailure(f"get_batch should return a pair (x, y), got {type(batch).__name__} {quote(batch, 80)}")
        drawn.append([returns_tensor(batch[0], "get_batch", what="x"), returns_tensor(batch[1], "get_batch", what="y")])
    return drawn


def starts(get_batch: Callable, args: list, kwargs: dict, seed: int, calls: int) -> list[int]:
    """The distinct starts of the windows drawn by `calls` calls, sorted (args[0] is
    torch.arange(n), where each window's first id is its start)."""
    found: set[int] = set()
    for x, _ in batches(get_batch, args, kwargs, seed, calls):
        if len(x["shape"]) != 2 or x["shape"][1] == 0:
            raise CheckFailure(f"get_batch's x should be a tensor of shape (batch_size, block_size), got shape {x['shape']}")
        found.update(row[0] for row in x["values"])
    return sorted(found)


def _train(train: Callable, model: dict, optimizer: dict, batches: list) -> tuple[Any, TinyLM]:
    """train(model, optimizer, batches) on a fresh TinyLM(**model) and make_optimizer(optimizer);
    batches arrive as [x, y] pairs of ids and go in as (x, y) pairs of int64 tensors."""
    lm = TinyLM(**model)
    with one_thread():
        returned = train(lm, make_optimizer(lm, optimizer),
                         [(torch.tensor(x, dtype=torch.long), torch.tensor(y, dtype=torch.long)) for x, y in batches])
    return returned, lm


def train_run(train: Callable, args: list, kwargs: dict, model: dict, optimizer: dict, batches: list) -> dict:
    """{"losses": what train returned, as numbers; "parameters": the model's weights after train}.
    One-number tensors count as losses here; whether they are Python floats is a check of its own."""
    returned, lm = _train(train, model, optimizer, batches)
    if not isinstance(returned, (list, tuple)):
        raise CheckFailure(f"train should return a list of losses, one per batch, got {type(returned).__name__} "
                           f"{quote(returned, 80)}")
    losses = [loss.item() if isinstance(loss, torch.Tensor) and loss.numel() == 1 else loss for loss in returned]
    return {"losses": returns_floats([float(x) if type(x) is int else x for x in losses], "train"),
            "parameters": {name: returns_tensor(p, "train", what=f"the model's {name} after train") for name, p in lm.named_parameters()}}


def train_returned(train: Callable, args: list, kwargs: dict, model: dict, optimizer: dict, batches: list) -> Any:
    """What train returned, as it is (the check's `returns` says what it must be)."""
    return _train(train, model, optimizer, batches)[0]

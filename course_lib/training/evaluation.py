"""Perplexity: how many tokens the model is, on average, choosing between.

The mean cross-entropy L (in nats) says how surprised the model is by each next token; exp(L)
turns it into a count. A model that knows nothing spreads its bets evenly over the V tokens of
the vocabulary: L = log V, perplexity V (65 for Tiny Shakespeare's characters). A perplexity of
6 means the model is as unsure as a fair choice among 6 characters.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..loss import cross_entropy


@torch.no_grad()
def perplexity(model: nn.Module, ids: torch.Tensor, batch_size: int = 32) -> float:
    """exp(mean cross-entropy) of `model` on the token ids `ids` (N,), over every position.

    The text is cut into consecutive windows of block_size + 1 tokens; in each, the model
    predicts tokens 1..block_size from the ones before (so early positions see a short context,
    as at the start of any text). A perplexity of P means the model is, on average, as unsure
    as a fair choice among P tokens: a model that knows nothing scores the vocabulary size.

    `model(x)` must return (logits, loss) as `GPT` does, with `model.config.block_size`.
    """
    block_size = model.config.block_size
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if ids.numel() < 2:
        raise ValueError(f"perplexity needs at least 2 tokens, got {ids.numel()}")
    device = next(model.parameters()).device
    # Windows share their edge token, so every token after the first is predicted exactly once.
    full = (ids.numel() - 1) // block_size * block_size  # tokens predicted by full windows
    batches = []
    if full:
        windows = ids[: full + 1].unfold(0, block_size + 1, block_size)  # (n, block_size + 1)
        batches = list(windows.split(batch_size))
    if full < ids.numel() - 1:
        batches.append(ids[full:].unsqueeze(0))  # the shorter last window, (1, t + 1)
    was_training = model.training
    model.eval()
    total = 0.0
    for batch in batches:
        batch = batch.to(device)
        logits, _ = model(batch[:, :-1])  # (b, t, V)
        total += cross_entropy(logits, batch[:, 1:]).item() * batch[:, 1:].numel()
    model.train(was_training)
    return math.exp(total / (ids.numel() - 1))

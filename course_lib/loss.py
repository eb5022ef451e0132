"""Cross-entropy: how surprised the model is by the token that actually came next.

For one position with logits z (one score per vocabulary entry) and the correct next token t,

    loss = -log softmax(z)[t] = logsumexp(z) - z[t]

With logits [2, 1, 0] and t = 0: logsumexp = log(e² + e + 1) ≈ 2.4076, so the loss is
≈ 0.4076, i.e. the model gave the right token probability e^-0.4076 ≈ 0.665. A model that
spreads its bets evenly over V tokens scores log(V) everywhere (log 65 ≈ 4.17 for Tiny
Shakespeare's characters).

`GPT.forward(ids, targets)` computes its loss with this function (fast=False) or with its fused
twin F.cross_entropy (fast=True); training (`course_lib.training`) uses the model's loss.
"""

from __future__ import annotations

import torch


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean of -log softmax(logits)[target] over every position: logits (..., V), targets (...).

    The same number as torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1)).
    log-sum-exp is computed as m + log(sum(exp(z - m))) with m the largest logit: exp(z) of a
    logit of 1e4 overflows float32 to inf, while exp(z - m) is at most exp(0) = 1.

        >>> round(cross_entropy(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([0])).item(), 4)
        0.4076
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"cross_entropy expected logits (..., V) and targets (...) with the same leading shape,"
            f" got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    if targets.is_floating_point():
        raise TypeError(f"cross_entropy expected integer class ids as targets, got {targets.dtype}")
    # Half-precision logits (under autocast) lose the small differences that matter here.
    logits = logits.float()
    m = logits.max(dim=-1, keepdim=True).values.detach()  # (..., 1); a constant shift, no gradient needed
    log_sum_exp = m.squeeze(-1) + torch.log(torch.exp(logits - m).sum(dim=-1))  # (...)
    correct = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (...) the target's logit
    return (log_sum_exp - correct).mean()

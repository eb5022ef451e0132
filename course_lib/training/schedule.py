"""The learning rate over training: a linear warm-up, then a cosine decay to a floor.

    lr
    max_lr |    .--.
           |   /    `.
           |  /       `-.
    min_lr | /            `--.______
           +--------------------------- step
             warmup        decay_iters

Warm-up: at the start Adam's running averages hold almost no history and the weights are
random, so large steps can throw the model somewhere it does not recover from; ramping up over
a few hundred steps avoids that. Cosine decay: smaller and smaller steps let the weights settle
into a minimum instead of bouncing around it.
"""

from __future__ import annotations

import math


def lr_at(step: int, max_lr: float, min_lr: float, warmup_iters: int, decay_iters: int) -> float:
    """The learning rate for optimizer step `step` (0-based).

    Linear warm-up from max_lr / warmup_iters (step 0) to max_lr (step warmup_iters - 1), then
    half a cosine from max_lr (step warmup_iters) down to min_lr (step decay_iters), then min_lr.
    lr_at(0, 1.0, 0.1, 10, 110) -> 0.1; lr_at(60, 1.0, 0.1, 10, 110) -> 0.55 (halfway down);
    lr_at(500, 1.0, 0.1, 10, 110) -> 0.1.
    """
    if step < warmup_iters:
        return max_lr * (step + 1) / warmup_iters
    if step >= decay_iters:
        return min_lr
    progress = (step - warmup_iters) / (decay_iters - warmup_iters)  # 0 -> 1
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)

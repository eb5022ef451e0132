"""AdamW with weight decay on the weight matrices only (the parameter groups of nanoGPT and GPT-3).

Weight decay pulls every decayed weight a little towards 0 at each step (AdamW applies it
directly to the weights, "decoupled" from the gradient, as Loshchilov & Hutter 2019 propose).
It is meant for the matrices that mix features: every parameter with 2 or more dimensions, i.e.
the linear layers' weights and the token and position embeddings (the token embedding is also
the head when the weights are tied). Biases and the norms' scales (1-D) are left alone: pulling a
LayerNorm's scale towards 0 would shrink its output rather than regularise anything.
"""

from __future__ import annotations

import torch
from torch import nn

# Where torch.optim.AdamW has a fused kernel (PyTorch 2.4+), among the devices course_lib picks.
FUSED_ADAMW_DEVICES = ("cpu", "cuda", "mps")


def configure_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
) -> torch.optim.AdamW:
    """torch.optim.AdamW over two groups: 2-D+ parameters with `weight_decay`, the rest with none.

    A parameter shared by two modules (the tied embedding and head) is listed once, as
    `named_parameters` does. On the devices that have it (CPU, CUDA, MPS, ...) AdamW runs as
    one fused kernel over all parameters, instead of a dozen small operations per parameter:
    the same update, several times faster (on the shakespeare-char model on a CPU, 0.5 ms
    instead of 4.3 ms a step; see benchmarks/RESULTS.md).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = all(p.device.type in FUSED_ADAMW_DEVICES for p in params)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)

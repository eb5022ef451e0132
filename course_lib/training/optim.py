"""AdamW with weight decay on the weight matrices only (the parameter groups of nanoGPT and GPT-3).

Weight decay pulls every decayed weight a little towards 0 at each step (AdamW applies it
directly to the weights, "decoupled" from the gradient, as Loshchilov & Hutter 2019 propose).
It is meant for the matrices that mix features: every parameter with 2 or more dimensions, i.e.
the linear layers' weights and the token and position embeddings (the token embedding is also
the head when the weights are tied). Biases and the norms' scales (1-D) are left alone: pulling a
LayerNorm's scale towards 0 would shrink its output rather than regularise anything.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


def configure_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    device_type: str = "cpu",
) -> torch.optim.AdamW:
    """torch.optim.AdamW over two groups: 2-D+ parameters with `weight_decay`, the rest with none.

    A parameter shared by two modules (the tied embedding and head) is listed once, as
    `named_parameters` does. On a GPU the fused AdamW kernel updates all parameters at once.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **({"fused": True} if fused else {}))

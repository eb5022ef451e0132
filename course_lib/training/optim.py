"""AdamW and gradient clipping, written out, and the optimizer a training run uses.

AdamW (Loshchilov & Hutter 2019) keeps two running averages per parameter, m of the gradient
g and v of g², corrects both for starting at zero, and moves each weight by m̂ / (√v̂ + ε) plus
a pull towards 0 ("weight decay", applied to the weight directly: the "W" of AdamW):

    m ← β₁ m + (1 - β₁) g          m̂ = m / (1 - β₁ᵗ)
    v ← β₂ v + (1 - β₂) g²         v̂ = v / (1 - β₂ᵗ)
    w ← w - lr (m̂ / (√v̂ + ε) + λ w)

Weight decay is meant for the matrices that mix features: every parameter with 2 or more
dimensions, i.e. the linear layers' weights and the token and position embeddings (the token
embedding is also the head when the weights are tied). Biases and the norms' scales (1-D) are
left alone: pulling a LayerNorm's scale towards 0 would shrink its output rather than
regularise anything. `configure_optimizer` builds these two groups (as nanoGPT and GPT-3 do).

Two paths, as in the layers: `AdamW` and `clip_grad_norm` below are the written-out lines;
torch.optim.AdamW (fused) and torch.nn.utils.clip_grad_norm_ are their fused twins, which the
Trainer uses. The tests check that both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# Where torch.optim.AdamW has a fused kernel (PyTorch 2.4+), among the devices course_lib picks.
FUSED_ADAMW_DEVICES = ("cpu", "cuda", "mps")


class AdamW(torch.optim.Optimizer):
    """torch.optim.AdamW written out: the same update, one parameter at a time.

    Parameter groups, zero_grad, state_dict and a GradScaler work as with any torch optimizer,
    since the bookkeeping comes from torch.optim.Optimizer; `step` holds the equations above.

        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = AdamW([w], lr=0.1, weight_decay=0.0)
        >>> w.grad = torch.tensor([4.0])
        >>> opt.step()  # the first step is lr · g / |g| = 0.1, whatever g's size
        >>> w
        Parameter containing:
        tensor([0.9000], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()  # the update is not part of what to differentiate
    def step(self) -> None:
        for group in self.param_groups:
            lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                g, state = w.grad, self.state[w]
                if not state:  # m, v: running means of g and g²
                    state.update(t=0, m=torch.zeros_like(w),
                                 v=torch.zeros_like(w))
                state["t"] += 1  # steps taken, for the bias correction
                t, m, v = state["t"], state["m"], state["v"]
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                # both moments start at 0: undo that pull towards 0
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                update = m_hat / (v_hat.sqrt() + eps)
                w.sub_(lr * (update + decay * w))


@torch.no_grad()
def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale all gradients together so that their global norm is at most max_norm; return the norm before.

    The global norm treats every gradient of the model as one long vector: sqrt of the sum of
    all their squares. Gradients of norm 5 clipped to 1 become a fifth as long, all in the same
    proportion, so the direction of the step is kept and only its length shrinks:

        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> w.grad = torch.tensor([3.0, 4.0])
        >>> clip_grad_norm([w], max_norm=1.0)
        tensor(5.)
        >>> w.grad
        tensor([0.6000, 0.8000])

    As torch.nn.utils.clip_grad_norm_: the factor is max_norm / (norm + 1e-6), capped at 1, and
    applied even when it is 1, so that no number is read back from a GPU to decide.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))  # the norm of all of them
    scale = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return total_norm


def configure_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    fast: bool = True,
) -> torch.optim.Optimizer:
    """AdamW over two groups: 2-D+ parameters with `weight_decay`, the rest with none.

    A parameter shared by two modules (the tied embedding and head) is listed once, as
    `named_parameters` does. fast=True (the default) returns torch.optim.AdamW, which on the
    devices that have it (CPU, CUDA, MPS) runs as one fused kernel over all parameters instead
    of a dozen small operations per parameter: the same update, several times faster (on the
    shakespeare-char model on a CPU, 0.5 ms instead of 4.3 ms a step; see benchmarks/RESULTS.md).
    fast=False returns this module's `AdamW`.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    if not fast:
        return AdamW(groups, lr=lr, betas=betas)
    fused = all(p.device.type in FUSED_ADAMW_DEVICES for p in params)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)

"""Benchmark: training tokens/s of course_lib's GPT against a plain torch.nn model of the same shape.

The peer is written here with torch.nn's own layers (nn.Linear, nn.LayerNorm, nn.Embedding,
nn.GELU and F.scaled_dot_product_attention): the model nanoGPT's model.py describes, with the
same parameter count, batch and block. Both take the same step: forward, cross-entropy,
backward, gradient clipping, AdamW. course_lib's step is `Trainer.train_step` (its own
cross_entropy and batch drawing included).

The peer runs twice: with AdamW as nanoGPT configures it (the fused kernel on CUDA only, so
PyTorch's default implementation on a CPU), and with course_lib's `configure_optimizer` (the
fused kernel wherever PyTorch has one). The first ratio is course_lib's training step against
plain PyTorch written nanoGPT's way; the second isolates the models, optimizer equal.

The three alternate, step by step, so that a change in the machine's load hits all of them;
the script prints the median tokens/s and the ratios.

    python benchmarks/bench_train_throughput.py [--preset shakespeare-char] [--steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.model import GPT, GPTConfig
from course_lib.training import RECIPES, TrainConfig, Trainer, configure_optimizer, get_batch


class PlainBlock(nn.Module):
    """A pre-norm transformer block from torch.nn parts."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_heads = c.n_heads
        self.ln1 = nn.LayerNorm(c.d_model, bias=c.bias)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model, bias=c.bias)
        self.proj = nn.Linear(c.d_model, c.d_model, bias=c.bias)
        self.ln2 = nn.LayerNorm(c.d_model, bias=c.bias)
        self.mlp = nn.Sequential(
            nn.Linear(c.d_model, c.hidden_dim, bias=c.bias), nn.GELU(approximate="tanh"),
            nn.Linear(c.hidden_dim, c.d_model, bias=c.bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)  # 3 × (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class PlainGPT(nn.Module):
    """GPT-2's shape from torch.nn layers, with the head tied to the token embedding."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.tok = nn.Embedding(c.vocab_size, c.d_model)
        self.pos = nn.Embedding(c.block_size, c.d_model)
        self.blocks = nn.ModuleList(PlainBlock(c) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model, bias=c.bias)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos.weight[: idx.shape[1]]  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, V)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shakespeare-char", choices=sorted(RECIPES))
    parser.add_argument("--vocab-size", type=int, default=65, help="65: Tiny Shakespeare's characters")
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each model")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    recipe = RECIPES[args.preset]
    config = recipe.model_config(args.vocab_size)
    train = recipe.train
    torch.manual_seed(0)
    ours = GPT(config)
    plain = PlainGPT(config)
    n_ours, n_plain = (sum(p.numel() for p in m.parameters()) for m in (ours, plain))
    assert n_ours == n_plain, f"parameter counts differ: {n_ours} vs {n_plain}"

    data = torch.randint(0, config.vocab_size, (200_000,))
    trainer = Trainer(ours, data, data, TrainConfig(**{**vars(train), "max_iters": 10**6}), device="cpu", progress=False)
    plain_fused = PlainGPT(config)
    plain_fused.load_state_dict(plain.state_dict())
    betas = (train.beta1, train.beta2)
    # nanoGPT's configure_optimizers: the same two groups, fused=True only on CUDA.
    nanogpt_adamw = torch.optim.AdamW(
        [{"params": [p for p in plain.parameters() if p.dim() >= 2], "weight_decay": train.weight_decay},
         {"params": [p for p in plain.parameters() if p.dim() < 2], "weight_decay": 0.0}],
        lr=train.lr, betas=betas,
    )

    def plain_step(model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
        x, y = get_batch(data, train.batch_size, config.block_size, generator=generator)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, config.vocab_size), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()

    OURS, PLAIN, PLAIN_FUSED = "course_lib GPT (Trainer.train_step)", "plain GPT, nanoGPT's AdamW", "plain GPT, fused AdamW"
    steps = {
        OURS: trainer.train_step,
        PLAIN: functools.partial(plain_step, plain, nanogpt_adamw, torch.Generator().manual_seed(0)),
        PLAIN_FUSED: functools.partial(
            plain_step, plain_fused, configure_optimizer(plain_fused, train.lr, train.weight_decay, betas),
            torch.Generator().manual_seed(0),
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.steps + 3):  # the first 3 of each warm up and are not counted
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if i >= 3:
                times[name].append(time.perf_counter() - start)

    tokens = train.batch_size * config.block_size
    print(f"shape: {args.preset} ({n_ours:,} parameters), batch {train.batch_size} x block {config.block_size},"
          f" {args.threads} thread(s), load average {os.getloadavg()[0]:.2f}")
    rate = {name: tokens / statistics.median(t) for name, t in times.items()}
    for name, r in rate.items():
        print(f"{name:40s} {r:10,.0f} tokens/s  ({statistics.median(times[name]) * 1e3:.1f} ms/step, median of {args.steps})")
    print(f"course_lib / plain (nanoGPT's AdamW): {rate[OURS] / rate[PLAIN]:.2f}x (target >= 1.0x)")
    print(f"course_lib / plain (the same fused AdamW, i.e. the models alone): {rate[OURS] / rate[PLAIN_FUSED]:.2f}x")


if __name__ == "__main__":
    main()

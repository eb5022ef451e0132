"""Benchmark: GPT-2 small (124M) training steps on a GPU: tokens/s and model FLOPs utilisation.

Each step runs course_lib's `Trainer.train_step` with bfloat16 autocast, flash attention (the
fused kernel is required, so the run fails rather than silently using another) and
torch.compile. Training a model of N parameters costs about 6 N FLOPs per token (2 N for the
forward pass, 4 N for the backward), so

    MFU = 6 × N × tokens/s / (the GPU's peak dense bfloat16 FLOP/s)

The peak comes from a table by the GPU's name (H100 SXM: 989 TFLOP/s) or from --peak-tflops.
Target: at least 40% on an H100. The 6 N rule leaves out attention's own T² work, so it is the
conservative count. The data are random ids: speed does not depend on them.

    python benchmarks/bench_gpu_gpt2.py                       # on a CUDA machine
    python benchmarks/bench_gpu_gpt2.py --tiny --steps 3      # a smoke test on a CPU
    python benchmarks/bench_gpu_gpt2.py --profile             # and where a step's time goes
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from course_lib.device import get_device
from course_lib.model import GPT, GPTConfig
from course_lib.training import TrainConfig, Trainer

# Dense (no sparsity) bfloat16 peaks in TFLOP/s from NVIDIA's data sheets, by a part of the name
# torch.cuda.get_device_name() reports; the first match wins, so specific names come first.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM, e.g. "NVIDIA H100 80GB HBM3"
    ("H200", 989.0),
    ("A100", 312.0),
]


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed first steps (compilation)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in the table")
    parser.add_argument("--tiny", action="store_true", help="a tiny model instead of GPT-2 small (smoke test)")
    parser.add_argument("--profile", action="store_true", help="then profile 3 steps: the 15 costliest operations")
    args = parser.parse_args()

    device = get_device(args.device)
    if args.tiny:
        config = GPTConfig(vocab_size=256, block_size=64, n_layers=2, d_model=64, n_heads=2)
    else:
        # GPT-2 small; the vocabulary padded from 50257 to 50304 = 393 × 128, which GPU matmuls prefer.
        config = GPTConfig(vocab_size=50304)
    torch.backends.cuda.matmul.allow_tf32 = True  # the few float32 matmuls left under autocast
    torch.manual_seed(0)
    model = GPT(config)
    n_params = sum(p.numel() for p in model.parameters())
    data = torch.randint(0, config.vocab_size, (1_000_000,))
    train = TrainConfig(max_iters=10**6, batch_size=args.batch_size, lr=6e-4, min_lr=6e-5, warmup_iters=10)
    compile_ = not args.no_compile
    trainer = Trainer(model, data, data, train, device=device, compile=compile_, progress=False)

    with flash_attention(device):
        for _ in range(args.warmup_steps):
            trainer.train_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = trainer.train_step()  # returns a Python float: the step has finished
        seconds = time.perf_counter() - start

    tokens_per_s = trainer.tokens_per_step * args.steps / seconds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; {n_params:,} parameters; batch {args.batch_size} x block {config.block_size};"
          f" autocast {trainer.amp_dtype}; compile {compile_}; last loss {loss:.3f}")
    print(f"tokens/s: {tokens_per_s:,.0f} ({seconds / args.steps * 1e3:.1f} ms/step over {args.steps} steps)")
    peak = peak_tflops(device, args.peak_tflops)
    if peak is None:
        print("MFU: unknown peak for this device (pass --peak-tflops)")
    else:
        mfu = 6 * n_params * tokens_per_s / (peak * 1e12)
        print(f"MFU: {mfu:.1%} of {peak:.0f} TFLOP/s bf16 (target >= 40% on an H100)")
    if device.type == "cuda":
        print(f"peak memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    if args.profile:
        with flash_attention(device):
            profile_steps(trainer, device)


def flash_attention(device: torch.device) -> contextlib.AbstractContextManager:
    """On a GPU, require flash attention (fail loudly if it cannot run); elsewhere nothing."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.FLASH_ATTENTION)


def profile_steps(trainer: Trainer, device: torch.device, steps: int = 3) -> None:
    """Print the operations that took the most device time (CPU time without a GPU) over `steps` steps."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step()
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"profile of {steps} steps, by {sort_by}:")
    print(prof.key_averages().table(sort_by=sort_by, row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    main()

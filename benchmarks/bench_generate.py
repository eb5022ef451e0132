"""Benchmark: generation tokens/s of GPT.generate with and without the key-value cache, against transformers.

The model is GPT-2's architecture at a small size: 4 layers, width 256, 4 heads, GPT-2's
vocabulary of 50,257 tokens and 1,024 positions, random weights (nothing is downloaded). The
peer is Hugging Face transformers' `GPT2LMHeadModel.generate` on a model of the same shape
(`GPT2Config`, the same parameter count, checked), with its key-value cache. Both decode the
same way, batch 1, from the same 16-token prompt, in two modes: greedy (the model and the loop
alone) and sampling with temperature 1, top-k 50, then top-p 0.95 (which adds, on both sides,
a torch.multinomial draw over all 50,257 entries per token; for top-p transformers sorts all
50,257 logits, course_lib ranks only the 50 that top-k left). The peer's end-of-text token is
switched off so that it always makes every token.

Rows are numbers of new tokens. Each repeat runs course_lib's uncached `generate` (each step
runs the whole sequence again), then its cached one and the peer back to back, the pair's order
alternating from one repeat to the next (whichever runs first after the long uncached run meets
the machine in the state that run left). The script prints the median tokens/s of the repeats
and two ratios, each the median over the repeats of that repeat's ratio, so that a slow stretch
of a shared machine cancels out: cached over the peer (target >= 1.5x) and cached over uncached
(which grows with the length, since an uncached step costs more as the sequence grows and a
cached one hardly does).

    python benchmarks/bench_generate.py [--lengths 64 128 256] [--repeats 5] [--threads 2] [--modes greedy sample]
    python benchmarks/bench_generate.py --quick        # a toy size, to check that it runs
    python benchmarks/bench_generate.py --device cuda  # on a GPU (--threads then only sets the CPU's)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

from course_lib.model import GPT, GPTConfig

TOP_K, TOP_P, PROMPT_TOKENS = 50, 0.95, 16
CACHED, UNCACHED, PEER = "course_lib, cache", "course_lib, no cache", "transformers, cache"
MODES = {
    "greedy": "greedy (temperature 0 / do_sample=False): the model and the loop",
    "sample": f"sampling (temperature 1, top-k {TOP_K}, top-p {TOP_P}, torch.multinomial over the vocabulary)",
}


def shapes(quick: bool) -> dict[str, int]:
    if quick:
        return dict(vocab_size=512, block_size=64, n_layers=1, d_model=32, n_heads=2)
    return dict(vocab_size=50257, block_size=1024, n_layers=4, d_model=256, n_heads=4)


def build_models(shape: dict[str, int]) -> tuple[GPT, GPT2LMHeadModel]:
    """course_lib's GPT and transformers' GPT-2 of one shape, random weights, in eval mode."""
    torch.manual_seed(0)
    ours = GPT(GPTConfig(**shape)).eval()  # GPT-2's defaults: tanh-GELU MLP, LayerNorm, biases, tied head
    peer_config = GPT2Config(
        vocab_size=shape["vocab_size"], n_positions=shape["block_size"], n_layer=shape["n_layers"],
        n_embd=shape["d_model"], n_head=shape["n_heads"], activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    peer = GPT2LMHeadModel(peer_config).eval()
    # Never stop at an end-of-text token: every run makes exactly max_new_tokens.
    peer.generation_config.eos_token_id = None
    peer.generation_config.pad_token_id = 0
    n_ours, n_peer = (sum(p.numel() for p in m.parameters()) for m in (ours, peer))
    assert n_ours == n_peer, f"parameter counts differ: course_lib {n_ours:,}, transformers {n_peer:,}"
    return ours, peer


def runners(ours: GPT, peer: GPT2LMHeadModel, prompt: torch.Tensor, mode: str) -> dict[str, Callable[[int], torch.Tensor]]:
    """Name -> a function generating n new tokens after the prompt, returning (1, T + n) ids.

    mode "greedy": always the likeliest token (course_lib's temperature 0, transformers'
    do_sample=False); "sample": temperature 1, top-k, then top-p, one torch.multinomial draw.
    """
    generator = torch.Generator(prompt.device).manual_seed(0)
    ours_settings = dict(temperature=0.0) if mode == "greedy" else dict(temperature=1.0, top_k=TOP_K, top_p=TOP_P)
    peer_settings = dict(do_sample=False) if mode == "greedy" else dict(do_sample=True, temperature=1.0, top_k=TOP_K, top_p=TOP_P)

    def course_lib(use_cache: bool) -> Callable[[int], torch.Tensor]:
        return lambda n: ours.generate(prompt, n, generator=generator, use_cache=use_cache, **ours_settings)

    def transformers_generate(n: int) -> torch.Tensor:
        return peer.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, use_cache=True,
                             **peer_settings)

    return {CACHED: course_lib(True), UNCACHED: course_lib(False), PEER: transformers_generate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256], help="new tokens per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (the median is shown)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, the same for both libraries")
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["greedy", "sample"])
    parser.add_argument("--quick", action="store_true", help="a toy model, lengths 4 and 8, one repeat")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where both models run")
    args = parser.parse_args()
    if args.quick:
        args.lengths, args.repeats = [4, 8], 1
    torch.set_num_threads(args.threads)

    shape = shapes(args.quick)
    device = torch.device(args.device)
    ours, peer = (model.to(device) for model in build_models(shape))
    prompt = torch.randint(0, shape["vocab_size"], (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(1))
    prompt = prompt.to(device)
    runs = {mode: runners(ours, peer, prompt, mode) for mode in args.modes}
    for by_name in runs.values():  # warm up: first calls allocate, and transformers builds its processors
        for run in by_name.values():
            run(4)

    seconds: dict[tuple[str, str, int], list[float]] = {
        (mode, name, n): [] for mode in runs for name in runs[mode] for n in args.lengths}
    for repeat in range(args.repeats):
        for mode, by_name in runs.items():
            for n in args.lengths:
                for name in (UNCACHED, CACHED, PEER) if repeat % 2 == 0 else (UNCACHED, PEER, CACHED):
                    run = by_name[name]
                    start = time.perf_counter()
                    out = run(n)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    seconds[mode, name, n].append(time.perf_counter() - start)
                    assert out.shape == (1, PROMPT_TOKENS + n), (mode, name, tuple(out.shape))
        print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    n_params = sum(p.numel() for p in ours.parameters())
    print(f"shape: {shape['n_layers']} layers, width {shape['d_model']}, {shape['n_heads']} heads, vocabulary"
          f" {shape['vocab_size']:,}, block {shape['block_size']} ({n_params:,} parameters, random weights)")
    print(f"batch 1, {PROMPT_TOKENS}-token prompt; median of {args.repeats}; on {device}; {args.threads} thread(s);"
          f" torch {torch.__version__}, transformers {transformers.__version__}, Python {platform.python_version()},"
          f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for mode, by_name in runs.items():
        names = list(by_name)
        print(f"\n{MODES[mode]}")
        print(f"{'new tokens':>10s} " + " ".join(f"{name + ' tok/s':>26s}" for name in names)
              + f" {'cache / transformers':>21s} {'cache / no cache':>17s}")
        for n in args.lengths:
            rate = {name: n / statistics.median(seconds[mode, name, n]) for name in names}
            cached, uncached, peer = (seconds[mode, name, n] for name in (CACHED, UNCACHED, PEER))
            over_peer = statistics.median(p / c for c, p in zip(cached, peer))  # time ratio = speed ratio
            over_uncached = statistics.median(u / c for c, u in zip(cached, uncached))
            print(f"{n:10d} " + " ".join(f"{rate[name]:26.1f}" for name in names)
                  + f" {over_peer:20.2f}x {over_uncached:16.2f}x")
    print("\ntarget: course_lib with the cache >= 1.5x transformers; its gain over no cache growing with the length")


if __name__ == "__main__":
    main()

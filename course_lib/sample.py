"""Generate text from a trained checkpoint.

    python -m course_lib.sample --checkpoint out/shakespeare-char/ckpt.pt
    python -m course_lib.sample --checkpoint out/shakespeare-char/ckpt.pt --prompt "ROMEO:" \\
        --max-new-tokens 200 --temperature 0.8 --top-k 20 --seed 7

The model extends the prompt one sampled token at a time (see `GPT.generate`): temperature
below 1 makes it more conservative, top-k keeps only the k likeliest tokens, the seed makes a
run repeatable. A missing or damaged checkpoint, or a prompt the tokenizer cannot encode, ends
with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .device import get_device
from .train import positive_int
from .training import CheckpointError, load_model


def non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: `kind`(text), refused with a message if it is negative."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.sample", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a ckpt.pt written by course_lib.train")
    parser.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=non_negative(int), default=500)
    parser.add_argument("--temperature", type=non_negative(float), default=0.8, help="0 = always the likeliest token")
    parser.add_argument("--top-k", type=positive_int, default=None, help="sample among the k likeliest tokens only")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    return parser


def sample(args: argparse.Namespace) -> str:
    """The prompt and its continuation, as text."""
    try:
        device = get_device(args.device)
    except RuntimeError as err:
        raise ValueError(str(err)) from None
    model, tokenizer, _ = load_model(args.checkpoint, device)
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise ValueError("the prompt is empty: give at least one character, e.g. --prompt 'ROMEO:'")
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    out = model.generate(idx, args.max_new_tokens, args.temperature, args.top_k, generator)  # (1, T + new)
    return tokenizer.decode(out[0].tolist())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        text = sample(args)
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

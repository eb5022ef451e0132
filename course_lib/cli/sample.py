"""Generate text from a trained checkpoint.

    python -m course_lib.cli.sample --checkpoint out/shakespeare-char          # the run's folder
    python -m course_lib.cli.sample --checkpoint out/shakespeare-char/ckpt.pt --prompt "ROMEO:" \\
        --max-new-tokens 200 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 7

The model extends the prompt one sampled token at a time (see `GPT.generate`): temperature
below 1 makes it more conservative (0: always the likeliest token), top-k keeps only the k
likeliest tokens, top-p the fewest likeliest whose probabilities add up to p, the seed makes a
run repeatable. A missing or damaged checkpoint, or a prompt the tokenizer cannot encode, ends
with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from ..training import CheckpointError, load_model
from ..training.trainer import CHECKPOINT_NAME
from .train import device_from_args, positive_int


def non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: `kind`(text), refused with a message if it is negative."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
        return value

    return parse


def probability(text: str) -> float:
    """An argparse type for top-p: a float in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.cli.sample", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a run's folder (--out of course_lib.cli.train) or the ckpt.pt in it")
    parser.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=non_negative(int), default=500,
                        help="tokens to add to the prompt (default: %(default)s)")
    parser.add_argument("--temperature", type=non_negative(float), default=0.8,
                        help="0 = always the likeliest token (default: %(default)s)")
    parser.add_argument("--top-k", type=positive_int, default=None,
                        help="sample among the k likeliest tokens only (default: all tokens)")
    parser.add_argument("--top-p", type=probability, default=None,
                        help="sample among the fewest likeliest tokens whose probabilities add up to at"
                             " least p, in (0, 1] (default: all tokens)")
    parser.add_argument("--seed", type=int, default=1337, help="the random seed (default: %(default)s)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    return parser


def sample(args: argparse.Namespace) -> str:
    """The prompt and its continuation, as text."""
    device = device_from_args(args.device)
    path = args.checkpoint / CHECKPOINT_NAME if args.checkpoint.is_dir() else args.checkpoint
    model, tokenizer, _ = load_model(path, device)
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise ValueError("the prompt is empty: give at least one character, e.g. --prompt 'ROMEO:'")
    prompt = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    out = model.generate(prompt, args.max_new_tokens, args.temperature, args.top_k, generator, top_p=args.top_p)  # (1, T + new)
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

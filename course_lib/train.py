"""Train a GPT from a named recipe, on a CPU, a GPU, or several processes under torchrun.

    python -m course_lib.train --preset shakespeare-char                  # about 2 minutes on 2 cores
    python -m course_lib.train --preset shakespeare-char --resume         # continue out/shakespeare-char
    python -m course_lib.train --preset shakespeare-char-tiny --max-iters 50 --out /tmp/toy
    torchrun --nproc_per_node 2 -m course_lib.train --preset shakespeare-char --batch-size 6

The checkpoint (DIR/ckpt.pt) is rewritten every checkpoint_interval steps and after the last, so
a run that is interrupted loses at most the steps since then: start it again with --resume
(which continues with the settings the run was started with, --max-iters included).
Under torchrun each of the N processes trains on batch_size sequences of each global batch of
N × batch_size (× grad_accum_steps); process 0 reports and writes the checkpoint.
Mistakes (an unknown preset, a missing or damaged checkpoint, resuming with other settings)
end with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from .data import DatasetUnavailableError, load_text
from .device import get_device
from .model import GPT
from .training import (
    RECIPES,
    CheckpointError,
    Recipe,
    TrainConfig,
    Trainer,
    build_tokenizer,
    init_distributed,
    load_checkpoint,
    shutdown_distributed,
    split_data,
    tokenizer_from_state,
    vocab_size_of,
)
from .training.trainer import CHECKPOINT_NAME


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.train", description=__doc__.splitlines()[0],
        epilog="presets: " + "; ".join(f"{name}: {r.description}" for name, r in RECIPES.items()),
    )
    parser.add_argument("--preset", required=True, choices=sorted(RECIPES), help="the training recipe")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument("--max-iters", type=positive_int, help="train this many steps (the lr schedule is stretched to fit)")
    parser.add_argument("--batch-size", type=positive_int, help="sequences per process per micro-step")
    parser.add_argument("--eval-interval", type=positive_int, help="evaluate every this many steps")
    parser.add_argument("--checkpoint-interval", type=positive_int, help="save every this many steps")
    parser.add_argument("--out", type=Path, help="folder for ckpt.pt (default: out/PRESET)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def train_config_for(recipe: Recipe, args: argparse.Namespace) -> TrainConfig:
    """The recipe's TrainConfig with the command line's overrides.

    --max-iters N stretches the whole schedule: warm-up and decay keep their share of the run.
    """
    config = recipe.train
    if args.max_iters is not None:
        scale = args.max_iters / config.max_iters
        config = dataclasses.replace(
            config,
            max_iters=args.max_iters,
            warmup_iters=int(config.warmup_iters * scale),
            lr_decay_iters=max(1, round(config.decay_iters * scale)),
        )
    if args.batch_size is not None:
        config = dataclasses.replace(config, batch_size=args.batch_size)
    return dataclasses.replace(config, **reporting_overrides(args))


def reporting_overrides(args: argparse.Namespace) -> dict[str, int]:
    """--eval-interval and --checkpoint-interval, where given: they never change the weights."""
    overrides = {"eval_interval": args.eval_interval, "checkpoint_interval": args.checkpoint_interval}
    return {key: value for key, value in overrides.items() if value is not None}


def run(args: argparse.Namespace) -> None:
    recipe = RECIPES[args.preset]
    try:
        device = get_device(args.device)
    except RuntimeError as err:
        raise ValueError(str(err)) from None
    out_dir = args.out if args.out is not None else Path("out") / recipe.name
    path = out_dir / CHECKPOINT_NAME
    checkpoint = None
    if args.resume:
        checkpoint = load_checkpoint(path)
        if checkpoint["recipe"] != recipe.name:
            raise CheckpointError(
                f"{path} was trained with --preset {checkpoint['recipe']}, not {recipe.name}:"
                f" resume it with --preset {checkpoint['recipe']}, or use another --out"
            )
    elif path.exists():
        raise CheckpointError(f"{path} already exists: add --resume to continue that run, or choose another --out")
    if checkpoint is not None and args.max_iters is None and args.batch_size is None:
        # Continue the run as it was started (e.g. with --max-iters); only reporting may change.
        config = dataclasses.replace(TrainConfig(**checkpoint["train_config"]), **reporting_overrides(args))
    else:
        config = train_config_for(recipe, args)  # Trainer.load_state_dict checks it against the checkpoint

    info, device = init_distributed(device)
    try:
        text = load_text(recipe.dataset)
        if checkpoint is not None:
            tokenizer = tokenizer_from_state(checkpoint["tokenizer"])
        else:
            tokenizer = build_tokenizer(text, recipe.tokenizer, recipe.bpe_vocab_size)
        train_data, val_data = split_data(tokenizer.encode(text), recipe.val_fraction)
        torch.manual_seed(config.seed)  # the same initial weights on every process
        model = GPT(recipe.model_config(vocab_size_of(tokenizer)))
        trainer = Trainer(
            model, train_data, val_data, config, device=device, out_dir=out_dir, tokenizer=tokenizer,
            recipe=recipe.name, compile=args.compile, progress=not args.no_progress, distributed=info,
        )
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint, path)
        if info.is_main:
            n_params = sum(p.numel() for p in model.parameters())
            start = f"resuming at step {trainer.step}" if checkpoint is not None else "starting"
            print(
                f"{recipe.name}: {n_params:,} parameters, {trainer.tokens_per_step:,} tokens per step,"
                f" {config.max_iters} steps on {device} x {info.world_size} process(es); {start}",
                flush=True,
            )
        try:
            history = trainer.run()
        except KeyboardInterrupt:
            if info.is_main:
                print(f"\ninterrupted at step {trainer.step}; continue with --resume (from the last checkpoint in {out_dir})")
            raise SystemExit(130) from None
        if info.is_main:
            last = history[-1] if history else {"step": trainer.step, "val_loss": None}
            val = "" if last["val_loss"] is None else f", validation loss {last['val_loss']:.4f}"
            print(f"done: step {last['step']}{val}; checkpoint {path}")
            print(f"sample from it: python -m course_lib.sample --checkpoint {path}")
    finally:
        shutdown_distributed()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (CheckpointError, ValueError, DatasetUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

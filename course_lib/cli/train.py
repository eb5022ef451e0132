"""Train a GPT from a named recipe, on a CPU, a GPU, or several processes under torchrun.

    python -m course_lib.cli.train --preset shakespeare-char           # about 2 minutes on 2 cores
    python -m course_lib.cli.train --preset shakespeare-char --resume  # continue out/shakespeare-char
    python -m course_lib.cli.train --preset shakespeare-char-tiny --max-iters 50 --out /tmp/toy
    torchrun --nproc_per_node 2 -m course_lib.cli.train --preset shakespeare-char --batch-size 6

The checkpoint (DIR/ckpt.pt) is rewritten every checkpoint_interval steps, after the last, and
when the run is stopped with Ctrl-C or SIGTERM (after the step under way): start it again with
--resume, which continues with the settings the run was started with, --max-iters included;
--resume --max-iters N trains a run on to step N with the same learning-rate schedule.
With --max-iters shorter than the preset's run, the evaluation and checkpoint intervals shrink
in proportion (unless given), so a short run is evaluated and saved as often as the full one.
Under torchrun each of the N processes trains on batch_size sequences of each global batch of
N × batch_size (× grad_accum_steps); process 0 reports and writes the checkpoint.
Mistakes (an unknown preset, a missing or damaged checkpoint, resuming with other settings)
end with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
from pathlib import Path

import torch

from ..datasets import DatasetUnavailableError
from ..device import DEVICE_ENV, _best_available, get_device
from ..tokenization import tokenizer_from_dict
from ..training import (
    RECIPES,
    CheckpointError,
    Recipe,
    TrainConfig,
    init_distributed,
    load_checkpoint,
    shutdown_distributed,
)
from ..training.recipes import recipe_trainer
from ..training.trainer import CHECKPOINT_NAME, TrainingStopped, stop_on_signals


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def device_from_args(requested: str | None) -> torch.device:
    """The device --device (or $COURSE_LIB_DEVICE) names, or the best one here.

    A device this machine lacks ends with a message that says which option to change, in the
    command line's terms (get_device's own message speaks to Python callers).
    """
    try:
        return get_device(requested)
    except RuntimeError:
        pass
    named = requested if requested is not None else os.environ.get(DEVICE_ENV, "")
    device = torch.device(named)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        lacking = "this machine has no CUDA GPU (or this PyTorch was built without CUDA)" if count == 0 else (
            f"this machine has {count} CUDA GPU(s), numbered from 0")
    else:
        lacking = f"PyTorch has no {device.type!r} backend available on this machine"
    fix = "omit --device" if requested is not None else f"unset {DEVICE_ENV}"
    given = f"--device {named}" if requested is not None else f"${DEVICE_ENV}={named}"
    raise ValueError(f"{given}: {lacking}; {fix} to use the best device available ({_best_available()})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.cli.train", description=textwrap.fill(__doc__.splitlines()[0], 78),
        epilog=presets_table(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", required=True, choices=sorted(RECIPES), help="the training recipe (see below)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument("--max-iters", type=positive_int,
                        help="train this many steps (default: the preset's; the lr schedule is stretched"
                             " to fit). With --resume: train on to step N, same lr schedule")
    parser.add_argument("--batch-size", type=positive_int,
                        help="sequences per process per micro-step (default: the preset's)")
    parser.add_argument("--eval-interval", type=positive_int,
                        help="evaluate every this many steps (default: the preset's, scaled with --max-iters)")
    parser.add_argument("--checkpoint-interval", type=positive_int,
                        help="save every this many steps (default: the preset's, scaled with --max-iters)")
    parser.add_argument("--out", type=Path, help="folder for ckpt.pt (default: out/PRESET)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar and no line per evaluation (when stderr is not a terminal"
                             " there is no bar anyway, only the lines)")
    return parser


def presets_table() -> str:
    """The presets and their defaults, for --help."""
    rows = [("preset", "steps", "batch", "lr", "min lr", "warm-up", "eval every", "save every")]
    for name, recipe in RECIPES.items():
        t = recipe.train
        rows.append((name, str(t.max_iters), str(t.batch_size), f"{t.lr:g}", f"{t.min_lr:g}", str(t.warmup_iters),
                     str(t.eval_interval), str(t.checkpoint_interval)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["presets and their defaults:"]
    lines += ["  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
              for row in rows]
    lines += [""] + [textwrap.fill(f"{name}: {recipe.description}", 78, initial_indent="  ", subsequent_indent="    ")
                     for name, recipe in RECIPES.items()]
    return "\n".join(lines)


def train_config_for(recipe: Recipe, args: argparse.Namespace) -> TrainConfig:
    """The recipe's TrainConfig with the command line's overrides.

    --max-iters N stretches the whole schedule: warm-up and decay keep their share of the run.
    When N is shorter than the recipe's run, the evaluation and checkpoint intervals shrink in
    the same proportion (e.g. 250 -> 25 for 200 of 2000 steps), so that a short run is evaluated
    and saved as many times as the full one; a longer run keeps the recipe's intervals.
    """
    config = recipe.train
    if args.max_iters is not None:
        scale = args.max_iters / config.max_iters
        config = dataclasses.replace(
            config,
            max_iters=args.max_iters,
            warmup_iters=int(config.warmup_iters * scale),
            lr_decay_iters=max(1, round(config.decay_iters * scale)),
            eval_interval=min(config.eval_interval, max(1, round(config.eval_interval * scale))),
            checkpoint_interval=min(config.checkpoint_interval, max(1, round(config.checkpoint_interval * scale))),
        )
    if args.batch_size is not None:
        config = dataclasses.replace(config, batch_size=args.batch_size)
    return dataclasses.replace(config, **reporting_overrides(args))


def resumed_config(checkpoint: dict, args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's TrainConfig, with --max-iters (train on to that step) and --batch-size.

    --max-iters keeps the learning-rate schedule the run was started with (where the decay
    ends stays put; steps past it run at min_lr), so the steps already taken keep their
    meaning; a different --batch-size is caught by Trainer.load_state_dict.
    """
    config = TrainConfig(**checkpoint["train_config"])
    if args.max_iters is not None:
        if args.max_iters < checkpoint["step"]:
            raise CheckpointError(
                f"the checkpoint is already at step {checkpoint['step']}: to train on, give --max-iters"
                f" above {checkpoint['step']} (or leave --max-iters out to finish the run as started)"
            )
        config = dataclasses.replace(config, max_iters=args.max_iters, lr_decay_iters=config.decay_iters)
    if args.batch_size is not None:
        config = dataclasses.replace(config, batch_size=args.batch_size)
    return dataclasses.replace(config, **reporting_overrides(args))


def reporting_overrides(args: argparse.Namespace) -> dict[str, int]:
    """--eval-interval and --checkpoint-interval, where given: they never change the weights."""
    overrides = {"eval_interval": args.eval_interval, "checkpoint_interval": args.checkpoint_interval}
    return {key: value for key, value in overrides.items() if value is not None}


def run(args: argparse.Namespace) -> None:
    recipe = RECIPES[args.preset]
    device = device_from_args(args.device)
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
    if checkpoint is not None:
        config = resumed_config(checkpoint, args)  # Trainer.load_state_dict checks it against the checkpoint
    else:
        config = train_config_for(recipe, args)

    info, device = init_distributed(device)
    try:
        tokenizer = tokenizer_from_dict(checkpoint["tokenizer"]) if checkpoint is not None else None
        trainer = recipe_trainer(
            recipe, config, out_dir, tokenizer, device=device, progress=not args.no_progress,
            compile=args.compile, distributed=info,
        )
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint, path)
        try:
            # The handlers are in place before the first line is printed: from then on Ctrl-C saves.
            with stop_on_signals(trainer):
                if info.is_main:
                    n_params = sum(p.numel() for p in trainer.model.parameters())
                    start = f"resuming at step {trainer.step}" if checkpoint is not None else "starting"
                    print(
                        f"{recipe.name}: {n_params:,} parameters, {trainer.tokens_per_step:,} tokens per step,"
                        f" {config.max_iters} steps on {device} x {info.world_size} process(es); {start}\n"
                        f"evaluating every {config.eval_interval} steps; saving {path} every"
                        f" {config.checkpoint_interval} steps (next at step {next_save(trainer.step, config)}),"
                        f" at the end, and on Ctrl-C",
                        flush=True,
                    )
                history = trainer.run()
        except TrainingStopped as stopped:
            if info.is_main:
                cause = "Ctrl-C (SIGINT)" if stopped.reason == "SIGINT" else stopped.reason
                print(f"\n{cause}: stopped at step {stopped.step} and saved {path};"
                      f" continue with: {resume_command(recipe, out_dir)}", flush=True)
            raise SystemExit(143 if stopped.reason == "SIGTERM" else 130) from None
        except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, in the middle of a step
            if info.is_main:
                if path.exists():
                    saved = load_checkpoint(path)["step"]
                    print(f"\nstopped at once at step {trainer.step}; {path} holds step {saved}:"
                          f" continue from there with: {resume_command(recipe, out_dir)}", flush=True)
                else:
                    print(f"\nstopped at once at step {trainer.step}, before any checkpoint: nothing to resume",
                          flush=True)
            raise SystemExit(130) from None
        if info.is_main:
            last = history[-1] if history else {"step": trainer.step, "val_loss": None}
            val = "" if last["val_loss"] is None else f", validation loss {last['val_loss']:.4f}"
            print(f"done: step {last['step']}{val}; checkpoint {path}")
            print(f"sample from it: python -m course_lib.cli.sample --checkpoint {out_dir}")
    finally:
        shutdown_distributed()


def next_save(step: int, config: TrainConfig) -> int:
    """The step at which a run now at `step` next writes its checkpoint by the interval."""
    return min(config.max_iters, (step // config.checkpoint_interval + 1) * config.checkpoint_interval)


def resume_command(recipe: Recipe, out_dir: Path) -> str:
    return f"python -m course_lib.cli.train --preset {recipe.name} --out {out_dir} --resume"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (CheckpointError, ValueError, DatasetUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training started (reading the text, building the model)
        print("\ninterrupted before the first step: nothing was saved", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

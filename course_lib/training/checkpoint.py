"""Checkpoints: everything needed to continue a run exactly, or to sample from its model.

A checkpoint is one file written by `torch.save` holding only tensors and plain Python data
(dicts, lists, numbers, strings), so that `torch.load(weights_only=True)` can read it without
running any code stored in it. It holds:

    format            "course_lib.training.v1"
    step              optimizer steps done
    model             the model's state_dict
    optimizer         the optimizer's state_dict (AdamW's running averages)
    scaler            the fp16 GradScaler's state_dict, or None
    model_config      GPTConfig as a dict
    train_config      TrainConfig as a dict
    recipe            the recipe's name, or None
    tokenizer         tokenizer.to_dict(): plain data (see course_lib.tokenization.protocol)
    history           the loss history so far (a list of dicts)
    rng               random states: the batch generator's, torch's, CUDA's, Python's

It is written to a temporary file that then replaces the old checkpoint in one `os.replace`, so
a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from ..model import GPT, GPTConfig
from ..tokenization import Tokenizer, tokenizer_from_dict

FORMAT = "course_lib.training.v1"


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable, or from a different configuration."""


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write `checkpoint` to `path` atomically: a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **checkpoint}, temporary)
    os.replace(temporary, path)  # atomic on POSIX and Windows when both are on one filesystem


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; raise CheckpointError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: train first (python -m course_lib.cli.train) or fix the path"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a damaged file can fail anywhere in unzipping or unpickling
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(err).__name__} while reading it): it may be"
            f" truncated or not a course_lib checkpoint; train again or use another file"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a course_lib training checkpoint (expected format {FORMAT!r})")
    return checkpoint


# Settings that change how often a run reports or saves, never the weights it computes.
REPORTING_SETTINGS = {"eval_interval", "eval_iters", "checkpoint_interval"}
# Model settings that choose how the same numbers are computed (PyTorch's fused kernels or the
# written-out code), never what the weights mean: a run may resume, or a model load, with either.
IMPLEMENTATION_SETTINGS = {"fast"}


def _schedule_terms(train_config: dict) -> dict:
    """train_config with max_iters replaced by where the learning-rate decay ends.

    How long a run goes on may change when it resumes (train a finished run further); the
    learning rate of the steps already taken may not. Those depend on max_iters only through
    the decay's end (lr_decay_iters, or max_iters when that is None), so that is compared.
    """
    terms = {key: value for key, value in train_config.items() if key != "max_iters"}
    decay_end = train_config.get("lr_decay_iters")
    terms["lr_decay_iters"] = train_config.get("max_iters") if decay_end is None else decay_end
    return terms


def check_same_config(checkpoint: dict[str, Any], model_config: dict, train_config: dict, path: str | Path = "") -> None:
    """Raise CheckpointError if the checkpoint was trained with other settings than these.

    Resuming under different settings would silently mix two runs; the message lists each
    difference. The REPORTING_SETTINGS and IMPLEMENTATION_SETTINGS may change, and so may
    max_iters as long as the learning-rate schedule stays the same (see _schedule_terms).
    """
    differences = [
        f"{kind}.{key}: checkpoint {saved.get(key)!r}, now {current.get(key)!r}"
        for kind, saved, current in (
            ("model", checkpoint["model_config"], model_config),
            ("train", _schedule_terms(checkpoint["train_config"]), _schedule_terms(train_config)),
        )
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
        and key not in (REPORTING_SETTINGS if kind == "train" else IMPLEMENTATION_SETTINGS)
    ]
    if differences:
        raise CheckpointError(
            f"checkpoint {path} was trained with different settings, so it cannot be resumed with these:\n  "
            + "\n  ".join(differences)
            + "\nresume with the settings it was trained with, or start a new run in another --out folder"
        )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """The trained model (in eval mode, on `device`), its tokenizer and the checkpoint itself."""
    checkpoint = load_checkpoint(path, map_location=device)
    unknown = set(checkpoint["model_config"]) - {field.name for field in dataclasses.fields(GPTConfig)}
    if unknown:
        raise CheckpointError(
            f"{path} was written by another version of course_lib: its model settings {sorted(unknown)}"
            f" are unknown to this one; train it again with this version"
        )
    model = GPT(GPTConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), tokenizer_from_dict(checkpoint["tokenizer"]), checkpoint

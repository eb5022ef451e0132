"""Training recipes as data: the model's shape, the data and every training setting, by name.

    >>> recipe = RECIPES["shakespeare-char"]
    >>> recipe.tokenizer, recipe.train.max_iters > 0
    ('char', True)

`python -m course_lib.cli.train --preset NAME` trains a recipe; a checkpoint stores the recipe's
settings so that resuming with different ones is caught. From Python, `train_recipe(name,
out_dir)` runs the same training (both set it up with `recipe_trainer`), and
`load_or_train(name)` returns a recipe's trained model, training it only when no finished
checkpoint of that recipe is kept (chapter 4 of the book trains `shakespeare-char` and keeps it
for chapter 5):

    model, tokenizer, checkpoint = load_or_train("shakespeare-char")   # ~2 minutes the first time
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..datasets import cache_dir
from ..model import GPTConfig

if TYPE_CHECKING:  # only for the annotations: trainer.py itself imports this module
    from ..model import GPT
    from ..tokenization import Tokenizer
    from .trainer import Trainer


@dataclass(frozen=True)
class TrainConfig:
    """How to train: batch, schedule, optimizer, evaluation and checkpoint intervals.

    One optimizer step sees batch_size × grad_accum_steps × world_size sequences of the model's
    block_size tokens: batch_size per process and micro-step, grad_accum_steps micro-steps whose
    gradients add up before the step, world_size processes under torchrun (1 otherwise).
    """

    max_iters: int = 2000  # optimizer steps
    batch_size: int = 12  # sequences per process per micro-step
    grad_accum_steps: int = 1
    lr: float = 1e-3  # the peak learning rate, reached after the warm-up
    min_lr: float = 1e-4  # where the cosine decay ends
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # None: decay until max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float | None = 1.0  # the largest gradient norm; None: no clipping
    eval_interval: int = 250  # evaluate every this many steps (and after the last)
    eval_iters: int = 20  # validation batches per evaluation
    checkpoint_interval: int = 250  # write a checkpoint every this many steps (and after the last)
    seed: int = 1337

    def __post_init__(self) -> None:
        for name in ("max_iters", "batch_size", "grad_accum_steps", "eval_interval", "eval_iters", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {getattr(self, name)}")
        if self.warmup_iters < 0:
            raise ValueError(f"TrainConfig: warmup_iters must be >= 0, got {self.warmup_iters}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"TrainConfig: need 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        if self.decay_iters < self.warmup_iters:
            raise ValueError(
                f"TrainConfig: the decay cannot end before the warm-up does: lr_decay_iters (or max_iters)"
                f" = {self.decay_iters} < warmup_iters = {self.warmup_iters}"
            )

    @property
    def decay_iters(self) -> int:
        """The step at which the learning rate reaches min_lr."""
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters


@dataclass(frozen=True)
class Recipe:
    """A named training run: which text, which tokenizer, which model shape, which TrainConfig.

    `model` holds GPTConfig's fields except vocab_size, which the tokenizer decides.
    """

    name: str
    description: str
    model: dict[str, object]
    train: TrainConfig
    dataset: str = "tinyshakespeare"
    tokenizer: str = "char"  # "char" or "bpe"
    bpe_vocab_size: int | None = None  # for tokenizer="bpe"
    val_fraction: float = 0.1

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, **self.model)


NANOGPT_CPU = Recipe(
    name="nanogpt-shakespeare-char-cpu",
    description=(
        "nanoGPT's published CPU recipe for character-level Tiny Shakespeare, the reference"
        " the course's recipe is measured against (its config file with the README's CPU overrides)"
    ),
    model=dict(block_size=64, n_layers=4, n_heads=4, d_model=128, bias=False),
    train=TrainConfig(
        max_iters=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000,
        beta2=0.99, eval_interval=250, eval_iters=20, checkpoint_interval=2000,
    ),
)

# The course's default is nanoGPT's CPU recipe (its data, model and step count) with three
# settings changed. It trains at 3x nanoGPT's learning rate (after the same 100-step warm-up):
# measured on Tiny Shakespeare, lr 3e-3 reaches a validation loss of 1.78 after 2000 steps where
# 1e-3 reaches 1.90, in 104 s of wall time against nanoGPT's 183 s (RESULTS.md). Its learning rate
# decays until its last step, however many steps it is given (lr_decay_iters=None). And it saves
# every 250 steps rather than only at the end, so that an interrupted run loses little.
SHAKESPEARE_CHAR = dataclasses.replace(
    NANOGPT_CPU,
    name="shakespeare-char",
    description="the course's default: character-level Tiny Shakespeare in about 2 minutes on 2 CPU cores",
    train=dataclasses.replace(NANOGPT_CPU.train, lr=3e-3, lr_decay_iters=None, checkpoint_interval=250),
)

SHAKESPEARE_CHAR_TINY = Recipe(
    name="shakespeare-char-tiny",
    description="a toy for tests and smoke runs: seconds on a CPU, learns little",
    model=dict(block_size=16, n_layers=2, n_heads=2, d_model=16, bias=False),
    train=TrainConfig(
        max_iters=20, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_iters=2,
        eval_interval=10, eval_iters=2, checkpoint_interval=10,
    ),
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (SHAKESPEARE_CHAR, SHAKESPEARE_CHAR_TINY, NANOGPT_CPU)}


def recipe_checkpoint_path(name: str) -> Path:
    """Where `load_or_train` keeps recipe `name`'s finished checkpoint: the course's cache folder.

    recipe_checkpoint_path("shakespeare-char") -> <cache_dir()>/checkpoints/shakespeare-char.pt,
    with cache_dir() from `course_lib.datasets` ($COURSE_LIB_CACHE, else the OS cache folder).
    """
    return cache_dir() / "checkpoints" / f"{name}.pt"


def train_recipe(
    name: str, out_dir: str | Path, progress: bool = False, device: str | torch.device | None = None
) -> Trainer:
    """Train recipe `name` from scratch into out_dir, as the command line does.

    As `python -m course_lib.cli.train --preset NAME --out DIR`: the same text, tokenizer, split,
    initial weights (torch's seed set to the recipe's) and settings; the checkpoint is written
    to out_dir/ckpt.pt every checkpoint_interval steps and after the last. Returns the Trainer,
    whose `history` holds the losses. The tiny recipe takes a few seconds:

        >>> with tempfile.TemporaryDirectory() as out_dir:
        ...     trainer = train_recipe("shakespeare-char-tiny", out_dir)
        ...     print(trainer.step, trainer.checkpoint_path.is_file())
        20 True
    """
    recipe = _lookup(name)
    trainer = recipe_trainer(recipe, recipe.train, out_dir, device=device, progress=progress)
    trainer.run()
    return trainer


def recipe_trainer(
    recipe: Recipe, config: TrainConfig, out_dir: str | Path, tokenizer: Tokenizer | None = None,
    **trainer_options: Any,
) -> Trainer:
    """The Trainer for a run of `recipe` under `config`: the setup `train_recipe` and the CLI share.

    It reads the recipe's text, builds its tokenizer (or takes `tokenizer`: a resumed run keeps
    its checkpoint's), splits the ids into training and validation data, and builds the model
    right after setting torch's seed to config.seed, so that every run of the recipe, and every
    process under torchrun, starts from the same weights. `trainer_options` go to Trainer
    (device, progress, compile, distributed).
    """
    # Imported here, not at the top: trainer.py imports this module for TrainConfig.
    from ..datasets import load_text
    from ..model import GPT
    from .data import build_tokenizer, split_data
    from .trainer import Trainer

    text = load_text(recipe.dataset)
    if tokenizer is None:
        tokenizer = build_tokenizer(text, recipe.tokenizer, recipe.bpe_vocab_size)
    train_data, val_data = split_data(tokenizer.encode(text), recipe.val_fraction)
    torch.manual_seed(config.seed)
    model = GPT(recipe.model_config(tokenizer.vocab_size))
    return Trainer(
        model, train_data, val_data, config, out_dir=out_dir, tokenizer=tokenizer, recipe=recipe.name,
        **trainer_options,
    )


def load_or_train(
    name: str,
    path: str | Path | None = None,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """Recipe `name`'s trained model (eval mode, on `device`), its tokenizer and its checkpoint.

    Loads the checkpoint at `path` (default: `recipe_checkpoint_path(name)`) when it is a
    finished run of this recipe: the same recipe name, model and training settings (only how
    often it reported or saved may differ, as `checkpoint.check_same_config` allows) and all of
    its max_iters steps. Otherwise (no file, an unreadable one, another recipe's, other
    settings, an unfinished run) it trains the recipe with `train_recipe` and keeps the result
    at `path` for the next call, replacing what was there.
    """
    from .checkpoint import CheckpointError, check_same_config, load_checkpoint, load_model, save_checkpoint

    recipe = _lookup(name)
    path = recipe_checkpoint_path(name) if path is None else Path(path)
    try:
        checkpoint = load_checkpoint(path)
        if checkpoint.get("recipe") != recipe.name or checkpoint.get("step") != recipe.train.max_iters:
            raise CheckpointError(f"{path} is not a finished run of {recipe.name}")
        vocab_size = checkpoint["model_config"]["vocab_size"]  # the tokenizer's, stored with it
        model_config = dataclasses.asdict(recipe.model_config(vocab_size))
        check_same_config(checkpoint, model_config, dataclasses.asdict(recipe.train), path)
        return load_model(path, device)
    except (CheckpointError, KeyError, TypeError):  # missing, damaged, or from other settings
        pass
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = train_recipe(name, out_dir, progress=progress)
        save_checkpoint(path, load_checkpoint(trainer.checkpoint_path))  # atomically, at `path`
    return load_model(path, device)


def _lookup(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}; known recipes: {sorted(RECIPES)}") from None

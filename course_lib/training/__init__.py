"""Training a GPT: data, loss, learning-rate schedule, optimizer, the loop and its checkpoints.

The modules, in the order a training step uses them:

    data.py         build_tokenizer, split_data, get_batch      text -> (x, y) batches
    ../loss.py      cross_entropy                               logits, targets -> a number (GPT.forward uses it)
    schedule.py     lr_at                                       warm-up, then cosine decay
    optim.py        AdamW, clip_grad_norm, configure_optimizer  written out; decay on matrices only
    trainer.py      Trainer                                     the loop, evaluation, history
    evaluation.py   perplexity                                  exp(cross-entropy) over a whole text
    checkpoint.py   save_checkpoint, load_checkpoint, load_model
    distributed.py  init_distributed                            several processes under torchrun
    recipes.py      TrainConfig, Recipe, RECIPES                named settings ("shakespeare-char")
                    train_recipe, load_or_train                 train one, or load its kept checkpoint

The tokenizers (CharTokenizer, BPETokenizer and the Tokenizer protocol they share) live in
course_lib.tokenization; CharTokenizer is re-exported here for the chapters that train on characters.
"""

from .checkpoint import CheckpointError, check_same_config, load_checkpoint, load_model, save_checkpoint
from ..tokenization import CharTokenizer
from .data import build_tokenizer, get_batch, split_data
from .evaluation import perplexity
from .distributed import DistributedInfo, init_distributed, shutdown_distributed
from ..loss import cross_entropy
from .optim import AdamW, clip_grad_norm, configure_optimizer
from .recipes import RECIPES, Recipe, TrainConfig, load_or_train, recipe_checkpoint_path, train_recipe
from .schedule import lr_at
from .trainer import Trainer

__all__ = [
    "AdamW",
    "CharTokenizer",
    "CheckpointError",
    "DistributedInfo",
    "RECIPES",
    "Recipe",
    "TrainConfig",
    "Trainer",
    "build_tokenizer",
    "check_same_config",
    "clip_grad_norm",
    "configure_optimizer",
    "cross_entropy",
    "get_batch",
    "init_distributed",
    "load_checkpoint",
    "load_model",
    "load_or_train",
    "lr_at",
    "perplexity",
    "recipe_checkpoint_path",
    "save_checkpoint",
    "shutdown_distributed",
    "split_data",
    "train_recipe",
]

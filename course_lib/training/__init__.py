"""Training a GPT: data, loss, learning-rate schedule, optimizer, the loop and its checkpoints.

The modules, in the order a training step uses them:

    data.py         build_tokenizer, split_data, get_batch      text -> (x, y) batches
    loss.py         cross_entropy                               logits, targets -> a number
    schedule.py     lr_at                                       warm-up, then cosine decay
    optim.py        configure_optimizer                         AdamW with decay on matrices only
    trainer.py      Trainer                                     the loop, evaluation, history
    evaluation.py   perplexity                                  exp(cross-entropy) over a whole text
    checkpoint.py   save_checkpoint, load_checkpoint, load_model
    distributed.py  init_distributed                            several processes under torchrun
    recipes.py      TrainConfig, Recipe, RECIPES                named settings ("shakespeare-char")

The tokenizers (CharTokenizer, BPETokenizer and the Tokenizer protocol they share) live in
course_lib.tokenization; CharTokenizer is re-exported here for the chapters that train on characters.
"""

from .checkpoint import CheckpointError, check_same_config, load_checkpoint, load_model, save_checkpoint
from ..tokenization import CharTokenizer
from .data import build_tokenizer, get_batch, split_data, tokenizer_from_state, tokenizer_state, vocab_size_of
from .evaluation import perplexity
from .distributed import DistributedInfo, init_distributed, shutdown_distributed
from .loss import cross_entropy
from .optim import configure_optimizer
from .recipes import RECIPES, Recipe, TrainConfig
from .schedule import lr_at
from .trainer import Trainer

__all__ = [
    "CharTokenizer",
    "CheckpointError",
    "DistributedInfo",
    "RECIPES",
    "Recipe",
    "TrainConfig",
    "Trainer",
    "build_tokenizer",
    "check_same_config",
    "configure_optimizer",
    "cross_entropy",
    "get_batch",
    "init_distributed",
    "load_checkpoint",
    "load_model",
    "lr_at",
    "perplexity",
    "save_checkpoint",
    "shutdown_distributed",
    "split_data",
    "tokenizer_from_state",
    "tokenizer_state",
    "vocab_size_of",
]

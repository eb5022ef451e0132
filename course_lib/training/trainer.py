"""The training loop: batches in, optimizer steps out, with evaluation, a history and checkpoints.

    >>> import torch
    >>> from course_lib.model import GPT, GPTConfig
    >>> torch.manual_seed(0) and None
    >>> data = torch.tensor([0, 1, 2, 3] * 50)              # a pattern a tiny model can learn
    >>> model = GPT(GPTConfig(vocab_size=4, block_size=8, n_layers=1, d_model=16, n_heads=2))
    >>> config = TrainConfig(max_iters=30, batch_size=4, lr=1e-2, warmup_iters=3, eval_interval=30, eval_iters=2)
    >>> history = Trainer(model, data, data, config, progress=False).run()
    >>> len(history), history[-1]["val_loss"] < 0.5 < history[0]["train_loss"]
    (30, True)

One optimizer step, as `Trainer.train_step` does it:

    for each of grad_accum_steps micro-batches:     (draw x, y with get_batch)
        _, loss = model(x, y)                       (the mean cross-entropy; under autocast on a GPU)
        loss = loss / grad_accum_steps
        loss.backward()                             (gradients add up in .grad)
    clip the gradients' total norm to grad_clip
    optimizer.step(); optimizer.zero_grad()         (AdamW at the scheduled learning rate)

Stopping early: `request_stop()` (which `stop_on_signals` calls on Ctrl-C or SIGTERM) makes
`run` finish the step under way, write a checkpoint and raise `TrainingStopped`, so that the run
can continue from exactly that step.

Exact resumption: a checkpoint holds the weights, AdamW's state, the step, the history and the
random states (the batch generator's above all), so on a CPU N steps in one go and N/2 steps,
save, load, N/2 steps give bit-identical weights. Evaluation draws its batches from a generator
seeded afresh each time: every evaluation scores the same batches, and it never disturbs the
training batches' random stream.
"""

from __future__ import annotations

import contextlib
import datetime
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..device import get_device
from ..model import GPT
from .checkpoint import check_same_config, save_checkpoint
from ..tokenization import Tokenizer
from .data import get_batch
from .distributed import DistributedInfo
from .optim import configure_optimizer
from .recipes import TrainConfig
from .schedule import lr_at

CHECKPOINT_NAME = "ckpt.pt"


class Trainer:
    """Train `model` on the 1-D token ids `train_data`, scoring it on `val_data`, by `config`.

    device: where to train (default: `get_device()`); on CUDA the forward runs under autocast
        (bfloat16 where the GPU supports it, else float16 with a GradScaler).
    out_dir: where `ckpt.pt` is written every checkpoint_interval steps and after the last
        (None: no checkpoints). tokenizer and recipe are stored in it for `course_lib.cli.sample`.
    compile: run the model through `torch.compile` (faster on GPUs after a slow first step).
    distributed: this process's place under torchrun (see `distributed.init_distributed`).
        Every process draws the same global batch from the same generator and trains on its
        own slice, so N processes with batch_size b compute what one process with batch_size
        N·b would, and rank 0 alone evaluates, shows progress and writes checkpoints.
    progress: report while training. In a terminal or a notebook, a progress bar and a line
        per evaluation; when stderr is a file or a pipe (a log, a batch job), only the line per
        evaluation, since a bar redrawn with carriage returns would fill the log.
    """

    def __init__(
        self,
        model: GPT,
        train_data: torch.Tensor,
        val_data: torch.Tensor,
        config: TrainConfig,
        *,
        device: torch.device | str | None = None,
        out_dir: str | Path | None = None,
        tokenizer: Tokenizer | None = None,
        recipe: str | None = None,
        compile: bool = False,
        progress: bool = True,
        distributed: DistributedInfo | None = None,
    ):
        self.device = get_device(device)
        self.model = model.to(self.device)
        self.block_size = model.config.block_size
        for name, data in (("train_data", train_data), ("val_data", val_data)):
            if data.ndim != 1 or len(data) <= self.block_size:
                raise ValueError(
                    f"Trainer: {name} must be 1-D token ids longer than block_size={self.block_size},"
                    f" got shape {tuple(data.shape)}"
                )
            low, high = data.min().item(), data.max().item()
            if low < 0 or high >= model.config.vocab_size:
                raise ValueError(
                    f"Trainer: {name} holds token id {low if low < 0 else high}, outside the model's"
                    f" vocabulary 0..{model.config.vocab_size - 1}: build the model with the"
                    f" tokenizer's vocab_size"
                )
        self.train_data, self.val_data = train_data, val_data
        self.config = config
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.tokenizer, self.recipe = tokenizer, recipe
        self.progress = progress
        self.dist = distributed or DistributedInfo()
        self.optimizer = configure_optimizer(model, config.lr, config.weight_decay, (config.beta1, config.beta2))
        self.amp_dtype = _autocast_dtype(self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        if self.device.type == "cuda":
            # Every id was checked above; checking each batch again would make the CPU wait for
            # the GPU at every step.
            model.tok_emb.check_range = False
        self.generator = torch.Generator().manual_seed(config.seed)  # the training batches' stream
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.stop_reason: str | None = None  # set by request_stop (e.g. from a signal handler)
        runner: torch.nn.Module = torch.compile(model) if compile else model
        if self.dist.world_size > 1:
            runner = DistributedDataParallel(runner, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self._runner = runner  # what the training step calls; self.model stays the plain module

    # ---- one step ----------------------------------------------------------------------------

    @property
    def tokens_per_step(self) -> int:
        c = self.config
        return c.batch_size * c.grad_accum_steps * self.dist.world_size * self.block_size

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's slice of the next global batch (all of it when there is one process)."""
        b, rank = self.config.batch_size, self.dist.rank
        x, y = get_batch(self.train_data, b * self.dist.world_size, self.block_size, generator=self.generator)
        x, y = x[rank * b : (rank + 1) * b], y[rank * b : (rank + 1) * b]  # (b, T)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def train_step(self) -> float:
        """One optimizer step at the scheduled learning rate; returns the global batch's mean loss."""
        c = self.config
        lr = lr_at(self.step, c.lr, c.min_lr, c.warmup_iters, c.decay_iters)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if not self.model.training:  # .train() walks every module: skip it when nothing changed
            self.model.train()
        total = torch.zeros((), device=self.device)
        for micro in range(c.grad_accum_steps):
            x, y = self._next_batch()
            # Under DDP, average the gradients across processes only after the last micro-batch.
            last = micro == c.grad_accum_steps - 1
            sync = self._runner.no_sync() if self.dist.world_size > 1 and not last else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    _, loss = self._runner(x, y)  # the model's mean cross-entropy over (b, T) positions
                    loss = loss / c.grad_accum_steps
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            total += loss.detach()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        if c.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self.dist.world_size > 1:
            dist.all_reduce(total)  # the sum of the processes' means; gloo has no AVG
            total /= self.dist.world_size
        return total.item()

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> float:
        """The mean loss over eval_iters batches of `split` ("val" or "train"), the same batches every call.

        A batch is a global micro-batch (batch_size × world_size sequences), so one process
        evaluating scores what N processes would together.
        """
        data = {"val": self.val_data, "train": self.train_data}[split]
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        was_training = self.model.training
        self.model.eval()
        losses = []
        for _ in range(self.config.eval_iters):
            x, y = get_batch(data, self.config.batch_size * self.dist.world_size, self.block_size, self.device, generator)
            with self._autocast():
                _, loss = self.model(x, y)  # the mean cross-entropy over (b, T) positions
                losses.append(loss)
        self.model.train(was_training)
        return torch.stack(losses).mean().item()

    # ---- the loop ----------------------------------------------------------------------------

    def run(self, until: int | None = None) -> list[dict[str, Any]]:
        """Train until step `until` (default: max_iters); return the whole history.

        After each step the history gains {"step", "train_loss", "val_loss", "lr", "tokens_per_s"};
        val_loss is None except every eval_interval steps and after the last step.
        After `request_stop()`, the step under way finishes, a checkpoint is written (when
        there is an out_dir) and TrainingStopped is raised.
        """
        c = self.config
        until = c.max_iters if until is None else min(until, c.max_iters)
        show = self.progress and self.dist.is_main
        bar_wanted = show and _is_interactive()
        started = time.perf_counter()
        with tqdm(total=until, initial=self.step, desc="training", unit="step", disable=not bar_wanted) as bar:
            while self.step < until:
                start = time.perf_counter()
                loss = self.train_step()
                tokens_per_s = self.tokens_per_step / (time.perf_counter() - start)
                lr = self.optimizer.param_groups[0]["lr"]  # the rate train_step scheduled and used
                entry = {"step": self.step, "train_loss": loss, "val_loss": None, "lr": lr, "tokens_per_s": tokens_per_s}
                finished = self.step == c.max_iters
                if self.dist.is_main and (self.step % c.eval_interval == 0 or finished):
                    entry["val_loss"] = self.evaluate()
                    if show:
                        line = f"step {self.step}: train loss {loss:.4f}, val loss {entry['val_loss']:.4f}"
                        if not bar_wanted:  # the bar is not there to show progress and speed
                            elapsed = datetime.timedelta(seconds=round(time.perf_counter() - started))
                            line = (f"step {self.step}/{until}: train loss {loss:.4f}, val loss {entry['val_loss']:.4f},"
                                    f" {tokens_per_s:,.0f} tokens/s, {elapsed} elapsed")
                        bar.write(line, file=sys.stdout)
                self.history.append(entry)
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_s:,.0f}")
                bar.update(1)
                saved = False
                if self.out_dir is not None and self.dist.is_main and (self.step % c.checkpoint_interval == 0 or finished):
                    self.save()
                    saved = True
                if self.step < until and self._stop_agreed():  # at `until` the run ends anyway
                    if self.out_dir is not None and self.dist.is_main and not saved:
                        self.save()
                    reason, self.stop_reason = self.stop_reason or "stop requested", None  # a later run() goes on
                    raise TrainingStopped(self.step, reason, self.checkpoint_path if self.out_dir is not None else None)
        return self.history

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask `run` to stop after the step under way (and save); safe to call from a signal handler."""
        self.stop_reason = reason

    def _stop_agreed(self) -> bool:
        """Whether to stop now. Under torchrun every process must stop after the same step (a
        signal reaches them at slightly different times), so they agree on it: any one asking
        is enough."""
        if self.dist.world_size == 1:
            return self.stop_reason is not None
        flag = torch.tensor(float(self.stop_reason is not None), device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        agreed = flag.item() > 0
        if agreed and self.stop_reason is None:
            self.stop_reason = "another process was stopped"
        return agreed

    # ---- checkpoints -------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        if self.out_dir is None:
            raise ValueError("this Trainer has no out_dir, so no checkpoint path")
        return self.out_dir / CHECKPOINT_NAME

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (see `checkpoint.py`), as tensors and plain data."""
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "model_config": asdict(self.model.config),
            "train_config": asdict(self.config),
            "recipe": self.recipe,
            "tokenizer": None if self.tokenizer is None else self.tokenizer.to_dict(),
            "history": self.history,
            "rng": {
                "batches": self.generator.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": random.getstate(),
            },
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint (atomically) to `path`, by default out_dir/ckpt.pt; return the path."""
        path = self.checkpoint_path if path is None else Path(path)
        save_checkpoint(path, self.state_dict())
        return path

    def load_state_dict(self, checkpoint: dict[str, Any], path: str | Path = "") -> None:
        """Continue from a checkpoint (from `checkpoint.load_checkpoint`, loaded on the CPU).

        Raises CheckpointError if it was trained with another model or training configuration.
        """
        check_same_config(checkpoint, asdict(self.model.config), asdict(self.config), path)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scaler and checkpoint["scaler"]:
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.step = checkpoint["step"]
        self.history = list(checkpoint["history"])
        rng = checkpoint["rng"]
        self.generator.set_state(rng["batches"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))


class TrainingStopped(Exception):
    """`Trainer.run` stopped early on request; `checkpoint` (or None without an out_dir) holds `step`."""

    def __init__(self, step: int, reason: str, checkpoint: Path | None):
        where = f"checkpoint {checkpoint}" if checkpoint is not None else "no checkpoint (no out_dir)"
        super().__init__(f"stopped at step {step} ({reason}); {where}")
        self.step, self.reason, self.checkpoint = step, reason, checkpoint


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """While inside, Ctrl-C (SIGINT) or SIGTERM asks `trainer` to stop after its current step.

    The step is finished rather than abandoned halfway so that the checkpoint `run` then writes
    continues the run exactly. A second signal stops at once (KeyboardInterrupt), for a step
    that takes too long. The previous handlers come back on leaving. Call from the main thread.
    """
    previous = {number: signal.getsignal(number) for number in signals}

    def handler(number: int, frame: object) -> None:
        if trainer.stop_reason is not None:  # the second time: do not wait for the step
            raise KeyboardInterrupt
        trainer.request_stop(signal.Signals(number).name)

    for number in signals:
        signal.signal(number, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _is_interactive() -> bool:
    """Whether someone watches the bar: stderr is a terminal, or this runs in a Jupyter kernel
    (its shell, not merely its modules: a program that imported ipykernel is not a notebook)."""
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return sys.stderr.isatty() or type(shell).__name__ == "ZMQInteractiveShell"


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on GPUs that have it, float16 on older ones, None (full float32) elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

"""course_lib.training: data, loss, schedule, optimizer groups, the Trainer and its checkpoints.

References: torch.nn.functional.cross_entropy (values and gradients, extreme logits included);
torch.randint with the same seed for get_batch's draws and the data itself for the shift;
hand-computed learning rates; torch.optim.AdamW stepped by hand on the same batches for the
Trainer's step and its gradient accumulation; a run in one go for resumption (bit-identical on
a CPU). Models are tiny and run on one thread (see test_model.py for why).
"""

import doctest
import math
import random

import pytest
import torch
import torch.nn.functional as F

import course_lib.training.data
import course_lib.training.loss
import course_lib.training.recipes
import course_lib.training.schedule
import course_lib.training.trainer
from course_lib.model import GPT, GPTConfig
from course_lib.tokenization import CharTokenizer
from course_lib.training import (
    CheckpointError,
    TrainConfig,
    Trainer,
    configure_optimizer,
    cross_entropy,
    get_batch,
    load_checkpoint,
    load_model,
    lr_at,
    split_data,
)

TINY_MODEL = dict(vocab_size=11, block_size=8, n_layers=2, d_model=16, n_heads=2)
TINY_TRAIN = dict(max_iters=10, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_iters=2, eval_interval=5, eval_iters=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_data(n: int = 400, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, TINY_MODEL["vocab_size"], (n,), generator=torch.Generator().manual_seed(seed))


def tiny_trainer(out_dir=None, **train) -> Trainer:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY_MODEL))
    data = tiny_data()
    return Trainer(model, data[:300], data[300:], TrainConfig(**{**TINY_TRAIN, **train}), device="cpu",
                   out_dir=out_dir, progress=False)


@pytest.mark.parametrize("module", [course_lib.training.data, course_lib.training.loss,
                                    course_lib.training.recipes, course_lib.training.trainer])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


# ---- cross_entropy ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 11), (2, 2, 2, 4)])
def test_cross_entropy_matches_torch_values_and_gradients(shape):
    logits = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, shape[-1], shape[:-1])
    ours = cross_entropy(logits, targets)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    theirs = F.cross_entropy(logits.reshape(-1, shape[-1]), targets.reshape(-1))
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert ours.shape == ()
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-6, atol=1e-6)


def test_cross_entropy_hand_example():
    # -log softmax([2, 1, 0])[0] = log(e² + e + 1) - 2
    expected = math.log(math.e**2 + math.e + 1) - 2
    assert cross_entropy(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_extreme_logits_stay_finite_and_match_torch():
    logits = torch.tensor([[1e4, 0.0, -1e4], [-1e4, -1e4, 1e4], [1e4, 1e4, 1e4]], requires_grad=True)
    targets = torch.tensor([1, 2, 0])
    ours = cross_entropy(logits, targets)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    theirs = F.cross_entropy(logits, targets)
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert torch.isfinite(ours) and torch.isfinite(grad_ours).all()
    torch.testing.assert_close(ours, theirs)  # (1e4 + 0 + log 3) / 3
    torch.testing.assert_close(grad_ours, grad_theirs)


def test_cross_entropy_of_half_precision_logits_is_computed_in_float32():
    logits = (torch.randn(4, 6, 50) * 10).to(torch.bfloat16)
    targets = torch.randint(0, 50, (4, 6))
    expected = F.cross_entropy(logits.float().view(-1, 50), targets.view(-1))
    assert cross_entropy(logits, targets).dtype == torch.float32
    torch.testing.assert_close(cross_entropy(logits, targets), expected)


def test_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"logits \(2, 3, 5\) and targets \(3, 2\)"):
        cross_entropy(torch.zeros(2, 3, 5), torch.zeros(3, 2, dtype=torch.long))


# ---- data --------------------------------------------------------------------------------------


def test_split_data_keeps_order_ninety_ten():
    train, val = split_data(list(range(100)))
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))


def test_get_batch_draws_like_torch_randint_and_shifts_by_one():
    data = torch.arange(1000, 1100)
    x, y = get_batch(data, 6, 5, generator=torch.Generator().manual_seed(3))
    starts = torch.randint(0, 100 - 5, (6,), generator=torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (6, 5) and x.dtype == torch.long
    for row, s in enumerate(starts.tolist()):
        assert x[row].tolist() == data[s : s + 5].tolist()
        assert y[row].tolist() == data[s + 1 : s + 6].tolist()


def test_get_batch_reaches_every_valid_start_and_no_other():
    data = torch.arange(10)
    x, y = get_batch(data, 2000, 4, generator=torch.Generator().manual_seed(0))
    assert set(x[:, 0].tolist()) == set(range(6))  # starts 0..5: the last window's y ends at 9
    assert y.max().item() == 9


def test_get_batch_rejects_data_shorter_than_a_window():
    with pytest.raises(ValueError, match="block_size \\+ 1 = 9"):
        get_batch(torch.arange(8), 2, 8)


# ---- schedule and optimizer --------------------------------------------------------------------


def test_lr_schedule_hand_values():
    # warm-up over 10 steps to 1.0, cosine down to 0.1 at step 110
    assert lr_at(0, 1.0, 0.1, 10, 110) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 0.1, 10, 110) == pytest.approx(1.0)
    assert lr_at(10, 1.0, 0.1, 10, 110) == pytest.approx(1.0)
    assert lr_at(60, 1.0, 0.1, 10, 110) == pytest.approx(0.55)  # cos(π/2) = 0: halfway
    assert lr_at(35, 1.0, 0.1, 10, 110) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, 1.0, 0.1, 10, 110) == lr_at(10_000, 1.0, 0.1, 10, 110) == 0.1
    lrs = [lr_at(s, 1.0, 0.1, 10, 110) for s in range(120)]
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_optimizer_decays_matrices_only_and_lists_the_tied_weight_once():
    model = GPT(GPTConfig(**TINY_MODEL))
    opt = configure_optimizer(model, lr=1e-3, weight_decay=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["fused"]  # one kernel for all parameters (test_train_step_equals_adamw_by_hand: same update)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    named = dict(model.named_parameters())  # tied weights appear once here
    assert {id(p) for p in decay["params"]} == {id(p) for p in named.values() if p.dim() == 2}
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in named.values() if p.dim() == 1}
    assert model.tok_emb.weight is model.lm_head.weight and len(decay["params"]) + len(no_decay["params"]) == len(named)


def test_configs_reject_nonsense_with_a_readable_message():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="decay cannot end before the warm-up"):
        TrainConfig(max_iters=10, warmup_iters=11)


# ---- the Trainer ------------------------------------------------------------------------------


@pytest.mark.parametrize("accum", [1, 2])
def test_train_step_equals_adamw_by_hand(accum):
    """The Trainer's step (with accumulation) against one AdamW step on the whole batch by hand."""
    trainer = tiny_trainer(batch_size=4, grad_accum_steps=accum, grad_clip=0.5)
    reference = GPT(GPTConfig(**TINY_MODEL))
    reference.load_state_dict(trainer.model.state_dict())
    decay = [p for p in reference.parameters() if p.dim() >= 2]
    rest = [p for p in reference.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr_at(0, 1e-2, 1e-3, 2, 10), betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(TrainConfig().seed)
    batches = [get_batch(trainer.train_data, 4, 8, generator=generator) for _ in range(accum)]
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])  # the whole batch
    logits, _ = reference(x)
    loss = F.cross_entropy(logits.view(-1, 11), y.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
    opt.step()

    reported = trainer.train_step()
    assert reported == pytest.approx(loss.item(), rel=1e-5)
    for (name, ours), theirs in zip(trainer.model.state_dict().items(), reference.state_dict().values()):
        if name.endswith("k_proj.bias"):
            # Adding a bias to every key adds the same q·b to a query's scores, which softmax
            # ignores: its true gradient is 0, its computed one rounding noise, and Adam scales
            # noise up to a full step of either sign. Nothing to compare.
            continue
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)


def test_run_learns_and_records_history():
    trainer = tiny_trainer(max_iters=40, eval_interval=15)
    data = torch.tensor([0, 1, 2, 3, 4] * 80)  # a cycle: perfectly predictable
    trainer.train_data, trainer.val_data = data[:300], data[300:]
    before = trainer.evaluate()
    history = trainer.run()
    assert [h["step"] for h in history] == list(range(1, 41))
    assert set(history[0]) == {"step", "train_loss", "val_loss", "lr", "tokens_per_s"}
    assert [h["step"] for h in history if h["val_loss"] is not None] == [15, 30, 40]
    assert before > 2.0 and history[-1]["val_loss"] < 0.5  # ln(11) ≈ 2.4 at the start
    assert history[0]["lr"] == pytest.approx(lr_at(0, 1e-2, 1e-3, 2, 40)) and history[-1]["tokens_per_s"] > 0


def test_resume_is_bit_identical_to_one_run(tmp_path):
    straight = tiny_trainer()
    straight.run()

    first = tiny_trainer(out_dir=tmp_path)
    first.run(until=5)
    first.save()
    random.random(), torch.rand(3)  # disturb the global random states: the checkpoint restores them
    second = tiny_trainer(out_dir=tmp_path)
    second.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt"))
    assert second.step == 5
    second.run()

    assert [h["train_loss"] for h in second.history] == [h["train_loss"] for h in straight.history]
    assert [h["val_loss"] for h in second.history] == [h["val_loss"] for h in straight.history]
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_loads_with_weights_only_and_restores_a_model(tmp_path):
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=4, checkpoint_interval=2)
    trainer.tokenizer = CharTokenizer("abcdefghijk")
    trainer.run()
    raw = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert raw["step"] == 4 and raw["model_config"]["d_model"] == 16 and raw["train_config"]["max_iters"] == 4
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed into place
    model, tokenizer, _ = load_model(tmp_path / "ckpt.pt")
    x = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(model(x)[0], trainer.model.eval()(x)[0])
    assert tokenizer.decode([0, 10]) == "ak"


def test_missing_corrupt_and_foreign_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a course_lib training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=2)
    trainer.run()
    data = (tmp_path / "ckpt.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_resuming_with_other_settings_is_refused(tmp_path):
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=2)
    trainer.run()
    other = tiny_trainer(max_iters=2, lr=5e-3, eval_interval=1)  # eval_interval may change, lr may not
    with pytest.raises(CheckpointError, match=r"train.lr: checkpoint 0.01, now 0.005") as err:
        other.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt"))
    assert "eval_interval" not in str(err.value)


def test_a_run_resumes_with_the_other_layer_path(tmp_path):
    """`fast` picks kernels, not weights: a checkpoint of the fused model resumes in the written-out
    one (and the reverse), and the next step computes the same loss to float32 rounding."""
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=4)
    trainer.run()
    checkpoint = load_checkpoint(tmp_path / "ckpt.pt")
    losses = {}
    for fast in (True, False):
        torch.manual_seed(0)
        model = GPT(GPTConfig(**TINY_MODEL, fast=fast))
        data = tiny_data()
        resumed = Trainer(model, data[:300], data[300:], TrainConfig(**{**TINY_TRAIN, "max_iters": 4}),
                          device="cpu", progress=False)
        resumed.load_state_dict(checkpoint)
        losses[fast] = resumed.train_step()
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)


def test_a_checkpoint_from_another_course_lib_version_is_refused_readably(tmp_path):
    trainer = tiny_trainer(out_dir=tmp_path, max_iters=2)
    trainer.run()
    checkpoint = load_checkpoint(tmp_path / "ckpt.pt")
    checkpoint["model_config"]["n_experts"] = 8  # a setting this version does not know
    torch.save(checkpoint, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=r"another version of course_lib: its model settings \['n_experts'\]"):
        load_model(tmp_path / "future.pt")


def test_trainer_rejects_data_shorter_than_a_window():
    model = GPT(GPTConfig(**TINY_MODEL))
    with pytest.raises(ValueError, match="val_data must be 1-D token ids longer than block_size=8"):
        Trainer(model, tiny_data(), tiny_data(5), TrainConfig(), device="cpu")


def test_no_autocast_on_cpu():
    assert course_lib.training.trainer._autocast_dtype(torch.device("cpu")) is None


@pytest.mark.parametrize("bad_id", [-1, 11])
def test_trainer_rejects_token_ids_outside_the_vocabulary(bad_id):
    """Caught once, up front, with the fix: not as a failed lookup at some later step."""
    model = GPT(GPTConfig(**TINY_MODEL))
    data = tiny_data()
    data[100] = bad_id
    with pytest.raises(ValueError, match=rf"train_data holds token id {bad_id}, outside the model's vocabulary 0\.\.10"):
        Trainer(model, data, tiny_data(), TrainConfig(), device="cpu")


@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16+GradScaler"])
def test_mixed_precision_path_trains(monkeypatch, amp_dtype):
    """The path a GPU takes (autocast; for float16 also the GradScaler: scale, unscale before
    clipping, step), run on the CPU, whose autocast supports both dtypes: it learns as float32 does."""
    data = torch.arange(400) % 7  # 0, 1, ..., 6, 0, 1, ...: learnable, unlike random ids

    def pattern_trainer() -> Trainer:
        torch.manual_seed(0)
        config = TrainConfig(**{**TINY_TRAIN, "max_iters": 40, "eval_interval": 40})
        return Trainer(GPT(GPTConfig(**TINY_MODEL)), data, data, config, device="cpu", progress=False)

    reference = pattern_trainer()  # float32: autocast is off on a CPU
    assert reference.amp_dtype is None
    monkeypatch.setattr(course_lib.training.trainer, "_autocast_dtype", lambda device: amp_dtype)
    trainer = pattern_trainer()
    assert trainer.amp_dtype == amp_dtype and (trainer.scaler is not None) == (amp_dtype == torch.float16)
    history, reference_history = trainer.run(), reference.run()
    # From about ln 7 = 1.95 to a small fraction of it, as in float32 (to the precision's noise).
    assert history[0]["train_loss"] > 1.5 and reference_history[-1]["val_loss"] < 0.4
    assert history[-1]["val_loss"] == pytest.approx(reference_history[-1]["val_loss"], abs=0.05)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in trainer.model.parameters())

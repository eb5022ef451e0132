"""python -m course_lib.train and python -m course_lib.sample, run as a learner runs them.

References: the exit status and message a learner sees (2 and one line, no traceback, for every
mistake); for an interrupted run, the same run left alone (identical final weights: one process,
one thread, a CPU). Uses the tiny recipe, each command a few seconds.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from course_lib.training import load_checkpoint

TINY = ["--preset", "shakespeare-char-tiny", "--no-progress"]


def env() -> dict[str, str]:
    # One thread: the model is tiny, and identical thread counts keep runs bit-identical.
    return {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_LIB_DEVICE": "cpu"}


def run(module: str, *args: str, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=env(), timeout=300)
    if check_rc is not None:
        assert done.returncode == check_rc, done.stdout + done.stderr
    return done


def assert_clear_error(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A checkpoint of the tiny recipe after 12 steps."""
    out = tmp_path_factory.mktemp("run")
    done = run("course_lib.train", *TINY, "--max-iters", 12, "--out", out)
    assert "done: step 12, validation loss" in done.stdout
    return out / "ckpt.pt"


def test_train_writes_a_checkpoint_with_history_and_tokenizer(trained):
    checkpoint = load_checkpoint(trained)
    assert checkpoint["step"] == 12 and checkpoint["recipe"] == "shakespeare-char-tiny"
    assert [h["step"] for h in checkpoint["history"]] == list(range(1, 13))
    assert checkpoint["tokenizer"]["kind"] == "char" and len(checkpoint["tokenizer"]["chars"]) == 65
    assert checkpoint["train_config"]["max_iters"] == 12


def test_sample_continues_the_prompt_reproducibly(trained):
    args = ["--checkpoint", trained, "--prompt", "ROMEO:", "--max-new-tokens", 40, "--top-k", 10, "--seed", 3]
    first = run("course_lib.sample", *args).stdout
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 40 + 1  # and print's newline
    assert run("course_lib.sample", *args).stdout == first
    greedy = run("course_lib.sample", "--checkpoint", trained, "--temperature", 0, "--max-new-tokens", 5).stdout
    assert len(greedy) == 1 + 5 + 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "no-such-recipe"], "invalid choice: 'no-such-recipe'"),
        (["--preset", "shakespeare-char-tiny", "--max-iters", "0"], "must be a positive integer"),
        (["--preset", "shakespeare-char-tiny", "--device", "quantum"], "unknown device 'quantum'"),
    ],
)
def test_train_bad_arguments(args, message, tmp_path):
    assert_clear_error(run("course_lib.train", *args, "--out", tmp_path, check_rc=None), message)


def test_train_resume_mistakes(trained, tmp_path):
    missing = run("course_lib.train", *TINY, "--out", tmp_path, "--resume", check_rc=None)
    assert_clear_error(missing, "no checkpoint at")
    exists = run("course_lib.train", *TINY, "--out", trained.parent, check_rc=None)
    assert_clear_error(exists, "already exists: add --resume")
    other_preset = run("course_lib.train", "--preset", "shakespeare-char", "--out", trained.parent, "--resume", check_rc=None)
    assert_clear_error(other_preset, "was trained with --preset shakespeare-char-tiny")
    other_batch = run("course_lib.train", *TINY, "--out", trained.parent, "--resume", "--max-iters", 12,
                      "--batch-size", 3, check_rc=None)
    assert_clear_error(other_batch, "train.batch_size: checkpoint 8, now 3")
    (tmp_path / "ckpt.pt").write_bytes(trained.read_bytes()[:1000])  # a checkpoint cut short
    assert_clear_error(run("course_lib.train", *TINY, "--out", tmp_path, "--resume", check_rc=None),
                       "not a readable checkpoint")


def test_sample_mistakes(trained, tmp_path):
    assert_clear_error(run("course_lib.sample", "--checkpoint", tmp_path / "none.pt", check_rc=None), "no checkpoint at")
    (tmp_path / "bad.pt").write_text("hello")
    assert_clear_error(run("course_lib.sample", "--checkpoint", tmp_path / "bad.pt", check_rc=None), "not a readable checkpoint")
    assert_clear_error(run("course_lib.sample", "--checkpoint", trained, "--prompt", "€", check_rc=None),
                       "'€' is not in this tokenizer's vocabulary")
    assert_clear_error(run("course_lib.sample", "--checkpoint", trained, "--temperature", "-1", check_rc=None), "must be >= 0")
    assert_clear_error(run("course_lib.sample", "--checkpoint", trained, "--top-k", "0", check_rc=None), "positive integer")


def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    steps = 150
    args = [*TINY, "--max-iters", steps, "--checkpoint-interval", 5, "--eval-interval", 100]
    straight = tmp_path / "straight"
    run("course_lib.train", *args, "--out", straight)

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "course_lib.train", *map(str, args), "--out", str(killed)],
                               env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "ckpt.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # no chance to save anything on the way out
    process.wait()
    saved_step = load_checkpoint(killed / "ckpt.pt")["step"]
    assert saved_step < steps, "the run finished before it could be killed; make it longer"

    resumed = run("course_lib.train", *TINY, "--out", killed, "--resume").stdout
    assert f"resuming at step {saved_step}" in resumed
    a, b = load_checkpoint(straight / "ckpt.pt"), load_checkpoint(killed / "ckpt.pt")
    assert b["step"] == steps and [h["step"] for h in b["history"]] == list(range(1, steps + 1))
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name

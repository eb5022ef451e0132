"""python -m course_lib.cli.train and python -m course_lib.cli.sample, run as a learner runs them.

References: the exit status and message a learner sees (2 and one line, no traceback, for every
mistake); for an interrupted run, the same run left alone (identical final weights: one process,
one thread, a CPU); the recipes' own settings for what --help and a short run show. Uses the tiny
recipe, each command a few seconds.
"""

import contextlib
import fcntl
import io
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from course_lib.cli.sample import build_parser as sample_parser
from course_lib.cli.sample import main as sample_main
from course_lib.cli.train import build_parser, train_config_for
from course_lib.cli.train import main as train_main
from course_lib.training import RECIPES, load_checkpoint

TRAIN, SAMPLE = "course_lib.cli.train", "course_lib.cli.sample"  # the modules `python -m` runs
TINY = ["--preset", "shakespeare-char-tiny", "--no-progress"]


def env(**changes: str | None) -> dict[str, str]:
    # One thread: the model is tiny, and identical thread counts keep runs bit-identical.
    variables = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_LIB_DEVICE": "cpu", **changes}
    return {name: value for name, value in variables.items() if value is not None}


def run(module: str, *args: str, check_rc: int | None = 0, environment: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=environment or env(), timeout=300)
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
    done = run(TRAIN, *TINY, "--max-iters", 12, "--out", out)
    assert "done: step 12, validation loss" in done.stdout
    return out / "ckpt.pt"


def test_train_writes_a_checkpoint_with_history_and_tokenizer(trained):
    checkpoint = load_checkpoint(trained)
    assert checkpoint["step"] == 12 and checkpoint["recipe"] == "shakespeare-char-tiny"
    assert [h["step"] for h in checkpoint["history"]] == list(range(1, 13))
    assert checkpoint["tokenizer"]["kind"] == "char" and len(checkpoint["tokenizer"]["chars"]) == 65
    assert checkpoint["train_config"]["max_iters"] == 12
    # 12 of the recipe's 20 steps: its interval of 10 shrinks in proportion, to 6.
    assert [h["step"] for h in checkpoint["history"] if h["val_loss"] is not None] == [6, 12]
    assert checkpoint["train_config"]["checkpoint_interval"] == 6


def test_sample_continues_the_prompt_reproducibly(trained):
    args = ["--checkpoint", trained, "--prompt", "ROMEO:", "--max-new-tokens", 40, "--top-k", 10, "--seed", 3]
    first = run(SAMPLE, *args).stdout
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 40 + 1  # and print's newline
    assert run(SAMPLE, *args).stdout == first
    greedy = run(SAMPLE, "--checkpoint", trained, "--temperature", 0, "--max-new-tokens", 5).stdout
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
    assert_clear_error(run(TRAIN, *args, "--out", tmp_path, check_rc=None), message)


def test_train_resume_mistakes(trained, tmp_path):
    missing = run(TRAIN, *TINY, "--out", tmp_path, "--resume", check_rc=None)
    assert_clear_error(missing, "no checkpoint at")
    exists = run(TRAIN, *TINY, "--out", trained.parent, check_rc=None)
    assert_clear_error(exists, "already exists: add --resume")
    other_preset = run(TRAIN, "--preset", "shakespeare-char", "--out", trained.parent, "--resume", check_rc=None)
    assert_clear_error(other_preset, "was trained with --preset shakespeare-char-tiny")
    other_batch = run(TRAIN, *TINY, "--out", trained.parent, "--resume", "--max-iters", 12,
                      "--batch-size", 3, check_rc=None)
    assert_clear_error(other_batch, "train.batch_size: checkpoint 8, now 3")
    (tmp_path / "ckpt.pt").write_bytes(trained.read_bytes()[:1000])  # a checkpoint cut short
    assert_clear_error(run(TRAIN, *TINY, "--out", tmp_path, "--resume", check_rc=None),
                       "not a readable checkpoint")


def test_sample_mistakes(trained, tmp_path):
    assert_clear_error(run(SAMPLE, "--checkpoint", tmp_path / "none.pt", check_rc=None), "no checkpoint at")
    (tmp_path / "bad.pt").write_text("hello")
    assert_clear_error(run(SAMPLE, "--checkpoint", tmp_path / "bad.pt", check_rc=None), "not a readable checkpoint")
    assert_clear_error(run(SAMPLE, "--checkpoint", trained, "--prompt", "€", check_rc=None),
                       "'€' is not in this tokenizer's vocabulary")
    assert_clear_error(run(SAMPLE, "--checkpoint", trained, "--temperature", "-1", check_rc=None), "must be >= 0")
    assert_clear_error(run(SAMPLE, "--checkpoint", trained, "--top-k", "0", check_rc=None), "positive integer")


# ---- a short run, --help, --resume --max-iters ------------------------------------------------
# In this process where a subprocess would add nothing but starting Python and torch again.


def call(main: Callable[[list[str]], int], *args: object) -> tuple[int, str, str]:
    """main(args) in this process, on one thread (as env() gives the subprocesses): status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main([str(arg) for arg in args])
            except SystemExit as exit:  # argparse's errors
                status = exit.code
    finally:
        torch.set_num_threads(threads)
    return status, out.getvalue(), err.getvalue()


def test_short_run_evaluates_and_saves_in_proportion(tmp_path):
    recipe = RECIPES["shakespeare-char"]  # 2000 steps, evaluated and saved every 250
    parser = build_parser()
    short = train_config_for(recipe, parser.parse_args(["--preset", recipe.name, "--max-iters", "200"]))
    assert (short.eval_interval, short.checkpoint_interval) == (25, 25)
    longer = train_config_for(recipe, parser.parse_args(["--preset", recipe.name, "--max-iters", "4000"]))
    assert (longer.eval_interval, longer.checkpoint_interval) == (250, 250)
    given = train_config_for(recipe, parser.parse_args(
        ["--preset", recipe.name, "--max-iters", "200", "--checkpoint-interval", "100"]))
    assert (given.eval_interval, given.checkpoint_interval) == (25, 100)
    status, out, _ = call(train_main, *TINY, "--max-iters", 6, "--out", tmp_path)
    assert status == 0
    assert f"saving {tmp_path / 'ckpt.pt'} every 3 steps (next at step 3), at the end, and on Ctrl-C" in out


def test_help_shows_every_default():
    text = build_parser().format_help()
    for name, recipe in RECIPES.items():
        t = recipe.train
        values = [t.max_iters, t.batch_size, f"{t.lr:g}", f"{t.min_lr:g}", t.warmup_iters, t.eval_interval,
                  t.checkpoint_interval]
        assert re.search(rf"^ +{name} +" + " +".join(map(str, values)) + " *$", text, re.M), name
    for parser in (build_parser(), sample_parser()):
        for action in parser._actions:
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            if takes_value:
                assert "default" in (action.help or ""), action.option_strings
    sample_help = re.sub(r"\s+", " ", sample_parser().format_help())
    assert "(default: 500)" in sample_help and "(default: 0.8)" in sample_help and "(default: 1337)" in sample_help


def test_resume_with_max_iters_trains_a_finished_run_further(trained, tmp_path):
    shutil.copy(trained, tmp_path / "ckpt.pt")
    status, out, err = call(train_main, *TINY, "--out", tmp_path, "--resume", "--max-iters", 16)
    assert status == 0 and "resuming at step 12" in out and "done: step 16" in out, out + err
    before, after = load_checkpoint(trained), load_checkpoint(tmp_path / "ckpt.pt")
    assert after["step"] == 16 and [h["step"] for h in after["history"]] == list(range(1, 17))
    assert after["history"][:12] == before["history"]
    # The run's schedule ended at step 12: the steps after it go on at the recipe's floor.
    assert [h["lr"] for h in after["history"][12:]] == [RECIPES["shakespeare-char-tiny"].train.min_lr] * 4
    status, _, err = call(train_main, *TINY, "--out", tmp_path, "--resume", "--max-iters", 10)
    assert status == 2 and "already at step 16: to train on, give --max-iters above 16" in err


# ---- stopping with a signal ---------------------------------------------------------------------

LONG = 150
LONG_ARGS = [*TINY, "--max-iters", LONG, "--checkpoint-interval", LONG, "--eval-interval", 100]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """LONG steps of the tiny recipe left alone, saved at the end only."""
    out = tmp_path_factory.mktemp("straight")
    assert call(train_main, *LONG_ARGS, "--out", out)[0] == 0
    return out / "ckpt.pt"


def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(straight, tmp_path):
    # The reference is `straight`, this run left alone (saved at its end only, where this one saves
    # every 5 steps, which must not change the training either): shared with the signal tests.
    steps = LONG
    args = [*TINY, "--max-iters", steps, "--checkpoint-interval", 5, "--eval-interval", 100]
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", TRAIN, *map(str, args), "--out", str(killed)],
                               env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "ckpt.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # no chance to save anything on the way out
    process.wait()
    saved_step = load_checkpoint(killed / "ckpt.pt")["step"]
    assert saved_step < steps, "the run finished before it could be killed; make it longer"

    resumed = run(TRAIN, *TINY, "--out", killed, "--resume").stdout
    assert f"resuming at step {saved_step}" in resumed
    a, b = load_checkpoint(straight), load_checkpoint(killed / "ckpt.pt")
    assert b["step"] == steps and [h["step"] for h in b["history"]] == list(range(1, steps + 1))
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


@pytest.mark.parametrize(("number", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_that_resumes_exactly(number, status, straight, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", TRAIN, *map(str, LONG_ARGS), "--out", str(tmp_path)],
                               env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:  # the handlers are in place once this line is out
        if line.startswith("evaluating every"):
            break
    process.send_signal(number)
    out, err = process.communicate(timeout=300)
    assert process.returncode == status, out + err
    message = re.search(rf"{signal.Signals(number).name}\)?: stopped at step (\d+) and saved (\S+);", out)
    assert message and "Traceback" not in err, out + err
    step = int(message[1])
    assert Path(message[2]) == tmp_path / "ckpt.pt"
    assert (f"continue with: python -m course_lib.cli.train --preset shakespeare-char-tiny --out {tmp_path}"
            " --resume") in out
    saved = load_checkpoint(tmp_path / "ckpt.pt")
    assert 1 <= saved["step"] == step < LONG, "no checkpoint interval falls before LONG: the signal wrote it"
    assert [h["step"] for h in saved["history"]] == list(range(1, step + 1))

    status, resumed, _ = call(train_main, *TINY, "--out", tmp_path, "--resume")
    assert f"resuming at step {step}" in resumed and f"done: step {LONG}" in resumed
    a, b = load_checkpoint(straight), load_checkpoint(tmp_path / "ckpt.pt")
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


# ---- progress ------------------------------------------------------------------------------------


def test_progress_without_a_terminal_is_a_line_per_evaluation(tmp_path):
    # In this process stderr is a StringIO, not a terminal, as it is for a log file or a pipe.
    status, out, err = call(train_main, "--preset", "shakespeare-char-tiny", "--out", tmp_path)  # 20 steps, eval every 10
    assert status == 0 and "\r" not in err and "\r" not in out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in lines] == ["step 10/20", "step 20/20"]
    assert all(re.search(r"train loss [\d.]+, val loss [\d.]+, [\d,]+ tokens/s, \d:\d\d:\d\d elapsed$", line)
               for line in lines), lines


def test_progress_in_a_terminal_is_a_bar(tmp_path):
    controller, terminal = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, which tqdm takes at its word: make it 100.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", TRAIN, "--preset", "shakespeare-char-tiny",
                                "--out", str(tmp_path)], env=env(), stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal's other end closed: the process is done with it
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    assert b"\r" in shown and b"training: 100%" in shown and b"20/20" in shown
    assert b"step 10: train loss" in out  # evaluations still get their line


# ---- sample: the run's folder, top-p --------------------------------------------------------------


def test_sample_takes_the_runs_folder(trained, tmp_path):
    args = ["--prompt", "ROMEO:", "--max-new-tokens", 30, "--seed", 5]
    from_file = call(sample_main, "--checkpoint", trained, *args)
    assert from_file[0] == 0 and from_file[1].startswith("ROMEO:")
    assert call(sample_main, "--checkpoint", trained.parent, *args) == from_file
    status, _, err = call(sample_main, "--checkpoint", tmp_path)
    assert status == 2 and f"no checkpoint at {tmp_path / 'ckpt.pt'}" in err


def test_sample_top_p(trained):
    args = ["--checkpoint", trained, "--prompt", "ROMEO:", "--max-new-tokens", 30]
    greedy = call(sample_main, *args, "--temperature", 0)
    # A nucleus this small holds only the likeliest token: sampling from it is greedy decoding.
    assert call(sample_main, *args, "--temperature", 1.5, "--top-p", "1e-9") == greedy
    nucleus = call(sample_main, *args, "--top-p", 0.9, "--seed", 2)
    assert nucleus[0] == 0 and nucleus[1].startswith("ROMEO:") and nucleus != greedy
    for bad in ("0", "1.5"):
        status, _, err = call(sample_main, *args, "--top-p", bad)
        assert status == 2 and f"argument --top-p: must be in (0, 1], got {float(bad)}" in err


# ---- a device this machine does not have --------------------------------------------------------


@pytest.mark.parametrize("which", ["train", "sample"])
def test_missing_cuda_says_to_omit_device(which, trained, tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_LIB_DEVICE", raising=False)
    main, where = {"train": (train_main, [*TINY, "--out", tmp_path]), "sample": (sample_main, ["--checkpoint", trained])}[which]
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: none on a machine without CUDA
    status, _, err = call(main, *where, "--device", missing)
    assert status == 2 and err.startswith(f"error: --device {missing}: this machine has ")
    assert "; omit --device to use the best device available (" in err
    assert "get_device" not in err and "Traceback" not in err
    monkeypatch.setenv("COURSE_LIB_DEVICE", missing)
    status, _, err = call(main, *where)
    assert status == 2 and err.startswith(f"error: $COURSE_LIB_DEVICE={missing}: this machine has ")
    assert "unset COURSE_LIB_DEVICE to use the best device" in err

"""course_lib.cli.train under torchrun: 2 CPU processes (gloo) compute what one process does.

Reference: the same command in one process with the same global batch (2 × 4 sequences against
1 × 8), the same seed and the same schedule. DDP averages the two halves' gradients where the
single process averages over all 8 sequences, so the numbers agree to float32 rounding, not
bit for bit: the losses to 1e-5, the weights as the comment below explains.
"""

import os
import subprocess
import sys

import torch

from course_lib.training import load_checkpoint

ARGS = ["-m", "course_lib.cli.train", "--preset", "shakespeare-char-tiny", "--no-progress", "--max-iters", "8",
        "--eval-interval", "4", "--checkpoint-interval", "8"]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_LIB_DEVICE": "cpu"}
    one = subprocess.run([sys.executable, *ARGS, "--batch-size", "8", "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         *ARGS, "--batch-size", "4", "--out", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert two.returncode == 0, two.stdout + two.stderr
    assert "x 2 process(es)" in two.stdout and two.stdout.count("done: step 8") == 1  # rank 0 reports

    a, b = load_checkpoint(tmp_path / "one" / "ckpt.pt"), load_checkpoint(tmp_path / "two" / "ckpt.pt")
    assert a["step"] == b["step"] == 8
    for key in ("train_loss", "val_loss"):
        ours = torch.tensor([h[key] if h[key] is not None else float("nan") for h in b["history"]])
        reference = torch.tensor([h[key] if h[key] is not None else float("nan") for h in a["history"]])
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5, equal_nan=True)
    for name, tensor in a["model"].items():
        difference = (b["model"][name] - tensor).abs()
        # Almost every weight agrees to float32 rounding. Adam divides each gradient by its own
        # running size, so a gradient close to 0 that rounds differently in the two runs can move
        # its weight by a visible fraction of a step (lr = 1e-2): allow a few such, a tenth of a step.
        assert (difference > 1e-5).float().mean() < 0.02, name
        assert difference.max() < 1e-3, name

"""A training run killed with SIGKILL between checkpoints and resumed with ``resume=True`` ends with the
same weights, optimiser state and data position, bit for bit, as an uninterrupted run (CPU, toy task)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hdrbench.train import checkpoint as ckpt

from test_train_toy import TESTS_DIR, assert_bitwise_equal, checkpoint_weights, optimizer_tensors, write_toy_recipe

REPO = TESTS_DIR.parent

WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
import test_train_toy as tt
from hdrbench.train.trainer import train
args = json.loads(sys.argv[1])
train(args["recipe"], tt.ToyDataset(), out=args["out"], seed=0, resume=args["resume"], progress=False)
"""


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path):
    recipe = write_toy_recipe(tmp_path / "recipes", extra="")
    text = recipe.read_text().replace("iters = 12", "iters = 30").replace("log_every = 5", "log_every = 1")
    recipe.write_text(text)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS_DIR)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    def launch(out: Path, resume: bool, sleep: float = 0.0) -> subprocess.Popen:
        args = json.dumps({"recipe": str(recipe), "out": str(out), "resume": resume})
        return subprocess.Popen([sys.executable, str(script), args], env={**env, "HDRBENCH_TOY_SLEEP_S": str(sleep)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # Uninterrupted reference run.
    ref = launch(tmp_path / "ref", resume=False)
    assert ref.wait(timeout=120) == 0, ref.stdout.read().decode()

    # Run slowed to ~0.1 s an iteration, killed with SIGKILL two iterations after its checkpoint at 10.
    killed_dir = tmp_path / "killed"
    proc = launch(killed_dir, resume=False, sleep=0.1)
    log = killed_dir / "train.log"
    deadline = time.time() + 60
    while time.time() < deadline:
        if log.exists() and "iter 12/30" in log.read_text():
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed: " + proc.stdout.read().decode())
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the slowed run never reached iteration 12")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = ckpt.load_checkpoint(killed_dir / "checkpoint.pt")["iteration"]
    assert 10 <= killed_at < 30, killed_at  # a mid-run checkpoint; iterations after it are lost
    assert "done:" not in log.read_text()

    resumed = launch(killed_dir, resume=True)
    assert resumed.wait(timeout=120) == 0, resumed.stdout.read().decode()
    assert f"resumed from {killed_dir / 'checkpoint.pt'} at iteration {killed_at}" in log.read_text()

    ref_path, res_path = tmp_path / "ref" / "checkpoint.pt", killed_dir / "checkpoint.pt"
    assert ckpt.load_checkpoint(res_path)["iteration"] == 30
    # Exact: same arithmetic in the same order on one thread; any lost or repeated step, RNG draw or
    # batch would change the weights.
    assert_bitwise_equal(checkpoint_weights(ref_path), checkpoint_weights(res_path))
    ref_opt, res_opt = optimizer_tensors(ref_path), optimizer_tensors(res_path)
    assert len(ref_opt) == len(res_opt) > 0
    for a, b in zip(ref_opt, res_opt):
        assert torch.equal(a, b)
    ref_data = ckpt.load_checkpoint(ref_path)["data"]["sampler"]
    res_data = ckpt.load_checkpoint(res_path)["data"]["sampler"]
    assert (ref_data["epoch"], ref_data["position"]) == (res_data["epoch"], res_data["position"])



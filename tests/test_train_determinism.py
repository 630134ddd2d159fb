"""Seeded CPU training is bitwise repeatable: two fresh runs of the proposed method's tiny preset, each in its
own process, end with identical weights; and the linear solves of CRF recovery (inside the training loss)
stay valid and repeatable after ``torch.set_num_threads`` (``--threads``), where oneMKL's batched solve
returned invalid pivots."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from test_train_toy import assert_bitwise_equal, checkpoint_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Debevec recovery of a fixed 2-image stack after torch.set_num_threads(THREADS); the table is saved to OUT.
_DEBEVEC = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from hdrbench.imaging.calibration.debevec import debevec_inverse_crf
g = torch.Generator().manual_seed(0)
hdr = torch.rand(2, 3, 48, 48, generator=g, dtype=torch.float64) ** 3 * 4
evs = [-3, -2, -1, 0, 1, 2, 3]
stack = torch.stack([(hdr * 2.0**e).clamp(0, 1) ** (1 / 2.2) for e in evs], 1)
stack = (stack * 255).round() / 255
torch.save(debevec_inverse_crf(stack, torch.tensor([2.0**e for e in evs], dtype=torch.float64)), sys.argv[2])
"""


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env["OMP_NUM_THREADS"] = "2"  # the thread count torch starts with; the script then sets it again
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


@pytest.mark.slow
def test_crf_recovery_after_set_num_threads_is_valid_and_repeatable(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"g{k}.pt"
        proc = subprocess.run([sys.executable, "-c", _DEBEVEC, "2", str(out)], env=_env(), capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "oneMKL ERROR" not in proc.stderr
        outs.append(torch.load(out))
    assert torch.isfinite(outs[0]).all()
    assert torch.equal(outs[0], outs[1])  # same thread count, same numbers, bit for bit


_TRAIN = """
import sys, torch
torch.set_num_threads(1)
from hdrbench.train.trainer import train
train("proposed", "synthetic", preset="tiny", iters=3, out=sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_two_fresh_seeded_runs_of_the_tiny_preset_are_bitwise_equal(tmp_path):
    paths = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        proc = subprocess.run([sys.executable, "-c", _TRAIN, str(out)], env=_env(), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        paths.append(out / "checkpoint.pt")
    assert_bitwise_equal(checkpoint_weights(paths[0]), checkpoint_weights(paths[1]))

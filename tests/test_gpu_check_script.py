"""``scripts/gpu_check.sh``: the one-command GPU check parses, and refuses to run without CUDA.

The check itself needs a CUDA machine; here only what can be verified without one: the script is valid
bash, it names every step the GPU check must run, and on a machine without CUDA it stops at once with exit
status 3 and a message, before writing any result row.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def test_script_is_valid_bash_and_names_every_step():
    assert shutil.which("bash"), "bash is needed to check the script"
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    for step in ("cuda-tests", "agreement", "predict", "train-resume", "bench-train", "bench-hdrvdp2"):
        assert f"step {step} " in text, step
    for needle in ("--cuda-batch 16 --cuda-size 1024x768", "--variants fp32,bf16,compile", "--resume",
                   "--preset paper", "predict --method proposed --weights", "--device \"$dev\""):
        assert needle in text, needle


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal cannot be observed")
def test_script_refuses_to_run_without_cuda(tmp_path):
    # A copy in a scratch tree, so that a wrong refusal could not write rows into the repository's results/.
    tree = tmp_path / "repo"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, tree / "scripts" / "gpu_check.sh")
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(tree / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "no CUDA device" in proc.stderr and "Nothing was run" in proc.stderr
    assert not (tree / "results").exists()

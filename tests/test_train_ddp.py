"""Two-process distributed training on CPU (gloo, ``torch.distributed.run``) against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from hdrbench.train import checkpoint as ckpt
from hdrbench.train import distributed as dist_utils

from test_train_toy import TESTS_DIR, write_toy_recipe

REPO = TESTS_DIR.parent

WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
import test_train_toy as tt
from hdrbench.train import distributed as dist_utils
from hdrbench.train.trainer import train
args = json.loads(sys.argv[1])
train(args["recipe"], tt.ToyDataset(), out=args["out"], seed=0, iters=args["iters"], batch_size=args["batch"],
      progress=False)
info = dist_utils.env_info()
# One file per rank: two ranks printing to one pipe can interleave their lines.
with open(f"{{args['out']}}/rank{{info.rank}}.txt", "w") as fh:
    fh.write(f"RANK {{info.rank}} WORLD {{info.world_size}} ACTIVE {{dist_utils.is_active()}}")
dist_utils.shutdown()
"""


def _weights(path):
    state = ckpt.load_checkpoint(path)
    return {f"{m}.{k}": v for m, sd in state["modules"].items() for k, v in sd.items()}


@pytest.mark.slow
def test_two_process_gloo_matches_one_process_on_the_same_global_batch(tmp_path):
    recipe = write_toy_recipe(tmp_path / "recipes")
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS_DIR)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    iters = 6

    def args(out, batch):
        return json.dumps({"recipe": str(recipe), "out": str(tmp_path / out), "iters": iters, "batch": batch})

    one = subprocess.run([sys.executable, str(script), args("one", 4)], env=env, capture_output=True, text=True,
                         timeout=180)
    assert one.returncode == 0, one.stdout + one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), args("two", 2)], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    for rank in (0, 1):
        marker = (tmp_path / "two" / f"rank{rank}.txt").read_text()
        assert marker == f"RANK {rank} WORLD 2 ACTIVE True", marker
    assert json.loads((tmp_path / "two" / "recipe.json").read_text())["world_size"] == 2

    a, b = _weights(tmp_path / "one" / "checkpoint.pt"), _weights(tmp_path / "two" / "checkpoint.pt")
    assert a.keys() == b.keys()
    # Tolerance: the two runs differ only in float32 summation order (mean over 4 samples in one loss vs
    # the mean of two 2-sample means after an all-reduce), ~1e-7 relative in each gradient. Adam divides
    # by sqrt(v), so each of the 6 steps moves a weight by at most lr = 1e-2 whatever the gradient scale;
    # rounding differences change a step by ~1e-7 relative for gradients well above eps. atol 1e-5 is
    # 1e-3 of one step and 30x the largest difference observed (2.9e-7).
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, worst
    # and the last step really moved the weights (by ~lr), so the comparison can fail
    prev = _weights(tmp_path / "one" / "checkpoint.prev.pt")  # iteration 5 (save_every = 5)
    assert max((a[k] - prev[k]).abs().max().item() for k in a) > 1e-3
    print(f"DDP vs one process: max abs weight difference {worst:.3g}")
    # the data order is one global order: both runs stopped at the same place of the same epoch
    sa = ckpt.load_checkpoint(tmp_path / "one" / "checkpoint.pt")["data"]["sampler"]
    sb = ckpt.load_checkpoint(tmp_path / "two" / "checkpoint.pt")["data"]["sampler"]
    assert (sa["epoch"], sa["position"]) == (sb["epoch"], sb["position"])


def test_single_process_helpers_are_no_ops():
    assert not dist_utils.is_active()
    assert dist_utils.rank() == 0 and dist_utils.world_size() == 1 and dist_utils.is_main()
    assert dist_utils.any_true(True) and not dist_utils.any_true(False)
    assert dist_utils.mean_over_ranks({"a": 1.5}) == {"a": 1.5}
    assert dist_utils.synchronize_gradients({"o": torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1)}) == []
    net = torch.nn.Linear(1, 1)
    assert dist_utils.wrap_ddp(net, torch.device("cpu")) is net
    info = dist_utils.init_distributed("cpu")
    assert info.world_size == 1 and info.is_main and not info.distributed

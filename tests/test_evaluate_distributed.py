"""Evaluation under ``torchrun --nproc_per_node=2`` (CPU, gloo) gives the same records as one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hdrbench.evaluate.distributed import Ranks, shard
from hdrbench.evaluate.leaderboard import leaderboard_path, read_leaderboard_file
from hdrbench.evaluate.runs import read_records_csv

REPO = Path(__file__).resolve().parent.parent
#: Columns that legitimately differ between two runs: the run's identity and start time.
RUN_COLUMNS = ("run_id", "timestamp")


def test_shard_covers_every_item_once():
    items = [f"s{i}" for i in range(7)]
    parts = [shard(items, Ranks(rank=r, world=3)) for r in range(3)]
    assert [i for part in parts for i, _ in part] != list(range(7))  # interleaved, not blocks
    assert sorted(i for part in parts for i, _ in part) == list(range(7))
    assert all(items[i] == x for part in parts for i, x in part)
    assert shard(items, Ranks()) == list(enumerate(items))


def _evaluate_args(out: Path) -> list[str]:
    return ["evaluate", "--method", "exposure-scaling", "--dataset", "synthetic", "--limit", "4",
            "--resolution", "48", "--dataset-option", "n_train=0", "--dataset-option", "n_test=4",
            "--stack-metrics", "psnr,ssim", "--hdr-metrics", "hdrvdp2,pu21-psnr", "--no-progress", "--out", str(out)]


def _env() -> dict:
    # One thread per rank: two ranks on two cores, no oversubscription.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    single_out = _run([sys.executable, "-m", "hdrbench"] + _evaluate_args(tmp_path / "single"))
    multi_out = _run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "hdrbench"]
                     + _evaluate_args(tmp_path / "multi"))
    single_run = Path(single_out.strip().splitlines()[-1])
    multi_runs = [p for p in (tmp_path / "multi").iterdir() if p.is_dir()]
    assert len(multi_runs) == 1, multi_runs  # rank 0 alone created the run folder
    multi_run = multi_runs[0]
    assert multi_out.strip().splitlines().count(str(multi_run)) == 1  # rank 0 alone printed it

    a = read_records_csv(single_run / "records.csv")
    b = read_records_csv(multi_run / "records.csv")
    assert len(a) == len(b) == 4 * (6 * 2 + 2)  # 4 scenes x (6 EVs x 2 stack metrics + 2 HDR metrics)
    assert not [r for r in a if r["error"]]
    # Floats compared through repr: exact, and NaN (the EV of HDR rows) equals NaN.
    strip = lambda rows: [{k: repr(v) for k, v in r.items() if k not in RUN_COLUMNS} for r in rows]  # noqa: E731
    # Same rows in the same order with bit-identical values: each scene is computed by one rank with the same
    # code and seed, so no tolerance is needed.
    assert strip(a) == strip(b)
    assert [r["scene"] for r in b][:: 6 * 2 + 2] == ["test-0000", "test-0001", "test-0002", "test-0003"]

    cfg_a = json.loads((single_run / "config.json").read_text())
    cfg_b = json.loads((multi_run / "config.json").read_text())
    assert (cfg_a["world_size"], cfg_b["world_size"]) == (1, 2)
    assert "2 ranks" in (multi_run / "log.txt").read_text()
    # Both runs are on the leaderboard, with equal aggregates.
    lb = read_leaderboard_file(leaderboard_path("synthetic"))
    by_run = {}
    for r in lb:
        by_run.setdefault(r["run_id"], {})[(r["target"], r["ev"], r["metric"])] = (r["mean"], r["n_images"])
    assert set(by_run) == {single_run.name, multi_run.name}
    assert by_run[single_run.name] == by_run[multi_run.name]

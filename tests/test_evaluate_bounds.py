"""Where a method stands: the bounds found on (or missing from) a leaderboard, the closing sentence, and the
main job's outputs staying in the user results folder, out of the repository's tracked files."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from hdrbench.evaluate.bounds import BOUNDS, missing_bounds, placement, standing
from hdrbench.evaluate.leaderboard import update_leaderboard
from hdrbench.evaluate.records import COLUMNS
from hdrbench.errors import InputError
from hdrbench.paths import REPO_ROOT, lock_path, published_results_dir, results_dir

SETTINGS = {"dataset": "photos", "split": "test", "resolution": "256x256-lanczos", "protocol": "singlehdr"}


def _records(method: str, q: list[float], psnr_by_ev: dict[float, list[float]] | None, run_id: str) -> list[dict]:
    base = {c: "" for c in COLUMNS}
    base.update(schema_version="1", run_id=run_id, method=method, dataset="photos", split="test",
                resolution="256x256-lanczos", seed="0", hdrbench_version="0", torch_version="0",
                timestamp=f"2026-01-01T00:00:0{run_id[-1]}Z")
    rows = []
    for i, v in enumerate(q):
        rows.append({**base, "scene": f"s{i}", "target": "hdr", "ev": math.nan, "metric": "hdrvdp2", "value": v,
                     "protocol": "singlehdr", "protocol_version": "1", "metric_version": "2.2.2"})
    for ev, values in (psnr_by_ev or {}).items():
        for i, v in enumerate(values):
            rows.append({**base, "scene": f"s{i}", "target": "stack", "ev": ev, "metric": "psnr", "value": v,
                         "metric_version": "1"})
    return rows


def _board(results: Path, *, with_bounds=BOUNDS) -> None:
    data = {
        "gt-stack": ([60.0, 62.0], {-1.0: [math.inf] * 2, 1.0: [math.inf] * 2}),
        "exposure-scaling": ([44.0, 46.0], {-1.0: [20.0, 22.0], 1.0: [38.0, 40.0]}),
        "ldr-linear": ([44.0, 45.0], None),
        "mine": ([50.0, 52.0], {-1.0: [24.0, 26.0], 1.0: [30.0, 32.0]}),
    }
    for k, (name, (q, psnr)) in enumerate(data.items()):
        if name in BOUNDS and name not in with_bounds:
            continue
        update_leaderboard(_records(name, q, psnr, f"run{k}"), dataset="photos", results=results)


def test_standing_reads_the_latest_run_and_averages_stack_psnr_over_the_generated_evs(tmp_path):
    _board(tmp_path)
    s = standing("exposure-scaling", results=tmp_path, **SETTINGS)
    assert (s.q, s.stack_psnr, s.n_images) == (45.0, 30.0, 2)  # (21 + 39) / 2
    assert standing("gt-stack", results=tmp_path, **SETTINGS).stack_psnr == math.inf
    assert math.isnan(standing("ldr-linear", results=tmp_path, **SETTINGS).stack_psnr)
    assert standing("mine", results=tmp_path, n_images=3, **SETTINGS) is None  # another number of scenes


def test_placement_sentence_names_the_bounds_and_where_the_method_lies(tmp_path):
    _board(tmp_path)
    text = placement("mine", results=tmp_path, **SETTINGS)
    assert text.count(".") >= 1 and "\n" not in text
    assert "HDR-VDP-2 Q 51.00" in text and "between the single-exposure bounds and gt-stack" in text
    # (51 - 45) / (61 - 45) = 37.5 % of the way from the better lower bound to gt-stack.
    assert "38 % of the way" in text
    assert "gt-stack 61.00, exposure-scaling 45.00, ldr-linear 44.50" in text
    assert "28.00 dB, below exposure-scaling's 30.00 dB" in text


def test_missing_bounds_are_listed_and_the_sentence_refuses_without_them(tmp_path):
    _board(tmp_path, with_bounds=("gt-stack",))
    assert missing_bounds(results=tmp_path, n_images=2, **SETTINGS) == ["exposure-scaling", "ldr-linear"]
    assert missing_bounds(results=tmp_path, n_images=5, **SETTINGS) == list(BOUNDS)
    with pytest.raises(InputError, match="no run of 'exposure-scaling'"):
        placement("mine", results=tmp_path, **SETTINGS)


def test_user_results_folder_defaults_under_the_runs_folder_and_publish_is_the_committed_one(tmp_path, monkeypatch):
    monkeypatch.delenv("HDRBENCH_RESULTS")
    monkeypatch.setenv("HDRBENCH_RUNS", str(tmp_path / "r"))
    assert results_dir() == tmp_path / "r" / "results"
    monkeypatch.setenv("HDRBENCH_RESULTS", str(tmp_path / "mine"))
    assert results_dir() == tmp_path / "mine"
    assert published_results_dir() == REPO_ROOT / "results"
    # Lock files live in the cache folder, never beside the file they guard.
    lock = lock_path(tmp_path / "mine" / "leaderboard-photos.csv")
    assert lock.parent != tmp_path / "mine" and lock.suffix == ".lock"


def _git_status() -> str | None:
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


@pytest.mark.slow
def test_run_evaluates_the_missing_bounds_into_the_user_folder_and_ends_with_the_sentence(tmp_path, monkeypatch,
                                                                                          capsys):
    from hdrbench.cli import main

    monkeypatch.delenv("HDRBENCH_RESULTS")  # the default: <runs>/results
    monkeypatch.chdir(REPO_ROOT)  # where a user runs the main job
    before = _git_status()
    args = ["run", "--method", "akyuz07", "--dataset", "synthetic", "--dataset-option", "n_train=0",
            "--dataset-option", "n_test=1", "--resolution", "32", "--hdr-metrics", "hdrvdp2",
            "--stack-metrics", "psnr", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("On synthetic (test split, 1 scenes, protocol singlehdr), akyuz07 scores HDR-VDP-2 Q")
    assert "gt-stack" in out[-1] and "exposure-scaling" in out[-1] and "ldr-linear" in out[-1]
    results = tmp_path / "runs" / "results"
    assert (results / "leaderboard-synthetic.csv").is_file()
    assert not list(results.glob("*.lock"))
    for b in BOUNDS:
        assert standing(b, dataset="synthetic", split="test", resolution="32x32-rendered", protocol="singlehdr",
                        results=results) is not None, b
    # A second run finds the bounds and evaluates none of them again.
    assert main(args) == 0
    n_runs = len({p.name for p in (tmp_path / "runs").iterdir() if p.name != "results"})
    assert n_runs == 5  # akyuz07 twice, the three bounds once
    if before is not None:
        assert _git_status() == before, "the main job changed the repository's tracked or unignored files"

"""The evaluation harness scores the HDR metrics of equal-size scenes in batches.

The CPU scores scene by scene by default (``MAX_BATCH_SCENES["cpu"] == 1``); these tests raise the cap to batch on
the CPU. Batched and scene-by-scene scoring must give the same records; a scene whose batch fails must become error
rows while the other scenes of the batch are scored; mixed sizes must give one batch per size with the records in
split order.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import hdrbench.evaluate.harness as harness
from hdrbench.evaluate.harness import evaluate
from hdrbench.evaluate.methods import Method
from hdrbench.evaluate.runs import read_records_csv
from hdrbench.metrics import batch

#: Record fields that identify a row and must be identical whether batched or not.
KEY = ("scene", "target", "ev", "metric", "metric_version", "protocol", "error")
#: The relative tolerance between batched and scene-by-scene values. The harness scores the HDR metrics in the
#: reference's dtype (float32 for these datasets' HDR images); a batch can only change the order of float32
#: operations (how per-image reductions and FFTs are split), a few units of float32 roundoff (6e-8) in
#: intermediate values, and HDR-VDP-2 pools Q in float64. Measured here: HDR-VDP-2 Q 1e-11 relative, PU21
#: metrics identical. Scoring a scene against another one's reference or scaling a batch jointly moves values
#: by percent.
RTOL = 1e-7


def _write_folder(folder, sizes) -> None:
    """Tiny linear HDR files ``s<i>.hdr`` of the given (height, width) sizes (varied content, > 0)."""
    import cv2

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        base = np.linspace(0.02, 30.0, h * w, dtype=np.float32).reshape(h, w, 1)
        img = base * (0.5 + rng.random((h, w, 3), dtype=np.float32))
        cv2.imwrite(str(folder / f"s{i}.hdr"), img.astype(np.float32))


def _evaluate(method, dataset, tmp, max_batch: int, monkeypatch, batches: list | None = None, **kw):
    """Records of one run with at most ``max_batch`` scenes per batch; ``batches`` collects each batch's
    (number of pairs, (H, W)) as the harness scores it."""
    monkeypatch.setitem(harness.MAX_BATCH_SCENES, "cpu", max_batch)
    if batches is not None:
        original = harness._SceneScorer.hdr_rows

        def spy(self, pairs):
            batches.append((len(pairs), tuple(pairs[0][0].shape[-2:])))
            return original(self, pairs)

        monkeypatch.setattr(harness._SceneScorer, "hdr_rows", spy)
    path = evaluate(method, dataset, out=tmp / f"runs{max_batch}", leaderboard=False, **kw)
    monkeypatch.undo()
    return read_records_csv(path / "records.csv")


def _assert_same_records(batched: list[dict], alone: list[dict]) -> int:
    """Same rows in the same order, values within RTOL; returns the number of HDR rows compared."""
    assert [tuple(r[k] if k != "ev" or not math.isnan(r[k]) else "nan" for k in KEY) for r in batched] == \
        [tuple(r[k] if k != "ev" or not math.isnan(r[k]) else "nan" for k in KEY) for r in alone]
    n_hdr = 0
    for b, a in zip(batched, alone):
        if math.isnan(a["value"]):
            assert math.isnan(b["value"]), (b, a)
            continue
        assert math.isclose(b["value"], a["value"], rel_tol=RTOL, abs_tol=0.0), (b, a)
        n_hdr += b["target"] == "hdr"
    return n_hdr


def test_batched_equals_scene_by_scene_on_mixed_sizes(tmp_path, monkeypatch):
    # Two sizes interleaved in name order: s0, s2, s4 are 40x48, s1, s3 are 34x36.
    folder = tmp_path / "hdr"
    _write_folder(folder, [(40, 48), (34, 36), (40, 48), (34, 36), (40, 48)])
    dataset = f"hdr-folder:{folder}"
    kw = dict(split="all", resolution="native", stack_metrics=("psnr",))
    batches: list = []
    batched = _evaluate("exposure-scaling", dataset, tmp_path, 16, monkeypatch, batches, **kw)
    alone = _evaluate("exposure-scaling", dataset, tmp_path, 1, monkeypatch, **kw)
    # One batch per size, in the order the sizes first appear; the records stay in split (name) order.
    assert batches == [(3, (40, 48)), (2, (34, 36))]
    assert [r["scene"] for r in batched if r["target"] == "hdr"] == [f"s{i}" for i in range(5) for _ in range(3)]
    assert _assert_same_records(batched, alone) == 5 * len(harness.HDR_METRICS)  # every HDR value compared
    # The scenes score differently, so a batch that mixed up its scenes would fail the comparison above.
    assert len({r["value"] for r in alone if r["metric"] == "hdrvdp2"}) == 5
    assert not any(r["error"] for r in batched)


def test_batched_equals_scene_by_scene_on_synthetic(tmp_path, monkeypatch):
    opts = {"n_train": 0, "n_test": 3, "progress": False}
    kw = dict(resolution=64, dataset_options=opts, stack_metrics=("psnr",))
    batches: list = []
    batched = _evaluate("gt-stack", "synthetic", tmp_path, 16, monkeypatch, batches, **kw)
    alone = _evaluate("gt-stack", "synthetic", tmp_path, 1, monkeypatch, **kw)
    assert batches == [(3, (64, 64))]
    assert _assert_same_records(batched, alone) == 3 * len(harness.HDR_METRICS)


class _ZeroOnSecond(Method):
    """A direct method whose second scene is all zeros: the protocol cannot scale it, so its batch raises."""

    kind = "direct"
    name = "zero-on-second"

    def __init__(self):
        self.calls = 0

    def predict_hdr(self, ldr):
        self.calls += 1
        return torch.zeros_like(ldr) if self.calls == 2 else ldr**2.2 + 1e-3


def test_a_scene_failing_in_its_batch_becomes_error_rows(tmp_path, monkeypatch):
    folder = tmp_path / "hdr"
    _write_folder(folder, [(36, 36)] * 3)
    kw = dict(split="all", resolution="native", hdr_metrics=("pu21-psnr", "pu21-ssim"))
    batches: list = []
    batched = _evaluate(_ZeroOnSecond(), f"hdr-folder:{folder}", tmp_path, 16, monkeypatch, batches, **kw)
    assert batches == [(3, (36, 36))]  # the batch of three raised, then each scene was scored alone
    failed = [r for r in batched if r["scene"] == "s1"]
    assert len(failed) == 2 and all(math.isnan(r["value"]) and r["error"] for r in failed)
    good = [r for r in batched if r["scene"] != "s1"]
    assert len(good) == 4 and all(math.isfinite(r["value"]) and not r["error"] for r in good)
    alone = _evaluate(_ZeroOnSecond(), f"hdr-folder:{folder}", tmp_path, 1, monkeypatch, **kw)
    _assert_same_records(batched, alone)  # the same error message and the same values as scene by scene


def test_batches_are_cut_by_count_and_memory_budget(tmp_path, monkeypatch):
    folder = tmp_path / "hdr"
    _write_folder(folder, [(36, 36)] * 3)
    batches: list = []
    records = _evaluate("ldr-linear", f"hdr-folder:{folder}", tmp_path, 2, monkeypatch, batches, split="all",
                        resolution="native", hdr_metrics=("pu21-psnr",))
    assert batches == [(2, (36, 36)), (1, (36, 36))]  # a cap of 2: a full batch, then the rest
    assert [r["scene"] for r in records] == ["s0", "s1", "s2"]
    # A memory budget of two pairs' estimated peak cuts a batch under a cap of 16 the same way.
    two = 2 * batch.estimate_peak_bytes(["pu21-psnr"], 36 * 36, torch.float32)
    monkeypatch.setattr(harness, "_memory_budget", lambda device: two)
    batches.clear()
    _evaluate("ldr-linear", f"hdr-folder:{folder}", tmp_path, 16, monkeypatch, batches, split="all",
              resolution="native", hdr_metrics=("pu21-psnr",))
    assert batches == [(2, (36, 36)), (1, (36, 36))]
    # The budget: as many pairs as the estimated peak allows, at least one, at most the cap.
    per_pair = batch.estimate_peak_bytes(["hdrvdp2"], 36 * 36, torch.float32)
    assert batch.batch_capacity(["hdrvdp2"], 36, 36, torch.float32, 5 * per_pair + 1, max_pairs=16) == 5
    assert batch.batch_capacity(["hdrvdp2"], 36, 36, torch.float32, 5 * per_pair + 1, max_pairs=3) == 3
    assert batch.batch_capacity(["hdrvdp2"], 36, 36, torch.float32, per_pair - 1) == 1
    assert batch.batch_capacity(["hdrvdp2"], 36, 36, torch.float32, None, max_pairs=7) == 7


def test_cpu_default_is_scene_by_scene_and_progress_counts_scenes(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "hdr"
    _write_folder(folder, [(36, 36), (30, 30), (36, 36)])
    sizes: list = []
    original = harness._SceneScorer.hdr_rows
    monkeypatch.setattr(harness._SceneScorer, "hdr_rows",
                        lambda self, pairs: sizes.append(len(pairs)) or original(self, pairs))
    evaluate("ldr-linear", f"hdr-folder:{folder}", split="all", resolution="native", hdr_metrics=("pu21-psnr",),
             out=tmp_path / "runs", leaderboard=False, progress=True)
    assert sizes == [1, 1, 1]  # batches were not faster on the CPU (see MAX_BATCH_SCENES)
    err = capsys.readouterr().err
    assert "3/3" in err and "scene" in err

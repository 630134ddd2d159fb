"""The embedded ``synthetic`` dataset: generation, caching, determinism, ground truth."""

from __future__ import annotations

import json

import numpy as np
import torch

from hdrbench.data import get_dataset


SMALL = dict(n_train=2, n_test=3, resolution=40, progress=False)


def test_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HDRBENCH_CACHE", str(tmp_path / "cache"))  # a fresh cache: this test sees the generation
    ds = get_dataset("synthetic", **SMALL)
    assert ds.scenes("train") == ["train-0000", "train-0001"] and len(ds.scenes("test")) == 3
    s = ds.load("test", "test-0001")
    assert s.stack.shape == (7, 3, 40, 40) and s.hdr.shape == (3, 40, 40)
    assert s.stack.dtype == torch.float32 and s.evs == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert ds.resolution.policy == "40x40-rendered"
    folder = ds.folder
    assert folder.parent == tmp_path / "cache" / "synthetic"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["params"]["n_test"] == 3 and manifest["scenes"]["test"] == ds.scenes("test")
    mtimes = {p: p.stat().st_mtime_ns for p in folder.rglob("*.npz")}
    assert len(mtimes) == 5
    again = get_dataset("synthetic", **SMALL)
    assert again.folder == folder
    torch.testing.assert_close(again.load("test", "test-0001").stack, s.stack, rtol=0, atol=0)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.npz")} == mtimes  # nothing regenerated
    assert get_dataset("synthetic", **{**SMALL, "seed": 1}).folder != folder  # parameters change the folder


def test_deterministic_across_cache_folders(tmp_path, monkeypatch):
    a = get_dataset("synthetic", **SMALL).load("train", "train-0000")
    monkeypatch.setenv("HDRBENCH_CACHE", str(tmp_path / "other-cache"))
    b = get_dataset("synthetic", **SMALL).load("train", "train-0000")
    assert torch.equal(a.stack, b.stack) and torch.equal(a.hdr, b.hdr)
    np.testing.assert_array_equal(a.meta["crf_table"], b.meta["crf_table"])


def test_ground_truth_is_consistent():
    ds = get_dataset("synthetic", **SMALL)
    for name in ds.scenes("test"):
        s = ds.load("test", name)
        assert torch.isfinite(s.hdr).all() and (s.hdr >= 0).all()
        assert (s.stack[1:] >= s.stack[:-1] - 1e-6).all()  # more exposure never darkens a pixel
        codes = s.stack.numpy() * 255
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-4)  # 8-bit levels, stored losslessly
        table = s.meta["crf_table"]
        assert np.all(np.diff(table, axis=-1) >= 0) and table.min() >= 0 and table.max() <= 1 + 1e-9
        # Train and test never share a scene.
    tr = ds.load("train", "train-0000")
    assert not torch.equal(tr.hdr, ds.load("test", "test-0000").hdr)
    assert ds.check() == []

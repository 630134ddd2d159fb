"""``hdrbench score`` folder mode, batching of mixed sizes, and the memory limit for large pairs.

Small synthetic HDR images (log-normal luminance, 40-64 px) are written to two folders; the rows must equal
single-pair scoring of the same files (same code path per image; batching only changes the FFT batch, so the
tolerance is 1e-9, far below any metric's resolution).
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from hdrbench.cli import main
from hdrbench.imaging.io import write_image
from hdrbench.metrics import batch

METRICS = "hdrvdp2,pu21-psnr"


def _img(rng, h, w):
    return np.exp(rng.normal(0.0, 1.0, (h, w, 3))).astype(np.float32)


@pytest.fixture()
def folders(tmp_path):
    rng = np.random.default_rng(3)
    t, r = tmp_path / "test", tmp_path / "ref"
    t.mkdir()
    r.mkdir()
    for name, (h, w) in {"a": (48, 64), "b": (48, 64), "c": (40, 56)}.items():
        ref = _img(rng, h, w)
        write_image(r / f"{name}.hdr", ref)
        write_image(t / f"{name}.exr", (ref * (1 + 0.05 * rng.normal(size=ref.shape))).clip(0).astype(np.float32))
    write_image(r / "d.pfm", _img(rng, 48, 64))
    write_image(t / "d.pfm", _img(rng, 40, 64))  # size mismatch
    return t, r


def _run(capsys, *argv):
    rc = main(["score", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_folder_rows_match_single_pairs_and_mismatch_is_a_row(folders, capsys, tmp_path):
    t, r = folders
    out = tmp_path / "rows.csv"
    rc, stdout, err = _run(capsys, "--test", str(t), "--reference", str(r), "--metrics", METRICS, "--out", str(out))
    assert rc == 0, err
    rows = {row["name"]: row for row in csv.DictReader(out.open())}
    assert sorted(rows) == ["a", "b", "c", "d"]
    assert "size mismatch" in rows["d"]["error"] and "64x40" in rows["d"]["error"] and "64x48" in rows["d"]["error"]
    assert math.isnan(float(rows["d"]["hdrvdp2"]))
    assert "d: size mismatch" in err  # also said on the console
    for name, ext in (("a", "exr"), ("c", "exr")):
        assert rows[name]["error"] == ""
        rc, single, err = _run(capsys, "--test", str(t / f"{name}.{ext}"), "--reference", str(r / f"{name}.hdr"),
                               "--metrics", METRICS, "--json")
        assert rc == 0, err
        vals = json.loads(single)["metrics"]
        for m in METRICS.split(","):
            assert float(rows[name][m]) == pytest.approx(vals[m], abs=1e-9), (name, m)


def test_folder_json_output(folders, capsys, tmp_path):
    t, r = folders
    out = tmp_path / "rows.json"
    rc, _, err = _run(capsys, "--test", str(t), "--reference", str(r), "--metrics", "pu21-psnr", "--out", str(out),
                      "--no-progress")
    assert rc == 0, err
    data = json.loads(out.read_text())
    assert [row["name"] for row in data["rows"]] == ["a", "b", "c", "d"]
    assert data["meta"]["protocol"] == "singlehdr" and data["rows"][3]["pu21-psnr"] == "nan"
    assert data["rows"][0]["pu21-psnr"] > 20  # 5 % noise: a finite, plausible PU21-PSNR


def test_missing_partner_is_an_error_naming_it(folders, capsys, tmp_path):
    t, r = folders
    (r / "c.hdr").unlink()
    out = tmp_path / "rows.csv"
    rc, _, err = _run(capsys, "--test", str(t), "--reference", str(r), "--out", str(out))
    assert rc == 2 and "Traceback" not in err
    assert "c.exr" in err and "without a reference" in err
    assert not out.exists()  # refused before scoring: nothing written


def test_folder_and_file_mixed_is_an_error(folders, capsys):
    t, r = folders
    rc, _, err = _run(capsys, "--test", str(t), "--reference", str(r / "a.hdr"))
    assert rc == 2 and "give two files or two folders" in err


def test_memory_limit_refuses_before_scoring(folders, capsys, tmp_path):
    t, r = folders
    rc, _, err = _run(capsys, "--test", str(t / "a.exr"), "--reference", str(r / "a.hdr"), "--max-memory-gb", "0.001")
    assert rc == 2 and "--max-memory-gb 0.001" in err and "nothing was computed" in err
    out = tmp_path / "rows.csv"
    rc, _, err = _run(capsys, "--test", str(t), "--reference", str(r), "--max-memory-gb", "0.001", "--out", str(out))
    assert rc == 0
    errors = {row["name"]: row["error"] for row in csv.DictReader(out.open())}
    assert all("--max-memory-gb 0.001" in errors[k] for k in "abc") and "size mismatch" in errors["d"]


def test_score_pairs_groups_sizes_and_matches_single_calls():
    from hdrbench.metrics.registry import compute_hdr_metrics

    g = torch.Generator().manual_seed(0)
    shapes = [(40, 48), (32, 40), (40, 48), (40, 48), (32, 40)]
    pairs = []
    for h, w in shapes:
        r = torch.exp(torch.randn(1, 3, h, w, generator=g, dtype=torch.float64))
        pairs.append((r * (1 + 0.05 * torch.randn(r.shape, generator=g, dtype=torch.float64)).clamp_min(0), r))
    assert batch.group_by_shape([tuple(t.shape) for t, _ in pairs]) == [[0, 2, 3], [1, 4]]
    calls = []
    per_pair = batch.estimate_peak_bytes(["hdrvdp2"], 40 * 48, torch.float64)
    out = batch.score_pairs(pairs, protocol="singlehdr", metrics=["hdrvdp2"], max_bytes=2 * per_pair,
                            on_done=calls.append)
    assert calls == [2, 1, 2]  # the budget holds two pairs: sizes batched, cut at two
    for (t, r), res in zip(pairs, out):
        single = float(compute_hdr_metrics(t, r, protocol="singlehdr", metrics=["hdrvdp2"])["hdrvdp2"][0])
        # Same per-image arithmetic; only the FFT batch differs: rounding level.
        assert res["error"] == "" and res["metrics"]["hdrvdp2"] == pytest.approx(single, abs=1e-9)


def test_score_pairs_isolates_a_bad_pair():
    g = torch.Generator().manual_seed(1)
    r = torch.exp(torch.randn(1, 3, 32, 32, generator=g, dtype=torch.float64))
    out = batch.score_pairs([(r * 1.01, r), (torch.zeros_like(r), r)], protocol="singlehdr", metrics=["pu21-psnr"])
    assert out[0]["error"] == "" and math.isfinite(out[0]["metrics"]["pu21-psnr"])
    assert out[1]["error"] != "" and math.isnan(out[1]["metrics"]["pu21-psnr"])


def test_memory_estimate_scales_with_pixels_and_names_the_limit():
    small = batch.estimate_peak_bytes(["hdrvdp2", "pu21-ssim"], 1_000_000, torch.float64)
    assert batch.estimate_peak_bytes(["hdrvdp2", "pu21-ssim"], 4_000_000, torch.float64) == 4 * small
    assert batch.estimate_peak_bytes(["hdrvdp2"], 1_000_000, torch.float32) < small
    with pytest.raises(Exception, match="6000x4000.*more than the limit"):
        batch.check_memory("x", ["hdrvdp2"], 4000, 6000, torch.float64, (10**9, "the limit"))


def test_folder_scoring_holds_at_most_one_batch_per_size(tmp_path, monkeypatch):
    # Folder scoring fills a size's batch by the rule score_pairs cuts by (batch.batch_capacity): with a budget of
    # 2.5 pairs, 5 equal pairs go to score_pairs as 2 + 2 + 1 and never 3 at a time (3 pairs would be held while
    # only 2 fit the budget).
    from hdrbench.evaluate import folder_scoring as fs

    rng = np.random.default_rng(5)
    t, r = tmp_path / "test", tmp_path / "ref"
    t.mkdir()
    r.mkdir()
    for name in "abcde":
        ref = _img(rng, 24, 32)
        write_image(r / f"{name}.hdr", ref)
        write_image(t / f"{name}.hdr", (ref * 1.05).astype(np.float32))
    held, done = [], []
    real = batch.score_pairs

    def spy(pairs, **kw):
        held.append(len(pairs))
        return real(pairs, **kw)

    monkeypatch.setattr(batch, "score_pairs", spy)
    per_pair = batch.estimate_peak_bytes(["pu21-psnr"], 24 * 32, torch.float64)
    rows = fs.score_folders(t, r, protocol="singlehdr", metrics=["pu21-psnr"], max_bytes=int(2.5 * per_pair),
                            progress=done.append)
    assert held == [2, 2, 1] and done == [2, 2, 1]
    assert [row.name for row in rows] == list("abcde")
    assert all(row.error == "" and math.isfinite(row.metrics["pu21-psnr"]) for row in rows)

"""``hdrbench merge``, ``hdrbench calibrate`` and ``hdrbench bench merge`` end to end on the real Memorial stack."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from hdrbench.cli import main
from hdrbench.imaging.io import read_image

STRIDE = 4  # 1/4 size (179 x 121) keeps the tests fast; striding keeps the stack's true 8-bit codes


def _lum(x):
    return 0.2126 * x[..., 0] + 0.7152 * x[..., 1] + 0.0722 * x[..., 2]


def _pearson_log_lum(a, b):
    return float(np.corrcoef(np.log(_lum(a)).ravel(), np.log(_lum(b)).ravel())[0, 1])


@pytest.fixture(scope="module")
def memorial(shared_data, tmp_path_factory):
    """The Memorial stack at 1/4 size in a temporary stack folder, its times file, and the 1/4-size reference."""
    import cv2
    src = shared_data / "stacks" / "memorial"
    out = tmp_path_factory.mktemp("memorial")
    for p in sorted(src.glob("memorial*.png")):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(out / p.name), img[::STRIDE, ::STRIDE])
    shutil.copy(src / "exposure_times_seconds.txt", out)
    ref = read_image(src / "memorial.hdr").data[::STRIDE, ::STRIDE]
    return out, ref


def _opencv_merge(folder):
    import cv2

    lines = [ln.split() for ln in (folder / "exposure_times_seconds.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    images = [cv2.imread(str(folder / name)) for name, _ in lines]
    times = np.array([float(t) for _, t in lines], dtype=np.float32)
    response = cv2.createCalibrateDebevec().process(images, times)
    return cv2.createMergeDebevec().process(images, times, response)[:, :, ::-1]


def test_merge_reproduces_memorial_hdr_and_agrees_with_opencv(memorial, tmp_path, capsys):
    folder, ref = memorial
    out, preview = tmp_path / "m.hdr", tmp_path / "m.png"
    assert main(["merge", "--stack", str(folder), "--out", str(out), "--preview", str(preview)]) == 0
    hdr = read_image(out).data
    assert hdr.shape == ref.shape and read_image(preview).data.shape == ref.shape
    r_ref = _pearson_log_lum(hdr, ref)
    r_cv = _pearson_log_lum(hdr, _opencv_merge(folder))
    r_cv_ref = _pearson_log_lum(_opencv_merge(folder), ref)
    # The bound for memorial.hdr is 0.98 (measured 0.984 at 1/4 and at full size). OpenCV
    # (CalibrateDebevec + MergeDebevec, the oracle) agrees with us better than either agrees with memorial.hdr
    # (measured 0.9995 vs OpenCV; OpenCV vs memorial.hdr 0.986), so 0.99 is the bound there.
    print(f"\nPearson log luminance: vs memorial.hdr {r_ref:.4f}, vs OpenCV {r_cv:.4f} "
          f"(OpenCV vs memorial.hdr {r_cv_ref:.4f})")
    assert r_ref >= 0.98
    assert r_cv >= 0.99


def test_merge_with_the_toolbox_sampling_and_other_options(memorial, tmp_path):
    # Histogram (Grossberg) sampling is the synthesis layer's default; on this real stack it tracks
    # memorial.hdr slightly less closely (measured 0.9800 at 1/4 size, 0.9799 at full size), bound 0.97: the
    # reference's brightest 0.5 % (the skylight) is compressed relative to every merge we tried.
    folder, ref = memorial
    out = tmp_path / "g.exr"
    assert main(["merge", "--stack", str(folder), "--sampling", "grossberg", "--out", str(out)]) == 0
    r = _pearson_log_lum(read_image(out).data, ref)
    print(f"\ngrossberg sampling: Pearson vs memorial.hdr {r:.4f}")
    assert r >= 0.97
    out2 = tmp_path / "mn.hdr"
    assert main(["merge", "--stack", str(folder), "--crf", "mitsunaga-nayar", "--order", "3", "--weight", "hat",
                 "--merge", "w_time_sq", "--out", str(out2)]) == 0
    assert np.isfinite(read_image(out2).data).all()


def test_merge_accepts_files_with_evs_or_a_plain_times_file(memorial, tmp_path):
    folder, _ = memorial
    files = [str(folder / f"memorial{i:02d}.png") for i in (4, 6, 8)]  # 2, 0.5, 0.125 s: EV 1, -1, -3
    a, b = tmp_path / "a.hdr", tmp_path / "b.hdr"
    assert main(["merge", "--stack", *files, "--evs", "1,-1,-3", "--crf", "srgb", "--out", str(a)]) == 0
    times = tmp_path / "t.txt"
    times.write_text("# seconds, in --stack order\n2\n0.5\n0.125\n")
    assert main(["merge", "--stack", *files, "--times", str(times), "--crf", "srgb", "--out", str(b)]) == 0
    np.testing.assert_array_equal(read_image(a).data, read_image(b).data)


def _error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    return err


def test_merge_errors_name_the_file(memorial, tmp_path, capsys):
    folder, _ = memorial
    bad = tmp_path / "stack"
    shutil.copytree(folder, bad)
    (bad / "memorial03.png").unlink()
    assert "memorial03.png" in _error(capsys, ["merge", "--stack", str(bad), "--out", str(tmp_path / "o.hdr")])

    shutil.copy(folder / "memorial03.png", bad)
    (bad / "extra.png").write_bytes((folder / "memorial03.png").read_bytes())
    assert "extra.png" in _error(capsys, ["merge", "--stack", str(bad), "--out", str(tmp_path / "o.hdr")])
    (bad / "extra.png").unlink()

    (bad / "memorial05.png").write_bytes(b"not a png")
    assert "memorial05.png" in _error(capsys, ["merge", "--stack", str(bad), "--out", str(tmp_path / "o.hdr")])

    import cv2

    small = cv2.imread(str(folder / "memorial05.png"))[:50, :50]
    cv2.imwrite(str(bad / "memorial05.png"), small)
    assert "memorial05.png" in _error(capsys, ["merge", "--stack", str(bad), "--out", str(tmp_path / "o.hdr")])

    files = [str(folder / "memorial04.png"), str(folder / "memorial05.png")]
    assert "--evs lists 3" in _error(capsys, ["merge", "--stack", *files, "--evs", "0,1,2", "--out", "x.hdr"])
    assert "--times" in _error(capsys, ["merge", "--stack", *files, "--out", "x.hdr"])
    assert "share an exposure time" in _error(capsys, ["merge", "--stack", *files, "--evs", "1,1", "--out", "x.hdr"])
    missing = tmp_path / "nope.txt"
    assert "nope.txt" in _error(capsys, ["merge", "--stack", *files, "--times", str(missing), "--out", "x.hdr"])


def test_calibrate_writes_the_curve_and_plot(memorial, tmp_path, capsys):
    folder, _ = memorial
    csv_path, png = tmp_path / "curve.csv", tmp_path / "curve.png"
    assert main(["calibrate", "--stack", str(folder), "--out", str(csv_path), "--plot", str(png)]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 256 and list(rows[0]) == ["code", "z", "r", "g", "b"]
    for ch in "rgb":
        values = [float(r[ch]) for r in rows]
        assert all(b > a for a, b in zip(values[16:250], values[17:251]))  # increasing over the observed codes
    assert png.stat().st_size > 1000
    assert main(["calibrate", "--stack", str(folder), "--method", "mitsunaga-nayar", "--order", "3",
                 "--out", str(tmp_path / "mn.csv")]) == 0
    assert len((tmp_path / "mn.csv").read_text().splitlines()) == 257


def test_calibrate_study_runs_the_crf_study_entry_point(monkeypatch, tmp_path, capsys):
    from hdrbench import api

    seen = {}
    monkeypatch.setattr(api, "crf_study", lambda dataset, **kw: seen.update(dataset=dataset, **kw) or [])
    assert main(["calibrate", "--study", "--dataset", "synthetic", "--root", "R", "--split", "train", "--limit", "3",
                 "--out", str(tmp_path)]) == 0
    assert (seen["dataset"], seen["root"], seen["split"], seen["limit"], seen["out"]) == (
        "synthetic", "R", "train", 3, str(tmp_path))
    assert "--study" in _error(capsys, ["calibrate", "--study", "--dataset", "x", "--stack", "a.png", "b.png"])


def test_bench_merge_runs_at_tiny_size_and_records_ratios(tmp_path, capsys):
    assert main(["bench", "merge", "--size", "16", "--repeats", "1", "--warmup", "0", "--no-compile"]) == 0
    path = tmp_path / "results" / "bench-merge.csv"  # HDRBENCH_RESULTS is isolated per test
    row = list(csv.DictReader(path.open()))[-1]
    assert row["stack_exsxhxw"] == "7x3x16x16"
    assert float(row["speedup_vs_loop"]) > 0 and float(row["opencv_over_ours_fwd"]) > 0
    assert float(row["max_rel_fwd_diff_vs_loop"]) < 1e-5
    assert float(row["max_rel_grad_diff_vs_loop_official_slope"]) < 1e-5
    # The native kernels and the torch node agree (float32; same operations in the same order).
    assert row["native_kernel"] and float(row["max_rel_diff_native_vs_torch_node"]) < 1e-6
    assert float(row["torch_node_speedup_vs_loop"]) > 0
    assert row["machine"] and row["torch"]

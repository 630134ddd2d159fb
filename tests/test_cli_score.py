"""``hdrbench score`` end to end on small real-image crops written as .hdr, float .exr, .pfm and .png.

The files are written with OpenCV and a hand-written PFM writer (not with the suite's own writer), then read
back by the command through ``hdrbench.imaging.io``; the numbers printed must equal ``compute_hdr_metrics`` on
the same pixels (read independently with OpenCV): exact routing, so the tolerance is 1e-9.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch


from hdrbench.cli import main  # noqa: E402
from hdrbench.report.figures import pmap_size  # noqa: E402

pytestmark = pytest.mark.data

H, W = 40, 56


def _write_pfm(path, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    with open(path, "wb") as fh:
        fh.write(f"PF\n{w} {h}\n-1.0\n".encode("ascii"))  # negative scale: little-endian
        fh.write(np.ascontiguousarray(rgb[::-1].astype("<f4")).tobytes())  # rows bottom to top


def _cv2():
    os.environ["OPENCV_IO_ENABLE_OPENEXR"] = "1"
    import cv2

    return cv2


@pytest.fixture()
def files(shared_data, tmp_path):
    cv2 = _cv2()
    img = cv2.imread(str(shared_data / "hdr" / "memorial.hdr"), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    ref_bgr = np.ascontiguousarray(img[300:300 + H, 200:200 + W]).astype(np.float32)
    rng = np.random.default_rng(2)
    test_bgr = (ref_bgr * np.exp(rng.normal(0, 0.1, ref_bgr.shape))).astype(np.float32)
    paths = {
        "ref_hdr": tmp_path / "ref.hdr",
        "test_exr": tmp_path / "test.exr",
        "test_pfm": tmp_path / "test.pfm",
        "test_png": tmp_path / "test.png",
        "ref_png": tmp_path / "ref.png",
        "small_hdr": tmp_path / "small.hdr",
    }
    assert cv2.imwrite(str(paths["ref_hdr"]), ref_bgr)
    assert cv2.imwrite(str(paths["test_exr"]), test_bgr)
    _write_pfm(paths["test_pfm"], test_bgr[:, :, ::-1])
    tm = lambda x: np.clip(255 * (x / (1 + x)) ** (1 / 2.2) + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    assert cv2.imwrite(str(paths["ref_png"]), tm(ref_bgr))
    assert cv2.imwrite(str(paths["test_png"]), tm(test_bgr))
    assert cv2.imwrite(str(paths["small_hdr"]), ref_bgr[:20, :30])
    return {k: str(v) for k, v in paths.items()}


def _read_t(path) -> torch.Tensor:
    cv2 = _cv2()
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR
    a = cv2.imread(path, flags)[:, :, ::-1].astype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def _run(capsys, *argv):
    rc = main(["score", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_summary_on_exr_vs_hdr(files, capsys):
    rc, out, err = _run(capsys, "--test", files["test_exr"], "--reference", files["ref_hdr"])
    assert rc == 0, err
    assert "protocol:  singlehdr v1" in out and "pu21-psnr" in out and "pu21-ssim" in out
    assert "HDR-VDP-2 2.2.2: Q = " in out and "P_det = " in out


def test_json_on_pfm_vs_hdr_matches_library(files, capsys):
    from hdrbench.metrics.registry import compute_hdr_metrics

    rc, out, err = _run(
        capsys, "--test", files["test_pfm"], "--reference", files["ref_hdr"], "--json",
        "--metrics", "hdrvdp2,pu21-psnr,pu21-ssim,mu-psnr",
    )
    assert rc == 0, err
    res = json.loads(out)
    assert set(res["hdrvdp2"]) >= {"Q", "P_det", "C_max", "version"}
    assert 0.0 <= res["hdrvdp2"]["P_det"] <= 1.0 and res["hdrvdp2"]["Q"] < 100.0
    assert res["hdrvdp2"]["Q"] == res["metrics"]["hdrvdp2"]
    assert res["protocol"]["name"] == "singlehdr" and res["protocol"]["version"] == "1" and res["ppd"] == 30.0
    assert res["metric_versions"]["pu21-psnr"] == "1" and res["metric_versions"]["hdrvdp2"] == "2.2.2"
    assert res["width"] == W and res["height"] == H
    # same numbers as the library on the same pixels (the .exr and the .pfm hold the same float32 values)
    expected = compute_hdr_metrics(
        _read_t(files["test_exr"]), _read_t(files["ref_hdr"]), protocol="singlehdr",
        metrics=["pu21-psnr", "pu21-ssim", "mu-psnr"],
    )
    for k, v in expected.items():
        assert abs(res["metrics"][k] - v.item()) < 1e-9, k


def test_identical_files_and_display_geometry(files, capsys):
    from hdrbench.metrics.hdrvdp2 import pix_per_deg

    rc, out, err = _run(
        capsys, "--test", files["ref_hdr"], "--reference", files["ref_hdr"], "--json", "--protocol", "display",
        "--display", "21,1", "--metrics", "hdrvdp2,pu21-psnr",
    )
    assert rc == 0, err
    res = json.loads(out)
    assert res["hdrvdp2"]["Q"] == pytest.approx(100.0, abs=1e-9)
    assert res["metrics"]["pu21-psnr"] == "inf"  # JSON has no infinity: written as a string
    assert res["ppd"] == pytest.approx(float(pix_per_deg(21.0, (W, H), 1.0)))
    assert res["protocol"]["parameters"]["peak_luminance"] == 4000.0


def test_pmap_png_has_expected_size(files, capsys, tmp_path):
    import matplotlib.pyplot as plt

    out_png = tmp_path / "maps" / "pmap.png"
    rc, out, err = _run(
        capsys, "--test", files["test_exr"], "--reference", files["ref_hdr"], "--metrics", "pu21-psnr",
        "--pmap", str(out_png), "--color-encoding", "luminance",
    )
    assert rc == 0, err
    assert out_png.is_file() and "probability-of-detection map" in out
    png = plt.imread(str(out_png))
    fw, fh = pmap_size(W, H)
    assert png.shape[:2] == (fh, fw) == (160, W + 100)
    # the map area is not blank: the noisy test is detectably different somewhere
    assert png[:H, :W, :3].std() > 0.01


def test_ldr_png_pair_uses_stack_metrics(files, capsys):
    import cv2

    from hdrbench.metrics.stack import psnr

    rc, out, err = _run(capsys, "--test", files["test_png"], "--reference", files["ref_png"], "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert set(res["metrics"]) == {"psnr", "ssim"} and "hdrvdp2" not in res and "protocol" not in res
    a = cv2.imread(files["test_png"])[:, :, ::-1] / 255.0
    b = cv2.imread(files["ref_png"])[:, :, ::-1] / 255.0
    to_t = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]  # noqa: E731
    # the reader returns code / 255 in float32 (the contract), this test divides in float64: 1e-5 dB covers it
    assert abs(res["metrics"]["psnr"] - psnr(to_t(a), to_t(b), data_range=1.0).item()) < 1e-5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--test", "{small_hdr}", "--reference", "{ref_hdr}"], "must be the same size"),
        (["--test", "{test_png}", "--reference", "{ref_hdr}"], "display (png) but --reference"),
        (["--test", "{test_exr}", "--reference", "{ref_hdr}", "--metrics", "pu21-psnrr"], "did you mean 'pu21-psnr'"),
        (["--test", "{test_exr}", "--reference", "{ref_hdr}", "--metrics", "psnr"], "not defined on"),
        (["--test", "{test_exr}", "--reference", "{ref_hdr}", "--protocol", "singelhdr"], "did you mean 'singlehdr'"),
        (["--test", "{test_exr}", "--reference", "{ref_hdr}", "--display", "21"], "DIAGONAL_IN,DISTANCE_M"),
        (["--test", "{test_exr}", "--reference", "{ref_hdr}", "--protocol", "absolute", "--metrics", "hdrvdp2"],
         "look like relative values"),
        (["--test", "{test_png}", "--reference", "{ref_png}", "--pmap", "x.png"], "--pmap needs linear HDR"),
        (["--test", "{missing}", "--reference", "{ref_hdr}"], "missing.hdr"),
    ],
)
def test_errors_are_reported_without_traceback(files, capsys, tmp_path, argv, message):
    paths = dict(files, missing=str(tmp_path / "missing.hdr"))
    rc, out, err = _run(capsys, *[a.format(**paths) for a in argv])
    assert rc == 2
    assert "hdrbench score: error:" in err and message in err


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda a: a.__setitem__((3, 4, 1), np.nan), "NaN or Inf"),
        (lambda a: a.__setitem__((0, 0, 0), np.inf), "NaN or Inf"),
        (lambda a: a.__setitem__((5, 6, 2), -0.5), "negative values"),
        (lambda a: a.__setitem__(Ellipsis, 0.0), "zero everywhere"),
    ],
)
@pytest.mark.parametrize("which", ["--test", "--reference"])
def test_bad_pixels_name_the_option_and_file(files, capsys, tmp_path, edit, message, which):
    a = _read_t(files["test_exr"])[0].permute(1, 2, 0).numpy().astype(np.float32).copy()
    edit(a)
    bad = tmp_path / "bad.pfm"
    _write_pfm(bad, a)
    pair = {"--test": files["test_exr"], "--reference": files["ref_hdr"], which: str(bad)}
    rc, out, err = _run(capsys, "--test", pair["--test"], "--reference", pair["--reference"])
    assert rc == 2
    assert f"{which} {bad}" in err and message in err, err


def test_truncated_file_is_an_error(files, capsys, tmp_path):
    bad = tmp_path / "truncated.exr"
    data = open(files["test_exr"], "rb").read()
    bad.write_bytes(data[: len(data) // 3])
    rc, out, err = _run(capsys, "--test", str(bad), "--reference", files["ref_hdr"])
    assert rc == 2 and "truncated.exr" in err


def test_ppd_and_display_are_exclusive(files, capsys):
    with pytest.raises(SystemExit) as exc:
        main(
            ["score", "--test", files["test_exr"], "--reference", files["ref_hdr"], "--ppd", "30", "--display", "21,1"]
        )
    assert exc.value.code == 2

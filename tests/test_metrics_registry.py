"""Metric cards, registry look-ups, the generated docs page and compute_hdr_metrics / compute_ldr_metrics.

Values from ``compute_hdr_metrics`` must equal the direct calls (protocol, then metric) exactly: the function
only routes inputs; the metrics themselves are checked against references in the other test files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError, UnknownNameError
from hdrbench.metrics import get_protocol, pu21
from hdrbench.metrics.registry import (
    INPUT_DOMAINS,
    MetricCard,
    compute_hdr_metrics,
    compute_ldr_metrics,
    get_metric,
    list_metrics,
    metrics_markdown,
)
from hdrbench.metrics.stack import log_psnr, mu_psnr, psnr, ssim

REQUIRED = {
    "psnr", "ssim", "ms-ssim", "hdrvdp2", "hdrvdp2-pdet", "pu21-psnr", "pu21-ssim", "pu21-msssim", "mu-psnr",
    "log-psnr",
}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def test_cards_are_complete():
    assert REQUIRED <= set(list_metrics())
    for name in list_metrics():
        c = get_metric(name)
        assert isinstance(c, MetricCard) and c.name == name
        assert c.input_domain in INPUT_DOMAINS and c.version and c.reference_implementation and c.description
        assert isinstance(c.higher_is_better, bool) and isinstance(c.differentiable, bool)
    assert get_metric("hdrvdp2-pdet").higher_is_better is False
    assert get_metric("pu21-psnr").input_domain == "absolute-cd/m2"
    assert set(list_metrics("ldr-display")) == {"psnr", "ssim", "ms-ssim"}
    with pytest.raises(ValueError):
        MetricCard("x", True, "linear", "1", "-", False, "-")


def test_unknown_metric_did_you_mean():
    with pytest.raises(UnknownNameError, match="did you mean 'pu21-psnr'"):
        get_metric("pu21-psnrr")
    with pytest.raises(UnknownNameError, match="unknown metric 'hdrvdp'"):
        compute_hdr_metrics(torch.ones(1, 3, 16, 16), torch.ones(1, 3, 16, 16), protocol="singlehdr", metrics="hdrvdp")


def test_docs_page_is_current():
    assert DOCS.read_text(encoding="utf-8") == metrics_markdown(), (
        "docs/metrics.md is out of date: run "
        "python -c 'from hdrbench.metrics.registry import write_metrics_docs; write_metrics_docs()'"
    )


def _hdr_pair(shared_data, h=48, w=64):
    import cv2

    img = cv2.imread(str(shared_data / "hdr" / "memorial.hdr"), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    ref = img[300:300 + h, 200:200 + w, ::-1].astype(np.float64)
    rng = np.random.default_rng(11)
    test = ref * np.exp(rng.normal(0.0, 0.15, ref.shape))
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]  # noqa: E731
    return to_t(test), to_t(ref)


@pytest.mark.data
def test_compute_hdr_metrics_routes_through_protocol(shared_data):
    t, r = _hdr_pair(shared_data)
    details: dict = {}
    names = ["pu21-psnr", "pu21-ssim", "mu-psnr", "log-psnr"]
    out = compute_hdr_metrics(t, r, protocol="singlehdr", metrics=",".join(names), details=details)
    assert list(out) == names and all(v.shape == (1,) and v.dtype == torch.float64 for v in out.values())
    ta, ra = get_protocol("singlehdr").apply(t, r)
    assert out["pu21-psnr"].item() == pu21.pu21_psnr(ta, ra).item()
    assert out["pu21-ssim"].item() == pu21.pu21_ssim(ta, ra).item()
    # the relative-domain metrics see the raw inputs, with the parameters stated on their cards
    assert out["mu-psnr"].item() == mu_psnr(t, r, mu=5000.0, normalization="reference-max").item()
    assert out["log-psnr"].item() == log_psnr(t, r, eps=1e-5, normalization="reference-max").item()
    assert details["protocol"] == "singlehdr" and details["protocol_version"] == "1"
    assert details["windows"] == {"pu21-ssim": 11}
    # a different protocol gives different absolute values, so a different PU-PSNR
    other = compute_hdr_metrics(t, r, protocol=get_protocol("display"), metrics=["pu21-psnr"])
    assert other["pu21-psnr"].item() != out["pu21-psnr"].item()


@pytest.mark.data
def test_compute_hdr_metrics_hdrvdp2_on_tiny_images(shared_data):
    t, r = _hdr_pair(shared_data, 32, 40)
    details: dict = {}
    same = compute_hdr_metrics(r, r, protocol="singlehdr", metrics=["hdrvdp2", "hdrvdp2-pdet"], details=details)
    assert same["hdrvdp2"].item() == pytest.approx(100.0, abs=1e-9)
    assert details["ppd"] == 30.0 and details["hdrvdp2"].P_map.shape == (1, 32, 40)
    worse = compute_hdr_metrics(t, r, protocol="singlehdr", metrics=["hdrvdp2"], ppd=20.0)
    assert worse["hdrvdp2"].item() < 100.0
    lum = compute_hdr_metrics(
        pu21.rgb_to_luminance(t), pu21.rgb_to_luminance(r), protocol="singlehdr", metrics=["hdrvdp2"],
        color_encoding="luminance",
    )
    assert lum["hdrvdp2"].item() < 100.0


def test_compute_hdr_metrics_refuses_stack_metrics_and_bad_settings():
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64) + 0.1
    with pytest.raises(InputError, match="stack metrics .* not defined on\\s+linear HDR"):
        compute_hdr_metrics(x, x, protocol="singlehdr", metrics=["psnr", "pu21-psnr"])
    with pytest.raises(InputError, match="expects 1 channel"):
        compute_hdr_metrics(x, x, protocol="singlehdr", metrics=["pu21-psnr"], color_encoding="luminance")
    with pytest.raises(InputError, match="color_encoding"):
        compute_hdr_metrics(x, x, protocol="singlehdr", metrics=["pu21-psnr"], color_encoding="srgb")
    with pytest.raises(UnknownNameError, match="did you mean 'display'"):
        compute_hdr_metrics(x, x, protocol="dispaly", metrics=["pu21-psnr"])
    with pytest.raises(InputError, match="differ in shape"):
        compute_hdr_metrics(x, x[..., :8], protocol="singlehdr", metrics=["pu21-psnr"])
    with pytest.raises(InputError, match="no metric names"):
        compute_hdr_metrics(x, x, protocol="singlehdr", metrics="")
    with pytest.raises(InputError, match="too small for SSIM"):
        compute_hdr_metrics(x[..., :8, :8], x[..., :8, :8], protocol="singlehdr", metrics=["pu21-ssim"])
    d: dict = {}
    compute_hdr_metrics(
        x[..., :8, :8], x[..., :8, :8], protocol="singlehdr", metrics=["pu21-ssim"], allow_small_window=True, details=d
    )
    assert d["windows"] == {"pu21-ssim": 7}
    with pytest.raises(InputError, match="ppd"):
        compute_hdr_metrics(x, x, protocol="singlehdr", metrics=["pu21-psnr"], ppd=-1)


@pytest.mark.data
def test_compute_ldr_metrics_on_memorial_pngs(shared_data):
    import cv2

    root = shared_data / "stacks" / "memorial"
    a = cv2.imread(str(root / "memorial07.png"))[200:264, 150:230, ::-1] / 255.0
    b = cv2.imread(str(root / "memorial08.png"))[200:264, 150:230, ::-1] / 255.0
    t = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1)))[None]
    r = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
    out = compute_ldr_metrics(t, r, metrics="psnr,ssim")
    assert out["psnr"].item() == psnr(t, r, data_range=1.0).item()
    assert out["ssim"].item() == ssim(t, r, data_range=1.0).item()
    with pytest.raises(InputError, match="need linear HDR"):
        compute_ldr_metrics(t, r, metrics=["pu21-psnr"])
    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        compute_ldr_metrics(t * 255, r, metrics=["psnr"])

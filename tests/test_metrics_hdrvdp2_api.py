"""Behaviour of ``hdrvdp2``: identities, monotonicity on a real image, batching, dtypes, devices, errors, gradients.

| check                               | tolerance      | why                                                     |
|-------------------------------------|----------------|---------------------------------------------------------|
| identical images                    | Q == 100 exact | every band term is ln(0 + eps) - ln(eps) = 0 exactly    |
| batch of N vs one at a time         | 1e-9 abs on Q  | same arithmetic, batched FFT/conv may round differently |
| float32 vs float64 (random pair)    | 0.02 abs on Q  | single precision through exponents p ~ 3.5              |
| CUDA vs CPU (float64)               | 1e-6 abs on Q  | different FFT/conv libraries                            |
| analytic vs finite-difference grad  | 1e-4 rel       | central differences, step 1e-4 relative, float64        |
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError, UnknownNameError
from hdrbench.metrics.hdrvdp2 import HDRVDP2Result, hdrvdp2


def _pair(h=48, w=64, n=1, dtype=torch.float64, seed=0, noise=0.05):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(n, 3, h, w, generator=g, dtype=dtype) ** 2 * 500 + 0.5
    test = (ref * (1 + noise * torch.randn(n, 3, h, w, generator=g, dtype=dtype))).clamp_min(0)
    return test, ref


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("encoding,channels", [("rgb-bt.709", 3), ("luminance", 1)])
def test_identical_images_give_exactly_100(dtype, encoding, channels):
    _, ref = _pair(dtype=dtype, n=2)
    ref = ref[:, :channels]
    res = hdrvdp2(ref.clone(), ref, color_encoding=encoding, ppd=30)
    assert isinstance(res, HDRVDP2Result)
    assert res.Q.tolist() == [100.0, 100.0]
    assert res.P_det.tolist() == [0.0, 0.0]
    assert res.P_map.shape == res.C_map.shape == (2, 48, 64)
    assert float(res.P_map.abs().max()) == 0.0


def _real_crop(shared_data, size=96):
    import cv2
    path = shared_data / "hdr" / "memorial.hdr"
    bgr = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    rgb = bgr[..., ::-1].astype(np.float64)
    h0, w0 = rgb.shape[0] // 3, rgb.shape[1] // 3
    crop = rgb[h0 : h0 + size, w0 : w0 + size]
    y = crop @ np.array([0.2126, 0.7152, 0.0722])
    # Relative radiance -> cd/m^2: the crop's median luminance at 100 cd/m^2 (a bright indoor scene).
    crop = crop * (100.0 / np.median(y))
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None]


@pytest.mark.data
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_q_falls_monotonically_with_noise_on_a_real_image(shared_data, dtype):
    ref = _real_crop(shared_data).to(dtype)
    g = torch.Generator().manual_seed(1)
    pattern = torch.randn(ref.shape, generator=g, dtype=torch.float64).to(dtype)  # one pattern, growing amplitude
    amps = [0.0, 0.003, 0.01, 0.03, 0.1, 0.3]
    tests = torch.cat([(ref * (1 + a * pattern)).clamp_min(0) for a in amps])
    res = hdrvdp2(tests, ref.expand_as(tests), color_encoding="rgb-bt.709", ppd=30)
    q = res.Q.tolist()
    assert q[0] == 100.0
    assert all(a > b for a, b in zip(q, q[1:])), q
    assert q[-1] < 90.0  # 30 % noise is clearly visible
    p = res.P_det.tolist()
    assert all(a <= b + 1e-12 for a, b in zip(p, p[1:])), p


def test_batch_equals_one_at_a_time():
    test, ref = _pair(n=3, seed=4)
    batch = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=25)
    for i in range(3):
        single = hdrvdp2(test[i : i + 1], ref[i : i + 1], color_encoding="rgb-bt.709", ppd=25)
        assert float(single.Q[0]) == pytest.approx(float(batch.Q[i]), abs=1e-9)
        torch.testing.assert_close(single.P_map[0], batch.P_map[i], rtol=0, atol=1e-9)


def test_float32_close_to_float64_and_dtypes_kept():
    test, ref = _pair(seed=2)
    r64 = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
    r32 = hdrvdp2(test.float(), ref.float(), color_encoding="rgb-bt.709", ppd=30)
    assert r32.P_map.dtype == torch.float32 and r64.P_map.dtype == torch.float64
    assert r32.Q.dtype == r64.Q.dtype == torch.float64  # scores are accumulated and returned in float64
    assert abs(float(r32.Q[0]) - float(r64.Q[0])) < 0.02
    assert 0 < float(r64.Q[0]) < 100


def test_metric_is_asymmetric_test_comes_first():
    test, ref = _pair(seed=3, noise=0.3)
    ref[..., :8, :] = 0.0  # zero reference pixels: the difference mask divides by the reference
    q_tr = float(hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30).Q[0])
    q_rt = float(hdrvdp2(ref, test, color_encoding="rgb-bt.709", ppd=30).Q[0])
    assert q_tr != pytest.approx(q_rt, abs=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_matches_cpu():
    test, ref = _pair(n=2, seed=5)
    cpu = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
    gpu = hdrvdp2(test.cuda(), ref.cuda(), color_encoding="rgb-bt.709", ppd=30)
    assert gpu.P_map.device.type == "cuda"
    torch.testing.assert_close(gpu.Q.cpu(), cpu.Q, rtol=0, atol=1e-6)


@pytest.mark.grad
def test_gradient_flows_and_matches_finite_differences():
    test, ref = _pair(h=32, w=32, seed=6, noise=0.1)
    test.requires_grad_(True)
    q = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30).Q.sum()
    (grad,) = torch.autograd.grad(q, test)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) > 0
    g = torch.Generator().manual_seed(9)
    direction = torch.randn(test.shape, generator=g, dtype=torch.float64) * ref * 1e-4
    with torch.no_grad():
        qp = float(hdrvdp2(test + direction, ref, color_encoding="rgb-bt.709", ppd=30).Q[0])
        qm = float(hdrvdp2(test - direction, ref, color_encoding="rgb-bt.709", ppd=30).Q[0])
    fd = (qp - qm) / 2
    an = float((grad * direction).sum())
    assert an == pytest.approx(fd, rel=1e-4)


@pytest.mark.grad
def test_gradient_after_a_call_in_inference_mode():
    # The metric caches size-dependent tables (resize blocks, MTF, CSF, LUTs). A first call under
    # torch.inference_mode (as `score` and the benchmarks make) must not leave inference tensors in those
    # caches, or a later differentiable call of the same size fails in autograd.
    test, ref = _pair(h=40, w=36, seed=11, noise=0.1)
    with torch.inference_mode():
        hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
    test = test.clone().requires_grad_(True)
    q = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30).Q.sum()
    (grad,) = torch.autograd.grad(q, test)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) > 0


# -------------------------------------------------------------------------------------- bad input


def _call(test, ref, **kw):
    kw.setdefault("color_encoding", "rgb-bt.709")
    kw.setdefault("ppd", 30)
    return hdrvdp2(test, ref, **kw)


def test_errors_name_the_input():
    test, ref = _pair()
    bad = test.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match=r"hdrvdp2: test: contains NaN or Inf values \(1 values"):
        _call(bad, ref)
    bad = ref.clone()
    bad[0, 1, 2, 3] = float("inf")
    with pytest.raises(InputError, match=r"hdrvdp2: reference: contains NaN or Inf values \(1 values"):
        _call(test, bad)
    with pytest.raises(InputError, match=r"hdrvdp2: test: negative values"):
        _call(test - 1000, ref)
    with pytest.raises(InputError, match=r"hdrvdp2: reference: image index \[0\] is zero everywhere"):
        _call(test, torch.zeros_like(ref))
    with pytest.raises(InputError, match=r"test and reference differ in shape"):
        _call(test[..., :40], ref)
    with pytest.raises(InputError, match=r"reference has 1 channels but color_encoding 'rgb-bt.709' needs 3"):
        _call(test, ref[:, :1])
    with pytest.raises(InputError, match=r"test has 3 channels but color_encoding 'luminance' needs 1"):
        _call(test, ref, color_encoding="luminance")
    with pytest.raises(InputError, match=r"hdrvdp2: test: expected shape \(N, C, H, W\)"):
        _call(test[0], ref[0])
    with pytest.raises(InputError, match=r"at least 15x15"):
        _call(test[..., :12, :12], ref[..., :12, :12])
    with pytest.raises(InputError, match=r"ppd"):
        _call(test, ref, ppd=0)
    with pytest.raises(InputError, match=r"torch.Tensor"):
        _call(test.numpy(), ref)
    with pytest.raises(InputError, match=r"floating-point"):
        _call(test.long(), ref.long())


def test_unknown_color_encoding_suggests_close_names():
    test, ref = _pair()
    with pytest.raises(InputError, match=r"unknown color_encoding 'rgb-bt709'; did you mean 'rgb-bt.709'") as exc:
        _call(test, ref, color_encoding="rgb-bt709")
    assert isinstance(exc.value, UnknownNameError)


def test_relative_values_warn():
    test, ref = _pair()
    with pytest.warns(UserWarning, match="absolute luminance"):
        _call(test / 1000, ref / 1000)


def test_benchmark_smoke(tmp_path):
    import argparse

    from hdrbench.bench import hdrvdp2 as bench

    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    args = p.parse_args(["--sizes", "64x48", "--repeat", "1", "--warmup", "0", "--out", str(tmp_path / "b.csv")])
    assert bench.main(args) == 0
    text = (tmp_path / "b.csv").read_text()
    assert "speedup_vs_reference" in text and "64x48" in text

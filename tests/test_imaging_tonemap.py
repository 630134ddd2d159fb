"""Tone mapping: OpenCV's Reinhard reproduced on real HDR photographs; Reinhard 2002 against its closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError
from hdrbench.imaging.io import read_image
from hdrbench.imaging.tonemap import reinhard02, reinhard_opencv, to_uint8

# float32 on both sides through log / pow / two normalisations: measured worst case 7.7e-7 over the 29
# photographs; 5e-6 leaves room for other BLAS/SIMD paths while still catching any formula change (>= 1e-3).
OPENCV_ATOL = 5e-6


def _real_images(shared_data):
    import cv2
    files = sorted((shared_data / "hdr").glob("*.hdr"))
    assert len(files) == 29
    for f in files:
        d = read_image(f).data
        # Quarter size keeps the test fast; INTER_AREA keeps the dynamic range.
        yield f.name, np.ascontiguousarray(cv2.resize(d, (d.shape[1] // 4, d.shape[0] // 4), interpolation=cv2.INTER_AREA))


def _compare_with_opencv(name, img, params):
    import cv2

    # A fresh tonemapper per image: OpenCV's process() rewrites its own intensity member (see reinhard_opencv).
    ref = cv2.createTonemapReinhard(*params).process(img)
    out = reinhard_opencv(torch.from_numpy(img).permute(2, 0, 1), *params).permute(1, 2, 0).numpy()
    nan = np.isnan(ref)
    # OpenCV returns NaN only where a channel sits at the image minimum (0 after its normalisation): a
    # rounding-negative value raised to 1/gamma, or 0/0 with per-pixel colour adaptation. Ours is 0 there.
    at_min = (img - img.min()) <= 1e-6 * (img.max() - img.min())
    assert not (nan & ~at_min).any(), name
    assert (out[nan] <= 1e-6).all(), name
    err = np.abs(out[~nan] - ref[~nan]).max()
    assert err <= OPENCV_ATOL, f"{name} {params}: max |ours - OpenCV| = {err:.3g}"
    return err


@pytest.mark.data
def test_reinhard_opencv_matches_opencv_on_real_photographs(shared_data):
    worst = 0.0
    for i, (name, img) in enumerate(_real_images(shared_data)):
        worst = max(worst, _compare_with_opencv(name, img, (1.5, 0.0, 0.0, 0.0)))  # the official code's setting
        if i % 4 == 0:  # the adaptation branches, on a subset
            worst = max(worst, _compare_with_opencv(name, img, (2.2, 1.0, 0.5, 0.3)))
            # light_adapt < 1: at light_adapt = 1 OpenCV's output hinges on the rounding error of the darkest
            # pixel (see reinhard_opencv's docstring), which no re-implementation can reproduce.
            worst = max(worst, _compare_with_opencv(name, img, (1.0, -2.0, 0.9, 1.0)))
    assert worst > 0  # the comparison ran on real, non-trivial data


def test_reinhard_opencv_batch_scale_and_range():
    g = torch.Generator().manual_seed(0)
    hdr = torch.exp(torch.randn(3, 3, 12, 10, generator=g) * 2)
    out = reinhard_opencv(hdr)
    assert out.shape == hdr.shape and out.min() >= 0 and out.max() <= 1
    for i in range(3):  # statistics are per image
        torch.testing.assert_close(out[i], reinhard_opencv(hdr[i]), rtol=0, atol=1e-6)
    # The first min/max normalisation removes any global scale of a zero-minimum image.
    hdr[:, :, 0, 0] = 0
    torch.testing.assert_close(reinhard_opencv(hdr * 37.0), reinhard_opencv(hdr), rtol=0, atol=1e-5)


def test_reinhard02_closed_form_values():
    # Two luminance levels 1 and 4 (grey pixels), half the image each: log-average 2, so with key 0.18
    # L_m = 0.09 and 0.36, and L_d = L_m / (1 + L_m).
    hdr = torch.ones(1, 3, 4, 4, dtype=torch.float64)
    hdr[..., 2:, :] = 4.0
    out = reinhard02(hdr, eps=0.0 + 1e-300)
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), 0.09 / 1.09, rtol=1e-12)
    np.testing.assert_allclose(out[0, :, 3, 3].numpy(), 0.36 / 1.36, rtol=1e-12)
    # Eq. 4 with L_white = 0.36: the brighter level maps exactly to white, the darker one per the formula.
    outw = reinhard02(hdr, white=0.36, eps=1e-300)
    np.testing.assert_allclose(outw[0, :, 3, 3].numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(outw[0, :, 0, 0].numpy(), 0.09 * (1 + 0.09 / 0.36 ** 2) / 1.09, rtol=1e-12)
    # A uniform image lands on key / (1 + key) whatever its level (default eps = 1e-6 shifts it by < 1e-6).
    np.testing.assert_allclose(reinhard02(torch.full((3, 2, 2), 5.0)).numpy(), 0.18 / 1.18, atol=1e-6)


def test_reinhard02_keeps_colour_ratios_and_is_scale_invariant():
    g = torch.Generator().manual_seed(1)
    hdr = torch.exp(torch.randn(2, 3, 8, 9, generator=g, dtype=torch.float64))
    out = reinhard02(hdr)
    assert out.min() >= 0 and out.max() <= 1
    ratio_in = hdr / hdr.sum(dim=1, keepdim=True)
    ratio_out = out / out.sum(dim=1, keepdim=True)
    unclipped = (out < 1).all(dim=1, keepdim=True).expand_as(out)
    torch.testing.assert_close(ratio_out[unclipped], ratio_in[unclipped], rtol=1e-10, atol=0)
    torch.testing.assert_close(reinhard02(hdr * 1000.0, eps=1e-300), reinhard02(hdr, eps=1e-300), rtol=1e-10, atol=1e-12)
    # Monotone in luminance: brighter grey in, brighter grey out.
    ramp = torch.linspace(0.01, 100, 50, dtype=torch.float64).reshape(1, 1, 1, 50).expand(1, 3, 1, 50)
    assert (reinhard02(ramp)[0, 0, 0].diff() > 0).all()


@pytest.mark.grad
def test_tone_mappers_are_differentiable():
    g = torch.Generator().manual_seed(2)
    hdr = (torch.rand(1, 3, 3, 4, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: reinhard02(x, white=4.0), (hdr,), eps=1e-7, atol=1e-6)
    out = reinhard_opencv(hdr)
    out.sum().backward()
    assert torch.isfinite(hdr.grad).all()


def test_to_uint8():
    t = torch.tensor([0.0, 0.5, 1.0, 1.2, -0.1, 1 / 255 * 0.49]).reshape(1, 3, 1, 2)
    u = to_uint8(t)
    assert u.dtype == np.uint8 and u.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(u[0, 0, :, :].T.ravel(), [0, 128, 255, 255, 0, 0])
    np.testing.assert_array_equal(to_uint8(np.full((2, 2, 3), 0.2)), np.full((2, 2, 3), 51))
    with pytest.raises(InputError, match="NaN"):
        to_uint8(np.full((2, 2, 3), np.nan))
    with pytest.raises(InputError, match="tensor"):
        to_uint8(torch.zeros(2, 2, 3))


@pytest.mark.parametrize("fn", [reinhard02, reinhard_opencv])
def test_bad_input(fn):
    with pytest.raises(InputError, match="NaN"):
        fn(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(InputError, match="shape"):
        fn(torch.ones(4, 2, 2))
    with pytest.raises(InputError, match="torch.Tensor"):
        fn(np.ones((3, 2, 2)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tonemap_cuda_matches_cpu():
    hdr = torch.exp(torch.randn(2, 3, 16, 16))
    for fn in (reinhard02, reinhard_opencv):
        torch.testing.assert_close(fn(hdr.cuda()).cpu(), fn(hdr), rtol=0, atol=1e-5)

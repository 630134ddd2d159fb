"""Tests of the training losses (hdrbench.losses).

References: plain numpy re-implementations written from the definitions (histogram, CoBi, mu-law),
scikit-image's Canny on OpenCV's grey conversions (the official code's pipeline), and
torch.autograd.gradcheck in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError
from hdrbench.imaging.edges import canny_edges
from hdrbench.losses import (
    CoBiLoss,
    contextual_bilateral_loss,
    edge_l1_loss,
    extract_histogram,
    histogram_loss,
    l1_loss,
    mu_law,
    mu_law_l1_loss,
    rgb_patches,
)
from hdrbench.losses import cobi as cobi_mod
from hdrbench.losses.vgg import VGG19_LAYERS, VGG19Features, vgg19_features


# ---------------------------------------------------------------------------------------------------------
# L1 and mu-law
# ---------------------------------------------------------------------------------------------------------
def test_l1_matches_numpy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 4, 5, generator=g), torch.rand(2, 3, 4, 5, generator=g)
    assert float(l1_loss(a, b)) == pytest.approx(float(np.abs(a.numpy() - b.numpy()).mean()), rel=1e-6)
    with pytest.raises(InputError, match="differ in shape"):
        l1_loss(a, b[:, :2])


def test_mu_law_against_formula():
    x = torch.tensor([0.0, 0.01, 0.5, 1.0, 4.0], dtype=torch.float64)
    ref = np.log1p(100 * x.numpy()) / np.log(101)
    np.testing.assert_allclose(mu_law(x, 100).numpy(), ref, rtol=1e-14)
    assert float(mu_law(torch.tensor(1.0), 100)) == pytest.approx(1.0, abs=1e-7)
    assert float(mu_law(torch.tensor(-1.0), 100)) == 0.0  # negatives clamp to 0
    with pytest.raises(InputError, match="mu"):
        mu_law(x, 0)


def test_mu_law_l1_loss_values_normalisation_and_gradient():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64) * 3
    gt = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64) * 3
    ref = np.abs(np.log1p(100 * pred.numpy()) - np.log1p(100 * gt.numpy())).mean() / np.log(101)
    assert float(mu_law_l1_loss(pred, gt, mu=100)) == pytest.approx(ref, rel=1e-12)
    # "mean" normalisation makes the loss invariant to a per-image scale of the prediction.
    scaled = pred * torch.tensor([7.0, 0.2], dtype=torch.float64).view(2, 1, 1, 1)
    assert float(mu_law_l1_loss(scaled, gt, normalize="mean")) == pytest.approx(
        float(mu_law_l1_loss(pred, gt, normalize="mean")), rel=1e-12)
    assert float(mu_law_l1_loss(scaled, gt)) != pytest.approx(float(mu_law_l1_loss(pred, gt)), rel=1e-3)
    with pytest.raises(InputError, match="normalisation"):
        mu_law_l1_loss(pred, gt, normalize="median")
    p = pred.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: mu_law_l1_loss(t, gt, normalize="mean"), (p,))


# ---------------------------------------------------------------------------------------------------------
# Histogram loss (official extract_hist semantics)
# ---------------------------------------------------------------------------------------------------------
def _numpy_hist(x: np.ndarray) -> np.ndarray:
    """Reference written from the description: 8-bit value v, bin floor(v), add v, divide by max(b, 1) and 255."""
    b, c = x.shape[:2]
    out = np.zeros((b, c, 256))
    v = np.clip(255 * (x + 1) / 2, 0, 255)
    for i in range(b):
        for j in range(c):
            for val in v[i, j].ravel():
                out[i, j, min(int(val), 255)] += val
    return out / np.maximum(np.arange(256), 1) / 255


def test_histogram_matches_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 6, 7, generator=g, dtype=torch.float64) * 2.2 - 1.1  # some values clipped
    np.testing.assert_allclose(extract_histogram(x).numpy(), _numpy_hist(x.numpy()), rtol=1e-12, atol=1e-15)


def test_histogram_approximates_counts():
    # Every pixel at 8-bit value 100.5: bin 100 holds n * 100.5 / 100 / 255, i.e. about the pixel count / 255.
    x = torch.full((1, 1, 4, 5), 100.5 / 255 * 2 - 1, dtype=torch.float64)
    h = extract_histogram(x)
    assert float(h[0, 0, 100]) == pytest.approx(20 * 100.5 / 100 / 255, rel=1e-10)
    assert float(h.sum()) == pytest.approx(float(h[0, 0, 100]), rel=1e-12)
    # Edge cases: the range ends. 255 exactly goes to the last bin; values below -1 clip into bin 0 at 0.
    ends = torch.tensor([[[[1.0, -1.0, -3.0, 2.0]]]], dtype=torch.float64)
    h = extract_histogram(ends)
    assert float(h[0, 0, 255]) == pytest.approx(2 * 255 / 255 / 255)
    assert float(h[0, 0, 0]) == 0.0


def test_histogram_gradcheck_away_from_bin_edges():
    # Pixels at bin centres (k + 0.5 in 8-bit units): finite differences of 1e-6 never cross a bin edge.
    g = torch.Generator().manual_seed(3)
    codes = torch.randint(0, 255, (1, 2, 3, 4), generator=g).double() + 0.5
    x = (codes / 255 * 2 - 1).requires_grad_(True)
    target = torch.rand(1, 2, 3, 4, generator=g, dtype=torch.float64) * 2 - 1
    assert torch.autograd.gradcheck(lambda t: extract_histogram(t).sum(dim=(0, 1)), (x,), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda t: histogram_loss(t, target), (x,), eps=1e-6, atol=1e-8)
    # The analytic gradient of a bin entry w.r.t. its pixel: (255 / 2) / (255 * max(b, 1)).
    extract_histogram(x).sum().backward()
    bins = codes.floor()  # float64 bin indices
    np.testing.assert_allclose(x.grad.numpy(), (0.5 / bins.clamp_min(1)).numpy(), rtol=1e-12)


def test_histogram_no_gradient_where_clipped_and_errors():
    x = torch.tensor([[[[-1.5, 1.5, 0.0]]]], dtype=torch.float64, requires_grad=True)
    extract_histogram(x).sum().backward()
    assert x.grad[0, 0, 0, 0] == 0 and x.grad[0, 0, 0, 1] == 0 and x.grad[0, 0, 0, 2] > 0
    assert float(histogram_loss(x.detach(), x.detach())) == 0.0
    with pytest.raises(InputError, match="differ"):
        histogram_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(InputError, match=r"\(B, C, H, W\)"):
        extract_histogram(torch.zeros(3, 4, 4))


def test_histogram_half_precision_does_not_overflow():
    x = torch.ones(1, 1, 64, 64)  # 4096 pixels of value 255: a bin sum of 1e6, far beyond float16
    assert torch.isfinite(extract_histogram(x.half())).all()
    torch.testing.assert_close(extract_histogram(x.half()), extract_histogram(x), rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------------------------------------
# Canny targets and the edge loss
# ---------------------------------------------------------------------------------------------------------
def _test_image() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    img = 0.4 + 0.05 * torch.rand(1, 3, 40, 48, generator=g)
    img[:, :, 10:30, 12:36] = torch.tensor([0.9, 0.5, 0.1]).view(1, 3, 1, 1)  # orange block
    img[:, 2, 5:15, 5:20] = 0.95  # a blue-only patch: its edge strength depends on the luma weights
    return img


def test_canny_matches_skimage_on_opencv_grey():
    import cv2
    from skimage.feature import canny

    img = _test_image()
    rgb = img[0].permute(1, 2, 0).numpy().astype(np.float32)
    ref = canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), sigma=2)
    ref_quirk = canny(cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY), sigma=2)  # the official call on an RGB array
    ours = canny_edges(img)[0, 0].numpy().astype(bool)
    ours_quirk = canny_edges(img, channel_order_quirk=True)[0, 0].numpy().astype(bool)
    # Grey conversions agree to float32 rounding; allow a handful of pixels where a gradient sits exactly at a
    # hysteresis threshold (none observed).
    assert (ours != ref).sum() <= 3
    assert (ours_quirk != ref_quirk).sum() <= 3
    assert (ours != ours_quirk).sum() > 10  # the quirk changes the targets on this image
    assert ours[10, 12:36].any() and ours[29, 12:36].any()  # the block's horizontal borders are found
    assert not ours[20, 20:28].any()  # and its flat interior is not


def test_canny_output_contract_and_errors():
    img = _test_image().repeat(2, 1, 1, 1).double()
    e = canny_edges(img)
    assert e.shape == (2, 1, 40, 48) and e.dtype == torch.float64
    assert set(torch.unique(e).tolist()) <= {0.0, 1.0}
    bad = img.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(InputError, match="NaN or Inf"):
        canny_edges(bad)
    with pytest.raises(InputError, match=r"\(N, 3, H, W\)"):
        canny_edges(img[:, :1])


def test_edge_l1_loss():
    pred = torch.full((1, 1, 2, 2), 0.25)
    target = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    assert float(edge_l1_loss(pred, target)) == pytest.approx((0.25 + 0.75 + 0.75 + 0.25) / 4)
    with pytest.raises(InputError, match="differ in shape"):
        edge_l1_loss(pred, target[..., :1])


# ---------------------------------------------------------------------------------------------------------
# CoBi
# ---------------------------------------------------------------------------------------------------------
def _numpy_cobi(x: np.ndarray, y: np.ndarray, h: float, w_sp: float) -> float:
    """Loop reference written from the CoBi definition (module docstring of hdrbench.losses.cobi)."""
    n, c, hh, ww = x.shape
    p = hh * ww
    mu = y.mean(axis=(0, 2, 3))
    coords = [(r / (hh + 1), q / (ww + 1)) for r in range(hh) for q in range(ww)]
    losses = []
    for b in range(n):
        xv = x[b].reshape(c, p).T - mu
        yv = y[b].reshape(c, p).T - mu
        xv = xv / np.maximum(np.linalg.norm(xv, axis=1, keepdims=True), 1e-12)
        yv = yv / np.maximum(np.linalg.norm(yv, axis=1, keepdims=True), 1e-12)
        d = np.array([[1 - xv[i] @ yv[j] for j in range(p)] for i in range(p)])
        ds = np.array([[(coords[i][0] - coords[j][0]) ** 2 + (coords[i][1] - coords[j][1]) ** 2 for j in range(p)]
                       for i in range(p)])

        def cx(dist):
            rel = dist / (dist.min(axis=1, keepdims=True) + 1e-5)
            w = np.exp((1 - rel) / h)
            return w / w.sum(axis=1, keepdims=True)

        comb = (1 - w_sp) * cx(d) + w_sp * cx(ds)
        losses.append(-math.log(comb.max(axis=1).mean() + 1e-5))
    return float(np.mean(losses))


@pytest.mark.parametrize("h, w_sp", [(0.5, 0.1), (0.5, 0.5), (1.0, 0.0)])
def test_cobi_matches_loop_reference(h, w_sp):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 4, 3, 2, generator=g, dtype=torch.float64)
    y = torch.rand(2, 4, 3, 2, generator=g, dtype=torch.float64)
    ours = float(contextual_bilateral_loss(x, y, band_width=h, weight_sp=w_sp))
    assert ours == pytest.approx(_numpy_cobi(x.numpy(), y.numpy(), h, w_sp), rel=1e-10)


def test_cobi_identical_inputs_give_the_minimum():
    g = torch.Generator().manual_seed(1)
    y = torch.rand(1, 8, 5, 5, generator=g, dtype=torch.float64)
    floor = -math.log(1 + 1e-5)  # the bound: every affinity row's max is at most 1
    same = float(contextual_bilateral_loss(y, y))
    # Self-matches are exact (distance 0 -> relative distance 0), other affinities vanish (exp(-1e5)).
    assert same == pytest.approx(floor, abs=1e-9)
    for k in range(5):
        x = torch.rand(1, 8, 5, 5, generator=g, dtype=torch.float64)
        assert float(contextual_bilateral_loss(x, y)) > same + 0.1
    # A spatial permutation of the features costs more than nothing only through the spatial term.
    shifted = torch.roll(y, 1, dims=3)
    assert float(contextual_bilateral_loss(shifted, y, weight_sp=0.0)) == pytest.approx(floor, abs=1e-9)
    assert float(contextual_bilateral_loss(shifted, y, weight_sp=0.1)) > same + 1e-3


def test_cobi_gradient_and_errors():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 3, 3, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: contextual_bilateral_loss(t, y), (x,))
    with pytest.raises(InputError, match="one shape"):
        contextual_bilateral_loss(x, y[:, :2])
    with pytest.raises(InputError, match="band_width"):
        contextual_bilateral_loss(x, y, band_width=0)


def test_cobi_parameters_default_and_official_swap():
    assert (CoBiLoss("rgb-patch").band_width, CoBiLoss("rgb-patch").weight_sp) == (0.5, 0.1)
    swapped = CoBiLoss("rgb-patch", official_swap=True)
    assert (swapped.band_width, swapped.weight_sp) == (0.5, 0.5)
    assert cobi_mod.UPSTREAM_PARAMS == (0.5, 0.1) and cobi_mod.OFFICIAL_SWAP_PARAMS == (0.5, 0.5)


def test_rgb_patches_layout_and_downsampling():
    img = torch.arange(2 * 3 * 6 * 6, dtype=torch.float64).reshape(2, 3, 6, 6)
    p = rgb_patches(img, patch_size=3, grid=8)
    assert p.shape == (2, 27, 6, 6)
    # Channel layout of unfold: (channel, dy, dx); the centre tap of each channel is the pixel itself.
    centre = p.reshape(2, 3, 3, 3, 6, 6)[:, :, 1, 1]
    torch.testing.assert_close(centre, img)
    # Replicated border: the top-left tap at (0, 0) is the pixel itself.
    torch.testing.assert_close(p.reshape(2, 3, 3, 3, 6, 6)[:, :, 0, 0, 0, 0], img[:, :, 0, 0])
    small = rgb_patches(torch.rand(1, 3, 64, 100), patch_size=5, grid=32)
    assert small.shape == (1, 75, 16, 25)  # factor ceil(100 / 32) = 4: 64 x 100 -> 16 x 25


def test_cobi_loss_module_rgb_variant(monkeypatch):
    monkeypatch.delenv("HDRBENCH_VGG19_WEIGHTS", raising=False)
    loss = CoBiLoss()
    assert loss.variant == "rgb-patch"
    g = torch.Generator().manual_seed(3)
    y = torch.rand(2, 3, 32, 32, generator=g)
    x = torch.rand(2, 3, 32, 32, generator=g, requires_grad=True)
    same = float(loss(y, y))
    val = loss(x, y)
    assert same == pytest.approx(-math.log(1 + 1e-5), abs=1e-6) and float(val.detach()) > same
    val.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(InputError, match="features"):
        CoBiLoss("lpips")


def _random_vgg_file(tmp_path, prefix="features."):
    torch.manual_seed(0)
    feats = vgg19_features(VGG19_LAYERS["relu4_4"])
    state = {f"{prefix}{k}": v for k, v in feats.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full-model file has more keys; they are ignored
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    return path, feats


def test_vgg19_layers_follow_torchvision_indices():
    feats = vgg19_features(VGG19_LAYERS["relu4_4"])
    assert len(feats) == 27
    assert isinstance(feats[17], torch.nn.ReLU) and isinstance(feats[16], torch.nn.Conv2d)
    assert feats[16].out_channels == 256 and feats[25].out_channels == 512
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in feats) == 3


def test_vgg_variant_with_a_weights_file(tmp_path, monkeypatch):
    path, feats = _random_vgg_file(tmp_path)
    vgg = VGG19Features(path)
    x = torch.rand(1, 3, 32, 32)
    out = vgg(x)
    assert out["relu3_4"].shape == (1, 256, 8, 8) and out["relu4_4"].shape == (1, 512, 4, 4)
    # The loaded weights are the file's: compare with running the saved Sequential on normalised input.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(out["relu4_4"], feats((x - mean) / std), rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in vgg.parameters())
    monkeypatch.setenv("HDRBENCH_VGG19_WEIGHTS", str(path))
    loss = CoBiLoss()
    assert loss.variant == "vgg19"
    y = torch.rand(1, 3, 32, 32)
    assert float(loss(y, y)) == pytest.approx(-2 * math.log(1 + 1e-5), abs=1e-5)  # two layers, each at its floor
    assert float(loss(x, y)) > float(loss(y, y))


def test_vgg_weights_errors(tmp_path, monkeypatch):
    missing = tmp_path / "nope.pth"
    with pytest.raises(InputError, match="nope.pth"):
        CoBiLoss(vgg_weights=missing)
    monkeypatch.setenv("HDRBENCH_VGG19_WEIGHTS", str(missing))
    with pytest.raises(InputError, match="HDRBENCH_VGG19_WEIGHTS"):
        CoBiLoss()
    monkeypatch.delenv("HDRBENCH_VGG19_WEIGHTS")
    with pytest.raises(InputError, match="needs a VGG19 weights file"):
        CoBiLoss("vgg19")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pth"):
        CoBiLoss(vgg_weights=junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(InputError, match="torchvision vgg19"):
        CoBiLoss(vgg_weights=wrong)

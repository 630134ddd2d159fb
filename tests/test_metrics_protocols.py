"""Scaling protocols: the maths against numpy on known arrays, the registry, and every bad-input path.

Tolerances: order statistics are exact (they are elements of the input); mapped values 1e-9 relative (float64
arithmetic of the same formula); alignment recovers a known scale to 1e-12 relative (a ratio of exact multiples);
PQ against the ST 2084 values quoted to 4 decimals: 5e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError, UnknownNameError
from hdrbench.metrics.protocols import (
    CRFCorrectedProtocol,
    DisplayProtocol,
    SingleHDRProtocol,
    crf_correct,
    get_protocol,
    list_protocols,
    pq_decode,
    pq_encode,
)


def test_registry_names_versions_and_did_you_mean():
    assert {"singlehdr", "display", "absolute", "hanji2022"} <= set(list_protocols())
    for name in list_protocols():
        p = get_protocol(name)
        assert p.name == name and p.version and p.description
        assert p.parameters()["name"] == name
    with pytest.raises(UnknownNameError, match="did you mean 'singlehdr'"):
        get_protocol("singelhdr")
    with pytest.raises(InputError, match="unknown parameter"):
        get_protocol("display", peak=1000)
    p = get_protocol("display", peak_luminance=1000.0)
    assert p.name == "display[peak_luminance=1000.0]" and p.peak_luminance == 1000.0
    assert get_protocol("display", peak_luminance=4000.0).name == "display"  # default value: plain name
    c = get_protocol("singlehdr", crf_correction=True)
    assert c.name == "singlehdr+hanji2022" and c.version == "1+1" and c.ppd == 30.0
    with pytest.raises(InputError, match="alignment"):
        get_protocol("display", alignment="mean")


def test_singlehdr_order_statistics_and_mapping_against_numpy():
    rng = np.random.default_rng(0)
    values = rng.permutation(10000).astype(np.float64).reshape(1, 1, 100, 100) * 0.01 + 50.0
    values[0, 0, 0, :3] = [500.0, 900.0, 1e4]  # bright outliers above the 99.9 % statistic
    values[0, 0, 1, :3] = [0.0, 1.0, 2.0]  # dark outliers far below the 0.1 % statistic: they map below 0
    x = torch.from_numpy(values)
    p = get_protocol("singlehdr")
    assert isinstance(p, SingleHDRProtocol) and p.ppd == 30.0 and p.ppd_for(640, 480) == 30.0

    flat = np.sort(values.ravel())
    k = 10  # floor(1e-3 * 10000)
    a_np, b_np = flat[k - 1], flat[-k]
    a, b = p.order_statistics(x)
    assert a.item() == a_np and b.item() == b_np
    # the order statistics sit within one sample of numpy's interpolated 0.1 / 99.9 percentiles
    lo, hi = np.percentile(values, [0.1, 99.9])
    assert flat[k - 2] <= lo <= flat[k] and flat[-k - 1] <= hi <= flat[-k + 1]

    expected = np.maximum((values - a_np) * 998.0 / (b_np - a_np + 1e-8) + 1.0, 0.0)
    t_abs, r_abs = p.apply(x * 3.0, x)  # each image on its own: a global factor does not matter
    np.testing.assert_allclose(r_abs.numpy(), expected, rtol=1e-9)
    np.testing.assert_allclose(t_abs.numpy(), expected, rtol=1e-6)
    assert r_abs.min().item() == 0.0  # values far below a are set to 0, not negative
    v = r_abs.flatten()
    assert abs(v[values.ravel() == a_np].item() - 1.0) < 1e-9 and abs(v[values.ravel() == b_np].item() - 999.0) < 1e-6


def test_singlehdr_statistics_span_all_channels_and_each_image():
    x = torch.rand(2, 3, 40, 30, dtype=torch.float64)
    x[1] *= 50
    a, b = get_protocol("singlehdr").order_statistics(x)
    for i in range(2):
        flat = np.sort(x[i].numpy().ravel())
        k = int(np.floor(1e-3 * flat.size))
        assert a[i].item() == flat[k - 1] and b[i].item() == flat[-k]


@pytest.mark.parametrize("alignment", ["median-ratio", "log-lsq"])
def test_display_alignment_recovers_known_scale(alignment):
    rng = np.random.default_rng(1)
    ref = torch.from_numpy(rng.lognormal(0, 1.5, (2, 3, 32, 48)))
    scale = torch.tensor([0.37, 12.5], dtype=torch.float64).view(2, 1, 1, 1)
    p = get_protocol("display", alignment=alignment)
    assert isinstance(p, DisplayProtocol)
    s = p.alignment_scale(ref * scale, ref)
    np.testing.assert_allclose(s.numpy(), 1.0 / scale.flatten().numpy(), rtol=1e-12)
    t_abs, r_abs = p.apply(ref * scale, ref)
    np.testing.assert_allclose(r_abs.flatten(1).amax(1).numpy(), [4000.0, 4000.0], rtol=1e-12)
    np.testing.assert_allclose(t_abs.numpy(), r_abs.numpy(), rtol=1e-10)
    np.testing.assert_allclose((r_abs / ref).numpy(), (4000.0 / ref.flatten(1).amax(1)).view(2, 1, 1, 1).expand_as(ref)
                               .numpy(), rtol=1e-12)


def test_display_median_alignment_is_robust_to_outliers_and_p999_anchor():
    rng = np.random.default_rng(2)
    ref = rng.lognormal(0, 1.0, (1, 1, 50, 50))
    test = ref * 0.5
    test[0, 0, :5, :5] *= 100.0  # 1 % of the pixels wildly off: the median ignores them
    p = get_protocol("display")
    s = p.alignment_scale(torch.from_numpy(test), torch.from_numpy(ref))
    assert abs(s.item() - 2.0) < 1e-12
    q = get_protocol("display", anchor="p99.9", alignment="none", peak_luminance=1000.0)
    _, r_abs = q.apply(torch.from_numpy(test), torch.from_numpy(ref))
    flat = np.sort(ref.ravel())
    anchor = flat[int(np.ceil(0.999 * flat.size)) - 1]
    np.testing.assert_allclose(r_abs.numpy(), ref * 1000.0 / anchor, rtol=1e-12)


def test_absolute_passes_through_and_checks_units():
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64) * 500
    p = get_protocol("absolute")
    t, r = p.apply(x * 0.5, x)
    assert torch.equal(t, x * 0.5) and torch.equal(r, x)
    assert p.apply(x.float(), x.float())[0].dtype == torch.float32
    with pytest.raises(InputError, match="look like relative values"):
        p.apply(x / 1000, x / 1000)
    with pytest.raises(InputError, match="no default viewing geometry"):
        p.ppd_for(64, 48)


def test_display_ppd_uses_hdrvdp_geometry():
    import hdrbench.metrics.hdrvdp2 as mod
    p = get_protocol("display")
    assert p.ppd_for(1024, 768) == pytest.approx(float(mod.pix_per_deg(21.0, (1024, 768), 1.0)))


def test_pq_against_st2084_values():
    lum = torch.tensor([0.0, 100.0, 1000.0, 10000.0], dtype=torch.float64)
    # Published PQ code values (normalised): 100 nits -> 0.5081, 1000 nits -> 0.7518, 10000 nits -> 1.
    np.testing.assert_allclose(pq_encode(lum)[1:].numpy(), [0.5081, 0.7518, 1.0], atol=5e-5)
    y = torch.from_numpy(np.geomspace(0.005, 10000, 200))
    np.testing.assert_allclose(pq_decode(pq_encode(y)).numpy(), y.numpy(), rtol=1e-9)


@pytest.mark.grad
def test_gradcheck_pq_encode_decode():
    # Inside (0, 10000] cd/m^2 and (0, 1) code values, away from the clamps, PQ is smooth in both directions.
    lum = torch.tensor([0.01, 1.0, 100.0, 1000.0, 9000.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(pq_encode, (lum,))
    code = pq_encode(lum.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(pq_decode, (code,))


def test_crf_correction_is_identity_on_identical_images():
    rng = np.random.default_rng(4)
    ref = torch.from_numpy(rng.lognormal(3.0, 1.5, (1, 3, 40, 40))).clamp(0.01, 5000)
    np.testing.assert_allclose(crf_correct(ref, ref).numpy(), ref.numpy(), rtol=1e-6)
    lum = ref[:, 1:2]
    np.testing.assert_allclose(crf_correct(lum, lum).numpy(), lum.numpy(), rtol=1e-6)


@pytest.mark.data
def test_crf_correction_undoes_a_tone_and_colour_change_on_a_real_image(shared_data):
    import cv2

    from hdrbench.metrics.pu21 import pu21_psnr

    img = cv2.imread(str(shared_data / "hdr" / "memorial.hdr"), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    ref = torch.from_numpy(img[200:296, 100:228, ::-1].transpose(2, 0, 1).astype(np.float64))[None] * 800.0
    # a tone change in the PQ domain plus a colour cast: a smooth map that a degree-3 fit can largely undo
    gains = torch.tensor([1.3, 1.0, 0.8], dtype=torch.float64).view(1, 3, 1, 1)
    distorted = pq_decode(pq_encode(ref * gains).pow(1.15))
    before = pu21_psnr(distorted, ref).item()
    after = pu21_psnr(crf_correct(distorted, ref), ref).item()
    assert after > before + 20.0, (before, after)  # measured: 18.3 dB -> 43.9 dB
    # luminance-only images take the one-channel path (PQ(Y) polynomial)
    lum = ref[:, 1:2]
    before = pu21_psnr(pq_decode(pq_encode(lum).pow(1.2)), lum).item()
    after = pu21_psnr(crf_correct(pq_decode(pq_encode(lum).pow(1.2)), lum), lum).item()
    assert after > before + 20.0, (before, after)


def test_hanji2022_protocol_normalises_medians():
    rng = np.random.default_rng(5)
    ref = torch.from_numpy(rng.lognormal(0, 1, (1, 3, 24, 24)))
    p = get_protocol("hanji2022")
    assert isinstance(p, CRFCorrectedProtocol)
    t_abs, r_abs = p.apply(ref * 7.0, ref)
    lum = (r_abs * torch.tensor([0.212656, 0.715158, 0.072186], dtype=torch.float64).view(1, 3, 1, 1)).sum(1)
    assert abs(lum.median().item() - 500.0) < 1e-6
    np.testing.assert_allclose(t_abs.numpy(), r_abs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["singlehdr", "display", "absolute", "hanji2022"])
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda x: (x, x[..., :-1]), "differ in shape"),
        (lambda x: (x.clone().index_fill_(3, torch.tensor([1]), float("nan")), x), "test: contains NaN or Inf"),
        (lambda x: (x, x.clone().index_fill_(3, torch.tensor([1]), float("inf"))), "reference: contains NaN or Inf"),
        (lambda x: (x - 3.0, x), "test: negative values"),
        (lambda x: (x, x * 0), "reference: image index \\[0\\] is zero everywhere"),
        (lambda x: (x * 0, x), "test: image index \\[0\\] is zero everywhere"),
        (lambda x: (x[:, :2], x[:, :2]), "channels"),
        (lambda x: (x.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1)), "channels-last"),
    ],
)
def test_bad_input(name, make, match):
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64) * 100 + 1
    t, r = make(x)
    with pytest.raises(InputError, match=match):
        get_protocol(name).apply(t, r)

"""Camera model: response curves against closed forms and the EMoR file, stack simulation, noise, quantisation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError, UnknownNameError
from hdrbench.imaging import camera
from hdrbench.imaging.camera import (
    SRGBCRF,
    EMoRCRF,
    GammaCRF,
    SCurveCRF,
    SensorNoise,
    TabulatedCRF,
    auto_exposure,
    ev_to_time,
    get_crf,
    quantize,
    random_crf,
    simulate_stack,
)

GRID = np.linspace(0.0, 1.0, 2001)


def _np_srgb(x):
    # IEC 61966-2-1 encoding, written out independently of the implementation.
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0), 1 / 2.4) - 0.055)


def _parse_emor(path):
    """Independent reader of the CAVE text format: returns {name: array}."""
    text = path.read_text()
    parts = re.split(r"^\s*([A-Za-z0-9()]+)\s*=\s*$", text, flags=re.M)
    return {parts[i]: np.array(parts[i + 1].split(), dtype=np.float64) for i in range(1, len(parts), 2)}


def _curves():
    return [GammaCRF(2.2), GammaCRF([1.8, 2.2, 2.6]), SRGBCRF(), SCurveCRF(2.2, 1.3), SCurveCRF([2.0, 2.4, 2.2], [0.8, 1.5, 1.2]),
            TabulatedCRF(np.linspace(0, 1, 33) ** 0.5)]


# ------------------------------------------------------------------------------------------------ closed forms
def test_ev_to_time():
    t = ev_to_time([-3, -1, 0, 1, 3])
    np.testing.assert_array_equal(t.numpy(), [0.125, 0.5, 1.0, 2.0, 8.0])  # powers of two are exact
    with pytest.raises(InputError):
        ev_to_time([0, float("nan")])


def test_srgb_matches_closed_form_and_known_values():
    f = SRGBCRF()
    got = f(torch.tensor(GRID)).numpy()
    # Same formula evaluated in numpy float64: agreement to rounding error.
    np.testing.assert_allclose(got, _np_srgb(GRID), rtol=0, atol=1e-12)
    # Published reference points of the sRGB curve: 18 % grey -> 0.46136 and linear 0.5 -> 0.73536 (5 digits).
    np.testing.assert_allclose(f(torch.tensor([0.18, 0.5], dtype=torch.float64)).numpy(), [0.461356, 0.735357],
                               atol=1e-6)
    # The inverse is the published decoding curve (threshold 0.04045).
    z = torch.tensor(GRID)
    inv = np.where(GRID <= 0.04045, GRID / 12.92, ((GRID + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(f.inverse(z).numpy(), inv, atol=1e-12)


def test_gamma_and_s_curve_closed_forms():
    x = torch.tensor(GRID)
    np.testing.assert_allclose(GammaCRF(2.2)(x).numpy(), GRID ** (1 / 2.2), atol=1e-12)
    u = GRID ** (1 / 2.0)
    ref = u ** 1.5 / (u ** 1.5 + (1 - u) ** 1.5)
    np.testing.assert_allclose(SCurveCRF(2.0, 1.5)(x).numpy(), ref, atol=1e-12)
    # contrast 1 reduces the S-curve to the plain gamma curve.
    np.testing.assert_allclose(SCurveCRF(2.2, 1.0)(x).numpy(), GRID ** (1 / 2.2), atol=1e-12)


@pytest.mark.parametrize("crf", _curves(), ids=repr)
def test_forward_inverse_consistency_and_monotonicity(crf):
    z = torch.linspace(0, 1, 4097, dtype=torch.float64).expand(crf.channels, -1).contiguous()
    # Round trips in float64 are exact up to rounding (1e-12); the S-curve's ratio loses a few more digits near 1.
    np.testing.assert_allclose(crf(crf.inverse(z)).numpy(), z.numpy(), atol=1e-9)
    np.testing.assert_allclose(crf.inverse(crf(z)).numpy(), z.numpy(), atol=1e-9)
    t = crf.table(1024)
    assert t.shape == (crf.channels, 1024)
    assert (t.diff(dim=1) > 0).all(), "response must be strictly increasing"
    np.testing.assert_allclose(t[:, 0].numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(t[:, -1].numpy(), 1.0, atol=1e-12)
    # float32 round trip: within float32 resolution amplified by the curve's slope (1e-4 is generous).
    z32 = z.float()
    assert (crf(crf.inverse(z32)) - z32).abs().max() < 1e-4


def test_per_channel_curves_act_per_channel():
    crf = GammaCRF([1.0, 2.0, 4.0])
    x = torch.full((2, 3, 4, 5), 0.25, dtype=torch.float64)
    y = crf(x)
    np.testing.assert_allclose(y[:, 0].numpy(), 0.25)
    np.testing.assert_allclose(y[:, 1].numpy(), 0.5)
    np.testing.assert_allclose(y[:, 2].numpy(), 0.25 ** 0.25)
    with pytest.raises(InputError, match="channel"):
        crf(torch.rand(2, 4, 4, 5))


@pytest.mark.grad
@pytest.mark.parametrize("crf", [GammaCRF([1.8, 2.2, 2.6]), SRGBCRF(), SCurveCRF(2.2, 1.3),
                                 TabulatedCRF(np.linspace(0, 1, 65) ** 0.45)], ids=repr)
def test_forward_is_differentiable(crf):
    # Points strictly inside (0, 1) and away from the tabulated curve's knots (k / 64), where the slope jumps.
    x = ((torch.arange(3 * 2 * 5, dtype=torch.float64).reshape(1, 3, 2, 5) + 0.37) / 31.0).requires_grad_()
    assert torch.autograd.gradcheck(crf, (x,), eps=1e-7, atol=1e-6)


def test_tabulated_matches_numpy_interp_and_validates():
    rng = np.random.default_rng(0)
    values = np.sort(rng.random(40))
    values = (values - values[0]) / (values[-1] - values[0])
    grid = np.concatenate([[0.0], np.sort(rng.random(38)), [1.0]])
    crf = TabulatedCRF(values, grid)
    q = rng.random(1000)
    np.testing.assert_allclose(crf(torch.tensor(q)).numpy(), np.interp(q, grid, values), atol=1e-12)
    np.testing.assert_allclose(crf.inverse(torch.tensor(q)).numpy(), np.interp(q, values, grid), atol=1e-12)
    with pytest.raises(InputError, match="non-decreasing"):
        TabulatedCRF([0.0, 0.6, 0.5, 1.0])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        TabulatedCRF([0.0, 0.5, 1.5])
    with pytest.raises(InputError, match="grid"):
        TabulatedCRF([0.0, 0.5, 1.0], [0.0, 0.7, 0.6])
    with pytest.raises(InputError, match="finite"):
        TabulatedCRF([0.0, float("nan"), 1.0])


def test_registry():
    assert isinstance(get_crf("srgb"), SRGBCRF)
    assert isinstance(get_crf("gamma", gamma=2.0), GammaCRF)
    assert isinstance(get_crf("s-curve", gamma=2.0, contrast=1.2), SCurveCRF)
    assert isinstance(get_crf("tabulated", values=[0.0, 0.4, 1.0]), TabulatedCRF)
    with pytest.raises(UnknownNameError, match="did you mean 'srgb'"):
        get_crf("srbg")
    with pytest.raises(InputError, match="gamma"):
        get_crf("gamma", gamma=-1.0)


# ------------------------------------------------------------------------------------------------ EMoR
@pytest.mark.data
def test_emor_curves_match_the_basis_file(shared_data):
    path = shared_data / "crf" / "emor.txt"
    ref = _parse_emor(path)
    grid, f0 = ref["E"], ref["f0"]
    h = np.stack([ref[f"h({k})"] for k in range(1, 26)])
    mean = EMoRCRF.from_file(path)
    # The mean curve passes through (0, 0) and (1, 1) and equals f0 at the file's own grid points.
    assert f0[0] == 0.0 and f0[-1] == 1.0
    np.testing.assert_allclose(mean(torch.tensor([0.0, 1.0], dtype=torch.float64)).numpy(), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(mean(torch.tensor(grid)).numpy(), f0, atol=1e-12)
    coeffs = [0.8, -0.9, 0.2]
    crf = EMoRCRF.from_file(path, coeffs)
    expected = f0 + np.asarray(coeffs) @ h[:3]
    np.testing.assert_allclose(crf(torch.tensor(grid)).numpy(), expected, atol=1e-12)
    # Between grid points: linear interpolation of the same table (numpy.interp as the reference).
    q = np.random.default_rng(1).random(500)
    np.testing.assert_allclose(crf(torch.tensor(q)).numpy(), np.interp(q, grid, expected), atol=1e-12)
    # Per-channel coefficients give per-channel curves.
    rgb = EMoRCRF.from_file(path, [[0.5], [0.0], [-0.5]])
    assert rgb.channels == 3 and rgb.table(256).shape == (3, 256)
    with pytest.raises(InputError, match="non-monotone"):
        EMoRCRF.from_file(path, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 40.0])


@pytest.mark.data
def test_inverse_emor_file(shared_data):
    ref = _parse_emor(shared_data / "crf" / "invemor.txt")
    crf = EMoRCRF.from_file(shared_data / "crf" / "invemor.txt", [0.3, -0.2])
    expected_inv = ref["g0"] + 0.3 * ref["hinv(1)"] - 0.2 * ref["hinv(2)"]
    q = np.linspace(0, 1, 301)
    np.testing.assert_allclose(crf.inverse(torch.tensor(q)).numpy(), np.interp(q, ref["B"], expected_inv), atol=1e-8)
    # Grid and mean inverse curve run from (0, 0) to (1, 1); the forward curve undoes the inverse one.
    assert ref["B"][0] == 0.0 and ref["B"][-1] == 1.0 and ref["g0"][0] == 0.0 and ref["g0"][-1] == 1.0
    np.testing.assert_allclose(crf(crf.inverse(torch.tensor(q))).numpy(), q, atol=1e-8)


@pytest.mark.data
def test_emor_file_errors(shared_data, tmp_path):
    with pytest.raises(InputError, match="not found.*nope.txt"):
        EMoRCRF.from_file(tmp_path / "nope.txt")
    lines = (shared_data / "crf" / "emor.txt").read_text().splitlines()
    short = tmp_path / "short.txt"
    short.write_text("\n".join(lines[:600]))
    with pytest.raises(InputError, match="short.txt is malformed"):
        EMoRCRF.from_file(short)
    junk = tmp_path / "junk.txt"
    junk.write_text("E = \n0.0 zero 1.0\n")
    with pytest.raises(InputError, match="junk.txt: line 2"):
        EMoRCRF.from_file(junk)
    with pytest.raises(InputError, match="coefficients"):
        EMoRCRF.from_file(shared_data / "crf" / "emor.txt", np.zeros(26))


@pytest.mark.data
def test_random_crf_is_realistic_monotone_and_reproducible(shared_data):
    path = shared_data / "crf" / "emor.txt"
    g = torch.Generator().manual_seed(123)
    curves = [random_crf(g, path) for _ in range(20)] + [random_crf(g) for _ in range(20)]
    for crf in curves:
        t = crf.table(1024)
        assert (t.diff(dim=1) > 0).all(), f"{crf!r} is not strictly increasing"
        assert 0.25 <= float(crf(torch.tensor([0.18], dtype=torch.float64))) <= 0.75 or isinstance(crf, SCurveCRF)
    assert any(isinstance(c, EMoRCRF) for c in curves) and any(isinstance(c, SCurveCRF) for c in curves)
    # Distinct draws, identical under the same seed.
    a = random_crf(torch.Generator().manual_seed(5), path).table(64)
    b = random_crf(torch.Generator().manual_seed(5), path).table(64)
    c = random_crf(torch.Generator().manual_seed(6), path).table(64)
    assert torch.equal(a, b) and not torch.equal(a, c)


# ------------------------------------------------------------------------------------------------ simulation
def _hdr(n=2, h=16, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.randn(n, 3, h, w, generator=g, dtype=torch.float64) * 2.0)


def test_simulate_stack_matches_the_pixel_formula():
    hdr = _hdr()
    evs = [-3, -2, -1, 0, 1, 2, 3]
    stack, exposure = simulate_stack(hdr, evs, "srgb", return_exposure=True)
    assert stack.shape == (2, 7, 3, 16, 20) and stack.dtype == hdr.dtype
    # Default exposure: the median Rec.709 luminance of each image lands on 0.18 of full scale.
    y = np.einsum("nchw,c->nhw", hdr.numpy(), [0.2126, 0.7152, 0.0722]).reshape(2, -1)
    np.testing.assert_allclose(exposure.numpy(), 0.18 / np.median(y, axis=1), rtol=1e-12)
    x = hdr.numpy()[:, None] * exposure.numpy()[:, None, None, None, None] * (2.0 ** np.array(evs))[None, :, None, None, None]
    expected = np.floor(_np_srgb(np.clip(x, 0, 1)) * 255 + 0.5) / 255  # halves round up
    # Both sides round the same float64 value, so the levels agree exactly.
    np.testing.assert_array_equal(stack.numpy(), expected)
    single = simulate_stack(hdr[0], evs, SRGBCRF())
    torch.testing.assert_close(single, stack[0], rtol=0, atol=0)


def test_clipping_and_quantisation_levels():
    hdr = torch.tensor([0.0, 1e-4, 0.5, 1.0, 2.0, 50.0], dtype=torch.float64).reshape(1, 1, 1, 6).expand(1, 3, 1, 6)
    stack = simulate_stack(hdr, [0.0, 1.0], GammaCRF(1.0), exposure=1.0)
    codes = stack.numpy() * 255
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-9)  # only the 256 levels k / 255 occur
    np.testing.assert_allclose(stack[0, 0, 0, 0].numpy(), [0, 0, 128 / 255, 1, 1, 1])  # saturation at 1
    np.testing.assert_allclose(stack[0, 1, 0, 0].numpy(), [0, 0, 1, 1, 1, 1])  # EV +1 doubles the irradiance
    ten = simulate_stack(hdr, [0.0], GammaCRF(1.0), exposure=1.0, quantize_bits=10)
    np.testing.assert_allclose(ten[0, 0, 0, 0, 2].item(), round(0.5 * 1023) / 1023)
    cont = simulate_stack(hdr, [-1.0], GammaCRF(1.0), exposure=1.0, quantize_bits=None)
    np.testing.assert_allclose(cont[0, 0, 0, 0].numpy(), [0, 5e-5, 0.25, 0.5, 1, 1])
    np.testing.assert_allclose(quantize(torch.tensor([0.0, 0.5, 1.0]), 1).numpy(), [0, 1, 1])


def test_noise_statistics_and_determinism():
    noise = SensorNoise(shot=4e-4, read=2e-3)
    hdr = torch.full((1, 3, 128, 128), 0.25, dtype=torch.float64)
    out = simulate_stack(hdr, [0.0], GammaCRF(1.0), exposure=1.0, noise=noise, quantize_bits=None,
                         generator=torch.Generator().manual_seed(0))
    # 49k samples: the sample std has a relative standard error of about 0.3 %; 2 % leaves room for no flake.
    std = float(out.std())
    assert abs(std / np.sqrt(4e-4 * 0.25 + 2e-3 ** 2) - 1) < 0.02
    assert abs(float(out.mean()) - 0.25) < 5 * std / np.sqrt(out.numel())
    a = simulate_stack(_hdr(), [-1, 0, 1], "srgb", noise=SensorNoise(), generator=torch.Generator().manual_seed(7))
    b = simulate_stack(_hdr(), [-1, 0, 1], "srgb", noise=SensorNoise(), generator=torch.Generator().manual_seed(7))
    c = simulate_stack(_hdr(), [-1, 0, 1], "srgb", noise=SensorNoise(), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_auto_exposure_fallback_and_errors():
    hdr = torch.zeros(1, 3, 4, 4)
    hdr[..., 0, 0] = 2.0  # median 0 -> mean luminance used
    np.testing.assert_allclose(float(auto_exposure(hdr)), 0.18 / (2.0 / 16), rtol=1e-6)
    with pytest.raises(InputError, match="black"):
        auto_exposure(torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hdr=torch.full((1, 3, 2, 2), float("nan"))), "NaN"),
        (dict(hdr=torch.ones(1, 4, 2, 2)), "shape"),
        (dict(hdr=np.ones((1, 3, 2, 2))), "torch.Tensor"),
        (dict(exposure=-1.0), "exposure"),
        (dict(exposure=[1.0, 2.0, 3.0]), "exposure"),
        (dict(evs=[]), "evs"),
        (dict(crf=42), "crf"),
        (dict(quantize_bits=0), "quantize_bits"),
    ],
)
def test_simulate_stack_rejects_bad_input(kwargs, match):
    args = dict(hdr=torch.ones(1, 3, 2, 2), evs=[0.0], crf="gamma")
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        simulate_stack(args.pop("hdr"), args.pop("evs"), args.pop("crf"), **args)


def test_simulate_stack_unknown_crf_name():
    with pytest.raises(UnknownNameError, match="s-curve"):
        simulate_stack(torch.ones(1, 3, 2, 2), [0.0], "scurve")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_simulate_stack_on_cuda_matches_cpu():
    hdr = _hdr().float()
    crf = SCurveCRF([2.0, 2.2, 2.4], 1.2)
    cpu = simulate_stack(hdr, [-2, 0, 2], crf)
    gpu = simulate_stack(hdr.cuda(), [-2, 0, 2], crf)
    assert gpu.device.type == "cuda"
    # Identical levels except where float32 pow differs by an ulp across a rounding boundary (one level).
    assert (gpu.cpu() - cpu).abs().max() <= 1 / 255 + 1e-6


def test_camera_reexports_the_crf_names():
    for name in ["GammaCRF", "SRGBCRF", "SCurveCRF", "TabulatedCRF", "EMoRCRF", "get_crf", "random_crf"]:
        assert hasattr(camera, name)

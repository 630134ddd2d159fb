"""Numerical building blocks of the HDR-VDP 2.2.2 port against independent references.

| check                                   | reference                         | tolerance   | why                                   |
|-----------------------------------------|-----------------------------------|-------------|---------------------------------------|
| pyramid bands, float64                  | pyrtools SteerablePyramidSpace    | 1e-12 abs   | unit-variance input; same arithmetic, |
|                                         | (reflect1, sp3; = buildSpyr)      |             | different summation order / FFT       |
| pyramid bands, float32                  | pyrtools (float64)                | 1e-5 rel    | single-precision accumulation         |
| reconstruction of arbitrary coefficients| pyrtools recon_pyr (= reconSpyr)  | 1e-12 abs   | as above (incl. the 17-sample quirk)  |
| small-size upConv emulation             | pyrtools upConv (C code)          | 1e-12 abs   | exact emulation, rounding only        |
| imresize interior                       | Pillow bicubic (a = -0.5, scaled  | 1e-5 abs    | Pillow works in float32; edges differ |
|                                         | support when shrinking)           |             | (Pillow truncates, MATLAB mirrors)    |
| transducer tables at 5 indices          | spec check values                 | 1e-12 rel   | same float64 numbers                  |
| pix_per_deg                             | spec examples                     | 1e-12 rel   | closed form                           |
| MTF / nCSF closed forms                 | formulas written out in numpy     | 1e-12 rel   | same float64 formula                  |
| packaged constants.json                 | regenerated from the spec numbers | identical   | a copy, no arithmetic                 |
"""

from __future__ import annotations

import numpy as np
import pyrtools as pt  # the test oracle for the steerable pyramid
import pytest
import torch

from hdrbench.metrics.hdrvdp2 import pix_per_deg
from hdrbench.metrics.hdrvdp2 import csf, optics, photoreceptors, pyramid
from hdrbench.metrics.hdrvdp2.constants import constants
from hdrbench.metrics.hdrvdp2.resize import imresize, resize_matrix_np

SIZES = [(64, 64), (199, 257), (17, 17), (34, 34), (37, 50), (16, 40), (33, 65), (51, 18), (15, 15), (15, 22), (96, 136)]


def _keys(height):
    return ["residual_highpass"] + [(lev, o) for lev in range(height) for o in range(4)] + ["residual_lowpass"]


def _ours_flat(p):
    out = [p.highpass[0, 0]]
    for lev in p.levels:
        out += [lev[0, o] for o in range(4)]
    return out + [p.lowpass[0, 0]]


@pytest.mark.parametrize("size", SIZES)
def test_build_equals_pyrtools(size):
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    x = rng.standard_normal(size)
    ref = pt.pyramids.SteerablePyramidSpace(x, height="auto", order=3, edge_type="reflect1")
    p = pyramid.build(torch.from_numpy(x)[None, None])
    assert p.height == ref.num_scales == pyramid.max_height(*size)
    keys = _keys(p.height)
    assert len(keys) == len(ref.pyr_coeffs)
    for k, band in zip(keys, _ours_flat(p)):
        assert band.shape == ref.pyr_coeffs[k].shape, k
        np.testing.assert_allclose(band.numpy(), ref.pyr_coeffs[k], rtol=0, atol=1e-12, err_msg=str(k))
    p32 = pyramid.build(torch.from_numpy(x).float()[None, None])
    for k, band in zip(keys, _ours_flat(p32)):
        scale = np.abs(ref.pyr_coeffs[k]).max()
        assert np.abs(band.double().numpy() - ref.pyr_coeffs[k]).max() <= 1e-5 * scale, k


@pytest.mark.parametrize("size", SIZES)
def test_reconstruction_equals_pyrtools(size):
    rng = np.random.default_rng(7 + size[0] + size[1])
    ref = pt.pyramids.SteerablePyramidSpace(rng.standard_normal(size), height="auto", order=3, edge_type="reflect1")
    # Arbitrary coefficients: HDR-VDP reconstructs masked differences, not a pyramid of an image.
    for k in ref.pyr_coeffs:
        ref.pyr_coeffs[k] = rng.standard_normal(ref.pyr_coeffs[k].shape)
    expected = ref.recon_pyr()
    keys = _keys(ref.num_scales)
    c = [torch.from_numpy(ref.pyr_coeffs[k]) for k in keys]
    levels = [torch.stack(c[1 + 4 * i : 5 + 4 * i])[None] for i in range(ref.num_scales)]
    ours = pyramid.reconstruct(pyramid.SteerablePyramid(c[0][None, None], levels, c[-1][None, None]))
    np.testing.assert_allclose(ours[0, 0].numpy(), expected, rtol=0, atol=1e-12)


def test_reconstruction_of_own_pyramid_and_batching():
    rng = np.random.default_rng(3)
    imgs = rng.standard_normal((3, 1, 40, 56))
    p = pyramid.build(torch.from_numpy(imgs))
    rec = pyramid.reconstruct(p).numpy()
    for i in range(3):
        ref = pt.pyramids.SteerablePyramidSpace(imgs[i, 0], height="auto", order=3, edge_type="reflect1")
        np.testing.assert_allclose(rec[i, 0], ref.recon_pyr(), rtol=0, atol=1e-12)
    # sp3 is not a tight frame: reconstruction is close to, but not equal to, the input.
    assert 0 < np.abs(rec - imgs).max() < 0.5 * np.abs(imgs).max()


@pytest.mark.parametrize("filt_name,step", [("lofilt", 2), ("hi0filt", 1), ("lo0filt", 1)])
def test_small_size_upconv_emulation(filt_name, step):
    from pyrtools.pyramids.c.wrapper import upConv

    filt = constants().lofilt if filt_name == "lofilt" else getattr(constants(), filt_name)
    rng = np.random.default_rng(11)
    sizes = [(17, 17), (17, 40), (33, 17), (18, 21)] if step == 2 else [(15, 15), (15, 40), (16, 17), (17, 17), (18, 21)]
    for h, w in sizes:
        n_in = ((h + 1) // 2, (w + 1) // 2) if step == 2 else (h, w)
        u = rng.standard_normal(n_in)
        expected = upConv(u, filt, "reflect1", step=(step, step), start=(0, 0), stop=(h, w))
        t = torch.from_numpy(filt)[None, None]
        ours = pyramid._up_conv_exact(torch.from_numpy(u)[None, None], t, (h, w), step)[0, 0].numpy()
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12, err_msg=f"{filt_name} {h}x{w}")


def test_build_rejects_tiny_images():
    with pytest.raises(ValueError, match="at least 15x15"):
        pyramid.build(torch.zeros(1, 1, 14, 40))


# ------------------------------------------------------------------------------------------ resize


@pytest.mark.parametrize("n_in,n_out", [(64, 16), (199, 100), (100, 199), (25, 50), (13, 25), (257, 129), (40, 40)])
def test_imresize_rows_and_identity(n_in, n_out):
    m = resize_matrix_np(n_in, n_out)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)  # MATLAB normalises each row of weights
    if n_in == n_out:
        np.testing.assert_array_equal(m, np.eye(n_in))


def test_imresize_interior_matches_pillow():
    import PIL.Image as pil
    rng = np.random.default_rng(5)
    x = rng.random((120, 160)).astype(np.float32)
    for out_hw in [(60, 80), (37, 53), (240, 320)]:
        ours = imresize(torch.from_numpy(x.astype(np.float64)), out_hw).numpy()
        ref = np.asarray(pil.fromarray(x, mode="F").resize(out_hw[::-1], pil.BICUBIC), dtype=np.float64)
        m = 6  # border rows/cols: Pillow drops taps outside the image, MATLAB mirrors them
        np.testing.assert_allclose(ours[m:-m, m:-m], ref[m:-m, m:-m], atol=1e-5)


# --------------------------------------------------------------------- closed forms and constants


def test_transducer_tables_match_spec_check_values():
    c = constants()
    idx = [0, 511, 1023, 1535, 2047]
    np.testing.assert_allclose(c.pn_cone[idx], [0, 1.027391834600022, 5.934805004077933, 134.48006070497954, 284.8994849235106], rtol=1e-12)
    np.testing.assert_allclose(c.pn_rod[idx], [0, 2.5130520250368757, 54.004985981637034, 98.39374138279675, 98.39374138280957], rtol=1e-12)


def test_point_op_is_linear_interpolation_in_log_luminance():
    c = constants()
    table = torch.from_numpy(c.pn_cone)
    grid = c.pn_first + c.pn_step * np.arange(2048)
    x = torch.tensor([grid[10], 0.5 * (grid[100] + grid[101]), -5.0, 4.9])
    y = photoreceptors.point_op(x, table, c.pn_first, c.pn_step).numpy()
    np.testing.assert_allclose(y[:3], [c.pn_cone[10], 0.5 * (c.pn_cone[100] + c.pn_cone[101]), 0.0], rtol=1e-12, atol=1e-15)
    assert y[3] == pytest.approx(np.interp(4.9, grid, c.pn_cone), rel=1e-12)


@pytest.mark.parametrize("args,expected", [((24, (512, 256), 0.5), 8.39373276219962), ((24, (320, 160), 0.5), 5.246082976374763),
                                           ((21, (512, 384), 1.0), 21.118872985636923)])
def test_pix_per_deg_examples(args, expected):
    assert pix_per_deg(*args) == pytest.approx(expected, rel=1e-12)


def test_mtf_and_ncsf_closed_forms():
    c = constants()
    rho = np.array([0.0, 0.5, 3.0, 15.0, 30.0])
    expected = sum(a * np.exp(-b * rho) for a, b in zip([0.426 * 0.99727370023777070, 0.574 * 0.99727370023777070,
                                                         (1 - 0.99727370023777070) * 0.061466549455263,
                                                         (1 - 0.99727370023777070) * (1 - 0.061466549455263)],
                                                        [0.028, 0.37, 37, 360]))
    np.testing.assert_allclose(optics.mtf(rho), expected, rtol=1e-12)
    # nCSF at a calibration luminance uses that row's parameters unchanged (no interpolation).
    for row, lum in enumerate(c.csf_lums):
        p1, p2, p3, p4 = c.csf_params[row, 1:]
        r = np.array([0.5, 2.0, 8.0])
        want = p4 / np.sqrt((1 + (p1 * r) ** p2) / (1 - np.exp(-((r / 7) ** 2))) ** p3)
        got = csf.ncsf(torch.from_numpy(r), torch.tensor(float(lum), dtype=torch.float64)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert float(csf.ncsf(torch.tensor(0.0, dtype=torch.float64), torch.tensor(10.0, dtype=torch.float64))) == 0.0


def test_cycdeg_axis_matches_fft_frequencies():
    for n in (8, 64, 398):
        ppd = 30.0
        np.testing.assert_allclose(optics.cycdeg_axis(n, ppd), np.fft.fftfreq(n) * ppd, atol=1e-12)


@pytest.mark.data
def test_packaged_constants_regenerate_from_the_specification(shared_data, tmp_path):
    # The package's constants.json must be exactly what the generator makes from the specification's numbers
    # and pyrtools' sp3 taps: a hand edit of either side fails here.
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = root / "scripts" / "make_hdrvdp2_constants.py"
    spec = importlib.util.spec_from_file_location("make_hdrvdp2_constants", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "constants.json"
    assert mod.main([str(shared_data / "hdrvdp2" / "constants.json"), "--out", str(out)]) == 0
    packaged = root / "hdrbench" / "metrics" / "hdrvdp2" / "constants.json"
    assert out.read_bytes() == packaged.read_bytes()

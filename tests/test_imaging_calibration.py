"""Radiometric calibration: Debevec-Malik and Mitsunaga-Nayar recovery of known curves, OpenCV agreement, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hdrbench.errors import InputError
from hdrbench.imaging.calibration import debevec_inverse_crf, gsolve, mitsunaga_nayar_inverse_crf
from hdrbench.imaging.calibration.common import deb97_table, grossberg_samples, to_levels
from hdrbench.imaging.camera import EMoRCRF, GammaCRF, SRGBCRF, simulate_stack

EVS = [-3, -2, -1, 0, 1, 2, 3]
TIMES = torch.tensor([2.0**e for e in EVS], dtype=torch.float64)
Z = np.linspace(0.0, 1.0, 256)
# Five EMoR curves: the mean curve and four mixtures of the first basis curves (all monotone).
EMOR_COEFFS = ([0.0], [1.0, 0.5], [-1.0, 0.3], [0.5, -1.0, 0.2], [-0.5, 0.8, -0.2])


def _emor_inverse(path, coeffs) -> np.ndarray:
    """Inverse of an EMoR forward curve, parsed and inverted with numpy (independent of hdrbench)."""
    blocks, cur = [], None
    for line in path.read_text().splitlines():
        line = line.strip()
        if "=" in line:
            cur = []
            blocks.append(cur)
        elif line:
            cur.extend(float(v) for v in line.split())
    grid, f0, basis = np.array(blocks[0]), np.array(blocks[1]), np.array(blocks[2:])
    f = f0 + np.asarray(coeffs) @ basis[: len(coeffs)]
    return np.interp(Z, f, grid)


@pytest.fixture(scope="module")
def hdr_image(shared_data):
    """A real HDR photograph (ScanLines_Desk, 874x644) box-downsampled 4x: (1, 3, 218, 161) float64."""
    from hdrbench.imaging.io import read_image

    img = torch.from_numpy(read_image(shared_data / "hdr" / "ScanLines_Desk.hdr").data).permute(2, 0, 1)[None]
    return F.avg_pool2d(img.double(), 4)


def _curves(shared_data):
    out = [("gamma-2.2", GammaCRF(2.2), Z**2.2),
           ("srgb", SRGBCRF(), np.where(Z <= 0.04045, Z / 12.92, ((Z + 0.055) / 1.055) ** 2.4))]
    for i, c in enumerate(EMOR_COEFFS):
        emor = shared_data / "crf" / "emor.txt"
        out.append((f"emor-{i}", EMoRCRF.from_file(emor, c), _emor_inverse(emor, c)))
    return out


def _rmse_top_normalised(table: torch.Tensor, truth: np.ndarray) -> np.ndarray:
    """Per-channel RMSE over the 256 codes after dividing each curve by its value at Z = 1."""
    t = table.numpy()
    t = t / t[:, -1:]
    return np.sqrt(((t - truth / truth[-1]) ** 2).mean(-1))


@pytest.mark.slow
def test_debevec_and_polynomial_recover_known_curves_from_simulated_stacks(shared_data, hdr_image):
    # 7 exposures, 1 stop apart, 8-bit, noise-free, rendered from a real HDR image with a known curve.
    # Debevec: RMSE <= 0.02 of the top-normalised inverse CRF (the bound; measured <= 0.011).
    # Polynomial: reported the same way; bounds are the measured worst cases rounded up (K = 3: 0.050,
    # K = 5: 0.023), because a degree-3/5 polynomial cannot follow the EMoR toe exactly.
    report = {}
    for name, crf, truth in _curves(shared_data):
        stack = simulate_stack(hdr_image, EVS, crf)
        deb = debevec_inverse_crf(stack, TIMES, balance=False, normalize="none")[0]
        report[name] = {"debevec": _rmse_top_normalised(deb, truth).max()}
        for k in (3, 5):
            poly = mitsunaga_nayar_inverse_crf(stack, TIMES, order=k, balance=False)
            report[name][f"poly-{k}"] = _rmse_top_normalised(poly.table[0], truth).max()
    print("\nRMSE of the top-normalised inverse CRF (max over channels):")
    for name, r in report.items():
        print(f"  {name:10s} " + "  ".join(f"{k} {v:.4f}" for k, v in r.items()))
    assert max(r["debevec"] for r in report.values()) <= 0.02
    assert max(r["poly-5"] for r in report.values()) <= 0.03
    assert max(r["poly-3"] for r in report.values()) <= 0.06
    # K = 5 is at least as good as K = 3 on every curve (nested models, same data), up to solver noise.
    assert all(r["poly-5"] <= r["poly-3"] + 2e-3 for r in report.values())


def test_toolbox_nearest_quantile_bends_the_top_of_the_curve_on_saturated_stacks(hdr_image):
    # Why the default quantile rule differs from the HDR Toolbox's: with clipped exposures the nearest-CDF
    # rule pairs code 254 with many radiances and g(1) shoots up (measured RMSE ~0.25 vs 0.001).
    stack = simulate_stack(hdr_image, EVS, GammaCRF(2.2))
    truth = Z**2.2
    near = debevec_inverse_crf(stack, TIMES, balance=False, normalize="none", quantile="nearest")[0]
    inv = debevec_inverse_crf(stack, TIMES, balance=False, normalize="none")[0]
    assert _rmse_top_normalised(near, truth).max() > 0.1
    assert _rmse_top_normalised(inv, truth).max() < 0.01
    # Below the clipped top both rules agree to within 10 % (codes 20..200, relative to code 128): they pick
    # codes up to one apart for the same quantile, which moves the dark end of the curve by ~5 % (measured).
    n, i = near.numpy(), inv.numpy()
    np.testing.assert_allclose(n[:, 20:200] / n[:, 128:129], i[:, 20:200] / i[:, 128:129], rtol=0.1)


def test_grossberg_samples_are_histogram_quantiles():
    # One plane with codes 10 (25 %), 100 (50 %), 200 (25 %): quantile u maps to the first code with CDF >= u.
    plane = torch.tensor([10] * 25 + [100] * 50 + [200] * 25).reshape(1, 1, 1, 10, 10)
    s = grossberg_samples(plane, 5)[0, 0, :, 0].tolist()  # u = 0, .25, .5, .75, 1
    assert s == [10, 10, 100, 100, 200]
    # The toolbox's nearest rule: CDF = 0 below 10 (u = 0 -> code 0, absent from the image), .25 at 10,
    # .75 at 100, 1 at 200; u = .5 is a tie between 10 and 100 (first index: 10).
    assert grossberg_samples(plane, 5, "nearest")[0, 0, :, 0].tolist() == [0, 10, 10, 100, 200]


def test_gsolve_fixes_g128_and_normal_equations_match_lstsq():
    g = torch.Generator().manual_seed(0)
    radiance = torch.rand(60, generator=g, dtype=torch.float64) * 0.4 + 0.01
    t = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    codes = torch.round(255 * (radiance[:, None] * t).clamp(0, 1) ** (1 / 2.2)).long()[None]  # (1, 60, 4)
    log_t = torch.log(t)[None]
    a = gsolve(codes, log_t, 20.0, deb97_table(), method="normal")
    b = gsolve(codes, log_t, 20.0, deb97_table(), method="lstsq")
    assert abs(float(a[0, 128])) < 1e-9 and abs(float(b[0, 128])) < 1e-9
    # Observed codes are determined identically by both solvers (float64 round-off of a ~1e4-conditioned system).
    seen = torch.unique(codes)
    torch.testing.assert_close(a[0, seen], b[0, seen], atol=1e-8, rtol=0)


def test_debevec_normalisations_and_chromaticity_balance(hdr_image):
    stack = simulate_stack(hdr_image, EVS, GammaCRF(2.2))
    none = debevec_inverse_crf(stack, TIMES, balance=False, normalize="none")[0]
    torch.testing.assert_close(none[:, 128], torch.ones(3, dtype=none.dtype), atol=1e-9, rtol=0)  # exp(g(128)) = 1
    bal = debevec_inverse_crf(stack, TIMES, normalize="max")[0]
    assert abs(float(bal.max()) - 1.0) < 1e-12
    mid = bal[:, 127]
    assert float((mid.max() - mid.min()) / mid.mean()) < 1e-4  # the mid code is grey after balancing
    tool = debevec_inverse_crf(stack, TIMES)[0]  # toolbox: balanced / max of the last unbalanced channel
    unbal = debevec_inverse_crf(stack, TIMES, balance=False, normalize="none")[0]
    ratio = (tool * unbal[-1].max() / unbal)[:, 100]
    torch.testing.assert_close(ratio / ratio.mean(), (bal / unbal)[:, 100] / (bal / unbal)[:, 100].mean())


def test_calibration_is_batched_over_scenes(hdr_image):
    a = simulate_stack(hdr_image, EVS, GammaCRF(2.2))
    b = simulate_stack(hdr_image.flip(-1) * 0.5, EVS, SRGBCRF())
    both = debevec_inverse_crf(torch.cat([a, b]), TIMES)
    torch.testing.assert_close(both[0], debevec_inverse_crf(a, TIMES)[0])
    torch.testing.assert_close(both[1], debevec_inverse_crf(b, TIMES)[0])
    p = mitsunaga_nayar_inverse_crf(torch.cat([a, b]), TIMES, order=3)
    torch.testing.assert_close(p.table[1], mitsunaga_nayar_inverse_crf(b, TIMES, order=3).table[0])


def test_mitsunaga_nayar_refines_wrong_initial_ratios(hdr_image):
    # True times 2^EV; the interior initial times are off by up to 30 %. The refinement keeps the total span
    # (first and last time) and must move every ratio towards the truth: measured error after refinement
    # below 3 % (from up to 30 %), and the curve within 0.02 RMSE.
    stack = simulate_stack(hdr_image, EVS, GammaCRF(2.2))
    wrong = TIMES.clone()
    wrong[1:-1] *= torch.tensor([1.3, 0.8, 1.2, 0.75, 1.25], dtype=torch.float64)
    fit = mitsunaga_nayar_inverse_crf(stack, wrong, order=5, balance=False)
    true_r = 0.5
    start = (wrong[:-1] / wrong[1:] - true_r).abs().max() / true_r
    end = (fit.ratios[0] - true_r).abs().max() / true_r
    print(f"\nratio error: initial {float(start):.3f}, refined {float(end):.4f}, "
          f"iterations {fit.iterations[0].tolist()}")
    assert float(end) < 0.03 < float(start)
    assert _rmse_top_normalised(fit.table[0], Z**2.2).max() < 0.02
    single = mitsunaga_nayar_inverse_crf(stack, wrong, order=5, balance=False, max_iterations=0)
    assert int(single.iterations.max()) == 0 and float(single.error.mean()) > float(fit.error.mean())


def test_polynomial_coefficients_sum_to_one_before_balance(hdr_image):
    stack = simulate_stack(hdr_image, EVS, SRGBCRF())
    fit = mitsunaga_nayar_inverse_crf(stack, TIMES, order=4, balance=False)
    torch.testing.assert_close(fit.coefficients.sum(-1), torch.ones(1, 3, dtype=torch.float64))
    assert fit.order == 4 and fit.table.shape == (1, 3, 256) and fit.ratios.shape == (1, 3, 6)


def test_debevec_agrees_with_opencv_on_memorial(shared_data):
    import cv2
    from hdrbench.commands.merge import resolve_stack
    from hdrbench.imaging.io import read_stack

    files, seconds = resolve_stack([str(shared_data / "stacks" / "memorial")], None, None)
    data = read_stack(files)[:, ::4, ::4]  # 1/4 size by striding (keeps true 8-bit codes)
    u8 = [np.ascontiguousarray(np.round(d * 255).astype(np.uint8)[:, :, ::-1]) for d in data]
    cv = cv2.createCalibrateDebevec().process(u8, np.array(seconds, dtype=np.float32))[:, 0, ::-1].T  # (3, 256) RGB
    stack = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2)[None].double()
    ours = debevec_inverse_crf(stack, seconds, sampling="spatial", balance=False, normalize="none")[0].numpy()
    # Compare log curves up to a per-channel offset over codes 16..240 (the stack's black level is about code
    # 13). Both are estimates from a real, noisy stack with different samples (OpenCV: a 70-point grid and
    # lambda 10; ours: a 256-point grid and lambda 20), so they agree to about 10 % in the curve, not to
    # round-off: measured RMS 0.113 in ln (max 0.48, at the ends). Bound 0.15: a wrong solve (e.g. swapped
    # times or a missing log) is off by more than 1.
    lo, hi = 16, 241
    d = np.log(ours[:, lo:hi]) - np.log(cv[:, lo:hi])
    d -= d.mean(-1, keepdims=True)
    print(f"\nmemorial: max |ln ours - ln OpenCV| over codes {lo}..{hi - 1}: {np.abs(d).max():.3f}, "
          f"RMS {np.sqrt((d ** 2).mean()):.3f}")
    assert np.sqrt((d**2).mean()) < 0.15


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: torch.rand(2, 3, 8, 8), "shape"),
        (lambda: torch.rand(1, 1, 3, 8, 8), "at least 2 exposures"),
        (lambda: (torch.rand(1, 3, 3, 8, 8) * 255).to(torch.uint8), "floating point"),
        (lambda: torch.rand(1, 3, 3, 8, 8) * 2, r"\[0, 1\]"),
        (lambda: torch.rand(1, 3, 3, 8, 8).index_put_((torch.tensor([0]),) * 5, torch.tensor(float("nan"))), "NaN"),
        (lambda: [[0.5]], "torch.Tensor"),
    ],
)
@pytest.mark.parametrize("method", [debevec_inverse_crf, mitsunaga_nayar_inverse_crf])
def test_calibration_rejects_bad_stacks(method, make, match):
    with pytest.raises(InputError, match=match):
        method(make(), [1.0, 2.0, 4.0])


@pytest.mark.parametrize(
    "times, match",
    [
        ([1.0, 2.0], "2 values but the stack has 3"),
        ([1.0, -2.0, 4.0], "positive"),
        ([1.0, float("nan"), 4.0], "positive and finite"),
        ([1.0, 2.0, 2.0], "distinct"),
        ([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]], "shape"),
        ("abc", "numbers"),
    ],
)
def test_calibration_rejects_bad_exposure_times(times, match):
    with pytest.raises(InputError, match=match):
        debevec_inverse_crf(torch.rand(1, 3, 3, 8, 8), times)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"normalize": "peak"}, "normalize"),
        ({"smoothing": -1.0}, "smoothing"),
        ({"n_samples": 1}, "n_samples"),
        ({"sampling": "random"}, "sampling"),
        ({"quantile": "mid"}, "quantile"),
    ],
)
def test_debevec_rejects_bad_options(kwargs, match):
    with pytest.raises(InputError, match=match):
        debevec_inverse_crf(torch.rand(1, 3, 3, 8, 8), [1.0, 2.0, 4.0], **kwargs)


@pytest.mark.parametrize(
    "kwargs, match", [({"order": 0}, "order"), ({"order": 2.5}, "order"), ({"outlier": 0.6}, "outlier"),
                      ({"max_iterations": -1}, "max_iterations")],
)
def test_mitsunaga_nayar_rejects_bad_options(kwargs, match):
    with pytest.raises(InputError, match=match):
        mitsunaga_nayar_inverse_crf(torch.rand(1, 3, 3, 8, 8), [1.0, 2.0, 4.0], **kwargs)


def test_to_levels_rounds_to_8bit_codes():
    x = torch.tensor([0.0, 0.5 / 255, 0.49 / 255, 1.0, 127.5 / 255])
    assert to_levels(x).tolist() == [0, 0, 0, 255, 128]  # torch.round: half to even (0.5 -> 0, 127.5 -> 128)

"""Differentiable HDR synthesis layer: gradcheck of every path, slopes at the table ends, the appendix loop,
reconstruction of simulated ground truth, the saturation fallback and bad input."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from hdrbench.bench.reference_loop import loop_merge
from hdrbench.errors import HdrbenchError, InputError
from hdrbench.imaging.calibration import mitsunaga_nayar_inverse_crf
from hdrbench.imaging.camera import GammaCRF, simulate_stack
from hdrbench.imaging.synthesis import (
    HDRSynthesisLayer,
    linearize_polynomial,
    lookup_table,
    merge_stack,
    slope_table,
    weight_function,
)

Z = torch.linspace(0.0, 1.0, 256, dtype=torch.float64)
TABLE = torch.stack([Z**2.2, Z**2.0, Z**1.8]) + 1e-3  # (3, 256) smooth, positive, increasing
TIMES = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
WEIGHTS = ("deb97", "hat", "robertson", "box", "all")
MERGES = ("log", "linear", "w_time_sq")


def _smooth_points(shape=(2, 3, 3, 3, 4), seed=0) -> torch.Tensor:
    """float64 values in [0.1, 0.9], away from table nodes (k/255) and the Deb97 kink at 0.5.

    Finite differences (gradcheck's eps = 1e-6) must not cross a kink of the piecewise-linear table or of a
    weight, where the one-sided derivatives differ.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 0.8 + 0.1
    x = torch.where((x * 255 - torch.round(x * 255)).abs() < 0.1, x + 0.3 / 255, x)
    return torch.where((x - 0.5).abs() < 0.01, x + 0.02, x)


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("merge", MERGES)
def test_gradcheck_tabulated_merge_for_every_weight_and_merge(weight, merge):
    # lookup="linear" + slope="segment" is the exactly differentiable tabulated path; weights are made
    # differentiable so that the analytical Jacobian covers the whole forward.
    x = _smooth_points().requires_grad_(True)

    def f(xx):
        return merge_stack(xx, TIMES, inverse_crf=TABLE, weight=weight, merge=merge, lookup="linear",
                           slope="segment", differentiable_weights=True).hdr

    assert gradcheck(f, (x,), eps=1e-7, atol=1e-6, rtol=1e-4)


def test_gradcheck_table_lookup_with_respect_to_input_and_table():
    x = _smooth_points().requires_grad_(True)
    table = TABLE.clone().requires_grad_(True)
    assert gradcheck(lambda a, b: lookup_table(a, b, lookup="linear", slope="segment"), (x, table), eps=1e-7, atol=1e-6)


def test_gradcheck_polynomial_path_and_its_merge():
    x = _smooth_points().requires_grad_(True)
    coeffs = torch.tensor([[0.01, 0.2, 0.5, 0.29], [0.0, 0.3, 0.3, 0.4], [0.02, 0.1, 0.6, 0.28]],
                          dtype=torch.float64).requires_grad_(True)
    assert gradcheck(linearize_polynomial, (x, coeffs))
    for merge in MERGES:
        def f(xx, cc, merge=merge):
            return merge_stack(xx, TIMES, inverse_crf=_poly(cc), merge=merge, differentiable_weights=True).hdr
        assert gradcheck(f, (x, coeffs))


def _poly(coeffs):
    from hdrbench.imaging.calibration import PolynomialCRF

    n = torch.zeros(1, 3)
    return PolynomialCRF(coefficients=coeffs, table=n, ratios=n, error=n, iterations=n)


@pytest.mark.parametrize("crf", ["gamma", "srgb", "linear"])
def test_gradcheck_analytic_curves(crf):
    x = _smooth_points((1, 3, 3, 2, 3)).requires_grad_(True)
    assert gradcheck(lambda xx: merge_stack(xx, TIMES, inverse_crf=crf, differentiable_weights=True).hdr, (x,))


def test_polynomial_derivative_is_eq10_with_power_k_minus_1():
    # g(x) = 0.1 + 0.2 x + 0.3 x^2 + 0.4 x^3 -> g'(x) = 0.2 + 0.6 x + 1.2 x^2 (the appendix prints x^k).
    x = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64).view(1, 1, 1, 1, 3).expand(1, 2, 1, 1, 3).clone()
    x.requires_grad_(True)
    c = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    linearize_polynomial(x, c).sum().backward()
    xs = x.detach()
    torch.testing.assert_close(x.grad, 0.2 + 0.6 * xs + 1.2 * xs**2)


def test_nearest_lookup_slope_is_in_input_units_and_correct_at_both_ends():
    # T(z) = z^2 sampled at k/255: centred differences are exact for a quadratic (T' = 2z) inside; at the
    # ends the slope is the one-sided segment slope, 255 (T[1] - T[0]) and 255 (T[255] - T[254]).
    table = (Z**2).view(1, 256)
    x = torch.tensor([0.0, 1 / 255, 0.5, 254 / 255, 1.0], dtype=torch.float64).view(1, 1, 1, 1, 5).requires_grad_(True)
    out = lookup_table(x, table)
    torch.testing.assert_close(out.detach(), torch.round(x.detach() * 255) ** 2 / 255**2)
    out.sum().backward()
    k = torch.round(x.detach().flatten() * 255)
    expected = torch.tensor([255 * (1 / 255) ** 2, 2 * k[1] / 255, 2 * k[2] / 255, 2 * k[3] / 255,
                             255 * (1 - (254 / 255) ** 2)], dtype=torch.float64)
    torch.testing.assert_close(x.grad.flatten(), expected, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(slope_table(table)[0, [0, 255]], expected[[0, 4]])


def test_official_slope_reproduces_the_appendix_listing():
    # Per-code differences (not scaled by 255) and, at code 0, the code of the plane's first pixel.
    table = (Z**2).view(1, 256)
    x = torch.tensor([30 / 255, 0.0, 100 / 255], dtype=torch.float64).view(1, 1, 1, 1, 3).requires_grad_(True)
    lookup_table(x, table, slope="official").sum().backward()
    expected = [table[0, 30] - table[0, 29], 30.0, table[0, 100] - table[0, 99]]
    torch.testing.assert_close(x.grad.flatten(), torch.tensor(expected, dtype=torch.float64))


def test_vectorised_layer_matches_the_appendix_loop_forward_and_official_backward():
    g = torch.Generator().manual_seed(1)
    stack = torch.round(torch.rand(2, 4, 3, 6, 7, generator=g, dtype=torch.float64) * 255) / 255
    stack[0, :, :, 0, 0] = 1.0  # saturated everywhere: fallback to the shortest exposure
    stack[1, :, :, 0, 0] = 0.0  # black everywhere: fallback to the longest exposure
    times = torch.tensor([0.25, 0.5, 1.0, 2.0], dtype=torch.float64)
    tables = torch.stack([TABLE, TABLE.flip(0)])
    a = stack.clone().requires_grad_(True)
    ours = merge_stack(a, times, inverse_crf=tables, slope="official").hdr
    ours.sum().backward()
    b = stack.clone().requires_grad_(True)
    ref = loop_merge(b, times, tables)
    ref.sum().backward()
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ours[0, :, 0, 0], tables[0, :, 255] / 0.25)
    torch.testing.assert_close(ours[1, :, 0, 0], tables[1, :, 0] / 2.0)


@pytest.mark.parametrize("options", [{}, {"weight": "hat", "mean_weight": True},
                                     {"log_delta": 1 / 65536, "table_floor": 1e-3}, {"inverse_crf": "debevec"}])
def test_fused_common_case_equals_the_generic_graph(options):
    # The fused node (tabulated, nearest, centred, log merge) must give the generic autograd graph's values
    # and gradients, saturation fallback included: equal up to float64 summation order (1e-12 relative).
    g = torch.Generator().manual_seed(2)
    stack = torch.round(torch.rand(2, 4, 3, 6, 7, generator=g, dtype=torch.float64) * 255) / 255
    stack[0, :, :, 0, :2] = 1.0
    stack[1, :, :, 1, :2] = 0.0
    times = torch.tensor([0.25, 0.5, 1.0, 2.0], dtype=torch.float64)
    stack = stack.permute(0, 1, 2, 4, 3).contiguous().permute(0, 1, 2, 4, 3)  # non-contiguous, as from images
    options = {"inverse_crf": torch.stack([TABLE, TABLE.flip(0)]), **options}
    upstream = torch.rand(2, 3, 6, 7, generator=g, dtype=torch.float64)
    a, b = stack.clone().requires_grad_(True), stack.clone().requires_grad_(True)
    fused = merge_stack(a, times, **options).hdr
    generic = merge_stack(b, times, backend="generic", **options).hdr
    (fused * upstream).sum().backward()
    (generic * upstream).sum().backward()
    torch.testing.assert_close(fused, generic, rtol=1e-12, atol=0)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-15)
    assert a.grad.abs().sum() > 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_common_case_equals_the_eager_layer():
    # backend="compiled" traces fused.log_merge_graph (straight-through lookup); values and gradients must equal the
    # eager node's, fallback included (float64: 1e-12 relative; the compiler may reorder the sums).
    g = torch.Generator().manual_seed(3)
    stack = torch.round(torch.rand(1, 4, 3, 6, 7, generator=g, dtype=torch.float64) * 255) / 255
    stack[0, :, :, 0, :2] = 1.0
    stack[0, :, :, 1, :2] = 0.0
    times = torch.tensor([0.25, 0.5, 1.0, 2.0], dtype=torch.float64)
    upstream = torch.rand(1, 3, 6, 7, generator=g, dtype=torch.float64)
    a, b = stack.clone().requires_grad_(True), stack.clone().requires_grad_(True)
    compiled = merge_stack(a, times, inverse_crf=TABLE, backend="compiled").hdr
    eager = merge_stack(b, times, inverse_crf=TABLE).hdr
    (compiled * upstream).sum().backward()
    (eager * upstream).sum().backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=0)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-15)


@pytest.fixture(scope="module")
def simulated(shared_data):
    """(stack (1, 7, 3, 218, 161), times, irradiance at t = 1) from a real HDR image with a gamma-2.2 camera."""
    from hdrbench.imaging.io import read_image

    hdr = torch.from_numpy(read_image(shared_data / "hdr" / "ScanLines_Desk.hdr").data).permute(2, 0, 1)[None]
    hdr = F.avg_pool2d(hdr.double(), 4)
    evs = [-3, -2, -1, 0, 1, 2, 3]
    stack, exposure = simulate_stack(hdr, evs, GammaCRF(2.2), return_exposure=True)
    return stack, torch.tensor([2.0**e for e in evs], dtype=torch.float64), hdr * exposure


def _relative_errors(out, irr, times):
    # Unclipped range: some exposure sees the pixel between codes 16 and 250.
    valid = (irr * times.max() >= (16 / 255) ** 2.2) & (irr * times.min() <= (250 / 255) ** 2.2)
    r = torch.log(out[valid]) - torch.log(irr[valid])
    return (torch.exp(r - r.median()) - 1).abs()  # after one global scale (the median log ratio)


@pytest.mark.parametrize("merge", MERGES)
def test_merging_a_simulated_stack_with_its_true_curve_reconstructs_the_hdr(simulated, merge):
    # Bound: the worst single observation used is 8-bit code 16, whose rounding (half a code) is a relative
    # irradiance error of 2.2 * 0.5 / 16 = 6.9 % through gamma 2.2; a weighted mean of observations cannot do
    # worse than its worst well-weighted input. Measured: max 5.8-6.4 %, median 0.24-0.26 %.
    stack, times, irr = simulated
    err = _relative_errors(merge_stack(stack, times, inverse_crf="gamma", merge=merge).hdr, irr, times)
    print(f"\n{merge}: median {float(err.median()):.4f}, max {float(err.max()):.4f}")
    assert float(err.max()) <= 2.2 * 0.5 / 16
    assert float(err.median()) <= 0.005


def test_merging_with_the_recovered_debevec_curve_reconstructs_the_hdr(simulated):
    # The recovered curve adds its own error (RMSE ~0.001 of the normalised curve, larger at the darkest
    # codes): measured median 0.27 %, 99th percentile 1.7 %. Bounds: 0.5 % and 2.5 %.
    stack, times, irr = simulated
    err = _relative_errors(merge_stack(stack, times).hdr, irr, times)
    print(f"\ndebevec/log: median {float(err.median()):.4f}, p99 {float(err.quantile(0.99)):.4f}")
    assert float(err.median()) <= 0.005
    assert float(err.quantile(0.99)) <= 0.025


def test_mitsunaga_nayar_layer_runs_and_is_differentiable(simulated):
    stack, times, _ = simulated
    small = stack[..., :16, :16].clone().requires_grad_(True)
    out = merge_stack(small, times, inverse_crf="mitsunaga-nayar", calibration={"order": 3})
    out.hdr.mean().backward()
    assert out.inverse_crf.shape == (1, 3, 256) and torch.isfinite(small.grad).all() and small.grad.abs().sum() > 0
    fit = mitsunaga_nayar_inverse_crf(stack[..., :16, :16], times, order=3)
    torch.testing.assert_close(merge_stack(stack[..., :16, :16], times, inverse_crf=fit).hdr, out.hdr.detach())


def test_weight_functions_match_their_formulas():
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(weight_function(x, "hat"), 1 - (2 * x - 1) ** 12)
    torch.testing.assert_close(weight_function(x, "Deb97"), 1 - (2 * x - 1).abs())
    rob = (torch.exp(-16 * (x - 0.5) ** 2) - math.exp(-4)) / (1 - math.exp(-4))
    torch.testing.assert_close(weight_function(x, "robertson"), rob)
    assert weight_function(x, "all").eq(1).all()
    box = weight_function(x, "box", bounds=(0.2, 0.8))
    assert box.tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    # Toolbox Deb97 with bounds: zero at both bounds, divided by the midpoint tr = (lo + hi) / 2, so the peak
    # is (tr - lo) / tr = 0.8 here (a common factor of all weights: it cancels in every merge).
    d = weight_function(x, "deb97", bounds=(0.1, 0.9))
    torch.testing.assert_close(d[[1, 5, 9]], torch.tensor([0.0, 0.8, 0.0], dtype=torch.float64), atol=1e-12, rtol=0)


def test_layer_module_and_float32():
    layer = HDRSynthesisLayer(inverse_crf="gamma", weight="hat", merge="linear")
    assert "hat" in repr(layer)
    x = _smooth_points().float().requires_grad_(True)
    out = layer(x, [0.5, 1.0, 2.0])
    out.hdr.sum().backward()
    assert out.hdr.dtype == torch.float32 and out.hdr.shape == (2, 3, 3, 4) and torch.isfinite(x.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_layer_on_cuda_matches_cpu():
    x = _smooth_points()
    cpu = merge_stack(x, TIMES, inverse_crf=TABLE).hdr
    gpu = merge_stack(x.cuda(), TIMES, inverse_crf=TABLE.cuda()).hdr
    torch.testing.assert_close(gpu.cpu(), cpu)


GOOD = _smooth_points((1, 3, 3, 2, 2))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: merge_stack(GOOD, [1.0, 2.0]), "2 values but the stack has 3"),
        (lambda: merge_stack(GOOD[0], TIMES), r"\(N, E, C, H, W\)"),
        (lambda: merge_stack(GOOD.clone().fill_(float("nan")), TIMES), "NaN"),
        (lambda: merge_stack(GOOD + 1.5, TIMES), r"\[0, 1\]"),
        (lambda: merge_stack(GOOD, [2.0, 1.0, 1.0]), "distinct"),
        (lambda: merge_stack(GOOD, [0.0, 1.0, 2.0]), "positive"),
        (lambda: merge_stack(GOOD, TIMES, inverse_crf=TABLE[:, :100]), "table must have shape"),
        (lambda: merge_stack(GOOD, TIMES, inverse_crf=TABLE * float("nan")), "NaN"),
        (lambda: merge_stack(GOOD, TIMES, inverse_crf=3.0), "inverse_crf must be"),
        (lambda: merge_stack(GOOD, TIMES, inverse_crf="debevek"), "debevek"),
        (lambda: merge_stack(GOOD, TIMES, weight="gauss"), "gauss"),
        (lambda: merge_stack(GOOD, TIMES, merge="median"), "median"),
        (lambda: merge_stack(GOOD, TIMES, weight_bounds=(0.6, 0.4)), "bounds"),
        (lambda: merge_stack(GOOD, TIMES, inverse_crf=TABLE, lookup="cubic"), "lookup"),
        (lambda: merge_stack(GOOD, TIMES, inverse_crf=TABLE, slope="forward"), "slope"),
        (lambda: linearize_polynomial(GOOD, torch.ones(2, 4)), "coefficients"),
    ],
)
def test_layer_rejects_bad_input_with_a_clear_error(call, match):
    with pytest.raises(HdrbenchError, match=match):
        call()


def test_unknown_names_are_input_errors_for_the_cli():
    # The CLI prints HdrbenchError without a traceback; unknown option names must be one.
    with pytest.raises(HdrbenchError):
        HDRSynthesisLayer(weight="triangle")
    with pytest.raises(InputError):
        merge_stack(GOOD, TIMES, calibration={"smoothing": -1.0})


def test_unknown_backend_is_refused_by_name():
    stack = torch.full((1, 2, 3, 2, 2), 0.5, dtype=torch.float64)
    with pytest.raises(InputError, match="backend must be one of .*'fast'"):
        merge_stack(stack, [1.0, 2.0], inverse_crf="linear", backend="fast")

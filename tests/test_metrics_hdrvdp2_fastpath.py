"""HDR-VDP-2's faster CPU forms equal the plain forms they replace, and the no-gradient path equals the autograd path.

| check                                            | tolerance            | why                                        |
|--------------------------------------------------|----------------------|--------------------------------------------|
| ``pow_via_log`` vs ``torch.pow``, float64        | 1e-13 rel            | exp of an exponent of size <= 50: ~50 eps  |
| ``pow_via_log`` vs ``torch.pow``, float32        | 2e-5 rel             | the same with float32's eps: ~3e-6, margin |
| ``gather`` vs indexing, receptor product         | exact / 1e-15 rel    | same values; order of three additions      |
| optics FFT vs the plain 2x-canvas ``rfft2``      | 1e-12 abs (values ~1)| FFT rounding in float64                    |
| optics column blocks vs one block                | exact (grad 1e-12)   | independent column transforms              |
| masking D, D_psy: fast vs autograd, float64      | 1e-12 rel of the max | logs and exps instead of pow: rounding     |
| masking D, D_psy: fast vs autograd, float32      | 1e-4 rel of the max  | exp(q ln x) in float32, exponents to ~50   |
| whole metric: no-grad vs autograd path, float64  | Q 1e-10, maps 1e-10  | the masking's rounding propagated to Q     |
| shared-inverse reconstruction vs separate, f64   | 1e-12 abs            | FFT rounding in float64, values of order 1 |
| gradcheck (fast mode), float64                   | 1e-4 rel, 1e-6 abs   | central differences with eps 1e-6          |
"""

from __future__ import annotations

import pytest
import torch

from hdrbench.metrics.hdrvdp2 import hdrvdp2, masking, optics, photoreceptors, pyramid
from hdrbench.metrics.hdrvdp2.fastmath import gather, log_pow_, needs_grad, pow_via_log


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-13), (torch.float32, 2e-5)])
def test_pow_via_log_equals_pow_including_zeros(dtype, rtol):
    g = torch.Generator().manual_seed(0)
    x = 10 ** (torch.rand(1000, generator=g, dtype=torch.float64) * 10 - 6)  # 1e-6 .. 1e4
    x[::50] = 0.0
    x = x.to(dtype)
    for e in (3.1315546849832665, 3.5, 0.3, 1.0000001):
        got, want = pow_via_log(x, e), torch.pow(x, e)
        assert bool((got[x == 0] == 0).all())  # exp(e * -inf) is exactly 0 for e > 0
        torch.testing.assert_close(got, want, rtol=rtol, atol=0)
    scale = torch.rand(1000, generator=g, dtype=torch.float64).to(dtype) * 4 - 2  # a per-element log factor
    want = torch.pow(x, 3.5) * torch.exp(scale)
    torch.testing.assert_close(log_pow_(torch.log(x), 3.5, scale), want, rtol=rtol, atol=0)
    want = torch.pow(x, 3.5) * torch.exp(torch.tensor(0.7, dtype=dtype))
    torch.testing.assert_close(log_pow_(torch.log(x), 3.5, 0.7), want, rtol=rtol, atol=0)
    with pytest.raises(ValueError, match="exponent"):
        pow_via_log(x, 0.0)


def test_needs_grad():
    a = torch.ones(2, requires_grad=True)
    assert needs_grad(None, 1.0, a) and not needs_grad(torch.ones(2), None)
    with torch.no_grad():
        assert not needs_grad(a)


def test_gather_equals_indexing():
    g = torch.Generator().manual_seed(1)
    table = torch.rand(2048, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 2048, (2, 1, 17, 23), generator=g)
    assert torch.equal(gather(table, idx), table[idx])


def test_receptor_product_equals_einsum():
    x = torch.rand(2, 3, 19, 21, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 100
    m = photoreceptors.receptor_matrix(3, torch.float64, torch.device("cpu"))
    want = torch.einsum("nchw,cr->nrhw", x, m)
    torch.testing.assert_close(photoreceptors.receptor_responses(x), want, rtol=1e-15, atol=0)


@pytest.mark.parametrize("grad", [False, True])
def test_optics_fft_equals_plain_canvas_fft(grad):
    g = torch.Generator().manual_seed(3)
    h, w = 21, 30
    x = torch.rand(1, 3, h, w, generator=g, dtype=torch.float64).requires_grad_(grad)
    filt = optics.mtf_filter(h, w, 30.0, torch.float64, torch.device("cpu"))
    got = optics.fast_conv_fft(x, filt, 0.25)
    canvas = torch.full((1, 3, 2 * h, 2 * w), 0.25, dtype=torch.float64)
    canvas[..., :h, :w] = x.detach()
    want = torch.fft.irfft2(torch.fft.rfft2(canvas) * filt, s=(2 * h, 2 * w))[..., :h, :w]
    torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-12)
    if grad:  # the canvas is written with differentiable operations on the autograd path
        (dx,) = torch.autograd.grad(got.sum(), x)
        assert torch.isfinite(dx).all() and float(dx.abs().sum()) > 0


@pytest.mark.parametrize("grad", [False, True])
def test_optics_column_blocks_give_the_same_values(monkeypatch, grad):
    # The column transforms are independent, so any block size gives the values of one whole-canvas transform.
    g = torch.Generator().manual_seed(5)
    h, w = 21, 30
    x = torch.rand(2, 3, h, w, generator=g, dtype=torch.float64).requires_grad_(grad)
    filt = optics.mtf_filter(h, w, 30.0, torch.float64, torch.device("cpu"))
    whole = optics.fast_conv_fft(x, filt, 0.25)  # 31 spectrum columns: one block of the default 256
    monkeypatch.setattr(optics, "COLUMN_BLOCK", 4)
    blocked = optics.fast_conv_fft(x, filt, 0.25)
    assert torch.equal(blocked.detach(), whole.detach())
    if grad:
        (d_whole,) = torch.autograd.grad(whole.sum(), x)
        (d_blocked,) = torch.autograd.grad(blocked.sum(), x)
        torch.testing.assert_close(d_blocked, d_whole, rtol=0, atol=1e-12)


def _bands(dtype, grad: bool, scale: float = 1.0):
    """Random pyramid-like bands (2 images: test first) with exactly equal test/reference pixels (diff == 0)."""
    g = torch.Generator().manual_seed(4)
    bands = []
    for o, (h, w) in ((1, (32, 40)), (4, (32, 40)), (4, (16, 20)), (4, (8, 10)), (1, (4, 5))):
        b = torch.randn(2, o, h, w, generator=g, dtype=torch.float64) * scale
        b[1, :, :3, :3] = b[0, :, :3, :3]  # no difference there: D = 0 and ln|diff| = -inf on the fast path
        bands.append(b.to(dtype).requires_grad_(grad))
    noise = [(torch.rand(1, 1) + 0.5).to(dtype) * torch.ones(1, 1, *b.shape[-2:], dtype=dtype) for b in bands[:-1]]
    noise.append(1.0)
    return bands, noise


@pytest.mark.parametrize(
    "dtype, rtol, scale", [(torch.float64, 1e-12, 1.0), (torch.float32, 1e-4, 1.0), (torch.float32, 1e-4, 1e6)]
)
def test_masking_fast_path_equals_autograd_path(dtype, rtol, scale):
    # scale 1e6 in float32: N_mask^2 overflows, so the fast path must fall back to hypot as the autograd path does.
    bands, noise = _bands(dtype, grad=False, scale=scale)
    fast = list(masking.iter_visible_differences(list(bands), 1, lambda i: noise[i], psychometric=True))
    bands_g, _ = _bands(dtype, grad=True, scale=scale)
    slow = list(masking.iter_visible_differences(list(bands_g), 1, lambda i: noise[i], psychometric=True))
    for (i, d, p), (_, ds, ps) in zip(fast, slow, strict=True):
        assert not d.requires_grad and ds.requires_grad  # the two paths were taken
        for a, b in ((d, ds.detach()), (p, ps.detach())):
            scale = float(b.abs().max())
            torch.testing.assert_close(a, b, rtol=0, atol=rtol * scale, msg=f"band {i}")
            assert bool((a[..., :3, :3] == 0).all()), f"band {i}: zero difference must give D = 0"


def test_metric_no_grad_path_equals_autograd_path_and_backward_is_finite():
    g = torch.Generator().manual_seed(5)
    ref = torch.rand(1, 3, 40, 48, generator=g, dtype=torch.float64) * 200 + 0.5
    test = ref * (1 + 0.05 * torch.randn(ref.shape, generator=g, dtype=torch.float64))
    test[..., :8, :8] = ref[..., :8, :8]  # identical pixels: the autograd path must keep finite gradients there
    with torch.no_grad():
        fast = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
    x = test.clone().requires_grad_(True)
    slow = hdrvdp2(x, ref, color_encoding="rgb-bt.709", ppd=30)
    torch.testing.assert_close(fast.Q, slow.Q.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(fast.P_map, slow.P_map.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(fast.C_map, slow.C_map.detach(), rtol=1e-10, atol=0)
    (grad,) = torch.autograd.grad(slow.Q.sum(), x)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) > 0


@pytest.mark.parametrize("size", [(18, 18), (41, 30)])
def test_shared_inverse_reconstruction_equals_separate_up_convolutions(size):
    # 1e-12 abs: FFT rounding in float64 for values of order 1 (as the shared forward FFT of the pyramid build).
    g = torch.Generator().manual_seed(6)
    f = pyramid.filters(torch.float64, torch.device("cpu"))
    coarse = torch.rand(2, 1, (size[0] + 1) // 2, (size[1] + 1) // 2, generator=g, dtype=torch.float64)
    band = torch.rand(2, 4, *size, generator=g, dtype=torch.float64)
    hi = torch.rand(2, 1, *size, generator=g, dtype=torch.float64)
    got = pyramid.up_conv_sum([(coarse, f["lo_conv"], 2), (band, f["b_conv_17"], 1)], size)
    want = pyramid.up_conv(coarse, f["lo_conv"], size, step=2) + pyramid.up_conv(band, f["b_conv"], size)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    got = pyramid.up_conv_sum([(got, f["lo0_conv_15"], 1), (hi, f["hi0_conv"], 1)], size)
    want = pyramid.up_conv(want, f["lo0_conv"], size) + pyramid.up_conv(hi, f["hi0_conv"], size)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="up_conv_sum"):  # mixed filter sizes are refused, not silently wrong
        pyramid.up_conv_sum([(coarse, f["lo_conv"], 2), (band, f["b_conv"], 1)], size)


@pytest.mark.grad
def test_gradcheck_through_the_changed_differentiable_steps():
    # The autograd path runs the optics canvas writes, the filter product on the spectrum's real view, the receptor
    # product, index_select lookups and the shared-inverse reconstruction. gradcheck (fast mode: a random
    # projection of the Jacobian) against central differences: eps 1e-6 on values ~100 cd/m^2, rtol 1e-4 and atol
    # 1e-6 for the differences' truncation and rounding error in float64.
    g = torch.Generator().manual_seed(7)
    ref = torch.rand(1, 3, 20, 24, generator=g, dtype=torch.float64) * 200 + 5
    test = (ref * (1 + 0.05 * torch.randn(ref.shape, generator=g, dtype=torch.float64))).requires_grad_(True)
    for out in ("Q", "P_map"):
        def f(t, out=out):
            return getattr(hdrvdp2(t, ref, color_encoding="rgb-bt.709", ppd=30), out).sum()

        assert torch.autograd.gradcheck(f, (test,), fast_mode=True, eps=1e-6, atol=1e-6, rtol=1e-4)

"""HDR-VDP-2's native float32 kernels equal the torch code they replace, and the metric falls back without them.

| check                                                     | tolerance                | why                                       |
|-----------------------------------------------------------|--------------------------|-------------------------------------------|
| mutual masking, kernel vs torch                           | exact                    | same operations in the same order         |
| band kernel D, D_psy vs the torch code (float32)          | 2e-5 rel of each value   | the kernel's own exp/log (~1 ulp) against |
|                                                           | (D_psy: of the max)      | torch's, in exponents up to ~50           |
| band kernel pooling sums vs torch's float64 sums          | 1e-4 rel                 | the sums of the float32 values above      |
| resize: kernel vs banded matrix products (float32)        | 4 ulp of the max         | same taps, another order of the sums      |
| photoreceptors: kernel vs torch (float32)                 | 2e-6 rel (P: of the max) | own log10 (~1 ulp) and channel-sum order  |
| whole metric, native vs ``HDRBENCH_NATIVE=0`` (float32)   | Q 1e-3, P_det 5e-5,      | float32 rounding moved through the metric:|
|                                                           | P_map 1e-3 abs           | on the 30 reference rows Q 2.5e-4, P_det  |
|                                                           |                          | 5.4e-6, P_map mean 1.2e-5 (float32 vs     |
|                                                           |                          | float64: Q 3.5e-4)                        |
| threads: 1 vs 2                                           | D_psy exact, sums 1e-12  | rows split differently; double sums       |
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from hdrbench.metrics.hdrvdp2 import csf, hdrvdp2, masking, native, photoreceptors, resize
from hdrbench.metrics.hdrvdp2.constants import constants

pytestmark = pytest.mark.skipif(native.library() is None, reason="the native kernel does not build on this machine")


def _band(n=2, o=4, h=23, w=37, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(n, o, h, w, generator=g) * scale).float()
    r = (t + torch.randn(n, o, h, w, generator=g) * 0.3 * scale).float()
    t[:, :, :3] = r[:, :, :3]  # identical pixels: D = 0
    t[0, 0, 5, :7] = 0.0
    r[0, 0, 5, :7] = 0.0  # zero masking as well
    return t, r


def test_mutual_masking_equals_torch_exactly():
    for shape in ((2, 4, 23, 37), (1, 1, 15, 16), (3, 2, 1, 9)):
        g = torch.Generator().manual_seed(sum(shape))
        t, r = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        assert torch.equal(native.mutual_masking(t, r), masking.mutual_masking(t, r))


def _torch_band(t, r, neighbours, csf_in, dm, i):
    """The torch code's D, D_psy and pooling sums for the same inputs as native.band."""
    m = masking.mutual_masking(t, r)
    xo = (m.sum(dim=1, keepdim=True) - m).clamp_min_(0.0)
    xn = torch.zeros_like(m)
    for x, factor in neighbours:
        xn = xn + masking._pick_orientations(x, t.shape[1]).clamp_min(0.0) * factor
    nz = 1.0 if csf_in is None else 1.0 / csf.lookup(csf_in[0], csf_in[1].clamp(-5.0, 5.0))
    d, d_psy, _ = masking._differences_fast(t - r, m, xo, xn, nz, i, True, keep_n_mask=False)
    sq = torch.cat([(d[:, k : k + 1] * dm).double().square().sum(dim=(-2, -1)) for k in range(t.shape[1])], dim=1)
    return m, d, d_psy, sq


@pytest.mark.parametrize("i, with_csf, n_lo, n_hi", [(0, True, 0, 1), (2, True, 4, 4), (3, True, 1, 4), (5, False, 4, 0)])
def test_band_kernel_equals_the_torch_code(i, with_csf, n_lo, n_hi):
    t, r = _band(o=1 if i in (0, 5) else 4, seed=i)
    n, o, h, w = t.shape
    g = torch.Generator().manual_seed(10 + i)
    neighbours = [(torch.randn(n, k, h, w, generator=g).abs() * 2 - 0.5, f) for k, f in ((n_lo, 2.0 / 2**i), (n_hi, 1.0 / 2 ** (i + 1))) if k]
    table = csf.csf_table(csf.band_frequencies(30.0, 6), torch.float32, torch.device("cpu"))[i]
    log_la = torch.rand(n, 1, h, w, generator=g) * 12 - 6  # -6 .. 6: both ends of the table's range exceeded
    csf_in = (table, log_la) if with_csf else None
    dm = (torch.rand(n, 1, h, w, generator=g) > 0.3).float()
    m, d_want, psy_want, sq_want = _torch_band(t, r, neighbours, csf_in, dm, i)
    d, psy, sq = native.band(t, r, m, neighbours, csf_in, dm, i, constants(), keep_d=True)
    torch.testing.assert_close(d, d_want, rtol=2e-5, atol=1e-30)
    torch.testing.assert_close(psy, psy_want, rtol=2e-5, atol=2e-5 * float(psy_want.abs().max()))
    torch.testing.assert_close(sq, sq_want, rtol=1e-4, atol=0)
    assert bool((d[t == r] == 0).all()) and bool((psy[t == r] == 0).all())
    assert bool((torch.sign(d) == torch.sign(t - r)).all())
    # The psychometric power differs from D by the factor |D / b|^(pf - 1) = exp(z), |z| ~ 1e-7 ln|D / b|: below the
    # tolerance above, so checked on its own where it exceeds float32's resolution of the ratio (1.2e-7).
    nz = d != 0
    z = (constants().pf - 1.0) * (torch.log(d[nz].abs().double()) - i * math.log(2.0))
    ratio = psy[nz].double() / d[nz].double() - 1.0
    big = z.abs() > 1e-6
    assert int(big.sum()) > 10
    torch.testing.assert_close(ratio[big], z[big], rtol=0, atol=3e-7)


def test_band_results_do_not_depend_on_the_thread_count():
    t, r = _band(n=2, h=300, w=64, seed=3)
    m = native.mutual_masking(t, r)
    dm = torch.ones(2, 1, 300, 64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.band(t, r, m, [], None, dm, 2, constants())
        torch.set_num_threads(2)
        two = native.band(t, r, m, [], None, dm, 2, constants())
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[1], two[1])
    torch.testing.assert_close(one[2], two[2], rtol=1e-12, atol=0)


def test_overflow_is_reported_and_the_masking_falls_back_to_hypot():
    t, r = _band(n=1, o=4, seed=4, scale=1e14)  # masking terms (m / N)^q far beyond float32's range
    m = native.mutual_masking(t, r)
    assert native.band(t, r, m, [], None, torch.ones(1, 1, *t.shape[-2:]), 1, constants()) is None
    # Through the generator: the band is computed by the torch code, with finite values.
    bands = [torch.cat([t, r])[:, :1], torch.cat([t, r]), torch.cat([t, r])[:, :1]]
    dm = torch.ones(1, 1, *t.shape[-2:])
    out = list(masking.iter_band_squares_native(list(bands), 1, lambda i: 1.0, lambda i: None, dm))
    ref = list(masking.iter_visible_differences(list(bands), 1, lambda i: 1.0, psychometric=True))
    for (i, sq, psy), (_, d_want, psy_want) in zip(out, ref):
        assert bool(torch.isfinite(psy).all()) and bool(torch.isfinite(sq).all())
        torch.testing.assert_close(psy, psy_want, rtol=2e-5, atol=2e-5 * float(psy_want.abs().max()))


def _pair(seed, h=40, w=52):
    g = torch.Generator().manual_seed(seed)
    ref = 10 ** (torch.rand(1, 3, h, w, generator=g, dtype=torch.float64) * 4 - 1)
    test = ref * (1 + 0.1 * torch.randn(ref.shape, generator=g, dtype=torch.float64)).clamp_min(0)
    return test.float(), ref.float()


def test_whole_metric_native_equals_torch_path(monkeypatch):
    test, ref = _pair(5)
    got = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
    monkeypatch.setenv("HDRBENCH_NATIVE", "0")
    assert not masking.native_usable([test], None)
    want = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
    assert abs(float(got.Q[0]) - float(want.Q[0])) <= 1e-3
    assert abs(float(got.P_det[0]) - float(want.P_det[0])) <= 5e-5
    torch.testing.assert_close(got.P_map, want.P_map, rtol=0, atol=1e-3)
    assert float(hdrvdp2(ref.clone(), ref, color_encoding="rgb-bt.709", ppd=30).Q[0]) == 100.0  # identical: D = 0


def test_the_kernel_runs_only_where_it_applies():
    x = torch.ones(1, 4, 8, 8)
    assert masking.native_usable([x], None)
    assert not masking.native_usable([x], {})  # intermediate stages requested
    assert not masking.native_usable([x.double()], None)  # float64 keeps the torch code
    assert not masking.native_usable([x.requires_grad_(True)], None)  # gradients keep the autograd code
    with torch.no_grad():
        assert masking.native_usable([x], None)


def test_without_a_compiler_the_metric_warns_once_and_uses_the_torch_code(monkeypatch, tmp_path):
    monkeypatch.setattr(native._LIBRARY, "state", {})
    monkeypatch.setenv("HDRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    test, ref = _pair(6)
    with pytest.warns(RuntimeWarning, match="native HDR-VDP-2 kernels unavailable.*no-such-compiler"):
        q = float(hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30).Q[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not again
        again = float(hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30).Q[0])
    assert q == again and math.isfinite(q)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


@pytest.mark.parametrize("shape, size", [((2, 4, 97, 131), (49, 66)), ((1, 1, 49, 66), (97, 131)),
                                         ((1, 1, 384, 512), (24, 32)), ((3, 5, 17), (9, 40)), ((1, 1, 20, 30), (20, 61))])
def test_resize_kernel_equals_the_banded_products(monkeypatch, shape, size):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    got = resize.imresize(x, size)
    monkeypatch.setenv("HDRBENCH_NATIVE", "0")
    want = resize.imresize(x, size)
    assert got.shape == want.shape == shape[:-2] + size
    torch.testing.assert_close(got, want, rtol=0, atol=4 * 1.2e-7 * float(want.abs().max()))


def test_resize_taps_are_the_matrix_non_zeros():
    for n_in, n_out in ((97, 49), (49, 97), (20, 61), (384, 24)):
        idx, wts, idx_t, wts_t = resize.resize_taps(n_in, n_out)
        dense = torch.zeros(n_out, n_in, dtype=torch.float64)
        dense.scatter_add_(1, idx.long(), wts.double())
        torch.testing.assert_close(dense, torch.from_numpy(resize.resize_matrix_np(n_in, n_out)), rtol=0, atol=1e-7)
        assert torch.equal(idx_t, idx.t()) and torch.equal(wts_t, wts.t())


@pytest.mark.parametrize("channels", [3, 1])
def test_receptor_kernel_equals_the_torch_code(monkeypatch, channels):
    g = torch.Generator().manual_seed(channels)
    x = 10 ** (torch.rand(2, channels, 37, 53, generator=g) * 12 - 7)  # 1e-7 .. 1e5 cd/m^2: both table ends exceeded
    p, l_adapt = photoreceptors.transduce_with_adaptation(x)
    monkeypatch.setenv("HDRBENCH_NATIVE", "0")
    p_want, l_want = photoreceptors.transduce_with_adaptation(x)
    torch.testing.assert_close(l_adapt, l_want, rtol=2e-6, atol=0)
    torch.testing.assert_close(p, p_want, rtol=0, atol=2e-6 * float(p_want.abs().max()))

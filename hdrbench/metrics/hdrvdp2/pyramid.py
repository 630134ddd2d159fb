"""Steerable pyramid (sp3 filters: 4 orientations) in torch, equal to matlabPyrTools ``buildSpyr``.

Edge handling is matlabPyrTools' ``reflect1`` (mirror about the edge sample, which is not repeated):

* ``corrDn`` = correlate the whole-sample symmetric padded image with the filter, then keep samples
  0, step, 2 step, ... (odd sizes give ceil(n / 2)).
* ``upConv`` = place the coarse samples at 0, step, ... of a zero image of the target size, pad it the
  same way and convolve (filter rotated by 180 degrees). This is not the exact transpose of ``corrDn``
  at the borders; it is what ``reconSpyr`` computes.

The pyramid height is ``maxPyrHt``: the number of halvings (floor) while both sides are at least the
17-tap low-pass filter. Each level is one batched ``conv2d`` with all four orientations as output
channels; reconstruction sums the four orientations with one ``conv2d`` that has them as inputs.

Band layout returned by :func:`build` (HDR-VDP numbering in brackets): the high-pass residual
(N, 1, H, W) [band 1], ``height`` levels (N, 4, h_i, w_i) [bands 2 .. height + 1], and the low-pass
residual (N, 1, h, w) [last band].

Small-size exception: when an ``upConv`` output side is not longer than the filter (a level of exactly
17 samples reconstructed with the 17-tap low-pass filter, or a 15-pixel image with the 15-tap high-pass
filter), matlabPyrTools' C code (``internal_expand`` with the ``reflect1`` handler) folds the filter
differently from the mirror rule (differences up to ~5e-3). Those dimensions use an exact emulation of
that code as per-dimension matrices (:func:`expand_matrices_np`), checked against pyrtools.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .constants import constants

LOFILT_SIZE = 17
MIN_SIZE = 15  # the 15x15 high-pass filter must fit in the image (as in corrDn)


@dataclass
class SteerablePyramid:
    """Bands of a steerable pyramid.

    Attributes:
        highpass: (N, 1, H, W) high-pass residual.
        levels: list of (N, 4, h_i, w_i) oriented bands, finest first; h_{i+1} = ceil(h_i / 2).
        lowpass: (N, 1, h, w) low-pass residual.
    """

    highpass: torch.Tensor
    levels: list[torch.Tensor]
    lowpass: torch.Tensor

    @property
    def height(self) -> int:
        return len(self.levels)

    def bands(self) -> list[torch.Tensor]:
        """All bands in HDR-VDP order: [highpass, level 0, ..., level height-1, lowpass]."""
        return [self.highpass, *self.levels, self.lowpass]


def max_height(h: int, w: int, filt_size: int = LOFILT_SIZE) -> int:
    """Number of pyramid levels (matlabPyrTools ``maxPyrHt``): halve (floor) while min side >= filt_size."""
    ht = 0
    while h >= filt_size and w >= filt_size:
        ht += 1
        h, w = h // 2, w // 2
    return ht


_FILTERS: dict = {}


def filters(dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """conv2d weights (cached per dtype/device). ``*_corr`` correlate; ``*_conv`` are rotated by 180 deg."""
    key = (dtype, str(device))
    f = _FILTERS.get(key)
    if f is None:
        c = constants()

        def t(a):
            return torch.from_numpy(a.copy()).to(device=device, dtype=dtype)

        b = t(c.bfilts)  # (4, 9, 9)
        f = {
            "hi0_corr": t(c.hi0filt)[None, None],
            "lo0_corr": t(c.lo0filt)[None, None],
            "lo_corr": t(c.lofilt)[None, None],
            "b_corr": b[:, None],  # (4, 1, 9, 9): one output channel per orientation
            "hi0_conv": t(c.hi0filt).flip(-1, -2)[None, None],
            "lo0_conv": t(c.lo0filt).flip(-1, -2)[None, None],
            "lo_conv": t(c.lofilt).flip(-1, -2)[None, None],
            "b_conv": b.flip(-1, -2)[None],  # (1, 4, 9, 9): orientations summed as input channels
        }
        for name in ("hi0", "lo0", "lo", "b"):  # un-rotated copies for the small-size exact path
            f[name + "_filt"] = f[name + "_conv"].flip(-1, -2)
        # Zero-bordered copies so that filters applied to the same input share one padding and one FFT
        # (:func:`corr_dn_many`): lo0 (9x9) beside hi0 (15x15), the oriented filters (9x9) beside lo (17x17).
        f["lo0_corr_15"] = F.pad(f["lo0_corr"], (3, 3, 3, 3))
        f["b_corr_17"] = F.pad(f["b_corr"], (4, 4, 4, 4))
        # The same for the reconstruction (:func:`up_conv_sum`): the oriented bands beside the upsampled low-pass,
        # lo0 beside hi0.
        f["lo0_conv_15"] = F.pad(f["lo0_conv"], (3, 3, 3, 3))
        f["b_conv_17"] = F.pad(f["b_conv"], (4, 4, 4, 4))
        with torch.inference_mode(False):  # a normal tensor even when first built under torch.inference_mode, so later autograd calls can use it
            f = {name: (v.clone() if v.is_inference() else v) for name, v in f.items()}
        _FILTERS[key] = f
    return f


def _reflect_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.pad(x, (r, r, r, r), mode="reflect")


_SPECTRA: dict = {}


def _use_fft(x: torch.Tensor) -> bool:
    # On CPU the FFT is the faster route for these 9..17-tap, single-input-channel filters: oneDNN has no
    # float64 convolution (the direct float64 kernel is ~50x slower than float32), and even in float32 the
    # FFT path took less than half the time of oneDNN for build + reconstruct at 512x384 (measured on one
    # core of an x86 CPU). Its error is at rounding level: ~1e-16 relative in float64; in float32 Q moved by
    # < 2e-4 on the reference pairs (the FFT's error is relative to the image-wide maximum, so single P_map
    # pixels of high-contrast pairs move more than with direct convolution, within the tested tolerance).
    # On GPUs cuDNN's direct convolution is used.
    return x.device.type == "cpu"


def fast_fft_size(n: int) -> int:
    """Smallest m >= n whose only prime factors are 2, 3 and 5 (sizes the FFT handles fastest).

    Padded band sizes such as 1096 = 8 * 137 or 556 = 4 * 139 (1920x1080 plus the filter rim) have large prime
    factors, for which the FFT falls back to a several times slower algorithm; padding further with zeros is
    exact here because only the valid part of a linear correlation is kept.
    """
    m = max(int(n), 1)
    while True:
        k = m
        for f in (2, 3, 5):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += 1


def _spectrum(weight: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """rfft2 of the 180-degree rotated ``weight`` (Cout, Cin, k, k) on a ``shape`` canvas (cached)."""
    key = (weight.data_ptr(), tuple(weight.shape), weight.dtype, str(weight.device), shape)
    spec = _SPECTRA.get(key)
    if spec is None:
        if len(_SPECTRA) > 128:
            _SPECTRA.clear()
        # Correlation = convolution with the rotated kernel; circular wrap only touches the discarded rim.
        with torch.inference_mode(False):  # a normal tensor even when first built under torch.inference_mode, so later autograd calls can use it
            spec = torch.fft.rfft2(weight.flip(-1, -2), s=shape)
        _SPECTRA[key] = spec
    return spec


def _correlate_many(xp: torch.Tensor, weights: list[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
    """'valid' cross-correlations of one padded (N, Cin, Hp, Wp) input with several (Cout, Cin, k, k) weights.

    Each entry of ``weights`` is (weight, step); all weights must have the same k. On the FFT route the input is
    transformed once for all of them. Returns one (N, Cout, (Hp - k + 1) / step, ...) tensor per weight.
    """
    if not _use_fft(xp):
        return [F.conv2d(xp, w, stride=step) for w, step in weights]
    k = weights[0][0].shape[-1]
    hp, wp = xp.shape[-2:]
    shape = (fast_fft_size(hp), fast_fft_size(wp))
    xs = torch.fft.rfft2(xp, s=shape)
    out = []
    for w, step in weights:
        spec = _spectrum(w, shape)
        n_out = w.shape[0]
        size = (-(-(hp - k + 1) // step), -(-(wp - k + 1) // step))
        y = xs.real.new_empty((xp.shape[0], n_out) + size)
        # One output channel at a time: the full-canvas product and inverse transform are then one channel's
        # size (a quarter of the level's four orientations at once), and each result goes straight into place.
        for o in range(n_out):
            if w.shape[1] == 1:
                ys = xs * spec[o : o + 1, 0]
            else:  # input channels (orientations) summed, as in the reconstruction
                ys = (xs * spec[o]).sum(dim=1, keepdim=True)
            y[:, o : o + 1] = torch.fft.irfft2(ys, s=shape)[..., k - 1 : hp : step, k - 1 : wp : step]
            del ys
        out.append(y)
    return out


def _correlate_valid(xp: torch.Tensor, weight: torch.Tensor, step: int = 1) -> torch.Tensor:
    """'valid' cross-correlation of padded (N, Cin, Hp, Wp) input with (Cout, Cin, k, k) weights, then subsample."""
    return _correlate_many(xp, [(weight, step)])[0]


def corr_dn(x: torch.Tensor, weight: torch.Tensor, step: int = 1) -> torch.Tensor:
    """matlabPyrTools ``corrDn(x, filt, 'reflect1', [step step])`` for (N, C, H, W) input, odd square filter."""
    r = weight.shape[-1] // 2
    return _correlate_valid(_reflect_pad(x, r), weight, step)


def corr_dn_many(x: torch.Tensor, weights: list[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
    """:func:`corr_dn` of one input with several (weight, step) filters of one odd size, sharing the input FFT.

    A smaller filter bordered with zeros to the common size (see :func:`filters`) gives the same result as
    itself: with the ``reflect1`` padding of the larger radius, the valid correlation reads the same samples
    with non-zero weights.
    """
    k = weights[0][0].shape[-1]
    if any(w.shape[-1] != k for w, _ in weights):
        raise ValueError("corr_dn_many: all filters must have the same size")
    return _correlate_many(_reflect_pad(x, k // 2), weights)


def _fold_matrix(k: int, pos: int) -> np.ndarray:
    """(k, k) matrix T of the 1-D ``reflect1`` edge handler in EXPAND mode: folded filter = T @ filter.

    ``pos`` is the signed overhang code the C code passes (0 in the interior, < 0 near the start,
    > 0 near the end). Filter taps falling outside are reflected about the edge sample; the C code
    adds a second reflected copy unless the overhang equals the filter's half-length.
    """
    t = np.zeros((k, k))
    base = k - 1 if pos > 0 else 0
    over = abs(pos - 1 if pos > 0 else (pos + 1 if pos < 0 else 0))
    mid = k // 2 if pos < 0 else (k - 1) // 2
    starts = [base - over]
    if over != mid and pos != 0:
        starts.append(base - 2 * mid + over)
    for f0 in starts:
        res, f = base, f0
        while f > base - k:
            t[abs(res), abs(f)] += 1.0
            res, f = res - 1, f - 1
    return t


@lru_cache(maxsize=64)
def expand_matrices_np(n_in: int, n_out: int, k: int, step: int) -> np.ndarray:
    """(k, n_out, n_in) matrices A with upConv along one dimension = sum_b filt[b] A[b] @ u (exact C semantics).

    Emulates matlabPyrTools' ``internal_expand`` for one dimension: each input sample scatters the
    (possibly edge-folded) filter into a window of the output; windows near the start are anchored
    at 0 and those past the last interior position at ``n_out - k``.
    """
    mid = k // 2
    start, stop = -mid, n_out - mid
    ctr_start = 0 if k == 1 else 1
    ctr_stop = min(n_out - (0 if k == 1 else k), stop)
    a = np.zeros((k, n_out, n_in))
    for p, x in enumerate(range(start, stop, step)):
        if x < ctr_start:
            t, corner = _fold_matrix(k, x - 1), 0
        elif x < ctr_stop:
            t, corner = _fold_matrix(k, 0), x
        else:
            t, corner = _fold_matrix(k, x - ctr_stop + 1), ctr_stop
        for j in range(k):
            if 0 <= corner + j < n_out:
                a[:, corner + j, p] += t[j]
    return a


def _up_conv_exact(x: torch.Tensor, filt: torch.Tensor, size: tuple[int, int], step: int) -> torch.Tensor:
    """upConv through per-dimension matrices; ``filt`` is (1, C, k, k) un-rotated, channels are summed."""
    k = filt.shape[-1]
    ay = torch.from_numpy(expand_matrices_np(x.shape[-2], size[0], k, step)).to(x)
    ax = torch.from_numpy(expand_matrices_np(x.shape[-1], size[1], k, step)).to(x)
    cx = torch.einsum("cab,bwj->cawj", filt[0], ax)  # (C, k, W_out, W_in): column operator per filter row
    return torch.einsum("ahi,ncij,cawj->nhw", ay, x, cx)[:, None]


def _zero_upsample(x: torch.Tensor, size: tuple[int, int], step: int) -> torch.Tensor:
    """``x`` (..., h, w) placed at samples 0, step, 2 step, ... of a zero image of ``size`` (``x`` itself for step 1):
    the input of upConv's convolution."""
    if step == 1:
        return x
    z = x.new_zeros(x.shape[:-2] + tuple(size))
    z[..., ::step, ::step] = x
    return z


def up_conv(x: torch.Tensor, weight: torch.Tensor, size: tuple[int, int], step: int = 1,
            filt: torch.Tensor | None = None) -> torch.Tensor:
    """matlabPyrTools ``upConv(x, filt, 'reflect1', [step step], [1 1], size)`` summed over input channels.

    Args:
        x: (N, C, h, w) coarse input.
        weight: (1, C, k, k) filter already rotated by 180 degrees (so that conv2d convolves).
        size: output (H, W).
        step: upsampling factor.
        filt: the un-rotated filter; needed when an output side is <= k (exact small-size path).
    """
    k = weight.shape[-1]
    if min(size) <= k:
        if filt is None:
            filt = weight.flip(-1, -2)
        return _up_conv_exact(x, filt, size, step)
    x = _zero_upsample(x, size, step)
    r = k // 2
    return _correlate_valid(_reflect_pad(x, r), weight)


def up_conv_sum(terms: list[tuple[torch.Tensor, torch.Tensor, int]], size: tuple[int, int]) -> torch.Tensor:
    """Sum of :func:`up_conv` ``(x, weight, size, step)`` over ``terms`` with one inverse FFT (FFT route only).

    All weights must have the same size k < min(size) (smaller filters zero-bordered, see :func:`filters`: with the
    ``reflect1`` padding of the larger radius the valid convolution reads the same samples with non-zero weights).
    The products with the filter spectra are summed in the frequency domain, so the inverse transform and the
    crop are done once instead of once per term.

    Returns:
        (N, 1, H, W) contiguous tensor.
    """
    k = terms[0][1].shape[-1]
    if any(w.shape[-1] != k for _, w, _ in terms) or min(size) <= k or not _use_fft(terms[0][0]):
        raise ValueError("up_conv_sum: needs the FFT route, filters of one size and an output larger than the filter")
    r = k // 2
    hp, wp = size[0] + 2 * r, size[1] + 2 * r
    shape = (fast_fft_size(hp), fast_fft_size(wp))
    total = None
    for x, weight, step in terms:
        x = _zero_upsample(x, size, step)
        xs = torch.fft.rfft2(_reflect_pad(x, r), s=shape)
        del x
        prod = (xs * _spectrum(weight, shape)[0]).sum(dim=1, keepdim=True)  # input channels summed
        del xs
        total = prod if total is None else total.add_(prod)
        del prod
    return torch.fft.irfft2(total, s=shape)[..., k - 1 : hp, k - 1 : wp].contiguous()


def build(x: torch.Tensor, height: int | None = None) -> SteerablePyramid:
    """Build the sp3 steerable pyramid of ``x`` ((N, 1, H, W), any float dtype) with ``reflect1`` edges.

    Args:
        x: (N, 1, H, W) image; H and W must be at least 15.
        height: number of oriented levels; default (None) is :func:`max_height` (``'auto'``).
    """
    h, w = x.shape[-2:]
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"steerable pyramid needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {h}x{w}")
    f = filters(x.dtype, x.device)
    if height is None:
        height = max_height(h, w)
    if _use_fft(x):  # filters applied to the same input share its padding and its FFT
        hi, lo = corr_dn_many(x, [(f["hi0_corr"], 1), (f["lo0_corr_15"], 1)])
    else:  # direct convolution: the zero border would only add work
        hi, lo = corr_dn(x, f["hi0_corr"]), corr_dn(x, f["lo0_corr"])
    del x
    levels = []
    for _ in range(height):
        if _use_fft(lo):
            band, lo = corr_dn_many(lo, [(f["b_corr_17"], 1), (f["lo_corr"], 2)])
        else:
            band, lo = corr_dn(lo, f["b_corr"]), corr_dn(lo, f["lo_corr"], step=2)
        levels.append(band)
    return SteerablePyramid(hi, levels, lo)


def reconstruct(pyr: SteerablePyramid) -> torch.Tensor:
    """matlabPyrTools ``reconSpyr`` (all levels and bands) -> (N, 1, H, W)."""
    f = filters(pyr.lowpass.dtype, pyr.lowpass.device)
    res = pyr.lowpass
    fft = _use_fft(res)
    # On the FFT route the two terms of each level share one inverse transform (:func:`up_conv_sum`); sizes not
    # larger than the filter take the exact small-size path of :func:`up_conv`.
    for band in reversed(pyr.levels):
        size = tuple(band.shape[-2:])
        if fft and min(size) > LOFILT_SIZE:
            res = up_conv_sum([(res, f["lo_conv"], 2), (band, f["b_conv_17"], 1)], size)
        else:
            res = up_conv(res, f["lo_conv"], size, step=2) + up_conv(band, f["b_conv"], size)
    size = tuple(pyr.highpass.shape[-2:])
    if fft and min(size) > f["hi0_conv"].shape[-1]:
        return up_conv_sum([(res, f["lo0_conv_15"], 1), (pyr.highpass, f["hi0_conv"], 1)], size)
    return up_conv(res, f["lo0_conv"], size) + up_conv(pyr.highpass, f["hi0_conv"], size)

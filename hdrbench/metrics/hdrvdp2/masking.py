"""Contrast masking of HDR-VDP 2.2.2: self-, cross-orientation and neighbouring-band masking.

For band b (0-based index i here, band_norm = 2^i) and orientation o, with test/reference bands T, R
and the CSF noise N (1 / nCSF, or 1 for the base band):

* mutual masking m = box3x3(min(|T|, |R|)) (zero padding, 'same' size);
* cross-orientation: sum of m over the band's orientations minus its own, floored at 0;
* neighbouring bands: m of band i-1 resized to this band / (band_norm / 2), plus m of band i+1 resized
  / (2 band_norm) when band i+1 is not the base band; both floored at 0. A band with one orientation
  (high-pass, base) stands in for every orientation of its neighbour (MATLAB's ``min(o, count)``);
* N_mask = band_norm (k_self (m / N / band_norm)^q + k_xo (xo / N / band_norm)^q + k_xn (xn / N)^q);
* D = sign_pow((T - R) / band_norm, p) band_norm / sqrt(N^(2p) + N_mask^2).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from . import native, pooling
from .constants import constants
from .fastmath import log_pow_, needs_grad
from .resize import imresize


def sign_pow(x: torch.Tensor, e: float) -> torch.Tensor:
    """sign(x) |x|^e (a new tensor; ``x`` is not modified)."""
    return x.abs().pow_(e).mul_(torch.sign(x))


def psychometric_band(d: torch.Tensor, i: int) -> torch.Tensor:
    """Psychometric exponent of band ``i``: sign_pow(D / band_norm, pf) band_norm (a new tensor)."""
    return sign_pow(d / 2.0**i, constants().pf).mul_(2.0**i)


def mutual_masking(t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(N, O, h, w) bands -> 3x3 box-filtered min(|T|, |R|) (zeros outside the band)."""
    m = F.pad(torch.minimum(t.abs(), r.abs()), (1, 1, 1, 1))
    # Separable 3-tap sums: half the time of avg_pool2d on CPU, bit-equal to it in float64.
    rows = m[..., :, :-2] + m[..., :, 1:-1] + m[..., :, 2:]
    del m
    return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]).div_(9.0)


def _pick_orientations(m: torch.Tensor, n_orient: int) -> torch.Tensor:
    # Orientation o of this band reads orientation min(o, count - 1) of the neighbour.
    k = m.shape[1]
    if k == n_orient:
        return m
    if k == 1:
        return m.expand(-1, n_orient, -1, -1)
    return m[:, :n_orient]


def _neighbours(i: int, n_bands: int, n_orient: int, below: Callable[[], torch.Tensor],
                above: Callable[[], torch.Tensor]) -> list[tuple[torch.Tensor, float]]:
    """The mutual masking of the bands that mask band ``i``, each with the divisor of its term, not yet resized.

    Band i-1 (``below()``) divides by band_norm / 2 when i > 0; band i+1 (``above()``) by 2 band_norm unless it is the
    base band. Each keeps the neighbour's first ``n_orient`` orientations, or its single one, not expanded (it stands
    in for every orientation: MATLAB's ``min(o, count)``).
    """
    band_norm = 2.0**i
    out = []
    if i > 0:
        out.append((below(), band_norm / 2.0))
    if i < n_bands - 2:
        out.append((above(), band_norm * 2.0))
    return [(m if m.shape[1] == 1 else m[:, :n_orient], div) for m, div in out]


def _neighbour_term(resized: list[tuple[torch.Tensor, float]], n_orient: int, like: torch.Tensor) -> torch.Tensor:
    """xn = sum of max(m, 0) / divisor over the resized neighbours (:func:`_neighbours`), with ``n_orient``
    orientations; zeros like ``like`` for a pyramid with only the high-pass and base bands."""
    xn = None
    for m, div in resized:
        term = _pick_orientations(m, n_orient).clamp_min(0.0).div_(div)
        xn = term if xn is None else xn.add_(term)
    return torch.zeros_like(like) if xn is None else xn


def iter_visible_differences(
    bands: list, n: int, noise: Callable[[int], torch.Tensor | float], stages: dict | None = None,
    psychometric: bool = False,
) -> Iterator[tuple]:
    """Per-band normalised visible differences D (before the psychometric exponent), one band at a time.

    Args:
        bands: pyramid bands in HDR-VDP order, each (2N, O_b, h_b, w_b) with the N test images first and the
            N reference images last; the base band (last) already CSF-filtered. To bound memory, each entry is
            replaced by None as soon as it is no longer needed (the caller's list is modified), so only the
            mutual masking of three neighbouring bands is alive at a time.
        n: number of pairs N.
        noise: ``noise(b)`` -> the CSF noise N_nCSF of band b, (N, 1, h_b, w_b), or the float 1.0 (base band);
            called once per band, when the band is reached.
        stages: optional dict that receives intermediate masking terms (for debugging; keeps them all alive).
        psychometric: also yield each band's psychometric version sign_pow(D / band_norm, pf) band_norm.

    Yields:
        (b, D) with D of shape (N, O_b, h_b, w_b), in band order; (b, D, D_psy) with ``psychometric=True``.

    When no band requires a gradient, the powers are computed as exponentials of shared logarithms
    (:mod:`.fastmath`) with in-place arithmetic, and D_psy reuses log |D|; otherwise every step is a
    differentiable ``torch`` operation with ``torch.pow``. Both give the same values up to rounding.
    """
    fast = not needs_grad(*(b for b in bands if b is not None))
    c = constants()
    p, q = c.mask_p, c.mask_q
    n_bands = len(bands)
    mm: dict[int, torch.Tensor] = {}

    def mutual(i: int) -> torch.Tensor:
        if i not in mm:
            mm[i] = mutual_masking(bands[i][:n], bands[i][n:])
        return mm[i]

    for i in range(n_bands):
        band = bands[i]
        t, r = band[:n], band[n:]
        band_norm = 2.0**i
        n_orient = t.shape[1]
        size = tuple(t.shape[-2:])
        self_m = mutual(i)
        xo = (self_m.sum(dim=1, keepdim=True) - self_m).clamp_min_(0.0)
        neighbours = _neighbours(i, n_bands, n_orient, lambda: mm.pop(i - 1), lambda: mutual(i + 1))
        xn = _neighbour_term([(imresize(_pick_orientations(x, n_orient), size), div) for x, div in neighbours],
                             n_orient, self_m)
        del neighbours
        nz = noise(i)
        diff = t - r
        if stages is None:
            del t, r, band
            bands[i] = None  # the band is no longer needed once its masking and difference are taken
            mm.pop(i - 1, None)
        if stages is not None:
            stages.setdefault("band_diff", []).append(diff)
            stages.setdefault("ex_diff", []).append(sign_pow(diff / band_norm, p).mul_(band_norm))
            stages.setdefault("self_mask", []).append(self_m)
            stages.setdefault("mask_xn", []).append(xn.clone() if fast else xn)
        if fast:
            d, d_psy, n_mask = _differences_fast(diff, self_m, xo, xn, nz, i, psychometric,
                                                 keep_n_mask=stages is not None)
        else:
            d, n_mask = _differences_autograd(diff, self_m, xo, xn, nz, i)
            d_psy = psychometric_band(d, i) if psychometric else None
        del xo, xn, diff
        if stages is not None:
            stages.setdefault("N_mask", []).append(n_mask)
            stages.setdefault("D", []).append(d)
        del n_mask
        yield (i, d, d_psy) if psychometric else (i, d)
        del d, d_psy


def native_usable(bands: list, stages: dict | None) -> bool:
    """Whether :func:`iter_band_squares_native` can run: float32 CPU bands, no gradient, no stages kept, and the
    native kernel builds (:mod:`.native`)."""
    return stages is None and native.usable(*(b for b in bands if b is not None))


def iter_band_squares_native(
    bands: list, n: int, noise: Callable[[int], torch.Tensor | float],
    csf_inputs: Callable[[int], tuple[torch.Tensor, torch.Tensor] | None], diff_mask: torch.Tensor,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """The masking of :func:`iter_visible_differences` with the native float32 kernel, band by band.

    Args:
        bands, n, noise: as :func:`iter_visible_differences` (``bands`` entries are released as they are passed;
            ``noise`` is called only for a band whose normalisation overflows float32, see below).
        csf_inputs: ``csf_inputs(b)`` -> (the band's CSF table row, log10 adapting luminance resized to the band),
            which the kernel looks up per pixel as :func:`csf.band_csf` does; None for the base band (noise 1).
        diff_mask: (N, 1, H, W) pixel difference mask (``pooling.difference_mask``).

    Yields:
        (b, sq, D_psy): the (N, O_b) float64 sums over the band of (D dm)^2 (dm the difference mask resized to the
        band; :func:`pooling.band_term_from_squares` turns them into Q terms) and the psychometric band
        sign_pow(D / band_norm, pf) band_norm, (N, O_b, h_b, w_b). A band where N^(2p) + N_mask^2 leaves float32's
        range (extreme contrasts) is computed by the torch code instead, whose ``hypot`` avoids the overflow.
    """
    c = constants()
    n_bands = len(bands)
    mm: dict[int, torch.Tensor] = {}

    def mutual(i: int) -> torch.Tensor:
        if i not in mm:
            mm[i] = native.mutual_masking(bands[i][:n], bands[i][n:])
        return mm[i]

    for i in range(n_bands):
        t, r = bands[i][:n], bands[i][n:]
        n_orient = t.shape[1]
        size = tuple(t.shape[-2:])
        self_m = mutual(i)
        # Neighbouring bands' masking at this band's size. A neighbour with one orientation is resized once and
        # stands in for every orientation inside the kernel.
        neighbours = [(imresize(x, size), div)
                      for x, div in _neighbours(i, n_bands, n_orient, lambda: mm.pop(i - 1), lambda: mutual(i + 1))]
        dm = imresize(diff_mask, size)
        out = native.band(t, r, self_m, [(x, 1.0 / div) for x, div in neighbours], csf_inputs(i), dm, i, c)
        if out is None:  # float32 overflow of the normalisation: the torch code with its hypot fallback
            xo = (self_m.sum(dim=1, keepdim=True) - self_m).clamp_min_(0.0)
            xn = _neighbour_term(neighbours, n_orient, self_m)
            d, d_psy, _ = _differences_fast(t - r, self_m, xo, xn, noise(i), i, True, keep_n_mask=False)
            sq = pooling.band_squares(d, dm)
        else:
            _, d_psy, sq = out
        del t, r, self_m, neighbours, dm, out
        bands[i] = None
        mm.pop(i - 1, None)
        yield i, sq, d_psy


def _differences_autograd(diff, self_m, xo, xn, nz, i):
    """D and N_mask of band ``i`` with differentiable operations (``xo`` is overwritten)."""
    c = constants()
    p, q = c.mask_p, c.mask_q
    band_norm = 2.0**i
    # N_mask = band_norm (k_self (m / (N band_norm))^q + k_xo (xo / (N band_norm))^q + k_xn (xn / N)^q), with the
    # per-pixel 1 / (N band_norm) computed once for the four orientations and the constant gains folded into
    # one scaled sum (fewer passes over the bands; same value up to rounding).
    inv = 1.0 / (nz * band_norm)
    n_mask = torch.pow(self_m * inv, q).mul_(c.k_self * band_norm)
    n_mask = n_mask.add_(xo.mul_(inv).pow_(q), alpha=c.k_xo * band_norm)
    n_mask = n_mask.add_(torch.pow(xn * (inv * band_norm), q), alpha=c.k_xn * band_norm)
    ex = sign_pow(diff / band_norm, p).mul_(band_norm)
    n_p = nz**p if isinstance(nz, torch.Tensor) else torch.full_like(n_mask[:, :1], float(nz) ** p)
    # hypot(a, b) = sqrt(a^2 + b^2) without overflowing float32 for large N^(2p) or N_mask^2.
    den = torch.hypot(n_p.expand_as(n_mask), n_mask)
    return ex / den, n_mask


def _differences_fast(diff, self_m, xo, xn, nz, i, psychometric: bool, keep_n_mask: bool):
    """D, D_psy (None unless ``psychometric``) and N_mask (None unless ``keep_n_mask``) of band ``i`` without autograd.

    Same formulas as :func:`_differences_autograd` written with logarithms (b = band_norm, lb = ln b):

    * each term k x^q / (N b)^q of N_mask (times b) is exp(q ln x + [ln(k b) - q ln N - q lb]), the bracket being
      one (N, 1, h, w) plane shared by the orientations; ``xo`` and ``xn`` are overwritten by their logs;
    * ln |D| = p ln|diff| + (1 - p) lb - ln hypot(N^p, N_mask), so D = sign(diff) exp(ln |D|) and
      D_psy = sign(D) |D / b|^pf b = sign(diff) exp(pf ln|D| + (1 - pf) lb) share ln |D|.

    A zero ``diff`` gives ln|diff| = -inf and D = D_psy = 0, as ``sign_pow`` does; zero masking terms give 0.
    """
    c = constants()
    p, q, pf = c.mask_p, c.mask_q, c.pf
    lb = math.log(2.0) * i
    if isinstance(nz, torch.Tensor):
        log_nz = torch.log(nz)
        n_p = torch.exp(log_nz * p)
        plane = log_nz.mul_(-q)  # -q ln N, (N, 1, h, w)
    else:
        n_p = torch.full_like(self_m[:, :1], float(nz) ** p)
        plane = torch.full_like(self_m[:, :1], -q * math.log(float(nz)))
    n_mask = log_pow_(torch.log(self_m), q, plane + (math.log(c.k_self) + (1.0 - q) * lb))
    n_mask += log_pow_(torch.log_(xo), q, plane + (math.log(c.k_xo) + (1.0 - q) * lb))
    n_mask += log_pow_(torch.log_(xn), q, plane.add_(math.log(c.k_xn) + lb))
    del plane
    # ln den = ln hypot(N^p, N_mask) = ln(N^(2p) + N_mask^2) / 2: one fused multiply-add and the log, instead of hypot
    # (about ten times the cost of the multiply-add on the CPU, measured), unless the sum of squares overflows or the
    # smallest N^(2p) is subnormal (possible only in float32, for extreme contrasts): then hypot, which avoids both.
    n_p2 = n_p * n_p
    den2 = torch.addcmul(n_p2, n_mask, n_mask)
    if bool(torch.isfinite(den2.amax())) and float(n_p2.amin()) >= torch.finfo(den2.dtype).tiny:
        log_den2 = den2.log_()
    else:
        log_den2 = torch.hypot(n_p.expand_as(n_mask), n_mask).log_().mul_(2.0)
    del den2, n_p2
    if not keep_n_mask:
        n_mask = None
    # x = ln|D| / p = ln|diff| - ln(den) / p + (1 - p) lb / p, kept as ln|diff| - ln(den) / p with the constant added
    # in the exponents below (one pass less over the band).
    x = torch.abs(diff).log_().sub_(log_den2, alpha=0.5 / p)
    del log_den2
    const = (1.0 - p) * lb  # ln|D| = p x + const
    d = torch.add(x.new_tensor(const), x, alpha=p).exp_().copysign_(diff)
    d_psy = None
    if psychometric:
        d_psy = torch.add(x.new_tensor(pf * const + (1.0 - pf) * lb), x, alpha=pf * p, out=x)
        d_psy = d_psy.exp_().copysign_(diff)
    return d, d_psy, n_mask


def visible_differences(
    test_bands: list[torch.Tensor], ref_bands: list[torch.Tensor], noise: list[torch.Tensor | float], stages: dict | None = None
) -> list[torch.Tensor]:
    """All bands' D at once (see :func:`iter_visible_differences`; the inputs are left unchanged).

    Args:
        test_bands, ref_bands: pyramid bands in HDR-VDP order, each (N, O_b, h_b, w_b); the base band
            (last) already CSF-filtered.
        noise: per band the CSF noise N_nCSF, (N, 1, h_b, w_b) or the float 1.0 (base band).
        stages: optional dict that receives intermediate masking terms (for debugging).

    Returns:
        list of (N, O_b, h_b, w_b) tensors D.
    """
    bands = [torch.cat([t, r]) for t, r in zip(test_bands, ref_bands)]
    n = test_bands[0].shape[0]
    return [d for _, d in iter_visible_differences(bands, n, lambda i: noise[i], stages)]

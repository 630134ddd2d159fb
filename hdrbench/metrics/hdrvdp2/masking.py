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

import torch
import torch.nn.functional as F

from .constants import constants
from .resize import imresize


def sign_pow(x: torch.Tensor, e: float) -> torch.Tensor:
    """sign(x) |x|^e."""
    return torch.sign(x) * x.abs().pow(e)


def mutual_masking(t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(N, O, h, w) bands -> 3x3 box-filtered min(|T|, |R|) (zeros outside the band)."""
    m = F.pad(torch.minimum(t.abs(), r.abs()), (1, 1, 1, 1))
    # Separable 3-tap sums: half the time of avg_pool2d on CPU, bit-equal to it in float64.
    rows = m[..., :, :-2] + m[..., :, 1:-1] + m[..., :, 2:]
    return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) / 9.0


def _pick_orientations(m: torch.Tensor, n_orient: int) -> torch.Tensor:
    # Orientation o of this band reads orientation min(o, count - 1) of the neighbour.
    k = m.shape[1]
    if k == n_orient:
        return m
    if k == 1:
        return m.expand(-1, n_orient, -1, -1)
    return m[:, :n_orient]


def visible_differences(
    test_bands: list[torch.Tensor], ref_bands: list[torch.Tensor], noise: list[torch.Tensor | float], stages: dict | None = None
) -> list[torch.Tensor]:
    """Per-band normalised visible differences D (before the psychometric exponent).

    Args:
        test_bands, ref_bands: pyramid bands in HDR-VDP order, each (N, O_b, h_b, w_b); the base band
            (last) already CSF-filtered.
        noise: per band the CSF noise N_nCSF, (N, 1, h_b, w_b) or the float 1.0 (base band).
        stages: optional dict that receives intermediate masking terms (for debugging).

    Returns:
        list of (N, O_b, h_b, w_b) tensors D.
    """
    c = constants()
    p, q = c.mask_p, c.mask_q
    n_bands = len(test_bands)
    mm = [mutual_masking(t, r) for t, r in zip(test_bands, ref_bands)]
    out = []
    for i, (t, r) in enumerate(zip(test_bands, ref_bands)):
        band_norm = 2.0**i
        n_orient = t.shape[1]
        size = tuple(t.shape[-2:])
        self_m = mm[i]
        xo = (self_m.sum(dim=1, keepdim=True) - self_m).clamp_min(0.0)
        parts = []
        if i > 0:
            parts.append(imresize(_pick_orientations(mm[i - 1], n_orient), size).clamp_min(0.0) / (band_norm / 2.0))
        if i < n_bands - 2:
            parts.append(imresize(_pick_orientations(mm[i + 1], n_orient), size).clamp_min(0.0) / (band_norm * 2.0))
        if not parts:  # a pyramid with only the high-pass and base bands
            xn = torch.zeros_like(self_m)
        else:
            xn = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        n = noise[i]
        # N_mask = band_norm (k_self (m / (N band_norm))^q + k_xo (xo / (N band_norm))^q + k_xn (xn / N)^q), with the
        # per-pixel 1 / (N band_norm) computed once for the four orientations and the constant gains folded into
        # one scaled sum (fewer passes over the bands; same value up to rounding).
        inv = 1.0 / (n * band_norm)
        n_mask = torch.pow(self_m * inv, q).mul_(c.k_self * band_norm)
        n_mask = n_mask.add_(torch.pow(xo * inv, q), alpha=c.k_xo * band_norm)
        n_mask = n_mask.add_(torch.pow(xn * (inv * band_norm), q), alpha=c.k_xn * band_norm)
        ex = sign_pow((t - r) / band_norm, p) * band_norm
        n_p = n ** p if isinstance(n, torch.Tensor) else torch.full_like(n_mask, float(n) ** p)
        # hypot(a, b) = sqrt(a^2 + b^2) without overflowing float32 for large N^(2p) or N_mask^2.
        d = ex / torch.hypot(n_p.expand_as(n_mask), n_mask)
        if stages is not None:
            stages.setdefault("band_diff", []).append(t - r)
            stages.setdefault("ex_diff", []).append(ex)
            stages.setdefault("self_mask", []).append(self_m)
            stages.setdefault("mask_xn", []).append(xn)
            stages.setdefault("N_mask", []).append(n_mask)
            stages.setdefault("D", []).append(d)
        out.append(d)
    return out

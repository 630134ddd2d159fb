"""Pooling of HDR-VDP 2.2.2: the quality correlate Q and the probability-of-detection map.

* Q = 100 - sum over bands and orientations of w_f(band) (ln(msre(D_p) + 1e-12) - ln(1e-12)), with
  msre(X) = sqrt(sum X^2) / numel(X) and D_p = D times the bicubic-resized pixel difference mask. The
  weights w_f are interpolated linearly over the band frequency (clamped to [0.1172, 60] cpd). Sums
  are accumulated in float64 whatever the input dtype.
* P_map = 1 - exp(ln(0.5) S), with S = |reconstruction of sign_pow(D / band_norm, pf) band_norm| after
  spatial pooling S <- (sum S / (max S + 1e-12)) S.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .constants import EPSILON_Q, LOG_HALF, constants
from .resize import imresize


def band_weights(freqs: np.ndarray) -> np.ndarray:
    """Quality weights w_f of bands at ``freqs`` (cpd)."""
    c = constants()
    f = np.clip(np.asarray(freqs, dtype=np.float64), c.quality_band_freq[-1], c.quality_band_freq[0])
    # np.interp needs increasing abscissae; the table is stored from high to low frequency.
    return np.interp(f, c.quality_band_freq[::-1], c.quality_band_w[::-1])


def difference_mask(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) inputs -> (N, 1, H, W) 1.0 where any channel differs by more than 0.1 % of the reference."""
    rel = (test - reference).abs() / reference  # 0/0 -> NaN compares False; x/0 -> inf compares True
    return (rel > 0.001).any(dim=1, keepdim=True).to(test.dtype)


def band_term(d: torch.Tensor, diff_mask: torch.Tensor, weight: float) -> torch.Tensor:
    """Q terms of one band: w_f (ln(msre(D_p) + eps) - ln(eps)) per image and orientation.

    Args:
        d: (N, O, h, w) visible differences D of the band.
        diff_mask: (N, 1, H, W) pixel difference mask at full resolution (resized here to (h, w)).
        weight: the band's quality weight w_f.

    Returns:
        (N, O) float64 terms.
    """
    dm = imresize(diff_mask, tuple(d.shape[-2:]))
    return band_term_from_squares(band_squares(d, dm), tuple(d.shape[-2:]), weight)


def band_squares(d: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
    """(N, O) float64 sums over the band of D_p^2 = (D dm)^2, for (N, O, h, w) ``d`` and the difference mask ``dm``
    already resized to the band, (N, 1, h, w). One orientation at a time: the float64 copy is then a quarter of the
    band (same sums per orientation)."""
    sq = []
    for o in range(d.shape[1]):
        dp = (d[:, o : o + 1] * dm).to(torch.float64)
        sq.append((dp * dp).sum(dim=(-2, -1)))
        del dp
    return torch.cat(sq, dim=1)


def band_term_from_squares(sq: torch.Tensor, size: tuple[int, int], weight: float) -> torch.Tensor:
    """Q terms of one band from its sums of squares: w_f (ln(sqrt(sq) / (h w) + eps) - ln(eps)).

    Args:
        sq: (N, O) float64 sums over the band of D_p^2 (D times the resized difference mask).
        size: the band's (h, w).
        weight: the band's quality weight w_f.

    Returns:
        (N, O) float64 terms.
    """
    msre = torch.sqrt(sq) / (size[0] * size[1])
    return float(weight) * (torch.log(msre + EPSILON_Q) - math.log(EPSILON_Q))


def band_terms(d_bands: list[torch.Tensor], diff_mask: torch.Tensor, freqs: np.ndarray) -> torch.Tensor:
    """Per band and orientation Q terms w_f (ln(msre(D_p) + eps) - ln(eps)).

    Returns:
        (N, B, 4) float64 tensor; orientations a band does not have are 0.
    """
    w = band_weights(freqs)
    n = d_bands[0].shape[0]
    terms = torch.zeros((n, len(d_bands), 4), dtype=torch.float64, device=d_bands[0].device)
    for i, d in enumerate(d_bands):
        terms[:, i, : d.shape[1]] = band_term(d, diff_mask, float(w[i]))
    return terms


def quality(terms: torch.Tensor) -> torch.Tensor:
    """(N, B, 4) band terms -> (N,) Q (100 for identical images)."""
    return 100.0 - terms.sum(dim=(1, 2))


def detection_maps(s_raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) |reconstruction| -> (P_map, C_map), both (N, H, W), with spatial pooling."""
    s = s_raw[:, 0]
    total = s.sum(dim=(-2, -1), keepdim=True)
    peak = s.amax(dim=(-2, -1), keepdim=True)
    c_map = total / (peak + 1e-12) * s
    p_map = 1.0 - torch.exp(LOG_HALF * c_map)
    return p_map, c_map

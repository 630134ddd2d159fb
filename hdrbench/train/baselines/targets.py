"""Training inputs and targets of the baselines, built from the trainer's batch (stack + HDR).

Direct methods learn HDR in their own normalisation:

* ExpandNet: the ground-truth HDR min-max mapped to [0, 1] per image (the official ``map_range``);
* HDRCNN: the ground-truth HDR scaled so that it agrees with the input's gamma-2 linearisation x^2 on
  well-exposed pixels (the median of log(x^2 / HDR) over them), the scale HDRCNN's output blend assumes;
* SingleHDR: inputs re-simulated from the ground-truth HDR with a random exposure and a random inverse
  camera response (the official HDR-Synth protocol), which yields the intermediate targets its stages need.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from hdrbench.errors import InputError
from hdrbench.models.baselines.singlehdr import CURVE_SAMPLES, apply_curve, monotone_curve


def ev_index(evs, ev: float) -> int:
    """Index of ``ev`` in the batch's EV list (raises naming the list when absent)."""
    values = [float(e) for e in torch.as_tensor(evs).reshape(-1).tolist()]
    for i, e in enumerate(values):
        if abs(e - ev) < 1e-6:
            return i
    raise InputError(f"training batch has no EV {ev:g} frame; batch evs = {values}")


def batch_stack(batch: Mapping[str, Any]) -> torch.Tensor:
    """The batch's stack (B, E, 3, H, W), checked."""
    stack = batch.get("stack")
    if not isinstance(stack, torch.Tensor) or stack.ndim != 5 or stack.shape[2] != 3:
        raise InputError(f"training batch 'stack' must be (B, E, 3, H, W), got "
                         f"{tuple(stack.shape) if isinstance(stack, torch.Tensor) else type(stack).__name__}")
    return stack


def batch_hdr(batch: Mapping[str, Any], method: str) -> torch.Tensor:
    """The batch's ground-truth HDR (B, 3, H, W); direct methods cannot train without it."""
    hdr = batch.get("hdr")
    if not isinstance(hdr, torch.Tensor) or hdr.ndim != 4 or hdr.shape[1] != 3:
        raise InputError(f"{method} trains against ground-truth HDR: the batch needs 'hdr' (B, 3, H, W); "
                         "use a dataset with HDR images")
    if not torch.isfinite(hdr).all():
        raise InputError(f"{method}: ground-truth HDR in the batch contains NaN/Inf")
    return hdr.clamp_min(0.0)


def minmax_normalise(hdr: torch.Tensor) -> torch.Tensor:
    """Per-image (x - min) / (max - min) of (N, C, H, W) -> [0, 1] (ExpandNet's ``map_range``)."""
    lo = hdr.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = hdr.flatten(1).amax(1).view(-1, 1, 1, 1)
    return (hdr - lo) / (hi - lo).clamp_min(1e-12)


def align_to_ldr(hdr: torch.Tensor, ldr_linear: torch.Tensor, ldr: torch.Tensor, low: float = 0.05,
                 high: float = 0.9) -> torch.Tensor:
    """Scale each HDR image so that it matches a linearised LDR image on well-exposed pixels.

    Args:
        hdr: (N, 3, H, W) linear relative HDR.
        ldr_linear: (N, 3, H, W) linearised input (e.g. x^2 for HDRCNN).
        ldr: (N, 3, H, W) the display-encoded input in [0, 1] (selects well-exposed pixels).
        low, high: a pixel is well exposed when all channels lie in (low, high).

    Returns:
        ``hdr * s`` with ``s = exp(median(log ldr_linear - log hdr))`` over well-exposed pixels (all
        non-saturated pixels when fewer than 16 are well exposed; s = 1 when none is usable).
    """
    out = []
    for h, xl, x in zip(hdr, ldr_linear, ldr):
        good = (x.amin(0) > low) & (x.amax(0) < high) & (h.amin(0) > 0)
        if good.sum() < 16:
            good = (x.amax(0) < high) & (h.amin(0) > 0) & (xl.amin(0) > 0)
        if good.sum() == 0:
            out.append(h)
            continue
        ratio = torch.log(xl[:, good].clamp_min(1e-8)) - torch.log(h[:, good].clamp_min(1e-8))
        out.append(h * torch.exp(ratio.median()))
    return torch.stack(out)


def random_inverse_crfs(n: int, generator: torch.Generator, basis: Mapping[str, torch.Tensor] | None,
                        n_coeffs: int = 11) -> torch.Tensor:
    """Random monotone inverse camera responses (n, 1024) on the uniform grid of [0, 1].

    With an inverse-EMoR ``basis`` the coefficients are drawn N(0, 3 * 2^-k) for basis curve k = 0..10
    (a spread chosen here so that the curves range from near-linear to strongly compressive; the official
    protocol samples measured responses instead); without one, gamma curves x^g with g ~ U(1.8, 2.6).
    """
    grid = torch.linspace(0.0, 1.0, CURVE_SAMPLES)
    if basis is None:
        gam = 1.8 + 0.8 * torch.rand(n, 1, generator=generator)
        return grid.view(1, -1) ** gam
    sigma = 3.0 * 0.5 ** torch.arange(n_coeffs, dtype=torch.float32)
    coeffs = torch.randn(n, n_coeffs, generator=generator) * sigma
    return monotone_curve(basis["mean"].view(1, -1) + coeffs @ basis["basis"][:n_coeffs])


def invert_curves(curves: torch.Tensor) -> torch.Tensor:
    """Forward responses (n, 1024) from monotone inverse responses (n, 1024), both on the grid of [0, 1]."""
    grid = torch.linspace(0.0, 1.0, curves.shape[1], dtype=curves.dtype)
    out = []
    for g in curves:
        # g is non-decreasing; for each irradiance find z with g(z) = irradiance by linear interpolation.
        idx = torch.searchsorted(g.contiguous(), grid.contiguous()).clamp(1, len(g) - 1)
        g0, g1 = g[idx - 1], g[idx]
        t = ((grid - g0) / (g1 - g0).clamp_min(1e-12)).clamp(0, 1)
        out.append(grid[idx - 1] + t * (grid[idx] - grid[idx - 1]))
    return torch.stack(out)


def simulate_singlehdr(hdr: torch.Tensor, generator: torch.Generator,
                       basis: Mapping[str, torch.Tensor] | None, n_coeffs: int = 11) -> dict[str, torch.Tensor]:
    """SingleHDR training sample from ground-truth HDR: random exposure, clipping, random CRF, 8-bit quantisation.

    Args:
        hdr: (N, 3, H, W) linear relative HDR (any device).
        generator: CPU generator (the draws do not depend on the device).
        basis: inverse-EMoR basis dict, or None for gamma curves.

    Returns:
        ``hdr`` (scaled ground truth), ``linear`` (clipped to [0, 1]: the Linearisation target B),
        ``ldr_float`` (before quantisation: the Dequantisation target), ``ldr`` (8-bit input),
        ``curve`` (N, 1024) the true inverse CRF.
    """
    n = hdr.shape[0]
    # Exposure: a random 90-99 % quantile of the brightest channel maps to full scale, so that 1-10 % clip.
    q = 0.90 + 0.09 * torch.rand(n, generator=generator)
    peak = torch.stack([torch.quantile(h.amax(0).flatten().float().cpu(), float(qq)) for h, qq in zip(hdr, q)])
    scale = (1.0 / peak.clamp_min(1e-8)).to(hdr).view(-1, 1, 1, 1)
    scaled = hdr * scale
    linear = scaled.clamp(0.0, 1.0)
    curve = random_inverse_crfs(n, generator, basis, n_coeffs).to(hdr)
    forward = invert_curves(curve.cpu()).to(hdr)
    ldr_float = apply_curve(linear, forward)
    ldr = torch.round(ldr_float * 255.0) / 255.0
    return {"hdr": scaled, "linear": linear, "ldr_float": ldr_float, "ldr": ldr, "curve": curve}


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) to (size, size); returns ``x`` when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

"""Photoreceptor stage: spectral responses (L, M, S, rod), adapting luminance and the transducer.

The responses are ``R = L_optics @ M`` per pixel with the channel -> receptor matrix ``M`` of the
colour encoding (``constants.M_rgb`` for BT.709 RGB on a CCFL-backlit LCD, ``constants.M_lum`` for
luminance with the D65 spectrum). The adapting luminance is ``R_L + R_M``. Each response is mapped
through a transducer table (cumulative sensitivity in JND units, cones for L and M, rods for the rod
channel; S is ignored) with linear interpolation in log10 luminance, exactly like matlabPyrTools'
``pointOp``: out-of-range positions extrapolate from the first/last interval.
"""

from __future__ import annotations

import torch

from . import native
from .constants import constants
from .fastmath import gather

_LUT_CACHE: dict = {}


def _lut(name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (name, dtype, str(device))
    t = _LUT_CACHE.get(key)
    if t is None:
        c = constants()
        src = {"cone": c.pn_cone, "rod": c.pn_rod, "M_rgb": c.M_rgb, "M_lum": c.M_lum}[name]
        with torch.inference_mode(False):  # a normal tensor even when first built under torch.inference_mode, so later autograd calls can use it
            t = torch.from_numpy(src).to(device=device, dtype=dtype)
        _LUT_CACHE[key] = t
    return t


def receptor_matrix(n_channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(C, 4) matrix from C = 3 (BT.709 RGB) or C = 1 (luminance) channels to (L, M, S, rod)."""
    return _lut("M_rgb" if n_channels == 3 else "M_lum", dtype, device)


def receptor_responses(l_optics: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) retinal image in cd/m^2 -> (N, 4, H, W) L, M, S and rod responses."""
    m = receptor_matrix(l_optics.shape[1], l_optics.dtype, l_optics.device)
    n, c, h, w = l_optics.shape
    # (4, C) @ (N, C, H W): one matrix product that writes the (N, 4, H, W) layout directly; an einsum over
    # "nchw,cr->nrhw" permuted to channels-last and back (several times slower on the CPU, measured).
    return torch.matmul(m.transpose(0, 1), l_optics.reshape(n, c, h * w)).reshape(n, m.shape[1], h, w)


def point_op(x: torch.Tensor, table: torch.Tensor, origin: float, step: float) -> torch.Tensor:
    """Piecewise-linear table lookup on a uniform grid ``origin + i * step`` (matlabPyrTools ``pointOp``).

    The interval index is ``floor((x - origin) / step)`` clamped to [0, n - 2]; values outside the grid
    are extrapolated linearly from the end intervals.
    """
    pos = (x - origin).div_(step)
    idx = torch.floor(pos.detach()).clamp_(0, table.numel() - 2)
    i = idx.long()
    frac = pos.sub_(idx)
    del idx, pos
    # One gather per table instead of two, and the float index reused: same arithmetic as t0 + (t1 - t0) * frac
    # (in place on the temporaries, which bounds the full-size intermediates to about four).
    slope = table[1:] - table[:-1]
    return gather(slope, i).mul_(frac).add_(gather(table, i))


def transducer_responses(r_lmsr: torch.Tensor) -> torch.Tensor:
    """Photoreceptor non-linearity before mean removal.

    Args:
        r_lmsr: (N, 4, H, W) receptor responses (L, M, S, rod), cd/m^2-like units.

    Returns:
        (N, 3, H, W) responses in JND units: cone table for L and M, rod table for the rod channel.
        Inputs are clamped to [1e-5, 1e5] (the table's range) before log10.
    """
    c = constants()
    lo, hi = 1e-5, 1e5  # the table's luminance grid ends (logspace(-5, 5, 2048))
    cone = _lut("cone", r_lmsr.dtype, r_lmsr.device)
    rod = _lut("rod", r_lmsr.dtype, r_lmsr.device)
    log_r = torch.log10(r_lmsr[:, (0, 1, 3)].clamp(lo, hi))
    p_lm = point_op(log_r[:, 0:2], cone, c.pn_first, c.pn_step)
    p_r = point_op(log_r[:, 2:3], rod, c.pn_first, c.pn_step)
    return torch.cat([p_lm, p_r], dim=1)


def transduce(r_lmsr: torch.Tensor) -> torch.Tensor:
    """Achromatic response with the per-image mean removed from the cone and rod paths separately.

    Args:
        r_lmsr: (N, 4, H, W) receptor responses.

    Returns:
        (N, 1, H, W) ``P = (P_L + P_M - mean) + (P_rod - mean)`` in JND units. The same values as
        :func:`transducer_responses` followed by the sums, computed one receptor at a time to bound memory.
    """
    c = constants()
    lo, hi = 1e-5, 1e5  # the table's luminance grid ends (logspace(-5, 5, 2048))
    cone = _lut("cone", r_lmsr.dtype, r_lmsr.device)
    rod = _lut("rod", r_lmsr.dtype, r_lmsr.device)

    def response(k: int, table: torch.Tensor) -> torch.Tensor:
        return point_op(torch.log10(r_lmsr[:, k : k + 1].clamp(lo, hi)), table, c.pn_first, c.pn_step)

    p_c = response(0, cone)
    p_c = p_c + response(1, cone)
    p_c = p_c - p_c.mean(dim=(-2, -1), keepdim=True)
    p_r = response(3, rod)
    p_r = p_r - p_r.mean(dim=(-2, -1), keepdim=True)
    return p_c + p_r


def adapting_luminance(r_lmsr: torch.Tensor) -> torch.Tensor:
    """(N, 4, H, W) receptor responses -> (N, 1, H, W) adapting luminance ``R_L + R_M``."""
    return r_lmsr[:, 0:1] + r_lmsr[:, 1:2]


def transduce_with_adaptation(l_optics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`transduce` and :func:`adapting_luminance` of the receptor responses of ``l_optics`` in one call.

    Args:
        l_optics: (N, C, H, W) retinal image in cd/m^2.

    Returns:
        ``(P, L_adapt)``, both (N, 1, H, W). For float32 CPU tensors without gradients the native kernel computes
        them in one pass per pixel (:func:`native.receptors`; the means in float64); otherwise the torch code.
    """
    if not native.usable(l_optics) or l_optics.shape[1] not in (1, 3):
        r_lmsr = receptor_responses(l_optics)
        return transduce(r_lmsr), adapting_luminance(r_lmsr)
    c = constants()
    m = receptor_matrix(l_optics.shape[1], l_optics.dtype, l_optics.device)
    cone = _lut("cone", l_optics.dtype, l_optics.device)
    rod = _lut("rod", l_optics.dtype, l_optics.device)
    p_c, p_r, l_adapt, sums = native.receptors(l_optics, m, cone, rod, c.pn_first, c.pn_step)
    mean = (sums / (p_c.shape[-2] * p_c.shape[-1])).to(p_c.dtype)
    return p_c.sub_(mean[:, 0].view(-1, 1, 1, 1)).add_(p_r.sub_(mean[:, 1].view(-1, 1, 1, 1))), l_adapt

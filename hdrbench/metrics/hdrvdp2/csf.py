"""Neural contrast sensitivity (nCSF) of HDR-VDP 2.2.2: per-band tables, per-pixel lookup, base band filter.

nCSF(rho, L) = p4 / sqrt((1 + (p1 rho)^p2) / (1 - exp(-(rho / 7)^2))^p3), rho in cycles/degree and
L the adapting luminance in cd/m^2. The four parameters are interpolated linearly in log10 L between
the six calibrated luminances (0.002 .. 150 cd/m^2) and held constant outside them. nCSF(0, L) = 0.
"""

from __future__ import annotations

import numpy as np
import torch

from .constants import constants
from .fastmath import gather
from .optics import cycdeg_image, fast_conv_fft
from .resize import imresize

N_LA = 256  # adapting-luminance samples of the per-band tables (logspace(-5, 5, 256))


def _interp_params(log_l: torch.Tensor) -> list[torch.Tensor]:
    """p1..p4 at log10 luminance ``log_l`` (any shape): linear in log10 L, clamped to the table range."""
    c = constants()
    xs = np.log10(c.csf_lums)
    x = log_l.clamp(float(xs[0]), float(xs[-1]))
    out = []
    for k in range(1, 5):
        ys = c.csf_params[:, k]
        val = torch.full_like(x, float(ys[0]))
        # Piecewise-linear: add each segment's slope times the clamped distance covered inside it.
        for i in range(len(xs) - 1):
            seg = (x - float(xs[i])).clamp(0.0, float(xs[i + 1] - xs[i]))
            val = val + seg * float((ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]))
        out.append(val)
    return out


def ncsf(rho: torch.Tensor, lum: torch.Tensor) -> torch.Tensor:
    """Neural CSF at frequency ``rho`` (cpd) and adapting luminance ``lum`` (cd/m^2); broadcasting.

    Returns sensitivity (1 / threshold contrast); exactly 0 where rho == 0.
    """
    p1, p2, p3, p4 = _interp_params(torch.log10(lum))
    zero = rho == 0
    r = torch.where(zero, torch.ones_like(rho), rho)  # keeps the gradient finite at DC
    s = p4 / torch.sqrt((1.0 + (p1 * r) ** p2) / (1.0 - torch.exp(-((r / 7.0) ** 2))) ** p3)
    return torch.where(zero, torch.zeros_like(s), s)


def band_frequencies(ppd: float, height: int) -> np.ndarray:
    """Peak frequency (cpd) of each of the height + 2 bands: ppd / 2, ppd / 4, ... (base band last)."""
    return 2.0 ** -np.arange(height + 2) * ppd / 2.0


_TABLE_CACHE: dict = {}


def csf_table(freqs: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(B, 256) nCSF of each band frequency at L_a = logspace(-5, 5, 256) cd/m^2 (cached)."""
    key = (tuple(float(f) for f in freqs), dtype, str(device))
    t = _TABLE_CACHE.get(key)
    if t is None:
        if len(_TABLE_CACHE) > 64:
            _TABLE_CACHE.clear()
        la = torch.logspace(-5, 5, N_LA, dtype=torch.float64)
        rho = torch.as_tensor(np.asarray(freqs, dtype=np.float64))[:, None]
        with torch.inference_mode(False):  # a normal tensor even when first built under torch.inference_mode, so later autograd calls can use it
            t = ncsf(rho, la[None, :]).to(device=device, dtype=dtype)
        _TABLE_CACHE[key] = t
    return t


def lookup(table_row: torch.Tensor, log_la: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of one band's table at log10 adapting luminance ``log_la`` (clamped to [-5, 5])."""
    step = 10.0 / (N_LA - 1)
    pos = (log_la.clamp(-5.0, 5.0) + 5.0) / step
    idx = torch.floor(pos.detach()).clamp_(0, N_LA - 2)
    i = idx.long()
    slope = table_row[1:] - table_row[:-1]
    return gather(table_row, i) + gather(slope, i) * (pos - idx)


def band_csf(table_row: torch.Tensor, log_la: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-pixel nCSF of one band: bicubic-resize log10 L_a (N, 1, H, W) to ``size``, clamp, look up."""
    return lookup(table_row, imresize(log_la, size).clamp(-5.0, 5.0))


def band_inputs(table_row: torch.Tensor, log_la: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`band_csf` looks up, for a kernel that does the lookup itself: (table row, log10 L_a (N, 1, H, W)
    bicubic-resized to ``size``, not yet clamped)."""
    return table_row, imresize(log_la, size)


_BB_RHO: dict = {}


def filter_base_band(bb: torch.Tensor, freq: float, l_mean: torch.Tensor, pad_value: torch.Tensor) -> torch.Tensor:
    """CSF-filter the low-pass residual like HDR-VDP's visual pathway.

    Args:
        bb: (N, 1, h, w) base band.
        freq: the base band's frequency (cpd); the filter's canvas is sampled at 2 sqrt(2) freq ppd.
        l_mean: (N,) mean adapting luminance of the image the band belongs to (cd/m^2).
        pad_value: (N,) padding value (mean base band of the reference, shared by test and reference).

    Returns:
        (N, 1, h, w) filtered base band.
    """
    h, w = bb.shape[-2:]
    key = (h, w, float(freq), bb.dtype, str(bb.device))
    rho = _BB_RHO.get(key)
    if rho is None:
        if len(_BB_RHO) > 64:
            _BB_RHO.clear()
        full = cycdeg_image((2 * h, 2 * w), freq * 2.0 * np.sqrt(2.0))
        rho = torch.from_numpy(np.ascontiguousarray(full[:, : w + 1])).to(device=bb.device, dtype=bb.dtype)
        _BB_RHO[key] = rho
    kern = ncsf(rho, l_mean.to(bb.dtype).reshape(-1, 1, 1, 1))
    return fast_conv_fft(bb, kern, pad_value.reshape(-1, 1, 1, 1))

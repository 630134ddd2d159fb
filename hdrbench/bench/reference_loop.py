"""Slow baseline: the appendix's per-image, per-channel synthesis layer, written as plain loops.

This follows the logic of the listing in appendix D of the reference paper and of the official layer
(HDR Toolbox ``BuildHDR`` with a tabulated inverse CRF, Deb97 weights, log merge): every image plane
is linearised by its own autograd call, whose slope list is rebuilt in Python from the table, and the
merge loops over exposures and channels. Its backward is the official one (per-code differences not
scaled by 255; the slope for code 0 is the code of the plane's first pixel), so
``merge_stack(..., slope="official")`` must reproduce its gradients exactly.

It exists to be timed against :func:`hdrbench.imaging.synthesis.merge_stack` (``hdrbench bench merge``)
and as an independent check of the vectorised layer; do not use it for anything else.
"""

from __future__ import annotations

import torch
from torch.autograd import Function


class LoopPiecewiseLinear(Function):
    """One plane through one table: forward ``table[round(255 x)]``, backward the listing's slope."""

    @staticmethod
    def forward(ctx, x, table):
        codes = torch.round(x * 255).long()
        result = table[codes]
        flat = codes.flatten()
        # The listing's slope list: the first entry is the first pixel's code, then table[i+1] - table[i].
        slope = torch.tensor([float(flat[0])] + [float(a - b) for a, b in zip(table[1:], table[:-1])], dtype=x.dtype)
        ctx.save_for_backward(slope[codes])
        return result

    @staticmethod
    def backward(ctx, grad_output):
        (slope_x,) = ctx.saved_tensors
        return grad_output * slope_x, None


def tabled_function(images: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Linearise ``images`` ``(E, C, H, W)`` in [0, 1] through ``table`` ``(C, 256)``, one plane at a time."""
    planes = []
    for i in range(images.shape[0]):
        planes.append(torch.stack([LoopPiecewiseLinear.apply(images[i, j], table[j]) for j in range(images.shape[1])]))
    return torch.stack(planes)


def deb97(x: torch.Tensor) -> torch.Tensor:
    """Debevec 1997 triangle weight with bounds [0, 1], computed without gradient."""
    x = x.detach()
    w = torch.where(x <= 0.5, x, 1.0 - x) / 0.5
    return w.clamp(0.0, 1.0)


def loop_merge(stack: torch.Tensor, exposure_times: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Merge ``stack`` ``(N, E, C, H, W)`` with times ``(E,)`` (ascending) and tables ``(N, C, 256)`` -> ``(N, C, H, W)``.

    Log-domain merge with Deb97 weights, linearised values floored at 1e-7, ``1e-9`` in the denominator
    and the saturation fallback (total weight <= 1e-4) of the reference.
    """
    outs = []
    n_exp = stack.shape[1]
    for n in range(stack.shape[0]):
        lin = tabled_function(stack[n], tables[n]).clamp_min(1e-7)
        channels = []
        for c in range(stack.shape[2]):
            num = torch.zeros_like(stack[n, 0, c])
            den = torch.zeros_like(stack[n, 0, c])
            for e in range(n_exp):
                w = deb97(stack[n, e, c])
                num = num + w * (torch.log(lin[e, c]) - torch.log(exposure_times[e]))
                den = den + w
            hdr = torch.exp(num / (den + 1e-9))
            mid = stack[n, n_exp // 2, c].detach()
            low = den <= 1e-4
            hdr = torch.where(low & (mid > 0.5), lin[0, c] / exposure_times[0], hdr)
            hdr = torch.where(low & (mid < 0.5), lin[-1, c] / exposure_times[-1], hdr)
            channels.append(hdr)
        outs.append(torch.stack(channels))
    return torch.stack(outs)

"""The synthesis layer's common case as one autograd node: tabulated inverse CRF, nearest lookup, log merge.

For ``merge_stack(..., lookup="nearest", slope="centred", merge="log")`` with detached weights, the
whole chain ``x -> T[round(255 x)] -> max(., floor) -> ln(. + delta) -> weighted mean -> exp`` needs only
two 256-entry tables per (scene, channel): ``L[k] = ln(max(T[k], floor) + delta)`` for the forward and
``S[k] = T'(k) / (max(T[k], floor) + delta)`` (zero where ``T[k] < floor``, as the clamp passes no
gradient there) for the backward, with ``T'`` the centred slope of ``linearize.slope_table``. The
gradient is then, for exposure j,

    d hdr / d x_j = hdr * w_j / (sum_i w_i + 1e-9) * S[k_j],

the same numbers the generic autograd graph produces (see the tests), in a few passes over the
stack instead of a graph of about twenty full-size intermediates. The saturation fallback is part of
the node too: its pixels are few, so they are gathered and written sparsely.
"""

from __future__ import annotations

import torch
from torch.autograd import Function

from hdrbench.imaging.calibration.common import N_LEVELS
from hdrbench.imaging.synthesis.linearize import slope_table

_TOP = N_LEVELS - 1


def log_tables(table: torch.Tensor, floor: float, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L, S)`` tables ``(N, C, 256)`` of the module docstring for a detached table ``(N, C, 256)``."""
    clamped = table.clamp_min(floor) + delta
    slope = torch.where(table >= floor, slope_table(table) / clamped, torch.zeros_like(table))
    return torch.log(clamped), slope


def fallback_pixels(x: torch.Tensor, total: torch.Tensor, times: torch.Tensor, saturation: float):
    """Pixels of the saturation fallback and the exposure each takes its value from.

    Where the total weight is <= ``saturation`` (per pixel and channel), a mid exposure above 0.5 takes
    the shortest exposure's ``lin / t`` and one below 0.5 the longest's (HDR Toolbox); exactly 0.5 keeps
    the merge.

    Args:
        x: ``(N, E, C, H, W)`` detached stack.
        total: ``(N, C, H, W)`` total weights.
        times: ``(N, E)`` exposure times.
        saturation: threshold.

    Returns:
        ``(ni, ei, ci, hi, wi)`` int64 index tensors (M,), possibly empty.
    """
    ni, ci, hi, wi = (total <= saturation).nonzero(as_tuple=True)
    if ni.numel():
        order = torch.argsort(times, dim=1)
        mid = x[ni, order[ni, x.shape[1] // 2], ci, hi, wi]
        keep = mid != 0.5
        ni, ci, hi, wi, mid = ni[keep], ci[keep], hi[keep], wi[keep], mid[keep]
        ei = torch.where(mid > 0.5, order[ni, 0], order[ni, -1])
    else:
        ei = ni
    return ni, ei, ci, hi, wi


class TableLogMerge(Function):
    """``apply(x, weights, times, log_table, slope_table, lin_table, lin_slope, saturation) -> hdr``.

    Args (of ``apply``):
        x: ``(N, E, C, H, W)`` stack in [0, 1] (checked by the caller).
        weights: ``(N, E, C, H, W)`` detached merge weights.
        times: ``(N, E)`` exposure times, stack dtype.
        log_table, slope_table: ``(N, C, 256)`` from :func:`log_tables`.
        lin_table, lin_slope: ``(N, C, 256)`` ``max(T, floor)`` and its centred slope (0 where the floor is
            active), for the saturation fallback.
        saturation: total-weight threshold of the fallback (see :func:`fallback_pixels`).

    Returns:
        ``hdr`` ``(N, C, H, W)``.
    """

    @staticmethod
    def forward(ctx, x, weights, times, log_table, slope_tab, lin_table, lin_slope, saturation):
        n, e, c, h, w = x.shape
        xd = x.detach()
        # Flat table index of every pixel, (scene, channel) offset + code. x is within [-1e-4, 1 + 1e-4] after
        # check_stack, so the code lands in 0..255; float arithmetic is exact for offsets below 2^24, and
        # int32 indices make index_select about twice as fast as a 64-bit gather.
        base = (torch.arange(n * c, device=x.device, dtype=x.dtype) * N_LEVELS).view(n, 1, c, 1, 1)
        idx = xd.mul(_TOP).round_().add_(base).to(torch.int32).reshape(-1)  # row-major order
        logs = log_table.reshape(-1).index_select(0, idx).view(n, e, c, h, w)
        logs.sub_(torch.log(times).view(n, e, 1, 1, 1)).mul_(weights)
        total = weights.sum(1)
        den = total + 1e-9
        hdr = torch.exp(logs.sum(1).div_(den))
        del logs
        ni, ei, ci, hi, wi = fallback_pixels(xd, total, times, saturation)
        fb_slope = None
        if ni.numel():
            k = (ni * c + ci) * N_LEVELS + torch.round(xd[ni, ei, ci, hi, wi] * _TOP).long().clamp_(0, _TOP)
            t_sel = times[ni, ei]
            hdr[ni, ci, hi, wi] = torch.take(lin_table, k) / t_sel
            fb_slope = torch.take(lin_slope, k) / t_sel
        if ctx.needs_input_grad[0]:
            ws = slope_tab.reshape(-1).index_select(0, idx).view(n, e, c, h, w).mul_(weights)
            ctx.save_for_backward(ws, hdr, den, ni, ei, ci, hi, wi, fb_slope)
        return hdr

    @staticmethod
    def backward(ctx, grad_hdr):
        ws, hdr, den, ni, ei, ci, hi, wi, fb_slope = ctx.saved_tensors
        coef = grad_hdr * hdr / den
        if ni.numel():
            coef[ni, ci, hi, wi] = 0.0  # replaced pixels take no gradient from the merge
        grad_x = ws * coef.unsqueeze(1)
        if ni.numel():
            grad_x.index_put_((ni, ei, ci, hi, wi), grad_hdr[ni, ci, hi, wi] * fb_slope, accumulate=True)
        return grad_x, None, None, None, None, None, None, None


def log_merge_graph(x: torch.Tensor, log_times: torch.Tensor, log_table: torch.Tensor, slope_tab: torch.Tensor,
                    weight: str, lo: float, hi: float, mean_weight: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The computation of :class:`TableLogMerge` without the fallback, as plain differentiable torch code.

    The lookup is written ``L[k] + (x - x.detach()) * S[k]``: its value is exactly ``L[k]`` and its derivative
    with respect to x is ``S[k]``, so autograd (or a compiler tracing it, see :func:`compiled_log_merge`)
    produces the node's gradient. Weights are computed here (detached) so that a compiler fuses them too.

    Args:
        x: ``(N, E, C, H, W)`` stack; log_times: ``(N, E)``; log_table, slope_tab: flattened ``(N * C * 256,)``;
        weight, lo, hi, mean_weight: the weight function, its bounds and the channel-mean switch.

    Returns:
        ``hdr`` and the total weight, ``(N, C, H, W)`` each.
    """
    from hdrbench.imaging.synthesis.weights import weight_function

    n, e, c = x.shape[:3]
    xd = x.detach()
    weights = weight_function(xd, weight, bounds=(lo, hi))
    if mean_weight:
        weights = weights.mean(dim=2, keepdim=True).expand_as(weights)
    base = (torch.arange(n * c, device=x.device) * N_LEVELS).view(n, 1, c, 1, 1)
    k = torch.round(xd * _TOP).long().clamp(0, _TOP) + base
    lv = torch.take(log_table, k) + (x - xd) * torch.take(slope_tab, k)
    total = weights.sum(1)
    log_e = (weights * (lv - log_times.view(n, e, 1, 1, 1))).sum(1) / (total + 1e-9)
    return torch.exp(log_e), total


_COMPILED = None


def compiled_log_merge():
    """:func:`log_merge_graph` compiled with ``torch.compile`` (built on first use; each new shape recompiles).

    The compiler fuses the lookup, the weights' use and the reduction over exposures into one loop over
    the pixels, forward and backward; the first call pays the compilation (tens of seconds on a CPU).

    Raises:
        NotImplementedError: this torch build cannot compile (``torch.compile`` missing).
    """
    global _COMPILED
    if _COMPILED is None:
        if not hasattr(torch, "compile"):
            raise NotImplementedError("merge_stack(compile=True) needs torch.compile (PyTorch >= 2.0)")
        _COMPILED = torch.compile(log_merge_graph)
    return _COMPILED

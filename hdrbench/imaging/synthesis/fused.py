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

Two forms of the node: :class:`TableLogMerge` in torch operations (any device; weights passed in) and
:class:`NativeTableLogMerge` on the compiled CPU kernels of ``native`` (weights computed in the kernel,
one pass over the stack each way). ``merge_stack`` takes the native one for CPU stacks when the kernel
builds; both give the same values and gradients (see the tests).
"""

from __future__ import annotations

import torch
from torch.autograd import Function

from hdrbench.errors import InputError
from hdrbench.imaging.calibration.common import N_LEVELS
from hdrbench.imaging.synthesis import native
from hdrbench.imaging.synthesis.linearize import slope_table

_TOP = N_LEVELS - 1


def log_tables(table: torch.Tensor, floor: float, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L, S)`` tables ``(N, C, 256)`` of the module docstring for a detached table ``(N, C, 256)``."""
    clamped = table.clamp_min(floor) + delta
    slope = torch.where(table >= floor, slope_table(table) / clamped, torch.zeros_like(table))
    return torch.log(clamped), slope


#: Saturation fallback rules of :func:`fallback_pixels`.
FALLBACKS = ("per-channel", "channel-coupled")


def fallback_pixels(x: torch.Tensor, total: torch.Tensor | None, times: torch.Tensor, saturation: float, *,
                    low: torch.Tensor | None = None, fallback: str = "per-channel"):
    """Pixels of the saturation fallback and the exposure each takes its value from.

    Where the total weight is <= ``saturation``, a mid exposure above 0.5 takes the shortest exposure's
    ``lin / t`` and one below 0.5 the longest's (HDR Toolbox); exactly 0.5 keeps the merge.

    * ``fallback="per-channel"`` (default): decided per pixel and channel, as the toolbox intends.
    * ``fallback="channel-coupled"`` (the official Python port): the "above 0.5" and "below 0.5" masks
      are each summed over the channels and repeated on every channel, so one channel's fallback
      replaces all three channels of the pixel (each with its own channel's value of the chosen
      exposure); where both masks hold, the "below 0.5" one, applied second, wins.

    Args:
        x: ``(N, E, C, H, W)`` detached stack.
        total: ``(N, C, H, W)`` total weights (unused when ``low`` is given).
        times: ``(N, E)`` exposure times.
        saturation: threshold.
        low: optional int64 flat indices into ``(N, C, H, W)`` of the pixels with ``total <= saturation``,
            where the caller found them already (the native kernel does).
        fallback: ``"per-channel"`` or ``"channel-coupled"``.

    Returns:
        ``(ni, ei, ci, hi, wi)`` int64 index tensors (M,), possibly empty.
    """
    if fallback == "channel-coupled":
        return _coupled_fallback_pixels(x, total, times, saturation, low)
    if fallback != "per-channel":
        raise InputError(f"saturation_fallback must be one of {FALLBACKS}; got {fallback!r}")
    if low is None:
        ni, ci, hi, wi = (total <= saturation).nonzero(as_tuple=True)
    else:
        _, _, c, h, w = x.shape
        ni, ci, hi, wi = low // (c * h * w), low // (h * w) % c, low // w % h, low % w
    if ni.numel():
        order = torch.argsort(times, dim=1)
        mid = x[ni, order[ni, x.shape[1] // 2], ci, hi, wi]
        keep = mid != 0.5
        ni, ci, hi, wi, mid = ni[keep], ci[keep], hi[keep], wi[keep], mid[keep]
        ei = torch.where(mid > 0.5, order[ni, 0], order[ni, -1])
    else:
        ei = ni
    return ni, ei, ci, hi, wi


def _coupled_fallback_pixels(x, total, times, saturation, low):
    """:func:`fallback_pixels` with ``fallback="channel-coupled"``."""
    n, e, c, h, w = x.shape
    if low is None:
        low_mask = total <= saturation
    else:
        low_mask = torch.zeros(n * c * h * w, dtype=torch.bool, device=x.device)
        low_mask[low] = True
        low_mask = low_mask.view(n, c, h, w)
    if not bool(low_mask.any()):
        empty = torch.zeros(0, dtype=torch.long, device=x.device)
        return empty, empty, empty, empty, empty
    order = torch.argsort(times, dim=1)
    mid = x[torch.arange(n, device=x.device), order[:, e // 2]]  # (N, C, H, W)
    bright = ((mid > 0.5) & low_mask).any(1, keepdim=True).expand(n, c, h, w)
    dark = ((mid < 0.5) & low_mask).any(1, keepdim=True).expand(n, c, h, w)
    ni, ci, hi, wi = (bright | dark).nonzero(as_tuple=True)
    ei = torch.where(dark[ni, ci, hi, wi], order[ni, -1], order[ni, 0])
    return ni, ei, ci, hi, wi


class TableLogMerge(Function):
    """``apply(x, weights, times, log_table, slope_table, lin_table, lin_slope, saturation[, fallback]) -> hdr``.

    Args (of ``apply``):
        x: ``(N, E, C, H, W)`` stack in [0, 1] (checked by the caller).
        weights: ``(N, E, C, H, W)`` detached merge weights.
        times: ``(N, E)`` exposure times, stack dtype.
        log_table, slope_table: ``(N, C, 256)`` from :func:`log_tables`.
        lin_table, lin_slope: ``(N, C, 256)`` ``max(T, floor)`` and its centred slope (0 where the floor is
            active), for the saturation fallback.
        saturation: total-weight threshold of the fallback (see :func:`fallback_pixels`).
        fallback: the fallback rule, ``"per-channel"`` (default) or ``"channel-coupled"``.

    Returns:
        ``hdr`` ``(N, C, H, W)``.
    """

    @staticmethod
    def forward(ctx, x, weights, times, log_table, slope_tab, lin_table, lin_slope, saturation,
                fallback="per-channel"):
        n, e, c, h, w = x.shape
        xd = x.detach()
        # Flat table index of every pixel, (scene, channel) offset + code. x is within [-1e-4, 1 + 1e-4] after
        # check_stack, so the code lands in 0..255. int32 indices make index_select about twice as fast as a
        # 64-bit gather. In float32/64 the offset is added before the conversion (exact below 2^24, one pass
        # less); half and bfloat16 cannot hold the offsets, so they add it as integers.
        base = (torch.arange(n * c, device=x.device) * N_LEVELS).view(n, 1, c, 1, 1)
        if x.dtype in (torch.float32, torch.float64):
            idx = xd.mul(_TOP).round_().add_(base.to(x.dtype)).to(torch.int32).reshape(-1)  # row-major order
        else:
            idx = xd.mul(_TOP).round_().to(torch.int32).add_(base).reshape(-1)
        logs = log_table.reshape(-1).index_select(0, idx).view(n, e, c, h, w)
        logs.sub_(torch.log(times).view(n, e, 1, 1, 1)).mul_(weights)
        total = weights.sum(1)
        den = total + 1e-9
        hdr = torch.exp(logs.sum(1).div_(den))
        del logs
        fallback = apply_fallback(hdr, xd, total, times, saturation, lin_table, lin_slope, rule=fallback)
        if ctx.needs_input_grad[0]:
            ws = slope_tab.reshape(-1).index_select(0, idx).view(n, e, c, h, w).mul_(weights)
            ctx.save_for_backward(ws, hdr, den, *fallback)
        return hdr

    @staticmethod
    def backward(ctx, grad_hdr):
        ws, hdr, den, *fallback = ctx.saved_tensors
        coef = merge_coefficient(grad_hdr, hdr, den, fallback)
        grad_x = ws * coef.unsqueeze(1)
        add_fallback_gradient(grad_x, grad_hdr, fallback)
        return grad_x, None, None, None, None, None, None, None, None


class NativeTableLogMerge(Function):
    """:class:`TableLogMerge` on the native CPU kernels (``native``): weights computed inside, not passed.

    ``apply(x, times, log_table, slope_table, lin_table, lin_slope, saturation, weight, bounds[, fallback])
    -> hdr`` with ``weight`` a name of ``native.WEIGHT_CODES`` and ``bounds`` its ``(lo, hi)``; other arguments
    and the result as :class:`TableLogMerge`'s. The forward keeps only the stack (copied only if not contiguous) and
    ``hdr``; the backward recomputes codes, weights and their total from the stack.
    """

    @staticmethod
    def forward(ctx, x, times, log_table, slope_tab, lin_table, lin_slope, saturation, weight, bounds,
                fallback="per-channel"):
        xd = x.detach().contiguous()  # the kernels' layout; kept for the backward, so it is copied at most once
        log_mean, low = native.log_merge_forward(xd, log_table, torch.log(times), weight, bounds, saturation)
        hdr = log_mean.exp_()
        fallback = apply_fallback(hdr, xd, None, times, saturation, lin_table, lin_slope, low=low, rule=fallback)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(xd, slope_tab, hdr, *fallback)
            ctx.weight, ctx.bounds = weight, bounds
        return hdr

    @staticmethod
    def backward(ctx, grad_hdr):
        xd, slope_tab, hdr, *fallback = ctx.saved_tensors
        grad_x = native.log_merge_backward(xd, slope_tab, grad_hdr, hdr, ctx.weight, ctx.bounds)
        ni, ei, ci, hi, wi, _ = fallback
        if ni.numel():
            grad_x[ni, :, ci, hi, wi] = 0.0  # replaced pixels take no gradient from the merge
        add_fallback_gradient(grad_x, grad_hdr, fallback)
        return grad_x, None, None, None, None, None, None, None, None, None


def apply_fallback(hdr, xd, total, times, saturation, lin_table, lin_slope, *, low=None,
                   rule: str = "per-channel") -> list[torch.Tensor]:
    """Write the saturation fallback into ``hdr`` ``(N, C, H, W)`` in place (see :func:`fallback_pixels`).

    ``total`` (the total weights) or ``low`` (flat indices of the low-total pixels) locate the candidates;
    ``rule`` is :func:`fallback_pixels`'s ``fallback``.

    Returns:
        ``[ni, ei, ci, hi, wi, slope]``: the replaced pixels, the exposure each came from and
        ``d hdr / d x`` there (``lin_slope[k] / t``); the index tensors are empty when no pixel is replaced.
    """
    n, e, c = xd.shape[:3]
    ni, ei, ci, hi, wi = fallback_pixels(xd, total, times, saturation, low=low, fallback=rule)
    if not ni.numel():
        return [ni, ei, ci, hi, wi, hdr.new_empty(0)]
    k = (ni * c + ci) * N_LEVELS + torch.round(xd[ni, ei, ci, hi, wi] * _TOP).long().clamp_(0, _TOP)
    t_sel = times[ni, ei]
    hdr[ni, ci, hi, wi] = torch.take(lin_table, k) / t_sel
    return [ni, ei, ci, hi, wi, torch.take(lin_slope, k) / t_sel]


def merge_coefficient(grad_hdr, hdr, den, fallback) -> torch.Tensor:
    """``grad_hdr * hdr / den`` ``(N, C, H, W)``, 0 where the fallback replaced the merge (no gradient from it)."""
    coef = grad_hdr * hdr / den
    ni, _, ci, hi, wi, _ = fallback
    if ni.numel():
        coef[ni, ci, hi, wi] = 0.0
    return coef


def add_fallback_gradient(grad_x, grad_hdr, fallback) -> None:
    """Add the fallback pixels' gradient ``grad_hdr * lin_slope[k] / t`` to their source exposure, in place."""
    ni, ei, ci, hi, wi, slope = fallback
    if ni.numel():
        grad_x.index_put_((ni, ei, ci, hi, wi), grad_hdr[ni, ci, hi, wi] * slope, accumulate=True)


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
            raise NotImplementedError("merge_stack(backend='compiled') needs torch.compile (PyTorch >= 2.0)")
        _COMPILED = torch.compile(log_merge_graph)
    return _COMPILED

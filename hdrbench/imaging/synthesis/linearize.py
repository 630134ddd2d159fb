"""Linearisation of LDR stacks through an inverse CRF, with the gradients the synthesis layer needs.

Three kinds of inverse CRF:

* **Tabulated** (Debevec-Malik, user tables): :class:`PiecewiseLinear`. The forward pass is the
  reference's nearest lookup ``table[round(255 x)]`` (MATLAB ``interp1(..., 'nearest')``), or a linear
  interpolation when ``lookup="linear"``. The backward pass returns the table's slope *in units of
  x in [0, 1]* (so ``255 * (T[k+1] - T[k])``-type differences):

  - ``slope="centred"`` (default with nearest lookup): at code k, the mean of the two adjacent segment
    slopes ``255 (T[k+1] - T[k-1]) / 2``; one-sided at the ends (``255 (T[1] - T[0])`` at k = 0 and
    ``255 (T[255] - T[254])`` at k = 255). For 8-bit data every pixel sits on a node, where the
    piecewise-linear curve has a left and a right slope; their mean is the symmetric choice and is a
    second-order accurate derivative of a smooth curve sampled by the table.
  - ``slope="segment"``: the slope of the interpolation segment that contains x,
    ``255 (T[j+1] - T[j])`` with ``j = min(floor(255 x), 254)``; the exact derivative of
    ``lookup="linear"``.
  - ``slope="official"``: the appendix listing's backward, kept for reproduction. The slope is the
    backward per-code difference ``T[k] - T[k-1]``: a derivative with respect to codes 0..255 (the
    listing's input unit), so 255 times smaller than the derivative with respect to x in [0, 1] that
    this layer takes; and the entry for k = 0 is not a difference at all but the code of the first
    pixel of the image plane (the listing builds the slope list as ``[index_x[0]] + [T[i+1] - T[i] ...]``).

  The whole batch, all exposures and channels are looked up with one gather on the flattened tables.
* **Polynomial** (Mitsunaga-Nayar, appendix Eq. 8 and 10): :class:`PolynomialLinearize` evaluates
  ``sum_k c_k x^k`` with the analytic derivative ``sum_{k>=1} k c_k x^(k-1)`` (the appendix prints
  ``x^k`` in Eq. 10; the power is k-1).
* **Analytic** (gamma, sRGB, linear): plain differentiable torch expressions.
"""

from __future__ import annotations

import torch
from torch.autograd import Function

from hdrbench.errors import InputError
from hdrbench.imaging.calibration.common import N_LEVELS

LOOKUPS = ("nearest", "linear")
SLOPES = ("centred", "segment", "official")

_TOP = N_LEVELS - 1


def slope_table(table: torch.Tensor) -> torch.Tensor:
    """Centred slope of a tabulated curve in units of x in [0, 1], one-sided at both ends.

    Args:
        table: ``(..., 256)`` values at ``k / 255``.

    Returns:
        ``(..., 256)`` slopes ``d table / d x``.
    """
    s = torch.empty_like(table)
    s[..., 1:-1] = (table[..., 2:] - table[..., :-2]) * (_TOP / 2.0)
    s[..., 0] = (table[..., 1] - table[..., 0]) * _TOP
    s[..., -1] = (table[..., -1] - table[..., -2]) * _TOP
    return s


def _plane_offsets(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1, C, 1, 1)`` int64 offsets of each (scene, channel) table in the flattened ``(N*C*256,)`` tables."""
    n, _, c = x.shape[:3]
    return (torch.arange(n * c, device=x.device) * N_LEVELS).view(n, 1, c, 1, 1)


class PiecewiseLinear(Function):
    """Tabulated inverse CRF: forward lookup, backward the table's slope (see the module docstring).

    ``apply(x, table, lookup, slope)`` with ``x`` ``(N, E, C, H, W)`` in [0, 1] and ``table``
    ``(N, C, 256)`` returns ``(N, E, C, H, W)``. Gradients flow to ``x`` and, except with
    ``slope="official"`` (which, like the reference, returns none), to ``table``.
    """

    @staticmethod
    def forward(ctx, x, table, lookup="nearest", slope="centred"):
        n, e, c = x.shape[:3]
        flat = table.reshape(-1)
        base = _plane_offsets(x)
        if lookup == "nearest":
            idx = torch.round(x * _TOP).clamp_(0, _TOP).long().add_(base)
            out = torch.take(flat, idx)
        else:
            p = (x * _TOP).clamp_(0, _TOP)
            j = p.floor().clamp_(max=_TOP - 1)
            f = p - j
            idx = j.long().add_(base)
            lo = torch.take(flat, idx)
            out = lo + f * (torch.take(flat, idx + 1) - lo)
        ctx.save_for_backward(x, table)
        ctx.lookup, ctx.slope = lookup, slope
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, table = ctx.saved_tensors
        lookup, slope = ctx.lookup, ctx.slope
        flat = table.reshape(-1)
        base = _plane_offsets(x)
        grad_x = grad_table = None
        if ctx.needs_input_grad[0]:
            if slope == "centred":
                idx = torch.round(x * _TOP).clamp_(0, _TOP).long().add_(base)
                grad_x = grad_out * torch.take(slope_table(table).reshape(-1), idx)
            elif slope == "segment":
                j = (x * _TOP).clamp_(0, _TOP).floor_().clamp_(max=_TOP - 1).long().add_(base)
                grad_x = grad_out * ((torch.take(flat, j + 1) - torch.take(flat, j)) * _TOP)
            else:  # official
                k = torch.round(x * _TOP).clamp_(0, _TOP).long()
                per_code = torch.zeros_like(table)
                per_code[..., 1:] = table[..., 1:] - table[..., :-1]
                s = torch.take(per_code.reshape(-1), k + base)
                first = k.flatten(3)[..., 0].to(s.dtype)  # (N, E, C): code of each plane's first pixel
                s = torch.where(k == 0, first[..., None, None].expand_as(s), s)
                grad_x = grad_out * s
        if ctx.needs_input_grad[1] and slope != "official":
            g = torch.zeros(flat.numel(), dtype=grad_out.dtype, device=grad_out.device)
            if lookup == "nearest":
                idx = torch.round(x * _TOP).clamp_(0, _TOP).long().add_(base)
                g.index_add_(0, idx.reshape(-1), grad_out.reshape(-1))
            else:
                p = (x * _TOP).clamp(0, _TOP)
                j = p.floor().clamp_(max=_TOP - 1)
                f = (p - j).reshape(-1)
                idx = j.long().add_(base).reshape(-1)
                go = grad_out.reshape(-1)
                g.index_add_(0, idx, go * (1 - f))
                g.index_add_(0, idx + 1, go * f)
            grad_table = g.view_as(table)
        return grad_x, grad_table, None, None


def lookup_table(x: torch.Tensor, table: torch.Tensor, *, lookup: str = "nearest", slope: str = "centred"):
    """Map a stack through per-scene, per-channel tabulated inverse CRFs.

    Args:
        x: ``(N, E, C, H, W)`` stack in [0, 1].
        table: ``(N, C, 256)`` or ``(C, 256)`` inverse CRF values at codes ``k / 255``.
        lookup: ``"nearest"`` (reference) or ``"linear"``.
        slope: ``"centred"``, ``"segment"`` or ``"official"`` (see the module docstring).

    Returns:
        ``(N, E, C, H, W)`` linear values, same dtype as ``x``.
    """
    if lookup not in LOOKUPS:
        raise InputError(f"lookup must be one of {LOOKUPS}; got {lookup!r}")
    if slope not in SLOPES:
        raise InputError(f"slope must be one of {SLOPES}; got {slope!r}")
    table = expand_table(table, x.shape[0], x.shape[2]).to(dtype=x.dtype, device=x.device)
    return PiecewiseLinear.apply(x, table.contiguous(), lookup, slope)


def expand_table(table: torch.Tensor, n: int, c: int, name: str = "inverse_crf") -> torch.Tensor:
    """Check a table's shape and broadcast ``(C, 256)`` to ``(N, C, 256)``."""
    if not isinstance(table, torch.Tensor):
        raise InputError(f"{name} table must be a torch.Tensor, got {type(table).__name__}")
    if table.dim() == 2:
        table = table.unsqueeze(0).expand(n, *table.shape)
    if table.dim() != 3 or tuple(table.shape) != (n, c, N_LEVELS):
        raise InputError(
            f"{name} table must have shape ({c}, {N_LEVELS}) or ({n}, {c}, {N_LEVELS}); got {tuple(table.shape)}"
        )
    if not torch.isfinite(table).all():
        raise InputError(f"{name} table contains NaN or Inf values")
    return table


class PolynomialLinearize(Function):
    """Polynomial inverse CRF ``sum_k c_k x^k`` with its analytic derivative (appendix Eq. 8, 10).

    ``apply(x, coefficients)`` with ``x`` ``(N, E, C, H, W)`` and ascending ``coefficients``
    ``(N, C, K+1)``; gradients flow to both.
    """

    @staticmethod
    def forward(ctx, x, coefficients):
        c = coefficients.unsqueeze(1)[..., None, None, :]  # (N, 1, C, 1, 1, K+1)
        out = torch.zeros_like(x) + c[..., -1]
        for k in range(coefficients.shape[-1] - 2, -1, -1):
            out = out * x + c[..., k]
        ctx.save_for_backward(x, coefficients)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, coefficients = ctx.saved_tensors
        order = coefficients.shape[-1] - 1
        grad_x = grad_c = None
        if ctx.needs_input_grad[0]:
            c = coefficients.unsqueeze(1)[..., None, None, :]
            d = torch.zeros_like(x) + order * c[..., order]
            for k in range(order - 1, 0, -1):
                d = d * x + k * c[..., k]
            grad_x = grad_out * d
        if ctx.needs_input_grad[1]:
            cols = []
            pw = torch.ones_like(x)
            for _ in range(order + 1):
                cols.append((grad_out * pw).sum(dim=(1, 3, 4)))  # (N, C)
                pw = pw * x
            grad_c = torch.stack(cols, dim=-1)
        return grad_x, grad_c


def linearize_polynomial(x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Evaluate ascending polynomial inverse CRFs ``(N, C, K+1)`` (or ``(C, K+1)``) on a stack ``(N, E, C, H, W)``."""
    if coefficients.dim() == 2:
        coefficients = coefficients.unsqueeze(0).expand(x.shape[0], *coefficients.shape)
    if coefficients.dim() != 3 or coefficients.shape[:2] != (x.shape[0], x.shape[2]):
        raise InputError(f"polynomial coefficients must have shape (N, C, K+1); got {tuple(coefficients.shape)}")
    return PolynomialLinearize.apply(x, coefficients.to(dtype=x.dtype, device=x.device).contiguous())


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """IEC 61966-2-1 sRGB decoding, x in [0, 1] -> linear [0, 1]."""
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def gamma_to_linear(x: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """Pure power decoding ``x ** gamma`` (HDR Toolbox 'gamma', default 2.2)."""
    return x.clamp_min(0) ** gamma

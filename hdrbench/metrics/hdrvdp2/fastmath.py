"""Faster forms of the metric's costliest element-wise work on the CPU: powers through logarithms, table gathers.

On the CPU ``torch.pow`` with a non-integer exponent costs about as much as five ``exp`` or ``log`` calls (float32,
AVX2: 2.8 ms against 0.5-0.6 ms for 0.8 M elements, measured), and the masking model raises several factors of the
same pixel to powers. Written as ``exp(e * log x)``, the logarithms of shared factors are taken once and the
constant gains become additive terms of the exponent, so one ``exp`` per power remains.

The power functions are used only when no input requires a gradient: ``d/dx exp(e log x)`` is ``0 * inf = NaN`` at
``x == 0``, where ``torch.pow``'s gradient is finite, so the differentiable path keeps ``torch.pow``.
"""

from __future__ import annotations

import torch


def needs_grad(*tensors) -> bool:
    """True when autograd is recording and any of the tensors (None and numbers are skipped) requires a gradient."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def pow_via_log(x: torch.Tensor, e: float, log_scale: torch.Tensor | float = 0.0) -> torch.Tensor:
    """``exp(e * log(x) + log_scale)``, i.e. ``x^e * exp(log_scale)``, as a new tensor.

    Args:
        x: tensor with values >= 0 (not modified). Zeros give exactly 0 for ``e > 0`` (``exp(-inf) = 0``).
        e: exponent, > 0.
        log_scale: natural log of a factor (a number or a tensor broadcastable to ``x``), added to the exponent.

    Returns:
        tensor of ``x``'s shape and dtype. Equal to ``torch.pow(x, e) * exp(log_scale)`` up to the rounding of
        ``exp`` of the exponent: a relative error of about ``|e log x| * eps`` (float32: ~1e-6 for exponents of
        magnitude 10; float64: ~1e-15).
    """
    if not e > 0:
        raise ValueError(f"pow_via_log: exponent must be > 0, got {e}")
    return log_pow_(torch.log(x), e, log_scale)


def log_pow_(log_x: torch.Tensor, e: float, log_scale: torch.Tensor | float = 0.0) -> torch.Tensor:
    """In place on ``log_x`` (the natural log of a non-negative tensor, -inf for zeros): ``exp(e * log_x + log_scale)``.

    Returns ``log_x`` itself, overwritten. ``log_scale`` is a number or a tensor broadcastable to ``log_x``.
    """
    if isinstance(log_scale, torch.Tensor):
        # One pass: out = log_scale + e * log_x, written over log_x (an element-wise op may write over its input).
        torch.add(log_scale, log_x, alpha=e, out=log_x)
    else:
        log_x.mul_(e)
        if log_scale != 0.0:
            log_x.add_(log_scale)
    return log_x.exp_()


def gather(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table[idx]`` for a 1-D ``table`` and an integer index tensor of any shape (a new tensor of idx's shape).

    ``index_select`` on the flattened index: the same values as advanced indexing, about three times faster on
    the CPU (measured for 0.4 M indices into a 2048-entry table).
    """
    return table.index_select(0, idx.reshape(-1)).view(idx.shape)

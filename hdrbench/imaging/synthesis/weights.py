"""Per-pixel merge weights, as the HDR Toolbox's ``WeightFunction`` (2019 version the reference copied).

Every function maps x in [0, 1] to a weight in [0, 1] (clamped). ``bounds = (lo, hi)`` defaults to
(0, 1) as in the toolbox; it moves the zeros of 'deb97' and the edges of 'box'.

* ``all``: 1 everywhere.
* ``hat``: ``1 - (2x - 1)^12``.
* ``box``: 1 on [lo, hi], 0 outside (with the default bounds identical to ``all``, as in the toolbox).
* ``deb97``: Debevec 1997 triangle, ``x - lo`` below ``(lo + hi) / 2`` and ``hi - x`` above, divided by
  ``(lo + hi) / 2``: 0 at both bounds, 1 at 0.5 with the default bounds.
* ``robertson``: ``(exp(-16 (x - 0.5)^2) - e^-4) / (1 - e^-4)``: a Gaussian-like bump that is 0 at 0 and 1.
"""

from __future__ import annotations

import math

import torch

from hdrbench.errors import InputError
from hdrbench.registry import Registry

WEIGHTS: Registry = Registry("weight function")


def _all(x, lo, hi):
    return torch.ones_like(x)


def _hat(x, lo, hi):
    return 1.0 - (2.0 * x - 1.0) ** 12


def _box(x, lo, hi):
    return ((x >= lo) & (x <= hi)).to(x.dtype)


def _deb97(x, lo, hi):
    # x - lo below tr = (lo + hi) / 2 and hi - x above is (tr - lo) - |x - tr|; written with in-place
    # operations on one temporary because the merge evaluates it on every pixel of every exposure.
    tr = (lo + hi) / 2.0
    if x.requires_grad:
        return ((tr - lo) - (x - tr).abs()) / tr
    return (x - tr).abs_().mul_(-1.0 / tr).add_((tr - lo) / tr)


_SHIFT = math.exp(-4.0)


def _robertson(x, lo, hi):
    return (torch.exp(-16.0 * (x - 0.5) ** 2) - _SHIFT) / (1.0 - _SHIFT)


for _name, _fn in (("all", _all), ("hat", _hat), ("box", _box), ("deb97", _deb97), ("robertson", _robertson)):
    WEIGHTS.register(_name, _fn)


def weight_function(x: torch.Tensor, name: str = "deb97", *, bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Evaluate a merge weight.

    Args:
        x: tensor of pixel values in [0, 1], any shape.
        name: ``all``, ``hat``, ``box``, ``deb97`` or ``robertson`` (case-insensitive; ``Deb97`` works).
        bounds: ``(lo, hi)`` with ``0 <= lo < hi <= 1``.

    Returns:
        Weights in [0, 1], same shape and dtype as ``x``.

    Raises:
        UnknownNameError: unknown ``name``.
        InputError: bad ``bounds``.
    """
    fn = WEIGHTS.get(str(name).lower())
    lo, hi = (float(b) for b in bounds)
    if not 0.0 <= lo < hi <= 1.0:
        raise InputError(f"weight bounds must satisfy 0 <= lo < hi <= 1; got {bounds}")
    w = fn(x, lo, hi)
    return w.clamp(0.0, 1.0) if w.requires_grad else w.clamp_(0.0, 1.0)

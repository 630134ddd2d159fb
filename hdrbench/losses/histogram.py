"""The histogram loss of the global network (Appendix D of the paper; official ``extract_hist``).

The official histogram is not a soft histogram: each pixel value ``v`` (in the 8-bit scale [0, 255])
is added *as a value* to the bin ``floor(v)``, and each bin is divided by its own index (bin 0 by 1).
A bin's entry is therefore ``sum(v) / b``, which is close to the pixel count of bin ``b`` (every ``v``
in bin ``b`` lies in [b, b + 1)), but, unlike a count, varies with the values. The result is divided by
255 so that entries are of order "pixels / 255".

What is differentiable: the entries w.r.t. the pixel values, with ``d entry_b / d x = (255 / 2) / (255
max(b, 1))`` for a pixel of bin ``b`` (input scale [-1, 1]) and 0 for pixels clipped at the range ends.
The bin assignment (``floor``) has no gradient, so the loss is piecewise smooth with jumps where a pixel
crosses a bin edge. Appendix D's listing drops bin 0; the official training code keeps it (divided by
1); this module follows the training code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hdrbench.errors import InputError

BINS = 256


def extract_histogram(x: torch.Tensor, *, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Value-weighted per-channel histogram of images (the official ``extract_hist``).

    Args:
        x: (B, C, H, W) images in ``value_range`` ([-1, 1] inside the network by default).
        value_range: the image range mapped linearly onto the 8-bit scale [0, 255].

    Returns:
        (B, C, 256) histogram, ``sum of 8-bit values in bin b / max(b, 1) / 255``, in ``x``'s dtype.
    """
    if x.ndim != 4:
        raise InputError(f"histogram input must have shape (B, C, H, W), got {tuple(x.shape)}")
    lo, hi = value_range
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # bins hold sums of up to H*W values of 255: beyond half precision
    v = ((x - lo) * (255.0 / (hi - lo))).clamp(0, 255)
    b, c = x.shape[:2]
    v = v.reshape(b, c, -1)
    idx = v.detach().long().clamp_max(BINS - 1)  # value 255 exactly falls in the last bin
    hist = torch.zeros(b, c, BINS, dtype=v.dtype, device=v.device).scatter_add(-1, idx, v)
    denom = torch.arange(BINS, dtype=v.dtype, device=v.device).clamp_min(1)
    return hist / denom / 255.0


def histogram_loss(pred: torch.Tensor, target: torch.Tensor, *,
                   value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """L1 distance between the histograms of ``pred`` and ``target`` (mean over batch, channels, bins).

    Args:
        pred: (B, C, H, W) predicted images in ``value_range`` (differentiable).
        target: (B, C, H, W) target images in ``value_range``.
        value_range: range mapped onto [0, 255].

    Returns:
        Scalar loss.
    """
    if pred.shape != target.shape:
        raise InputError(f"histogram loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return F.l1_loss(extract_histogram(pred, value_range=value_range),
                     extract_histogram(target, value_range=value_range).detach())

"""The edge L1 loss of the local network (its targets: :func:`hdrbench.imaging.edges.canny_edges`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hdrbench.errors import InputError


def edge_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between a predicted edge map and its Canny target.

    Args:
        pred: (N, 1, H, W) predicted edge probability in [0, 1] (differentiable).
        target: (N, 1, H, W) 0/1 Canny edges (see :func:`hdrbench.imaging.edges.canny_edges`).

    Returns:
        Scalar loss.
    """
    if pred.shape != target.shape:
        raise InputError(f"edge prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return F.l1_loss(pred, target.to(pred.dtype))

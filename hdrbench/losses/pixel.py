"""Pixel losses: L1 on images and the mu-law L1 on HDR images."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hdrbench.errors import InputError


def _same_shape(pred: torch.Tensor, target: torch.Tensor, what: str) -> None:
    if pred.shape != target.shape:
        raise InputError(f"{what}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over every element (``nn.L1Loss()`` of the official code).

    Args:
        pred, target: tensors of one shape (any layout, any range).
    """
    _same_shape(pred, target, "l1 loss")
    return F.l1_loss(pred, target)


def mu_law(hdr: torch.Tensor, mu: float = 100.0) -> torch.Tensor:
    """Mu-law compression ``log(1 + mu x) / log(1 + mu)`` (maps [0, 1] onto [0, 1]; defined for x >= 0).

    Args:
        hdr: linear HDR values >= 0 (negative values are clamped to 0).
        mu: compression strength (100 in the paper).
    """
    if mu <= 0:
        raise InputError(f"mu must be positive, got {mu}")
    return torch.log1p(mu * hdr.clamp_min(0)) / math.log1p(mu)


def _scale(hdr: torch.Tensor, how: str) -> torch.Tensor:
    if how == "none":
        return hdr
    dims = tuple(range(1, hdr.ndim))
    if how == "mean":
        ref = hdr.mean(dim=dims, keepdim=True)
    elif how == "max":
        ref = hdr.amax(dim=dims, keepdim=True)
    else:
        raise InputError(f"unknown HDR normalisation {how!r}; expected 'none', 'mean' or 'max'")
    return hdr / ref.clamp_min(1e-8)


def mu_law_l1_loss(pred: torch.Tensor, target: torch.Tensor, *, mu: float = 100.0, normalize: str = "none"
                   ) -> torch.Tensor:
    """L1 between the mu-law compressed predicted and target HDR images (the paper's HDR loss).

    Args:
        pred: (N, 3, H, W) linear relative HDR (e.g. the synthesis layer's merge of a predicted stack).
        target: (N, 3, H, W) linear relative ground-truth HDR.
        mu: mu-law strength (100).
        normalize: ``"none"`` compares the values as they are (the official code, whose ground truth
            shares the merge's scale); ``"mean"`` / ``"max"`` divide each image by its own mean / max
            first, for ground truth in an arbitrary relative scale.

    Returns:
        Scalar loss.
    """
    # No NaN check here: it would synchronise the GPU every step; the trainer's NaN guard stops the run.
    _same_shape(pred, target, "mu-law HDR loss")
    return F.l1_loss(mu_law(_scale(pred, normalize), mu), mu_law(_scale(target, normalize), mu))

"""Losses of the baseline methods, each as its paper or official code defines it.

Every function takes batches (N, C, H, W) and returns a scalar mean; the docstrings state the domain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hdrbench.imaging.luma import REC709_LUMA

#: Offset of HDRCNN's log domain (one 8-bit code value).
HDRCNN_EPS = 1.0 / 255.0


def cosine_l1_loss(pred: torch.Tensor, target: torch.Tensor, cosine_weight: float = 5.0) -> torch.Tensor:
    """ExpandNet's loss: L1 + lambda * (1 - cosine similarity of the RGB vectors), averaged over pixels.

    Args:
        pred, target: (N, 3, H, W) HDR normalised to [0, 1].
        cosine_weight: lambda (5 in ExpandNet).
    """
    cos = F.cosine_similarity(pred, target, dim=1, eps=1e-8)
    return (pred - target).abs().mean() + cosine_weight * (1.0 - cos).mean()


def lsgan_loss(prob: torch.Tensor, label: float) -> torch.Tensor:
    """Least-squares GAN loss: mean((D - label)^2) with a soft label (0.9 real / 0.1 fake in Deep recursive HDRI)."""
    return ((prob - label) ** 2).mean()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), kernel radius ceil(3 sigma), replicate borders."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def illumination_reflectance(log_rgb: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a log-HDR image (N, 3, H, W) into illumination (N, 1, H, W) and reflectance (N, 3, H, W).

    Illumination is the Gaussian low-pass of the log luminance; reflectance is log RGB minus it.
    """
    rgb = torch.exp(log_rgb) - HDRCNN_EPS
    w = torch.tensor(REC709_LUMA, dtype=log_rgb.dtype, device=log_rgb.device).view(1, 3, 1, 1)
    log_lum = torch.log((rgb * w).sum(1, keepdim=True).clamp_min(0.0) + HDRCNN_EPS)
    illum = gaussian_blur(log_lum, sigma)
    return illum, log_rgb - illum


def hdrcnn_loss(log_pred: torch.Tensor, hdr: torch.Tensor, alpha: torch.Tensor, lam: float = 0.5,
                sigma: float = 2.0) -> torch.Tensor:
    """HDRCNN's masked illumination/reflectance loss in the log domain.

    ``lam * mean(alpha (I_pred - I_gt)^2) + (1 - lam) * mean(alpha (R_pred - R_gt)^2)``.

    Args:
        log_pred: (N, 3, H, W) network output, log(HDR + 1/255).
        hdr: (N, 3, H, W) ground-truth linear HDR on the scale where the input's x^2 matches it.
        alpha: (N, 1, H, W) highlight mask of the input (the loss only sees saturated regions).
        lam: illumination weight (0.5).
        sigma: Gaussian of the illumination low-pass, pixels.
    """
    log_gt = torch.log(hdr.clamp_min(0.0) + HDRCNN_EPS)
    ip, rp = illumination_reflectance(log_pred, sigma)
    ig, rg = illumination_reflectance(log_gt, sigma)
    return lam * (alpha * (ip - ig) ** 2).mean() + (1.0 - lam) * (alpha * (rp - rg) ** 2).mean()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: mean |dx| + mean |dy| of (N, C, H, W)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels where ``mask`` is 1 (mask broadcast over channels)."""
    mask = mask.expand_as(pred).to(pred.dtype)
    return (mask * (pred - target) ** 2).sum() / mask.sum().clamp_min(1.0)

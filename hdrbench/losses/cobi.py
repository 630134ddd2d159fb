"""Contextual bilateral (CoBi) loss (Zhang et al., "Zoom to Learn, Learn to Zoom", CVPR 2019).

For features ``x`` (the prediction) and ``y`` (the target), each with P positions:

* feature distance ``d_ij = 1 - cos(x_i - mu_y, y_j - mu_y)`` (``mu_y``: the target's channel mean over
  the batch and positions), relative distance ``d~_ij = d_ij / (min_k d_ik + 1e-5)``, affinity
  ``CX_ij = exp((1 - d~_ij) / h)`` normalised to sum 1 over ``j``;
* the same for pixel coordinates (row / (H + 1), col / (W + 1)) with the *squared* Euclidean distance;
* ``CX = (1 - w_sp) CX_feat + w_sp CX_sp``; loss ``= mean_n -log(mean_i max_j CX_ij + 1e-5)``.

The loss is bounded below by ``-log(1 + 1e-5)``, reached when every prediction feature has a perfect,
spatially coincident match (``x == y``).

Band width and spatial weight: the upstream implementation defaults to ``h = 0.5, w_sp = 0.1``; the
paper's official code passes its band width positionally into the spatial-weight slot, so it trains with
``h = 0.5, w_sp = 0.5``. The default here is the upstream one; ``official_swap=True`` reproduces the code.

Features: VGG19 ``relu3_4`` + ``relu4_4`` (ImageNet weights supplied by the user as a local file; see
:mod:`hdrbench.losses.vgg`) or, without weights, 5x5 RGB patches of the images downsampled so that at
most ``patch_grid**2`` positions enter the P x P affinity matrices. :attr:`CoBiLoss.variant` says which.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.errors import InputError
from hdrbench.losses.vgg import VGG19Features, resolve_weights_path

#: (band width h, spatial weight w_sp) of the upstream defaults and of the official code's call.
UPSTREAM_PARAMS = (0.5, 0.1)
OFFICIAL_SWAP_PARAMS = (0.5, 0.5)
EPS = 1e-5


def _coordinates(h: int, w: int, n: int, device, dtype) -> torch.Tensor:
    rows = torch.arange(h, device=device, dtype=dtype) / (h + 1)
    cols = torch.arange(w, device=device, dtype=dtype) / (w + 1)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))  # (2, H, W)
    return grid.reshape(1, 2, h * w).expand(n, 2, h * w)


def _affinity(dist: torch.Tensor, band_width: float) -> torch.Tensor:
    """Normalised contextual affinity from a (N, P, P) distance matrix (rows: prediction, cols: target)."""
    rel = dist / (dist.amin(dim=2, keepdim=True) + EPS)
    # exp((1 - rel)/h) normalised over j is a softmax over j of -rel/h (shift-invariant, overflow-safe).
    return torch.softmax((1 - rel) / band_width, dim=2)


def contextual_bilateral_loss(x: torch.Tensor, y: torch.Tensor, *, band_width: float = 0.5,
                              weight_sp: float = 0.1) -> torch.Tensor:
    """CoBi loss between two feature maps.

    Args:
        x: (N, C, H, W) prediction features (differentiable).
        y: (N, C, H, W) target features.
        band_width: h > 0.
        weight_sp: spatial weight w_sp in [0, 1].

    Returns:
        Scalar loss (mean over the batch), >= -log(1 + 1e-5).
    """
    if x.shape != y.shape or x.ndim != 4:
        raise InputError(f"CoBi loss needs two (N, C, H, W) maps of one shape, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if band_width <= 0 or not 0 <= weight_sp <= 1:
        raise InputError(f"CoBi needs band_width > 0 and weight_sp in [0, 1], got {band_width}, {weight_sp}")
    if x.dtype in (torch.float16, torch.bfloat16):
        # Relative distances divide by near-zero minima: half precision would turn them into Inf.
        x, y = x.float(), y.float()
    n, c, h, w = x.shape
    mu = y.mean(dim=(0, 2, 3), keepdim=True)
    xn = F.normalize((x - mu).reshape(n, c, h * w), dim=1)
    yn = F.normalize((y - mu).reshape(n, c, h * w), dim=1)
    d_feat = 1 - torch.bmm(xn.transpose(1, 2), yn)  # (N, P, P)
    cx = (1 - weight_sp) * _affinity(d_feat, band_width)
    if weight_sp > 0:
        g = _coordinates(h, w, n, x.device, x.dtype)
        d_sp = (g.unsqueeze(3) - g.unsqueeze(2)).pow(2).sum(dim=1)  # (N, P, P) squared distance
        cx = cx + weight_sp * _affinity(d_sp, band_width)
    score = cx.amax(dim=2).mean(dim=1)  # (N,)
    return (-torch.log(score + EPS)).mean()


def rgb_patches(img: torch.Tensor, *, patch_size: int = 5, grid: int = 32) -> torch.Tensor:
    """Patch features of images: area-downsample so that the long side is at most ``grid``, then stack
    every ``patch_size`` x ``patch_size`` neighbourhood (edge-replicated) as channels.

    Args:
        img: (N, 3, H, W) images in [0, 1].
        patch_size: odd patch side.
        grid: maximum long side after downsampling (P <= grid**2 positions).

    Returns:
        (N, 3 * patch_size**2, h, w) patch features.
    """
    n, c, h, w = img.shape
    f = max(1, math.ceil(max(h, w) / grid))
    if f > 1:
        img = F.interpolate(img, size=(math.ceil(h / f), math.ceil(w / f)), mode="area")
    r = patch_size // 2
    padded = F.pad(img, (r, r, r, r), mode="replicate")
    hh, ww = img.shape[-2:]
    return F.unfold(padded, patch_size).reshape(n, c * patch_size * patch_size, hh, ww)


class CoBiLoss(nn.Module):
    """CoBi loss on images in [0, 1] with VGG19 or RGB-patch features.

    Args:
        features: ``"auto"`` (VGG19 when a weights file is configured, else RGB patches), ``"vgg19"``
            (a weights file is required) or ``"rgb-patch"``.
        vgg_weights: path of a torchvision VGG19 state dict; default ``$HDRBENCH_VGG19_WEIGHTS``.
        band_width, weight_sp: CoBi parameters (default the upstream 0.5, 0.1).
        official_swap: use the official code's effective parameters (h = 0.5, w_sp = 0.5) instead.
        patch_size, patch_grid: RGB-patch variant settings.
    """

    def __init__(self, features: str = "auto", *, vgg_weights: str | os.PathLike | None = None,
                 band_width: float | None = None, weight_sp: float | None = None, official_swap: bool = False,
                 patch_size: int = 5, patch_grid: int = 32) -> None:
        super().__init__()
        if features not in ("auto", "vgg19", "rgb-patch"):
            raise InputError(f"CoBi features must be 'auto', 'vgg19' or 'rgb-patch', got {features!r}")
        path = resolve_weights_path(vgg_weights) if features != "rgb-patch" else None
        if features == "vgg19" and path is None:
            raise InputError("CoBi features='vgg19' needs a VGG19 weights file: pass vgg_weights or set "
                             "HDRBENCH_VGG19_WEIGHTS")
        self.variant = "vgg19" if path is not None else "rgb-patch"
        self.vgg = VGG19Features(path) if path is not None else None
        h0, w0 = OFFICIAL_SWAP_PARAMS if official_swap else UPSTREAM_PARAMS
        self.band_width = h0 if band_width is None else float(band_width)
        self.weight_sp = w0 if weight_sp is None else float(weight_sp)
        self.patch_size = patch_size
        self.patch_grid = patch_grid

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CoBi loss of ``pred`` against ``target``, both (N, 3, H, W) in [0, 1].

        The VGG variant returns CoBi(relu3_4) + CoBi(relu4_4) (the official sum); the patch variant one term.
        """
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise InputError(f"CoBi loss needs two (N, 3, H, W) images of one shape, got {tuple(pred.shape)} and "
                             f"{tuple(target.shape)}")
        kw = dict(band_width=self.band_width, weight_sp=self.weight_sp)
        if self.vgg is None:
            fp = rgb_patches(pred, patch_size=self.patch_size, grid=self.patch_grid)
            with torch.no_grad():
                ft = rgb_patches(target, patch_size=self.patch_size, grid=self.patch_grid)
            return contextual_bilateral_loss(fp, ft, **kw)
        fp = self.vgg(pred)
        with torch.no_grad():
            ft = self.vgg(target)
        return sum(contextual_bilateral_loss(fp[k], ft[k], **kw) for k in self.vgg.layers)

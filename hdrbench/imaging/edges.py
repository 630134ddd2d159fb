"""Canny edge maps of RGB images (the targets of the proposed local network's edge branch).

The official code computes its edge targets with ``skimage.feature.canny(gray, sigma=2)`` on float
images in [0, 1], the grey image coming from ``cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)`` applied to an
*RGB* array. That swaps the red and blue luma weights (grey = 0.114 R + 0.587 G + 0.299 B). The
default here is the intended conversion (ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B, i.e.
``COLOR_RGB2GRAY``); ``channel_order_quirk=True`` reproduces the official targets.

Canny is not differentiable; edges are computed outside autograd, on the CPU, and returned on the
input's device. The model (edge input of the local network) and the training losses both use them.
"""

from __future__ import annotations

import numpy as np
import torch

from hdrbench.checks import check_image
from hdrbench.imaging.luma import BT601_LUMA


def canny_edges(img: torch.Tensor, *, sigma: float = 2.0, channel_order_quirk: bool = False) -> torch.Tensor:
    """Canny edge maps of RGB images, as the official training targets.

    Args:
        img: (N, 3, H, W) RGB images in [0, 1] (values outside are clipped).
        sigma: Gaussian smoothing of the Canny detector (2 in the official code).
        channel_order_quirk: the official loader's grey image: OpenCV's ``COLOR_BGR2GRAY`` on the RGB
            array, i.e. swapped luma weights (0.114 R + 0.587 G + 0.299 B), instead of BT.601 luma.

    Returns:
        (N, 1, H, W) float tensor of 0/1 edges on ``img``'s device and dtype (no gradient).
    """
    from skimage.feature import canny  # imported here: skimage is slow to import

    check_image(img, "img", channels=(3,))
    arr = img.detach().to("cpu", torch.float32).clamp(0, 1).numpy()
    if channel_order_quirk:
        import cv2

        # The official call itself (OpenCV's float32 BGR2GRAY on an RGB array), so that the grey values, and
        # with them the edges at the hysteresis thresholds, are the official loader's bit for bit.
        gray = np.stack([cv2.cvtColor(np.ascontiguousarray(a.transpose(1, 2, 0)), cv2.COLOR_BGR2GRAY) for a in arr])
    else:
        gray = np.tensordot(np.asarray(BT601_LUMA, dtype=np.float32), arr, axes=([0], [1]))  # (N, H, W)
    edges = np.stack([canny(g, sigma=sigma) for g in gray]).astype(np.float32)
    return torch.from_numpy(edges).unsqueeze(1).to(device=img.device, dtype=img.dtype)

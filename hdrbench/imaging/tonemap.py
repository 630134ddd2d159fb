"""Tone mapping for figures and previews: Reinhard et al. 2002 (global) and OpenCV's Reinhard variant.

Both operators take linear HDR tensors (N, 3, H, W) or (3, H, W) (RGB, relative units, >= 0) and return
display values in [0, 1] of the same shape. They are differentiable torch code and run on any device.

* :func:`reinhard02` is the global operator of Reinhard, Stark, Shirley & Ferwerda, "Photographic tone
  reproduction for digital images" (SIGGRAPH 2002), Eqs. 1-4, applied to luminance with colour ratios kept.
* :func:`reinhard_opencv` reproduces ``cv2.createTonemapReinhard(gamma, intensity, light_adapt, color_adapt)``
  (itself after Reinhard & Devlin 2005), which the official code of Kim et al. (AAAI 2021) used with
  ``(1.5, 0, 0, 0)`` for its tone-mapped images.
"""

from __future__ import annotations

import numpy as np
import torch

from hdrbench.checks import check_image
from hdrbench.errors import InputError
from hdrbench.imaging.luma import BT601_LUMA, REC709_LUMA

__all__ = ["reinhard02", "reinhard_opencv", "to_uint8", "REC709_LUMA"]



def _batched(hdr: torch.Tensor, arg: str = "hdr") -> tuple[torch.Tensor, bool]:
    check_image(hdr, arg, channels=(3,), unbatched=True)
    return (hdr[None], True) if hdr.ndim == 3 else (hdr, False)


def _weighted_sum(x: torch.Tensor, weights) -> torch.Tensor:
    w = torch.tensor(weights, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def reinhard02(hdr: torch.Tensor, *, key: float = 0.18, white: float | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Reinhard et al. 2002 global photographic operator.

    With ``L`` the Rec. 709 luminance of each pixel and, per image, the log-average luminance
    ``L_avg = exp(mean(log(eps + L)))``:

    * scaled luminance ``L_m = key / L_avg * L`` (Eq. 2);
    * display luminance ``L_d = L_m (1 + L_m / L_white^2) / (1 + L_m)`` (Eq. 4), or ``L_m / (1 + L_m)``
      (Eq. 3) when ``white`` is None; ``L_white`` is given in units of ``L_m`` (the smallest scaled
      luminance mapped to pure white);
    * colour: ``RGB_d = RGB * L_d / L`` (ratios kept), clipped to [0, 1].

    The result is linear display intensity; apply a display encoding (e.g. sRGB) before saving 8-bit files.

    Args:
        hdr: (N, 3, H, W) or (3, H, W) linear RGB >= 0 (relative units: the operator is scale invariant).
        key: the "key value" a (0.18 = middle grey).
        white: ``L_white`` in scaled-luminance units, or None for no white point (Eq. 3).
        eps: small offset inside the log-average (avoids log 0 on black pixels).

    Returns:
        Tensor shaped like ``hdr`` with values in [0, 1].
    """
    x, single = _batched(hdr)
    if key <= 0 or (white is not None and white <= 0):
        raise InputError(f"reinhard02 needs key > 0 and white > 0, got key={key}, white={white}")
    x = x.clamp_min(0.0)
    lum = _weighted_sum(x, REC709_LUMA)
    log_avg = torch.exp(torch.log(eps + lum).mean(dim=(1, 2, 3), keepdim=True))
    lm = key / log_avg * lum
    ld = lm / (1.0 + lm) if white is None else lm * (1.0 + lm / (white * white)) / (1.0 + lm)
    # Colour ratios RGB / L; black pixels (L = 0) stay black.
    ratio = torch.where(lum > 0, ld / torch.where(lum > 0, lum, torch.ones_like(lum)), torch.zeros_like(lum))
    out = (x * ratio).clamp(0.0, 1.0)
    return out[0] if single else out


def _minmax_normalise(x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """OpenCV's linear ``Tonemap``: per image, (x - min) / (max - min) over all channels (unchanged if flat).

    ``valid`` marks the values that take part in min/max (OpenCV's ``minMaxLoc`` skips NaN entries).
    """
    if valid is None:
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
    else:
        lo = torch.where(valid, x, torch.full_like(x, float("inf"))).amin(dim=(1, 2, 3), keepdim=True)
        hi = torch.where(valid, x, torch.full_like(x, float("-inf"))).amax(dim=(1, 2, 3), keepdim=True)
    span = hi - lo
    flat = span <= np.finfo(np.float64).eps
    return torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(span), span))


def reinhard_opencv(hdr: torch.Tensor, gamma: float = 1.5, intensity: float = 0.0, light_adapt: float = 0.0,
                    color_adapt: float = 0.0) -> torch.Tensor:
    """OpenCV's ``TonemapReinhard``, re-implemented in torch (defaults: the official code's ``(1.5, 0, 0, 0)``).

    Steps, per image (all statistics over the whole image):

    1. ``x = (hdr - min) / (max - min)`` (min/max over all channels);
    2. grey ``G = 0.299 R + 0.587 G + 0.114 B`` (OpenCV's ``COLOR_RGB2GRAY``); with ``l = log(max(G, 1e-4))``,
       ``k = (max l - mean l) / (max l - min l)`` and ``m = 0.3 + 0.7 k^1.4``;
    3. per channel ``c``: ``adapt = light_adapt * (color_adapt * x_c + (1 - color_adapt) * G)
       + (1 - light_adapt) * (color_adapt * mean(x_c) + (1 - color_adapt) * mean(G))``,
       ``x_c <- x_c / (x_c + (exp(-intensity) * adapt)^m)``;
    4. min/max normalisation again, then ``x^(1 / gamma)``.

    Channel order: OpenCV applies ``COLOR_RGB2GRAY`` to whatever order it is given. This function matches
    ``cv2.createTonemapReinhard(...).process(img)`` called on an **RGB-ordered** array (as the official code
    did after converting its BGR reads to RGB); the result is then the same RGB image.

    Differences from OpenCV, both at the edges: where a channel sits at the image minimum, OpenCV can return
    NaN (its first normalisation leaves a rounding error below 0, which ``pow`` turns into NaN, and with
    ``light_adapt = color_adapt = 1`` a zero channel gives 0/0); here those values are 0. With
    ``light_adapt = 1`` OpenCV's darkest pixel may also come out a hair below 0 (about -1e-12); its ``pow``
    takes the absolute value, so that pixel maps to a clearly negative value that then shifts the final
    normalisation of the whole image (by 2 % on one of our test photographs). Here the darkest pixel is
    exactly 0, which is the operator's intent; expect differences of that size only at ``light_adapt = 1``. OpenCV's ``process``
    also overwrites the object's ``intensity`` with ``exp(-intensity)``, so reusing one tonemapper object
    for several images changes the later results; this function has no such state.

    Args:
        hdr: (N, 3, H, W) or (3, H, W) linear RGB (any positive scale: step 1 removes it).
        gamma: display gamma of the final step (> 0).
        intensity: in [-8, 8] in OpenCV's documentation; larger is brighter.
        light_adapt: in [0, 1]; 0 = global adaptation, 1 = per-pixel.
        color_adapt: in [0, 1]; 0 = adapt to grey, 1 = per channel.

    Returns:
        Tensor shaped like ``hdr`` in [0, 1].
    """
    x, single = _batched(hdr)
    if gamma <= 0:
        raise InputError(f"reinhard_opencv needs gamma > 0, got {gamma}")
    if not (0.0 <= light_adapt <= 1.0 and 0.0 <= color_adapt <= 1.0):
        raise InputError(f"light_adapt and color_adapt must lie in [0, 1], got {light_adapt}, {color_adapt}")
    img = _minmax_normalise(x)
    gray = _weighted_sum(img, BT601_LUMA)
    log_img = torch.log(gray.clamp_min(1e-4))
    log_mean = log_img.mean(dim=(1, 2, 3), keepdim=True)
    log_min = log_img.amin(dim=(1, 2, 3), keepdim=True)
    log_max = log_img.amax(dim=(1, 2, 3), keepdim=True)
    # A uniform grey image gives 0/0 in OpenCV too (NaN there); use key 0 (map_key 0.3) instead of NaN.
    span = log_max - log_min
    key = torch.where(span > 0, (log_max - log_mean) / torch.where(span > 0, span, torch.ones_like(span)),
                      torch.zeros_like(span))
    map_key = 0.3 + 0.7 * key.clamp_min(0.0).pow(1.4)
    scale = float(np.exp(-intensity))
    chan_mean = img.mean(dim=(2, 3), keepdim=True)  # (N, 3, 1, 1)
    gray_mean = gray.mean(dim=(2, 3), keepdim=True)  # (N, 1, 1, 1)
    global_ = color_adapt * chan_mean + (1.0 - color_adapt) * gray_mean
    adapt = color_adapt * img + (1.0 - color_adapt) * gray
    adapt = light_adapt * adapt + (1.0 - light_adapt) * global_
    denom = (scale * adapt).clamp_min(0.0).pow(map_key)
    total = img + denom
    # 0/0 (a zero channel with zero adaptation) is NaN in OpenCV and left out of its final min/max; same here,
    # and such values end as 0.
    defined = total > 0
    mapped = torch.where(defined, img / torch.where(defined, total, torch.ones_like(total)), torch.zeros_like(img))
    out = _minmax_normalise(mapped, defined)
    out = torch.where(defined, out, torch.zeros_like(out)).clamp(0.0, 1.0)
    out = torch.where(out > 0, torch.where(out > 0, out, torch.ones_like(out)).pow(1.0 / gamma), torch.zeros_like(out))
    return out[0] if single else out


def to_uint8(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """Display values in [0, 1] -> 8-bit codes for previews, rounding half up (``floor(255 x + 0.5)``).

    Args:
        img: (3, H, W) or (N, 3, H, W) tensor, or an (H, W, 3) / (N, H, W, 3) numpy array, in [0, 1]
            (values outside are clipped).

    Returns:
        uint8 numpy array in channel-last layout: (H, W, 3) or (N, H, W, 3).
    """
    if isinstance(img, torch.Tensor):
        if img.ndim not in (3, 4) or img.shape[-3] != 3:
            raise InputError(f"to_uint8 expects a (3, H, W) or (N, 3, H, W) tensor, got {tuple(img.shape)}")
        arr = img.detach().to("cpu", torch.float64).movedim(-3, -1).numpy()
    else:
        arr = np.asarray(img, dtype=np.float64)
        if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
            raise InputError(f"to_uint8 expects an (H, W, 3) or (N, H, W, 3) array, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("to_uint8: image contains NaN or Inf values")
    return np.floor(np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

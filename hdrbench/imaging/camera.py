"""A simple camera model: exposure, sensor noise, clipping, response curve and quantisation.

A linear, relative HDR image becomes an exposure stack in four steps, for every exposure value EV:

1. sensor irradiance ``x = hdr * exposure * t`` with exposure time ``t = 2^EV`` (EV 0 -> t = 1) and a
   per-image global scale ``exposure`` that maps relative HDR units to normalised irradiance (1 = the
   sensor's saturation level) at EV 0;
2. optional sensor noise (shot + read noise, :class:`SensorNoise`);
3. clipping to [0, 1] (saturation, and no negative charge);
4. the camera response curve (:mod:`hdrbench.imaging.crf`) and quantisation to ``quantize_bits`` bits.

The response-curve classes live in :mod:`hdrbench.imaging.crf` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from hdrbench.checks import check_image
from hdrbench.errors import InputError
from hdrbench.imaging.luma import REC709_LUMA
from hdrbench.imaging.crf import (
    CRF,
    CRF_REGISTRY,
    SRGBCRF,
    EMoRCRF,
    GammaCRF,
    SCurveCRF,
    TabulatedCRF,
    get_crf,
    random_crf,
    read_emor_basis,
)

__all__ = [
    "CRF", "CRF_REGISTRY", "GammaCRF", "SRGBCRF", "SCurveCRF", "TabulatedCRF", "EMoRCRF", "get_crf", "random_crf",
    "read_emor_basis", "ev_to_time", "SensorNoise", "clip", "quantize", "luminance", "auto_exposure",
    "simulate_stack", "MID_GREY",
]

#: Normalised irradiance that the median luminance of EV 0 is mapped to by :func:`auto_exposure`.
MID_GREY = 0.18

def ev_to_time(ev: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Relative exposure time ``t = 2^EV`` (EV 0 -> 1).

    Args:
        ev: a number, a sequence or a tensor of exposure values (stops).

    Returns:
        float64 tensor of the same shape as ``ev`` (a 0-d tensor for a number).
    """
    ev_t = torch.as_tensor(ev, dtype=torch.float64)
    if not torch.isfinite(ev_t).all():
        raise InputError(f"exposure values must be finite, got {ev!r}")
    return torch.pow(2.0, ev_t)


@dataclass(frozen=True)
class SensorNoise:
    """Heteroscedastic Gaussian approximation of shot (Poisson) and read noise.

    Units: normalised sensor irradiance, where 1 is the saturation level. A signal ``x`` becomes
    ``x + sqrt(shot * x + read^2) * n`` with ``n ~ N(0, 1)`` drawn independently per pixel and channel.

    Attributes:
        shot: variance per unit signal, ``1 / full-well capacity in electrons`` at unity gain
            (default 2e-4: a 5000 e- full well).
        read: read-noise standard deviation as a fraction of full scale (default 1e-3).
    """

    shot: float = 2e-4
    read: float = 1e-3

    def __post_init__(self) -> None:
        if not (self.shot >= 0 and self.read >= 0):
            raise InputError(f"noise parameters must be >= 0, got shot={self.shot}, read={self.read}")

    def std(self, x: torch.Tensor) -> torch.Tensor:
        """Noise standard deviation at signal ``x`` (negative signals count as 0)."""
        return torch.sqrt(self.shot * x.clamp_min(0.0) + self.read ** 2)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Add noise to the normalised irradiance ``x`` (any shape); deterministic for a given generator."""
        device = generator.device if generator is not None else x.device
        n = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
        return x + self.std(x) * n


def clip(x: torch.Tensor) -> torch.Tensor:
    """Sensor saturation and non-negativity: clamp normalised irradiance to [0, 1]."""
    return x.clamp(0.0, 1.0)


def quantize(z: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Round pixel values in [0, 1] to the ``2^bits`` levels ``k / (2^bits - 1)`` (not differentiable).

    Halves round up (``floor(z * L + 0.5)``), like an ADC and like ``uint8(x + 0.5)`` conversions.

    Args:
        z: values in [0, 1] (clamped first), any shape.
        bits: 1..16.
    """
    if not 1 <= int(bits) <= 16:
        raise InputError(f"quantize_bits must be in 1..16, got {bits}")
    levels = float(2 ** int(bits) - 1)
    return torch.floor(z.clamp(0.0, 1.0) * levels + 0.5) / levels


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Rec. 709 luminance of linear RGB: (..., 3, H, W) -> (..., H, W)."""
    w = torch.tensor(REC709_LUMA, dtype=rgb.dtype, device=rgb.device).reshape(3, 1, 1)
    return (rgb * w).sum(dim=-3)


def auto_exposure(hdr: torch.Tensor, *, target: float = MID_GREY) -> torch.Tensor:
    """Default exposure scale of :func:`simulate_stack`: map each image's median luminance to ``target``.

    ``exposure = target / median(Y)`` with ``Y`` the Rec. 709 luminance of the image; so at EV 0 half the
    pixels lie below 18 % of full scale, like an average-metering camera. Where the median is 0 (e.g. a
    star field on black) the mean luminance is used instead.

    Args:
        hdr: (N, 3, H, W) or (3, H, W) linear relative radiance, >= 0.
        target: normalised irradiance for the median (0 < target < 1).

    Returns:
        float64 tensor (N,) (or 0-d for a single image) on ``hdr``'s device.

    Raises:
        InputError: an image whose luminance is 0 everywhere.
    """
    single = hdr.ndim == 3
    h = hdr[None] if single else hdr
    y = luminance(h.to(torch.float64).clamp_min(0.0)).flatten(1)
    # The conventional median (mean of the two middle values for an even count); torch.median returns the lower.
    m = y.shape[1]
    key = 0.5 * (y.kthvalue((m + 1) // 2, dim=1).values + y.kthvalue(m // 2 + 1, dim=1).values)
    mean = y.mean(dim=1)
    key = torch.where(key > 0, key, mean)
    if (key <= 0).any():
        bad = int(torch.nonzero(key <= 0)[0, 0])
        raise InputError(f"hdr image {bad} is black (luminance 0 everywhere); cannot choose an exposure")
    scale = target / key
    return scale[0] if single else scale


def _check_hdr(hdr: torch.Tensor) -> torch.Tensor:
    return check_image(hdr, "hdr", channels=(3,), unbatched=True)


def simulate_stack(
    hdr: torch.Tensor,
    evs: Sequence[float] | torch.Tensor,
    crf: CRF | str,
    *,
    exposure: float | torch.Tensor | None = None,
    noise: SensorNoise | None = None,
    quantize_bits: int | None = 8,
    generator: torch.Generator | None = None,
    return_exposure: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Render an exposure stack from linear HDR images.

    Pixel value for exposure ``e``: ``quantize(crf(clip(hdr * exposure * 2^EV_e + noise)))``.

    Args:
        hdr: (N, 3, H, W) or (3, H, W) linear relative radiance (finite; negative values are treated as 0).
        evs: E exposure values in stops; exposure time ``t = 2^EV``.
        crf: a :class:`CRF` object or a registry name (``"gamma"``, ``"srgb"``, ``"s-curve"``).
        exposure: global scale(s) mapping relative HDR to normalised sensor irradiance at EV 0: a number,
            or one value per image (N,). Default: :func:`auto_exposure` (median luminance -> 0.18).
        noise: sensor noise model, or ``None`` for a noise-free sensor.
        quantize_bits: output bit depth (8 = the usual LDR), or ``None`` for continuous values.
        generator: torch RNG for the noise (deterministic output for a seeded generator). Its device may
            differ from ``hdr``'s; the noise is drawn there and moved.
        return_exposure: also return the exposure scales used, so that callers can map a merged stack back
            to the HDR's units (``hdr ~= merged_irradiance / exposure``).

    Returns:
        The stack, (N, E, 3, H, W) (or (E, 3, H, W) for a single image) in [0, 1], dtype of ``hdr``;
        with ``return_exposure`` also the float64 exposure scales (N,) (0-d for a single image).

    Raises:
        InputError: bad shapes, NaN/Inf, non-positive exposure, unknown curve name.
    """
    hdr = _check_hdr(hdr)
    single = hdr.ndim == 3
    h = hdr[None] if single else hdr
    n = h.shape[0]
    if isinstance(crf, str):
        crf = get_crf(crf)
    if not isinstance(crf, CRF):
        raise InputError(f"crf must be a CRF object or a curve name, got {type(crf).__name__}")
    ev = torch.as_tensor(evs, dtype=torch.float64).reshape(-1)
    if ev.numel() == 0:
        raise InputError("evs must list at least one exposure value")
    times = ev_to_time(ev)

    if exposure is None:
        scale = auto_exposure(h).reshape(-1)
    else:
        scale = torch.as_tensor(exposure, dtype=torch.float64).reshape(-1).to(h.device)
        if scale.numel() == 1:
            scale = scale.expand(n)
        if scale.numel() != n or not torch.isfinite(scale).all() or (scale <= 0).any():
            raise InputError(f"exposure must be a positive number or {n} positive values, got {exposure!r}")

    # (N, E) irradiance multipliers in float64, applied in the HDR's dtype.
    gain = (scale.to(h.device)[:, None] * times.to(h.device)[None, :]).to(h.dtype)
    x = h.clamp_min(0.0)[:, None] * gain[:, :, None, None, None]  # (N, E, 3, H, W)
    if noise is not None:
        x = noise.apply(x, generator)
    z = crf(clip(x))
    if quantize_bits is not None:
        z = quantize(z, quantize_bits)
    stack = z[0] if single else z
    if return_exposure:
        return stack, (scale[0] if single else scale)
    return stack

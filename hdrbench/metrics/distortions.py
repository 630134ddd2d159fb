"""Graded distortions of a linear HDR image, for checking that HDR metrics and protocols see what they should.

Each distortion maps a reference ``hdr`` (N, 3, H, W), linear relative radiance >= 0, to a distorted image of
the same shape, units and dtype, at a named strength; a larger strength is a larger distortion in the sense
stated on its :class:`Distortion` (``monotone``), which ``tests/test_metric_validity.py`` checks. Random
distortions draw their noise field from ``seed`` alone, so every strength of one scene distorts with the same
field and only its amplitude changes.

Distortions a metric should *detect* (the score must get worse with strength):

* ``gaussian-blur``: separable Gaussian filter of standard deviation ``sigma`` pixels (reflected borders).
* ``gaussian-noise``: multiplicative log-normal noise, ``x * exp(sigma * z)``, z ~ N(0, 1) per pixel and channel
  (signal-dependent, so it is visible at every luminance and never makes a value negative).
* ``colour-cast``: red gain ``1 + c``, blue gain ``1 / (1 + c)``, all three channels then divided by the gains'
  luminance so that the luminance of a grey pixel is unchanged.
* ``banding``: log2 luminance quantised to steps of ``q`` stops (colour ratios kept); pixels of zero luminance
  stay zero.
* ``highlight-clipping``: every channel clipped at the level that the brightest ``f`` of the pixels (by their
  largest channel) exceed; ``f`` is the fraction of pixels clipped.
* ``local-exposure``: the central rectangle (half the width and half the height, a quarter of the area)
  brightened by ``e`` stops.

and one a protocol may declare itself *invariant* to (the score must not change):

* ``global-scale``: the whole image multiplied by a positive factor ``s`` (strength = ``s``).

:func:`blend_towards` grades any other image against the reference (used for the output of an untrained
network by :mod:`hdrbench.evaluate.metric_validity`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from hdrbench.checks import check_image, check_nonnegative
from hdrbench.errors import InputError
from hdrbench.metrics.pu21 import rgb_to_luminance
from hdrbench.registry import Registry

#: Luminance below which a pixel counts as black (relative units) in the luminance-based distortions.
_TINY = 1e-12


@dataclass(frozen=True)
class Distortion:
    """A graded distortion.

    Attributes:
        name: registry name (used in result rows and in protocol ``invariances``).
        kind: ``detect`` (a metric should score it worse with strength) or ``invariance`` (checked only under
            a protocol that declares it).
        strengths: the graded strengths, ascending (at least 4).
        identity: the strength at which the image is unchanged (0 for most; 1 for ``global-scale``).
        unit: what a strength is, for axis labels.
        description: one line: what is done to the image.
        monotone: the stated sense in which a larger strength is a larger distortion (tested).
        apply: ``fn(hdr (N, 3, H, W), strength, seed) -> (N, 3, H, W)``; pure, deterministic.
    """

    name: str
    kind: str
    strengths: tuple[float, ...]
    identity: float
    unit: str
    description: str
    monotone: str
    apply: Callable[[torch.Tensor, float, int], torch.Tensor]

    def __post_init__(self) -> None:
        if self.kind not in ("detect", "invariance"):
            raise ValueError(f"distortion {self.name!r}: kind must be 'detect' or 'invariance'")
        if len(self.strengths) < 4 or list(self.strengths) != sorted(set(self.strengths)):
            raise ValueError(f"distortion {self.name!r}: needs >= 4 distinct ascending strengths")

    def __call__(self, hdr: torch.Tensor, strength: float, seed: int = 0) -> torch.Tensor:
        """Distort ``hdr`` (N, 3, H, W), linear relative, >= 0, at ``strength``; the identity strength returns it."""
        _check_hdr(hdr)
        if float(strength) == self.identity:
            return hdr.clone()
        return self.apply(hdr, float(strength), int(seed))


def _check_hdr(hdr: torch.Tensor, name: str = "hdr") -> None:
    check_image(hdr, name, channels=(3,))
    check_nonnegative(hdr, name)


# --------------------------------------------------------------------------------------------------
# The distortions (pure functions of the image, the strength and a seed)


def gaussian_blur(hdr: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Separable Gaussian blur, standard deviation ``sigma`` pixels, kernel radius ceil(3 sigma), reflected borders.

    The radius is capped at min(H, W) - 1 (reflection padding needs it); on images that small the kernel is
    truncated, which only weakens the blur.
    """
    if not sigma > 0:
        raise InputError(f"gaussian-blur: sigma must be > 0, got {sigma}")
    n, c, h, w = hdr.shape
    radius = min(int(math.ceil(3.0 * sigma)), h - 1, w - 1)
    x = torch.arange(-radius, radius + 1, dtype=hdr.dtype, device=hdr.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    img = hdr.reshape(n * c, 1, h, w)
    img = F.conv2d(F.pad(img, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    img = F.conv2d(F.pad(img, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return img.reshape(n, c, h, w).clamp_min(0.0)


def noise_field(shape: tuple[int, ...], seed: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Standard normal field of ``shape`` drawn from ``seed`` alone (CPU generator, then moved)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def gaussian_noise(hdr: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Multiplicative log-normal noise: ``hdr * exp(sigma * z)``, z ~ N(0, 1) per pixel and channel from ``seed``."""
    if not sigma >= 0:
        raise InputError(f"gaussian-noise: sigma must be >= 0, got {sigma}")
    z = noise_field(tuple(hdr.shape), seed, dtype=hdr.dtype, device=hdr.device)
    return hdr * torch.exp(sigma * z)


def colour_cast(hdr: torch.Tensor, c: float, seed: int = 0) -> torch.Tensor:
    """Warm cast: gains (1 + c, 1, 1 / (1 + c)) on R, G, B, normalised so a grey pixel keeps its luminance."""
    if not c > -1:
        raise InputError(f"colour-cast: c must be > -1, got {c}")
    gains = torch.tensor([1.0 + c, 1.0, 1.0 / (1.0 + c)], dtype=hdr.dtype, device=hdr.device)
    gains = gains / rgb_to_luminance(gains.view(1, 3, 1, 1)).reshape(())
    return hdr * gains.view(1, 3, 1, 1)


def banding(hdr: torch.Tensor, step: float, seed: int = 0) -> torch.Tensor:
    """Log2 luminance rounded to multiples of ``step`` stops; RGB scaled by the luminance ratio (colour kept)."""
    if not step > 0:
        raise InputError(f"banding: step must be > 0, got {step}")
    y = rgb_to_luminance(hdr)
    valid = y > _TINY
    ly = torch.log2(y.clamp_min(_TINY))
    yq = torch.exp2(torch.round(ly / step) * step)
    ratio = torch.where(valid, yq / y.clamp_min(_TINY), torch.ones_like(y))
    return hdr * ratio


def clip_level(hdr: torch.Tensor, fraction: float) -> torch.Tensor:
    """(N,) level exceeded by the brightest ``fraction`` of pixels (their largest channel), per image."""
    m = hdr.amax(dim=1).flatten(1)
    k = min(m.shape[1], max(1, int(round((1.0 - fraction) * m.shape[1]))))
    return m.kthvalue(k, dim=1).values


def highlight_clipping(hdr: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Every channel clipped at :func:`clip_level` (the brightest ``fraction`` of the pixels saturate)."""
    if not 0 < fraction < 1:
        raise InputError(f"highlight-clipping: fraction must be in (0, 1), got {fraction}")
    level = clip_level(hdr, fraction).view(-1, 1, 1, 1)
    return torch.minimum(hdr, level)


def exposure_region(height: int, width: int) -> tuple[slice, slice]:
    """The region ``local-exposure`` changes: the central rectangle of half the height and half the width."""
    h0, w0 = height // 4, width // 4
    return slice(h0, h0 + max(1, height // 2)), slice(w0, w0 + max(1, width // 2))


def local_exposure(hdr: torch.Tensor, stops: float, seed: int = 0) -> torch.Tensor:
    """The central region (:func:`exposure_region`) multiplied by ``2 ** stops``."""
    rows, cols = exposure_region(hdr.shape[-2], hdr.shape[-1])
    out = hdr.clone()
    out[..., rows, cols] = out[..., rows, cols] * (2.0 ** stops)
    return out


def global_scale(hdr: torch.Tensor, factor: float, seed: int = 0) -> torch.Tensor:
    """The whole image multiplied by ``factor`` (> 0)."""
    if not factor > 0:
        raise InputError(f"global-scale: factor must be > 0, got {factor}")
    return hdr * factor


def median_ratio(other: torch.Tensor, hdr: torch.Tensor) -> torch.Tensor:
    """(N,) median over pixels of Y(hdr) / Y(other), over pixels where both luminances are > 0 (1 if none)."""
    yo, yr = rgb_to_luminance(other).flatten(1), rgb_to_luminance(hdr).flatten(1)
    out = []
    for i in range(yo.shape[0]):
        valid = (yo[i] > _TINY) & (yr[i] > _TINY)
        if not bool(valid.any()):
            out.append(torch.ones((), dtype=hdr.dtype, device=hdr.device))
            continue
        out.append(torch.exp((torch.log(yr[i][valid]) - torch.log(yo[i][valid])).median()))
    return torch.stack(out)


def blend_towards(hdr: torch.Tensor, other: torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 - weight) * hdr + weight * s * other``, s = :func:`median_ratio` (``other`` brought to ``hdr``'s scale).

    The scale alignment keeps a pure global scale (which protocols may legitimately ignore) out of the
    blend, so the strength measures only how far the structure and colour of ``other`` are from ``hdr``.

    Args:
        hdr: (N, 3, H, W) reference, linear relative, >= 0.
        other: same shape, linear, >= 0 (any scale).
        weight: in [0, 1]; 0 returns ``hdr``, 1 returns the aligned ``other``.
    """
    _check_hdr(hdr)
    _check_hdr(other, "other")
    if tuple(other.shape) != tuple(hdr.shape):
        raise InputError(f"other has shape {tuple(other.shape)}, hdr {tuple(hdr.shape)}; they must match")
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"blend weight must be in [0, 1], got {weight}")
    s = median_ratio(other, hdr).view(-1, 1, 1, 1).to(hdr.dtype)
    return (1.0 - weight) * hdr + weight * s * other.to(hdr.dtype)


DISTORTIONS: Registry[Distortion] = Registry("distortion")
#: Registration order: the order of tables and figure panels.
_ORDER: list[str] = []


def _register(d: Distortion) -> None:
    DISTORTIONS.register(d.name, d)
    _ORDER.append(d.name)


_register(Distortion(
    "gaussian-blur", "detect", (0.5, 1.0, 2.0, 4.0, 8.0), 0.0, "sigma (px)",
    "separable Gaussian blur of standard deviation sigma pixels, reflected borders",
    "the L2 distance to the reference grows with sigma (a Gaussian attenuates every frequency more as sigma"
    " grows)", gaussian_blur))
_register(Distortion(
    "gaussian-noise", "detect", (0.01, 0.02, 0.05, 0.1, 0.2), 0.0, "sigma (natural log units)",
    "multiplicative log-normal noise x * exp(sigma z), one seeded z field for all strengths",
    "|log(distorted / reference)| = sigma |z| grows with sigma at every pixel", gaussian_noise))
_register(Distortion(
    "colour-cast", "detect", (0.02, 0.05, 0.1, 0.2, 0.4), 0.0, "c (red gain 1 + c, blue gain 1 / (1 + c))",
    "warm colour cast, gains normalised so that grey keeps its luminance",
    "log(R gain / B gain) = 2 log(1 + c) grows with c", colour_cast))
_register(Distortion(
    "banding", "detect", (0.0625, 0.125, 0.25, 0.5, 1.0), 0.0, "step (stops of luminance)",
    "log2 luminance quantised to steps of q stops, colour ratios kept",
    "the largest log2-luminance error (q / 2) and the mean one (about q / 4 on content spanning many steps)"
    " grow with q", banding))
_register(Distortion(
    "highlight-clipping", "detect", (0.002, 0.005, 0.01, 0.02, 0.05), 0.0, "fraction of pixels clipped",
    "every channel clipped at the level the brightest fraction f of the pixels exceed",
    "the clip level does not rise as f grows, so |distorted - reference| does not shrink at any pixel",
    highlight_clipping))
_register(Distortion(
    "local-exposure", "detect", (0.25, 0.5, 1.0, 1.5, 2.0), 0.0, "stops (central quarter of the area)",
    "central rectangle (half width, half height) brightened by e stops",
    "|log2(distorted / reference)| = e inside the region, 0 outside", local_exposure))
_register(Distortion(
    "global-scale", "invariance", (2.0**-6, 2.0**-3, 2.0**3, 2.0**6), 1.0, "factor",
    "whole image multiplied by a factor s",
    "(an invariance: not graded; the factors span 12 stops)", global_scale))


def get_distortion(name: str) -> Distortion:
    """The distortion registered as ``name`` (did-you-mean on a miss)."""
    return DISTORTIONS.get(name)


def list_distortions(kind: str | None = None) -> list[str]:
    """Registered distortion names (in registration order), optionally of one ``kind``."""
    return [n for n in _ORDER if kind is None or DISTORTIONS.get(n).kind == kind]


__all__ = [
    "DISTORTIONS", "Distortion", "banding", "blend_towards", "clip_level", "colour_cast", "exposure_region",
    "gaussian_blur", "gaussian_noise", "get_distortion", "global_scale", "highlight_clipping", "list_distortions",
    "local_exposure", "median_ratio", "noise_field",
]

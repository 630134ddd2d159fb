"""Viewing geometry: pixels per degree of visual angle for a display (HDR-VDP's ``hdrvdp_pix_per_deg``)."""

from __future__ import annotations

import math

from hdrbench.errors import InputError


def pix_per_deg(diagonal_inches: float, resolution: tuple[int, int], distance_m: float) -> float:
    """Pixels per visual degree at the centre of a flat display viewed head-on.

    Args:
        diagonal_inches: display diagonal in inches (> 0).
        resolution: (width, height) in pixels -- width first, as HDR-VDP's helper takes ``[w h]``.
        distance_m: viewing distance in metres (> 0).

    Returns:
        ppd = height_px / (2 atan(0.5 height_mm / distance_mm)) with the angle in degrees, where the
        display height follows from the diagonal and the aspect ratio width / height of ``resolution``.

    Example:
        >>> round(pix_per_deg(21, (512, 384), 1.0), 6)
        21.118873
    """
    try:
        width, height = (float(v) for v in resolution)
    except (TypeError, ValueError):
        raise InputError(f"pix_per_deg: resolution must be (width, height), got {resolution!r}") from None
    for name, v in (("diagonal_inches", diagonal_inches), ("distance_m", distance_m), ("width", width), ("height", height)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InputError(f"pix_per_deg: {name} must be a positive finite number, got {v!r}")
    ar = width / height
    height_mm = math.sqrt((diagonal_inches * 25.4) ** 2 / (1.0 + ar**2))
    height_deg = 2.0 * math.degrees(math.atan(0.5 * height_mm / (distance_m * 1000.0)))
    return height / height_deg

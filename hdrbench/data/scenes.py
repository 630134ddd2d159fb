"""Procedural HDR scenes: the radiance maps behind the embedded ``synthetic`` dataset.

:func:`render_scene` draws one outdoor scene from a seed: a sky with a vertical colour gradient and
clouds, a sun (day and dusk) or a moon and stars (night), buildings with lit and shaded faces and windows,
street lamps with halos and light pools, and a textured ground carrying cast shadows. Every value is a
linear, relative RGB radiance (Rec. 709 primaries); the image's median luminance is 1.

Dynamic range is a scene parameter. Each scene draws a target ``D ~ U(11, 19)`` stops and its log-luminance
is stretched about the median so that the range between the 0.1 and 99.9 luminance percentiles equals
``D`` (chromaticities are kept). The raw composition already spans roughly 9 to 24 stops, so the stretch is
mild; it makes the range a controlled property of the data set instead of a by-product of the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdrbench.errors import InputError
from hdrbench.imaging.luma import REC709_LUMA

__all__ = ["render_scene", "scene_dynamic_range", "DYNAMIC_RANGE_STOPS", "SCENE_KINDS"]

#: Bounds of the drawn target dynamic range (stops between the 0.1 and 99.9 luminance percentiles).
DYNAMIC_RANGE_STOPS = (11.0, 19.0)
#: Scene kinds and their probabilities.
SCENE_KINDS = {"day": 0.5, "dusk": 0.25, "night": 0.25}

#: Bumped whenever the rendered images change (part of the synthetic cache key).
VERSION = "3"

#: Recordable highlights: the largest channel of all but the brightest 0.05 % of pixels stays this many stops
#: above the median luminance. The camera model puts the median at 0.18 of full scale at EV 0, so EV -3 clips
#: at log2(8 / 0.18) = 5.47 stops above the median; 5.2 stops leaves room for the CRF's shoulder reaching the
#: top 8-bit code a little below full scale. The sun disc, lamp heads and halos may use the 0.05 %.
HIGHLIGHT_HEADROOM_STOPS = 5.2
#: Share of pixels allowed above the headroom, in percent of the image.
HIGHLIGHT_BUDGET_PERCENT = 0.05

_LUMA = np.array(REC709_LUMA)


def scene_dynamic_range(radiance: np.ndarray, low: float = 0.1, high: float = 99.9) -> float:
    """Stops between the ``low`` and ``high`` percentiles of Rec. 709 luminance.

    Args:
        radiance: (H, W, 3) linear RGB; pixels with zero luminance are ignored.

    Returns:
        ``log2(P_high / P_low)``.
    """
    lum = radiance.reshape(-1, 3).astype(np.float64) @ _LUMA
    lum = lum[lum > 0]
    if lum.size == 0:
        raise InputError("scene_dynamic_range: the image is black")
    lo, hi = np.percentile(lum, [low, high])
    return float(np.log2(hi / lo))


# ---------------------------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------------------------
def _fractal_noise(rng: np.random.Generator, h: int, w: int, base_cells: int, octaves: int = 4,
                   persistence: float = 0.5) -> np.ndarray:
    """Smooth value noise in about [-1, 1]: bicubic-upsampled random grids, finer octaves weaker."""
    import cv2  # noqa: PLC0415  (local: OpenCV is only needed when rendering)

    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    cells = base_cells
    for _ in range(octaves):
        gh, gw = max(2, int(round(cells * h / max(h, w)))) + 1, max(2, int(round(cells * w / max(h, w)))) + 1
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
        cells *= 2
    return out / (total * 1.2)


def _soft_disk(dist: np.ndarray, radius: float, softness: float) -> np.ndarray:
    """1 inside ``radius``, 0 outside, with a smooth edge ``softness`` wide (all in pixels)."""
    return np.clip((radius - dist) / max(softness, 1e-6) + 0.5, 0.0, 1.0)


def _box(yy: np.ndarray, xx: np.ndarray, y0: float, y1: float, x0: float, x1: float, soft: float = 0.7) -> np.ndarray:
    """Anti-aliased axis-aligned rectangle mask in pixel coordinates."""
    fy = np.clip(np.minimum(yy - y0, y1 - yy) / soft + 0.5, 0, 1)
    fx = np.clip(np.minimum(xx - x0, x1 - xx) / soft + 0.5, 0, 1)
    return fy * fx


def _rgb(r: float, g: float, b: float) -> np.ndarray:
    return np.array([r, g, b], np.float32)


def _lerp(a, b, t):
    return a + (b - a) * t


# ---------------------------------------------------------------------------------------------------------------
# the renderer
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Frame:
    """What every section of a scene shares: its kind, size and pixel grid, and the horizon row."""

    kind: str
    h: int
    w: int
    scale: int  # the shorter side; feature sizes are fractions of it
    yy: np.ndarray  # (H, W) float32 row index of each pixel
    xx: np.ndarray  # (H, W) float32 column index of each pixel
    horizon: float  # row of the horizon, in pixels


@dataclass(frozen=True)
class _Sun:
    """The sun (a moon at night): centre row/column and radius in pixels."""

    sy: float
    sx: float
    radius: float


@dataclass(frozen=True)
class _Ground:
    """The ground's coverage mask (H, W), albedo (H, W, 3) and its direct and ambient illumination levels."""

    mask: np.ndarray
    albedo: np.ndarray
    direct: float
    ambient: float


@dataclass(frozen=True)
class _Buildings:
    """Building coverage (H, W), facade radiance (H, W, 3), ground visibility of the sun (H, W), count."""

    objects: np.ndarray
    facade: np.ndarray
    visibility: np.ndarray
    count: int


@dataclass(frozen=True)
class _Lamps:
    """Street lamps: pole and head coverage (H, W), head radiance, halos and ground light (H, W, 3), layout."""

    poles: np.ndarray
    heads: np.ndarray
    head_rad: np.ndarray
    halos: np.ndarray
    light: np.ndarray
    meta: list[tuple[float, float, float]]


def render_scene(seed: int, height: int = 256, width: int = 256, *,
                 return_meta: bool = False) -> np.ndarray | tuple[np.ndarray, dict]:
    """Render one procedural HDR scene.

    The sections draw from one generator in a fixed order (kind, horizon, sky, sun, ground, buildings, lamps,
    then the dynamic-range target in :func:`_finish`); the rendered data and every result computed on it
    depend on that order, which ``tests/golden/scene_hashes.json`` pins.

    Args:
        seed: non-negative integer; the same seed always gives the same image (for a given size).
        height, width: output size in pixels (>= 32 each).
        return_meta: also return a dict describing the drawn layout (JSON-friendly): ``kind``
            (day/dusk/night), ``horizon_row``, ``sun`` (row, col, radius in pixels; a moon at night),
            ``sun_visible`` (not hidden by a building or pole), ``lamps`` (list of head row, col, radius),
            ``buildings``, ``target_stops``.

    Returns:
        (H, W, 3) float32 linear relative radiance, all values > 0, median luminance 1, and between 11 and 19
        stops between the 0.1 and 99.9 luminance percentiles; with ``return_meta`` also the dict.

    Raises:
        InputError: negative or non-integer seed, or a size below 32 pixels.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if int(height) < 32 or int(width) < 32:
        raise InputError(f"scene size must be at least 32x32, got {height}x{width}")
    h, w = int(height), int(width)
    rng = np.random.default_rng([int(seed), 0x5CE4E])
    kind = rng.choice(list(SCENE_KINDS), p=list(SCENE_KINDS.values()))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = _Frame(kind=kind, h=h, w=w, scale=min(h, w), yy=yy, xx=xx, horizon=rng.uniform(0.38, 0.62) * h)

    sky, sky_level, cloud_mask = _sky(rng, frame)
    sky, sun = _sun_or_moon(rng, frame, sky, sky_level, cloud_mask)
    img = np.zeros((h, w, 3), np.float32)
    img[:] = sky
    ground = _ground(rng, frame, sky_level)
    buildings = _buildings(rng, frame, sky_level, ground, sun)
    lamps = _lamps(rng, frame, sky_level)
    img = _compose(frame, img, ground, buildings, lamps)

    out, target = _finish(img.astype(np.float64), rng)
    if not return_meta:
        return out
    r, c = int(np.clip(round(sun.sy), 0, h - 1)), int(np.clip(round(sun.sx), 0, w - 1))
    meta = {
        "seed": int(seed), "kind": str(kind), "horizon_row": float(frame.horizon),
        "sun": (float(sun.sy), float(sun.sx), float(sun.radius)),
        "sun_visible": bool(buildings.objects[r, c] < 0.5 and lamps.poles[r, c] < 0.5 and lamps.heads[r, c] < 0.5),
        "lamps": lamps.meta, "buildings": buildings.count, "target_stops": float(target),
    }
    return out, meta


def _sky(rng: np.random.Generator, f: _Frame) -> tuple[np.ndarray, float, np.ndarray]:
    """Sky with a vertical colour gradient and clouds; returns (sky (H, W, 3), sky level, cloud mask (H, W, 1))."""
    if f.kind == "day":
        zenith, near, sky_level = _rgb(0.22, 0.42, 1.0), _rgb(0.80, 0.88, 1.0), 1.0
    elif f.kind == "dusk":
        zenith, near, sky_level = _rgb(0.12, 0.16, 0.45), _rgb(1.0, 0.55, 0.28), 0.35
    else:
        zenith, near, sky_level = _rgb(0.010, 0.014, 0.040), _rgb(0.05, 0.045, 0.06), 0.02
    t = np.clip(f.yy / f.horizon, 0, 1)[..., None] ** 0.7
    sky = _lerp(zenith, near, t) * sky_level
    clouds = _fractal_noise(rng, f.h, f.w, base_cells=rng.integers(3, 7), octaves=4)
    cover = rng.uniform(-0.2, 0.5)
    cloud_mask = np.clip((clouds + cover - 0.3) * 3.0, 0, 1)[..., None]
    cloud_colour = _rgb(1.0, 0.97, 0.95) if f.kind != "dusk" else _rgb(1.0, 0.62, 0.45)
    sky = _lerp(sky, cloud_colour * sky_level * rng.uniform(0.6, 1.3), cloud_mask * 0.85)
    return sky, sky_level, cloud_mask


def _sun_or_moon(rng: np.random.Generator, f: _Frame, sky: np.ndarray, sky_level: float,
                 cloud_mask: np.ndarray) -> tuple[np.ndarray, _Sun]:
    """Add the sun (day, dusk) or the moon and stars (night), with its glow, to the sky; returns (sky, sun)."""
    h, w, scale, yy, xx, horizon = f.h, f.w, f.scale, f.yy, f.xx, f.horizon
    sx = rng.uniform(0.1, 0.9) * w
    if f.kind == "day":
        sy = rng.uniform(0.08, 0.8) * horizon
        disc_level, glow_level = 2.0 ** rng.uniform(13.5, 16.5), 2.0 ** rng.uniform(2.0, 4.0)
        disc_colour = _rgb(1.0, 0.97, 0.92)
    elif f.kind == "dusk":
        sy = horizon - rng.uniform(0.05, 0.2) * horizon
        disc_level, glow_level = 2.0 ** rng.uniform(11.0, 14.0), 2.0 ** rng.uniform(2.0, 3.5)
        disc_colour = _rgb(1.0, 0.62, 0.3)
    else:
        sy = rng.uniform(0.1, 0.7) * horizon
        disc_level, glow_level = 2.0 ** rng.uniform(3.0, 6.0), 2.0 ** rng.uniform(-1.0, 1.0)
        disc_colour = _rgb(0.9, 0.92, 1.0)
    radius = rng.uniform(0.024, 0.034) * scale
    dist = np.hypot(yy - sy, xx - sx)
    glow = glow_level * sky_level * np.exp(-dist / (0.06 * scale)) + 0.4 * glow_level * sky_level * np.exp(
        -dist / (0.25 * scale))
    sky = sky + glow[..., None] * disc_colour
    disc = _soft_disk(dist, radius, 1.0)[..., None]
    # Clouds in front of the disc dim it (but never hide it completely).
    sky = _lerp(sky, disc_colour * disc_level * sky_level * (1 - 0.7 * cloud_mask), disc)
    if f.kind == "night":  # stars: isolated bright pixels well above the night sky
        stars = (rng.random((h, w)) < 0.002) & (yy < horizon)
        sky = sky + stars[..., None] * 2.0 ** rng.uniform(-2, 1, size=(h, w, 1)) * sky_level * 20
    return sky, _Sun(sy=sy, sx=sx, radius=radius)


def _ground(rng: np.random.Generator, f: _Frame, sky_level: float) -> _Ground:
    """Textured ground below the horizon, with perspective furrows, and its sun/moon and sky illumination."""
    h, w, scale, yy, xx, horizon = f.h, f.w, f.scale, f.yy, f.xx, f.horizon
    below = (yy - horizon)
    ground = _box(yy, xx, horizon, h + 10, -10, w + 10)
    # Perspective: texture coordinates compress towards the horizon.
    depth = scale * 0.35 / np.maximum(below, 0.5)
    tex = _fractal_noise(rng, h, w, base_cells=rng.integers(8, 16), octaves=5, persistence=0.6)
    # Receding furrows: bands in depth, faded out where they would be finer than about a pixel (no moire).
    freq = rng.uniform(0.5, 1.5)
    rate = freq * scale * 0.35 / np.maximum(below, 0.5) ** 2  # radians per pixel row
    stripes = 0.5 + 0.5 * np.sin(depth * freq + rng.uniform(0, 6.28)) * np.clip(1.5 - rate, 0, 1)
    palette = [_rgb(0.18, 0.32, 0.10), _rgb(0.45, 0.40, 0.30), _rgb(0.20, 0.20, 0.21),
               _rgb(0.35, 0.24, 0.15)]
    base = palette[rng.integers(len(palette))]
    albedo = base[None, None, :] * np.exp(0.9 * tex)[..., None] * (0.85 + 0.3 * stripes[..., None] * (
        rng.random() < 0.4))
    albedo = np.clip(albedo, 0.015, 0.8)
    if f.kind == "day":
        direct, ambient = 2.0 ** rng.uniform(1.5, 3.0) * sky_level, 0.5 * sky_level
    elif f.kind == "dusk":
        direct, ambient = 2.0 ** rng.uniform(0.0, 1.5) * sky_level, 0.4 * sky_level
    else:
        direct, ambient = 2.0 ** rng.uniform(-1.0, 0.5) * sky_level * 0.05, 0.3 * sky_level
    return _Ground(mask=ground, albedo=albedo, direct=direct, ambient=ambient)


def _buildings(rng: np.random.Generator, f: _Frame, sky_level: float, ground: _Ground, sun: _Sun) -> _Buildings:
    """One to four buildings with lit and shaded faces and windows, and the shadows they cast on the ground."""
    h, w, scale, yy, xx, horizon, kind = f.h, f.w, f.scale, f.yy, f.xx, f.horizon, f.kind
    direct, ambient = ground.direct, ground.ambient
    visibility = np.ones((h, w), np.float32)
    objects = np.zeros((h, w), np.float32)
    facade = np.zeros((h, w, 3), np.float32)
    n_buildings = int(rng.integers(1, 5))
    lit_windows = kind != "day"
    sun_side = 1.0 if sun.sx < w / 2 else -1.0  # shadows fall away from the sun
    for _ in range(n_buildings):
        bw = rng.uniform(0.1, 0.3) * w
        x0 = rng.uniform(-0.05, 0.95) * w - bw / 2
        x1 = x0 + bw
        top = horizon - rng.uniform(0.15, 0.75) * horizon
        bottom = horizon + rng.uniform(0.02, 0.25) * (h - horizon)
        colour = _rgb(rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6), rng.uniform(0.2, 0.55)) * rng.uniform(0.25, 0.8)
        split = x0 + bw * rng.uniform(0.35, 0.65)
        rows, cols = int(rng.integers(3, 9)), int(rng.integers(2, 6))
        lit_cells = (rng.random((rows + 1, cols + 1)) < 0.45) * 2.0 ** rng.uniform(-1, 1.5, size=(rows + 1, cols + 1))
        lamp_light = _rgb(1.0, 0.78, 0.45) * 2.0 ** rng.uniform(3.5, 6.0) * max(sky_level, 0.05) * 8
        length = (bottom - top) * (0.4 if kind == "day" else 1.2) * rng.uniform(0.6, 1.4)
        # Everything about the building itself happens inside its bounding box (plus a pixel of soft edge).
        r0, r1 = max(0, int(np.floor(top)) - 1), min(h, int(np.ceil(bottom)) + 2)
        c0, c1 = max(0, int(np.floor(x0)) - 1), min(w, int(np.ceil(x1)) + 2)
        if r1 > r0 and c1 > c0:
            by, bx = yy[r0:r1, c0:c1], xx[r0:r1, c0:c1]
            mask = _box(by, bx, top, bottom, x0, x1)
            brick = _fractal_noise(rng, r1 - r0, c1 - c0, base_cells=max(2, int(24 * max(r1 - r0, c1 - c0) / scale)),
                                   octaves=2)
            refl = colour * np.exp(0.4 * brick)[..., None]
            # The sunward part of the facade is lit directly; the rest only by the sky.
            sunlit = np.clip(((bx - split) * -sun_side) / 0.7 + 0.5, 0, 1)
            surface = refl * (ambient + direct * sunlit * (kind != "night"))[..., None]
            # Windows: a grid of rows x cols cells, each holding a window (middle half of the cell, with a
            # one-pixel soft edge); dark glass by day, some lit from inside at dusk and night.
            cell_h, cell_w = (bottom - top) / (rows + 0.3), bw / cols
            u, v = (bx - x0) / cell_w, (by - top) / cell_h
            fu, fv = u - np.floor(u), v - np.floor(v)
            win = (np.clip(np.minimum(fu - 0.25, 0.75 - fu) * cell_w + 0.5, 0, 1)
                   * np.clip(np.minimum(fv - 0.25, 0.70 - fv) * cell_h + 0.5, 0, 1) * (v < rows) * mask)
            glass = 0.15 * sky_level * _rgb(0.6, 0.7, 0.8)
            surface = _lerp(surface, glass, win[..., None] * 0.9)
            if lit_windows:
                iu = np.clip(np.floor(u).astype(int), 0, cols)
                iv = np.clip(np.floor(v).astype(int), 0, rows)
                surface = surface + (win * lit_cells[iv, iu])[..., None] * lamp_light
            facade[r0:r1, c0:c1] = _lerp(facade[r0:r1, c0:c1], surface, mask[..., None])
            objects[r0:r1, c0:c1] = np.maximum(objects[r0:r1, c0:c1], mask)
        # Cast shadow on the ground: the footprint pushed away from the sun, longer for a low sun.
        shift = -sun_side * length * 0.6
        sh = _box(yy, xx, bottom - 2, bottom + length * 0.5, min(x0, x0 + shift), max(x1, x1 + shift), soft=3.0)
        visibility = np.minimum(visibility, 1 - sh)
    return _Buildings(objects=objects, facade=facade, visibility=visibility, count=n_buildings)


def _lamps(rng: np.random.Generator, f: _Frame, sky_level: float) -> _Lamps:
    """Street lamps (mostly at dusk and night): poles, bright heads with halos, and pools of light."""
    h, w, scale, yy, xx, horizon, kind = f.h, f.w, f.scale, f.yy, f.xx, f.horizon, f.kind
    light = np.zeros((h, w, 3), np.float32)  # extra illumination from lamps
    n_lamps = int(rng.integers(0, 3)) + (2 if kind != "day" else 0)
    lamp_meta: list[tuple[float, float, float]] = []
    poles = np.zeros((h, w), np.float32)
    heads = np.zeros((h, w), np.float32)
    head_rad = np.zeros((h, w, 3), np.float32)
    halos = np.zeros((h, w, 3), np.float32)  # scattered light around the lamp heads, added on top
    for _ in range(n_lamps):
        lx = rng.uniform(0.05, 0.95) * w
        foot = horizon + rng.uniform(0.1, 0.9) * (h - horizon)
        ly = max(foot - (foot - horizon) * rng.uniform(1.0, 2.5) - 0.1 * scale, 0.06 * h)  # head in the frame
        poles = np.maximum(poles, _box(yy, xx, ly, foot, lx - 0.006 * scale, lx + 0.006 * scale))
        head_r = 0.018 * scale * (0.6 + 0.8 * (foot - horizon) / (h - horizon))  # nearer lamps look bigger
        d = np.hypot(yy - ly, xx - lx)
        head = _soft_disk(d, head_r, 1.0)
        lamp_meta.append((float(ly), float(lx), float(head_r)))
        colour = _rgb(1.0, 0.8, 0.5) if rng.random() < 0.6 else _rgb(0.85, 0.9, 1.0)
        level = 2.0 ** rng.uniform(9.0, 12.0) * (sky_level if kind == "day" else 0.05)
        head_rad = _lerp(head_rad, colour * level, head[..., None])
        heads = np.maximum(heads, head)
        halos = halos + (level * 2.0 ** -9 * np.exp(-d / (0.05 * scale)))[..., None] * colour
        # Pool of light on the ground around the foot of the pole.
        pool = np.exp(-(((xx - lx) / (0.12 * scale)) ** 2 + ((yy - foot) / (0.04 * scale)) ** 2))
        light = light + (level * 2.0 ** -8 * pool)[..., None] * colour
    return _Lamps(poles=poles, heads=heads, head_rad=head_rad, halos=halos, light=light, meta=lamp_meta)


def _compose(f: _Frame, img: np.ndarray, ground: _Ground, buildings: _Buildings, lamps: _Lamps) -> np.ndarray:
    """Composite the sections over the sky ``img`` (H, W, 3), back to front."""
    sun_on_ground = ground.direct * buildings.visibility * (1.0 if f.kind != "night" else 0.3)
    ground_rad = ground.albedo * ((ground.ambient + sun_on_ground)[..., None] + lamps.light)
    img = _lerp(img, ground_rad, ground.mask[..., None])
    img = _lerp(img, buildings.facade + 0.3 * lamps.light, buildings.objects[..., None])
    img = _lerp(img, np.full(3, 0.03) * ground.ambient, lamps.poles[..., None])  # dark metal poles
    return _lerp(img, lamps.head_rad, lamps.heads[..., None]) + lamps.halos


def _finish(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Set the dynamic range to the drawn target and the median luminance to 1; returns (image, target).

    The log-luminance is stretched about the median, with one factor above the median and another below it.
    The factor above is capped so that the brightest pixels stay recordable by the darkest exposure of the
    camera model (:data:`HIGHLIGHT_HEADROOM_STOPS`); the factor below then supplies the rest of the range.
    Chromaticities are kept (each pixel is scaled as a whole).
    """
    img = np.maximum(img, 0.0)
    lum = img @ _LUMA
    floor = np.percentile(lum[lum > 0], 0.01) * 0.5 if (lum > 0).any() else 1.0
    img = img + floor  # no black pixels: keeps logs finite and percentiles meaningful
    lum = img @ _LUMA
    log_lum = np.log2(lum)
    # Stops from a pixel's luminance to its largest channel: what saturates first in a camera.
    chroma = np.log2(img.max(axis=-1)) - log_lum
    med = float(np.median(log_lum))
    target = rng.uniform(*DYNAMIC_RANGE_STOPS)
    above = log_lum > med
    # The budget is a share of the whole image; as a percentile of the pixels above the median:
    pct_above = max(0.0, 100.0 - HIGHLIGHT_BUDGET_PERCENT / max(float(above.mean()), 1e-9))

    def stretched(g_lo: float, g_hi: float) -> np.ndarray:
        return med + (log_lum - med) * np.where(above, g_hi, g_lo)

    def measured(g_lo: float, g_hi: float) -> float:
        # The range as scene_dynamic_range measures it: percentiles of the linear luminance. Percentiles
        # interpolate between order statistics, which a power law does not commute with, so the stretch
        # factors are found on this measure itself rather than on the log-domain percentiles.
        lo, hi = np.percentile(np.exp2(stretched(g_lo, g_hi)), [0.1, 99.9])
        return float(np.log2(hi / lo))

    def headroom(g_hi: float) -> float:
        # Stops above the median of the largest channel at the highlight percentile (pixels above the median).
        return float(np.percentile(stretched(1.0, g_hi)[above] + chroma[above] - med, pct_above))

    gamma = target / max(measured(1.0, 1.0), 1e-6)
    for _ in range(8):  # fixed-point refinement; the range is close to linear in gamma, so it converges fast
        r = measured(gamma, gamma)
        if abs(r - target) < 1e-4:
            break
        gamma *= target / max(r, 1e-6)
    g_lo = g_hi = gamma
    if above.any() and headroom(g_hi) > HIGHLIGHT_HEADROOM_STOPS:
        # The headroom is linear in g_hi for the pixels above the median (their order does not change).
        g_hi = g_hi * HIGHLIGHT_HEADROOM_STOPS / headroom(g_hi)
        for _ in range(8):
            h_now = headroom(g_hi)
            if abs(h_now - HIGHLIGHT_HEADROOM_STOPS) < 1e-4:
                break
            g_hi *= HIGHLIGHT_HEADROOM_STOPS / max(h_now, 1e-6)
        for _ in range(30):  # the shadows now carry the rest of the drawn range
            r = measured(g_lo, g_hi)
            if abs(r - target) < 1e-4:
                break
            upper = float(np.log2(np.percentile(np.exp2(stretched(g_lo, g_hi)), 99.9))) - med
            lower_now, lower_want = r - upper, target - upper
            g_lo *= lower_want / max(lower_now, 1e-6)
    new_log = stretched(g_lo, g_hi)  # median stays, range becomes the target
    img = img * np.exp2(new_log - log_lum)[..., None]
    img = img / np.exp2(med)  # median luminance 1
    return img.astype(np.float32), float(target)

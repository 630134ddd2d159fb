"""Procedural HDR scenes: determinism, dynamic range over many seeds, content, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from hdrbench.data.scenes import render_scene, scene_dynamic_range
from hdrbench.errors import InputError

LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709


def _stops(img):
    # Independent of the module: numpy percentiles of Rec. 709 luminance.
    lum = img.reshape(-1, 3).astype(np.float64) @ LUMA
    lo, hi = np.percentile(lum, [0.1, 99.9])
    return np.log2(hi / lo)


def test_shape_values_and_determinism():
    a = render_scene(3)
    assert a.shape == (256, 256, 3) and a.dtype == np.float32
    assert np.isfinite(a).all() and (a > 0).all()
    np.testing.assert_allclose(np.median(a.reshape(-1, 3).astype(np.float64) @ LUMA), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(render_scene(3), a)  # bit-identical on a second call
    assert not np.array_equal(render_scene(4), a)
    b = render_scene(3, height=96, width=160)
    assert b.shape == (96, 160, 3)
    np.testing.assert_array_equal(render_scene(3, height=96, width=160), b)


@pytest.mark.slow
def test_dynamic_range_over_many_seeds():
    kinds = set()
    stops = []
    for seed in range(100):
        img, meta = render_scene(seed, return_meta=True)
        s = _stops(img)
        stops.append(s)
        kinds.add(meta["kind"])
        assert 10.0 <= s <= 20.0, f"seed {seed}: {s:.2f} stops"
        # The stretch makes the measured range equal the drawn target; percentile interpolation between
        # order statistics moves it by a few hundredths of a stop at most.
        assert abs(s - meta["target_stops"]) < 0.05, seed
        assert abs(scene_dynamic_range(img) - s) < 1e-9
    assert kinds == {"day", "dusk", "night"}
    assert max(stops) - min(stops) > 5  # the range varies across the set, not pinned to one value


def test_content_sun_lamps_sky_and_ground():
    checked_sun = checked_lamp = checked_sky = 0
    for seed in range(24):
        img, meta = render_scene(seed, height=128, width=128, return_meta=True)
        lum = img.astype(np.float64) @ LUMA
        p99 = np.percentile(lum, 99.0)
        r, c, _ = meta["sun"]
        if meta["kind"] != "night" and meta["sun_visible"]:
            # A visible sun disc is among the brightest 1 % of pixels.
            assert lum[int(round(r)), int(round(c))] >= p99, seed
            checked_sun += 1
        for lr, lc, rad in meta["lamps"]:
            # The head disc has a 1-px soft edge, so a radius >= 1.5 px fully covers the pixel nearest its centre.
            if meta["kind"] == "night" and rad >= 1.5:
                assert lum[int(round(lr)), int(round(lc))] >= p99, seed
                checked_lamp += 1
        horizon = int(meta["horizon_row"])
        far = np.abs(np.arange(img.shape[1]) - c) > 0.3 * img.shape[1]  # columns outside the sun's aureole
        if meta["kind"] == "day" and far.sum() >= 8:
            sky_top = img[: max(2, horizon // 4), far].reshape(-1, 3)
            sky_low = img[int(horizon * 0.7): horizon - 1, far].reshape(-1, 3)
            # Sky gradient: the zenith is bluer (higher B/R) than the sky near the horizon, on median pixels.
            assert np.median(sky_top[:, 2] / sky_top[:, 0]) > np.median(sky_low[:, 2] / sky_low[:, 0]), seed
            checked_sky += 1
    assert checked_sun >= 5 and checked_lamp >= 2 and checked_sky >= 3


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_bad_seed(seed):
    with pytest.raises(InputError, match="seed"):
        render_scene(seed)


def test_bad_size():
    with pytest.raises(InputError, match="32x32"):
        render_scene(0, height=16, width=256)


def test_renders_bit_identical_to_pinned_digests():
    """Every pinned scene (the synthetic card's default 24 + 8 scenes, and non-square renders) matches the
    SHA-256 digests in ``tests/golden/scene_hashes.json`` exactly: the generated data and the committed
    results depend on the renderer's values and on the order of its random draws, so there is no tolerance.
    The digests are regenerated deliberately with ``tests/golden/make_scene_hashes.py``."""
    import json
    import sys
    from pathlib import Path

    golden = Path(__file__).resolve().parent / "golden"
    sys.path.insert(0, str(golden))
    try:
        from make_scene_hashes import CASES, scene_digest
    finally:
        sys.path.remove(str(golden))
    expected = json.loads((golden / "scene_hashes.json").read_text())
    assert sorted(expected) == sorted(f"{s}:{h}x{w}" for s, h, w in CASES)
    changed = [f"{s}:{h}x{w}" for s, h, w in CASES if scene_digest(s, h, w) != expected[f"{s}:{h}x{w}"]]
    assert not changed, f"rendered scenes differ from the pinned digests: {changed}"

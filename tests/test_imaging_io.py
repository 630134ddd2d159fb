"""Image I/O: round trips, agreement with independent readers, and every bad-input path."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hdrbench.errors import ImageReadError, InputError
from hdrbench.imaging.io import LoadedImage, read_image, read_stack, write_image

EXR_FILES = ["MultiResolution_Bonita", "ScanLines_Desk", "Tiles_GoldenGate"]

# RGBE stores one shared exponent and an 8-bit mantissa per channel, truncated on encoding (OpenCV's rgbe.cpp):
# each channel is off by less than one mantissa step, 2^(e-8), where 2^(e-1) <= max(r, g, b) < 2^e. Hence
# |decoded - x| < max(r, g, b) / 128 for every channel (0.78 % relative for the brightest channel).
RGBE_BOUND = 1.0 / 128


def _cv2():
    os.environ["OPENCV_IO_ENABLE_OPENEXR"] = "1"  # read by OpenCV's EXR codec at decode time
    import cv2

    return cv2


def _hdr_data(h=17, w=23, seed=0):
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(0, 3, size=(h, w, 3))).astype(np.float32)  # ~ 17 stops of range


# ------------------------------------------------------------------------------------------------ round trips
def test_pfm_round_trip_is_exact_and_matches_opencv(tmp_path):
    data = _hdr_data()
    data[0, 0] = [-1.5, 0.0, 3e38]  # PFM stores any float32, including negatives and huge values
    path = write_image(tmp_path / "x.pfm", data)
    img = read_image(path)
    assert isinstance(img, LoadedImage) and img.encoding == "linear" and img.format == "pfm" and img.bit_depth == 32
    np.testing.assert_array_equal(img.data, data)
    # OpenCV's own PFM codec (an independent reader) sees the same pixels, so row order and byte order agree.
    cv = _cv2().imread(str(path), -1)
    np.testing.assert_array_equal(cv[:, :, ::-1], data)


def test_pfm_big_endian_greyscale_bottom_to_top(tmp_path):
    # Hand-made file: greyscale "Pf", positive scale = big-endian, rows stored bottom row first.
    rows_bottom_first = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=">f4")
    path = tmp_path / "g.pfm"
    path.write_bytes(b"Pf\n3 2\n1.0\n" + rows_bottom_first.tobytes())
    img = read_image(path)
    assert img.data.shape == (2, 3, 3) and "greyscale expanded to RGB" in img.notes
    np.testing.assert_array_equal(img.data[..., 0], [[4, 5, 6], [1, 2, 3]])  # top row = last stored row
    np.testing.assert_array_equal(img.data[..., 0], img.data[..., 2])


def test_exr_float_and_half_round_trips(tmp_path):
    data = _hdr_data()
    img = read_image(write_image(tmp_path / "f.exr", data))
    assert img.bit_depth == 32 and img.encoding == "linear"
    np.testing.assert_array_equal(img.data, data)
    half = read_image(write_image(tmp_path / "h.exr", data, bit_depth=16))
    assert half.bit_depth == 16
    np.testing.assert_array_equal(half.data, data.astype(np.float16).astype(np.float32))
    # An independent reader (OpenCV's EXR codec) sees the same values.
    np.testing.assert_array_equal(_cv2().imread(str(tmp_path / "f.exr"), -1)[:, :, ::-1], data)


def test_hdr_round_trip_within_rgbe_precision(tmp_path):
    data = _hdr_data(64, 48)
    img = read_image(write_image(tmp_path / "x.hdr", data))
    assert img.encoding == "linear" and img.format == "hdr" and img.data.dtype == np.float32
    peak = data.max(axis=2, keepdims=True)
    assert (np.abs(img.data - data) <= RGBE_BOUND * peak).all()
    brightest = np.take_along_axis(img.data, data.argmax(axis=2)[..., None], 2)
    assert (np.abs(brightest - peak) / peak).max() <= RGBE_BOUND
    # OpenCV reads the same file to the same floats (BGR order on its side).
    np.testing.assert_array_equal(_cv2().imread(str(tmp_path / "x.hdr"), -1)[:, :, ::-1], img.data)


def test_hdr_write_clamps_negatives(tmp_path):
    data = np.ones((2, 2, 3), np.float32)
    data[0, 0, 0] = -3.0
    out = read_image(write_image(tmp_path / "n.hdr", data)).data
    assert out[0, 0, 0] == 0.0 and out[1, 1, 1] == 1.0


def test_png_16_bit_exact_and_8_bit(tmp_path):
    rng = np.random.default_rng(1)
    codes16 = rng.integers(0, 65536, size=(9, 11, 3))
    img = read_image(write_image(tmp_path / "x16.png", codes16 / 65535.0, bit_depth=16))
    assert img.bit_depth == 16 and img.encoding == "display"
    np.testing.assert_array_equal(np.round(img.data.astype(np.float64) * 65535), codes16)
    cv = _cv2().imread(str(tmp_path / "x16.png"), -1)
    assert cv.dtype == np.uint16
    np.testing.assert_array_equal(cv[:, :, ::-1], codes16)
    codes8 = rng.integers(0, 256, size=(9, 11, 3))
    img8 = read_image(write_image(tmp_path / "x8.png", codes8 / 255.0))
    assert img8.bit_depth == 8
    np.testing.assert_array_equal(np.round(img8.data * 255), codes8)


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_tiff_round_trips(tmp_path, bits):
    rng = np.random.default_rng(2)
    data = rng.random((7, 5, 3)).astype(np.float32)
    img = read_image(write_image(tmp_path / "x.tif", data, bit_depth=bits))
    assert img.bit_depth == bits and img.encoding == ("linear" if bits == 32 else "display")
    if bits == 32:
        np.testing.assert_array_equal(img.data, data)
    else:
        levels = 2 ** bits - 1
        np.testing.assert_array_equal(img.data, (np.floor(data.astype(np.float64) * levels + 0.5) / levels)
                                      .astype(np.float32))


def test_jpeg_round_trip_smooth_image(tmp_path):
    ramp = np.linspace(0, 1, 64)[:, None, None] * np.ones((64, 48, 3))
    img = read_image(write_image(tmp_path / "x.jpg", ramp))
    assert img.bit_depth == 8 and img.format == "jpeg"
    # Quality 95 on a smooth ramp: JPEG error stays within a few codes (measured 0.5 codes, bound 3).
    assert np.abs(img.data - ramp).max() < 3 / 255


def test_greyscale_and_alpha(tmp_path):
    cv2 = _cv2()
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    img = read_image(tmp_path / "g.png")
    assert "greyscale expanded to RGB" in img.notes
    np.testing.assert_array_equal(img.data * 255, np.repeat(grey[:, :, None], 3, axis=2))
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 10, 200, 7  # blue 10, red 200, alpha 7
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    img = read_image(tmp_path / "a.png")
    assert "alpha channel dropped" in img.notes and img.data.shape == (2, 2, 3)
    np.testing.assert_array_equal(np.round(img.data[0, 0] * 255), [200, 0, 10])  # RGB order


def test_torch_and_greyscale_arrays_are_written(tmp_path):
    import torch
    t = torch.rand(4, 5, 3, dtype=torch.float64)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "t.pfm", t)).data, t.numpy().astype(np.float32))
    g = np.full((4, 5), 0.5, np.float32)
    assert read_image(write_image(tmp_path / "g.exr", g)).data.shape == (4, 5, 3)


# ------------------------------------------------------------------------------------------------ real files
@pytest.mark.data
@pytest.mark.parametrize("name", EXR_FILES)
def test_shared_exr_files_match_independent_readers(shared_data, name):
    img = read_image(shared_data / "exr" / f"{name}.exr")
    assert img.encoding == "linear" and img.bit_depth == 16 and img.data.dtype == np.float32
    assert np.isfinite(img.data).all()
    # OpenCV's EXR codec (its own copy of the OpenEXR library) decodes scanline, tiled and mip-mapped level 0 alike.
    cv = _cv2().imread(str(shared_data / "exr" / f"{name}.exr"), -1)
    assert cv is not None
    np.testing.assert_array_equal(img.data, cv[:, :, 2::-1])
    if cv.shape[2] == 4:
        assert "alpha channel dropped" in img.notes
    # The same photographs ship as Radiance files (negatives clamped): equal within RGBE precision.
    hdr = read_image(shared_data / "hdr" / f"{name}.hdr").data
    ref = np.maximum(img.data, 0)
    assert hdr.shape == ref.shape
    assert (np.abs(hdr - ref) <= RGBE_BOUND * ref.max(axis=2, keepdims=True) + 1e-30).all()


@pytest.mark.data
def test_shared_hdr_and_png_match_opencv(shared_data):
    cv2 = _cv2()
    hdr = read_image(shared_data / "stacks" / "memorial" / "memorial.hdr")
    np.testing.assert_array_equal(hdr.data, cv2.imread(str(shared_data / "stacks/memorial/memorial.hdr"), -1)[:, :, ::-1])
    assert hdr.data.shape == (714, 484, 3)  # header "-Y 714 +X 484"
    png = read_image(shared_data / "stacks" / "memorial" / "memorial00.png")
    ref = cv2.imread(str(shared_data / "stacks/memorial/memorial00.png"), -1)
    assert png.bit_depth == 8
    np.testing.assert_array_equal(png.data * np.float32(255), ref[:, :, ::-1].astype(np.float32))


@pytest.mark.data
def test_read_stack(shared_data, tmp_path):
    paths = [shared_data / "stacks" / "memorial" / f"memorial{i:02d}.png" for i in (0, 8, 15)]
    stack = read_stack(paths)
    assert stack.shape[0] == 3 and stack.shape[-1] == 3 and stack.dtype == np.float32
    small = write_image(tmp_path / "small.png", np.zeros((4, 4, 3)))
    with pytest.raises(ImageReadError, match="small.png is 4x4"):
        read_stack(paths[:2] + [small])


# ------------------------------------------------------------------------------------------------ bad input
def test_missing_and_unsupported(tmp_path):
    with pytest.raises(ImageReadError, match=r"nope\.exr: file not found"):
        read_image(tmp_path / "nope.exr")
    (tmp_path / "x.bmp").write_bytes(b"BM....")
    with pytest.raises(ImageReadError, match=r"x\.bmp: unsupported extension '\.bmp'"):
        read_image(tmp_path / "x.bmp")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ImageReadError, match=r"d\.png: not a regular file"):
        read_image(tmp_path / "d.png")


@pytest.mark.parametrize("ext", [".hdr", ".exr", ".pfm", ".png", ".tif", ".jpg"])
def test_empty_and_wrong_kind_files(tmp_path, ext):
    empty = tmp_path / f"empty{ext}"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match=f"empty{ext}: file is empty"):
        read_image(empty)
    text = tmp_path / f"text{ext}"
    text.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match=f"text{ext}: not a"):
        read_image(text)


def _truncate(src, dst, keep):
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * keep)])
    return dst


@pytest.mark.parametrize("ext, kw", [(".hdr", {}), (".exr", {}), (".pfm", {}), (".png", {}), (".png", {"bit_depth": 16}),
                                     (".tif", {"bit_depth": 16}), (".jpg", {})])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_files(tmp_path, ext, kw, keep):
    data = np.clip(_hdr_data(64, 64) / 50, 0, 1) if ext in (".png", ".tif", ".jpg") else _hdr_data(64, 64)
    full = write_image(tmp_path / f"full{ext}", data, **kw)
    cut = _truncate(full, tmp_path / f"cut{ext}", keep)
    with pytest.raises(ImageReadError, match=rf"cut\{ext}: .*(truncated|corrupt)"):
        read_image(cut)


def test_truncated_pfm_header(tmp_path):
    (tmp_path / "h.pfm").write_bytes(b"PF\n12")
    with pytest.raises(ImageReadError, match="h.pfm: PFM header is truncated"):
        read_image(tmp_path / "h.pfm")
    (tmp_path / "m.pfm").write_bytes(b"PF\n-3 2\n-1.0\n" + bytes(100))
    with pytest.raises(ImageReadError, match="m.pfm: malformed PFM header"):
        read_image(tmp_path / "m.pfm")


def test_exr_without_rgb_channels(tmp_path):
    import OpenEXR

    z = np.zeros((3, 4), np.float32)
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"Y": z, "RY": z, "BY": z}) as f:
        f.write(str(tmp_path / "yc.exr"))
    with pytest.raises(ImageReadError, match=r"yc.exr: no RGB or Y channels .*luminance/chroma"):
        read_image(tmp_path / "yc.exr")


@pytest.mark.parametrize("ext", [".hdr", ".exr", ".pfm", ".png", ".tif"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_is_refused_and_nothing_is_written(tmp_path, ext, bad):
    target = tmp_path / f"keep{ext}"
    good = np.full((4, 4, 3), 0.5, np.float32)
    write_image(target, good)
    before = target.read_bytes()
    data = good.copy()
    data[1, 2, 0] = bad
    with pytest.raises(InputError, match=rf"keep\{ext}: data contains NaN or Inf"):
        write_image(target, data)
    assert target.read_bytes() == before  # the earlier file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temporary left behind


@pytest.mark.parametrize(
    "name, data, kw, match",
    [
        ("x.png", np.full((2, 2, 3), 1.5), {}, r"\[0, 1\]"),
        ("x.png", np.zeros((2, 2, 3)), {"bit_depth": 12}, "bit_depth 12"),
        ("x.jpg", np.zeros((2, 2, 3)), {"bit_depth": 16}, "bit_depth 16"),
        ("x.exr", np.zeros((3, 2, 2)), {}, r"\(H, W, 3\)"),
        ("x.exr", np.zeros((2, 2, 3), np.int32), {}, "floating point"),
        ("x.exr", np.full((2, 2, 3), 1e6), {"bit_depth": 16}, "half-float range"),
        ("x.bmp", np.zeros((2, 2, 3)), {}, "unsupported extension"),
    ],
)
def test_write_rejects_bad_input(tmp_path, name, data, kw, match):
    with pytest.raises(InputError, match=match):
        write_image(tmp_path / name, data, **kw)
    assert not (tmp_path / name).exists()

"""Image files in and out: float32 RGB arrays with the file's encoding noted.

Formats (chosen by extension):

============================  ============  =========================================================
extension                     encoding      reader / writer
============================  ============  =========================================================
``.hdr``, ``.pic``            linear        Radiance RGBE through OpenCV (BGR <-> RGB swapped here)
``.exr``                      linear        the ``OpenEXR`` package (half / float; scanline, tiled,
                                            mip-mapped: level 0 is read); written as float32 or half
``.pfm``                      linear        implemented here (both byte orders, colour and greyscale)
``.png``, ``.tif``, ``.tiff``  display       OpenCV ``IMREAD_UNCHANGED`` (8- and 16-bit; float TIFF is linear)
``.jpg``, ``.jpeg``           display       OpenCV (8-bit)
============================  ============  =========================================================

Display-encoded images are returned as ``code / (2^bits - 1)`` in [0, 1]; nothing is linearised here.
Greyscale becomes three equal channels and an alpha channel is dropped (both noted in ``LoadedImage.notes``).

OpenCV returns ``None`` for a file it cannot decode without saying why; every such case becomes an
:class:`~hdrbench.errors.ImageReadError` that names the file and the most likely reason (missing, empty,
wrong signature, truncated or corrupt).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from hdrbench.atomic import atomic_path, atomic_write_bytes
from hdrbench.errors import ImageReadError, InputError

__all__ = ["LoadedImage", "read_image", "write_image", "read_stack", "READ_FORMATS", "WRITE_FORMATS"]

_FORMATS = {
    ".hdr": "hdr", ".pic": "hdr", ".exr": "exr", ".pfm": "pfm",
    ".png": "png", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg",
}
READ_FORMATS = tuple(sorted(_FORMATS))
WRITE_FORMATS = READ_FORMATS

# Magic bytes used to tell "truncated / corrupt" from "not this kind of file at all".
_SIGNATURES = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8",),
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    "hdr": (b"#?",),
    "exr": (b"\x76\x2f\x31\x01",),
    "pfm": (b"PF", b"Pf"),
}


@dataclass
class LoadedImage:
    """An image read from disk.

    Attributes:
        data: (H, W, 3) float32 RGB. Linear relative radiance for ``encoding == "linear"``; display-encoded
            values in [0, 1] (``code / (2^bits - 1)``) for ``encoding == "display"``.
        encoding: ``"linear"`` (.hdr, .exr, .pfm, float TIFF) or ``"display"`` (8/16-bit PNG/TIFF, JPEG).
        bit_depth: bits per sample in the file (8, 16 or 32; RGBE counts as 8; half-float EXR as 16).
        format: ``"hdr"``, ``"exr"``, ``"pfm"``, ``"png"``, ``"tiff"`` or ``"jpeg"``.
        path: the file.
        notes: conversions applied (e.g. ``"alpha channel dropped"``, ``"greyscale expanded to RGB"``).
    """

    data: np.ndarray
    encoding: str
    bit_depth: int
    format: str
    path: Path
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.data.shape[0], self.data.shape[1]


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def _format_of(path: Path, *, writing: bool = False) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        verb = "write" if writing else "read"
        msg = f"cannot {verb} {path}: unsupported extension '{path.suffix}' (supported: {', '.join(READ_FORMATS)})"
        if writing:
            raise InputError(msg)
        raise ImageReadError(msg)
    return fmt


def _article(fmt: str) -> str:
    """"an" before a format name read as letters (EXR, HDR, "an aitch"), "a" otherwise (PNG, JPEG, TIFF, PFM)."""
    return "an" if fmt.upper()[0] in "AEFHILMNORSX" else "a"


def _read_bytes(path: Path, fmt: str) -> bytes:
    """The whole file, after the checks that give a precise reason for common failures."""
    if not path.exists():
        raise ImageReadError(f"cannot read {path}: file not found")
    if not path.is_file():
        raise ImageReadError(f"cannot read {path}: not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw:
        raise ImageReadError(f"cannot read {path}: file is empty")
    if not raw.startswith(_SIGNATURES[fmt]):
        raise ImageReadError(f"cannot read {path}: not {_article(fmt)} {fmt.upper()} file (its first bytes do not "
                             "match the format)")
    return raw


def _to_rgb3(arr: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """(H, W), (H, W, 1..4) -> (H, W, 3); channel order of ``arr`` must already be RGB(A)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"cannot read {path}: unsupported channel layout {arr.shape}")
    c = arr.shape[2]
    if c in (2, 4):
        notes.append("alpha channel dropped")
        arr = arr[:, :, : c - 1]
    if arr.shape[2] == 1:
        notes.append("greyscale expanded to RGB")
        arr = np.repeat(arr, 3, axis=2)
    return arr


def _cv2():
    import cv2  # noqa: PLC0415  (kept local: importing OpenCV costs ~0.1 s and most callers never need it)

    return cv2


@contextlib.contextmanager
def _opencv_silent(cv2):
    """Silence OpenCV's own log lines (``[ERROR:0@...] ... readHeader ...``) while decoding: the
    :class:`ImageReadError` raised for an undecodable file says what happened, once, naming the file."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:  # builds without the logging bindings
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def _decode_with_opencv(raw: bytes, path: Path, fmt: str) -> np.ndarray:
    cv2 = _cv2()
    with _opencv_silent(cv2):
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"cannot read {path}: the {fmt.upper()} data is truncated or corrupt "
                             "(the decoder stopped before the end of the image)")
    return img


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] >= 3:
        order = [2, 1, 0] + list(range(3, img.shape[2]))
        return img[:, :, order]
    return img


# ---------------------------------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------------------------------
def _read_hdr(path: Path) -> LoadedImage:
    raw = _read_bytes(path, "hdr")
    img = _decode_with_opencv(raw, path, "hdr")
    notes: list[str] = []
    data = _to_rgb3(_bgr_to_rgb(img), path, notes).astype(np.float32, copy=False)
    return LoadedImage(np.ascontiguousarray(data), "linear", 8, "hdr", path, notes)


def _read_display(path: Path, fmt: str) -> LoadedImage:
    raw = _read_bytes(path, fmt)
    if fmt == "jpeg":
        # libjpeg fills a truncated scan with grey and only warns; the final scan (SOS marker) must be
        # followed by an end-of-image marker. Byte stuffing keeps both markers out of entropy-coded data.
        if raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda"):
            raise ImageReadError(f"cannot read {path}: JPEG data is truncated (no end-of-image marker after the "
                                 "last scan)")
    img = _decode_with_opencv(raw, path, fmt)
    notes: list[str] = []
    img = _to_rgb3(_bgr_to_rgb(img), path, notes)
    if img.dtype == np.uint8:
        return LoadedImage(np.ascontiguousarray(img, dtype=np.float32) / np.float32(255), "display", 8, fmt, path,
                           notes)
    if img.dtype == np.uint16:
        return LoadedImage(np.ascontiguousarray(img, dtype=np.float32) / np.float32(65535), "display", 16, fmt, path,
                           notes)
    if img.dtype in (np.float32, np.float64):
        return LoadedImage(np.ascontiguousarray(img, dtype=np.float32), "linear", 32, fmt, path, notes)
    raise ImageReadError(f"cannot read {path}: unsupported sample type {img.dtype}")


def _read_pfm(path: Path) -> LoadedImage:
    raw = _read_bytes(path, "pfm")
    # Header: "PF" or "Pf", then width height, then scale (negative = little-endian), each token separated by
    # white space; a single white-space byte precedes the raster.
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        while pos < len(raw) and raw[pos:pos + 1].isspace():
            pos += 1
        start = pos
        while pos < len(raw) and not raw[pos:pos + 1].isspace():
            pos += 1
        if start == pos:
            raise ImageReadError(f"cannot read {path}: PFM header is truncated")
        tokens.append(raw[start:pos])
    pos += 1  # the single white-space byte that ends the header
    kind = tokens[0]
    try:
        width, height, scale = int(tokens[1]), int(tokens[2]), float(tokens[3])
    except ValueError:
        raise ImageReadError(f"cannot read {path}: malformed PFM header {b' '.join(tokens)!r}") from None
    if kind not in (b"PF", b"Pf") or width <= 0 or height <= 0 or scale == 0 or not np.isfinite(scale):
        raise ImageReadError(f"cannot read {path}: malformed PFM header {b' '.join(tokens)!r}")
    channels = 3 if kind == b"PF" else 1
    count = width * height * channels
    body = raw[pos:]
    if len(body) < 4 * count:
        raise ImageReadError(f"cannot read {path}: PFM data is truncated ({len(body)} of {4 * count} bytes)")
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    data = np.frombuffer(body, dtype=dtype, count=count).astype(np.float32).reshape(height, width, channels)
    data = data[::-1]  # PFM stores rows bottom to top
    notes: list[str] = []
    data = _to_rgb3(data, path, notes)
    return LoadedImage(np.ascontiguousarray(data), "linear", 32, "pfm", path, notes)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the C library's own messages on the process's stderr; the raised error says what happened."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture or an embedded interpreter
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _read_exr(path: Path) -> LoadedImage:
    import OpenEXR  # noqa: PLC0415

    raw = _read_bytes(path, "exr")
    del raw  # signature checked; OpenEXR reads the file itself
    try:
        with _quiet_stderr(), OpenEXR.File(str(path)) as exr:
            parts = list(exr.parts)
            if not parts:
                raise ImageReadError(f"cannot read {path}: EXR pixel data is truncated or corrupt")
            channels = {name: ch.pixels for name, ch in parts[0].channels.items()}
    except ImageReadError:
        raise
    except Exception as exc:  # the bindings raise RuntimeError / IndexError for damaged files
        raise ImageReadError(f"cannot read {path}: EXR data is truncated or corrupt ({exc})") from None
    notes: list[str] = []
    if len(parts) > 1:
        notes.append(f"multi-part file: part 0 of {len(parts)} read")
    if any(v is None for v in channels.values()):
        raise ImageReadError(f"cannot read {path}: EXR pixel data is truncated or corrupt")
    if "RGBA" in channels:
        arr = channels["RGBA"]
    elif "RGB" in channels:
        arr = channels["RGB"]
    elif "Y" in channels and not {"RY", "BY"} & set(channels):
        arr = channels["Y"]
    else:
        raise ImageReadError(f"cannot read {path}: no RGB or Y channels (found {sorted(channels)}); luminance/chroma "
                             "and layered EXR files are not supported, convert them to RGB first")
    if arr.dtype not in (np.float16, np.float32):
        raise ImageReadError(f"cannot read {path}: unsupported EXR sample type {arr.dtype} (half or float expected)")
    bit_depth = 16 if arr.dtype == np.float16 else 32
    data = _to_rgb3(np.asarray(arr), path, notes).astype(np.float32)
    return LoadedImage(np.ascontiguousarray(data), "linear", bit_depth, "exr", path, notes)


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file as float32 RGB.

    Args:
        path: a file with one of the extensions in :data:`READ_FORMATS`.

    Returns:
        :class:`LoadedImage` with ``data`` (H, W, 3) float32.

    Raises:
        ImageReadError: missing, empty, unreadable, truncated or corrupt file, or unsupported extension;
            the message names the file and the reason.
    """
    path = Path(path)
    fmt = _format_of(path)
    if fmt == "hdr":
        return _read_hdr(path)
    if fmt == "exr":
        return _read_exr(path)
    if fmt == "pfm":
        return _read_pfm(path)
    return _read_display(path, fmt)


def read_stack(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Read exposure images of one scene into one array.

    Args:
        paths: E image files of equal size.

    Returns:
        (E, H, W, 3) float32 (display-encoded images in [0, 1], linear ones unchanged).

    Raises:
        ImageReadError: a file cannot be read, or its size differs from the first file's (the message names it).
    """
    if not paths:
        raise InputError("read_stack needs at least one image path")
    images = []
    for p in paths:
        img = read_image(p)
        if images and img.shape != images[0].shape:
            raise ImageReadError(f"{img.path} is {img.shape[1]}x{img.shape[0]} but {images[0].path} is "
                                 f"{images[0].shape[1]}x{images[0].shape[0]}; all images of a stack must have one size")
        images.append(img)
    return np.stack([im.data for im in images])


# ---------------------------------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------------------------------
def _as_hwc(data, path: Path) -> np.ndarray:
    if hasattr(data, "detach"):  # a torch tensor
        data = data.detach().cpu().numpy()
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise InputError(f"cannot write {path}: data must be (H, W), (H, W, 1) or (H, W, 3), got {arr.shape} "
                         "(convert CHW tensors with .permute(1, 2, 0))")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"cannot write {path}: empty image {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"cannot write {path}: data must be floating point, got {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InputError(f"cannot write {path}: data contains NaN or Inf")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr


def _encode_display(arr: np.ndarray, path: Path, bits: int) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    # A tolerance of 1e-6 absorbs float rounding in callers' [0, 1] arithmetic; anything further out is a bug.
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InputError(f"cannot write {path}: display-encoded data must lie in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                         "(tone-map HDR data first or write .hdr/.exr/.pfm)")
    levels = 2 ** bits - 1
    codes = np.floor(np.clip(arr.astype(np.float64), 0.0, 1.0) * levels + 0.5)
    return codes.astype(np.uint8 if bits == 8 else np.uint16)


def _pfm_bytes(arr: np.ndarray) -> bytes:
    h, w, _ = arr.shape
    header = f"PF\n{w} {h}\n-1.0\n".encode("ascii")  # negative scale: little-endian samples
    return header + np.ascontiguousarray(arr[::-1], dtype="<f4").tobytes()


def _write_exr(arr: np.ndarray, path: Path, bits: int) -> None:
    import OpenEXR  # noqa: PLC0415

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if bits == 16 and np.abs(arr).max() > 65504.0:
        raise InputError(f"cannot write {path}: values beyond the half-float range (|x| > 65504)")
    pixels = np.ascontiguousarray(arr, dtype=np.float16 if bits == 16 else np.float32)
    # OpenEXR writes by file name: write a temporary sibling and rename it over the destination.
    with atomic_path(path, ".exr") as tmp, OpenEXR.File(header, {"RGB": pixels}) as exr:
        exr.write(str(tmp))


def write_image(path: str | os.PathLike, data, *, bit_depth: int | None = None) -> Path:
    """Write an image atomically (a failure never leaves a half-written file at ``path``).

    Args:
        path: destination; the format comes from the extension (:data:`WRITE_FORMATS`).
        data: (H, W, 3), (H, W, 1) or (H, W) float array (numpy or torch), RGB. Linear radiance for .hdr/.exr/
            .pfm (negative values are clamped to 0 for .hdr, which cannot store them); display-encoded values
            in [0, 1] for PNG/TIFF/JPEG.
        bit_depth: PNG/TIFF: 8 (default) or 16; TIFF also 32 (linear float). EXR: 32 (default, float) or 16
            (half). Ignored for .hdr (RGBE), .pfm (float32) and JPEG (8-bit only; other values are an error).

    Returns:
        The path written.

    Raises:
        InputError: NaN/Inf, wrong layout, out-of-range display values, unsupported extension or bit depth.
    """
    path = Path(path)
    fmt = _format_of(path, writing=True)
    arr = _as_hwc(data, path)
    allowed = {"png": (8, 16), "tiff": (8, 16, 32), "jpeg": (8,), "exr": (16, 32), "hdr": (8, 32), "pfm": (32,)}
    default = {"png": 8, "tiff": 8, "jpeg": 8, "exr": 32, "hdr": 8, "pfm": 32}
    bits = default[fmt] if bit_depth is None else int(bit_depth)
    if bits not in allowed[fmt]:
        raise InputError(f"cannot write {path}: bit_depth {bit_depth} is not available for {fmt.upper()} "
                         f"(choose from {allowed[fmt]})")
    if fmt == "pfm":
        atomic_write_bytes(path, _pfm_bytes(arr))
    elif fmt == "exr":
        _write_exr(arr, path, bits)
    else:
        cv2 = _cv2()
        if fmt == "hdr":
            img = np.ascontiguousarray(np.maximum(arr, 0.0)[:, :, ::-1], dtype=np.float32)
        elif fmt == "tiff" and bits == 32:
            img = np.ascontiguousarray(arr[:, :, ::-1], dtype=np.float32)
        else:
            img = np.ascontiguousarray(_encode_display(arr, path, bits)[:, :, ::-1])
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpeg" else []
        ok, buf = cv2.imencode(path.suffix.lower(), img, params)
        if not ok:
            raise InputError(f"cannot write {path}: OpenCV could not encode the image as {fmt.upper()}")
        atomic_write_bytes(path, buf.tobytes())
    return path

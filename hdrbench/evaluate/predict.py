"""Predict the exposure stack (and the merged HDR image) of one LDR image with any stack method.

    from hdrbench.evaluate.predict import predict
    result = predict("proposed", "photo.png", out="pred/", weights="official/")   # official checkpoints
    result.stack          # (E, 3, H, W) float32 in [0, 1], unquantised
    result.outputs        # the proposed model's raw network outputs (GeneratedStack), else None

Written to ``out``: ``ev-3.png ... ev+3.png`` (8-bit), with ``save_float`` also ``ev-3.pfm ...`` (float32
in [0, 1], not quantised), the merged HDR image (``hdr.hdr`` and/or ``hdr.exr``, linear relative), a
tone-mapped preview ``preview.png`` and ``prediction.json`` (what ran: method configuration, input, EVs,
merge settings, files). The EV 0 image is the input itself.

The HDR image is merged with the synthesis layer's settings of the evaluation harness, except that the
official weights of the proposed method are merged with ``OFFICIAL_LAYER`` (as the official test does).
On CUDA the network runs with TF32 off, so that its outputs agree with the CPU's to float32 rounding.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from hdrbench.errors import ImageReadError, InputError

#: Default EVs: the proposed model's whole range.
DEFAULT_EVS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
#: HDR file formats ``predict`` can write.
HDR_FORMATS = ("hdr", "exr")


@dataclass
class PredictResult:
    """What :func:`predict` produced.

    Attributes:
        method: method name.
        evs: EVs of the stack axis (relative to the input).
        ldr: (3, H, W) float32 input in [0, 1] (after any resize).
        stack: (E, 3, H, W) float32 predicted stack in [0, 1], unquantised; the EV 0 entry is ``ldr``.
        hdr: (3, H, W) float32 merged HDR image, linear relative.
        inverse_crf: (3, 256) inverse CRF the merge used.
        outputs: the raw network outputs of a :class:`~hdrbench.models.proposed.ProposedModel`
            (:class:`~hdrbench.models.proposed.GeneratedStack`, batch of 1), None for other methods.
        files: the files written (empty without ``out``).
        config: what ran (also written as ``prediction.json``).
    """

    method: str
    evs: list[float]
    ldr: torch.Tensor
    stack: torch.Tensor
    hdr: torch.Tensor
    inverse_crf: torch.Tensor
    outputs: Any = None
    files: list[Path] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def parse_evs(text: str) -> list[float]:
    """``"-3..3"`` (integer range, both ends included) or a comma list ``"-2,0,2"`` -> sorted EVs.

    Raises:
        InputError: malformed text, repeated EVs, or no EV 0.
    """
    s = str(text).strip()
    m = re.fullmatch(r"([+-]?\d+)\s*\.\.\s*([+-]?\d+)", s)
    try:
        if m:
            lo, hi = int(m[1]), int(m[2])
            if lo > hi:
                raise InputError(f"--evs range {s!r} is empty (write low..high, e.g. -3..3)")
            evs = [float(e) for e in range(lo, hi + 1)]
        else:
            evs = [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--evs must be a range like -3..3 or a comma list like -2,0,2; got {s!r}") from None
    if len(set(evs)) != len(evs):
        raise InputError(f"--evs repeats an EV: {s!r}")
    if 0.0 not in evs:
        raise InputError(f"--evs must include 0 (the input image); got {s!r}")
    if len(evs) < 2:
        raise InputError(f"--evs needs at least one EV besides 0 to merge an HDR image; got {s!r}")
    return sorted(evs)


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(width, height)`` (positive integers)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise InputError(f"--resize must be WIDTHxHEIGHT with positive integers, e.g. 256x256; got {text!r}")
    return int(m[1]), int(m[2])


def ev_name(ev: float) -> str:
    """File stem of an exposure: ``ev-3``, ``ev+0``, ``ev+1.5``."""
    return f"ev{float(ev):+g}"


def check_writable(out: str | os.PathLike) -> Path:
    """Create ``out`` if needed and check that a file can be written there (before any network runs).

    Raises:
        InputError: the folder cannot be created or written (names it and says why).
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"output folder {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".hdrbench-write-check-"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to output folder {path}: {exc.strerror or exc}") from None
    return path


def load_ldr(path: str | os.PathLike, resize: tuple[int, int] | None = None) -> torch.Tensor:
    """Read an 8/16-bit LDR image as a (1, 3, H, W) float32 tensor in [0, 1], optionally resized.

    A resize works on the integer codes with Lanczos-4 interpolation and returns integer codes again (as
    the official test loader resizes its 8-bit images).

    Raises:
        ImageReadError: unreadable file. InputError: an HDR (linear float) file, which is not an LDR input.
    """
    from hdrbench.imaging.io import read_image

    img = read_image(path)
    if img.encoding != "display":
        raise InputError(f"input {path} is a linear ({img.format}) image; predict takes an 8- or 16-bit LDR image "
                         "(PNG, JPEG, TIFF)")
    data = img.data
    if resize is not None and (data.shape[1], data.shape[0]) != tuple(resize):
        import cv2

        levels = 2 ** int(img.bit_depth) - 1
        codes = np.round(data.astype(np.float64) * levels).astype(np.uint8 if levels == 255 else np.uint16)
        codes = cv2.resize(codes, tuple(int(v) for v in resize), interpolation=cv2.INTER_LANCZOS4)
        data = codes.astype(np.float32) / np.float32(levels)
    return torch.from_numpy(np.ascontiguousarray(data)).permute(2, 0, 1)[None].contiguous()


def _size_multiple(method) -> int | None:
    model = getattr(method, "model", None)
    m = getattr(model, "size_multiple", None)
    return int(m) if m else None


def _check_size(method, name: str, path, h: int, w: int) -> None:
    m = _size_multiple(method)
    if m and (h % m or w % m):
        up = (max(m, round(w / m) * m), max(m, round(h / m) * m))
        raise InputError(f"input {path} is {w}x{h}; method {name!r} needs width and height that are multiples of "
                         f"{m}: resize it, e.g. --resize {up[0]}x{up[1]}")


def load_method(name: str, *, weights=None, checkpoint=None, preset: str | None = None, device: str = "cpu",
                options: dict | None = None):
    """The method ``name`` for prediction: a stack method, trained ones from ``weights`` or ``checkpoint``.

    Args:
        options: a training-free method's options (e.g. ``{"linearize": "gamma2.2"}``).

    Raises:
        UnknownNameError: no such method (with close matches). InputError: not a stack method, a trained method
            without weights or checkpoint, weights/checkpoint given to a training-free method, options given to a
            trained one.
    """
    from hdrbench.evaluate.methods import get_method, is_training_free, list_methods

    if name not in list_methods():
        get_method(name)  # raises UnknownNameError with close matches
    if is_training_free(name):
        if weights is not None or checkpoint is not None:
            raise InputError(f"method {name!r} is training-free: it takes no --weights or --checkpoint")
        method = get_method(name, device=device, **dict(options or {}))
    else:
        if options:
            raise InputError(f"method {name!r} is trained: it takes no method options here, got {sorted(options)}")
        if weights is None and checkpoint is None:
            raise InputError(f"method {name!r} is trained: give its official weights (--weights PATH) or a "
                             "checkpoint of 'hdrbench train' (--checkpoint PATH)")
        if weights is not None and checkpoint is not None:
            raise InputError("give --weights or --checkpoint, not both")
        opts: dict[str, Any] = {"weights": str(weights)} if weights is not None else {"checkpoint": checkpoint}
        method = get_method(name, device=device, preset=preset, **opts)
    if method.kind != "stack":
        raise InputError(f"method {name!r} reconstructs the HDR image directly (kind {method.kind!r}); predict "
                         "writes exposure stacks and takes stack methods only")
    return method


def _merge(method, stack: torch.Tensor, evs: list[float]) -> tuple[Any, dict]:
    """Merge the (1, E, 3, H, W) stack; returns the layer's result and a description of the settings."""
    from hdrbench.evaluate.harness import MERGE_SETTINGS, merge_scene_stack
    from hdrbench.imaging.synthesis import OFFICIAL_LAYER, merge_stack

    model = getattr(method, "model", None)
    if getattr(model, "official_weights", None):
        times = torch.tensor([2.0**e for e in evs], dtype=torch.float64)
        return merge_stack(stack, times, **OFFICIAL_LAYER), {"layer": "OFFICIAL_LAYER", **_jsonable(OFFICIAL_LAYER)}
    inverse = "debevec" if method.merge_crf == "estimate" else method.inverse_crf()
    settings = {"layer": "evaluation harness", **_jsonable(MERGE_SETTINGS),
                "inverse_crf": inverse if isinstance(inverse, str) else "the method's own table"}
    return merge_scene_stack(stack, evs, inverse), settings


@contextlib.contextmanager
def _full_float32(dev: torch.device):
    """Turn TF32 off on CUDA while the network runs (restored afterwards): TF32 convolutions round inputs to
    10 mantissa bits, far beyond the 1e-4 agreement with the CPU that official weights are checked to."""
    if dev.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def predict(method: str | Any, image: str | os.PathLike, *, evs: Sequence[float] = DEFAULT_EVS,
            out: str | os.PathLike | None = None, save_float: bool = False, resize: tuple[int, int] | None = None,
            weights: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
            preset: str | None = None, device: str = "cpu", hdr_formats: Sequence[str] = HDR_FORMATS,
            options: dict | None = None) -> PredictResult:
    """Predict the exposure stack of one LDR image, merge it, and write the results.

    Args:
        method: a stack method name (a recipe or a training-free method) or a loaded method.
        image: the LDR input (8/16-bit PNG, JPEG, TIFF).
        evs: EVs to predict, relative to the input; must contain 0.
        out: folder to write to (created; checked writable before the network runs); None writes nothing.
        save_float: also write float32 ``.pfm`` exposures (unquantised).
        resize: ``(width, height)`` to resize the input to first.
        weights: official weights of a trained method (for ``proposed``: the folder or ``DIR/<step>`` prefix of
            the six DiffHDRsyn checkpoints).
        checkpoint: a checkpoint written by ``hdrbench train``.
        preset: the recipe preset that sizes the network for ``weights`` (default ``paper``).
        device: ``cpu`` or ``cuda``.
        hdr_formats: HDR formats to write, a subset of :data:`HDR_FORMATS`.
        options: options of a training-free method (e.g. ``{"linearize": "gamma2.2"}``). A method that reads the
            scene context gets one without ground truth (no stack, no reference curve), so methods that need
            a dataset scene's ground truth fail with their own message.

    Returns:
        A :class:`PredictResult`.

    Raises:
        ImageReadError: unreadable input. InputError, UnknownNameError: see :func:`load_method`; a size the
            network cannot take (the message gives the multiple and a ``--resize``); an unwritable ``out``.
    """
    from hdrbench.imaging.io import write_image
    from hdrbench.imaging.tonemap import reinhard_opencv

    evs = [float(e) for e in evs]
    if 0.0 not in evs:
        raise InputError(f"evs must include 0 (the input image); got {evs}")
    bad = [f for f in hdr_formats if f not in HDR_FORMATS]
    if bad:
        raise InputError(f"HDR formats must be among {HDR_FORMATS}; got {bad}")
    out_dir = check_writable(out) if out is not None else None
    if not Path(image).is_file():
        raise ImageReadError(f"input image not found: {image}")
    ldr = load_ldr(image, resize)
    name = method if isinstance(method, str) else method.name
    meth = load_method(method, weights=weights, checkpoint=checkpoint, preset=preset, device=device,
                       options=options) if isinstance(method, str) else method
    _check_size(meth, name, image, ldr.shape[-2], ldr.shape[-1])
    if getattr(meth, "uses_context", False):
        from hdrbench.evaluate.methods import SceneContext

        meth.prepare(SceneContext(scene=Path(image).name, evs=evs, stack=None, reference_inverse_crf=None))

    model = getattr(meth, "model", None)
    outputs = None
    dev = torch.device(device)
    with torch.inference_mode(), _full_float32(dev):
        if hasattr(model, "generate") and all(float(e).is_integer() and int(e) in model.evs for e in evs):
            outputs = model.generate(ldr.to(dev))
            stack = model.stack_from(outputs, ldr.to(dev), evs).cpu()
        else:
            stack = meth.predict_stack(ldr.to(dev), evs).cpu()
    if tuple(stack.shape) != (1, len(evs)) + tuple(ldr.shape[1:]):
        raise InputError(f"method {name!r} returned a stack of shape {tuple(stack.shape)}, expected "
                         f"{(1, len(evs)) + tuple(ldr.shape[1:])}")
    stack = stack.float()
    with torch.inference_mode():
        merged, merge_settings = _merge(meth, stack, evs)
    hdr, inverse_crf = merged.hdr[0].float(), merged.inverse_crf[0].float()

    config = {"method": meth.config(), "input": str(image), "input_size": [int(ldr.shape[-1]), int(ldr.shape[-2])],
              "resize": list(resize) if resize else None, "evs": evs, "device": str(dev), "merge": merge_settings}
    files: list[Path] = []
    if out_dir is not None:
        for i, ev in enumerate(evs):
            img = stack[0, i].permute(1, 2, 0).numpy()
            files.append(write_image(out_dir / f"{ev_name(ev)}.png", img))
            if save_float:
                files.append(write_image(out_dir / f"{ev_name(ev)}.pfm", img))
        for fmt in hdr_formats:
            files.append(write_image(out_dir / f"hdr.{fmt}", hdr.permute(1, 2, 0).numpy()))
        preview = reinhard_opencv(hdr[None].double())[0].float()  # the official code's tone map (gamma 1.5)
        files.append(write_image(out_dir / "preview.png", preview.permute(1, 2, 0).clamp(0, 1).numpy()))
        config["files"] = [f.name for f in files]
        from hdrbench.atomic import atomic_write_text

        atomic_write_text(out_dir / "prediction.json", json.dumps(config, indent=2, default=str) + "\n")
        files.append(out_dir / "prediction.json")
    return PredictResult(name, evs, ldr[0], stack[0], hdr, inverse_crf, outputs, files, config)


__all__ = ["DEFAULT_EVS", "HDR_FORMATS", "PredictResult", "check_writable", "ev_name", "load_ldr",
           "load_method", "parse_evs", "parse_size", "predict"]

"""``hdrbench merge``: merge a real exposure stack into a linear HDR image (and a tone-mapped preview).

    hdrbench merge --stack path/to/memorial --out memorial.hdr --preview memorial.png
    hdrbench merge --stack a.png b.png c.png --evs -2,0,2 --crf srgb --merge linear --out out.exr
    hdrbench merge --stack DIR --times times.txt --crf mitsunaga-nayar --order 3 --out out.hdr

A stack folder holds 8/16-bit images and ``exposure_times_seconds.txt``: one line per image,
``<file name> <exposure time in seconds>``, ``#`` starting a comment (the layout of OpenCV's test
stacks). ``--times FILE`` reads the same format, or one time per line in the order of ``--stack``;
``--evs`` gives exposure values in stops (``t = 2 ** EV``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from hdrbench.errors import InputError

#: Exposure-time list inside a stack folder.
TIMES_FILE = "exposure_times_seconds.txt"
#: Extensions of display-referred exposure images looked for in a stack folder (when no list names them).
STACK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
CRF_CHOICES = ("debevec", "mitsunaga-nayar", "gamma", "srgb", "linear")
WEIGHT_CHOICES = ("deb97", "hat", "robertson", "box", "all")
MERGE_CHOICES = ("log", "linear", "w_time_sq")
#: Extensions of the merged HDR file (linear formats) and of the tone-mapped preview (8-bit formats).
HDR_OUT_SUFFIXES = (".hdr", ".pic", ".exr", ".pfm")
PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Largest |EV| accepted by --evs: 64 stops is far beyond any camera's range, and 2**EV stays a finite
#: float64 exposure time (an EV of 2000 would overflow it).
MAX_ABS_EV = 64.0


def add_stack_arguments(p: argparse.ArgumentParser) -> None:
    """The stack/exposure arguments shared by ``merge`` and ``calibrate``."""
    p.add_argument("--stack", nargs="+", metavar="DIR|FILE",
                   help=f"a stack folder (images + {TIMES_FILE}) or the exposure image files")
    times = p.add_mutually_exclusive_group()
    times.add_argument("--times", default=None, metavar="FILE",
                       help=f"exposure times in seconds: '<file> <seconds>' lines (as {TIMES_FILE}) or one number per"
                       " line in --stack order")
    times.add_argument("--evs", default=None, metavar="LIST",
                       help="comma-separated exposure values in stops, in --stack order (t = 2**EV)")
    p.add_argument("--sampling", choices=("spatial", "grossberg"), default="spatial",
                   help="CRF samples: 'spatial' (pixel locations on a grid, Debevec-Malik's original; default,"
                   " right for a static tripod stack) or 'grossberg' (histogram quantiles, the HDR Toolbox's and"
                   " the synthesis layer's default; tolerates small misalignment)")
    p.add_argument("--samples", type=int, default=256, help="number of CRF samples per exposure (default %(default)s)")
    p.add_argument("--smoothing", type=float, default=20.0,
                   help="Debevec-Malik smoothness lambda (default %(default)s, the HDR Toolbox's)")
    p.add_argument("--order", type=int, default=5, help="Mitsunaga-Nayar polynomial order K (default %(default)s)")


def register(sub) -> None:
    p = sub.add_parser(
        "merge",
        help="merge an exposure stack into a linear HDR image",
        description="Merge an LDR exposure stack into a linear, relative HDR image with the differentiable HDR"
        " synthesis layer (inverse CRF, weights, merge), and optionally write a Reinhard tone-mapped preview.",
    )
    add_stack_arguments(p)
    p.add_argument("--crf", choices=CRF_CHOICES, default="debevec",
                   help="inverse CRF: recovered (debevec, mitsunaga-nayar) or assumed (gamma 2.2, srgb, linear)")
    p.add_argument("--weight", choices=WEIGHT_CHOICES, default="deb97", help="merge weight (default %(default)s)")
    p.add_argument("--merge", choices=MERGE_CHOICES, default="log", help="merge rule (default %(default)s)")
    p.add_argument("-o", "--out", required=True, help="output HDR file (.hdr, .exr or .pfm)")
    p.add_argument("--preview", default=None, help="also write a Reinhard 2002 tone-mapped 8-bit preview (.png/.jpg)")
    p.set_defaults(func=main)


def _parse_times_file(path: Path) -> list[tuple[str | None, float]]:
    """``(file name or None, seconds)`` per non-comment line of a times file."""
    if not path.is_file():
        raise InputError(f"exposure-time file not found: {path}")
    entries: list[tuple[str | None, float]] = []
    for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        try:
            seconds = float(parts[-1])
        except ValueError:
            raise InputError(f"{path}:{i}: expected '<file> <seconds>' or '<seconds>', got {line!r}") from None
        entries.append((parts[0] if len(parts) == 2 else None, seconds))
    if not entries:
        raise InputError(f"exposure-time file {path} lists no exposures")
    named = {name is not None for name, _ in entries}
    if len(named) > 1:
        raise InputError(f"{path}: either every line names its file or none does")
    return entries


def _parse_evs(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--evs must be comma-separated numbers, got {text!r}") from None
    bad = [v for v in values if not (math.isfinite(v) and abs(v) <= MAX_ABS_EV)]
    if bad:
        raise InputError(f"--evs {text}: exposure values must be finite stops within +-{MAX_ABS_EV:g} "
                         f"(t = 2**EV), got {', '.join(f'{v:g}' for v in bad)}")
    return values


def resolve_stack(stack: list[str] | None, times: str | None, evs: str | None) -> tuple[list[Path], list[float]]:
    """Resolve ``--stack``/``--times``/``--evs`` to image paths and exposure times in seconds.

    Raises:
        InputError: no stack, missing folder/file, missing or mismatched exposure list (messages name the file).
    """
    if not stack:
        raise InputError("--stack is required: a stack folder or the exposure image files")
    folder = None
    if len(stack) == 1 and Path(stack[0]).is_dir():
        folder = Path(stack[0])
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in STACK_EXTENSIONS)
    else:
        files = [Path(s) for s in stack]
        for f in files:
            if f.is_dir():
                raise InputError(f"--stack takes one folder or a list of image files; {f} is a folder")
            if not f.exists():
                raise InputError(f"--stack {f}: no such file or folder")
    if evs is not None:
        values = _parse_evs(evs)
        if len(values) != len(files):
            raise InputError(f"--evs lists {len(values)} exposures but the stack has {len(files)} images")
        seconds = [2.0**v for v in values]
    else:
        list_path = Path(times) if times else (folder / TIMES_FILE if folder else None)
        if list_path is None:
            raise InputError("image files given without exposures: add --times FILE or --evs LIST")
        entries = _parse_times_file(list_path)
        if entries[0][0] is not None:
            # Named lines: they fix the exposures and their order. In a folder the names are its files;
            # with explicit files they are matched by base name.
            by_name = {f.name: f for f in files}
            resolved = []
            for name, _ in entries:
                path = folder / name if folder is not None else by_name.get(name)
                if path is None:
                    raise InputError(f"{list_path} lists {name}, which is not among the --stack files")
                if not path.is_file():
                    raise InputError(f"{list_path} lists {name} but {path} does not exist (missing exposure)")
                resolved.append(path)
            extra = sorted({f.name for f in files} - {p.name for p in resolved})
            if extra:
                raise InputError(f"images without an exposure time in {list_path}: {', '.join(extra)}")
            files = resolved
        elif len(entries) != len(files):
            raise InputError(f"{list_path} lists {len(entries)} exposure times but the stack has {len(files)} images")
        seconds = [s for _, s in entries]
    if len(files) < 2:
        raise InputError(f"a stack needs at least 2 exposures; got {len(files)}")
    for f in files:
        if not f.is_file():
            raise InputError(f"exposure image not found: {f}")
    bad = [(f.name, s) for f, s in zip(files, seconds) if not (s > 0 and math.isfinite(s))]
    if bad:
        raise InputError(f"exposure times must be positive and finite; got {bad}")
    if len(set(seconds)) != len(seconds):
        raise InputError(f"two exposures share an exposure time: {seconds}")
    return files, seconds


def load_stack(files: list[Path], *, notes_to=None):
    """Read exposure images into a ``(1, E, 3, H, W)`` float64 tensor in [0, 1].

    Conversions made while reading (greyscale expanded to RGB, alpha dropped) are printed to ``notes_to``,
    one line per file.

    Raises:
        ImageReadError: unreadable file or size mismatch (the message names the files).
        InputError: a linear (HDR) file among the exposures, or a stack that mixes greyscale and colour files
            or bit depths (the same scene from one camera has one kind of file; a mixture is a wrong file).
    """
    import numpy as np
    import torch

    from hdrbench.errors import ImageReadError
    from hdrbench.imaging.io import read_image

    images = []
    for f in files:
        img = read_image(f)
        if img.encoding != "display":
            raise InputError(f"{f} is a linear ({img.format}) image; a stack is made of display-referred LDR images")
        if images and img.shape != images[0].shape:
            first = images[0]
            raise ImageReadError(f"{f} is {img.shape[1]}x{img.shape[0]} but {first.path} is {first.shape[1]}x"
                                 f"{first.shape[0]}; all images of a stack must have one size")
        images.append(img)
    grey = {im.path.name for im in images if "greyscale expanded to RGB" in im.notes}
    if grey and len(grey) != len(images):
        colour = [im.path.name for im in images if im.path.name not in grey]
        raise InputError(f"the stack mixes greyscale ({', '.join(sorted(grey))}) and colour ({', '.join(colour)}) "
                         "images; every exposure of a scene must come from the same kind of file")
    depths = {im.bit_depth for im in images}
    if len(depths) > 1:
        listing = ", ".join(f"{im.path.name} ({im.bit_depth}-bit)" for im in images)
        raise InputError(f"the stack mixes bit depths: {listing}; every exposure must have the same bit depth")
    for im in images:
        for note in im.notes:
            print(f"note: {im.path}: {note}", file=notes_to or sys.stderr)
    data = np.stack([im.data for im in images])  # (E, H, W, 3)
    return torch.from_numpy(data).to(torch.float64).permute(0, 3, 1, 2).unsqueeze(0).clamp_(0.0, 1.0)


def check_stack_usable(stack, crf: str, order: int) -> None:
    """Refuse a stack that determines no response curve nor a meaningful merge: without a well-exposed pixel
    (all black, all saturated) nothing can be merged; a recovered curve needs two distinct well-exposed codes,
    and a Mitsunaga-Nayar polynomial of order K needs K + 1.

    Raises:
        InputError: every reason, one line per scene and group of channels.
    """
    from hdrbench.imaging.calibration.common import degenerate_stack_reasons

    min_codes = {"mitsunaga-nayar": order + 1, "debevec": 2}.get(crf, 1)
    reasons = degenerate_stack_reasons(stack, min_codes=min_codes)
    if reasons:
        raise InputError("the stack is degenerate:\n  " + "\n  ".join(reasons))


def report_curve(table, method: str, *, out=None) -> None:
    """Refuse a non-finite recovered curve; print a warning line per implausible feature of a finite one
    (a fold or negative irradiance: the curve is still written, and the warning says why it is doubtful).

    Raises:
        InputError: NaN/Inf in the ``(C, 256)`` table.
    """
    import torch

    from hdrbench.imaging.calibration.common import curve_defects

    if not torch.isfinite(table).all():
        raise InputError(f"the {method} recovery failed: the curve has NaN or Inf values (the stack has too little "
                         "usable variation for it; try --crf/--method debevec or a lower --order)")
    for reason in curve_defects(table):
        hint = " (try a lower --order or --method debevec)" if method == "mitsunaga-nayar" else ""
        print(f"warning: {method} curve, {reason}{hint}", file=out or sys.stderr)


def calibration_options(args) -> dict:
    """Keyword arguments of the CRF recovery selected by ``args.crf``."""
    if args.crf == "debevec":
        return {"smoothing": args.smoothing, "n_samples": args.samples, "sampling": args.sampling}
    if args.crf == "mitsunaga-nayar":
        return {"order": args.order, "n_samples": args.samples, "sampling": args.sampling}
    return {}


def write_preview(path: str | Path, hdr) -> Path:
    """Write a Reinhard 2002 (key 0.18) tone-mapped, sRGB-encoded 8-bit preview of ``hdr`` (3, H, W) linear."""
    from hdrbench.imaging.crf import SRGBCRF
    from hdrbench.imaging.io import write_image
    from hdrbench.imaging.tonemap import reinhard02, to_uint8

    display = SRGBCRF()(reinhard02(hdr.float()))
    return write_image(path, to_uint8(display).astype("float32") / 255.0)


def main(args: argparse.Namespace) -> int:
    import torch

    from hdrbench.imaging.io import write_image
    from hdrbench.imaging.synthesis import merge_stack

    from hdrbench.outputs import check_output_file

    # Both destinations are checked before the stack is read: a bad name fails in a second, not after the merge.
    check_output_file(args.out, "--out", suffixes=HDR_OUT_SUFFIXES)
    if args.preview:
        check_output_file(args.preview, "--preview", suffixes=PREVIEW_SUFFIXES)
    files, seconds = resolve_stack(args.stack, args.times, args.evs)
    stack = load_stack(files)
    check_stack_usable(stack, args.crf, args.order)
    with torch.no_grad():
        result = merge_stack(stack, seconds, inverse_crf=args.crf, weight=args.weight, merge=args.merge,
                             calibration=calibration_options(args) or None)
    if args.crf in ("debevec", "mitsunaga-nayar"):
        report_curve(result.inverse_crf[0], args.crf)
    hdr = result.hdr[0]
    out = write_image(args.out, hdr.permute(1, 2, 0).numpy().astype("float32"))
    print(f"merged {len(files)} exposures ({stack.shape[-1]}x{stack.shape[-2]}) with crf={args.crf}, "
          f"weight={args.weight}, merge={args.merge} -> {out}")
    if args.preview:
        print(f"preview -> {write_preview(args.preview, hdr)}")
    return 0

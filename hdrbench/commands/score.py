"""``hdrbench score``: score one test image against a reference (HDR-VDP-2, PU21, stack metrics).

    hdrbench score --test pred.hdr --reference gt.exr                       # singlehdr protocol, 30 ppd
    hdrbench score --test pred.pfm --reference gt.hdr --protocol display --display 21,1 --json
    hdrbench score --test pred.hdr --reference gt.hdr --pmap pmap.png        # probability-of-detection map
    hdrbench score --test preds/ --reference gts/ --out scores.csv          # folders matched by name (.csv/.json)

Linear HDR files (.hdr, .exr, .pfm, float TIFF) are scaled to cd/m^2 by the protocol and scored with the
HDR metrics (default ``hdrvdp2,pu21-psnr,pu21-ssim``, plus ``pu21-msssim`` when min(H, W) > 160).
Display-referred files (8/16-bit PNG, TIFF, JPEG) are scored with the stack metrics on their [0, 1] code
values (default ``psnr,ssim``, plus ``ms-ssim`` when min(H, W) > 160). Stack metrics are refused on HDR files:
they have no defined LDR view there; their HDR counterparts are the PU21 metrics.

Folder mode (``--test`` and ``--reference`` both folders; :mod:`hdrbench.evaluate.folder_scoring`): linear HDR
files matched by name, one row per pair (``--out`` .csv or .json), pairs of equal size scored in batches, with a
progress bar. Before a large pair is scored its peak memory is estimated (:mod:`hdrbench.metrics.batch`); a pair
over the limit (``--max-memory-gb``, default 80 % of the available memory) is refused before anything is
allocated, and pairs over 4 megapixels report each metric as it starts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

#: Default display-referred metrics (the HDR ones are the harness's, ``metrics.registry.DEFAULT_HDR_METRICS``); the
#: MS-SSIM variant joins either list only when the image has room for its five scales.
LDR_DEFAULT = ("psnr", "ssim")
MS_SSIM_MIN_SIDE = 161


def register(sub) -> None:
    p = sub.add_parser(
        "score",
        help="score a test image against a reference (HDR-VDP-2, PU21, PSNR/SSIM)",
        description="Score one test image against a reference. Linear HDR files (.hdr, .exr, .pfm, float TIFF) are"
        " scaled to cd/m^2 by a protocol and scored with HDR-VDP-2 and the PU21 metrics; display-referred files"
        " (8/16-bit PNG, TIFF, JPEG) with PSNR/SSIM/MS-SSIM on their [0, 1] values. Stack metrics are refused on"
        " HDR files (no defined LDR view): use pu21-psnr, pu21-ssim, pu21-msssim there.",
        epilog="Protocols: singlehdr (default; 30 ppd), display (peak 4000 cd/m^2; 21-inch display at 1 m), absolute"
        " (inputs in cd/m^2; give --ppd), hanji2022; metric cards and protocol numbers: docs/metrics.md.",
    )
    p.add_argument("--test", required=True, help="test (distorted / reconstructed) image file, or a folder of them")
    p.add_argument("--reference", required=True,
                   help="reference image file of the same size, or a folder of references matched by file name")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric names (see `hdrbench.metrics.list_metrics()`); default depends on the input"
        " kind (HDR: hdrvdp2,pu21-psnr,pu21-ssim[,pu21-msssim]; display-referred: psnr,ssim[,ms-ssim])",
    )
    p.add_argument("--protocol", default="singlehdr", help="scaling protocol for HDR inputs (default: singlehdr)")
    p.add_argument(
        "--crf-correction", action="store_true", help="follow the protocol with Hanji et al. 2022's correction"
    )
    view = p.add_mutually_exclusive_group()
    view.add_argument("--ppd", type=float, default=None, help="pixels per degree for HDR-VDP (default: the protocol's)")
    view.add_argument(
        "--display",
        default=None,
        metavar="DIAGONAL_IN,DISTANCE_M",
        help="compute ppd from a display diagonal in inches and a viewing distance in metres, e.g. 21,1",
    )
    p.add_argument("--color-encoding", default="rgb-bt.709", choices=("rgb-bt.709", "luminance"))
    p.add_argument(
        "--allow-small-window",
        action="store_true",
        help="let SSIM/MS-SSIM use a smaller window on small images (the window used is reported)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    p.add_argument("--pmap", default=None, metavar="OUT.png", help="write the HDR-VDP probability-of-detection map")
    p.add_argument("-o", "--out", default=None, metavar="OUT.json|ROWS.csv|ROWS.json",
                   help="one pair: also write the result as JSON to this file; folder mode: write one row per pair "
                        "to this CSV or JSON file (default: print the rows)")
    p.add_argument("--max-memory-gb", type=float, default=None,
                   help="refuse pairs whose estimated peak memory exceeds this (default: 80%% of the available memory)")
    p.add_argument("--no-progress", action="store_true", help="folder mode: no progress bar")
    p.set_defaults(func=run)


def _parse_display(text: str) -> tuple[float, float]:
    from hdrbench.errors import InputError

    parts = text.split(",")
    try:
        diag, dist = (float(v) for v in parts)
    except ValueError:
        raise InputError(f"--display: expected DIAGONAL_IN,DISTANCE_M (e.g. 21,1), got {text!r}") from None
    if not (diag > 0 and dist > 0 and math.isfinite(diag) and math.isfinite(dist)):
        raise InputError(f"--display: diagonal and distance must be finite and > 0, got {text!r}")
    return diag, dist


def _load(path: str):
    """Read an image with the suite's reader: returns (tensor (1, 3, H, W) float64, LoadedImage)."""
    from hdrbench.data.base import to_chw
    from hdrbench.imaging.io import read_image

    img = read_image(path)
    for note in img.notes:  # greyscale expanded, alpha dropped: the user should know what was scored
        print(f"note: {path}: {note}", file=sys.stderr)
    return to_chw(img.data)[None].double(), img


def _check_hdr_file(option: str, path: str, x) -> None:
    """Refuse a linear HDR file with NaN/Inf, negative or all-zero pixels, naming the option and the file."""
    from hdrbench.checks import check_image, check_nonnegative, check_not_all_zero

    name = f"{option} {path}"
    check_image(x, name, channels=None)
    check_nonnegative(x, name)
    check_not_all_zero(x, name)


def _json_number(v: float) -> float | str:
    # JSON has no inf/nan; PSNR of identical images is +inf, written as the string "inf".
    return v if math.isfinite(v) else str(v)


def run(args: argparse.Namespace) -> int:
    from hdrbench.errors import InputError
    from hdrbench.metrics import protocols as proto_mod
    from hdrbench.metrics.pu21 import rgb_to_luminance
    from hdrbench.metrics.registry import compute_ldr_metrics
    from hdrbench.outputs import check_output_file

    if folder_mode(args):
        return _run_folders(args)
    # Outputs are checked before the (possibly long) scoring.
    if args.pmap:
        check_output_file(args.pmap, "--pmap", suffixes=(".png",))
    if args.out:
        check_output_file(args.out, "--out", suffixes=(".json",))
    test, ref, test_img = _load_pair(args)
    height, width = test.shape[-2:]
    hdr = test_img.encoding == "linear"
    metrics = _choose_metrics(args, hdr, height, width)

    details: dict = {}
    protocol = None
    if hdr:
        protocol = proto_mod.get_protocol(args.protocol, crf_correction=args.crf_correction)
        if args.color_encoding == "luminance":
            test, ref = rgb_to_luminance(test), rgb_to_luminance(ref)
        ppd = args.ppd
        if args.display:
            from hdrbench.metrics.hdrvdp2 import pix_per_deg

            diag, dist = _parse_display(args.display)
            ppd = float(pix_per_deg(diag, (width, height), dist))
        values, details = _compute_hdr_bounded(args, test, ref, protocol, metrics, ppd)
    else:
        if args.pmap:
            raise InputError("--pmap needs linear HDR inputs (HDR-VDP-2 is not run on display-referred files)")
        values = compute_ldr_metrics(
            test, ref, metrics=metrics, allow_small_window=args.allow_small_window, details=details
        )

    result = _result(args, test_img.encoding, width, height, values, details, protocol)
    if "hdrvdp2" in details and args.pmap:
        from hdrbench.report.figures import write_pmap

        write_pmap(args.pmap, details["hdrvdp2"].P_map[0], ref[0])
        result["pmap"] = str(args.pmap)
    if args.out:
        from hdrbench.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_summary(result, sys.stdout)
    return 0


def _load_pair(args: argparse.Namespace):
    """Read --test and --reference and check they can be scored together: (test, reference, test's LoadedImage)."""
    from hdrbench.errors import InputError

    test, test_img = _load(args.test)
    ref, ref_img = _load(args.reference)
    if test.shape != ref.shape:
        raise InputError(
            f"--test {args.test} is {test.shape[-1]}x{test.shape[-2]} but --reference {args.reference} is"
            f" {ref.shape[-1]}x{ref.shape[-2]} (width x height); the images must be the same size"
        )
    if test_img.encoding != ref_img.encoding:
        raise InputError(
            f"--test {args.test} is {test_img.encoding} ({test_img.format}) but --reference {args.reference} is"
            f" {ref_img.encoding} ({ref_img.format}); score two linear HDR files or two display-referred files"
        )
    if test_img.encoding == "linear":
        _check_hdr_file("--test", args.test, test)
        _check_hdr_file("--reference", args.reference, ref)
    return test, ref, test_img


def _choose_metrics(args: argparse.Namespace, hdr: bool, height: int, width: int) -> list[str]:
    """--metrics, or the default list for the input kind (MS-SSIM only where the image has room for it); unknown
    names fail here with did-you-mean, and --pmap adds HDR-VDP-2."""
    from hdrbench.metrics.registry import DEFAULT_HDR_METRICS, get_metric

    if args.metrics:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    else:
        metrics = list(DEFAULT_HDR_METRICS if hdr else LDR_DEFAULT)
        if min(height, width) >= MS_SSIM_MIN_SIDE:
            metrics.append("pu21-msssim" if hdr else "ms-ssim")
    for m in metrics:
        get_metric(m)
    if args.pmap and "hdrvdp2" not in metrics and "hdrvdp2-pdet" not in metrics:
        metrics.append("hdrvdp2")
    return metrics


def _result(args: argparse.Namespace, encoding: str, width: int, height: int, values: dict, details: dict,
            protocol) -> dict:
    """The JSON-serialisable result of one pair (what --json prints and --out writes)."""
    from hdrbench import __version__
    from hdrbench.metrics.registry import get_metric

    result = {
        "test": str(args.test),
        "reference": str(args.reference),
        "width": int(width),
        "height": int(height),
        "input_encoding": encoding,
        "metrics": {k: _json_number(float(v[0])) for k, v in values.items()},
        "metric_versions": {k: get_metric(k).version for k in values},
        "windows": details.get("windows", {}),
        "hdrbench_version": __version__,
    }
    if protocol is not None:
        result["protocol"] = {
            "name": details["protocol"],
            "version": details["protocol_version"],
            "description": protocol.description,
            "parameters": _jsonable(details["protocol_parameters"]),
        }
        result["color_encoding"] = args.color_encoding
    if "hdrvdp2" in details:
        res = details["hdrvdp2"]
        result["ppd"] = details["ppd"]
        result["hdrvdp2"] = {
            "Q": float(res.Q[0]),
            "P_det": float(res.P_det[0]),
            "C_max": float(res.C_max[0]),
            "version": str(getattr(res, "version", get_metric("hdrvdp2").version)),
        }
    return result


#: Pairs with more pixels than this report each metric on stderr as it starts (they take seconds to minutes).
PROGRESS_MIN_PIXELS = 4_000_000


def folder_mode(args: argparse.Namespace) -> bool:
    """True when --test and --reference are both folders; one folder and one file is an error naming both."""
    from pathlib import Path

    from hdrbench.errors import InputError

    t, r = Path(args.test).is_dir(), Path(args.reference).is_dir()
    if t != r:
        raise InputError(f"--test {args.test} is a {'folder' if t else 'file'} but --reference {args.reference} is a"
                         f" {'folder' if r else 'file'}; give two files or two folders")
    return t


def _run_folders(args: argparse.Namespace) -> int:
    """Folder mode: score matched pairs (hdrbench.evaluate.folder_scoring) and write or print one row per pair."""
    from hdrbench import __version__
    from hdrbench.errors import InputError
    from hdrbench.evaluate import folder_scoring as fs
    from hdrbench.metrics import protocols as proto_mod
    from hdrbench.metrics.batch import memory_limit_bytes
    from hdrbench.metrics.registry import DEFAULT_HDR_METRICS, get_metric

    if args.pmap:
        raise InputError("--pmap is for a single pair; folder mode writes scores only")
    if args.display:
        raise InputError("--display depends on the image size; in folder mode give --ppd (or use the protocol's)")
    if args.out:  # extension and writability, before any scoring
        from hdrbench.outputs import check_output_file

        check_output_file(args.out, "--out", suffixes=(".csv", ".json"))
    pairs = fs.match_folders(args.test, args.reference)  # a missing partner fails here, before any scoring
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else list(DEFAULT_HDR_METRICS)
    for m in metrics:
        get_metric(m)
    protocol = proto_mod.get_protocol(args.protocol, crf_correction=args.crf_correction)
    limit = memory_limit_bytes(args.max_memory_gb)
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc="score", unit="pair", file=sys.stderr)
    try:
        rows = fs.score_folders(args.test, args.reference, protocol=protocol, metrics=metrics, ppd=args.ppd,
                                color_encoding=args.color_encoding, allow_small_window=args.allow_small_window,
                                max_bytes=limit[0], memory_limit=limit, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    records = fs.rows_to_records(rows, metrics)
    columns = [*fs.BASE_COLUMNS, *metrics, "error"]
    meta = {"test_folder": str(args.test), "reference_folder": str(args.reference), "protocol": protocol.name,
            "protocol_version": protocol.version, "color_encoding": args.color_encoding,
            "metric_versions": {m: get_metric(m).version for m in metrics}, "hdrbench_version": __version__}
    failed = sum(1 for r in rows if r.error)
    if args.out:
        fs.write_rows(args.out, records, columns, meta)
        print(f"{len(rows)} pair(s) scored, {failed} with an error; rows written to {args.out}")
    elif args.json:
        print(json.dumps({"meta": meta, "rows": [{k: _jsonable(v) for k, v in r.items()} for r in records]}, indent=2))
    else:
        print("  ".join(f"{c:>12}" if c in metrics else c for c in ["name", *metrics, "error"]))
        for r in records:
            vals = [f"{r[m]:>12.4f}" if isinstance(r[m], float) else f"{r[m]:>12}" for m in metrics]
            print("  ".join([r["name"], *vals, r["error"]]))
    for r in rows:
        if r.error:
            print(f"warning: {r.name}: {r.error}", file=sys.stderr)
    return 0


def _compute_hdr_bounded(args, test, ref, protocol, metrics, ppd):
    """Refuse a pair whose estimated peak memory exceeds the limit (before allocating); report progress when large."""
    import torch

    from hdrbench.metrics.batch import check_memory, compute_in_steps, memory_limit_bytes

    height, width = test.shape[-2:]
    need = check_memory(f"--test {args.test}", metrics, height, width, test.dtype,
                        memory_limit_bytes(args.max_memory_gb))
    on_step = None
    if height * width > PROGRESS_MIN_PIXELS:
        print(f"scoring a {width}x{height} pair ({height * width / 1e6:.1f} Mpixel, estimated peak"
              f" {need / 1e9:.1f} GB)", file=sys.stderr, flush=True)

        def on_step(name):
            print(f"  computing {name} ...", file=sys.stderr, flush=True)
    with torch.inference_mode():
        return compute_in_steps(test, ref, protocol=protocol, metrics=metrics, ppd=ppd,
                                color_encoding=args.color_encoding, allow_small_window=args.allow_small_window,
                                on_step=on_step)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return _json_number(obj)
    return obj


def _print_summary(result: dict, out) -> None:
    from hdrbench.metrics.registry import get_metric

    print(f"test:      {result['test']}", file=out)
    size = f"{result['width']}x{result['height']}, {result['input_encoding']}"
    print(f"reference: {result['reference']}  ({size})", file=out)
    if "protocol" in result:
        p = result["protocol"]
        print(f"protocol:  {p['name']} v{p['version']} - {p['description']}", file=out)
        print(f"colour:    {result['color_encoding']}", file=out)
    if "ppd" in result:
        print(f"ppd:       {result['ppd']:.4g}", file=out)
    for name, value in result["metrics"].items():
        card = get_metric(name)
        arrow = "higher is better" if card.higher_is_better else "lower is better"
        shown = f"{value:.4f}" if isinstance(value, float) else value
        win = result["windows"].get(name)
        extra = f", window {win}" if win is not None and win != 11 else ""
        print(f"  {name:<14} {shown:>10}   ({arrow}; v{card.version}{extra})", file=out)
    if "hdrvdp2" in result:
        h = result["hdrvdp2"]
        q = f"Q = {h['Q']:.4f}, P_det = {h['P_det']:.4f}, C_max = {h['C_max']:.4g}"
        print(f"  HDR-VDP-2 {h['version']}: {q}", file=out)
    if "pmap" in result:
        print(f"probability-of-detection map: {result['pmap']}", file=out)

"""Qualitative grids (paper Figs. 6-7): tone-mapped HDR outputs side by side, Q and P_map under each.

The grid reads evaluation run folders, never models: the HDR images the evaluation saved
(``hdrbench evaluate --save-hdr [pfm|exr|hdr]``, which writes ``<run>/hdr/<scene>.<format>``, lossless PFM by
default) and the run's ``records.csv``. The Q printed under an image is the run's HDR-VDP-2 record for that
scene under the chosen protocol, so the caption is the number the tables report. The probability-of-detection
map under it is a picture that records cannot hold: it is drawn by scoring the saved image against the scene's
reference under the same protocol, in float64. The harness scored in the prediction's dtype (float32 for the
embedded datasets), so the map's own Q can differ from the recorded one in the fourth digit (92.5094 against
92.5097 on a synthetic scene); the caption is always the record.

Tone mapping: Reinhard et al. 2002 global operator (key 0.18). Each image is normalised by its own
log-average luminance (outputs are relative HDR, of arbitrary scale), and one white point per scene, the
reference's 99.9th luminance percentile in scaled units, is used for every column so that highlight
reconstruction is compared on the same curve.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from hdrbench.errors import InputError


def _load_output(run_dir: Path, scene: str) -> torch.Tensor:
    """(1, 3, H, W) float64 HDR saved by an evaluation for ``scene``."""
    from hdrbench.data.base import to_chw
    from hdrbench.imaging.io import read_image

    for ext in (".hdr", ".exr", ".pfm"):
        path = run_dir / "hdr" / f"{scene}{ext}"
        if path.is_file():
            return to_chw(read_image(path).data)[None].double()
    raise InputError(f"{run_dir}: no saved HDR output for scene {scene!r} (expected {run_dir / 'hdr' / scene}.pfm, .exr or .hdr); "
                     "evaluate with --save-hdr")


def _recorded_q(run_dir: Path, protocol: str) -> dict[str, dict]:
    """scene -> the run's HDR-VDP-2 record (``target == "hdr"``) under ``protocol``, read from ``<run>/records.csv``.

    Raises:
        InputError: the run folder has no ``records.csv`` or it is not a record file.
    """
    from hdrbench.evaluate.runs import read_records_csv

    path = run_dir / "records.csv"
    if not path.is_file():
        raise InputError(f"{run_dir}: no records.csv; the grid's Q comes from the records of an evaluation run folder")
    try:
        rows = read_records_csv(path)
    except (ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a record file ({exc})") from None
    return {r["scene"]: r for r in rows if r["metric"] == "hdrvdp2" and r["target"] == "hdr" and r["protocol"] == protocol}


def _reference(ds, split: str, scene: str, protocol=None) -> torch.Tensor:
    """(1, 3, H, W) float64 reference HDR: the dataset's, or its ground-truth stack merged (as the harness does).

    A protocol whose reference is the merged ground-truth stack (``kim2021``) gets that merge, with the
    protocol's layer and in the stack's own dtype, exactly as the harness scored it.
    """
    from hdrbench.evaluate.harness import merge_scene_stack

    s = ds.load(split, scene)
    if protocol is not None and protocol.hdr_reference == "gt-stack":
        if s.stack is None:
            raise InputError(f"{ds.name}: scene {scene!r} has no stack; protocol {protocol.name} scores against "
                             "the merged ground-truth stack")
        return merge_scene_stack(s.stack[None], s.evs, layer=protocol.stack_merge).hdr.double()
    if s.hdr is not None:
        return s.hdr[None].double()
    if s.stack is None:
        raise InputError(f"{ds.name}: scene {scene!r} has neither a reference HDR image nor a stack")
    return merge_scene_stack(s.stack[None].double(), s.evs).hdr.double()


def _tonemap(hdr: torch.Tensor, white: float) -> np.ndarray:
    """(1, 3, H, W) linear -> (H, W, 3) display values in [0, 1] (Reinhard 2002, fixed white, gamma 2.2)."""
    from hdrbench.imaging.tonemap import reinhard02

    ldr = reinhard02(hdr, white=white).clamp(0, 1) ** (1 / 2.2)
    return ldr[0].permute(1, 2, 0).cpu().numpy()


def qualitative_grid_from_runs(dataset: str, scenes: Sequence[str], runs: Mapping[str, str | os.PathLike], *,
                               root: str | None = None, split: str = "test", protocol: str = "singlehdr",
                               resolution=None):
    """Build the grid for ``scenes`` (rows) and ``runs`` (columns: method label -> evaluation run folder).

    Returns:
        ``(fig, scores)`` where ``scores`` maps (scene, method) -> Q (HDR-VDP-2, 0..100, higher is better) as
        recorded by the run (NaN for a failed record, captioned with its error).

    Raises:
        InputError: no scenes or runs, a run without records, without an HDR-VDP-2 record under ``protocol`` or
            without a saved output for a scene, or an output whose size differs from the reference.
    """
    from hdrbench.data import get_dataset
    from hdrbench.imaging.camera import luminance
    from hdrbench.metrics.hdrvdp2 import hdrvdp2
    from hdrbench.metrics.protocols import get_protocol
    from hdrbench.report.figures import qualitative_grid

    if not scenes or not runs:
        raise InputError("a qualitative grid needs at least one scene and one run")
    proto = get_protocol(protocol)
    ds = get_dataset(dataset, root=root, resolution=resolution)
    recorded = {label: _recorded_q(Path(run_dir), proto.name) for label, run_dir in runs.items()}
    images, captions, pmaps, scores = [], [], [], {}
    for scene in scenes:
        ref = _reference(ds, split, scene, proto)
        lum = luminance(ref).flatten()
        log_avg = float(torch.exp(torch.log(1e-6 + lum).mean()))
        white = max(0.18 / log_avg * float(torch.quantile(lum, 0.999)), 1.0)
        row_img, row_cap, row_pm = [_tonemap(ref, white)], ["reference"], [None]
        for label, run_dir in runs.items():
            out = _load_output(Path(run_dir), scene)
            if out.shape != ref.shape:
                raise InputError(f"{run_dir}: output for {scene!r} has shape {tuple(out.shape)}, reference "
                                 f"{tuple(ref.shape)}")
            rec = recorded[label].get(scene)
            if rec is None:
                raise InputError(f"{run_dir}: records.csv has no HDR-VDP-2 record for scene {scene!r} under protocol "
                                 f"{proto.name} (evaluate with that protocol and hdrvdp2 among the HDR metrics)")
            t_abs, r_abs = proto.apply(out, ref)
            res = hdrvdp2(t_abs, r_abs, color_encoding="rgb-bt.709", ppd=proto.ppd_for(ref.shape[-1], ref.shape[-2]))
            scores[(scene, label)] = float(rec["value"])
            row_img.append(_tonemap(out, white))
            row_cap.append(f"Q failed: {rec['error']}"[:40] if rec["error"] else f"Q = {float(rec['value']):.2f}")
            row_pm.append(res.P_map[0].cpu().numpy())
        images.append(row_img)
        captions.append(row_cap)
        pmaps.append(row_pm)
    fig, _ = qualitative_grid(images, list(scenes), ["reference", *runs.keys()], captions, pmaps)
    fig.suptitle(f"{dataset} ({split}): Reinhard 2002 tone mapping; HDR-VDP-2 Q under each ({proto.name})", fontsize=9)
    return fig, scores

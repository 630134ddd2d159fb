"""Qualitative grids (paper Figs. 6-7): tone-mapped HDR outputs side by side, Q and P_map under each.

The grid reads HDR images that evaluations saved (``hdrbench evaluate --save-hdr [pfm|exr|hdr]``, which writes
``<run>/hdr/<scene>.<format>``, lossless PFM by default), never models. Each output is scored against the scene's reference HDR under the
chosen protocol so that the caption's Q and the probability-of-detection map come from the same call;
the Q printed under an image therefore equals the record of that image in the run (same protocol, same
metric), which :func:`qualitative_grid_from_runs` does not re-check but the tests do.

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
        ``(fig, scores)`` where ``scores`` maps (scene, method) -> Q (HDR-VDP-2, 0..100, higher is better).

    Raises:
        InputError: no scenes or runs, a run without saved outputs for a scene, or an output whose size
            differs from the reference.
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
            t_abs, r_abs = proto.apply(out, ref)
            res = hdrvdp2(t_abs, r_abs, color_encoding="rgb-bt.709", ppd=proto.ppd_for(ref.shape[-1], ref.shape[-2]))
            q = float(res.Q[0])
            scores[(scene, label)] = q
            row_img.append(_tonemap(out, white))
            row_cap.append(f"Q = {q:.2f}")
            row_pm.append(res.P_map[0].cpu().numpy())
        images.append(row_img)
        captions.append(row_cap)
        pmaps.append(row_pm)
    fig, _ = qualitative_grid(images, list(scenes), ["reference", *runs.keys()], captions, pmaps)
    fig.suptitle(f"{dataset} ({split}): Reinhard 2002 tone mapping; HDR-VDP-2 Q under each ({proto.name})", fontsize=9)
    return fig, scores

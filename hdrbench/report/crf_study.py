"""The CRF-consistency study of the paper's appendix A (Fig. 3).

For every scene of a dataset split, the inverse camera response is estimated from its exposure stack by
the polynomial fit of Mitsunaga-Nayar at orders K = 3 and K = 5 and by non-parametric Debevec-Malik,
next to the ground truth (when the dataset knows the true curve) and, for each chosen method, the curve
Debevec-Malik recovers from the stack the method *generates* from the scene's EV 0 image (the curve
its HDR merge would use). Scenes of one camera should give one curve: the spread across scenes
(sigma) measures an estimator's consistency.

Normalisation: every curve is divided by its value at the top code (Z = 1), so curves of different
scales (Debevec's toolbox normalisation, the polynomial's sum-to-one constraint) are comparable.
``sigma`` is the standard deviation across scenes (ddof = 1) at each code, averaged over codes and
channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from hdrbench.atomic import atomic_write_text
from hdrbench.errors import InputError

N_CODES = 256


def _normalise(table: np.ndarray) -> np.ndarray:
    """(C, 256) -> each channel divided by its top-code value."""
    top = table[:, -1:]
    return table / np.where(np.abs(top) > 0, top, 1.0)


def ground_truth_inverse(meta: dict) -> np.ndarray | None:
    """(3, 256) inverse of the forward table ``meta['crf_table']`` ((C, n) or (n,) over linspace(0, 1, n)), if known.

    A single curve (one row, or a 1-D table) is the same response for every channel and is repeated to three.
    """
    table = meta.get("crf_table")
    if table is None:
        return None
    table = np.atleast_2d(np.asarray(table, dtype=np.float64))
    if table.shape[0] == 1:
        table = np.repeat(table, 3, axis=0)
    grid = np.linspace(0.0, 1.0, table.shape[-1])
    z = np.linspace(0.0, 1.0, N_CODES)
    return np.stack([np.interp(z, np.maximum.accumulate(t), grid) for t in table])


def scene_curves(stack: torch.Tensor, evs: Sequence[float]) -> dict[str, np.ndarray]:
    """Inverse CRFs of one (E, 3, H, W) stack by every estimator: name -> (3, 256) un-normalised."""
    from hdrbench.imaging.calibration import debevec_inverse_crf, mitsunaga_nayar_inverse_crf

    s = stack[None].double()
    times = torch.tensor([2.0**e for e in evs], dtype=torch.float64)
    out = {"debevec": debevec_inverse_crf(s, times)[0].numpy()}
    for k in (3, 5):
        out[f"poly-{k}"] = mitsunaga_nayar_inverse_crf(s, times, order=k).table[0].numpy()
    return out


def crf_study(dataset: str, *, root: str | None = None, split: str = "test", limit: int | None = None,
              methods: Sequence[str] = (), device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the study.

    Returns:
        ``curves`` (columns ``scene, estimator, channel, z, value``; normalised) and ``sigma`` (columns
        ``estimator, n_scenes, sigma``).
    """
    from tqdm import tqdm

    from hdrbench.data import get_dataset

    ds = get_dataset(dataset, root=root)
    scenes = ds.scenes(split)[: limit or None]
    if len(scenes) < 2:
        raise InputError(f"the CRF study needs at least 2 scenes; {dataset}/{split} gives {len(scenes)}")
    method_objs = []
    if methods:
        from hdrbench.evaluate.methods import get_method

        method_objs = [get_method(m, dataset=dataset, device=device) for m in methods]
    rows = []
    z = np.linspace(0.0, 1.0, N_CODES)
    for name in tqdm(scenes, desc=f"CRF study {dataset}", unit="scene"):
        scene = ds.load(split, name)
        if scene.stack is None:
            raise InputError(f"{dataset}: scene {name} has no exposure stack; the CRF study needs stacks")
        curves = scene_curves(scene.stack, scene.evs)
        gt = ground_truth_inverse(scene.meta)
        if gt is not None:
            curves["ground-truth"] = gt
        for m in method_objs:
            with torch.no_grad():
                pred = m.predict_stack(scene.input[None].to(device), list(scene.evs))[0].cpu()
            curves[f"method:{m.name}"] = scene_curves(pred.clamp(0, 1), scene.evs)["debevec"]
        for est, table in curves.items():
            table = _normalise(np.asarray(table, dtype=np.float64))
            for c in range(table.shape[0]):
                rows.append(pd.DataFrame({"scene": name, "estimator": est, "channel": c, "z": z, "value": table[c]}))
    curves_df = pd.concat(rows, ignore_index=True)
    sig = []
    for est, g in curves_df.groupby("estimator", sort=False):
        arr = g.pivot_table(index=["channel", "z"], columns="scene", values="value").to_numpy()
        sig.append({"estimator": est, "n_scenes": arr.shape[1], "sigma": float(np.nanstd(arr, axis=1, ddof=1).mean())})
    return curves_df, pd.DataFrame(sig)


def run_and_write(dataset: str, *, root: str | None = None, split: str = "test", limit: int | None = None,
                  methods: Sequence[str] = (), out: Path = Path("results"), device: str = "cpu") -> list[Path]:
    """Run the study and write ``tables/crf_study_<dataset>.csv|md|tex``, the curves CSV and the figure."""
    from hdrbench.report import figures, formats
    from hdrbench.report.build import slug, write_table

    curves, sigma = crf_study(dataset, root=root, split=split, limit=limit, methods=methods, device=device)
    name = f"crf_study_{slug(dataset)}"
    paths = write_table(sigma, out, name)
    curve_path = out / "tables" / f"{name}_curves.csv"
    atomic_write_text(curve_path, formats.to_csv_text(curves))
    fig, _ = figures.crf_curves(curves, sigma, dataset=dataset)
    paths += [curve_path, *figures.save_figure(fig, out / "figures" / name)]
    return paths


def main(args) -> int:
    """Entry point for ``hdrbench calibrate --study --dataset NAME [--root PATH]``."""
    if not getattr(args, "dataset", None):
        raise InputError("--study needs --dataset NAME")
    paths = run_and_write(args.dataset, root=getattr(args, "root", None), split=getattr(args, "split", None) or "test",
                          limit=getattr(args, "limit", None),
                          methods=getattr(args, "methods", None) or (), out=Path(getattr(args, "out_dir", None) or "results"))
    for p in paths:
        print(p)
    return 0

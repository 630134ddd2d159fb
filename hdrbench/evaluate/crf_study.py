"""The CRF-consistency study of the paper's appendix A (Fig. 3): the curves.

For every scene of a dataset split, the inverse camera response is estimated from its exposure stack by
the polynomial fit of Mitsunaga-Nayar at orders K = 3 and K = 5 and by non-parametric Debevec-Malik,
next to the ground truth (when the dataset knows the true curve) and, for each chosen method, the curve
Debevec-Malik recovers from the stack the method *generates* from the scene's EV 0 image (the curve
its HDR merge would use). Scenes of one camera should give one curve: the spread across scenes
(sigma) measures an estimator's consistency.

Normalisation: every curve is divided by its value at the top code (Z = 1), so curves of different
scales (Debevec's toolbox normalisation, the polynomial's sum-to-one constraint) are comparable.

This module runs the estimators and the methods and writes the curves
(``<out>/tables/crf_study_<dataset slug>_curves.csv``, columns :data:`CURVE_COLUMNS`);
:mod:`hdrbench.report.crf_study` reads them and writes the spread table and the figure. ``sigma``, the
spread, is defined there.
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
#: Columns of the curves table: one row per scene x estimator x channel x code; ``value`` normalised.
CURVE_COLUMNS = ("scene", "estimator", "channel", "z", "value")
#: Decimals of the curves CSV: those of every published table (``hdrbench.report.formats.CSV_DECIMALS``).
CURVE_DECIMALS = 6


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


def crf_curves(dataset: str, *, root: str | None = None, split: str = "test", limit: int | None = None,
               methods: Sequence[str] = (), device: str = "cpu") -> pd.DataFrame:
    """Estimate every scene's inverse CRFs (and each method's, from the stack it generates).

    Returns:
        The curves (columns :data:`CURVE_COLUMNS`), each divided by its value at the top code.

    Raises:
        InputError: fewer than 2 scenes, or a scene without an exposure stack.
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
    return pd.concat(rows, ignore_index=True)


def curves_path(out: Path, dataset: str) -> Path:
    """``<out>/tables/crf_study_<dataset slug>_curves.csv``: where the curves of ``dataset`` are written."""
    from hdrbench.data.base import dataset_slug

    return Path(out) / "tables" / f"crf_study_{dataset_slug(dataset)}_curves.csv"


def write_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Write the curves table atomically, floats at :data:`CURVE_DECIMALS` decimals and ``\\n`` line ends; return ``path``."""
    import io

    buf = io.StringIO()
    curves.to_csv(buf, index=False, float_format=f"%.{CURVE_DECIMALS}f", lineterminator="\n")
    atomic_write_text(path, buf.getvalue())
    return path


def run_crf_study(dataset: str, *, out: Path, root: str | None = None, split: str = "test", limit: int | None = None,
                  methods: Sequence[str] = (), device: str = "cpu") -> tuple[pd.DataFrame, Path]:
    """:func:`crf_curves`, written to :func:`curves_path`; returns the curves and the file written."""
    curves = crf_curves(dataset, root=root, split=split, limit=limit, methods=methods, device=device)
    return curves, write_curves(curves, curves_path(out, dataset))

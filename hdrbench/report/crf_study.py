"""The CRF-consistency study of the paper's appendix A (Fig. 3): the spread table and the figure.

Reads the curves that :mod:`hdrbench.evaluate.crf_study` estimated (one inverse CRF per scene and
estimator, normalised to 1 at the top code; ``tables/crf_study_<dataset slug>_curves.csv``) and never
runs an estimator or a method. Scenes of one camera should give one curve: the spread across scenes
(``sigma``) measures an estimator's consistency. ``sigma`` is the standard deviation across scenes
(ddof = 1) at each code, averaged over codes and channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hdrbench.errors import InputError
from hdrbench.evaluate.crf_study import CURVE_COLUMNS


def read_curves(path: str | Path) -> pd.DataFrame:
    """The curves table at ``path`` (columns :data:`CURVE_COLUMNS`).

    Raises:
        InputError: the file is missing or lacks one of the columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no CRF-study curves file (run `hdrbench calibrate --study --dataset NAME` first)")
    curves = pd.read_csv(path, dtype={"scene": str, "estimator": str})
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise InputError(f"{path}: not a CRF-study curves table (missing columns {missing})")
    return curves


def sigma_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Spread across scenes per estimator: columns ``estimator, n_scenes, sigma`` (estimators in first-seen order)."""
    sig = []
    for est, g in curves.groupby("estimator", sort=False):
        arr = g.pivot_table(index=["channel", "z"], columns="scene", values="value").to_numpy()
        sig.append({"estimator": est, "n_scenes": arr.shape[1], "sigma": float(np.nanstd(arr, axis=1, ddof=1).mean())})
    return pd.DataFrame(sig)


def write_report(curves: pd.DataFrame | str | Path, out: Path, dataset: str) -> list[Path]:
    """Write ``tables/crf_study_<dataset slug>.csv|md|tex`` (sigma) and ``figures/crf_study_<slug>.png|pdf``.

    Args:
        curves: the curves table, or the path of its CSV.
        out: results folder.
        dataset: dataset name (titles and file names).
    """
    from hdrbench.report import figures
    from hdrbench.report.build import slug, write_table

    if not isinstance(curves, pd.DataFrame):
        curves = read_curves(curves)
    sigma = sigma_table(curves)
    name = f"crf_study_{slug(dataset)}"
    paths = write_table(sigma, out, name)
    fig, _ = figures.crf_curves(curves, sigma, dataset=dataset)
    return paths + figures.save_figure(fig, out / "figures" / name)

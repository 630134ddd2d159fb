"""The correlation study of the paper's appendix C (Fig. 5): per image, stack accuracy against HDR-VDP-2.

The paper's finding is a weak correlation between how well a method reconstructs the exposure stack
and how good the merged HDR image is. Here both are read from records: the stack metric averaged
over the six generated exposures of an image, and the HDR metric of the merged image under one
protocol. Pearson's r and Spearman's rho come with percentile bootstrap 95 % confidence intervals
(scenes resampled with replacement; seeded, so regenerating gives identical numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from hdrbench.errors import InputError
from hdrbench.report.aggregate import per_image


def study_points(df: pd.DataFrame, *, stack_metric: str = "psnr", hdr_metric: str = "hdrvdp2",
                 protocol: str = "singlehdr") -> pd.DataFrame:
    """One row per (dataset, method, scene) with ``stack_value`` and ``hdr_value``; failed images dropped
    here only after being counted by the tables (a scatter plot cannot show a missing point)."""
    s = df[(df["target"] == "stack") & (df["metric"] == stack_metric) & (df["ev"] != 0)]
    h = df[(df["target"] == "hdr") & (df["metric"] == hdr_metric) & (df["protocol"] == protocol)]
    if s.empty or h.empty:
        raise InputError(
            f"correlation study needs stack '{stack_metric}' and hdr '{hdr_metric}' records under protocol "
            f"'{protocol}'; found {len(s)} and {len(h)} rows"
        )
    keys = ["dataset", "method", "scene"]
    sp = per_image(s, []).rename(columns={"value": "stack_value", "failed": "stack_failed"})
    hp = per_image(h, []).rename(columns={"value": "hdr_value", "failed": "hdr_failed"})
    pts = sp[keys + ["stack_value", "stack_failed"]].merge(hp[keys + ["hdr_value", "hdr_failed"]], on=keys)
    pts = pts[~(pts["stack_failed"] | pts["hdr_failed"])]
    # An exact stack (PSNR = +inf, e.g. the gt-stack bound) has no place on a scatter plot or in a correlation.
    pts = pts[np.isfinite(pts["stack_value"].to_numpy(dtype=float)) & np.isfinite(pts["hdr_value"].to_numpy(dtype=float))]
    return pts[keys + ["stack_value", "hdr_value"]].sort_values(keys, kind="stable").reset_index(drop=True)


def _bootstrap_ci(x: np.ndarray, y: np.ndarray, fn, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    n = x.size
    idx = rng.integers(0, n, size=(n_boot, n))
    vals = np.array([fn(x[i], y[i]) for i in idx])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def _pearson(x, y) -> float:
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(stats.pearsonr(x, y)[0])


def _spearman(x, y) -> float:
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y)[0])


def correlation_stats(points: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Pearson and Spearman per dataset x method (and all methods pooled, ``method == "all"``).

    Returns:
        Columns ``dataset, method, n, pearson_r, pearson_lo, pearson_hi, spearman_rho, spearman_lo,
        spearman_hi`` (NaN where fewer than 3 points or a constant series).
    """
    rows = []
    groups = [(d, m, g) for (d, m), g in points.groupby(["dataset", "method"], sort=True)]
    groups += [(d, "all", g) for d, g in points.groupby("dataset", sort=True)]
    for d, m, g in groups:
        x, y = g["stack_value"].to_numpy(float), g["hdr_value"].to_numpy(float)
        row = {"dataset": d, "method": m, "n": int(x.size)}
        if x.size >= 3:
            rng = np.random.default_rng(seed)
            row["pearson_r"] = _pearson(x, y)
            row["pearson_lo"], row["pearson_hi"] = _bootstrap_ci(x, y, _pearson, n_boot, rng)
            row["spearman_rho"] = _spearman(x, y)
            row["spearman_lo"], row["spearman_hi"] = _bootstrap_ci(x, y, _spearman, n_boot, rng)
        rows.append(row)
    cols = ["dataset", "method", "n", "pearson_r", "pearson_lo", "pearson_hi", "spearman_rho", "spearman_lo",
            "spearman_hi"]
    return pd.DataFrame(rows).reindex(columns=cols)

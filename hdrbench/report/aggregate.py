"""Per-image reduction and group statistics that count failures instead of dropping them.

Conventions (stated once, used by every table):

* A row *fails* when its ``error`` field is set or its ``value`` is NaN. ``+inf`` is a result, not a
  failure: PSNR of two identical images is infinite (the ``gt-stack`` bound), and a group containing it
  has an infinite mean and an undefined (NaN) std.
* ``n_images`` counts the scenes with a valid value in the group; ``n_failed`` the scenes whose value
  failed. A scene is counted once per group.
* ``mean`` and ``std`` are over scenes; ``std`` is the sample standard deviation (ddof = 1, as
  "m ± σ" over test images in the paper's tables), NaN for a single image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

SCENE_KEYS = ("method", "dataset", "split", "scene")


def failed(df: pd.DataFrame) -> pd.Series:
    """Boolean mask of rows that failed (error set or NaN value)."""
    return (df["error"].astype(str) != "") | np.isnan(df["value"].to_numpy(dtype=float))


def per_image(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Reduce rows to one value per scene and ``keys`` (mean over the remaining rows, e.g. over EVs).

    A scene whose rows include a failure is a failed image (value NaN, ``failed`` True): averaging
    over the surviving EVs would silently compare methods on different data.
    """
    keys = list(dict.fromkeys([*SCENE_KEYS, *keys]))
    work = df.assign(_failed=failed(df))
    grouped = work.groupby(keys, sort=True, dropna=False)
    out = grouped.agg(value=("value", "mean"), failed=("_failed", "any")).reset_index()
    out.loc[out["failed"], "value"] = np.nan
    return out


def summarize(images: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, std, n_images and n_failed of per-image values grouped by ``by``."""
    rows = []
    for key, grp in images.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ok = grp.loc[~grp["failed"], "value"].to_numpy(dtype=float)
        rows.append(
            {
                **dict(zip(by, key)),
                "mean": float(ok.mean()) if ok.size else np.nan,
                "std": float(ok.std(ddof=1)) if ok.size > 1 and np.isfinite(ok).all() else np.nan,
                "n_images": int(ok.size),
                "n_failed": int(grp["failed"].sum()),
            }
        )
    cols = [*by, "mean", "std", "n_images", "n_failed"]
    return pd.DataFrame(rows, columns=cols)

"""Leaderboards: one CSV per dataset, ``<results>/leaderboard-<dataset slug>.csv``, aggregated per run.

``<results>`` is the user's results folder (:func:`hdrbench.paths.results_dir`); the committed ``results/`` of
the repository is written only on ``--publish``.

Each evaluation adds one block of rows keyed by its ``run_id``: per method x protocol x target x EV x
metric, the mean and the sample standard deviation (ddof = 1, "mean ± std over test images" as in the
paper's tables and in ``hdrbench tables``) over the valid values, ``n_images`` (images with a valid value)
and ``n_failed`` (failed rows: ``error`` set, or a NaN value). Failed rows are left out of the mean and
counted, never dropped silently; the conventions are those of :mod:`hdrbench.report.aggregate`.

Partial and provisional results. ``caveat`` is empty for a full evaluation of a finished model; otherwise it
says why the block is not one (``partial: 2 of 8 scenes`` for a ``limit`` run, ``incomplete checkpoint:
iteration 3 of 8``, ``fallback checkpoint: checkpoint.prev.pt``). The text view marks such blocks and never
lets one shadow a full evaluation as a method's latest entry. Files written before the column existed are
read with an empty caveat and rewritten with the column on their next update.

Concurrency and crashes. An update takes a ``filelock.FileLock`` on a lock file in the cache folder named after
the leaderboard's path (:func:`hdrbench.paths.lock_path`, so no lock file is left beside results), reads the current file,
replaces the rows of its own ``run_id`` (so re-writing one run is idempotent), writes the whole table to a
temporary file in the same folder, fsyncs and ``os.replace``-s it over the leaderboard. Two concurrent
runs therefore serialise and both blocks survive; a process killed at any moment leaves either the old or
the new file, never a mix (an orphaned temporary file is removed by the next update).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable

import numpy as np
from filelock import FileLock

from hdrbench.atomic import atomic_open
from hdrbench.data.base import dataset_slug
from hdrbench.errors import InputError
from hdrbench.paths import lock_path, results_dir

#: Columns that identify one aggregate (one leaderboard row).
GROUP_KEYS: tuple[str, ...] = (
    "run_id", "method", "recipe_hash", "dataset", "split", "resolution", "protocol", "protocol_version", "target",
    "ev", "metric", "metric_version",
)
#: Column order of a leaderboard CSV.
LEADERBOARD_COLUMNS: tuple[str, ...] = GROUP_KEYS + (
    "mean", "std", "n_images", "n_failed", "seed", "hdrbench_version", "torch_version", "timestamp", "caveat",
)
#: The column order before ``caveat`` was added (still read; rows get an empty caveat).
_COLUMNS_WITHOUT_CAVEAT: tuple[str, ...] = LEADERBOARD_COLUMNS[:-1]
LOCK_TIMEOUT_S = 600.0


def leaderboard_path(dataset: str, results: str | Path | None = None) -> Path:
    """``<results>/leaderboard-<dataset slug>.csv``."""
    return Path(results or results_dir()) / f"leaderboard-{dataset_slug(dataset)}.csv"


def _ev_key(ev) -> str:
    ev = float(ev)
    return "" if math.isnan(ev) else f"{ev:g}"


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x == math.inf else ("-inf" if x == -math.inf else repr(float(x))))


def aggregate(records: Iterable[dict], caveat: str = "") -> list[dict]:
    """Aggregate record dicts into leaderboard rows (one per :data:`GROUP_KEYS` combination), in first-seen order;
    every row gets ``caveat`` (see the module docstring)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        key = tuple(_ev_key(r[k]) if k == "ev" else str(r[k]) for k in GROUP_KEYS)
        groups.setdefault(key, []).append(r)
    out = []
    for key, rows in groups.items():
        valid = [float(r["value"]) for r in rows if not r["error"] and not math.isnan(float(r["value"]))]
        failed = len(rows) - len(valid)
        vals = np.asarray(valid, dtype=np.float64)
        if len(vals) and np.isinf(vals).any():
            mean = float(np.mean(vals))  # inf (e.g. PSNR of identical images) propagates honestly
            std = math.nan
        else:
            mean = float(vals.mean()) if len(vals) else math.nan
            std = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
        first = rows[0]
        row = dict(zip(GROUP_KEYS, key))
        row.update(mean=_fmt(mean), std=_fmt(std), n_images=str(len(valid)), n_failed=str(failed),
                   seed=str(first.get("seed", "")), hdrbench_version=str(first.get("hdrbench_version", "")),
                   torch_version=str(first.get("torch_version", "")), timestamp=str(first.get("timestamp", "")),
                   caveat=str(caveat))
        out.append(row)
    return out


def read_leaderboard_file(path: str | Path) -> list[dict]:
    """Rows of a leaderboard CSV (all values as strings); [] when the file does not exist.

    Raises:
        InputError: the file exists but does not have the leaderboard columns.
    """
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            return []
        if tuple(reader.fieldnames) not in (LEADERBOARD_COLUMNS, _COLUMNS_WITHOUT_CAVEAT):
            raise InputError(f"{path}: not a leaderboard of this schema (columns {reader.fieldnames}); move it aside")
        rows = list(reader)
    for i, r in enumerate(rows):
        if None in r or any(v is None for v in r.values()):
            raise InputError(f"{path}: row {i + 2} has the wrong number of fields")
        r.setdefault("caveat", "")
    return rows


def _write_rows(fh, rows: list[dict]) -> None:
    w = csv.DictWriter(fh, fieldnames=list(LEADERBOARD_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)


def _remove_orphans(path: Path) -> None:
    # Only the lock holder writes temporaries, so any present now belong to a killed writer.
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def update_leaderboard(records: Iterable[dict], *, dataset: str, results: str | Path | None = None,
                       caveat: str = "") -> Path:
    """Merge the aggregates of ``records`` into the dataset's leaderboard, atomically and under a file lock.

    Args:
        records: record dicts (:data:`hdrbench.evaluate.records.COLUMNS`), usually one run's.
        dataset: dataset name (selects the file through its slug).
        results: results folder (default :func:`hdrbench.paths.results_dir`).
        caveat: empty for a full evaluation of a finished model, else why it is not one (module docstring).

    Returns:
        The leaderboard path.
    """
    new = aggregate(records, caveat)
    path = leaderboard_path(dataset, results)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_ids = {r["run_id"] for r in new}
    with FileLock(str(lock_path(path)), timeout=LOCK_TIMEOUT_S):
        _remove_orphans(path)
        kept = [r for r in read_leaderboard_file(path) if r["run_id"] not in run_ids]
        with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
            _write_rows(fh, kept + new)
    return path


def leaderboard_text(dataset: str, *, results: str | Path | None = None, all_runs: bool = False) -> str:
    """The leaderboard as a text table: per method and protocol (latest run unless ``all_runs``), each HDR
    metric's mean +- std, then the stack metrics averaged over the positive and the negative EVs."""
    import pandas as pd

    path = leaderboard_path(dataset, results)
    rows = read_leaderboard_file(path)
    if not rows:
        return f"no leaderboard for dataset {dataset!r} yet ({path} does not exist or is empty)"
    df = pd.DataFrame(rows)
    for c in ("mean", "std"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("n_images", "n_failed"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(int)
    df["caveat"] = df["caveat"].fillna("").astype(str)
    if not all_runs:
        # Latest run per method and protocol: an evaluation under a second protocol does not hide the first.
        # Stack rows carry no protocol, so they come from each method's latest run. A run with a caveat
        # (partial, incomplete model) is shown only when the method has no full run (sorted first, so a
        # full run is always the last).
        keys = ["method", "split", "resolution", "protocol"]
        df = df.assign(_full=df["caveat"] == "")
        latest = df.sort_values(["_full", "timestamp"], kind="stable").groupby(keys)["run_id"].last().reset_index()
        df = df.merge(latest, on=[*keys, "run_id"], how="inner").drop(columns="_full")
    out = [f"leaderboard {path}"]
    hdr = df[df["target"] == "hdr"]
    if len(hdr):
        hdr = hdr.assign(cell=[f"{m:.4g} ± {s:.3g}" + (f" ({f} failed)" if f else "")
                               for m, s, f in zip(hdr["mean"], hdr["std"], hdr["n_failed"])])
        idx = ["method", "split", "resolution", "protocol"] + (["run_id"] if all_runs else [])
        table = hdr.pivot_table(index=idx, columns="metric", values="cell", aggfunc="first")
        n = hdr.groupby(idx)["n_images"].max().rename("n")
        table = table.join(n)
        if (hdr["caveat"] != "").any():
            table = table.join(hdr.groupby(idx)["caveat"].first())
        out += ["", "HDR metrics (mean ± std over images):", table.to_string()]
    st = df[df["target"] == "stack"].copy()
    if len(st):
        st["ev"] = pd.to_numeric(st["ev"], errors="coerce")
        st["side"] = np.where(st["ev"] > 0, "EV+", "EV-")
        idx = ["method", "split", "resolution"] + (["run_id"] if all_runs else [])
        table = st.groupby(idx + ["side", "metric"])["mean"].mean().unstack(["metric", "side"])
        table.columns = [f"{m} {s}" for m, s in table.columns]
        if (st["caveat"] != "").any():
            table = table.join(st.groupby(idx)["caveat"].first())
        out += ["", "Stack metrics (mean over images, averaged over the positive / negative EVs):",
                table.sort_index(axis=1).to_string(float_format=lambda v: f"{v:.4g}")]
    return "\n".join(out)


def leaderboard_csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    _write_rows(buf, rows)
    return buf.getvalue()

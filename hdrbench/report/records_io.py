"""Reading record CSVs written by the evaluation harness, with a schema check.

A record set is any list of CSV files with the columns of :data:`hdrbench.evaluate.records.COLUMNS`
(typically ``runs/*/records.csv`` or the committed ``results/records/*.csv``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from hdrbench.errors import InputError
from hdrbench.evaluate.records import COLUMNS, TARGETS

_DTYPES = {"value": float, "ev": float}
_STR_COLUMNS = [c for c in COLUMNS if c not in ("value", "ev", "seed")]


class RecordSetError(InputError):
    """A record set is empty, malformed or mixes incompatible schemas."""


def validate_records(df: pd.DataFrame, source: str = "records") -> pd.DataFrame:
    """Check columns, targets and types; return a normalised copy.

    Raises:
        RecordSetError: naming ``source`` and what is wrong.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise RecordSetError(f"{source}: not a record file, missing columns {missing}")
    extra = [c for c in df.columns if c not in COLUMNS]
    if extra:
        raise RecordSetError(f"{source}: unexpected columns {extra}")
    out = df[list(COLUMNS)].copy()
    bad_target = sorted(set(out["target"].astype(str)) - set(TARGETS))
    if bad_target:
        raise RecordSetError(f"{source}: unknown target(s) {bad_target}; expected one of {TARGETS}")
    for col in _STR_COLUMNS:
        out[col] = out[col].fillna("").astype(str)
    for col in ("value", "ev"):
        # Older writers spelled missing numbers "nan"; the current one writes an empty field.
        out[col] = out[col].replace({"nan": np.nan, "NaN": np.nan, "": np.nan})
    try:
        out["value"] = pd.to_numeric(out["value"], errors="raise").astype(float)
        out["ev"] = pd.to_numeric(out["ev"], errors="raise").astype(float)
        out["seed"] = pd.to_numeric(out["seed"], errors="raise").fillna(0).astype(int)
    except (ValueError, TypeError) as exc:
        raise RecordSetError(f"{source}: non-numeric value/ev/seed ({exc})") from None
    stack = out["target"] == "stack"
    if out.loc[stack, "ev"].isna().any():
        raise RecordSetError(f"{source}: stack records without an EV")
    return out


def _has_record_header(path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return True  # let the reader report the unreadable file
    return header == list(COLUMNS)


def read_records(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read and concatenate record CSVs.

    Args:
        paths: CSV files, or folders searched recursively for CSV files whose header is the record header
            (``runs/*/records.csv``, ``results/records/<dataset>/<method>.csv``); other CSVs in a searched
            folder (configurations, leaderboards) are ignored, while a file named explicitly must be a record file.

    Returns:
        One validated DataFrame with the record columns.

    Raises:
        RecordSetError: when no file is given or found, a file is unreadable or not a record file,
            or every file is empty.
    """
    files: list[Path] = []
    paths = [Path(p) for p in paths]
    for p in paths:
        if p.is_dir():
            files += [f for f in sorted(p.rglob("*.csv")) if _has_record_header(f)]
        elif p.is_file():
            files.append(p)
        else:
            raise RecordSetError(f"record file not found: {p}")
    if not files:
        searched = ", ".join(str(p) for p in paths) or "(no path given)"
        raise RecordSetError(f"no record files found in {searched} (a record file is a CSV whose header is the record "
                             "schema, e.g. runs/<run>/records.csv or results/records/<dataset>/<method>.records.csv)")
    frames = []
    for f in files:
        try:
            df = pd.read_csv(f, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
            raise RecordSetError(f"{f}: unreadable record file ({exc})") from None
        except pd.errors.EmptyDataError:
            raise RecordSetError(f"{f}: empty file (no header)") from None
        df = df.replace({"": np.nan}) if len(df) else df
        frames.append(validate_records(df, str(f)))
    out = pd.concat(frames, ignore_index=True)
    if out.empty:
        raise RecordSetError(f"the record set ({len(files)} file(s)) holds no rows")
    return out

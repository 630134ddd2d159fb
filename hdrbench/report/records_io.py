"""Reading record CSVs written by the evaluation harness, with a schema check.

A record set is any list of CSV files with the columns of :data:`hdrbench.evaluate.records.COLUMNS`
(typically ``runs/*/records.csv`` or the committed ``results/records/*.csv``).

Every record file is checked line by line before it is used (:func:`check_record_file`): a wrong header,
a row with the wrong number of fields, a file cut in the middle of a row, an unknown ``schema_version``,
an unknown target, and a value that is not a valid result (a missing or NaN value on a row without an
``error``, -inf anywhere, +inf for a metric that cannot be infinite) are errors naming the file, the line
and the reason. +inf is a valid result of the PSNR-type metrics (identical images), spelled ``inf`` as
the harness writes it; a failed row (``error`` set) has an empty value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import csv
import math

import numpy as np
import pandas as pd

from hdrbench.errors import InputError
from hdrbench.evaluate.records import COLUMNS, SCHEMA_VERSION, TARGETS

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


def _looks_like_record_file(path: Path) -> bool:
    """Whether a CSV found in a searched folder is meant to be a record file (and so must pass the check):
    named ``records.csv`` or ``*.records.csv`` (what the harness writes), or with a header that starts like
    the record header. Other CSVs (leaderboards, tables, configurations) are not record files."""
    if path.name == "records.csv" or path.name.endswith(".records.csv"):
        return True
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            first = fh.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return first[:1] == [COLUMNS[0]]


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _may_be_infinite(metric: str) -> bool:
    """PSNR-type metrics are +inf for identical images (``psnr``, ``pu21-psnr``); no other metric can be."""
    return metric.endswith("psnr")


def check_record_file(path: str | Path) -> None:
    """Check a record CSV line by line (see the module docstring for what is checked).

    Raises:
        RecordSetError: ``<path>, line <n>: <reason>`` for the first problem found.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordSetError(f"{path}: unreadable record file ({exc})") from None
    if not text.strip():
        raise RecordSetError(f"{path}: empty file (no header)")
    if not text.endswith("\n"):
        n = text.count("\n") + 1
        raise RecordSetError(f"{path}, line {n}: the file ends in the middle of a row (cut short?); a record file "
                             "ends with a line break")
    reader = csv.reader(text.splitlines(keepends=True))
    header = next(reader)
    if header != list(COLUMNS):
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS]
        what = (f"missing columns {missing}" if missing else "") + ("; " if missing and extra else "") + (
            f"unexpected columns {extra}" if extra else "")
        raise RecordSetError(f"{path}, line 1: not a record file of schema {SCHEMA_VERSION}: "
                             f"{what or 'columns out of order'} (expected {list(COLUMNS)})")
    col = {c: i for i, c in enumerate(COLUMNS)}
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if not row:
            continue
        if len(row) != len(COLUMNS):
            raise RecordSetError(f"{where}: {len(row)} fields, expected {len(COLUMNS)} (a row cut short or "
                                 "a stray comma)")
        get = lambda c: row[col[c]]  # noqa: E731
        if get("schema_version") != SCHEMA_VERSION:
            raise RecordSetError(f"{where}: schema_version {get('schema_version')!r} is not one this hdrbench "
                                 f"reads ({SCHEMA_VERSION!r})")
        if get("target") not in TARGETS:
            raise RecordSetError(f"{where}: unknown target {get('target')!r}; expected one of {TARGETS}")
        metric, raw, error = get("metric"), get("value").strip(), get("error")
        if not metric:
            raise RecordSetError(f"{where}: empty metric")
        if raw == "":
            if not error:
                raise RecordSetError(f"{where}: {metric} has no value and no error (a failed row says why in "
                                     "'error')")
        else:
            value = _parse_float(raw)
            if value is None:
                raise RecordSetError(f"{where}: value {raw!r} of {metric} is not a number")
            if math.isnan(value) and not error:
                raise RecordSetError(f"{where}: value NaN of {metric} on a row without an error")
            if value == -math.inf or (value == math.inf and not _may_be_infinite(metric)):
                raise RecordSetError(f"{where}: value {raw!r} is not a possible {metric} result")
        ev = get("ev").strip()
        if get("target") == "stack":
            ev_value = _parse_float(ev)
            if ev_value is None or not math.isfinite(ev_value):
                raise RecordSetError(f"{where}: stack record without a finite EV (ev {ev!r})")
        elif ev not in ("", "nan", "NaN"):
            raise RecordSetError(f"{where}: hdr record with an EV ({ev!r}); hdr rows leave ev empty")
        try:
            int(get("seed"))
        except ValueError:
            raise RecordSetError(f"{where}: seed {get('seed')!r} is not an integer") from None


def read_records(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read and concatenate record CSVs.

    Args:
        paths: CSV files, or folders searched recursively for record files (``records.csv``,
            ``*.records.csv``, or a CSV whose header starts with ``schema_version``); other CSVs in a searched
            folder (leaderboards, tables) are ignored. Every record file, given or found, must pass
            :func:`check_record_file`: a malformed one is an error naming it, never silently skipped.

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
            files += [f for f in sorted(p.rglob("*.csv")) if _looks_like_record_file(f)]
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
        check_record_file(f)
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

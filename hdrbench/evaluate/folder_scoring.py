"""Score a folder of test HDR images against a folder of references matched by name (``hdrbench score`` folder mode).

* Matching: files with a readable image extension are matched by their name without the extension
  (``scene1.hdr`` in the test folder with ``scene1.exr`` in the reference folder). A name without a partner in
  the other folder, or a name present twice in one folder (``a.hdr`` and ``a.exr``), is an error that names the
  files, raised before anything is scored.
* Rows: one per matched pair, in name order. A pair that cannot be scored (size mismatch, unreadable or
  display-referred file, all-zero image...) gets a row whose ``error`` says why; the other pairs are scored.
* Batching: pairs are read one by one and collected per image size; a size's pairs are scored together
  (:func:`hdrbench.metrics.batch.score_pairs`) when they fill one batch of the memory budget
  (:func:`hdrbench.metrics.batch.batch_capacity`, the rule ``score_pairs`` cuts batches by, with no cap on the
  count), and the rest at the end, so at most one budget's worth of images is held per size (one pair when a
  single pair is over the budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from hdrbench.errors import HdrbenchError, InputError

#: Columns of the CSV, before one column per metric.
BASE_COLUMNS = ("name", "test", "reference", "width", "height", "ppd")


@dataclass
class PairRow:
    """One scored (or failed) pair."""

    name: str
    test: str
    reference: str
    width: int | None = None
    height: int | None = None
    ppd: float | None = None
    metrics: dict = field(default_factory=dict)
    error: str = ""


def _image_files(folder: Path, option: str) -> dict[str, Path]:
    from hdrbench.imaging.io import READ_FORMATS

    if not folder.is_dir():
        raise InputError(f"{option} {folder}: not a folder")
    found: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in READ_FORMATS and not p.name.startswith("."):
            found.setdefault(p.stem, []).append(p)
    dup = {k: v for k, v in found.items() if len(v) > 1}
    if dup:
        first = next(iter(dup.values()))
        raise InputError(f"{option} {folder}: the name {first[0].stem!r} is ambiguous ({', '.join(p.name for p in first)});"
                         " keep one file per name")
    if not found:
        raise InputError(f"{option} {folder}: no image files ({', '.join(READ_FORMATS)})")
    return {k: v[0] for k, v in found.items()}


def match_folders(test_dir: str | Path, ref_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """[(name, test file, reference file)] for the two folders, matched by file name without extension.

    Raises:
        InputError: a folder is missing or empty, a name is ambiguous, or a file has no partner (named).
    """
    tests = _image_files(Path(test_dir), "--test")
    refs = _image_files(Path(ref_dir), "--reference")
    only_t = sorted(set(tests) - set(refs))
    only_r = sorted(set(refs) - set(tests))
    if only_t or only_r:
        parts = []
        if only_t:
            parts.append(f"test image(s) without a reference in {ref_dir}: " + ", ".join(tests[k].name for k in only_t))
        if only_r:
            parts.append(f"reference image(s) without a test image in {test_dir}: " + ", ".join(refs[k].name for k in only_r))
        raise InputError("score: " + "; ".join(parts) + " (files are matched by name without the extension)")
    return [(k, tests[k], refs[k]) for k in sorted(tests)]


def score_folders(
    test_dir: str | Path,
    ref_dir: str | Path,
    *,
    protocol,
    metrics: Sequence[str],
    ppd: float | None = None,
    color_encoding: str = "rgb-bt.709",
    allow_small_window: bool = False,
    max_bytes: int | None = None,
    memory_limit: tuple[int | None, str] = (None, "no known limit"),
    progress: Callable[[int], None] | None = None,
) -> list[PairRow]:
    """Score every matched pair (see the module docstring); returns one :class:`PairRow` per pair, by name.

    Args:
        protocol, metrics, ppd, color_encoding, allow_small_window: as for ``compute_hdr_metrics``.
        max_bytes: memory budget per batch (None: one batch per size).
        memory_limit: (bytes, description) a single pair must fit (see :func:`hdrbench.metrics.batch.check_memory`);
            a pair over it gets an error row without being scored.
        progress: called with the number of pairs finished (read failures and refusals included).
    """
    import torch

    from hdrbench.data.base import to_chw
    from hdrbench.imaging.io import read_image
    from hdrbench.metrics.batch import batch_capacity, check_memory, score_pairs
    from hdrbench.metrics.pu21 import rgb_to_luminance

    names = list(metrics)
    rows: list[PairRow] = []
    pending: dict[tuple, list[tuple[PairRow, torch.Tensor, torch.Tensor]]] = {}

    def done(n: int) -> None:
        if progress is not None:
            progress(n)

    def flush(key: tuple) -> None:
        items = pending.pop(key, [])
        if not items:
            return
        res = score_pairs([(t, r) for _, t, r in items], protocol=protocol, metrics=names, ppd=ppd,
                          color_encoding=color_encoding, allow_small_window=allow_small_window, max_bytes=max_bytes,
                          on_done=done)
        for (row, _, _), out in zip(items, res):
            row.metrics, row.ppd, row.error = out["metrics"], out["ppd"], out["error"]

    for name, tp, rp in match_folders(test_dir, ref_dir):
        row = PairRow(name, str(tp), str(rp))
        rows.append(row)
        try:
            ti, ri = read_image(tp), read_image(rp)
            if ti.encoding != "linear" or ri.encoding != "linear":
                raise InputError(f"{tp.name} is {ti.encoding} ({ti.format}), {rp.name} is {ri.encoding} ({ri.format});"
                                 " folder mode scores linear HDR files (.hdr, .exr, .pfm)")
            (th, tw), (rh, rw) = ti.data.shape[:2], ri.data.shape[:2]
            row.width, row.height = tw, th
            if (th, tw) != (rh, rw):
                raise InputError(f"size mismatch: test {tp.name} is {tw}x{th}, reference {rp.name} is {rw}x{rh}"
                                 " (width x height)")
            check_memory(f"{tp.name}", names, th, tw, torch.float64, memory_limit)
            t = to_chw(ti.data)[None].double()
            r = to_chw(ri.data)[None].double()
            del ti, ri
            if color_encoding == "luminance":
                t, r = rgb_to_luminance(t), rgb_to_luminance(r)
        except HdrbenchError as exc:
            row.metrics = {m: math.nan for m in names}
            row.error = str(exc)
            done(1)
            continue
        key = tuple(t.shape)
        pending.setdefault(key, []).append((row, t, r))
        if len(pending[key]) >= batch_capacity(names, key[-2], key[-1], t.dtype, max_bytes):
            flush(key)
    for key in list(pending):
        flush(key)
    return rows


def rows_to_records(rows: Sequence[PairRow], metrics: Sequence[str]) -> list[dict]:
    """Flat dicts (one per pair) with :data:`BASE_COLUMNS`, one key per metric and ``error``."""
    out = []
    for r in rows:
        d = {"name": r.name, "test": r.test, "reference": r.reference, "width": r.width, "height": r.height,
             "ppd": r.ppd}
        for m in metrics:
            d[m] = r.metrics.get(m, math.nan)
        d["error"] = r.error
        out.append(d)
    return out


def write_rows(path: str | Path, records: Sequence[dict], columns: Sequence[str], meta: dict) -> None:
    """Write records as CSV (``.csv``) or JSON (``.json``: ``{"meta": ..., "rows": [...]}``), atomically."""
    import csv
    import io
    import json

    from hdrbench.atomic import atomic_write_text

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        for rec in records:
            w.writerow({k: ("" if v is None else (repr(v) if isinstance(v, float) and math.isfinite(v) else v))
                        for k, v in rec.items()})
        atomic_write_text(path, buf.getvalue())
    elif suffix == ".json":
        def clean(v):
            return v if not isinstance(v, float) or math.isfinite(v) else str(v)

        data = {"meta": meta, "rows": [{k: clean(v) for k, v in rec.items()} for rec in records]}
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    else:
        raise InputError(f"--out {path}: unsupported extension {path.suffix!r} (use .csv or .json)")

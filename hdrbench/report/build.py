"""``hdrbench tables``: regenerate every table and figure from record files, and the index page.

Outputs under ``out`` (default ``results/``):

* ``tables/<name>.csv`` (machines; byte-identical when regenerated from the same records),
  ``tables/<name>.md`` and ``tables/<name>.tex`` (people);
* ``figures/correlation-<dataset>.png|pdf``;
* ``README.md``: the index, with the command that regenerates everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from hdrbench.atomic import atomic_write_text
from hdrbench.errors import InputError
from hdrbench.report import correlation, figures, formats, tables
from hdrbench.report.records_io import read_records

TABLE_CAPTIONS = {
    "stack_table": "Stack reconstruction (paper Table 2): relative EV+1 / EV-1, mean ± std over images.",
    "ablation_table": "Ablation ladder (paper Table 3): HDR-VDP-2 Q and stack PSNR per step, with increments.",
    "main_comparison": "Every method x dataset x HDR metric, per protocol.",
    "protocol_sensitivity": "Rank of each method under HDR-VDP-2 per protocol (1 = best).",
    "correlation_stats": "Correlation of per-image stack PSNR with HDR-VDP-2 Q (paper Fig. 5), 95 % bootstrap CIs.",
    "failure_counts": "Rows and failed rows per method, dataset and target.",
}


#: Captions of outputs written by ``hdrbench report`` / ``hdrbench calibrate --study`` (by file-name prefix).
OTHER_CAPTIONS = {
    "crf_study": "CRF consistency (paper Fig. 3): inverse CRFs per scene and estimator, spread sigma across scenes",
    "qualitative": "Qualitative grid (paper Figs. 6-7): Reinhard tone-mapped outputs, HDR-VDP-2 Q and P_map",
    "correlation": "Correlation scatter (paper Fig. 5)",
    "correlation_points": "Correlation study: per-image points",
}


def _caption(name: str) -> str:
    """Caption of ``tables/<stem>`` or ``figures/<stem>``: the longest matching prefix, then the stem itself."""
    stem = name.split("/", 1)[1]
    if stem in TABLE_CAPTIONS:
        return TABLE_CAPTIONS[stem]
    for prefix in sorted(OTHER_CAPTIONS, key=len, reverse=True):
        if stem.startswith(prefix):
            return f"{OTHER_CAPTIONS[prefix]} ({stem})"
    return stem


def slug(text: str) -> str:
    """File-name-safe form of a dataset name: :func:`hdrbench.data.base.dataset_slug`, the one function that
    also names leaderboards, published records and run folders."""
    from hdrbench.data.base import dataset_slug

    return dataset_slug(text)


def write_table(df: pd.DataFrame, out: Path, name: str) -> list[Path]:
    """Write ``df`` as CSV, Markdown and LaTeX under ``out/tables``."""
    base = out / "tables" / name
    atomic_write_text(base.with_suffix(".csv"), formats.to_csv_text(df))
    caption = TABLE_CAPTIONS.get(name, name)
    atomic_write_text(base.with_suffix(".md"), f"{caption}\n\n" + formats.to_markdown(df))
    atomic_write_text(base.with_suffix(".tex"), formats.to_latex(df, caption=caption))
    return [base.with_suffix(s) for s in (".csv", ".md", ".tex")]


def build_tables(record_paths: Sequence[str | Path], out: str | Path, *, protocol: str = "singlehdr",
                 command: str | None = None, figures_on: bool = True) -> dict[str, list[Path]]:
    """Regenerate every table (and the correlation figure) from ``record_paths`` into ``out``.

    Returns:
        Output name -> written files.

    Raises:
        RecordSetError / InputError: for an empty, unreadable or mismatched record set.
        UnknownNameError: ``protocol`` is neither in the records nor a registered protocol.
    """
    out = Path(out)
    df = read_records(record_paths)
    if protocol not in set(df["protocol"]):
        from hdrbench.metrics.protocols import get_protocol

        get_protocol(protocol)  # a misspelt name fails here (did-you-mean) instead of silently skipping the study
    written: dict[str, list[Path]] = {}
    written["stack_table"] = write_table(tables.stack_table(df), out, "stack_table")
    written["ablation_table"] = write_table(tables.ablation_table(df), out, "ablation_table")
    written["main_comparison"] = write_table(tables.main_table(df), out, "main_comparison")
    written["protocol_sensitivity"] = write_table(tables.protocol_sensitivity(df), out, "protocol_sensitivity")
    written["failure_counts"] = write_table(tables.failure_counts(df), out, "failure_counts")
    try:
        points = correlation.study_points(df, protocol=protocol)
    except InputError:
        points = None
    if points is not None and not points.empty:
        stats = correlation.correlation_stats(points)
        atomic_write_text(out / "tables" / "correlation_points.csv", formats.to_csv_text(points))
        written["correlation_stats"] = write_table(stats, out, "correlation_stats")
        if figures_on:
            for dataset in sorted(points["dataset"].unique()):
                fig, _ = figures.correlation_scatter(points, stats, dataset=dataset, protocol=protocol)
                written[f"correlation-{slug(dataset)}"] = figures.save_figure(
                    fig, out / "figures" / f"correlation-{slug(dataset)}"
                )
    write_index(out, command or f"hdrbench tables --records {' '.join(map(str, record_paths))} --out {out}")
    return written


def write_index(out: Path, command: str) -> Path:
    """The index page linking every table and figure under ``out``, with the command that regenerates them.

    The folders are scanned rather than told what was written, so outputs of ``hdrbench report`` (CRF study,
    qualitative grids) written after the tables are listed too.
    """
    lines = ["# hdrbench results", "", "Regenerate every table and figure below from the committed records with:", "",
             "```bash", command, "```", ""]
    extra = out / "INDEX-NOTES.md"
    if extra.is_file():
        lines += [extra.read_text(encoding="utf-8").rstrip(), ""]
    lines += ["| output | files |", "|---|---|"]
    outputs: dict[str, list[Path]] = {}
    for sub in ("tables", "figures"):
        for p in sorted((out / sub).glob("*")) if (out / sub).is_dir() else []:
            if p.is_file() and p.suffix in (".csv", ".md", ".tex", ".png", ".pdf"):
                outputs.setdefault(f"{sub}/{p.stem}", []).append(p)
    for name, paths in outputs.items():
        links = ", ".join(f"[{p.suffix.lstrip('.')}]({p.relative_to(out).as_posix()})" for p in paths)
        lines.append(f"| {_caption(name)} | {links} |")
    path = out / "README.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path

"""Outputs of ``hdrbench validate-metrics``: the checks CSV, the per-strength scores, a Markdown report, a figure.

Files written into the output folder (all atomically):

* ``metric_validity.csv``: one row per (dataset, protocol, metric, distortion, kind) with exactly the columns
  ``dataset, protocol, metric, distortion, kind, spearman, pair_accuracy, max_abs_change, passed`` (kind
  ``detect``, ``invariance`` or ``rank``; a rank row's ``pair_accuracy`` is the fraction of scenes on which the
  untrained network scores worse than ``exposure-scaling``);
* ``metric_validity_scores.csv``: every score, ``dataset, protocol, metric, distortion, kind, strength, scene,
  score`` (invariance rows include the base image at the distortion's identity strength; the rank check's bound
  is kind ``bound``, distortion ``exposure-scaling``, strength empty);
* ``metric_validity.md``: the pass/fail matrix (protocol x metric rows, distortion columns, then the rank check's
  column "untrained < exposure-scaling") and every failure;
* ``metric_validity.json``: the run's facts (scenes, protocol versions and claims, metric versions, seed, torch
  version and thread count);
* ``metric_validity.png`` / ``.pdf``: the mean score over scenes against strength, one panel per distortion
  (columns) and metric (rows), one line per protocol.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from hdrbench.atomic import atomic_write_text
from hdrbench.evaluate.metric_validity import (
    BOUND_KIND, BOUND_METHOD, INVARIANCE_BASE, INVARIANCE_RTOL, NETWORK_DISTORTION, NETWORK_WEIGHTS, RANK_KIND,
    RANK_THRESHOLD, SPEARMAN_THRESHOLD, SUMMARY_COLUMNS, ValidityResult, rank_scene_counts,
)
from hdrbench.metrics import distortions as dist
from hdrbench.metrics.registry import get_metric
from hdrbench.report import formats

NAMES = {
    "summary": "metric_validity.csv",
    "scores": "metric_validity_scores.csv",
    "markdown": "metric_validity.md",
    "info": "metric_validity.json",
    "figure": "metric_validity",
}


def _unit(distortion: str) -> str:
    if distortion == NETWORK_DISTORTION:
        return "blend weight w"
    return dist.get_distortion(distortion).unit


#: The Markdown column of the rank check.
RANK_COLUMN = f"untrained < {BOUND_METHOD}"


def _cell(row, counts: dict | None = None) -> str:
    if row.kind == RANK_KIND:
        k_n = (counts or {}).get((row.protocol, row.metric))
        value = (f"{k_n[0]}/{k_n[1]}" if k_n else
                 "n/a" if math.isnan(row.pair_accuracy) else f"{100.0 * row.pair_accuracy:.0f} %")
        return ("pass" if row.passed else "**FAIL**") + f" ({value})"
    if row.kind == "detect":
        value = "n/a" if math.isnan(row.spearman) else f"{row.spearman:+.2f}"
        return ("pass" if row.passed else "**FAIL**") + f" ({value})"
    value = "n/a" if math.isnan(row.max_abs_change) else f"{row.max_abs_change:.1e}"
    return ("inv. pass" if row.passed else "**inv. FAIL**") + f" (max {value})"


def matrix(summary: pd.DataFrame, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Protocol x metric rows, one column per distortion (in check order), cells like ``pass (-1.00)``; rank checks
    in a last column :data:`RANK_COLUMN`, cells like ``pass (8/8)`` (scene counts from ``scores``, else the
    percentage of scenes)."""
    rank = summary["kind"] == RANK_KIND
    order = list(dict.fromkeys(summary.loc[~rank, "distortion"])) + ([RANK_COLUMN] if rank.any() else [])
    counts = rank_scene_counts(scores) if scores is not None and rank.any() else {}
    rows = []
    for (protocol, metric), g in summary.groupby(["protocol", "metric"], sort=False):
        row = {"protocol": protocol, "metric": metric}
        for r in g.itertuples(index=False):
            row[RANK_COLUMN if r.kind == RANK_KIND else r.distortion] = _cell(r, counts)
        rows.append(row)
    return pd.DataFrame(rows, columns=["protocol", "metric", *order]).fillna("–")


def markdown(result: ValidityResult, failures: list[str]) -> str:
    """The Markdown report of one run."""
    s = result.summary
    info = result.info
    n_pass, n_all = int(s["passed"].astype(bool).sum()), len(s)
    net = info.get("network")
    lines = [
        f"# Metric validity: {info.get('dataset')} ({info.get('split')}, {len(info.get('scenes', []))} scenes)",
        "",
        *([f"`{info['command']}`", ""] if info.get("command") else []),
        f"{n_pass} of {n_all} checks pass. Cells: detect checks show Spearman's rho between strength and the mean"
        f" score over scenes (pass: <= -{SPEARMAN_THRESHOLD} where higher is better, >= {SPEARMAN_THRESHOLD} where"
        " lower is better; n/a = a constant curve, e.g. a saturated score); invariance checks ('inv.') show the"
        f" largest |score change| (pass: every change <= {INVARIANCE_RTOL:g} x max(1, |score|)), measured on top of"
        f" {INVARIANCE_BASE[0]} at strength {INVARIANCE_BASE[1]:g}.",
        "",
        _rank_sentence(result),
        "",
        formats.to_markdown(matrix(s, result.scores)),
        "",
        "Strengths:",
        "",
    ]
    for d in dict.fromkeys(s["distortion"]):
        if d == NETWORK_DISTORTION:
            strengths = NETWORK_WEIGHTS
            what = ("reference blended towards the merged HDR of the untrained proposed networks"
                    + (f" (recipe {net['recipe']}, preset {net['preset']}, seed {net['seed']})" if net else ""))
        else:
            card = dist.get_distortion(d)
            strengths, what = card.strengths, card.description
        lines.append(f"* `{d}` ({_unit(d)}: {', '.join(f'{v:g}' for v in strengths)}): {what}.")
    lines += ["", "Protocol claims:", ""]
    for name, p in info.get("protocols", {}).items():
        claims = ", ".join(p["invariances"]) or "none"
        lines.append(f"* `{name}` v{p['version']}: invariant to {claims}.")
    lines += ["", "Failed checks:" if failures else "Failed checks: none.", ""]
    lines += [f"* {f}" for f in failures]
    return "\n".join(lines) + "\n"


def _rank_sentence(result: ValidityResult) -> str:
    """What the rank column means, or why it is absent."""
    if result.info.get("network") is None:
        return (f"Rank check ({RANK_COLUMN}): skipped, the untrained network was left out (--network-preset"
                " none).")
    return (f"Rank check ('{RANK_COLUMN}'): scenes on which the untrained network's score (w = 1) is worse than"
            f" that of the training-free `{BOUND_METHOD}` (reference inverse CRF, merged with its own curve, scored"
            f" as `hdrbench evaluate` scores it under the protocol) / all scenes; pass: >="
            f" {100.0 * RANK_THRESHOLD:g} % of the scenes.")


def figure(scores: pd.DataFrame, *, dataset: str):
    """Mean score over scenes against strength: rows = metrics, columns = distortions, lines = protocols."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = scores[scores["kind"] != BOUND_KIND]  # the rank check's bound has no strength axis
    distortions = list(dict.fromkeys(scores["distortion"]))
    metrics = list(dict.fromkeys(scores["metric"]))
    protocols = list(dict.fromkeys(scores["protocol"]))
    fig, axes = plt.subplots(len(metrics), len(distortions), figsize=(2.2 * len(distortions), 1.9 * len(metrics)),
                             squeeze=False, sharex="col")
    colours = plt.get_cmap("tab10")
    mean = scores.groupby(["protocol", "metric", "distortion", "strength"])["score"].mean().sort_index()
    for i, m in enumerate(metrics):
        for j, d in enumerate(distortions):
            ax = axes[i][j]
            drawn = 0
            for k, p in enumerate(protocols):
                try:
                    curve = mean.loc[(p, m, d)].sort_index()
                except KeyError:
                    continue
                # Later protocols dashed: metrics that ignore the protocol draw identical curves on top.
                ax.plot(curve.index, curve.to_numpy(), marker="o", ms=3, lw=1.2, color=colours(k), label=p,
                        ls="-" if k == 0 else (0, (4, 2 + k)))
                drawn += 1
            if not drawn:
                ax.set_axis_off()  # e.g. an invariance for a metric the protocol is not applied to
                continue
            ax.yaxis.get_major_formatter().set_useOffset(False)
            if d == "global-scale":
                ax.set_xscale("log", base=2)
            if i == 0:
                ax.set_title(d, fontsize=8)
            if i == len(metrics) - 1:
                ax.set_xlabel(_unit(d), fontsize=7)
            if j == 0:
                arrow = "higher better" if get_metric(m).higher_is_better else "lower better"
                ax.set_ylabel(f"{m}\n({arrow})", fontsize=7)
            ax.tick_params(labelsize=6)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(f"{dataset}: mean score over scenes against distortion strength (one line per protocol)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(protocols), fontsize=8, frameon=False)
    return fig


def write(result: ValidityResult, out: str | Path, failures: list[str]) -> list[Path]:
    """Write every output of one run into ``out`` (created if needed); returns the paths written."""
    from hdrbench.report.figures import save_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary[list(SUMMARY_COLUMNS)]
    paths = []
    for key, text in (
        # %.6g: the invariance changes are tiny numbers that fixed decimals would print as 0.
        ("summary", summary.to_csv(index=False, float_format="%.6g", lineterminator="\n")),
        ("scores", formats.to_csv_text(result.scores)),
        ("markdown", markdown(result, failures)),
        ("info", json.dumps(result.info, indent=2, sort_keys=True) + "\n"),
    ):
        path = out / NAMES[key]
        atomic_write_text(path, text)
        paths.append(path)
    paths += save_figure(figure(result.scores, dataset=str(result.info.get("dataset"))), out / NAMES["figure"])
    return paths


__all__ = ["NAMES", "RANK_COLUMN", "figure", "markdown", "matrix", "write"]

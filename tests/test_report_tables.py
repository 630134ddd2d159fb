"""Tables, correlation study and figures regenerated from records (issue: paper tables and studies)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hdrbench.evaluate.records import COLUMNS, Record
from hdrbench.report import correlation, formats, tables
from hdrbench.report.build import build_tables
from hdrbench.report.records_io import RecordSetError, read_records

EVS = (-3, -2, -1, 1, 2, 3)


def _records(rng: np.random.Generator, methods=("ladder-1-unet", "ladder-2-recurrent"), scenes=6,
             protocols=("singlehdr", "display")) -> list[Record]:
    rows = []
    for mi, m in enumerate(methods):
        for s in range(scenes):
            scene = f"s{s:02d}"
            base = dict(run_id="r", method=m, dataset="synthetic", split="test", scene=scene)
            for ev in EVS:
                for metric, val in (("psnr", 25 + 2 * mi + rng.normal()), ("ssim", 0.9 + 0.01 * mi),
                                    ("ms-ssim", 0.95)):
                    rows.append(Record(**base, target="stack", ev=float(ev), metric=metric, value=float(val)))
            for p in protocols:
                q = 50 + 3 * mi + s + (5 if p == "display" and mi == 0 else 0)
                rows.append(Record(**base, target="hdr", metric="hdrvdp2", value=float(q), protocol=p,
                                   protocol_version="1"))
    return rows


def _write(rows: list[Record], path) -> None:
    pd.DataFrame([r.as_row() for r in rows], columns=list(COLUMNS)).to_csv(path, index=False)


def test_stack_table_means_per_direction(tmp_path):
    rows = _records(np.random.default_rng(0))
    _write(rows, tmp_path / "records.csv")
    df = read_records([tmp_path / "records.csv"])
    t = tables.stack_table(df, with_reported=False)
    got = t[(t.method == "ladder-1-unet") & (t.direction == "EV+1") & (t.metric == "psnr")].iloc[0]
    # Independent computation: per scene mean over EV+1..+3, then mean / sample std over scenes.
    per_scene = [np.mean([r.value for r in rows if r.method == "ladder-1-unet" and r.scene == s and r.ev > 0
                          and r.metric == "psnr"]) for s in sorted({r.scene for r in rows})]
    assert got["mean"] == pytest.approx(np.mean(per_scene), abs=1e-12)
    assert got["std"] == pytest.approx(np.std(per_scene, ddof=1), abs=1e-12)
    assert got["n_images"] == 6 and got["n_failed"] == 0
    reported = tables.stack_table(df)
    assert (reported["source"] == "reported").sum() == 12


def test_failures_and_nans_are_counted_not_dropped(tmp_path):
    rows = _records(np.random.default_rng(1))
    # scene s00 of ladder-1 fails on its HDR (error row); s01 has a NaN stack value at EV+2.
    for r in rows:
        if r.method == "ladder-1-unet" and r.scene == "s00" and r.target == "hdr":
            r.value, r.error = math.nan, "RuntimeError: merge failed"
        if r.method == "ladder-1-unet" and r.scene == "s01" and r.ev == 2.0 and r.metric == "psnr":
            r.value, r.error = math.nan, "metric returned NaN"  # as the harness writes a NaN metric
    _write(rows, tmp_path / "records.csv")
    df = read_records([tmp_path / "records.csv"])
    main = tables.main_table(df)
    m = main[(main.method == "ladder-1-unet") & (main.protocol == "singlehdr")].iloc[0]
    assert (m["n_images"], m["n_failed"]) == (5, 1)
    st = tables.stack_table(df, with_reported=False)
    s = st[(st.method == "ladder-1-unet") & (st.direction == "EV+1") & (st.metric == "psnr")].iloc[0]
    assert (s["n_images"], s["n_failed"]) == (5, 1)
    s_down = st[(st.method == "ladder-1-unet") & (st.direction == "EV-1") & (st.metric == "psnr")].iloc[0]
    assert (s_down["n_images"], s_down["n_failed"]) == (6, 0)


def test_ablation_increments(tmp_path):
    _write(_records(np.random.default_rng(2)), tmp_path / "records.csv")
    t = tables.ablation_table(read_records([tmp_path / "records.csv"]), protocol="singlehdr")
    ours = t[t.source == "ours"].sort_values("step")
    assert list(ours.step) == [1.0, 2.0]
    assert ours.hdrvdp2_delta.iloc[1] == pytest.approx(ours.hdrvdp2_mean.iloc[1] - ours.hdrvdp2_mean.iloc[0])
    rep = t[t.source == "reported"]
    assert rep.hdrvdp2_delta.iloc[-1] == pytest.approx(58.807 - 57.813)


def test_protocol_sensitivity_rank_moves(tmp_path):
    _write(_records(np.random.default_rng(3)), tmp_path / "records.csv")
    t = tables.protocol_sensitivity(read_records([tmp_path / "records.csv"]))
    # Under singlehdr ladder-2 is better (+3); under display ladder-1 gets +5 and overtakes it.
    r = t.set_index(["method", "protocol"])["rank"]
    assert r[("ladder-2-recurrent", "singlehdr")] == 1 and r[("ladder-1-unet", "display")] == 1
    assert set(t["rank_spread"]) == {1}


def test_correlation_matches_scipy_and_ci_brackets(tmp_path):
    from scipy import stats

    _write(_records(np.random.default_rng(4), scenes=12), tmp_path / "records.csv")
    df = read_records([tmp_path / "records.csv"])
    pts = correlation.study_points(df)
    st = correlation.correlation_stats(pts, n_boot=500)
    g = pts[pts.method == "ladder-1-unet"]
    row = st[st.method == "ladder-1-unet"].iloc[0]
    assert row.pearson_r == pytest.approx(stats.pearsonr(g.stack_value, g.hdr_value)[0], abs=1e-12)
    assert row.spearman_rho == pytest.approx(stats.spearmanr(g.stack_value, g.hdr_value)[0], abs=1e-12)
    assert row.pearson_lo <= row.pearson_r <= row.pearson_hi
    assert (st.method == "all").sum() == 1


def test_build_is_byte_identical_and_writes_figures(tmp_path):
    _write(_records(np.random.default_rng(5)), tmp_path / "records.csv")
    out1, out2 = tmp_path / "a", tmp_path / "b"
    w1 = build_tables([tmp_path / "records.csv"], out1)
    build_tables([tmp_path / "records.csv"], out2)
    for name in ("stack_table", "ablation_table", "main_comparison", "protocol_sensitivity", "correlation_stats"):
        a, b = (out1 / "tables" / f"{name}.csv").read_bytes(), (out2 / "tables" / f"{name}.csv").read_bytes()
        assert a == b, name
    assert "correlation-synthetic" in w1
    assert (out1 / "figures" / "correlation-synthetic.png").stat().st_size > 10_000
    index = (out1 / "README.md").read_text()
    assert "hdrbench tables" in index and "tables/stack_table.csv" in index


def test_correlation_figure_has_series_labels_and_units(tmp_path):
    _write(_records(np.random.default_rng(6), scenes=8), tmp_path / "records.csv")
    from hdrbench.report import figures

    df = read_records([tmp_path / "records.csv"])
    pts = correlation.study_points(df)
    fig, ax = figures.correlation_scatter(pts, correlation.correlation_stats(pts, n_boot=100), dataset="synthetic")
    assert "(dB)" in ax.get_xlabel() and "Q" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 2 and all("r=" in lab and "ρ=" in lab for lab in labels)
    assert len(ax.collections) == 2 and all(len(c.get_offsets()) == 8 for c in ax.collections)
    figures.save_figure(fig, tmp_path / "corr")
    assert (tmp_path / "corr.png").exists() and (tmp_path / "corr.pdf").exists()


def test_empty_and_mismatched_record_sets_get_clear_errors(tmp_path):
    with pytest.raises(RecordSetError, match="not found"):
        read_records([tmp_path / "nope.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordSetError, match="no record files"):
        read_records([tmp_path / "empty"])
    pd.DataFrame(columns=list(COLUMNS)).to_csv(tmp_path / "header_only.csv", index=False)
    with pytest.raises(RecordSetError, match="holds no rows"):
        read_records([tmp_path / "header_only.csv"])
    pd.DataFrame({"method": ["a"], "value": [1.0]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(RecordSetError, match="missing columns"):
        read_records([tmp_path / "other.csv"])
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(RecordSetError, match="empty file"):
        read_records([tmp_path / "blank.csv"])


def test_markdown_and_latex_render_mean_pm_std():
    df = pd.DataFrame({"method": ["a_b"], "mean": [1.23456], "std": [0.5], "n_images": [3], "n_failed": [0]})
    md = formats.to_markdown(df)
    assert "1.235 ± 0.500" in md and md.startswith("| method |")
    tex = formats.to_latex(df, caption="x")
    assert r"\toprule" in tex and r"1.235 $\pm$ 0.500" in tex and r"a\_b" in tex


def test_infinite_psnr_is_a_result_not_a_failure():
    from hdrbench.report.aggregate import per_image, summarize

    df = pd.DataFrame({
        "method": ["gt-stack"] * 2, "dataset": ["d"] * 2, "split": ["test"] * 2, "scene": ["a", "b"],
        "metric": ["psnr"] * 2, "value": [np.inf, np.inf], "error": ["", ""],
    })
    out = summarize(per_image(df, ["metric"]), ["method", "metric"])
    row = out.iloc[0]
    assert row["n_images"] == 2 and row["n_failed"] == 0
    assert row["mean"] == np.inf and np.isnan(row["std"])


def test_report_and_tables_commands_write_the_index(tmp_path, capsys):
    from hdrbench.cli import main

    path = tmp_path / "records.csv"
    _write(_records(np.random.default_rng(3)), path)
    assert main(["tables", "--records", str(path), "--out", str(tmp_path / "a"), "--no-figures"]) == 0
    assert main(["report", "--records", str(path), "--out", str(tmp_path / "b")]) == 0
    for out in ("a", "b"):
        index = (tmp_path / out / "README.md").read_text(encoding="utf-8")
        assert "tables/stack_table.csv" in index and "hdrbench tables --records" in index
    # A grid needs its three arguments together: a clear error, exit status 2.
    assert main(["report", "--records", str(path), "--out", str(tmp_path / "c"), "--grid-scenes", "x"]) == 2
    assert "--grid-runs" in capsys.readouterr().err

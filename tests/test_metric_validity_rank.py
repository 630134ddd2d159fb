"""The rank check of ``hdrbench validate-metrics``: the untrained network against ``exposure-scaling``."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hdrbench.cli import main
from hdrbench.evaluate import metric_validity as mv
from hdrbench.report.metric_validity import RANK_COLUMN, matrix

SCENES = [f"s{i}" for i in range(8)]


def _table(metric: str, net: list[float], bound: list[float]) -> list[tuple]:
    """Score rows of one (protocol, metric): the untrained network's detect curve (its w = 1 score ``net``, the
    weaker blends better by 1 per step) and the bound's score ``bound`` on each of the 8 scenes."""
    hib = {"hdrvdp2": True, "pu21-psnr": True, "hdrvdp2-pdet": False}[metric]
    rows = []
    for scene, v, b in zip(SCENES, net, bound):
        for k, w in enumerate(mv.NETWORK_WEIGHTS):
            better = (len(mv.NETWORK_WEIGHTS) - 1 - k) * (1.0 if hib else -0.01)
            rows.append(("d", "p", metric, mv.NETWORK_DISTORTION, "detect", w, scene, v + better))
        rows.append(("d", "p", metric, mv.BOUND_METHOD, mv.BOUND_KIND, math.nan, scene, b))
    return rows


def test_rank_pass_and_fail_on_hand_made_scores():
    rows = []
    # hdrvdp2 (higher is better): the network is worse on 7 scenes, better on the last: 7/8 = 87.5 % < 90 %.
    rows += _table("hdrvdp2", [40.0] * 8, [50.0] * 7 + [30.0])
    # pu21-psnr (higher is better): worse on all 8 scenes.
    rows += _table("pu21-psnr", [20.0] * 8, [25.0] * 8)
    # hdrvdp2-pdet (lower is better): under protocol q the network's P_det is higher (worse) everywhere: 8/8...
    rows += [(*r[:1], "q", *r[2:]) for r in _table("hdrvdp2-pdet", [0.9] * 8, [0.5] * 8)]
    # ...under p it is lower (better) everywhere: 0/8, although a higher-is-better reading would give 8/8.
    rows += _table("hdrvdp2-pdet", [0.5] * 8, [0.9] * 8)
    scores = pd.DataFrame(rows, columns=list(mv.SCORE_COLUMNS))
    s = mv.summarise(scores)
    rank = s[s["kind"] == mv.RANK_KIND].set_index(["protocol", "metric"])
    assert set(rank["distortion"]) == {mv.NETWORK_DISTORTION}
    assert rank["spearman"].isna().all() and rank["max_abs_change"].isna().all()
    assert rank.loc[("p", "hdrvdp2"), "pair_accuracy"] == 7 / 8 and not rank.loc[("p", "hdrvdp2"), "passed"]
    assert rank.loc[("p", "pu21-psnr"), "pair_accuracy"] == 1.0 and rank.loc[("p", "pu21-psnr"), "passed"]
    assert rank.loc[("q", "hdrvdp2-pdet"), "pair_accuracy"] == 1.0 and rank.loc[("q", "hdrvdp2-pdet"), "passed"]
    assert rank.loc[("p", "hdrvdp2-pdet"), "pair_accuracy"] == 0.0 and not rank.loc[("p", "hdrvdp2-pdet"), "passed"]
    # The bound rows are not checks of their own.
    assert mv.BOUND_KIND not in set(s["kind"]) and mv.BOUND_METHOD not in set(s["distortion"])

    lines = mv.failures(s, scores)
    assert ("p / hdrvdp2: ranks the untrained network below exposure-scaling on only 7 of 8 scenes (needs >= 90 %)"
            in lines)
    assert not any("pu21-psnr" in line for line in lines)
    cells = matrix(s, scores).set_index(["protocol", "metric"])[RANK_COLUMN]
    assert cells[("p", "hdrvdp2")] == "**FAIL** (7/8)"
    assert cells[("p", "pu21-psnr")] == "pass (8/8)"
    assert cells[("p", "hdrvdp2-pdet")] == "**FAIL** (0/8)"


def test_rank_counts_nan_and_missing_bound_as_not_worse():
    net = [10.0] * 8
    bound = [20.0] * 7 + [math.nan]  # the harness recorded an error on the last scene
    scores = pd.DataFrame(_table("pu21-psnr", net, bound), columns=list(mv.SCORE_COLUMNS))
    counts = mv.rank_counts(scores)
    assert counts[["below", "scenes"]].values.tolist() == [[7, 8]]
    # A protocol/metric without any bound row gets no rank check (rather than a vacuous 0/8).
    only_net = scores[scores["kind"] != mv.BOUND_KIND]
    assert mv.rank_counts(only_net).empty
    assert mv.RANK_KIND not in set(mv.summarise(only_net)["kind"])


def test_rank_end_to_end_bound_equals_the_harness_records(tmp_path, capsys):
    from hdrbench.evaluate.harness import evaluate

    opts = {"n_train": 0, "n_test": 2}
    out = tmp_path / "mv"
    rc = main(["validate-metrics", "--dataset", "synthetic", "--dataset-option", "n_train=0", "--dataset-option",
               "n_test=2", "--resolution", "48", "--limit", "2", "--protocols", "singlehdr", "--metrics",
               "hdrvdp2,pu21-psnr", "--network-preset", "tiny", "--no-progress", "--out", str(out)])
    assert rc == 0
    console = capsys.readouterr().out
    summary = pd.read_csv(out / "metric_validity.csv")
    rank = summary[summary["kind"] == mv.RANK_KIND]
    assert sorted(rank["metric"]) == ["hdrvdp2", "pu21-psnr"] and set(rank["protocol"]) == {"singlehdr"}
    assert ((rank["pair_accuracy"] >= mv.RANK_THRESHOLD) == rank["passed"]).all()
    assert console.count("FAIL ") == int((~summary["passed"]).sum())

    # The bound is the score `hdrbench evaluate` records for exposure-scaling on the same scenes.
    scores = pd.read_csv(out / "metric_validity_scores.csv")
    bound = scores[scores["kind"] == mv.BOUND_KIND].set_index(["scene", "metric"])["score"]
    run = evaluate(mv.BOUND_METHOD, "synthetic", limit=2, resolution=48, dataset_options=opts, protocol="singlehdr",
                   out=tmp_path / "runs", stack_metrics=(), hdr_metrics=("hdrvdp2", "pu21-psnr"), leaderboard=False)
    rec = pd.read_csv(run / "records.csv")
    rec = rec[rec["target"] == "hdr"].set_index(["scene", "metric"])["value"]
    assert len(bound) == len(rec) == 4
    for key, value in rec.items():
        # Same code path, same inputs; the scores CSV keeps 6 decimals, so agreement is to its rounding.
        assert bound[key] == pytest.approx(value, abs=1e-6)

    # The Markdown cell counts the scenes: k/2.
    md = (out / "metric_validity.md").read_text()
    assert f"| {RANK_COLUMN} |" in md
    counts = mv.rank_counts(scores)
    for r in counts.itertuples(index=False):
        assert r.scenes == 2 and f"({r.below}/2)" in md

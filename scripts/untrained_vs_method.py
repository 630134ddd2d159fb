"""Per scene: does the untrained network's output score below a method's? (from validate-metrics and evaluate outputs)

    python scripts/untrained_vs_method.py \
        --scores results/metric_validity/photos/metric_validity_scores.csv \
        --records runs/<run of exposure-scaling on photos>/records.csv \
        --protocol singlehdr --metric hdrvdp2 \
        --out results/metric_validity/photos/untrained_vs_exposure-scaling.csv

The untrained network's score is the ``untrained-network`` row at blend weight 1 (its merged HDR, brought to the
reference's scale by the median luminance ratio; under a protocol that declares the ``global-scale`` invariance
that scale changes nothing). The method's score is its ``hdr`` record of the same scene, protocol and metric. The
CSV has one row per scene (``scene, untrained_network, method, method_score, below``) and the script prints the
fraction of scenes where the untrained network scores worse than the method.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdrbench.atomic import atomic_write_text  # noqa: E402
from hdrbench.metrics.registry import get_metric  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scores", required=True, help="metric_validity_scores.csv of validate-metrics")
    p.add_argument("--records", required=True, help="records.csv of an evaluate run of the method")
    p.add_argument("--protocol", default="singlehdr")
    p.add_argument("--metric", default="hdrvdp2")
    p.add_argument("--out", required=True, help="per-scene CSV to write")
    args = p.parse_args(argv)

    scores = pd.read_csv(args.scores)
    net = scores[(scores["distortion"] == "untrained-network") & (scores["strength"] == 1.0)
                 & (scores["protocol"] == args.protocol) & (scores["metric"] == args.metric)]
    if net.empty:
        print(f"{args.scores}: no untrained-network rows at w = 1 for {args.protocol} / {args.metric}", file=sys.stderr)
        return 2
    rec = pd.read_csv(args.records)
    rec = rec[(rec["target"] == "hdr") & (rec["metric"] == args.metric) & (rec["protocol"] == args.protocol)]
    if rec.empty:
        print(f"{args.records}: no hdr records for {args.protocol} / {args.metric}", file=sys.stderr)
        return 2
    method = str(rec["method"].iloc[0])
    df = net[["scene", "score"]].rename(columns={"score": "untrained_network"}).merge(
        rec[["scene", "value"]].rename(columns={"value": "method_score"}), on="scene", how="inner")
    missing = sorted(set(net["scene"]) ^ set(rec["scene"]))
    if missing:
        print(f"scenes in only one of the inputs (left out): {missing}", file=sys.stderr)
    hib = get_metric(args.metric).higher_is_better
    df["method"] = method
    df["below"] = df["untrained_network"] < df["method_score"] if hib else df["untrained_network"] > df["method_score"]
    df = df[["scene", "untrained_network", "method", "method_score", "below"]]
    atomic_write_text(args.out, df.to_csv(index=False, float_format="%.6f", lineterminator="\n"))
    n, k = len(df), int(df["below"].sum())
    print(f"{args.protocol} / {args.metric}: the untrained network scores worse than {method} on {k} of {n} scenes"
          f" ({100.0 * k / n:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

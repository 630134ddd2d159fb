"""``hdrbench validate-metrics``: do the HDR metrics, under each protocol, see graded distortions of a dataset?

    hdrbench validate-metrics --dataset synthetic --limit 2 --out results/metric_validity/synthetic
    hdrbench validate-metrics --dataset photos --protocols singlehdr display --metrics hdrvdp2,pu21-psnr -o DIR

Each test scene's reference HDR is distorted at graded strengths (blur, noise, colour cast, banding, highlight
clipping, a local exposure error, the output of an untrained network of the proposed method) and scored with
every HDR metric under every protocol; the protocols' declared invariances are checked too, and whether each
metric ranks the untrained network's output below the training-free ``exposure-scaling`` on >= 90 % of the scenes
(the rank check, skipped with ``--network-preset none``). A failed check is
printed and reported, not an error: the exit status is 0 whenever the study ran. See
:mod:`hdrbench.evaluate.metric_validity` for the checks and :mod:`hdrbench.report.metric_validity` for the files.
"""

from __future__ import annotations

import sys


def _names(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (space- or comma-separated); None stays None."""
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def register(sub) -> None:
    p = sub.add_parser(
        "validate-metrics",
        help="check that each HDR metric and protocol detects graded distortions and keeps its invariances",
        description="Distort each test scene's reference HDR at graded strengths, score every distortion with every"
        " HDR metric under every protocol, and check that scores get worse with strength (Spearman on the scenes'"
        " mean), that each protocol's declared invariances hold, and that the untrained network scores below"
        " exposure-scaling on >= 90 % of the scenes. Writes metric_validity.csv, the per-strength"
        " scores, a Markdown report and a figure into --out.",
    )
    p.add_argument("--dataset", required=True, help="dataset name (synthetic, photos, hdr-folder:PATH ...)")
    p.add_argument("--protocols", nargs="+", default=None, metavar="NAME",
                   help="protocols (space- or comma-separated; default: every registered protocol with a viewing"
                        " geometry, i.e. all but 'absolute')")
    p.add_argument("--metrics", nargs="+", default=None, metavar="NAME",
                   help="HDR metrics (space- or comma-separated; default: every HDR metric of the registry)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N scenes of the split")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random distortions and of the untrained network (default: 0)")
    p.add_argument("--network-preset", default="cpu",
                   help="preset of the 'proposed' recipe for the untrained network (default: cpu; 'none' skips it)")
    p.add_argument("--root", help="dataset root folder (datasets that need one)")
    p.add_argument("--resolution", help="resolution policy (default: the dataset card's)")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="dataset reader option, e.g. n_test=4 (repeatable)")
    p.add_argument("--out", "-o", required=True, help="output folder (created if needed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def check_writable(folder: str) -> None:
    """Create ``folder`` and write/remove a probe file in it; raise InputError naming ``--out`` otherwise."""
    import os
    import tempfile
    from pathlib import Path

    from hdrbench.errors import InputError

    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"--out {folder}: cannot write there ({exc.strerror or exc})") from None


def _command(args) -> str:
    """The command line that reproduces this run (every option that changes the numbers)."""
    import shlex

    parts = ["hdrbench", "validate-metrics", "--dataset", args.dataset]
    if args.protocols:
        parts += ["--protocols", *_names(args.protocols)]
    if args.metrics:
        parts += ["--metrics", *_names(args.metrics)]
    for flag, value in (("--limit", args.limit), ("--root", args.root), ("--resolution", args.resolution)):
        if value is not None:
            parts += [flag, str(value)]
    if args.split != "test":
        parts += ["--split", args.split]
    if args.seed != 0:
        parts += ["--seed", str(args.seed)]
    if args.network_preset != "cpu":
        parts += ["--network-preset", args.network_preset]
    for item in args.dataset_option or []:
        parts += ["--dataset-option", item]
    return " ".join(shlex.quote(p) for p in parts + ["--out", args.out])


def run(args) -> int:
    from hdrbench.commands.train import options
    from hdrbench.evaluate.metric_validity import failures, resolve, validate_metrics
    from hdrbench.report.metric_validity import write

    preset = None if str(args.network_preset).lower() == "none" else args.network_preset
    names = dict(protocols=_names(args.protocols), metrics=_names(args.metrics), limit=args.limit, root=args.root,
                 resolution=args.resolution, dataset_options=options(args.dataset_option, "--dataset-option"))
    resolve(args.dataset, **names)  # every name checked first,
    check_writable(args.out)  # and the output folder, before the long loop rather than after it
    result = validate_metrics(args.dataset, split=args.split, seed=args.seed, network_preset=preset,
                              progress=not args.no_progress, **names)
    result.info["command"] = _command(args)
    failed = failures(result.summary, result.scores)
    paths = write(result, args.out, failed)
    n_all = len(result.summary)
    print(f"{result.info['dataset']}: {n_all - len(failed)} of {n_all} checks pass "
          f"({len(result.info['scenes'])} scenes, protocols {', '.join(result.info['protocols'])})")
    for line in failed:
        print(f"FAIL {line}")
    for path in paths:
        print(path)
    sys.stdout.flush()
    return 0

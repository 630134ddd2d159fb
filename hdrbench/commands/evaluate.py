"""``hdrbench evaluate``: run one method over one dataset split and write a run folder and leaderboard rows."""

from __future__ import annotations

from hdrbench.commands.train import device_argument, options


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a method on a dataset split (records, run folder, leaderboard)",
                       description="Evaluate a method on a dataset split. Under torchrun the scenes are sharded "
                                   "across ranks and rank 0 writes the run folder.")
    p.add_argument("--method", required=True, help="method name (see 'hdrbench methods list')")
    p.add_argument("--dataset", required=True, help="dataset name: synthetic, vds, hdr-eye, hdr-folder:PATH, "
                                                    "stack-folder:PATH")
    p.add_argument("--root", help="dataset root folder (vds, hdr-eye)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--limit", type=int, help="evaluate only the first N scenes")
    p.add_argument("--protocol", default="singlehdr", help="HDR scaling protocol (default: singlehdr)")
    p.add_argument("--device", default="cpu", type=device_argument, help="cpu or cuda (default: cpu)")
    p.add_argument("-o", "--out", help="parent folder of the run folder (default: runs/ or $HDRBENCH_RUNS)")
    p.add_argument("--resolution", help="resolution policy: native, 256x256-lanczos, 64 ... (default: the card's)")
    p.add_argument("--hdr-metrics", default="hdrvdp2,pu21-psnr,pu21-ssim", help="comma-separated HDR metrics")
    p.add_argument("--stack-metrics", default="psnr,ssim,ms-ssim", help="comma-separated stack metrics")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="dataset reader option, e.g. n_test=4 (repeatable)")
    p.add_argument("--method-option", action="append", metavar="KEY=VALUE",
                   help="method option, e.g. linearize=gamma2.2 (repeatable)")
    p.add_argument("--weights", metavar="PATH",
                   help="evaluate a recipe from official weights instead of a checkpoint (same as --method-option "
                        "weights=PATH): proposed takes a folder of the six DiffHDRsyn <step>-gu.ckpt ... files or a "
                        "prefix DIR/<step>; baseline cards say which file each takes")
    p.add_argument("--seed", type=int, default=0, help="torch seed set before each scene (default: 0)")
    p.add_argument("--no-leaderboard", action="store_true",
                   help="do not update the leaderboard (<results>/leaderboard-<dataset>.csv; <results> is "
                        "$HDRBENCH_RESULTS, default runs/results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--save-hdr", nargs="?", const="pfm", choices=("pfm", "exr", "hdr"), metavar="FORMAT",
                   help="save each scene's scored HDR image as <run>/hdr/<scene>.<FORMAT> (pfm: lossless float32, "
                        "the default; exr; hdr: Radiance RGBE)")
    p.add_argument("--publish-records", action="store_true",
                   help="also write the records to <results>/records/<dataset>/<method>.records.csv")
    p.add_argument("--publish", action="store_true",
                   help="maintainers: write the leaderboard and the records into the repository's committed "
                        "results/ instead of the user results folder (implies --publish-records)")
    add_allow_incomplete(p)
    p.set_defaults(func=run)


def report_failures(run_dir) -> int:
    """Print the run's failed scenes (first error of each, at most ten) to stderr; returns how many failed."""
    import sys
    from pathlib import Path

    from hdrbench.evaluate.runs import read_records_csv

    rows = read_records_csv(Path(run_dir) / "records.csv")
    failed: dict[str, str] = {}
    for r in rows:
        if r["error"]:
            failed.setdefault(r["scene"], f"{r['metric']}: {r['error']}")
    if failed:
        total = len({r["scene"] for r in rows})
        print(f"warning: {len(failed)} of {total} scene(s) had failures, recorded as errors in the records "
              f"(details in {Path(run_dir) / 'log.txt'}):", file=sys.stderr)
        for scene, error in list(failed.items())[:10]:
            print(f"  {scene}: {error}", file=sys.stderr)
        if len(failed) > 10:
            print(f"  ... and {len(failed) - 10} more", file=sys.stderr)
    return len(failed)


def add_allow_incomplete(p) -> None:
    p.add_argument("--allow-incomplete", action="store_true",
                   help="score an incomplete checkpoint (a run stopped early) or the fallback checkpoint.prev.pt "
                        "for the leaderboard anyway; its rows are marked (refused by default)")


def scored_checkpoint_line(run_dir) -> str | None:
    """'scored: <checkpoint> (iteration i of n, complete)' from a run folder's config.json (None for methods
    without a checkpoint)."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    meth = config.get("method") or {}
    if "checkpoint" not in meth or "iteration" not in meth:
        return None
    state = "complete" if meth.get("complete") else "INCOMPLETE"
    fallback = ", fallback: the run folder's checkpoint.pt is missing or failed verification" if meth.get(
        "fallback") else ""
    caveat = f"; leaderboard rows marked '{config['caveat']}'" if config.get("caveat") else ""
    return (f"scored: {meth['checkpoint']} (iteration {meth.get('iteration')} of {meth.get('iters')}, {state}"
            f"{fallback}){caveat}")



def results_folder(args):
    """The committed results/ for ``--publish`` (checked before any work), else None (the user results folder)."""
    if not getattr(args, "publish", False):
        return None
    from hdrbench.paths import published_results_dir

    return published_results_dir()


def run(args) -> int:
    from hdrbench.evaluate.harness import evaluate

    names = lambda s: [m.strip() for m in s.split(",") if m.strip()]  # noqa: E731
    if args.out:
        from hdrbench.outputs import check_output_dir

        check_output_dir(args.out, "--out")  # before the method is loaded and the scenes scored
    method_options = options(args.method_option, "--method-option")
    if args.weights:
        method_options["weights"] = args.weights
    path = evaluate(
        args.method, args.dataset, split=args.split, limit=args.limit, protocol=args.protocol, device=args.device,
        out=args.out, root=args.root, resolution=args.resolution,
        dataset_options=options(args.dataset_option, "--dataset-option"), method_options=method_options,
        stack_metrics=names(args.stack_metrics), hdr_metrics=names(args.hdr_metrics), seed=args.seed,
        progress=not args.no_progress, leaderboard=not args.no_leaderboard,
        publish=args.publish_records or args.publish, results=results_folder(args), save_hdr=args.save_hdr,
        allow_incomplete=args.allow_incomplete,
    )
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        line = scored_checkpoint_line(path)
        if line:
            print(line)
        print(path)
        report_failures(path)
    return 0

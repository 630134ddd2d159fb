"""``hdrbench run``: the main job. Train a method when no checkpoint of its recipe exists, evaluate it,
update the leaderboard, and say where everything went."""

from __future__ import annotations

from hdrbench.commands.evaluate import add_allow_incomplete, scored_checkpoint_line
from hdrbench.commands.train import add_training_arguments, apply_threads, options, recipe_options


def register(sub) -> None:
    p = sub.add_parser("run", help="train if needed, evaluate, update the leaderboard (default: proposed on photos)",
                       description="Train METHOD on DATASET's train split unless a complete checkpoint of the same "
                                   "resolved recipe exists (an unfinished one is resumed), evaluate it on the "
                                   "test split and update <results>/leaderboard-<dataset>.csv (<results>: "
                                   "$HDRBENCH_RESULTS, default runs/results). Training-free methods are evaluated "
                                   "directly. Then the training-free bounds (gt-stack, exposure-scaling, ldr-linear) "
                                   "are evaluated on the same split and protocol when the leaderboard lacks them, "
                                   "and one sentence places the method between them.")
    add_training_arguments(p, method_required=False)
    p.add_argument("--retrain", action="store_true", help="train afresh even when a complete checkpoint exists")
    p.add_argument("--weights", metavar="PATH",
                   help="evaluate the recipe from official weights instead of training (proposed: a folder of the "
                        "six DiffHDRsyn <step>-gu.ckpt ... files or a prefix DIR/<step>; baselines: see their card)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--limit", type=int, help="evaluate only the first N scenes")
    p.add_argument("--protocol", default="singlehdr", help="HDR scaling protocol (default: singlehdr)")
    p.add_argument("--resolution", help="dataset resolution policy (default: the card's)")
    p.add_argument("--hdr-metrics", default="hdrvdp2,pu21-psnr,pu21-ssim", help="comma-separated HDR metrics")
    p.add_argument("--stack-metrics", default="psnr,ssim,ms-ssim", help="comma-separated stack metrics")
    p.add_argument("--no-leaderboard", action="store_true", help="do not update the leaderboard")
    p.add_argument("--publish-records", action="store_true",
                   help="also copy the records to <results>/records/<dataset>/<method>.records.csv (read by "
                        "'hdrbench tables')")
    add_allow_incomplete(p)
    p.add_argument("--publish", action="store_true",
                   help="maintainers: write the leaderboard and the records into the repository's committed "
                        "results/ instead of the user results folder (implies --publish-records)")
    p.add_argument("--no-bounds", action="store_true",
                   help="do not evaluate the training-free bounds nor print where the method stands")
    p.set_defaults(func=run)


def run(args) -> int:
    import os
    import time

    from hdrbench import api
    from hdrbench.commands.evaluate import results_folder
    from hdrbench.evaluate.leaderboard import leaderboard_path, leaderboard_text
    from hdrbench.train import distributed as dist_utils

    apply_threads(args)
    results = results_folder(args)
    names = lambda s: [m.strip() for m in s.split(",") if m.strip()]  # noqa: E731
    from hdrbench.outputs import check_output_dir
    from hdrbench.paths import results_dir, runs_dir

    # Before training: a results or runs folder that cannot be written must not cost a training run.
    check_output_dir(runs_dir(), "runs folder" + (" (HDRBENCH_RUNS)" if "HDRBENCH_RUNS" in os.environ else ""))
    if not args.no_leaderboard or args.publish_records:
        check_output_dir(results_dir(),
                         "results folder" + (" (HDRBENCH_RESULTS)" if "HDRBENCH_RESULTS" in os.environ else ""))
    t0 = time.perf_counter()
    try:
        result = api.run(args.method, args.dataset, root=args.root, preset=args.preset, iters=args.iters,
                         batch_size=args.batch_size, device=args.device, amp=args.amp,
                         channels_last=args.channels_last, compile=args.compile, seed=args.seed, retrain=args.retrain,
                         split=args.split, limit=args.limit, protocol=args.protocol,
                         leaderboard=not args.no_leaderboard, progress=not args.no_progress,
                         resolution=args.resolution, publish=args.publish_records or args.publish,
                         results=results, bounds=not args.no_bounds, weights=args.weights,
                         dataset_options=options(args.dataset_option, "--dataset-option"),
                         overrides=recipe_options(args.method_option),
                         stack_metrics=names(args.stack_metrics), hdr_metrics=names(args.hdr_metrics),
                         allow_incomplete=args.allow_incomplete)
    finally:
        dist_utils.shutdown()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return 0
    trained = {"no": "not needed (a complete checkpoint of this configuration existed)",
               "fresh": "trained from scratch", "resumed": "resumed an unfinished run",
               "weights": "none (official weights)"}[result.trained]
    print(f"method: {result.method} on {result.dataset} ({time.perf_counter() - t0:.0f} s)")
    if result.checkpoint is not None:
        print(f"training: {trained}; checkpoint: {result.checkpoint}")
        print(scored_checkpoint_line(result.run_dir) or f"scored: {result.checkpoint}")
    print(f"records: {result.run_dir / 'records.csv'}")
    from hdrbench.commands.evaluate import report_failures

    report_failures(result.run_dir)
    print(f"run folder: {result.run_dir} (config.json, environment.json, log)")
    if not args.no_leaderboard:
        print(f"leaderboard: {leaderboard_path(result.dataset, results)}")
        print(leaderboard_text(result.dataset, results=results))
    if result.placement:
        print()
        print(result.placement)
    return 0

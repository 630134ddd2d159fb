"""``hdrbench tables`` and ``hdrbench report``: regenerate tables and figures from records only."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("tables", help="regenerate every table and figure from per-image records (never models)")
    p.add_argument("--records", nargs="+", default=["results/records"],
                   help="record CSV files or folders searched for records.csv / *.records.csv (default results/records)")
    p.add_argument("-o", "--out", default=None, help="output folder (default: the user results folder, $HDRBENCH_RESULTS or "
                                               "runs/results; the committed tables are written with --out results)")
    p.add_argument("--protocol", default="singlehdr", help="protocol used by the correlation study (default singlehdr)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.set_defaults(func=_tables)

    r = sub.add_parser("report", help="tables plus the CRF-consistency study and qualitative grids")
    r.add_argument("--records", nargs="+", default=["results/records"])
    r.add_argument("-o", "--out", default=None, help="output folder (default: the user results folder)")
    r.add_argument("--protocol", default="singlehdr")
    r.add_argument("--dataset", default=None, help="dataset for the CRF-consistency study (e.g. synthetic)")
    r.add_argument("--root", default=None, help="dataset root for the CRF study")
    r.add_argument("--limit", type=int, default=None, help="scenes in the CRF study")
    r.add_argument("--split", default="test", help="split of --dataset for the CRF study and the grids")
    r.add_argument("--grid-scenes", nargs="+", default=None, metavar="SCENE",
                   help="scenes of --dataset shown in the qualitative grid (rows)")
    r.add_argument("--grid-runs", nargs="+", default=None, metavar="LABEL=RUN_DIR",
                   help="columns of the qualitative grid: evaluation run folders saved with --save-hdr")
    r.set_defaults(func=_report)


def _out(args) -> None:
    if args.out is None:
        from hdrbench.paths import results_dir

        args.out = str(results_dir())


def _tables(args) -> int:
    from hdrbench.outputs import check_output_dir
    from hdrbench.report.build import build_tables

    _out(args)
    check_output_dir(args.out, "--out")
    cmd = f"hdrbench tables --records {' '.join(args.records)} --out {args.out}"
    written = build_tables(args.records, Path(args.out), protocol=args.protocol, command=cmd,
                           figures_on=not getattr(args, "no_figures", False))
    for name, paths in written.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    return 0


def _report(args) -> int:
    rc = _tables(args)
    if args.dataset:
        from hdrbench import api

        paths = api.crf_study(args.dataset, out=Path(args.out), root=args.root, split=args.split, limit=args.limit)
        print("crf study: " + ", ".join(str(p) for p in paths))
    if args.grid_scenes or args.grid_runs:
        from hdrbench.errors import InputError
        from hdrbench.report.build import slug
        from hdrbench.report.figures import save_figure
        from hdrbench.report.qualitative import qualitative_grid_from_runs

        if not (args.dataset and args.grid_scenes and args.grid_runs):
            raise InputError("a qualitative grid needs --dataset, --grid-scenes and --grid-runs together")
        runs = {}
        for item in args.grid_runs:
            label, sep, path = item.partition("=")
            if not sep or not label or not path:
                raise InputError(f"--grid-runs expects LABEL=RUN_DIR, got {item!r}")
            runs[label] = path
        fig, _ = qualitative_grid_from_runs(args.dataset, args.grid_scenes, runs, root=args.root, split=args.split,
                                            protocol=args.protocol)
        paths = save_figure(fig, Path(args.out) / "figures" / f"qualitative-{slug(args.dataset)}")
        print("qualitative grid: " + ", ".join(str(p) for p in paths))
    if args.dataset or args.grid_scenes:
        from hdrbench.report.build import write_index

        # Re-index so the page links the study and the grid written after the tables.
        write_index(Path(args.out), f"hdrbench tables --records {' '.join(args.records)} --out {args.out}")
    return rc

"""``hdrbench leaderboard``: print a dataset's leaderboard."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("leaderboard", help="print the leaderboard of a dataset")
    p.add_argument("--dataset", required=True, help="dataset name as evaluated (e.g. synthetic, hdr-folder:PATH)")
    p.add_argument("--all-runs", action="store_true", help="show every run, not only the latest per method")
    p.add_argument("--csv", action="store_true", help="print the raw CSV instead of the table")
    p.add_argument("--results", metavar="DIR", help="results folder to read (default: the user results folder, "
                                                    "$HDRBENCH_RESULTS or runs/results; 'results' shows the "
                                                    "committed leaderboards of a checkout)")
    p.set_defaults(func=run)


def run(args) -> int:
    from hdrbench.evaluate.leaderboard import leaderboard_path, leaderboard_text

    if args.csv:
        path = leaderboard_path(args.dataset, args.results)
        if not path.exists():
            print(f"no leaderboard for dataset {args.dataset!r} yet ({path})")
            return 1
        print(path.read_text(encoding="utf-8"), end="")
        return 0
    print(leaderboard_text(args.dataset, results=args.results, all_runs=args.all_runs))
    return 0

"""``hdrbench bench NAME``: speed and memory benchmarks with ratios against an in-process baseline.

Each benchmark lives in ``hdrbench/bench/<name>.py`` and exposes ``add_arguments(parser)`` and
``main(args) -> int``. Results are appended to ``results/bench-<name>.csv`` with the machine and the
software versions in the row.
"""

from __future__ import annotations

import importlib

BENCHMARKS = ("merge", "hdrvdp2", "train")


def register(sub) -> None:
    p = sub.add_parser("bench", help="speed/memory benchmarks (ratios against a baseline run in the same process)")
    bsub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name in BENCHMARKS:
        module = importlib.import_module(f"hdrbench.bench.{name}")
        bp = bsub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(bp)
        bp.set_defaults(func=module.main)

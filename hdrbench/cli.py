"""The ``hdrbench`` command line: argument parsing only.

Each sub-command lives in ``hdrbench/commands/<name>.py`` and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` to a callable taking the parsed namespace. Command modules import
their heavy dependencies (torch, the models) inside that callable so that ``hdrbench --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hdrbench import __version__
from hdrbench.errors import HdrbenchError

#: Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "run",
    "train",
    "evaluate",
    "predict",
    "score",
    "merge",
    "calibrate",
    "tables",
    "leaderboard",
    "methods",
    "datasets",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hdrbench",
        description="Benchmark and evaluation suite for single-image HDR reconstruction through exposure stacks.",
    )
    parser.add_argument("--version", action="version", version=f"hdrbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"hdrbench.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except HdrbenchError as exc:
        print(f"hdrbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

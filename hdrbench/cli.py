"""The ``hdrbench`` command line: argument parsing only.

Each sub-command lives in ``hdrbench/commands/<name>.py`` and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` to a callable taking the parsed namespace. Command modules import
their heavy dependencies (torch, the models) inside that callable so that ``hdrbench --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
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
    "validate-metrics",
    "merge",
    "calibrate",
    "tables",
    "leaderboard",
    "methods",
    "datasets",
    "bench",
)


#: Options whose value is a comma-separated list of numbers that may start with a minus sign.
NUMBER_LIST_OPTIONS = ("--evs",)


def _attach_number_lists(argv: list[str]) -> list[str]:
    """``--evs -2,0,2`` -> ``--evs=-2,0,2``: argparse reads a value that starts with ``-`` as an option unless it
    is a single negative number, so the documented form would fail with "expected one argument"."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in NUMBER_LIST_OPTIONS and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hdrbench",
        description="Benchmark and evaluation suite for single-image HDR reconstruction through exposure stacks.",
    )
    parser.add_argument("--version", action="version", version=f"hdrbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"hdrbench.commands.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 bad input, 130 interrupted, 141 reader gone)."""
    # Buffered output is written out here, so that a closed pipe raises where it is handled and not in the
    # interpreter's final flush ("Exception ignored ... BrokenPipeError", status 120). Other exceptions are
    # left alone: their traceback matters more than the output.
    try:
        try:
            status = _run(argv)
        except SystemExit:  # argparse after --help or --version (stdout), or after a usage error
            sys.stdout.flush()
            raise
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # a broken pipe of something else (a worker, a socket) is a real failure
        # ``hdrbench leaderboard ... | head``: the reader has all it wanted. Send the rest of the output to
        # devnull so that the final flush cannot raise again, and exit as a Unix tool killed by SIGPIPE
        # reports itself (128 + 13 = 141, what ``seq 1000000 | head -1`` leaves in PIPESTATUS): quiet, not
        # 0 (the output is incomplete, which ``set -o pipefail`` scripts can see), and not 1 or 2, which
        # mean a failure of the command or its input.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe or socket whose reading end is closed (poll reports an error or
    hang-up on it). Where poll is missing (Windows), any broken pipe is taken to be standard output's."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced by an object without a descriptor, or closed
        return False
    try:
        import select

        poller = select.poll()
    except (ImportError, AttributeError):
        return True
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(_attach_number_lists(list(sys.argv[1:] if argv is None else argv)))
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

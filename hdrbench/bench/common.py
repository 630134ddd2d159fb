"""Shared helpers for benchmarks: environment description and result rows."""

from __future__ import annotations

import csv
import datetime as _dt
import os
import platform
import time
from pathlib import Path
from typing import Callable

from filelock import FileLock

from hdrbench import __version__
from hdrbench.paths import lock_path, results_dir


def environment() -> dict:
    """Machine and software versions recorded in every benchmark row."""
    import numpy
    import torch

    device = "cpu"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    return {
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "hdrbench": __version__,
    }


def time_call(fn: Callable[[], object], *, warmup: int = 1, repeat: int = 5, sync: Callable[[], None] | None = None):
    """Median wall time in seconds of ``fn()`` over ``repeat`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def result_path(name: str, out: str | Path | None = None) -> Path:
    """The CSV a benchmark appends to, checked writable (call it before the measurement: an unwritable
    ``--out`` fails in a second, not after minutes of timing)."""
    from hdrbench.outputs import check_output_file

    return check_output_file(Path(out) if out else results_dir() / f"bench-{name}.csv", "--out", suffixes=(".csv",))


def append_result(name: str, row: dict, out: str | Path | None = None) -> Path:
    """Append ``row`` (plus the environment) to ``results/bench-<name>.csv`` under a file lock."""
    path = Path(out) if out else results_dir() / f"bench-{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {**row, **environment()}
    with FileLock(str(lock_path(path))):
        exists = path.exists() and path.stat().st_size > 0
        if exists:
            with open(path, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh))
            if header != list(full):
                raise ValueError(f"{path}: columns differ from this benchmark's row; move the old file aside")
        with open(path, "a", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(full))
            if not exists:
                w.writeheader()
            w.writerow(full)
    return path

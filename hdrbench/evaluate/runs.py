"""Run folders: one folder per evaluation, holding everything needed to trace its numbers.

    runs/<UTC time>_<method>_<dataset slug>/
        config.json        the resolved configuration (method options, dataset, split, protocol, metric versions)
        environment.json   software versions, machine, device, git commit
        records.csv        the per-image records (hdrbench.evaluate.records.COLUMNS)
        log.txt            progress and per-scene failures

Files are written atomically except the log, which is appended line by line.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from hdrbench import __version__
from hdrbench.atomic import atomic_write_text
from hdrbench.evaluate.records import COLUMNS
from hdrbench.paths import REPO_ROOT, runs_dir

LOGGER_NAME = "hdrbench.evaluate"


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def git_commit() -> str:
    """The repository's HEAD commit (with ``+dirty`` when the tree has changes), or "" outside a checkout."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions and machine facts recorded with every run."""
    import numpy
    import torch

    env = {
        "hdrbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "machine": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "cuda": torch.version.cuda or "",
        "git_commit": git_commit(),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    for mod in ("scipy", "pandas", "skimage", "pytorch_msssim", "cv2"):
        try:
            env[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            env[mod] = ""
    return env


@dataclass
class Run:
    """An open run folder.

    A run is written in a hidden staging folder ``.<run_id>.partial`` beside its final name and moved there by
    :meth:`finish` once everything (records, leaderboard row, published records) is written: a killed
    evaluation leaves no empty or complete-looking run folder, only a hidden partial one.

    Attributes:
        path: the folder being written (the staging folder until :meth:`finish`, then the final one).
        run_id: its final name (also the ``run_id`` column of every record).
        started: UTC start time (ISO 8601), the ``timestamp`` of every record.
        final: the folder :meth:`finish` moves it to (None: ``path`` is already final).
    """

    path: Path
    run_id: str
    started: str
    final: Path | None = None

    @property
    def records_path(self) -> Path:
        return self.path / "records.csv"

    def write_json(self, name: str, data: dict) -> Path:
        target = self.path / name
        atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        return target

    def write_records(self, rows: Iterable[dict]) -> Path:
        """Write the records (dicts with :data:`COLUMNS` keys) atomically to ``records.csv``."""
        return write_records_csv(self.records_path, rows)

    def logger(self) -> logging.Logger:
        """A logger writing to ``log.txt`` in this folder (and nowhere else)."""
        log = logging.getLogger(f"{LOGGER_NAME}.{self.run_id}")
        log.setLevel(logging.INFO)
        log.propagate = False
        if not log.handlers:
            handler = logging.FileHandler(self.path / "log.txt", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(handler)
        return log

    def close(self) -> None:
        log = logging.getLogger(f"{LOGGER_NAME}.{self.run_id}")
        for h in list(log.handlers):
            h.close()
            log.removeHandler(h)

    def finish(self) -> Path:
        """Close the log and move the staging folder to the run's final name; returns the final folder."""
        self.close()
        if self.final is not None and self.final != self.path:
            os.replace(self.path, self.final)
            self.path = self.final
        return self.path


def staging_name(run_id: str) -> str:
    """Name of the hidden folder a run is written in before :meth:`Run.finish` moves it to ``run_id``."""
    return f".{run_id}.partial"


def new_run(method: str, dataset_slug: str, *, out: str | Path | None = None) -> Run:
    """Reserve ``<out or runs/>/<UTC time>_<method>_<dataset slug>`` (a numeric suffix keeps names unique) and
    create its staging folder (see :class:`Run`)."""
    parent = Path(out) if out is not None else runs_dir()
    parent.mkdir(parents=True, exist_ok=True)
    now = utc_now()
    base = f"{now.strftime('%Y%m%dT%H%M%S')}{now.microsecond // 1000:03d}Z_{_safe(method)}_{_safe(dataset_slug)}"
    for k in range(1000):
        name = base if k == 0 else f"{base}-{k}"
        if (parent / name).exists():
            continue
        try:  # the staging folder is the reservation: mkdir is atomic, so two processes never share a name
            (parent / staging_name(name)).mkdir()
        except FileExistsError:
            continue
        return Run(path=parent / staging_name(name), run_id=name, started=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                   final=parent / name)
    raise RuntimeError(f"could not create a unique run folder under {parent}")


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return ""  # empty, as pandas and the report layer read a missing number
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest round-trip representation: the CSV holds the exact float
    return value


def records_to_csv_text(rows: Iterable[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: _fmt(r[c]) for c in COLUMNS})
    return buf.getvalue()


def write_records_csv(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write records atomically (floats as their shortest exact repr; NaN as an empty field; inf spelled out)."""
    path = Path(path)
    atomic_write_text(path, records_to_csv_text(rows))
    return path


def _float(text: str) -> float:
    return math.nan if text == "" else float(text)


def read_records_csv(path: str | Path) -> list[dict]:
    """Read a records CSV back into dicts (``value``/``ev`` as float, an empty field as NaN; ``seed`` as int)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != list(COLUMNS):
            raise ValueError(f"{path}: columns {reader.fieldnames} are not the record schema {list(COLUMNS)}")
        out = []
        for r in reader:
            r = dict(r)
            r["value"] = _float(r["value"])
            r["ev"] = _float(r["ev"])
            r["seed"] = int(r["seed"])
            out.append(r)
    return out

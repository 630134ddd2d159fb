"""The per-image record: the one data format that evaluation writes and reports read.

A record set is tidy: one row per image x target x metric. ``target`` is ``"stack"`` for a generated
exposure (``ev`` is its EV relative to the input) and ``"hdr"`` for the merged HDR image (``ev`` NaN,
an empty field in CSV). Failures are rows too: ``value`` is NaN and
``error`` says why; aggregates count them (``n_failed``) rather than drop them.

Tables and figures are regenerated from these rows alone, so every setting that changes a number is a
column: the protocol and its version, the metric version, the resolution policy, the seed and the
software versions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

SCHEMA_VERSION = "1"

#: Column order of a record CSV. ``tests`` check every committed record file against it.
COLUMNS: tuple[str, ...] = (
    "schema_version",
    "run_id",
    "method",
    "recipe_hash",
    "dataset",
    "split",
    "scene",
    "target",
    "ev",
    "metric",
    "value",
    "protocol",
    "protocol_version",
    "metric_version",
    "resolution",
    "seed",
    "error",
    "hdrbench_version",
    "torch_version",
    "timestamp",
)

TARGETS = ("stack", "hdr")


@dataclass
class Record:
    """One measured (or failed) value for one image.

    Attributes:
        run_id: the run folder name that produced the row.
        method: registered method name (a recipe name for trained methods).
        recipe_hash: short sha256 of the resolved recipe (empty for training-free methods).
        dataset: dataset name as given on the command line (``synthetic``, ``hdr-folder:...``).
        split: ``train``/``test``.
        scene: scene identifier within the split.
        target: ``"stack"`` (one generated exposure) or ``"hdr"`` (the merged HDR image).
        ev: relative EV of the generated exposure (``target == "stack"``), NaN for ``"hdr"``.
        metric: metric name from the metric registry (``psnr``, ``ssim``, ``hdrvdp2``, ``pu21-psnr`` ...).
        value: the metric value (float); NaN when ``error`` is set.
        protocol: scaling protocol name for HDR metrics (empty for stack metrics).
        protocol_version: the protocol's version string.
        metric_version: the metric card's version string (``+win<k>`` appended when a smaller SSIM window was used).
        resolution: resolution policy, e.g. ``"256x256-lanczos"`` or ``"native"``.
        seed: evaluation seed (methods with test-time randomness, e.g. dropout).
        error: empty when the value is valid, else a one-line reason.
    """

    run_id: str
    method: str
    dataset: str
    split: str
    scene: str
    target: str
    metric: str
    value: float
    ev: float = math.nan
    recipe_hash: str = ""
    protocol: str = ""
    protocol_version: str = ""
    metric_version: str = ""
    resolution: str = ""
    seed: int = 0
    error: str = ""
    hdrbench_version: str = ""
    torch_version: str = ""
    timestamp: str = ""
    schema_version: str = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"record target must be one of {TARGETS}, got {self.target!r}")

    def as_row(self) -> dict:
        """The record as a dict in :data:`COLUMNS` order."""
        d = asdict(self)
        return {c: d[c] for c in COLUMNS}


assert set(COLUMNS) == {f.name for f in fields(Record)}, "COLUMNS and Record drifted apart"

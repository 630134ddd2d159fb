"""Scoring many HDR pairs of mixed sizes: equal sizes go through the metrics as one batch, within a memory budget.

:func:`score_pairs` takes a list of (test, reference) pairs, groups the pairs of equal shape, cuts each group into
batches whose estimated peak memory fits ``max_bytes`` and calls :func:`hdrbench.metrics.registry.
compute_hdr_metrics` once per batch. The metrics and protocols work per image, so a batch gives the same values
as one pair at a time (up to floating-point rounding).

The memory estimate (:func:`estimate_peak_bytes`) uses the peak resident memory per pixel measured for each
metric (``hdrbench bench hdrvdp2``; docs/hdrvdp2-performance.md), with a margin. :func:`check_memory` refuses a
pair that alone would exceed the budget *before* anything large is allocated, naming the estimate and the limit.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import torch

from hdrbench.errors import InputError

#: Peak memory per pixel of one pair (bytes), by metric and computation dtype: the measured peak resident growth
#: (first call, caches included; 1024x768 and 1920x1080 on x86 CPU) rounded up by about 20 %. HDR-VDP-2 measured
#: ~400 MB per megapixel in float32 and ~700 MB in float64; the PU21 metrics ~240 MB in float64.
PEAK_BYTES_PER_PIXEL = {
    "hdrvdp2": {torch.float32: 480, torch.float64: 850},
    "default": {torch.float32: 160, torch.float64: 300},
}
#: Share of the memory the operating system reports as available that a computation may plan to use.
AVAILABLE_SHARE = 0.8


def estimate_peak_bytes(metrics: Sequence[str], n_pixels: int, dtype: torch.dtype = torch.float64) -> int:
    """Estimated peak memory (bytes) of scoring pairs with ``n_pixels`` pixels in total under ``metrics``.

    The metrics run one after another, so the estimate is the largest per-metric peak plus the inputs
    (test and reference, 3 channels).
    """
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    per_px = 0
    for m in metrics:
        table = PEAK_BYTES_PER_PIXEL.get("hdrvdp2" if m.startswith("hdrvdp2") else "default")
        per_px = max(per_px, table[dtype])
    inputs = 2 * 3 * torch.finfo(dtype).bits // 8
    return int(n_pixels * (per_px + inputs))


def available_memory_bytes() -> int | None:
    """Memory the operating system reports as available (Linux ``MemAvailable``), or None where unknown."""
    from hdrbench.metrics.hdrvdp2.profiling import proc_kib_field

    available = proc_kib_field("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available * 1024
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit_bytes(max_gb: float | None = None, device: torch.device | str | None = None
                       ) -> tuple[int | None, str]:
    """The memory budget in bytes and a phrase saying where it comes from (``--max-memory-gb`` or the OS).

    ``device``: a CUDA device takes its budget from the memory free on that device (``torch.cuda.mem_get_info``);
    None or a CPU device from the system's available memory.
    """
    if max_gb is not None:
        if not (max_gb > 0):
            raise InputError(f"--max-memory-gb must be > 0, got {max_gb!r}")
        return int(max_gb * 1e9), f"the limit --max-memory-gb {max_gb:g}"
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        free = torch.cuda.mem_get_info(dev)[0]
        return int(free * AVAILABLE_SHARE), f"{AVAILABLE_SHARE:.0%} of the {free / 1e9:.1f} GB free on {dev}"
    avail = available_memory_bytes()
    if avail is None:
        return None, "no known limit"
    return int(avail * AVAILABLE_SHARE), (f"{AVAILABLE_SHARE:.0%} of the {avail / 1e9:.1f} GB the system reports"
                                           " available")


def check_memory(what: str, metrics: Sequence[str], height: int, width: int, dtype: torch.dtype,
                 limit: tuple[int | None, str]) -> int:
    """Raise InputError naming ``what``, the estimate and the limit if one pair would not fit; return the estimate."""
    need = estimate_peak_bytes(metrics, height * width, dtype)
    max_bytes, source = limit
    if max_bytes is not None and need > max_bytes:
        raise InputError(
            f"{what}: scoring a {width}x{height} pair with {', '.join(metrics)} needs about {need / 1e9:.1f} GB"
            f" ({need / (height * width):.0f} bytes per pixel, {str(dtype).replace('torch.', '')}), more than"
            f" {source} ({max_bytes / 1e9:.1f} GB); nothing was computed. Score a downscaled or cropped copy, drop"
            " hdrvdp2 from --metrics, or raise the limit with --max-memory-gb if the memory exists"
        )
    return need


def group_by_shape(shapes: Sequence[tuple[int, ...]]) -> list[list[int]]:
    """Indices grouped by equal shape, groups in order of first appearance, indices ascending in each."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(shapes):
        groups.setdefault(tuple(s), []).append(i)
    return list(groups.values())


def batch_capacity(metrics: Sequence[str], height: int, width: int, dtype: torch.dtype, max_bytes: int | None,
                   max_pairs: int | None = None) -> int:
    """How many (height x width) pairs of ``dtype`` one batch may hold: as many as ``max_bytes`` allows by
    :func:`estimate_peak_bytes` (at least one; unlimited when None), and at most ``max_pairs`` (None: no cap)."""
    cap = max_pairs if max_pairs is not None else 2**62
    if max_bytes is None:
        return max(1, cap)
    per_pair = estimate_peak_bytes(metrics, height * width, dtype)
    return max(1, min(cap, int(max_bytes // max(per_pair, 1))))


def score_pairs(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    protocol,
    metrics: Sequence[str],
    ppd: float | None = None,
    color_encoding: str = "rgb-bt.709",
    allow_small_window: bool = False,
    max_bytes: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[dict]:
    """Score pairs of mixed sizes, batching equal sizes.

    Args:
        pairs: (test, reference) tensors, each (1, C, H, W) linear HDR in the protocol's input units; the two
            tensors of a pair have the same shape; different pairs may differ.
        protocol, metrics, ppd, color_encoding, allow_small_window: as for ``compute_hdr_metrics``.
        max_bytes: memory budget of one batch (:func:`estimate_peak_bytes`); None: one batch per size.
        on_done: called with the number of pairs finished after each batch (for a progress bar).

    Returns:
        One dict per pair, in input order: ``{"metrics": {name: float}, "ppd": float | None, "error": str}``.
        When a batch is refused (an InputError such as an all-zero image), its pairs are scored one at a time,
        so only the faulty pair gets the message (and NaN values).
    """
    from hdrbench.metrics.registry import compute_hdr_metrics

    names = list(metrics)
    out: list[dict | None] = [None] * len(pairs)
    for group in group_by_shape([tuple(t.shape) for t, _ in pairs]):
        t0, _ = pairs[group[0]]
        size = batch_capacity(names, t0.shape[-2], t0.shape[-1], t0.dtype, max_bytes, max_pairs=len(group))
        for s in range(0, len(group), size):
            idx = group[s : s + size]
            test = torch.cat([pairs[i][0] for i in idx])
            ref = torch.cat([pairs[i][1] for i in idx])
            details: dict = {}
            try:
                with torch.inference_mode():
                    values = compute_hdr_metrics(test, ref, protocol=protocol, metrics=names, ppd=ppd,
                                                 color_encoding=color_encoding,
                                                 allow_small_window=allow_small_window, details=details)
                for k, i in enumerate(idx):
                    out[i] = {"metrics": {m: float(v[k]) for m, v in values.items()}, "ppd": details.get("ppd"),
                              "error": ""}
            except InputError as exc:
                if len(idx) > 1:  # find the pair(s) at fault: the others are scored one at a time
                    for i in idx:
                        out[i] = score_pairs([pairs[i]], protocol=protocol, metrics=names, ppd=ppd,
                                             color_encoding=color_encoding,
                                             allow_small_window=allow_small_window)[0]
                else:
                    out[idx[0]] = {"metrics": {m: float("nan") for m in names}, "ppd": None, "error": str(exc)}
            del test, ref, details
            if on_done is not None:
                on_done(len(idx))
    return out  # type: ignore[return-value]


def compute_in_steps(test: torch.Tensor, reference: torch.Tensor, *, metrics: Sequence[str],
                     on_step: Callable[[str], None] | None = None, **kwargs) -> tuple[dict, dict]:
    """``compute_hdr_metrics`` one metric at a time (HDR-VDP-2 outputs together), calling ``on_step(name)`` before each.

    For progress reports on large images. Returns (values, details) like one call with all the metrics (the
    ``windows`` entries of the details are merged).
    """
    from hdrbench.metrics.registry import compute_hdr_metrics

    names = list(metrics)
    steps: list[list[str]] = []
    vdp = [m for m in names if m.startswith("hdrvdp2")]
    for m in names:
        if m in vdp:
            if vdp not in steps:
                steps.append(vdp)
        else:
            steps.append([m])
    values: dict = {}
    details: dict = {"windows": {}}
    for step in steps:
        if on_step is not None:
            on_step(",".join(step))
        d: dict = {}
        values.update(compute_hdr_metrics(test, reference, metrics=step, details=d, **kwargs))
        windows = d.pop("windows", {})
        details.update(d)
        details["windows"].update(windows)
    return {m: values[m] for m in names}, details

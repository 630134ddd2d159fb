"""Stage-by-stage timing of :func:`hdrbench.metrics.hdrvdp2.hdrvdp2` (for benchmarks and the performance notes).

The metric wraps each stage in ``with stage("name"):``. Outside :func:`record` this costs one context-variable
lookup per stage. Inside it, each stage's wall time is added up and its peak memory is recorded: on CPU the
process's peak resident set size (Linux ``VmHWM``, which includes torch's allocations) is reset when the stage
starts and read when it ends; on CUDA the device is synchronised around each stage and torch's peak allocated
memory is reset and read the same way. Where the peak cannot be reset (not Linux), the value read is the peak
of the process so far.
"""

from __future__ import annotations

import contextlib
import contextvars
import time

_ACTIVE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("hdrvdp2_profile", default=None)


def proc_kib_field(path: str, field: str) -> int | None:
    """The value of ``field`` (in kB) of a Linux /proc file such as ``/proc/self/status`` or ``/proc/meminfo``;
    None where the file or the field does not exist."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process in bytes (Linux ``VmHWM``; else ``getrusage`` maxrss; 0 if neither).

    ``VmHWM`` is preferred because ``getrusage``'s maxrss survives ``exec`` on Linux (a subprocess started by a
    large parent reports the parent's peak) and cannot be reset; ``VmHWM`` can be, with :func:`reset_peak_rss`.
    """
    peak = proc_kib_field("/proc/self/status", "VmHWM")
    if peak is not None:
        return peak * 1024
    try:
        import resource
    except ImportError:  # not on every platform
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux ``clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def stage(name: str, device=None):
    """Time the enclosed block as stage ``name`` when a :func:`record` is active (no-op otherwise)."""
    rec = _ACTIVE.get()
    if rec is None:
        yield
        return
    cuda = device is not None and getattr(device, "type", "") == "cuda"
    if cuda:
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        if cuda:
            import torch

            torch.cuda.synchronize(device)
            peak = int(torch.cuda.max_memory_allocated(device))
        else:
            peak = peak_rss_bytes()
        entry = rec.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0, "peak_bytes": 0})
        entry["seconds"] += time.perf_counter() - t0
        entry["cpu_seconds"] += time.process_time() - c0
        entry["peak_bytes"] = max(entry["peak_bytes"], peak)


@contextlib.contextmanager
def record():
    """Collect stage timings of the metric calls in the block: yields a dict name -> {seconds (wall),
    cpu_seconds (process CPU time, all threads), peak_bytes}.

    Stages are listed in the order they first ran; repeated calls add their times.
    """
    rec: dict = {}
    token = _ACTIVE.set(rec)
    try:
        yield rec
    finally:
        _ACTIVE.reset(token)

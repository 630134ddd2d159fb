"""HDR-VDP 2.2.2 speed and memory per image size: time per pair, pixels/s, peak memory, and the stage profile.

For each ``--sizes`` entry (default 512x384, 1024x768, 1920x1080) one float32 pair is scored on the CPU:

* Time: all sizes are timed in this process, interleaved round by round (size A, B, C, A, B, C, ...), so that a
  change of load on a shared machine affects every size alike and the per-pixel ratio between sizes stays
  meaningful. Each size reports the median and minimum wall time and the median process CPU time (all threads)
  per pair. The float64 time of the smallest size is measured the same way as an in-process baseline.
* Peak memory: each size runs in a fresh subprocess (same threads) that scores the pair twice and reads its peak
  resident set size (Linux ``VmHWM``, reset just before the first call; it includes torch's allocations, unlike
  ``tracemalloc``); the number reported is that peak minus the resident size just before the first call (the inputs, torch and the
  interpreter excluded), and per megapixel. The subprocess also records the stage profile
  (:mod:`hdrbench.metrics.hdrvdp2.profiling`) of its second call.
* The reference implementation is not run (it needs MATLAB or Octave): its time is the constant
  1.2 s per pair at 512x384 on 2 CPU cores stated for the original HDR-VDP 2.2.2, and the ratio to it is
  reported for that size.
* With CUDA, a batch of ``--cuda-batch`` pairs at ``--cuda-size`` is timed and reported as pairs per second,
  with torch's peak allocated memory per megapixel of the batch.

Every row carries the 1-minute load average before and after, the number of torch threads and
``OMP_WAIT_POLICY``: on a machine shared with other jobs the wall time is inflated, and with more than one
thread OpenMP's spin-waiting can slow runs several-fold (``OMP_WAIT_POLICY=PASSIVE`` avoids that).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

# Seconds per pair of the original HDR-VDP 2.2.2 on 2 CPU cores (a stated constant, not measured here).
REFERENCE_SECONDS_PER_PAIR = {(512, 384): 1.2}
GOAL_SPEEDUP = 25.0
STAGES = ("optics", "photoreceptors", "pyramid", "csf", "masking", "pooling", "detection")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="512x384,1024x768,1920x1080",
                   help="comma-separated WIDTHxHEIGHT list (default %(default)s)")
    p.add_argument("--ppd", type=float, default=30.0, help="pixels per degree (default %(default)s)")
    p.add_argument("--repeat", type=int, default=5, help="timed rounds; the median is reported (default %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per size before timing (fills the caches)")
    p.add_argument("--cuda-batch", type=int, default=16, help="pairs per call on CUDA (default %(default)s)")
    p.add_argument("--cuda-size", default="1024x768", help="WIDTHxHEIGHT on CUDA (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-float64", action="store_true", help="skip the float64 baseline at the first size")
    p.add_argument("-o", "--out", default=None, help="CSV to append to (default results/bench-hdrvdp2.csv)")
    p.add_argument("--profile-json", default=None, help="also write the per-size stage profiles to this JSON file")
    p.add_argument("--fft-floor", action="store_true",
                   help="also time only the FFTs one pair needs at the first size (calls replayed alone; printed)")


def _size(text: str) -> tuple[int, int]:
    from hdrbench.errors import InputError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"bench hdrvdp2: size must be WIDTHxHEIGHT, got {text!r}") from None
    if w < 15 or h < 15:
        raise InputError(f"bench hdrvdp2: size {text!r} is below HDR-VDP-2's 15x15 minimum")
    return w, h


def _pair(n: int, w: int, h: int, dtype, device):
    """A reproducible HDR-like pair in cd/m^2: smooth log-luminance field with texture, and a noisy test."""
    import torch

    g = torch.Generator().manual_seed(1234)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64), torch.linspace(0, 1, w, dtype=torch.float64),
                            indexing="ij")
    log_y = -1.0 + 4.0 * xx + 0.5 * torch.sin(20 * yy) + 0.3 * torch.rand(n, 1, h, w, generator=g, dtype=torch.float64)
    ref = 10.0**log_y * torch.tensor([1.0, 0.9, 0.8], dtype=torch.float64).view(1, 3, 1, 1)
    test = (ref * (1 + 0.05 * torch.randn(ref.shape, generator=g, dtype=torch.float64))).clamp_min(0)
    return test.to(device=device, dtype=dtype), ref.to(device=device, dtype=dtype)


def _load_average() -> float | str:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not available on every platform
        return ""


def _rss_now() -> int:
    """Current resident set size in bytes (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def memory_worker(w: int, h: int, ppd: float, dtype_name: str, threads: int) -> dict:
    """Score one pair twice in this (fresh) process; return peak RSS growth and the second call's stage profile."""
    import torch

    from hdrbench.metrics.hdrvdp2 import hdrvdp2, profiling

    torch.set_num_threads(threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    t, r = _pair(1, w, h, dtype, torch.device("cpu"))
    profiling.reset_peak_rss()
    before = _rss_now()
    with torch.inference_mode():
        hdrvdp2(t, r, color_encoding="rgb-bt.709", ppd=ppd)
        peak = profiling.peak_rss_bytes()
        with profiling.record() as rec:  # resets the peak per stage: the overall peak is the max of all readings
            hdrvdp2(t, r, color_encoding="rgb-bt.709", ppd=ppd)
    peak = max([peak, profiling.peak_rss_bytes()] + [v["peak_bytes"] for v in rec.values()])
    return {"rss_before_bytes": before, "maxrss_bytes": peak, "peak_increase_bytes": max(peak - before, 0),
            "stages": {k: {"seconds": v["seconds"], "cpu_seconds": v["cpu_seconds"], "peak_increase_bytes": max(v["peak_bytes"] - before, 0)}
                       for k, v in rec.items()}}


def _memory_in_subprocess(w: int, h: int, ppd: float, dtype_name: str, threads: int) -> dict | None:
    code = ("import json, sys; from hdrbench.bench.hdrvdp2 import memory_worker; "
            f"print('RESULT ' + json.dumps(memory_worker({w}, {h}, {ppd!r}, {dtype_name!r}, {threads})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    print(f"warning: the memory measurement at {w}x{h} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return None


def _cuda_measurement(args, ppd: float):
    import torch

    from hdrbench.bench.common import time_call
    from hdrbench.metrics.hdrvdp2 import hdrvdp2

    cw, ch = _size(args.cuda_size)
    dev = torch.device("cuda")
    t, r = _pair(args.cuda_batch, cw, ch, torch.float32, dev)
    with torch.inference_mode():
        hdrvdp2(t, r, color_encoding="rgb-bt.709", ppd=ppd)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        sec = time_call(lambda: hdrvdp2(t, r, color_encoding="rgb-bt.709", ppd=ppd),
                        warmup=0, repeat=args.repeat, sync=torch.cuda.synchronize)
        peak = torch.cuda.max_memory_allocated(dev) - base
    mpix = args.cuda_batch * cw * ch / 1e6
    return {"pairs_per_s": args.cuda_batch / sec, "peak_bytes": peak, "peak_mb_per_mpix": peak / 1e6 / mpix,
            "size": (cw, ch), "name": torch.cuda.get_device_name(0)}


def _cuda_report(args: argparse.Namespace) -> dict | None:
    """The CUDA measurement (:func:`_cuda_measurement`) printed, or None (printed as skipped) without CUDA."""
    import torch

    if not torch.cuda.is_available():
        print(f"CUDA: not available on this machine; the CUDA measurement (batch {args.cuda_batch} at "
              f"{args.cuda_size}) was skipped (the same code runs on GPU tensors).")
        return None
    cuda = _cuda_measurement(args, args.ppd)
    print(f"CUDA ({cuda['name']}): batch {args.cuda_batch} at {cuda['size'][0]}x{cuda['size'][1]} float32: "
          f"{cuda['pairs_per_s']:.2f} pairs/s, peak {cuda['peak_bytes'] / 1e6:.0f} MB allocated "
          f"({cuda['peak_mb_per_mpix']:.0f} MB per megapixel)")
    return cuda


def _time_jobs(jobs: list, args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """Time HDR-VDP-2 on each (key, (test, reference)) job: ``args.warmup`` untimed calls per job, then
    ``args.repeat`` interleaved rounds (load changes hit every size alike). Returns (wall seconds per key,
    process CPU seconds per key, last Q per key)."""
    import time

    import torch

    from hdrbench.metrics.hdrvdp2 import hdrvdp2

    wall: dict = {k: [] for k, _ in jobs}
    cpu_t: dict = {k: [] for k, _ in jobs}
    q: dict = {}
    with torch.inference_mode():
        for key, (t, r) in jobs:
            for _ in range(args.warmup):
                q[key] = float(hdrvdp2(t, r, color_encoding="rgb-bt.709", ppd=args.ppd).Q[0])
        for _ in range(args.repeat):  # interleaved rounds: load changes hit every size alike
            for key, (t, r) in jobs:
                c0, t0 = time.process_time(), time.perf_counter()
                res = hdrvdp2(t, r, color_encoding="rgb-bt.709", ppd=args.ppd)
                wall[key].append(time.perf_counter() - t0)
                cpu_t[key].append(time.process_time() - c0)
                q[key] = float(res.Q[0])
    return wall, cpu_t, q


_FFT_FUNCTIONS = ("rfft", "irfft", "fft", "ifft", "rfft2", "irfft2")


def fft_floor(test, reference, ppd: float, repeat: int) -> dict:
    """Time only the FFTs that one :func:`hdrvdp2` call makes: a lower bound of the metric's time on this machine.

    The calls of one scoring are recorded (function, a copy of the input, arguments) and replayed alone ``repeat``
    times, so the replay does the same transforms on the same shapes without the rest of the metric.

    Returns:
        dict with ``calls`` (count), ``wall_s`` (median over the replays) and ``cpu_s`` (median process CPU time).
    """
    import time

    import torch

    from hdrbench.metrics.hdrvdp2 import hdrvdp2

    calls: list = []
    orig = {name: getattr(torch.fft, name) for name in _FFT_FUNCTIONS}

    def recorder(name):
        def call(x, *a, **k):
            calls.append((name, x.detach().clone(), a, {key: v for key, v in k.items() if key != "out"}))
            return orig[name](x, *a, **k)
        return call

    with torch.inference_mode():
        hdrvdp2(test, reference, color_encoding="rgb-bt.709", ppd=ppd)  # caches filled, as in the timed rounds
        try:
            for name in _FFT_FUNCTIONS:
                setattr(torch.fft, name, recorder(name))
            hdrvdp2(test, reference, color_encoding="rgb-bt.709", ppd=ppd)
        finally:
            for name in _FFT_FUNCTIONS:
                setattr(torch.fft, name, orig[name])
        wall, cpu = [], []
        for rep in range(repeat + 1):
            c0, t0 = time.process_time(), time.perf_counter()
            for name, x, a, k in calls:
                orig[name](x, *a, **k)
            if rep:  # the first replay warms up
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    return {"calls": len(calls), "wall_s": _median(wall), "cpu_s": _median(cpu)}


def _median(v: list[float]) -> float:
    """The upper median (an element of ``v``, no interpolation)."""
    v = sorted(v)
    return v[len(v) // 2]


def main(args: argparse.Namespace) -> int:
    import torch

    from hdrbench.bench.common import append_result, result_path
    from hdrbench.errors import InputError

    result_path("hdrvdp2", args.out)  # an unwritable --out fails before the measurement

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"bench hdrvdp2: --threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.repeat < 1:
        raise InputError(f"bench hdrvdp2: --repeat must be >= 1, got {args.repeat}")
    sizes = [_size(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes:
        raise InputError("bench hdrvdp2: --sizes is empty")
    from hdrbench.metrics.hdrvdp2 import native

    threads = torch.get_num_threads()
    native_status = native.status()
    cuda = _cuda_report(args)
    print("reference time: 1.2 s per pair at 512x384 (original HDR-VDP 2.2.2 on 2 CPU cores; a constant, not measured)")
    print(f"torch threads: {threads}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')!r}, "
          f"native float32 kernels: {native_status}")

    cpu = torch.device("cpu")
    pairs = {s: _pair(1, s[0], s[1], torch.float32, cpu) for s in sizes}
    pair64 = _pair(1, sizes[0][0], sizes[0][1], torch.float64, cpu) if not args.no_float64 else None
    load_before = _load_average()
    jobs = [(s, pairs[s]) for s in sizes] + ([("f64", pair64)] if pair64 is not None else [])
    wall, cpu_t, q = _time_jobs(jobs, args)
    load_after = _load_average()
    med = _median

    base_size = sizes[0]
    base_per_pix = med(wall[base_size]) / (base_size[0] * base_size[1])
    profiles: dict = {}
    path = None
    for w, h in sizes:
        s32, c32, m32 = med(wall[(w, h)]), med(cpu_t[(w, h)]), min(wall[(w, h)])
        mpix = w * h / 1e6
        mem = None if args.no_memory else _memory_in_subprocess(w, h, args.ppd, "float32", threads)
        if mem is not None:
            profiles[f"{w}x{h}"] = mem
        ref_s = REFERENCE_SECONDS_PER_PAIR.get((w, h))
        per_pix_ratio = (s32 / (w * h)) / base_per_pix
        row = {
            "benchmark": "hdrvdp2",
            "size_wxh": f"{w}x{h}",
            "megapixels": round(mpix, 4),
            "ppd": args.ppd,
            "dtype": "float32",
            "wall_s_per_pair": round(s32, 5),
            "min_wall_s_per_pair": round(m32, 5),
            "process_cpu_s_per_pair": round(c32, 5),
            "pixels_per_s": round(w * h / s32),
            "time_per_pixel_vs_first_size": round(per_pix_ratio, 3),
            "reference_s_per_pair_constant": ref_s if ref_s else "",
            "speedup_vs_reference_wall": round(ref_s / s32, 2) if ref_s else "",
            "goal_speedup": GOAL_SPEEDUP if ref_s else "",
            "peak_rss_increase_mb": round(mem["peak_increase_bytes"] / 1e6, 1) if mem else "",
            "peak_rss_increase_mb_per_mpix": round(mem["peak_increase_bytes"] / 1e6 / mpix, 1) if mem else "",
            "peak_memory_method": "VmHWM minus RSS before the calls, fresh subprocess, 2 calls" if mem else "",
            "float64_wall_s_per_pair": round(med(wall["f64"]), 5) if (w, h) == base_size and pair64 is not None else "",
            "abs_dQ_float32_vs_float64": (f"{abs(q[(w, h)] - q['f64']):.3g}"
                                          if (w, h) == base_size and pair64 is not None else ""),
            "load_avg_1min_before": load_before,
            "load_avg_1min_after": load_after,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
            "cuda_batch": args.cuda_batch if cuda else "",
            "cuda_size_wxh": args.cuda_size if cuda else "",
            "cuda_pairs_per_s": round(cuda["pairs_per_s"], 3) if cuda else "",
            "cuda_peak_mb_per_mpix": round(cuda["peak_mb_per_mpix"], 1) if cuda else "",
            "cuda_note": "" if cuda else "no CUDA device: not measured",
            "native_kernels": native_status,
        }
        path = append_result("hdrvdp2", row, out=args.out)
        ref_txt = f", {ref_s / s32:.1f}x the reference's {ref_s:.1f} s (goal {GOAL_SPEEDUP:.0f}x)" if ref_s else ""
        mem_txt = (f", peak +{mem['peak_increase_bytes'] / 1e6:.0f} MB ({mem['peak_increase_bytes'] / 1e6 / mpix:.0f}"
                   " MB/Mpixel)" if mem else "")
        print(f"{w}x{h}: {s32 * 1000:.1f} ms/pair wall (min {m32 * 1000:.1f}, CPU {c32 * 1000:.1f}),"
              f" {w * h / s32 / 1e6:.2f} Mpixel/s, time/pixel {per_pix_ratio:.2f}x that of {base_size[0]}x"
              f"{base_size[1]}{mem_txt}{ref_txt}")
        if mem:
            print("    stages (s / peak MB above the RSS before the call): " + ", ".join(
                f"{k} {v['seconds']:.3f}/{v['peak_increase_bytes'] / 1e6:.0f}" for k, v in mem["stages"].items()))
    if pair64 is not None:
        print(f"float64 at {base_size[0]}x{base_size[1]}: {med(wall['f64']) * 1000:.1f} ms/pair, "
              f"|dQ| float32 vs float64 {abs(q[base_size] - q['f64']):.2g}")
    if args.fft_floor:
        w, h = base_size
        fl = fft_floor(*pairs[base_size], args.ppd, args.repeat)
        print(f"FFT floor at {w}x{h}: the {fl['calls']} FFT calls of one pair alone take"
              f" {fl['wall_s'] * 1000:.1f} ms wall (CPU {fl['cpu_s'] * 1000:.1f} ms),"
              f" {fl['wall_s'] / med(wall[base_size]):.0%} of the pair's"
              f" {med(wall[base_size]) * 1000:.1f} ms")
    print(f"load average (1 min): {load_before} before, {load_after} after, on {os.cpu_count()} CPUs")
    if args.profile_json:
        from hdrbench.atomic import atomic_write_text

        atomic_write_text(args.profile_json, json.dumps(profiles, indent=1))
    if path is not None:
        print(f"results appended to {path}")
    return 0

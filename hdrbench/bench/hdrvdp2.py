"""HDR-VDP 2.2.2 speed: float32 CPU per pair vs the reference implementation and vs our float64 path.

The reference implementation's speed is not measured here (it needs MATLAB or Octave): the constants
below are the times stated in the project's issue for the original HDR-VDP 2.2.2 on this project's
2-core CPU machines. Our float64 path is timed in the same process as an in-process baseline. With
CUDA, a batch of 16 pairs at 1024x768 is timed and reported as pairs per second.

Each measurement records the median and minimum wall time and the median CPU time of the process (all
threads) per call, the number of torch threads, ``OMP_WAIT_POLICY`` and the 1-minute load average before
and after. On a shared machine the wall time is inflated by other processes, and with more than one thread
OpenMP's spin-waiting can slow a run several-fold (measured: 5.4 s instead of 0.8 s per 512x384 pair with
two threads at load 8 on 2 CPUs; ``OMP_WAIT_POLICY=PASSIVE`` removed it). The CPU time of a single-threaded
run (``--threads 1``) is then the steady number, and about the wall time of that run on an idle machine.
"""

from __future__ import annotations

import argparse
import os

# Seconds per pair of the original HDR-VDP 2.2.2 on 2 CPU cores, as stated in the issue (constants,
# not measured by this benchmark).
REFERENCE_SECONDS_PER_PAIR = {(512, 384): 1.2, (512, 256): 0.9}
GOAL_SPEEDUP = 5.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="512x384,512x256", help="comma-separated WIDTHxHEIGHT list (default %(default)s)")
    p.add_argument("--ppd", type=float, default=30.0, help="pixels per degree (default %(default)s)")
    p.add_argument("--repeat", type=int, default=5, help="timed calls per measurement; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (fills the caches)")
    p.add_argument("--cuda-batch", type=int, default=16, help="pairs per call on CUDA (default %(default)s)")
    p.add_argument("--cuda-size", default="1024x768", help="WIDTHxHEIGHT on CUDA (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    p.add_argument("-o", "--out", default=None, help="CSV to append to (default results/bench-hdrvdp2.csv)")


def _size(text: str) -> tuple[int, int]:
    from hdrbench.errors import InputError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"bench hdrvdp2: size must be WIDTHxHEIGHT, got {text!r}") from None
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


def _time(fn, warmup: int, repeat: int) -> tuple[float, float, float]:
    """Median wall seconds, median process CPU seconds (all threads) and minimum wall seconds of ``fn()``."""
    import time

    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(max(repeat, 1)):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    wall.sort()
    cpu.sort()
    return wall[len(wall) // 2], cpu[len(cpu) // 2], wall[0]


def _load_average() -> float | str:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not available on every platform
        return ""


def main(args: argparse.Namespace) -> int:
    import torch

    from hdrbench.bench.common import append_result, result_path, time_call
    from hdrbench.errors import InputError
    from hdrbench.metrics.hdrvdp2 import hdrvdp2

    result_path("hdrvdp2", args.out)  # an unwritable --out fails before the measurement

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"bench hdrvdp2: --threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    sizes = [_size(s) for s in args.sizes.split(",") if s.strip()]
    cuda = torch.cuda.is_available()
    cw, ch = _size(args.cuda_size)
    cuda_pps = None
    if cuda:
        dev = torch.device("cuda")
        t, r = _pair(args.cuda_batch, cw, ch, torch.float32, dev)
        with torch.inference_mode():
            sec = time_call(lambda: hdrvdp2(t, r, color_encoding="rgb-bt.709", ppd=args.ppd),
                            warmup=max(args.warmup, 1), repeat=args.repeat, sync=torch.cuda.synchronize)
        cuda_pps = args.cuda_batch / sec
        print(f"CUDA ({torch.cuda.get_device_name(0)}): batch {args.cuda_batch} at {cw}x{ch} float32: "
              f"{cuda_pps:.2f} pairs/s")
    else:
        print(f"CUDA: not available on this machine; the CUDA measurement (batch {args.cuda_batch} at {cw}x{ch}) "
              "was skipped (the same code runs on GPU tensors).")
    print("reference times are constants from the issue (original HDR-VDP 2.2.2 on 2 CPU cores), not measured here")
    print(f"torch threads: {torch.get_num_threads()}")
    load = _load_average()
    if load != "" and torch.get_num_threads() > 1 and load > (os.cpu_count() or 1):
        print(f"note: load average {load} on {os.cpu_count()} CPUs: wall times are inflated, and OpenMP's spin-waiting"
              " can slow multi-threaded runs several-fold on a busy machine (OMP_WAIT_POLICY=PASSIVE or --threads 1"
              " avoid that); the process CPU time is the steadier number")
    path = None
    for w, h in sizes:
        cpu = torch.device("cpu")
        t32, r32 = _pair(1, w, h, torch.float32, cpu)
        t64, r64 = _pair(1, w, h, torch.float64, cpu)

        def run32():
            return hdrvdp2(t32, r32, color_encoding="rgb-bt.709", ppd=args.ppd)

        def run64():
            return hdrvdp2(t64, r64, color_encoding="rgb-bt.709", ppd=args.ppd)

        load_before = _load_average()
        with torch.inference_mode():
            s32, c32, m32 = _time(run32, args.warmup, args.repeat)
            s64, c64, m64 = _time(run64, args.warmup, args.repeat)
            dq = abs(float(run32().Q[0]) - float(run64().Q[0]))
        ref_s = REFERENCE_SECONDS_PER_PAIR.get((w, h))
        speedup = ref_s / s32 if ref_s else None
        speedup_cpu = ref_s / c32 if ref_s else None
        row = {
            "benchmark": "hdrvdp2",
            "size_wxh": f"{w}x{h}",
            "ppd": args.ppd,
            "reference_s_per_pair_constant": ref_s if ref_s else "",
            "float32_wall_s_per_pair": round(s32, 5),
            "float64_wall_s_per_pair": round(s64, 5),
            "speedup_vs_reference_wall": round(speedup, 2) if speedup else "",
            "goal_speedup": GOAL_SPEEDUP,
            "speedup_float32_vs_float64_wall": round(s64 / s32, 2),
            "float32_min_wall_s_per_pair": round(m32, 5),
            "float64_min_wall_s_per_pair": round(m64, 5),
            "float32_process_cpu_s_per_pair": round(c32, 5),
            "float64_process_cpu_s_per_pair": round(c64, 5),
            "speedup_vs_reference_by_process_cpu": round(speedup_cpu, 2) if speedup_cpu else "",
            "load_avg_1min_before": load_before,
            "load_avg_1min_after": _load_average(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
            "abs_dQ_float32_vs_float64": f"{dq:.3g}",
            "cuda_batch": args.cuda_batch if cuda else "",
            "cuda_size_wxh": f"{cw}x{ch}" if cuda else "",
            "cuda_pairs_per_s": round(cuda_pps, 3) if cuda_pps else "",
            "cuda_note": "" if cuda else "no CUDA device: not measured",
        }
        path = append_result("hdrvdp2", row, out=args.out)
        ref_txt = f"{ref_s:.2f} s (constant)" if ref_s else "n/a"
        sp_txt = f"{speedup:.1f}x wall, {speedup_cpu:.1f}x CPU time (goal {GOAL_SPEEDUP:.0f}x)" if speedup else "n/a"
        print(f"{w}x{h}: float32 {s32 * 1000:.1f} ms/pair wall ({c32 * 1000:.1f} ms CPU),"
              f" float64 {s64 * 1000:.1f} ms/pair"
              f" wall ({c64 * 1000:.1f} ms CPU), reference {ref_txt}, speed-up vs reference {sp_txt},"
              f" float64/float32 {s64 / s32:.2f}x wall, |dQ| f32 vs f64 {dq:.2g}, load {load_before}")
    if path is not None:
        print(f"results appended to {path}")
    return 0

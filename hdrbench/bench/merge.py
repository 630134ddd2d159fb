"""HDR synthesis layer speed: forward+backward vs the appendix's per-plane loop, forward vs OpenCV MergeDebevec.

The stack (default 7 exposures x 3 x 512 x 512, EV -3..+3, float32) is simulated from a smooth synthetic
radiance field with a gamma-2.2 camera; its inverse CRF is recovered once with Debevec-Malik (not timed)
and both layers merge with that table (Deb97 weights, log merge, saturation fallback):

* ``loop``: :func:`hdrbench.bench.reference_loop.loop_merge`, the straightforward per-image,
  per-channel implementation of the listing in appendix D of the reference paper;
* ``ours``: :func:`hdrbench.imaging.synthesis.merge_stack` as a user calls it: vectorised over batch,
  exposures and channels, its common case on the native CPU kernels (``synthesis.native``, compiled on
  first use, before the timing);
* ``torch node``: the same layer with ``backend="torch"``, its torch-operations form (what runs where no
  compiler is available), and with ``backend="compiled"`` (``torch.compile``; its one-off compilation time is
  reported apart, not in the per-call times);
* ``opencv``: ``cv2.createMergeDebevec().process(images, times, response)`` on the 8-bit images (forward
  only; OpenCV has no backward). OpenCV weighs every pixel with the mean of its channel weights and
  takes uint8 input, so the comparison is one of speed, not of identical arithmetic.

All run in this process on the same data, with the same number of CPU threads (``--threads``; default
torch's setting), and the ratios are what the benchmark reports. The row also records the 1-minute load
average (on a shared machine the absolute times, not so much the ratios, follow it) and
``OMP_WAIT_POLICY``: torch's OpenMP threads spin after each parallel operation unless it is ``PASSIVE``,
which slows anything else that wants the cores, the loop among them.
"""

from __future__ import annotations

import argparse
import os
import time

#: Goals stated in the project's issue.
GOAL_SPEEDUP_VS_LOOP = 20.0
GOAL_RATIO_VS_OPENCV = 1.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=512, help="image side in pixels (default %(default)s)")
    p.add_argument("--exposures", type=int, default=7,
                   help="number of exposures, EVs centred on 0 (default %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    p.add_argument("--no-compile", action="store_true",
                   help="skip the torch.compile variant of our layer (e.g. where no C++ compiler is available)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch and OpenCV alike (default: torch's current setting)")
    p.add_argument("-o", "--out", default=None, help="CSV to append to (default results/bench-merge.csv)")


def make_stack(size: int, exposures: int, seed: int = 0):
    """A ``(1, E, 3, size, size)`` float32 8-bit-quantised stack, its times ``(E,)`` and its gamma-2.2 truth.

    The radiance field spans about 10 stops (a horizontal ramp in log2 plus smooth ripples and a little
    texture), so every exposure has under-, well- and over-exposed regions.
    """
    import torch

    from hdrbench.imaging.camera import simulate_stack

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                            torch.linspace(0, 1, size, dtype=torch.float64), indexing="ij")
    log2 = -5.0 + 10.0 * xx + 0.7 * torch.sin(9.0 * yy) + 0.2 * torch.rand(size, size, generator=g, dtype=torch.float64)
    hdr = (2.0**log2)[None, None] * torch.tensor([1.0, 0.85, 0.7], dtype=torch.float64).view(1, 3, 1, 1)
    evs = [e - (exposures - 1) / 2 for e in range(exposures)]
    stack = simulate_stack(hdr, evs, "gamma")
    times = torch.tensor([2.0**e for e in evs], dtype=torch.float64)
    return stack.float(), times


def main(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import torch

    from hdrbench.bench.common import append_result, result_path, time_call
    from hdrbench.bench.reference_loop import loop_merge
    from hdrbench.errors import InputError
    from hdrbench.imaging.calibration import debevec_inverse_crf
    from hdrbench.imaging.synthesis import merge_stack, native

    result_path("merge", args.out)  # an unwritable --out fails before the measurement

    if args.size < 8 or args.exposures < 2 or args.repeats < 1:
        raise InputError("bench merge needs --size >= 8, --exposures >= 2 and --repeats >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("bench merge: --threads must be >= 1")
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    else:
        cv2.setNumThreads(torch.get_num_threads())
    stack, times = make_stack(args.size, args.exposures)
    table = debevec_inverse_crf(stack.double(), times).float()  # (1, 3, 256), not timed
    times32 = times.float()

    # A fresh leaf per call that shares the stack's memory: copying 22 MB per call would time memory
    # allocation, not the layers (it is the same cost for all of them).
    def fwd_bwd(**options):
        def run():
            x = stack.detach().requires_grad_(True)
            merge_stack(x, times32, inverse_crf=table, **options).hdr.sum().backward()
            return x.grad
        return run

    def fwd(**options):
        def run():
            with torch.no_grad():
                return merge_stack(stack, times32, inverse_crf=table, **options).hdr
        return run

    def loop_fwd_bwd():
        x = stack.detach().requires_grad_(True)
        loop_merge(x, times32, table).sum().backward()
        return x.grad

    ours_fwd_bwd, ours_fwd = fwd_bwd(), fwd()  # as a user calls it: native kernels where they build
    node_fwd_bwd, node_fwd = fwd_bwd(backend="torch"), fwd(backend="torch")  # the torch node
    compiled_fwd_bwd, compiled_fwd = fwd_bwd(backend="compiled"), fwd(backend="compiled")

    # OpenCV: BGR uint8 planes, float32 times, response (256, 1, 3) in BGR order.
    u8 = [np.ascontiguousarray((stack[0, e].permute(1, 2, 0).numpy()[:, :, ::-1] * 255.0).round().astype(np.uint8))
          for e in range(stack.shape[1])]
    response = np.ascontiguousarray(table[0].numpy().T[:, None, ::-1], dtype=np.float32)
    t_cv = times.numpy().astype(np.float32)
    merger = cv2.createMergeDebevec()

    def opencv_fwd():
        return merger.process(u8, t_cv, response)

    fwd_diff, grad_diff, native_diff = _agreement(stack, times32, table, ours_fwd, ours_fwd_bwd, node_fwd,
                                                  node_fwd_bwd)

    threads = torch.get_num_threads()
    cv_threads = cv2.getNumThreads()
    lib = native.library()  # built here, outside the timing, if this machine has not built it yet
    kernel = "unavailable" if lib is None else f"{native.threads_used()} thread(s)" + (
        ", OpenMP" if lib.hdrbench_log_merge_openmp() else "")
    s_loop = time_call(loop_fwd_bwd, warmup=args.warmup, repeat=args.repeats)
    s_ours = time_call(ours_fwd_bwd, warmup=args.warmup, repeat=args.repeats)
    s_ours_f = time_call(ours_fwd, warmup=args.warmup, repeat=args.repeats)
    s_node = time_call(node_fwd_bwd, warmup=args.warmup, repeat=args.repeats)
    s_node_f = time_call(node_fwd, warmup=args.warmup, repeat=args.repeats)
    s_cv = time_call(opencv_fwd, warmup=args.warmup, repeat=args.repeats)
    s_comp = s_comp_f = compile_s = comp_diff = None
    if not args.no_compile:
        t0 = time.perf_counter()
        compiled_fwd_bwd()  # compiles the forward and backward graphs
        compiled_fwd()  # and the no-grad graph
        compile_s = time.perf_counter() - t0
        comp_diff = float(((compiled_fwd() - node_fwd()) / node_fwd().abs().clamp_min(1e-12)).abs().max())
        s_comp = time_call(compiled_fwd_bwd, warmup=args.warmup, repeat=args.repeats)
        s_comp_f = time_call(compiled_fwd, warmup=args.warmup, repeat=args.repeats)
    shape = f"{stack.shape[1]}x{stack.shape[2]}x{stack.shape[3]}x{stack.shape[4]}"
    seconds = {"loop": s_loop, "ours": s_ours, "ours_f": s_ours_f, "node": s_node, "node_f": s_node_f, "cv": s_cv,
               "comp": s_comp, "comp_f": s_comp_f, "compile": compile_s}
    diffs = {"fwd": fwd_diff, "grad": grad_diff, "native": native_diff, "comp": comp_diff}
    row = _merge_row(args, shape, seconds, diffs, kernel=kernel, cv_threads=cv_threads)
    path = append_result("merge", row, out=args.out)
    _print_merge(args, row, shape, seconds, diffs, kernel=kernel, threads=threads, cv_threads=cv_threads)
    print(f"results appended to {path}")
    return 0


def _agreement(stack, times32, table, ours_fwd, ours_fwd_bwd, node_fwd, node_fwd_bwd) -> tuple[float, float, float]:
    """(max relative forward difference to the reference loop, max relative gradient difference to it with the
    listing's slope, max relative difference of the native kernels to the torch node in values and gradients)."""
    import torch

    from hdrbench.bench.reference_loop import loop_merge
    from hdrbench.imaging.synthesis import merge_stack

    # Same arithmetic check: with the listing's slope, our gradients equal the loop's.
    x1 = stack.clone().requires_grad_(True)
    merge_stack(x1, times32, inverse_crf=table, slope="official").hdr.sum().backward()
    x2 = stack.clone().requires_grad_(True)
    out_loop = loop_merge(x2, times32, table)
    out_loop.sum().backward()
    with torch.no_grad():
        fwd_diff = float(((ours_fwd() - out_loop) / out_loop.abs().clamp_min(1e-12)).abs().max())
    grad_diff = float((x1.grad - x2.grad).abs().max() / x2.grad.abs().max().clamp_min(1e-30))
    # And the native kernels give the torch node's values and gradients.
    native_diff = max(float((ours_fwd() - node_fwd()).abs().max() / node_fwd().abs().max()),
                      float((ours_fwd_bwd() - node_fwd_bwd()).abs().max() / node_fwd_bwd().abs().max()))
    return fwd_diff, grad_diff, native_diff


def _merge_row(args: argparse.Namespace, shape: str, seconds: dict, diffs: dict, *, kernel: str,
               cv_threads: int) -> dict:
    """The CSV row of one ``bench merge`` measurement (``seconds`` and ``diffs`` as built by :func:`main`;
    the ``comp*`` entries are None when ``--no-compile``)."""
    s_loop, s_ours, s_ours_f, s_node, s_node_f, s_cv = (seconds[k] for k in ("loop", "ours", "ours_f", "node",
                                                                             "node_f", "cv"))
    s_comp, s_comp_f, compile_s, comp_diff = seconds["comp"], seconds["comp_f"], seconds["compile"], diffs["comp"]
    return {
        "benchmark": "merge",
        "stack_exsxhxw": shape,
        "dtype": "float32",
        "repeats": args.repeats,
        "loop_fwd_bwd_s": round(s_loop, 5),
        "ours_fwd_bwd_s": round(s_ours, 5),
        "speedup_vs_loop": round(s_loop / s_ours, 2),
        "goal_speedup_vs_loop": GOAL_SPEEDUP_VS_LOOP,
        "ours_fwd_s": round(s_ours_f, 5),
        "opencv_fwd_s": round(s_cv, 5),
        "opencv_over_ours_fwd": round(s_cv / s_ours_f, 3),
        "goal_opencv_over_ours_fwd": GOAL_RATIO_VS_OPENCV,
        "opencv_threads": cv_threads,
        "native_kernel": kernel,
        "torch_node_fwd_bwd_s": round(s_node, 5),
        "torch_node_speedup_vs_loop": round(s_loop / s_node, 2),
        "torch_node_fwd_s": round(s_node_f, 5),
        "opencv_over_torch_node_fwd": round(s_cv / s_node_f, 3),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "") or "unset",
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else "",
        "compiled_fwd_bwd_s": round(s_comp, 5) if s_comp else "",
        "compiled_speedup_vs_loop": round(s_loop / s_comp, 2) if s_comp else "",
        "compiled_fwd_s": round(s_comp_f, 5) if s_comp_f else "",
        "opencv_over_compiled_fwd": round(s_cv / s_comp_f, 3) if s_comp_f else "",
        "compile_once_s": round(compile_s, 1) if compile_s else "",
        "max_rel_fwd_diff_compiled_vs_eager": f"{comp_diff:.3g}" if s_comp else "",
        "max_rel_fwd_diff_vs_loop": f"{diffs['fwd']:.3g}",
        "max_rel_grad_diff_vs_loop_official_slope": f"{diffs['grad']:.3g}",
        "max_rel_diff_native_vs_torch_node": f"{diffs['native']:.3g}",
    }


def _print_merge(args: argparse.Namespace, row: dict, shape: str, seconds: dict, diffs: dict, *, kernel: str,
                 threads: int, cv_threads: int) -> None:
    """The console summary of one ``bench merge`` measurement."""
    s_loop, s_ours, s_ours_f, s_node, s_node_f, s_cv = (seconds[k] for k in ("loop", "ours", "ours_f", "node",
                                                                             "node_f", "cv"))
    s_comp, s_comp_f, compile_s, comp_diff = seconds["comp"], seconds["comp_f"], seconds["compile"], diffs["comp"]
    speedup, vs_cv = s_loop / s_ours, s_cv / s_ours_f
    fwd_diff, grad_diff, native_diff = diffs["fwd"], diffs["grad"], diffs["native"]
    print(f"stack {shape} float32, torch threads {threads}, OpenCV threads {cv_threads}, median of {args.repeats}, "
          f"1-min load average {row['load_avg_1min']}, OMP_WAIT_POLICY {row['omp_wait_policy']}")
    print(f"forward+backward: loop {s_loop * 1000:.1f} ms, ours {s_ours * 1000:.1f} ms -> {speedup:.1f}x faster "
          f"(goal >= {GOAL_SPEEDUP_VS_LOOP:.0f}x)")
    print(f"forward: OpenCV MergeDebevec {s_cv * 1000:.1f} ms, ours {s_ours_f * 1000:.1f} ms -> OpenCV time / ours "
          f"{vs_cv:.2f} (goal >= {GOAL_RATIO_VS_OPENCV:.0f})")
    print(f"native kernel: {kernel}; the torch node alone (backend 'torch'): forward+backward {s_node * 1000:.1f} ms "
          f"({s_loop / s_node:.1f}x the loop), forward {s_node_f * 1000:.1f} ms "
          f"(OpenCV time / it {s_cv / s_node_f:.2f})")
    if s_comp:
        print(f"torch.compile variant (compiled once in {compile_s:.1f} s): forward+backward {s_comp * 1000:.1f} ms -> "
              f"{s_loop / s_comp:.1f}x faster than the loop; forward {s_comp_f * 1000:.1f} ms -> OpenCV time / ours "
              f"{s_cv / s_comp_f:.2f}; max relative difference to the eager layer {comp_diff:.2g}")
    print(f"agreement with the loop: max relative forward difference {fwd_diff:.2g}, max relative gradient difference "
          f"(slope='official') {grad_diff:.2g}; native kernels vs torch node, values and gradients {native_diff:.2g}")

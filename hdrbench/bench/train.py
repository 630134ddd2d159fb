"""Training step time and peak memory per preset and speed switch, with the schedule's length in hours.

For each preset the recipe's training task is built as :func:`hdrbench.train.trainer.train` builds it
(:func:`~hdrbench.train.trainer.prepare_task`) and timed over whole iterations (next batch, copy to the
device, autocast, ``train_step``: forward, backward and optimiser steps). Tasks with a pre-training
phase (``schedule.pretrain_iters``; the proposed method trains without its refinement networks, CoBi and
HDR loss then) are timed in both phases, and the schedule estimate weighs them by their lengths:

    hours = (pretrain_iters * t_pretrain + (iters - pretrain_iters) * t_full) / 3600

Every speed switch (a *variant*) is compared with the first variant measured in the same process (by
default ``fp32``: fp32, eager, contiguous): ``ratio = t_variant / t_baseline`` (below 1 is faster).

Defaults: the ``cpu`` preset on the CPU with variants ``fp32`` and ``channels_last``; the ``paper`` preset
on CUDA (when there is one; otherwise the benchmark says "no CUDA") with ``fp32``, ``bf16``, ``compile``
and ``bf16+compile``, whose schedule estimate is the GPU-hours of the 80k-iteration paper schedule.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors only) after a reset; on the CPU the
process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` before each variant where
the kernel allows it, else the process's peak so far, said so in the ``mem_kind`` column).

Timings are medians over ``--repeat`` iterations after ``--warmup`` untimed ones (``torch.compile``
compiles during the warm-up). With ``--rounds R`` the variants are measured R times in turn (round-robin,
a fresh task each time) and each variant keeps the median of its R timings, so that a change of machine
load during the benchmark does not fall on one variant only. A shared or loaded machine inflates every
timing; the ratios, measured interleaved in one process, are the more robust numbers.
"""

from __future__ import annotations

import time

VARIANTS = {
    "fp32": {"amp": None, "channels_last": False, "compile": False},
    "channels_last": {"amp": None, "channels_last": True, "compile": False},
    "bf16": {"amp": "bf16", "channels_last": False, "compile": False},
    "fp16": {"amp": "fp16", "channels_last": False, "compile": False},
    "compile": {"amp": None, "channels_last": False, "compile": True},
    "bf16+compile": {"amp": "bf16", "channels_last": False, "compile": True},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True, "compile": False},
}
DEFAULT_VARIANTS = {"cpu": "fp32,channels_last", "cuda": "fp32,bf16,compile,bf16+compile"}
#: Presets that run on CUDA when ``--device auto`` (the paper preset is far too slow for a CPU).
CUDA_PRESETS = ("paper",)


def add_arguments(p) -> None:
    p.add_argument("--method", default="proposed", help="recipe to benchmark (default: proposed)")
    p.add_argument("--presets", default="cpu,paper",
                   help="comma-separated presets (default: cpu,paper; paper runs only on CUDA)")
    p.add_argument("--device", default="auto",
                   help="auto (paper on CUDA, the others on the CPU), cpu or cuda")
    p.add_argument("--variants", default=None,
                   help=f"comma-separated variants of {sorted(VARIANTS)}; the first is the baseline "
                        f"(default: {DEFAULT_VARIANTS['cpu']} on the CPU, {DEFAULT_VARIANTS['cuda']} on CUDA)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per phase (default 1; 3 with compile)")
    p.add_argument("--repeat", type=int, default=3, help="timed iterations per phase (default 3)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure the variants this many times in turn and keep each one's median (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--method-option", action="append", metavar="KEY=VALUE",
                   help="recipe override, e.g. loss.cobi_features=rgb-patch (part of the recipe hash in each row)")
    p.add_argument("--no-save", action="store_true", help="print only; do not append to results/bench-train.csv")
    p.add_argument("-o", "--out", default=None, help="CSV to append to (default results/bench-train.csv)")


# -- memory -------------------------------------------------------------------------------------------------

class _Memory:
    """Peak memory of one variant (MB) on ``device``."""

    def __init__(self, device) -> None:
        import torch

        self.device = device
        self.torch = torch

    def start(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda max_memory_allocated"
        else:
            from hdrbench.metrics.hdrvdp2.profiling import reset_peak_rss

            self.kind = "peak RSS (VmHWM, reset per variant)" if reset_peak_rss() else \
                "peak RSS of the process so far (VmHWM; reset not permitted)"

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return self.torch.cuda.max_memory_allocated(self.device) / 2**20
        from hdrbench.metrics.hdrvdp2.profiling import peak_rss_bytes

        peak = peak_rss_bytes()  # process peak RSS (VmHWM, else getrusage; 0 where neither exists)
        return peak / 2**20 if peak else float("nan")


# -- timing -------------------------------------------------------------------------------------------------

def _phases(recipe) -> list[tuple[str, int]]:
    """(phase, iteration index to time) pairs: ``pretrain`` at 0 and ``full`` after pre-training."""
    schedule = recipe.section("schedule")
    iters = int(schedule.get("iters", 1))
    pre = int(schedule.get("pretrain_iters", 0) or 0)
    if 0 < pre < iters:
        return [("pretrain", 0), ("full", pre)]
    return [("full", 0)]


def measure(recipe, dataset, device, variant: str, *, warmup: int, repeat: int, seed: int = 0) -> dict:
    """Median step time per phase and peak memory of one variant (a fresh task, seeded like a run).

    Returns:
        ``{"step_s": {phase: seconds}, "peak_mem_mb": float, "mem_kind": str}``.
    """
    import torch

    from hdrbench.train.data import TrainingData
    from hdrbench.train.trainer import autocast_context, deterministic, prepare_task, seed_everything, to_device

    opts = VARIANTS[variant]
    memory = _Memory(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with deterministic(device):
        seed_everything(seed)
        memory.start()
        task = prepare_task(recipe, device, amp=opts["amp"], channels_last=opts["channels_last"],
                            compile=opts["compile"])
        for module in task.modules().values():
            module.train()
        data = TrainingData(dataset, recipe.section("data"), batch_size=int(recipe.section("schedule").get(
            "batch_size", 1)), seed=seed)
        autocast = autocast_context(device, opts["amp"])
        times: dict[str, float] = {}
        for phase, iteration in _phases(recipe):
            samples = []
            for k in range(warmup + repeat):
                batch = to_device(data.next_batch(), device, opts["channels_last"])
                sync()
                t0 = time.perf_counter()
                with autocast:
                    task.train_step(batch, iteration)
                if task.scaler is not None:
                    task.scaler.update()
                sync()
                if k >= warmup:
                    samples.append(time.perf_counter() - t0)
            samples.sort()
            times[phase] = samples[len(samples) // 2]
        peak = memory.peak_mb()
    del task
    return {"step_s": times, "peak_mem_mb": peak, "mem_kind": memory.kind}


def _combine(results: list[dict]) -> dict:
    """One variant's rounds: the median step time per phase, the largest peak memory."""
    import statistics

    phases = results[0]["step_s"]
    return {"step_s": {ph: statistics.median(r["step_s"][ph] for r in results) for ph in phases},
            "peak_mem_mb": max(r["peak_mem_mb"] for r in results), "mem_kind": results[0]["mem_kind"]}


def schedule_hours(recipe, step_s: dict[str, float]) -> float:
    """Hours of the recipe's whole schedule at the measured per-phase step times."""
    schedule = recipe.section("schedule")
    iters = int(schedule.get("iters", 1))
    pre = int(schedule.get("pretrain_iters", 0) or 0)
    if "pretrain" in step_s:
        return (pre * step_s["pretrain"] + (iters - pre) * step_s["full"]) / 3600
    return iters * step_s["full"] / 3600


def _device_for(preset: str, choice: str):
    import torch

    if choice == "auto":
        return torch.device("cuda") if preset in CUDA_PRESETS else torch.device("cpu")
    return torch.device(choice)


def main(args) -> int:
    import torch

    from hdrbench.bench.common import append_result, result_path
    from hdrbench.data import get_dataset
    from hdrbench.errors import InputError
    from hdrbench.train.recipes import load_recipe

    result_path("train", args.out)  # an unwritable --out fails before the measurement

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.repeat < 1 or args.warmup < 0 or args.rounds < 1:
        raise InputError(f"--repeat and --rounds must be >= 1 and --warmup >= 0, got {args.repeat}, {args.rounds}, "
                         f"{args.warmup}")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    # Two training scenes are enough: the step time does not depend on which scene a batch holds.
    dataset = get_dataset("synthetic", n_train=2, n_test=0, progress=False)
    from hdrbench.commands.train import recipe_options

    overrides = recipe_options(getattr(args, "method_option", None))
    for preset in presets:
        recipe = load_recipe(args.method, preset=preset, overrides=overrides or None)
        device = _device_for(preset, args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            print(f"{args.method} preset {preset}: no CUDA on this machine; skipped (its GPU-hours estimate of the "
                  f"{recipe.section('schedule').get('iters')}-iteration schedule needs a GPU run)")
            continue
        names = [v.strip() for v in (args.variants or DEFAULT_VARIANTS[device.type]).split(",") if v.strip()]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown:
            raise InputError(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
        schedule = recipe.section("schedule")
        data = recipe.section("data")
        if overrides:
            print(f"{args.method} preset {preset}: recipe overrides {overrides} (recipe hash {recipe.hash})")
        print(f"{args.method} preset {preset} on {device} ({torch.get_num_threads()} threads), batch "
              f"{schedule.get('batch_size', 1)}, crop {data.get('crop')}, schedule {schedule.get('iters')} iterations "
              f"({schedule.get('pretrain_iters', 0)} pre-training); baseline {names[0]}")
        hours_kind = "gpu-hours" if device.type == "cuda" else "wall hours on this CPU"
        runs: dict[str, list[dict]] = {v: [] for v in names}
        walls: dict[str, float] = {v: 0.0 for v in names}
        for _ in range(args.rounds):
            for variant in names:
                warmup = max(args.warmup, 3) if VARIANTS[variant]["compile"] else args.warmup
                t0 = time.perf_counter()
                runs[variant].append(measure(recipe, dataset, device, variant, warmup=warmup, repeat=args.repeat))
                walls[variant] += time.perf_counter() - t0
        results = {v: _combine(runs[v]) for v in names}
        base = results[names[0]]
        for variant in names:
            res = results[variant]
            warmup = max(args.warmup, 3) if VARIANTS[variant]["compile"] else args.warmup
            hours = schedule_hours(recipe, res["step_s"])
            ratios = {ph: res["step_s"][ph] / base["step_s"][ph] for ph in res["step_s"]}
            steps = "  ".join(f"{ph} {s * 1000:.0f} ms/it (x{ratios[ph]:.3f})" for ph, s in res["step_s"].items())
            print(f"  {variant:<18} {steps}  peak {res['peak_mem_mb']:.0f} MB  schedule {hours:.3g} {hours_kind}"
                  f"  [{walls[variant]:.0f} s to measure]")
            row = {
                "benchmark": "train", "method": args.method, "preset": preset, "recipe_hash": recipe.hash,
                "device_used": str(device), "variant": variant, "baseline_variant": names[0],
                "amp": VARIANTS[variant]["amp"] or "fp32", "channels_last": VARIANTS[variant]["channels_last"],
                "compile": VARIANTS[variant]["compile"], "batch_size": schedule.get("batch_size", 1),
                "crop": data.get("crop"), "warmup": warmup, "repeat": args.repeat, "rounds": args.rounds,
                "step_s_pretrain": res["step_s"].get("pretrain", float("nan")),
                "step_s_full": res["step_s"]["full"],
                "ratio_pretrain": ratios.get("pretrain", float("nan")), "ratio_full": ratios["full"],
                "peak_mem_mb": res["peak_mem_mb"], "mem_kind": res["mem_kind"],
                "schedule_iters": schedule.get("iters"), "pretrain_iters": schedule.get("pretrain_iters", 0),
                "schedule_hours": hours, "hours_kind": hours_kind,
            }
            if not args.no_save:
                path = append_result("train", row, out=args.out)
        if not args.no_save:
            print(f"  rows appended to {path}")
    return 0

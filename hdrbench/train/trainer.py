"""The generic trainer: one loop for every recipe, on CPU or CUDA, one process or many (``torchrun``).

The trainer owns devices, distributed set-up, AMP, ``channels_last``, ``torch.compile``, data order,
checkpoints, exact resume, the progress bar, the log and the NaN guard. What one iteration does belongs
to the recipe's training task (:class:`hdrbench.train.task.TrainTask`).

Run folder: ``runs/<method>__<dataset-slug>/`` (or ``out``) with ``checkpoint.pt`` (latest good),
``checkpoint.prev.pt`` (the one before), ``recipe.json`` (the resolved recipe, its hash and the run
settings) and ``train.log`` (one line per logged iteration).

Determinism: a CPU run is a function of the recipe, the dataset, the seed and the thread count
(``torch.use_deterministic_algorithms`` is on during training); a run killed and resumed from its last
checkpoint ends with bitwise the same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from hdrbench.atomic import atomic_write_text
from hdrbench.data.base import dataset_slug
from hdrbench.errors import HdrbenchError, InputError
from hdrbench.paths import runs_dir
from hdrbench.train import checkpoint as ckpt
from hdrbench.train import distributed as dist_utils
from hdrbench.train.data import TrainingData
from hdrbench.train.recipes import Recipe, deep_merge, expand_overrides, load_recipe, recipe_hash
from hdrbench.train.task import TASKS, TrainTask

#: Modules whose import registers training tasks (explicit; nothing scans file names).
TASK_MODULES = ("hdrbench.train.proposed_task", "hdrbench.train.baselines")

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Schedule keys that do not change what one iteration does: a run may be resumed with other values
# (e.g. a longer ``iters``), so the resume check leaves them out.
_RESUMABLE_KEYS = ("iters", "log_every", "save_every")


class TrainingDivergedError(HdrbenchError):
    """A loss became NaN or Inf; the run stopped and its last good checkpoint is kept."""


def load_task_modules() -> None:
    """Import :data:`TASK_MODULES`, which register their tasks in ``TASKS``."""
    for name in TASK_MODULES:
        importlib.import_module(name)


def get_task_class(name: str) -> type[TrainTask]:
    """The training task registered as ``name`` (did-you-mean on a miss)."""
    load_task_modules()
    return TASKS.get(name)


def run_dir_for(method: str, dataset_name: str, out: str | os.PathLike | None = None) -> Path:
    """The run folder of ``method`` trained on ``dataset_name`` (``out`` overrides it)."""
    return Path(out) if out else runs_dir() / f"{method}__{dataset_slug(dataset_name)}"


def resume_key(recipe: Mapping[str, Any]) -> str:
    """Hash of the recipe without the schedule keys a resumed run may change (see ``_RESUMABLE_KEYS``)."""
    core = dict(recipe)
    core["schedule"] = {k: v for k, v in dict(recipe.get("schedule") or {}).items() if k not in _RESUMABLE_KEYS}
    return recipe_hash(core)


def dataset_identity(dataset_obj: Any, dataset_name: str) -> dict[str, Any]:
    """What identifies the training data of a dataset object: its ``describe()`` (name, card, root,
    resolution, reader options such as ``n_train``) without keys that only say where files are cached."""
    describe = getattr(dataset_obj, "describe", None)
    info = dict(describe()) if callable(describe) else {"name": dataset_name}
    info.pop("cache", None)
    return info


def training_identity(recipe: Mapping[str, Any], dataset_info: Mapping[str, Any], seed: int) -> str:
    """Short hash of everything that changes what is trained: the resolved recipe (overrides included), the
    dataset and its options (see :func:`dataset_identity`) and the seed.

    The schedule keys a resumed run may change (``_RESUMABLE_KEYS``) are left out, as in :func:`resume_key`:
    a run extended to more iterations keeps its identity.
    """
    import hashlib

    text = json.dumps({"recipe": resume_key(recipe), "dataset": dict(dataset_info), "seed": int(seed)},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def resolve_recipe(recipe: str | os.PathLike | Mapping[str, Any], *, preset: str | None = None,
                   overrides: Mapping[str, Any] | None = None) -> Recipe:
    """A :class:`Recipe` from a name, a path or an already resolved recipe, with ``overrides`` merged in."""
    if not isinstance(recipe, (str, os.PathLike)) and overrides and "fidelity" in overrides:
        raise InputError("a fidelity override needs the recipe's name or path: the recipe given is already "
                         "resolved, with the values its own fidelity implies")
    if isinstance(recipe, Recipe):
        if preset is not None and preset != recipe.preset:
            raise InputError(f"recipe {recipe.name!r} was resolved with preset {recipe.preset!r}, not {preset!r}")
        if not overrides:
            return recipe
        return Recipe(deep_merge(recipe, expand_overrides(overrides)), path=recipe.path, presets=recipe.presets)
    if isinstance(recipe, Mapping):
        return Recipe(deep_merge(recipe, expand_overrides(overrides or {})), path=Path(f"<{recipe.get('name')}>"),
                      presets=[])
    return load_recipe(recipe, preset=preset, overrides=overrides)


def resolve_dataset(dataset, root: str | os.PathLike | None = None) -> tuple[Any, str]:
    """(dataset object, dataset name) from a dataset name (via ``hdrbench.data.get_dataset``) or an object."""
    if isinstance(dataset, str):
        from hdrbench.data import get_dataset

        return get_dataset(dataset, root=root), dataset
    name = getattr(dataset, "name", None) or type(dataset).__name__
    return dataset, str(name)


@contextlib.contextmanager
def deterministic(device: torch.device):
    """Deterministic kernels while training (restores the previous global settings afterwards)."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_cudnn_det = torch.backends.cudnn.deterministic
    # warn_only: a CUDA op without a deterministic kernel warns instead of stopping a long GPU run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.backends.cudnn.deterministic = prev_cudnn_det


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) with ``seed``.

    Every rank uses the same seed: networks start equal (rank 0's weights are broadcast anyway) and a
    task's per-iteration random choices (e.g. the proposed method's reference EV) agree across ranks, as
    they would for the global batch in one process.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def archive_name(identity: str, iteration: Any) -> str:
    """File name a checkpoint is kept under when a fresh run of another configuration starts in its folder."""
    return f"checkpoint-{identity}-it{iteration}.pt"


def _archive_previous(run_dir: Path) -> None:
    """Before a fresh (not resumed) run: keep the run folder's newest good checkpoint as
    ``checkpoint-<identity>-it<iteration>.pt`` (see :func:`training_identity`), so that runs differing in any
    setting that changes what is trained never overwrite each other.

    ``checkpoint.prev.pt`` (an older snapshot of the same run) is removed when ``checkpoint.pt`` is good and
    archived in its place when it is not; an unreadable file is kept as ``checkpoint-unreadable-<n>.pt``.
    """
    kept = False
    for name in (ckpt.CHECKPOINT_NAME, ckpt.PREVIOUS_NAME):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            meta = ckpt.verify_checkpoint(path)
        except InputError:
            n = 0
            while (run_dir / f"checkpoint-unreadable-{n}.pt").exists():
                n += 1
            os.replace(path, run_dir / f"checkpoint-unreadable-{n}.pt")
            continue
        if kept:
            path.unlink()
            continue
        identity = meta.get("identity") or f"hash{meta.get('recipe_hash', 'unknown')}-seed{meta.get('seed', 'x')}"
        os.replace(path, run_dir / archive_name(identity, meta.get("iteration")))
        kept = True


class _Log:
    """Append-only text log (rank 0); one line per event, flushed at once so a killed run keeps its log."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, text: str) -> None:
        if self.path is None:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {text}\n")


def prepare_task(recipe: Recipe, device: torch.device, *, amp: str | None = None, channels_last: bool = False,
                 compile: bool = False) -> TrainTask:
    """Build the recipe's training task on ``device`` the way :func:`train` runs it.

    Networks are moved to ``device`` (channels-last when asked), rank 0's weights are broadcast to every
    rank of a distributed run, networks are compiled when asked (after the broadcast, so the compiled
    modules share the broadcast parameters), and ``task.scaler`` (a ``GradScaler`` for fp16, else None)
    and ``task.amp`` are set. The caller seeds the RNGs first (weights are drawn here).

    Raises:
        NotImplementedError: fp16 asked for a task that does not scale its losses.
    """
    task = get_task_class(recipe["task"])(recipe, device)
    modules = task.modules()
    for module in modules.values():
        module.to(device)
        if channels_last:
            module.to(memory_format=torch.channels_last)
    scaler = None
    if amp == "fp16":
        if not getattr(task, "supports_grad_scaler", False):
            raise NotImplementedError(
                f"amp='fp16' needs loss scaling inside task {recipe['task']!r}, which does not declare "
                "supports_grad_scaler = True; use amp='bf16' (no loss scaling needed)")
        scaler = torch.amp.GradScaler(device.type)
    task.scaler = scaler
    task.amp = amp
    task.prepare_training()
    dist_utils.broadcast_parameters(modules)
    if compile:
        for module in modules.values():
            module.compile()
    return task


def autocast_context(device: torch.device, amp: str | None):
    """The autocast context of one iteration (a null context for fp32)."""
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp]) if amp else contextlib.nullcontext()


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """Move a batch's tensors to ``device`` (4-D ones channels-last when asked)."""
    return _to_device(batch, device, channels_last)


@dataclass(frozen=True)
class _Schedule:
    """The resolved schedule: total iterations, per-process batch size, checkpoint and log intervals."""

    total: int
    batch: int
    save_interval: int
    log_interval: int


def _resolve_schedule(recipe: str | os.PathLike | Mapping[str, Any], *, preset: str | None,
                      overrides: Mapping[str, Any] | None, iters: int | None, batch_size: int | None,
                      save_every: int | None, log_every: int | None) -> tuple[Recipe, _Schedule]:
    """The recipe with the schedule arguments merged in as overrides, and its schedule (arguments as in
    :func:`train`)."""
    overrides = dict(overrides or {})
    for key, value in (("schedule.iters", iters), ("schedule.batch_size", batch_size),
                       ("schedule.save_every", save_every), ("schedule.log_every", log_every)):
        if value is not None:
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"{key.split('.')[1]} must be a positive integer, got {value!r}")
            overrides[key] = value
    recipe = resolve_recipe(recipe, preset=preset, overrides=overrides)
    schedule = recipe.section("schedule")
    if "iters" not in schedule:
        raise InputError(f"recipe {recipe.path}: schedule.iters is not set; pass iters=")
    total = int(schedule["iters"])
    return recipe, _Schedule(total=total, batch=int(schedule.get("batch_size", 1)),
                             save_interval=int(schedule.get("save_every", min(1000, total))),
                             log_interval=int(schedule.get("log_every", 10)))


def _resume_or_archive(run_dir: Path, *, resume: bool, main: bool, log: _Log, device: torch.device,
                       recipe: Recipe, seed: int, data_info: dict[str, Any], modules: Mapping[str, torch.nn.Module],
                       optimizers: Any, schedulers: Any, scaler: Any, data: TrainingData) -> int:
    """The iteration to start from: restored from the run folder's latest good checkpoint when ``resume`` (after
    checking it was trained with the same recipe, seed and data), else 0, archiving what a fresh run would
    replace (rank 0). Every rank waits for the others before returning."""
    start = 0
    if resume:
        found = ckpt.latest(run_dir)
        # Only when checkpoint.pt was passed over: naming the bad files costs another full read.
        bad = ckpt.unreadable(run_dir) if found is None or found.name != ckpt.CHECKPOINT_NAME else []
        if found is None and bad:
            raise InputError(f"cannot resume in {run_dir}: no readable checkpoint; " + "; ".join(bad)
                             + ". Run without --resume to start afresh (the unreadable files are then kept "
                             "as checkpoint-unreadable-<n>.pt, not overwritten).")
        if found is None:
            log.write(f"resume: no checkpoint in {run_dir}; starting from iteration 0")
        else:
            if found.name == ckpt.PREVIOUS_NAME:
                msg = f"resume: {'; '.join(bad)}; resuming from the previous checkpoint {found}"
                log.write(msg)
                print(msg, file=sys.stderr)
            state = ckpt.load_checkpoint(found, map_location=device)
            _check_resumable(state, found, recipe=recipe, seed=seed, data_info=data_info)
            start = ckpt.restore_training(state, modules=modules, optimizers=optimizers, schedulers=schedulers,
                                          scaler=scaler, data=data, path=str(found))
            log.write(f"resumed from {found} at iteration {start}")
    elif main and run_dir.exists():
        _archive_previous(run_dir)
    dist_utils.barrier()
    return start


def _check_resumable(state: Mapping[str, Any], found: Path, *, recipe: Recipe, seed: int,
                     data_info: dict[str, Any]) -> None:
    """Refuse to resume from a checkpoint trained with another recipe, seed or data (InputError naming it)."""
    stored = state.get("recipe", {})
    if resume_key(stored) != resume_key(recipe):
        raise InputError(
            f"cannot resume from {found}: it was trained with recipe hash {state.get('recipe_hash')} "
            f"(preset {stored.get('preset')!r}), this run resolves to {recipe.hash} (preset {recipe.preset!r}); "
            "use the same recipe, preset and batch size, or train without --resume")
    if int(state.get("seed", seed)) != int(seed):
        raise InputError(f"cannot resume from {found}: it was trained with seed {state.get('seed')}, "
                         f"this run has seed {seed}; use the same seed, or train without --resume")
    if "dataset_info" in state and dict(state["dataset_info"]) != data_info:
        raise InputError(f"cannot resume from {found}: it was trained on {state['dataset_info']}, this "
                         f"run's data is {data_info}; use the same dataset options and resolution, or "
                         "train without --resume")


def _checkpoint_saver(ckpt_path: Path, settings: Mapping[str, Any], *, recipe: Recipe, main: bool, log: _Log,
                      modules: Mapping[str, torch.nn.Module], optimizers: Any, schedulers: Any, scaler: Any,
                      data: TrainingData) -> Callable[[int], None]:
    """``save(iteration)``: rank 0 writes the training state to ``ckpt_path`` (rotating the previous one; a
    warning about a corrupt file is logged and printed); every rank then waits for it. ``settings`` are the
    run settings written to ``recipe.json`` (see :func:`train`); the checkpoint's metadata repeats some."""
    total = settings["iters"]

    def save(iteration: int) -> None:
        if main:
            state = ckpt.training_state(
                modules=modules, optimizers=optimizers, schedulers=schedulers, iteration=iteration,
                data_state=data.state_dict(), recipe=recipe, recipe_hash=recipe.hash, scaler=scaler,
                extra={"dataset": settings["dataset"], "preset": recipe.preset, "method": recipe.name,
                       "seed": settings["seed"], "iters": total, "complete": iteration >= total,
                       "amp": settings["amp"], "world_size": settings["world_size"],
                       "identity": settings["identity"], "dataset_info": settings["dataset_info"],
                       "task_info": settings["task"]})
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ckpt.save_checkpoint(ckpt_path, state)
            for w in caught:  # a corrupt checkpoint.pt that was not rotated: say so plainly, once per save
                log.write(str(w.message))
                print(f"warning: {w.message}", file=sys.stderr)
        dist_utils.barrier()

    return save


def _check_finite(values: Mapping[str, float], device: torch.device, *, iteration: int, total: int,
                  run_dir: Path, main: bool, log: _Log) -> None:
    """The finite-loss guard: stop every rank when any rank's loss terms of this iteration are not finite.

    Raises:
        TrainingDivergedError: naming the iteration, the loss term (when on this rank) and the last good
            checkpoint (the weights after this step are not saved).
    """
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if dist_utils.any_true(bool(bad), device):
        last = ckpt.latest(run_dir) if main else None
        term = f"{bad[0]} = {values[bad[0]]}" if bad else "a loss on another rank"
        msg = (f"training stopped: non-finite loss at iteration {iteration + 1} of {total} ({term}); "
               f"weights after this step were not saved; last good checkpoint: "
               f"{last if last else 'none (no checkpoint was written yet)'}")
        log.write(msg)
        raise TrainingDivergedError(msg)


class _Progress:
    """Progress of the loop: the bar (rank 0, when shown) and every ``log_interval`` iterations (and at the
    end) a log line with the loss terms averaged over ranks and the speed since the previous line."""

    def __init__(self, log: _Log, *, total: int, start: int, log_interval: int, device: torch.device, main: bool,
                 show: bool, name: str) -> None:
        from tqdm.auto import tqdm

        self.log, self.total, self.log_interval, self.device, self.main = log, total, log_interval, device, main
        self.bar = tqdm(total=total, initial=start, disable=not (main and show), desc=f"train {name}",
                        unit="it", dynamic_ncols=True)
        self.t0, self.done_since_log = time.perf_counter(), 0

    def step(self, done: int, values: Mapping[str, float]) -> None:
        """Record that iteration ``done`` (1-based) finished with the loss terms ``values``."""
        self.done_since_log += 1
        if self.main:
            self.bar.update(1)
            total_loss = sum(values.values())
            self.bar.set_postfix(loss=f"{total_loss:.4g}", refresh=False)
        if done % self.log_interval == 0 or done == self.total:
            mean = dist_utils.mean_over_ranks(values, self.device)
            elapsed = time.perf_counter() - self.t0
            speed = self.done_since_log / elapsed if elapsed > 0 else float("nan")
            self.log.write(f"iter {done}/{self.total} " + " ".join(f"{k}={v:.6g}" for k, v in sorted(mean.items()))
                           + f" it/s={speed:.3f}")
            self.t0, self.done_since_log = time.perf_counter(), 0

    def close(self) -> None:
        self.bar.close()


def _resolve_device(device: str | torch.device) -> tuple[torch.device, Any]:
    """(this process's device, distributed info): parses a device name, sets up ``torchrun`` ranks."""
    if isinstance(device, str):
        from hdrbench.options import parse_device

        device = parse_device(device, "device")
    info = dist_utils.init_distributed(device)
    device = dist_utils.local_device(device, info)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but CUDA is not available")
    return device, info


def _write_settings(run_dir: Path, log: _Log, recipe: Recipe, settings: Mapping[str, Any], *, start: int) -> None:
    """Write ``recipe.json`` (the resolved recipe and the run settings) and the log's start line (rank 0)."""
    atomic_write_text(run_dir / "recipe.json", json.dumps(settings, indent=2, sort_keys=True) + "\n")
    log.write(f"start {recipe.name} (preset {recipe.preset}, hash {recipe.hash}) on {settings['dataset']}: "
              f"iterations {start}..{settings['iters']}, batch {settings['batch_size_per_process']} x "
              f"{settings['world_size']} processes, device {settings['device']}, amp {settings['amp']}, "
              f"channels_last {settings['channels_last']}, compile {settings['compile']}, seed {settings['seed']}")


def _loop(task: TrainTask, data: TrainingData, save: Callable[[int], None], progress_log: _Progress, *,
          start: int, sched: _Schedule, device: torch.device, amp: str | None, channels_last: bool, run_dir: Path,
          main: bool, log: _Log) -> None:
    """Iterations ``start..total``: one task step each, the finite-loss guard, progress, checkpoints; a run
    already at its total only gets its checkpoint written when there is none."""
    total, scaler = sched.total, task.scaler
    autocast = autocast_context(device, amp)
    if start >= total and main:
        msg = (f"nothing to train: the checkpoint in {run_dir} is already at iteration {start} of {total} "
               "(pass a larger iters to continue it)")
        log.write(msg)
        print(msg, file=sys.stderr)
    for it in range(start, total):
        batch_data = _to_device(data.next_batch(), device, channels_last)
        with autocast:
            losses = task.train_step(batch_data, it)
        if scaler is not None:
            scaler.update()
        values = {k: float(v) for k, v in losses.items()}
        _check_finite(values, device, iteration=it, total=total, run_dir=run_dir, main=main, log=log)
        done = it + 1
        progress_log.step(done, values)
        if done % sched.save_interval == 0 or done == total:
            save(done)
    if start >= total and not (run_dir / ckpt.CHECKPOINT_NAME).exists():
        save(start)


def train(recipe: str | os.PathLike | Mapping[str, Any], dataset, *, iters: int | None = None,
          batch_size: int | None = None, device: str | torch.device = "cpu", amp: str | None = None,
          channels_last: bool = False, compile: bool = False, resume: bool = False,
          out: str | os.PathLike | None = None, seed: int = 0, preset: str | None = None,
          root: str | os.PathLike | None = None, save_every: int | None = None, log_every: int | None = None,
          progress: bool = True, overrides: Mapping[str, Any] | None = None) -> Path:
    """Train a recipe on a dataset and return the final checkpoint's path.

    Stages: :func:`_resolve_schedule`, :func:`_resolve_device`, :func:`_resume_or_archive`, then the loop
    (:func:`_loop`) with its finite-loss guard (:func:`_check_finite`), progress logging (:class:`_Progress`)
    and checkpoints (:func:`_checkpoint_saver`).

    Args:
        recipe: recipe name, path to a ``.toml`` file, or a resolved :class:`Recipe`.
        dataset: dataset name (``synthetic``, ``hdr-folder:<path>``, ...) or a dataset object
            (``scenes(split)``, ``load(split, scene)`` and a ``name`` attribute).
        iters: total iterations (overrides ``schedule.iters``).
        batch_size: samples per process and iteration (overrides ``schedule.batch_size``; the global batch
            is ``batch_size * world_size``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (under ``torchrun`` each process uses ``cuda:LOCAL_RANK``).
        amp: ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast around each iteration. fp16 needs a task that
            scales its losses with the ``scaler`` attribute the trainer sets (``supports_grad_scaler = True``).
        channels_last: convert networks and 4-D batch tensors to the channels-last memory format.
        compile: ``torch.compile`` every network (in place, ``nn.Module.compile``).
        resume: continue from the run folder's latest good checkpoint (``checkpoint.pt``, else
            ``checkpoint.prev.pt``, with a warning). A folder without checkpoint files starts from iteration 0;
            one whose checkpoint files all fail verification is an error naming them (run without ``resume``
            to start afresh: the unreadable files are kept aside, not overwritten).
        out: run folder (default ``runs/<method>__<dataset-slug>``).
        seed: seed of weights, data order and augmentation.
        preset: recipe preset (when ``recipe`` is a name or path).
        root: dataset root (when ``dataset`` is a name).
        save_every: checkpoint interval in iterations (overrides ``schedule.save_every``).
        log_every: log interval in iterations (overrides ``schedule.log_every``).
        progress: show a progress bar on rank 0.
        overrides: further recipe overrides (dotted keys, e.g. ``{"fidelity": "corrected"}``); a ``fidelity``
            override needs a recipe name or path (its implied values are resolved when the file is read).

    Returns:
        Path of the checkpoint written at the last iteration.

    Raises:
        TrainingDivergedError: a loss became NaN/Inf (names the iteration and the loss term).
        InputError: bad options, ``resume`` onto a checkpoint of another configuration (recipe, dataset,
            seed), or ``resume`` in a folder whose checkpoints are all unreadable.
    """
    if amp not in (None, "bf16", "fp16"):
        raise InputError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    recipe, sched = _resolve_schedule(recipe, preset=preset, overrides=overrides, iters=iters, batch_size=batch_size,
                                      save_every=save_every, log_every=log_every)

    device, info = _resolve_device(device)
    dataset_obj, dataset_name = resolve_dataset(dataset, root)
    run_dir = run_dir_for(recipe.name, dataset_name, out)
    data_info = dataset_identity(dataset_obj, dataset_name)
    ckpt_path = run_dir / ckpt.CHECKPOINT_NAME
    main = info.is_main
    if main:  # an unwritable run folder fails now, not at the first checkpoint
        from hdrbench.outputs import check_output_dir

        check_output_dir(run_dir, "run folder")
    log = _Log(run_dir / "train.log" if main else None)

    with deterministic(device):
        seed_everything(seed)
        task = prepare_task(recipe, device, amp=amp, channels_last=channels_last, compile=compile)
        modules, optimizers, schedulers, scaler = task.modules(), task.optimizers(), task.schedulers(), task.scaler
        hooks = dist_utils.synchronize_gradients(optimizers)
        data = TrainingData(dataset_obj, recipe.section("data"), batch_size=sched.batch, seed=seed,
                            rank=info.rank, world_size=info.world_size)
        parts = {"modules": modules, "optimizers": optimizers, "schedulers": schedulers, "scaler": scaler,
                 "data": data}
        start = _resume_or_archive(run_dir, resume=resume, main=main, log=log, device=device, recipe=recipe,
                                   seed=seed, data_info=data_info, **parts)
        settings = {"recipe": dict(recipe), "recipe_hash": recipe.hash, "task": task.describe(),
                    "dataset": dataset_name, "seed": seed, "identity": training_identity(recipe, data_info, seed),
                    "dataset_info": data_info, "device": str(device), "amp": amp, "channels_last": channels_last,
                    "compile": compile, "world_size": info.world_size, "batch_size_per_process": sched.batch,
                    "iters": sched.total}
        if main:
            _write_settings(run_dir, log, recipe, settings, start=start)
        save = _checkpoint_saver(ckpt_path, settings, recipe=recipe, main=main, log=log, **parts)

        for module in modules.values():
            module.train()
        progress_log = _Progress(log, total=sched.total, start=start, log_interval=sched.log_interval,
                                 device=device, main=main, show=progress, name=recipe.name)
        try:
            _loop(task, data, save, progress_log, start=start, sched=sched, device=device, amp=amp,
                  channels_last=channels_last, run_dir=run_dir, main=main, log=log)
        finally:
            progress_log.close()
            for handle in hooks:
                handle.remove()
    if main:
        log.write(f"done: {ckpt_path}")
    return ckpt_path

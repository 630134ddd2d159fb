"""Training checkpoints: written atomically, with everything an exact resume needs.

A checkpoint is one ``torch.save`` file holding the networks, optimisers, schedulers and AMP grad scaler
state dicts, the iteration, the data-order state, the python / numpy / torch (and CUDA) RNG states, the
resolved recipe and its hash. Every value is a tensor or a plain python container, so checkpoints load
with ``torch.load(weights_only=True)`` (no arbitrary code runs when a checkpoint is opened).

Layout of a run folder::

    runs/<method>__<dataset-slug>/checkpoint.pt        the latest good checkpoint
    runs/<method>__<dataset-slug>/checkpoint.prev.pt   the one before it (kept when a new one is written)

A crash or kill while writing leaves both files as they were (see :mod:`hdrbench.atomic`).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdrbench.atomic import atomic_open
from hdrbench.errors import InputError

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"


def rng_state() -> dict[str, Any]:
    """The python, numpy, torch and CUDA RNG states as tensors and plain lists."""
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states returned by :func:`rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
        else:  # a different number of GPUs: restore what maps one to one
            for i, s in enumerate(states[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(s, i)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP / ``torch.compile`` wrappers (state dict keys without prefixes)."""
    while True:
        if hasattr(module, "module") and isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], *, keep_previous: bool = True) -> Path:
    """Write ``state`` to ``path`` atomically; the file it replaces becomes ``checkpoint.prev.pt``.

    The previous file is hard-linked (or copied) to its new name before the new file is renamed over
    ``path``, so at every moment ``path`` holds a complete checkpoint.

    Args:
        path: destination (usually ``<run>/checkpoint.pt``).
        state: what :func:`training_state` returns (tensors and plain containers).
        keep_previous: keep the replaced file as ``<stem>.prev.pt``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_previous and path.exists():
        prev = path.with_name(path.stem + ".prev" + path.suffix)
        tmp = prev.with_name("." + prev.name + ".link")
        try:
            if tmp.exists():
                tmp.unlink()
            os.link(path, tmp)
            os.replace(tmp, prev)
        except OSError:
            # No hard links on this file system: copy atomically instead.
            with open(path, "rb") as src, atomic_open(prev, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
    with atomic_open(path, "wb") as fh:
        torch.save({"format_version": FORMAT_VERSION, **state}, fh)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        InputError: the file is missing, truncated, not a checkpoint, or of a newer format; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise InputError(f"checkpoint {path} is unreadable (truncated or not a checkpoint): "
                         f"{type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise InputError(f"{path} is not an hdrbench checkpoint (no format_version)")
    if state["format_version"] > FORMAT_VERSION:
        raise InputError(f"checkpoint {path} has format {state['format_version']}; this hdrbench reads "
                         f"up to {FORMAT_VERSION}")
    return state


def latest(run_dir: str | os.PathLike) -> Path | None:
    """The newest loadable checkpoint in ``run_dir`` (``checkpoint.pt``, else ``checkpoint.prev.pt``), or None."""
    run_dir = Path(run_dir)
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        path = run_dir / name
        if path.is_file():
            try:
                load_checkpoint(path)
            except InputError:
                continue
            return path
    return None


def peek(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint (everything but the state dicts)."""
    state = load_checkpoint(path)
    return {k: v for k, v in state.items() if k not in ("modules", "optimizers", "schedulers", "scaler", "rng",
                                                          "data")}


def training_state(*, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                   schedulers: dict[str, Any], iteration: int, data_state: dict[str, Any] | None,
                   recipe: dict[str, Any], recipe_hash: str, scaler=None, extra: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Assemble the checkpoint dict (state dicts are taken from unwrapped modules)."""
    return {
        "iteration": int(iteration),
        "modules": {k: unwrap(m).state_dict() for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "scaler": scaler.state_dict() if scaler is not None else None,
        "data": data_state,
        "rng": rng_state(),
        "recipe": dict(recipe),
        "recipe_hash": recipe_hash,
        "torch_version": str(torch.__version__),
        **(extra or {}),
    }


def _check_names(kind: str, have: dict, stored: dict, path: str) -> None:
    if set(have) != set(stored):
        raise InputError(f"checkpoint {path}: {kind} {sorted(stored)} do not match this task's {sorted(have)}")


def restore_modules(modules: dict[str, torch.nn.Module], state: dict[str, Any], path: str = "checkpoint") -> None:
    """Load the networks' weights from a checkpoint dict (strict: every key must match)."""
    _check_names("networks", modules, state["modules"], path)
    for name, module in modules.items():
        unwrap(module).load_state_dict(state["modules"][name])


def restore_training(state: dict[str, Any], *, modules, optimizers, schedulers, scaler=None, data=None,
                     path: str = "checkpoint") -> int:
    """Restore everything :func:`training_state` stored; return the iteration to continue from."""
    restore_modules(modules, state, path)
    _check_names("optimizers", optimizers, state["optimizers"], path)
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    _check_names("schedulers", schedulers, state["schedulers"], path)
    for name, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][name])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if data is not None and state.get("data") is not None:
        data.load_state_dict(state["data"])
    set_rng_state(state["rng"])
    return int(state["iteration"])

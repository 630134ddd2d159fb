"""Training checkpoints: written atomically, with everything an exact resume needs.

A checkpoint is one ``torch.save`` file holding the networks, optimisers, schedulers and AMP grad scaler
state dicts, the iteration, the data-order state, the python / numpy / torch (and CUDA) RNG states, the
resolved recipe and its hash. Every value is a tensor or a plain python container, so checkpoints load
with ``torch.load(weights_only=True)`` (no arbitrary code runs when a checkpoint is opened).

Layout of a run folder::

    runs/<method>__<dataset-slug>/checkpoint.pt        the latest good checkpoint
    runs/<method>__<dataset-slug>/checkpoint.prev.pt   the one before it (kept when a new one is written)

Integrity. Every checkpoint carries ``digest``: a sha256 over its content (every tensor's dtype, shape and
bytes, every plain value), computed when it is written. :func:`verify_checkpoint` loads a file and
recomputes the digest, so a truncated file, a foreign file and a file whose bytes changed after writing
are all caught. :func:`save_checkpoint` verifies the new file before it renames it into place and verifies
the current file before it rotates it to ``checkpoint.prev.pt``: a corrupt ``checkpoint.pt`` is never
rotated over a good previous checkpoint, and a kill at any step of a save leaves at least one good file
(see ``tests/test_train_checkpoint.py``, which crashes a save between each of its steps).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdrbench.atomic import _default_mode
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


def content_digest(state: Any) -> str:
    """sha256 (hex) of a checkpoint's content: tensors by dtype, shape and bytes; other values by type and repr.

    Dict keys are visited in sorted order, so the digest does not depend on insertion order. The
    ``digest`` key itself is left out.
    """
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, dict):
            keys = sorted((k for k in obj if not (obj is state and k == "digest")), key=repr)
            h.update(f"D{len(keys)}".encode())
            for key in keys:
                feed(key)
                feed(obj[key])
        elif isinstance(obj, (list, tuple)):
            h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
            for item in obj:
                feed(item)
        else:
            h.update(f"{type(obj).__name__}:{obj!r};".encode())

    feed(state)
    return h.hexdigest()


def verify_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load ``path`` and check its recorded digest; return the state.

    Files written before digests were recorded (no ``digest`` key) are accepted when they load.

    Raises:
        InputError: missing, truncated, foreign, of a newer format, or its content differs from what was
            written (digest mismatch); the message names the file and the reason.
    """
    state = load_checkpoint(path, map_location=map_location)
    recorded = state.get("digest")
    if recorded is not None and content_digest(state) != recorded:
        raise InputError(f"checkpoint {path} is corrupt: its content does not match the digest recorded when it "
                         "was written")
    return state


def is_good(path: str | os.PathLike) -> bool:
    """Whether :func:`verify_checkpoint` accepts ``path``."""
    try:
        verify_checkpoint(path)
    except InputError:
        return False
    return True


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], *, keep_previous: bool = True) -> Path:
    """Write ``state`` to ``path``, verified; the good file it replaces becomes ``<stem>.prev.pt``.

    Steps (a kill between any two leaves at least one good checkpoint, see the module docstring):

    1. write the new file to a temporary sibling (fsync'ed) with its content digest;
    2. verify the temporary file (it loads and its digest matches) -- else raise, nothing changed;
    3. if ``path`` holds a good checkpoint, hard-link (or atomically copy) it to ``<stem>.prev.pt``; a
       corrupt ``path`` is not rotated (the previous checkpoint stays) and a warning names it;
    4. rename the temporary file over ``path``.

    Args:
        path: destination (usually ``<run>/checkpoint.pt``).
        state: what :func:`training_state` returns (tensors and plain containers).
        keep_previous: keep the replaced file as ``<stem>.prev.pt``.

    Raises:
        InputError: the written file does not read back as written (disk full, failing storage).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"format_version": FORMAT_VERSION, **state}
    full["digest"] = content_digest(full)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _default_mode())
        with os.fdopen(fd, "wb") as fh:
            torch.save(full, fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            verify_checkpoint(tmp)
        except InputError as exc:
            raise InputError(f"checkpoint {path} was not written: the new file did not read back as written "
                             f"({exc})") from None
        if keep_previous and path.exists():
            if is_good(path):
                _rotate(path, path.with_name(path.stem + ".prev" + path.suffix))
            else:
                warnings.warn(f"{path} is unreadable or corrupt; it is replaced by the new checkpoint and not "
                              "kept as the previous one (the previous checkpoint is left as it was)", stacklevel=2)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path


def _rotate(current: Path, prev: Path) -> None:
    """Make ``prev`` a copy of ``current`` atomically (a hard link when the file system has them)."""
    link = prev.with_name("." + prev.name + ".link")
    try:
        if link.exists():
            link.unlink()
        os.link(current, link)
        os.replace(link, prev)
    except OSError:
        # No hard links on this file system: copy atomically instead.
        from hdrbench.atomic import atomic_open

        with open(current, "rb") as src, atomic_open(prev, "wb") as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (see :func:`verify_checkpoint` for the digest check).

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
    """The newest good checkpoint in ``run_dir`` (``checkpoint.pt``, else ``checkpoint.prev.pt``), or None.

    "Good" is :func:`verify_checkpoint`'s test (loads, digest matches).
    """
    run_dir = Path(run_dir)
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        path = run_dir / name
        if path.is_file() and is_good(path):
            return path
    return None


def unreadable(run_dir: str | os.PathLike) -> list[str]:
    """``checkpoint.pt`` / ``checkpoint.prev.pt`` files in ``run_dir`` that exist but fail verification, each
    with its reason."""
    out = []
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        path = Path(run_dir) / name
        if path.is_file():
            try:
                verify_checkpoint(path)
            except InputError as exc:
                out.append(str(exc))
    return out


def peek(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint (everything but the state dicts)."""
    state = load_checkpoint(path)
    return {k: v for k, v in state.items() if k not in ("modules", "optimizers", "schedulers", "scaler", "rng",
                                                          "data")}


def describe(path: str | os.PathLike, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Which checkpoint this is, for records and consoles: path, iteration, iterations planned, complete, and
    whether it is the kept previous checkpoint (a fallback after the latest one failed verification)."""
    path = Path(path)
    meta = peek(path) if meta is None else meta
    return {"path": str(path), "iteration": meta.get("iteration"), "iters": meta.get("iters"),
            "complete": bool(meta.get("complete")), "fallback": path.name == PREVIOUS_NAME}


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

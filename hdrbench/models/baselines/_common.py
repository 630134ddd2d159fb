"""Helpers shared by the baseline networks: input checks, padding, seeded dropout, weight loading.

Kept in one place so that every baseline validates its input and loads third-party state dicts the
same way (and fails with the same kind of message, naming the argument or file at fault).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.errors import ImageReadError, InputError


def check_evs(evs, name: str = "evs", *, integer: bool = False) -> list[float]:
    """Validate a list of relative EVs and return it as floats.

    Args:
        evs: iterable of relative EVs (EV 0 = the input exposure).
        name: argument name used in error messages.
        integer: require whole-stop EVs (recursive/chained methods only produce whole stops).

    Raises:
        InputError: empty list, non-finite values or (with ``integer``) fractional EVs.
    """
    try:
        values = [float(e) for e in evs]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a list of numbers, got {evs!r}") from None
    if not values:
        raise InputError(f"{name} is empty")
    for e in values:
        if not torch.isfinite(torch.tensor(e)):
            raise InputError(f"{name} contains a non-finite EV: {evs!r}")
        if integer and e != round(e):
            raise InputError(f"{name} must be whole stops for this method, got {e} in {values}")
    return values


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (replicate for tiny images) the bottom/right so H and W are multiples of ``multiple``.

    Returns:
        The padded tensor and the original (H, W) to crop back to.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    # Reflection needs the pad to be smaller than the size; fall back to replication for tiny inputs.
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def seeded_dropout(x: torch.Tensor, p: float, active: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Dropout whose mask can come from a CPU generator (device-independent, reproducible).

    Args:
        x: any tensor.
        p: drop probability.
        active: apply dropout at all (the Deep recursive HDRI and DrTMO generators keep it on at test time).
        generator: CPU ``torch.Generator``; None uses the global RNG of ``x``'s device (as ``F.dropout``).
    """
    if not active or p == 0.0:
        return x
    if generator is None:
        return F.dropout(x, p, training=True)
    # The mask is drawn on the CPU and moved, so the same seed gives the same mask on every device.
    keep = torch.rand(x.shape, generator=generator, dtype=torch.float32) >= p
    return x * keep.to(device=x.device, dtype=x.dtype) / (1.0 - p)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def load_state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a PyTorch state dict from ``path`` (tensors only; no pickled code is executed).

    Accepts a bare state dict, ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers and
    ``DataParallel`` ``module.`` prefixes.

    Raises:
        ImageReadError: the file is missing or not a readable PyTorch tensor file.
        InputError: the file holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/foreign files
        raise ImageReadError(f"cannot read weights file {path} as a PyTorch state dict: {exc}") from exc
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"weights file {path} does not hold a state dict of tensors")
    return OrderedDict((re.sub(r"^module\.", "", k), v) for k, v in obj.items())


def load_mapped(model: nn.Module, state: Mapping[str, torch.Tensor], key_map: Callable[[str], str | None],
                source: str) -> None:
    """Load ``state`` into ``model`` after renaming each key with ``key_map``.

    Args:
        model: target module.
        state: foreign state dict.
        key_map: foreign key -> our key (None drops the entry).
        source: file name for messages.

    Raises:
        InputError: keys missing or left over after mapping, or a shape mismatch.
    """
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unexpected = []
    for k, v in state.items():
        new = key_map(k)
        if new is None:
            continue
        if new not in own:
            unexpected.append(k)
            continue
        if tuple(own[new].shape) != tuple(v.shape):
            raise InputError(f"{source}: '{k}' has shape {tuple(v.shape)}, expected {tuple(own[new].shape)} for '{new}'")
        mapped[new] = v
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if unexpected or missing:
        raise InputError(f"{source}: state dict does not match the network (unexpected {unexpected[:5]}, "
                         f"missing {missing[:5]}); is this the right weights file and model size?")
    own.update({k: v.to(own[k].dtype) for k, v in mapped.items()})
    model.load_state_dict(own)


def load_by_order(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load a foreign state dict whose key names are not known, matching entries in registration order.

    Both state dicts list modules in the order they were created; an entry is matched to the next
    entry of ours with the same final name component (``weight``, ``running_mean``, ...) and the same
    shape. Anything left unmatched on either side is an error, so a different architecture is refused.

    Raises:
        InputError: the two state dicts do not pair up one to one.
    """
    own = model.state_dict()
    own_keys = [k for k in own if not k.endswith("num_batches_tracked")]
    foreign = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(own_keys) != len(foreign):
        raise InputError(f"{source}: {len(foreign)} tensors in the file, {len(own_keys)} in the network")
    loaded = {}
    for (fk, fv), ok in zip(foreign, own_keys):
        if fk.rsplit(".", 1)[-1] != ok.rsplit(".", 1)[-1] or tuple(fv.shape) != tuple(own[ok].shape):
            raise InputError(f"{source}: entry '{fk}' {tuple(fv.shape)} does not match '{ok}' {tuple(own[ok].shape)}")
        loaded[ok] = fv.to(own[ok].dtype)
    own.update(loaded)
    model.load_state_dict(own)

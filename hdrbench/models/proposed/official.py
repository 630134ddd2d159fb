"""Checkpoints of the official DiffHDRsyn code: find the six files, map their keys, load them.

The official ``solver.py`` saves each of the six networks as a plain state dict,
``<model_dir>/<step>-<suffix>.ckpt`` with suffix ``gu``/``gd`` (global up/down, ``Generator_up/down``),
``su``/``sd`` (local, ``Structure_up/down``) and ``cbu``/``cbd`` (refinement, ``CombineNet_up/down``);
``test.py`` reads step ``80000``. The released files were saved from CUDA tensors, so they are read with
``map_location`` (and ``weights_only=True``: no pickled code runs).

Key layout (official -> hdrbench, per network; ``k`` counts blocks, the official Sequential indices
also count the parameter-free pooling/upsampling layers):

* ``init_layers.0.`` -> ``stem.``; ``down_layers.{2k}.conv{j}.`` -> ``encoder.{k}.block{j}.``;
  ``up_layers.{2k+1}.conv{j}.`` -> ``decoder.{k}.block{j}.``;
* ``inter_layers.gru_block.{reset_gate,update_gate,out_gate}`` -> ``bottleneck.gru.{reset_gate,
  update_gate,candidate}``; ``inter_layers.conv_block.conv{j}.`` -> ``bottleneck.block.block{j}.``;
  the refinement net's ``inter_layers.0.`` -> ``middle.``;
* global/refinement ``out_conv.conv.`` -> ``head.``; local ``out_conv.`` -> ``head.`` and
  ``final_conv.conv.`` -> ``out.``;
* a conditional instance norm's ``norm.inns.<s>.weight/bias`` (one ``(C,)`` tensor per style s) -> row s of
  ``norm.weight/bias`` ``(S, C)``; plain instance norms keep ``norm.weight/bias``.

The mapping is written from hdrbench's side (:func:`official_keys`), so the expected official key list,
with shapes, follows from the model and is compared with each file in full: a missing file, a missing
or unexpected key and a shape mismatch are errors that name the file, the key and both shapes.

Loading official weights also switches on the two inference quirks of the official test path that
change outputs: the up local net's head at style 0 (``official_local_head``) and the official Canny
grey conversion (``canny_channel_quirk``).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from hdrbench.errors import ImageReadError, InputError
from hdrbench.models.proposed.blocks import ConditionalInstanceNorm2d

#: Official file suffix -> hdrbench network name.
SUFFIXES = {"gu": "global_up", "gd": "global_down", "su": "local_up", "sd": "local_down",
            "cbu": "refine_up", "cbd": "refine_down"}

_COMMON = [
    (r"^stem\.", "init_layers.0."),
    (r"^encoder\.(\d+)\.block(\d)\.", lambda m: f"down_layers.{2 * int(m[1])}.conv{m[2]}."),
    (r"^decoder\.(\d+)\.block(\d)\.", lambda m: f"up_layers.{2 * int(m[1]) + 1}.conv{m[2]}."),
    (r"^bottleneck\.gru\.candidate\.", "inter_layers.gru_block.out_gate."),
    (r"^bottleneck\.gru\.", "inter_layers.gru_block."),
    (r"^bottleneck\.block\.block(\d)\.", r"inter_layers.conv_block.conv\1."),
]
_RULES = {
    "global": _COMMON + [(r"^head\.", "out_conv.conv.")],
    "local": _COMMON + [(r"^head\.", "out_conv."), (r"^out\.", "final_conv.conv.")],
    "refine": _COMMON + [(r"^middle\.", "inter_layers.0."), (r"^head\.", "out_conv.conv.")],
}


def _official_name(kind: str, key: str) -> str:
    for pattern, repl in _RULES[kind]:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise InputError(f"no official key for hdrbench parameter {key!r} of a {kind} network")


@dataclass(frozen=True)
class KeySlot:
    """Where one official tensor goes: hdrbench key, row (a CIN style; None for the whole tensor), shape."""

    key: str
    row: int | None
    shape: tuple[int, ...]


def official_keys(net: nn.Module, kind: str) -> "OrderedDict[str, KeySlot]":
    """The official state-dict keys of one hdrbench network, with where each goes and its expected shape.

    Args:
        net: a :class:`GlobalNet`, :class:`LocalNet` or :class:`RefineNet`.
        kind: ``"global"``, ``"local"`` or ``"refine"``.

    Returns:
        Official key -> :class:`KeySlot`, in hdrbench's registration order.
    """
    cin = {name for name, mod in net.named_modules() if isinstance(mod, ConditionalInstanceNorm2d)}
    out: OrderedDict[str, KeySlot] = OrderedDict()
    for key, tensor in net.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        base = _official_name(kind, key)
        if owner in cin:
            prefix = base[: -len(leaf)]  # "...norm."
            for s in range(tensor.shape[0]):
                out[f"{prefix}inns.{s}.{leaf}"] = KeySlot(key, s, tuple(tensor.shape[1:]))
        else:
            out[base] = KeySlot(key, None, tuple(tensor.shape))
    return out


@dataclass
class OfficialWeights:
    """The six checkpoint files of one training step."""

    step: str
    files: dict[str, Path] = field(default_factory=dict)  # suffix -> path

    def describe(self) -> dict:
        """What records and run configurations store about the weights that ran."""
        return {"format": "DiffHDRsyn official checkpoints", "step": self.step,
                "files": {s: str(p) for s, p in self.files.items()}}


def resolve_official_weights(path: str | os.PathLike) -> OfficialWeights:
    """Locate the six files of official weights.

    Args:
        path: a folder holding ``<step>-gu.ckpt`` ... ``<step>-cbd.ckpt`` of exactly one step, or a file prefix
            ``DIR/<step>`` naming the step.

    Raises:
        InputError: no such folder; no step or several steps in the folder (the message lists them); a file of
            the step missing (named).
    """
    p = Path(path)
    if p.is_dir():
        folder = p
        steps = sorted({m[1] for f in p.iterdir()
                        if (m := re.fullmatch(r"(.+)-(gu|gd|su|sd|cbu|cbd)\.ckpt", f.name))})
        if not steps:
            raise InputError(f"official weights folder {p} holds no '<step>-gu.ckpt' ... '<step>-cbd.ckpt' files")
        if len(steps) > 1:
            raise InputError(f"official weights folder {p} holds several steps {steps}; name one as "
                             f"{p / steps[-1]} (a file prefix)")
        step = steps[0]
    elif p.parent.is_dir() and not p.exists():
        folder, step = p.parent, p.name
    elif p.is_file():
        raise InputError(f"--weights for the proposed method takes a folder or a prefix DIR/<step> of the six "
                         f"official .ckpt files, not one file: {p}")
    else:
        raise InputError(f"official weights not found: {p} (expected a folder of <step>-gu.ckpt ... files or a "
                         "prefix DIR/<step>)")
    files = {s: folder / f"{step}-{s}.ckpt" for s in SUFFIXES}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise InputError(f"official weights of step {step!r} incomplete: missing {', '.join(missing)}")
    return OfficialWeights(step, files)


def _read(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ImageReadError(f"cannot read official checkpoint {path} as a PyTorch state dict: {exc}") from exc
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"official checkpoint {path} does not hold a plain state dict of tensors")
    return obj


def load_state_into(net: nn.Module, kind: str, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy one official state dict into ``net`` after checking every key and shape.

    Raises:
        InputError: a missing or unexpected key, or a shape mismatch (file, key and both shapes named).
    """
    expected = official_keys(net, kind)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:6]}" + (f" (+{len(missing) - 6} more)" if len(missing) > 6 else ""))
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:6]}"
                         + (f" (+{len(unexpected) - 6} more)" if len(unexpected) > 6 else ""))
        raise InputError(f"official checkpoint {source} does not match the {kind} network: {'; '.join(parts)}")
    own = {k: v.clone() for k, v in net.state_dict().items()}
    for key, slot in expected.items():
        t = state[key]
        if tuple(t.shape) != slot.shape:
            raise InputError(f"official checkpoint {source}: key {key!r} has shape {tuple(t.shape)}, the network's "
                             f"{slot.key!r}" + (f" (style {slot.row})" if slot.row is not None else "")
                             + f" needs {slot.shape}; is the model the official size (preset 'paper')?")
        if slot.row is None:
            own[slot.key] = t.to(own[slot.key].dtype)
        else:
            own[slot.key][slot.row] = t.to(own[slot.key].dtype)
    net.load_state_dict(own, strict=True)


def load_official_weights(model, path: str | os.PathLike) -> OfficialWeights:
    """Load official checkpoints into a :class:`~hdrbench.models.proposed.ProposedModel` and switch on the
    official inference quirks (up local head at style 0, official Canny grey conversion).

    Args:
        model: a full model (decomposition, recurrent bottlenecks, CIN, EV -3..+3) at the official widths.
        path: see :func:`resolve_official_weights`.

    Returns:
        The :class:`OfficialWeights` loaded; also stored as ``model.official_weights``.

    Raises:
        InputError: see :func:`resolve_official_weights` and :func:`load_state_into`; a model variant the
            official networks do not have.
    """
    if not (model.decomposition and model.recurrent and model.cin):
        raise InputError("official weights need the full model (decomposition, recurrent and cin all true)")
    weights = resolve_official_weights(path)
    nets = model.networks()
    for suffix, name in SUFFIXES.items():
        state = _read(weights.files[suffix])
        load_state_into(nets[name], name.split("_")[0], state, str(weights.files[suffix]))
        del state
    model.official_local_head = True
    model.canny_channel_quirk = True
    model.official_weights = weights.describe()
    return weights

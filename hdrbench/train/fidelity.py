"""The fidelity switch of the proposed method and its ablation ladder: ``fidelity = "official" | "corrected"``.

A recipe of task ``proposed`` names one fidelity (a top-level key; presets and ``--method-option
fidelity=...`` may set it). The fidelity implies a value for each key of :data:`IMPLIED`; a key the recipe,
its preset or an override sets explicitly keeps its explicit value. :func:`apply_fidelity` writes the implied
values into the resolved recipe, so the run's ``recipe.json``, checkpoint and records show what ran.

* ``corrected``: hdrbench's behaviour before the switch existed, bit for bit (the official code's bugs fixed,
  one joint backward per pass, HDR loss on mean-normalised images).
* ``official``: what the official training code (``solver.py``, snapshot f17da04) does, item by item:

  ===============================  =====================  ==============================================
  key                              corrected              official
  ===============================  =====================  ==============================================
  ``loss.routing``                 ``"joint"``            ``"official"``: per-loss gradients, each loss
                                                          steps only its networks; the stack pass's HDR
                                                          loss steps all six a second time
  ``optim.per_network``            ``false`` (3 groups)   ``true`` (six Adam optimisers, one per network)
  ``loss.hdr_layer``               ``{}`` (library)       ``"official"``: ``synthesis.OFFICIAL_LAYER``
                                                          (nearest-CDF sampling, lambda 20, per-code LUT
                                                          slope, channel-coupled fallback, official
                                                          normalisation of the recovered curve)
  ``loss.hdr_normalize``           ``"mean"``             ``"none"`` (target = dataset HDR as read)
  ``loss.stack_cobi_grad``         ``true``               ``false`` (stack-pass CoBi without gradient)
  ``loss.cobi_official_swap``      ``false`` (h .5, .1)   ``true`` (h = 0.5, w_sp = 0.5)
  ``loss.stack_mean_slots``        ``"generated"`` (6)    ``"stack"`` (7, the input slot included)
  ``loss.canny_channel_quirk``     ``false`` (BT.601)     ``true`` (official swapped grey weights)
  ``model.canny_channel_quirk``    ``false``              ``true``
  ``model.official_local_head``    ``false``              ``true`` (up local head always at style 0)
  ``data.requantize_bits``         ``0`` (off)            ``8`` (8-bit codes after augmentation)
  ===============================  =====================  ==============================================
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from hdrbench.errors import InputError

FIDELITIES = ("official", "corrected")
#: The task whose recipes take a fidelity.
FIDELITY_TASK = "proposed"

#: Dotted key -> (corrected value, official value).
IMPLIED: dict[str, tuple[Any, Any]] = {
    "loss.routing": ("joint", "official"),
    "optim.per_network": (False, True),
    "loss.hdr_layer": ({}, "official"),
    "loss.hdr_normalize": ("mean", "none"),
    "loss.stack_cobi_grad": (True, False),
    "loss.cobi_official_swap": (False, True),
    "loss.stack_mean_slots": ("generated", "stack"),
    "loss.canny_channel_quirk": (False, True),
    "model.canny_channel_quirk": (False, True),
    "model.official_local_head": (False, True),
    "data.requantize_bits": (0, 8),
}


def implied_values(fidelity: str) -> dict[str, Any]:
    """The dotted keys and values ``fidelity`` implies (see the module table)."""
    if fidelity not in FIDELITIES:
        raise InputError(f"fidelity must be one of {', '.join(FIDELITIES)}, got {fidelity!r}")
    return {key: copy.deepcopy(official if fidelity == "official" else corrected)
            for key, (corrected, official) in IMPLIED.items()}


def apply_fidelity(recipe: Mapping[str, Any], path: Path | str = "<recipe>") -> dict[str, Any]:
    """Fill the keys the recipe's ``fidelity`` implies, keeping every key the recipe sets itself.

    Args:
        recipe: a merged recipe (file, preset and overrides).
        path: the recipe file, for error messages.

    Returns:
        A new dict; unchanged when the recipe has no ``fidelity`` key.

    Raises:
        InputError: an unknown fidelity, or a fidelity on a recipe whose task is not ``proposed``.
    """
    out = copy.deepcopy(dict(recipe))
    if "fidelity" not in out:
        return out
    fidelity = out["fidelity"]
    if not isinstance(fidelity, str) or fidelity not in FIDELITIES:
        raise InputError(f"recipe {path}: fidelity must be one of {', '.join(repr(f) for f in FIDELITIES)}, "
                         f"got {fidelity!r}")
    if out.get("task") != FIDELITY_TASK:
        raise InputError(f"recipe {path}: fidelity applies to recipes of task {FIDELITY_TASK!r} (the proposed "
                         f"method and its ladder), this recipe's task is {out.get('task')!r}")
    for dotted, value in implied_values(fidelity).items():
        section, key = dotted.split(".")
        table = out.setdefault(section, {})
        if not isinstance(table, dict):
            raise InputError(f"recipe {path}: [{section}] must be a table")
        table.setdefault(key, value)
    return out

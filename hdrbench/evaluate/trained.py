"""Trained methods: a recipe's checkpoint turned into an evaluation :class:`~hdrbench.evaluate.methods.Method`.

``get_method("proposed", dataset="synthetic")`` ends here. The checkpoint is looked up in the run folder
of the recipe and the dataset it was trained on (``runs/<recipe>__<dataset-slug>/checkpoint.pt``, see
:mod:`hdrbench.train.trainer`); the networks are rebuilt from the recipe *stored in the checkpoint* (the
configuration that was trained, whatever the recipe file says today) by the recipe's training task, and
the task's inference model answers ``predict_stack`` / ``predict_hdr``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from hdrbench.errors import InputError
from hdrbench.evaluate.methods import KINDS, Method


class TrainedMethod(Method):
    """A trained network behind the :class:`Method` interface.

    Args:
        name: recipe name.
        model: the task's inference model (``kind``, ``predict_stack`` and/or ``predict_hdr``, optional
            ``inverse_crf``: ``"debevec"`` (estimate from the predicted stack, the default), another name the
            synthesis layer knows (``"linear"``...), a (3, 256) table, or a method returning one).
        recipe_hash: hash of the trained recipe.
        checkpoint: path of the loaded checkpoint.
        info: checkpoint metadata recorded in :meth:`config` (iteration, preset, dataset, completeness).
        device: device of the model.
    """

    def __init__(self, name: str, model: torch.nn.Module, *, recipe_hash: str, checkpoint: Path,
                 info: dict[str, Any], device: torch.device) -> None:
        self.name = name
        self.model = model.eval()
        self.kind = getattr(model, "kind", None)
        if self.kind not in KINDS:
            raise InputError(f"recipe {name!r}: its inference model {type(model).__name__} declares kind "
                             f"{self.kind!r}; expected one of {KINDS}")
        own = getattr(model, "inverse_crf", "debevec")
        self._own_crf = own
        self.merge_crf = "estimate" if isinstance(own, str) and own.lower() in ("debevec", "estimate") else "own"
        self.recipe_hash = recipe_hash
        self.checkpoint = Path(checkpoint)
        self.info = info
        self.device = torch.device(device)
        self.citation = str(info.get("card", {}).get("paper", "")) if isinstance(info.get("card"), dict) else ""

    def to(self, device: torch.device | str) -> "TrainedMethod":
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def predict_stack(self, ldr: torch.Tensor, evs: list[float]) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, len(evs), 3, H, W) in [0, 1] (see :class:`Method`)."""
        if not hasattr(self.model, "predict_stack"):
            return super().predict_stack(ldr, evs)
        with torch.inference_mode():
            out = self.model.predict_stack(ldr.to(self.device, torch.float32), list(evs))
        return out.to(ldr.device)

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, H, W) linear relative HDR (see :class:`Method`)."""
        if not hasattr(self.model, "predict_hdr"):
            return super().predict_hdr(ldr)
        with torch.inference_mode():
            out = self.model.predict_hdr(ldr.to(self.device, torch.float32))
        return out.to(ldr.device)

    def inverse_crf(self):
        """The model's own inverse CRF (a name the synthesis layer knows, or a table)."""
        own = self._own_crf
        if callable(own) and not isinstance(own, torch.Tensor):
            own = own()
        if isinstance(own, torch.Tensor):
            return own.to(self.device)
        return own

    def config(self) -> dict[str, Any]:
        out = {**super().config(), "checkpoint": str(self.checkpoint),
               **{k: self.info.get(k) for k in ("iteration", "iters", "complete", "fallback", "preset", "dataset",
                                                "seed", "identity", "fidelity", "training")}}
        if self.info.get("weights"):
            out["weights"] = self.info["weights"]
        if self.info.get("official_weights"):
            out["official_weights"] = self.info["official_weights"]
        return out

    def caveat(self) -> str:
        """Why scores of this model are not those of a finished training run ("" when they are).

        An incomplete checkpoint (a run stopped before its last iteration) or a fallback (``checkpoint.prev.pt``
        because ``checkpoint.pt`` failed verification, or a kept checkpoint of an earlier configuration because
        the run folder has no good current one) is a provisional model.
        Official weights are a finished model.
        """
        if "weights" in self.info:
            return ""
        parts = []
        if not self.info.get("complete"):
            parts.append(f"incomplete checkpoint: iteration {self.info.get('iteration')} of {self.info.get('iters')}")
        if self.info.get("fallback"):
            parts.append(f"fallback checkpoint: {self.checkpoint.name}")
        return "; ".join(parts)

    def describe_checkpoint(self) -> str:
        """One line for consoles and logs: which checkpoint is scored, its iteration and completeness."""
        if "weights" in self.info:
            return f"official weights {self.checkpoint}"
        state = "complete" if self.info.get("complete") else "INCOMPLETE"
        fallback = (", fallback: the run folder's checkpoint.pt is missing or failed verification"
                    if self.info.get("fallback") else "")
        return (f"checkpoint {self.checkpoint} (iteration {self.info.get('iteration')} of {self.info.get('iters')}, "
                f"{state}{fallback})")


def check_publishable(method: Method, allow_incomplete: bool = False) -> str:
    """The leaderboard caveat of ``method`` (see :meth:`TrainedMethod.caveat`); "" for training-free methods.

    Raises:
        InputError: the method is an incomplete or fallback checkpoint and ``allow_incomplete`` is False;
            the message names the checkpoint and how to proceed.
    """
    caveat = method.caveat() if isinstance(method, TrainedMethod) else ""
    if caveat and not allow_incomplete:
        raise InputError(f"refusing to score {method.describe_checkpoint()} for the leaderboard: {caveat}. Finish "
                         "the training (hdrbench train --resume, or hdrbench run), or pass --allow-incomplete to "
                         "score it anyway (its leaderboard rows are then marked), or --no-leaderboard")
    return caveat


def find_checkpoint(name: str, dataset: str, *, preset: str | None = None,
                    runs: str | os.PathLike | None = None) -> Path:
    """The checkpoint of recipe ``name`` trained on ``dataset`` (optionally of one preset).

    Looks at ``<runs>/<name>__<dataset-slug>/checkpoint.pt`` first (``checkpoint.prev.pt`` when it fails
    verification: the method is then marked as a fallback), then at checkpoints kept there from earlier
    configurations (``checkpoint-<identity>-it<n>.pt``, newest first).

    Raises:
        InputError: nothing trained for that recipe, dataset (and preset); the message says how to train it.
    """
    from hdrbench.train import checkpoint as ckpt
    from hdrbench.train.trainer import run_dir_for

    run_dir = run_dir_for(name, dataset, None) if runs is None else Path(runs) / run_dir_for(name, dataset).name
    candidates = []
    latest = ckpt.latest(run_dir)
    if latest is not None:
        candidates.append(latest)
    candidates += sorted(run_dir.glob("checkpoint-*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    seen = []
    for path in candidates:
        try:
            meta = ckpt.peek(path)
        except InputError:
            continue
        seen.append(f"{path.name} (preset {meta.get('preset')!r}, iteration {meta.get('iteration')})")
        if meta.get("method", name) != name:
            continue
        if preset is None or meta.get("preset") == preset:
            return path
    hint = f"hdrbench train --method {name} --dataset {dataset}" + (f" --preset {preset}" if preset else "")
    found = f"; found only {', '.join(seen)}" if seen else ""
    raise InputError(f"no trained checkpoint of recipe {name!r}" + (f" (preset {preset!r})" if preset else "")
                     + f" on dataset {dataset!r} in {run_dir}{found}; train it first: {hint} "
                     "(or run 'hdrbench run', which trains when needed)")


def load_trained_method(name: str, *, dataset: str | None, device: str | torch.device = "cpu",
                        preset: str | None = None, checkpoint: str | os.PathLike | None = None,
                        **options: Any) -> TrainedMethod:
    """Build the evaluation method of a trained recipe.

    Args:
        name: recipe name (``methods/<name>.toml``).
        dataset: name of the dataset the recipe was trained on (locates the run folder); may be None when
            ``checkpoint`` is given.
        device: device to run the networks on.
        preset: accept only a checkpoint trained with this preset.
        checkpoint: an explicit checkpoint file (skips the lookup).
        **options: ``weights=PATH`` evaluates the recipe's network initialised from an official weights file
            (``[model] weights``; the baseline cards say which arches can read one) instead of a checkpoint;
            ``preset`` then chooses the network size (default ``paper``, the size official weights have).

    Raises:
        InputError: no checkpoint, a checkpoint of another recipe, or unknown options.
    """
    from hdrbench.options import check_option_names
    from hdrbench.train import checkpoint as ckpt
    from hdrbench.train.recipes import Recipe
    from hdrbench.train.trainer import get_task_class

    weights = options.pop("weights", None)
    check_option_names(options, ["weights"], flag="method option", owner=f"trained method {name!r}")
    if weights is not None:
        if checkpoint is not None:
            raise InputError(f"trained method {name!r}: give a checkpoint or official weights, not both")
        return _from_official_weights(name, weights, preset=preset or "paper", device=torch.device(device))
    looked_up = checkpoint is None
    if looked_up:
        if dataset is None:
            raise InputError(f"trained method {name!r}: give the dataset it was trained on (or a checkpoint path)")
        checkpoint = find_checkpoint(name, dataset, preset=preset)
    path = Path(checkpoint)
    device = torch.device(device)
    state = ckpt.verify_checkpoint(path, map_location=device)
    recipe = state.get("recipe") or {}
    if recipe.get("name") != name:
        raise InputError(f"checkpoint {path} holds recipe {recipe.get('name')!r}, not {name!r}")
    if preset is not None and state.get("preset") != preset:
        raise InputError(f"checkpoint {path} was trained with preset {state.get('preset')!r}, not {preset!r}")
    recipe = Recipe(recipe, path=path, presets=[])
    task = get_task_class(recipe["task"])(recipe, device)
    ckpt.restore_modules(task.modules(), state, str(path))
    model = task.inference_model().to(device).eval()
    info = {k: v for k, v in state.items() if k in ("iteration", "iters", "complete", "preset", "dataset", "seed",
                                                    "identity")}
    # Looked up without a preset, anything but checkpoint.pt means the run folder's latest checkpoint failed
    # verification (checkpoint.prev.pt) or is missing (a kept checkpoint of an earlier configuration).
    info["fallback"] = path.name == ckpt.PREVIOUS_NAME or (looked_up and preset is None
                                                           and path.name != ckpt.CHECKPOINT_NAME)
    info["card"] = recipe.get("card", {})
    info["fidelity"] = recipe.get("fidelity")
    info["training"] = state.get("task_info")
    return TrainedMethod(name, model, recipe_hash=str(state.get("recipe_hash", "")), checkpoint=path, info=info,
                         device=device)


def _from_official_weights(name: str, weights: str | os.PathLike, *, preset: str, device: torch.device) -> TrainedMethod:
    """The inference model of recipe ``name`` at ``preset``, built with ``[model] weights = weights``.

    Recipes of the ``proposed`` task build their :class:`~hdrbench.models.proposed.ProposedModel` directly from
    the recipe's ``arch`` and ``[model]`` (inference needs none of the training task's losses or optimisers);
    the official checkpoints' step and files are then part of the method's configuration, and its recipe hash
    is suffixed ``+official-<step>`` so that every record says that official weights ran.
    """
    from hdrbench.models import build_arch
    from hdrbench.train.recipes import load_recipe
    from hdrbench.train.trainer import get_task_class

    try:
        recipe = load_recipe(name, preset=preset, overrides={"model.weights": str(weights)})
        if recipe.get("task") == "proposed":
            model = build_arch(recipe.get("arch", "proposed"), **dict(recipe.get("model") or {}))
        else:
            model = get_task_class(recipe["task"])(recipe, device).inference_model()
    except TypeError as exc:  # the arch has no ``weights`` argument
        raise InputError(f"recipe {name!r} cannot load official weights ({exc}); see the card in "
                         f"methods/{name}.toml for why") from None
    model = model.to(device).eval()
    info = {"preset": preset, "weights": str(weights), "card": dict(recipe.get("card") or {})}
    recipe_hash = recipe.hash
    official = getattr(model, "official_weights", None)
    if official:
        # The recipe without the machine-specific weights path, plus the checkpoints' step.
        info["official_weights"] = official
        recipe_hash = f"{load_recipe(name, preset=preset).hash}+official-{official['step']}"
    return TrainedMethod(name, model, recipe_hash=recipe_hash, checkpoint=Path(weights), info=info, device=device)

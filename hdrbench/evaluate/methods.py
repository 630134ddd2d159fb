"""The method interface and the method registry.

A method maps one LDR image to an exposure stack (``kind = "stack"``) and/or directly to an HDR image
(``kind = "direct"``). For stack methods the harness merges the predicted stack with the synthesis
layer, using either an inverse CRF estimated from that stack (``merge_crf = "estimate"``, Debevec &
Malik as in the paper's code) or the method's own curve (``merge_crf = "own"``, :meth:`Method.inverse_crf`).

Training-free methods are registered here by explicit import of :mod:`hdrbench.evaluate.training_free`.
Trained methods are recipes (``methods/<name>.toml``); :func:`get_method` hands those to
``hdrbench.evaluate.trained.load_trained_method``, which loads the checkpoint.
"""

from __future__ import annotations

import inspect
from abc import ABC
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from hdrbench.errors import InputError, UnknownNameError
from hdrbench.options import check_option_names
from hdrbench.paths import recipes_dir
from hdrbench.registry import Registry

KINDS = ("stack", "direct")
MERGE_CRFS = ("estimate", "own")


@dataclass
class SceneContext:
    """What the harness knows about the scene being evaluated, for oracle (training-free) methods.

    Trained methods never look at it. Training-free methods that need ground truth (``gt-stack``) or a
    linearisation (``ldr-linear``, ``exposure-scaling``, the inverse tone-mapping operators) declare
    ``uses_context = True`` and read it in :meth:`Method.prepare`.

    Attributes:
        scene: scene name.
        evs: the ground-truth stack's EVs.
        stack: (1, E, 3, H, W) ground-truth stack in [0, 1] on the evaluation device, or None.
        reference_inverse_crf: callable returning the scene's reference inverse CRF, (1, 3, 256) float32 on
            the device, normalised as the synthesis layer normalises it. It is the Debevec-Malik curve recovered
            from the ground-truth stack (the same curve the ``gt-stack`` upper bound merges with), computed on
            first use and cached.
    """

    scene: str
    evs: list[float]
    stack: torch.Tensor | None
    reference_inverse_crf: Callable[[], torch.Tensor] = field(repr=False, default=None)


class Method(ABC):
    """Base class of every evaluated method.

    Class attributes:
        name: registry name (set by :func:`register_method`).
        kind: ``"stack"`` (implements :meth:`predict_stack`) or ``"direct"`` (implements :meth:`predict_hdr`).
        merge_crf: for stack methods, ``"estimate"`` or ``"own"`` (see the module docstring).
        uses_context: the harness calls :meth:`prepare` with a :class:`SceneContext` before each scene.
        recipe_hash: short hash of the resolved recipe (empty for training-free methods).
        citation: where the method comes from.
    """

    name: str = ""
    kind: str = "stack"
    merge_crf: str = "estimate"
    uses_context: bool = False
    recipe_hash: str = ""
    citation: str = ""

    def prepare(self, context: SceneContext) -> None:
        """Receive the scene context (only called when ``uses_context`` is True)."""

    def predict_stack(self, ldr: torch.Tensor, evs: list[float]) -> torch.Tensor:
        """Generate an exposure stack from the input.

        Args:
            ldr: (N, 3, H, W) input images (EV 0) in [0, 1].
            evs: EVs to produce, relative to the input (includes 0).

        Returns:
            (N, len(evs), 3, H, W) in [0, 1]; entry ``evs.index(0)`` is the input itself or its reproduction.
        """
        raise NotImplementedError(f"method {self.name!r} does not generate stacks (kind {self.kind!r})")

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        """Reconstruct HDR directly.

        Args:
            ldr: (N, 3, H, W) input images in [0, 1].

        Returns:
            (N, 3, H, W) linear relative radiance, >= 0.
        """
        raise NotImplementedError(f"method {self.name!r} does not reconstruct HDR directly (kind {self.kind!r})")

    def inverse_crf(self) -> torch.Tensor:
        """For ``merge_crf == "own"``: the inverse CRF table (N, 3, 256) to merge the last predicted stack with."""
        raise NotImplementedError(f"method {self.name!r} has no inverse CRF of its own")

    def to(self, device: torch.device | str) -> "Method":
        """Move any tensors/networks to ``device``; training-free methods hold none."""
        return self

    def config(self) -> dict[str, Any]:
        """The settings that identify this method's numbers (written to the run configuration)."""
        return {"name": self.name, "kind": self.kind, "merge_crf": self.merge_crf, "recipe_hash": self.recipe_hash}


#: Training-free methods by name (filled by :mod:`hdrbench.evaluate.training_free`).
METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: register a :class:`Method` subclass under ``name`` and set its ``name``."""

    def _add(cls: type[Method]) -> type[Method]:
        if cls.kind not in KINDS:
            raise ValueError(f"method {name!r}: kind must be one of {KINDS}, got {cls.kind!r}")
        if cls.merge_crf not in MERGE_CRFS:
            raise ValueError(f"method {name!r}: merge_crf must be one of {MERGE_CRFS}, got {cls.merge_crf!r}")
        cls.name = name
        METHODS.register(name, cls)
        return cls

    return _add


def _load_builtins() -> None:
    # Explicit import: registration happens here, never by scanning files.
    from hdrbench.evaluate import training_free  # noqa: F401


def recipe_names() -> list[str]:
    """Trained-method recipes in ``methods/`` (names starting with ``_`` are private fragments)."""
    d = recipes_dir()
    return sorted(p.stem for p in d.glob("*.toml") if not p.stem.startswith("_")) if d.is_dir() else []


def list_methods() -> list[str]:
    """Every method name: training-free methods and trained recipes, sorted."""
    _load_builtins()
    return sorted(set(METHODS.names()) | set(recipe_names()))


def is_training_free(name: str) -> bool:
    """True for a registered training-free method."""
    _load_builtins()
    return name in METHODS


def _unknown(name: str) -> UnknownNameError:
    everything: Registry[str] = Registry("method")
    for n in list_methods():
        everything.register(n, n)
    return UnknownNameError(everything.unknown_message(name))


def accepted_options(cls: type) -> list[str] | None:
    """Keyword names that ``cls(...)`` takes; None when it takes ``**kwargs`` (then any name is passed on)."""
    params = list(inspect.signature(cls.__init__).parameters.values())
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def get_method(name: str, **kwargs: Any) -> Method:
    """Build a method by name.

    Args:
        name: a training-free method (``gt-stack``, ``ldr-linear``, ...) or a recipe in ``methods/``.
        **kwargs: options. Training-free methods take their own options and ignore ``dataset``/``device``;
            trained methods get everything (``dataset``, ``device``, ...) through ``load_trained_method``.

    Raises:
        UnknownNameError: neither a training-free method nor a recipe (with close matches over both).
        NotImplementedError: a recipe exists but the trained-method loader is not available.
    """
    _load_builtins()
    if name in METHODS:
        cls = METHODS.get(name)
        options = {k: v for k, v in kwargs.items() if k not in ("dataset", "device")}
        accepted = accepted_options(cls)
        if accepted is not None:
            check_option_names(options, accepted, flag="method option", owner=f"method {name!r}")
        try:
            method = cls(**options)
        except TypeError as exc:
            raise InputError(f"method {name!r}: bad options {sorted(options)}: {exc}") from None
        return method.to(kwargs.get("device", "cpu"))
    if (recipes_dir() / f"{name}.toml").is_file():
        from hdrbench.evaluate.trained import load_trained_method

        kwargs.setdefault("device", "cpu")
        dataset = kwargs.pop("dataset", None)
        device = kwargs.pop("device")
        return load_trained_method(name, dataset=dataset, device=device, **kwargs)
    raise _unknown(name)


def describe_method(name: str) -> str:
    """Human-readable description: kind, merge policy, options and citation; recipes describe themselves."""
    _load_builtins()
    if name in METHODS:
        cls = METHODS.get(name)
        doc = inspect.cleandoc(cls.__doc__ or "")
        lines = [f"{name}  (training-free, kind: {cls.kind}" + (f", merge CRF: {cls.merge_crf}" if cls.kind == "stack"
                                                                 else "") + ")", "", doc]
        if cls.citation:
            lines += ["", f"Reference: {cls.citation}"]
        return "\n".join(lines)
    path = recipes_dir() / f"{name}.toml"
    if path.is_file():
        from hdrbench.train.recipes import describe

        return describe(name)
    raise _unknown(name)

"""Method recipes: ``methods/<name>.toml`` files resolved into one plain configuration dict.

A recipe names an arch and a training task and carries the switches, loss weights, optimiser, schedule
and data settings of one runnable method. Resolution order (later wins, tables merge key by key):

1. the recipe named by ``extends`` (recursively, resolved the same way),
2. the recipe file itself,
3. the chosen preset (``[presets.<preset>.*]``; ``default_preset`` when none is asked for),
4. caller overrides (``{"schedule.iters": 10}`` or nested dicts),
5. the values the recipe's ``fidelity`` implies, for every such key not set by 1-4
   (:mod:`hdrbench.train.fidelity`).

The resolved recipe is a :class:`Recipe` (a ``dict``) whose :attr:`Recipe.hash` identifies the
training-relevant configuration: run folders and result rows carry it, and ``hdrbench run`` retrains
when it changes.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from hdrbench.errors import InputError
from hdrbench.paths import recipes_dir
from hdrbench.train.fidelity import apply_fidelity
from hdrbench.registry import Registry

#: Top-level keys a recipe file may have.
TOP_LEVEL_KEYS = (
    "name",
    "description",
    "arch",
    "task",
    "extends",
    "default_preset",
    "fidelity",
    "card",
    "model",
    "loss",
    "optim",
    "schedule",
    "data",
    "presets",
)
#: Keys every resolved recipe must have.
REQUIRED_KEYS = ("name", "arch", "task")
#: Tables (sections) a recipe and each of its presets may set.
SECTIONS = ("card", "model", "loss", "optim", "schedule", "data")
#: Sections a preset may override (the card documents the method, not a scale).
PRESET_SECTIONS = ("model", "loss", "optim", "schedule", "data")
#: Plain (non-table) keys a preset may set.
PRESET_KEYS = ("fidelity",)
#: Keys that document a recipe without changing what it trains; left out of :attr:`Recipe.hash`.
DOC_ONLY_KEYS = ("description", "card")

# Keys the trainer reads, with their types. Other keys are allowed (a task may read its own), but a key
# within edit distance of a known one is reported as a likely typo: "schedule.iter" silently ignored
# would train for the default length.
_INT = (int,)
_NUM = (int, float)
KNOWN_KEYS: dict[str, dict[str, tuple]] = {
    "schedule": {
        "iters": _INT,
        "pretrain_iters": _INT,
        "batch_size": _INT,
        "log_every": _INT,
        "save_every": _INT,
    },
    "data": {
        "split": (str,),
        "resolution": (int, list),
        "crop": (int, list),
        "flip": (bool,),
        "scale_aug": (list, bool),
        "evs": (list,),
        "cache_scenes": _INT,
        "requantize_bits": _INT,
    },
    "optim": {
        "name": (str,),
        "betas": (list,),
        "weight_decay": _NUM,
        "gradient_centralization": (bool,),
        "eps": _NUM,
        "per_network": (bool,),
    },
}
_POSITIVE_INT_KEYS = ("schedule.iters", "schedule.batch_size", "schedule.log_every", "schedule.save_every")


class Recipe(dict):
    """A resolved recipe: the merged TOML tables as a plain dict plus provenance attributes.

    Attributes:
        name: recipe name (the file stem).
        preset: the preset merged in (``None`` when the recipe has none).
        path: the recipe file.
        presets: every preset the recipe (with its ``extends`` chain) declares.
    """

    def __init__(self, data: Mapping[str, Any], *, path: Path, presets: list[str]) -> None:
        super().__init__(data)
        self.path = path
        self.presets = presets

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def preset(self) -> str | None:
        return self.get("preset")

    @property
    def hash(self) -> str:
        """12 hex digits of the sha256 of the canonical JSON of the resolved recipe (doc-only keys left out)."""
        return recipe_hash(self)

    def section(self, name: str) -> dict[str, Any]:
        """The table ``name`` (``{}`` when the recipe does not set it)."""
        return self.get(name) or {}


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """Short sha256 of the canonical JSON (sorted keys, no whitespace) of ``recipe`` without doc-only keys."""
    core = {k: v for k, v in recipe.items() if k not in DOC_ONLY_KEYS}
    text = json.dumps(core, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def list_recipes() -> list[str]:
    """Names of the recipes in :func:`hdrbench.paths.recipes_dir` (files starting with ``_`` are private)."""
    return sorted(p.stem for p in recipes_dir().glob("*.toml") if not p.stem.startswith("_"))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``: tables merge key by key, any other value is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_path(name_or_path: str | os.PathLike) -> Path:
    """The recipe file for a recipe name or a path to a ``.toml`` file.

    Raises:
        UnknownNameError: an unknown name (with close matches).
        InputError: a path that does not exist.
    """
    text = str(name_or_path)
    if text.endswith(".toml") or os.sep in text or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise InputError(f"recipe file not found: {path}")
        return path
    path = recipes_dir() / f"{text}.toml"
    if path.is_file():
        return path
    names: Registry[bool] = Registry("method recipe")
    for n in list_recipes():
        names.register(n, True)
    names.get(text)  # raises with "did you mean"
    raise AssertionError("unreachable")  # pragma: no cover


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"recipe {path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise InputError(f"recipe {path}: cannot read: {exc}") from None


def _unknown_key(key: str, known, where: str, path: Path) -> InputError:
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else f"; known: {', '.join(known)}"
    return InputError(f"recipe {path}: unknown key {where}{key!r}{hint}")


def _check_file(raw: dict[str, Any], path: Path) -> None:
    """Structural checks on one recipe file before merging (errors name the key and the file)."""
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise _unknown_key(key, TOP_LEVEL_KEYS, "", path)
    if raw.get("name", path.stem) != path.stem:
        raise InputError(f"recipe {path}: name = {raw['name']!r} must equal the file stem {path.stem!r}")
    for key in ("name", "description", "arch", "task", "extends", "default_preset", "fidelity"):
        if key in raw and not isinstance(raw[key], str):
            raise InputError(f"recipe {path}: key {key!r} must be a string, got {type(raw[key]).__name__}")
    for key in SECTIONS:
        if key in raw and not isinstance(raw[key], dict):
            raise InputError(f"recipe {path}: [{key}] must be a table, got {type(raw[key]).__name__}")
    presets = raw.get("presets", {})
    if not isinstance(presets, dict):
        raise InputError(f"recipe {path}: [presets] must be a table of presets")
    for pname, body in presets.items():
        if not isinstance(body, dict):
            raise InputError(f"recipe {path}: [presets.{pname}] must be a table")
        for key, value in body.items():
            if key in PRESET_KEYS:
                if not isinstance(value, str):
                    raise InputError(f"recipe {path}: presets.{pname}.{key} must be a string, "
                                     f"got {type(value).__name__}")
                continue
            if key not in PRESET_SECTIONS:
                raise _unknown_key(key, PRESET_SECTIONS + PRESET_KEYS, f"presets.{pname}.", path)
            if not isinstance(value, dict):
                raise InputError(f"recipe {path}: [presets.{pname}.{key}] must be a table")


def _check_resolved(recipe: dict[str, Any], path: Path) -> None:
    """Checks on the merged recipe: required keys, known-key types, likely typos."""
    for key in REQUIRED_KEYS:
        if key not in recipe:
            raise InputError(f"recipe {path}: missing required key {key!r}")
    for section, known in KNOWN_KEYS.items():
        for key, value in recipe.get(section, {}).items():
            if key in known:
                types = known[key]
                # bool is an int subclass; a bool where a number is expected is a mistake.
                if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                    want = " or ".join(t.__name__ for t in types)
                    raise InputError(
                        f"recipe {path}: {section}.{key} must be {want}, got {value!r} ({type(value).__name__})"
                    )
            elif difflib.get_close_matches(key, list(known), n=1, cutoff=0.8):
                raise _unknown_key(key, known, f"{section}.", path)
    for dotted in _POSITIVE_INT_KEYS:
        section, key = dotted.split(".")
        value = recipe.get(section, {}).get(key)
        if value is not None and value <= 0:
            raise InputError(f"recipe {path}: {dotted} must be positive, got {value}")
    scale = recipe.get("data", {}).get("scale_aug")
    if isinstance(scale, list) and (len(scale) != 2 or not all(isinstance(s, (int, float)) for s in scale)
                                    or not 0 < scale[0] <= scale[1]):
        raise InputError(f"recipe {path}: data.scale_aug must be false or [low, high] with 0 < low <= high, "
                         f"got {scale!r}")
    try:
        json.dumps(recipe, allow_nan=False)
    except ValueError as exc:
        raise InputError(f"recipe {path}: values must be finite numbers ({exc})") from None


def _load_raw(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[str, dict]]:
    """The file at ``path`` merged over its ``extends`` chain (presets merged by name, not applied)."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.stem for p in (*chain, path))
        raise InputError(f"recipe {path}: 'extends' forms a cycle: {cycle}")
    raw = _read_toml(path)
    _check_file(raw, path)
    raw.setdefault("name", path.stem)
    presets = raw.pop("presets", {})
    parent_name = raw.pop("extends", None)
    if parent_name is None:
        return raw, presets
    # A parent is looked up beside the child first, so a folder of user recipes can extend each other.
    sibling = path.parent / f"{parent_name}.toml"
    try:
        parent_path = sibling if sibling.is_file() else resolve_path(parent_name)
    except Exception as exc:
        raise InputError(f"recipe {path}: extends = {parent_name!r}: {exc}") from None
    base, base_presets = _load_raw(parent_path, (*chain, path))
    merged = deep_merge(base, raw)
    # The child's own identity never comes from the parent.
    merged["name"] = raw["name"]
    if "description" not in raw:
        merged.pop("description", None)
    return merged, deep_merge(base_presets, presets)


def expand_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted override keys (``{"schedule.iters": 5}``) as nested dicts (``{"schedule": {"iters": 5}}``); nested
    mappings are expanded too and merged with what earlier keys put at the same place."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            value = expand_overrides(value)
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = deep_merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return out


def load_recipe(
    name_or_path: str | os.PathLike,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Recipe:
    """Load and resolve a recipe.

    Args:
        name_or_path: a recipe name in ``methods/`` or a path to a ``.toml`` file.
        preset: preset to merge in; ``None`` uses the recipe's ``default_preset`` (if any).
        overrides: values merged last, nested (``{"schedule": {"iters": 5}}``) or dotted
            (``{"schedule.iters": 5}``).

    Returns:
        The resolved :class:`Recipe`; its ``preset`` key names the preset merged in and ``presets``
        are not included (they are listed in :attr:`Recipe.presets`).

    Raises:
        UnknownNameError: unknown recipe name or preset (with close matches).
        InputError: invalid TOML, unknown or mistyped keys, a name that differs from the file stem,
            an ``extends`` cycle, an unknown ``fidelity``; the message names the key and the file.
    """
    path = resolve_path(name_or_path).resolve()
    merged, presets = _load_raw(path)
    chosen = preset if preset is not None else merged.get("default_preset")
    if chosen is not None:
        names: Registry[bool] = Registry(f"preset of recipe {path.stem!r} ({path})")
        for p in presets:
            names.register(p, True)
        if chosen not in presets:
            names.get(chosen)  # raises with "did you mean"
        merged = deep_merge(merged, presets[chosen])
    merged["preset"] = chosen
    if overrides:
        merged = deep_merge(merged, expand_overrides(overrides))
    merged = apply_fidelity(merged, path)
    _check_resolved(merged, path)
    return Recipe(merged, path=path, presets=sorted(presets))


def count_parameters(module) -> int:
    """Number of parameters of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def parameter_counts(recipe: Mapping[str, Any]) -> dict[str, int]:
    """Parameters per top-level network of the recipe's arch, built on the meta device (no memory used).

    Returns:
        ``{child name: count}`` plus ``"total"``; a model without children reports only ``"total"``.
    """
    import torch

    from hdrbench.models import build_arch

    kwargs = dict(recipe.get("model", {}))
    try:
        with torch.device("meta"):
            model = build_arch(recipe["arch"], **kwargs)
    except (NotImplementedError, RuntimeError):
        # Some builders touch real data (e.g. load a file); fall back to a CPU build.
        model = build_arch(recipe["arch"], **kwargs)
    counts = {name: count_parameters(child) for name, child in model.named_children() if count_parameters(child)}
    counts["total"] = count_parameters(model)
    return counts


def describe(name: str) -> str:
    """Human-readable description of a recipe: description, card, presets and parameter counts per preset.

    Used by ``hdrbench methods show NAME``. Parameter counts need the recipe's arch to be importable;
    when it is not, the line says why instead of failing.
    """
    base = load_recipe(name)
    lines = [f"{base.name}: {base.get('description', '(no description)')}",
             f"  recipe: {base.path}", f"  arch: {base['arch']}   task: {base['task']}"]
    if base.get("card"):
        lines.append("  card:")
        for key, value in base["card"].items():
            lines.append(f"    {key}: {value}")
    default = base.get("default_preset")
    lines.append(f"  presets: {', '.join(base.presets) or '(none)'}" + (f" (default {default})" if default else ""))
    for preset in base.presets or [None]:
        recipe = load_recipe(name, preset=preset)
        label = preset or "base"
        try:
            counts = parameter_counts(recipe)
        except Exception as exc:  # describe must still print the rest of the card
            lines.append(f"  parameters [{label}]: unavailable ({type(exc).__name__}: {exc})")
            continue
        parts = ", ".join(f"{k} {v / 1e6:.3f} M" for k, v in counts.items() if k != "total")
        lines.append(f"  parameters [{label}] (hash {recipe.hash}"
                     + (f", fidelity {recipe['fidelity']}" if recipe.get("fidelity") else "")
                     + f"): total {counts['total'] / 1e6:.3f} M" + (f" = {parts}" if parts else ""))
    return "\n".join(lines)

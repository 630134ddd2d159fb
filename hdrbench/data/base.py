"""The dataset interface: scenes, resolution policy, and name -> reader resolution through the cards.

A dataset is addressed by name (``synthetic``, ``vds``, ``hdr-eye``) or by name and folder
(``hdr-folder:<path>``, ``stack-folder:<path>``). :func:`get_dataset` reads the card
``datasets/<name>.toml``, imports the reader it names and returns a :class:`Dataset`.

Every reader returns :class:`Scene` objects with torch tensors in the project's conventions: a stack
is (E, 3, H, W) float32 in [0, 1] with its EV list, the HDR image is (3, H, W) float32 linear relative.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hdrbench.data.cards import DatasetCard, card_names, load_card
from hdrbench.errors import DatasetError, InputError
from hdrbench.registry import Registry


# --------------------------------------------------------------------------------------------------
# Scenes


@dataclass
class Scene:
    """One scene of a dataset split.

    Attributes:
        name: scene identifier within its split.
        stack: (E, 3, H, W) float32 torch tensor in [0, 1], or None when the dataset has no stacks.
        evs: EV of each stack entry (relative; 0 is the input), ascending.
        hdr: (3, H, W) float32 torch tensor, linear relative radiance, or None when there is no ground truth.
        meta: free-form facts (true CRF table, source file, seed, ...).
        ldr: (3, H, W) float32 in [0, 1]: the input image when ``stack`` is None (e.g. HDR-Eye's real LDR).
    """

    name: str
    stack: Any
    evs: list[float]
    hdr: Any
    meta: dict = field(default_factory=dict)
    ldr: Any = None

    @property
    def input(self):
        """The input LDR image (3, H, W) in [0, 1]: the EV 0 entry of the stack, or ``ldr``."""
        if self.stack is not None:
            if 0.0 not in [float(e) for e in self.evs]:
                raise DatasetError(f"scene {self.name}: its stack has no EV 0 entry (EVs {self.evs})")
            return self.stack[[float(e) for e in self.evs].index(0.0)]
        if self.ldr is None:
            raise DatasetError(f"scene {self.name}: neither a stack nor an LDR input")
        return self.ldr


# --------------------------------------------------------------------------------------------------
# Resolution policy

_RES_RE = re.compile(r"^(\d+)(?:x(\d+))?(?:-lanczos)?$")


@dataclass(frozen=True)
class Resolution:
    """How images are sized before use.

    Attributes:
        size: (height, width) after resizing, or None for the native resolution.
        how: how that size is reached: ``"lanczos"`` (resized) or ``"rendered"`` (generated at that size).
    """

    size: tuple[int, int] | None
    how: str = "lanczos"

    @property
    def policy(self) -> str:
        """The string recorded in every result row: ``"native"`` or ``"<H>x<W>-<how>"`` (``lanczos``, ``rendered``)."""
        return "native" if self.size is None else f"{self.size[0]}x{self.size[1]}-{self.how}"


def parse_resolution(value: Any, default: str = "native") -> Resolution:
    """Parse a resolution policy.

    Args:
        value: None (use ``default``), ``"native"``, ``"256"``, ``"256x192"``, ``"256x256-lanczos"``,
            an int (square) or an (H, W) pair.
        default: the policy used when ``value`` is None (a card's ``default_resolution``).

    Raises:
        InputError: the value is not one of these forms or a side is < 1.
    """
    if value is None:
        value = default
    if isinstance(value, Resolution):
        return value
    if isinstance(value, int):
        value = (value, value)
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"resolution must be (height, width), got {value!r}")
        h, w = int(value[0]), int(value[1])
    else:
        text = str(value).strip().lower()
        if text == "native":
            return Resolution(None)
        m = _RES_RE.match(text)
        if not m:
            raise InputError(f"resolution {value!r} is not 'native', 'N', 'HxW' or 'HxW-lanczos'")
        h = int(m.group(1))
        w = int(m.group(2) or m.group(1))
    if h < 1 or w < 1:
        raise InputError(f"resolution {value!r}: sides must be >= 1")
    return Resolution((h, w))


def resize_hdr(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize a linear HDR image with Lanczos (cv2.INTER_LANCZOS4, as the paper's code does).

    Args:
        img: (H, W, 3) float32, linear, >= 0.
        size: (height, width) or None (no change).

    Returns:
        (h, w, 3) float32, negatives from the Lanczos kernel's ringing clamped to 0.
    """
    if size is None or img.shape[:2] == tuple(size):
        return img
    import cv2

    out = cv2.resize(img.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)
    return np.maximum(out, 0.0).astype(np.float32)


def resize_ldr(img: np.ndarray, size: tuple[int, int] | None, bit_depth: int | None = 8) -> np.ndarray:
    """Resize a display-encoded image with Lanczos and re-quantise it to its bit depth.

    The official code resizes the 8-bit arrays themselves, so the result is again an 8-bit image;
    re-quantising keeps that property (and the clip keeps Lanczos overshoot inside [0, 1]).

    Args:
        img: (H, W, 3) float32 in [0, 1].
        size: (height, width) or None.
        bit_depth: source bit depth (8 or 16); None keeps float values.

    Returns:
        (h, w, 3) float32 in [0, 1].
    """
    if size is None or img.shape[:2] == tuple(size):
        return img
    import cv2

    out = cv2.resize(img.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)
    out = np.clip(out, 0.0, 1.0)
    if bit_depth:
        levels = float(2**bit_depth - 1)
        out = np.round(out * levels) / levels
    return out.astype(np.float32)


def read_image(path: str | Path):
    """Read an image through the imaging layer (kept in one place so readers share one dependency).

    Returns:
        ``hdrbench.imaging.io.LoadedImage`` (``.data`` (H, W, 3) float32, ``.encoding``, ``.bit_depth``).

    Raises:
        ImageReadError: missing, unreadable, truncated or unsupported file (message names the file).
    """
    from hdrbench.imaging.io import read_image as _read

    return _read(path)


def to_chw(img: np.ndarray):
    """(H, W, 3) numpy -> (3, H, W) float32 torch tensor (contiguous)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1)))


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed derived from ``parts`` with sha256 (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


# --------------------------------------------------------------------------------------------------
# Datasets


class Dataset(ABC):
    """A dataset: splits of named scenes, read from a root folder or generated.

    Args:
        card: the dataset's card.
        root: folder the data lives in (None for generated datasets).
        resolution: resolution policy (see :func:`parse_resolution`); None uses the card's default.
        name: the name the user gave (e.g. ``hdr-folder:/data/hdr``); recorded in results.
    """

    def __init__(self, card: DatasetCard, *, root: str | Path | None = None, resolution: Any = None,
                 name: str | None = None) -> None:
        self.card = card
        self.root = Path(root).expanduser() if root is not None else None
        self.resolution = parse_resolution(resolution, card.default_resolution)
        self.name = name or card.name

    # -- the interface --------------------------------------------------------------------------
    @property
    def splits(self) -> tuple[str, ...]:
        return self.card.splits

    @property
    def evs(self) -> list[float]:
        """The EVs every scene's stack carries (from the card)."""
        return [float(e) for e in self.card.evs]

    @abstractmethod
    def scenes(self, split: str) -> list[str]:
        """Scene names of ``split``, sorted. Raises ``InputError`` for an unknown split."""

    @abstractmethod
    def load(self, split: str, scene: str) -> Scene:
        """Read (or generate) one scene at the dataset's resolution policy."""

    def scene_files(self, split: str, scene: str) -> dict[str, Path] | None:
        """Files a scene is made of, by role (``"ev-3"`` ... ``"ev3"``, ``"hdr"``), for the layout check.

        None for datasets whose files are not fixed by a layout (generated data); the check then
        loads each scene instead.
        """
        return None

    def check(self, split: str | None = None, scenes: Iterable[str] | None = None) -> list[str]:
        """Every problem (missing, unreadable, mis-sized file; empty split) as one line each."""
        from hdrbench.data.check import check_dataset

        return [str(p) for p in check_dataset(self, split=split, scenes=scenes)]

    def expected_layout(self) -> str:
        """The layout the card declares, with ``<root>`` filled in."""
        text = self.card.layout_text()
        return text.replace("<root>", str(self.root)) if self.root is not None else text

    def describe(self) -> dict[str, Any]:
        """What identifies this dataset instance in a run's configuration."""
        return {
            "name": self.name,
            "card": self.card.name,
            "root": str(self.root) if self.root is not None else None,
            "resolution": self.resolution.policy,
            "evs": self.evs,
        }

    @property
    def slug(self) -> str:
        """A file-name-safe identifier (``vds``; ``hdr-folder-hdr-1a2b3c4d`` for folder datasets)."""
        return dataset_slug(self.name)

    def as_torch(self, split: str):
        """A ``torch.utils.data.Dataset`` of training batches (dict with ``stack``, ``evs``, ``hdr``, ``scene``).

        ``hdr`` is omitted for scenes without ground truth, so a default collate fails loudly rather
        than silently mixing scenes with and without HDR.
        """
        import torch

        names = self.scenes(split)
        outer = self

        class _Split(torch.utils.data.Dataset):
            def __len__(self) -> int:
                return len(names)

            def __getitem__(self, i: int) -> dict:
                s = outer.load(split, names[i])
                item = {"stack": s.stack, "evs": torch.tensor(s.evs, dtype=torch.float32), "scene": s.name}
                if s.hdr is not None:
                    item["hdr"] = s.hdr
                return item

        return _Split()

    def for_training(self, size: tuple[int, int] | None) -> "Dataset":
        """The dataset a trainer should read when its recipe resizes every scene to ``size`` (H, W).

        The default is this dataset itself (the trainer resizes what it loads). A dataset that simulates its
        stacks from HDR images returns a copy that produces scenes at ``size`` directly, so the camera model
        (noise, quantisation) acts at the resolution the network sees and no larger stack is simulated only
        to be resized.
        """
        return self

    # -- helpers for readers --------------------------------------------------------------------
    def _require_split(self, split: str) -> None:
        if split not in self.splits:
            raise InputError(f"dataset {self.name!r} has no split {split!r}; splits: {', '.join(self.splits)}")

    def _require_root(self) -> Path:
        if self.root is None:
            raise InputError(f"dataset {self.name!r} needs a root folder (--root PATH); expected layout:\n"
                             f"{self.expected_layout()}")
        if not self.root.is_dir():
            raise DatasetError(f"dataset {self.name!r}: root {self.root} is not a folder")
        return self.root


def dataset_slug(name: str) -> str:
    """File-name-safe form of a dataset name; folder datasets get the folder name and a path hash."""
    if ":" in name:
        base, arg = name.split(":", 1)
        resolved = str(Path(arg).expanduser().resolve())
        tail = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(resolved).name or "root")
        return f"{base}-{tail}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


# --------------------------------------------------------------------------------------------------
# Name resolution


def _registry() -> Registry[str]:
    reg: Registry[str] = Registry("dataset")
    for n in card_names():
        reg.register(n, n)
    return reg


def list_datasets() -> list[str]:
    """Names of every dataset with a card (``hdr-folder`` and ``stack-folder`` take ``:<path>``)."""
    return _registry().names()


def get_dataset(name: str, *, root: str | Path | None = None, resolution: Any = None, **kwargs: Any) -> Dataset:
    """Resolve a dataset name to a reader.

    Args:
        name: ``synthetic``, ``vds``, ``hdr-eye``, ``hdr-folder:<path>``, ``stack-folder:<path>``
            (any card that needs a root also accepts ``<name>:<path>``).
        root: root folder (overrides a ``:<path>`` suffix only when that is absent).
        resolution: resolution policy (``"native"``, ``"256x256-lanczos"``, ``64``, ``(H, W)``); None uses the
            card's default.
        **kwargs: reader options (e.g. ``n_test``, ``seed`` for ``synthetic``; ``emor_path`` for ``hdr-folder``).

    Raises:
        UnknownNameError: no card of that name (with close matches).
        InputError: a dataset that needs a root got none, or ``root`` conflicts with the name's path.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"dataset name must be a non-empty string, got {name!r}")
    base, _, arg = name.partition(":")
    card_name = _registry().get(base)
    card = load_card(card_name)
    if arg:
        if not card.needs_root:
            raise InputError(f"dataset {base!r} takes no folder, got {name!r}")
        if root is not None and Path(root).expanduser().resolve() != Path(arg).expanduser().resolve():
            raise InputError(f"dataset {name!r} names folder {arg!r} but --root is {root!r}")
        root = arg
    if card.needs_root and root is None:
        hint = f"{base}:<path>" if base in ("hdr-folder", "stack-folder") else f"--dataset {base} --root PATH"
        raise InputError(f"dataset {base!r} needs a folder ({hint}); expected layout:\n{card.layout_text()}")
    module_name, _, cls_name = card.loader.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(card, root=root, resolution=resolution, name=name, **kwargs)

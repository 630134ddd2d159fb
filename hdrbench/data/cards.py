"""Dataset cards: the TOML declarations in ``datasets/`` (layout, EVs, splits, licence, citation).

A card is data, not code: it says where a dataset comes from, how it is laid out on disk and what is
known or unverified about it. The loader class it names (``loader = "module:Class"``) does the reading.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrbench.errors import DatasetError
from hdrbench.paths import cards_dir

REQUIRED_KEYS = ("name", "title", "loader", "evs", "splits", "default_resolution", "licence", "citation", "obtain")


@dataclass(frozen=True)
class DatasetCard:
    """One parsed ``datasets/<name>.toml``.

    Attributes:
        name: registry name (``vds``, ``synthetic`` ...).
        title: one-line description.
        loader: ``"module:Class"`` of the reader.
        evs: the stack's EVs, relative to the input (EV 0), e.g. ``[-3, ..., 3]``.
        splits: split names the dataset has.
        default_resolution: resolution policy string used when none is given (``"native"`` or ``"HxW-lanczos"``).
        needs_root: whether a root folder must be supplied.
        licence, citation, obtain: provenance, shown by ``hdrbench datasets list``.
        layout: layout patterns (free text keyed by role), shown when a check fails.
        raw: the whole TOML table, for sections without a dedicated field.
    """

    name: str
    title: str
    loader: str
    evs: tuple[float, ...]
    splits: tuple[str, ...]
    default_resolution: str
    needs_root: bool
    licence: str
    citation: str
    obtain: str
    layout: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def layout_text(self) -> str:
        """The expected layout as indented lines (for error messages and ``datasets check``)."""
        return "\n".join(f"  {k}: {v}" for k, v in self.layout.items())

    def section(self, name: str) -> dict[str, Any]:
        """A sub-table of the card (``defaults``, ``ground_truth``, ``known``, ``unverified`` ...), or ``{}``."""
        value = self.raw.get(name, {})
        return value if isinstance(value, dict) else {}


def parse_card(path: str | Path) -> DatasetCard:
    """Read and validate one card file.

    Raises:
        DatasetError: the file is missing, not valid TOML, or lacks a required key.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"dataset card {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"dataset card {path} is not valid TOML: {exc}") from None
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise DatasetError(f"dataset card {path} lacks the key(s) {', '.join(missing)}")
    return DatasetCard(
        name=str(raw["name"]),
        title=str(raw["title"]),
        loader=str(raw["loader"]),
        evs=tuple(float(e) for e in raw["evs"]),
        splits=tuple(str(s) for s in raw["splits"]),
        default_resolution=str(raw["default_resolution"]),
        needs_root=bool(raw.get("needs_root", True)),
        licence=str(raw["licence"]),
        citation=str(raw["citation"]),
        obtain=str(raw["obtain"]),
        layout={str(k): str(v) for k, v in raw.get("layout", {}).items()},
        raw=raw,
        path=path,
    )


def card_names() -> list[str]:
    """Names of every card in :func:`hdrbench.paths.cards_dir` (file stems, sorted)."""
    return sorted(p.stem for p in cards_dir().glob("*.toml") if not p.stem.startswith("_"))


def load_card(name: str) -> DatasetCard:
    """Load the card ``datasets/<name>.toml``.

    Raises:
        UnknownNameError: no such card (with close matches).
    """
    from hdrbench.registry import Registry

    path = cards_dir() / f"{name}.toml"
    if not path.is_file():
        known: Registry[str] = Registry("dataset")
        for n in card_names():
            known.register(n, n)
        known.get(name)  # raises with "did you mean"
    card = parse_card(path)
    if card.name != name:
        raise DatasetError(f"dataset card {path} declares name {card.name!r}; the file name says {name!r}")
    return card

"""Dataset checks: every missing, unreadable or mis-sized file of a dataset, listed at once.

``hdrbench datasets check`` prints the list with the expected layout, and the evaluation harness runs the
same check on the scenes it is about to score, so that a broken download fails before hours of
computation instead of in the middle of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from hdrbench.errors import DatasetError, HdrbenchError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        split: split name.
        scene: scene name, or "" for split-level problems (e.g. an empty split).
        path: the file or folder at fault, or "" when there is none.
        message: what is wrong.
    """

    split: str
    scene: str
    path: str
    message: str

    def __str__(self) -> str:
        where = self.path or (f"{self.split}/{self.scene}" if self.scene else f"split {self.split}")
        return f"{where}: {self.message}"


#: How the check names a file's role in a scene (the readers' role keys are short).
_ROLE_NAMES = {"hdr": "HDR reference"}


def _finite(data: np.ndarray) -> bool:
    return bool(np.isfinite(data).all())


def _check_files(split: str, scene: str, files: dict[str, Path]) -> list[Problem]:
    from hdrbench.data.base import read_image

    problems: list[Problem] = []
    shapes: dict[str, tuple[int, int]] = {}
    files = {_ROLE_NAMES.get(role, role): path for role, path in files.items()}
    for role, path in files.items():
        if not Path(path).is_file():
            problems.append(Problem(split, scene, str(path), f"missing ({role})"))
            continue
        try:
            img = read_image(path)
        except HdrbenchError as exc:
            problems.append(Problem(split, scene, str(path), f"unreadable ({role}): {exc}"))
            continue
        except Exception as exc:  # a reader bug must still surface as a listed problem
            problems.append(Problem(split, scene, str(path), f"unreadable ({role}): {type(exc).__name__}: {exc}"))
            continue
        if not _finite(img.data):
            problems.append(Problem(split, scene, str(path), f"contains NaN or Inf values ({role})"))
        shapes[role] = tuple(img.data.shape[:2])
    if shapes:
        # The most common size is taken as the scene's; every other file is reported against it.
        sizes = list(shapes.values())
        ref = max(set(sizes), key=sizes.count)
        for role, shp in shapes.items():
            if shp != ref:
                problems.append(Problem(split, scene, str(files[role]),
                                        f"size {shp[0]}x{shp[1]} differs from the scene's {ref[0]}x{ref[1]} ({role})"))
    return problems


def _check_loaded(dataset, split: str, scene: str) -> list[Problem]:
    try:
        s = dataset.load(split, scene)
    except HdrbenchError as exc:
        return [Problem(split, scene, "", str(exc))]
    except Exception as exc:
        return [Problem(split, scene, "", f"{type(exc).__name__}: {exc}")]
    problems = []
    for label, t in (("stack", s.stack), ("hdr", s.hdr), ("ldr", s.ldr)):
        if t is not None and not bool(np.isfinite(np.asarray(t)).all()):
            problems.append(Problem(split, scene, "", f"{label} contains NaN or Inf values"))
    if s.stack is not None and s.hdr is not None and tuple(s.stack.shape[-2:]) != tuple(s.hdr.shape[-2:]):
        problems.append(Problem(split, scene, "", f"stack size {tuple(s.stack.shape[-2:])} differs from the HDR's "
                                                  f"{tuple(s.hdr.shape[-2:])}"))
    return problems


def empty_split_hint(dataset, split: str) -> str:
    """``"; split 'all' has 2 scene(s): use --split all"`` when another split has scenes, else ``""``."""
    for other in sorted(dataset.splits, key=lambda s: s != "all"):  # 'all' first: it holds every scene
        if other == split:
            continue
        try:
            n = len(dataset.scenes(other))
        except HdrbenchError:
            continue
        if n:
            return f"; split {other!r} has {n} scene(s): use --split {other}"
    return ""


def check_dataset(dataset, split: str | None = None, scenes: Iterable[str] | None = None,
                  notes: list[str] | None = None) -> list[Problem]:
    """List every problem of a dataset (or of one split, or of some scenes of it).

    Args:
        dataset: a :class:`hdrbench.data.base.Dataset`.
        split: one split, or None for every split the card declares.
        scenes: restrict the check to these scene names (the harness passes the scenes it evaluates).
        notes: when given and ``split`` is None, a split that is absent from the tree while another split has
            scenes (a test-only download) is described here instead of being a problem.

    Returns:
        Problems in scene order, each file at most once (splits may share files); empty when the data is
        complete and readable.
    """
    problems: list[Problem] = []
    root = getattr(dataset, "root", None)
    if root is not None and not root.is_dir():
        what = "dataset root is a file, not a folder" if root.exists() else "dataset root folder does not exist"
        return [Problem(split or "*", "", str(root), what)]
    splits = [split] if split is not None else list(dataset.splits)
    wanted = list(scenes) if scenes is not None else None
    absent: list[Problem] = []
    present = 0
    for sp in splits:
        try:
            names = dataset.scenes(sp)
        except DatasetError as exc:
            absent.append(Problem(sp, "", "", str(exc)))
            continue
        if not names:
            problems.append(Problem(sp, "", "", "empty split: no scenes found" + empty_split_hint(dataset, sp)))
            continue
        present += 1
        if wanted is not None:
            missing = [w for w in wanted if w not in names]
            problems.extend(Problem(sp, w, "", "scene not found in this split") for w in missing)
            names = [n for n in names if n in wanted]
        for name in names:
            try:
                files = dataset.scene_files(sp, name)
            except HdrbenchError as exc:
                problems.append(Problem(sp, name, "", str(exc)))
                continue
            if files is None:
                problems.extend(_check_loaded(dataset, sp, name))
            else:
                problems.extend(_check_files(sp, name, files))
    if notes is not None and split is None and present:
        notes.extend(f"split {p.split!r} is not present and was skipped ({p.message})" for p in absent)
    else:
        problems = absent + problems
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in problems:  # a file shared by two splits (e.g. 'all' and 'test') is reported once
        key = (p.path, p.message) if p.path else (f"{p.split}/{p.scene}", p.message)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def format_problems(dataset, problems: list[Problem], limit: int | None = 50) -> str:
    """Problems as text, followed by the expected layout (what ``datasets check`` prints)."""
    shown = problems if limit is None else problems[:limit]
    lines = [f"{len(problems)} problem(s) in dataset {dataset.name!r}:"] + [f"  {p}" for p in shown]
    if limit is not None and len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    lines += ["expected layout:", dataset.expected_layout()]
    return "\n".join(lines)

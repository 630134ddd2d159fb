"""Output paths checked before the work that fills them.

Every command that writes a file or a folder calls :func:`check_output_file` or :func:`check_output_dir`
on it as soon as the path is known, so that an unwritable destination (no permission, a read-only or
virtual file system, a file where a folder should be, a folder where a file should be) is reported in one
line before minutes of merging, training or scoring, rather than as a traceback at the end.

The check probes the nearest existing folder on the way to the destination by creating and removing a
temporary file there: permission bits alone do not tell (a superuser passes ``os.access`` on ``/proc``,
where nothing can be created). Nothing is left behind and no folder is created.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable

from hdrbench.errors import InputError, OutputError

__all__ = ["check_output_file", "check_output_dir", "check_suffix"]


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``.`` for a relative path none of whose parts exist)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _probe(folder: Path, flag: str, target: Path) -> None:
    """Create and remove a temporary file in ``folder``; an OSError becomes an :class:`OutputError`."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hdrbench-write-check.", dir=folder)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"{flag} {target}: {folder} does not accept new files ({reason})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _label(flag: str | None) -> str:
    return flag or "output"


def check_suffix(path: str | os.PathLike, flag: str | None, suffixes: Iterable[str]) -> Path:
    """Refuse an extension not in ``suffixes`` (lower-case, with the dot), naming the option and the choices."""
    path = Path(path)
    allowed = tuple(suffixes)
    if path.suffix.lower() not in allowed:
        got = f"'{path.suffix}'" if path.suffix else "no extension"
        raise InputError(f"{_label(flag)} {path}: {got} is not a supported output format; use one of "
                         f"{', '.join(allowed)}")
    return path


def check_output_file(path: str | os.PathLike, flag: str | None = None, *,
                      suffixes: Iterable[str] | None = None) -> Path:
    """Check that the file ``path`` can be (re)written, before any long work.

    Args:
        path: the destination file; missing parent folders are fine (writers create them) as long as the
            nearest existing ancestor is a folder that accepts new files.
        flag: the command-line option or argument that named it (used in the messages).
        suffixes: accepted extensions (lower-case, with the dot), or None for any.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: an unsupported extension.
        OutputError: ``path`` is a folder, an ancestor is a file, or the folder refuses new files.
    """
    path = Path(path)
    label = _label(flag)
    if path.is_dir():
        raise OutputError(f"{label} {path} is an existing folder; give a file name inside it or elsewhere")
    if suffixes is not None:
        check_suffix(path, flag, suffixes)
    if path.exists() and not path.is_file():
        raise OutputError(f"{label} {path} exists and is not a regular file")
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise OutputError(f"{label} {path}: {base} is a file, not a folder")
    _probe(base, label, path)
    return path


def check_output_dir(path: str | os.PathLike, flag: str | None = None) -> Path:
    """Check that files can be created in the folder ``path`` (which may not exist yet), before any long work.

    Raises:
        OutputError: ``path`` (or an ancestor) is a file, or the folder refuses new files.
    """
    path = Path(path)
    label = _label(flag)
    base = _nearest_existing(path)
    if not base.is_dir():
        what = "is a file, not a folder" if base == path else f"cannot be created: {base} is a file"
        raise OutputError(f"{label} {path} {what}")
    _probe(base, label, path)
    return path

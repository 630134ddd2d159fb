"""Atomic file writes: a crash or a kill never leaves a half-written checkpoint, record or table.

Writes go to a temporary file in the destination's folder, are flushed and fsync'ed, then renamed over
the destination (``os.replace`` is atomic on POSIX and Windows for paths on one file system).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _default_mode() -> int:
    """The permission bits a plain ``open()`` would give a new file (0o666 less the process umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _temporary_sibling(path: Path, suffix: str) -> tuple[int, str]:
    """Create ``path``'s folder and a temporary file beside ``path`` with the default file mode.

    Raises:
        OutputError: the folder cannot be created or refuses new files (names ``path`` and the reason).
    """
    from hdrbench.errors import OutputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        # mkstemp creates 0600 files; results, images and checkpoints should be as readable as any other output.
        os.chmod(tmp, _default_mode())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def _replace(tmp: str, path: Path) -> None:
    from hdrbench.errors import OutputError

    try:
        os.replace(tmp, path)
    except IsADirectoryError:
        raise OutputError(f"cannot write {path}: it is an existing folder") from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left exactly as it was. A destination
    that cannot be written raises :class:`hdrbench.errors.OutputError` naming it.
    """
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_open is for writing, got mode {mode!r}")
    path = Path(path)
    fd, tmp = _temporary_sibling(path, ".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary sibling of ``path`` for writers that take a file name (e.g. OpenEXR); renamed over
    ``path`` when the block succeeds, removed otherwise. ``suffix`` lets such writers see the extension.

    The temporary file gets the mode a plain ``open()`` would give (0o666 less the umask), so the result
    is as readable as every other output.
    """
    path = Path(path)
    fd, tmp = _temporary_sibling(path, suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        _replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, ``\\n`` line endings)."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)

"""Compile a C++ kernel source once per machine and load it with ``ctypes`` (shared by the native kernels).

A source is compiled with the system C++ compiler (``$CXX``, else ``c++``/``g++``/``clang++``) into
``<cache>/kernels/`` (``HDRBENCH_CACHE``, see :mod:`hdrbench.paths`), under a name keyed by the source, the
compiler and flags, and the CPU, so that a cache shared between different machines stays valid. No Python
headers or torch build are needed. Loaded after torch, a library built with ``-fopenmp`` binds to torch's own
OpenMP runtime, so its kernels run on torch's thread pool.

:class:`KernelLibrary` tries a list of flag variants (typically OpenMP and the machine's vector instructions
first, then without them) and, where none builds, warns once and returns None, so that callers fall back to
their torch code. ``HDRBENCH_NATIVE=0`` turns every native kernel off.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

from hdrbench.paths import cache_dir

log = logging.getLogger(__name__)

#: Flag variants tried in this order: OpenMP and the machine's vector instructions, then without either.
VARIANTS: tuple[tuple[str, ...], ...] = (("-march=native", "-fopenmp"), ("-fopenmp",), ("-march=native",), ())


class NativeBuildError(RuntimeError):
    """A kernel could not be compiled or loaded (the message says why)."""


def cpu_signature() -> str:
    """What compiled code depends on: machine, CPU model and its instruction-set flags (Linux)."""
    parts = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features")):
                    parts.append(line.strip())
                if line.strip() == "":
                    break  # the first processor describes them all
    except OSError:
        pass
    return "\n".join(parts)


def compiler() -> str | None:
    """The C++ compiler to use: ``$CXX``, else the first of ``c++``, ``g++``, ``clang++`` on the PATH."""
    cxx = os.environ.get("CXX")
    if cxx:
        return cxx
    return shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def library_suffix() -> str:
    return ".dll" if os.name == "nt" else ".dylib" if platform.system() == "Darwin" else ".so"


def build(source: Path, stem: str, flags: tuple[str, ...], out_dir: Path | None = None) -> Path:
    """Compile ``source`` with ``flags`` (unless a matching build exists) and return the library's path.

    The library is written to a temporary name and renamed into place, so concurrent processes (e.g. the ranks of
    one ``torchrun``) never load a half-written file.

    Raises:
        NativeBuildError: no C++ compiler, or the compiler failed (its message is included).
    """
    cxx = compiler()
    if cxx is None:
        raise NativeBuildError("no C++ compiler found (set CXX, or install g++ or clang++)")
    out_dir = Path(out_dir) if out_dir is not None else cache_dir() / "kernels"
    key = hashlib.sha256(b"\0".join([Path(source).read_bytes(), " ".join((cxx, *flags)).encode(),
                                      cpu_signature().encode()]))
    path = out_dir / f"{stem}-{key.hexdigest()[:16]}{library_suffix()}"
    if path.exists():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=out_dir)
    os.close(fd)
    log.info("compiling %s (%s %s), once for this machine", Path(source).name, cxx, " ".join(flags))
    try:
        proc = subprocess.run([cxx, *flags, str(source), "-o", tmp], capture_output=True, text=True)
        if proc.returncode != 0:
            raise NativeBuildError(f"{cxx} {' '.join(flags)}: {proc.stderr.strip()[-800:]}")
        os.replace(tmp, path)
        return path
    except OSError as exc:
        raise NativeBuildError(f"{cxx}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def enabled() -> bool:
    """False when ``HDRBENCH_NATIVE=0`` turns the native kernels off."""
    return os.environ.get("HDRBENCH_NATIVE", "1").strip() != "0"


class KernelLibrary:
    """One kernel library, built and loaded on first use (thread-safe), None where no variant builds.

    Args:
        what: how the warning names it (e.g. "native synthesis kernel").
        build_variant: ``build_variant(extra_flags) -> Path``, compiling the source with one variant's flags.
        load: ``load(path) -> CDLL``, loading a built library and declaring its functions (raises
            :class:`NativeBuildError` or ``OSError``/``AttributeError`` for an unusable file).
        variants: the extra flags to try, in order (default :data:`VARIANTS`).
    """

    def __init__(self, what: str, build_variant: Callable[[tuple[str, ...]], Path],
                 load: Callable[[Path], ctypes.CDLL], variants: tuple[tuple[str, ...], ...] = VARIANTS):
        self.what, self.build_variant, self.load, self.variants = what, build_variant, load, variants
        self.state: dict = {}  # "lib": CDLL | None, once tried
        self._lock = threading.Lock()

    def get(self) -> ctypes.CDLL | None:
        """The loaded library, built on first call; None (after one warning) where no variant builds."""
        if not enabled():
            return None
        with self._lock:
            if "lib" not in self.state:
                self.state["lib"], errors = None, []
                for variant in self.variants:
                    try:
                        self.state["lib"] = self.load(self.build_variant(variant))
                        break
                    except (NativeBuildError, OSError, AttributeError) as exc:
                        errors.append(str(exc))
                        if compiler() is None:
                            break
                if self.state["lib"] is None:
                    warnings.warn(f"hdrbench: {self.what} unavailable, using the torch path (" + "; ".join(errors) + ")",
                                  RuntimeWarning, stacklevel=4)
            return self.state["lib"]

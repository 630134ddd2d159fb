"""Native CPU kernels of the synthesis layer's common case, compiled on first use, run on torch's threads.

The fused node's torch form (``fused.TableLogMerge``) spends most of its time in two table gathers that
torch runs one element at a time; ``log_merge_kernel.cpp`` does the lookup, the weights and the sum over
exposures in one pass over the stack with vector gathers, and recomputes the weights in the backward
instead of storing them (``hdrbench bench merge`` measures the gain).

The kernel is compiled once per machine with the system C++ compiler (``$CXX``, else ``c++``/``g++``/
``clang++``), ``-O3 -march=native -fopenmp``, into ``<cache>/kernels/`` (``HDRBENCH_CACHE``, see
``hdrbench.paths``), keyed by the source, the flags and the CPU, so that a cache shared between
different machines stays valid; it is loaded with ``ctypes`` (no Python headers or torch build needed).
Loaded after torch, the library's OpenMP calls bind to torch's own OpenMP runtime, so the kernels run on
torch's thread pool, ``torch.get_num_threads()`` wide: a second pool would compete with torch's threads,
which spin for a while after every parallel operation. Without OpenMP (another compiler, or a failed
build with it) the kernels run on one thread.

Where no compiler is found or every build fails, :func:`library` returns None after one warning that
says why, and the layer runs the torch node: same values and gradients, only slower. ``HDRBENCH_NATIVE=0``
turns the kernels off.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from hdrbench import nativebuild
from hdrbench.nativebuild import NativeBuildError  # noqa: F401  (part of this module's interface)

SOURCE = Path(__file__).with_name("log_merge_kernel.cpp")
ABI = 4
FLAGS = ("-O3", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared", "-std=c++14")
#: Tried in this order: OpenMP and the machine's vector gathers, then without either.
VARIANTS = nativebuild.VARIANTS
WEIGHT_CODES = {"all": 0, "hat": 1, "box": 2, "deb97": 3, "robertson": 4}
#: Below this many stack elements the kernels run on one thread (starting threads would cost more).
MIN_PARALLEL = 1 << 16


def build(flags: tuple[str, ...] = FLAGS + VARIANTS[0], out_dir: Path | None = None) -> Path:
    """Compile the kernel with ``flags`` (unless a matching build exists) and return the library's path
    (:func:`hdrbench.nativebuild.build`).

    Raises:
        NativeBuildError: no C++ compiler, or the compiler failed (its message is included).
    """
    return nativebuild.build(SOURCE, "log_merge", flags, out_dir)


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    if lib.hdrbench_log_merge_abi() != ABI:
        raise NativeBuildError(f"{path} reports interface {lib.hdrbench_log_merge_abi()}, expected {ABI}")
    i64, ptr, dbl, cint = ctypes.c_int64, ctypes.c_void_p, ctypes.c_double, ctypes.c_int
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"hdrbench_log_merge_forward_{suffix}")
        fwd.argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, cint, dbl, dbl, dbl, cint, ptr, ptr, ptr]
        fwd.restype = cint
        bwd = getattr(lib, f"hdrbench_log_merge_backward_{suffix}")
        bwd.argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, cint, ptr, cint, dbl, dbl, cint, ptr]
        bwd.restype = cint
    return lib


_LIBRARY = nativebuild.KernelLibrary("native synthesis kernel", lambda variant: build(FLAGS + variant), _load,
                                     VARIANTS)


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first call; None (after one warning) where no build works."""
    return _LIBRARY.get()


def threads_used() -> int:
    """How many threads the kernels use for a large stack: torch's count with OpenMP, else 1."""
    lib = library()
    return torch.get_num_threads() if lib is not None and lib.hdrbench_log_merge_openmp() else 1


def supports(x: torch.Tensor, weight: str, mean_weight: bool) -> bool:
    """Whether the kernels handle this stack and weight (CPU, float32/float64, per-channel weights)."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not mean_weight
            and str(weight).lower() in WEIGHT_CODES and library() is not None)


def _kernel(name: str, dtype: torch.dtype):
    return getattr(library(), f"hdrbench_log_merge_{name}_{'f32' if dtype == torch.float32 else 'f64'}")


def _threads(x: torch.Tensor) -> int:
    return max(1, torch.get_num_threads()) if x.numel() >= MIN_PARALLEL else 1


def log_merge_forward(x: torch.Tensor, log_table: torch.Tensor, log_times: torch.Tensor, weight: str,
                      bounds: tuple[float, float], saturation: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean of ``log_table[k] - ln t`` over exposures, and where the total weight is low.

    Args:
        x: ``(N, E, C, H, W)`` detached stack in [0, 1], float32 or float64 on the CPU.
        log_table: ``(N, C, 256)`` forward table (``fused.log_tables``), x's dtype.
        log_times: ``(N, E)`` natural log of the exposure times, x's dtype.
        weight: a key of :data:`WEIGHT_CODES`; bounds: its ``(lo, hi)``.
        saturation: the fallback's total-weight threshold.

    Returns:
        ``(log_mean, low)``: ``(N, C, H, W)`` (``exp(log_mean)`` is the merged HDR before the fallback) and the
        ascending int64 flat indices into it of the pixels whose total weight is ``<= saturation``.
    """
    n, e, c, h, w = x.shape
    x = x.contiguous()
    table = log_table.to(x.dtype).contiguous()
    lt = log_times.to(x.dtype).contiguous()
    log_mean = torch.empty((n, c, h, w), dtype=x.dtype)
    # Room for every pixel; only the pages that receive indices are ever touched (allocated by the OS).
    low = torch.empty(n * c * h * w, dtype=torch.int64)
    threads = _threads(x)
    counts = torch.zeros(threads, dtype=torch.int64)
    status = _kernel("forward", x.dtype)(
        x.data_ptr(), n, e, c, h * w, table.data_ptr(), lt.data_ptr(), WEIGHT_CODES[weight], float(bounds[0]),
        float(bounds[1]), float(saturation), threads, log_mean.data_ptr(), low.data_ptr(), counts.data_ptr())
    if status != 0:
        raise ValueError(f"native merge kernel: unknown weight {weight!r}")
    total = n * c * h * w
    found = [low[total * t // threads:total * t // threads + k] for t, k in enumerate(counts.tolist()) if k]
    low = torch.cat(found) if len(found) > 1 else found[0].clone() if found else low[:0].clone()
    return log_mean, low


def log_merge_backward(x: torch.Tensor, slope_tab: torch.Tensor, grad_hdr: torch.Tensor, hdr: torch.Tensor,
                       weight: str, bounds: tuple[float, float]) -> torch.Tensor:
    """``grad_x[n, e, c] = slope_tab[k] * w(x) * grad_hdr * hdr / (sum_e w + 1e-9)``, shape ``(N, E, C, H, W)``.

    Args:
        x: the forward's stack; slope_tab: ``(N, C, 256)`` backward table; grad_hdr, hdr: ``(N, C, H, W)``
            (``grad_hdr`` may be an expanded scalar, as from ``hdr.sum()``); weight, bounds: as the forward's.
            Fallback pixels are not special here: the caller replaces their gradient.
    """
    n, e, c, h, w = x.shape
    x = x.contiguous()
    table = slope_tab.to(x.dtype).contiguous()
    grad_hdr = grad_hdr.to(x.dtype)
    scalar = grad_hdr.dim() > 0 and all(st == 0 for st in grad_hdr.stride())
    grad = grad_hdr.reshape(-1)[:1] if scalar else grad_hdr.contiguous()
    hdr = hdr.contiguous()
    grad_x = torch.empty((n, e, c, h, w), dtype=x.dtype)
    status = _kernel("backward", x.dtype)(
        x.data_ptr(), n, e, c, h * w, table.data_ptr(), grad.data_ptr(), int(scalar), hdr.data_ptr(),
        WEIGHT_CODES[weight], float(bounds[0]), float(bounds[1]), _threads(x), grad_x.data_ptr())
    if status != 0:
        raise ValueError(f"native merge kernel: unknown weight {weight!r}")
    return grad_x

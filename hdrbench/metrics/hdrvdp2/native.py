"""Native float32 CPU kernels of HDR-VDP-2 (``kernels.cpp``): the masking stage and the resize, compiled on first use.

The masking model's torch form makes about forty passes over each band element, ten of them ``exp``/``log``; the
kernel runs each element's whole chain in registers (CSF lookup, the three masking powers, the divisive
normalisation, D, its psychometric power and the pooling sum of squares) and the mutual masking's 3x3 box filter in
one pass; the photoreceptor stage (receptor responses, the three transducer lookups, adapting luminance and the
sums for the means) is one pass per pixel; the MATLAB-compatible bicubic resize (:mod:`.resize`) runs as two passes over its taps instead of banded
matrix products. They are used for float32 CPU tensors when no gradient is needed and no intermediate stages are requested;
float64, CUDA, autograd and ``return_stages`` keep the torch code. ``HDRBENCH_NATIVE=0`` turns it off, and where no
C++ compiler works the torch code runs after one warning (:mod:`hdrbench.nativebuild`).

The values agree with the torch code to float32 rounding (tests/test_metrics_hdrvdp2_native.py); the exponentials
and logarithms are the kernel's own single-precision polynomials (about 1 ulp).
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import torch

from hdrbench import nativebuild
from hdrbench.nativebuild import NativeBuildError

SOURCE = Path(__file__).with_name("kernels.cpp")
ABI = 1
# -fno-trapping-math lets the compiler vectorise floor and the selects of the polynomial exp/log; no -ffast-math: the
# kernel's arithmetic stays IEEE (no reassociation), so that it follows the torch code's order of operations.
FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared", "-std=c++14")
VARIANTS = nativebuild.VARIANTS
#: Below this many band elements the kernels run on one thread (starting threads would cost more).
MIN_PARALLEL = 1 << 14


def build(flags: tuple[str, ...] = FLAGS + VARIANTS[0], out_dir: Path | None = None) -> Path:
    """Compile the kernel with ``flags`` (cached per source, flags and CPU) and return the library's path."""
    return nativebuild.build(SOURCE, "hdrvdp2_kernels", flags, out_dir)


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    if lib.hdrbench_vdp_abi() != ABI:
        raise NativeBuildError(f"{path} reports interface {lib.hdrbench_vdp_abi()}, expected {ABI}")
    i64, ptr, dbl, cint, flt = ctypes.c_int64, ctypes.c_void_p, ctypes.c_double, ctypes.c_int, ctypes.c_float
    lib.hdrbench_vdp_openmp.restype = cint
    lib.hdrbench_vdp_mutual_masking.argtypes = [ptr, ptr, i64, i64, i64, cint, ptr]
    lib.hdrbench_vdp_mutual_masking.restype = None
    lib.hdrbench_vdp_band.argtypes = [ptr, ptr, ptr, ptr, i64, flt, ptr, i64, flt, ptr, ptr, i64, ptr, i64, i64, i64,
                                      i64, dbl, dbl, dbl, dbl, dbl, dbl, cint, cint, ptr, ptr, ptr]
    lib.hdrbench_vdp_band.restype = cint
    lib.hdrbench_vdp_receptors.argtypes = [ptr, i64, i64, i64, ptr, ptr, ptr, i64, dbl, dbl, cint, ptr, ptr, ptr, ptr]
    lib.hdrbench_vdp_receptors.restype = cint
    for name in ("hdrbench_vdp_resize_rows", "hdrbench_vdp_resize_cols"):
        getattr(lib, name).argtypes = [ptr, i64, i64, i64, ptr, ptr, i64, i64, cint, ptr]
        getattr(lib, name).restype = None
    return lib


_LIBRARY = nativebuild.KernelLibrary("native HDR-VDP-2 kernels", lambda variant: build(FLAGS + variant), _load,
                                     VARIANTS)


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first call; None (after one warning) where no build works."""
    return _LIBRARY.get()


def status() -> str:
    """How the float32 CPU path runs, for benchmark rows: "on (OpenMP)", "on (1 thread)", "off (HDRBENCH_NATIVE=0)"
    or "unavailable" (no working compiler; the torch code runs)."""
    if not nativebuild.enabled():
        return "off (HDRBENCH_NATIVE=0)"
    lib = library()
    if lib is None:
        return "unavailable"
    return "on (OpenMP)" if lib.hdrbench_vdp_openmp() else "on (1 thread)"


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the kernels take these tensors: float32 on the CPU, no gradient needed, and the library loads."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors):
        return False
    return library() is not None


def _threads(numel: int) -> int:
    return max(1, torch.get_num_threads()) if numel >= MIN_PARALLEL else 1


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def receptors(img: torch.Tensor, matrix: torch.Tensor, cone: torch.Tensor, rod: torch.Tensor, first: float,
              step: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The photoreceptor stage of (N, C, H, W) float32 retinal images (C = 1 or 3), one pass per pixel.

    Args:
        img: retinal image in cd/m^2; matrix: (C, 4) channel -> (L, M, S, rod); cone, rod: transducer tables on
            log10 L = first + k step.

    Returns:
        ``(p_cone, p_rod, l_adapt, sums)``: (N, 1, H, W) cone response T(L) + T(M), rod response T(rod) and adapting
        luminance L + M (float32), and (N, 2) float64 sums of the two responses over each image.
    """
    img = img.contiguous()
    n, c, h, w = img.shape
    p_c, p_r, l_a = (img.new_empty((n, 1, h, w)) for _ in range(3))
    sums = torch.empty((n, 2), dtype=torch.float64)
    m, cone, rod = matrix.float().contiguous(), cone.float().contiguous(), rod.float().contiguous()
    if rod.numel() != cone.numel():
        raise ValueError("native.receptors: the cone and rod tables must have the same grid")
    status = library().hdrbench_vdp_receptors(img.data_ptr(), n, c, h * w, m.data_ptr(), cone.data_ptr(),
                                              rod.data_ptr(), cone.numel(), float(first), float(step),
                                              _threads(img.numel()), p_c.data_ptr(), p_r.data_ptr(), l_a.data_ptr(),
                                              sums.data_ptr())
    if status != 0:
        raise ValueError(f"native.receptors: needs 1 or 3 channels, got {c}")
    return p_c, p_r, l_a, sums


def resize_rows(x: torch.Tensor, idx: torch.Tensor, wts: torch.Tensor) -> torch.Tensor:
    """(..., H, W) float32 -> (..., h, W): ``out[.., y, :] = sum_k wts[y, k] x[.., idx[y, k], :]``.

    ``idx`` (h, K) int32 and ``wts`` (h, K) float32 are the taps of the resize matrix's rows (``resize.resize_taps``).
    """
    x = x.contiguous()
    hh, w = x.shape[-2:]
    h, k = idx.shape
    out = x.new_empty(x.shape[:-2] + (h, w))
    planes = x.numel() // (hh * w) if x.numel() else 0
    library().hdrbench_vdp_resize_rows(x.data_ptr(), planes, hh, w, idx.data_ptr(), wts.data_ptr(), h, k,
                                       _threads(out.numel()), out.data_ptr())
    return out


def resize_cols(x: torch.Tensor, idx_t: torch.Tensor, wts_t: torch.Tensor) -> torch.Tensor:
    """(..., H, W) float32 -> (..., H, w): ``out[.., x] = sum_k wts_t[k, x] in[.., idx_t[k, x]]``; taps (K, w)."""
    x = x.contiguous()
    h, ww = x.shape[-2:]
    k, w = idx_t.shape
    out = x.new_empty(x.shape[:-1] + (w,))
    rows = x.numel() // ww if x.numel() else 0
    library().hdrbench_vdp_resize_cols(x.data_ptr(), rows, 1, ww, idx_t.data_ptr(), wts_t.data_ptr(), w, k,
                                       _threads(out.numel()), out.data_ptr())
    return out


def mutual_masking(t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(N, O, h, w) float32 bands -> box3x3(min(|T|, |R|)) / 9 with zeros outside (``masking.mutual_masking``)."""
    t, r = t.contiguous(), r.contiguous()
    m = torch.empty_like(t)
    h, w = t.shape[-2:]
    planes = t.numel() // (h * w)
    library().hdrbench_vdp_mutual_masking(t.data_ptr(), r.data_ptr(), planes, h, w, _threads(t.numel()), m.data_ptr())
    return m


def band(t: torch.Tensor, r: torch.Tensor, m: torch.Tensor, neighbours: list[tuple[torch.Tensor, float]],
         csf: tuple[torch.Tensor, torch.Tensor] | None, dm: torch.Tensor, i: int, consts,
         keep_d: bool = False) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor] | None:
    """D (if ``keep_d``), the psychometric band and the pooling sums of band ``i``, or None on float32 overflow.

    Args:
        t, r, m: (N, O, h, w) test band, reference band and their mutual masking, float32.
        neighbours: up to two (resized masking (N, 1 or O, h, w), factor) pairs; each adds max(x, 0) * factor to
            the neighbouring-band masking term.
        csf: (table row (256,), resized log10 adapting luminance (N, 1, h, w)), or None for the base band (noise 1).
        dm: (N, 1, h, w) resized pixel difference mask.
        i: band index (band_norm = 2^i).
        consts: the metric's constants (mask_p, mask_q, pf, k_self, k_xo, k_xn).

    Returns:
        ``(D or None, D_psy, sq)`` with ``sq`` the (N, O) float64 sums of (D dm)^2; None when N^(2p) + N_mask^2
        left float32's range somewhere (the caller then uses the torch code, which falls back to ``hypot``).
    """
    n, o, h, w = t.shape
    t, r, m, dm = t.contiguous(), r.contiguous(), m.contiguous(), dm.contiguous()
    nb = [(x.contiguous(), float(s)) for x, s in neighbours]
    if len(nb) > 2:
        raise ValueError("native.band: at most two neighbouring bands")
    nb += [(None, 0.0)] * (2 - len(nb))
    (lo, lo_s), (hi, hi_s) = nb
    table, log_la = (None, None) if csf is None else (csf[0].contiguous(), csf[1].contiguous())
    d = torch.empty_like(t) if keep_d else None
    psy = torch.empty_like(t)
    sq = torch.empty((n, o), dtype=torch.float64)
    status = library().hdrbench_vdp_band(
        t.data_ptr(), r.data_ptr(), m.data_ptr(), _ptr(lo), 0 if lo is None else lo.shape[1], lo_s, _ptr(hi),
        0 if hi is None else hi.shape[1], hi_s, _ptr(log_la), _ptr(table), 0 if table is None else table.numel(),
        dm.data_ptr(), n, o, h, w, consts.mask_p, consts.mask_q, consts.pf, math.log(consts.k_self),
        math.log(consts.k_xo), math.log(consts.k_xn), i, _threads(t.numel()), _ptr(d), psy.data_ptr(), sq.data_ptr())
    if status != 0:
        return None
    return d, psy, sq

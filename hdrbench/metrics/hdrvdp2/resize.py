"""MATLAB-compatible bicubic ``imresize`` (antialiased when shrinking) as two cached matrix products.

MATLAB's ``imresize(A, [m n])`` with the default ``'bicubic'`` method resizes each dimension with a
Keys cubic kernel (a = -0.5). When a dimension shrinks (scale < 1) the kernel is stretched by 1/scale
and scaled by ``scale`` (antialiasing). Output sample ``u`` (1-based) maps to input coordinate
``u / scale + 0.5 (1 - 1 / scale)``; the weights of each output sample are normalised to sum to 1 and
indices outside the input are mirrored with the edge sample repeated (``[1..n, n..1]`` periodic).
Since the operation is linear and separable it is ``A_rows @ X @ A_cols^T``; the matrices depend only
on the sizes and are cached, and applied in blocks of rows that skip their zero columns (work linear in pixels).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from . import native


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))


@lru_cache(maxsize=256)
def resize_matrix_np(n_in: int, n_out: int) -> np.ndarray:
    """Return the (n_out, n_in) float64 matrix that resizes one dimension like MATLAB's bicubic imresize."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"resize sizes must be positive, got {n_in} -> {n_out}")
    scale = n_out / n_in
    width = 4.0
    if scale < 1.0:
        kernel = lambda x: scale * _cubic(scale * x)  # noqa: E731  (antialiasing: stretched kernel)
        width = width / scale
    else:
        kernel = _cubic
    u = np.arange(1, n_out + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # Mirror with the edge sample repeated: index sequence 1..n, n..1, periodic (1-based).
    aux = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    src = aux[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]  # idx is 1-based
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(n_out), taps), src.ravel()), w.ravel())
    return mat


#: Output samples per block of the banded product. Each output sample reads at most ``taps`` (<= 4 / scale + 2)
#: neighbouring inputs, so a dense (n_out, n_in) product does n_in / taps times too much work; that excess grows
#: with the image side (the cost of a dense resize grows as pixels^1.5). Blocks of this many outputs read a
#: contiguous input span of about BLOCK / scale + taps samples, which keeps the work linear in the pixels while
#: each block is still one BLAS call.
#: The work of a block is its rows times its span, about BLOCK / scale per output sample against the 4 / scale
#: non-zeros, so smaller blocks do less needless work until the per-call overhead wins: nine of the metric's
#: resizes at 512x384 took 8.1 ms with 32 against 9.6 ms with 64, 8.9 with 16 and 12.3 with 128 (one thread).
BLOCK = 32

_TORCH_CACHE: dict = {}


def resize_blocks(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> list[tuple[int, int, torch.Tensor]]:
    """The resize matrix cut into row blocks: [(in_start, in_stop, (rows, in_stop - in_start) block), ...].

    The blocks are the non-zero column span of consecutive ``BLOCK`` rows of :func:`resize_matrix_np` (the
    zeros left out contribute exactly nothing), cached per (sizes, dtype, device).
    """
    key = (n_in, n_out, dtype, str(device))
    blocks = _TORCH_CACHE.get(key)
    if blocks is None:
        if len(_TORCH_CACHE) > 512:
            _TORCH_CACHE.clear()
        mat = resize_matrix_np(n_in, n_out)
        blocks = []
        for r0 in range(0, n_out, BLOCK):
            rows = mat[r0 : r0 + BLOCK]
            nz = np.nonzero(rows.any(axis=0))[0]
            c0, c1 = int(nz[0]), int(nz[-1]) + 1
            with torch.inference_mode(False):  # a normal tensor even when first built under torch.inference_mode, so later autograd calls can use it
                block = torch.from_numpy(np.ascontiguousarray(rows[:, c0:c1])).to(device=device, dtype=dtype)
            blocks.append((c0, c1, block))
        _TORCH_CACHE[key] = blocks
    return blocks


def _resize_rows(x: torch.Tensor, n_out: int) -> torch.Tensor:
    blocks = resize_blocks(x.shape[-2], n_out, x.dtype, x.device)
    if len(blocks) == 1:
        c0, c1, b = blocks[0]
        return torch.matmul(b, x[..., c0:c1, :])
    return torch.cat([torch.matmul(b, x[..., c0:c1, :]) for c0, c1, b in blocks], dim=-2)


def _resize_cols(x: torch.Tensor, n_out: int) -> torch.Tensor:
    blocks = resize_blocks(x.shape[-1], n_out, x.dtype, x.device)
    if len(blocks) == 1:
        c0, c1, b = blocks[0]
        return torch.matmul(x[..., c0:c1], b.transpose(0, 1))
    return torch.cat([torch.matmul(x[..., c0:c1], b.transpose(0, 1)) for c0, c1, b in blocks], dim=-1)


_TAPS_CACHE: dict = {}


def resize_taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The non-zeros of :func:`resize_matrix_np` as taps for the native kernels (cached per sizes).

    Returns:
        ``(idx, wts, idx_t, wts_t)``: (n_out, K) int32 input indices and float32 weights of each output sample, in
        increasing input order, padded with zero weights (index 0) to the longest row's K; and the same transposed
        to (K, n_out), contiguous, for the column pass.
    """
    key = (n_in, n_out)
    taps = _TAPS_CACHE.get(key)
    if taps is None:
        if len(_TAPS_CACHE) > 512:
            _TAPS_CACHE.clear()
        mat = resize_matrix_np(n_in, n_out)
        nz = [np.nonzero(row)[0] for row in mat]
        k = max(len(c) for c in nz)
        idx = np.zeros((n_out, k), dtype=np.int32)
        wts = np.zeros((n_out, k), dtype=np.float32)
        for r, c in enumerate(nz):
            idx[r, : len(c)] = c
            wts[r, : len(c)] = mat[r, c]
        with torch.inference_mode(False):  # a normal tensor even when first built under torch.inference_mode
            i_t, w_t = torch.from_numpy(idx), torch.from_numpy(wts)
            taps = (i_t, w_t, i_t.t().contiguous(), w_t.t().contiguous())
        _TAPS_CACHE[key] = taps
    return taps


def imresize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of the last two dimensions, equal to MATLAB ``imresize(x, size)`` (antialiased).

    Args:
        x: (..., H, W) float tensor.
        size: output (height, width).

    Returns:
        (..., height, width) tensor of the same dtype and device. Identity when the size is unchanged
        (the cubic kernel is 1 at 0 and 0 at the other integers). Rows are resized first, then columns, each
        as a banded matrix product (:func:`resize_blocks`), or for float32 CPU tensors without gradients as the
        native kernels' sums over each output's taps (:func:`resize_taps`); the values equal
        ``A_rows @ x @ A_cols^T`` up to rounding.
    """
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x
    if native.usable(x):  # float32 on the CPU without gradients: two passes over the taps (native.py)
        if x.shape[-2] != h:
            idx, wts, _, _ = resize_taps(x.shape[-2], h)
            x = native.resize_rows(x, idx, wts)
        if x.shape[-1] != w:
            _, _, idx_t, wts_t = resize_taps(x.shape[-1], w)
            x = native.resize_cols(x, idx_t, wts_t)
        return x
    if x.shape[-2] != h:
        x = _resize_rows(x, h)
    if x.shape[-1] != w:
        x = _resize_cols(x, w)
    return x

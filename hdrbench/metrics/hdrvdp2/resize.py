"""MATLAB-compatible bicubic ``imresize`` (antialiased when shrinking) as two cached matrix products.

MATLAB's ``imresize(A, [m n])`` with the default ``'bicubic'`` method resizes each dimension with a
Keys cubic kernel (a = -0.5). When a dimension shrinks (scale < 1) the kernel is stretched by 1/scale
and scaled by ``scale`` (antialiasing). Output sample ``u`` (1-based) maps to input coordinate
``u / scale + 0.5 (1 - 1 / scale)``; the weights of each output sample are normalised to sum to 1 and
indices outside the input are mirrored with the edge sample repeated (``[1..n, n..1]`` periodic).
Since the operation is linear and separable it is ``A_rows @ X @ A_cols^T``; the matrices depend only
on the sizes and are cached.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


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


_TORCH_CACHE: dict = {}


def resize_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Torch copy of :func:`resize_matrix_np`, cached per (sizes, dtype, device)."""
    key = (n_in, n_out, dtype, str(device))
    m = _TORCH_CACHE.get(key)
    if m is None:
        if len(_TORCH_CACHE) > 512:
            _TORCH_CACHE.clear()
        m = torch.from_numpy(resize_matrix_np(n_in, n_out)).to(device=device, dtype=dtype)
        _TORCH_CACHE[key] = m
    return m


def imresize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of the last two dimensions, equal to MATLAB ``imresize(x, size)`` (antialiased).

    Args:
        x: (..., H, W) float tensor.
        size: output (height, width).

    Returns:
        (..., height, width) tensor of the same dtype and device. Identity when the size is unchanged
        (the cubic kernel is 1 at 0 and 0 at the other integers).
    """
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x
    a_h = resize_matrix(x.shape[-2], h, x.dtype, x.device)
    a_w = resize_matrix(x.shape[-1], w, x.dtype, x.device)
    return torch.matmul(torch.matmul(a_h, x), a_w.transpose(0, 1))

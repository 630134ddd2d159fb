"""Debevec-Malik (1997) non-parametric inverse CRF recovery, HDR Toolbox conventions, batched.

The recipe follows the MATLAB HDR Toolbox ``DebevecCRF`` that the reference paper matched (and its
official Python port): Grossberg histogram sampling (256 quantiles; by default taken with the quantile
function rather than the toolbox's nearest-CDF rule, see ``common.grossberg_samples``), the ``gsolve`` least-squares
system with smoothness ``lambda`` and Deb97 weights, ``g(128) = 0`` (0-based code 128), ``exp(g)``,
a chromaticity balance that makes the mid code grey, and a normalisation.

Normalisation choices (``normalize``):

* ``"toolbox"`` (default): every balanced channel is divided by the maximum of the *last* channel's
  *unbalanced* curve. This is what the toolbox and the official code do (the loop variable that holds
  the maximum is overwritten per channel, so only the last survives); the balanced curves then peak
  near, not exactly at, 1. It fixes the absolute scale of the HDR images the reference produced.
* ``"max"``: every balanced channel is divided by the largest balanced value over all channels, so the
  brightest channel peaks at exactly 1 (the evident intent of the normalisation).
* ``"official"``: the official Python port: every balanced curve is divided by the maximum of the last
  (blue) channel's *unbalanced* curve taken over the *whole batch* (the port's maximum runs over the
  batch axis too), so the scenes of a batch share one divisor. Identical to ``"toolbox"`` for one scene.
* ``"none"``: balanced curves with ``g(128) = 0`` (value 1 at code 128 before balancing).

The keyword is ``normalize``; ``normalise`` is accepted as its alias.
"""

from __future__ import annotations

import numpy as np
import torch

from hdrbench.errors import InputError
from hdrbench.imaging.calibration.common import (
    N_LEVELS,
    check_exposure_times,
    check_stack,
    chromaticity_scale,
    deb97_table,
    sample_codes,
    to_levels,
)

NORMALIZATIONS = ("toolbox", "max", "official", "none")
#: Least-squares solvers of :func:`gsolve`.
SOLVERS = ("normal", "lstsq")


def gsolve(
    samples: torch.Tensor, log_times: torch.Tensor, smoothing: float, weights: torch.Tensor, method: str = "normal"
) -> torch.Tensor:
    """Solve Debevec-Malik's least-squares system for a batch of channels.

    Unknowns: ``g(0..255)`` and one log irradiance per sample. Rows: ``w(Z_ij) (g(Z_ij) - ln E_i) =
    w(Z_ij) ln t_j`` for every sample/exposure, ``g(128) = 0``, and ``lambda w(z) (g(z-1) - 2 g(z) +
    g(z+1)) = 0`` for z = 1..254. Solved in float64, by default through the normal equations
    (``method="lstsq"``: LAPACK ``gelsd`` minimum-norm SVD solve of the full system, as ``numpy.linalg.lstsq``
    in the reference; both give the same g, see the tests).

    Args:
        samples: ``(B, S, E)`` int64 codes in 0..255.
        log_times: ``(B, E)`` float64 natural logs of the exposure times.
        smoothing: lambda (>= 0).
        weights: ``(256,)`` float64 weight per code.
        method: ``"normal"`` or ``"lstsq"``.

    Returns:
        ``(B, 256)`` float64 log inverse response ``g``.
    """
    b, s, e = samples.shape
    n = N_LEVELS
    n_data = s * e
    rows = n_data + 1 + (n - 2)
    a = torch.zeros(b, rows, n + s, dtype=torch.float64)
    rhs = torch.zeros(b, rows, 1, dtype=torch.float64)
    z = samples.reshape(b, n_data)  # row r = i * E + j
    w = weights[z]  # (B, n_data)
    r = torch.arange(n_data)
    bi = torch.arange(b).unsqueeze(1)
    a[bi, r, z] = w
    a[bi, r, n + r // e] = -w
    rhs[:, :n_data, 0] = w * log_times[:, r % e]
    a[:, n_data, n // 2] = 1.0  # g(128) = 0: MATLAB's A(k, 129) = 1
    zz = torch.arange(1, n - 1)
    sr = n_data + 1 + torch.arange(n - 2)
    lw = smoothing * weights[zz]
    a[:, sr, zz - 1] = lw
    a[:, sr, zz] = -2.0 * lw
    a[:, sr, zz + 1] = lw
    if method == "lstsq":
        x = torch.linalg.lstsq(a, rhs, driver="gelsd").solution
        return x[:, :n, 0]
    # Normal equations: 5-10x faster than QR at these sizes and accurate in float64 (the system's condition
    # number is ~1e3-1e4). Unknowns whose column is all zero (samples clipped in every exposure) are
    # decoupled; pinning them to 0 gives the same g as the minimum-norm least-squares solution.
    at = a.transpose(1, 2)
    ata = at @ a
    atb = at @ rhs
    diag = ata.diagonal(dim1=1, dim2=2)
    free = diag == 0
    diag += free.to(diag.dtype)
    x = torch.linalg.solve(ata, atb)
    return x[:, :n, 0]


def debevec_inverse_crf(
    stack: torch.Tensor,
    exposure_times,
    *,
    smoothing: float = 20.0,
    n_samples: int = 256,
    sampling: str = "grossberg",
    quantile: str = "inverse-cdf",
    balance: bool = True,
    normalize: str = "toolbox",
    normalise: str | None = None,
    solver: str = "normal",
) -> torch.Tensor:
    """Recover inverse camera responses with Debevec-Malik, batched over scenes and channels.

    Args:
        stack: ``(N, E, C, H, W)`` LDR stack in [0, 1] (8-bit codes / 255); any exposure order.
        exposure_times: ``(E,)`` or ``(N, E)`` positive relative exposure times (seconds).
        smoothing: smoothness weight lambda (toolbox default 20).
        sampling: ``"grossberg"`` (histogram quantiles, as the toolbox and the official code) or ``"spatial"``
            (a regular grid of pixel locations, as Debevec-Malik's original method).
        quantile: Grossberg quantile rule, ``"inverse-cdf"`` (default) or ``"nearest"`` (the HDR Toolbox's;
            see :func:`~hdrbench.imaging.calibration.common.grossberg_samples`).
        n_samples: samples per exposure (toolbox default 256).
        balance: apply the toolbox's chromaticity balance (mid code made grey).
        normalize: ``"toolbox"``, ``"max"``, ``"official"`` or ``"none"`` (see the module docstring).
        normalise: alias of ``normalize`` (give one of the two).
        solver: ``"normal"`` (normal equations, default) or ``"lstsq"`` (the minimum-norm SVD solve that
            numpy's ``lstsq`` in the official code uses); see :func:`gsolve`.

    Returns:
        ``(N, C, 256)`` tensor on the stack's device and dtype: linear relative irradiance for each
        8-bit code (entry k is the inverse response at ``k / 255``). Detached: the solve is not
        differentiated, exactly as in the reference.

    Raises:
        InputError: malformed stack/exposure times or unknown ``normalize``.
    """
    check_stack(stack)
    if normalise is not None:
        if normalize != "toolbox" and normalize != normalise:
            raise InputError(f"give normalize or its alias normalise, not both ({normalize!r} vs {normalise!r})")
        normalize = normalise
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {SOLVERS}; got {solver!r}")
    if normalize not in NORMALIZATIONS:
        raise InputError(f"normalize must be one of {NORMALIZATIONS}; got {normalize!r}")
    if smoothing < 0 or not np.isfinite(smoothing):
        raise InputError(f"smoothing must be a finite number >= 0; got {smoothing}")
    if int(n_samples) < 2:
        raise InputError(f"n_samples must be >= 2; got {n_samples}")
    n, e, c = stack.shape[:3]
    times = check_exposure_times(exposure_times, n, e)
    # The solve runs on the CPU in float64 whatever the input device: it is small, detached, and the
    # minimum-norm LAPACK driver it needs is CPU-only.
    levels = to_levels(stack).cpu()
    samples = sample_codes(levels, int(n_samples), sampling, quantile)  # (N, C, S, E)
    log_t = torch.log(times).unsqueeze(1).expand(n, c, e).reshape(n * c, e)
    g = gsolve(samples.reshape(n * c, -1, e), log_t, float(smoothing), deb97_table(), method=solver)
    lin = torch.exp(g).reshape(n, c, N_LEVELS)
    out = lin.clone()
    batch_max = lin[:, -1].max()  # "official": one divisor for the whole batch
    for i in range(n):
        if balance and c > 1:
            # Toolbox: FindChromaticyScale([0.5 0.5 0.5], lin_fun(128, :)) -> 0-based code 127.
            scale = torch.from_numpy(chromaticity_scale(lin[i, :, 127].numpy(), [0.5] * c))
            out[i] = lin[i] * scale.unsqueeze(1)
        if normalize == "toolbox":
            out[i] = out[i] / lin[i, -1].max()
        elif normalize == "official":
            out[i] = out[i] / batch_max
        elif normalize == "max":
            out[i] = out[i] / out[i].max()
    return out.to(device=stack.device, dtype=stack.dtype)

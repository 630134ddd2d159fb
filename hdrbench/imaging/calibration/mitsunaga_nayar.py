"""Mitsunaga-Nayar (1999) polynomial inverse CRF with exposure-ratio refinement, batched.

Model (appendix Eq. 8-9 of the reference paper, HDR Toolbox ``MitsunagaNayarCRFClassic``):
``g(Z) = sum_k c_k Z^k`` for normalised codes Z in [0, 1], with the constraint ``g(1) = sum_k c_k = 1``
imposed by eliminating the last coefficient (``c_K = 1 - sum_{k<K} c_k``). For consecutive exposures
sorted by time, ``g(Z_q) = R_q g(Z_{q+1})`` with ``R_q = t_q / t_{q+1}``; the coefficients minimise
``sum_{p,q} [g(Z_{p,q}) - R_q g(Z_{p,q+1})]^2`` (a linear least-squares problem), then the ratios are
re-estimated by least squares for the current g,
``R_q = sum_p g(Z_{p,q}) g(Z_{p,q+1}) / sum_p g(Z_{p,q+1})^2``, and the two steps alternate until the
ratios stop changing. ``(g^a, R^a)`` fits as well as ``(g, R)`` for any a, so unconstrained updates
drift towards the trivial ``g = const, R = 1``; the refined ratios are therefore rescaled (in the log
domain) to keep the total span ``t_first / t_last`` of the initial times. ``g`` returns *linear*
irradiance: the appendix writes ``ln E`` on the left of
Eq. 8, but a multiplicative ratio in Eq. 9 and the constraint ``g(1) = 1`` only hold for linear
irradiance, which is also what the toolbox and the official code evaluate.

The official code runs a single solve (``maxiterations = -1``); pass ``max_iterations=0`` for that.
The default iterates as the appendix describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hdrbench.errors import InputError
from hdrbench.imaging.calibration.common import (
    N_LEVELS,
    check_exposure_times,
    check_stack,
    chromaticity_scale,
    sample_codes,
    solve_each,
    to_levels,
)


@dataclass
class PolynomialCRF:
    """Result of :func:`mitsunaga_nayar_inverse_crf`.

    Attributes:
        coefficients: ``(N, C, K+1)`` ascending-power coefficients ``c_0..c_K`` (after chromaticity
            balance) of the inverse CRF ``g(Z) = sum_k c_k Z^k``, Z in [0, 1] -> linear relative irradiance.
        table: ``(N, C, 256)`` ``g`` evaluated at ``k / 255``.
        ratios: ``(N, C, E-1)`` refined exposure ratios ``t_q / t_{q+1}`` of the time-sorted exposures.
        error: ``(N, C)`` final mean squared residual of Eq. 9 per valid sample pair.
        iterations: ``(N, C)`` number of ratio updates performed.
    """

    coefficients: torch.Tensor
    table: torch.Tensor
    ratios: torch.Tensor
    error: torch.Tensor
    iterations: torch.Tensor

    @property
    def order(self) -> int:
        return self.coefficients.shape[-1] - 1


def polyval(coefficients: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Evaluate ascending-power polynomials by Horner's rule; ``coefficients`` (..., K+1) broadcast with z (..., M)."""
    out = torch.zeros_like(z) + coefficients[..., -1:]
    for k in range(coefficients.shape[-1] - 2, -1, -1):
        out = out * z + coefficients[..., k : k + 1]
    return out


def _solve_coefficients(m: torch.Tensor, valid: torch.Tensor, ratios: torch.Tensor, order: int):
    """One constrained least-squares solve.

    Args:
        m: ``(B, S, E)`` normalised samples (time-ascending exposures).
        valid: ``(B, S, E-1)`` bool, pair (q, q+1) usable.
        ratios: ``(B, E-1)`` current ratios.
        order: K.

    Returns:
        ``(B, K+1)`` coefficients and ``(B,)`` mean squared residual.
    """
    powers = torch.arange(order + 1, dtype=m.dtype)
    mp = m.unsqueeze(-1) ** powers  # (B, S, E, K+1)
    lo, hi = mp[:, :, :-1], mp[:, :, 1:]
    r = ratios[:, None, :, None]
    # Eliminate c_K = 1 - sum_{k<K} c_k: g(Z) = sum_{k<K} c_k (Z^k - Z^K) + Z^K.
    d = (lo[..., :order] - lo[..., order:]) - r * (hi[..., :order] - hi[..., order:])  # (B, S, E-1, K)
    f = lo[..., order] - r[..., 0] * hi[..., order]  # (B, S, E-1)
    wv = valid.to(m.dtype)
    d = (d * wv.unsqueeze(-1)).reshape(m.shape[0], -1, order)
    f = (f * wv).reshape(m.shape[0], -1, 1)
    ata = d.transpose(1, 2) @ d
    atb = -(d.transpose(1, 2) @ f)
    # A tiny ridge keeps channels with almost no valid pairs solvable; it is 1e-12 of the trace.
    ridge = 1e-12 * ata.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(1e-300)
    ata = ata + ridge[:, None, None] * torch.eye(order, dtype=m.dtype)
    c = solve_each(ata, atb)[..., 0]  # not batched: see solve_each
    coeffs = torch.cat([c, 1.0 - c.sum(-1, keepdim=True)], dim=-1)
    resid = (d @ c.unsqueeze(-1) + f)[..., 0]
    err = (resid**2).sum(-1) / wv.reshape(m.shape[0], -1).sum(-1).clamp_min(1)
    return coeffs, err


def mitsunaga_nayar_inverse_crf(
    stack: torch.Tensor,
    exposure_times,
    *,
    order: int = 5,
    n_samples: int = 256,
    sampling: str = "grossberg",
    quantile: str = "inverse-cdf",
    outlier: float = 0.01,
    max_iterations: int = 50,
    tolerance: float = 1e-4,
    balance: bool = True,
) -> PolynomialCRF:
    """Fit Mitsunaga-Nayar polynomial inverse CRFs, batched over scenes and channels.

    One function on purpose: it follows the reference algorithm (sampling, polynomial solve, ratio
    updates, balance) step by step, in its order, so it can be read side by side with the published method.

    Args:
        stack: ``(N, E, C, H, W)`` LDR stack in [0, 1]; any exposure order (sorted internally by time).
        exposure_times: ``(E,)`` or ``(N, E)`` positive relative exposure times: the initial ratios.
        order: polynomial order K >= 1 (the appendix compares 3 and 5; the official code uses 5).
        sampling: ``"grossberg"`` (histogram quantiles, as the toolbox and the official code) or ``"spatial"``
            (a regular grid of pixel locations, as Debevec-Malik's original method).
        quantile: Grossberg quantile rule, ``"inverse-cdf"`` (default) or ``"nearest"`` (the HDR Toolbox's;
            see :func:`~hdrbench.imaging.calibration.common.grossberg_samples`).
        n_samples: samples per exposure (as the official code).
        outlier: samples with code < outlier*255 or > (1-outlier)*255 are dropped (official: 1%).
        max_iterations: ratio updates after the first solve; 0 reproduces the official single solve.
        tolerance: stop when no ratio changes by more than this (relative).
        balance: apply the toolbox's chromaticity balance at code 127.

    Returns:
        :class:`PolynomialCRF` on the stack's device and dtype (detached).

    Raises:
        InputError: malformed arguments.
    """
    check_stack(stack)
    if int(order) != order or order < 1:
        raise InputError(f"order must be an integer >= 1; got {order}")
    if not 0 <= outlier < 0.5:
        raise InputError(f"outlier must be in [0, 0.5); got {outlier}")
    if max_iterations < 0:
        raise InputError(f"max_iterations must be >= 0; got {max_iterations}")
    order = int(order)
    n, e, c = stack.shape[:3]
    times = check_exposure_times(exposure_times, n, e)
    order_idx = torch.argsort(times, dim=1)  # ascending time, per scene
    times = torch.gather(times, 1, order_idx)
    levels = to_levels(stack).cpu()
    levels = torch.gather(levels, 1, order_idx.view(n, e, 1, 1, 1).expand_as(levels))
    samples = sample_codes(levels, int(n_samples), sampling, quantile)  # (N, C, S, E)
    m = samples.reshape(n * c, -1, e).to(torch.float64) / (N_LEVELS - 1)
    ok = (samples.reshape(n * c, -1, e) >= outlier * 255) & (samples.reshape(n * c, -1, e) <= (1 - outlier) * 255)
    valid = ok[:, :, :-1] & ok[:, :, 1:]
    ratios = (times[:, :-1] / times[:, 1:]).repeat_interleave(c, dim=0)  # (N*C, E-1)
    span = torch.log(ratios).sum(-1, keepdim=True)
    coeffs, err = _solve_coefficients(m, valid, ratios, order)
    iterations = torch.zeros(n * c, dtype=torch.long)
    active = torch.ones(n * c, dtype=torch.bool)
    for _ in range(int(max_iterations)):
        g = polyval(coeffs.unsqueeze(1), m)  # (B, S, E)
        wv = valid.to(g.dtype)
        num = (wv * g[:, :, :-1] * g[:, :, 1:]).sum(1)
        den = (wv * g[:, :, 1:] ** 2).sum(1)
        # Least-squares optimal ratio for the current g (minimises Eq. 9 over R_q alone).
        new = torch.where(den > 1e-12, num / den.clamp_min(1e-12), ratios).clamp_min(1e-12)
        # g -> g^a with R -> R^a fits equally well (the model's exponential ambiguity); left free, the
        # iteration drifts towards the trivial g = const, R = 1. Keeping the total span prod(R_q) at its
        # initial value (known first and last exposure times) pins a.
        new = torch.exp(torch.log(new) * (span / torch.log(new).sum(-1, keepdim=True)))
        change = ((new - ratios).abs() / ratios).amax(-1)
        ratios = torch.where(active.unsqueeze(1), new, ratios)
        new_coeffs, new_err = _solve_coefficients(m, valid, ratios, order)
        coeffs = torch.where(active.unsqueeze(1), new_coeffs, coeffs)
        err = torch.where(active, new_err, err)
        iterations += active.long()
        active = active & (change > tolerance)
        if not active.any():
            break
    coeffs = coeffs.reshape(n, c, order + 1)
    z = torch.linspace(0.0, 1.0, N_LEVELS, dtype=torch.float64)
    table = polyval(coeffs, z.expand(n, c, N_LEVELS))
    if balance and c > 1:
        for i in range(n):
            scale = torch.from_numpy(chromaticity_scale(table[i, :, 127].numpy(), [0.5] * c))
            table[i] = table[i] * scale.unsqueeze(1)
            coeffs[i] = coeffs[i] * scale.unsqueeze(1)
    kw = dict(device=stack.device, dtype=stack.dtype)
    return PolynomialCRF(
        coefficients=coeffs.to(**kw),
        table=table.to(**kw),
        ratios=ratios.reshape(n, c, e - 1).to(**kw),
        error=err.reshape(n, c).to(**kw),
        iterations=iterations.reshape(n, c).to(stack.device),
    )

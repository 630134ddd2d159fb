"""Merge an exposure stack into a linear HDR image: the differentiable HDR synthesis layer.

The layer follows the HDR Toolbox's ``BuildHDR(stack, times, 'LUT', [], 'Deb97', 'log')`` as the
reference paper's official code ported it (2019 toolbox, no identity/reverse weight switch):

1. recover the inverse CRF (Debevec-Malik by default) from the detached stack: no gradient flows
   through the solve;
2. linearise every exposure through it (gradient: the table's slope, see ``linearize``);
3. weight every pixel (detached, as the reference computes weights in numpy);
4. merge: ``log``: ``exp(sum_j w_j (ln f^-1(Z_j) - ln t_j) / (sum_j w_j + 1e-9))``; ``linear``:
   ``sum_j w_j f^-1(Z_j) / t_j / (sum_j w_j + 1e-9)``; ``w_time_sq``:
   ``sum_j w_j f^-1(Z_j) t_j / (sum_j w_j t_j^2 + 1e-9)``;
5. saturation fallback: where the summed weight is <= 1e-4 (per pixel and channel), a mid exposure
   brighter than 0.5 takes the shortest exposure's ``f^-1(Z)/t`` and a darker one the longest's
   (``saturation_fallback="channel-coupled"``: the official port's masks, shared by the three channels).

Linearised values are floored at 1e-7 before the log (the official code's guard against non-positive
table entries; the MATLAB toolbox adds ``delta`` = 1/65536 instead, available as ``log_delta``).

Where the official code and the paper's intent differ, the intent is the default and the code's
behaviour an option: the table's backward is its slope in units of x in [0, 1], correct at both ends
(``slope="official"`` reproduces the listing's per-code differences and its first-entry bug), and the
Grossberg samples are histogram quantiles (``calibration={"quantile": "nearest"}`` reproduces the
toolbox's nearest-CDF rule). The common case (tabulated curve, nearest lookup, centred slope, log
merge, detached weights) runs as one autograd node, ``fused.TableLogMerge``, on CPU stacks in its native
form (``fused.NativeTableLogMerge``: C++ kernels compiled on first use, ``synthesis.native``).

:data:`OFFICIAL_LAYER` collects the options that reproduce the official ``hdrlayer(lin_type='LUT',
method='Debevec')`` exactly (checked against outputs of the official code in the tests).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hdrbench.errors import InputError
from hdrbench.imaging.calibration import PolynomialCRF, debevec_inverse_crf, mitsunaga_nayar_inverse_crf, polyval
from hdrbench.imaging.calibration.common import N_LEVELS, check_exposure_times, check_stack
from hdrbench.imaging.synthesis import native as native_kernels
from hdrbench.imaging.synthesis.fused import (
    FALLBACKS,
    NativeTableLogMerge,
    TableLogMerge,
    compiled_log_merge,
    fallback_pixels,
    log_tables,
)
from hdrbench.imaging.synthesis.linearize import (
    expand_table,
    gamma_to_linear,
    linearize_polynomial,
    lookup_table,
    slope_table,
    srgb_to_linear,
)
from hdrbench.imaging.synthesis.weights import weight_function
from hdrbench.registry import Registry

INVERSE_CRFS: Registry = Registry("inverse CRF")
for _n in ("debevec", "mitsunaga-nayar", "gamma", "srgb", "linear"):
    INVERSE_CRFS.register(_n, _n)

MERGES: Registry = Registry("merge")
for _n in ("log", "linear", "w_time_sq"):
    MERGES.register(_n, _n)

#: ``merge_stack(backend=...)`` choices (see its docstring): all give the same values and gradients.
BACKENDS = ("auto", "torch", "compiled", "generic")

#: ``merge_stack`` keyword arguments that reproduce the official code's ``hdrlayer(lin_type='LUT',
#: method='Debevec')`` (a port of the 2019 HDR Toolbox ``BuildHDR(..., 'LUT', [], 'Deb97', 'log')``):
#: Debevec-Malik with lambda 20, the toolbox's nearest-CDF Grossberg sampling, a least-squares solve
#: (numpy ``lstsq``), the chromaticity balance and then division by the maximum of the unscaled last
#: (blue) curve over the whole batch; nearest lookup with the listing's per-code-difference backward;
#: linearised values floored at 1e-7, no log delta; Deb97 weights; log merge; the channel-coupled
#: saturation fallback at total weight 1e-4. Use as ``merge_stack(stack, times, **OFFICIAL_LAYER)``.
OFFICIAL_LAYER: dict = {
    "inverse_crf": "debevec",
    "weight": "deb97",
    "merge": "log",
    "lookup": "nearest",
    "slope": "official",
    "table_floor": 1e-7,
    "log_delta": 0.0,
    "saturation": 1e-4,
    "saturation_fallback": "channel-coupled",
    "calibration": {"smoothing": 20.0, "n_samples": 256, "sampling": "grossberg", "quantile": "nearest",
                    "solver": "lstsq", "normalise": "official"},
}


class MergeResult(NamedTuple):
    """Output of :func:`merge_stack`.

    Attributes:
        hdr: ``(N, C, H, W)`` linear relative HDR (scale fixed by the inverse CRF's normalisation and the
            exposure times; EV0 = 1 s).
        inverse_crf: ``(N, C, 256)`` the inverse CRF used, evaluated at codes ``k / 255``.
    """

    hdr: torch.Tensor
    inverse_crf: torch.Tensor


def _analytic(name: str, gamma: float):
    if name == "gamma":
        return lambda x: gamma_to_linear(x, gamma)
    if name == "srgb":
        return srgb_to_linear
    return lambda x: x


def linearize_stack(
    stack: torch.Tensor,
    times: torch.Tensor,
    inverse_crf="debevec",
    *,
    lookup: str = "nearest",
    slope: str = "centred",
    gamma: float = 2.2,
    calibration: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linearise a checked stack; returns ``(linear (N, E, C, H, W), table (N, C, 256))``."""
    n, e, c = stack.shape[:3]
    cal = dict(calibration or {})
    if isinstance(inverse_crf, str):
        kind = INVERSE_CRFS.get(inverse_crf.lower())
        if kind == "debevec":
            table = debevec_inverse_crf(stack.detach(), times, **cal)
            return lookup_table(stack, table, lookup=lookup, slope=slope), table
        if kind == "mitsunaga-nayar":
            inverse_crf = mitsunaga_nayar_inverse_crf(stack.detach(), times, **cal)
        else:
            fn = _analytic(kind, gamma)
            z = torch.linspace(0.0, 1.0, N_LEVELS, dtype=stack.dtype, device=stack.device)
            return fn(stack), fn(z).expand(n, c, N_LEVELS)
    if isinstance(inverse_crf, PolynomialCRF):
        z = torch.linspace(0.0, 1.0, N_LEVELS, dtype=stack.dtype, device=stack.device)
        coeffs = inverse_crf.coefficients.to(device=stack.device, dtype=stack.dtype)
        if coeffs.dim() == 2:
            coeffs = coeffs.unsqueeze(0).expand(n, *coeffs.shape)
        table = polyval(coeffs, z.expand(n, c, N_LEVELS))
        return linearize_polynomial(stack, coeffs), table
    if isinstance(inverse_crf, torch.Tensor):
        table = expand_table(inverse_crf, n, c)
        return lookup_table(stack, table, lookup=lookup, slope=slope), table.to(dtype=stack.dtype, device=stack.device)
    raise InputError(
        "inverse_crf must be 'debevec', 'mitsunaga-nayar', 'gamma', 'srgb', 'linear', a (C, 256)/(N, C, 256) "
        f"tensor or a PolynomialCRF; got {type(inverse_crf).__name__}"
    )


def merge_stack(
    stack: torch.Tensor,
    exposure_times,
    *,
    inverse_crf="debevec",
    weight: str = "deb97",
    merge: str = "log",
    weight_bounds: tuple[float, float] = (0.0, 1.0),
    mean_weight: bool = False,
    differentiable_weights: bool = False,
    lookup: str = "nearest",
    slope: str = "centred",
    gamma: float = 2.2,
    table_floor: float = 1e-7,
    log_delta: float = 0.0,
    saturation: float = 1e-4,
    saturation_fallback: str = "per-channel",
    calibration: dict | None = None,
    backend: str = "auto",
) -> MergeResult:
    """Merge LDR exposure stacks into linear HDR images (differentiable with respect to ``stack``).

    Args:
        stack: ``(N, E, C, H, W)`` LDR stacks in [0, 1] (display-referred 8-bit codes / 255).
        exposure_times: ``(E,)`` or ``(N, E)`` positive relative exposure times (s; ``2 ** EV`` with EV0 = 1).
        inverse_crf: ``"debevec"`` (recovered per scene), ``"mitsunaga-nayar"`` (polynomial, recovered per
            scene), ``"gamma"``, ``"srgb"``, ``"linear"``, a table ``(C, 256)`` / ``(N, C, 256)`` of linear values
            at codes ``k / 255``, or a :class:`~hdrbench.imaging.calibration.PolynomialCRF`.
        weight: ``deb97`` (default), ``hat``, ``box``, ``robertson`` or ``all``.
        merge: ``log`` (default), ``linear`` or ``w_time_sq``.
        weight_bounds: ``(lo, hi)`` bounds of the weight function.
        mean_weight: use the mean of the channel weights for every channel (toolbox ``bMeanWeight``).
        differentiable_weights: let gradients flow through the weights too (the reference detaches them).
        lookup: table lookup, ``nearest`` (reference) or ``linear``.
        slope: table backward, ``centred`` (default), ``segment`` or ``official`` (see ``linearize``).
        gamma: exponent for ``inverse_crf="gamma"``.
        table_floor: linearised values are floored here before the log merge (official code: 1e-7).
        log_delta: added inside the log (MATLAB toolbox: 1/65536; official Python: 0).
        saturation: total-weight threshold of the saturation fallback.
        saturation_fallback: ``"per-channel"`` (default: each channel of a pixel falls back on its own) or
            ``"channel-coupled"`` (the official port: a fallback in one channel replaces all three; see
            ``fused.fallback_pixels``).
        calibration: keyword arguments for the CRF recovery (e.g. ``{"smoothing": 20.0}`` or ``{"order": 3}``).
        backend: how the common case (tabulated inverse CRF that needs no gradient, nearest lookup, centred
            slope, log merge, detached weights) runs; other cases always build the generic graph. One of
            ``"auto"`` (default: one autograd node, ``synthesis.fused``, on the compiled CPU kernels of
            ``synthesis.native`` when the stack is a float32 or float64 CPU tensor, the weights are per channel and
            the kernel builds, else on torch operations; same values and gradients either way), ``"torch"`` (that
            node on torch operations only), ``"compiled"`` (the node's graph through ``torch.compile``,
            ``fused.compiled_log_merge``: several times faster per call, after a one-off compilation of tens of
            seconds per new shape) or ``"generic"`` (the generic graph; same values and gradients, kept to check
            the node).

    Returns:
        :class:`MergeResult` with ``hdr`` ``(N, C, H, W)`` (stack dtype and device) and ``inverse_crf``
        ``(N, C, 256)``.

    Raises:
        InputError, UnknownNameError: malformed stack, times, tables or option names.
    """
    check_stack(stack)
    n, e, c = stack.shape[:3]
    merge = MERGES.get(str(merge).lower())
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if saturation_fallback not in FALLBACKS:
        raise InputError(f"saturation_fallback must be one of {FALLBACKS}; got {saturation_fallback!r}")
    times = check_exposure_times(exposure_times, n, e, device=stack.device)
    common = merge == "log" and lookup == "nearest" and slope == "centred" and not differentiable_weights
    table = _fusable_table(stack, times, inverse_crf, calibration) if common and backend != "generic" else None
    if table is not None:
        # Common case in one autograd node (see ``fused``); same values and gradients as the graph below.
        hdr = _merge_tabulated(stack, times, table, weight=weight, weight_bounds=weight_bounds,
                               mean_weight=mean_weight, table_floor=table_floor, log_delta=log_delta,
                               saturation=saturation, saturation_fallback=saturation_fallback, backend=backend)
        return MergeResult(hdr=hdr, inverse_crf=table)
    lin, table = linearize_stack(
        stack, times, inverse_crf, lookup=lookup, slope=slope, gamma=gamma, calibration=calibration
    )
    hdr = _merge_graph(stack, times, lin.clamp_min(table_floor), merge=merge, weight=weight,
                       weight_bounds=weight_bounds, mean_weight=mean_weight,
                       differentiable_weights=differentiable_weights, log_delta=log_delta, saturation=saturation,
                       saturation_fallback=saturation_fallback)
    return MergeResult(hdr=hdr, inverse_crf=table)


def _merge_tabulated(stack, times, table, *, weight, weight_bounds, mean_weight, table_floor, log_delta, saturation,
                     saturation_fallback, backend) -> torch.Tensor:
    """The common case of :func:`merge_stack` (tabulated curve, nearest lookup, centred slope, log merge, detached
    weights) on the native kernels (``backend="auto"`` where they apply), the torch node or the compiled graph."""
    n, e, c = stack.shape[:3]
    t = times.to(stack.dtype).view(n, e, 1, 1, 1)
    log_table, slope_tab = log_tables(table, table_floor, log_delta)
    lin_table = table.clamp_min(table_floor)
    lin_slope = slope_table(table).masked_fill(table < table_floor, 0.0)
    # Name and bounds errors here: the native kernels and the compiled graph evaluate the weights themselves.
    weight_function(stack[:1, :1, :1, :1, :1].detach(), weight, bounds=weight_bounds)
    if backend == "auto" and native_kernels.supports(stack, weight, mean_weight):
        return NativeTableLogMerge.apply(stack, times.to(stack.dtype), log_table, slope_tab, lin_table, lin_slope,
                                         float(saturation), str(weight).lower(),
                                         tuple(float(b) for b in weight_bounds), saturation_fallback)
    if backend != "compiled":
        w = _weights(stack.detach(), weight, weight_bounds, mean_weight)
        return TableLogMerge.apply(stack, w, times.to(stack.dtype), log_table, slope_tab, lin_table, lin_slope,
                                   float(saturation), saturation_fallback)
    lo, hi = (float(b) for b in weight_bounds)
    hdr, total = compiled_log_merge()(stack, torch.log(t.view(n, e)), log_table.reshape(-1),
                                      slope_tab.reshape(-1), str(weight).lower(), lo, hi, bool(mean_weight))
    ni, ei, ci, hi, wi = fallback_pixels(stack.detach(), total, times, saturation, fallback=saturation_fallback)
    if ni.numel():
        x = stack[ni, ei, ci, hi, wi]
        k = (ni * c + ci) * N_LEVELS + torch.round(x.detach() * (N_LEVELS - 1)).long().clamp_(0, N_LEVELS - 1)
        lin = torch.take(lin_table, k) + (x - x.detach()) * torch.take(lin_slope, k)  # value T, slope S
        hdr = hdr.index_put((ni, ci, hi, wi), lin / times[ni, ei].to(stack.dtype))
    return hdr


def _merge_graph(stack, times, lin, *, merge, weight, weight_bounds, mean_weight, differentiable_weights, log_delta,
                 saturation, saturation_fallback) -> torch.Tensor:
    """Every other case of :func:`merge_stack` as a plain autograd graph over the linearised stack ``lin``."""
    n, e = stack.shape[:2]
    t = times.to(stack.dtype).view(n, e, 1, 1, 1)
    src = stack if differentiable_weights else stack.detach()
    w = _weights(src, weight, weight_bounds, mean_weight)
    total = w.sum(1)
    if merge == "log":
        log_e = (w * (torch.log(lin + log_delta) - torch.log(t))).sum(1) / (total + 1e-9)
        hdr = torch.exp(log_e)
    elif merge == "linear":
        hdr = (w * lin / t).sum(1) / (total + 1e-9)
    else:  # w_time_sq
        hdr = (w * lin * t).sum(1) / ((w * t * t).sum(1) + 1e-9)

    # Saturation fallback (see ``fused.fallback_pixels``): only the few affected pixels are gathered and written.
    ni, ei, ci, hi, wi = fallback_pixels(stack.detach(), total, times, saturation, fallback=saturation_fallback)
    if ni.numel():
        hdr = hdr.index_put((ni, ci, hi, wi), lin[ni, ei, ci, hi, wi] / times[ni, ei].to(stack.dtype))
    return hdr


def _weights(x: torch.Tensor, weight: str, bounds, mean_weight: bool) -> torch.Tensor:
    w = weight_function(x, weight, bounds=bounds)
    return w.mean(dim=2, keepdim=True).expand_as(w) if mean_weight else w


def _fusable_table(stack, times, inverse_crf, calibration) -> torch.Tensor | None:
    """The ``(N, C, 256)`` table for the fused path, or None when the inverse CRF is not a detached table."""
    n, _, c = stack.shape[:3]
    if isinstance(inverse_crf, str) and inverse_crf.lower() == "debevec":
        return debevec_inverse_crf(stack.detach(), times, **dict(calibration or {}))
    if isinstance(inverse_crf, torch.Tensor) and not inverse_crf.requires_grad:
        return expand_table(inverse_crf, n, c).to(dtype=stack.dtype, device=stack.device)
    return None


class HDRSynthesisLayer(nn.Module):
    """``nn.Module`` form of :func:`merge_stack` (no parameters; options fixed at construction).

    Example:
        >>> layer = HDRSynthesisLayer(inverse_crf="debevec", weight="deb97", merge="log")
        >>> result = layer(stack, 2.0 ** torch.arange(-3, 4))   # stack (N, 7, 3, H, W) in [0, 1]
        >>> result.hdr.shape                                      # (N, 3, H, W)
    """

    def __init__(self, inverse_crf="debevec", weight: str = "deb97", merge: str = "log", **options) -> None:
        super().__init__()
        if isinstance(inverse_crf, str):
            INVERSE_CRFS.get(inverse_crf.lower())
        weight_function(torch.zeros(1), weight, bounds=options.get("weight_bounds", (0.0, 1.0)))
        MERGES.get(str(merge).lower())
        self.inverse_crf, self.weight, self.merge, self.options = inverse_crf, weight, merge, options

    def forward(self, stack: torch.Tensor, exposure_times) -> MergeResult:
        """Merge ``stack`` ``(N, E, C, H, W)`` in [0, 1] with times ``(E,)``/``(N, E)``; see :func:`merge_stack`."""
        return merge_stack(
            stack, exposure_times, inverse_crf=self.inverse_crf, weight=self.weight, merge=self.merge, **self.options
        )

    def extra_repr(self) -> str:
        crf = self.inverse_crf if isinstance(self.inverse_crf, str) else type(self.inverse_crf).__name__
        return f"inverse_crf={crf!r}, weight={self.weight!r}, merge={self.merge!r}"

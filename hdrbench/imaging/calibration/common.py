"""Input checks and sampling shared by the CRF-recovery methods and the HDR synthesis layer.

Conventions (docs/architecture.md): a stack is ``(N, E, C, H, W)`` float in [0, 1]; exposure times
are relative seconds, ``(E,)`` for the whole batch or ``(N, E)`` per scene. Pixel *levels* are the
8-bit codes ``round(255 * x)`` in 0..255, which is how the HDR Toolbox and the official code index
their 256-entry tables.
"""

from __future__ import annotations

import numpy as np
import torch

from hdrbench.checks import check_range
from hdrbench.errors import InputError

#: Number of entries of every tabulated inverse CRF (8-bit codes).
N_LEVELS = 256
#: Quantile rules of :func:`grossberg_samples`.
QUANTILES = ("inverse-cdf", "nearest")


def solve_each(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.solve(a, b)`` for a batch ``(B, n, n)``, ``(B, n, k)``, one matrix at a time.

    A batched CPU solve runs LAPACK's factorisation of several matrices at once on torch's threads. With
    oneMKL, after ``torch.set_num_threads`` (``--threads``) that path has been measured to return invalid
    pivots (``Intel oneMKL ERROR: Parameter 6 was incorrect on entry to DLASWP``, then a RuntimeError, or
    numbers that differ between runs); solving each matrix on its own gives the same numbers as the
    batched solve on one thread, whatever the thread settings. The systems here are small (at most a few
    hundred unknowns, a few matrices), so the loop costs nothing measurable.
    """
    if a.device.type != "cpu" or a.dim() != 3:
        return torch.linalg.solve(a, b)
    return torch.stack([torch.linalg.solve(a[i], b[i]) for i in range(a.shape[0])])


def check_stack(stack: torch.Tensor, name: str = "stack") -> torch.Tensor:
    """Validate an exposure stack.

    Args:
        stack: ``(N, E, C, H, W)`` floating tensor with values in [0, 1].
        name: argument name used in error messages.

    Returns:
        The same tensor (unchanged).

    Raises:
        InputError: wrong type, rank, dtype, NaN/Inf, or values outside [0, 1].
    """
    if not isinstance(stack, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor of shape (N, E, C, H, W), got {type(stack).__name__}")
    if stack.dim() != 5:
        raise InputError(f"{name} must have shape (N, E, C, H, W); got {tuple(stack.shape)}")
    if not stack.is_floating_point():
        raise InputError(
            f"{name} must be floating point in [0, 1]; got dtype {stack.dtype} (divide 8-bit codes by 255)"
        )
    if stack.shape[1] < 2:
        raise InputError(f"{name} needs at least 2 exposures; got E={stack.shape[1]}")
    if stack.numel() == 0:
        raise InputError(f"{name} is empty: shape {tuple(stack.shape)}")
    check_range(stack, name)
    return stack


def check_exposure_times(exposure_times, n: int, e: int, *, device=None, name: str = "exposure_times") -> torch.Tensor:
    """Validate exposure times and broadcast them to ``(N, E)`` float64.

    Args:
        exposure_times: sequence or tensor of shape ``(E,)`` or ``(N, E)``; positive, finite, relative seconds.
        n: batch size N of the stack.
        e: number of exposures E of the stack.
        device: device of the returned tensor.
        name: argument name used in error messages.

    Returns:
        ``(N, E)`` float64 tensor.

    Raises:
        InputError: wrong length/shape, non-positive, non-finite or repeated values.
    """
    try:
        t = torch.as_tensor(exposure_times, dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numbers, got {exposure_times!r}") from exc
    t = t.detach().to(device=device if device is not None else "cpu")
    if t.dim() == 1:
        if t.shape[0] != e:
            raise InputError(f"{name} has {t.shape[0]} values but the stack has {e} exposures")
        t = t.unsqueeze(0).expand(n, e)
    elif t.dim() == 2:
        if tuple(t.shape) != (n, e):
            raise InputError(f"{name} must have shape ({e},) or ({n}, {e}); got {tuple(t.shape)}")
    else:
        raise InputError(f"{name} must have shape (E,) or (N, E); got {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise InputError(f"{name} must be positive and finite; got {t.tolist()}")
    # Every exposure must add a distinct time: a repeated time gives a zero-length step between
    # neighbours (Mitsunaga-Nayar's ratio 1) and usually means a mislabelled stack.
    if e > 1 and (torch.sort(t, dim=1).values.diff(dim=1) <= 0).any():
        raise InputError(f"{name} must be distinct (sorted, strictly increasing); got {t.tolist()}")
    return t


def to_levels(stack: torch.Tensor) -> torch.Tensor:
    """8-bit codes ``round(255 x)`` clamped to 0..255, int64, same shape as ``stack``."""
    return torch.round(stack.detach() * (N_LEVELS - 1)).clamp_(0, N_LEVELS - 1).long()


def deb97_table(n: int = N_LEVELS, dtype=torch.float64) -> torch.Tensor:
    """Debevec 1997 triangle weight (HDR Toolbox 'Deb97', bounds [0, 1]) on ``linspace(0, 1, n)``; peak 1 at 0.5."""
    z = torch.linspace(0.0, 1.0, n, dtype=dtype)
    return torch.where(z <= 0.5, z, 1.0 - z) / 0.5


def histograms(levels: torch.Tensor) -> torch.Tensor:
    """Per-plane 256-bin histograms.

    Args:
        levels: ``(..., H, W)`` int64 codes in 0..255.

    Returns:
        ``(..., 256)`` float64 counts.
    """
    lead = levels.shape[:-2]
    flat = levels.reshape(-1, levels.shape[-2] * levels.shape[-1])
    offsets = torch.arange(flat.shape[0], device=flat.device).unsqueeze(1) * N_LEVELS
    counts = torch.bincount((flat + offsets).reshape(-1), minlength=flat.shape[0] * N_LEVELS)
    return counts.reshape(*lead, N_LEVELS).to(torch.float64)


def grossberg_samples(levels: torch.Tensor, n_samples: int = 256, quantile: str = "inverse-cdf") -> torch.Tensor:
    """Grossberg-Nayar histogram (CDF) sampling of every exposure at the same radiance quantiles.

    Because a monotonic response preserves the order of radiances, the code at quantile ``u`` of every
    exposure corresponds to the same scene radiance, which is what the least-squares solvers need. For
    ``u`` in ``linspace(0, 1, n_samples)``:

    * ``quantile="inverse-cdf"`` (default): the first code whose normalised CDF reaches ``u`` (the
      quantile function; ``u = 0`` gives the lowest code present). A clipped exposure's spike at 255
      then absorbs every quantile above its start, so those samples get the zero weight of code 255.
    * ``quantile="nearest"``: the code whose CDF is nearest to ``u`` (HDR Toolbox ``GrossbergSampling``:
      ``min(abs(cdf - u))``, first index on ties). Quantiles inside a clipped spike are then assigned to
      code 254 when the CDF at 254 is nearer, pairing one code with many radiances; on saturated
      stacks this bends the top of the recovered curve (see the tests), so it is kept only to
      reproduce the toolbox.

    Args:
        levels: ``(N, E, C, H, W)`` int64 codes in 0..255.
        n_samples: number of quantiles.
        quantile: ``"inverse-cdf"`` or ``"nearest"``.

    Returns:
        ``(N, C, n_samples, E)`` int64 codes.
    """
    if quantile not in QUANTILES:
        raise InputError(f"quantile must be one of {QUANTILES}; got {quantile!r}")
    cdf = histograms(levels).cumsum(-1)  # (N, E, C, 256)
    cdf = cdf / cdf[..., -1:]
    u = torch.linspace(0.0, 1.0, n_samples, dtype=torch.float64, device=cdf.device)
    if quantile == "nearest":
        idx = (cdf.unsqueeze(-2) - u.view(-1, 1)).abs().argmin(-1)  # (N, E, C, n_samples); ties -> first index
    else:
        # u = 0 would select code 0 whether or not it occurs; a positive floor below one pixel's share
        # selects the lowest code present instead. The 1e-9 slack absorbs round-off in the cumulative sum.
        floor = 0.5 / (levels.shape[-1] * levels.shape[-2])
        uq = (u.clamp_min(floor) - 1e-9).expand(*cdf.shape[:-1], n_samples).contiguous()
        idx = torch.searchsorted(cdf.contiguous(), uq, side="left").clamp_(max=N_LEVELS - 1)
    return idx.permute(0, 2, 3, 1).contiguous()


def spatial_samples(levels: torch.Tensor, n_samples: int = 256) -> torch.Tensor:
    """Regular spatial sampling: the codes of ``n_samples`` pixels on a regular grid (toolbox 'RegularSpatial').

    Every sample is one pixel location seen in every exposure, as in Debevec and Malik's original
    method; it avoids the histogram-matching error of :func:`grossberg_samples` on coarse histograms
    at the cost of depending on the scene's layout (and of needing a static scene).

    Args:
        levels: ``(N, E, C, H, W)`` int64 codes.
        n_samples: approximate number of samples (a ``rows x cols`` grid with the image's aspect ratio).

    Returns:
        ``(N, C, S, E)`` int64 codes with S close to ``n_samples``.
    """
    h, w = levels.shape[-2:]
    rows = max(1, min(h, int(round((n_samples * h / w) ** 0.5))))
    cols = max(1, min(w, int(round(n_samples / rows))))
    ys = ((torch.arange(rows) + 0.5) * h / rows).long().clamp_(0, h - 1)
    xs = ((torch.arange(cols) + 0.5) * w / cols).long().clamp_(0, w - 1)
    picked = levels[..., ys[:, None], xs[None, :]].flatten(-2)  # (N, E, C, S)
    return picked.permute(0, 2, 3, 1).contiguous()


SAMPLERS = {"grossberg": grossberg_samples, "spatial": spatial_samples}


def sample_codes(levels: torch.Tensor, n_samples: int, sampling: str, quantile: str = "inverse-cdf") -> torch.Tensor:
    """Dispatch to :func:`grossberg_samples` (with ``quantile``) or :func:`spatial_samples`.

    Returns ``(N, C, S, E)`` int64 codes.
    """
    if sampling not in SAMPLERS:
        raise InputError(f"sampling must be one of {tuple(SAMPLERS)}; got {sampling!r}")
    if int(n_samples) < 2:
        raise InputError(f"n_samples must be >= 2; got {n_samples}")
    if sampling == "grossberg":
        return grossberg_samples(levels, int(n_samples), quantile)
    if quantile not in QUANTILES:
        raise InputError(f"quantile must be one of {QUANTILES}; got {quantile!r}")
    return spatial_samples(levels, int(n_samples))


def chromaticity_scale(gray: np.ndarray, target=(0.5, 0.5, 0.5)) -> np.ndarray:
    """Per-channel scale that makes ``gray * scale`` have the chromaticity of ``target`` (HDR Toolbox).

    Minimises ``|| g*p / ||g*p|| - M / ||M|| ||^2`` with Nelder-Mead from ``p = 1`` and tolerances 1e-8,
    as the toolbox's ``FindChromaticyScale`` (MATLAB ``fminsearch``; the official Python port uses
    ``scipy.optimize.fmin``). Any positive multiple of ``1 / gray`` is a minimiser; the iterate the
    simplex stops at fixes the overall scale of the result, so the solver (not a closed form) is kept
    to reproduce the reference's absolute scale.

    Args:
        gray: ``(C,)`` positive values of the inverse CRFs at the mid code.
        target: ``(C,)`` target colour.

    Returns:
        ``(C,)`` float64 scales.
    """
    from scipy.optimize import fmin

    g = np.asarray(gray, dtype=np.float64)
    m = np.asarray(target, dtype=np.float64)
    m = m / np.linalg.norm(m)

    def residual(p):
        v = g * p
        nv = np.linalg.norm(v)
        if nv == 0:
            return np.inf
        return float(np.sum((v / nv - m) ** 2))

    return np.asarray(fmin(residual, np.ones_like(g), xtol=1e-8, ftol=1e-8, disp=False), dtype=np.float64)


#: Channel names used in the diagnostics below (three-channel stacks); other channel counts are numbered.
_CHANNEL_NAMES = ("r", "g", "b")
#: Decreases of a curve smaller than this fraction of its range are float round-off, not a fold.
MONOTONIC_TOLERANCE = 1e-9


def _channel_name(i: int, c: int) -> str:
    return _CHANNEL_NAMES[i] if c == 3 else f"c{i}"


def degenerate_stack_reasons(stack: torch.Tensor, *, min_codes: int = 2) -> list[str]:
    """Why a stack cannot determine a camera response (nor a meaningful merge), one line per scene and channel.

    A channel needs at least ``min_codes`` distinct well-exposed codes (1..254) over its exposures: an
    all-black or all-saturated stack has none, a uniform one has a single code. The recovery methods would
    still return a table (flat, or NaN for Mitsunaga-Nayar), so callers that face a user check first.

    Args:
        stack: ``(N, E, C, H, W)`` in [0, 1].
        min_codes: distinct well-exposed codes required (a polynomial of order K needs K + 1).

    Returns:
        Reasons (empty when every channel of every scene is usable).
    """
    levels = to_levels(check_stack(stack))
    n, _, c = levels.shape[:3]
    reasons = []
    for i in range(n):
        by_reason: dict[str, list[str]] = {}  # one line for the channels that fail for the same reason
        for ch in range(c):
            codes = torch.unique(levels[i, :, ch])
            inner = codes[(codes > 0) & (codes < N_LEVELS - 1)]
            if inner.numel() == 0:
                kind = ("all black (every code 0)" if codes.max() == 0 else
                        "all saturated (every code 255)" if codes.min() == N_LEVELS - 1 else
                        "clipped everywhere (every code 0 or 255)")
                why = (f"every exposure is {kind}; no well-exposed pixel to recover the response from (check the "
                       "exposure times and that the files are the right ones)")
            elif inner.numel() < min_codes:
                shown = ", ".join(str(int(v)) for v in inner)
                why = (f"only {inner.numel()} distinct well-exposed code(s) ({shown}); at least {min_codes} are "
                       "needed to determine the response")
            else:
                continue
            by_reason.setdefault(why, []).append(_channel_name(ch, c))
        for why, names in by_reason.items():
            where = ("channel " if len(names) == 1 else "channels ") + ", ".join(names)
            reasons.append(f"{f'scene {i}, ' if n > 1 else ''}{where}: {why}")
    return reasons


def curve_defects(table: torch.Tensor) -> list[str]:
    """What makes an inverse CRF table physically implausible, one line per channel: NaN/Inf entries,
    negative irradiance, or a decrease (a fold: two codes would map to one irradiance).

    Args:
        table: ``(C, L)`` inverse CRF (code -> linear relative irradiance).

    Returns:
        Reasons (empty for a finite, non-negative, non-decreasing curve).
    """
    t = table.detach().to(torch.float64).cpu()
    c, length = t.shape
    reasons = []
    for ch in range(c):
        name = _channel_name(ch, c)
        row = t[ch]
        if not torch.isfinite(row).all():
            reasons.append(f"channel {name}: the curve has NaN or Inf values")
            continue
        span = float(row.max() - row.min()) or 1.0
        drops = torch.nonzero(row.diff() < -MONOTONIC_TOLERANCE * span).flatten()
        if drops.numel():
            a, b = int(drops[0]), int(drops[-1]) + 1
            depth = float((row[:-1] - row[1:]).clamp_min(0).max())
            reasons.append(f"channel {name}: the curve decreases between codes {a} and {b} (by up to "
                           f"{depth / span:.2%} of its range; a camera response never decreases)")
        if float(row.min()) < 0:
            k = int(row.argmin())
            reasons.append(f"channel {name}: negative irradiance {float(row[k]):.3g} at code {k}")
    return reasons

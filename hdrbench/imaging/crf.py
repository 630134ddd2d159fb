"""Camera response functions (CRFs): normalised sensor irradiance [0, 1] -> pixel value [0, 1].

Every curve is a small object with

* ``crf(x)``: the forward response, a differentiable torch function;
* ``crf.inverse(z)``: the inverse response (pixel value -> normalised irradiance);
* ``crf.table(n)``: the forward response sampled at ``linspace(0, 1, n)``, shape (C, n).

Curves may differ per colour channel. A curve object holds ``C`` curves (``C = 1``: one curve shared by
every channel). When ``C > 1`` the input's channel axis must have ``C`` entries; it is axis -3 for images
(``(..., C, H, W)``) and axis 0 for sample tables (``(C, n)``).

Families (formulas in each class's docstring): gamma, sRGB (IEC 61966-2-1), a two-parameter S-curve,
tabulated monotone curves with linear interpolation, and EMoR curves (Grossberg & Nayar, "Modeling the
space of camera response functions", PAMI 2004) built from a user-supplied basis file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from hdrbench.errors import InputError
from hdrbench.registry import Registry

__all__ = [
    "CRF",
    "GammaCRF",
    "SRGBCRF",
    "SCurveCRF",
    "TabulatedCRF",
    "EMoRCRF",
    "read_emor_basis",
    "CRF_REGISTRY",
    "get_crf",
    "random_crf",
]

# Smallest argument fed to fractional powers inside the S-curve's ratio (keeps 0/0 out of it).
_POW_EPS = 1e-12


def _safe_pow(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``x^p`` for x in [0, 1] with an exact 0 at x = 0 and a finite gradient there (0 by convention).

    ``x^(1/gamma)`` has an infinite slope at 0; evaluating the power on a dummy 1 where x = 0 keeps NaN/Inf
    out of the backward pass.
    """
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).pow(p), torch.zeros_like(x))


def _as_param(value, name: str) -> torch.Tensor:
    """A curve parameter as a float64 1-D tensor of C entries (C = 1 for a scalar)."""
    t = torch.as_tensor(value, dtype=torch.float64).detach().clone().reshape(-1)
    if t.numel() == 0 or not torch.isfinite(t).all():
        raise InputError(f"CRF parameter '{name}' must be finite and non-empty, got {value!r}")
    return t


class CRF:
    """Base class of camera response curves.

    Subclasses implement ``_forward(x, p)`` and ``_inverse(z, p)`` on tensors already clamped to [0, 1],
    where ``p`` maps parameter names to tensors broadcastable against the input (channel axis placed).
    """

    #: Registry name of the family (used in ``repr`` and metadata).
    name: str = "crf"

    def __init__(self, **params) -> None:
        self._params: dict[str, torch.Tensor] = {k: _as_param(v, k) for k, v in params.items()}
        sizes = {p.numel() for p in self._params.values()} - {1}
        if len(sizes) > 1:
            raise InputError(f"{self.name} CRF: per-channel parameters disagree in length: "
                             f"{ {k: v.numel() for k, v in self._params.items()} }")
        self.channels: int = sizes.pop() if sizes else 1

    # -- channel handling -------------------------------------------------------------------------------------
    def _placed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Parameters cast to ``x``'s dtype/device and shaped to broadcast along its channel axis."""
        if self.channels > 1:
            axis = self._channel_axis(x)
            shape = [1] * x.ndim
            shape[axis] = self.channels
        else:
            shape = [1] * max(x.ndim, 1)
        out = {}
        for k, v in self._params.items():
            v = v.to(device=x.device, dtype=x.dtype)
            out[k] = v.expand(self.channels).reshape(shape) if v.numel() == 1 else v.reshape(shape)
        return out

    def _channel_axis(self, x: torch.Tensor) -> int:
        axis = -3 if x.ndim >= 3 else 0
        if x.ndim < 2 or x.shape[axis] != self.channels:
            raise InputError(
                f"{self.name} CRF has {self.channels} per-channel curves; input of shape {tuple(x.shape)} needs "
                f"{self.channels} entries on its channel axis (axis -3 of (..., C, H, W) or axis 0 of (C, n))")
        return axis

    @staticmethod
    def _check(x: torch.Tensor, arg: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x, dtype=torch.float32)
        if not x.is_floating_point():
            raise InputError(f"CRF argument '{arg}' must be a floating-point tensor in [0, 1], got {x.dtype}")
        return x

    # -- public API -------------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Forward response.

        Args:
            x: normalised sensor irradiance, any shape (channel axis as in the module docstring); values are
                clamped to [0, 1] (the sensor saturates at 1).

        Returns:
            Pixel values in [0, 1], same shape and dtype as ``x``; differentiable w.r.t. ``x``.
        """
        x = self._check(x, "x").clamp(0.0, 1.0)
        return self._forward(x, self._placed(x)).clamp(0.0, 1.0)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse response: pixel value in [0, 1] -> normalised irradiance in [0, 1] (same shape as ``z``)."""
        z = self._check(z, "z").clamp(0.0, 1.0)
        return self._inverse(z, self._placed(z)).clamp(0.0, 1.0)

    def table(self, n: int = 1024, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Forward response sampled at ``linspace(0, 1, n)``: tensor (C, n) in [0, 1]."""
        if n < 2:
            raise InputError(f"table size n must be >= 2, got {n}")
        grid = torch.linspace(0.0, 1.0, n, dtype=dtype).expand(self.channels, n).contiguous()
        return self(grid)

    def inverse_table(self, n: int = 256, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Inverse response sampled at pixel values ``linspace(0, 1, n)``: tensor (C, n) in [0, 1]."""
        if n < 2:
            raise InputError(f"table size n must be >= 2, got {n}")
        grid = torch.linspace(0.0, 1.0, n, dtype=dtype).expand(self.channels, n).contiguous()
        return self.inverse(grid)

    def describe(self) -> dict:
        """JSON-friendly description (family and parameters), e.g. for a scene's metadata."""
        return {"crf": self.name, **{k: v.tolist() for k, v in self._params.items()}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v.tolist() if v.numel() > 1 else round(v.item(), 6)}"
                         for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    def _forward(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _inverse(self, z: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class GammaCRF(CRF):
    """Power-law response ``f(x) = x^(1/gamma)``, inverse ``x = z^gamma``.

    Args:
        gamma: display gamma (> 0), scalar or one value per channel; 2.2 is the usual camera-like value.
    """

    name = "gamma"

    def __init__(self, gamma: float | Sequence[float] = 2.2) -> None:
        super().__init__(gamma=gamma)
        if (self._params["gamma"] <= 0).any():
            raise InputError(f"gamma must be > 0, got {gamma!r}")

    def _forward(self, x, p):
        return _safe_pow(x, 1.0 / p["gamma"])

    def _inverse(self, z, p):
        return _safe_pow(z, p["gamma"])


class SRGBCRF(CRF):
    """The sRGB transfer function (IEC 61966-2-1), used as a camera response.

    ``f(x) = 12.92 x`` for ``x <= 0.0031308``, else ``1.055 x^(1/2.4) - 0.055``; the inverse is
    ``z / 12.92`` for ``z <= 0.04045``, else ``((z + 0.055) / 1.055)^2.4``.
    """

    name = "srgb"

    def __init__(self) -> None:
        super().__init__()

    def _forward(self, x, p):
        return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308).pow(1.0 / 2.4) - 0.055)

    def _inverse(self, z, p):
        return torch.where(z <= 0.04045, z / 12.92, ((z.clamp_min(0.04045) + 0.055) / 1.055).pow(2.4))


class SCurveCRF(CRF):
    """Two-parameter S-shaped response: a gamma curve followed by a symmetric contrast curve.

    ``u = x^(1/gamma)``, ``f(x) = u^a / (u^a + (1 - u)^a)``. ``a = 1`` is the plain gamma curve; ``a > 1``
    flattens the toe and shoulder (film-like S-curve, more mid-tone contrast); ``0 < a < 1`` does the opposite.
    Strictly increasing for every ``gamma > 0, a > 0``; closed-form inverse:
    ``r = (z / (1 - z))^(1/a)``, ``u = r / (1 + r)``, ``x = u^gamma``.

    Args:
        gamma: > 0, scalar or per channel (default 2.2).
        contrast: the exponent ``a`` > 0, scalar or per channel (default 1.3).
    """

    name = "s-curve"

    def __init__(self, gamma: float | Sequence[float] = 2.2, contrast: float | Sequence[float] = 1.3) -> None:
        super().__init__(gamma=gamma, contrast=contrast)
        if (self._params["gamma"] <= 0).any() or (self._params["contrast"] <= 0).any():
            raise InputError(f"s-curve needs gamma > 0 and contrast > 0, got gamma={gamma!r}, contrast={contrast!r}")

    def _forward(self, x, p):
        u = _safe_pow(x, 1.0 / p["gamma"])
        a = p["contrast"]
        num = _safe_pow(u, a)
        return num / (num + _safe_pow((1.0 - u).clamp_min(0.0), a)).clamp_min(_POW_EPS)

    def _inverse(self, z, p):
        # r = (z / (1 - z))^(1/a) is infinite at z = 1; z = 1 is set to x = 1 explicitly below.
        zc = z.clamp(0.0, 1.0 - 1e-7 if z.dtype == torch.float32 else 1.0 - 1e-15)
        r = _safe_pow(zc / (1.0 - zc), 1.0 / p["contrast"])
        u = r / (1.0 + r)
        x = _safe_pow(u, p["gamma"])
        return torch.where(z >= 1.0, torch.ones_like(x), torch.where(z <= 0.0, torch.zeros_like(x), x))


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor, channel_axis: int | None) -> torch.Tensor:
    """Piecewise-linear interpolation of per-channel tables, differentiable w.r.t. ``x``.

    Args:
        x: query points; channel axis ``channel_axis`` of size C (or None when C = 1).
        xp: (C, n) increasing sample positions; fp: (C, n) values.
    """
    c, n = fp.shape
    if channel_axis is None:
        flat = x.reshape(1, -1)
    else:
        flat = x.movedim(channel_axis, 0).reshape(c, -1)
    idx = torch.searchsorted(xp, flat.detach().contiguous(), right=True).clamp(1, n - 1)
    x0, x1 = xp.gather(1, idx - 1), xp.gather(1, idx)
    f0, f1 = fp.gather(1, idx - 1), fp.gather(1, idx)
    step = x1 - x0
    # Flat segments (equal neighbours in xp) have no slope: take their left value.
    t = torch.where(step > 0, (flat - x0) / torch.where(step > 0, step, torch.ones_like(step)), torch.zeros_like(flat))
    out = f0 + t * (f1 - f0)
    if channel_axis is None:
        return out.reshape(x.shape)
    moved_shape = list(x.movedim(channel_axis, 0).shape)
    return out.reshape(moved_shape).movedim(0, channel_axis)


class TabulatedCRF(CRF):
    """A monotone response given by samples, evaluated by linear interpolation.

    Args:
        values: (n,) or (C, n) non-decreasing response values with ``values[..., 0] >= 0`` and
            ``values[..., -1] <= 1`` (small excursions up to 1e-6 are clamped).
        grid: (n,) or (C, n) strictly increasing irradiance samples from 0 to 1; default ``linspace(0, 1, n)``.

    The inverse interpolates the swapped table; on flat stretches of the curve it returns the lowest
    irradiance with that value.

    Raises:
        InputError: non-finite, non-monotone, wrong-range or mismatched tables.
    """

    name = "tabulated"

    def __init__(self, values, grid=None) -> None:
        super().__init__()
        fp = torch.as_tensor(values, dtype=torch.float64).detach().clone()
        if fp.ndim == 1:
            fp = fp[None]
        if fp.ndim != 2 or fp.shape[1] < 2:
            raise InputError(f"tabulated CRF values must have shape (n,) or (C, n) with n >= 2, got {tuple(fp.shape)}")
        xp = (torch.linspace(0.0, 1.0, fp.shape[1], dtype=torch.float64) if grid is None
              else torch.as_tensor(grid, dtype=torch.float64).detach().clone())
        if xp.ndim == 1:
            xp = xp[None]
        xp = xp.expand(fp.shape[0], -1).contiguous() if xp.shape[0] == 1 else xp
        if xp.shape != fp.shape:
            raise InputError(f"tabulated CRF grid shape {tuple(xp.shape)} does not match values {tuple(fp.shape)}")
        if not (torch.isfinite(fp).all() and torch.isfinite(xp).all()):
            raise InputError("tabulated CRF values and grid must be finite")
        if (xp.diff(dim=1) <= 0).any() or (xp[:, 0].abs() > 1e-9).any() or ((xp[:, -1] - 1).abs() > 1e-9).any():
            raise InputError("tabulated CRF grid must increase strictly from 0 to 1")
        if (fp.diff(dim=1) < -1e-9).any():
            bad = int(torch.nonzero(fp.diff(dim=1) < -1e-9)[0, 1])
            raise InputError(f"tabulated CRF must be non-decreasing; it decreases after sample {bad}")
        if fp.min() < -1e-6 or fp.max() > 1 + 1e-6:
            raise InputError(f"tabulated CRF values must lie in [0, 1], got [{fp.min():.4g}, {fp.max():.4g}]")
        self._fp = torch.cummax(fp.clamp(0.0, 1.0), dim=1).values
        self._xp = xp
        self.channels = fp.shape[0]

    def _tables(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        axis = None if self.channels == 1 else self._channel_axis(x)
        return self._xp.to(x.device, x.dtype), self._fp.to(x.device, x.dtype), axis

    def _forward(self, x, p):
        xp, fp, axis = self._tables(x)
        return _interp(x, xp, fp, axis)

    def _inverse(self, z, p):
        xp, fp, axis = self._tables(z)
        return _interp(z, fp, xp, axis)

    def describe(self) -> dict:
        return {"crf": self.name, "values": self._fp.tolist(), "grid": self._xp.tolist()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channels={self.channels}, n={self._fp.shape[1]})"


# --------------------------------------------------------------------------------------------------------------
# EMoR
# --------------------------------------------------------------------------------------------------------------
_EMOR_BLOCKS = 27  # grid, mean curve, 25 basis curves
_EMOR_SAMPLES = 1024


def read_emor_basis(path: str | os.PathLike) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read an EMoR basis file (``emor.txt`` or ``invemor.txt`` of the CAVE release).

    The format is 27 blocks, each a header line ``name =`` followed by 1024 numbers: the sample grid
    (``E`` or ``B``), the mean curve (``f0`` or ``g0``) and 25 basis curves (``h(k)`` or ``hinv(k)``).

    Args:
        path: the text file.

    Returns:
        ``(kind, grid (1024,), mean (1024,), basis (25, 1024))`` as float64 tensors; ``kind`` is ``"forward"``
        for an EMoR file (curves of irradiance -> value) and ``"inverse"`` for an inverse-EMoR file.

    Raises:
        InputError: the file is absent, unreadable or does not have that layout (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"EMoR basis file not found: {path}")
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read EMoR basis file {path}: {exc}") from None
    names: list[str] = []
    blocks: list[list[float]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if "=" in line:
            head, _, rest = line.partition("=")
            names.append(head.strip())
            blocks.append([])
            line = rest.strip()
            if not line:
                continue
        if not blocks:
            raise InputError(f"EMoR basis file {path}: line {lineno} has numbers before the first 'name =' header")
        try:
            blocks[-1].extend(float(v) for v in line.split())
        except ValueError:
            raise InputError(f"EMoR basis file {path}: line {lineno} is not a list of numbers: {line[:60]!r}") from None
    if len(blocks) != _EMOR_BLOCKS or any(len(b) != _EMOR_SAMPLES for b in blocks):
        raise InputError(
            f"EMoR basis file {path} is malformed: expected {_EMOR_BLOCKS} blocks of {_EMOR_SAMPLES} values "
            f"(grid, mean curve, 25 basis curves), found {len(blocks)} blocks of sizes "
            f"{sorted({len(b) for b in blocks})}")
    kinds = {("E", "f0"): "forward", ("B", "g0"): "inverse"}
    kind = kinds.get((names[0], names[1]))
    if kind is None:
        raise InputError(f"EMoR basis file {path}: first headers are {names[:2]}, expected ['E', 'f0'] (EMoR) "
                         "or ['B', 'g0'] (inverse EMoR)")
    data = torch.tensor(blocks, dtype=torch.float64)
    if not torch.isfinite(data).all():
        raise InputError(f"EMoR basis file {path} contains non-finite values")
    return kind, data[0], data[1], data[2:]


class EMoRCRF(TabulatedCRF):
    """An EMoR response: ``f = f0 + sum_k c_k h_k`` on the basis file's 1024-sample grid.

    With an inverse-EMoR file (``invemor.txt``) the same sum defines the *inverse* response
    ``g = g0 + sum_k c_k hinv_k`` and the forward curve is its swapped table.

    Use :meth:`from_file`; the basis itself is not part of hdrbench (it is a research release of
    Columbia's CAVE lab that users obtain separately).
    """

    name = "emor"

    def __init__(self, values, grid=None, *, coefficients=None, kind: str = "forward", source: str = "") -> None:
        super().__init__(values, grid)
        self.coefficients = None if coefficients is None else torch.as_tensor(coefficients, dtype=torch.float64)
        self.kind = kind
        self.source = source

    @classmethod
    def from_file(cls, path: str | os.PathLike, coefficients: Sequence[float] | torch.Tensor = ()) -> "EMoRCRF":
        """Build a curve from a basis file and coefficients.

        Args:
            path: ``emor.txt`` (forward basis) or ``invemor.txt`` (inverse basis).
            coefficients: (K,) with K <= 25 (shared by all channels) or (C, K) per channel; missing
                coefficients are 0, so ``()`` gives the mean curve.

        Raises:
            InputError: bad file, more than 25 coefficients, or a non-monotone resulting curve.
        """
        kind, grid, mean, basis = read_emor_basis(path)
        c = torch.as_tensor(coefficients, dtype=torch.float64).detach()
        c = c.reshape(1, -1) if c.ndim <= 1 else c
        if c.ndim != 2 or c.shape[1] > basis.shape[0] or not torch.isfinite(c).all():
            raise InputError(f"EMoR coefficients must be finite with shape (K,) or (C, K), K <= {basis.shape[0]}; "
                             f"got shape {tuple(torch.as_tensor(coefficients).shape)}")
        curves = mean + c @ basis[: c.shape[1]]  # (C, 1024)
        if (curves.diff(dim=1) < -1e-9).any():
            raise InputError(f"EMoR coefficients {c.tolist()} give a non-monotone curve (basis {path})")
        if kind == "forward":
            return cls(curves.clamp(0, 1), grid, coefficients=c, kind=kind, source=str(path))
        # Inverse basis: the curve maps pixel value (grid B) -> irradiance; the forward table is its swap.
        # Strict monotonicity is needed for the swapped grid; a tiny ramp breaks ties in flat stretches.
        inv = curves.clamp(0, 1)
        inv = inv + torch.linspace(0, 1e-9, inv.shape[1], dtype=torch.float64)
        inv = (inv - inv[:, :1]) / (inv[:, -1:] - inv[:, :1])
        return cls(grid.expand_as(inv).contiguous(), inv, coefficients=c, kind=kind, source=str(path))

    def describe(self) -> dict:
        return {"crf": self.name, "basis": self.kind, "source": self.source,
                "coefficients": None if self.coefficients is None else self.coefficients.tolist()}

    def __repr__(self) -> str:
        coeffs = None if self.coefficients is None else [[round(v, 4) for v in row] for row in self.coefficients.tolist()]
        return f"EMoRCRF(kind={self.kind}, coefficients={coeffs})"


# --------------------------------------------------------------------------------------------------------------
# Registry and random curves
# --------------------------------------------------------------------------------------------------------------
CRF_REGISTRY: Registry = Registry("camera response curve")
CRF_REGISTRY.register("gamma", GammaCRF)
CRF_REGISTRY.register("srgb", SRGBCRF)
CRF_REGISTRY.register("s-curve", SCurveCRF)
CRF_REGISTRY.register("tabulated", TabulatedCRF)
CRF_REGISTRY.register("emor", EMoRCRF.from_file)


def get_crf(name: str, **kw) -> CRF:
    """Build a curve by name: ``"gamma"``, ``"srgb"``, ``"s-curve"``, ``"tabulated"`` or ``"emor"``.

    Keyword arguments go to the family's constructor (``emor`` takes ``path`` and ``coefficients``).

    Raises:
        UnknownNameError: unknown name (with close matches).
    """
    factory = CRF_REGISTRY.get(name)
    try:
        return factory(**kw)
    except TypeError as exc:
        raise InputError(f"bad arguments for CRF '{name}': {exc}") from None


# Standard deviations of the first EMoR coefficients drawn by random_crf. The basis is orthonormal over its
# 1024 samples, and projecting common curves on it gives first coefficients within about +-1.5 (gamma 1.8:
# +1.53, gamma 2.6: -1.20, sRGB: -0.12) and second ones within about +-1.6, decaying quickly after that;
# these spreads keep draws inside that family while still varying the toe and shoulder.
_EMOR_SIGMAS = (0.9, 0.6, 0.3, 0.15, 0.08)


def random_crf(generator: torch.Generator | None = None, emor_path: str | os.PathLike | None = None, *,
               max_tries: int = 100) -> CRF:
    """Draw a realistic, strictly increasing camera response shared by the three channels.

    With ``emor_path`` the curve is an EMoR curve whose first five coefficients are drawn from zero-mean
    normals with standard deviations ``(0.9, 0.6, 0.3, 0.15, 0.08)`` (the EMoR mean curve is the average
    of measured camera curves). Draws whose curve is not strictly increasing or whose mid-grey response
    ``f(0.18)`` leaves [0.25, 0.75] are rejected and redrawn. Without a basis file the curve is an
    :class:`SCurveCRF` with ``gamma ~ U(1.8, 2.6)`` and ``contrast ~ U(0.9, 1.6)``.

    Args:
        generator: torch RNG (CPU) for reproducible draws; ``None`` uses the global RNG.
        emor_path: an EMoR basis file (``emor.txt``) or ``None``.
        max_tries: rejection-sampling budget for EMoR draws.

    Returns:
        A :class:`CRF` with one channel.
    """

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=generator, dtype=torch.float64).item()

    if emor_path is None:
        return SCurveCRF(gamma=uniform(1.8, 2.6), contrast=uniform(0.9, 1.6))
    kind, grid, mean, basis = read_emor_basis(emor_path)
    sig = torch.tensor(_EMOR_SIGMAS, dtype=torch.float64)
    mid_index = int(round(0.18 * (grid.numel() - 1)))
    for _ in range(max_tries):
        c = torch.randn(len(sig), generator=generator, dtype=torch.float64) * sig
        curve = mean + c @ basis[: len(sig)]
        if kind == "forward":
            mid = float(curve[mid_index])
        else:  # the curve is the inverse response: f(0.18) is the pixel value whose irradiance is 0.18
            mid = float(_interp(torch.tensor([0.18], dtype=torch.float64), curve[None], grid[None], None))
        if bool((curve.diff() > 0).all()) and 0.25 <= mid <= 0.75 and curve.min() >= -1e-6 and curve.max() <= 1 + 1e-6:
            return EMoRCRF.from_file(emor_path, c)
    raise InputError(f"could not draw a monotone EMoR curve from {emor_path} in {max_tries} tries")


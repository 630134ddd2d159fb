"""Training-free methods: bounds and classical inverse tone-mapping operators.

They make the benchmark run end to end before anything is trained, and bracket the trained methods:

* ``gt-stack`` (upper bound): the ground-truth stack itself, merged by the synthesis layer with an inverse
  CRF estimated from it, exactly like a predicted stack. No stack method can beat it on HDR metrics except
  by chance.
* ``ldr-linear`` (lower bound): the input linearised only: ``f^-1(z) / t`` with t = 1 (EV 0). No dynamic
  range is added; clipped highlights stay clipped.
* ``exposure-scaling``: each EV synthesised as ``f(min(f^-1(z) * 2^EV, f^-1(1)))`` and quantised to 8 bits,
  then merged with the same curve. It shifts exposure but cannot recover clipped or quantised detail.
* Inverse tone-mapping operators (direct HDR): ``akyuz07`` (linear expansion), ``banterle06`` (inverse of
  Reinhard's global operator), ``masia09`` (gamma expansion driven by the image key).

Linearisation. ``f^-1`` is the scene's reference inverse CRF (``linearize="reference"``, the default): the
Debevec-Malik curve recovered from the ground-truth stack, which is also what ``gt-stack`` merges with, so
that the bounds differ only in dynamic range and not in the curve. ``linearize="gamma2.2"`` uses a fixed
2.2 gamma instead (what the inverse tone-mapping literature assumes when no curve is known).

The HDR protocols map each image to absolute luminance by its own percentiles, so the overall scale
(``max_luminance``) of a direct method does not change its scores; it is kept for fidelity to the papers.
"""

from __future__ import annotations

from typing import Any

import torch

from hdrbench.errors import InputError
from hdrbench.evaluate.methods import Method, SceneContext, register_method
from hdrbench.imaging.camera import luminance as camera_luminance

LINEARIZE = ("reference", "gamma2.2")
#: Luminance floor for logarithms and ratios (relative units, the reference curve's maximum is 1).
_EPS = 1e-6


# --------------------------------------------------------------------------------------------------
# Tabulated curves


def lut_linearize(table: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Apply an inverse CRF table by linear interpolation.

    Args:
        table: (N, C, L) inverse CRF samples at pixel values ``linspace(0, 1, L)``.
        z: (N, C, H, W) pixel values in [0, 1].

    Returns:
        (N, C, H, W) linear values (same dtype as ``z``). For 8-bit inputs and L = 256 this is the exact lookup
        the synthesis layer does.
    """
    n, c, h, w = z.shape
    length = table.shape[-1]
    t = table.to(z.dtype).expand(n, c, length)
    pos = z.clamp(0.0, 1.0).reshape(n, c, h * w) * (length - 1)
    i0 = pos.floor().long().clamp(0, length - 1)
    i1 = (i0 + 1).clamp(max=length - 1)
    frac = pos - i0.to(pos.dtype)
    v = torch.gather(t, 2, i0) * (1 - frac) + torch.gather(t, 2, i1) * frac
    return v.reshape(n, c, h, w)


def lut_apply_forward(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply the CRF that an inverse table describes (its functional inverse), by interpolation.

    The table is made non-decreasing first (running maximum); irradiance beyond its ends clips to 0 or 1.

    Args:
        table: (N, C, L) inverse CRF samples at pixel values ``linspace(0, 1, L)``.
        x: (N, C, H, W) linear irradiance in the table's units.

    Returns:
        (N, C, H, W) pixel values in [0, 1].
    """
    n, c, h, w = x.shape
    length = table.shape[-1]
    mono = torch.cummax(table.to(x.dtype).expand(n, c, length), dim=-1).values.contiguous()
    v = x.reshape(n, c, h * w)
    v = torch.maximum(torch.minimum(v, mono[..., -1:]), mono[..., :1]).contiguous()
    i = torch.searchsorted(mono, v).clamp(1, length - 1)
    lo = torch.gather(mono, 2, i - 1)
    hi = torch.gather(mono, 2, i)
    span = hi - lo
    frac = torch.where(span > 0, (v - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.ones_like(v))
    z = ((i - 1).to(x.dtype) + frac.clamp(0, 1)) / (length - 1)
    return z.reshape(n, c, h, w).clamp(0.0, 1.0)


def gamma_table(gamma: float = 2.2, length: int = 256, *, device=None) -> torch.Tensor:
    """(1, 3, length) inverse table of a pure gamma curve: ``z ** gamma``."""
    g = torch.linspace(0.0, 1.0, length, device=device) ** gamma
    return g.reshape(1, 1, length).repeat(1, 3, 1)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Rec. 709 luminance of linear RGB (N, 3, H, W) -> (N, 1, H, W) (the camera model's, channel kept)."""
    return camera_luminance(rgb).unsqueeze(1)


def _with_luminance(rgb: torch.Tensor, y_old: torch.Tensor, y_new: torch.Tensor) -> torch.Tensor:
    """Replace the luminance of ``rgb`` keeping colour ratios (the usual iTMO colour treatment)."""
    return rgb * (y_new / y_old.clamp_min(_EPS))


# --------------------------------------------------------------------------------------------------
# Shared base


class _Linearizing(Method):
    """A training-free method that linearises its input with the scene's reference curve or a gamma."""

    uses_context = True

    def __init__(self, linearize: str = "reference") -> None:
        if linearize not in LINEARIZE:
            raise InputError(f"method {self.name!r}: linearize must be one of {LINEARIZE}, got {linearize!r}")
        self.linearize = linearize
        self._context: SceneContext | None = None

    def prepare(self, context: SceneContext) -> None:
        self._context = context

    def _table(self, like: torch.Tensor) -> torch.Tensor:
        if self.linearize == "gamma2.2":
            return gamma_table(2.2, device=like.device).to(like.dtype)
        if self._context is None or self._context.reference_inverse_crf is None:
            raise InputError(f"method {self.name!r} with linearize='reference' needs the scene context "
                             "(the harness provides it); use linearize='gamma2.2' outside the harness")
        return self._context.reference_inverse_crf().to(device=like.device, dtype=like.dtype)

    def _linear(self, ldr: torch.Tensor) -> torch.Tensor:
        table = self._table(ldr)
        return lut_linearize(table, ldr).clamp_min(0.0)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "linearize": self.linearize}


# --------------------------------------------------------------------------------------------------
# Bounds


@register_method("gt-stack")
class GroundTruthStack(Method):
    """Upper bound: the ground-truth stack, merged with an inverse CRF estimated from it (Debevec & Malik)."""

    kind = "stack"
    merge_crf = "estimate"
    uses_context = True

    def __init__(self) -> None:
        self._context: SceneContext | None = None

    def prepare(self, context: SceneContext) -> None:
        if context.stack is None:
            raise InputError(f"gt-stack: scene {context.scene} has no ground-truth stack")
        self._context = context

    def predict_stack(self, ldr: torch.Tensor, evs: list[float]) -> torch.Tensor:
        if self._context is None:
            raise InputError("gt-stack needs the scene context (the harness provides it)")
        have = [float(e) for e in self._context.evs]
        missing = [e for e in evs if float(e) not in have]
        if missing:
            raise InputError(f"gt-stack: scene {self._context.scene} has no ground-truth EV(s) {missing}")
        idx = [have.index(float(e)) for e in evs]
        return self._context.stack[:, idx].to(ldr.device, ldr.dtype)


@register_method("ldr-linear")
class LDRLinear(_Linearizing):
    """Lower bound: the input linearised by the inverse CRF and divided by its exposure time (t = 1)."""

    kind = "direct"

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        return self._linear(ldr) / 1.0  # EV 0: t = 2^0 = 1


@register_method("exposure-scaling")
class ExposureScaling(_Linearizing):
    """Each EV as the linearised input scaled by 2^EV, clipped and re-encoded by the same CRF (8-bit)."""

    kind = "stack"
    merge_crf = "own"

    def __init__(self, linearize: str = "reference", quantize_bits: int | None = 8) -> None:
        super().__init__(linearize)
        self.quantize_bits = quantize_bits
        self._last_table: torch.Tensor | None = None

    def predict_stack(self, ldr: torch.Tensor, evs: list[float]) -> torch.Tensor:
        table = self._table(ldr)
        self._last_table = table
        lin = lut_linearize(table, ldr).clamp_min(0.0)
        frames = []
        for ev in evs:
            if float(ev) == 0.0:
                frames.append(ldr)  # the input is the EV 0 image; re-encoding it would only add rounding
                continue
            z = lut_apply_forward(table, lin * (2.0 ** float(ev)))
            if self.quantize_bits:
                levels = float(2**self.quantize_bits - 1)
                z = torch.round(z * levels) / levels
            frames.append(z)
        return torch.stack(frames, dim=1)

    def inverse_crf(self) -> torch.Tensor:
        if self._last_table is None:
            raise InputError("exposure-scaling: inverse_crf() is only defined after predict_stack()")
        return self._last_table

    def config(self) -> dict[str, Any]:
        return {**super().config(), "quantize_bits": self.quantize_bits}


# --------------------------------------------------------------------------------------------------
# Inverse tone-mapping operators (direct HDR)


@register_method("akyuz07")
class Akyuz07(_Linearizing):
    """Akyuz et al. 2007 linear expansion of the normalised luminance.

    L_w = k * ((L - L_min) / (L_max - L_min))^gamma with gamma = 1. Colour is kept by scaling RGB with L_w / L.
    ``k`` (default 3000, the peak luminance of the display used in the study) only sets the output scale.
    """

    kind = "direct"
    citation = ("A. O. Akyuz, R. Fleming, B. E. Riecke, E. Reinhard, H. H. Bulthoff. Do HDR displays support "
                "LDR content? A psychophysical evaluation. ACM TOG 26(3) (SIGGRAPH), 2007.")

    def __init__(self, linearize: str = "reference", max_luminance: float = 3000.0, gamma: float = 1.0) -> None:
        super().__init__(linearize)
        if max_luminance <= 0 or gamma <= 0:
            raise InputError(f"akyuz07: max_luminance and gamma must be > 0, got {max_luminance}, {gamma}")
        self.max_luminance = float(max_luminance)
        self.gamma = float(gamma)

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        lin = self._linear(ldr)
        y = luminance(lin)
        flat = y.flatten(1)
        lo = flat.min(dim=1).values.reshape(-1, 1, 1, 1)
        hi = flat.max(dim=1).values.reshape(-1, 1, 1, 1)
        yn = ((y - lo) / (hi - lo).clamp_min(_EPS)).clamp(0.0, 1.0)
        return _with_luminance(lin, y, self.max_luminance * yn**self.gamma)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "max_luminance": self.max_luminance, "gamma": self.gamma}


@register_method("banterle06")
class Banterle06(_Linearizing):
    """Banterle et al. 2006 inverse of Reinhard's global tone mapping operator.

    The expansion step of Banterle et al.'s operator, without its expand map:
    L_w = 0.5 * L_max * L_white * (L_d - 1 + sqrt((1 - L_d)^2 + 4 L_d / L_white^2)).

    L_d is the linearised input luminance normalised to its maximum. ``white`` (L_white, default 8: up to three
    stops above the input's white, the benchmark's EV range) sets how strongly highlights are expanded;
    ``max_luminance`` (L_max) only sets the output scale.
    """

    kind = "direct"
    citation = ("F. Banterle, P. Ledda, K. Debattista, A. Chalmers. Inverse tone mapping. GRAPHITE 2006, "
                "pp. 349-356.")

    def __init__(self, linearize: str = "reference", white: float = 8.0, max_luminance: float = 3000.0) -> None:
        super().__init__(linearize)
        if white <= 1 or max_luminance <= 0:
            raise InputError(f"banterle06: white must be > 1 and max_luminance > 0, got {white}, {max_luminance}")
        self.white = float(white)
        self.max_luminance = float(max_luminance)

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        lin = self._linear(ldr)
        y = luminance(lin)
        yd = (y / y.flatten(1).max(dim=1).values.reshape(-1, 1, 1, 1).clamp_min(_EPS)).clamp(0.0, 1.0)
        lw2 = self.white**2
        yw = 0.5 * self.max_luminance * self.white * (yd - 1 + torch.sqrt((1 - yd) ** 2 + 4 * yd / lw2))
        return _with_luminance(lin, y, yw)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "white": self.white, "max_luminance": self.max_luminance}


@register_method("masia09")
class Masia09(_Linearizing):
    """Masia et al. 2009 gamma expansion driven by the image key.

    L_w = L^gamma, gamma = 10.44 k - 6.282, k = (log L_avg - log L_min) / (log L_max - log L_min), L_avg the
    log-average luminance.

    The fit was made on over-exposed content; for darker images it gives gamma < 1 (k < 0.698) or even a
    negative gamma that would invert the image (k < 0.602). This implementation clamps gamma to at least
    ``min_gamma`` (default 1, i.e. never compress the input's range): a choice of hdrbench, not of the paper.
    Luminance is floored at 1e-6 before the logarithms.
    """

    kind = "direct"
    citation = ("B. Masia, S. Agustin, R. W. Fleming, O. Sorkine, D. Gutierrez. Evaluation of reverse tone "
                "mapping through varying exposure conditions. ACM TOG 28(5) (SIGGRAPH Asia), 2009.")

    def __init__(self, linearize: str = "reference", min_gamma: float = 1.0) -> None:
        super().__init__(linearize)
        if min_gamma <= 0:
            raise InputError(f"masia09: min_gamma must be > 0, got {min_gamma}")
        self.min_gamma = float(min_gamma)

    def key(self, y: torch.Tensor) -> torch.Tensor:
        """Image key k in [0, 1] per image: (N, 1, H, W) luminance -> (N,)."""
        logy = torch.log(y.clamp_min(_EPS)).flatten(1)
        lo, hi, avg = logy.min(dim=1).values, logy.max(dim=1).values, logy.mean(dim=1)
        return ((avg - lo) / (hi - lo).clamp_min(_EPS)).clamp(0.0, 1.0)

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        lin = self._linear(ldr)
        y = luminance(lin)
        ymax = y.flatten(1).max(dim=1).values.reshape(-1, 1, 1, 1).clamp_min(_EPS)
        yn = (y / ymax).clamp(0.0, 1.0)
        gamma = (10.44 * self.key(y) - 6.282).clamp_min(self.min_gamma).reshape(-1, 1, 1, 1)
        return _with_luminance(lin, y, yn.clamp_min(_EPS) ** gamma)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "min_gamma": self.min_gamma}


__all__ = ["lut_linearize", "lut_apply_forward", "gamma_table", "luminance", "GroundTruthStack", "LDRLinear",
           "ExposureScaling", "Akyuz07", "Banterle06", "Masia09"]

"""Named, versioned scaling protocols: how relative HDR becomes absolute luminance before HDR-VDP and PU21.

HDR-VDP-2 and PU21 expect linear values in cd/m^2, while reconstructions and most HDR datasets are relative.
How the two images are scaled moves the scores a lot and even reorders methods (Eilertsen et al., ICCVW 2021;
Hanji et al., SIGGRAPH 2022), and no convention is standard. A protocol is therefore a name, a version and all of
its numbers; every result carries the protocol's name and version.

Built-in protocols (``list_protocols()``):

* ``singlehdr`` (v1): each image on its own (as the SingleHDR authors describe, their issue 4): a = the k-th
  smallest and b = the k-th largest of its H*W*C values with k = max(1, floor(1e-3 * H*W*C)) (the 0.1 % and
  99.9 % order statistics), x' = (x - a) * 998 / (b - a + 1e-8) + 1, negative results set to 0; so [a, b] maps
  to [1, 999] cd/m^2. 30 pixels per degree.
* ``display`` (v1): a display-referred view. The test is aligned to the reference by one global factor, the
  median over pixels of the luminance ratio reference / test (pixels where both luminances are > 0); then both
  images are multiplied by ``peak_luminance / max(reference)`` (maximum over all channel values), so the
  reference peaks at 4000 cd/m^2 (the peak of the PU21 and HDR-VDP-3 examples). Viewing geometry: a 21-inch
  display at 1 m (the HDR-VDP documentation's example), so ppd depends on the image size.
* ``absolute`` (v1): inputs already in cd/m^2; only checked (non-negative, finite, reference peak >= 1 cd/m^2,
  below which the values are almost surely relative). No default ppd: the caller gives one.
* ``kim2021`` (v1): the reference of the official test code of Kim, Lee & Kang (AAAI 2021), which scores the
  synthesis-layer merge of the predicted stack against the synthesis-layer merge of the ground-truth stack, each
  with the inverse CRF recovered from its own stack (the dataset's HDR image is only a training target there).
  The protocol declares ``hdr_reference="gt-stack"`` and ``stack_merge="official"``; the evaluation harness
  honours both (every stack it merges goes through the official layer, and the reference is the merged
  ground-truth stack, for direct methods too). The paper states neither a scaling to cd/m^2 nor a viewing
  geometry: both are assumptions, stated in ``assumptions``: the ``singlehdr`` scaling and 30 ppd.
* ``hanji2022`` (v1): the CRF/tone correction of Hanji et al. 2022 before scoring. Both images are scaled so that
  their median luminance is 500 cd/m^2 and floored at 0.005 cd/m^2; a degree-3 polynomial with cross-channel
  terms is fitted per image by ridge least squares from the test to the reference in a (PQ(Y), u', v') space and
  applied to the test (:func:`crf_correct`). The same correction can follow any protocol:
  ``get_protocol("singlehdr", crf_correction=True)``. Viewing geometry as for ``display`` (our choice, not the
  paper's).

Besides its scaling, a protocol declares which HDR image a prediction is scored against (``hdr_reference``, see
:data:`HDR_REFERENCES`) and which synthesis-layer settings merge the stacks (``stack_merge``, see
:data:`STACK_MERGES`). The metrics layer only carries these declarations: choosing and merging the reference is
the evaluation harness's job (:mod:`hdrbench.evaluate.harness`), since it alone loads scenes. Every protocol but
``kim2021`` keeps the harness's defaults (``dataset``, ``hdrbench``); any of them can be asked for the other
reference, e.g. ``get_protocol("singlehdr", hdr_reference="gt-stack")``, which is then named
``singlehdr[hdr_reference=gt-stack]``.

All protocols take (N, 3, H, W) linear RGB or (N, 1, H, W) luminance, reject NaN/Inf, negative values, all-zero
images and mismatched shapes with :class:`~hdrbench.errors.InputError`, compute in float64 and return the input
dtype.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch

from hdrbench.checks import check_nonnegative, check_not_all_zero, check_pair, check_positive_number
from hdrbench.errors import InputError
from hdrbench.metrics.pu21 import rgb_to_luminance as _luminance
from hdrbench.registry import Registry

#: Linear BT.709 RGB -> CIE XYZ (D65).
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
#: SMPTE ST 2084 (PQ) constants, exact rationals (often quoted rounded: 0.1593, 78.8438, 0.8359, 18.8516, 18.6875).
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_UV_SCALE = 410.0 / 255.0


#: What a protocol's ``hdr_reference`` may be. ``dataset``: the dataset's HDR image, or the merged ground-truth
#: stack where the dataset has none (the harness's default). ``gt-stack``: always the ground-truth stack merged
#: with the protocol's ``stack_merge`` (the official test code's reference); scenes without a stack fail.
HDR_REFERENCES: tuple[str, ...] = ("dataset", "gt-stack")
#: What a protocol's ``stack_merge`` may be: the synthesis-layer settings of every stack merge in an evaluation
#: (predicted stacks and the reference). ``hdrbench``: the harness's settings (``harness.MERGE_SETTINGS``: the
#: paper's Deb97 weights and log merge, hdrbench's defaults elsewhere); ``official``: the official code's layer
#: (``hdrbench.imaging.synthesis.OFFICIAL_LAYER``).
STACK_MERGES: tuple[str, ...] = ("hdrbench", "official")


def _validate(test: torch.Tensor, reference: torch.Tensor) -> None:
    check_pair(test, reference, channels=(1, 3))
    for t, name in ((test, "test"), (reference, "reference")):
        check_nonnegative(t, name)
        check_not_all_zero(t, name)


@dataclass(frozen=True)
class Protocol:
    """A mapping of relative linear HDR to absolute luminance, with the viewing geometry used by HDR-VDP.

    Attributes:
        name: registry name; non-default parameters are appended, e.g. ``display[peak_luminance=1000.0]``.
        version: bumped whenever the numbers a protocol produces change.
        description: one line for tables and ``hdrbench score``.
        ppd: pixels per degree, or None when it follows from ``display_geometry`` (or must be given).
        display_geometry: (diagonal in inches, viewing distance in metres) used when ``ppd`` is None.
        hdr_reference: which HDR image the evaluation harness scores a prediction against (:data:`HDR_REFERENCES`).
        stack_merge: which synthesis-layer settings the harness merges stacks with (:data:`STACK_MERGES`).
        assumptions: what the protocol fixes that its source does not state (card text; not a parameter).
        invariances: names of distortions (:mod:`hdrbench.metrics.distortions`) that the protocol claims its
            scores do not change under, e.g. ``global-scale``; ``hdrbench validate-metrics`` checks each claim.
    """

    name: str
    version: str
    description: str
    ppd: float | None = None
    display_geometry: tuple[float, float] | None = None
    hdr_reference: str = "dataset"
    stack_merge: str = "hdrbench"
    assumptions: tuple[str, ...] = ()
    invariances: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.hdr_reference not in HDR_REFERENCES:
            raise InputError(
                f"protocol {self.name!r}: hdr_reference must be one of {', '.join(HDR_REFERENCES)},"
                f" got {self.hdr_reference!r}"
            )
        if self.stack_merge not in STACK_MERGES:
            raise InputError(
                f"protocol {self.name!r}: stack_merge must be one of {', '.join(STACK_MERGES)}, got {self.stack_merge!r}"
            )

    def apply(self, test: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map a test/reference pair to absolute luminance.

        Args:
            test: (N, 3, H, W) linear RGB or (N, 1, H, W) luminance, relative (or absolute for ``absolute``), >= 0.
            reference: same shape.

        Returns:
            ``(test_abs, reference_abs)`` in cd/m^2, the input dtype and device.
        """
        _validate(test, reference)
        t, r = self._map(test.to(torch.float64), reference.to(torch.float64))
        return t.to(test.dtype), r.to(reference.dtype)

    def _map(self, test: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"protocol {self.name!r} does not define a mapping")

    def ppd_for(self, width: int, height: int) -> float:
        """Pixels per degree for an image of ``width`` x ``height`` pixels under this protocol.

        Raises:
            InputError: the protocol fixes neither ppd nor a display geometry.
        """
        if self.ppd is not None:
            return float(self.ppd)
        if self.display_geometry is not None:
            from hdrbench.metrics.hdrvdp2 import pix_per_deg  # the one definition of the HDR-VDP geometry

            diagonal_in, distance_m = self.display_geometry
            return float(pix_per_deg(diagonal_in, (width, height), distance_m))
        raise InputError(f"protocol {self.name!r} has no default viewing geometry; pass ppd (or --ppd/--display)")

    def parameters(self) -> dict:
        """All numbers and choices that define the protocol (for result rows and JSON output)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in _TEXT_FIELDS + _CLAIM_FIELDS}

    def card(self) -> dict:
        """The protocol's card: name, version, description, parameters and stated assumptions."""
        return {"name": self.name, "version": self.version, "description": self.description,
                "parameters": self.parameters(), "assumptions": list(self.assumptions),
                "invariances": list(self.invariances)}


#: Protocol fields that are prose, not parameters (kept out of ``parameters()`` and of name overrides).
_TEXT_FIELDS = ("description", "assumptions")
#: Protocol fields that are claims checked by ``hdrbench validate-metrics``, not numbers of the mapping.
_CLAIM_FIELDS = ("invariances",)


@dataclass(frozen=True)
class SingleHDRProtocol(Protocol):
    """Per-image robust min/max to [low, high] cd/m^2 (SingleHDR's evaluation); see the module docstring."""

    fraction: float = 1e-3
    low: float = 1.0
    high: float = 999.0

    def _map(self, test: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scale_image(test), self.scale_image(reference)

    def order_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (a, b): the k-th smallest and k-th largest value, k = max(1, floor(fraction * H*W*C)).

        Returns:
            Two (N,) tensors.
        """
        flat = x.flatten(1)
        m = flat.shape[1]
        k = max(1, int(math.floor(self.fraction * m)))
        a = flat.kthvalue(k, dim=1).values
        b = flat.kthvalue(m - k + 1, dim=1).values
        return a, b

    def scale_image(self, x: torch.Tensor) -> torch.Tensor:
        """(x - a) * (high - low) / (b - a + 1e-8) + low, negatives to 0; x is (N, C, H, W)."""
        a, b = self.order_statistics(x)
        a, b = a.view(-1, 1, 1, 1), b.view(-1, 1, 1, 1)
        return ((x - a) * (self.high - self.low) / (b - a + 1e-8) + self.low).clamp_min(0.0)


_ALIGNMENTS = ("median-ratio", "log-lsq", "none")
_ANCHORS = ("max", "p99.9")


@dataclass(frozen=True)
class DisplayProtocol(Protocol):
    """Display-referred scaling: align the test to the reference, then map the reference peak to a luminance.

    Attributes:
        peak_luminance: cd/m^2 given to the reference's anchor value.
        alignment: ``median-ratio`` (median of Y_ref / Y_test), ``log-lsq`` (least squares in log luminance,
            i.e. exp(mean(log Y_ref - log Y_test))), both over pixels where both luminances are > 0; or ``none``.
        anchor: ``max`` (maximum over all values of the reference) or ``p99.9`` (its 99.9 % order statistic).
    """

    peak_luminance: float = 4000.0
    alignment: str = "median-ratio"
    anchor: str = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_number(self.peak_luminance, "peak_luminance")
        if self.alignment not in _ALIGNMENTS:
            raise InputError(f"alignment: expected one of {', '.join(_ALIGNMENTS)}, got {self.alignment!r}")
        if self.anchor not in _ANCHORS:
            raise InputError(f"anchor: expected one of {', '.join(_ANCHORS)}, got {self.anchor!r}")

    def alignment_scale(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Per-image factor s (N,) such that ``s * test`` matches ``reference`` by the alignment rule."""
        n = test.shape[0]
        if self.alignment == "none":
            return torch.ones(n, dtype=test.dtype, device=test.device)
        yt, yr = _luminance(test).flatten(1), _luminance(reference).flatten(1)
        scales = []
        for i in range(n):
            valid = (yt[i] > 0) & (yr[i] > 0)
            if not bool(valid.any()):
                raise InputError(
                    f"test/reference image index {i}: no pixel where both luminances are > 0; cannot align"
                )
            log_ratio = torch.log(yr[i][valid]) - torch.log(yt[i][valid])
            stat = log_ratio.median() if self.alignment == "median-ratio" else log_ratio.mean()
            scales.append(torch.exp(stat))
        return torch.stack(scales)

    def anchor_value(self, reference: torch.Tensor) -> torch.Tensor:
        """Per-image anchor (N,) of the reference: its maximum or 99.9 % order statistic over all values."""
        flat = reference.flatten(1)
        if self.anchor == "max":
            return flat.amax(1)
        k = max(1, int(math.ceil(0.999 * flat.shape[1])))
        return flat.kthvalue(k, dim=1).values

    def _map(self, test: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.alignment_scale(test, reference).view(-1, 1, 1, 1)
        anchor = self.anchor_value(reference)
        zero = [i for i, v in enumerate(anchor.tolist()) if v <= 0]
        if zero:
            raise InputError(f"reference: image index {zero[:5]} has a zero {self.anchor} anchor; cannot scale")
        f = (self.peak_luminance / anchor).view(-1, 1, 1, 1)
        return test * s * f, reference * f


@dataclass(frozen=True)
class AbsoluteProtocol(Protocol):
    """Inputs already in cd/m^2: checked, passed through unchanged.

    Attributes:
        min_peak: the smallest accepted reference maximum in cd/m^2; lower peaks almost always mean relative
            values passed by mistake (HDR-VDP itself warns when max(G) <= 1).
    """

    min_peak: float = 1.0

    def _map(self, test: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        peaks = reference.flatten(1).amax(1)
        low = [i for i, p in enumerate(peaks.tolist()) if p < self.min_peak]
        if low:
            raise InputError(
                f"reference: image index {low[:5]} peaks at {float(peaks.min()):.4g} cd/m^2 (< {self.min_peak}); the"
                " 'absolute' protocol expects cd/m^2, these look like relative values: choose a scaling protocol"
                " such as 'singlehdr' or 'display'"
            )
        return test, reference


def pq_encode(x: torch.Tensor) -> torch.Tensor:
    """SMPTE ST 2084 (PQ) inverse EOTF: cd/m^2 in [0, 10000] -> [0, 1] (input clamped to that range)."""
    lp = (x.clamp(0.0, 10000.0) / 10000.0).pow(_PQ_M1)
    return ((_PQ_C1 + _PQ_C2 * lp) / (1.0 + _PQ_C3 * lp)).pow(_PQ_M2)


def pq_decode(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pq_encode`: [0, 1] -> cd/m^2 (input clamped to [0, 1])."""
    t = y.clamp(0.0, 1.0).pow(1.0 / _PQ_M2)
    lp = ((t - _PQ_C1).clamp_min(0.0) / (_PQ_C2 - _PQ_C3 * t)).pow(1.0 / _PQ_M1)
    return 10000.0 * lp


def _rgb_to_pq_uv(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) linear RGB in cd/m^2 -> (N, 3, H, W) [PQ(Y), u' * 410/255, v' * 410/255]."""
    m = torch.tensor(_RGB_TO_XYZ, dtype=x.dtype, device=x.device)
    xyz = torch.einsum("ij,njhw->nihw", m, x)
    X, Y, Z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    den = X + 15.0 * Y + 3.0 * Z
    return torch.stack((pq_encode(Y), 4.0 * X / den * _UV_SCALE, 9.0 * Y / den * _UV_SCALE), dim=1)


def _pq_uv_to_rgb(c: torch.Tensor) -> torch.Tensor:
    Y = pq_decode(c[:, 0])
    u = c[:, 1] / _UV_SCALE
    v = (c[:, 2] / _UV_SCALE).clamp_min(1e-6)  # v' > 0 for every real colour; guards the division
    X = Y * 9.0 * u / (4.0 * v)
    Z = Y * (12.0 - 3.0 * u - 20.0 * v) / (4.0 * v)
    m_inv = torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=c.dtype, device=c.device))
    return torch.einsum("ij,njhw->nihw", m_inv, torch.stack((X, Y, Z), dim=1))


def _monomials(n_vars: int, degree: int) -> list[tuple[int, ...]]:
    """Exponent tuples of all monomials of total degree <= ``degree`` (constant first, then linear terms)."""
    out: list[tuple[int, ...]] = [()]
    for d in range(1, degree + 1):
        def rec(start: int, left: int, acc: tuple[int, ...]) -> None:
            if left == 0:
                out.append(acc)
                return
            for v in range(start, n_vars):
                rec(v, left - 1, acc + (v,))

        rec(0, d, ())
    return out


def _features(c: torch.Tensor, terms: list[tuple[int, ...]]) -> torch.Tensor:
    """(P, V) values -> (P, T) monomial features."""
    cols = [torch.ones(c.shape[0], dtype=c.dtype, device=c.device)]
    for t in terms[1:]:
        col = c[:, t[0]]
        for v in t[1:]:
            col = col * c[:, v]
        cols.append(col)
    return torch.stack(cols, dim=1)


def crf_correct(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    degree: int = 3,
    ridge: float = 0.01,
    floor: float = 0.005,
    max_fit_pixels: int = 1 << 18,
) -> torch.Tensor:
    """Hanji et al. 2022 correction: fit a polynomial colour/tone map from the test to the reference and apply it.

    Per image: both floored at ``floor`` cd/m^2; RGB -> (PQ(Y), u' 410/255, v' 410/255) (luminance only: PQ(Y));
    all monomials of the channels up to ``degree`` (20 terms for 3 channels, 4 for 1, with a constant) fitted by
    ridge least squares, W = argmin |F W - R|^2 + lambda' |W - W_id|^2 with lambda' = ridge * rows / cols (rows =
    fitted pixels, cols = terms) and W_id the identity map, so a weakly constrained fit stays close to "no
    correction"; the fitted map is applied to every test pixel and the result converted back to RGB and floored
    at ``floor``. At most ``max_fit_pixels`` pixels (a regular subsample) enter the fit.

    Args:
        test: (N, 3, H, W) or (N, 1, H, W) linear, absolute cd/m^2, >= 0.
        reference: same shape and units.

    Returns:
        Corrected test, same shape, float64, >= ``floor``.
    """
    x = test.to(torch.float64).clamp_min(floor)
    r = reference.to(torch.float64).clamp_min(floor)
    colour = x.shape[1] == 3
    cx = _rgb_to_pq_uv(x) if colour else pq_encode(x)
    cr = _rgb_to_pq_uv(r) if colour else pq_encode(r)
    n, c = cx.shape[:2]
    terms = _monomials(c, degree)
    out = []
    for i in range(n):
        px = cx[i].reshape(c, -1).T
        pr = cr[i].reshape(c, -1).T
        step = max(1, math.ceil(px.shape[0] / max_fit_pixels))
        f = _features(px[::step], terms)
        rows, cols = f.shape
        lam = ridge * rows / cols
        w_id = torch.zeros(cols, c, dtype=f.dtype, device=f.device)
        for j in range(c):
            w_id[1 + j, j] = 1.0  # the linear terms follow the constant in _monomials
        a = f.T @ f + lam * torch.eye(cols, dtype=f.dtype, device=f.device)
        w = torch.linalg.solve(a, f.T @ pr[::step] + lam * w_id)
        out.append((_features(px, terms) @ w).T.reshape(cx.shape[1:]))
    corrected = torch.stack(out)
    rgb = _pq_uv_to_rgb(corrected) if colour else pq_decode(corrected)
    return rgb.clamp_min(floor)


@dataclass(frozen=True)
class CRFCorrectedProtocol(Protocol):
    """Hanji et al. 2022: an optional base protocol (or median normalisation), then :func:`crf_correct` on the test.

    Attributes:
        base: protocol applied first; None means "scale each image so its median luminance is ``median_to``".
        median_to: cd/m^2 given to each image's median luminance when ``base`` is None.
        degree, ridge, floor: see :func:`crf_correct`.
    """

    base: Protocol | None = None
    median_to: float = 500.0
    degree: int = 3
    ridge: float = 0.01
    floor: float = 0.005

    def _map(self, test: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.base is not None:
            t, r = self.base._map(test, reference)
        else:
            t, r = self._median_normalise(test, "test"), self._median_normalise(reference, "reference")
        t_corr = crf_correct(t, r, degree=self.degree, ridge=self.ridge, floor=self.floor)
        return t_corr, r.clamp_min(self.floor)

    def _median_normalise(self, x: torch.Tensor, name: str) -> torch.Tensor:
        med = _luminance(x).flatten(1).median(1).values
        zero = [i for i, m in enumerate(med.tolist()) if m <= 0]
        if zero:
            raise InputError(f"{name}: image index {zero[:5]} has median luminance 0; cannot normalise the median")
        return x * (self.median_to / med).view(-1, 1, 1, 1)

    def parameters(self) -> dict:
        p = super().parameters()
        p["base"] = None if self.base is None else {"name": self.base.name, "version": self.base.version}
        return p


PROTOCOLS: Registry[Callable[..., Protocol]] = Registry("protocol")


def _named(name: str, cls: type[Protocol], defaults: dict, overrides: dict) -> Protocol:
    fields = {f.name for f in dataclasses.fields(cls)}
    fixed = {"name", "version", *_TEXT_FIELDS, *_CLAIM_FIELDS}
    bad = sorted(k for k in overrides if k not in fields or k in fixed)
    if bad:
        allowed = sorted(fields - fixed - {"base"})
        raise InputError(f"protocol {name!r}: unknown parameter(s) {bad}; known: {allowed}")
    changed = {k: v for k, v in overrides.items() if defaults.get(k, _field_default(cls, k)) != v}
    full_name = name
    if changed:
        full_name += "[" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + "]"
    return cls(name=full_name, **{**defaults, **overrides})


def _field_default(cls: type[Protocol], key: str) -> object:
    for f in dataclasses.fields(cls):
        if f.name == key:
            return f.default
    return dataclasses.MISSING


@PROTOCOLS.register("singlehdr")
def _singlehdr(**kw) -> Protocol:
    return _named(
        "singlehdr",
        SingleHDRProtocol,
        dict(
            version="1",
            description="per image: 0.1%/99.9% order statistics -> [1, 999] cd/m^2 (SingleHDR), 30 ppd",
            ppd=30.0,
            invariances=("global-scale",),  # (s x - s a) / (s b - s a) = (x - a) / (b - a)
        ),
        kw,
    )


#: Scaling and viewing geometry of ``kim2021``: the paper (Kim, Lee & Kang, AAAI 2021) and its official code state
#: neither, so they are assumptions, stated on the card.
KIM2021_ASSUMPTIONS: tuple[str, ...] = (
    "scaling to cd/m^2: not stated by the paper or its code (the code writes relative HDR only); the singlehdr"
    " scaling is assumed (per image, the 0.1 % / 99.9 % order statistics -> 1 / 999 cd/m^2), which makes the"
    " arbitrary scale of each merge (its own recovered curve) irrelevant",
    "viewing geometry: not stated; 30 pixels per degree is assumed (as for singlehdr)",
    "the reference is the ground-truth stack merged by the official synthesis layer, with the curve recovered from"
    " that stack; predicted stacks are merged by the same layer (with the method's own curve where it has one);"
    " a method that outputs HDR directly is scored as it is against that same reference",
)


@PROTOCOLS.register("kim2021")
def _kim2021(**kw) -> Protocol:
    return _named(
        "kim2021",
        SingleHDRProtocol,
        dict(
            version="1",
            description="official test of Kim et al. 2021: reference = ground-truth stack merged by the official"
            " layer, stacks merged by it too; then singlehdr scaling and 30 ppd (both assumed)",
            ppd=30.0,
            hdr_reference="gt-stack",
            stack_merge="official",
            assumptions=KIM2021_ASSUMPTIONS,
            invariances=("global-scale",),  # the singlehdr scaling: (s x - s a) / (s b - s a) = (x - a) / (b - a)
        ),
        kw,
    )


@PROTOCOLS.register("display")
def _display(**kw) -> Protocol:
    return _named(
        "display",
        DisplayProtocol,
        dict(
            version="1",
            description="test aligned to reference (median luminance ratio); reference max -> 4000 cd/m^2;"
            " 21-inch display at 1 m",
            display_geometry=(21.0, 1.0),
            invariances=("global-scale",),  # the median-ratio alignment undoes a factor on the test
        ),
        kw,
    )


@PROTOCOLS.register("absolute")
def _absolute(**kw) -> Protocol:
    return _named(
        "absolute",
        AbsoluteProtocol,
        dict(version="1", description="inputs already in cd/m^2 (checked, unchanged); ppd must be given"),
        kw,
    )


@PROTOCOLS.register("hanji2022")
def _hanji(**kw) -> Protocol:
    return _named(
        "hanji2022",
        CRFCorrectedProtocol,
        dict(
            version="1",
            description="medians -> 500 cd/m^2, floor 0.005, degree-3 ridge colour/tone correction of the test"
            " (Hanji et al. 2022); 21-inch display at 1 m",
            display_geometry=(21.0, 1.0),
            invariances=("global-scale",),  # each image's median is set to 500 cd/m^2 first
        ),
        kw,
    )


def with_crf_correction(protocol: Protocol, **kw) -> Protocol:
    """Return ``protocol`` followed by the Hanji et al. 2022 correction, named ``<name>+hanji2022``."""
    return CRFCorrectedProtocol(
        name=f"{protocol.name}+hanji2022",
        version=f"{protocol.version}+1",
        description=f"{protocol.description}; then Hanji et al. 2022 colour/tone correction of the test",
        ppd=protocol.ppd,
        display_geometry=protocol.display_geometry,
        hdr_reference=protocol.hdr_reference,
        stack_merge=protocol.stack_merge,
        assumptions=protocol.assumptions,
        invariances=protocol.invariances,  # the correction is fitted after the base mapping
        base=protocol,
        **kw,
    )


def get_protocol(name: str | Protocol, *, crf_correction: bool = False, **parameters) -> Protocol:
    """Look up a protocol by name (did-you-mean on a miss), optionally overriding its parameters.

    Args:
        name: a registered name (see :func:`list_protocols`) or a :class:`Protocol`, returned as is.
        crf_correction: follow the protocol with Hanji et al. 2022's correction (:func:`with_crf_correction`).
        **parameters: protocol fields to override, e.g. ``peak_luminance=1000`` for ``display``; a changed
            value is recorded in the protocol's name.

    Raises:
        UnknownNameError: unknown name (the message lists close matches).
        InputError: unknown or invalid parameter.
    """
    protocol = name if isinstance(name, Protocol) else PROTOCOLS.get(name)(**parameters)
    if crf_correction:
        protocol = with_crf_correction(protocol)
    return protocol


def list_protocols() -> list[str]:
    """Sorted names of the registered protocols."""
    return PROTOCOLS.names()


__all__ = [
    "AbsoluteProtocol",
    "CRFCorrectedProtocol",
    "DisplayProtocol",
    "HDR_REFERENCES",
    "KIM2021_ASSUMPTIONS",
    "PROTOCOLS",
    "Protocol",
    "STACK_MERGES",
    "SingleHDRProtocol",
    "crf_correct",
    "get_protocol",
    "list_protocols",
    "pq_decode",
    "pq_encode",
    "with_crf_correction",
]

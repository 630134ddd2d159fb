"""HDR-VDP 2.2.2 (Mantiuk et al. 2011; Narwaria et al. 2015) in PyTorch: input checks and the pipeline.

Stages (one module each): optics (MTF and glare) -> photoreceptor responses and transducer ->
steerable pyramid -> neural CSF (noise) and base-band CSF filter -> masking -> pooling (Q, P_map).
Test and reference go through the shared stages as one batch of 2N images.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

from hdrbench.checks import check_image, check_nonnegative, check_not_all_zero
from hdrbench.errors import InputError, UnknownNameError
from hdrbench.registry import Registry

from . import csf, masking, optics, photoreceptors, pooling, pyramid
from .constants import VERSION, constants
from .profiling import stage


class UnknownColorEncodingError(InputError, UnknownNameError):
    """Unknown ``color_encoding`` (both an InputError and an UnknownNameError)."""


#: Colour encodings -> number of input channels.
COLOR_ENCODINGS: Registry[int] = Registry("color_encoding")
COLOR_ENCODINGS.register("rgb-bt.709", 3)
COLOR_ENCODINGS.register("luminance", 1)


@dataclass
class HDRVDP2Result:
    """Outputs of :func:`hdrvdp2` for a batch of N image pairs.

    Attributes:
        Q: (N,) float64 quality correlate; 100 for identical images, lower is worse (can go negative).
        P_det: (N,) float64 probability of detection, max of ``P_map``, in [0, 1].
        C_max: (N,) float64 max of ``C_map``.
        P_map: (N, H, W) per-pixel probability of detection in [0, 1] (input dtype).
        C_map: (N, H, W) per-pixel threshold-normalised contrast after spatial pooling (input dtype).
        ppd: pixels per degree used.
        color_encoding: colour encoding used.
        version: HDR-VDP version reproduced ("2.2.2").
        stages: intermediate values, filled only with ``return_stages=True`` (for debugging/tests).
    """

    Q: torch.Tensor
    P_det: torch.Tensor
    C_max: torch.Tensor
    P_map: torch.Tensor
    C_map: torch.Tensor
    ppd: float
    color_encoding: str
    version: str = VERSION
    stages: dict = field(default_factory=dict, repr=False)


def _check_image(name: str, x, n_channels: int, encoding: str) -> None:
    what = f"hdrvdp2: {name}"
    check_image(x, what, channels=None)
    if x.shape[1] != n_channels:
        raise InputError(
            f"{what} has {x.shape[1]} channels but color_encoding '{encoding}' needs {n_channels} "
            f"(shape {tuple(x.shape)})"
        )
    check_nonnegative(x, what)  # absolute luminance in cd/m^2
    check_not_all_zero(x, what)  # luminance must be positive somewhere


def validate(test, reference, color_encoding: str, ppd: float, surround: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the arguments of :func:`hdrvdp2` and return (test, reference) in a common float dtype."""
    if not isinstance(color_encoding, str) or color_encoding not in COLOR_ENCODINGS:
        raise UnknownColorEncodingError(COLOR_ENCODINGS.unknown_message(str(color_encoding)))
    n_channels = COLOR_ENCODINGS.get(color_encoding)
    if isinstance(ppd, bool) or not isinstance(ppd, (int, float)) or not math.isfinite(ppd) or ppd <= 0:
        raise InputError(f"hdrvdp2: ppd must be a positive finite number of pixels per degree, got {ppd!r}")
    if isinstance(surround, bool) or not isinstance(surround, (int, float)) or not math.isfinite(surround) or surround <= 0:
        raise InputError(f"hdrvdp2: surround must be a positive finite luminance in cd/m^2, got {surround!r}")
    _check_image("test", test, n_channels, color_encoding)
    _check_image("reference", reference, n_channels, color_encoding)
    if test.shape != reference.shape:
        raise InputError(
            f"hdrvdp2: test and reference differ in shape: test {tuple(test.shape)}, reference {tuple(reference.shape)}"
        )
    if test.device != reference.device:
        raise InputError(f"hdrvdp2: test is on {test.device} but reference is on {reference.device}")
    h, w = test.shape[-2:]
    if min(h, w) < pyramid.MIN_SIZE:
        raise InputError(
            f"hdrvdp2: test/reference are {h}x{w} pixels; HDR-VDP-2 needs at least {pyramid.MIN_SIZE}x{pyramid.MIN_SIZE}"
        )
    dtype = torch.promote_types(test.dtype, reference.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32  # half precision cannot hold the masking exponents' range
    return test.to(dtype), reference.to(dtype)


def hdrvdp2(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    color_encoding: str,
    ppd: float,
    surround: float | None = None,
    return_stages: bool = False,
) -> HDRVDP2Result:
    """HDR-VDP 2.2.2 visible-difference and quality metric for absolute-luminance images.

    The metric is asymmetric: ``test`` comes first. The pixel difference mask divides by the reference,
    and the base band is padded with the reference's mean, so swapping the arguments can change Q.

    One function on purpose: it follows the reference implementation's main routine step by step (optics,
    receptors, pyramid, CSF, masking, pooling), in its order, so that each stage can be read side by side
    with the algorithm and compared with the reference's per-stage values; the stages it calls are separate.

    Args:
        test: (N, C, H, W) distorted images, linear, absolute luminance in cd/m^2 (>= 0, finite).
        reference: (N, C, H, W) reference images, same units and shape.
        color_encoding: ``'rgb-bt.709'`` (C = 3, linear BT.709 RGB shown on a CCFL-backlit LCD) or
            ``'luminance'`` (C = 1, photometric luminance with the D65 spectrum).
        ppd: pixels per visual degree (e.g. 30, or :func:`pix_per_deg`). Q depends strongly on it.
        surround: luminance (cd/m^2) around the image used as padding for the optical glare filter
            (default 1e-5, HDR-VDP's default).
        return_stages: also return intermediate values in ``result.stages`` (memory-hungry).

    Returns:
        :class:`HDRVDP2Result` with Q, P_det, C_max (N,) and P_map, C_map (N, H, W). Computation runs in
        the inputs' dtype (float32 or float64) on their device; Q sums are accumulated in float64.

    Raises:
        InputError: shape/size mismatch, NaN/Inf, negative or all-zero images, wrong channel count,
            unknown ``color_encoding`` (also an UnknownNameError), images smaller than 15x15, bad ppd.

    Example:
        >>> ref = torch.rand(1, 3, 64, 64, dtype=torch.float64) * 100 + 1
        >>> float(hdrvdp2(ref.clone(), ref, color_encoding="rgb-bt.709", ppd=30).Q[0])
        100.0
    """
    surround = constants().surround_l if surround is None else surround
    test, reference = validate(test, reference, color_encoding, ppd, surround)
    if float(test.detach()[:, 1 if test.shape[1] == 3 else 0].max()) <= 1.0:
        warnings.warn(
            "hdrvdp2: the test image's peak is <= 1 cd/m^2; HDR-VDP expects absolute luminance, not relative values",
            stacklevel=2,
        )
    n = test.shape[0]
    stages: dict = {}
    keep = stages if return_stages else None

    dev = test.device
    with stage("pooling", dev):
        diff_mask = pooling.difference_mask(test, reference)
    with stage("optics", dev):
        l_optics = optics.optics(torch.cat([test, reference], dim=0), float(ppd), float(surround))
    with stage("photoreceptors", dev):
        if keep is None:
            p, l_adapt = photoreceptors.transduce_with_adaptation(l_optics)
            del l_optics
        else:
            r_lmsr = photoreceptors.receptor_responses(l_optics)
            l_adapt = photoreceptors.adapting_luminance(r_lmsr)
            p = photoreceptors.transduce(r_lmsr)
        l_mean = l_adapt.mean(dim=(1, 2, 3))
        log_la = torch.log10((0.5 * (l_adapt[:n] + l_adapt[n:])).clamp_(1e-5, 1e5))
        if keep is None:
            del l_adapt
    with stage("pyramid", dev):
        pyr = pyramid.build(p)
        if keep is None:
            del p
    with stage("csf", dev):
        freqs = csf.band_frequencies(float(ppd), pyr.height)
        bb = pyr.lowpass
        pad = bb[n:].mean(dim=(1, 2, 3))  # the reference's base-band mean pads both images
        bb_f = csf.filter_base_band(bb, float(freqs[-1]), l_mean, torch.cat([pad, pad]))
        bands = pyr.bands()[:-1] + [bb_f]
        bands_raw = pyr.bands() if keep is not None else None
        del pyr, bb
        table = csf.csf_table(freqs, test.dtype, test.device)
    weights = pooling.band_weights(freqs)
    noise_kept: list = []

    def noise(i: int):
        if i == len(bands) - 1:
            nz = 1.0  # the base band has no CSF noise
        else:
            with stage("csf", dev):
                nz = 1.0 / csf.band_csf(table[i], log_la, tuple(bands[i].shape[-2:]))
        if keep is not None:
            noise_kept.append(nz)
        return nz

    # Band by band: masking -> Q terms -> psychometric exponent. Each band's D is dropped once its Q terms and
    # its psychometric version are taken, and the pyramid bands are dropped as the masking passes them, so the
    # peak holds one pyramid (test and reference) plus the psychometric bands, not several full copies.
    terms = torch.zeros((n, len(bands), 4), dtype=torch.float64, device=dev)
    psy: list = []
    if masking.native_usable(bands, keep):
        # float32 on the CPU without gradients: one fused kernel per band (CSF lookup, masking, D, psychometric band
        # and the Q sums of squares; masking.iter_band_squares_native), which yields the sums instead of D.
        def csf_inputs(i: int):
            return None if i == len(bands) - 1 else csf.band_inputs(table[i], log_la, tuple(bands[i].shape[-2:]))

        items = masking.iter_band_squares_native(bands, n, noise, csf_inputs, diff_mask)

        def band_terms(i: int, sq: torch.Tensor, d_psy: torch.Tensor) -> torch.Tensor:
            return pooling.band_term_from_squares(sq, tuple(d_psy.shape[-2:]), float(weights[i]))
    else:
        # The masking also yields each band's psychometric version (sign_pow(D / band_norm, pf) band_norm), which it
        # derives from the logarithms it already has when no gradient is needed.
        items = masking.iter_visible_differences(bands, n, noise, keep, psychometric=True)

        def band_terms(i: int, d: torch.Tensor, d_psy: torch.Tensor) -> torch.Tensor:
            return pooling.band_term(d, diff_mask, float(weights[i]))
    while True:
        with stage("masking", dev):
            item = next(items, None)
        if item is None:
            break
        i, x, d_psy = item  # x: the band's D (torch code) or its sums of squares (kernel)
        with stage("pooling", dev):
            t = band_terms(i, x, d_psy)
            terms[:, i, : t.shape[1]] = t
        psy.append(d_psy)
        del x, d_psy, item, t
    del bands
    with stage("pooling", dev):
        q = pooling.quality(terms)

    with stage("detection", dev):
        s_raw = pyramid.reconstruct(pyramid.SteerablePyramid(*_split_bands(psy))).abs_()
        del psy
        p_map, c_map = pooling.detection_maps(s_raw)

    if return_stages:
        stages.update(
            L_O=l_optics, R_LMSR=r_lmsr, L_adapt=l_adapt, P=p, bands_raw=bands_raw, base_band_filtered=bb_f,
            bb_padvalue=pad, L_mean=l_mean, log_La=log_la, band_freq=freqs, noise=noise_kept, diff_mask=diff_mask,
            terms=terms, S_raw=s_raw[:, 0],
        )
    return HDRVDP2Result(
        Q=q,
        P_det=p_map.amax(dim=(-2, -1)).to(torch.float64),
        C_max=c_map.amax(dim=(-2, -1)).to(torch.float64),
        P_map=p_map,
        C_map=c_map,
        ppd=float(ppd),
        color_encoding=color_encoding,
        stages=stages,
    )


def _split_bands(bands: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    return bands[0], list(bands[1:-1]), bands[-1]

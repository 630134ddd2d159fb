"""PU21 perceptually uniform encoding of absolute luminance and the PU21 metrics (PU-PSNR, PU-SSIM, PU-MS-SSIM).

Mantiuk & Azimi, "PU21: A novel perceptually uniform encoding for adapting existing quality metrics for HDR",
Picture Coding Symposium 2021. The encoding maps absolute luminance Y in cd/m^2 to values V that are roughly
uniform in visible differences and roughly match 8-bit sRGB code values in the SDR range (V(100 cd/m^2) is
about 256 for the default parameter set), so that LDR metrics can be applied to HDR content:

    V = p7 * (((p1 + p2 * Y^p4) / (1 + p3 * Y^p4))^p5 - p6)

Y is clamped to [0.005, 10000] cd/m^2 (:data:`L_MIN`, :data:`L_MAX`) before encoding: the range the encoding was
fitted on. Below 0.005 cd/m^2 every value encodes as V(0.005) ~ 0 and above 10000 as V(10000), and the encoding's
gradient is zero there. Decoding clamps V to [V(L_MIN), V(L_MAX)] so that its result stays in the same range.

Metric conventions (inputs absolute linear RGB in cd/m^2, BT.709 primaries, shape (N, 3, H, W), or luminance
(N, 1, H, W)):

* ``pu21_psnr``: every channel encoded separately; MSE over all channels and pixels of an image;
  PSNR = 10 log10(256^2 / MSE) (peak 256 as in the reference implementation).
* ``pu21_ssim`` / ``pu21_msssim``: computed on the encoded luminance, Y = 0.212656 R + 0.715158 G + 0.072186 B,
  with ``data_range=256`` (:mod:`hdrbench.metrics.stack`, Gaussian 11 x 11 window, sigma 1.5).
"""

from __future__ import annotations

from typing import Sequence

import torch

from hdrbench.checks import check_nonnegative, check_pair
from hdrbench.errors import InputError
from hdrbench.imaging.luma import REC709_LUMA_6
from hdrbench.metrics.card import MetricCard, windowed
from hdrbench.metrics.stack import ms_ssim, psnr, ssim
from hdrbench.registry import Registry

#: Luminance range of the encoding in cd/m^2; inputs are clamped to it.
L_MIN = 0.005
L_MAX = 10000.0
#: Peak value used by PU-PSNR and the dynamic range used by PU-SSIM/PU-MS-SSIM.
PU21_PEAK = 256.0
#: BT.709 / sRGB luminance weights of linear R, G, B (six decimals, as HDR-VDP and PU21 use them).
LUMINANCE_WEIGHTS = REC709_LUMA_6
DEFAULT_PARAMS = "banding_glare"

#: The four published parameter sets (p1 ... p7). ``banding_glare`` is the authors' recommendation.
PU21_PARAMETERS: Registry[tuple[float, ...]] = Registry("PU21 parameter set")
PU21_PARAMETERS.register(
    "banding", (1.070275272, 0.4088273932, 0.153224308, 0.2520326168, 1.063512885, 1.14115047, 521.4527484)
)
PU21_PARAMETERS.register(
    "banding_glare",
    (0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166, 0.9099517204, 596.3148142),
)
PU21_PARAMETERS.register(
    "peaks", (1.043882782, 0.6459495343, 0.3194584211, 0.374025247, 1.114783422, 1.095360363, 384.9217577)
)
PU21_PARAMETERS.register(
    "peaks_glare", (816.885024, 1479.463946, 0.001253215609, 0.9329636822, 0.06746643971, 1.573435413, 419.6006374)
)


def _params(params: str | Sequence[float]) -> tuple[float, ...]:
    if isinstance(params, str):
        return PU21_PARAMETERS.get(params)
    p = tuple(float(v) for v in params)
    if len(p) != 7:
        raise InputError(f"params: expected a PU21 parameter-set name or 7 numbers, got {len(p)} numbers")
    return p


def _encode_raw(y: torch.Tensor, p: tuple[float, ...]) -> torch.Tensor:
    yp = y.pow(p[3])
    return p[6] * (((p[0] + p[1] * yp) / (1.0 + p[2] * yp)).pow(p[4]) - p[5])


def pu21_encode(Y: torch.Tensor, params: str | Sequence[float] = DEFAULT_PARAMS) -> torch.Tensor:
    """Encode absolute luminance (or a linear colour channel) in cd/m^2 to PU21 values.

    Args:
        Y: tensor of any shape, absolute cd/m^2, finite; clamped to [0.005, 10000] first.
        params: parameter-set name (``banding``, ``banding_glare``, ``peaks``, ``peaks_glare``) or 7 numbers.

    Returns:
        Tensor of the same shape and dtype: V, about 0 at 0.005 cd/m^2, about 256 at 100 cd/m^2 and about
        595 at 10000 cd/m^2 for ``banding_glare``. Differentiable inside the clamping range.
    """
    p = _params(params)
    if not isinstance(Y, torch.Tensor) or not Y.is_floating_point():
        raise InputError(f"Y: expected a floating-point torch.Tensor, got {type(Y).__name__}")
    if not bool(torch.isfinite(Y).all()):
        raise InputError("Y: contains NaN or Inf values")
    return _encode_raw(Y.clamp(L_MIN, L_MAX), p)


def pu21_decode(V: torch.Tensor, params: str | Sequence[float] = DEFAULT_PARAMS) -> torch.Tensor:
    """Invert :func:`pu21_encode`: PU21 values back to absolute luminance in cd/m^2.

    Uses Vp = max(V / p7 + p6, 0)^(1 / p5) and Y = (max(Vp - p1, 0) / (p2 - p3 Vp))^(1 / p4).

    Args:
        V: tensor of any shape; clamped to [encode(0.005), encode(10000)] first.
        params: as in :func:`pu21_encode`.

    Returns:
        Y in [0.005, 10000] cd/m^2, same shape and dtype. Differentiable inside the clamping range.
    """
    p = _params(params)
    if not isinstance(V, torch.Tensor) or not V.is_floating_point():
        raise InputError(f"V: expected a floating-point torch.Tensor, got {type(V).__name__}")
    if not bool(torch.isfinite(V).all()):
        raise InputError("V: contains NaN or Inf values")
    bounds = _encode_raw(torch.tensor([L_MIN, L_MAX], dtype=torch.float64), p).tolist()
    v = V.clamp(min(bounds), max(bounds))
    vp = (v / p[6] + p[5]).clamp_min(0.0).pow(1.0 / p[4])
    return ((vp - p[0]).clamp_min(0.0) / (p[1] - p[2] * vp)).pow(1.0 / p[3])


def rgb_to_luminance(x: torch.Tensor) -> torch.Tensor:
    """Luminance of linear BT.709 RGB (N, 3, H, W) -> (N, 1, H, W); (N, 1, H, W) is returned unchanged."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMINANCE_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _check_absolute(test: torch.Tensor, reference: torch.Tensor) -> None:
    check_pair(test, reference, channels=(1, 3))
    check_nonnegative(test, "test")
    check_nonnegative(reference, "reference")


def pu21_psnr(
    test: torch.Tensor, reference: torch.Tensor, *, params: str | Sequence[float] = DEFAULT_PARAMS
) -> torch.Tensor:
    """PU-PSNR: PSNR with peak 256 on PU21-encoded channels (see the module docstring for the convention).

    Args:
        test: (N, 3, H, W) linear RGB or (N, 1, H, W) luminance, absolute cd/m^2, >= 0.
        reference: same shape and units.
        params: PU21 parameter set.

    Returns:
        (N,) float64 PU-PSNR in dB (+inf for identical images after clamping).
    """
    _check_absolute(test, reference)
    t = pu21_encode(test.to(torch.float64), params)
    r = pu21_encode(reference.to(torch.float64), params)
    return psnr(t, r, data_range=PU21_PEAK)


def _encoded_luminance(test: torch.Tensor, reference: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
    """PU21 codes ``(N, 1, H, W)`` float64 of the luminance of an absolute test/reference pair (checked)."""
    _check_absolute(test, reference)
    return (pu21_encode(rgb_to_luminance(test.to(torch.float64)), params),
            pu21_encode(rgb_to_luminance(reference.to(torch.float64)), params))


def pu21_ssim(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    params: str | Sequence[float] = DEFAULT_PARAMS,
    allow_small_window: bool = False,
    return_window: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, int]:
    """PU-SSIM: SSIM (data range 256) on the PU21-encoded luminance.

    Args:
        test: (N, 3, H, W) linear RGB or (N, 1, H, W) luminance, absolute cd/m^2, >= 0; min(H, W) >= 11.
        reference: same shape and units.
        params: PU21 parameter set.
        allow_small_window, return_window: see :func:`hdrbench.metrics.stack.ssim`.

    Returns:
        (N,) float64 PU-SSIM, or ``(values, window)`` with ``return_window``.
    """
    t, r = _encoded_luminance(test, reference, params)
    return ssim(t, r, data_range=PU21_PEAK, allow_small_window=allow_small_window, return_window=return_window)


def pu21_msssim(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    params: str | Sequence[float] = DEFAULT_PARAMS,
    allow_small_window: bool = False,
    return_window: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, int]:
    """PU-MS-SSIM: five-scale MS-SSIM (data range 256) on the PU21-encoded luminance.

    Args:
        test: (N, 3, H, W) linear RGB or (N, 1, H, W) luminance, absolute cd/m^2, >= 0; min(H, W) > 160.
        reference: same shape and units.
        params: PU21 parameter set.
        allow_small_window, return_window: see :func:`hdrbench.metrics.stack.ms_ssim`.

    Returns:
        (N,) float64 PU-MS-SSIM, or ``(values, window)`` with ``return_window``.
    """
    t, r = _encoded_luminance(test, reference, params)
    return ms_ssim(t, r, data_range=PU21_PEAK, allow_small_window=allow_small_window, return_window=return_window)


#: The cards of this module's metrics (registered by :mod:`hdrbench.metrics.registry`).
CARDS = (
    MetricCard(
        name="pu21-psnr", higher_is_better=True, input_domain="absolute-cd/m2", version="1",
        reference_implementation="PU21 formula (Mantiuk & Azimi 2021) in numpy float64", differentiable=True,
        description="PSNR with peak 256 on PU21 (banding_glare) encoded R, G, B; MSE over channels and pixels",
        compute=lambda t, r, ctx: pu21_psnr(t, r),
    ),
    MetricCard(
        name="pu21-ssim", higher_is_better=True, input_domain="absolute-cd/m2", version="1",
        reference_implementation="PU21 formula + skimage structural_similarity", differentiable=True,
        description="SSIM (data_range 256, window 11) on PU21 (banding_glare) encoded luminance",
        compute=windowed("pu21-ssim", pu21_ssim),
    ),
    MetricCard(
        name="pu21-msssim", higher_is_better=True, input_domain="absolute-cd/m2", version="1",
        reference_implementation="PU21 formula + pytorch_msssim MS-SSIM", differentiable=True,
        description="MS-SSIM (data_range 256, window 11, min side > 160) on PU21 (banding_glare) encoded luminance",
        compute=windowed("pu21-msssim", pu21_msssim),
    ),
)

__all__ = [
    "L_MAX",
    "L_MIN",
    "LUMINANCE_WEIGHTS",
    "PU21_PARAMETERS",
    "PU21_PEAK",
    "pu21_decode",
    "pu21_encode",
    "pu21_msssim",
    "pu21_psnr",
    "pu21_ssim",
    "rgb_to_luminance",
]

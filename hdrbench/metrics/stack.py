"""Full-reference image metrics for exposure stacks and their HDR companions: PSNR, SSIM, MS-SSIM, mu-law and log PSNR.

All functions take batches (N, C, H, W) and return one value per image, shape (N,), float64: inputs are
promoted to float64 before any arithmetic, so the numbers do not depend on the caller's dtype. They stay
differentiable (no ``.detach()``), so they can serve as losses.

SSIM and MS-SSIM go through ``pytorch_msssim`` (Gaussian window 11 x 11, sigma 1.5, K = (0.01, 0.03), valid
filtering, the 5-scale weights of Wang et al. 2003). ``data_range`` is keyword-only and required everywhere,
because the library's own default (255) silently gives wrong numbers on [0, 1] images.

Images too small for the window: SSIM needs min(H, W) >= window size and MS-SSIM needs min(H, W) > (window - 1)
* 16 (four 2x downsamplings). Such inputs raise :class:`~hdrbench.errors.InputError` unless the caller passes
``allow_small_window=True``; then the largest odd window that fits (at least 3) is used, its Gaussian sigma
scaled by ``window / 11`` so that the window still spans the same number of standard deviations, and the size
used is returned with ``return_window=True`` so that it can go into the result row.
"""

from __future__ import annotations

import math

import torch

from hdrbench.checks import check_nonnegative, check_pair, check_positive_number
from hdrbench.errors import InputError
from hdrbench.metrics.card import MetricCard, windowed

#: Default SSIM Gaussian window (size, sigma): the values of Wang et al. 2004 and of pytorch_msssim/skimage.
DEFAULT_WIN_SIZE = 11
DEFAULT_WIN_SIGMA = 1.5
#: MS-SSIM scale weights (Wang, Simoncelli, Bovik 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: Normalisations accepted by :func:`mu_psnr` and :func:`log_psnr`.
NORMALIZATIONS = ("none", "reference-max")


def _as_f64(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64)


def _check_data_range(data_range: object) -> float:
    return check_positive_number(data_range, "data_range")


def psnr(x: torch.Tensor, y: torch.Tensor, *, data_range: float) -> torch.Tensor:
    """Peak signal-to-noise ratio per image: 10 log10(data_range^2 / MSE), MSE over all channels and pixels.

    Args:
        x: test images (N, C, H, W), any float dtype, in [0, data_range] for display-referred images.
        y: reference images, same shape.
        data_range: the peak value (1.0 for images in [0, 1]); required.

    Returns:
        (N,) float64 PSNR in dB; +inf for identical images.
    """
    check_pair(x, y, channels=None)
    peak = _check_data_range(data_range)
    mse = (_as_f64(x) - _as_f64(y)).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(peak**2 / mse)


def resolve_window(
    height: int,
    width: int,
    *,
    win_size: int = DEFAULT_WIN_SIZE,
    multiscale: bool = False,
    allow_small_window: bool = False,
) -> int:
    """Return the SSIM window size to use for an image of ``height`` x ``width``.

    Args:
        height, width: image size in pixels.
        win_size: requested odd window size.
        multiscale: True for MS-SSIM (needs min side > (win - 1) * 16), False for SSIM (needs min side >= win).
        allow_small_window: when the requested window does not fit, return the largest odd window >= 3 that
            does instead of raising.

    Raises:
        InputError: the window is even or < 3, or the image is too small (and ``allow_small_window`` is False,
            or even a 3 x 3 window does not fit).
    """
    if not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
        raise InputError(f"win_size: expected an odd integer >= 3, got {win_size!r}")
    side = min(height, width)

    def fits(w: int) -> bool:
        return side > (w - 1) * 16 if multiscale else side >= w

    if fits(win_size):
        return win_size
    what = "MS-SSIM (five scales)" if multiscale else "SSIM"
    need = f"min side > {(win_size - 1) * 16}" if multiscale else f"min side >= {win_size}"
    if not allow_small_window:
        raise InputError(
            f"image of {height}x{width} is too small for {what} with a {win_size}x{win_size} window ({need});"
            " use a smaller documented window (command line: --allow-small-window; Python:"
            " allow_small_window=True), or use larger images"
        )
    for w in range(win_size - 2, 2, -2):
        if fits(w):
            return w
    smallest = "min side > 32" if multiscale else "min side >= 3"
    raise InputError(f"image of {height}x{width} is too small for {what} even with a 3x3 window ({smallest})")


def _gauss_window(win_size: int, sigma: float, channels: int, device: torch.device) -> torch.Tensor:
    # Built in float64 here because pytorch_msssim builds its own in float32 and then casts.
    coords = torch.arange(win_size, dtype=torch.float64, device=device) - win_size // 2
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    g = g / g.sum()
    # Layout expected by pytorch_msssim's separable filter: (C, 1, 1, win).
    return g.view(1, 1, 1, win_size).repeat(channels, 1, 1, 1)


def _sigma_for(win: int, win_size: int, win_sigma: float) -> float:
    return win_sigma * win / win_size if win != win_size else win_sigma


def _ssim_setup(x, y, data_range, win_size, win_sigma, allow_small_window, *, multiscale):
    """Checks shared by SSIM and MS-SSIM; returns ``(peak, window size used, Gaussian kernel)``."""
    check_pair(x, y, channels=None)
    peak = _check_data_range(data_range)
    win = resolve_window(x.shape[-2], x.shape[-1], win_size=win_size, multiscale=multiscale,
                         allow_small_window=allow_small_window)
    return peak, win, _gauss_window(win, _sigma_for(win, win_size, win_sigma), x.shape[1], x.device)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float,
    win_size: int = DEFAULT_WIN_SIZE,
    win_sigma: float = DEFAULT_WIN_SIGMA,
    allow_small_window: bool = False,
    return_window: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, int]:
    """Structural similarity (Gaussian-weighted, valid filtering), averaged over pixels then channels.

    Agrees with ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=..., channel_axis=...)``.

    Args:
        x: test images (N, C, H, W), values in [0, data_range].
        y: reference images, same shape.
        data_range: dynamic range of the values (1.0 for [0, 1] images); required.
        win_size: odd Gaussian window size.
        win_sigma: Gaussian standard deviation in pixels.
        allow_small_window: use a smaller window on images smaller than ``win_size`` (see module docstring).
        return_window: also return the window size actually used.

    Returns:
        (N,) float64 SSIM in [-1, 1] (1 for identical images), or ``(values, window)`` with ``return_window``.
    """
    import pytorch_msssim

    peak, win, kernel = _ssim_setup(x, y, data_range, win_size, win_sigma, allow_small_window, multiscale=False)
    val = pytorch_msssim.ssim(_as_f64(x), _as_f64(y), data_range=peak, size_average=False, win=kernel)
    return (val, win) if return_window else val


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float,
    win_size: int = DEFAULT_WIN_SIZE,
    win_sigma: float = DEFAULT_WIN_SIGMA,
    allow_small_window: bool = False,
    return_window: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, int]:
    """Multi-scale SSIM over five scales (Wang, Simoncelli, Bovik 2003) through ``pytorch_msssim``.

    Contrast-structure terms of scales 1-4 and the full SSIM of scale 5, each clamped at 0, raised to
    :data:`MS_SSIM_WEIGHTS` and multiplied; scales are 2x2 average-pooled (pytorch_msssim pads odd sizes with
    zeros, counted in the average). Averaged over channels.

    Args:
        x: test images (N, C, H, W), values in [0, data_range]; min(H, W) > (win_size - 1) * 16.
        y: reference images, same shape.
        data_range: dynamic range of the values; required.
        win_size, win_sigma, allow_small_window, return_window: as in :func:`ssim`.

    Returns:
        (N,) float64 MS-SSIM in [0, 1], or ``(values, window)`` with ``return_window``.
    """
    import pytorch_msssim

    peak, win, kernel = _ssim_setup(x, y, data_range, win_size, win_sigma, allow_small_window, multiscale=True)
    val = pytorch_msssim.ms_ssim(
        _as_f64(x), _as_f64(y), data_range=peak, size_average=False, win=kernel, weights=list(MS_SSIM_WEIGHTS)
    )
    return (val, win) if return_window else val


def _normalise_hdr(x: torch.Tensor, y: torch.Tensor, normalization: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Map linear HDR test/reference to [0, 1] by the named rule (see :func:`mu_psnr`)."""
    check_nonnegative(x, "test")
    check_nonnegative(y, "reference")
    x64, y64 = _as_f64(x), _as_f64(y)
    if normalization == "none":
        for name, t in (("test", x64), ("reference", y64)):
            if float(t.detach().max()) > 1.0:
                raise InputError(
                    f"{name}: values up to {float(t.detach().max()):.4g} exceed 1 but normalization='none' expects"
                    " HDR already normalised to [0, 1]; use normalization='reference-max'"
                )
        return x64, y64
    if normalization == "reference-max":
        peak = y64.detach().flatten(1).amax(1)
        zero = [i for i, p in enumerate(peak.tolist()) if p <= 0]
        if zero:
            raise InputError(f"reference: image index {zero[:5]} is zero everywhere; cannot normalise by its maximum")
        scale = peak.view(-1, 1, 1, 1)
        return (x64 / scale).clamp(0.0, 1.0), y64 / scale
    raise InputError(f"normalization: expected one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")


def mu_law(h: torch.Tensor, mu: float) -> torch.Tensor:
    """mu-law range compression T(h) = log(1 + mu h) / log(1 + mu) for h in [0, 1] (differentiable)."""
    return torch.log1p(mu * h) / math.log1p(mu)


def mu_psnr(x: torch.Tensor, y: torch.Tensor, *, mu: float, normalization: str) -> torch.Tensor:
    """PSNR (peak 1) between mu-law compressed, normalised linear HDR images.

    Args:
        x: test HDR (N, C, H, W), linear, >= 0 (relative units).
        y: reference HDR, same shape.
        mu: compression parameter (5000 in the HDR-deghosting literature; 100 in the paper's training loss).
        normalization: ``"reference-max"`` divides both images by the reference's per-image maximum (over all
            channels), then clips the test to [0, 1]; ``"none"`` requires both already in [0, 1].

    Returns:
        (N,) float64 mu-PSNR in dB.
    """
    check_pair(x, y, channels=None)
    m = check_positive_number(mu, "mu")
    xn, yn = _normalise_hdr(x, y, normalization)
    return psnr(mu_law(xn, m), mu_law(yn, m), data_range=1.0)


def log_psnr(x: torch.Tensor, y: torch.Tensor, *, eps: float, normalization: str) -> torch.Tensor:
    """PSNR between log10 values of normalised linear HDR images.

    Values are normalised as in :func:`mu_psnr`, clamped to [eps, 1], and log10'd; the peak is the width of
    that log range, -log10(eps) (so eps = 1e-4 gives a 4-decade range and peak 4).

    Args:
        x: test HDR (N, C, H, W), linear, >= 0.
        y: reference HDR, same shape.
        eps: the smallest normalised value kept (0 < eps < 1).
        normalization: ``"reference-max"`` or ``"none"`` (see :func:`mu_psnr`).

    Returns:
        (N,) float64 log-PSNR in dB.
    """
    check_pair(x, y, channels=None)
    e = check_positive_number(eps, "eps")
    if e >= 1:
        raise InputError(f"eps: expected 0 < eps < 1, got {eps!r}")
    xn, yn = _normalise_hdr(x, y, normalization)
    lx, ly = torch.log10(xn.clamp(e, 1.0)), torch.log10(yn.clamp(e, 1.0))
    return psnr(lx - math.log10(e), ly - math.log10(e), data_range=-math.log10(e))


#: Parameters of the secondary HDR metrics, recorded on their cards.
MU_PSNR_MU = 5000.0
LOG_PSNR_EPS = 1e-5

#: The cards of this module's metrics (registered by :mod:`hdrbench.metrics.registry`).
CARDS = (
    MetricCard(
        name="psnr", higher_is_better=True, input_domain="ldr-display", version="1",
        reference_implementation="skimage.metrics.peak_signal_noise_ratio (identical)", differentiable=True,
        description="PSNR in dB, data_range=1, MSE over all channels and pixels",
        compute=lambda t, r, ctx: psnr(t, r, data_range=1.0),
    ),
    MetricCard(
        name="ssim", higher_is_better=True, input_domain="ldr-display", version="1",
        reference_implementation="skimage structural_similarity(gaussian_weights, sigma=1.5), within 1e-4",
        differentiable=True,
        description="SSIM via pytorch_msssim, data_range=1, Gaussian 11x11 window, sigma 1.5, mean over channels",
        compute=windowed("ssim", lambda t, r, **kw: ssim(t, r, data_range=1.0, **kw)),
    ),
    MetricCard(
        name="ms-ssim", higher_is_better=True, input_domain="ldr-display", version="1",
        reference_implementation="pytorch_msssim 1.0; independent numpy 5-scale implementation", differentiable=True,
        description="MS-SSIM (5 scales, Wang 2003 weights) via pytorch_msssim, data_range=1, window 11, min side > 160",
        compute=windowed("ms-ssim", lambda t, r, **kw: ms_ssim(t, r, data_range=1.0, **kw)),
    ),
    MetricCard(
        name="mu-psnr", higher_is_better=True, input_domain="linear-relative", version="1",
        reference_implementation="mu-law formula (Kalantari & Ramamoorthi 2017) in numpy", differentiable=True,
        description=f"PSNR (peak 1) after mu-law, mu={MU_PSNR_MU:g}; both divided by the reference max, test clipped"
        " to [0, 1]",
        compute=lambda t, r, ctx: mu_psnr(t, r, mu=MU_PSNR_MU, normalization="reference-max"),
    ),
    MetricCard(
        name="log-psnr", higher_is_better=True, input_domain="linear-relative", version="1",
        reference_implementation="formula in numpy", differentiable=True,
        description=f"PSNR of log10 values: both divided by the reference max, clamped to [{LOG_PSNR_EPS:g}, 1], peak"
        f" {-math.log10(LOG_PSNR_EPS):g}",
        compute=lambda t, r, ctx: log_psnr(t, r, eps=LOG_PSNR_EPS, normalization="reference-max"),
    ),
)

"""Input checks shared by every layer: one place that turns malformed tensors into clear errors.

Every check raises :class:`hdrbench.errors.InputError` with a message naming the argument (``test``,
``reference``, ``ldr``, ``stack`` ...), the offending shape or value range and, for batches, the image index, so
that a failure deep inside an evaluation or a training run points at the input to fix. The imaging, metric,
loss and model functions call these at their API boundaries; layer-specific rules (a stack's exposure count, a
metric's colour encoding) stay with their functions and run after these.
"""

from __future__ import annotations

import torch

from hdrbench.errors import InputError

#: Slack on [0, 1] range checks: 8-bit images divided by 255 and resampled inputs may overshoot by rounding.
RANGE_SLACK = 1e-4


def check_image(
    x: object, name: str, *, channels: tuple[int, ...] | None = (1, 3), unbatched: bool = False
) -> torch.Tensor:
    """Check that ``x`` is a finite floating (N, C, H, W) tensor with an allowed channel count.

    Args:
        x: the value to check.
        name: argument name used in error messages.
        channels: allowed values of C, or None for any.
        unbatched: also accept a single (C, H, W) image.

    Returns:
        ``x`` unchanged.

    Raises:
        InputError: not a tensor, not 4-D (or 3-D with ``unbatched``), an empty dimension, a disallowed channel
            count, or NaN/Inf values.
    """
    c = str(channels[0]) if channels is not None and len(channels) == 1 else "C"
    layout = f"(N, {c}, H, W) or ({c}, H, W)" if unbatched else f"(N, {c}, H, W)"
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.ndim != 4 and not (unbatched and x.ndim == 3):
        raise InputError(f"{name}: expected shape {layout}, got {tuple(x.shape)} ({x.ndim}-D)")
    if min(x.shape) == 0:
        raise InputError(f"{name}: empty tensor of shape {tuple(x.shape)}")
    if channels is not None and x.shape[-3] not in channels:
        allowed = " or ".join(str(k) for k in channels)
        raise InputError(
            f"{name}: expected shape {layout} with {allowed} channels, got shape {tuple(x.shape)}"
            " (is the tensor channels-last?)"
        )
    if not x.is_floating_point():
        raise InputError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    check_finite(x if x.ndim == 4 else x[None], name)
    return x


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise when a batch (N, ...) holds NaN or Inf values, naming how many and in which images.

    Raises:
        InputError: naming the count and the first image indices.
    """
    finite = torch.isfinite(x.detach())
    if not bool(finite.all()):
        bad = (~finite).flatten(1).sum(1)
        idx = [i for i, n in enumerate(bad.tolist()) if n]
        raise InputError(
            f"{name}: contains NaN or Inf values ({int(bad.sum())} values; image index {idx[:5]} of batch {x.shape[0]})"
        )


def check_range(x: torch.Tensor, name: str, lo: float = 0.0, hi: float = 1.0, *, slack: float = RANGE_SLACK) -> None:
    """Raise when ``x`` holds NaN/Inf or values outside [lo - slack, hi + slack] (one pass over the data).

    Args:
        x: a floating tensor of any shape (images, stacks, LDR batches).
        name: argument name used in error messages.
        lo, hi: the allowed range ([0, 1] for display-encoded images and stacks).
        slack: tolerated overshoot (rounding of 8-bit codes divided by 255, resampling).

    Raises:
        InputError: NaN/Inf values, or values outside the range, naming the minimum and maximum found.
    """
    with torch.no_grad():
        # NaN propagates into the extrema and Inf lands outside the range, so one pass checks both.
        lo_t, hi_t = torch.aminmax(x.detach())
        x_lo, x_hi = float(lo_t), float(hi_t)
    if x_lo != x_lo or x_hi != x_hi or abs(x_lo) == float("inf") or abs(x_hi) == float("inf"):
        raise InputError(f"{name} contains NaN or Inf values")
    if x_lo < lo - slack or x_hi > hi + slack:
        raise InputError(f"{name} must lie in [{lo:g}, {hi:g}]; got min {x_lo:.4g}, max {x_hi:.4g}")


def check_ldr(ldr: object, name: str = "ldr", *, slack: float = RANGE_SLACK) -> torch.Tensor:
    """Check an LDR batch at an API boundary: a finite floating (N, 3, H, W) RGB tensor in [0, 1].

    Args:
        ldr: the value to check (display-encoded RGB).
        name: argument name used in error messages.
        slack: tolerated overshoot of the [0, 1] range (see :data:`RANGE_SLACK`).

    Returns:
        ``ldr`` unchanged.

    Raises:
        InputError: wrong type, layout, dtype, an empty dimension, NaN/Inf or values outside [0, 1].
    """
    check_image(ldr, name, channels=(3,))
    check_range(ldr, name, 0.0, 1.0, slack=slack)
    return ldr


def check_pair(
    test: object, reference: object, *, channels: tuple[int, ...] | None = (1, 3)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a test/reference pair: both valid images (see :func:`check_image`) of identical shape.

    Raises:
        InputError: either image is malformed, or their shapes differ.
    """
    check_image(test, "test", channels=channels)
    check_image(reference, "reference", channels=channels)
    if test.shape != reference.shape:
        raise InputError(
            f"test and reference differ in shape: test {tuple(test.shape)} vs reference {tuple(reference.shape)}"
        )
    return test, reference


def check_nonnegative(x: torch.Tensor, name: str) -> None:
    """Raise when an HDR image holds negative values (radiance and luminance cannot be negative).

    Raises:
        InputError: naming the image index and the smallest value.
    """
    mins = x.detach().flatten(1).amin(1)
    neg = [i for i, m in enumerate(mins.tolist()) if m < 0]
    if neg:
        raise InputError(
            f"{name}: negative values in image index {neg[:5]} (minimum {float(mins.min()):.4g}); linear HDR must be"
            " >= 0 (clamp the method output explicitly if that is intended)"
        )


def check_not_all_zero(x: torch.Tensor, name: str) -> None:
    """Raise when an image of the batch is zero everywhere (no luminance to scale or compare).

    Raises:
        InputError: naming the image index.
    """
    peaks = x.detach().abs().flatten(1).amax(1)
    zero = [i for i, m in enumerate(peaks.tolist()) if m == 0]
    if zero:
        raise InputError(f"{name}: image index {zero[:5]} is zero everywhere (all-zero luminance)")


def check_positive_number(value: object, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite number > 0.

    Raises:
        InputError: ``value`` is missing, not a number, not finite or not positive.
    """
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a positive number, got {value!r}") from None
    if not (v > 0 and v != float("inf")):
        raise InputError(f"{name}: expected a finite number > 0, got {value!r}")
    return v

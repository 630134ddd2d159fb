"""Input validation shared by the metrics and protocols: one place that turns malformed tensors into clear errors.

Every check raises :class:`hdrbench.errors.InputError` with a message naming the argument (``test``,
``reference`` ...), the offending shape or value range and, for batches, the image index, so that a failure
deep inside an evaluation points at the file to fix.
"""

from __future__ import annotations

import torch

from hdrbench.errors import InputError


def check_image(x: object, name: str, *, channels: tuple[int, ...] | None = (1, 3)) -> torch.Tensor:
    """Check that ``x`` is a finite floating (N, C, H, W) tensor with an allowed channel count.

    Args:
        x: the value to check.
        name: argument name used in error messages.
        channels: allowed values of C, or None for any.

    Returns:
        ``x`` unchanged.

    Raises:
        InputError: not a tensor, not 4-D, an empty dimension, a disallowed channel count, or NaN/Inf values.
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise InputError(f"{name}: expected shape (N, C, H, W), got {tuple(x.shape)} ({x.ndim}-D)")
    if min(x.shape) == 0:
        raise InputError(f"{name}: empty tensor of shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] not in channels:
        allowed = " or ".join(str(c) for c in channels)
        raise InputError(
            f"{name}: expected {allowed} channels in dimension 1 of (N, C, H, W), got shape {tuple(x.shape)}"
            " (is the tensor channels-last?)"
        )
    if not x.is_floating_point():
        raise InputError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = (~finite).flatten(1).sum(1)
        idx = [i for i, n in enumerate(bad.tolist()) if n]
        raise InputError(
            f"{name}: contains NaN or Inf values ({int(bad.sum())} values; image index {idx[:5]} of batch {x.shape[0]})"
        )
    return x


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

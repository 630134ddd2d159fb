"""The shared input checks (hdrbench.checks): each failure names the argument and what is wrong with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrbench.checks import RANGE_SLACK, check_finite, check_image, check_ldr, check_range
from hdrbench.errors import InputError


def test_check_image_accepts_a_single_image_only_when_asked():
    img = torch.rand(3, 4, 5)
    assert check_image(img, "hdr", channels=(3,), unbatched=True) is img
    with pytest.raises(InputError, match=r"hdr: expected shape \(N, 3, H, W\), got \(3, 4, 5\)"):
        check_image(img, "hdr", channels=(3,))
    with pytest.raises(InputError, match=r"hdr: expected a torch.Tensor of shape \(N, 3, H, W\) or \(3, H, W\)"):
        check_image(np.zeros((3, 4, 5)), "hdr", channels=(3,), unbatched=True)
    with pytest.raises(InputError, match=r"hdr: expected shape .* with 3 channels, got shape \(4, 4, 5\)"):
        check_image(torch.rand(4, 4, 5), "hdr", channels=(3,), unbatched=True)


def test_check_finite_names_the_images_with_nan_or_inf():
    x = torch.zeros(3, 1, 2, 2)
    x[2, 0, 1, 1] = float("inf")
    with pytest.raises(InputError, match=r"stack: contains NaN or Inf values \(1 values; image index \[2\] of batch 3"):
        check_finite(x, "stack")
    check_finite(torch.zeros(3, 1, 2, 2), "stack")


def test_check_range_allows_the_slack_and_no_more():
    x = torch.full((1, 3, 2, 2), 0.5)
    x[0, 0, 0, 0] = 1 + RANGE_SLACK / 2  # rounding overshoot within the slack: accepted
    check_range(x, "ldr")
    x[0, 0, 0, 0] = 1 + 2 * RANGE_SLACK
    with pytest.raises(InputError, match=r"ldr must lie in \[0, 1\]; got min 0.5, max 1"):
        check_range(x, "ldr")
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="ldr contains NaN or Inf"):
        check_range(x, "ldr")


def test_check_ldr_checks_layout_then_range():
    with pytest.raises(InputError, match=r"ldr: expected shape \(N, 3, H, W\) with 3 channels"):
        check_ldr(torch.rand(1, 1, 4, 4))
    with pytest.raises(InputError, match=r"ldr: expected a floating-point tensor"):
        check_ldr(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(InputError, match=r"image must lie in \[0, 1\]"):
        check_ldr(torch.full((1, 3, 4, 4), 2.0), "image")
    ok = torch.rand(2, 3, 4, 4)
    assert check_ldr(ok) is ok

"""Image and HDR metrics: stack metrics, PU21, HDR-VDP-2 (``hdrbench.metrics.hdrvdp2``), scaling protocols, cards.

The names below are the public surface; see docs/architecture.md for the contracts and docs/metrics.md for
the metric cards and protocols. ``hdrbench.metrics.hdrvdp2`` is imported on first use (it is the heavy one).
"""

from hdrbench.metrics.protocols import Protocol, get_protocol, list_protocols
from hdrbench.metrics.pu21 import pu21_decode, pu21_encode, pu21_msssim, pu21_psnr, pu21_ssim
from hdrbench.metrics.registry import (
    MetricCard,
    compute_hdr_metrics,
    compute_ldr_metrics,
    get_metric,
    list_metrics,
)
from hdrbench.metrics.stack import log_psnr, ms_ssim, mu_psnr, psnr, ssim

__all__ = [
    "MetricCard",
    "Protocol",
    "compute_hdr_metrics",
    "compute_ldr_metrics",
    "get_metric",
    "get_protocol",
    "list_metrics",
    "list_protocols",
    "log_psnr",
    "ms_ssim",
    "mu_psnr",
    "psnr",
    "pu21_decode",
    "pu21_encode",
    "pu21_msssim",
    "pu21_psnr",
    "pu21_ssim",
    "ssim",
]

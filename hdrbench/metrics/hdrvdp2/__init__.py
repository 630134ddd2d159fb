"""HDR-VDP 2.2.2 in PyTorch: ``hdrvdp2(test, reference, *, color_encoding, ppd)`` and ``pix_per_deg``.

A clean-room port of the visual difference predictor of Mantiuk et al. (SIGGRAPH 2011) with the quality
pooling of version 2.2 (Narwaria et al., J. Electronic Imaging 2015), validated against scores of the
original code (version 2.2.2). Inputs are absolute luminance (cd/m^2); scaling relative HDR images to
cd/m^2 is the job of a protocol (``hdrbench.metrics.protocols``), never of this function.
"""

from .constants import VERSION
from .geometry import pix_per_deg
from .metric import COLOR_ENCODINGS, HDRVDP2Result, UnknownColorEncodingError, hdrvdp2

__all__ = ["hdrvdp2", "HDRVDP2Result", "pix_per_deg", "COLOR_ENCODINGS", "UnknownColorEncodingError", "VERSION"]

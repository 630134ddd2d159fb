"""Luma and luminance weights of linear or display-encoded RGB: the one place they are written down.

* :data:`REC709_LUMA`: ITU-R BT.709 (= sRGB primaries, D65) luminance of linear RGB, four decimals as the
  standard prints them; used by the camera model, the tone mapping, the synthetic scenes and the HDRCNN loss.
* :data:`REC709_LUMA_6`: the same weights to six decimals, the Y row of the sRGB-to-XYZ matrix as HDR-VDP and
  the PU21 metrics use it (the metrics keep these digits: their numbers depend on them).
* :data:`BT601_LUMA`: ITU-R BT.601 luma, what OpenCV's ``COLOR_RGB2GRAY`` computes (its Reinhard operator and
  the official training code's Canny edges use it).
"""

from __future__ import annotations

#: Rec. 709 luminance weights of linear R, G, B.
REC709_LUMA = (0.2126, 0.7152, 0.0722)
#: Rec. 709 luminance weights of linear R, G, B to six decimals (HDR-VDP, PU21).
REC709_LUMA_6 = (0.212656, 0.715158, 0.072186)
#: BT.601 luma weights of R, G, B (OpenCV's ``COLOR_RGB2GRAY``).
BT601_LUMA = (0.299, 0.587, 0.114)

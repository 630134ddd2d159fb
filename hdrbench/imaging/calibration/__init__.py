"""Radiometric calibration: recover inverse camera response functions from exposure stacks.

* :func:`debevec_inverse_crf`: Debevec-Malik non-parametric tables (HDR Toolbox conventions).
* :func:`mitsunaga_nayar_inverse_crf`: Mitsunaga-Nayar polynomials with exposure-ratio refinement.

Both take ``(N, E, C, H, W)`` stacks in [0, 1] and exposure times ``(E,)`` or ``(N, E)``, are batched
over scenes and channels, and return detached results on the input's device.
"""

from hdrbench.imaging.calibration.debevec import debevec_inverse_crf, gsolve
from hdrbench.imaging.calibration.mitsunaga_nayar import PolynomialCRF, mitsunaga_nayar_inverse_crf, polyval

__all__ = ["PolynomialCRF", "debevec_inverse_crf", "gsolve", "mitsunaga_nayar_inverse_crf", "polyval"]

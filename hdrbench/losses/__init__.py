"""Training losses of the proposed method (see docs/architecture.md).

* :func:`l1_loss`: mean absolute error;
* :func:`histogram_loss` / :func:`extract_histogram`: the value-weighted histogram loss (Appendix D);
* :func:`edge_l1_loss`: the edge loss of the local network (targets: `hdrbench.imaging.edges.canny_edges`);
* :class:`CoBiLoss` / :func:`contextual_bilateral_loss`: contextual bilateral loss (VGG19 or RGB patches);
* :func:`mu_law` / :func:`mu_law_l1_loss`: the HDR loss on the synthesis layer's output.
"""

from hdrbench.losses.cobi import CoBiLoss, contextual_bilateral_loss, rgb_patches
from hdrbench.losses.edge import edge_l1_loss
from hdrbench.losses.histogram import extract_histogram, histogram_loss
from hdrbench.losses.pixel import l1_loss, mu_law, mu_law_l1_loss

__all__ = [
    "CoBiLoss", "contextual_bilateral_loss", "edge_l1_loss", "extract_histogram", "histogram_loss",
    "l1_loss", "mu_law", "mu_law_l1_loss", "rgb_patches",
]

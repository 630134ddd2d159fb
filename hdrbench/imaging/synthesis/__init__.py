"""Differentiable HDR synthesis layer: linearisation, weights, merges (see ``merge`` for the recipe)."""

from hdrbench.imaging.synthesis.linearize import (
    PiecewiseLinear,
    PolynomialLinearize,
    linearize_polynomial,
    lookup_table,
    slope_table,
)
from hdrbench.imaging.synthesis.merge import (
    INVERSE_CRFS,
    MERGES,
    OFFICIAL_LAYER,
    HDRSynthesisLayer,
    MergeResult,
    merge_stack,
)
from hdrbench.imaging.synthesis.weights import WEIGHTS, weight_function

__all__ = [
    "HDRSynthesisLayer",
    "INVERSE_CRFS",
    "MERGES",
    "MergeResult",
    "OFFICIAL_LAYER",
    "PiecewiseLinear",
    "PolynomialLinearize",
    "WEIGHTS",
    "linearize_polynomial",
    "lookup_table",
    "merge_stack",
    "slope_table",
    "weight_function",
]

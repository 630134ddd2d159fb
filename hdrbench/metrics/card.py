"""The metric card: what a harness needs to know about one metric, defined beside the metric it describes.

A :class:`MetricCard` holds, without branching on the metric's name, the direction, the input domain, the
version that goes into every result row, the reference implementation it is checked against, whether it is
differentiable, a one-line description and the compute function. Each metric module builds its cards (with
keyword arguments) next to its functions; :mod:`hdrbench.metrics.registry` registers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

INPUT_DOMAINS = ("ldr-display", "linear-relative", "absolute-cd/m2")


@dataclass
class MetricContext:
    """Per-call settings and caches shared by the metric functions of one ``compute_hdr_metrics`` call."""

    ppd: Callable[[], float]
    color_encoding: str
    allow_small_window: bool
    windows: dict[str, int] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricCard:
    """What a harness needs to know about one metric.

    Attributes:
        name: registry name (used in result rows and on the command line).
        higher_is_better: direction of the score.
        input_domain: one of :data:`INPUT_DOMAINS`.
        version: changes whenever the numbers change; recorded in every result row.
        reference_implementation: what the implementation is checked against.
        differentiable: whether gradients flow to the test image.
        description: one line: what is computed, with its parameters and units.
        compute: ``fn(test, reference, ctx) -> (N,) float64`` on inputs of the card's domain (internal).
    """

    name: str
    higher_is_better: bool
    input_domain: str
    version: str
    reference_implementation: str
    differentiable: bool
    description: str
    compute: Callable[[torch.Tensor, torch.Tensor, MetricContext], torch.Tensor] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.input_domain not in INPUT_DOMAINS:
            raise ValueError(f"metric card {self.name!r}: input_domain must be one of {INPUT_DOMAINS}")


def windowed(name: str, fn: Callable[..., Any]) -> Callable[[torch.Tensor, torch.Tensor, MetricContext], torch.Tensor]:
    """A card's compute function for a windowed (SSIM-family) metric: records the window it used in the context."""

    def run(t: torch.Tensor, r: torch.Tensor, ctx: MetricContext) -> torch.Tensor:
        val, win = fn(t, r, allow_small_window=ctx.allow_small_window, return_window=True)
        ctx.windows[name] = win
        return val

    return run

"""The proposed recurrent model (Kim, Lee & Kang, AAAI 2021) and its registered arch variants.

Registered builders (``hdrbench.models.build_arch(name, **kwargs)``):

* ``proposed``: the full model; keyword arguments are those of :class:`ProposedModel` (``width``,
  ``recurrent``, ``cin``, ``decomposition``, ...). ``width=1.0`` is the paper scale.
* ``proposed-cpu``: width 0.25 (global 8, local 4, refinement 4 base channels), trains on a CPU.
* ``proposed-tiny``: global 4, local 2, refinement 2 base channels, for tests.

Every builder takes ``weights=PATH``: official DiffHDRsyn checkpoints (a folder of ``<step>-gu.ckpt`` ...
``<step>-cbd.ckpt`` or a prefix ``DIR/<step>``, see :mod:`~hdrbench.models.proposed.official`), loaded after
construction; the model's widths must then be the official ones (``width=1.0``).
"""

from __future__ import annotations

from hdrbench.models.proposed.blocks import (
    ConditionalInstanceNorm2d,
    ConvBlock,
    ConvGRUCell,
    DoubleBlock,
    RecurrentUnit,
    Swish,
)
from hdrbench.models.proposed.global_net import GlobalNet
from hdrbench.models.proposed.local_net import LocalNet
from hdrbench.models.proposed.model import GeneratedStack, ProposedModel, RecurrentDirection, StepOutput
from hdrbench.models.proposed.refine_net import RefineNet
from hdrbench.models.registry import ARCHS

__all__ = [
    "ConditionalInstanceNorm2d", "ConvBlock", "ConvGRUCell", "DoubleBlock", "GeneratedStack", "GlobalNet", "LocalNet",
    "ProposedModel", "RecurrentDirection", "RecurrentUnit", "RefineNet", "StepOutput", "Swish",
]


def _build(weights: str | None, kwargs: dict) -> ProposedModel:
    model = ProposedModel(**kwargs)
    if weights:
        from hdrbench.models.proposed.official import load_official_weights

        load_official_weights(model, weights)
    return model


def proposed(weights: str | None = None, **kwargs) -> ProposedModel:
    """The proposed model; ``width=1.0`` (default) is the paper's configuration."""
    return _build(weights, kwargs)


def proposed_cpu(weights: str | None = None, **kwargs) -> ProposedModel:
    """A quarter-width model (about 1/16 of the parameters) that trains on a CPU."""
    kwargs.setdefault("width", 0.25)
    return _build(weights, kwargs)


def proposed_tiny(weights: str | None = None, **kwargs) -> ProposedModel:
    """The smallest model (global 4, local 2, refinement 2 base channels) for tests."""
    kwargs.setdefault("width", 0.125)
    return _build(weights, kwargs)


ARCHS.register("proposed", proposed)
ARCHS.register("proposed-cpu", proposed_cpu)
ARCHS.register("proposed-tiny", proposed_tiny)

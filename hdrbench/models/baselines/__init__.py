"""Baseline networks reimplemented under the hdrbench harness.

Importing this package registers every baseline arch in :data:`hdrbench.models.registry.ARCHS`:
``expandnet``, ``deep-recursive-hdri``, ``hdrcnn``, ``singlehdr``, ``drtmo`` and ``deep-chain-hdri``.
Each module opens with its provenance: paper, official repository, licence, what is inferred, deviations.
"""

from hdrbench.models.baselines import (  # noqa: F401  (imported for their registrations)
    deep_chain_hdri,
    deep_recursive_hdri,
    drtmo,
    expandnet,
    hdrcnn,
    singlehdr,
)

__all__ = ["deep_chain_hdri", "deep_recursive_hdri", "drtmo", "expandnet", "hdrcnn", "singlehdr"]

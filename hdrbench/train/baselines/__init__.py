"""The baselines' training tasks: one module per method, beside their shared losses and training targets.

Importing this package registers every baseline task in :data:`hdrbench.train.task.TASKS` (explicit imports,
nothing scans file names). Each task subclasses :class:`~hdrbench.train.baselines.base.BaselineTask` and
trains on the trainer's batch contract (``stack`` (B, E, 3, H, W) in [0, 1], ``evs``, ``hdr`` (B, 3, H, W)
linear relative). Stack methods learn from pairs of ground-truth frames; direct methods learn the
ground-truth HDR in their own normalisation (see :mod:`hdrbench.train.baselines.targets`).
"""

from hdrbench.train.baselines import (  # noqa: F401  (imported for their registrations)
    deep_chain_hdri,
    deep_recursive_hdri,
    drtmo,
    expandnet,
    hdrcnn,
    singlehdr,
)

__all__ = ["deep_chain_hdri", "deep_recursive_hdri", "drtmo", "expandnet", "hdrcnn", "singlehdr"]

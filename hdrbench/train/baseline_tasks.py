"""Importing this module registers the baselines' training tasks (kept as the name the trainer imports).

The tasks live one module per method in :mod:`hdrbench.train.baselines`, beside their losses and targets.
"""

from hdrbench.train import baselines  # noqa: F401  (imported for its registrations)

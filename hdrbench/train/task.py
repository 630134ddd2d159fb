"""The training-task interface: how one recipe's networks are built and trained for one iteration.

The trainer (``hdrbench.train.trainer``) owns everything generic: devices, DDP, AMP, data order,
checkpoints, resume, logging and NaN guards. A task owns what is specific to a method: its networks,
its optimisers and the body of one iteration (the proposed method's teacher-forced and recursive
passes, a GAN's alternating updates, ...).

Batch contract (what the trainer hands to :meth:`TrainTask.train_step`), all tensors on the device:

* ``stack``: (B, E, 3, H, W) float in [0, 1], the ground-truth exposure stack;
* ``evs``: (E,) float, the stack's EVs (relative, EV0 = input);
* ``hdr``: (B, 3, H, W) float, linear relative ground-truth HDR (may be absent for some datasets);
* ``scene``: list of B scene names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn as nn

from hdrbench.registry import Registry


class TrainTask(ABC):
    """One method's training logic.

    Args:
        recipe: the resolved recipe (a plain dict: the TOML with the chosen preset merged in).
        device: device the networks live on.
    """

    def __init__(self, recipe: dict[str, Any], device: torch.device) -> None:
        self.recipe = recipe
        self.device = device

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every trainable network by name (checkpointed, wrapped in DDP by the trainer)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by name (checkpointed)."""

    @abstractmethod
    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        """Run one training iteration (forward, backward, optimiser steps); return scalar losses."""

    @abstractmethod
    def inference_model(self) -> nn.Module:
        """The model used for evaluation: has ``kind`` and ``predict_stack`` and/or ``predict_hdr``."""

    def schedulers(self) -> dict[str, Any]:
        """Learning-rate schedulers by name (checkpointed); none by default."""
        return {}

    def prepare_training(self) -> None:
        """Called by the trainer once the task is set up, before the first iteration: raise here when the
        recipe cannot train as asked (a missing weights file a loss needs...). Nothing by default."""

    def describe(self) -> dict[str, Any]:
        """What the task runs beyond the recipe's keys (resolved variants), JSON-serialisable; recorded in the
        run's ``recipe.json``, its checkpoint and the evaluation records' configuration. Empty by default."""
        return {}


#: Training tasks by name; a recipe's ``task`` key selects one.
TASKS: Registry[type[TrainTask]] = Registry("training task")

"""A toy trained method, written as a new method is: one module (this file: network + training task) and one
recipe (``tests/methods/toy-gain.toml``).

``toy-gain`` is a direct method: HDR = x^2.2 * exp(g(x)), where x is the LDR input and g a two-layer
convolutional network predicting a per-pixel log gain. It trains on the log-domain L1 against
the ground-truth HDR scaled to agree with x^2.2 on well-exposed pixels.

Importing this module registers the arch and the task (``baselines_support`` imports it), so the
registry-driven tests (``test_baselines_end_to_end``, ``test_trained_methods``) cover it without naming it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from hdrbench.checks import check_ldr
from hdrbench.models.registry import ARCHS
from hdrbench.train.baselines import targets as T
from hdrbench.train.baselines.base import BaselineTask
from hdrbench.train.task import TASKS

NAME = "toy-gain"
#: Display gamma the network's linearisation assumes.
GAMMA = 2.2


class ToyGain(nn.Module):
    """HDR = x^2.2 * exp(g(x)); ``g``: conv 3x3 (3 -> width), ReLU, conv 3x3 (width -> 3).

    Parameters: 3 * 9 * width + width + width * 9 * 3 + 3 = 55 * width + 3 (883 at width 16).

    Args:
        width: hidden channels.
    """

    kind = "direct"

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, ldr: torch.Tensor) -> torch.Tensor:
        """Log HDR (N, 3, H, W) from an LDR batch (N, 3, H, W) in [0, 1]."""
        return GAMMA * torch.log(ldr.clamp_min(1 / 255)) + self.net(ldr)

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        """Relative linear HDR (N, 3, H, W), positive, from an LDR batch (N, 3, H, W) in [0, 1]."""
        check_ldr(ldr)
        return torch.exp(self(ldr))


@TASKS.register(NAME)
class ToyGainTask(BaselineTask):
    """Log-domain L1 against the HDR aligned to x^2.2 on well-exposed pixels."""

    LOSS_DEFAULTS = {"l1_weight": 1.0}
    LR = 1e-3
    NETWORK = "gain"

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        stack = T.batch_stack(batch).to(self.device)
        ldr = stack[:, T.ev_index(batch["evs"], 0.0)]
        target = T.align_to_ldr(T.batch_hdr(batch, "toy-gain").to(self.device), ldr**GAMMA, ldr)
        loss = self.loss_cfg["l1_weight"] * (self.model(ldr) - torch.log(target.clamp_min(1e-6))).abs().mean()
        self.step(loss, self.NETWORK)
        return {"loss": loss.item()}


ARCHS.register(NAME, ToyGain)

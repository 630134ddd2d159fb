"""Training task ``drtmo``: L1 on each generated exposure whose EV is in the batch's stack.

Only whole stops are supervised: the half-stop frames have no ground truth in a 1-EV stack and learn only
through the shared layers (inferred). The up- and down-exposure models train side by side.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from hdrbench.errors import InputError
from hdrbench.models.baselines.drtmo import EV_STEP, FRAMES
from hdrbench.train.baselines import targets as T
from hdrbench.train.baselines.base import BaselineTask
from hdrbench.train.task import TASKS


@TASKS.register("drtmo")
class DrTMOTask(BaselineTask):
    """L1 on each generated exposure with a ground-truth frame (up and down models trained side by side)."""

    LOSS_DEFAULTS = {"l1_weight": 1.0}
    LR = 2e-4

    def modules(self) -> dict[str, nn.Module]:
        return {"up": self.model.up, "down": self.model.down}

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        stack = T.batch_stack(batch).to(self.device)
        if stack.shape[0] < 2:
            raise InputError("DrTMO's encoder has BatchNorm at 1x1 resolution and needs schedule.batch_size >= 2")
        evs = [float(e) for e in torch.as_tensor(batch["evs"]).reshape(-1).tolist()]
        size = self.model.size
        x = T.resize(stack[:, T.ev_index(evs, 0.0)], size)
        out = {}
        for sign, name in ((1, "up"), (-1, "down")):
            frames = None
            losses = []
            for i, e in enumerate(evs):
                k = sign * e / EV_STEP  # 1-based frame index in this direction
                if 1 <= k <= FRAMES and k == round(k):
                    if frames is None:
                        frames = getattr(self.model, name)(x)
                    losses.append((frames[:, int(k) - 1] - T.resize(stack[:, i], size)).abs().mean())
            if not losses:
                continue
            loss = self.loss_cfg["l1_weight"] * torch.stack(losses).mean()
            self.step(loss, name)
            out[f"l1_{name}"] = loss.item()
        if not out:
            raise InputError(f"DrTMO needs frames at positive or negative EVs in the batch; evs = {evs}")
        return out

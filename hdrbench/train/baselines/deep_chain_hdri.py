"""Training task ``deep-chain-hdri``: L1 per link, each link fed the ground-truth frame of the previous EV.

Teacher forcing and the L1 loss are inferred (the paper's loss is not available).
"""

from __future__ import annotations

from typing import Any

from hdrbench.errors import InputError
from hdrbench.train.baselines import targets as T
from hdrbench.train.baselines.base import BaselineTask
from hdrbench.train.task import TASKS


@TASKS.register("deep-chain-hdri")
class DeepChainHDRITask(BaselineTask):
    """Teacher-forced L1 per link (inferred: the paper's loss is not available)."""

    LOSS_DEFAULTS = {"l1_weight": 1.0}
    LR = 1e-4
    NETWORK = "chain"

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        stack = T.batch_stack(batch).to(self.device)
        evs = batch["evs"]
        total, out = 0.0, {}
        for sign, links, name in ((1, self.model.up, "up"), (-1, self.model.down, "down")):
            for k, link in enumerate(links, start=1):
                try:
                    src, dst = T.ev_index(evs, sign * (k - 1)), T.ev_index(evs, sign * k)
                except InputError:
                    continue
                loss = (link(stack[:, src]) - stack[:, dst]).abs().mean()
                total = total + self.loss_cfg["l1_weight"] * loss
                out[f"l1_{name}{k}"] = loss.item()
        if not out:
            raise InputError("Deep chain HDRI needs frames at EV 0 and +-1 in the batch")
        self.step(total, self.NETWORK)
        return out

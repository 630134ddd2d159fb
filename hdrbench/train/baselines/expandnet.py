"""Training task ``expandnet``: L1 + 5 * (1 - cosine similarity) against min-max normalised HDR; Adam 7e-5."""

from __future__ import annotations

from typing import Any

from hdrbench.train.baselines import losses as L
from hdrbench.train.baselines import targets as T
from hdrbench.train.baselines.base import BaselineTask
from hdrbench.train.task import TASKS


@TASKS.register("expandnet")
class ExpandNetTask(BaselineTask):
    """L1 + 5 * (1 - cosine similarity) against min-max normalised HDR; Adam 7e-5."""

    LOSS_DEFAULTS = {"cosine_weight": 5.0}
    LR = 7e-5
    NETWORK = "expandnet"

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        stack = T.batch_stack(batch).to(self.device)
        ldr = stack[:, T.ev_index(batch["evs"], 0.0)]
        target = T.minmax_normalise(T.batch_hdr(batch, "ExpandNet").to(self.device))
        loss = L.cosine_l1_loss(self.model(ldr), target, self.loss_cfg["cosine_weight"])
        self.step(loss, self.NETWORK)
        return {"loss": loss.item()}

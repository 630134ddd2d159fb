"""Training task ``hdrcnn``: masked log-domain illumination/reflectance L2 (lambda 0.5) against HDR aligned
to x^2; Adam 5e-5."""

from __future__ import annotations

from typing import Any

from hdrbench.models.baselines._common import pad_to_multiple
from hdrbench.models.baselines.hdrcnn import highlight_mask
from hdrbench.train.baselines import losses as L
from hdrbench.train.baselines import targets as T
from hdrbench.train.baselines.base import BaselineTask
from hdrbench.train.task import TASKS


@TASKS.register("hdrcnn")
class HDRCNNTask(BaselineTask):
    """Masked log-domain illumination/reflectance loss (lambda 0.5) against HDR aligned to x^2."""

    LOSS_DEFAULTS = {"lambda_ir": 0.5, "sigma": 2.0}
    LR = 5e-5
    NETWORK = "hdrcnn"

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        stack = T.batch_stack(batch).to(self.device)
        ldr = stack[:, T.ev_index(batch["evs"], 0.0)]
        target = T.align_to_ldr(T.batch_hdr(batch, "HDRCNN").to(self.device), ldr**2, ldr)
        x, (h, w) = pad_to_multiple(ldr, 32)
        log_pred = self.model(x)[..., :h, :w]
        alpha = highlight_mask(ldr, self.model.tau)
        loss = L.hdrcnn_loss(log_pred, target, alpha, self.loss_cfg["lambda_ir"], self.loss_cfg["sigma"])
        self.step(loss, self.NETWORK)
        return {"loss": loss.item(), "saturated": alpha.mean().item()}

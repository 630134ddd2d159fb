"""Training task ``singlehdr``: stage by stage (dequantisation, linearisation, hallucination), then jointly.

``schedule.deq_iters`` (masked L2 of the dequantised image), ``lin_iters`` (L2 of the linear image + 0.1 *
L2 of the inverse CRF), ``hal_iters`` (log-domain L1 + perceptual + TV), then the rest jointly (gamma-domain
L1 of the refined HDR, learning rate ``optim.lr_joint``). Training pairs are simulated from the ground-truth
HDR each iteration (:func:`hdrbench.train.baselines.targets.simulate_singlehdr`, seeded by the iteration).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.errors import InputError
from hdrbench.models.baselines._common import pad_to_multiple
from hdrbench.models.baselines.hdrcnn import HDRCNN, highlight_mask, load_vgg16_encoder
from hdrbench.models.baselines.singlehdr import HALLUCINATION_THRESHOLD, apply_curve, read_emor_file
from hdrbench.train.baselines import losses as L
from hdrbench.train.baselines import targets as T
from hdrbench.train.baselines.base import BaselineTask
from hdrbench.train.task import TASKS


@TASKS.register("singlehdr")
class SingleHDRTask(BaselineTask):
    """Stage-by-stage training (dequantisation, linearisation, hallucination) then joint fine-tuning."""

    LOSS_DEFAULTS = {"crf_weight": 0.1, "perceptual_weight": 0.0, "tv_weight": 0.0, "vgg_weights": "",
                     "gamma": 2.2, "extreme": 1.0 / 255.0}
    LR = 1e-4
    STAGES = ("deq", "lin", "hal", "joint")

    def setup(self) -> None:
        path = self.model_kwargs.get("basis_path") or None
        self.basis = read_emor_file(path) if path else None
        self.n_coeffs = int(self.model_kwargs.get("n_coeffs", 11))
        self.vgg = None
        if float(self.loss_cfg["perceptual_weight"]) > 0:
            if not self.loss_cfg["vgg_weights"]:
                raise InputError("singlehdr: loss.perceptual_weight > 0 needs loss.vgg_weights (a local VGG16 state "
                                 "dict, torchvision layout); set perceptual_weight = 0 to train without it")
            self.vgg = load_vgg16_encoder(HDRCNN(64), self.loss_cfg["vgg_weights"]).to(self.device).eval()
            self.vgg.requires_grad_(False)

    def modules(self) -> dict[str, nn.Module]:
        m = self.model
        return {"dequantize": m.dequantize, "linearize": m.linearize, "hallucinate": m.hallucinate,
                "refine": m.refine}

    def optimised_networks(self) -> dict[str, nn.Module]:
        m = self.model
        return {"deq": m.dequantize, "lin": m.linearize, "hal": m.hallucinate, "ref": m.refine}

    def stage(self, iteration: int) -> str:
        """The stage that ``iteration`` (0-based) belongs to, from ``schedule.{deq,lin,hal}_iters``."""
        end = 0
        for name in self.STAGES[:3]:
            end += int(self.schedule.get(f"{name}_iters", 0))
            if iteration < end:
                return name
        return "joint"

    def _perceptual(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # VGG16 pool1-pool3 features of gamma-encoded images, L1.
        def feats(x):
            h = x.clamp_min(0) ** (1 / self.loss_cfg["gamma"]) * 255.0 - self.vgg.vgg_mean
            out = []
            for block in self.vgg.encoder[:3]:
                h = F.max_pool2d(block(h), 2)
                out.append(h)
            return out

        return sum((a - b).abs().mean() for a, b in zip(feats(pred), feats(target)))

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        hdr = T.batch_hdr(batch, "SingleHDR").to(self.device)
        gen = torch.Generator().manual_seed(int(iteration))
        sim = T.simulate_singlehdr(hdr, gen, self.basis, self.n_coeffs)
        m, cfg, stage = self.model, self.loss_cfg, self.stage(iteration)
        mult = m.multiple
        pad = lambda t: pad_to_multiple(t, mult)[0]  # noqa: E731
        h, w = hdr.shape[-2:]
        if stage == "deq":
            x = pad(sim["ldr"])
            deq = (x + m.dequantize(x)).clamp(0, 1)[..., :h, :w]
            # Pixels at code 0 or 255 carry no information about the value before quantisation.
            keep = ((sim["ldr"] > cfg["extreme"]) & (sim["ldr"] < 1 - cfg["extreme"])).all(1, keepdim=True)
            loss = L.masked_mse(deq, sim["ldr_float"], keep)
            nets = ["deq"]
        elif stage == "lin":
            curve = m.linearize(sim["ldr_float"])
            lin = apply_curve(sim["ldr_float"], curve)
            loss = F.mse_loss(lin, sim["linear"]) + cfg["crf_weight"] * F.mse_loss(curve, sim["curve"])
            nets = ["lin"]
        elif stage == "hal":
            b = sim["linear"]
            y = m.hallucinate(pad(b))[..., :h, :w]
            alpha = highlight_mask(b, 1.0 - HALLUCINATION_THRESHOLD)
            a = b + alpha * F.relu(y)
            loss = (torch.log(a + 1 / 255) - torch.log(sim["hdr"] + 1 / 255)).abs().mean()
            if cfg["tv_weight"]:
                loss = loss + cfg["tv_weight"] * L.total_variation(torch.log(a + 1 / 255))
            if self.vgg is not None:
                loss = loss + cfg["perceptual_weight"] * self._perceptual(a, sim["hdr"])
            nets = ["hal"]
        else:
            pred = m(pad(sim["ldr"]))[..., :h, :w]
            g = 1.0 / cfg["gamma"]
            loss = (pred.clamp_min(0) ** g - sim["hdr"] ** g).abs().mean()
            nets = ["deq", "lin", "hal", "ref"]
        self.set_lr(float(self.optim_cfg.get("lr_joint", 1e-5)) if stage == "joint" else self.base_lr(), *nets)
        self.step(loss, *nets)
        return {f"{stage}_loss": loss.item()}

"""Training task ``deep-recursive-hdri``: stop-up and stop-down generators with PatchGAN critics.

For each direction, every pair of frames one EV apart (stop-up: EV k -> k+1, stop-down: k -> k-1). Before
``schedule.pretrain_iters``: L1 only. After: the PatchGAN critic steps on 0.5 * LSGAN(real, 0.9) +
0.5 * LSGAN(fake, 0.1), then the generator on L1 + 0.01 * LSGAN(fake, 0.9). Adam 2e-4, betas (0.5, 0.999);
the learning rate halves from ``schedule.lr_decay_iters`` on.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from hdrbench.errors import InputError
from hdrbench.models.baselines._common import pad_to_multiple
from hdrbench.models.baselines.deep_recursive_hdri import MULTIPLE, PatchDiscriminator
from hdrbench.train.baselines import losses as L
from hdrbench.train.baselines import targets as T
from hdrbench.train.baselines.base import BaselineTask
from hdrbench.train.task import TASKS

#: Smallest crop the PatchGAN critic accepts: 64 / 2^4 = 4, then 4 -> 3 -> 2 through its two 4x4 stride-1 layers.
CRITIC_MIN_SIZE = 64


@TASKS.register("deep-recursive-hdri")
class DeepRecursiveHDRITask(BaselineTask):
    """Stop-up and stop-down generators with PatchGAN critics (L1 + 0.01 LSGAN, soft labels, L1 pre-training)."""

    LOSS_DEFAULTS = {"l1_weight": 1.0, "gan_weight": 0.01, "real_label": 0.9, "fake_label": 0.1}
    LR = 2e-4

    def setup(self) -> None:
        width = int(self.model_kwargs.get("width", 64))
        critics = {"up": PatchDiscriminator(width), "down": PatchDiscriminator(width)}
        self.critics = nn.ModuleDict(critics).to(self.device)
        self.gens = {"up": self.model.up, "down": self.model.down}

    def modules(self) -> dict[str, nn.Module]:
        return {"gen_up": self.model.up, "gen_down": self.model.down,
                "disc_up": self.critics["up"], "disc_down": self.critics["down"]}

    @staticmethod
    def pairs(stack: torch.Tensor, evs) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """One-EV-step training pairs per direction: (inputs, targets), each (P, 3, H, W) in [0, 1]."""
        values = [float(e) for e in torch.as_tensor(evs).reshape(-1).tolist()]
        up_src, up_dst = [], []
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if abs(b - a - 1.0) < 1e-6:
                    up_src.append(i)
                    up_dst.append(j)
        if not up_src:
            raise InputError(f"Deep recursive HDRI trains on frames one EV apart; batch evs = {values}")
        x, y = stack[:, up_src].flatten(0, 1), stack[:, up_dst].flatten(0, 1)
        return {"up": (x, y), "down": (y, x)}

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        stack = T.batch_stack(batch).to(self.device)
        decay_at = self.schedule.get("lr_decay_iters")
        self.set_lr(self.base_lr() * (0.5 if decay_at and iteration >= int(decay_at) else 1.0))
        adversarial = iteration >= int(self.schedule.get("pretrain_iters", 0))
        if adversarial and min(stack.shape[-2:]) < CRITIC_MIN_SIZE:
            raise InputError(f"Deep recursive HDRI: the PatchGAN critic needs crops of at least {CRITIC_MIN_SIZE} px "
                             f"(four stride-2 layers, then two 4x4 layers); got {tuple(stack.shape[-2:])}. "
                             "Raise data.crop or train with L1 only (schedule.pretrain_iters >= iters)")
        cfg = self.loss_cfg
        out: dict[str, float] = {}
        for d, (x, y) in self.pairs(stack, batch["evs"]).items():
            xp, (h, w) = pad_to_multiple(x * 2 - 1, MULTIPLE)
            yn = y * 2 - 1
            fake = self.gens[d](xp)[..., :h, :w]
            critic, cond = self.critics[d], xp[..., :h, :w]
            if adversarial:
                loss_d = 0.5 * L.lsgan_loss(critic(yn, cond), cfg["real_label"]) + \
                    0.5 * L.lsgan_loss(critic(fake.detach(), cond), cfg["fake_label"])
                self.step(loss_d, f"disc_{d}")
                out[f"disc_{d}"] = loss_d.item()
            l1 = (fake - yn).abs().mean()
            loss_g = cfg["l1_weight"] * l1
            if adversarial:
                gan = L.lsgan_loss(critic(fake, cond), cfg["real_label"])
                loss_g = loss_g + cfg["gan_weight"] * gan
                out[f"gan_{d}"] = gan.item()
            self.step(loss_g, f"gen_{d}")
            out[f"l1_{d}"] = l1.item()
        return out

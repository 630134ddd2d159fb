"""Training tasks of the six baselines, registered in :data:`hdrbench.train.task.TASKS`.

Every task trains on the trainer's batch contract (``stack`` (B, E, 3, H, W) in [0, 1], ``evs``, ``hdr``
(B, 3, H, W) linear relative). Stack methods learn from pairs of ground-truth frames; direct methods learn
the ground-truth HDR in their own normalisation (see :mod:`hdrbench.train.baselines.targets`).

Tasks (recipe ``task`` key -> what one iteration does):

* ``deep-recursive-hdri``: for each direction, every pair of frames one EV apart (stop-up: EV k -> k+1,
  stop-down: k -> k-1). Before ``schedule.pretrain_iters``: L1 only. After: the PatchGAN critic steps on
  0.5 * LSGAN(real, 0.9) + 0.5 * LSGAN(fake, 0.1), then the generator on L1 + 0.01 * LSGAN(fake, 0.9).
  Adam 2e-4, betas (0.5, 0.999); the learning rate halves from ``schedule.lr_decay_iters`` on.
* ``deep-chain-hdri``: L1 per link, each link fed the ground-truth frame of the previous EV (inferred).
* ``singlehdr``: stage by stage, then jointly: ``schedule.deq_iters`` (masked L2 of the dequantised image),
  ``lin_iters`` (L2 of the linear image + 0.1 * L2 of the inverse CRF), ``hal_iters`` (log-domain L1 +
  perceptual + TV), then the rest jointly (gamma-domain L1 of the refined HDR, learning rate ``lr_joint``).
* ``expandnet``: L1 + 5 * (1 - cosine similarity) against min-max normalised HDR; Adam 7e-5.
* ``hdrcnn``: masked log-domain illumination/reflectance L2 (lambda 0.5) against HDR aligned to x^2; Adam 5e-5.
* ``drtmo``: L1 on each generated exposure whose EV is in the batch's stack (whole stops; the half-stop
  frames have no ground truth in a 1-EV stack and learn only through the shared layers; inferred).

Learning-rate changes are computed from the iteration number inside ``train_step`` (no scheduler state), so a
resumed run follows exactly the same schedule.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.errors import InputError
from hdrbench.models import build_arch
from hdrbench.models.baselines._common import pad_to_multiple
from hdrbench.models.baselines.deep_recursive_hdri import MULTIPLE as DRHDRI_MULTIPLE
from hdrbench.models.baselines.deep_recursive_hdri import PatchDiscriminator
from hdrbench.models.baselines.drtmo import EV_STEP, FRAMES
from hdrbench.models.baselines.hdrcnn import HDRCNN, highlight_mask, load_vgg16_encoder
from hdrbench.models.baselines.singlehdr import HALLUCINATION_THRESHOLD, apply_curve, read_emor_file
from hdrbench.train.baselines import losses as L
from hdrbench.train.baselines import targets as T
from hdrbench.train.optim import build_optimizer
from hdrbench.train.task import TASKS, TrainTask


class _BaselineTask(TrainTask):
    """Shared plumbing: recipe sections, the arch, optimisers from ``[optim]``."""

    #: Defaults of the recipe's ``[loss]`` table (a task reads only the keys listed here).
    LOSS_DEFAULTS: dict[str, Any] = {}
    #: Default learning rate when the recipe's ``[optim]`` table has no ``lr``.
    LR = 1e-4

    def __init__(self, recipe: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(dict(recipe), torch.device(device))
        self.model_kwargs = dict(recipe.get("model") or {})
        self.optim_cfg = {"name": "adam", "betas": [0.9, 0.999], **dict(recipe.get("optim") or {})}
        self.schedule = dict(recipe.get("schedule") or {})
        unknown = set(recipe.get("loss") or {}) - set(self.LOSS_DEFAULTS)
        if unknown:
            raise InputError(f"recipe {recipe.get('name')!r}: unknown [loss] keys {sorted(unknown)} for task "
                             f"{type(self).__name__}; known: {sorted(self.LOSS_DEFAULTS)}")
        self.loss_cfg = {**self.LOSS_DEFAULTS, **dict(recipe.get("loss") or {})}
        self.model = build_arch(recipe["arch"], **self.model_kwargs).to(self.device)

    def _optimizer(self, params, lr: float | None = None) -> torch.optim.Optimizer:
        return build_optimizer(params, float(lr if lr is not None else self.optim_cfg.get("lr", self.LR)),
                               self.optim_cfg)

    @staticmethod
    def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
        for group in opt.param_groups:
            group["lr"] = lr

    def inference_model(self) -> nn.Module:
        return self.model


#: Smallest crop the PatchGAN critic accepts: 64 / 2^4 = 4, then 4 -> 3 -> 2 through its two 4x4 stride-1 layers.
CRITIC_MIN_SIZE = 64


@TASKS.register("deep-recursive-hdri")
class DeepRecursiveHDRITask(_BaselineTask):
    """Stop-up and stop-down generators with PatchGAN critics (L1 + 0.01 LSGAN, soft labels, L1 pre-training)."""

    LOSS_DEFAULTS = {"l1_weight": 1.0, "gan_weight": 0.01, "real_label": 0.9, "fake_label": 0.1}
    LR = 2e-4

    def __init__(self, recipe: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(recipe, device)
        width = int(self.model_kwargs.get("width", 64))
        self.critics = nn.ModuleDict({"up": PatchDiscriminator(width), "down": PatchDiscriminator(width)}).to(self.device)
        self.gens = {"up": self.model.up, "down": self.model.down}
        self._opts = {f"gen_{d}": self._optimizer(self.gens[d].parameters()) for d in ("up", "down")}
        self._opts.update({f"disc_{d}": self._optimizer(self.critics[d].parameters()) for d in ("up", "down")})

    def modules(self) -> dict[str, nn.Module]:
        return {"gen_up": self.model.up, "gen_down": self.model.down,
                "disc_up": self.critics["up"], "disc_down": self.critics["down"]}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

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
        lr = float(self.optim_cfg.get("lr", self.LR)) * (0.5 if decay_at and iteration >= int(decay_at) else 1.0)
        for opt in self._opts.values():
            self._set_lr(opt, lr)
        adversarial = iteration >= int(self.schedule.get("pretrain_iters", 0))
        if adversarial and min(stack.shape[-2:]) < CRITIC_MIN_SIZE:
            raise InputError(f"Deep recursive HDRI: the PatchGAN critic needs crops of at least {CRITIC_MIN_SIZE} px "
                             f"(four stride-2 layers, then two 4x4 layers); got {tuple(stack.shape[-2:])}. "
                             "Raise data.crop or train with L1 only (schedule.pretrain_iters >= iters)")
        cfg = self.loss_cfg
        out: dict[str, float] = {}
        for d, (x, y) in self.pairs(stack, batch["evs"]).items():
            xp, (h, w) = pad_to_multiple(x * 2 - 1, DRHDRI_MULTIPLE)
            yn = y * 2 - 1
            fake = self.gens[d](xp)[..., :h, :w]
            critic, cond = self.critics[d], xp[..., :h, :w]
            if adversarial:
                opt_d = self._opts[f"disc_{d}"]
                opt_d.zero_grad(set_to_none=True)
                loss_d = 0.5 * L.lsgan_loss(critic(yn, cond), cfg["real_label"]) + \
                    0.5 * L.lsgan_loss(critic(fake.detach(), cond), cfg["fake_label"])
                loss_d.backward()
                opt_d.step()
                out[f"disc_{d}"] = loss_d.item()
            opt_g = self._opts[f"gen_{d}"]
            opt_g.zero_grad(set_to_none=True)
            l1 = (fake - yn).abs().mean()
            loss_g = cfg["l1_weight"] * l1
            if adversarial:
                gan = L.lsgan_loss(critic(fake, cond), cfg["real_label"])
                loss_g = loss_g + cfg["gan_weight"] * gan
                out[f"gan_{d}"] = gan.item()
            loss_g.backward()
            opt_g.step()
            out[f"l1_{d}"] = l1.item()
        return out


@TASKS.register("deep-chain-hdri")
class DeepChainHDRITask(_BaselineTask):
    """Teacher-forced L1 per link (inferred: the paper's loss is not available)."""

    LOSS_DEFAULTS = {"l1_weight": 1.0}
    LR = 1e-4

    def __init__(self, recipe: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(recipe, device)
        self._opts = {"chain": self._optimizer(self.model.parameters())}

    def modules(self) -> dict[str, nn.Module]:
        return {"chain": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

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
        opt = self._opts["chain"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        return out


@TASKS.register("expandnet")
class ExpandNetTask(_BaselineTask):
    """L1 + 5 * (1 - cosine similarity) against min-max normalised HDR; Adam 7e-5."""

    LOSS_DEFAULTS = {"cosine_weight": 5.0}
    LR = 7e-5

    def __init__(self, recipe: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(recipe, device)
        self._opts = {"expandnet": self._optimizer(self.model.parameters())}

    def modules(self) -> dict[str, nn.Module]:
        return {"expandnet": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        stack = T.batch_stack(batch).to(self.device)
        ldr = stack[:, T.ev_index(batch["evs"], 0.0)]
        target = T.minmax_normalise(T.batch_hdr(batch, "ExpandNet").to(self.device))
        loss = L.cosine_l1_loss(self.model(ldr), target, self.loss_cfg["cosine_weight"])
        opt = self._opts["expandnet"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}


@TASKS.register("hdrcnn")
class HDRCNNTask(_BaselineTask):
    """Masked log-domain illumination/reflectance loss (lambda 0.5) against HDR aligned to x^2."""

    LOSS_DEFAULTS = {"lambda_ir": 0.5, "sigma": 2.0}
    LR = 5e-5

    def __init__(self, recipe: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(recipe, device)
        self._opts = {"hdrcnn": self._optimizer(self.model.parameters())}

    def modules(self) -> dict[str, nn.Module]:
        return {"hdrcnn": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        stack = T.batch_stack(batch).to(self.device)
        ldr = stack[:, T.ev_index(batch["evs"], 0.0)]
        target = T.align_to_ldr(T.batch_hdr(batch, "HDRCNN").to(self.device), ldr**2, ldr)
        x, (h, w) = pad_to_multiple(ldr, 32)
        log_pred = self.model(x)[..., :h, :w]
        alpha = highlight_mask(ldr, self.model.tau)
        loss = L.hdrcnn_loss(log_pred, target, alpha, self.loss_cfg["lambda_ir"], self.loss_cfg["sigma"])
        opt = self._opts["hdrcnn"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "saturated": alpha.mean().item()}


@TASKS.register("singlehdr")
class SingleHDRTask(_BaselineTask):
    """Stage-by-stage training (dequantisation, linearisation, hallucination) then joint fine-tuning."""

    LOSS_DEFAULTS = {"crf_weight": 0.1, "perceptual_weight": 0.0, "tv_weight": 0.0, "vgg_weights": "",
                     "gamma": 2.2, "extreme": 1.0 / 255.0}
    LR = 1e-4
    STAGES = ("deq", "lin", "hal", "joint")

    def __init__(self, recipe: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(recipe, device)
        m = self.model
        nets = {"deq": m.dequantize, "lin": m.linearize, "hal": m.hallucinate, "ref": m.refine}
        self._opts = {name: self._optimizer(net.parameters()) for name, net in nets.items()}
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

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

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
        out: dict[str, float] = {}
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
        lr = float(self.optim_cfg.get("lr_joint", 1e-5) if stage == "joint" else self.optim_cfg.get("lr", self.LR))
        for name in nets:
            self._set_lr(self._opts[name], lr)
            self._opts[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in nets:
            self._opts[name].step()
        out[f"{stage}_loss"] = loss.item()
        return out


@TASKS.register("drtmo")
class DrTMOTask(_BaselineTask):
    """L1 on each generated exposure with a ground-truth frame (up and down models trained side by side)."""

    LOSS_DEFAULTS = {"l1_weight": 1.0}
    LR = 2e-4

    def __init__(self, recipe: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(recipe, device)
        self._opts = {d: self._optimizer(getattr(self.model, d).parameters()) for d in ("up", "down")}

    def modules(self) -> dict[str, nn.Module]:
        return {"up": self.model.up, "down": self.model.down}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

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
            opt = self._opts[name]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            out[f"l1_{name}"] = loss.item()
        if not out:
            raise InputError(f"DrTMO needs frames at positive or negative EVs in the batch; evs = {evs}")
        return out

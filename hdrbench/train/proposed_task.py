"""Training task of the proposed method (Kim, Lee & Kang, AAAI 2021), as its official code trains it.

Networks: global, local and refinement networks for the up and the down direction (six networks;
fewer when the ``decomposition`` switch is off). Optimisers: three groups, each holding the up and the
down network of one kind, Adam with gradient centralisation (``AdamGC``), betas (0.5, 0.999), weight
decay 5e-5, learning rates 1e-4 (global), 1e-4 (local), 1e-5 (refinement). A parameter without a gradient
is skipped by the optimiser, so one optimiser per kind equals the official one optimiser per network.

One iteration (batch: ground-truth stacks of E = 7 exposures, EV -3..+3, and their HDR images):

1. **Teacher-forced single-step pass.** A reference index ``r`` is drawn uniformly from 0..E-1; the up
   direction renders ``r+1, ..., E-1`` and the down direction ``r-1, ..., 0`` one step at a time, each
   step fed the *ground-truth* image (and Canny edges) of the previous EV. Hidden states are carried from
   step to step but detached. Each step: edge L1 (local nets), L1 + 0.01 histogram loss (global nets)
   and, after pre-training, L1 + 0.1 CoBi (refinement nets, fed detached global/edge outputs so that
   each loss trains its own network), one backward and one optimiser step per group.
2. **Recursive stack pass.** The input is the ground truth at EV 0 + {-1, 0, +1} (uniform); each
   direction recurses to the end of the stack feeding back its own output (the global output during
   pre-training, the refined output after), hidden states carried with gradients. Losses are the means
   over the generated images of the same terms, plus, after pre-training, the mu-law (mu = 100) L1 between
   the HDR synthesis layer's merge of the predicted stack and the ground-truth HDR, which reaches every
   network. The terms are summed, back-propagated once and every active group steps.

Pre-training: before ``schedule.pretrain_iters`` (10k of 80k at paper scale) only the global and local
networks train, the refinement networks are not run, and neither CoBi nor the HDR loss is computed.

Official-code bugs, fixed by default and reproducible by recipe options:

* ``loss.stack_cobi_grad = false``: the stack pass's CoBi term carries no gradient (the code rebuilds it
  with ``torch.tensor`` from Python floats);
* ``loss.cobi_official_swap = true``: CoBi with band width 0.5 *and* spatial weight 0.5 (the code passes
  its band width positionally into the spatial-weight slot) instead of the upstream h = 0.5, w_sp = 0.1.

Ablation switches (Table 3): ``model.recurrent``, ``model.cin``, ``model.decomposition`` (see
:class:`~hdrbench.models.proposed.ProposedModel`), ``loss.hdr_loss`` (the differentiable HDR synthesis
layer in the loss) and ``loss.cobi``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

import torch
import torch.nn as nn

from hdrbench.errors import InputError
from hdrbench.losses import CoBiLoss, canny_edges, edge_l1_loss, histogram_loss, l1_loss, mu_law_l1_loss
from hdrbench.models import build_arch
from hdrbench.models.proposed import ProposedModel, StepOutput
from hdrbench.train.task import TASKS, TrainTask

#: Loss settings and their defaults (the official configuration, with the two bugs fixed).
LOSS_DEFAULTS: dict[str, Any] = {
    "image_weight": 1.0,  # L1 of the global output
    "hist_weight": 0.01,  # histogram loss of the global output
    "edge_weight": 1.0,  # L1 of the local (edge) output against Canny targets
    "refine_weight": 1.0,  # L1 of the refined output
    "cobi": True,  # CoBi loss on the refined output (after pre-training)
    "cobi_weight": 0.1,
    "cobi_features": "auto",  # "auto" | "vgg19" | "rgb-patch"
    "cobi_vgg_weights": "",  # path of a torchvision VGG19 state dict; "" -> $HDRBENCH_VGG19_WEIGHTS
    "cobi_official_swap": False,  # True: h = 0.5, w_sp = 0.5 as the official code runs
    "cobi_patch_grid": 32,
    "stack_cobi_grad": True,  # False: the official stack CoBi term without gradient
    "hdr_loss": True,  # mu-law L1 through the differentiable HDR synthesis layer (after pre-training)
    "hdr_weight": 1.0,
    "mu": 100.0,
    "hdr_normalize": "mean",  # "none" (official; ground truth in the merge's scale), "mean" or "max"
    "hdr_layer": {},  # keyword options of hdrbench.imaging.synthesis.merge_stack
    "canny_channel_quirk": False,  # True: the official swapped luma weights for the Canny targets
}
OPTIM_DEFAULTS: dict[str, Any] = {
    "name": "adam_gc",
    "lr_global": 1e-4,
    "lr_local": 1e-4,
    "lr_refine": 1e-5,
    "betas": [0.5, 0.999],
    "weight_decay": 5e-5,
    "gradient_centralization": True,
}
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "pretrain_iters": 10000,
    "single_step": True,  # the teacher-forced pass
    "stack_pass": True,  # the recursive pass
    "stack_ref_jitter": 1,  # stack-pass input EV drawn from 0 +- this
}
GROUPS = ("global", "local", "refine")


def _merge_hdr(stack: torch.Tensor, evs: torch.Tensor, options: Mapping[str, Any]) -> torch.Tensor:
    """The differentiable HDR synthesis layer (the one place this task depends on it).

    Args:
        stack: (B, E, 3, H, W) in [0, 1].
        evs: (E,) EVs; exposure times are ``2 ** EV``.
        options: keyword options of ``merge_stack``.

    Returns:
        (B, 3, H, W) linear relative HDR.
    """
    from hdrbench.imaging.synthesis import merge_stack

    times = torch.pow(2.0, evs.to(device=stack.device, dtype=torch.float64))
    return merge_stack(stack, times, **dict(options)).hdr


def _build_optimizer(params: list[nn.Parameter], lr: float, optim: Mapping[str, Any]) -> torch.optim.Optimizer:
    from hdrbench.train.optim import build_optimizer

    keep = {k: v for k, v in optim.items() if not k.startswith("lr_")}
    return build_optimizer(params, lr, keep)


class ProposedTask(TrainTask):
    """The proposed method's training task (registered as ``TASKS["proposed"]``).

    Args:
        recipe: resolved recipe (``arch``, ``[model]``, ``[loss]``, ``[optim]``, ``[schedule]``).
        device: device of the networks and batches.
    """

    #: The task scales its own losses when the trainer hands it a ``GradScaler`` (fp16 AMP).
    supports_grad_scaler = True

    def __init__(self, recipe: dict[str, Any], device: torch.device) -> None:
        super().__init__(recipe, device)
        self.scaler = None
        self.amp = None
        self.loss_cfg = {**LOSS_DEFAULTS, **(recipe.get("loss") or {})}
        self.optim_cfg = {**OPTIM_DEFAULTS, **(recipe.get("optim") or {})}
        self.schedule = {**SCHEDULE_DEFAULTS, **(recipe.get("schedule") or {})}
        unknown = sorted(set(recipe.get("loss") or {}) - set(LOSS_DEFAULTS))
        if unknown:
            raise InputError(f"recipe {recipe.get('name')!r}: unknown [loss] keys {unknown}; "
                             f"known: {sorted(LOSS_DEFAULTS)}")
        model = build_arch(recipe.get("arch", "proposed"), **(recipe.get("model") or {}))
        if not isinstance(model, ProposedModel):
            raise InputError(f"task 'proposed' needs a ProposedModel arch, recipe arch {recipe.get('arch')!r} "
                             f"builds {type(model).__name__}")
        self.model = model.to(device)
        self.nets = self.model.networks()
        self.cobi: CoBiLoss | None = None
        if self.loss_cfg["cobi"] and self.model.decomposition:
            self.cobi = CoBiLoss(self.loss_cfg["cobi_features"], vgg_weights=self.loss_cfg["cobi_vgg_weights"] or None,
                                 official_swap=bool(self.loss_cfg["cobi_official_swap"]),
                                 patch_grid=int(self.loss_cfg["cobi_patch_grid"])).to(device)
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        for group in GROUPS:
            params = [p for name, net in self.nets.items() if name.startswith(group + "_") for p in net.parameters()]
            if params:
                self._optimizers[group] = _build_optimizer(params, float(self.optim_cfg[f"lr_{group}"]),
                                                           self.optim_cfg)
        self._pending_update = False

    # -- TrainTask interface --------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return dict(self.nets)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def inference_model(self) -> ProposedModel:
        return self.model

    @property
    def cobi_variant(self) -> str | None:
        """Which CoBi features run (``"vgg19"`` or ``"rgb-patch"``), None when CoBi is off."""
        return None if self.cobi is None else self.cobi.variant

    # -- helpers --------------------------------------------------------------------------------------
    def _check_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if "stack" not in batch:
            raise InputError("training batch has no 'stack'")
        stack = batch["stack"]
        if stack.ndim != 5 or stack.shape[2] != 3:
            raise InputError(f"batch 'stack' must be (B, E, 3, H, W), got {tuple(stack.shape)}")
        evs = torch.as_tensor(batch.get("evs"), dtype=torch.float64).reshape(-1).cpu()
        if [float(e) for e in evs] != [float(e) for e in self.model.evs]:
            raise InputError(f"batch evs {evs.tolist()} differ from the model's {self.model.evs} "
                             "(set data.evs and model.min_ev/max_ev consistently)")
        h, w = stack.shape[-2:]
        m = self.model.size_multiple
        if h % m or w % m:
            raise InputError(f"training crops must be multiples of {m} pixels, got {h}x{w} (set data.crop)")
        return stack.to(self.device), evs

    def _groups(self, refine: bool) -> list[str]:
        return [g for g in GROUPS if g in self._optimizers and (g != "refine" or refine)]

    def _backward_step(self, loss: torch.Tensor, groups: list[str]) -> None:
        """Zero every gradient, back-propagate ``loss`` and step ``groups`` (scaled under fp16 AMP)."""
        for opt in self._optimizers.values():
            opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            for g in groups:
                self._optimizers[g].step()
            return
        # A GradScaler allows one step per optimiser between updates; the trainer calls the last update.
        if self._pending_update:
            self.scaler.update()
        self.scaler.scale(loss).backward()
        for g in groups:
            self.scaler.step(self._optimizers[g])
        self._pending_update = True

    def _image_terms(self, out: StepOutput, target: torch.Tensor, target_edge: torch.Tensor | None, refine: bool,
                     cobi_grad: bool = True) -> dict[str, torch.Tensor]:
        """Per-step loss terms (already weighted). Images in [-1, 1]."""
        c = self.loss_cfg
        terms = {"global_l1": c["image_weight"] * l1_loss(out.global_image, target),
                 "hist": c["hist_weight"] * histogram_loss(out.global_image, target)}
        if out.edge is not None:
            terms["edge"] = c["edge_weight"] * edge_l1_loss(out.edge, target_edge)
        if refine:
            terms["refine_l1"] = c["refine_weight"] * l1_loss(out.image, target)
            if self.cobi is not None:
                pred01, tgt01 = (out.image + 1) / 2, (target + 1) / 2
                if cobi_grad:
                    terms["cobi"] = c["cobi_weight"] * self.cobi(pred01, tgt01)
                else:
                    with torch.no_grad():
                        terms["cobi"] = c["cobi_weight"] * self.cobi(pred01, tgt01)
        return terms

    # -- the two passes -------------------------------------------------------------------------------
    def _single_step_pass(self, x: torch.Tensor, edges: torch.Tensor | None, refine: bool) -> dict[str, float]:
        e = x.shape[1]
        r = int(torch.randint(e, (1,)).item())
        sums: dict[str, float] = defaultdict(float)
        n = 0
        for direction, targets in (("up", range(r + 1, e)), ("down", range(r - 1, -1, -1))):
            net = self.model.direction(direction)
            h_g = h_l = None
            for t in targets:
                prev = t - 1 if direction == "up" else t + 1
                out = net.step(x[:, prev], None if edges is None else edges[:, prev],
                               self.model.style_id(direction, t), h_g, h_l, refine=refine, detach_refine_inputs=True)
                terms = self._image_terms(out, x[:, t], None if edges is None else edges[:, t], refine)
                self._backward_step(sum(terms.values()), self._groups(refine))
                h_g = None if out.h_global is None else out.h_global.detach()
                h_l = None if out.h_local is None else out.h_local.detach()
                for k, v in terms.items():
                    sums["step_" + k] += float(v.detach())
                n += 1
        return {k: v / max(n, 1) for k, v in sums.items()}

    def _stack_pass(self, x: torch.Tensor, stack: torch.Tensor, edges: torch.Tensor | None, evs: torch.Tensor,
                    hdr: torch.Tensor | None, joint: bool, refine: bool) -> dict[str, float]:
        e = x.shape[1]
        center = -self.model.min_ev
        jitter = int(self.schedule["stack_ref_jitter"])
        r = center + int(torch.randint(-jitter, jitter + 1, (1,)).item())
        r = min(max(r, 0), e - 1)
        first_edge = None if edges is None else edges[:, r]
        generated: dict[int, StepOutput] = {}
        for direction, steps, sign in (("up", e - 1 - r, 1), ("down", r, -1)):
            for k, out in enumerate(self.model.recurse(x[:, r], first_edge, r, direction, steps, refine=refine), 1):
                generated[r + sign * k] = out
        sums: dict[str, torch.Tensor] = {}
        for t, out in generated.items():
            terms = self._image_terms(out, x[:, t], None if edges is None else edges[:, t], refine,
                                      cobi_grad=bool(self.loss_cfg["stack_cobi_grad"]))
            for k, v in terms.items():
                sums[k] = sums[k] + v if k in sums else v
        terms = {k: v / len(generated) for k, v in sums.items()}
        if joint and self.loss_cfg["hdr_loss"]:
            if hdr is None:
                raise InputError("loss.hdr_loss is on but the batch has no ground-truth 'hdr' (dataset without HDR)")
            pred = torch.stack([stack[:, t] if t == r else (generated[t].image + 1) / 2 for t in range(e)], dim=1)
            merged = _merge_hdr(pred.float().clamp(0, 1), evs, self.loss_cfg["hdr_layer"])
            terms["hdr"] = self.loss_cfg["hdr_weight"] * mu_law_l1_loss(
                merged, hdr.to(merged.dtype), mu=float(self.loss_cfg["mu"]), normalize=self.loss_cfg["hdr_normalize"])
        self._backward_step(sum(terms.values()), self._groups(refine))
        return {"stack_" + k: float(v.detach()) for k, v in terms.items()}

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, float]:
        """One official iteration (see the module docstring); returns the weighted loss terms.

        Keys: ``step_*`` (teacher-forced pass, mean over its steps) and ``stack_*`` (recursive pass) for the
        terms ``global_l1``, ``hist``, ``edge``, ``refine_l1``, ``cobi``, ``hdr`` that ran, plus
        ``cobi_vgg19`` (1.0 when CoBi used VGG19 features, 0.0 for RGB patches) once CoBi is active.
        """
        stack, evs = self._check_batch(batch)
        hdr = batch.get("hdr")
        if hdr is not None:
            hdr = hdr.to(self.device)
        joint = iteration >= int(self.schedule["pretrain_iters"])
        refine = joint and self.model.decomposition
        x = stack * 2 - 1
        edges = None
        if self.model.decomposition:
            b, e = stack.shape[:2]
            edges = canny_edges(stack.flatten(0, 1).float(), channel_order_quirk=bool(self.loss_cfg["canny_channel_quirk"]))
            edges = edges.view(b, e, 1, *stack.shape[-2:]).to(x.dtype)
        for net in self.nets.values():
            net.train()
        self._pending_update = False
        logs: dict[str, float] = {}
        if self.schedule["single_step"]:
            logs.update(self._single_step_pass(x, edges, refine))
        if self.schedule["stack_pass"]:
            logs.update(self._stack_pass(x, stack, edges, evs, hdr, joint, refine))
        if refine and self.cobi is not None:
            logs["cobi_vgg19"] = 1.0 if self.cobi.variant == "vgg19" else 0.0
        return logs


TASKS.register("proposed", ProposedTask)

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

Routing (``loss.routing``, set by the recipe's ``fidelity``, see :mod:`hdrbench.train.fidelity`):

* ``"joint"`` (``corrected``): as described above, one backward per step (single-step pass) and one summed
  backward for the stack pass, after which every active group steps once.
* ``"official"``: the official ``solver.py`` routing. Each loss gets its own gradients, computed with
  ``torch.autograd.grad`` on the same forward graph before any optimiser steps, restricted to the networks
  it trains: edge L1 -> the two local nets, global L1 + 0.01 histogram -> the two global nets, refined L1 +
  0.1 CoBi -> the two refinement nets (after pre-training), in both passes; in the stack pass, after
  pre-training, the mu-law HDR loss alone -> all six nets, which therefore take a second Adam step. With
  ``optim.per_network`` each network has its own Adam optimiser, as in the official code. The official code
  ran one backward per loss with ``retain_graph=True`` and stepped in between; the PyTorch versions of the
  time let a later backward read weights an earlier step had already changed in place. That is not
  reproduced: every gradient here is taken at the weights of the forward pass.

Official-code bugs, fixed under ``fidelity = "corrected"`` and reproduced under ``"official"`` (or one by
one with recipe options):

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
from hdrbench.imaging.edges import canny_edges
from hdrbench.losses import CoBiLoss, edge_l1_loss, histogram_loss, l1_loss, mu_law_l1_loss
from hdrbench.losses.vgg import resolve_weights_path
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
    "routing": "joint",  # "official": per-loss gradients and steps of the official solver.py
    "stack_mean_slots": "generated",  # "stack": stack-pass means over every slot, the input's included
}
ROUTINGS = ("joint", "official")
#: Official routing: the networks each loss trains, in the order the official code steps them.
ROUTES = (("local", ("edge",)), ("global", ("global_l1", "hist")), ("refine", ("refine_l1", "cobi")))
MEAN_SLOTS = ("generated", "stack")
OPTIM_DEFAULTS: dict[str, Any] = {
    "name": "adam_gc",
    "lr_global": 1e-4,
    "lr_local": 1e-4,
    "lr_refine": 1e-5,
    "betas": [0.5, 0.999],
    "weight_decay": 5e-5,
    "gradient_centralization": True,
    "per_network": False,  # True: one optimiser per network (official); False: one per kind (up + down)
}
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "pretrain_iters": 10000,
    "single_step": True,  # the teacher-forced pass
    "stack_pass": True,  # the recursive pass
    "stack_ref_jitter": 1,  # stack-pass input EV drawn from 0 +- this
}
GROUPS = ("global", "local", "refine")


def hdr_layer_options(options: Mapping[str, Any] | str) -> dict[str, Any]:
    """``loss.hdr_layer`` as ``merge_stack`` keyword options: a table as it is, ``"official"`` for the official
    layer (``hdrbench.imaging.synthesis.OFFICIAL_LAYER``)."""
    if isinstance(options, str):
        if options != "official":
            raise InputError(f"loss.hdr_layer must be a table of merge_stack options or 'official', got {options!r}")
        from hdrbench.imaging import synthesis

        official = getattr(synthesis, "OFFICIAL_LAYER", None)
        if official is None:
            raise NotImplementedError("loss.hdr_layer = 'official' needs hdrbench.imaging.synthesis.OFFICIAL_LAYER, "
                                      "which this installation lacks")
        return dict(official)
    if not isinstance(options, Mapping):
        raise InputError(f"loss.hdr_layer must be a table of merge_stack options or 'official', got {options!r}")
    return dict(options)


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


def _jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot hold written as its ``repr``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _build_optimizer(params: list[nn.Parameter], lr: float, optim: Mapping[str, Any]) -> torch.optim.Optimizer:
    from hdrbench.train.optim import build_optimizer

    keep = {k: v for k, v in optim.items() if not k.startswith("lr_") and k != "per_network"}
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
        for key, allowed in (("routing", ROUTINGS), ("stack_mean_slots", MEAN_SLOTS)):
            if self.loss_cfg[key] not in allowed:
                raise InputError(f"recipe {recipe.get('name')!r}: loss.{key} must be one of {allowed}, "
                                 f"got {self.loss_cfg[key]!r}")
        self.hdr_layer = hdr_layer_options(self.loss_cfg["hdr_layer"]) if self.loss_cfg["hdr_loss"] else None
        self.cobi: CoBiLoss | None = None
        self._cobi_error: str | None = None
        if self.loss_cfg["cobi"] and self.model.decomposition:
            vgg = self.loss_cfg["cobi_vgg_weights"] or None
            if self.loss_cfg["cobi_features"] == "vgg19" and resolve_weights_path(vgg) is None:
                # Reported by prepare_training (before the first iteration), not here: evaluating a trained or
                # official checkpoint builds this task too and needs no loss.
                self._cobi_error = (
                    f"recipe {recipe.get('name')!r} (preset {recipe.get('preset')!r}) trains CoBi on VGG19 features "
                    "(loss.cobi_features = 'vgg19') but no VGG19 weights file is configured: set "
                    "HDRBENCH_VGG19_WEIGHTS=/path/to/vgg19.pth (a torchvision vgg19 state dict) or pass "
                    "--method-option loss.cobi_vgg_weights=/path/to/vgg19.pth; or opt into the RGB-patch CoBi "
                    "explicitly with --method-option loss.cobi_features=rgb-patch")
            else:
                self.cobi = CoBiLoss(self.loss_cfg["cobi_features"], vgg_weights=vgg,
                                     official_swap=bool(self.loss_cfg["cobi_official_swap"]),
                                     patch_grid=int(self.loss_cfg["cobi_patch_grid"])).to(device)
        # Optimisers: one per kind (up + down) or, with optim.per_network, one per network.
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self._group_optimizers: dict[str, list[str]] = {}
        self._group_params: dict[str, list[nn.Parameter]] = {}
        for group in GROUPS:
            names = [name for name in self.nets if name.startswith(group + "_")]
            params = [p for name in names for p in self.nets[name].parameters()]
            if not params:
                continue
            lr = float(self.optim_cfg[f"lr_{group}"])
            self._group_params[group] = params
            if self.optim_cfg["per_network"]:
                for name in names:
                    self._optimizers[name] = _build_optimizer(list(self.nets[name].parameters()), lr, self.optim_cfg)
                self._group_optimizers[group] = names
            else:
                self._optimizers[group] = _build_optimizer(params, lr, self.optim_cfg)
                self._group_optimizers[group] = [group]
        self._pending_update = False

    # -- TrainTask interface --------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return dict(self.nets)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def inference_model(self) -> ProposedModel:
        return self.model

    def prepare_training(self) -> None:
        """Stop before the first iteration when a loss cannot run as the recipe asks (VGG19 CoBi without
        weights), or when fp16 loss scaling meets the official routing."""
        if self._cobi_error is not None:
            raise InputError(self._cobi_error)
        if self.scaler is not None and self.loss_cfg["routing"] == "official":
            raise NotImplementedError("amp='fp16' loss scaling is not implemented for loss.routing = 'official' "
                                      "(fidelity official); use amp='bf16' or fp32")

    def describe(self) -> dict[str, Any]:
        """What this task runs, for the run's records: fidelity, routing, optimisers, CoBi and HDR layer."""
        return _jsonable({
            "fidelity": self.recipe.get("fidelity"),
            "routing": self.loss_cfg["routing"],
            "optimizers": sorted(self._optimizers),
            "cobi": self.cobi_variant or ("off" if self._cobi_error is None else "vgg19 (weights missing)"),
            "cobi_band_width_weight_sp": None if self.cobi is None else [self.cobi.band_width, self.cobi.weight_sp],
            "stack_cobi_grad": bool(self.loss_cfg["stack_cobi_grad"]),
            "stack_mean_slots": self.loss_cfg["stack_mean_slots"],
            "hdr_layer": self.hdr_layer,
            "hdr_normalize": self.loss_cfg["hdr_normalize"],
            "canny_channel_quirk": bool(self.loss_cfg["canny_channel_quirk"]),
        })

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
        return [g for g in GROUPS if g in self._group_optimizers and (g != "refine" or refine)]

    def _backward_step(self, loss: torch.Tensor, groups: list[str]) -> None:
        """Zero every gradient, back-propagate ``loss`` and step ``groups`` (scaled under fp16 AMP)."""
        for opt in self._optimizers.values():
            opt.zero_grad(set_to_none=True)
        names = [name for g in groups for name in self._group_optimizers[g]]
        if self.scaler is None:
            loss.backward()
            for name in names:
                self._optimizers[name].step()
            return
        # A GradScaler allows one step per optimiser between updates; the trainer calls the last update.
        if self._pending_update:
            self.scaler.update()
        self.scaler.scale(loss).backward()
        for name in names:
            self.scaler.step(self._optimizers[name])
        self._pending_update = True

    def _routed_steps(self, terms: Mapping[str, torch.Tensor], refine: bool, hdr_to_all: bool) -> None:
        """The official routing: each loss's gradients for its own networks, all taken on this forward graph,
        then the steps in the official order (local, global, refinement, then every network for the HDR loss).

        Args:
            terms: weighted loss terms of one step or pass (keys as in :meth:`_image_terms`, plus ``hdr``).
            refine: the refinement networks are active.
            hdr_to_all: route ``terms["hdr"]`` to every active network (the stack pass after pre-training).
        """
        active = self._groups(refine)
        routes: list[tuple[torch.Tensor, list[str]]] = []
        for group, keys in ROUTES:
            parts = [terms[k] for k in keys if k in terms]
            if parts and group in active:
                routes.append((sum(parts), [group]))
        if hdr_to_all and "hdr" in terms:
            routes.append((terms["hdr"], active))
        grads = []
        for loss, groups in routes:
            params = [p for g in groups for p in self._group_params[g]]
            if loss.requires_grad:
                gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            else:  # e.g. a CoBi-only term without gradient: nothing to step
                gs = (None,) * len(params)
            grads.append((groups, params, gs))
        for groups, params, gs in grads:
            for opt in self._optimizers.values():
                opt.zero_grad(set_to_none=True)
            for p, g in zip(params, gs):
                p.grad = g
            for g in groups:
                for name in self._group_optimizers[g]:
                    opt = self._optimizers[name]
                    # A network this loss does not reach (the up nets while the teacher-forced pass goes down)
                    # is not stepped, as the official code steps only the direction it trains.
                    if any(p.grad is not None for pg in opt.param_groups for p in pg["params"]):
                        opt.step()
        for opt in self._optimizers.values():
            opt.zero_grad(set_to_none=True)

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
                if self.loss_cfg["routing"] == "official":
                    self._routed_steps(terms, refine, hdr_to_all=False)
                else:
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
        if self.loss_cfg["stack_mean_slots"] == "stack":
            # Means over all E slots: the input slot is a copy of its target, so its L1, histogram and edge
            # terms are zero; its CoBi term is not, and is a constant without gradient.
            if "cobi" in sums:
                with torch.no_grad():
                    x01 = (x[:, r] + 1) / 2
                    sums["cobi"] = sums["cobi"] + self.loss_cfg["cobi_weight"] * self.cobi(x01, x01)
            terms = {k: v / e for k, v in sums.items()}
        else:
            terms = {k: v / len(generated) for k, v in sums.items()}
        if joint and self.loss_cfg["hdr_loss"]:
            if hdr is None:
                raise InputError("loss.hdr_loss is on but the batch has no ground-truth 'hdr' (dataset without HDR)")
            pred = torch.stack([stack[:, t] if t == r else (generated[t].image + 1) / 2 for t in range(e)], dim=1)
            merged = _merge_hdr(pred.float().clamp(0, 1), evs, self.hdr_layer)
            terms["hdr"] = self.loss_cfg["hdr_weight"] * mu_law_l1_loss(
                merged, hdr.to(merged.dtype), mu=float(self.loss_cfg["mu"]), normalize=self.loss_cfg["hdr_normalize"])
        if self.loss_cfg["routing"] == "official":
            self._routed_steps(terms, refine, hdr_to_all=True)
        else:
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
        if refine and self._cobi_error is not None:
            raise InputError(self._cobi_error)
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

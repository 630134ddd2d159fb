"""The recurrent-up / recurrent-down model of Kim, Lee & Kang (AAAI 2021).

One :class:`RecurrentDirection` holds a direction's three sub-networks (global, local, refinement) and
runs one recursion step: from the image at EV ``e`` it renders the image at ``e + 1`` (up) or ``e - 1``
(down). :class:`ProposedModel` holds both directions and generates a stack from one LDR image by
recursing 3 times up and 3 times down, carrying the Conv-GRU hidden states from step to step.

Images are in [0, 1] at the public boundary (:meth:`ProposedModel.predict_stack`) and in [-1, 1]
inside (the official code's ``Normalize(0.5, 0.5)``). Edge maps are 0/1 (probabilities) everywhere.

Style ids (which CIN parameter set a step uses) follow the official code: with the stack's EVs
``min_ev..max_ev`` indexed 0..E-1, a step towards index ``t`` uses style ``t - 1`` going up and ``t``
going down, so each of the 2 * (E - 1) (direction, target) pairs maps to one of E - 1 = 6 parameter
sets per direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.checks import check_ldr
from hdrbench.errors import InputError
from hdrbench.models.proposed.blocks import StyleId
from hdrbench.models.proposed.global_net import GlobalNet
from hdrbench.models.proposed.local_net import LocalNet
from hdrbench.models.proposed.refine_net import RefineNet

#: Base channels of the official configuration (width 1.0).
PAPER_BASE = {"global": 32, "local": 16, "refine": 16}


@dataclass
class GeneratedStack:
    """Every output of one stack generation, in the networks' ranges (the official ``HDR_model`` outputs).

    Attributes:
        evs: the EVs of the stack axis (the model's ``min_ev..max_ev``).
        image: (N, E, 3, H, W) in [-1, 1]: the refined images (the global ones without decomposition); the
            EV 0 entry is the network input ``2 * ldr - 1``.
        global_image: (N, E, 3, H, W) in [-1, 1]: the global networks' outputs; EV 0 is the input.
        edge: (N, E, 1, H, W) in [0, 1]: the local networks' edge maps; EV 0 is the input's Canny map (None
            without decomposition).
    """

    evs: list[int]
    image: torch.Tensor
    global_image: torch.Tensor
    edge: torch.Tensor | None


@dataclass
class StepOutput:
    """What one recursion step produces (images in [-1, 1], edges in [0, 1])."""

    image: torch.Tensor  # (B, 3, H, W): refined image when refinement ran, else the global image
    global_image: torch.Tensor  # (B, 3, H, W)
    edge: torch.Tensor | None  # (B, 1, H, W); None without image decomposition
    h_global: torch.Tensor | None
    h_local: torch.Tensor | None


class RecurrentDirection(nn.Module):
    """The sub-networks of one direction (up or down) and one recursion step.

    Args:
        global_net: the direction's :class:`GlobalNet`.
        local_net: its :class:`LocalNet` (None without image decomposition).
        refine_net: its :class:`RefineNet` (None without image decomposition).
    """

    def __init__(self, global_net: GlobalNet, local_net: LocalNet | None = None,
                 refine_net: RefineNet | None = None) -> None:
        super().__init__()
        if (local_net is None) != (refine_net is None):
            raise InputError("image decomposition needs both the local and the refinement network")
        self.global_net = global_net
        self.local_net = local_net
        self.refine_net = refine_net
        self.decomposition = local_net is not None

    @classmethod
    def build(cls, *, global_base: int, local_base: int, refine_base: int, recurrent: bool = True, cin: bool = True,
              decomposition: bool = True, num_styles: int = 6, local_pool: str = "max",
              local_upsample: str = "nearest") -> "RecurrentDirection":
        """Build a direction's networks.

        Args:
            global_base, local_base, refine_base: base channels of the three networks.
            recurrent: Conv-GRU bottlenecks (ablation switch).
            cin: conditional instance normalisation (ablation switch).
            decomposition: global + local + refinement networks (True) or the global U-Net alone (False).
            num_styles: CIN parameter sets.
            local_pool, local_upsample: local network options (see :class:`LocalNet`).
        """
        glob = GlobalNet(global_base, recurrent=recurrent, cin=cin, num_styles=num_styles)
        if not decomposition:
            return cls(glob)
        local = LocalNet(local_base, recurrent=recurrent, cin=cin, num_styles=num_styles, pool=local_pool,
                         upsample=local_upsample)
        return cls(glob, local, RefineNet(refine_base))

    def step(self, image: torch.Tensor, edge: torch.Tensor | None, style: StyleId, h_global: torch.Tensor | None = None,
             h_local: torch.Tensor | None = None, *, refine: bool = True, detach_refine_inputs: bool = False
             ) -> StepOutput:
        """Render the next exposure from ``image``.

        Args:
            image: (B, 3, H, W) current image in [-1, 1] (H, W multiples of 32).
            edge: (B, 1, H, W) current edge map in [0, 1] (ignored without decomposition).
            style: style id of the target EV.
            h_global, h_local: hidden states carried from the previous step (None at the first step).
            refine: run the refinement network (the schedule switches it on after pre-training).
            detach_refine_inputs: feed the refinement network detached global/edge outputs, so that its
                loss trains it alone (the teacher-forced pass trains each network on its own loss).

        Returns:
            A :class:`StepOutput`.
        """
        glob, h_global = self.global_net(image, style, h_global)
        if not self.decomposition:
            return StepOutput(glob, glob, None, h_global, None)
        if edge is None:
            raise InputError("the local network needs the current edge map (edge=None given)")
        gray = image.mean(dim=1, keepdim=True)
        pred_edge, h_local = self.local_net(gray, edge, style, h_local)
        out = glob
        if refine:
            g_in, e_in = (glob.detach(), pred_edge.detach()) if detach_refine_inputs else (glob, pred_edge)
            out = self.refine_net(image, g_in, e_in)
        return StepOutput(out, glob, pred_edge, h_global, h_local)


class ProposedModel(nn.Module):
    """Both directions and the stack-generation recursion.

    Args:
        width: multiplier of the paper's base channels (32 global, 16 local, 16 refinement); 1.0 is the
            paper scale (about 232.2 M parameters), 0.25 a CPU scale.
        global_base, local_base, refine_base: explicit base channels (override ``width``).
        recurrent: Conv-GRU bottlenecks (True) or plain bottlenecks (Table 3 ablation).
        cin: conditional (True) or plain (False) instance normalisation in the decoders.
        decomposition: global + local + refinement (True) or one U-Net per direction (False).
        min_ev, max_ev: EV range of the stack the model was trained on (integers, 1-EV steps).
        local_pool, local_upsample: local network options (official code: "max", "nearest").
        canny_channel_quirk: compute the input's Canny edges as the official loader does: its swapped
            luma weights (0.114 R + 0.587 G + 0.299 B), on its float32 grey conversion.
        official_local_head: the up direction's local-net head (its last CIN) always uses style 0, as
            the official ``Structure_up`` does (it calls that block without the step's style; the down
            network passes it). Needed to reproduce outputs of official weights; the default uses the
            step's style in both directions.
    """

    kind = "stack"
    #: Which inverse CRF the evaluation harness merges a predicted stack with.
    inverse_crf = "debevec"

    def __init__(self, width: float = 1.0, *, global_base: int | None = None, local_base: int | None = None,
                 refine_base: int | None = None, recurrent: bool = True, cin: bool = True,
                 decomposition: bool = True, min_ev: int = -3, max_ev: int = 3, local_pool: str = "max",
                 local_upsample: str = "nearest", canny_channel_quirk: bool = False,
                 official_local_head: bool = False) -> None:
        super().__init__()
        if width <= 0:
            raise InputError(f"width must be positive, got {width}")
        if not (int(min_ev) == min_ev and int(max_ev) == max_ev and min_ev < 0 < max_ev):
            raise InputError(f"min_ev/max_ev must be integers with min_ev < 0 < max_ev, got {min_ev}, {max_ev}")
        bases = {k: max(1, round(v * width)) for k, v in PAPER_BASE.items()}
        for key, val in (("global", global_base), ("local", local_base), ("refine", refine_base)):
            if val is not None:
                bases[key] = int(val)
        self.bases = bases
        self.recurrent = recurrent
        self.cin = cin
        self.decomposition = decomposition
        self.min_ev = int(min_ev)
        self.max_ev = int(max_ev)
        self.canny_channel_quirk = canny_channel_quirk
        self.num_styles = self.max_ev - self.min_ev
        kw = dict(global_base=bases["global"], local_base=bases["local"], refine_base=bases["refine"],
                  recurrent=recurrent, cin=cin, decomposition=decomposition, num_styles=self.num_styles,
                  local_pool=local_pool, local_upsample=local_upsample)
        # The six networks are this module's direct children (global_up, local_up, refine_up, global_down,
        # ...): checkpoints and parameter reports then name them. The two directions are views over them,
        # kept out of the module tree so that no parameter is registered twice.
        dirs = {}
        for d in ("up", "down"):
            direction = RecurrentDirection.build(**kw)
            for kind in ("global", "local", "refine"):
                net = getattr(direction, f"{kind}_net")
                if net is not None:
                    self.add_module(f"{kind}_{d}", net)
            dirs[d] = direction
        object.__setattr__(self, "_directions", dirs)
        self.size_multiple = GlobalNet.size_multiple
        self.official_local_head = official_local_head
        #: Set by :func:`hdrbench.models.proposed.official.load_official_weights` (step and files loaded).
        self.official_weights: dict | None = None

    @property
    def official_local_head(self) -> bool:
        """Whether the up local net's head uses style 0 at every step (the official ``Structure_up``)."""
        return bool(self._official_local_head)

    @official_local_head.setter
    def official_local_head(self, value: bool) -> None:
        object.__setattr__(self, "_official_local_head", bool(value))
        if self.decomposition:
            self.up.local_net.head_style = 0 if value else None

    @property
    def up(self) -> RecurrentDirection:
        """The recurrent-up direction (renders EV + 1 from EV)."""
        return self._directions["up"]

    @property
    def down(self) -> RecurrentDirection:
        """The recurrent-down direction (renders EV - 1 from EV)."""
        return self._directions["down"]

    # -- indexing -----------------------------------------------------------------------------------
    @property
    def evs(self) -> list[int]:
        """The stack EVs the model covers, ``min_ev..max_ev``."""
        return list(range(self.min_ev, self.max_ev + 1))

    def style_id(self, direction: str, target_index: int) -> int:
        """CIN style of the step that renders stack index ``target_index`` (0 = ``min_ev``) in ``direction``."""
        if direction == "up":
            sid = target_index - 1
        elif direction == "down":
            sid = target_index
        else:
            raise InputError(f"direction must be 'up' or 'down', got {direction!r}")
        if not 0 <= sid < self.num_styles:
            raise InputError(f"no {direction} step renders stack index {target_index}")
        return sid

    def direction(self, name: str) -> RecurrentDirection:
        """The direction ``"up"`` or ``"down"``."""
        if name not in ("up", "down"):
            raise InputError(f"direction must be 'up' or 'down', got {name!r}")
        return self._directions[name]

    def networks(self) -> dict[str, nn.Module]:
        """The trainable sub-networks by name: ``global_up``, ``local_up``, ``refine_up``, ... ."""
        return dict(self.named_children())

    # -- recursion ----------------------------------------------------------------------------------
    def recurse(self, image: torch.Tensor, edge: torch.Tensor | None, start_index: int, direction: str,
                steps: int, *, refine: bool = True) -> list[StepOutput]:
        """Recurse ``steps`` times from stack index ``start_index``, feeding each output back in.

        Args:
            image: (B, 3, H, W) start image in [-1, 1].
            edge: (B, 1, H, W) its edge map in [0, 1] (None without decomposition).
            start_index: stack index of ``image`` (0 = ``min_ev``).
            direction: ``"up"`` or ``"down"``.
            steps: number of recursions.
            refine: run the refinement networks (and feed their output back).

        Returns:
            One :class:`StepOutput` per step, in order of generation.
        """
        net = self.direction(direction)
        sign = 1 if direction == "up" else -1
        outs: list[StepOutput] = []
        h_g = h_l = None
        img, edg = image, edge
        for k in range(1, steps + 1):
            target = start_index + sign * k
            out = net.step(img, edg, self.style_id(direction, target), h_g, h_l,
                           refine=refine and self.decomposition)
            outs.append(out)
            img, edg, h_g, h_l = out.image, out.edge, out.h_global, out.h_local
        return outs

    def forward(self, ldr: torch.Tensor, evs: Sequence[float] | None = None) -> torch.Tensor:
        """Alias of :meth:`predict_stack` (default EVs: the model's whole range)."""
        return self.predict_stack(ldr, self.evs if evs is None else evs)

    def _check_evs(self, evs: Sequence[float]) -> list[int]:
        out = []
        for ev in evs:
            if float(ev) != int(ev) or not self.min_ev <= ev <= self.max_ev:
                raise InputError(f"evs must be integers in [{self.min_ev}, {self.max_ev}] (1-EV recursion steps), "
                                 f"got {list(evs)}")
            out.append(int(ev))
        if 0 not in out:
            raise InputError(f"evs must contain 0 (the input), got {list(evs)}")
        return out

    def _check_ldr(self, ldr: torch.Tensor) -> None:
        check_ldr(ldr, "ldr", slack=1e-6)

    def _run(self, ldr: torch.Tensor, up_steps: int, down_steps: int
             ) -> tuple[torch.Tensor, torch.Tensor | None, dict[int, StepOutput]]:
        """Pad ``ldr`` to the size multiple, recurse; returns the network input (padded, [-1, 1]), the input's
        edge map (or None) and the step outputs by EV."""
        n, _, h, w = ldr.shape
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        x = ldr.clamp(0, 1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        edge = None
        if self.decomposition:
            from hdrbench.imaging.edges import canny_edges

            edge = canny_edges(x, channel_order_quirk=self.canny_channel_quirk)
        x = x * 2 - 1
        center = -self.min_ev  # stack index of EV 0
        by_ev: dict[int, StepOutput] = {}
        for k, out in enumerate(self.recurse(x, edge, center, "up", up_steps), start=1):
            by_ev[k] = out
        for k, out in enumerate(self.recurse(x, edge, center, "down", down_steps), start=1):
            by_ev[-k] = out
        return x, edge, by_ev

    def generate(self, ldr: torch.Tensor) -> GeneratedStack:
        """Run the whole recursion (EV ``min_ev..max_ev``) and return every network output.

        The same computation as :meth:`predict_stack`, kept in the networks' ranges and with the global and
        local outputs too: what the official ``HDR_model`` returns as ``pred_stack``, ``pred_int_stack`` and
        ``pred_edge``.

        Args:
            ldr: (N, 3, H, W) LDR images in [0, 1] (padded to a multiple of 32 inside, cropped back).

        Returns:
            A :class:`GeneratedStack`.
        """
        self._check_ldr(ldr)
        h, w = ldr.shape[-2:]
        x, edge, by_ev = self._run(ldr, self.max_ev, -self.min_ev)
        evs = self.evs
        image = torch.stack([x if ev == 0 else by_ev[ev].image for ev in evs], dim=1)[..., :h, :w]
        glob = torch.stack([x if ev == 0 else by_ev[ev].global_image for ev in evs], dim=1)[..., :h, :w]
        edges = None
        if self.decomposition:
            edges = torch.stack([edge if ev == 0 else by_ev[ev].edge for ev in evs], dim=1)[..., :h, :w]
        return GeneratedStack(evs, image, glob, edges)

    @staticmethod
    def stack_from(generated: GeneratedStack, ldr: torch.Tensor, evs: Sequence[float]) -> torch.Tensor:
        """The [0, 1] stack of ``evs`` (a subset of ``generated.evs`` containing 0) from :meth:`generate`'s output;
        the EV 0 entry is ``ldr`` bit for bit. Equals :meth:`predict_stack` ``(ldr, evs)``."""
        idx = [generated.evs.index(int(ev)) for ev in evs]
        stack = (generated.image[:, idx] + 1) / 2
        stack[:, [int(ev) for ev in evs].index(0)] = ldr
        return stack.clamp(0, 1)

    def predict_stack(self, ldr: torch.Tensor, evs: Sequence[float]) -> torch.Tensor:
        """Generate the exposure stack of a single LDR image.

        Args:
            ldr: (N, 3, H, W) LDR images in [0, 1] (any H, W: padded by edge replication to a multiple
                of 32 for the networks, cropped back afterwards).
            evs: target EVs relative to the input, integers in [min_ev, max_ev], containing 0.

        Returns:
            (N, E, 3, H, W) stack in [0, 1], E = len(evs), in the order of ``evs``; the EV 0 entry is
            the input itself.
        """
        self._check_ldr(ldr)
        want = self._check_evs(evs)
        h, w = ldr.shape[-2:]
        up_steps, down_steps = max(max(want), 0), max(-min(want), 0)
        x, _, outs = self._run(ldr, up_steps, down_steps)
        by_ev = {ev: out.image for ev, out in outs.items()}
        by_ev[0] = x
        stack = torch.stack([by_ev[ev] for ev in want], dim=1)[..., :h, :w]
        stack = (stack + 1) / 2
        stack[:, want.index(0)] = ldr  # the EV 0 entry is the input, bit for bit
        return stack.clamp(0, 1)

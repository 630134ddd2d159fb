"""Deep chain HDRI: chains of dilated-convolution networks EV0 -> +-1 -> +-2 -> +-3.

Provenance:
    Paper: S. Lee, G. H. An, S.-J. Kang, "Deep Chain HDRI: Reconstructing a High Dynamic Range Image
    from a Single Low Dynamic Range Image", IEEE Access 6:49913-49924, 2018; arXiv:1801.06277.
    Official code: none published (the project page siyeong-lee.github.io/hdr_vds_dataset hosts the
    VDS dataset only), so there are no official weights and no licence to inherit.

What is known (abstract and project page):
    * a CNN of dilated convolutions; from EV0 it infers EV +-1, +-2, +-3 sequentially (a chain);
    * the networks for EVs further from the middle are deeper;
    * the six inferred images plus the input form the stack, merged with Debevec-Malik.

What is inferred (designed here from that description; nothing below is taken from the paper's text):
    * one network per link (EV k-1 -> k for k = 1, 2, 3 upward and the mirror downward), each a
      Conv3x3 stem, ``depth`` residual blocks of two dilated Conv3x3 (dilations cycling 1, 2, 4, 8) with
      ReLU, and a Conv3x3 to an RGB residual added to the link's input and clipped to [0, 1];
    * link k has ``base_depth + (k - 1) * depth_step`` blocks (defaults 2, 3, 4), "deeper for larger EV gaps";
    * training: L1 between each link's output and the ground-truth frame, with the ground-truth frame of
      the previous EV as the link's input (teacher forcing);
    * widths and depths are this project's choice, so parameter counts are not comparable to the paper's.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hdrbench.checks import check_ldr
from hdrbench.errors import InputError
from hdrbench.models.baselines._common import check_evs
from hdrbench.models.registry import ARCHS

_DILATIONS = (1, 2, 4, 8)


class _DilatedBlock(nn.Module):
    def __init__(self, c: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, dilation, dilation), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, 1, dilation, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ChainLink(nn.Module):
    """One link: an LDR frame (N, 3, H, W) in [0, 1] -> the frame one EV further, in [0, 1].

    Args:
        width: feature channels.
        depth: number of dilated residual blocks.
    """

    def __init__(self, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1), nn.ReLU())
        self.blocks = nn.Sequential(*[_DilatedBlock(width, _DILATIONS[i % len(_DILATIONS)]) for i in range(depth)])
        self.head = nn.Conv2d(width, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.head(self.blocks(self.stem(x)))).clamp(0.0, 1.0)


class DeepChainHDRI(nn.Module):
    """Inference model: ``links`` links upward and downward.

    Args:
        width: channels of every link.
        base_depth: blocks of the first link; link k has ``base_depth + (k - 1) * depth_step``.
        depth_step: extra blocks per EV of distance from the input.
        links: links per direction (3: EV +-1..+-3).
    """

    kind = "stack"
    inverse_crf = "debevec"

    def __init__(self, width: int = 64, base_depth: int = 2, depth_step: int = 1, links: int = 3) -> None:
        super().__init__()
        depths = [base_depth + k * depth_step for k in range(links)]
        self.up = nn.ModuleList(ChainLink(width, d) for d in depths)
        self.down = nn.ModuleList(ChainLink(width, d) for d in depths)

    def chain(self, ldr: torch.Tensor, direction: int, steps: int) -> list[torch.Tensor]:
        """Frames at EV direction*1 .. direction*steps from ``ldr`` (N, 3, H, W) in [0, 1]."""
        links = self.up if direction > 0 else self.down
        if steps > len(links):
            raise InputError(f"Deep chain HDRI has {len(links)} links per direction; EV {direction * steps} requested")
        out, cur = [], ldr
        for link in links[:steps]:
            cur = link(cur)
            out.append(cur)
        return out

    def predict_stack(self, ldr: torch.Tensor, evs: list[float]) -> torch.Tensor:
        """Stack (N, E, 3, H, W) in [0, 1] at whole-stop ``evs`` within +-links; EV 0 is the input."""
        check_ldr(ldr)
        evs = check_evs(evs, integer=True)
        frames = {0: ldr}
        for sign in (1, -1):
            steps = int(max([sign * e for e in evs] + [0]))
            for k, f in enumerate(self.chain(ldr, sign, steps), start=1):
                frames[sign * k] = f
        return torch.stack([frames[int(e)] for e in evs], dim=1)


@ARCHS.register("deep-chain-hdri")
def build_deep_chain_hdri(width: int = 64, base_depth: int = 2, depth_step: int = 1, links: int = 3,
                          weights: str | None = None) -> DeepChainHDRI:
    """Deep chain HDRI as designed from the paper's description (no official code or weights exist)."""
    if weights:
        raise InputError(f"Deep chain HDRI has no official weights (no code was released); got weights={weights!r}")
    return DeepChainHDRI(width, base_depth, depth_step, links)

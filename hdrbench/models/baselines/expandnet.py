"""ExpandNet: a direct single-image LDR -> HDR network with local, dilated and global branches.

Provenance:
    Paper: D. Marnerides, T. Bashford-Rogers, J. Hatchett, K. Debattista, "ExpandNet: A Deep
    Convolutional Neural Network for High Dynamic Range Expansion from Low Dynamic Range Content",
    Computer Graphics Forum (Eurographics) 37(2), 2018; arXiv:1803.02266.
    Official repository: github.com/dmarnerides/hdr-expandnet (PyTorch; ships ``weights.pth``).
    Licence of the official code and weights: BSD-3-Clause-Clear, (c) 2017 Demetris Marnerides. This
    module is a reimplementation from the published description; no code was copied.

What is known (official model description):
    * local branch: Conv3x3 3->64, Conv3x3 64->128, SELU after each;
    * dilated branch: three Conv3x3 (dilation 2) + SELU (3->64->64->64) and a last Conv3x3 dilation 2
      64->64 without activation;
    * global branch: the input bilinearly resized to 256x256, six Conv3x3 stride 2 + SELU (->64) and a
      Conv4x4 to a 1x1x64 vector broadcast over the image;
    * fusion: concat (128 + 64 + 64) -> Conv1x1 256->64 + SELU -> Conv1x1 64->3 -> sigmoid;
    * 456,899 parameters; output relative HDR in [0, 1] (the training targets are min-max mapped).

What is inferred or differs:
    * The official inference runs on patches with a 20-px overlap (a memory measure); here the whole
      image runs at once, which removes the patch seams and changes nothing else.
    * ``width`` scales every branch for the tiny CI preset; ``width=64`` is the official network.
    * ``load_official_weights`` maps the official key names (``local_net.i.0``, ``mid_net``,
      ``glob_net``, ``end_net``) onto this module; the layout was taken from the official model
      description, the file itself was not available when this was written.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.checks import check_ldr
from hdrbench.models.baselines._common import load_mapped, load_state_file
from hdrbench.models.registry import ARCHS

#: Side of the square image the global branch sees (fixed by the official design).
GLOBAL_SIZE = 256


class _ConvSELU(nn.Sequential):
    """Conv2d followed by SELU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, dilation)
        self.act = nn.SELU()


class ExpandNet(nn.Module):
    """ExpandNet; ``predict_hdr`` maps an LDR image to relative linear HDR in [0, 1].

    Args:
        width: base channel count (64 = official; the local branch uses 2x width).
    """

    kind = "direct"

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = int(width)
        self.width = w
        self.local_branch = nn.Sequential(_ConvSELU(3, w, 3, 1, 1), _ConvSELU(w, 2 * w, 3, 1, 1))
        self.dilated_branch = nn.Sequential(
            _ConvSELU(3, w, 3, 1, 2, 2), _ConvSELU(w, w, 3, 1, 2, 2), _ConvSELU(w, w, 3, 1, 2, 2),
            nn.Conv2d(w, w, 3, 1, 2, 2),
        )
        # Six stride-2 convolutions take 256 -> 4; the 4x4 convolution then yields one feature vector.
        glob = [_ConvSELU(3, w, 3, 2, 1)] + [_ConvSELU(w, w, 3, 2, 1) for _ in range(5)]
        self.global_branch = nn.Sequential(*glob, nn.Conv2d(w, w, 4, 1, 0))
        self.fusion = nn.Sequential(_ConvSELU(4 * w, w, 1), nn.Conv2d(w, 3, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network forward pass.

        Args:
            x: (N, 3, H, W) LDR in [0, 1].

        Returns:
            (N, 3, H, W) relative linear HDR in [0, 1].
        """
        n, _, h, w = x.shape
        local = self.local_branch(x)
        dilated = self.dilated_branch(x)
        small = F.interpolate(x, size=(GLOBAL_SIZE, GLOBAL_SIZE), mode="bilinear", align_corners=False)
        glob = self.global_branch(small).expand(n, -1, h, w)
        return self.fusion(torch.cat([local, dilated, glob], dim=1))

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        """Relative linear HDR (N, 3, H, W) in [0, 1] from an LDR batch (N, 3, H, W) in [0, 1]."""
        check_ldr(ldr)
        return self(ldr)


# Official key prefix -> ours. The official module names are local_net, mid_net, glob_net, end_net; each
# convolution followed by SELU sits at index 0 of a Sequential, the bare convolutions have no inner index.
_PREFIXES = {"local_net": "local_branch", "mid_net": "dilated_branch", "glob_net": "global_branch", "end_net": "fusion"}


def official_key_to_ours(key: str) -> str | None:
    """Rename an official ExpandNet state-dict key (``local_net.0.0.weight``) to this module's key."""
    parts = key.split(".")
    if parts[0] not in _PREFIXES:
        return key  # left for load_mapped to report as unexpected
    if len(parts) == 4 and parts[2] == "0":
        return f"{_PREFIXES[parts[0]]}.{parts[1]}.conv.{parts[3]}"
    if len(parts) == 3:
        return f"{_PREFIXES[parts[0]]}.{parts[1]}.{parts[2]}"
    return key


def load_official_weights(model: ExpandNet, path: str | os.PathLike) -> ExpandNet:
    """Load the official ``weights.pth`` into ``model`` (which must have ``width=64``).

    Raises:
        ImageReadError: unreadable file. InputError: not an ExpandNet state dict of this size.
    """
    state = load_state_file(path)
    load_mapped(model, state, official_key_to_ours, str(path))
    return model


@ARCHS.register("expandnet")
def build_expandnet(width: int = 64, weights: str | None = None) -> ExpandNet:
    """ExpandNet (456,899 parameters at ``width=64``); ``weights`` is a local official ``weights.pth``."""
    model = ExpandNet(width=width)
    if weights:
        load_official_weights(model, weights)
    return model

"""The refinement network: fuses the input, the global output and the edge map into the final image.

Input: 7 channels, the input image (3, [-1, 1]), the global network's output (3, [-1, 1]; the paper
calls it the relative-EV image) and the local network's edge map (1, [0, 1]). Output: averaged with the
global output, ``(tanh + global) / 2``, so the refinement learns a correction of the global rendering.

Structure for ``base=16`` (the official ``CombineNet_up/down``):

* stem: 3x3 conv 7 -> 16 + Swish;
* encoder: 5 x [DoubleBlock(n -> 2n, 3x3, 3x3, no norm) + 2x2 average pooling], 16 -> 512 channels;
* middle: ConvBlock(512 -> 512, 3x3);
* decoder: 5 x [concatenate the skip -> bilinear x2 upsampling -> DoubleBlock(2n -> n/2, 3x3 plain,
  3x3 instance norm)];
* head: concatenate the stem -> 3x3 conv 2*base -> 3 + tanh.

At ``base=16`` this has 11,007,971 parameters (11.0 M).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.models.proposed.blocks import ConvBlock, DoubleBlock

LEVELS = 5


class RefineNet(nn.Module):
    """Refinement network of one direction.

    Args:
        base: channels after the stem (16 in the paper).
    """

    size_multiple = 2 ** LEVELS

    def __init__(self, base: int = 16) -> None:
        super().__init__()
        in_ch = 7
        self.stem = ConvBlock(in_ch, base, 3)
        chans = [base * 2 ** k for k in range(LEVELS + 1)]  # 16 ... 512
        self.encoder = nn.ModuleList(DoubleBlock(chans[k], chans[k + 1]) for k in range(LEVELS))
        self.middle = ConvBlock(chans[-1], chans[-1], 3)
        self.decoder = nn.ModuleList(
            DoubleBlock(2 * chans[LEVELS - k], chans[LEVELS - k] // 2, norm2="in") for k in range(LEVELS)
        )
        self.head = nn.Conv2d(2 * base, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, global_image: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        """Refine the global rendering.

        Args:
            image: (B, 3, H, W) input of this recursion in [-1, 1]; H and W multiples of 32.
            global_image: (B, 3, H, W) global network output in [-1, 1].
            edge: (B, 1, H, W) predicted edge map in [0, 1].

        Returns:
            (B, 3, H, W) refined image in [-1, 1].
        """
        stem = self.stem(torch.cat([image, global_image, edge], dim=1))
        skips = []
        y = stem
        for block in self.encoder:
            y = F.avg_pool2d(block(y), 2)
            skips.append(y)
        y = self.middle(y)
        for block, skip in zip(self.decoder, reversed(skips)):
            y = torch.cat([y, skip], dim=1)
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = block(y)
        out = torch.tanh(self.head(torch.cat([y, stem], dim=1)))
        return (out + global_image) / 2

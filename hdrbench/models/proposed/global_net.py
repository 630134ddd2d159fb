"""The global network: a 5-level U-Net that renders the next exposure's colours and tones.

Structure (channel counts for ``base=32``, the official configuration; Appendix B of the paper and
the official code's ``Generator_up/down``):

* stem: 3x3 conv 3 -> 32 + Swish;
* encoder: 5 x [DoubleBlock(n -> 2n, 3x3, 3x3, no norm) + 2x2 average pooling], 32 -> 1024 channels,
  spatial size / 32;
* bottleneck: :class:`RecurrentUnit` (Conv-GRU whose hidden state is carried across recursions);
* decoder: 5 x [concatenate the skip -> bilinear x2 upsampling -> DoubleBlock(2n -> n/2, 1x1 plain,
  3x3 with conditional instance normalisation)];
* head: concatenate the stem features -> 3x3 conv 2*base -> 3 + tanh; the output is averaged with
  the input (``(tanh + x) / 2``), a residual form that keeps the image in [-1, 1].

At ``base=32`` this has 98,918,403 parameters (98.9 M), the official hand count.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.models.proposed.blocks import ConvBlock, DoubleBlock, RecurrentUnit, StyleId

LEVELS = 5


class GlobalNet(nn.Module):
    """Global (colour/tone) network of one direction.

    Args:
        base: channels after the stem (32 in the paper); level k has ``base * 2**k`` channels.
        recurrent: Conv-GRU bottleneck (True) or a plain convolutional bottleneck (ablation).
        cin: conditional instance normalisation in the decoder (True) or plain instance norm (ablation).
        num_styles: CIN parameter sets (one per target EV).
        in_ch: image channels (3).
    """

    #: The input's height and width must be multiples of this (5 poolings of 2).
    size_multiple = 2 ** LEVELS

    def __init__(self, base: int = 32, *, recurrent: bool = True, cin: bool = True, num_styles: int = 6,
                 in_ch: int = 3) -> None:
        super().__init__()
        self.stem = ConvBlock(in_ch, base, 3)
        chans = [base * 2 ** k for k in range(LEVELS + 1)]  # 32, 64, ..., 1024
        self.encoder = nn.ModuleList(DoubleBlock(chans[k], chans[k + 1]) for k in range(LEVELS))
        self.bottleneck = RecurrentUnit(chans[-1], recurrent=recurrent)
        norm = "cin" if cin else "in"
        # Decoder level k (from the bottom) sees [features, skip] with 2 * chans[LEVELS - k] channels.
        self.decoder = nn.ModuleList(
            DoubleBlock(2 * chans[LEVELS - k], chans[LEVELS - k] // 2, k1=1, k2=3, norm2=norm, num_styles=num_styles)
            for k in range(LEVELS)
        )
        self.head = nn.Conv2d(2 * base, in_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, style: StyleId, hidden: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Render the target exposure.

        Args:
            x: (B, 3, H, W) image in [-1, 1]; H and W multiples of 32.
            style: target-EV style id (int or (B,) long).
            hidden: Conv-GRU state from the previous recursion, (B, 32*base, H/32, W/32), or None.

        Returns:
            ``(image, hidden)``: image (B, 3, H, W) in [-1, 1] and the new hidden state (None when the
            bottleneck is not recurrent).
        """
        stem = self.stem(x)
        skips = []
        y = stem
        for block in self.encoder:
            y = F.avg_pool2d(block(y), 2)
            skips.append(y)
        y, hidden = self.bottleneck(y, hidden)
        for block, skip in zip(self.decoder, reversed(skips)):
            y = torch.cat([y, skip], dim=1)
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = block(y, style)
        out = torch.tanh(self.head(torch.cat([y, stem], dim=1)))
        return (out + x) / 2, hidden

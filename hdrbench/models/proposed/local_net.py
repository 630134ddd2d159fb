"""The local network: a 4-level U-Net that predicts the edge map of the next exposure.

Input: 2 channels, the grey image (mean of the RGB channels in [-1, 1]) and the current edge map
(0/1 Canny edges of the input, or the previous recursion's prediction). Output: the edge map of the
target exposure in [0, 1] (sigmoid), trained against the target's Canny edges.

Structure for ``base=16`` (the official ``Structure_up/down``):

* stem: 3x3 conv 2 -> 16 + Swish;
* encoder: 4 x [DoubleBlock(n -> 2n, 3x3 plain, 3x3 CIN) + 2x2 pooling], 16 -> 256 channels;
* bottleneck: :class:`RecurrentUnit` (Conv-GRU, hidden state carried across recursions);
* decoder: 4 x [concatenate the skip -> x2 upsampling -> DoubleBlock(2n -> n/2, 1x1 plain, 3x3 CIN)];
* head: concatenate the stem -> ConvBlock(2*base -> 2, 3x3, CIN, Swish) -> concatenate the input ->
  3x3 conv 4 -> 1 + sigmoid.

The official code pools with max pooling and upsamples with nearest neighbour here (the paper's text
says average pooling and bilinear upsampling for every sub-network); the code's choice is the default
and both are constructor options. Neither changes the parameter count: 6,188,815 at ``base=16``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.errors import InputError
from hdrbench.models.proposed.blocks import ConvBlock, DoubleBlock, RecurrentUnit, StyleId

LEVELS = 4


class LocalNet(nn.Module):
    """Local (edge structure) network of one direction.

    Args:
        base: channels after the stem (16 in the paper).
        recurrent: Conv-GRU bottleneck (True) or a plain bottleneck (ablation).
        cin: conditional instance normalisation (True) or plain instance norm (ablation).
        num_styles: CIN parameter sets (one per target EV).
        pool: ``"max"`` (official code) or ``"avg"`` (paper text).
        upsample: ``"nearest"`` (official code) or ``"bilinear"`` (paper text).
        head_style: a fixed style id for the head's CIN whatever the step's style (None: the step's
            style). The official up network's head ignores the step and always uses style 0
            (``Structure_up`` calls its output block without the style); ``ProposedModel`` sets 0 here
            for the up direction when ``official_local_head`` is on.
    """

    size_multiple = 2 ** LEVELS

    def __init__(self, base: int = 16, *, recurrent: bool = True, cin: bool = True, num_styles: int = 6,
                 pool: str = "max", upsample: str = "nearest", head_style: int | None = None) -> None:
        super().__init__()
        if pool not in ("max", "avg"):
            raise InputError(f"local net pool must be 'max' or 'avg', got {pool!r}")
        if upsample not in ("nearest", "bilinear"):
            raise InputError(f"local net upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        self.pool = pool
        self.upsample = upsample
        self.head_style = head_style
        norm = "cin" if cin else "in"
        in_ch = 2
        self.stem = ConvBlock(in_ch, base, 3)
        chans = [base * 2 ** k for k in range(LEVELS + 1)]  # 16, 32, 64, 128, 256
        self.encoder = nn.ModuleList(
            DoubleBlock(chans[k], chans[k + 1], norm2=norm, num_styles=num_styles) for k in range(LEVELS)
        )
        self.bottleneck = RecurrentUnit(chans[-1], recurrent=recurrent)
        self.decoder = nn.ModuleList(
            DoubleBlock(2 * chans[LEVELS - k], chans[LEVELS - k] // 2, k1=1, k2=3, norm2=norm, num_styles=num_styles)
            for k in range(LEVELS)
        )
        self.head = ConvBlock(2 * base, 2, 3, norm=norm, num_styles=num_styles)
        self.out = nn.Conv2d(2 + in_ch, 1, 3, padding=1)

    def forward(self, gray: torch.Tensor, edge: torch.Tensor, style: StyleId, hidden: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predict the target exposure's edge map.

        Args:
            gray: (B, 1, H, W) grey image in [-1, 1]; H and W multiples of 16.
            edge: (B, 1, H, W) current edge map in [0, 1].
            style: target-EV style id.
            hidden: Conv-GRU state (B, 16*base, H/16, W/16) from the previous recursion, or None.

        Returns:
            ``(edge, hidden)``: predicted edge probability (B, 1, H, W) in [0, 1] and the new state.
        """
        x = torch.cat([gray, edge], dim=1)
        stem = self.stem(x)
        skips = []
        y = stem
        for block in self.encoder:
            y = block(y, style)
            y = F.max_pool2d(y, 2) if self.pool == "max" else F.avg_pool2d(y, 2)
            skips.append(y)
        y, hidden = self.bottleneck(y, hidden)
        for block, skip in zip(self.decoder, reversed(skips)):
            y = torch.cat([y, skip], dim=1)
            if self.upsample == "nearest":
                y = F.interpolate(y, scale_factor=2, mode="nearest")
            else:
                y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = block(y, style)
        y = self.head(torch.cat([y, stem], dim=1), style if self.head_style is None else self.head_style)
        return torch.sigmoid(self.out(torch.cat([y, x], dim=1))), hidden

"""Building blocks shared by the proposed method's three sub-networks.

Every block works on NCHW float tensors of any spatial size. Normalisation choices are strings so that
the ablation switches (conditional vs plain instance normalisation) change one argument, not a class:

* ``"none"``: no normalisation;
* ``"in"``: instance normalisation with one learned affine pair per channel;
* ``"cin"``: conditional instance normalisation, one learned affine pair per channel *and per style*;
  the style is the target exposure (one parameter set per target EV), picked by an integer id.
"""

from __future__ import annotations

from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.errors import InputError

#: A style id: one int for the whole batch or a (B,) integer tensor (one id per sample).
StyleId = Union[int, torch.Tensor, None]

NORMS = ("none", "in", "cin")


class Swish(nn.Module):
    """Swish activation ``x * sigmoid(x)`` (Ramachandran et al. 2017; identical to SiLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


class ConditionalInstanceNorm2d(nn.Module):
    """Instance normalisation whose affine scale and shift are chosen by a style id.

    Dumoulin et al. 2017: the activations are normalised per sample and channel, then scaled and
    shifted by the parameter set of the requested style. Here a style is a target EV, so the same
    decoder renders every exposure with its own statistics.

    Args:
        channels: number of channels C.
        num_styles: number of parameter sets S (6 in the paper: one per target EV of a 7-image stack).
        eps: variance floor of the normalisation.
    """

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        if num_styles < 1:
            raise InputError(f"num_styles must be >= 1, got {num_styles}")
        self.channels = channels
        self.num_styles = num_styles
        self.eps = eps
        # Same initialisation as an affine InstanceNorm2d: identity transform for every style.
        self.weight = nn.Parameter(torch.ones(num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, style: StyleId) -> torch.Tensor:
        """Normalise ``x`` (B, C, H, W) and apply the affine pair of ``style`` (int or (B,) long)."""
        if style is None:
            raise InputError("conditional instance normalisation needs a style id (the target EV index)")
        b = x.shape[0]
        if isinstance(style, int):
            if not 0 <= style < self.num_styles:
                raise InputError(f"style id {style} out of range [0, {self.num_styles})")
            w = self.weight[style].view(1, -1, 1, 1)
            s = self.bias[style].view(1, -1, 1, 1)
        else:
            style = torch.as_tensor(style, device=x.device).long().reshape(-1)
            if style.numel() != b:
                raise InputError(f"style ids have {style.numel()} entries for a batch of {b}")
            if bool(((style < 0) | (style >= self.num_styles)).any()):
                raise InputError(f"style ids {style.tolist()} out of range [0, {self.num_styles})")
            w = self.weight[style].view(b, -1, 1, 1)
            s = self.bias[style].view(b, -1, 1, 1)
        y = F.instance_norm(x, eps=self.eps)
        return y * w.to(y.dtype) + s.to(y.dtype)


class ConvBlock(nn.Module):
    """Convolution -> normalisation -> activation ('same' padding, stride 1).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel_size: odd kernel size (1 or 3 in this model).
        norm: ``"none"``, ``"in"`` or ``"cin"`` (see the module docstring).
        num_styles: parameter sets of a ``"cin"`` normalisation.
        act: ``"swish"`` or ``"none"``.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, *, norm: str = "none", num_styles: int = 6,
                 act: str = "swish") -> None:
        super().__init__()
        if norm not in NORMS:
            raise InputError(f"unknown norm {norm!r}; expected one of {NORMS}")
        if act not in ("swish", "none"):
            raise InputError(f"unknown activation {act!r}; expected 'swish' or 'none'")
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
        self.norm_kind = norm
        if norm == "in":
            self.norm = nn.InstanceNorm2d(out_ch, affine=True)
        elif norm == "cin":
            self.norm = ConditionalInstanceNorm2d(out_ch, num_styles)
        else:
            self.norm = None
        self.act = Swish() if act == "swish" else nn.Identity()

    def forward(self, x: torch.Tensor, style: StyleId = None) -> torch.Tensor:
        y = self.conv(x)
        if self.norm_kind == "cin":
            y = self.norm(y, style)
        elif self.norm is not None:
            y = self.norm(y)
        return self.act(y)


class DoubleBlock(nn.Module):
    """Two :class:`ConvBlock` s: ``in_ch -> out_ch`` (kernel ``k1``) then ``out_ch -> out_ch`` (kernel ``k2``).

    Args:
        in_ch, out_ch: channels.
        k1, k2: kernel sizes of the first and second convolution.
        norm1, norm2: normalisation of the first and second convolution.
        num_styles: parameter sets of any ``"cin"`` normalisation.
    """

    def __init__(self, in_ch: int, out_ch: int, *, k1: int = 3, k2: int = 3, norm1: str = "none",
                 norm2: str = "none", num_styles: int = 6) -> None:
        super().__init__()
        self.block1 = ConvBlock(in_ch, out_ch, k1, norm=norm1, num_styles=num_styles)
        self.block2 = ConvBlock(out_ch, out_ch, k2, norm=norm2, num_styles=num_styles)

    def forward(self, x: torch.Tensor, style: StyleId = None) -> torch.Tensor:
        return self.block2(self.block1(x, style), style)


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell (Ballas et al. 2016) with 'same' padding.

    ``z = sigmoid(conv_z([x, h]))``, ``r = sigmoid(conv_r([x, h]))``,
    ``h' = (1 - z) * h + z * tanh(conv_h([x, r * h]))``; ``h`` starts at zeros.

    Args:
        channels: channels C of the input and of the hidden state.
        kernel_size: kernel of the three gate convolutions.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.channels = channels
        self.update_gate = nn.Conv2d(2 * channels, channels, kernel_size, padding=pad)
        self.reset_gate = nn.Conv2d(2 * channels, channels, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(2 * channels, channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """Return the new hidden state (B, C, H, W) from the input ``x`` and the state ``h`` (or None)."""
        if h is None:
            h = torch.zeros_like(x)
        elif h.shape != x.shape:
            raise InputError(f"Conv-GRU hidden state has shape {tuple(h.shape)}, input has {tuple(x.shape)}")
        xh = torch.cat([x, h], dim=1)
        z = torch.sigmoid(self.update_gate(xh))
        r = torch.sigmoid(self.reset_gate(xh))
        cand = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return h * (1 - z) + cand * z


class RecurrentUnit(nn.Module):
    """The bottleneck: a Conv-GRU cell followed by a :class:`DoubleBlock` on the new hidden state.

    With ``recurrent=False`` (the ablation's plain bottleneck) the GRU is removed and the
    :class:`DoubleBlock` works on the input directly; the returned hidden state is then ``None``.

    Args:
        channels: bottleneck channels C.
        recurrent: keep the Conv-GRU cell.
    """

    def __init__(self, channels: int, *, recurrent: bool = True) -> None:
        super().__init__()
        self.recurrent = recurrent
        self.gru = ConvGRUCell(channels) if recurrent else None
        self.block = DoubleBlock(channels, channels)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(features, hidden)`` for bottleneck features ``x`` (B, C, h, w)."""
        if self.gru is None:
            return self.block(x), None
        h = self.gru(x, h)
        return self.block(h), h

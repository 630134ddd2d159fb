"""HDRCNN: VGG16 auto-encoder that predicts saturated highlights in the log domain.

Provenance:
    Paper: G. Eilertsen, J. Kronander, G. Denes, R. K. Mantiuk, J. Unger, "HDR image reconstruction
    from a single exposure using deep CNNs", ACM TOG 36(6) (SIGGRAPH Asia) 2017; arXiv:1710.07480.
    Official repository: github.com/gabrieleilertsen/hdrcnn (TensorFlow 1 + TensorLayer; weights
    ``hdrcnn_params.npz``). Licence of the official code: BSD 3-Clause, (c) 2017 Gabriel Eilertsen.
    Reimplemented from the paper and the description of the official network; no code was copied.

What is known:
    * encoder: VGG16 conv1-conv5 (13 Conv3x3 + ReLU, max pooling after each block) and a Conv3x3
      512->512 (+ BN + ReLU) on top, at 1/32 resolution;
    * decoder: five 4x4 stride-2 transposed convolutions (512, 512, 256, 128, 64 outputs); skip
      connections from each VGG block output (before pooling) and from the input, mapped into the
      log-HDR domain with log((f / 255)^2 + 1/255), concatenated and fused by a 1x1 convolution;
      a 1x1 convolution to 3 log-HDR channels;
    * output: y_hat = exp(pred) - 1/255, highlight mask alpha = clip((max_c(x) - tau) / (1 - tau), 0, 1)
      with tau = 0.95, HDR = (1 - alpha) * x^2 + alpha * y_hat (gamma-2 linearisation of the input);
    * loss: masked log-domain L2 split into illumination and reflectance, lambda = 0.5, eps = 1/255.

What is inferred or differs:
    * The encoder sees the input in [0, 255] minus the per-channel mean 255 * (0.485, 0.456, 0.406)
      (VGG preprocessing). The encoder is randomly initialised unless a local VGG16 state dict (the
      torchvision layout, ``features.N``) is supplied via ``vgg_weights``; its ImageNet normalisation
      is folded exactly into the first convolution on load.
    * The 1x1 skip-fusion convolutions start as the sum of the two inputs (weights [I, I]), so that
      at initialisation a skip connection adds the log-domain encoder feature to the decoder feature.
    * BatchNorm + ReLU after every transposed convolution; BN on the final 3-channel layer before the
      input fusion, as the official decoder does; these follow the description, not a line-by-line check.
    * Convolutions followed by BatchNorm have no bias (the official TensorLayer layers have one, which
      BatchNorm's shift makes redundant: its gradient is zero in training).
    * ``width`` scales every channel count for the tiny CI preset (64 = VGG16).
    * The official ``hdrcnn_params.npz`` is a TensorLayer parameter list without names; loading it is
      not supported (the card says so), so published HDRCNN numbers need retraining under the harness.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.checks import check_ldr
from hdrbench.models.baselines._common import load_state_file, pad_to_multiple
from hdrbench.errors import InputError
from hdrbench.models.registry import ARCHS

#: Highlight threshold of the official output blend.
TAU = 0.95
#: Offset of the log domain (one 8-bit code value).
EPS = 1.0 / 255.0
#: VGG channel means on the [0, 255] scale (torchvision's ImageNet statistics).
_VGG_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_VGG_STD = (0.229, 0.224, 0.225)
#: Convolutions per VGG16 block.
_VGG_BLOCKS = (2, 2, 3, 3, 3)


def highlight_mask(ldr: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """Blend mask alpha = clip((max_c(x) - tau) / (1 - tau), 0, 1).

    Args:
        ldr: (N, 3, H, W) in [0, 1].
        tau: threshold (0.95 in HDRCNN; 0.88 = 1 - 0.12 in SingleHDR's hallucination stage).

    Returns:
        (N, 1, H, W) in [0, 1]; 0 below ``tau``, 1 at full saturation.
    """
    return ((ldr.amax(dim=1, keepdim=True) - tau) / (1.0 - tau)).clamp(0.0, 1.0)


def log_skip(feature: torch.Tensor) -> torch.Tensor:
    """Map an LDR-domain feature (0-255 scale) into the log-HDR domain: log((f / 255)^2 + 1/255)."""
    return torch.log((feature / 255.0) ** 2 + EPS)


class SkipFusion(nn.Module):
    """Concatenate the decoder feature with a log-domain skip and fuse with a 1x1 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, 1)
        with torch.no_grad():
            eye = torch.eye(channels)[:, :, None, None]
            self.conv.weight.copy_(torch.cat([eye, eye], dim=1))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x, log_skip(skip)], dim=1))


class HDRCNN(nn.Module):
    """HDRCNN; ``predict_hdr`` returns relative linear HDR in which unsaturated pixels equal x^2.

    Args:
        width: base channel count (64 = VGG16).
        tau: highlight threshold of the output blend.
    """

    kind = "direct"

    def __init__(self, width: int = 64, tau: float = TAU) -> None:
        super().__init__()
        w = int(width)
        self.tau = float(tau)
        block_ch = [w, 2 * w, 4 * w, 8 * w, 8 * w]
        self.encoder = nn.ModuleList()
        cin = 3
        for n_conv, c in zip(_VGG_BLOCKS, block_ch):
            convs = []
            for _ in range(n_conv):
                convs += [nn.Conv2d(cin, c, 3, 1, 1), nn.ReLU()]
                cin = c
            self.encoder.append(nn.Sequential(*convs))
        # Convolutions followed by BatchNorm carry no bias: BN's shift makes it redundant (its gradient is 0).
        self.latent = nn.Sequential(nn.Conv2d(8 * w, 8 * w, 3, 1, 1, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU())
        dec_ch = [8 * w, 8 * w, 4 * w, 2 * w, w]
        self.deconvs = nn.ModuleList()
        cin = 8 * w
        for c in dec_ch:
            self.deconvs.append(nn.Sequential(nn.ConvTranspose2d(cin, c, 4, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()))
            cin = c
        # Skips from VGG blocks 5..2 enter before deconvolutions 2..5; block 1 before the output layer.
        self.fusions = nn.ModuleList(SkipFusion(c) for c in [8 * w, 8 * w, 4 * w, 2 * w, w])
        self.to_rgb = nn.Sequential(nn.Conv2d(w, 3, 1, bias=False), nn.BatchNorm2d(3))
        self.input_fusion = SkipFusion(3)
        self.register_buffer("vgg_mean", torch.tensor(_VGG_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-domain HDR prediction.

        Args:
            x: (N, 3, H, W) LDR in [0, 1]; H and W multiples of 32.

        Returns:
            (N, 3, H, W) log(HDR + 1/255) prediction (meaningful where the highlight mask is > 0).
        """
        x255 = x * 255.0
        h = x255 - self.vgg_mean
        skips = []
        for block in self.encoder:
            h = block(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.latent(h)
        h = self.deconvs[0](h)
        for i in range(1, 5):
            h = self.deconvs[i](self.fusions[i - 1](h, skips[5 - i]))
        h = self.to_rgb(self.fusions[4](h, skips[0]))
        return self.input_fusion(h, x255)

    def blend(self, ldr: torch.Tensor, log_pred: torch.Tensor) -> torch.Tensor:
        """Official output: (1 - alpha) * x^2 + alpha * (exp(pred) - 1/255), relative linear HDR (N, 3, H, W)."""
        alpha = highlight_mask(ldr, self.tau)
        return (1.0 - alpha) * ldr**2 + alpha * (torch.exp(log_pred) - EPS)

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        """Relative linear HDR (N, 3, H, W) from LDR (N, 3, H, W) in [0, 1] (any size; padded internally)."""
        check_ldr(ldr)
        x, (h, w) = pad_to_multiple(ldr, 32)
        log_pred = self(x)[..., :h, :w]
        return self.blend(ldr, log_pred).clamp_min(0.0)


def load_vgg16_encoder(model: HDRCNN, path: str | os.PathLike) -> HDRCNN:
    """Initialise the encoder from a local VGG16 state dict (torchvision layout, ImageNet-normalised input).

    The 13 ``features.N`` convolutions are taken in order; the first is rescaled by 1 / (255 * std) per
    input channel so that the network's [0, 255] mean-subtracted input reproduces torchvision's
    (x - mean) / std exactly.

    Raises:
        ImageReadError: unreadable file. InputError: not 13 convolutions of VGG16's shapes.
    """
    state = load_state_file(path)
    convs = [k[: -len(".weight")] for k, v in state.items() if k.endswith(".weight") and v.ndim == 4]
    ours = [m for block in model.encoder for m in block if isinstance(m, nn.Conv2d)]
    if len(convs) < len(ours):
        raise InputError(f"{path}: expected at least {len(ours)} convolution weights (VGG16), found {len(convs)}")
    with torch.no_grad():
        for i, (name, conv) in enumerate(zip(convs, ours)):
            weight, bias = state[name + ".weight"], state.get(name + ".bias")
            if tuple(weight.shape) != tuple(conv.weight.shape) or bias is None:
                raise InputError(f"{path}: '{name}' has shape {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}")
            if i == 0:
                weight = weight / (255.0 * torch.tensor(_VGG_STD).view(1, 3, 1, 1))
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
    return model


@ARCHS.register("hdrcnn")
def build_hdrcnn(width: int = 64, tau: float = TAU, vgg_weights: str | None = None,
                 weights: str | None = None) -> HDRCNN:
    """HDRCNN; ``vgg_weights`` initialises the encoder from a local VGG16 state dict.

    Raises:
        InputError: ``weights`` given (the official TensorLayer parameters cannot be loaded; see the card).
    """
    if weights:
        raise InputError("HDRCNN official weights (TensorLayer hdrcnn_params.npz, unnamed parameter list) cannot be "
                         f"loaded; got weights={weights!r}. Train the recipe instead, or pass vgg_weights.")
    model = HDRCNN(width=width, tau=tau)
    if vgg_weights:
        load_vgg16_encoder(model, vgg_weights)
    return model

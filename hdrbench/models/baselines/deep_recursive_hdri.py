"""Deep recursive HDRI: stop-up / stop-down U-Net generators applied recursively, with a PatchGAN critic.

Provenance:
    Paper: S. Lee, G. H. An, S.-J. Kang, "Deep Recursive HDRI: Inverse Tone Mapping using Generative
    Adversarial Networks", ECCV 2018.
    Official repository: github.com/Siyeong-Lee/Deep_Recursive_HDRI (PyTorch 1.0; generator weights
    ``HDRGAN_stopup_G_param_ch3_batch1_epoch20_lr0.0002.pkl`` / ``..._stopdown_...pkl``).
    Licence of the official code: BSD 3-Clause, (c) 2020 Siyeong. Reimplemented from the description of
    the official model; no code was copied.

What is known (official model):
    * generator: pix2pix-style U-Net, base 64. Encoder: five Conv4x4 stride 2 (3->64 without norm,
      then 128, 256, 512, 512 with BatchNorm and no bias). Activation PReLU in the stop-up network and
      "MPReLU" (-PReLU(-x)) in the stop-down network. Decoder: nearest x2 upsampling + Conv3x3 with
      BatchNorm: 512->512, 1024->256, 512->128, 256->64, 128->3 with the encoder features concatenated;
      dropout 0.5 on the first three decoder outputs, active at test time too; a last Conv3x3 on
      cat(decoder output, input) 6->3 and tanh. 12.41 M parameters per generator.
    * discriminator: PatchGAN on cat(generated, input) (6 channels), base 64, BatchNorm, LeakyReLU 0.2,
      sigmoid output; 6.97 M parameters.
    * data: LDR in [0, 1] mapped to [-1, 1]; weights initialised N(0, 0.02).
    * inference: EV+k is the stop-up generator applied k times to the input (EV-k: stop-down), three
      recursions each way in the paper.

What is inferred or differs:
    * Activation placement (after BatchNorm, before dropout) and one PReLU parameter per layer follow
      the usual pix2pix layout; the official ordering was not checked.
    * The discriminator depth: four strided/unstrided feature layers after the first (64, 128, 256,
      512, 512 channels, pix2pix ``n_layers=4``) with bias on every convolution is the one layout that
      gives both "4 layers" and 6.97 M parameters; the counts are tested.
    * The official inference resizes the input to 256x256; here the network runs at the input
      resolution (fully convolutional; reflect-padded to a multiple of 32 and cropped back), so the
      stack matches the ground truth's size. Pass ``resize=256`` to reproduce the official behaviour
      (the stack is then resized back with bilinear interpolation).
    * ``dropout_seed`` draws the test-time dropout masks from a seeded CPU generator, making a
      prediction reproducible; None keeps the official unseeded behaviour.
    * Official weights: the state-dict key names of the ``.pkl`` files were not available, so
      ``load_official_weights`` pairs tensors in module-registration order with name-suffix and shape
      checks and refuses any file that does not pair up one to one.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.checks import check_ldr
from hdrbench.errors import InputError
from hdrbench.models.baselines._common import (
    check_evs,
    load_by_order,
    load_state_file,
    pad_to_multiple,
    seeded_dropout,
)
from hdrbench.models.registry import ARCHS

#: Spatial reduction of the five-level U-Net.
MULTIPLE = 32


class MPReLU(nn.Module):
    """Mirrored PReLU, ``-PReLU(-x)``: linear for negative inputs, learnable slope for positive ones."""

    def __init__(self) -> None:
        super().__init__()
        self.prelu = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.prelu(-x)


def _act(direction: str) -> nn.Module:
    return nn.PReLU() if direction == "up" else MPReLU()


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int, direction: str, norm: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)
        self.bn = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.act = _act(direction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, direction: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = _act(direction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))))


class RecursiveGenerator(nn.Module):
    """One stop-up or stop-down U-Net generator (one EV step).

    Args:
        direction: "up" (PReLU) or "down" (MPReLU).
        width: base channel count (64 = official).
        test_dropout: keep dropout 0.5 on the first three decoder outputs at test time (official).
    """

    def __init__(self, direction: str = "up", width: int = 64, test_dropout: bool = True) -> None:
        super().__init__()
        if direction not in ("up", "down"):
            raise InputError(f"direction must be 'up' or 'down', got {direction!r}")
        w = int(width)
        self.direction = direction
        self.test_dropout = test_dropout
        enc = [3, w, 2 * w, 4 * w, 8 * w, 8 * w]
        self.encoder = nn.ModuleList(_Down(enc[i], enc[i + 1], direction, norm=i > 0) for i in range(5))
        dec_in = [8 * w, 16 * w, 8 * w, 4 * w, 2 * w]
        dec_out = [8 * w, 4 * w, 2 * w, w, 3]
        self.decoder = nn.ModuleList(_Up(i, o, direction) for i, o in zip(dec_in, dec_out))
        self.final = nn.Conv2d(6, 3, 3, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation: convolution weights N(0, 0.02), biases 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One EV step.

        Args:
            x: (N, 3, H, W) in [-1, 1]; H and W multiples of 32.
            generator: CPU generator for the dropout masks (None: global RNG).

        Returns:
            (N, 3, H, W) in [-1, 1].
        """
        feats = []
        h = x
        for layer in self.encoder:
            h = layer(h)
            feats.append(h)
        h = feats.pop()
        for i, layer in enumerate(self.decoder):
            h = layer(h)
            if i < 3:
                h = seeded_dropout(h, 0.5, self.training or self.test_dropout, generator)
            h = torch.cat([h, feats.pop() if feats else x], dim=1)
        return torch.tanh(self.final(h))


class PatchDiscriminator(nn.Module):
    """PatchGAN critic on cat(candidate, input) in [-1, 1]; returns per-patch probabilities.

    Args:
        width: base channel count (64 = official, 6.97 M parameters).
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = int(width)
        chans = [6, w, 2 * w, 4 * w, 8 * w]
        layers: list[nn.Module] = []
        for i in range(4):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1))
            if i > 0:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.LeakyReLU(0.2))
        layers += [nn.Conv2d(8 * w, 8 * w, 4, 1, 1), nn.BatchNorm2d(8 * w), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(8 * w, 1, 4, 1, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, candidate: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) probabilities that ``candidate`` is real given ``condition`` (both (N, 3, H, W) in [-1, 1])."""
        return self.net(torch.cat([candidate, condition], dim=1))


class DeepRecursiveHDRI(nn.Module):
    """Inference model: the two generators applied recursively to build an exposure stack.

    Args:
        width: base channel count of both generators.
        test_dropout: keep decoder dropout active at test time (official behaviour).
        resize: None runs at the input resolution; an int resizes to (resize, resize) first (official: 256).
        dropout_seed: seed for reproducible test-time dropout masks (None: global RNG).
    """

    kind = "stack"
    #: The official results merge the stack with Debevec-Malik's recovered response (HDR Toolbox).
    inverse_crf = "debevec"

    def __init__(self, width: int = 64, test_dropout: bool = True, resize: int | None = None,
                 dropout_seed: int | None = None) -> None:
        super().__init__()
        self.up = RecursiveGenerator("up", width, test_dropout)
        self.down = RecursiveGenerator("down", width, test_dropout)
        self.resize = resize
        self.dropout_seed = dropout_seed

    def predict_stack(self, ldr: torch.Tensor, evs: list[float]) -> torch.Tensor:
        """Exposure stack from one LDR image.

        Args:
            ldr: (N, 3, H, W) in [0, 1].
            evs: whole-stop relative EVs; EV 0 returns the input, EV +-k applies a generator k times.

        Returns:
            (N, E, 3, H, W) in [0, 1].
        """
        check_ldr(ldr)
        evs = check_evs(evs, integer=True)
        gen = torch.Generator().manual_seed(self.dropout_seed) if self.dropout_seed is not None else None
        h, w = ldr.shape[-2:]
        x = ldr
        if self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bicubic", align_corners=False).clamp(0, 1)
        x, size = pad_to_multiple(x * 2 - 1, MULTIPLE)
        outs: dict[float, torch.Tensor] = {0.0: x}
        for sign, net in ((1, self.up), (-1, self.down)):
            steps = int(max([sign * e for e in evs] + [0]))
            cur = x
            for k in range(1, steps + 1):
                cur = net(cur, gen)
                outs[float(sign * k)] = cur
        frames = []
        for e in evs:
            f = (outs[e][..., : size[0], : size[1]] + 1) / 2
            if self.resize:
                f = F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)
            frames.append(f.clamp(0, 1))
        stack = torch.stack(frames, dim=1)
        # The EV 0 entry is the input itself, untouched by the [-1, 1] round trip or resizing.
        for i, e in enumerate(evs):
            if e == 0:
                stack[:, i] = ldr
        return stack


def load_official_weights(model: RecursiveGenerator, path: str | os.PathLike) -> RecursiveGenerator:
    """Load one official generator ``.pkl`` state dict (stop-up or stop-down) into ``model`` (width 64).

    Raises:
        ImageReadError: unreadable file. InputError: the tensors do not pair up with this generator.
    """
    load_by_order(model, load_state_file(path), str(path))
    return model


def _find_official(folder: Path, direction: str) -> Path:
    hits = sorted(folder.glob(f"*stop{direction}*G*.pkl"))
    if len(hits) != 1:
        raise InputError(f"expected one '*stop{direction}*G*.pkl' file in weights folder {folder}, found {len(hits)}")
    return hits[0]


@ARCHS.register("deep-recursive-hdri")
def build_deep_recursive_hdri(width: int = 64, test_dropout: bool = True, resize: int | None = None,
                              dropout_seed: int | None = None, weights: str | None = None) -> DeepRecursiveHDRI:
    """Deep recursive HDRI (two generators of 12.41 M parameters at width 64).

    Args:
        weights: a folder holding the two official generator ``.pkl`` files (stop-up and stop-down).
    """
    model = DeepRecursiveHDRI(width, test_dropout, resize, dropout_seed)
    if weights:
        folder = Path(weights)
        if not folder.is_dir():
            raise InputError(f"weights must be a folder with the stop-up and stop-down .pkl files, got {folder}")
        load_official_weights(model.up, _find_official(folder, "up"))
        load_official_weights(model.down, _find_official(folder, "down"))
    return model

"""DrTMO: 2D encoder / 3D-deconvolution decoder networks that generate up- and down-exposed frames.

Provenance:
    Paper: Y. Endo, Y. Kanamori, J. Mitani, "Deep Reverse Tone Mapping", ACM TOG 36(6) 177
    (SIGGRAPH Asia) 2017.
    Official code: npal.cs.tsukuba.ac.jp/~endo/projects/DrTMO (Chainer 1.24, Python 2.7). Licence:
    scientific use only, no redistribution or commercial use without the authors' permission. This is a
    reimplementation from the description of the official network; no code was copied. The official
    weights are Chainer files and are not loaded (the card says so).

What is known (official ``CNNAE3D512``):
    * input 512x512; 2D encoder of nine Conv4x4 stride 2 (3->64->128->256->512, then 512 five times),
      BatchNorm except on the first, LeakyReLU;
    * decoder of 3D (exposure x height x width) transposed convolutions: the first three double the
      exposure axis (kernel 4x4x4, stride 2x2x2: 1 -> 2 -> 4 -> 8 frames), the others keep it (kernel
      3x4x4, stride 1x2x2); encoder features are broadcast along the exposure axis as skips; dropout
      0.5 on the first three decoder layers; output sigmoid(h + input) -> 8 frames;
    * two separate models (up-exposure and down-exposure), about 174.5 M parameters each;
    * inference: 8 down + input + 8 up frames at half-EV steps; frames are kept outward from the input
      while no pixel changes by more than 64 (of 255) between neighbours; the kept frames are merged with
      OpenCV's Debevec merge under a linear response.

What is inferred or differs:
    * Decoder widths mirror the encoder (512 x 5, 256, 128, 64, then 3), which gives 174.48 M
      parameters per model, matching the published hand count; BatchNorm + ReLU after each decoder
      layer except the last. Dropout is active only in training (not checked against the official code).
    * The input enters the output sigmoid in [0, 1]; the official input normalisation was not checked.
    * ``levels`` and ``width`` shrink the network for the tiny CI preset (``levels = 9``, ``width = 64``
      is the official one). The input is resized to ``2**levels`` square (official: 512) and the frames
      are resized back to the input size (bilinear).
    * The merge uses relative exposure times 2**EV (EV 0 = 1) instead of 1/1024 * sqrt(2)**i; this only
      scales the HDR by a constant, which every evaluation protocol removes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.checks import check_ldr
from hdrbench.errors import InputError
from hdrbench.models.baselines._common import check_evs
from hdrbench.models.registry import ARCHS

#: Frames per direction and the EV step between them.
FRAMES = 8
EV_STEP = 0.5
#: Frame-selection threshold, in 8-bit code values.
SELECTION_THRESHOLD = 64


class DrTMONet(nn.Module):
    """One direction's generator: (N, 3, S, S) in [0, 1] -> (N, 8, 3, S, S) in [0, 1], S = 2**levels.

    Args:
        width: channels of the first encoder level (64 = official; capped at 8 * width).
        levels: encoder depth (9 = official, S = 512); at least 3.
    """

    def __init__(self, width: int = 64, levels: int = 9) -> None:
        super().__init__()
        if levels < 3:
            raise InputError(f"DrTMO needs levels >= 3 (three exposure-doubling layers), got {levels}")
        self.levels = levels
        ch = [min(width * 2**i, 8 * width) for i in range(levels)]
        self.encoder = nn.ModuleList()
        cin = 3
        for i, c in enumerate(ch):
            self.encoder.append(nn.Sequential(nn.Conv2d(cin, c, 4, 2, 1), nn.BatchNorm2d(c) if i else nn.Identity(),
                                              nn.LeakyReLU(0.2)))
            cin = c
        self.decoder = nn.ModuleList()
        cin = ch[-1]
        for j in range(levels):
            last = j == levels - 1
            cout = 3 if last else ch[levels - 2 - j]
            if j < 3:  # double the exposure axis: 1 -> 2 -> 4 -> 8 frames
                deconv = nn.ConvTranspose3d(cin, cout, (4, 4, 4), (2, 2, 2), (1, 1, 1))
            else:
                deconv = nn.ConvTranspose3d(cin, cout, (3, 4, 4), (1, 2, 2), (1, 1, 1))
            self.decoder.append(deconv if last else nn.Sequential(deconv, nn.BatchNorm3d(cout), nn.ReLU()))
            cin = 2 * cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (N, 8, 3, S, S) in [0, 1], ordered away from the input, for input (N, 3, S, S) in [0, 1]."""
        feats = []
        h = x
        for layer in self.encoder:
            h = layer(h)
            feats.append(h)
        h = feats.pop().unsqueeze(2)  # (N, C, T=1, h, w)
        for j, layer in enumerate(self.decoder):
            h = layer(h)
            if j < 3 and j < len(self.decoder) - 1:
                h = F.dropout(h, 0.5, training=self.training)
            if feats:
                skip = feats.pop().unsqueeze(2).expand(-1, -1, h.shape[2], -1, -1)
                h = torch.cat([h, skip], dim=1)
        out = torch.sigmoid(h + x.unsqueeze(2))  # (N, 3, 8, S, S)
        return out.permute(0, 2, 1, 3, 4)


def select_frames(frames: torch.Tensor, threshold: float = SELECTION_THRESHOLD / 255.0) -> int:
    """Number of frames kept moving outward from the input (official threshold rule).

    Args:
        frames: (F + 1, 3, H, W) in [0, 1]; index 0 is the input, then frames moving away from it.
        threshold: largest allowed per-pixel change between neighbours (64 / 255).

    Returns:
        How many of the generated frames (0..F) are kept: frames up to the first neighbour pair whose
        largest absolute difference exceeds ``threshold``.
    """
    jumps = (frames[1:] - frames[:-1]).abs().flatten(1).amax(dim=1)
    bad = torch.nonzero(jumps > threshold)
    return int(bad[0]) if len(bad) else frames.shape[0] - 1


def merge_linear_debevec(stack: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``MergeDebevec`` with its default linear response, for one stack of 8-bit frames.

    ``exp(sum_i w_i (log r(z_i) - log t_i) / sum_i w_i)`` with r(z) = z the linear response on 8-bit codes
    (r(0) raised to r(1) to keep the log finite) and triangle weights averaged over the channels.

    Args:
        stack: (E, 3, H, W) in [0, 1] (quantised to 8-bit codes here, as the official frames are).
        times: (E,) exposure times (relative).

    Returns:
        (3, H, W) relative linear HDR; pixels where every weight is zero are NaN, as in OpenCV.
    """
    z = (stack.clamp(0, 1) * 255.0).round()
    # Triangle weights min(z, 255 - z) on codes 0..255, as OpenCV 4.x (measured against cv2 in the tests; the
    # OpenCV 3.1 of the official code may have used a +1 offset, which only matters at codes 0 and 255).
    w = torch.minimum(z, 255.0 - z).mean(dim=1, keepdim=True)
    log_r = torch.log(z.clamp_min(1.0))
    log_t = torch.log(times.to(stack)).view(-1, 1, 1, 1)
    return torch.exp((w * (log_r - log_t)).sum(0) / w.sum(0))


class DrTMO(nn.Module):
    """Inference model: up- and down-exposure generators, threshold frame selection, linear merge.

    Args:
        width, levels: generator size (official: 64, 9).
    """

    kind = "stack"
    #: The official merge assumes a linear response.
    inverse_crf = "linear"

    def __init__(self, width: int = 64, levels: int = 9) -> None:
        super().__init__()
        self.up = DrTMONet(width, levels)
        self.down = DrTMONet(width, levels)
        self.size = 2**levels

    def frames(self, ldr: torch.Tensor) -> torch.Tensor:
        """All 17 frames (N, 17, 3, H, W) in [0, 1] at EV -4, -3.5, ..., +4 (index 8 is the input)."""
        check_ldr(ldr)
        h, w = ldr.shape[-2:]
        x = F.interpolate(ldr, size=(self.size, self.size), mode="bilinear", align_corners=False).clamp(0, 1)
        up, down = self.up(x), self.down(x)
        both = torch.cat([down.flip(1), up], dim=1).flatten(0, 1)
        both = F.interpolate(both, size=(h, w), mode="bilinear", align_corners=False).unflatten(0, (ldr.shape[0], -1))
        return torch.cat([both[:, :FRAMES], ldr.unsqueeze(1), both[:, FRAMES:]], dim=1)

    def predict_stack(self, ldr: torch.Tensor, evs: list[float]) -> torch.Tensor:
        """Frames (N, E, 3, H, W) in [0, 1] at ``evs`` (multiples of 0.5 in [-4, 4]; EV 0 is the input)."""
        evs = check_evs(evs)
        idx = []
        for e in evs:
            k = e / EV_STEP
            if k != round(k) or abs(k) > FRAMES:
                raise InputError(f"DrTMO generates EVs in half stops from -4 to +4, got {e} in evs={evs}")
            idx.append(int(round(k)) + FRAMES)
        return self.frames(ldr)[:, idx]

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        """HDR (N, 3, H, W), relative linear, by the official selection rule and linear Debevec merge."""
        frames = self.frames(ldr)
        evs = torch.arange(-FRAMES, FRAMES + 1, dtype=torch.float64) * EV_STEP
        out = []
        for f in frames:
            n_up = select_frames(f[FRAMES:])
            n_down = select_frames(f[: FRAMES + 1].flip(0))
            sel = slice(FRAMES - n_down, FRAMES + n_up + 1)
            hdr = merge_linear_debevec(f[sel], torch.pow(2.0, evs[sel]))
            out.append(torch.nan_to_num(hdr, nan=0.0))
        return torch.stack(out)


@ARCHS.register("drtmo")
def build_drtmo(width: int = 64, levels: int = 9, weights: str | None = None) -> DrTMO:
    """DrTMO (about 174.5 M parameters per direction at the official size).

    Raises:
        InputError: ``weights`` given (the official weights are Chainer files; see the card).
    """
    if weights:
        raise InputError(f"DrTMO official weights are Chainer files and cannot be loaded (weights={weights!r})")
    return DrTMO(width, levels)


def parameter_count_official() -> int:
    """Parameters of one official-size DrTMO generator (counted on the meta device, no memory used)."""
    with torch.device("meta"):
        return sum(p.numel() for p in DrTMONet().parameters())


__all__ = ["DrTMO", "DrTMONet", "select_frames", "merge_linear_debevec", "parameter_count_official"]

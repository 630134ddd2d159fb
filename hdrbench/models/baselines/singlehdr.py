"""SingleHDR: dequantisation, linearisation, hallucination and refinement networks in a camera pipeline.

Provenance:
    Paper: Y.-L. Liu, W.-S. Lai, Y.-S. Chen, Y.-L. Kao, M.-H. Yang, Y.-Y. Chuang, J.-B. Huang,
    "Single-Image HDR Reconstruction by Learning to Reverse the Camera Pipeline", CVPR 2020;
    arXiv:2004.01179.
    Official repository: github.com/alex04072000/SingleHDR (TensorFlow 1.x). The repository carries
    no licence file; this is a reimplementation from the paper and the description of the official
    pipeline, no code was copied, and no official weights are loaded (they are TensorFlow checkpoints).

What is known:
    * Dequantisation-Net: a U-Net predicting a residual on the 8-bit input, clipped to [0, 1];
    * Linearisation-Net: predicts the inverse camera response as coefficients of the inverse-EMoR PCA
      model (Grossberg-Nayar, 11 basis curves + mean, ``n_p = 12``) from image, edge and histogram
      features with a ResNet-style feature network; the curve is made monotonic and applied to the image;
    * Hallucination-Net: an HDRCNN-style VGG16 encoder-decoder; its output is added in over-exposed
      regions: A = B + alpha * relu(y), alpha = clip((max_c(B) - 1 + 0.12) / 0.12, 0, 1);
    * Refinement-Net: a U-Net refining A (with B and the dequantised image as context) in joint fine-tuning;
    * losses (per stage): masked L2 (dequantisation), L2 on the linear image + 0.1 * L2 on the inverse
      CRF (linearisation), log-domain L1 + perceptual + TV (hallucination), gamma-domain L1 of the
      refined output (joint fine-tuning).

What is inferred or differs:
    * Widths and depths of the U-Nets, of the ResNet feature network and of the histogram layer
      (32 soft bins per channel, global) are chosen here; the official numbers were not checked.
    * The basis is read from a user-supplied ``invemor.txt`` (``basis_path``). When no file is given a
      parametric fallback is used: the inverse CRF g(x) = x + sum_k c_k (x^(k+1) - x) (polynomial
      curves pinned at g(0) = 0 and g(1) = 1, as Mitsunaga-Nayar's), with the same number of
      coefficients. Results with the fallback are not the paper's model and the card says so.
    * Monotonicity: the predicted curve's increments are passed through ReLU, accumulated and
      normalised to end at 1 (same intent as the official monotonic projection).
    * The refinement output is relu(A + r) with r the U-Net's residual.
    * Inference pads to a multiple of 64 by reflection instead of the official resize + 32-px padding.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.checks import check_ldr
from hdrbench.errors import DatasetError, ImageReadError, InputError
from hdrbench.models.baselines._common import pad_to_multiple
from hdrbench.models.baselines.hdrcnn import HDRCNN, highlight_mask
from hdrbench.models.registry import ARCHS

#: SingleHDR's hallucination blend threshold: alpha ramps over the top 0.12 of the range.
HALLUCINATION_THRESHOLD = 0.12
#: Samples of an EMoR curve.
CURVE_SAMPLES = 1024


def read_emor_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a Grossberg-Nayar ``emor.txt`` / ``invemor.txt`` file.

    The file holds 27 blocks of 1024 numbers, each introduced by a ``name =`` line: the sample grid
    (``B``/``E``), the mean curve (``g0``/``f0``) and 25 basis curves (``hinv(k)``/``h(k)``).

    Returns:
        ``{"grid": (1024,), "mean": (1024,), "basis": (25, 1024)}`` float32 tensors.

    Raises:
        ImageReadError: the file is missing or unreadable. DatasetError: the layout is not as above.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ImageReadError(f"cannot read EMoR basis file {path}: {exc}") from exc
    blocks: list[list[float]] = []
    for line in text.splitlines():
        if "=" in line:
            blocks.append([])
            line = line.split("=", 1)[1]
        if not blocks:
            continue
        try:
            blocks[-1].extend(float(v) for v in line.split())
        except ValueError:
            raise DatasetError(f"EMoR basis file {path}: non-numeric value in line {line.strip()!r}") from None
    if len(blocks) < 3 or any(len(b) != CURVE_SAMPLES for b in blocks):
        sizes = [len(b) for b in blocks]
        raise DatasetError(f"EMoR basis file {path}: expected blocks of {CURVE_SAMPLES} values "
                           f"(grid, mean, basis curves), got block sizes {sizes[:6]}...")
    t = torch.tensor(blocks, dtype=torch.float32)
    return {"grid": t[0], "mean": t[1], "basis": t[2:]}


def polynomial_basis(n: int, samples: int = CURVE_SAMPLES) -> dict[str, torch.Tensor]:
    """Parametric fallback basis: mean g0(x) = x and curves x^(k+1) - x, k = 1..n (zero at 0 and 1)."""
    grid = torch.linspace(0.0, 1.0, samples)
    basis = torch.stack([grid ** (k + 1) - grid for k in range(1, n + 1)])
    return {"grid": grid, "mean": grid.clone(), "basis": basis}


def apply_curve(x: torch.Tensor, curve: torch.Tensor) -> torch.Tensor:
    """Apply per-image curves sampled on a uniform grid of [0, 1] by linear interpolation.

    Args:
        x: (N, C, H, W) in [0, 1].
        curve: (N, S) curve values at x = i / (S - 1).

    Returns:
        (N, C, H, W); differentiable w.r.t. both ``x`` and ``curve``.
    """
    n, s = curve.shape
    pos = x.clamp(0, 1).reshape(n, -1) * (s - 1)
    lo = pos.floor().clamp(max=s - 2)
    frac = pos - lo
    lo = lo.long()
    v0 = torch.gather(curve, 1, lo)
    v1 = torch.gather(curve, 1, lo + 1)
    return (v0 + frac * (v1 - v0)).reshape(x.shape)


def monotone_curve(raw: torch.Tensor) -> torch.Tensor:
    """Project curves (N, S) onto monotone non-decreasing curves from 0 to 1."""
    inc = F.relu(raw[:, 1:] - raw[:, :-1])
    cum = torch.cat([torch.zeros_like(raw[:, :1]), torch.cumsum(inc, dim=1)], dim=1)
    return cum / cum[:, -1:].clamp_min(1e-6)


class UNet(nn.Module):
    """Plain U-Net (Conv3x3 + LeakyReLU pairs, average-pool down, bilinear up).

    Args:
        cin, cout: input / output channels.
        width: channels of the first level (doubled per level).
        levels: number of down-sampling steps (input size must be a multiple of 2**levels).
    """

    def __init__(self, cin: int, cout: int, width: int = 16, levels: int = 4) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(levels + 1)]

        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(b, b, 3, 1, 1), nn.LeakyReLU(0.1))

        self.down = nn.ModuleList([block(cin, chans[0])] + [block(chans[i], chans[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList(block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(levels)))
        self.out = nn.Conv2d(chans[0], cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.down[0](x)]
        for layer in self.down[1:]:
            feats.append(layer(F.avg_pool2d(feats[-1], 2)))
        h = feats.pop()
        for layer in self.up:
            skip = feats.pop()
            h = layer(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        return self.out(h)


class SoftHistogram(nn.Module):
    """Differentiable per-channel histogram with triangular bins over [0, 1] -> (N, C * bins)."""

    def __init__(self, bins: int = 32) -> None:
        super().__init__()
        self.bins = bins
        self.register_buffer("centres", (torch.arange(bins) + 0.5) / bins, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = (x.unsqueeze(2) - self.centres.view(1, 1, -1, 1, 1)).abs()
        return F.relu(1.0 - d * self.bins).mean(dim=(-2, -1)).flatten(1)


class LinearizationNet(nn.Module):
    """Predicts an inverse CRF as basis coefficients and returns the monotone curve.

    Args:
        basis: dict from :func:`read_emor_file` or :func:`polynomial_basis`.
        n_coeffs: basis curves used (11 in SingleHDR, ``n_p - 1``).
        width: feature channels.
    """

    def __init__(self, basis: dict[str, torch.Tensor], n_coeffs: int = 11, width: int = 32) -> None:
        super().__init__()
        if basis["basis"].shape[0] < n_coeffs:
            raise InputError(f"basis has {basis['basis'].shape[0]} curves, n_coeffs={n_coeffs} requested")
        self.register_buffer("mean", basis["mean"].clone())
        self.register_buffer("basis", basis["basis"][:n_coeffs].clone())
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
        self.register_buffer("sobel", torch.stack([sobel, sobel.t()]).unsqueeze(1), persistent=False)
        self.hist = SoftHistogram(32)
        w = width
        layers: list[nn.Module] = [nn.Conv2d(9, w, 7, 2, 3), nn.ReLU()]
        for i in range(3):
            layers += [_ResBlock(w), nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU()]
            w *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(w + 3 * 32, 256), nn.ReLU(), nn.Linear(256, n_coeffs))
        # Start at the mean curve: the zero-coefficient prediction is the basis's average camera.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse CRF curves (N, 1024), monotone from 0 to 1, for images (N, 3, H, W) in [0, 1]."""
        n, c, h, w = x.shape
        edges = F.conv2d(x.reshape(n * c, 1, h, w), self.sobel, padding=1).reshape(n, 2 * c, h, w)
        f = self.features(torch.cat([x, edges], 1)).mean(dim=(-2, -1))
        coeffs = self.head(torch.cat([f, self.hist(x)], 1))
        return monotone_curve(self.mean + coeffs @ self.basis)


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class SingleHDR(nn.Module):
    """The four-stage SingleHDR pipeline; ``predict_hdr`` returns relative linear HDR.

    Args:
        basis_path: inverse-EMoR basis file (``invemor.txt``); None uses the polynomial fallback.
        n_coeffs: basis curves (11).
        deq_width, ref_width: first-level channels of the dequantisation / refinement U-Nets.
        lin_width: linearisation feature channels.
        hal_width: base channels of the VGG-style hallucination net (64 = VGG16).
        unet_levels: down-sampling steps of both U-Nets.
    """

    kind = "direct"

    def __init__(self, basis_path: str | None = None, n_coeffs: int = 11, deq_width: int = 16, lin_width: int = 32,
                 hal_width: int = 64, ref_width: int = 16, unet_levels: int = 4) -> None:
        super().__init__()
        self.basis_source = str(basis_path) if basis_path else "polynomial-fallback"
        basis = read_emor_file(basis_path) if basis_path else polynomial_basis(n_coeffs)
        self.dequantize = UNet(3, 3, deq_width, unet_levels)
        self.linearize = LinearizationNet(basis, n_coeffs, lin_width)
        self.hallucinate = HDRCNN(width=hal_width)
        self.refine = UNet(9, 3, ref_width, unet_levels)
        self.multiple = max(32, 2**unet_levels)

    def stages(self, ldr: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate output for an LDR batch (N, 3, H, W) in [0, 1], H and W multiples of ``multiple``.

        Returns:
            ``deq`` (dequantised LDR in [0, 1]), ``curve`` (N, 1024) inverse CRF, ``linear`` (B, in [0, 1]),
            ``alpha`` (N, 1, H, W), ``hallucinated`` (A), ``hdr`` (refined, relative linear, >= 0).
        """
        deq = (ldr + self.dequantize(ldr)).clamp(0.0, 1.0)
        curve = self.linearize(deq)
        linear = apply_curve(deq, curve)
        alpha = highlight_mask(linear, 1.0 - HALLUCINATION_THRESHOLD)
        hallucinated = linear + alpha * F.relu(self.hallucinate(linear))
        hdr = F.relu(hallucinated + self.refine(torch.cat([hallucinated, linear, deq], 1)))
        return {"deq": deq, "curve": curve, "linear": linear, "alpha": alpha, "hallucinated": hallucinated, "hdr": hdr}

    def forward(self, ldr: torch.Tensor) -> torch.Tensor:
        return self.stages(ldr)["hdr"]

    def predict_hdr(self, ldr: torch.Tensor) -> torch.Tensor:
        """Relative linear HDR (N, 3, H, W) from LDR (N, 3, H, W) in [0, 1] (any size; padded internally)."""
        check_ldr(ldr)
        x, (h, w) = pad_to_multiple(ldr, self.multiple)
        return self(x)[..., :h, :w]


@ARCHS.register("singlehdr")
def build_singlehdr(basis_path: str | None = None, n_coeffs: int = 11, deq_width: int = 16, lin_width: int = 32,
                    hal_width: int = 64, ref_width: int = 16, unet_levels: int = 4,
                    weights: str | None = None) -> SingleHDR:
    """SingleHDR pipeline. ``basis_path``: a local ``invemor.txt`` ("" or None: polynomial fallback).

    Raises:
        InputError: ``weights`` given (the official checkpoints are TensorFlow; see the card).
    """
    if weights:
        raise InputError(f"SingleHDR official weights are TensorFlow checkpoints and cannot be loaded (weights={weights!r})")
    return SingleHDR(basis_path or None, n_coeffs, deq_width, lin_width, hal_width, ref_width, unet_levels)

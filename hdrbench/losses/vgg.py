"""VGG19 feature extractor for the CoBi loss, built here (no torchvision needed).

The layer list and parameter names follow torchvision's ``vgg19().features`` so that a torchvision
state dict (``features.0.weight`` ... ; a full-model file or a features-only file) loads unchanged.
Weights are never downloaded: the user points ``HDRBENCH_VGG19_WEIGHTS`` (or a recipe option) to a
local file, e.g. torchvision's ``vgg19-dcbb9e9d.pth``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from hdrbench.errors import InputError

#: torchvision's VGG19 configuration ("M" = 2x2 max pooling).
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
#: Index of the ReLU (in ``features``) that ends each named layer.
VGG19_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_4": 17, "relu4_4": 26, "relu5_4": 35}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENV_VAR = "HDRBENCH_VGG19_WEIGHTS"


def vgg19_features(last_index: int = VGG19_LAYERS["relu4_4"]) -> nn.Sequential:
    """The first ``last_index + 1`` layers of torchvision's ``vgg19().features`` (random initialisation)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
    return nn.Sequential(*layers[: last_index + 1])


def resolve_weights_path(path: str | os.PathLike | None) -> Path | None:
    """The VGG19 weights file to use: ``path`` if given, else ``$HDRBENCH_VGG19_WEIGHTS``, else None.

    Raises:
        InputError: when a path is given (argument or environment) but no such file exists.
    """
    src = "argument"
    if not path:
        path, src = os.environ.get(ENV_VAR) or None, ENV_VAR
    if not path:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"VGG19 weights file {str(p)!r} (from {src}) does not exist; give a local torchvision "
                         f"vgg19 state dict, or unset it to use the RGB-patch CoBi variant")
    return p


class VGG19Features(nn.Module):
    """Frozen VGG19 that returns the requested ReLU activations of images in [0, 1].

    Args:
        weights: path of a torchvision-format VGG19 state dict (full model or ``features`` only).
        layers: names from :data:`VGG19_LAYERS` to return.
    """

    def __init__(self, weights: str | os.PathLike, layers: tuple[str, ...] = ("relu3_4", "relu4_4")) -> None:
        super().__init__()
        unknown = [n for n in layers if n not in VGG19_LAYERS]
        if unknown:
            raise InputError(f"unknown VGG19 layers {unknown}; known: {sorted(VGG19_LAYERS)}")
        self.layers = tuple(layers)
        self.features = vgg19_features(max(VGG19_LAYERS[n] for n in layers))
        path = resolve_weights_path(weights)
        if path is None:
            raise InputError("VGG19Features needs a weights file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: say which one
            raise InputError(f"cannot read VGG19 weights {str(path)!r}: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        own = {}
        for key, val in state.items():
            key = key[len("features."):] if key.startswith("features.") else key
            if key.split(".")[0].isdigit() and int(key.split(".")[0]) < len(self.features):
                own[key] = val
        missing = set(self.features.state_dict()) - set(own)
        if missing:
            raise InputError(f"VGG19 weights {str(path)!r} lack {sorted(missing)[:4]}...; expected a torchvision vgg19 "
                             f"state dict (keys 'features.N.weight')")
        self.features.load_state_dict(own)
        self.features.requires_grad_(False)
        self.features.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGG19Features":
        super().train(mode)
        self.features.eval()  # frozen: always in evaluation mode
        return self

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations ``{name: (N, C_l, H_l, W_l)}`` of ``img`` (N, 3, H, W) in [0, 1]."""
        x = (img - self.mean.to(img.dtype)) / self.std.to(img.dtype)
        out = {}
        stop = {VGG19_LAYERS[n]: n for n in self.layers}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in stop:
                out[stop[i]] = x
        return out

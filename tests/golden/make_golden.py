"""Regenerate ``tests/golden/proposed_tiny.pt``: seeded outputs of the tiny proposed-model variants.

Run from the repository root after a deliberate change of the networks' arithmetic, and review the diff:

    python tests/golden/make_golden.py

Each entry holds the constructor keyword arguments, the weight seed, the input image (a seeded
24 x 40 RGB image in [0, 1], not a multiple of 32 so the padding path runs), the EVs and the stack that
``predict_stack`` returned.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hdrbench.atomic import atomic_open
from hdrbench.models import build_arch

OUT = Path(__file__).resolve().parent / "proposed_tiny.pt"
EVS = [-3, -2, -1, 0, 1, 2, 3]
#: name -> (arch, keyword arguments)
VARIANTS = {
    "full": ("proposed-tiny", {}),
    "unet": ("proposed-tiny", {"recurrent": False, "cin": False, "decomposition": False}),
    "recurrent-cin": ("proposed-tiny", {"decomposition": False}),
}


def make_input(seed: int = 1) -> torch.Tensor:
    """A smooth gradient plus noise, (1, 3, 24, 40) in [0, 1]: gives Canny edges and varied tones."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 40), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2])
    img = (base + 0.15 * torch.rand(3, 24, 40, generator=g)).clamp(0, 1)
    img[:, 8:16, 10:24] = 0.9  # a bright block: strong edges
    return img.unsqueeze(0)


def build(arch: str, kwargs: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_arch(arch, **kwargs).eval()


def main() -> None:
    ldr = make_input()
    entries = {}
    for name, (arch, kwargs) in VARIANTS.items():
        model = build(arch, kwargs)
        with torch.no_grad():
            stack = model.predict_stack(ldr, EVS)
        entries[name] = {"arch": arch, "kwargs": kwargs, "seed": 0, "stack": stack.clone()}
    with atomic_open(OUT, "wb") as fh:
        torch.save({"input": ldr, "evs": EVS, "variants": entries}, fh)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

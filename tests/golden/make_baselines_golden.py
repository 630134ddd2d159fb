"""Regenerate the baselines' golden outputs (``tests/golden/baselines_<name>.npz``).

Run from the repository root after an intended change to a baseline's network or pre/post-processing,
and review the diff of the test results before committing the new files:

    python tests/golden/make_baselines_golden.py

Each file holds the seeded input ``ldr`` (1, 3, 32, 32) and the tiny variant's outputs. The variants and
seeds are listed in :data:`VARIANTS`; ``tests/test_baselines_*.py`` rebuild them the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from baselines_support import calibrate_batchnorm, golden_input  # noqa: E402

#: name -> (arch, builder kwargs, EVs for predict_stack or None); networks are built after torch.manual_seed(0).
VARIANTS: dict[str, tuple[str, dict, list[float] | None]] = {
    "expandnet": ("expandnet", {"width": 4}, None),
    "deep_recursive_hdri": ("deep-recursive-hdri", {"width": 4, "dropout_seed": 0}, [-2.0, -1.0, 0.0, 1.0, 2.0]),
    "hdrcnn": ("hdrcnn", {"width": 4}, None),
    "singlehdr": ("singlehdr", {"deq_width": 2, "lin_width": 4, "hal_width": 4, "ref_width": 2, "unet_levels": 2}, None),
    "drtmo": ("drtmo", {"width": 4, "levels": 5}, [-4.0, -1.5, 0.0, 0.5, 3.0]),
    "deep_chain_hdri": ("deep-chain-hdri", {"width": 4, "base_depth": 1}, [-3.0, -1.0, 0.0, 1.0, 3.0]),
}


def build(name: str) -> torch.nn.Module:
    """The tiny variant ``name`` with seed-0 weights, in eval mode (running statistics not yet calibrated)."""
    from hdrbench.models import build_arch

    arch, kwargs, _ = VARIANTS[name]
    torch.manual_seed(0)
    return build_arch(arch, **kwargs).eval()


def outputs(name: str, ldr: torch.Tensor) -> dict[str, np.ndarray]:
    """Everything the golden file of ``name`` stores (BatchNorm statistics calibrated on ``ldr`` first)."""
    model = build(name)
    evs = VARIANTS[name][2]
    # Two images (the input and its mirror) so that BatchNorm at 1x1 resolution has more than one value.
    cal = torch.cat([ldr, ldr.flip(-1)])
    calibrate_batchnorm(model, lambda m: m.predict_stack(cal, evs) if evs is not None else m.predict_hdr(cal))
    out = {"ldr": ldr.numpy()}
    with torch.no_grad():
        if evs is not None:
            out["stack"] = model.predict_stack(ldr, evs).numpy()
        if hasattr(model, "predict_hdr"):
            out["hdr"] = model.predict_hdr(ldr).numpy()
    return out


def main() -> None:
    from hdrbench.atomic import atomic_open

    torch.set_num_threads(1)
    ldr = golden_input()
    for name in VARIANTS:
        path = HERE / f"baselines_{name}.npz"
        with atomic_open(path, "wb") as fh:  # a failed run never leaves a half-written golden file
            np.savez_compressed(fh, **outputs(name, ldr))
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

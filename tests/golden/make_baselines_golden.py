"""Regenerate the golden outputs of the trained methods (``tests/golden/baselines_<name>.npz``).

Run from the repository root after an intended change to a method's network or pre/post-processing, or to
create the file of a newly registered method, and review the diff of the test results before committing:

    python tests/golden/make_baselines_golden.py            # every method of baselines_support.trained_methods()
    python tests/golden/make_baselines_golden.py NAME ...   # only these (recipe names)

Each file holds the seeded input ``ldr`` (1, 3, 32, 32) and the outputs of the method's golden variant: the
arch of its recipe with the ``tiny`` preset's ``[model]``, built after ``torch.manual_seed(0)``, BatchNorm
statistics calibrated on the input, then ``predict_stack`` at :func:`golden_evs` (stack methods) and
``predict_hdr`` (methods that have one). ``tests/test_trained_methods.py`` rebuilds them the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from baselines_support import (  # noqa: E402
    calibrate_batchnorm,
    golden_input,
    golden_path,
    method_name,
    trained_methods,
)

#: EVs of ``predict_stack`` in the golden outputs of a stack method, unless :data:`GOLDEN_EVS` names others.
DEFAULT_GOLDEN_EVS = [-2.0, -1.0, 0.0, 1.0, 2.0]
#: Methods whose golden EVs reach parts of the network the default EVs miss.
GOLDEN_EVS: dict[str, list[float]] = {
    "drtmo": [-4.0, -1.5, 0.0, 0.5, 3.0],  # half stops and the last frame of the 8-frame down direction
    "deep-chain-hdri": [-3.0, -1.0, 0.0, 1.0, 3.0],  # the third link of both chains
}


def variant(ref: str) -> tuple[str, dict]:
    """(arch, builder kwargs) of the golden variant of recipe ``ref``: its arch at the ``tiny`` preset."""
    from hdrbench.train.recipes import load_recipe

    recipe = load_recipe(ref, preset="tiny")
    return recipe["arch"], dict(recipe.get("model") or {})


def build(ref: str) -> torch.nn.Module:
    """The golden variant of ``ref`` with seed-0 weights, in eval mode (running statistics not yet calibrated)."""
    from hdrbench.models import build_arch

    arch, kwargs = variant(ref)
    torch.manual_seed(0)
    return build_arch(arch, **kwargs).eval()


def golden_evs(ref: str, model: torch.nn.Module) -> list[float] | None:
    """EVs for ``predict_stack`` (``None`` for a direct method, which has no stack output)."""
    if model.kind != "stack":
        return None
    return GOLDEN_EVS.get(method_name(ref), DEFAULT_GOLDEN_EVS)


def outputs(ref: str, ldr: torch.Tensor) -> dict[str, np.ndarray]:
    """Everything the golden file of ``ref`` stores (BatchNorm statistics calibrated on ``ldr`` first)."""
    model = build(ref)
    evs = golden_evs(ref, model)
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


def main(argv: list[str]) -> None:
    from hdrbench.atomic import atomic_open

    torch.set_num_threads(1)
    refs = trained_methods()
    by_name = {method_name(r): r for r in refs}
    unknown = [n for n in argv if n not in by_name]
    if unknown:
        sys.exit(f"unknown trained methods {unknown}; known: {sorted(by_name)}")
    ldr = golden_input()
    for ref in [by_name[n] for n in argv] or refs:
        path = golden_path(method_name(ref))
        with atomic_open(path, "wb") as fh:  # a failed run never leaves a half-written golden file
            np.savez_compressed(fh, **outputs(ref, ldr))
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])

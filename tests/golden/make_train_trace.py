"""Regenerate ``tests/golden/proposed_train_trace.json``: a few training iterations of the proposed task.

The trace pins the ``corrected`` fidelity to the training code as it was before the fidelity switch existed:
it was generated from that code (a checkout without ``hdrbench/train/fidelity.py``) with

    PYTHONPATH=<that checkout> OMP_NUM_THREADS=1 python tests/golden/make_train_trace.py

and ``tests/test_train_fidelity.py`` replays it with ``fidelity = "corrected"``. Regenerate it only after a
deliberate change of the corrected training arithmetic, and review the diff.

Each entry: the tiny preset of the recipe, a seeded procedural 32 x 32 scene, ``ITERATIONS`` iterations
(pre-training and joint phases), the loss terms of each iteration (float repr) and the sha256 of every
network's parameters (float32 bytes, in ``named_parameters`` order) at the end.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "proposed_train_trace.json"
RECIPES = ("proposed", "ladder-1-unet")
ITERATIONS = 4  # tiny preset: pre-training ends after 2


def scene(h: int = 32, w: int = 32, seed: int = 3):
    """A gradient, a bright lamp, a deep shadow and seeded texture; its 7-EV 8-bit gamma-2.2 stack and HDR."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    hdr = torch.stack([0.2 + 0.6 * xx, 0.1 + 0.5 * yy, 0.3 * (1 - xx) + 0.05]) * 0.5
    hdr = hdr * (1 + 0.3 * torch.rand(3, h, w, generator=g))
    hdr[:, h // 4:h // 4 + 6, w // 2 + 2:w // 2 + 10] = torch.tensor([6.0, 5.0, 3.0]).view(3, 1, 1)
    hdr[:, h - 12:h - 4, 4:12] *= 0.05
    evs = torch.arange(-3, 4).float()
    stack = torch.stack([((hdr * 2.0 ** e).clamp(0, 1) ** (1 / 2.2) * 255).round() / 255 for e in evs])
    return {"stack": stack.unsqueeze(0), "evs": evs, "hdr": hdr.unsqueeze(0), "scene": ["procedural"]}


def param_digests(task) -> dict[str, str]:
    out = {}
    for name, net in sorted(task.modules().items()):
        h = hashlib.sha256()
        for pname, p in net.named_parameters():
            h.update(pname.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        out[name] = h.hexdigest()
    return out


def trace(recipe: str, overrides: dict | None = None) -> dict:
    """Run ``ITERATIONS`` iterations of ``recipe`` (tiny preset) and return its losses and weight digests."""
    from hdrbench.train.recipes import load_recipe
    from hdrbench.train.trainer import get_task_class

    torch.set_num_threads(1)
    torch.manual_seed(0)
    r = load_recipe(recipe, preset="tiny", overrides=overrides or None)
    task = get_task_class(r["task"])(r, torch.device("cpu"))
    batch = scene()
    losses = []
    for it in range(ITERATIONS):
        logs = task.train_step(dict(batch), it)
        losses.append({k: repr(float(v)) for k, v in sorted(logs.items())})
    return {"losses": losses, "params": param_digests(task)}


def environment() -> dict:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(), "python": sys.version.split()[0]}


def main() -> None:
    from hdrbench.atomic import atomic_write_text

    data = {"environment": environment(), "iterations": ITERATIONS,
            "traces": {name: trace(name) for name in RECIPES}}
    atomic_write_text(OUT, json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

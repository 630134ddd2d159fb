"""A small real training task and an in-memory dataset used by the trainer tests.

``ToyTask`` trains two 2-layer conv nets to predict the EV+1 and the EV-1 exposure from a reference
exposure drawn at random each iteration (so the global torch RNG matters for exact resume). Scenes are
smooth random HDR images rendered through a gamma 2.2 camera into 5-exposure stacks (EV -2..+2).
The task also exercises a learning-rate scheduler and an optional injected non-finite loss
(``loss.nan_at``, 1-based iteration) for the NaN-guard test.

Other test modules import this file (pytest puts ``tests/`` on ``sys.path``); subprocess tests import it
after adding ``tests/`` to ``sys.path`` themselves.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hdrbench.train.checkpoint import load_checkpoint
from hdrbench.train.optim import build_optimizer
from hdrbench.train.task import TASKS, TrainTask

TESTS_DIR = Path(__file__).resolve().parent

TOY_RECIPE = """
name = "{name}"
description = "toy task for trainer tests"
arch = "toy"
task = "test-toy"
default_preset = "tiny"

[model]
width = 8

[loss]

[optim]
lr = 0.01
betas = [0.5, 0.999]
weight_decay = 5e-5
gradient_centralization = true

[schedule]
iters = 20
batch_size = 2
save_every = 5
log_every = 5

[data]
crop = 16
flip = true
scale_aug = [1.0, 1.5]

[presets.tiny.schedule]
iters = 12
"""


def write_toy_recipe(folder: Path, name: str = "toy", extra: str = "") -> Path:
    """Write the toy recipe (plus ``extra`` TOML appended) to ``folder/<name>.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(TOY_RECIPE.format(name=name) + extra, encoding="utf-8")
    return path


@dataclass
class ToyScene:
    name: str
    stack: torch.Tensor
    evs: list
    hdr: torch.Tensor
    meta: dict = field(default_factory=dict)


class ToyDataset:
    """``n`` smooth HDR scenes of ``size`` x ``size`` pixels rendered to EV -2..+2 stacks (gamma 2.2 CRF)."""

    name = "toy"

    def __init__(self, n: int = 6, size: int = 24, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.evs = [-2.0, -1.0, 0.0, 1.0, 2.0]
        self._scenes = {}
        for i in range(n):
            coarse = torch.exp(1.5 * torch.randn(1, 3, 4, 4, generator=g))
            hdr = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
            hdr = hdr / hdr.median() * 0.18
            stack = torch.stack([(hdr * 2.0**ev).clamp(0, 1) ** (1 / 2.2) for ev in self.evs])
            self._scenes[f"s{i:02d}"] = ToyScene(f"s{i:02d}", stack.float(), list(self.evs), hdr.float())

    def scenes(self, split: str) -> list[str]:
        return sorted(self._scenes) if split == "train" else sorted(self._scenes)[:2]

    def load(self, split: str, scene: str) -> ToyScene:
        return self._scenes[scene]


class ToyNet(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ToyInference(nn.Module):
    kind = "stack"

    def __init__(self, up: ToyNet, down: ToyNet) -> None:
        super().__init__()
        self.up, self.down = up, down

    @torch.no_grad()
    def predict_stack(self, ldr: torch.Tensor, evs: list[float]) -> torch.Tensor:
        outs = []
        for ev in evs:
            x = ldr
            net = self.up if ev > 0 else self.down
            for _ in range(abs(int(round(ev)))):
                x = net(x).clamp(0, 1)
            outs.append(x)
        return torch.stack(outs, dim=1)


class ToyTask(TrainTask):
    """Two nets, two AdamGC optimisers, one StepLR scheduler; one random reference EV per iteration."""

    supports_grad_scaler = True

    def __init__(self, recipe, device) -> None:
        super().__init__(recipe, device)
        width = int(recipe.get("model", {}).get("width", 8))
        self.up = ToyNet(width).to(device)
        self.down = ToyNet(width).to(device)
        optim = recipe.get("optim", {})
        lr = float(optim.get("lr", 1e-2))
        opt_kw = {k: v for k, v in optim.items() if k != "lr"}
        self.opt_up = build_optimizer(self.up.parameters(), lr, opt_kw)
        self.opt_down = build_optimizer(self.down.parameters(), lr, opt_kw)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt_up, step_size=5, gamma=0.8)
        self.scaler = None

    def modules(self):
        return {"up": self.up, "down": self.down}

    def optimizers(self):
        return {"up": self.opt_up, "down": self.opt_down}

    def schedulers(self):
        return {"up": self.sched}

    def _backward_step(self, loss, opt):
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
        else:
            loss.backward()
            opt.step()

    def train_step(self, batch, iteration):
        stack = batch["stack"]
        e = stack.shape[1]
        i = int(torch.randint(1, e - 1, (1,)).item())
        x = stack[:, i]
        loss_up = F.l1_loss(self.up(x).float(), stack[:, i + 1])
        loss_down = F.l1_loss(self.down(x).float(), stack[:, i - 1])
        nan_at = self.recipe.get("loss", {}).get("nan_at")
        if nan_at is not None and iteration + 1 >= nan_at:
            loss_up = loss_up * math.inf
        self._backward_step(loss_up, self.opt_up)
        self._backward_step(loss_down, self.opt_down)
        self.sched.step()
        # Slows a run down so that a test can kill it between checkpoints; not part of the recipe (hash).
        time.sleep(float(os.environ.get("HDRBENCH_TOY_SLEEP_S", "0")))
        return {"up": loss_up.detach(), "down": loss_down.detach()}

    def inference_model(self):
        return ToyInference(self.up, self.down).eval()


if "test-toy" not in TASKS:
    TASKS.register("test-toy", ToyTask)


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every network tensor of a checkpoint, keyed ``<network>.<state-dict key>``."""
    state = load_checkpoint(path)
    return {f"{m}.{k}": v for m, sd in state["modules"].items() for k, v in sd.items()}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    """Same keys and ``torch.equal`` tensors (the message names the first key that differs)."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs (max abs diff {(a[k] - b[k]).abs().max().item():.3g})"


def optimizer_tensors(path: Path) -> list[torch.Tensor]:
    """The Adam moments and step counts of every optimiser in a checkpoint, in a fixed order."""
    state = load_checkpoint(path)
    out = []
    for name in sorted(state["optimizers"]):
        for pid, st in sorted(state["optimizers"][name]["state"].items()):
            out += [st["exp_avg"], st["exp_avg_sq"], st["step"]]
    return out


def flat_weights(modules: dict) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for name in sorted(modules) for p in modules[name].state_dict().values()])


def test_toy_dataset_renders_a_monotone_stack():
    # Sanity of the fixture itself: a brighter exposure is never darker (gamma CRF, clipping at 1).
    ds = ToyDataset(n=2, size=8)
    s = ds.load("train", "s00")
    assert s.stack.shape == (5, 3, 8, 8)
    assert torch.all(s.stack[1:] >= s.stack[:-1] - 1e-7)
    assert 0 <= float(s.stack.min()) and float(s.stack.max()) <= 1


def test_toy_task_learns_on_its_own():
    # 60 plain iterations (no trainer) reduce the up-net's L1 loss: the toy task is a real learning problem,
    # so the trainer tests that use it exercise real training. Factor 2 is loose: the identity start has
    # L1 ~0.1 and the learnt mapping (a per-pixel gain) is easy for two convs.
    torch.manual_seed(0)
    task = ToyTask({"model": {"width": 8}, "optim": {"lr": 0.01}, "loss": {}}, torch.device("cpu"))
    ds = ToyDataset(n=4, size=16)
    stack = torch.stack([ds.load("train", s).stack for s in ds.scenes("train")])
    first = [task.train_step({"stack": stack}, it)["up"].item() for it in range(5)]
    for it in range(5, 55):
        task.train_step({"stack": stack}, it)
    last = [task.train_step({"stack": stack}, it)["up"].item() for it in range(55, 60)]
    assert sum(last) / 5 < sum(first) / 5 / 2, (first, last)


@pytest.fixture
def toy_dataset():
    return ToyDataset()

"""Shared helpers of the baseline tests: the trained methods they cover, small realistic training batches and
golden-file access.

The registry-driven tests (``test_baselines_end_to_end``, ``test_trained_methods``) are parametrised by
:func:`trained_methods`, read at collection time: every shipped recipe whose task has no tests of its own,
plus the test-only ``toy-gain`` (``tests/toy_method.py`` + ``tests/methods/toy-gain.toml``), which shows that
a registered method is picked up without editing them.

Batches are built the way the trainer builds them (ground-truth stack + HDR), from a procedural HDR scene:
a smooth log-normal background, a sky gradient and a few small light sources 50-500x brighter than the
median, so that EV0 has clipped highlights (HDRCNN/SingleHDR masks are non-empty) and the stack spans
EV -3..+3 through a gamma-2.2 camera with 8-bit quantisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# A test-only method registers its arch and task the way a shipped one does, by being imported (shipped methods
# are imported by their packages); importing it here registers it before any test module reads the registries.
import toy_method  # noqa: F401  (imported for its registrations)

TESTS_DIR = Path(__file__).resolve().parent
GOLDEN_DIR = TESTS_DIR / "golden"
EVS = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]


# -- the trained methods the registry-driven tests cover ------------------------------------------------------
#: Tasks whose recipes have their own end-to-end, golden and size tests: the proposed method and its ablation
#: ladder (test_train_proposed_task, test_ladder, test_models_proposed).
OWN_TESTS_TASKS = ("proposed",)
#: Recipes of test-only trained methods (one recipe per method); their modules are imported above.
TEST_RECIPES_DIR = TESTS_DIR / "methods"


def trained_methods() -> list[str]:
    """Every trained method the registry-driven tests cover, as a reference ``load_recipe`` accepts.

    The shipped recipes (``methods/``, by name) whose task is not in :data:`OWN_TESTS_TASKS`, then the
    test-only recipes (``tests/methods/*.toml``, by path). Read at collection time, so a new method is
    tested by being registered (its module imported, its recipe in a recipe folder).
    """
    from hdrbench.train.recipes import list_recipes, load_recipe

    shipped = [n for n in list_recipes() if load_recipe(n)["task"] not in OWN_TESTS_TASKS]
    return shipped + [str(p) for p in sorted(TEST_RECIPES_DIR.glob("*.toml"))]


def method_name(ref: str) -> str:
    """The recipe name of a reference from :func:`trained_methods` (a name, or a path whose stem is the name)."""
    return Path(ref).stem


def trained_method_params() -> list:
    """:func:`trained_methods` as pytest parameters with the recipe names as ids."""
    import pytest

    return [pytest.param(ref, id=method_name(ref)) for ref in trained_methods()]


def realistic_hdr(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) float32 linear relative HDR with highlights (about 12 stops)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        noise = torch.randn(1, 1, size // 4, size // 4, generator=g)
        smooth = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        base = torch.exp(0.8 * smooth) * (0.6 + 0.8 * (1 - yy))
        tint = 0.8 + 0.4 * torch.rand(3, 1, 1, generator=g)
        img = base.unsqueeze(0) * tint
        for _ in range(3):
            cy, cx = torch.rand(2, generator=g)
            r = 0.04 + 0.06 * float(torch.rand(1, generator=g))
            blob = torch.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)))
            img = img + (50 + 450 * float(torch.rand(1, generator=g))) * blob.unsqueeze(0)
        out.append(img)
    return torch.stack(out).float()


def simulate(hdr: torch.Tensor, evs=EVS) -> torch.Tensor:
    """Stack (n, E, 3, H, W) in [0, 1]: EV0 median at 0.18, gamma 1/2.2, clipping, 8-bit quantisation."""
    med = hdr.flatten(1).median(dim=1).values.view(-1, 1, 1, 1)
    frames = []
    for ev in evs:
        lin = (hdr * (0.18 / med) * 2.0**ev).clamp(0, 1)
        frames.append(torch.round(lin ** (1 / 2.2) * 255) / 255)
    return torch.stack(frames, dim=1)


def realistic_batch(n: int = 2, size: int = 32, seed: int = 0, evs=EVS) -> dict:
    """A trainer batch: ``stack`` (n, E, 3, size, size), ``evs`` (E,), ``hdr`` (n, 3, size, size), ``scene``."""
    hdr = realistic_hdr(n, size, seed)
    return {"stack": simulate(hdr, evs), "evs": torch.tensor(evs), "hdr": hdr, "scene": [f"s{i}" for i in range(n)]}


def golden_input(size: int = 32, seed: int = 1234) -> torch.Tensor:
    """The seeded LDR input of the golden-output tests: (1, 3, size, size) in [0, 1] (EV0 of a realistic scene)."""
    return realistic_batch(1, size, seed)["stack"][:, 3].contiguous()


def golden_path(name: str) -> Path:
    """The golden file of trained method ``name`` (a recipe name): ``golden/baselines_<name, - as _>.npz``."""
    return GOLDEN_DIR / f"baselines_{name.replace('-', '_')}.npz"


def load_golden(name: str) -> dict[str, np.ndarray]:
    """Arrays stored by ``tests/golden/make_baselines_golden.py`` for trained method ``name``."""
    path = golden_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"no golden file {path} for trained method {name!r}: generate it with 'python "
                                f"tests/golden/make_baselines_golden.py {name}' and review it before committing")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def every_param_has_grad(module: torch.nn.Module) -> list[str]:
    """Names of parameters whose gradient is missing or all zero (empty list = every parameter was reached)."""
    return [n for n, p in module.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]


# -- golden outputs ---------------------------------------------------------------------------------------
# Tolerance of the golden comparisons: float32 convolutions differ between thread counts and CPU kernels by
# a few ulps per layer; rtol 1e-4 / atol 1e-5 (kornia's float32 pair) absorbs that and nothing larger.
GOLDEN_RTOL, GOLDEN_ATOL = 1e-4, 1e-5


def golden_generator():
    """The module ``tests/golden/make_baselines_golden.py`` (it builds the golden variants)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_baselines_golden", GOLDEN_DIR / "make_baselines_golden.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def assert_golden(ref: str) -> None:
    """Rebuild the tiny variant of ``ref`` exactly as the generator script does and compare with its stored outputs."""
    name = method_name(ref)
    stored = load_golden(name)
    ldr = golden_input()
    np.testing.assert_array_equal(ldr.numpy(), stored["ldr"])  # the seeded input itself must not drift
    fresh = golden_generator().outputs(ref, ldr)
    assert sorted(fresh) == sorted(stored)
    for key in stored:
        np.testing.assert_allclose(fresh[key], stored[key], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL, err_msg=f"{name}:{key}")


# -- training through the TrainTask -----------------------------------------------------------------------
def tiny_task(recipe_name: str):
    """The recipe's tiny preset and its TrainTask on the CPU (weights seeded with 0)."""
    from hdrbench.train.recipes import load_recipe
    from hdrbench.train.trainer import get_task_class

    recipe = load_recipe(recipe_name, preset="tiny")
    torch.manual_seed(0)
    return recipe, get_task_class(recipe["task"])(recipe, torch.device("cpu"))


def train_steps(task, batch: dict, steps: int) -> tuple[list[dict], dict[str, float]]:
    """Run ``steps`` iterations on one batch; return the loss dicts and the largest weight change per module."""
    before = {n: {k: v.detach().clone() for k, v in m.state_dict().items()} for n, m in task.modules().items()}
    for m in task.modules().values():
        m.train()
    history = [task.train_step(batch, it) for it in range(steps)]
    changed = {}
    for n, m in task.modules().items():
        changed[n] = max(float((v.float() - before[n][k].float()).abs().max()) for k, v in m.state_dict().items()
                         if v.is_floating_point())
    return history, changed


# -- end to end: trainer + evaluation harness -----------------------------------------------------------------
def hdr_folder(shared_data) -> str:
    return f"hdr-folder:{shared_data / 'hdr'}"


def train_and_evaluate(recipe_ref: str, shared_data, tmp_path) -> tuple:
    """Train the tiny preset through the generic trainer on the real HDR folder, then evaluate one test scene.

    The trained-method loader finds the checkpoint just written by recipe name and dataset and rebuilds the
    networks from the recipe stored in it; the harness then scores the method (by name for a shipped recipe).

    Args:
        recipe_ref: a recipe name or path (see :func:`trained_methods`).

    Returns:
        The records table (pandas DataFrame) of the evaluation run and the evaluated method.
    """
    import pandas as pd

    from hdrbench.data import get_dataset
    from hdrbench.evaluate import harness
    from hdrbench.evaluate.trained import load_trained_method
    from hdrbench.train import trainer
    from hdrbench.train.recipes import load_recipe

    dataset = get_dataset(hdr_folder(shared_data), resolution=64)
    recipe = load_recipe(recipe_ref, preset="tiny")
    ckpt = trainer.train(recipe, dataset, progress=False)  # default run folder (tmp via conftest)
    assert ckpt.is_file()
    method = load_trained_method(recipe.name, dataset=dataset.name)
    assert method.checkpoint.resolve() == ckpt.resolve()
    # A shipped recipe is evaluated by name (the harness resolves it through methods/ to the same checkpoint);
    # a test-only recipe, outside methods/, as the loaded method.
    run = harness.evaluate(recipe.name if recipe_ref == recipe.name else method, dataset, limit=1, leaderboard=False, out=tmp_path / "eval",
                           hdr_metrics=("pu21-psnr",))
    return pd.read_csv(run / "records.csv"), method


def count_on_meta(build) -> int:
    """Parameters of ``build()`` constructed on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def calibrate_batchnorm(model: torch.nn.Module, run) -> torch.nn.Module:
    """Set every BatchNorm's running statistics from one seeded train-mode pass ``run(model)``, then eval mode.

    Freshly built networks have running mean 0 / variance 1; with small initial weights (N(0, 0.02) in
    Deep recursive HDRI) eval-mode activations then shrink layer by layer and every output is nearly
    constant, which would make golden and dropout tests insensitive. One calibration pass fixes that.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass sets the statistics exactly
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        run(model)
    return model.eval()

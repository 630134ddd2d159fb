"""Tests of the proposed method's training task, its recipes and the Table 3 ladder.

What is checked: the recipe files resolve and the ladder differs from ``proposed`` only in its switches;
the optimiser groups carry the official hyper-parameters; pre-training, the ablation switches and the
bug-reproduction options change what trains; the HDR loss reaches every network; and a single scene is
overfitted (the stack error falls by a stated factor in a bounded number of iterations).
"""

from __future__ import annotations

import tomllib

import pytest
import torch

from hdrbench.errors import InputError
from hdrbench.imaging.edges import canny_edges
from hdrbench.models.proposed import ProposedModel
from hdrbench.paths import recipes_dir
from hdrbench.train import recipes
from hdrbench.train.proposed_task import ProposedTask
from hdrbench.train.task import TASKS

LADDER = ["ladder-1-unet", "ladder-2-recurrent", "ladder-3-cin", "ladder-4-decomposition",
          "ladder-5-synthesis-layer", "ladder-6-cobi"]
SWITCHES = {("model", "recurrent"), ("model", "cin"), ("model", "decomposition"), ("loss", "hdr_loss"),
            ("loss", "cobi")}
#: The switches of each ladder step, in the order of Table 3.
EXPECTED_SWITCHES = [
    dict(recurrent=False, cin=False, decomposition=False, hdr_loss=False, cobi=False),
    dict(recurrent=True, cin=False, decomposition=False, hdr_loss=False, cobi=False),
    dict(recurrent=True, cin=True, decomposition=False, hdr_loss=False, cobi=False),
    dict(recurrent=True, cin=True, decomposition=True, hdr_loss=False, cobi=False),
    dict(recurrent=True, cin=True, decomposition=True, hdr_loss=True, cobi=False),
    dict(recurrent=True, cin=True, decomposition=True, hdr_loss=True, cobi=True),
]
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _no_vgg(monkeypatch):
    monkeypatch.delenv("HDRBENCH_VGG19_WEIGHTS", raising=False)


def scene(h: int = 32, w: int = 32):
    """A procedural HDR scene (gradient, a bright lamp, a deep shadow; about 10 stops) and its 7-EV stack,
    rendered with a gamma 2.2 camera and 8-bit quantisation. Returns (stack (1, 7, 3, h, w), evs, hdr)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    hdr = torch.stack([0.2 + 0.6 * xx, 0.1 + 0.5 * yy, 0.3 * (1 - xx) + 0.05]) * 0.5
    hdr[:, h // 4:h // 4 + 6, w // 2 + 2:w // 2 + 10] = torch.tensor([6.0, 5.0, 3.0]).view(3, 1, 1)
    hdr[:, h - 12:h - 4, 4:12] *= 0.05
    evs = torch.arange(-3, 4).float()
    stack = torch.stack([((hdr * 2.0 ** e).clamp(0, 1) ** (1 / 2.2) * 255).round() / 255 for e in evs])
    return stack.unsqueeze(0), evs, hdr.unsqueeze(0)


def make_task(name: str = "proposed", preset: str = "tiny", **overrides) -> ProposedTask:
    torch.manual_seed(0)
    return ProposedTask(recipes.load_recipe(name, preset=preset, overrides=overrides), CPU)


def batch_of(stack, evs, hdr):
    return {"stack": stack, "evs": evs, "hdr": hdr, "scene": ["procedural"]}


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(module, before) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(module.parameters(), before))


# ---------------------------------------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------------------------------------
def test_task_is_registered():
    assert TASKS.get("proposed") is ProposedTask


@pytest.mark.parametrize("preset", ["paper", "cpu", "cpu-ladder", "tiny"])
def test_proposed_recipe_presets(preset):
    r = recipes.load_recipe("proposed", preset=preset)
    assert r["arch"] == "proposed" and r["task"] == "proposed"
    assert r["optim"]["betas"] == [0.5, 0.999] and r["optim"]["weight_decay"] == 5e-5
    assert (r["optim"]["lr_global"], r["optim"]["lr_local"], r["optim"]["lr_refine"]) == (1e-4, 1e-4, 1e-5)
    assert r["loss"]["hist_weight"] == 0.01 and r["loss"]["cobi_weight"] == 0.1 and r["loss"]["mu"] == 100.0
    # The official code's bugs are fixed under the corrected fidelity (tiny) and reproduced under the
    # official one (paper, cpu, cpu-ladder).
    fixed = {"tiny": True}.get(preset, False)
    assert r["fidelity"] == ("corrected" if fixed else "official")
    assert r["loss"]["stack_cobi_grad"] is fixed and r["loss"]["cobi_official_swap"] is not fixed
    if preset == "paper":
        assert r["model"]["width"] == 1.0
        assert (r["schedule"]["iters"], r["schedule"]["pretrain_iters"], r["schedule"]["batch_size"]) == (80000, 10000, 1)
        assert r["data"]["crop"] == 256 and r["data"]["flip"] is True and r["data"]["scale_aug"] == [1.0, 2.0]
    if preset == "cpu-ladder":  # the cpu scale, shortened: only the schedule differs
        cpu = recipes.load_recipe("proposed", preset="cpu")
        same = set(r) - {"schedule", "preset"}
        assert {k: r[k] for k in same} == {k: cpu[k] for k in same}
        assert (r["schedule"]["iters"], r["schedule"]["pretrain_iters"]) == (100, 25)
    counts = recipes.parameter_counts(r)
    if preset == "paper":
        assert counts["total"] == pytest.approx(232.2e6, rel=5e-3)


def test_methods_show_prints_per_network_counts_per_preset():
    # What ``hdrbench methods show proposed`` prints. Paper preset: the official code's hand counts
    # (98.9 M global, 6.19 M local, 11.0 M refinement per direction) at the printed 3-decimal precision.
    text = recipes.describe("proposed")
    lines = {line.split("]")[0].split("[")[1]: line for line in text.splitlines() if "parameters [" in line}
    assert set(lines) == {"paper", "cpu", "cpu-ladder", "demo", "tiny"}
    for d in ("up", "down"):
        for part in (f"global_{d} 98.918 M", f"local_{d} 6.189 M", f"refine_{d} 11.008 M"):
            assert part in lines["paper"], (part, lines["paper"])
        assert f"global_{d} 6.187 M" in lines["cpu"]  # quarter width: about 1/16 of the paper's 98.9 M
    assert "total 232.230 M" in lines["paper"]


def test_recipe_text_states_the_fidelity_item_by_item():
    from hdrbench.train.fidelity import IMPLIED

    text = (recipes_dir() / "proposed.toml").read_text()
    raw = tomllib.loads(text)
    header = text.split("name =")[0]
    for dotted in IMPLIED:  # every implied key is in the header's table
        assert dotted in header, dotted
    for preset in ("paper", "cpu", "cpu-ladder", "tiny"):  # each preset states its fidelity and why
        assert f"#   {preset}" in header or f"#   {preset} " in header, preset
    card = raw["card"]
    assert "official" in card["fidelity"] and "corrected" in card["fidelity"]
    assert "retain_graph" in card["official_routing"] and "not reproduced" in card["official_routing"].lower()
    assert "CoBi" in card["official_items"] and "CoBi" in card["corrected_items"]


def _flatten(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, prefix + (k,))
        else:
            yield prefix + (k,), v


@pytest.mark.parametrize("preset", ["paper", "cpu", "cpu-ladder", "tiny"])
def test_ladder_differs_from_proposed_only_in_switches(preset):
    base = dict(_flatten(recipes.load_recipe("proposed", preset=preset)))
    for name, switches in zip(LADDER, EXPECTED_SWITCHES):
        r = recipes.load_recipe(name, preset=preset)
        flat = dict(_flatten(r))
        diff = {k for k in set(base) | set(flat) if base.get(k) != flat.get(k)}
        diff -= {("name",), ("description",)}
        assert diff <= SWITCHES, (name, diff)
        for key, value in switches.items():
            section = "model" if key in ("recurrent", "cin", "decomposition") else "loss"
            assert r[section][key] is value, (name, key)
        raw = tomllib.loads((recipes_dir() / f"{name}.toml").read_text())
        assert raw["extends"] == "proposed"
    # The last step is the proposed method itself.
    last = dict(_flatten(recipes.load_recipe("ladder-6-cobi", preset=preset)))
    assert {k for k in base if base[k] != last.get(k)} <= {("name",), ("description",)}


# ---------------------------------------------------------------------------------------------------------
# Task structure
# ---------------------------------------------------------------------------------------------------------
def test_networks_and_optimiser_groups():
    task = make_task()
    assert set(task.modules()) == {f"{k}_{d}" for k in ("global", "local", "refine") for d in ("up", "down")}
    opts = task.optimizers()
    assert set(opts) == {"global", "local", "refine"}
    from hdrbench.train.optim import AdamGC

    for group, lr in (("global", 1e-4), ("local", 1e-4), ("refine", 1e-5)):
        opt = opts[group]
        assert isinstance(opt, AdamGC)
        pg = opt.param_groups[0]
        assert pg["lr"] == lr and pg["betas"] == (0.5, 0.999) and pg["weight_decay"] == 5e-5
        assert pg["gradient_centralization"] is True
        # Each group holds exactly its two networks (up and down).
        want = {id(p) for d in ("up", "down") for p in task.modules()[f"{group}_{d}"].parameters()}
        assert {id(p) for p in pg["params"]} == want
    model = task.inference_model()
    assert isinstance(model, ProposedModel) and model.kind == "stack"
    assert task.cobi_variant == "rgb-patch"


def test_decomposition_off_has_only_global_networks():
    task = make_task("ladder-1-unet")
    assert set(task.modules()) == {"global_up", "global_down"} and set(task.optimizers()) == {"global"}
    assert task.cobi is None


def test_bad_batches_and_options_are_rejected():
    task = make_task()
    stack, evs, hdr = scene()
    with pytest.raises(InputError, match="evs"):
        task.train_step(batch_of(stack[:, 1:], evs[1:], hdr), 0)
    with pytest.raises(InputError, match="multiples of 32"):
        task.train_step(batch_of(stack[..., :30], evs, hdr[..., :30]), 0)
    with pytest.raises(InputError, match="unknown \\[loss\\] keys"):
        make_task(**{"loss.hist_wieght": 0.1})
    # The HDR loss needs ground truth HDR once it is active.
    with pytest.raises(InputError, match="'hdr'"):
        make_task(**{"schedule.pretrain_iters": 0}).train_step({"stack": stack, "evs": evs}, 0)


# ---------------------------------------------------------------------------------------------------------
# Schedule, switches and the bug-reproduction options
# ---------------------------------------------------------------------------------------------------------
def test_pretraining_trains_global_and_local_only_then_everything():
    task = make_task(**{"schedule.pretrain_iters": 1})
    stack, evs, hdr = scene()
    refine_before = _snapshot(task.modules()["refine_up"])
    global_before = _snapshot(task.modules()["global_up"])
    logs = task.train_step(batch_of(stack, evs, hdr), 0)
    assert not _changed(task.modules()["refine_up"], refine_before)
    assert _changed(task.modules()["global_up"], global_before)
    assert not any(k.endswith(("refine_l1", "cobi", "hdr")) for k in logs)
    assert {"step_global_l1", "step_hist", "step_edge", "stack_global_l1", "stack_hist", "stack_edge"} <= set(logs)
    logs = task.train_step(batch_of(stack, evs, hdr), 1)
    assert _changed(task.modules()["refine_up"], refine_before)
    assert {"step_refine_l1", "step_cobi", "stack_refine_l1", "stack_cobi", "stack_hdr"} <= set(logs)
    assert logs["cobi_vgg19"] == 0.0  # which CoBi variant ran is recorded
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())


@pytest.mark.parametrize("name, present, absent", [
    ("ladder-1-unet", {"stack_global_l1", "stack_hist"}, {"stack_edge", "stack_refine_l1", "stack_cobi", "stack_hdr"}),
    ("ladder-4-decomposition", {"stack_edge", "stack_refine_l1"}, {"stack_cobi", "stack_hdr"}),
    ("ladder-5-synthesis-layer", {"stack_refine_l1", "stack_hdr"}, {"stack_cobi"}),
])
def test_ladder_switches_are_honoured_in_training(name, present, absent):
    task = make_task(name, **{"schedule.pretrain_iters": 0, "schedule.single_step": False})
    logs = task.train_step(batch_of(*scene()), 0)
    assert present <= set(logs) and not (absent & set(logs)), logs


def _grad_norms(task, kind):
    return [float(p.grad.abs().sum()) if p.grad is not None else 0.0
            for d in ("up", "down") for p in task.modules()[f"{kind}_{d}"].parameters()]


def _only(term: str, **extra):
    weights = {f"loss.{k}": 0.0 for k in ("image_weight", "hist_weight", "edge_weight", "refine_weight",
                                          "cobi_weight", "hdr_weight")}
    weights[f"loss.{term}"] = 1.0
    return {**weights, "schedule.pretrain_iters": 0, "schedule.single_step": False, **extra}


def test_stack_cobi_gradient_fixed_by_default_and_reproducible():
    batch = batch_of(*scene())
    fixed = make_task(**_only("cobi_weight"))
    fixed.train_step(batch, 0)
    assert sum(_grad_norms(fixed, "refine")) > 0  # the stack pass's CoBi term trains the refinement nets
    official = make_task(**_only("cobi_weight", **{"loss.stack_cobi_grad": False}))
    logs = official.train_step(batch, 0)
    assert logs["stack_cobi"] > 0  # still computed and logged ...
    assert sum(_grad_norms(official, "refine")) == 0  # ... but, as in the official code, without gradient


def test_cobi_swap_option():
    assert (make_task().cobi.band_width, make_task().cobi.weight_sp) == (0.5, 0.1)
    swapped = make_task(**{"loss.cobi_official_swap": True}).cobi
    assert (swapped.band_width, swapped.weight_sp) == (0.5, 0.5)


def test_hdr_loss_reaches_every_network():
    task = make_task(**_only("hdr_weight"))
    logs = task.train_step(batch_of(*scene()), 0)
    assert logs["stack_hdr"] > 0
    for kind in ("global", "local", "refine"):
        assert sum(_grad_norms(task, kind)) > 0, kind


def test_teacher_forced_pass_trains_each_network_on_its_own_loss():
    # With only the edge loss on, the teacher-forced pass must leave the global and refinement nets without
    # gradient: their inputs are ground truth or detached.
    task = make_task(**{**_only("edge_weight"), "schedule.single_step": True, "schedule.stack_pass": False})
    task.train_step(batch_of(*scene()), 0)
    assert sum(_grad_norms(task, "global")) == 0 and sum(_grad_norms(task, "refine")) == 0
    assert sum(_grad_norms(task, "local")) > 0


# ---------------------------------------------------------------------------------------------------------
# Overfitting one scene
# ---------------------------------------------------------------------------------------------------------
def _global_stack_error(model: ProposedModel, stack: torch.Tensor) -> float:
    """Mean absolute error in [0, 1] of the 6 images generated recursively from EV 0 by the global networks."""
    x = stack[:, 3] * 2 - 1
    edge = canny_edges(stack[:, 3])
    with torch.no_grad():
        up = model.recurse(x, edge, 3, "up", 3, refine=False)
        down = model.recurse(x, edge, 3, "down", 3, refine=False)
    errs = [float(((o.image + 1) / 2 - stack[:, 4 + k]).abs().mean()) for k, o in enumerate(up)]
    errs += [float(((o.image + 1) / 2 - stack[:, 2 - k]).abs().mean()) for k, o in enumerate(down)]
    return sum(errs) / 6


@pytest.mark.slow
def test_single_scene_is_overfitted():
    # Tiny preset, pre-training phase (global + local networks), learning rate 3e-3 instead of 1e-4 so that
    # 30 iterations suffice. Measured here: error 0.267 -> 0.041 (6.6x) and edge loss 0.51 -> 0.15 (3.5x) in
    # 30 iterations; the test asks for 3x and 2x so that kernel-level float differences cannot flip it.
    task = make_task(**{"schedule.pretrain_iters": 1000, "optim.lr_global": 3e-3, "optim.lr_local": 3e-3})
    stack, evs, hdr = scene()
    batch = batch_of(stack, evs, hdr)
    model = task.inference_model()
    before = _global_stack_error(model, stack)
    first = task.train_step(batch, 0)
    for it in range(1, 30):
        last = task.train_step(batch, it)
    after = _global_stack_error(model, stack)
    assert after < before / 3, (before, after)
    assert last["step_edge"] < first["step_edge"] / 2, (first["step_edge"], last["step_edge"])

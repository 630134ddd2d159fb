"""The fidelity switch of the proposed method: official routing, implied recipe values, corrected unchanged.

The routing expectation below is written from the official code's description (docs: the method as the
official code implements it, section 1.5), not from the task's code: for each loss, the networks whose
optimisers step on its gradient, in the teacher-forced pass and the stack pass, before and after
pre-training. The test records every optimiser step and compares the gradient each stepped network holds
with the gradient of the named loss computed independently on the same forward graph.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from hdrbench.commands.train import recipe_options
from hdrbench.errors import InputError
from hdrbench.train import recipes
from hdrbench.train.fidelity import IMPLIED, implied_values
from hdrbench.train.proposed_task import ProposedTask
from hdrbench.train.trainer import prepare_task

CPU = torch.device("cpu")
GOLDEN = Path(__file__).resolve().parent / "golden"
NETS = {"global": ("global_up", "global_down"), "local": ("local_up", "local_down"),
        "refine": ("refine_up", "refine_down")}
ALL = ("global", "local", "refine")

# -- the official routing, from the description of solver.py --------------------------------------------
# loss name -> the terms it sums; routes: (loss, network kinds whose optimisers step on it), in step order.
LOSSES = {"edge": ("edge",), "global": ("global_l1", "hist"), "refine": ("refine_l1", "cobi"), "hdr": ("hdr",)}
EXPECTED_ROUTES = {
    # teacher-forced pass, per step: struct, gen and (after pre-training) combine, each on its own loss
    ("single", "pretrain"): [("edge", ("local",)), ("global", ("global",))],
    ("single", "joint"): [("edge", ("local",)), ("global", ("global",)), ("refine", ("refine",))],
    # stack pass: (a) edge -> local, (b) global + hist -> global, (c) refine + CoBi -> combine,
    # (d) HDR alone -> all six networks (a second step for each)
    ("stack", "pretrain"): [("edge", ("local",)), ("global", ("global",))],
    ("stack", "joint"): [("edge", ("local",)), ("global", ("global",)), ("refine", ("refine",)), ("hdr", ALL)],
}


@pytest.fixture(autouse=True)
def _no_vgg(monkeypatch):
    monkeypatch.delenv("HDRBENCH_VGG19_WEIGHTS", raising=False)


def _trace_module():
    spec = importlib.util.spec_from_file_location("make_train_trace", GOLDEN / "make_train_trace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _official_task(**overrides) -> ProposedTask:
    torch.manual_seed(0)
    r = recipes.load_recipe("proposed", preset="tiny", overrides={"fidelity": "official", **overrides})
    return ProposedTask(r, CPU)


class _Recorder:
    """Records each optimiser step (name, gradients held by every network) and each routed term set, with
    the gradients of every loss of :data:`LOSSES` over every network, computed independently."""

    def __init__(self, task: ProposedTask) -> None:
        self.task = task
        self.steps: list[tuple[str, dict[str, list]]] = []
        self.calls: list[dict] = []
        for name, opt in task.optimizers().items():
            opt.register_step_pre_hook(self._hook(name))
        original = task._routed_steps

        def spy(terms, refine, hdr_to_all):
            params = {n: list(net.parameters()) for n, net in task.modules().items()}
            flat = [p for ps in params.values() for p in ps]
            grads = {}
            for loss, keys in LOSSES.items():
                parts = [terms[k] for k in keys if k in terms]
                if not parts or not any(p.requires_grad for p in parts):
                    continue
                gs = torch.autograd.grad(sum(parts), flat, retain_graph=True, allow_unused=True)
                it = iter(gs)
                grads[loss] = {n: [next(it) for _ in ps] for n, ps in params.items()}
            self.calls.append({"grads": grads, "first_step": len(self.steps), "keys": set(terms)})
            return original(terms, refine, hdr_to_all)

        task._routed_steps = spy

    def _hook(self, name):
        def hook(opt, args, kwargs):
            held = {n: [None if p.grad is None else p.grad.clone() for p in net.parameters()]
                    for n, net in self.task.modules().items()}
            self.steps.append((name, held))
        return hook


def _check_routes(rec: _Recorder, routes, *, reached_elsewhere: bool) -> None:
    """Every routed call steps exactly the expected optimisers, in order, each holding its loss's gradient
    and nothing on any other network."""
    assert rec.calls, "the official routing was not used"
    for call in rec.calls:
        expected = [(loss, kinds) for loss, kinds in routes if loss in call["grads"]]
        assert [loss for loss, _ in expected] == [loss for loss, _ in routes], (call["keys"], routes)
        i = call["first_step"]
        for loss, kinds in expected:
            want = call["grads"][loss]
            # networks this loss reaches (the teacher-forced pass runs one direction per step)
            reached = [n for k in kinds for n in NETS[k] if any(g is not None for g in want[n])]
            assert reached, f"loss {loss} reaches none of {kinds}"
            stepped = [rec.steps[i + j][0] for j in range(len(reached))]
            assert stepped == reached, (loss, stepped, reached)
            for j, net in enumerate(reached):
                held = rec.steps[i + j][1]
                for other, gs in held.items():
                    if other in reached:
                        for g, w in zip(gs, want[other]):
                            # Same graph, same loss: the two autograd calls agree to float32 rounding of the
                            # accumulation order at most.
                            assert (g is None) == (w is None)
                            if g is not None:
                                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-8)
                    else:
                        assert all(g is None for g in gs), f"{other} holds a gradient while {loss} steps {net}"
            i += len(reached)
        if reached_elsewhere and "edge" in call["grads"]:
            # The stack-pass edge loss also depends on the global nets (the local nets read the generated
            # images), so the routing, not the graph, keeps it off them: the check above can fail.
            assert any(g is not None and g.abs().sum() > 0 for g in call["grads"]["edge"]["global_up"])


def _batch():
    return _trace_module().scene()


@pytest.mark.parametrize("phase", ["pretrain", "joint"])
def test_official_stack_pass_routing(phase):
    task = _official_task(**{"schedule.single_step": False})
    rec = _Recorder(task)
    task.train_step(_batch(), 0 if phase == "pretrain" else 10)
    _check_routes(rec, EXPECTED_ROUTES[("stack", phase)], reached_elsewhere=True)
    counts = {n: sum(1 for name, _ in rec.steps if name == n) for n in task.optimizers()}
    if phase == "joint":
        assert counts == {n: 2 for n in task.optimizers()}  # own loss, then the HDR loss
    else:
        assert counts == {"global_up": 1, "global_down": 1, "local_up": 1, "local_down": 1,
                          "refine_up": 0, "refine_down": 0}


@pytest.mark.parametrize("phase", ["pretrain", "joint"])
def test_official_teacher_forced_routing(phase):
    task = _official_task(**{"schedule.stack_pass": False})
    rec = _Recorder(task)
    task.train_step(_batch(), 0 if phase == "pretrain" else 10)
    _check_routes(rec, EXPECTED_ROUTES[("single", phase)], reached_elsewhere=False)
    assert len(rec.calls) == 6  # one routed step per generated exposure, whatever the reference index


def test_official_mode_has_six_optimisers_and_corrected_three():
    assert sorted(_official_task().optimizers()) == sorted(n for ns in NETS.values() for n in ns)
    torch.manual_seed(0)
    corrected = ProposedTask(recipes.load_recipe("proposed", preset="tiny"), CPU)
    assert sorted(corrected.optimizers()) == ["global", "local", "refine"]


def test_corrected_is_bit_for_bit_the_code_before_the_switch():
    """Replays the trace generated from the training code before the fidelity switch existed."""
    m = _trace_module()
    ref = json.loads((GOLDEN / "proposed_train_trace.json").read_text())
    same_env = ref["environment"] == {k: v for k, v in m.environment().items()}
    for name in m.RECIPES:
        for overrides in ({"fidelity": "corrected"}, None):
            got = m.trace(name, overrides)
            if same_env:
                assert got == ref["traces"][name], name
            else:
                # Another CPU kernel set or torch version rounds float32 differently; the bitwise check
                # needs the recorded environment, elsewhere the losses must agree to float32 noise.
                for a, b in zip(got["losses"], ref["traces"][name]["losses"]):
                    assert a.keys() == b.keys()
                    for k in a:
                        assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-4, abs=1e-7), (name, k)


def test_fidelity_presets_and_explicit_keys():
    for name in ("proposed", "ladder-1-unet", "ladder-4-decomposition", "ladder-6-cobi"):
        for preset in ("paper", "cpu", "cpu-ladder"):
            r = recipes.load_recipe(name, preset=preset)
            assert r["fidelity"] == "official"
            for dotted, value in implied_values("official").items():
                section, key = dotted.split(".")
                if (preset, dotted) != ("paper", "loss.cobi_features"):
                    assert r[section][key] == value, (name, preset, dotted)
        assert recipes.load_recipe(name, preset="tiny")["fidelity"] == "corrected"
    # an explicit key wins over the implied value; the others follow the fidelity
    r = recipes.load_recipe("proposed", preset="cpu", overrides={"loss.hdr_normalize": "max"})
    assert r["loss"]["hdr_normalize"] == "max" and r["loss"]["routing"] == "official"
    r = recipes.load_recipe("proposed", preset="cpu", overrides={"fidelity": "corrected"})
    assert {d: r[d.split(".")[0]][d.split(".")[1]] for d in IMPLIED} == implied_values("corrected")
    assert r.hash != recipes.load_recipe("proposed", preset="cpu").hash
    with pytest.raises(InputError, match="fidelity must be one of"):
        recipes.load_recipe("proposed", preset="tiny", overrides={"fidelity": "paper"})
    with pytest.raises(InputError, match="task 'proposed'"):
        recipes.load_recipe("hdrcnn", overrides={"fidelity": "official"})


def test_method_option_values_are_toml():
    assert recipe_options(["fidelity=official", "loss.stack_cobi_grad=false", "schedule.iters=3",
                           "loss.cobi_features=rgb-patch", "data.scale_aug=[1.0, 2.0]"]) == {
        "fidelity": "official", "loss.stack_cobi_grad": False, "schedule.iters": 3,
        "loss.cobi_features": "rgb-patch", "data.scale_aug": [1.0, 2.0]}
    with pytest.raises(InputError, match="KEY=VALUE"):
        recipe_options(["fidelity"])


def test_paper_preset_without_vgg_weights_stops_before_training():
    # The paper preset's CoBi settings at a width that builds quickly; the check does not depend on width.
    small = {"model.width": 0.125}
    torch.manual_seed(0)
    r = recipes.load_recipe("proposed", preset="paper", overrides=small)
    with pytest.raises(InputError) as err:
        prepare_task(r, CPU)
    msg = str(err.value)
    assert "HDRBENCH_VGG19_WEIGHTS" in msg and "loss.cobi_vgg_weights" in msg
    assert "--method-option loss.cobi_features=rgb-patch" in msg
    r = recipes.load_recipe("proposed", preset="paper", overrides={**small, "loss.cobi_features": "rgb-patch"})
    info = prepare_task(r, CPU).describe()
    assert info["cobi"] == "rgb-patch" and info["fidelity"] == "official" and info["routing"] == "official"
    assert info["cobi_band_width_weight_sp"] == [0.5, 0.5]
    # the steps without CoBi train at the paper preset without VGG19 weights
    prepare_task(recipes.load_recipe("ladder-5-synthesis-layer", preset="paper", overrides=small), CPU)


def test_requantisation_after_augmentation():
    from test_train_toy import ToyDataset

    from hdrbench.train.data import TrainingData

    ds = ToyDataset(n=2, size=24)
    cfg = {"crop": 16, "flip": True, "scale_aug": [1.0, 2.0]}
    plain = TrainingData(ds, cfg, batch_size=2, seed=0).next_batch()["stack"]
    codes = TrainingData(ds, {**cfg, "requantize_bits": 8}, batch_size=2, seed=0).next_batch()["stack"]
    k = codes * 255
    assert torch.equal(k, torch.round(k))  # 8-bit codes only
    # the same augmentation, then rounding: at most half a code away from the resampled floats
    assert float((codes - plain).abs().max()) <= 0.5 / 255 + 1e-7  # + float32 rounding of the division
    assert float((plain * 255 - torch.round(plain * 255)).abs().max()) > 0.01  # the bicubic resampling left non-codes
    with pytest.raises(InputError, match="requantize_bits"):
        TrainingData(ds, {"requantize_bits": 33}, batch_size=1, seed=0)


def test_official_hdr_layer_is_the_imaging_layers_constant():
    from hdrbench.imaging.synthesis import OFFICIAL_LAYER
    from hdrbench.train.proposed_task import hdr_layer_options

    assert hdr_layer_options("official") == dict(OFFICIAL_LAYER)
    assert hdr_layer_options({"slope": "official"}) == {"slope": "official"}
    with pytest.raises(InputError, match="hdr_layer"):
        hdr_layer_options("paper")
    assert _official_task().hdr_layer == dict(OFFICIAL_LAYER)

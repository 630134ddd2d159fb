"""ExpandNet: exact parameter count, official weight-key mapping, gradients, loss, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines_support import (
    count_on_meta,
    every_param_has_grad,
    realistic_batch,
    tiny_task,
    train_steps,
)
from hdrbench.errors import ImageReadError, InputError
from hdrbench.models import build_arch
from hdrbench.models.baselines.expandnet import ExpandNet, load_official_weights
from hdrbench.train.baselines.losses import cosine_l1_loss
from hdrbench.train.baselines.targets import minmax_normalise

# The official layout (local_net / mid_net / glob_net / end_net; a conv followed by SELU is index 0 of a
# Sequential), written out by hand with its shapes: the reference for the key mapping and the count.
OFFICIAL_SHAPES = {
    "local_net.0.0": (64, 3, 3, 3), "local_net.1.0": (128, 64, 3, 3),
    "mid_net.0.0": (64, 3, 3, 3), "mid_net.1.0": (64, 64, 3, 3), "mid_net.2.0": (64, 64, 3, 3),
    "mid_net.3": (64, 64, 3, 3),
    "glob_net.0.0": (64, 3, 3, 3), **{f"glob_net.{i}.0": (64, 64, 3, 3) for i in range(1, 6)},
    "glob_net.6": (64, 64, 4, 4),
    "end_net.0.0": (64, 256, 1, 1), "end_net.1": (3, 64, 1, 1),
}


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in OFFICIAL_SHAPES.items():
        state[key + ".weight"] = torch.randn(shape, generator=g)
        state[key + ".bias"] = torch.randn(shape[0], generator=g)
    return state


def test_parameter_count_is_exactly_the_official_456899():
    assert count_on_meta(ExpandNet) == 456_899
    # Independent hand count from the official layout: weights + biases of every convolution.
    hand = sum(int(np.prod(s)) + s[0] for s in OFFICIAL_SHAPES.values())
    assert hand == 456_899


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    model = ExpandNet(width=4)
    model(torch.rand(2, 3, 24, 20)).square().mean().backward()
    assert every_param_has_grad(model) == []


def test_output_is_relative_hdr_in_unit_range_at_any_size():
    torch.manual_seed(0)
    model = build_arch("expandnet", width=4).eval()
    with torch.no_grad():
        out = model.predict_hdr(torch.rand(1, 3, 37, 45))
    assert out.shape == (1, 3, 37, 45)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # sigmoid output
    assert model.kind == "direct"


def test_official_weights_load_through_the_key_mapping(tmp_path):
    state = official_state()
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    model = build_arch("expandnet", weights=str(path))
    own = model.state_dict()
    assert torch.equal(own["local_branch.0.conv.weight"], state["local_net.0.0.weight"])
    assert torch.equal(own["dilated_branch.3.weight"], state["mid_net.3.weight"])
    assert torch.equal(own["global_branch.6.bias"], state["glob_net.6.bias"])
    assert torch.equal(own["fusion.1.weight"], state["end_net.1.weight"])
    assert sum(v.numel() for v in own.values()) == sum(v.numel() for v in state.values())
    # A DataParallel checkpoint ("module." prefix, wrapped in {"state_dict": ...}) loads the same.
    wrapped = tmp_path / "dp.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, wrapped)
    again = load_official_weights(ExpandNet(), wrapped)
    for k, v in own.items():
        assert torch.equal(again.state_dict()[k], v)


def test_bad_weight_files_are_refused(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        build_arch("expandnet", weights=str(tmp_path / "missing.pth"))
    good = tmp_path / "w.pth"
    torch.save(official_state(), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ImageReadError, match="truncated.pth"):
        build_arch("expandnet", weights=str(truncated))
    with pytest.raises(InputError, match="shape"):  # a width-64 file into a width-8 network
        build_arch("expandnet", width=8, weights=str(good))
    state = official_state()
    state.pop("end_net.1.bias")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(InputError, match="missing"):
        build_arch("expandnet", weights=str(tmp_path / "partial.pth"))


@pytest.mark.parametrize("bad, match", [
    (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
    (torch.rand(1, 4, 8, 8), "shape"),
    (torch.rand(3, 8, 8), "shape"),
    (torch.rand(1, 3, 8, 8) * 255, r"\[0, 1\]"),
])
def test_bad_input_is_rejected(bad, match):
    with pytest.raises(InputError, match=match):
        ExpandNet(width=2).predict_hdr(bad)


def test_loss_matches_a_numpy_reference():
    g = torch.Generator().manual_seed(3)
    pred, target = torch.rand(2, 3, 5, 6, generator=g), torch.rand(2, 3, 5, 6, generator=g)
    p, t = pred.double().numpy(), target.double().numpy()
    cos = (p * t).sum(1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1))
    expected = np.abs(p - t).mean() + 5.0 * (1 - cos).mean()
    # float32 sums over 180 values: relative error ~1e-6.
    assert float(cosine_l1_loss(pred, target, 5.0)) == pytest.approx(expected, rel=1e-5)


def test_target_normalisation_is_the_official_min_max():
    hdr = torch.tensor([2.0, 4.0, 10.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2).clone()
    out = minmax_normalise(hdr)
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), [0.0, 0.25, 1.0], atol=1e-7)


def test_task_trains_a_few_steps():
    recipe, task = tiny_task("expandnet")
    assert task.optimizers()["expandnet"].param_groups[0]["lr"] == pytest.approx(7e-5)
    history, changed = train_steps(task, realistic_batch(2, 32), 3)
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]  # Adam on one fixed batch descends
    assert changed["expandnet"] > 0


def test_evaluate_runs_from_official_weights_without_a_checkpoint(tmp_path):
    from hdrbench.cli import main
    from hdrbench.evaluate.trained import load_trained_method

    path = tmp_path / "weights.pth"
    torch.save(official_state(), path)
    method = load_trained_method("expandnet", dataset=None, weights=str(path))
    # The loaded network holds exactly the file's tensors (through the official key mapping).
    expected = load_official_weights(ExpandNet(width=64), path).state_dict()
    got = method.model.state_dict()
    matched = [k for k, v in expected.items() if any(torch.equal(v, w) for w in got.values())]
    assert len(matched) == len(expected)
    assert main(["evaluate", "--method", "expandnet", "--weights", str(path), "--dataset", "synthetic",
                 "--dataset-option", "n_test=1", "--dataset-option", "n_train=1", "--resolution", "32",
                 "--hdr-metrics", "pu21-psnr", "--no-progress"]) == 0
    with pytest.raises(InputError, match="no official weights"):  # the card's reason, passed through
        load_trained_method("deep-chain-hdri", dataset=None, weights=str(path))

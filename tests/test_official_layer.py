"""The official-mode inference options: the synthesis layer's ``OFFICIAL_LAYER`` (checked against outputs
of the official code in ``data/official-proposed``), the channel-coupled saturation fallback, the official
CRF normalisation and the official up local head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrbench.imaging.calibration import debevec_inverse_crf
from hdrbench.imaging.synthesis import OFFICIAL_LAYER, merge_stack
from hdrbench.models import build_arch

FIXTURE = "official-proposed"
#: Exposure times of the fixture's stack, EV -3..+3 (its README).
TIMES = torch.tensor([[0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]])


def _load(root, name: str) -> np.ndarray:
    return np.load(root / FIXTURE / f"{name}.npy")


@pytest.mark.parametrize("stack_name, hdr_name, crf_name", [
    ("input_image_stack", "expected_target_hdr", "expected_target_crf"),
    ("expected_pred_stack", "expected_gen_hdr", "expected_gen_crf"),
])
def test_official_layer_reproduces_the_official_hdr_layer(shared_data, stack_name, hdr_name, crf_name):
    # The input stack is exact 8-bit data; the predicted stack is the official forward's output fed to the layer
    # in isolation.
    stack = (torch.from_numpy(_load(shared_data, stack_name))[None] + 1) / 2
    out = merge_stack(stack, TIMES, **OFFICIAL_LAYER)
    hdr, crf = out.hdr.numpy(), out.inverse_crf.numpy()
    want_hdr, want_crf = _load(shared_data, hdr_name), _load(shared_data, crf_name)
    assert hdr.shape == want_hdr.shape and crf.shape == want_crf.shape
    # rtol 1e-5: room for the official code's least-squares solve plus scipy's fmin; measured here
    # 2e-6 at most (float32 rounding of the table lookup and the log merge).
    np.testing.assert_allclose(crf, want_crf, rtol=1e-5, atol=0)
    np.testing.assert_allclose(hdr, want_hdr, rtol=1e-5, atol=0)


def test_official_layer_needs_the_coupled_fallback(shared_data):
    # The fixture's stack has pixels saturated in all exposures in some channels only: the per-channel fallback
    # differs there from the official result, so the check above can tell the two rules apart.
    stack = (torch.from_numpy(_load(shared_data, "input_image_stack"))[None] + 1) / 2
    options = {**OFFICIAL_LAYER, "saturation_fallback": "per-channel"}
    hdr = merge_stack(stack, TIMES, **options).hdr.numpy()
    rel = np.abs(hdr / _load(shared_data, "expected_target_hdr") - 1)
    assert rel.max() > 1e-3


def _stack_with_saturated_red() -> torch.Tensor:
    """A 3-exposure 1 x 2 stack: pixel 0 has red at 255 in every exposure, green/blue well exposed."""
    codes = torch.tensor([
        [[255, 40], [60, 40], [80, 40]],  # exposure 0 (shortest): (channel, pixel)
        [[255, 90], [120, 90], [160, 90]],
        [[255, 200], [240, 200], [250, 200]],
    ], dtype=torch.float64)
    return (codes / 255).view(1, 3, 3, 1, 2)


@pytest.mark.parametrize("backend", ["auto", "torch", "generic"])
def test_channel_coupled_fallback_replaces_every_channel(backend):
    stack = _stack_with_saturated_red()
    times = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    table = torch.linspace(0, 1, 256, dtype=torch.float64).expand(3, 256) * 2 + 0.01  # linear, positive
    kw = dict(inverse_crf=table, backend=backend)
    per = merge_stack(stack, times, **kw).hdr
    coupled = merge_stack(stack, times, saturation_fallback="channel-coupled", **kw).hdr
    # Independent expectation: mid exposure (index 1) of the red channel is above 0.5 with zero total weight, so
    # the shortest exposure's lin / t is taken; coupled, green and blue of that pixel take it too.
    shortest = (table[:, (stack[0, 0, :, 0, 0] * 255).round().long()].diagonal()) / 0.5
    assert torch.allclose(per[0, 0, 0, 0], shortest[0])
    assert torch.allclose(coupled[0, :, 0, 0], shortest)
    assert not torch.allclose(per[0, 1:, 0, 0], shortest[1:])  # per channel, green/blue keep their merge
    assert torch.equal(per[..., 1], coupled[..., 1])  # the unsaturated pixel is untouched


def test_unknown_fallback_is_rejected():
    from hdrbench.errors import InputError

    with pytest.raises(InputError, match="saturation_fallback"):
        merge_stack(_stack_with_saturated_red(), [0.5, 1.0, 2.0], saturation_fallback="coupled")


def test_official_normalisation_shares_one_divisor_over_the_batch(shared_data):
    one = (torch.from_numpy(_load(shared_data, "input_image_stack"))[None].double() + 1) / 2  # float64 tables
    two = torch.cat([one, torch.round(one * 0.8 * 255) / 255])  # a second, darker scene
    times = TIMES[0]
    kw = dict(quantile="nearest")
    toolbox = debevec_inverse_crf(two, times, normalize="toolbox", **kw)
    official = debevec_inverse_crf(two, times, normalise="official", **kw)
    unnormalised = debevec_inverse_crf(two, times, normalize="none", **kw)
    # Expectation built from the unnormalised balanced curves: "none" keeps g(128) = 0, i.e. the unbalanced curve
    # is exp(g) and its blue maximum is recoverable per scene as (balanced / balance scale); here the ratio
    # toolbox / official gives each scene's divisor relative to the batch's largest one.
    ratio = (official / toolbox)[:, 0, 0]
    per_scene = unnormalised[:, 0, 0] / toolbox[:, 0, 0]  # = blue max of each scene's unbalanced curve
    # rtol 1e-12: float64 divisions of the same numbers in another order.
    np.testing.assert_allclose(ratio.numpy(), (per_scene / per_scene.max()).numpy(), rtol=1e-12)
    assert float(ratio.min()) < 0.999  # the two scenes' divisors differ, so the test can fail
    # One scene: identical to the toolbox rule.
    assert torch.equal(debevec_inverse_crf(one, times, normalize="official", **kw),
                       debevec_inverse_crf(one, times, normalize="toolbox", **kw))


def test_official_local_head_uses_style_zero_going_up():
    torch.manual_seed(0)
    model = build_arch("proposed-tiny", official_local_head=True)
    assert model.official_local_head and model.local_up.head_style == 0 and model.local_down.head_style is None
    plain = build_arch("proposed-tiny")
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        for net in (model.local_up.head.norm, plain.local_up.head.norm):
            net.weight.add_(torch.randn_like(net.weight))  # make the styles differ
        plain.local_up.head.norm.weight.copy_(model.local_up.head.norm.weight)
    ldr = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model.predict_stack(ldr, model.evs)
        before = plain.predict_stack(ldr, model.evs)
        # Independent expectation: copying style 0's head parameters into every style makes the step's style
        # irrelevant, so the plain model then computes what the quirk computes.
        norm = plain.local_up.head.norm
        norm.weight.copy_(norm.weight[:1].expand_as(norm.weight))
        norm.bias.copy_(norm.bias[:1].expand_as(norm.bias))
        want = plain.predict_stack(ldr, model.evs)
    assert torch.equal(got, want)
    assert not torch.equal(got[:, 4:], before[:, 4:])  # the switch changes the up outputs ...
    assert torch.equal(got[:, :4], before[:, :4])  # ... and nothing else
    model.official_local_head = False
    assert model.local_up.head_style is None


def test_official_local_head_is_a_recipe_key():
    from hdrbench.train.recipes import load_recipe

    recipe = load_recipe("proposed", preset="tiny", overrides={"model.official_local_head": True})
    model = build_arch(recipe["arch"], **recipe["model"])
    assert model.official_local_head and model.local_up.head_style == 0
    default = load_recipe("proposed", preset="tiny")
    assert not build_arch(default["arch"], **default["model"]).official_local_head

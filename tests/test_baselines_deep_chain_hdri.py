"""Deep chain HDRI: chain structure (deeper links further from EV0), stack semantics, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines_support import (
    EVS,
    count_on_meta,
    every_param_has_grad,
    realistic_batch,
    tiny_task,
    train_steps,
)
from hdrbench.errors import InputError
from hdrbench.models import build_arch
from hdrbench.models.baselines.deep_chain_hdri import ChainLink, DeepChainHDRI


def hand_count_link(width: int, depth: int) -> int:
    """Parameters of one link from its documented layout: stem, ``depth`` blocks of two Conv3x3, RGB head."""
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731
    return conv(3, width) + depth * 2 * conv(width, width) + conv(width, 3)


def test_links_get_deeper_away_from_ev0_and_the_count_matches_the_layout():
    # No official count exists (no code was released): the check is against the documented design.
    model = DeepChainHDRI()
    for links in (model.up, model.down):
        assert [len(link.blocks) for link in links] == [2, 3, 4]
    expected = 2 * sum(hand_count_link(64, d) for d in (2, 3, 4))
    assert count_on_meta(DeepChainHDRI) == expected == 1_350_546


def test_link_convolutions_are_dilated_in_a_cycle():
    link = ChainLink(width=4, depth=5)
    dilations = [block.body[0].dilation[0] for block in link.blocks]
    assert dilations == [1, 2, 4, 8, 1]
    # Same-size output: padding equals dilation for a 3x3 kernel.
    assert link(torch.rand(1, 3, 20, 24)).shape == (1, 3, 20, 24)


def test_stack_is_the_chain_of_links_and_ev0_is_the_input():
    torch.manual_seed(0)
    model = build_arch("deep-chain-hdri", width=4, base_depth=1).eval()
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        stack = model.predict_stack(x, [-2.0, 0.0, 1.0, 3.0])
        up = model.up
        up3 = up[2](up[1](up[0](x)))
        down2 = model.down[1](model.down[0](x))
    assert stack.shape == (1, 4, 3, 17, 23)
    assert torch.equal(stack[:, 1], x)
    torch.testing.assert_close(stack[:, 2], up[0](x).detach())
    torch.testing.assert_close(stack[:, 3], up3)
    torch.testing.assert_close(stack[:, 0], down2)
    assert float(stack.min()) >= 0.0 and float(stack.max()) <= 1.0


@pytest.mark.parametrize("evs, match", [([0.5], "whole stops"), ([4.0], "3 links"), ([], "empty")])
def test_unsupported_evs_are_rejected(evs, match):
    with pytest.raises(InputError, match=match):
        build_arch("deep-chain-hdri", width=2, base_depth=1).predict_stack(torch.rand(1, 3, 8, 8), evs)


def test_there_are_no_official_weights():
    with pytest.raises(InputError, match="no official weights"):
        build_arch("deep-chain-hdri", weights="/nonexistent/weights.pth")


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    model = DeepChainHDRI(width=4, base_depth=1)
    # Mid-grey input: no pixel hits the [0, 1] clamp, so every link's gradient flows.
    x = 0.3 + 0.4 * torch.rand(2, 3, 16, 16)
    model.predict_stack(x, [-3.0, 3.0]).square().mean().backward()
    assert every_param_has_grad(model) == []


def test_task_is_teacher_forced_l1_per_link():
    recipe, task = tiny_task("deep-chain-hdri")
    batch = realistic_batch(1, 32)
    stack = batch["stack"]
    model = task.model
    with torch.no_grad():
        # Link +2 is fed the ground-truth EV+1 frame (not its own chain output): teacher forcing.
        expected = (model.up[1](stack[:, EVS.index(1.0)]) - stack[:, EVS.index(2.0)]).abs().mean().item()
    history, changed = train_steps(task, batch, 3)
    assert set(history[0]) == {f"l1_{d}{k}" for d in ("up", "down") for k in (1, 2, 3)}
    assert history[0]["l1_up2"] == pytest.approx(expected, rel=1e-5)
    assert all(np.isfinite(list(h.values())).all() for h in history)
    assert sum(history[-1].values()) < sum(history[0].values())  # Adam on one fixed batch descends
    assert changed["chain"] > 0


def test_task_needs_neighbouring_frames():
    _, task = tiny_task("deep-chain-hdri")
    batch = realistic_batch(1, 16, evs=[-3.0, 0.0, 3.0])
    with pytest.raises(InputError, match="EV 0 and"):
        task.train_step(batch, 0)

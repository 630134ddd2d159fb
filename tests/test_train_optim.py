"""AdamGC against torch.optim.Adam (the independent reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from hdrbench.errors import InputError
from hdrbench.train.optim import AdamGC, build_optimizer, centralize


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 5, 3), nn.Flatten(), nn.Linear(5 * 4 * 4, 2))


def _grads(model: nn.Module, steps: int, seed: int = 1) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=g) for p in model.parameters()] for _ in range(steps)]


def _run(opt_factory, grads, transform=None) -> list[torch.Tensor]:
    model = _model()
    opt = opt_factory(model.parameters())
    for step_grads in grads:
        for p, g in zip(model.parameters(), step_grads):
            p.grad = transform(p, g) if transform else g.clone()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("weight_decay", [0.0, 5e-2])
def test_gc_off_equals_torch_adam(weight_decay):
    # Same update formula and operation order as torch's single-tensor Adam: agreement to 1 ulp-level
    # differences (atol 1e-7 on parameters of size ~1 after 6 steps of lr 1e-2).
    grads = _grads(_model(), 6)
    ours = _run(lambda ps: AdamGC(ps, lr=1e-2, betas=(0.5, 0.999), weight_decay=weight_decay,
                                  gradient_centralization=False), grads)
    ref = _run(lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.5, 0.999), weight_decay=weight_decay,
                                           foreach=False), grads)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_gc_on_equals_adam_on_centralised_gradients():
    # Reference: torch Adam (no weight decay) fed with g + wd * p, centralised by hand for 4-D weights only
    # (mean over in-channels and kernel, per out-channel). 2-D and 1-D parameters see plain L2 decay.
    wd = 1e-2
    grads = _grads(_model(), 5)

    def by_hand(p, g):
        g = g + wd * p.detach()
        if g.dim() == 4:
            g = g - g.reshape(g.shape[0], -1).mean(dim=1).reshape(-1, 1, 1, 1)
        return g

    ours = _run(lambda ps: AdamGC(ps, lr=1e-2, betas=(0.5, 0.999), weight_decay=wd), grads)
    ref = _run(lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.5, 0.999), foreach=False), grads, by_hand)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # and GC changes the conv update (the test can fail): compare with the GC-off run
    off = _run(lambda ps: AdamGC(ps, lr=1e-2, betas=(0.5, 0.999), weight_decay=wd, gradient_centralization=False),
               grads)
    assert (ours[0] - off[0]).abs().max() > 1e-4
    torch.testing.assert_close(ours[2], off[2], rtol=0, atol=0)  # linear weight: no GC


def test_centralize_zero_mean_per_filter_and_leaves_other_shapes():
    g = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    c = centralize(g)
    assert c.reshape(4, -1).mean(dim=1).abs().max() < 1e-15
    torch.testing.assert_close(g - c, (g - c)[:, :1, :1, :1].expand_as(g))  # a per-filter constant
    lin = torch.randn(5, 7)
    assert centralize(lin) is lin


def test_state_dict_round_trip_continues_identically():
    grads = _grads(_model(), 6)
    full = _run(lambda ps: AdamGC(ps, lr=1e-2, weight_decay=1e-3), grads)
    model = _model()
    opt = AdamGC(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for step_grads in grads[:3]:
        for p, g in zip(model.parameters(), step_grads):
            p.grad = g.clone()
        opt.step()
    state = opt.state_dict()
    opt2 = AdamGC(model.parameters(), lr=1e-2, weight_decay=1e-3)
    opt2.load_state_dict(state)
    for step_grads in grads[3:]:
        for p, g in zip(model.parameters(), step_grads):
            p.grad = g.clone()
        opt2.step()
    for a, b in zip(full, model.parameters()):
        assert torch.equal(a, b.detach())


def test_build_optimizer_from_recipe_table():
    p = [nn.Parameter(torch.zeros(2, 2, 1, 1))]
    opt = build_optimizer(p, 1e-4, {"betas": [0.5, 0.999], "weight_decay": 5e-5})
    assert isinstance(opt, AdamGC)
    assert opt.defaults["betas"] == (0.5, 0.999) and opt.defaults["weight_decay"] == 5e-5
    assert isinstance(build_optimizer(p, 1e-4, {"name": "adam"}), torch.optim.Adam)
    with pytest.raises(InputError, match="optim.name"):
        build_optimizer(p, 1e-4, {"name": "sgd"})
    with pytest.raises(ValueError, match="betas"):
        AdamGC(p, betas=(1.0, 0.9))

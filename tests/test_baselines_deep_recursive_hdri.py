"""Deep recursive HDRI: official parameter counts, test-time dropout, recursion, weight loading, GAN task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines_support import (
    calibrate_batchnorm,
    count_on_meta,
    every_param_has_grad,
    realistic_batch,
    tiny_task,
    train_steps,
)
from hdrbench.errors import InputError
from hdrbench.models import build_arch
from hdrbench.models.baselines.deep_recursive_hdri import (
    MPReLU,
    PatchDiscriminator,
    RecursiveGenerator,
    load_official_weights,
)
from hdrbench.train.baselines.losses import lsgan_loss


def hand_count_generator() -> int:
    """Parameters of the official generator from its documented layout, by hand."""
    enc = 3 * 64 * 16 + 64 + (64 * 128 + 128 * 256 + 256 * 512 + 512 * 512) * 16 + 2 * (128 + 256 + 512 + 512)
    dec = (512 * 512 + 1024 * 256 + 512 * 128 + 256 * 64 + 128 * 3) * 9 + 2 * (512 + 256 + 128 + 64 + 3)
    final = 6 * 3 * 9 + 3
    prelu = 10  # one slope per activation: 5 encoder + 5 decoder layers
    return enc + dec + final + prelu


def test_generator_and_discriminator_match_the_official_hand_counts():
    for direction in ("up", "down"):
        n = count_on_meta(lambda: RecursiveGenerator(direction))
        assert n == hand_count_generator() == 12_414_197
        assert round(n / 1e6, 2) == 12.41
    d = count_on_meta(PatchDiscriminator)
    # 6->64->128->256->512 (4x4 stride 2), 512->512 (stride 1), 512->1, biases on all, BN on four layers.
    hand = (6 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 512 + 512) * 16 + (64 + 128 + 256 + 512 + 512 + 1) \
        + 2 * (128 + 256 + 512 + 512)
    assert d == hand == 6_965_441
    assert round(d / 1e6, 2) == 6.97


def test_dropout_is_active_at_test_time_and_seedable():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    model = calibrate_batchnorm(build_arch("deep-recursive-hdri", width=4, dropout_seed=0),
                                lambda m: m.predict_stack(torch.cat([x, x.flip(-1)]), [1.0]))
    model.dropout_seed = 1
    a = model.predict_stack(x, [1.0])
    b = model.predict_stack(x, [1.0])
    model.dropout_seed = 2
    c = model.predict_stack(x, [1.0])
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 1e-3  # the official code keeps dropout on in eval mode
    model.up.test_dropout = False
    d1, d2 = model.predict_stack(x, [1.0]), model.predict_stack(x, [1.0])
    assert torch.equal(d1, d2)


def test_mprelu_is_mirrored_prelu():
    act = MPReLU()
    with torch.no_grad():
        act.prelu.weight.fill_(0.3)
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(act(x).detach().numpy(), [-2.0, -0.5, 0.0, 0.15, 0.6], rtol=1e-6)


def test_stack_is_the_recursion_of_the_generators_and_ev0_is_the_input():
    torch.manual_seed(0)
    model = build_arch("deep-recursive-hdri", width=4, test_dropout=False).eval()
    x = torch.rand(1, 3, 30, 34)
    with torch.no_grad():
        stack = model.predict_stack(x, [-1.0, 0.0, 2.0])
        xp = torch.nn.functional.pad(x * 2 - 1, (0, 30, 0, 2), mode="reflect")
        up2 = (model.up(model.up(xp))[..., :30, :34] + 1) / 2
        down1 = (model.down(xp)[..., :30, :34] + 1) / 2
    assert stack.shape == (1, 3, 3, 30, 34)
    assert torch.equal(stack[:, 1], x)
    torch.testing.assert_close(stack[:, 2], up2.clamp(0, 1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stack[:, 0], down1.clamp(0, 1), rtol=1e-5, atol=1e-6)


def test_official_resize_mode_returns_the_input_size():
    torch.manual_seed(0)
    model = build_arch("deep-recursive-hdri", width=2, resize=64, dropout_seed=0).eval()
    with torch.no_grad():
        out = model.predict_stack(torch.rand(1, 3, 40, 50), [-1, 0, 1])
    assert out.shape == (1, 3, 3, 40, 50)


def test_fractional_evs_are_rejected():
    with pytest.raises(InputError, match="whole stops"):
        build_arch("deep-recursive-hdri", width=2).predict_stack(torch.rand(1, 3, 32, 32), [0.5])


def test_official_weights_load_by_registration_order(tmp_path):
    torch.manual_seed(1)
    source = RecursiveGenerator("up", width=64)
    # Foreign names (as a differently written model file would have), same order and shapes.
    foreign = {f"layer{i:03d}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(source.state_dict().items())}
    for d in ("up", "down"):
        torch.save(foreign, tmp_path / f"HDRGAN_stop{d}_G_param_ch3_batch1_epoch20_lr0.0002.pkl")
    model = build_arch("deep-recursive-hdri", weights=str(tmp_path))
    for k, v in source.state_dict().items():
        assert torch.equal(model.up.state_dict()[k], v)
    # The stop-down network names its slopes act.prelu.weight (MPReLU); the values still pair up in order.
    for v_src, v_down in zip(source.state_dict().values(), model.down.state_dict().values()):
        assert torch.equal(v_src, v_down)
    # Reordered entries or another architecture are refused, naming the file.
    items = list(foreign.items())
    swapped = dict([items[1], items[0]] + items[2:])
    torch.save(swapped, tmp_path / "bad.pkl")
    with pytest.raises(InputError, match="bad.pkl"):
        load_official_weights(RecursiveGenerator("up"), tmp_path / "bad.pkl")
    # A width-64 file into a width-32 generator: same entry count, shapes differ.
    with pytest.raises(InputError, match=r"HDRGAN_stopup.*does not match"):
        load_official_weights(RecursiveGenerator("up", width=32),
                              tmp_path / "HDRGAN_stopup_G_param_ch3_batch1_epoch20_lr0.0002.pkl")
    # A file of another architecture (fewer entries) is refused by its entry count.
    torch.save(dict(items[:-2]), tmp_path / "short.pkl")
    with pytest.raises(InputError, match="tensors in the file"):
        load_official_weights(RecursiveGenerator("up"), tmp_path / "short.pkl")
    with pytest.raises(InputError, match="folder"):
        build_arch("deep-recursive-hdri", weights=str(tmp_path / "bad.pkl"))


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    gen, disc = RecursiveGenerator("down", width=4), PatchDiscriminator(width=4)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    out = gen(x)
    (out.square().mean() + disc(out, x).mean()).backward()
    assert every_param_has_grad(gen) == []
    assert every_param_has_grad(disc) == []


def test_lsgan_soft_label_loss_formula():
    prob = torch.tensor([0.2, 0.9, 0.5])
    assert float(lsgan_loss(prob, 0.9)) == pytest.approx(((0.7**2) + 0 + 0.4**2) / 3, rel=1e-6)


def test_pairs_are_one_ev_apart_in_both_directions():
    from hdrbench.train.baselines.deep_recursive_hdri import DeepRecursiveHDRITask

    batch = realistic_batch(1, 32)
    pairs = DeepRecursiveHDRITask.pairs(batch["stack"], batch["evs"])
    x_up, y_up = pairs["up"]
    assert x_up.shape[0] == 6
    assert torch.equal(x_up[0], batch["stack"][0, 0]) and torch.equal(y_up[0], batch["stack"][0, 1])
    assert torch.equal(pairs["down"][0], y_up) and torch.equal(pairs["down"][1], x_up)


def test_task_pretrains_with_l1_then_adds_the_critic():
    recipe, task = tiny_task("deep-recursive-hdri")
    assert recipe["schedule"]["pretrain_iters"] == 1
    opt = task.optimizers()["gen_up"]
    assert opt.param_groups[0]["betas"] == (0.5, 0.999)
    batch = realistic_batch(1, 64)  # the critic needs 64 px crops (the tiny preset's)
    history, changed = train_steps(task, batch, 1)
    assert set(history[0]) == {"l1_up", "l1_down"}  # L1-only pre-training
    assert changed["disc_up"] == 0 and changed["gen_up"] > 0
    history2 = [task.train_step(batch, it) for it in (1, 2)]
    assert {"disc_up", "gan_up", "disc_down", "gan_down"} <= set(history2[0])
    assert all(np.isfinite(list(h.values())).all() for h in history2)
    # Learning rate halves from schedule.lr_decay_iters on (3 in the tiny preset).
    task.train_step(batch, 3)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    # Crops too small for the critic are refused with the reason once the adversarial phase starts.
    task.train_step(realistic_batch(1, 32), 0)
    with pytest.raises(InputError, match="at least 64 px"):
        task.train_step(realistic_batch(1, 32), 1)

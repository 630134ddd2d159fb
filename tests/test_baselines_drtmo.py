"""DrTMO: 174.5 M parameters per model, 3D-deconvolution frames at half-EV steps, selection, linear merge."""

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
from hdrbench.errors import InputError
from hdrbench.models import build_arch
from hdrbench.models.baselines.drtmo import (
    FRAMES,
    DrTMO,
    DrTMONet,
    merge_linear_debevec,
    parameter_count_official,
    select_frames,
)


def hand_count_official() -> int:
    """One official generator (CNNAE3D512) counted by hand from its documented layout."""
    enc_ch = [3, 64, 128, 256, 512, 512, 512, 512, 512, 512]
    enc = sum(a * b * 16 + b for a, b in zip(enc_ch[:-1], enc_ch[1:])) + sum(2 * c for c in enc_ch[2:])  # + BN
    # Decoder: 3D deconvolutions, (4,4,4) for the first three (exposure axis doubles), (3,4,4) after; each
    # layer's input is its predecessor's output concatenated with the mirrored encoder feature.
    dec_out = [512, 512, 512, 512, 512, 256, 128, 64, 3]
    dec_in = [512] + [2 * c for c in dec_out[:-1]]
    dec = 0
    for j, (a, b) in enumerate(zip(dec_in, dec_out)):
        dec += a * b * (64 if j < 3 else 48) + b + (2 * b if j < 8 else 0)  # BN on all but the last
    return enc + dec


def test_each_model_has_the_official_174_5_m_parameters():
    n = parameter_count_official()
    assert n == hand_count_official() == 174_497_795
    assert round(n / 1e6, 1) == 174.5
    assert count_on_meta(DrTMO) == 2 * n  # up- and down-exposure models


def test_generator_grows_eight_frames_along_the_exposure_axis():
    torch.manual_seed(0)
    net = DrTMONet(width=4, levels=4).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, FRAMES, 3, 16, 16)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # sigmoid output
    with pytest.raises(InputError, match="levels >= 3"):
        DrTMONet(levels=2)


def test_frames_are_half_ev_steps_with_the_input_in_the_middle():
    torch.manual_seed(0)
    model = build_arch("drtmo", width=4, levels=4).eval()
    x = torch.rand(1, 3, 20, 12)
    with torch.no_grad():
        frames = model.frames(x)
        stack = model.predict_stack(x, [-4.0, -0.5, 0.0, 1.5, 4.0])
    assert frames.shape == (1, 2 * FRAMES + 1, 3, 20, 12)
    assert torch.equal(frames[:, FRAMES], x)
    # EV e is frame 8 + e / 0.5: -4 -> 0, -0.5 -> 7, 1.5 -> 11, +4 -> 16.
    for i, k in enumerate([0, 7, 8, 11, 16]):
        assert torch.equal(stack[:, i], frames[:, k])
    for bad in ([0.25], [4.5]):
        with pytest.raises(InputError, match="half stops"):
            model.predict_stack(x, bad)


def test_selection_stops_at_the_first_jump_above_64_codes():
    base = torch.full((6, 3, 4, 4), 0.5)
    steps = [0.0, 20, 40, 60, 140, 150]  # the 60 -> 140 jump (80 codes) is the first above 64
    frames = base + torch.tensor(steps).view(-1, 1, 1, 1) / 255
    assert select_frames(frames.clamp(0, 1)) == 3
    assert select_frames(base) == 5  # no jump: every generated frame is kept
    frames[1, 0, 0, 0] += 65 / 255  # one pixel is enough
    assert select_frames(frames.clamp(0, 1)) == 0


def test_linear_merge_matches_opencv_merge_debevec():
    import cv2
    rng = np.random.default_rng(0)
    radiance = np.exp(rng.normal(0.0, 1.5, (3, 12, 10))) * 0.2
    times = np.array([0.25, 0.5, 1.0, 2.0, 4.0], dtype=np.float32)
    frames = np.stack([np.round(np.clip(radiance * t, 0, 1) * 255) for t in times]).astype(np.uint8)
    bgr = [np.ascontiguousarray(f.transpose(1, 2, 0)[..., ::-1]) for f in frames]
    reference = cv2.createMergeDebevec().process(bgr, times.copy())[..., ::-1].transpose(2, 0, 1)
    ours = merge_linear_debevec(torch.from_numpy(frames).float() / 255, torch.from_numpy(times)).numpy()
    # OpenCV works in float32 (log/exp of 8-bit codes): relative agreement ~1e-6 is measured; 1e-5 allows for
    # other float32 kernels.
    np.testing.assert_allclose(ours, reference, rtol=1e-5)


def test_hdr_of_an_ideal_linear_stack_recovers_the_radiance():
    # Replace the generators by an ideal linear camera: the merged HDR must be the radiance up to one scale.
    model = DrTMO(width=2, levels=3)
    # Radiance 0.05..0.2 at EV 0 (codes 13..51): every pixel reaches codes above 100 in the brighter frames,
    # where 8-bit rounding is below 0.5 %, and neighbouring half-stop frames differ by less than 64 codes.
    radiance = 0.05 + 0.15 * torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    evs = torch.arange(-FRAMES, FRAMES + 1, dtype=torch.float32) * 0.5
    ideal = torch.stack([torch.round((radiance * 2.0**e).clamp(0, 1) * 255) / 255 for e in evs], dim=1)
    model.frames = lambda ldr: ideal
    hdr = model.predict_hdr(ideal[:, FRAMES])
    ratio = (hdr / radiance).flatten()
    assert float(ratio.std() / ratio.mean()) < 0.005
    assert float(ratio.mean()) == pytest.approx(255.0, rel=0.02)  # EV 0 time = 1, linear response on codes


def test_official_chainer_weights_are_refused_with_the_reason():
    with pytest.raises(InputError, match="Chainer"):
        build_arch("drtmo", weights="model.npz")


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    model = DrTMONet(width=4, levels=4)
    # Evaluation mode: BatchNorm uses its running statistics, so the biases of the convolutions before it
    # (the official layers have them) get a non-zero gradient too.
    model.eval()
    model(torch.rand(2, 3, 16, 16)).square().mean().backward()
    assert every_param_has_grad(model) == []


def test_task_supervises_the_whole_stop_frames():
    recipe, task = tiny_task("drtmo")
    batch = realistic_batch(2, 32)
    model = task.model
    with torch.no_grad():
        for m in task.modules().values():
            m.train()
        torch.manual_seed(5)
        x = torch.nn.functional.interpolate(batch["stack"][:, 3], size=(model.size, model.size), mode="bilinear",
                                            align_corners=False)
        up = model.up(x)
        # EV +1, +2, +3 are generated frames 2, 4, 6 (indices 1, 3, 5): the L1 the task must report.
        expected = torch.stack([(up[:, 2 * k - 1] - batch["stack"][:, 3 + k]).abs().mean() for k in (1, 2, 3)]).mean()
    torch.manual_seed(5)
    history, changed = train_steps(task, batch, 3)
    assert history[0]["l1_up"] == pytest.approx(float(expected), rel=1e-4)
    assert set(history[0]) == {"l1_up", "l1_down"}
    assert all(np.isfinite(list(h.values())).all() for h in history)
    assert changed["up"] > 0 and changed["down"] > 0
    with pytest.raises(InputError, match="batch_size >= 2"):
        task.train_step(realistic_batch(1, 32), 0)

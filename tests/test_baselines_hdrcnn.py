"""HDRCNN: VGG16 encoder size, highlight blend (tau 0.95, gamma 2), log skips, VGG loading, loss, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines_support import (
    count_on_meta,
    every_param_has_grad,
    realistic_batch,
    tiny_task,
    train_steps,
)
from hdrbench.errors import ImageReadError, InputError
from hdrbench.models import build_arch
from hdrbench.models.baselines.hdrcnn import HDRCNN, highlight_mask, load_vgg16_encoder, log_skip
from hdrbench.train.baselines.losses import gaussian_blur, hdrcnn_loss
from hdrbench.train.baselines.targets import align_to_ldr

#: VGG16's 13 convolutions (Simonyan & Zisserman 2015, configuration D): (in, out) channels.
VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def test_encoder_is_vgg16_with_its_14_7_m_parameters():
    # 14,714,688: the convolutional part of VGG16 (configuration D), counted from its channel table.
    hand = sum(cin * cout * 9 + cout for cin, cout in VGG16_CONVS)
    assert hand == 14_714_688
    model = HDRCNN()
    assert sum(p.numel() for p in model.encoder.parameters()) == hand
    convs = [m for block in model.encoder for m in block if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == VGG16_CONVS
    # The whole network (no official count is published): stable, so an unintended change is noticed.
    assert count_on_meta(HDRCNN) == 29_441_371


def test_highlight_mask_is_the_official_tau_095_ramp():
    x = torch.tensor([0.0, 0.9, 0.95, 0.975, 1.0]).view(5, 1, 1, 1).expand(5, 3, 1, 1).clone()
    x[:, 0] = 0.0  # the mask uses the largest channel, not the mean
    np.testing.assert_allclose(highlight_mask(x).flatten().numpy(), [0, 0, 0, 0.5, 1.0], atol=1e-6)


def test_unsaturated_pixels_are_the_gamma2_linearised_input():
    torch.manual_seed(0)
    model = build_arch("hdrcnn", width=4).eval()
    ldr = torch.rand(1, 3, 21, 19) * 0.9  # below tau everywhere
    ldr[..., :5, :5] = 1.0  # one saturated patch
    with torch.no_grad():
        hdr = model.predict_hdr(ldr)
        log_pred = model(F.pad(ldr, (0, 13, 0, 11), mode="reflect"))[..., :21, :19]
    assert hdr.shape == ldr.shape
    torch.testing.assert_close(hdr[..., 5:, :], ldr[..., 5:, :] ** 2)
    # Fully saturated pixels are the network's prediction exp(pred) - 1/255.
    torch.testing.assert_close(hdr[..., :5, :5], (torch.exp(log_pred) - 1 / 255)[..., :5, :5].clamp_min(0))
    assert model.kind == "direct"


def test_log_skip_maps_codes_to_the_log_hdr_domain():
    f = torch.tensor([0.0, 127.5, 255.0])
    np.testing.assert_allclose(log_skip(f).numpy(), np.log((f.numpy() / 255) ** 2 + 1 / 255), rtol=1e-6)


def test_vgg_weights_fold_the_imagenet_normalisation_into_the_first_conv(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {}
    for i, (cin, cout) in enumerate(VGG16_CONVS):
        state[f"features.{2 * i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.01
        state[f"features.{2 * i}.bias"] = torch.randn(cout, generator=g) * 0.01
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    model = build_arch("hdrcnn", vgg_weights=str(path))
    x = torch.rand(1, 3, 8, 8, generator=g)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    reference = F.conv2d((x - mean) / std, state["features.0.weight"], state["features.0.bias"], padding=1)
    ours = model.encoder[0][0](x * 255 - model.vgg_mean)
    # float32, 27-term sums of values ~1: relative error ~1e-6.
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)
    assert torch.equal(model.encoder[4][4].weight, state["features.24.weight"])
    with pytest.raises(InputError, match="convolution weights"):
        torch.save({k: v for k, v in state.items() if not k.startswith("features.24")}, tmp_path / "short.pth")
        load_vgg16_encoder(HDRCNN(), tmp_path / "short.pth")
    with pytest.raises(InputError, match="shape"):
        load_vgg16_encoder(HDRCNN(width=8), path)
    with pytest.raises(ImageReadError, match="not found"):
        build_arch("hdrcnn", vgg_weights=str(tmp_path / "missing.pth"))


def test_official_tensorlayer_weights_are_refused_with_the_reason():
    with pytest.raises(InputError, match="TensorLayer"):
        build_arch("hdrcnn", weights="hdrcnn_params.npz")


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    model = HDRCNN(width=4)
    model(torch.rand(2, 3, 32, 32)).square().mean().backward()
    assert every_param_has_grad(model) == []


def test_gaussian_blur_matches_scipy():
    from scipy import ndimage
    x = torch.rand(1, 1, 20, 17, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours = gaussian_blur(x, 2.0)[0, 0].numpy()
    # scipy's radius is int(truncate * sigma + 0.5) = 6 = ceil(3 * 2); 'nearest' is replicate padding.
    ref = ndimage.gaussian_filter(x[0, 0].numpy(), 2.0, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_loss_is_zero_for_the_truth_and_only_sees_masked_pixels():
    hdr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 4
    log_true = torch.log(hdr + 1 / 255)
    alpha = torch.zeros(1, 1, 16, 16)
    assert float(hdrcnn_loss(log_true, hdr, torch.ones_like(alpha))) == pytest.approx(0.0, abs=1e-10)
    # Wrong predictions outside the mask cost nothing.
    assert float(hdrcnn_loss(log_true + 1.0, hdr, alpha)) == 0.0
    # A constant log offset c is all illumination: lam * c^2 over the masked fraction (here all pixels).
    assert float(hdrcnn_loss(log_true + 0.5, hdr, torch.ones_like(alpha), lam=0.5)) == pytest.approx(
        0.5 * 0.25, rel=1e-3)


def test_training_target_is_aligned_to_x_squared_on_well_exposed_pixels():
    batch = realistic_batch(1, 32)
    ldr = batch["stack"][:, 3]
    target = align_to_ldr(batch["hdr"], ldr**2, ldr)
    good = (ldr.amin(1) > 0.05) & (ldr.amax(1) < 0.9)
    ratio = (ldr**2 / target).permute(1, 0, 2, 3)[:, good]
    # The scale is exp(median log ratio) over exactly these pixels, so the median ratio is 1 (float32 log/exp
    # rounding only); the batch's camera is gamma 2.2, not 2, so individual pixels still differ.
    assert float(ratio.median()) == pytest.approx(1.0, rel=1e-5)
    assert float(ratio.std()) > 0.01
    # Scaling the HDR by any factor gives the same target: only the LDR fixes the scale.
    torch.testing.assert_close(align_to_ldr(batch["hdr"] * 37.0, ldr**2, ldr), target, rtol=1e-5, atol=1e-7)


def test_task_trains_a_few_steps():
    recipe, task = tiny_task("hdrcnn")
    assert task.optimizers()["hdrcnn"].param_groups[0]["lr"] == pytest.approx(float(recipe["optim"]["lr"]))
    history, changed = train_steps(task, realistic_batch(2, 32), 3)
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses)) and history[0]["saturated"] > 0
    assert losses[-1] < losses[0]
    assert changed["hdrcnn"] > 0

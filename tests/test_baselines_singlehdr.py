"""SingleHDR: camera-pipeline stages, inverse-EMoR basis (and its fallback), mask 0.12, staged training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines_support import (
    count_on_meta,
    every_param_has_grad,
    realistic_batch,
    tiny_task,
)
from hdrbench.errors import DatasetError, ImageReadError, InputError
from hdrbench.models import build_arch
from hdrbench.models.baselines.singlehdr import (
    CURVE_SAMPLES,
    SingleHDR,
    apply_curve,
    monotone_curve,
    polynomial_basis,
    read_emor_file,
)
from hdrbench.train.baselines.targets import invert_curves, simulate_singlehdr

TINY = {"deq_width": 2, "lin_width": 4, "hal_width": 4, "ref_width": 2, "unet_levels": 2}


def test_hallucination_net_is_hdrcnn_style_vgg16_and_the_total_is_stable():
    model = SingleHDR()
    # VGG16's 13 convolutions (configuration D) hold 14,714,688 parameters.
    assert sum(p.numel() for p in model.hallucinate.encoder.parameters()) == 14_714_688
    # No official total is published (TensorFlow code, sizes inferred): pinned so that a change is noticed.
    assert count_on_meta(SingleHDR) == 34_250_700


def test_hallucination_is_added_only_above_the_0_12_mask_threshold():
    torch.manual_seed(0)
    model = build_arch("singlehdr", **TINY).eval()
    ldr = torch.rand(1, 3, 32, 32) * 0.8
    ldr[..., :8, :8] = 1.0
    with torch.no_grad():
        out = model.stages(ldr)
    # alpha = clip((max_c B - 1 + 0.12) / 0.12, 0, 1): 0.5 at 0.94.
    b = torch.tensor([0.5, 0.88, 0.94, 1.0]).view(4, 1, 1, 1).expand(4, 3, 1, 1)
    from hdrbench.models.baselines.hdrcnn import highlight_mask

    np.testing.assert_allclose(highlight_mask(b, 0.88).flatten().numpy(), [0, 0, 0.5, 1], atol=1e-6)
    low = out["alpha"] == 0
    assert bool(low.any()) and bool((~low).any())
    assert torch.equal(out["hallucinated"].masked_select(low.expand_as(ldr)), out["linear"].masked_select(low.expand_as(ldr)))
    assert float(out["hdr"].min()) >= 0.0
    assert out["curve"].shape == (1, CURVE_SAMPLES)


def test_reads_the_inverse_emor_basis(shared_data):
    basis = read_emor_file(shared_data / "crf" / "invemor.txt")
    assert basis["grid"].shape == (CURVE_SAMPLES,) and basis["basis"].shape == (25, CURVE_SAMPLES)
    # Grossberg & Nayar's grid spans [0, 1]; the mean inverse response g0 runs from 0 to 1, increasing.
    assert float(basis["grid"][0]) == 0.0 and float(basis["grid"][-1]) == pytest.approx(1.0)
    assert float(basis["mean"][0]) == pytest.approx(0.0, abs=1e-6) and float(basis["mean"][-1]) == pytest.approx(1.0)
    assert bool((basis["mean"].diff() >= 0).all())
    # With the file, the untrained linearisation predicts the mean curve (its head starts at zero).
    model = build_arch("singlehdr", basis_path=str(shared_data / "crf" / "invemor.txt"), **TINY)
    assert model.basis_source.endswith("invemor.txt")
    with torch.no_grad():
        curve = model.linearize(torch.rand(1, 3, 16, 16))
    torch.testing.assert_close(curve[0], monotone_curve(basis["mean"].view(1, -1))[0])


def test_bad_basis_files_are_refused_naming_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="missing.txt"):
        read_emor_file(tmp_path / "missing.txt")
    bad = tmp_path / "short.txt"
    bad.write_text("B =\n0.0 0.5 1.0\ng0 =\n0.0 0.5 1.0\nhinv(1)=\n0 0 0\n")
    with pytest.raises(DatasetError, match="short.txt"):
        read_emor_file(bad)
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("B =\n0.0 abc\n")
    with pytest.raises(DatasetError, match="non-numeric"):
        read_emor_file(garbage)


def test_fallback_basis_is_pinned_at_0_and_1_and_starts_as_identity():
    basis = polynomial_basis(11)
    assert basis["basis"].shape == (11, CURVE_SAMPLES)
    assert float(basis["basis"][:, 0].abs().max()) == 0.0 and float(basis["basis"][:, -1].abs().max()) < 1e-6
    model = build_arch("singlehdr", **TINY)
    assert model.basis_source == "polynomial-fallback"
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        curve = model.linearize(x)
    torch.testing.assert_close(apply_curve(x, curve), x, rtol=1e-5, atol=1e-6)  # g0(x) = x


def test_curve_helpers_match_numpy_interpolation():
    g = torch.Generator().manual_seed(0)
    grid = np.linspace(0, 1, CURVE_SAMPLES)
    curves = torch.stack([torch.linspace(0, 1, CURVE_SAMPLES) ** 2.2, torch.linspace(0, 1, CURVE_SAMPLES) ** 0.6])
    x = torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64)
    ours = apply_curve(x, curves.double()).numpy()
    for i in range(2):
        np.testing.assert_allclose(ours[i], np.interp(x[i].numpy(), grid, curves[i].double().numpy()), atol=1e-12)
    inverse = invert_curves(curves.double())
    for i in range(2):
        # The inverse of a monotone table, by linear interpolation: np.interp with the axes swapped.
        np.testing.assert_allclose(inverse[i].numpy(), np.interp(grid, curves[i].double().numpy(), grid), atol=1e-9)
    raw = torch.randn(3, 50, generator=g).cumsum(1)
    mono = monotone_curve(raw)
    assert bool((mono.diff(dim=1) >= 0).all())
    np.testing.assert_allclose(mono[:, 0].numpy(), 0.0)
    np.testing.assert_allclose(mono[:, -1].numpy(), 1.0, rtol=1e-6)


def test_training_samples_follow_the_camera_pipeline():
    hdr = realistic_batch(2, 32)["hdr"]
    sim = simulate_singlehdr(hdr, torch.Generator().manual_seed(0), None)
    assert torch.equal(sim["linear"], sim["hdr"].clamp(0, 1))
    clipped = (sim["hdr"].amax(1) >= 1).float().mean(dim=(1, 2))
    assert bool(((clipped > 0.005) & (clipped < 0.11)).all())  # a 90-99 % quantile maps to full scale
    torch.testing.assert_close(sim["ldr"], torch.round(sim["ldr_float"] * 255) / 255)
    # The dequantised image through the true inverse CRF gives back the linear image (interpolation error only).
    back = apply_curve(sim["ldr_float"], sim["curve"])
    assert float((back - sim["linear"]).abs().max()) < 2e-3


def test_official_tensorflow_weights_are_refused_with_the_reason():
    with pytest.raises(InputError, match="TensorFlow"):
        build_arch("singlehdr", weights="ckpt")


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    model = build_arch("singlehdr", **TINY)
    # The curve head starts at zero (the mean curve), which blocks the gradient to the feature layers until
    # its first update: give it the small weights one update would.
    torch.nn.init.normal_(model.linearize.head[-1].weight, 0.0, 1e-3)
    ldr = realistic_batch(2, 32)["stack"][:, 3]  # EV 0 with clipped highlights: the hallucination mask is non-empty
    out = model.stages(ldr)
    assert float(out["alpha"].detach().max()) == 1.0
    out["hdr"].square().mean().backward()
    assert every_param_has_grad(model) == []


def test_training_goes_stage_by_stage_then_jointly():
    recipe, task = tiny_task("singlehdr")
    assert [task.stage(i) for i in range(5)] == ["deq", "lin", "hal", "joint", "joint"]
    batch = realistic_batch(2, 32)
    params = {n: m for n, m in task.modules().items()}
    for m in params.values():
        m.train()
    for it, (stage, trained) in enumerate([("deq", {"dequantize"}), ("lin", {"linearize"}),
                                           ("hal", {"hallucinate"}),
                                           ("joint", {"dequantize", "linearize", "hallucinate", "refine"})]):
        before = {n: [p.detach().clone() for p in m.parameters()] for n, m in params.items()}
        out = task.train_step(batch, it)
        assert set(out) == {f"{stage}_loss"} and np.isfinite(out[f"{stage}_loss"])
        changed = {n for n, m in params.items() if any(not torch.equal(a, p) for a, p in zip(before[n], m.parameters()))}
        assert changed == trained, (stage, changed)
    assert task.optimizers()["ref"].param_groups[0]["lr"] == pytest.approx(float(recipe["optim"]["lr_joint"]))

"""Method registry and the training-free methods, checked against numpy and closed-form references."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from hdrbench.errors import InputError, UnknownNameError
from hdrbench.evaluate.methods import SceneContext, describe_method, get_method, list_methods, recipe_names
from hdrbench.evaluate.training_free import gamma_table, lut_apply_forward, lut_linearize

TRAINING_FREE = ("akyuz07", "banterle06", "exposure-scaling", "gt-stack", "ldr-linear", "masia09")


def _ldr(seed=0, n=1, h=9, w=11):
    g = torch.Generator().manual_seed(seed)
    return torch.round(torch.rand(n, 3, h, w, generator=g) * 255) / 255


def _table(seed=0):
    # A strictly increasing, non-parametric inverse curve per channel (like a Debevec table).
    g = np.random.default_rng(seed)
    steps = g.random((1, 3, 256)) + 0.05
    t = np.cumsum(steps, axis=-1)
    return torch.from_numpy(t / t[..., -1:])


def test_registry_and_descriptions():
    names = list_methods()
    assert set(TRAINING_FREE) <= set(names)
    assert set(recipe_names()) <= set(names)
    with pytest.raises(UnknownNameError, match="did you mean 'ldr-linear'"):
        get_method("ldr-liner")
    if "proposed" in recipe_names():  # did-you-mean covers trained recipes too
        with pytest.raises(UnknownNameError, match="did you mean 'proposed'"):
            get_method("propsed")
    for n in TRAINING_FREE:
        text = describe_method(n)
        assert text.startswith(n) and "training-free" in text
    assert "Masia" in describe_method("masia09") and "2009" in describe_method("masia09")
    with pytest.raises(UnknownNameError, match="unknown method option 'white' for method 'ldr-linear'; known: "
                                               "linearize"):
        get_method("ldr-linear", white=3)
    with pytest.raises(InputError, match="linearize must be one of"):
        get_method("akyuz07", linearize="srgb")


def test_recipes_resolve_through_the_trained_loader():
    names = recipe_names()
    assert "proposed" in names
    assert describe_method("proposed")
    # Nothing is trained in this test's runs folder: the loader says so and how to train it.
    with pytest.raises(InputError, match="train it first"):
        get_method("proposed", dataset="synthetic")


def test_lut_linearize_matches_numpy_interp():
    table = _table(1)
    z = torch.rand(1, 3, 5, 7, dtype=torch.float64)
    out = lut_linearize(table, z)
    grid = np.linspace(0, 1, 256)
    for c in range(3):
        ref = np.interp(z[0, c].numpy(), grid, table[0, c].numpy())
        np.testing.assert_allclose(out[0, c].numpy(), ref, rtol=0, atol=1e-12)


def test_lut_forward_is_the_inverse_interpolation():
    table = _table(2)
    x = torch.rand(1, 3, 6, 4, dtype=torch.float64) * 1.3  # part beyond the table's end: clips to 1
    out = lut_apply_forward(table, x)
    grid = np.linspace(0, 1, 256)
    for c in range(3):
        ref = np.interp(x[0, c].numpy(), table[0, c].numpy(), grid)
        np.testing.assert_allclose(out[0, c].numpy(), ref, rtol=0, atol=1e-12)
    z = torch.rand(1, 3, 6, 4, dtype=torch.float64)
    np.testing.assert_allclose(lut_apply_forward(table, lut_linearize(table, z)).numpy(), z.numpy(), atol=1e-12)


def _context(ldr, table=None, stack=None, evs=(-1.0, 0.0, 1.0)):
    return SceneContext(scene="s", evs=list(evs), stack=stack, reference_inverse_crf=lambda: table)


def test_exposure_scaling_equals_the_closed_form_for_a_gamma_curve():
    ldr = _ldr(3)
    m = get_method("exposure-scaling", linearize="gamma2.2")
    evs = [-3.0, -1.0, 0.0, 2.0]
    out = m.predict_stack(ldr, evs)
    x = ldr.double().numpy() ** 2.2
    for i, ev in enumerate(evs):
        ref = np.round(np.clip(x * 2.0**ev, 0, 1) ** (1 / 2.2) * 255) / 255
        # Table interpolation (256 samples of z^2.2) vs the exact power: within one 8-bit level.
        assert np.abs(out[0, i].double().numpy() - ref).max() <= 1 / 255 + 1e-6
    torch.testing.assert_close(out[:, 2], ldr)  # EV 0 is the input itself
    assert m.inverse_crf().shape == (1, 3, 256) and m.merge_crf == "own"


def test_ldr_linear_and_context_handling():
    ldr = _ldr(4)
    np.testing.assert_allclose(get_method("ldr-linear", linearize="gamma2.2").predict_hdr(ldr).numpy(),
                               ldr.numpy() ** 2.2, atol=2e-3)  # 256-sample table vs exact power
    table = _table(5).float()
    m = get_method("ldr-linear")
    with pytest.raises(InputError, match="needs the scene context"):
        m.predict_hdr(ldr)
    m.prepare(_context(ldr, table))
    torch.testing.assert_close(m.predict_hdr(ldr), lut_linearize(table, ldr))


def test_gt_stack_returns_the_ground_truth():
    stack = torch.rand(1, 3, 3, 5, 6)
    m = get_method("gt-stack")
    m.prepare(_context(stack[:, 1], stack=stack))
    torch.testing.assert_close(m.predict_stack(stack[:, 1], [1.0, -1.0]), stack[:, [2, 0]])
    with pytest.raises(InputError, match="no ground-truth EV"):
        m.predict_stack(stack[:, 1], [2.0])


def _lum(x):
    return 0.2126 * x[:, 0] + 0.7152 * x[:, 1] + 0.0722 * x[:, 2]


def test_banterle_inverts_reinhard():
    ldr = _ldr(6).double()
    m = get_method("banterle06", linearize="gamma2.2", white=8.0, max_luminance=100.0)
    out = m.predict_hdr(ldr)
    lin = lut_linearize(gamma_table(2.2).double(), ldr)
    yd = (_lum(lin) / _lum(lin).max()).numpy()
    L = (_lum(out) * 8.0 / 100.0).numpy()  # back to Reinhard's scaled luminance
    reinhard = L * (1 + L / 64.0) / (1 + L)  # Reinhard et al. 2002, Eq. 4
    np.testing.assert_allclose(reinhard, yd, atol=1e-9)
    np.testing.assert_allclose(_lum(out).max().item(), 100.0, rtol=1e-9)  # L_d = 1 -> L_max
    # Colour ratios are kept.
    np.testing.assert_allclose((out[:, 0] / out[:, 1]).numpy(), (lin[:, 0] / lin[:, 1]).numpy(), rtol=1e-9)


def test_masia_key_and_gamma():
    lin_img = torch.full((1, 3, 4, 4), 0.9, dtype=torch.float64)
    lin_img[..., 0, 0] = 0.01  # one dark pixel: a bright (high-key) image
    z = lin_img ** (1 / 2.2)
    m = get_method("masia09", linearize="gamma2.2")
    out = m.predict_hdr(z)
    lin = lut_linearize(gamma_table(2.2).double(), z)
    y = _lum(lin).numpy().ravel()
    logy = np.log(y)
    k = (logy.mean() - logy.min()) / (logy.max() - logy.min())
    gamma = 10.44 * k - 6.282
    assert gamma > 1
    np.testing.assert_allclose(_lum(out).numpy().ravel(), (y / y.max()) ** gamma, rtol=1e-9)
    dark = torch.full((1, 3, 4, 4), 0.05, dtype=torch.float64)
    dark[..., 0, 0] = 1.0  # low key: the fit would give a negative gamma; clamped to 1
    out = m.predict_hdr(dark)
    ld = lut_linearize(gamma_table(2.2).double(), dark)
    np.testing.assert_allclose(_lum(out).numpy(), (_lum(ld) / _lum(ld).max()).numpy(), rtol=1e-9)


def test_akyuz_linear_expansion():
    ldr = _ldr(7).double()
    out = get_method("akyuz07", linearize="gamma2.2", max_luminance=3000.0).predict_hdr(ldr)
    lin = lut_linearize(gamma_table(2.2).double(), ldr)
    y = _lum(lin).numpy()
    ref = 3000.0 * (y - y.min()) / (y.max() - y.min())
    np.testing.assert_allclose(_lum(out).numpy(), ref, rtol=1e-9, atol=1e-9)

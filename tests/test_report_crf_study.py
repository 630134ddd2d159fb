"""The CRF-consistency study (paper appendix A, Fig. 3) on the embedded synthetic dataset."""

from __future__ import annotations

import numpy as np
import pytest

from hdrbench.errors import InputError


@pytest.mark.slow
def test_crf_study_curves_sigma_and_figure(tmp_path):
    from hdrbench.report import crf_study, figures

    curves, sigma = crf_study.crf_study("synthetic", limit=3)
    assert set(sigma["estimator"]) == {"debevec", "poly-3", "poly-5", "ground-truth"}
    assert (sigma["n_scenes"] == 3).all() and np.isfinite(sigma["sigma"]).all()
    # Normalised curves end at 1 at the top code and rise overall from the bottom code.
    top = curves[curves["z"] == 1.0]
    np.testing.assert_allclose(top["value"], 1.0, atol=1e-9)
    bottom = curves[curves["z"] == 0.0]["value"].to_numpy()
    assert (bottom < 0.5).all()
    # Sigma is the mean over codes/channels of the across-scene std: recompute it for one estimator.
    g = curves[curves["estimator"] == "debevec"].pivot_table(index=["channel", "z"], columns="scene", values="value")
    expected = g.to_numpy().std(axis=1, ddof=1).mean()
    assert float(sigma.set_index("estimator").loc["debevec", "sigma"]) == pytest.approx(expected, rel=1e-12)
    fig, axes = figures.crf_curves(curves, sigma, dataset="synthetic")
    assert len(axes) == 4 and all(len(ax.lines) == 3 for ax in axes)
    assert "σ" in axes[0].get_title() and axes[0].get_xlabel()
    paths = figures.save_figure(fig, tmp_path / "crf")
    assert all(p.stat().st_size > 5000 for p in paths)


def test_ground_truth_inverse_inverts_the_forward_table():
    from hdrbench.report.crf_study import ground_truth_inverse

    grid = np.linspace(0, 1, 1024)
    fwd = np.stack([grid ** (1 / 2.2)] * 3)
    inv = ground_truth_inverse({"crf_table": fwd})
    z = np.linspace(0, 1, 256)
    np.testing.assert_allclose(inv, np.stack([z**2.2] * 3), atol=2e-3)  # interpolation error of a 1024-point table
    # One curve for all channels (a (1, n) or (n,) table) is repeated to three channels.
    for single in (fwd[:1], fwd[0]):
        np.testing.assert_allclose(ground_truth_inverse({"crf_table": single}), inv, atol=0)
    assert ground_truth_inverse({}) is None


def test_crf_study_needs_two_scenes():
    from hdrbench.report.crf_study import crf_study

    with pytest.raises(InputError, match="at least 2 scenes"):
        crf_study("synthetic", limit=1)

"""The CRF-consistency study (paper appendix A, Fig. 3) on the embedded synthetic dataset."""

from __future__ import annotations

import numpy as np
import pytest

from hdrbench.errors import InputError


@pytest.mark.slow
def test_crf_study_curves_sigma_and_figure(tmp_path):
    from hdrbench.evaluate.crf_study import run_crf_study
    from hdrbench.report import crf_study, figures

    curves, path = run_crf_study("synthetic", out=tmp_path, limit=3)
    sigma = crf_study.sigma_table(curves)
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
    # The report reads the written curves back: same table, and sigma within the CSV's 6-decimal rounding.
    assert path == tmp_path / "tables" / "crf_study_synthetic_curves.csv"
    back = crf_study.read_curves(path)
    assert list(back.columns) == list(curves.columns) and len(back) == len(curves)
    np.testing.assert_allclose(crf_study.sigma_table(back)["sigma"], sigma["sigma"], atol=1e-6)  # 5e-7 rounding per value
    written = crf_study.write_report(path, tmp_path, "synthetic")
    assert [p.name for p in written] == ["crf_study_synthetic.csv", "crf_study_synthetic.md", "crf_study_synthetic.tex",
                                         "crf_study_synthetic.png", "crf_study_synthetic.pdf"]


def test_ground_truth_inverse_inverts_the_forward_table():
    from hdrbench.evaluate.crf_study import ground_truth_inverse

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
    from hdrbench.evaluate.crf_study import crf_curves

    with pytest.raises(InputError, match="at least 2 scenes"):
        crf_curves("synthetic", limit=1)


def test_report_refuses_a_file_that_is_not_a_curves_table(tmp_path):
    from hdrbench.report.crf_study import read_curves

    with pytest.raises(InputError, match="no CRF-study curves file"):
        read_curves(tmp_path / "missing.csv")
    (tmp_path / "other.csv").write_text("scene,value\na,1\n")
    with pytest.raises(InputError, match=r"missing columns \['estimator', 'channel', 'z'\]"):
        read_curves(tmp_path / "other.csv")

"""Qualitative grids (paper Figs. 6-7) from saved HDR outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError


def _save(run_dir, scene, hdr: torch.Tensor):
    from hdrbench.imaging.io import write_image

    # float32 EXR: exact storage, so the scores below see exactly these values.
    return write_image(run_dir / "hdr" / f"{scene}.exr", hdr[0].permute(1, 2, 0).numpy().astype(np.float32))


@pytest.mark.slow
def test_grid_scores_match_the_metric_registry_and_show_every_panel(tmp_path):
    from hdrbench.data import get_dataset
    from hdrbench.imaging.io import read_image
    from hdrbench.metrics.registry import compute_hdr_metrics
    from hdrbench.report.figures import save_figure
    from hdrbench.report.qualitative import _reference, qualitative_grid_from_runs

    ds = get_dataset("synthetic")
    scenes = ds.scenes("test")[:2]
    exact, noisy = tmp_path / "exact", tmp_path / "noisy"
    refs = {}
    gen = torch.Generator().manual_seed(0)
    for scene in scenes:
        ref = _reference(ds, "test", scene).float().double()
        refs[scene] = ref
        _save(exact, scene, ref)
        _save(noisy, scene, ref * (1 + 0.3 * torch.randn(ref.shape, generator=gen, dtype=ref.dtype)).clamp_min(0))
    fig, scores = qualitative_grid_from_runs("synthetic", scenes, {"exact": exact, "noisy": noisy})
    for scene in scenes:
        # Saved in float32 from a float32-representable reference: identical images, Q = 100.
        assert scores[(scene, "exact")] == pytest.approx(100.0, abs=1e-6)
        assert scores[(scene, "noisy")] < 95.0
        # The caption's Q is the number the harness records for the same pair and protocol.
        saved = read_image(noisy / "hdr" / f"{scene}.exr").data
        noisy_out = torch.from_numpy(np.ascontiguousarray(saved)).permute(2, 0, 1)[None].double()
        rec = compute_hdr_metrics(noisy_out, refs[scene], protocol="singlehdr", metrics=["hdrvdp2"])["hdrvdp2"]
        assert scores[(scene, "noisy")] == pytest.approx(float(rec[0]), abs=1e-6)
    axes = fig.axes
    image_axes = [ax for ax in axes if ax.images]
    # 2 scenes x 3 columns of tone-mapped images + 2 scenes x 2 P_maps (the reference column has none).
    assert len(image_axes) == 2 * 3 + 2 * 2
    labels = [ax.get_xlabel() for ax in axes if ax.get_xlabel().startswith("Q = ")]
    assert len(labels) == 4
    assert any(ax.get_ylabel() == "P_map" for ax in axes)
    assert all(p.stat().st_size > 5000 for p in save_figure(fig, tmp_path / "grid"))


def test_missing_outputs_and_empty_selection_are_clear_errors(tmp_path):
    from hdrbench.report.qualitative import qualitative_grid_from_runs

    with pytest.raises(InputError, match="at least one scene"):
        qualitative_grid_from_runs("synthetic", [], {"a": tmp_path})
    with pytest.raises(InputError, match="no saved HDR output"):
        from hdrbench.report.qualitative import _load_output

        _load_output(tmp_path, "scene-000")

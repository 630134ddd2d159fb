"""Qualitative grids (paper Figs. 6-7) from saved HDR outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError
from hdrbench.imaging.io import read_image


def _save(run_dir, scene, hdr: torch.Tensor):
    from hdrbench.imaging.io import write_image

    # float32 EXR: exact storage, so the scores below see exactly these values.
    return write_image(run_dir / "hdr" / f"{scene}.exr", hdr[0].permute(1, 2, 0).numpy().astype(np.float32))


@pytest.mark.slow
def test_grid_captions_are_the_run_records_and_show_every_panel(tmp_path):
    from hdrbench.data import get_dataset
    from hdrbench.evaluate.harness import evaluate
    from hdrbench.evaluate.runs import read_records_csv
    from hdrbench.metrics.registry import compute_hdr_metrics
    from hdrbench.report.figures import save_figure
    from hdrbench.report.qualitative import _reference, qualitative_grid_from_runs

    ds = get_dataset("synthetic")
    scenes = ds.scenes("test")[:2]
    runs = {m: evaluate(m, "synthetic", limit=2, out=tmp_path / "runs", stack_metrics=("psnr",),
                        hdr_metrics=("hdrvdp2",), save_hdr="pfm", leaderboard=False)
            for m in ("gt-stack", "exposure-scaling")}
    fig, scores = qualitative_grid_from_runs("synthetic", scenes, runs)
    for label, run in runs.items():
        recorded = {r["scene"]: r["value"] for r in read_records_csv(run / "records.csv")
                    if r["metric"] == "hdrvdp2" and r["target"] == "hdr" and r["protocol"] == "singlehdr"}
        for scene in scenes:
            # The caption's Q is the run's record itself, not a recomputation.
            assert scores[(scene, label)] == recorded[scene]
            # The saved PFM (lossless float32) is the image the record scored: in the harness's dtype (float32,
            # the dataset's) the same call gives the record back.
            saved = torch.from_numpy(read_image(run / "hdr" / f"{scene}.pfm").data).permute(2, 0, 1)[None]
            ref = _reference(ds, "test", scene).float()
            again = compute_hdr_metrics(saved, ref, protocol="singlehdr", metrics=["hdrvdp2"])["hdrvdp2"]
            assert float(again[0]) == pytest.approx(recorded[scene], abs=1e-6)  # same inputs, same call
    assert scores[(scenes[0], "gt-stack")] != scores[(scenes[0], "exposure-scaling")]
    axes = fig.axes
    image_axes = [ax for ax in axes if ax.images]
    # 2 scenes x 3 columns of tone-mapped images + 2 scenes x 2 P_maps (the reference column has none).
    assert len(image_axes) == 2 * 3 + 2 * 2
    labels = [ax.get_xlabel() for ax in axes if ax.get_xlabel().startswith("Q = ")]
    assert sorted(labels) == sorted(f"Q = {q:.2f}" for q in scores.values())
    assert any(ax.get_ylabel() == "P_map" for ax in axes)
    assert all(p.stat().st_size > 5000 for p in save_figure(fig, tmp_path / "grid"))


def test_grid_needs_the_runs_records_under_its_protocol(tmp_path):
    from hdrbench.data import get_dataset
    from hdrbench.evaluate.records import Record
    from hdrbench.evaluate.runs import write_records_csv
    from hdrbench.report.qualitative import _reference, qualitative_grid_from_runs

    ds = get_dataset("synthetic")
    scene = ds.scenes("test")[0]
    run = tmp_path / "run"
    _save(run, scene, _reference(ds, "test", scene))
    with pytest.raises(InputError, match="no records.csv"):
        qualitative_grid_from_runs("synthetic", [scene], {"a": run})
    rec = Record(run_id="r", method="m", dataset="synthetic", split="test", scene=scene, target="hdr", metric="hdrvdp2",
                 value=50.0, protocol="singlehdr")
    write_records_csv(run / "records.csv", [rec.as_row()])
    with pytest.raises(InputError, match="no HDR-VDP-2 record for scene .* under protocol display"):
        qualitative_grid_from_runs("synthetic", [scene], {"a": run}, protocol="display")


def test_missing_outputs_and_empty_selection_are_clear_errors(tmp_path):
    from hdrbench.report.qualitative import qualitative_grid_from_runs

    with pytest.raises(InputError, match="at least one scene"):
        qualitative_grid_from_runs("synthetic", [], {"a": tmp_path})
    with pytest.raises(InputError, match="no saved HDR output"):
        from hdrbench.report.qualitative import _load_output

        _load_output(tmp_path, "scene-000")

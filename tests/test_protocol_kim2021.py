"""The ``kim2021`` protocol: the official test's reference (merged ground-truth stack, official synthesis layer).

Checked here: the protocol's card and registry entry; through the harness on a few tiny synthetic scenes, that
``gt-stack`` scores Q = 100 exactly, that a stack method is scored on the official merge of its stack against the
official merge of the ground-truth stack (recomputed here with ``merge_stack`` and ``OFFICIAL_LAYER``), that a
direct method's HDR is scored against that same merge, and that a scene without a stack fails with a clear error;
Table 3 per protocol from hand-made record files; unknown protocol names.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from hdrbench.cli import main
from hdrbench.errors import InputError, UnknownNameError
from hdrbench.evaluate.harness import evaluate
from hdrbench.evaluate.methods import Method
from hdrbench.evaluate.records import COLUMNS, Record
from hdrbench.evaluate.runs import read_records_csv
from hdrbench.imaging.io import read_image
from hdrbench.imaging.synthesis import OFFICIAL_LAYER, merge_stack
from hdrbench.metrics.protocols import get_protocol, list_protocols
from hdrbench.metrics.registry import compute_hdr_metrics
from hdrbench.report import tables
from hdrbench.report.build import build_tables
from hdrbench.report.records_io import read_records

#: Two 48 x 48 synthetic test scenes: enough for every code path, a few seconds per evaluation.
TINY = {"resolution": 48, "dataset_options": {"n_train": 0, "n_test": 2, "progress": False}, "leaderboard": False}


def _hdr_rows(path) -> list[dict]:
    return [r for r in read_records_csv(path / "records.csv") if r["target"] == "hdr"]


def _official_merge(stack: torch.Tensor, evs, inverse_crf="debevec") -> torch.Tensor:
    """The official layer's merge, written independently of the harness: (1, E, 3, H, W) -> (1, 3, H, W)."""
    times = torch.tensor([2.0**e for e in evs], dtype=torch.float64)
    kwargs = {k: v for k, v in OFFICIAL_LAYER.items() if k != "inverse_crf"}
    return merge_stack(stack, times, inverse_crf=inverse_crf, **kwargs).hdr


def test_card_registry_and_scaling():
    assert "kim2021" in list_protocols()
    p = get_protocol("kim2021")
    assert (p.name, p.version, p.ppd) == ("kim2021", "1", 30.0)
    assert (p.hdr_reference, p.stack_merge) == ("gt-stack", "official")
    card = p.card()
    assert card["parameters"]["hdr_reference"] == "gt-stack" and card["parameters"]["stack_merge"] == "official"
    text = " ".join(card["assumptions"])
    assert "cd/m^2" in text and "30 pixels per degree" in text and "directly" in text
    # The scaling is singlehdr's, number for number (the stated assumption).
    g = torch.Generator().manual_seed(0)
    test, ref = torch.rand(2, 3, 20, 24, generator=g) * 50, torch.rand(2, 3, 20, 24, generator=g) * 50
    for a, b in zip(p.apply(test, ref), get_protocol("singlehdr").apply(test, ref)):
        assert torch.equal(a, b)
    # The other protocols keep the harness's reference and merge; the reference is an option of any of them.
    s = get_protocol("singlehdr")
    assert (s.hdr_reference, s.stack_merge, s.assumptions) == ("dataset", "hdrbench", ())
    o = get_protocol("singlehdr", hdr_reference="gt-stack")
    assert o.name == "singlehdr[hdr_reference=gt-stack]" and o.hdr_reference == "gt-stack"
    c = get_protocol("kim2021", crf_correction=True)
    assert c.name == "kim2021+hanji2022" and (c.hdr_reference, c.stack_merge) == ("gt-stack", "official")


def test_unknown_names_and_values():
    with pytest.raises(UnknownNameError, match="did you mean 'kim2021'"):
        get_protocol("kim2012")
    with pytest.raises(InputError, match="hdr_reference must be one of dataset, gt-stack"):
        get_protocol("kim2021", hdr_reference="dataset-hdr")
    with pytest.raises(InputError, match="stack_merge must be one of hdrbench, official"):
        get_protocol("singlehdr", stack_merge="matlab")
    with pytest.raises(InputError, match="unknown parameter"):
        get_protocol("kim2021", assumptions=("none",))  # prose, not a parameter


def test_cli_rejects_unknown_protocol(capsys):
    rc = main(["evaluate", "--method", "gt-stack", "--dataset", "synthetic", "--protocol", "kim2022",
               "--dataset-option", "n_train=0", "--dataset-option", "n_test=1", "--resolution", "32",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "kim2022" in err and "kim2021" in err and "Traceback" not in err


def test_gt_stack_scores_100_exactly(tmp_path):
    path = evaluate("gt-stack", "synthetic", protocol="kim2021", out=tmp_path / "runs", **TINY)
    rows = _hdr_rows(path)
    assert len(rows) == 2 * 3 and not [r for r in rows if r["error"]]
    assert all(r["protocol"] == "kim2021" and r["protocol_version"] == "1" for r in rows)
    assert [r["value"] for r in rows if r["metric"] == "hdrvdp2"] == [100.0, 100.0]
    assert all(r["value"] == math.inf for r in rows if r["metric"] == "pu21-psnr")  # identical images
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["hdr_reference"] == ["gt-stack-merged-official"] and cfg["merge"]["layer"] == "official"
    assert cfg["protocol"]["parameters"]["hdr_reference"] == "gt-stack"
    # The contrast that makes the check meaningful: against the dataset's HDR (singlehdr) the same stacks are not
    # a perfect score on these scenes (their suns exceed what an EV -3..+3 stack records).
    other = evaluate("gt-stack", "synthetic", protocol="singlehdr", out=tmp_path / "runs", **TINY)
    assert all(r["value"] < 99.0 for r in _hdr_rows(other) if r["metric"] == "hdrvdp2")


class _DarkenedStack(Method):
    """A stack method: the ground-truth stack made darker by a per-EV gamma and re-quantised to 8 bits."""

    kind = "stack"
    name = "darkened-stack"
    uses_context = True

    def __init__(self):
        self.stacks: dict[str, torch.Tensor] = {}

    def prepare(self, context):
        self.context = context

    def predict_stack(self, ldr, evs):
        gammas = torch.tensor([1.0 + 0.1 * abs(e) for e in evs]).view(1, -1, 1, 1, 1)
        out = torch.round(self.context.stack.clamp(0, 1) ** gammas * 255) / 255
        self.stacks[self.context.scene] = out.clone()
        return out


class _Squared(Method):
    """A direct method: the input squared (a crude linearisation)."""

    kind = "direct"
    name = "squared"

    def predict_hdr(self, ldr):
        return ldr**2 + 1e-3


def test_stack_and_direct_methods_are_scored_on_official_merges(tmp_path):
    from hdrbench.data import get_dataset

    ds = get_dataset("synthetic", resolution=48, n_train=0, n_test=2, progress=False)
    protocol = get_protocol("kim2021")
    method = _DarkenedStack()
    path = evaluate(method, ds, protocol="kim2021", out=tmp_path / "runs", save_hdr="pfm",
                    hdr_metrics=("hdrvdp2", "pu21-psnr"), leaderboard=False)
    direct = evaluate(_Squared(), ds, protocol="kim2021", out=tmp_path / "runs", save_hdr="pfm",
                      hdr_metrics=("hdrvdp2", "pu21-psnr"), leaderboard=False)
    rows = {(r["scene"], r["metric"]): r for r in _hdr_rows(path)}
    rows_direct = {(r["scene"], r["metric"]): r for r in _hdr_rows(direct)}
    for name in ds.scenes("test"):
        scene = ds.load("test", name)
        reference = _official_merge(scene.stack[None], scene.evs)
        pred = _official_merge(method.stacks[name], scene.evs)
        saved = torch.from_numpy(read_image(path / "hdr" / f"{name}.pfm").data).permute(2, 0, 1)[None]
        # The saved file is the scored image (float32 PFM, lossless): equal to our own official merge.
        assert torch.equal(saved, pred.float())
        # Not vacuous: the harness's default layer merges this stack to other values.
        default = merge_stack(method.stacks[name], torch.tensor([2.0**e for e in scene.evs]), weight="deb97",
                              merge="log").hdr
        assert not torch.allclose(default, pred, rtol=1e-3)
        ours = compute_hdr_metrics(pred, reference, protocol=protocol, metrics=["hdrvdp2", "pu21-psnr"],
                                   allow_small_window=True)
        direct_pred = _Squared().predict_hdr(scene.input[None])
        ours_direct = compute_hdr_metrics(direct_pred, reference, protocol=protocol, metrics=["hdrvdp2", "pu21-psnr"],
                                          allow_small_window=True)
        for m in ("hdrvdp2", "pu21-psnr"):
            # Same inputs through the same code: equal up to float summation order (none expected; 1e-9 slack).
            assert rows[(name, m)]["value"] == pytest.approx(float(ours[m][0]), rel=1e-9)
            assert rows_direct[(name, m)]["value"] == pytest.approx(float(ours_direct[m][0]), rel=1e-9)
        assert rows[(name, "hdrvdp2")]["value"] < 100.0  # a different stack is not a perfect score
    assert json.loads((direct / "config.json").read_text())["hdr_reference"] == ["gt-stack-merged-official"]


def test_scene_without_stack_fails_with_a_clear_error(tmp_path):
    from hdrbench.data import get_dataset
    from hdrbench.data.base import Scene

    ds = get_dataset("synthetic", resolution=32, n_train=0, n_test=1, progress=False)
    real_load = ds.load

    def no_stack(split, scene):
        s = real_load(split, scene)
        return Scene(name=s.name, stack=None, evs=[0.0], hdr=s.hdr, meta=s.meta, ldr=s.input)

    ds.load = no_stack
    path = evaluate(_Squared(), ds, protocol="kim2021", out=tmp_path / "runs", hdr_metrics=("pu21-psnr",),
                    leaderboard=False)
    (row,) = _hdr_rows(path)
    assert math.isnan(row["value"]) and "no ground-truth stack" in row["error"] and "kim2021" in row["error"]
    # Under singlehdr the same scene is scored against the dataset's HDR image.
    path = evaluate(_Squared(), ds, protocol="singlehdr", out=tmp_path / "runs", hdr_metrics=("pu21-psnr",),
                    leaderboard=False)
    (row,) = _hdr_rows(path)
    assert not row["error"] and math.isfinite(row["value"])


# ------------------------------------------------------------------------------------------------------------
# Table 3 under both protocols


def _ladder_records(method: str, step: int, protocol: str, scenes: int = 4) -> list[Record]:
    """One evaluation's records as the harness writes them: the stack rows, then the HDR rows of one protocol."""
    rows = []
    for s in range(scenes):
        base = dict(run_id=f"r-{protocol}", method=method, dataset="synthetic", split="test", scene=f"s{s}")
        for ev in (-3, -2, -1, 1, 2, 3):
            rows.append(Record(**base, target="stack", ev=float(ev), metric="psnr", value=20.0 + step + 0.1 * s + ev))
        q = (40.0 if protocol == "singlehdr" else 60.0) + 2 * step + s
        rows.append(Record(**base, target="hdr", metric="hdrvdp2", value=q, protocol=protocol, protocol_version="1"))
    return rows


def _write(rows: list[Record], path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([r.as_row() for r in rows], columns=list(COLUMNS)).to_csv(path, index=False)


def test_ablation_table_per_protocol(tmp_path):
    folder = tmp_path / "records" / "synthetic"
    for step, m in ((1, "ladder-1-unet"), (2, "ladder-2-recurrent")):
        _write(_ladder_records(m, step, "singlehdr"), folder / f"{m}.records.csv")
        _write(_ladder_records(m, step, "kim2021"), folder / f"{m}--kim2021.records.csv")
    t = tables.ablation_table(read_records([tmp_path / "records"]), with_reported=False)
    assert sorted(set(t.protocol)) == ["kim2021", "singlehdr"]
    for protocol, base in (("singlehdr", 40.0), ("kim2021", 60.0)):
        part = t[t.protocol == protocol].sort_values("step")
        assert list(part.step) == [1.0, 2.0]
        # Independent values: Q = base + 2 step + s over s = 0..3 -> mean base + 2 step + 1.5, std of 0..3.
        assert list(part.hdrvdp2_mean) == pytest.approx([base + 3.5, base + 5.5], abs=1e-12)
        assert list(part.hdrvdp2_std) == pytest.approx([np.std([0, 1, 2, 3], ddof=1)] * 2, abs=1e-12)
        assert part.hdrvdp2_delta.iloc[1] == pytest.approx(2.0, abs=1e-12)
        # PSNR is the stack's: the same under both protocols, and the duplicated stack rows are not counted twice.
        assert list(part.psnr_mean) == pytest.approx([20.0 + 1 + 0.15, 20.0 + 2 + 0.15], abs=1e-12)
        assert list(part.n_images) == [4, 4]
    only = tables.ablation_table(read_records([tmp_path / "records"]), protocol="kim2021", with_reported=False)
    assert set(only.protocol) == {"kim2021"} and len(only) == 2
    written = build_tables([tmp_path / "records"], tmp_path / "out", figures_on=False)
    csv = written["ablation_table"][0].read_text()
    assert csv.count(",kim2021,") == 2 and csv.count(",singlehdr,") == 2

"""``hdrbench validate-metrics``: distortion grading, protocol invariance claims, the CSV schema and CLI errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from hdrbench.cli import main
from hdrbench.evaluate import metric_validity as mv
from hdrbench.metrics import distortions as dist
from hdrbench.metrics.protocols import PROTOCOLS, get_protocol, list_protocols
from hdrbench.metrics.pu21 import rgb_to_luminance

#: A small generated dataset: two 48 x 48 test scenes (HDR-VDP needs a few pyramid levels; 48 px is enough).
SMALL = ["--dataset", "synthetic", "--dataset-option", "n_train=0", "--dataset-option", "n_test=2",
         "--resolution", "48", "--limit", "2", "--no-progress"]


def _hdr(seed: int = 0, size: int = 32) -> torch.Tensor:
    """(1, 3, size, size) float64 test image: smooth log-luminance ramp (14 stops) times random colour and texture."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-7.0, 7.0, size, dtype=torch.float64).view(1, 1, 1, size).expand(1, 1, size, size)
    texture = 0.5 * torch.randn(1, 1, size, size, generator=g, dtype=torch.float64)
    colour = 0.5 + torch.rand(1, 3, size, size, generator=g, dtype=torch.float64)
    return torch.exp2(ramp + texture) * colour


def _log_lum_err(ref, d):
    return (torch.log2(rgb_to_luminance(d)) - torch.log2(rgb_to_luminance(ref))).abs()


# The stated sense in which each distortion grows with strength (Distortion.monotone), as a measure that
# must rise strictly from one strength to the next.
MEASURES = {
    "gaussian-blur": lambda ref, d: float((d - ref).pow(2).mean()),
    "gaussian-noise": lambda ref, d: float(torch.log(d / ref).abs().mean()),
    "colour-cast": lambda ref, d: float((torch.log(d[:, 0] / ref[:, 0]) - torch.log(d[:, 2] / ref[:, 2])).mean()),
    "banding": lambda ref, d: float(_log_lum_err(ref, d).mean()),
    "highlight-clipping": lambda ref, d: float((d - ref).abs().sum()),
    "local-exposure": lambda ref, d: float(torch.log2(d / ref).abs().max()),
}


def test_every_detect_distortion_has_a_stated_and_tested_grading():
    assert set(dist.list_distortions("detect")) == set(MEASURES)
    for name in dist.list_distortions():
        d = dist.get_distortion(name)
        assert len(d.strengths) >= 4 and d.monotone and d.unit


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_distortion_strength_ordering(name):
    d = dist.get_distortion(name)
    ref = _hdr(1)
    outs = [d(ref, s, seed=5) for s in d.strengths]
    values = [MEASURES[name](ref, o) for o in outs]
    assert all(b > a for a, b in zip(values, values[1:])), (name, values)
    for o in outs:
        assert o.shape == ref.shape and o.dtype == ref.dtype and bool((o >= 0).all()) and bool(torch.isfinite(o).all())
    assert torch.equal(d(ref, d.identity), ref)
    # Deterministic: the same seed gives the same image.
    assert torch.equal(d(ref, d.strengths[2], seed=5), outs[2])


def test_pointwise_gradings():
    ref = _hdr(2)
    # Noise: one field for every strength, so |log ratio| grows at every pixel, not only on average.
    noise = dist.get_distortion("gaussian-noise")
    r = [torch.log(noise(ref, s, seed=3) / ref).abs() for s in noise.strengths]
    assert all(bool((b >= a).all()) for a, b in zip(r, r[1:]))
    # Clipping: the change at every pixel never shrinks as the clipped fraction grows.
    clip = dist.get_distortion("highlight-clipping")
    c = [(clip(ref, s) - ref).abs() for s in clip.strengths]
    assert all(bool((b >= a).all()) for a, b in zip(c, c[1:]))
    # Banding: the log2-luminance error never exceeds half a step (1e-9: float64 rounding of log2/exp2).
    band = dist.get_distortion("banding")
    for q in band.strengths:
        assert float(_log_lum_err(ref, band(ref, q)).max()) <= q / 2 + 1e-9
    # Local exposure: exactly e stops inside the central region, nothing outside (1e-12: float64 rounding).
    loc = dist.get_distortion("local-exposure")
    rows, cols = dist.exposure_region(32, 32)
    ratio = torch.log2(loc(ref, 1.5) / ref)
    assert torch.allclose(ratio[..., rows, cols], torch.full_like(ratio[..., rows, cols], 1.5), atol=1e-12)
    ratio[..., rows, cols] = 0
    assert float(ratio.abs().max()) == 0.0
    # Colour cast: a grey pixel keeps its luminance (1e-12: float64 rounding).
    grey = torch.ones(1, 3, 4, 4, dtype=torch.float64)
    cast = dist.get_distortion("colour-cast")(grey, 0.4)
    assert torch.allclose(rgb_to_luminance(cast), rgb_to_luminance(grey), atol=1e-12)


def test_blend_towards_grows_linearly_with_the_weight():
    ref, other = _hdr(3), 7.0 * _hdr(4)  # a different image at another scale
    aligned = dist.blend_towards(ref, other, 1.0)
    for w in mv.NETWORK_WEIGHTS:
        out = dist.blend_towards(ref, other, w)
        # |out - ref| = w |aligned - ref| at every pixel (1e-9 relative: float64 rounding).
        assert torch.allclose((out - ref).abs(), w * (aligned - ref).abs(), rtol=1e-9, atol=1e-12)
    # The scale alignment: the aligned image's median luminance ratio to the reference is 1 (1e-9: rounding).
    assert abs(float(dist.median_ratio(aligned, ref)[0]) - 1.0) < 1e-9


def test_untrained_network_distortion_is_deterministic_per_seed():
    ldr = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    evs = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    a = mv.network_hdr(mv.untrained_network("tiny", seed=3), ldr, evs)
    b = mv.network_hdr(mv.untrained_network("tiny", seed=3), ldr, evs)
    c = mv.network_hdr(mv.untrained_network("tiny", seed=4), ldr, evs)
    assert a.shape == (1, 3, 32, 32) and bool((a >= 0).all())
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_protocol_invariance_claims_name_known_distortions_and_are_not_parameters():
    claims = {n: get_protocol(n).invariances for n in list_protocols()}
    assert "global-scale" in claims["singlehdr"] and "global-scale" in claims["display"]
    for name, inv in claims.items():
        for d in inv:
            dist.get_distortion(d)
        assert "invariances" not in get_protocol(name).parameters()
    assert mv.default_protocol_names() == [n for n in list_protocols() if n != "absolute"]


def _run(tmp_path, capsys, *extra):
    out = tmp_path / "mv"
    rc = main(["validate-metrics", *SMALL, "--out", str(out), *extra])
    assert rc == 0
    console = capsys.readouterr().out
    return out, pd.read_csv(out / "metric_validity.csv"), console


def test_csv_schema_and_console_report(tmp_path, capsys):
    out, summary, console = _run(tmp_path, capsys, "--protocols", "singlehdr", "display",
                                 "--metrics", "pu21-psnr,hdrvdp2", "--network-preset", "tiny")
    assert list(summary.columns) == list(mv.SUMMARY_COLUMNS)
    assert set(summary["kind"]) == {"detect", "invariance", mv.RANK_KIND}
    assert set(summary["dataset"]) == {"synthetic"} and set(summary["protocol"]) == {"singlehdr", "display"}
    assert not summary.duplicated(["protocol", "metric", "distortion", "kind"]).any()
    expected = set(dist.list_distortions("detect")) | {mv.NETWORK_DISTORTION, "global-scale"}
    assert set(summary["distortion"]) == expected
    assert len(summary) == 2 * 2 * (len(expected) + 1)  # + the rank check of each (protocol, metric)
    det, inv = summary[summary["kind"] == "detect"], summary[summary["kind"] == "invariance"]
    assert det["max_abs_change"].isna().all() and inv["spearman"].isna().all() and inv["pair_accuracy"].isna().all()
    assert set(inv["distortion"]) == {"global-scale"}
    # Both metrics are higher-is-better: the pass rule is Spearman <= -0.9 on the scenes' mean.
    assert ((det["spearman"] <= -mv.SPEARMAN_THRESHOLD) == det["passed"]).all()
    assert det["pair_accuracy"].between(0, 1).all() and (inv["max_abs_change"] >= 0).all()
    # Every failed check is printed.
    assert console.count("FAIL ") == int((~summary["passed"]).sum())
    scores = pd.read_csv(out / "metric_validity_scores.csv")
    assert list(scores.columns) == list(mv.SCORE_COLUMNS)
    assert scores["scene"].nunique() == 2
    bound = scores[scores["kind"] == mv.BOUND_KIND]
    assert set(bound["distortion"]) == {mv.BOUND_METHOD} and bound["strength"].isna().all()
    assert len(bound) == 2 * 2 * 2 and not bound.duplicated(["protocol", "metric", "scene"]).any()
    scores = scores[scores["kind"] != mv.BOUND_KIND]
    per = scores.groupby(["protocol", "metric", "distortion"])["strength"].nunique()
    assert (per[per.index.get_level_values("distortion") != "global-scale"] == 5).all()
    assert (per.xs("global-scale", level="distortion") == 5).all()  # 4 factors and the unscaled base
    for name in ("metric_validity.md", "metric_validity.json", "metric_validity.png", "metric_validity.pdf"):
        assert (out / name).stat().st_size > 0
    assert "| protocol | metric |" in (out / "metric_validity.md").read_text()
    assert "| untrained < exposure-scaling |" in (out / "metric_validity.md").read_text()
    # The network's HDR depends on the thread count at rounding level: the run records it with torch's version.
    info = json.loads((out / "metric_validity.json").read_text())
    assert info["torch_threads"] == torch.get_num_threads() and info["torch_version"] == torch.__version__


def test_false_invariance_claim_is_reported_failing(tmp_path, capsys, monkeypatch):
    # A throwaway protocol: the display mapping without its alignment step, claiming the global-scale
    # invariance that only the alignment provides, and a blur invariance that nothing provides.
    def liar(**kw):
        return dataclasses.replace(get_protocol("display", alignment="none"), name="liar",
                                   invariances=("global-scale", "gaussian-blur"))

    monkeypatch.setitem(PROTOCOLS._items, "liar", liar)
    out, summary, console = _run(tmp_path, capsys, "--protocols", "liar", "display", "--metrics", "pu21-psnr",
                                 "--network-preset", "none")
    rows = summary.set_index(["protocol", "distortion"])
    assert rows.loc[("liar", "global-scale"), "kind"] == "invariance"
    assert not rows.loc[("liar", "global-scale"), "passed"]
    assert rows.loc[("liar", "gaussian-blur"), "kind"] == "invariance"
    assert not rows.loc[("liar", "gaussian-blur"), "passed"]
    assert rows.loc[("display", "global-scale"), "passed"]  # the true claim holds
    assert rows.loc[("display", "gaussian-blur"), "kind"] == "detect"
    assert "FAIL liar / pu21-psnr: claimed invariance to global-scale does not hold" in console
    assert "FAIL liar / pu21-psnr: claimed invariance to gaussian-blur does not hold" in console
    assert "**inv. FAIL**" in (out / "metric_validity.md").read_text()
    assert mv.NETWORK_DISTORTION not in set(summary["distortion"])
    # Without the untrained network there is nothing to rank: no rank rows, no bound scores, and the report says so.
    assert mv.RANK_KIND not in set(summary["kind"])
    assert mv.BOUND_KIND not in set(pd.read_csv(out / "metric_validity_scores.csv")["kind"])
    assert "Rank check (untrained < exposure-scaling): skipped" in (out / "metric_validity.md").read_text()


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "synthetc"], "did you mean 'synthetic'"),
    (["--dataset", "synthetic", "--protocols", "singlhdr"], "did you mean 'singlehdr'"),
    (["--dataset", "synthetic", "--metrics", "pu21-psnn"], "did you mean 'pu21-psnr'"),
    (["--dataset", "synthetic", "--metrics", "psnr"], "stack metric"),
    (["--dataset", "synthetic", "--protocols", "absolute"], "no viewing geometry"),
    (["--dataset", "synthetic", "--limit", "0"], "--limit"),
])
def test_cli_errors(tmp_path, capsys, args, needle):
    assert main(["validate-metrics", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # names are checked before anything is written


def test_cli_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["validate-metrics", "--dataset", "synthetic", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert f"--out {blocker / 'sub'}" in err and "cannot write" in err


def test_summarise_rules_on_a_constructed_frame():
    # Direct check of the rules on known numbers: a saturated (constant) curve fails, a curve with one swap of
    # neighbours passes at rho = -0.9, and an invariance passes only within the relative tolerance.
    rows = []
    for scene in ("a", "b"):
        for s, v in zip((1, 2, 3, 4, 5), (50, 40, 41, 20, 10)):
            rows.append(("d", "p", "hdrvdp2", "gaussian-blur", "detect", s, scene, v))
        for s in (1, 2, 3, 4, 5):
            rows.append(("d", "p", "pu21-psnr", "gaussian-blur", "detect", s, scene, 30.0))
        for s, v in zip((1.0, 2.0**-6, 8.0), (60.0, 60.0 + 1e-3, 60.0 - 1e-3)):
            rows.append(("d", "p", "hdrvdp2", "global-scale", "invariance", s, scene, v))
        for s, v in zip((1.0, 2.0**-6, 8.0), (60.0, 60.0 + 1.0, 60.0)):
            rows.append(("d", "p", "pu21-psnr", "global-scale", "invariance", s, scene, v))
    s = mv.summarise(pd.DataFrame(rows, columns=list(mv.SCORE_COLUMNS))).set_index(["metric", "distortion"])
    assert s.loc[("hdrvdp2", "gaussian-blur"), "spearman"] == pytest.approx(-0.9)  # exact rank arithmetic
    assert s.loc[("hdrvdp2", "gaussian-blur"), "passed"]
    assert s.loc[("hdrvdp2", "gaussian-blur"), "pair_accuracy"] == pytest.approx(9 / 10)
    assert math.isnan(s.loc[("pu21-psnr", "gaussian-blur"), "spearman"])
    assert not s.loc[("pu21-psnr", "gaussian-blur"), "passed"]
    # 1e-3 <= 1e-4 * 60 passes; 1.0 does not.
    assert s.loc[("hdrvdp2", "global-scale"), "passed"]
    assert s.loc[("hdrvdp2", "global-scale"), "max_abs_change"] == pytest.approx(1e-3)
    assert not s.loc[("pu21-psnr", "global-scale"), "passed"]


def test_reference_follows_the_protocol_declaration():
    from hdrbench.data import get_dataset
    from hdrbench.evaluate.harness import merge_scene_stack

    ds = get_dataset("synthetic", resolution=32, n_train=0, n_test=1)
    scene = ds.load("test", ds.scenes("test")[0])
    assert torch.equal(mv.reference_hdr(scene, "dataset", "hdrbench"), scene.hdr[None].double())
    official = merge_scene_stack(scene.stack[None], scene.evs, "debevec", layer="official").hdr.double()
    assert torch.equal(mv.reference_hdr(scene, "gt-stack", "official"), official.clamp_min(0.0))
    kim = get_protocol("kim2021")
    assert (kim.hdr_reference, kim.stack_merge) == ("gt-stack", "official")


RESULTS = Path(__file__).resolve().parent.parent / "results" / "metric_validity"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/metric_validity.csv")), ids=str)
def test_committed_metric_validity_follows_the_schema(path):
    df = pd.read_csv(path)
    assert list(df.columns) == list(mv.SUMMARY_COLUMNS)
    assert set(df["kind"]) <= {"detect", "invariance", mv.RANK_KIND} and df["passed"].dtype == bool
    assert not df.duplicated(["protocol", "metric", "distortion", "kind"]).any()
    rank = df[df["kind"] == mv.RANK_KIND]
    assert rank["spearman"].isna().all() and rank["max_abs_change"].isna().all()
    assert ((rank["pair_accuracy"] >= mv.RANK_THRESHOLD) == rank["passed"]).all()

"""HDR-VDP 2.2.2 port against the reference scores, maps and per-stage values of the original code.

Reference data (the ``hdrvdp2`` folder of the ``shared_data`` fixture): 15 fixture pairs (raw float32, H x W x 3 BT.709 RGB in
cd/m^2), ``reference_scores.csv`` (30 rows: each pair at 30 ppd and at the 21-inch/1-m display ppd),
``pmaps/*.f32`` (P_map at 30 ppd) and ``debug_r0{1,5}_noise_30ppd.json`` (statistics of every stage),
all produced by HDR-VDP 2.2.2 under GNU Octave 7.3.

Tolerance table (reason for each):

| quantity                     | float64          | float32       | why                                                       |
|------------------------------|------------------|---------------|-----------------------------------------------------------|
| Q                            | 1e-5 abs         | 0.01 abs      | the issue requires 0.01 / 0.1; float64 measured max 1.4e-8 |
|                              |                  |               | (CSV has 10 significant digits), 1e-5 leaves room for      |
|                              |                  |               | other FFT/BLAS libraries; float32 measured max 2.2e-3 (the |
|                              |                  |               | exponents p ~ 3.5 amplify single-precision rounding)       |
| P_det, mean P_map            | 1e-6 abs         | 0.02 abs      | probabilities in [0, 1]; float64 measured max 8e-11;       |
|                              |                  |               | float32 max 2.3e-4 (near-threshold P_det moves most)       |
| C_max                        | 1e-6 rel         | 3e-2 rel      | same computation as P_det before the exponential; float64  |
|                              |                  |               | measured 1e-9 rel, float32 1.2e-3 rel                      |
| P_map pixels (30 ppd)        | 1e-6 abs         | 0.05 abs      | maps are stored as float32 (6e-8 rounding); float64        |
|                              |                  |               | measured max 3e-8 over all 15 pairs; float32 single pixels |
|                              |                  |               | move most where P is mid-range: measured max 0.011 on the  |
|                              |                  |               | pairs below, 0.046 over all 15 (r05 clip)                  |
| stage statistics and probes  | 1e-8 rel to the stage's magnitude (float64 only) | float64 rounding through FFTs and |
|                              |                  |               | the 2048-entry look-up tables                              |
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from hdrbench.metrics.hdrvdp2 import hdrvdp2, pix_per_deg
from hdrbench.metrics.hdrvdp2 import csf as csf_mod
from hdrbench.metrics.hdrvdp2 import optics as optics_mod
from hdrbench.metrics.hdrvdp2 import photoreceptors
from hdrbench.metrics.hdrvdp2.resize import imresize

TOL = {
    torch.float64: {"Q": 1e-5, "P": 1e-6, "C_rel": 1e-6, "P_map": 1e-6},
    torch.float32: {"Q": 0.01, "P": 0.02, "C_rel": 3e-2, "P_map": 0.05},
}
STAGE_RTOL = 1e-8

pytestmark = pytest.mark.data


def _dir(shared_data):
    return shared_data / "hdrvdp2"


def _manifest(shared_data) -> dict:
    return {m["file"]: m for m in json.loads((_dir(shared_data) / "fixtures" / "manifest.json").read_text())["images"]}


def _load(shared_data, name: str, dtype=torch.float64) -> torch.Tensor:
    m = _manifest(shared_data)[name]
    a = np.fromfile(_dir(shared_data) / "fixtures" / name, dtype="<f4").reshape(m["height"], m["width"], 3)
    return torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None].to(dtype)


def _rows(shared_data) -> list[dict]:
    with open(_dir(shared_data) / "reference_scores.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _score_all(shared_data, dtype):
    """Run every CSV row (pairs of one size at one ppd are batched) and return (row, result index, result)."""
    groups: dict = {}
    for row in _rows(shared_data):
        groups.setdefault((row["ref_file"], row["ppd"]), []).append(row)
    out = []
    for (ref_name, ppd), rows in groups.items():
        ref = _load(shared_data, ref_name, dtype)
        tests = torch.cat([_load(shared_data, r["test_file"], dtype) for r in rows])
        res = hdrvdp2(tests, ref.expand_as(tests), color_encoding="rgb-bt.709", ppd=float(ppd))
        out += [(r, i, res) for i, r in enumerate(rows)]
    return out


def _check_rows(results, dtype):
    tol = TOL[dtype]
    worst = 0.0
    assert len(results) == 30
    for row, i, res in results:
        tag = f"{row['test_file']} @ {row['ppd_convention']} ppd"
        dq = abs(float(res.Q[i]) - float(row["Q"]))
        worst = max(worst, dq)
        assert dq <= tol["Q"], f"{tag}: Q {float(res.Q[i]):.6f} vs {row['Q']}"
        assert abs(float(res.P_det[i]) - float(row["P_det"])) <= tol["P"], tag
        assert abs(float(res.P_map[i].double().mean()) - float(row["P_map_mean"])) <= tol["P"], tag
        c_ref = float(row["C_max"])
        assert abs(float(res.C_max[i]) - c_ref) <= tol["C_rel"] * max(abs(c_ref), 1e-3), tag
    return worst


# All 30 rows, pairs of one size and ppd batched: ~2 s of CPU time in float64 and ~1 s in float32 on one core
# (measured), so these are not marked slow.
@pytest.mark.calibration
def test_reference_scores_float64(shared_data):
    _check_rows(_score_all(shared_data, torch.float64), torch.float64)


@pytest.mark.calibration
def test_reference_scores_float32(shared_data):
    _check_rows(_score_all(shared_data, torch.float32), torch.float32)


def test_ppd_convention_of_the_csv(shared_data):
    # The CSV's second ppd is hdrvdp_pix_per_deg(21 inch, [w h], 1 m); our helper must give the same numbers.
    for row in _rows(shared_data):
        if row["ppd_convention"] == "display_21in_1m":
            ppd = pix_per_deg(21, (int(row["width"]), int(row["height"])), 1.0)
            assert ppd == pytest.approx(float(row["ppd"]), rel=1e-9)


@pytest.mark.parametrize("pair", ["r01_ramp_64x64__quant", "r02_grating_96x128__exposure", "r05_odd_199x257__noise"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pmap_30ppd(shared_data, pair, dtype):
    ref_name = pair.split("__")[0] + ".f32"
    m = _manifest(shared_data)[ref_name]
    expected = np.fromfile(_dir(shared_data) / "pmaps" / f"{pair}__Pmap_ppd30.f32", dtype="<f4").reshape(m["height"], m["width"])
    res = hdrvdp2(_load(shared_data, pair + ".f32", dtype), _load(shared_data, ref_name, dtype), color_encoding="rgb-bt.709", ppd=30)
    diff = np.abs(res.P_map[0].double().numpy() - expected)
    assert diff.max() <= TOL[dtype]["P_map"], f"{pair}: max |dP_map| {diff.max():.3g}"


# ----------------------------------------------------------------------------- per-stage values


def _debug(shared_data, tag):
    return json.loads((_dir(shared_data) / f"debug_{tag}.json").read_text())


def _check_stats(name, arr, st, scale=None):
    """Compare a (H, W) array with the reference's statistics and probe pixels."""
    a = np.asarray(arr, dtype=np.float64)
    assert list(a.shape) == st["shape"], f"{name}: shape {a.shape} vs {st['shape']}"
    mag = scale if scale is not None else max(abs(st["min"]), abs(st["max"]), 1e-300)
    atol = STAGE_RTOL * mag
    for key, val in (("mean", a.mean()), ("std", a.std()), ("min", a.min()), ("max", a.max())):
        assert abs(val - st[key]) <= atol, f"{name}.{key}: {val!r} vs {st[key]!r}"
    assert abs(a.sum() - st["sum"]) <= atol * a.size, f"{name}.sum"
    for r, c, v in st.get("probes_rc0_value", []):
        assert abs(a[r, c] - v) <= atol, f"{name}[{r},{c}]: {a[r, c]!r} vs {v!r}"


@pytest.fixture(scope="module", params=["r01_noise_30ppd", "r05_noise_30ppd"])
def staged(request, shared_data):
    tag = request.param
    dbg = _debug(shared_data, tag)
    stem = {"r01_noise_30ppd": "r01_ramp_64x64", "r05_noise_30ppd": "r05_odd_199x257"}[tag]
    test = _load(shared_data, stem + "__noise.f32")
    ref = _load(shared_data, stem + ".f32")
    res = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=dbg["ppd"], return_stages=True)
    return dbg, res


def test_stage_optics_receptors_adaptation(staged):
    dbg, res = staged
    s = res.stages
    for idx, who in ((0, "test"), (1, "reference")):
        d = dbg[who]
        for c, ch in enumerate("RGB"):
            _check_stats(f"{who}.L_O.{ch}", s["L_O"][idx, c], d["L_O_after_optics"][ch])
        for k, ch in enumerate(("L", "M", "S", "Rod")):
            _check_stats(f"{who}.R_LMSR.{ch}", s["R_LMSR"][idx, k], d["R_LMSR"][ch])
        _check_stats(f"{who}.L_adapt", s["L_adapt"][idx, 0], d["L_adapt_RL_plus_RM"])
    l_avg = 0.5 * (s["L_adapt"][0, 0] + s["L_adapt"][1, 0])
    _check_stats("L_adapt_avg", l_avg, dbg["L_adapt_avg_of_test_and_ref"])
    _check_stats("log_La", s["log_La"][0, 0], dbg["log_La"])


def test_stage_transducer(staged):
    dbg, res = staged
    s = res.stages
    for idx, who in ((0, "test"), (1, "reference")):
        d = dbg[who]
        p3 = photoreceptors.transducer_responses(s["R_LMSR"][idx : idx + 1])[0]
        for k, key in enumerate(("P_L_cone", "P_M_cone", "P_rod")):
            _check_stats(f"{who}.{key}", p3[k], d["P_transduced_before_mean_removal"][key])
        p_c = p3[0] + p3[1]
        scale_c = max(abs(d["P_C_mean_removed"]["min"]), abs(d["P_C_mean_removed"]["max"]))
        _check_stats(f"{who}.P_C", p_c - p_c.mean(), d["P_C_mean_removed"], scale_c)
        _check_stats(f"{who}.P", s["P"][idx, 0], d["P_achromatic"])


def test_stage_pyramid_and_base_band(staged):
    dbg, res = staged
    s = res.stages
    for idx, who in ((0, "test"), (1, "reference")):
        d = dbg[who]
        flat = []
        for band in s["bands_raw"]:
            flat += [band[idx, o] for o in range(band.shape[1])]
        assert [list(b.shape) for b in flat] == d["pyramid_band_sizes_HxW"]
        for st in d["pyramid_bands_raw"]:
            _check_stats(f"{who}.band{st['index']}", flat[st["index"] - 1], st)
        _check_stats(f"{who}.BB_filtered", s["base_band_filtered"][idx, 0], d["base_band_after_csf_filter"])
        assert float(s["L_mean"][idx]) == pytest.approx(d["base_band_csf_filter_L_mean"], rel=1e-12)
        assert float(s["bb_padvalue"][0]) == pytest.approx(d["bb_padvalue_used"], rel=1e-10)
        h, w = s["base_band_filtered"].shape[-2:]
        rho = torch.from_numpy(optics_mod.cycdeg_image((2 * h, 2 * w), float(s["band_freq"][-1]) * 2 * np.sqrt(2)))
        kern = csf_mod.ncsf(rho, s["L_mean"][idx].reshape(1, 1))
        _check_stats(f"{who}.BB_kernel", kern, d["base_band_csf_filter_kernel"])
    np.testing.assert_allclose(s["band_freq"], dbg["band_freq"], rtol=1e-15)


def test_stage_csf_masking_and_band_contributions(staged):
    dbg, res = staged
    s = res.stages
    for b, pb in enumerate(dbg["per_band"]):
        assert pb["band_freq_cpd"] == pytest.approx(float(s["band_freq"][b]), rel=1e-15)
        size = tuple(s["D"][b].shape[-2:])
        # MATLAB's bicubic imresize (antialiased on shrink) of log10 L_a and of the difference mask.
        _check_stats(f"b{b + 1}.log_La_resized", imresize(s["log_La"], size)[0, 0].clamp(-5, 5), pb["log_La_resized"])
        if b < len(dbg["per_band"]) - 1:
            _check_stats(f"b{b + 1}.CSF", 1.0 / s["noise"][b][0, 0], pb["CSF_b"])
        dm = imresize(s["diff_mask"], size)[0, 0]
        _check_stats(f"b{b + 1}.diff_mask_resized", dm, pb["orientations"][0]["diff_mask_resized"])
        for od in pb["orientations"]:
            o = od["o"] - 1
            tag = f"b{b + 1}o{od['o']}"
            for key, stage in (("band_diff_T_minus_R", "band_diff"), ("ex_diff", "ex_diff"), ("self_mask", "self_mask"),
                               ("mask_xn", "mask_xn"), ("N_mask", "N_mask"), ("D", "D")):
                _check_stats(f"{tag}.{key}", s[stage][b][0, o], od[key])
            term = float(s["terms"][0, b, o])
            assert term == pytest.approx(od["contribution_w_f_times_log_term"], rel=1e-9, abs=1e-12), tag
    assert 100.0 - float(s["terms"][0].sum()) == pytest.approx(dbg["Q"], abs=1e-8)


def test_stage_detection_maps(staged):
    dbg, res = staged
    _check_stats("S_raw", res.stages["S_raw"][0], dbg["S_map_before_spatial_pooling"])
    _check_stats("C_map", res.C_map[0], dbg["S_map_after_spatial_pooling"])
    _check_stats("P_map", res.P_map[0], dbg["P_map"])
    assert float(res.P_det[0]) == pytest.approx(dbg["P_det"], abs=1e-9)
    assert float(res.C_max[0]) == pytest.approx(dbg["C_max"], rel=1e-9)


def test_stage_difference_mask(staged):
    dbg, res = staged
    assert float(res.stages["diff_mask"][0].mean()) == pytest.approx(dbg["diff_mask"]["fraction_true"], abs=1e-12)

"""HDR-VDP-2's linear-cost building blocks equal the plain forms they replace, and the stage profile covers the metric.

* banded ``imresize`` vs the dense ``A_rows @ x @ A_cols^T`` it replaces: float64, 1e-12 (only the order of
  additions of the same non-zero products differs);
* shared-FFT ``corr_dn_many`` (zero-bordered filters, 2-3-5 FFT sizes) vs one ``corr_dn`` per filter: 1e-12
  (FFT rounding in float64 for values of order 1);
* band-by-band masking releases the pyramid bands it has passed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrbench.metrics.hdrvdp2 import hdrvdp2, masking, native, profiling, pyramid
from hdrbench.metrics.hdrvdp2.resize import imresize, resize_matrix_np


@pytest.mark.parametrize("src, dst", [((1080, 1920), (540, 960)), ((135, 240), (270, 480)), ((70, 65), (33, 130))])
def test_banded_imresize_equals_dense_product(src, dst):
    x = torch.rand((2, 3) + src, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dense = torch.from_numpy(resize_matrix_np(src[0], dst[0])) @ x @ torch.from_numpy(resize_matrix_np(src[1], dst[1])).T
    torch.testing.assert_close(imresize(x, dst), dense, rtol=0, atol=1e-12)


def test_fast_fft_size():
    assert [pyramid.fast_fft_size(n) for n in (1, 7, 137, 1096, 556, 1936, 400)] == [1, 8, 144, 1125, 576, 1944, 400]


@pytest.mark.parametrize("size", [(1096 - 16, 57), (31, 40)])
def test_shared_fft_correlation_equals_separate(size):
    x = torch.rand((2, 1) + size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f = pyramid.filters(torch.float64, torch.device("cpu"))
    band, lo = pyramid.corr_dn_many(x, [(f["b_corr_17"], 1), (f["lo_corr"], 2)])
    torch.testing.assert_close(band, pyramid.corr_dn(x, f["b_corr"]), rtol=0, atol=1e-12)
    torch.testing.assert_close(lo, pyramid.corr_dn(x, f["lo_corr"], step=2), rtol=0, atol=1e-12)
    hi, lo0 = pyramid.corr_dn_many(x, [(f["hi0_corr"], 1), (f["lo0_corr_15"], 1)])
    torch.testing.assert_close(lo0, pyramid.corr_dn(x, f["lo0_corr"]), rtol=0, atol=1e-12)
    assert band.is_contiguous() and lo.is_contiguous()  # no view keeps the padded FFT canvas alive


def test_masking_releases_bands_it_has_passed():
    g = torch.Generator().manual_seed(2)
    bands = [torch.rand(2, o, s, s, generator=g, dtype=torch.float64) + 0.1 for o, s in ((1, 32), (4, 32), (4, 16), (1, 8))]
    seen = []
    for i, _ in masking.iter_visible_differences(bands, 1, lambda i: 1.0):
        seen.append(i)
        assert all(b is None for b in bands[: i + 1])  # this band and all before it are dropped
    assert seen == [0, 1, 2, 3]


def test_profile_records_every_stage_and_changes_nothing():
    g = torch.Generator().manual_seed(3)
    ref = torch.rand(1, 3, 48, 64, generator=g, dtype=torch.float64) * 100 + 1
    test = ref * (1 + 0.05 * torch.randn(ref.shape, generator=g, dtype=torch.float64))
    plain = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
    with profiling.record() as rec:
        timed = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
    assert set(rec) == {"optics", "photoreceptors", "pyramid", "csf", "masking", "pooling", "detection"}
    assert all(v["seconds"] >= 0 and v["peak_bytes"] >= 0 for v in rec.values())
    assert float(timed.Q[0]) == float(plain.Q[0])
    assert np.array_equal(timed.P_map.numpy(), plain.P_map.numpy())


def test_bench_reports_time_memory_and_ratio_per_size(tmp_path):
    import argparse
    import csv

    from hdrbench.bench import hdrvdp2 as bench

    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    out = tmp_path / "b.csv"
    args = p.parse_args(["--sizes", "64x48,96x64", "--repeat", "1", "--warmup", "0", "--no-float64", "--threads", "1",
                         "--out", str(out)])
    assert bench.main(args) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["size_wxh"] for r in rows] == ["64x48", "96x64"]
    assert float(rows[0]["time_per_pixel_vs_first_size"]) == 1.0
    for r in rows:
        assert float(r["wall_s_per_pair"]) > 0 and float(r["pixels_per_s"]) > 0
        assert float(r["peak_rss_increase_mb"]) > 0  # measured in a fresh subprocess (Linux VmHWM)
        assert r["speedup_vs_reference_wall"] == ""  # the reference's time is known for 512x384 only
        assert r["native_kernels"] == native.status()  # whether the float32 kernels ran is part of the row


def test_fft_floor_replays_the_metrics_transforms_and_restores_torch_fft(tmp_path, capsys):
    import argparse

    from hdrbench.bench import hdrvdp2 as bench

    originals = [getattr(torch.fft, name) for name in bench._FFT_FUNCTIONS]
    t, r = bench._pair(1, 40, 32, torch.float32, torch.device("cpu"))
    floor = bench.fft_floor(t, r, 30.0, 2)
    # At least the optics (6 planes: rfft, fft, ifft, irfft each) and the base-band CSF filter (4 calls) are replayed.
    assert floor["calls"] >= 6 * 4 + 4 and floor["wall_s"] > 0 and floor["cpu_s"] >= 0
    assert [getattr(torch.fft, name) for name in bench._FFT_FUNCTIONS] == originals  # nothing left patched
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    args = p.parse_args(["--sizes", "40x32", "--repeat", "1", "--warmup", "0", "--no-memory", "--no-float64",
                         "--fft-floor", "--out", str(tmp_path / "b.csv")])
    assert bench.main(args) == 0
    assert "FFT floor at 40x32: the " in capsys.readouterr().out

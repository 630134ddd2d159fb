"""Native CPU kernels of the synthesis layer: same values and gradients as the torch node and the generic
graph, for every weight, both dtypes, any thread split; the build, its cache and its fallback.

The nearest-lookup forward is a step function of x, so its centred-slope backward is not a derivative
that ``gradcheck`` could confirm; the gradient is checked instead against the generic autograd graph,
whose pieces are gradchecked in ``test_imaging_synthesis.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import pytest
import torch

from hdrbench.imaging.synthesis import merge_stack, native
from hdrbench.imaging.synthesis.fused import log_tables

Z = torch.linspace(0.0, 1.0, 256, dtype=torch.float64)
TABLES = torch.stack([torch.stack([Z**2.2, Z**2.0, Z**1.8]), torch.stack([Z**1.5, Z**2.4, Z**2.0])]) + 1e-3
TIMES = torch.tensor([0.25, 0.5, 1.0, 2.0], dtype=torch.float64)
WEIGHTS = ("deb97", "hat", "robertson", "box", "all")


@pytest.fixture()
def native_lib():
    """The compiled kernel library; skips where it cannot be built (fails under CI=true, which has g++)."""
    lib = native.library()
    if lib is None:
        msg = "the native synthesis kernel could not be built here (no C++ compiler?)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + "; CI must build it")
        pytest.skip(msg)
    return lib


def _stack(dtype=torch.float64, shape=(2, 4, 3, 6, 7), seed=0) -> torch.Tensor:
    """8-bit codes / 255 with every kind of fallback pixel: all saturated, all black, mid exposure at 0.5."""
    g = torch.Generator().manual_seed(seed)
    stack = torch.round(torch.rand(shape, generator=g, dtype=torch.float64) * 255) / 255
    stack[0, :, :, 0, :2] = 1.0  # total weight 0 (deb97): the shortest exposure's value
    stack[1, :, :, 1, :2] = 0.0  # total weight 0: the longest exposure's value
    stack[1, :, 1, 2, 3] = 0.0
    stack[1, 2, 1, 2, 3] = 0.5  # mid exposure (of 4, index 2) exactly 0.5 with weight 1: the merge stays
    return stack.to(dtype)


def _merge_and_grad(stack, upstream, **options):
    x = stack.clone().requires_grad_(True)
    hdr = merge_stack(x, TIMES.to(stack.dtype), inverse_crf=TABLES.to(stack.dtype), **options).hdr
    (hdr * upstream).sum().backward()
    return hdr.detach(), x.grad, hdr.grad_fn.name()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("weight", WEIGHTS)
def test_native_node_equals_the_torch_node_and_the_generic_graph(native_lib, weight, dtype):
    # Non-default bounds move the Deb97 and box edges; a non-contiguous stack, as from images.
    bounds = (0.05, 0.95) if weight in ("deb97", "box") else (0.0, 1.0)
    stack = _stack(dtype).permute(0, 1, 2, 4, 3).contiguous().permute(0, 1, 2, 4, 3)
    upstream = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    options = {"weight": weight, "weight_bounds": bounds}
    hdr_n, grad_n, node_n = _merge_and_grad(stack, upstream, **options)
    hdr_t, grad_t, node_t = _merge_and_grad(stack, upstream, backend="torch", **options)
    hdr_g, grad_g, _ = _merge_and_grad(stack, upstream, backend="generic", **options)
    assert "NativeTableLogMerge" in node_n and "Native" not in node_t
    # Same operations in the same order: equal but for the libm behind pow/exp in the hat and Robertson
    # weights (the kernel's std::pow/std::exp against torch's vectorised ones, each within about an ulp):
    # 1e-12 relative in float64; in float32 one ulp of the weight moves the result by up to ~1e-6.
    rtol = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(hdr_n, hdr_t, rtol=rtol, atol=0)
    torch.testing.assert_close(grad_n, grad_t, rtol=rtol, atol=rtol * float(grad_t.abs().max()))
    if dtype == torch.float64:
        torch.testing.assert_close(hdr_n, hdr_g, rtol=1e-12, atol=0)
        torch.testing.assert_close(grad_n, grad_g, rtol=1e-12, atol=1e-15)
    # The fallback pixels came through: saturated -> shortest exposure, black -> longest, mid 0.5 -> merge.
    table = TABLES.to(dtype)
    if weight == "deb97" and bounds == (0.05, 0.95):
        torch.testing.assert_close(hdr_n[0, :, 0, 0], table[0, :, 255] / 0.25)
        torch.testing.assert_close(hdr_n[1, :, 1, 0], table[1, :, 0] / 2.0)
        assert grad_n[0, 0, :, 0, 0].abs().sum() > 0 and grad_n[0, 1:, :, 0, 0].abs().sum() == 0
    assert grad_n.abs().sum() > 0


def test_gradient_of_a_sum_equals_the_gradient_of_an_explicit_upstream(native_lib):
    # hdr.sum() hands the node an expanded scalar gradient, which the kernel reads as one value.
    stack = _stack()
    a = stack.clone().requires_grad_(True)
    merge_stack(a, TIMES, inverse_crf=TABLES).hdr.sum().backward()
    _, grad_full, _ = _merge_and_grad(stack, torch.ones(2, 3, 6, 7, dtype=torch.float64))
    assert torch.equal(a.grad, grad_full)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_any_thread_split_gives_identical_results(native_lib, monkeypatch, threads):
    # Ranges of a split start mid-plane (7 does not divide 2 * 3 * 40 * 41); every range finds its own
    # low-weight pixels, and their concatenation must be the one-thread list.
    stack = _stack(torch.float32, shape=(2, 5, 3, 40, 41))
    log_table, slope_tab = log_tables(TABLES.float(), 1e-7, 0.0)
    log_times = torch.log(torch.tensor([0.25, 0.5, 1.0, 2.0, 4.0])).expand(2, 5)
    upstream = torch.rand(2, 3, 40, 41, generator=torch.Generator().manual_seed(2))
    results = {}
    for t in (1, threads):
        monkeypatch.setattr(native, "_threads", lambda x, t=t: t)
        log_mean, low = native.log_merge_forward(stack, log_table, log_times, "deb97", (0.0, 1.0), 1e-4)
        grad = native.log_merge_backward(stack, slope_tab, upstream, log_mean.exp(), "deb97", (0.0, 1.0))
        results[t] = (log_mean, low, grad)
    for a, b in zip(results[1], results[threads]):
        assert torch.equal(a, b)
    low = results[1][1]
    assert low.numel() >= 12 and torch.all(low[1:] > low[:-1])  # 2 scenes x 3 channels x 2 pixels set above
    # The list is exactly the pixels whose total weight is at or below the threshold.
    from hdrbench.imaging.synthesis.weights import weight_function

    total = weight_function(stack, "deb97").sum(1)
    assert torch.equal(low, (total.reshape(-1) <= 1e-4).nonzero().squeeze(1))


def test_torch_node_is_used_where_the_kernels_do_not_apply(native_lib):
    stack = _stack().requires_grad_(True)
    for options in ({"mean_weight": True}, {"backend": "torch"}, {"weight": "hat", "mean_weight": True}):
        hdr = merge_stack(stack, TIMES, inverse_crf=TABLES, **options).hdr
        assert "Native" not in hdr.grad_fn.name(), options


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_stacks_take_the_torch_node_with_the_generic_graphs_codes(dtype):
    # Autocast can hand the layer a half-precision stack. Such dtypes cannot hold the (scene, channel) table
    # offsets (bfloat16 spaces integers above 512 by 4), so the node adds them as integers: its values must
    # be the generic graph's, computed in the same dtype, exactly.
    stack = _stack().to(dtype)
    fused = merge_stack(stack, TIMES, inverse_crf=TABLES).hdr
    generic = merge_stack(stack, TIMES, inverse_crf=TABLES, backend="generic").hdr
    assert fused.dtype == dtype and torch.equal(fused, generic)


def test_unknown_weight_code_is_refused_by_the_kernel(native_lib):
    x = torch.full((1, 2, 1, 1, 4), 0.5)
    out, low, counts = torch.empty(4), torch.empty(4, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)
    table, lt = torch.zeros(256), torch.zeros(2)
    status = native_lib.hdrbench_log_merge_forward_f32(x.data_ptr(), 1, 2, 1, 4, table.data_ptr(), lt.data_ptr(), 99,
                                                       0.0, 1.0, 1e-4, 1, out.data_ptr(), low.data_ptr(),
                                                       counts.data_ptr())
    assert status == -1


def test_failed_build_warns_once_and_the_layer_still_merges(monkeypatch, tmp_path):
    monkeypatch.setattr(native._LIBRARY, "state", {})
    monkeypatch.setenv("HDRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    stack = _stack()
    with pytest.warns(RuntimeWarning, match="native synthesis kernel unavailable.*no-such-compiler"):
        hdr = merge_stack(stack, TIMES, inverse_crf=TABLES).hdr
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call does not warn again
        again = merge_stack(stack, TIMES, inverse_crf=TABLES).hdr
    assert torch.equal(hdr, again)
    torch.testing.assert_close(hdr, merge_stack(stack, TIMES, inverse_crf=TABLES, backend="generic").hdr, rtol=1e-12, atol=0)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_environment_switch_turns_the_kernels_off(monkeypatch):
    monkeypatch.setattr(native._LIBRARY, "state", {})
    monkeypatch.setenv("HDRBENCH_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.library() is None
        hdr = merge_stack(_stack().requires_grad_(True), TIMES, inverse_crf=TABLES).hdr
    assert "Native" not in hdr.grad_fn.name()


def test_build_is_cached_per_source_flags_and_cpu(native_lib, tmp_path):
    flags = native.FLAGS + native.VARIANTS[-1]  # the plainest variant compiles fastest
    first = native.build(flags, out_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert native.build(flags, out_dir=tmp_path) == first and first.stat().st_mtime_ns == stamp
    other = native.build(flags + ("-DHDRBENCH_TEST_VARIANT",), out_dir=tmp_path)
    assert other != first and other.exists()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [first.suffix] * 2  # no temporary left behind
    lib = native._load(other)
    assert lib.hdrbench_log_merge_abi() == native.ABI


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="needs a C compiler")
def test_a_library_of_another_interface_is_refused(tmp_path):
    src = tmp_path / "old.c"
    src.write_text("int hdrbench_log_merge_abi(void) { return 999; }\n")
    lib = tmp_path / "old.so"
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    with pytest.raises(native.NativeBuildError, match="interface 999"):
        native._load(lib)

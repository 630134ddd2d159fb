"""VDS reader on fake trees: both public layouts and every error path (missing EV, missing HDR, corrupt file,
mismatched sizes, empty split). Images are written with OpenCV and read back with OpenCV as the reference."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hdrbench.data import get_dataset
from hdrbench.errors import DatasetError, InputError


EVS = range(-3, 4)
H, W = 20, 24


def _ldr(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _hdr(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 50 + 0.01).astype(np.float32)


def _write_scene(ldr_dir: Path, hdr_dir: Path | None, scene: str, seed: int) -> None:
    (ldr_dir / scene).mkdir(parents=True, exist_ok=True)
    for i, ev in enumerate(EVS):
        assert cv2.imwrite(str(ldr_dir / scene / f"{scene}_{ev}EV_true.jpg.png"), _ldr(seed * 10 + i))
    if hdr_dir is not None:
        (hdr_dir / scene).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(hdr_dir / scene / "target_hdr.hdr"), _hdr(seed))


def make_layout_a(root: Path, scenes=("t01", "t02"), train=("a1",)) -> Path:
    for k, s in enumerate(scenes):
        _write_scene(root / "test_set", root / "test_hdr_set", s, k + 1)
    for k, s in enumerate(train):
        _write_scene(root / "train_set", root / "train_hdr_set", s, 100 + k)
    return root


def make_layout_b(root: Path, scenes=("t29", "t49"), with_hdr: bool = False) -> Path:
    for k, s in enumerate(scenes):
        _write_scene(root / "test" / "set", root / "test_hdr_set" if with_hdr else None, s, k + 1)
    (root / "train" / "set").mkdir(parents=True, exist_ok=True)
    return root


def _cv_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return img[..., ::-1].astype(np.float32)


def test_layout_a_reads_stack_and_hdr_exactly(tmp_path):
    root = make_layout_a(tmp_path / "vds")
    ds = get_dataset("vds", root=root, resolution="native")
    assert ds.scenes("test") == ["t01", "t02"] and ds.scenes("train") == ["a1"]
    s = ds.load("test", "t02")
    assert s.stack.shape == (7, 3, H, W) and s.stack.dtype == torch.float32
    assert s.evs == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    for i, ev in enumerate(EVS):
        ref = _cv_rgb(root / "test_set" / "t02" / f"t02_{ev}EV_true.jpg.png") / 255.0  # OpenCV as the oracle
        np.testing.assert_array_equal(s.stack[i].permute(1, 2, 0).numpy(), ref.astype(np.float32))
    ref_hdr = _cv_rgb(root / "test_hdr_set" / "t02" / "target_hdr.hdr")
    np.testing.assert_allclose(s.hdr.permute(1, 2, 0).numpy(), ref_hdr, rtol=1e-6)
    np.testing.assert_array_equal(s.input.numpy(), s.stack[3].numpy())
    assert ds.check() == []


def test_layout_b_without_and_with_hdr(tmp_path):
    root = make_layout_b(tmp_path / "cevr")
    ds = get_dataset("vds", root=root, resolution="native")
    assert ds.scenes("test") == ["t29", "t49"]
    s = ds.load("test", "t49")
    assert s.stack.shape == (7, 3, H, W) and s.hdr is None
    assert ds.check(split="test") == []
    # The train split exists but is empty: listed as a problem.
    assert any("empty split" in p for p in ds.check(split="train"))
    root2 = make_layout_b(tmp_path / "cevr2", with_hdr=True)
    s2 = get_dataset("vds", root=root2, resolution="native").load("test", "t29")
    np.testing.assert_allclose(s2.hdr.permute(1, 2, 0).numpy(), _cv_rgb(root2 / "test_hdr_set/t29/target_hdr.hdr"),
                               rtol=1e-6)


def test_resolution_policy_lanczos_matches_opencv(tmp_path):
    root = make_layout_a(tmp_path / "vds", scenes=("t01",), train=())
    ds = get_dataset("vds", root=root)  # card default: the paper's 256x256 Lanczos
    assert ds.resolution.policy == "256x256-lanczos"
    s = ds.load("test", "t01")
    assert s.stack.shape == (7, 3, 256, 256) and s.hdr.shape == (3, 256, 256)
    src = _cv_rgb(root / "test_set/t01/t01_0EV_true.jpg.png") / 255.0
    ref = np.round(np.clip(cv2.resize(src, (256, 256), interpolation=cv2.INTER_LANCZOS4), 0, 1) * 255) / 255
    # Identical up to one 8-bit level: float32 rounding at exact .5 boundaries may differ.
    assert np.abs(s.stack[3].permute(1, 2, 0).numpy() - ref).max() <= 1 / 255 + 1e-6
    assert (s.hdr >= 0).all()
    d = get_dataset("vds", root=root, resolution=64)
    assert d.resolution.policy == "64x64-lanczos" and d.load("test", "t01").stack.shape[-2:] == (64, 64)


def test_every_error_path_is_listed(tmp_path):
    root = make_layout_a(tmp_path / "vds", scenes=("s1", "s2", "s3", "s4", "s5"), train=())
    # missing EV
    (root / "test_set/s1/s1_2EV_true.jpg.png").unlink()
    # missing HDR
    (root / "test_hdr_set/s2/target_hdr.hdr").unlink()
    # corrupt (truncated) file
    p = root / "test_set/s3/s3_-1EV_true.jpg.png"
    p.write_bytes(p.read_bytes()[:40])
    # mismatched sizes
    assert cv2.imwrite(str(root / "test_set/s4/s4_3EV_true.jpg.png"), _ldr(7, H + 2, W))
    (root / "train_set").mkdir()  # empty split
    ds = get_dataset("vds", root=root, resolution="native")
    problems = ds.check()
    text = "\n".join(problems)
    assert "s1_2EV_true.jpg.png: missing" in text
    assert "s2/target_hdr.hdr: missing" in text
    assert "s3_-1EV_true.jpg.png: unreadable" in text
    assert "s4_3EV_true.jpg.png: size 22x24 differs" in text
    assert "split train: empty split" in text
    assert not any("/s5/" in p for p in problems)  # the intact scene has no problem
    assert len(problems) == 5
    with pytest.raises(DatasetError, match="missing exposure EV"):
        ds.load("test", "s1")
    with pytest.raises(DatasetError, match="missing ground-truth HDR"):
        ds.load("test", "s2")
    with pytest.raises(DatasetError, match="s4_3EV"):
        ds.load("test", "s4")


def test_missing_split_folder_and_root(tmp_path):
    root = make_layout_a(tmp_path / "vds", scenes=("s1",), train=())
    ds = get_dataset("vds", root=root)
    with pytest.raises(DatasetError, match="train_set"):
        ds.scenes("train")
    with pytest.raises(InputError, match="no split 'val'"):
        ds.scenes("val")
    with pytest.raises(InputError, match="needs a folder"):
        get_dataset("vds")
    missing = get_dataset("vds", root=tmp_path / "nope")
    assert missing.check() == [f"{tmp_path / 'nope'}: dataset root folder does not exist"]


def test_evaluation_refuses_a_broken_dataset_before_scoring(tmp_path):
    from hdrbench.evaluate.harness import evaluate

    root = make_layout_a(tmp_path / "vds", scenes=("s1", "s2"), train=())
    (root / "test_set/s2/s2_-3EV_true.jpg.png").unlink()
    with pytest.raises(DatasetError) as info:
        evaluate("ldr-linear", "vds", root=root, resolution="native", out=tmp_path / "runs")
    assert "s2_-3EV_true.jpg.png: missing" in str(info.value) and "expected layout" in str(info.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_layout_b_error_paths(tmp_path):
    root = make_layout_b(tmp_path / "cevr", scenes=("t29", "t49", "t92", "t03"), with_hdr=True)
    (root / "test/set/t29/t29_-2EV_true.jpg.png").unlink()  # missing EV
    (root / "test_hdr_set/t49/target_hdr.hdr").unlink()  # missing HDR (the HDR folders exist beside layout B)
    p = root / "test/set/t92/t92_0EV_true.jpg.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # corrupt: a PNG signature and nothing else
    assert cv2.imwrite(str(root / "test_hdr_set/t03/target_hdr.hdr"), _hdr(3, H, W + 4))  # HDR size differs
    ds = get_dataset("vds", root=root, resolution="native")
    problems = ds.check()
    text = "\n".join(problems)
    assert "set/t29/t29_-2EV_true.jpg.png: missing" in text
    assert "test_hdr_set/t49/target_hdr.hdr: missing" in text
    assert "t92_0EV_true.jpg.png: unreadable" in text
    assert "t03/target_hdr.hdr: size 20x28 differs" in text
    assert "split train: empty split" in text  # make_layout_b leaves train/set empty
    assert len(problems) == 5
    with pytest.raises(DatasetError, match="its LDR exposures are 20x24"):
        ds.load("test", "t03")

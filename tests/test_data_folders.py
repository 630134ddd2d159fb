"""``hdr-folder`` on the real HDR photographs, ``stack-folder`` and ``hdr-eye`` on small built trees."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hdrbench.data import get_dataset
from hdrbench.data.hdr_folder import hash_split
from hdrbench.errors import DatasetError


@pytest.mark.data
def test_hdr_folder_splits_and_determinism(shared_data):
    ds = get_dataset(f"hdr-folder:{shared_data / 'hdr'}", resolution=48)
    every = ds.scenes("all")
    assert len(every) == 29 and every == sorted(every)
    train, test = ds.scenes("train"), ds.scenes("test")
    assert set(train) | set(test) == set(every) and not set(train) & set(test)
    assert all((hashlib.sha256(s.encode()).digest()[0] < 52) == (s in test) for s in every)
    assert 2 <= len(test) <= 12  # about 20 % of 29 by the hash rule
    s1 = ds.load("all", "memorial")
    s2 = get_dataset(f"hdr-folder:{shared_data / 'hdr'}", resolution=48).load("all", "memorial")
    assert torch.equal(s1.stack, s2.stack) and torch.equal(s1.hdr, s2.hdr)  # deterministic per image
    assert s1.stack.shape == (7, 3, 48, 48) and s1.hdr.shape == (3, 48, 48)
    # HDR = OpenCV's Lanczos resize of OpenCV's read of the file (independent reader), negatives clamped.
    ref = cv2.imread(str(shared_data / "hdr" / "memorial.hdr"), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.float32)
    ref = np.maximum(cv2.resize(ref, (48, 48), interpolation=cv2.INTER_LANCZOS4), 0)
    np.testing.assert_allclose(s1.hdr.permute(1, 2, 0).numpy(), ref, rtol=1e-5, atol=1e-6)
    # Camera physics: more exposure never darkens a pixel; 8-bit levels; the stack brackets the scene.
    assert (s1.stack[1:] >= s1.stack[:-1] - 1e-6).all()
    np.testing.assert_allclose(s1.stack.numpy() * 255, np.round(s1.stack.numpy() * 255), atol=1e-4)
    assert s1.stack[0].mean() < s1.stack[3].mean() < s1.stack[6].mean()
    # A different seed draws different CRFs.
    s3 = get_dataset(f"hdr-folder:{shared_data / 'hdr'}", resolution=48, seed=1).load("all", "memorial")
    assert not torch.equal(s1.stack, s3.stack) and torch.equal(s1.hdr, s3.hdr)
    assert ds.check(split="all", scenes=["memorial", "city"]) == []


def test_hash_split_is_stable():
    # Fixed values (first sha256 bytes 218, 17, 77, 218, 23, 23): changing the rule would silently move images
    # between splits, which this test catches.
    stems = ("memorial", "city", "park", "studio", "bridge", "night")
    assert [hash_split(s) for s in stems] == ["train", "test", "train", "train", "test", "test"]


def test_hdr_folder_errors(tmp_path):
    (tmp_path / "a.hdr").write_bytes(b"#?RADIANCE\ngarbage")
    ds = get_dataset(f"hdr-folder:{tmp_path}", resolution=16)
    problems = ds.check(split="all")
    assert len(problems) == 1 and "a.hdr: unreadable" in problems[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert get_dataset(f"hdr-folder:{empty}").check(split="all") == ["split all: empty split: no scenes found"]


def _stack_scene(folder: Path, evs=(-1, 0, 1), size=(12, 10), hdr=True) -> None:
    folder.mkdir(parents=True)
    lines = []
    for i, ev in enumerate(evs):
        img = np.full((size[0], size[1], 3), 40 + 60 * i, np.uint8)
        cv2.imwrite(str(folder / f"img{i}.png"), img)
        lines.append(f"img{i}.png {ev}")
    (folder / "exposures.txt").write_text("# file ev\n" + "\n".join(lines) + "\n", encoding="utf-8")
    if hdr:
        cv2.imwrite(str(folder / "hdr.hdr"), np.full((size[0], size[1], 3), 2.0, np.float32))


def test_stack_folder(tmp_path):
    _stack_scene(tmp_path / "sceneA")
    _stack_scene(tmp_path / "sceneB", evs=(0, 2), hdr=False)
    ds = get_dataset(f"stack-folder:{tmp_path}")
    assert ds.scenes("test") == ["sceneA", "sceneB"]
    a = ds.load("test", "sceneA")
    assert a.evs == [-1.0, 0.0, 1.0] and a.stack.shape == (3, 3, 12, 10)
    np.testing.assert_allclose(a.input.numpy(), 100 / 255, atol=1e-7)
    np.testing.assert_allclose(a.hdr.numpy(), 2.0, rtol=1e-6)
    b = ds.load("test", "sceneB")
    assert b.evs == [0.0, 2.0] and b.hdr is None
    assert ds.check() == []
    (tmp_path / "sceneB" / "exposures.txt").write_text("img0.png 1\nimg1.png 2\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no EV 0 entry"):
        ds.load("test", "sceneB")
    (tmp_path / "sceneB" / "exposures.txt").write_text("img0.png\n", encoding="utf-8")
    assert any("expected '<file name> <EV>'" in p for p in ds.check())


def test_hdr_eye_simulated_and_ldr_modes(tmp_path):
    (tmp_path / "images" / "HDR").mkdir(parents=True)
    (tmp_path / "images" / "LDR").mkdir(parents=True)
    hdr = (np.random.default_rng(0).random((16, 20, 3)) * 10 + 0.05).astype(np.float32)
    cv2.imwrite(str(tmp_path / "images/HDR/C35_HDR.hdr"), hdr)
    cv2.imwrite(str(tmp_path / "images/LDR/C35_LDR.tif"), np.full((16, 20, 3), 128, np.uint8))
    sim = get_dataset("hdr-eye", root=tmp_path, resolution="native")
    assert sim.scenes("test") == ["C35"]
    s = sim.load("test", "C35")
    assert s.stack.shape == (7, 3, 16, 20) and s.hdr.shape == (3, 16, 20)
    ldr = get_dataset("hdr-eye", root=tmp_path, resolution="native", mode="ldr")
    s2 = ldr.load("test", "C35")
    assert s2.stack is None and s2.evs == [0.0]
    np.testing.assert_allclose(s2.input.numpy(), 128 / 255, atol=1e-7)
    assert ldr.check() == []
    (tmp_path / "images/LDR/C35_LDR.tif").unlink()
    assert any("C35_LDR.tif: missing" in p for p in ldr.check())

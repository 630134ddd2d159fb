"""The embedded ``photos`` dataset: card, fixed split, licence manifest against the files, determinism, and
the checks that keep its content frozen."""

from __future__ import annotations

import csv
import hashlib
import shutil

import numpy as np
import pytest
import torch

from hdrbench.data import get_dataset, load_card
from hdrbench.data import photos as photos_mod
from hdrbench.errors import DatasetError, InputError

FOLDER = photos_mod.photos_dir()
#: Licences the embedded set may carry (redistribution allowed): the only two its card declares.
ALLOWED = {"CC0-1.0": "pmndrs-assets_LICENSE_CC0.txt", "BSD-3-Clause": "openexr-images_LICENSE.txt"}


def _manifest() -> list[dict[str, str]]:
    with open(FOLDER / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_card_fixes_a_disjoint_split_covering_every_photograph_and_a_view_per_test_image():
    card = load_card("photos")
    split = card.section("split")
    test, train = split["test"], split["train"]
    assert len(test) == 8 and len(train) == 18
    assert not set(test) & set(train)
    assert sorted(test + train) == sorted(r["file"][:-4] for r in _manifest())
    rows = {r["file"][:-4]: r for r in _manifest()}
    views = card.section("test_views")
    assert sorted(views) == sorted(test)
    for stem, (top, left) in views.items():
        h, w = int(rows[stem]["height"]), int(rows[stem]["width"])
        assert 0 <= top and top + 256 <= h and 0 <= left and left + 256 <= w, stem
    assert card.raw["version"] and card.needs_root is False


def test_manifest_matches_the_committed_files_and_their_licences():
    rows = _manifest()
    assert len(rows) == 26
    files = sorted(p.name for p in FOLDER.glob("*.hdr"))
    assert files == sorted(r["file"] for r in rows)  # no file without a manifest row, and the reverse
    total = 0
    for r in rows:
        data = (FOLDER / r["file"]).read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == r["sha256"], r["file"]
        assert len(data) == int(r["bytes"]), r["file"]
        assert ALLOWED[r["licence"]] == r["licence_file"].split("/")[-1], r["file"]
        assert (FOLDER / r["licence_file"]).is_file(), r["licence_file"]
        assert len(r["source_sha256"]) == 64
        assert min(int(r["width"]), int(r["height"])) == 256 and max(int(r["width"]), int(r["height"])) <= 512
    # The whole folder (images, licences, manifest, README) stays under 10 MB.
    assert sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file()) < 10_000_000
    assert total > 5_000_000  # and it holds the photographs, not placeholders


@pytest.mark.data
def test_manifest_sources_are_the_shared_photographs(shared_data):
    for r in _manifest():
        src = shared_data / "hdr" / r["source_file"]
        assert hashlib.sha256(src.read_bytes()).hexdigest() == r["source_sha256"], r["source_file"]


def test_scenes_have_the_documented_shapes_and_8_bit_stacks():
    ds = get_dataset("photos")
    assert ds.resolution.policy == "256x256-lanczos"
    assert len(ds.scenes("train")) == 18 * 8 and ds.scenes("test")[0] == "LuminanceChroma_MtTamNorth"
    for split, name in (("test", "bridge"), ("train", "city_c03")):
        s = ds.load(split, name)
        assert s.stack.shape == (7, 3, 256, 256) and s.hdr.shape == (3, 256, 256) and s.evs == list(range(-3, 4))
        codes = s.stack.double() * 255
        # float32 code / 255 carries ~1e-5 of rounding; anything larger is not an 8-bit level.
        assert float((codes - codes.round()).abs().max()) < 1e-3
        assert float(s.hdr.min()) >= 0 and s.meta["crf_table"].shape[-1] == 1024


def test_the_test_view_is_an_exact_crop_of_the_stored_photograph():
    ds = get_dataset("photos")
    s = ds.load("test", "ScanLines_Desk")
    top, left = load_card("photos").section("test_views")["ScanLines_Desk"]
    img = ds.photograph("ScanLines_Desk")
    assert np.array_equal(s.hdr.numpy().transpose(1, 2, 0), img[top:top + 256, left:left + 256])


def test_scenes_are_deterministic_per_seed_and_independent_of_read_order():
    a = get_dataset("photos")
    first = a.load("train", "park_c05")
    a.load("test", "forest")
    again = a.load("train", "park_c05")
    other_object = get_dataset("photos").load("train", "park_c05")
    for s in (again, other_object):
        assert torch.equal(first.stack, s.stack) and torch.equal(first.hdr, s.hdr)
    reseeded = get_dataset("photos", seed=1).load("train", "park_c05")
    assert not torch.equal(first.stack, reseeded.stack)
    # Crops differ within an image: the training scenes are random crops, not copies.
    assert get_dataset("photos").load("train", "park_c06").meta["crop"] != first.meta["crop"]


def test_training_copy_simulates_at_the_recipe_resolution():
    ds = get_dataset("photos")
    small = ds.for_training((64, 64))
    s = small.load("train", "city_c00")
    assert s.stack.shape == (7, 3, 64, 64) and ds.resolution.policy == "256x256-lanczos"
    # The copy draws its own crops (their size depends on the output size), deterministically too.
    assert torch.equal(s.stack, ds.for_training((64, 64)).load("train", "city_c00").stack)
    assert ds.for_training(None) is ds


def test_a_changed_photograph_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "photos"
    shutil.copytree(FOLDER, copy)
    target = copy / "bridge.hdr"
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setattr(photos_mod, "photos_dir", lambda: copy)
    ds = get_dataset("photos")
    with pytest.raises(DatasetError, match="bridge.hdr.*sha256"):
        ds.load("test", "bridge")


def test_bad_names_and_options_are_clear_errors():
    ds = get_dataset("photos")
    with pytest.raises(DatasetError, match="no scene 'nope'"):
        ds.load("test", "nope")
    with pytest.raises(DatasetError, match="<image>_cNN"):
        ds.load("train", "city_c99")
    with pytest.raises(InputError, match="crops_per_image"):
        get_dataset("photos", crops_per_image=0)
    with pytest.raises(InputError, match="takes no"):
        get_dataset("photos:/tmp")


def test_datasets_list_shows_photos_with_its_licence(capsys):
    from hdrbench.cli import main

    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("photos "):]
    assert "licence: CC0-1.0" in block.splitlines()[2] and "BSD-3-Clause" in block.splitlines()[2]

"""Dataset cards, name resolution and the resolution policy."""

from __future__ import annotations

import pytest

from hdrbench.data import get_dataset, list_datasets, load_card, parse_resolution
from hdrbench.data.base import Resolution, dataset_slug
from hdrbench.data.cards import REQUIRED_KEYS, parse_card
from hdrbench.errors import DatasetError, InputError, UnknownNameError

CARDS = ("hdr-eye", "hdr-folder", "photos", "stack-folder", "synthetic", "vds")


def test_every_card_loads_with_provenance():
    assert list_datasets() == list(CARDS)
    for name in CARDS:
        card = load_card(name)
        assert card.name == name and card.loader.startswith("hdrbench.data.")
        assert card.evs == (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
        assert card.licence and card.citation and card.obtain and card.layout
        parse_resolution(card.default_resolution)  # every default is a valid policy
    assert load_card("vds").default_resolution == "256x256-lanczos"
    assert "[unverified]" in str(load_card("hdr-eye").raw) and "unverified" in load_card("vds").raw


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean 'synthetic'"):
        get_dataset("synthtic")
    with pytest.raises(UnknownNameError, match="did you mean 'hdr-folder'"):
        get_dataset("hdr-foldr:/tmp")
    with pytest.raises(InputError, match="takes no folder"):
        get_dataset("synthetic:/tmp")


def test_bad_card_files(tmp_path):
    (tmp_path / "x.toml").write_text("name = [", encoding="utf-8")
    with pytest.raises(DatasetError, match="not valid TOML"):
        parse_card(tmp_path / "x.toml")
    (tmp_path / "y.toml").write_text('name = "y"\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="lacks the key"):
        parse_card(tmp_path / "y.toml")
    assert "loader" in REQUIRED_KEYS


@pytest.mark.parametrize("value, expected", [
    (None, "native"), ("native", "native"), ("256", "256x256-lanczos"), ("256x192", "256x192-lanczos"),
    ("64x64-lanczos", "64x64-lanczos"), (96, "96x96-lanczos"), ((32, 48), "32x48-lanczos"),
])
def test_resolution_parsing(value, expected):
    assert parse_resolution(value).policy == expected


@pytest.mark.parametrize("bad", ["big", "0", "64x", (1, 2, 3), "-5"])
def test_resolution_rejects_bad_values(bad):
    with pytest.raises(InputError):
        parse_resolution(bad)


def test_rendered_policy_and_slugs(tmp_path):
    assert Resolution((8, 8), how="rendered").policy == "8x8-rendered"
    a = dataset_slug(f"hdr-folder:{tmp_path}/hdr")
    assert a.startswith("hdr-folder-hdr-") and "/" not in a
    assert a != dataset_slug(f"hdr-folder:{tmp_path}/other/hdr")  # same folder name, different path
    assert dataset_slug("synthetic") == "synthetic"

"""Recipe loading: every shipped recipe with every preset, extends/presets merging, errors, hashes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hdrbench.errors import InputError, UnknownNameError
from hdrbench.paths import recipes_dir
from hdrbench.train import recipes as rmod
from hdrbench.train.recipes import deep_merge, describe, list_recipes, load_recipe


def _shipped() -> list[tuple[str, str | None]]:
    cases = []
    for path in sorted(recipes_dir().glob("*.toml")):
        if path.stem.startswith("_"):
            continue
        with open(path, "rb") as fh:
            presets = sorted(tomllib.load(fh).get("presets", {}))
        cases += [(path.stem, None)] + [(path.stem, p) for p in presets]
    return cases


SHIPPED = _shipped()


@pytest.mark.skipif(not SHIPPED, reason="no recipes in methods/ yet")
@pytest.mark.parametrize("name,preset", SHIPPED or [("none", None)])
def test_every_shipped_recipe_loads_with_every_preset(name, preset):
    r = load_recipe(name, preset=preset)
    assert r.name == name
    assert r["arch"] and r["task"]
    if preset is not None:
        assert r.preset == preset
        assert preset in r.presets
    assert len(r.hash) == 12
    # Extended recipes: every preset of this recipe is also found through the chain.
    assert set(r.presets) >= ({preset} if preset else set())


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """
name = "base"
description = "a base recipe"
arch = "netA"
task = "taskA"
default_preset = "cpu"
[card]
paper = "someone 2021"
[model]
width = 32
recurrent = true
[loss]
hist_weight = 0.01
[schedule]
iters = 100
batch_size = 4
[data]
crop = 64
flip = true
[presets.cpu.model]
width = 8
[presets.cpu.schedule]
iters = 10
[presets.paper.schedule]
iters = 80000
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(rmod, "recipes_dir", lambda: tmp_path)
    _write(tmp_path, "base", BASE)
    return tmp_path


def test_presets_deep_merge_and_default(folder):
    r = load_recipe("base")  # default_preset = cpu
    assert r.preset == "cpu"
    assert r["model"] == {"width": 8, "recurrent": True}  # merged key by key, not replaced
    assert r["schedule"] == {"iters": 10, "batch_size": 4}
    assert "presets" not in r and r.presets == ["cpu", "paper"]
    p = load_recipe("base", preset="paper")
    assert p["model"]["width"] == 32 and p["schedule"]["iters"] == 80000


def test_extends_deep_merges_and_child_presets_override(folder):
    _write(folder, "child", """
name = "child"
extends = "base"
[model]
recurrent = false
[presets.cpu.schedule]
batch_size = 1
""")
    r = load_recipe("child")
    assert r.name == "child" and r["arch"] == "netA"
    assert r["model"] == {"width": 8, "recurrent": False}
    assert r["schedule"] == {"iters": 10, "batch_size": 1}  # parent preset + child preset
    assert r["card"] == {"paper": "someone 2021"}
    assert "description" not in r  # a description belongs to the file that writes it
    assert "extends" not in r
    grandchild = _write(folder, "gc", 'name = "gc"\nextends = "child"\n[loss]\nhist_weight = 0.0\n')
    g = load_recipe(grandchild, preset="paper")
    assert g["loss"]["hist_weight"] == 0.0 and g["model"]["recurrent"] is False and g["schedule"]["iters"] == 80000


def test_overrides_dotted_and_nested(folder):
    r = load_recipe("base", overrides={"schedule.iters": 3, "model": {"width": 4}})
    assert r["schedule"] == {"iters": 3, "batch_size": 4}
    assert r["model"] == {"width": 4, "recurrent": True}


def test_hash_tracks_training_keys_only(folder):
    a = load_recipe("base")
    assert a.hash == load_recipe("base").hash
    assert a.hash != load_recipe("base", overrides={"schedule.iters": 11}).hash
    assert a.hash != load_recipe("base", preset="paper").hash
    # description and card document the recipe; editing them keeps trained checkpoints valid
    text = BASE.replace("a base recipe", "reworded").replace("someone 2021", "someone else")
    _write(folder, "base", text)
    assert load_recipe("base").hash == a.hash


def test_unknown_recipe_and_preset_say_did_you_mean(folder):
    with pytest.raises(UnknownNameError, match="did you mean 'base'"):
        load_recipe("bsae")
    with pytest.raises(UnknownNameError, match="did you mean 'paper'"):
        load_recipe("base", preset="papr")
    with pytest.raises(InputError, match="not found"):
        load_recipe(folder / "missing.toml")


@pytest.mark.parametrize(
    "text,match",
    [
        ('name = "bad"\narch = "a"\ntask = "t"\nachr = 1\n', r"unknown key 'achr'.*did you mean 'arch'"),
        ('name = "bad"\narch = "a"\ntask = "t"\n[schedule]\niter = 5\n', r"schedule\.'iter'.*did you mean 'iters'"),
        ('name = "bad"\narch = "a"\ntask = "t"\n[schedule]\niters = "5"\n', r"schedule\.iters must be int"),
        ('name = "bad"\narch = "a"\ntask = "t"\n[schedule]\niters = 0\n', r"schedule\.iters must be positive"),
        ('name = "bad"\narch = "a"\ntask = "t"\n[data]\nflip = 1\n', r"data\.flip must be bool"),
        ('name = "bad"\narch = "a"\ntask = "t"\n[data]\nscale_aug = [2, 1]\n', r"data\.scale_aug"),
        ('name = "other"\narch = "a"\ntask = "t"\n', r"must equal the file stem 'bad'"),
        ('name = "bad"\ntask = "t"\n', r"missing required key 'arch'"),
        ('name = "bad"\narch = "a"\ntask = "t"\nmodel = 3\n', r"\[model\] must be a table"),
        ('name = "bad"\narch = "a"\ntask = "t"\n[presets.cpu.card]\nx = 1\n', r"presets\.cpu\.'card'"),
        ('name = "bad"\narch = "a"\ntask = "t"\n[model\n', r"invalid TOML"),
        ('name = "bad"\nextends = "bad"\narch = "a"\ntask = "t"\n', r"cycle"),
        ('name = "bad"\nextends = "nosuch"\narch = "a"\ntask = "t"\n', r"extends = 'nosuch'"),
    ],
)
def test_bad_recipes_name_the_key_and_the_file(folder, text, match):
    path = _write(folder, "bad", text)
    with pytest.raises(InputError, match=match) as info:
        load_recipe(path)
    assert str(path.name) in str(info.value)


def test_list_recipes_skips_private_files(folder):
    _write(folder, "_private", BASE.replace('"base"', '"_private"'))
    assert list_recipes() == ["base"]


def test_deep_merge_does_not_alias_inputs():
    base = {"a": {"b": [1, 2]}}
    out = deep_merge(base, {"a": {"c": 1}})
    out["a"]["b"].append(3)
    assert base == {"a": {"b": [1, 2]}}


def test_describe_counts_parameters_per_network(folder, monkeypatch):
    # A registered two-network arch; the counts are checked against a plain CPU build.
    import torch
    from hdrbench.models import registry as mreg

    class Pair(torch.nn.Module):
        kind = "stack"

        def __init__(self, width: int = 4, recurrent: bool = True) -> None:
            super().__init__()
            self.up = torch.nn.Conv2d(3, width, 3)
            self.down = torch.nn.Conv2d(3, width, 1)

    if "test-pair" not in mreg.ARCHS:
        mreg.ARCHS.register("test-pair", Pair)
    _write(folder, "pair", BASE.replace('"base"', '"pair"').replace('"netA"', '"test-pair"'))
    text = describe("pair")
    for preset, width in (("cpu", 8), ("paper", 32)):
        ref = Pair(width)
        up = sum(p.numel() for p in ref.up.parameters())
        total = sum(p.numel() for p in ref.parameters())
        assert f"parameters [{preset}]" in text
        line = next(x for x in text.splitlines() if f"parameters [{preset}]" in x)
        assert f"total {total / 1e6:.3f} M" in line and f"up {up / 1e6:.3f} M" in line
    assert "paper: someone 2021" in text and "presets: cpu, paper (default cpu)" in text

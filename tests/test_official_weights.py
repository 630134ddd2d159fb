"""Official DiffHDRsyn checkpoints for the proposed model: key layout, file lookup, every loading error, and the
official-mode Canny edges against the fixture made by the official loader."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch

from hdrbench.errors import ImageReadError, InputError
from hdrbench.models import build_arch
from hdrbench.models.proposed.official import SUFFIXES, official_keys, resolve_official_weights

FIXTURE = "official-proposed"
EV_NAMES = ["ev-3", "ev-2", "ev-1", "ev+0", "ev+1", "ev+2", "ev+3"]


def tiny_model(seed: int = 0):
    """A tiny proposed model whose every parameter is random (CIN styles differ, so a row mix-up shows)."""
    torch.manual_seed(seed)
    model = build_arch("proposed-tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


def write_official(model, folder, step: str = "80000", *, edit=None) -> None:
    """Write ``model`` as the six official checkpoint files; ``edit(suffix, state)`` may alter a state first."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, name in SUFFIXES.items():
        net = model.networks()[name]
        sd = net.state_dict()
        state = OrderedDict()
        for key, slot in official_keys(net, name.split("_")[0]).items():
            t = sd[slot.key]
            state[key] = (t if slot.row is None else t[slot.row]).clone()
        if edit is not None:
            edit(suffix, state)
        torch.save(state, folder / f"{step}-{suffix}.ckpt")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official-tiny")
    model = tiny_model()
    write_official(model, folder)
    return model, folder


def test_key_names_match_the_official_layout(shared_data):
    # The official key list (state_dict_keys.json, read from the official classes) against the mapping written
    # from hdrbench's side. Names do not depend on the width, so the tiny model is enough here; the shapes at
    # the official width are checked by loading the fixture's weights (slow test in test_cli_predict.py).
    want = json.loads((shared_data / FIXTURE / "state_dict_keys.json").read_text())
    model = build_arch("proposed-tiny")
    for suffix, name in SUFFIXES.items():
        got = set(official_keys(model.networks()[name], name.split("_")[0]))
        assert got == {entry[0] for entry in want[suffix]}, suffix


def test_round_trip_loads_every_tensor_and_switches_on_the_quirks(tiny_weights):
    model, folder = tiny_weights
    loaded = build_arch("proposed-tiny", weights=str(folder))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.official_local_head and loaded.canny_channel_quirk
    assert loaded.official_weights["step"] == "80000"
    assert set(loaded.official_weights["files"]) == set(SUFFIXES)
    # The prefix form names the same files.
    assert resolve_official_weights(folder / "80000").files == resolve_official_weights(folder).files


def test_several_steps_need_a_prefix(tmp_path, tiny_weights):
    model, _ = tiny_weights
    write_official(model, tmp_path, "40000")
    write_official(model, tmp_path, "80000")
    with pytest.raises(InputError, match=r"several steps \['40000', '80000'\]"):
        resolve_official_weights(tmp_path)
    assert resolve_official_weights(tmp_path / "40000").step == "40000"


def test_missing_file_is_named(tmp_path, tiny_weights):
    model, _ = tiny_weights
    write_official(model, tmp_path)
    (tmp_path / "80000-sd.ckpt").unlink()
    with pytest.raises(InputError, match=r"missing .*80000-sd\.ckpt"):
        build_arch("proposed-tiny", weights=str(tmp_path))


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_weights):
    model, _ = tiny_weights

    def edit(suffix, state):
        if suffix == "su":
            del state["out_conv.norm.inns.5.bias"]
            state["out_conv.norm.inns.6.bias"] = torch.zeros(2)

    write_official(model, tmp_path, edit=edit)
    with pytest.raises(InputError) as err:
        build_arch("proposed-tiny", weights=str(tmp_path))
    msg = str(err.value)
    assert "80000-su.ckpt" in msg and "missing keys ['out_conv.norm.inns.5.bias']" in msg
    assert "unexpected keys ['out_conv.norm.inns.6.bias']" in msg


def test_shape_mismatch_names_file_key_and_both_shapes(tmp_path, tiny_weights):
    model, _ = tiny_weights

    def edit(suffix, state):
        if suffix == "cbd":
            state["inter_layers.0.conv.weight"] = torch.zeros(7, 7, 3, 3)

    write_official(model, tmp_path, edit=edit)
    with pytest.raises(InputError) as err:
        build_arch("proposed-tiny", weights=str(tmp_path))
    msg = str(err.value)
    assert "80000-cbd.ckpt" in msg and "'inter_layers.0.conv.weight'" in msg and "(7, 7, 3, 3)" in msg
    assert f"{tuple(model.refine_down.middle.conv.weight.shape)}" in msg and "'middle.conv.weight'" in msg


def test_other_paths_and_variants_are_refused(tmp_path, tiny_weights):
    _, folder = tiny_weights
    with pytest.raises(InputError, match="not one file"):
        resolve_official_weights(folder / "80000-gu.ckpt")
    with pytest.raises(InputError, match="not found"):
        resolve_official_weights(tmp_path / "nowhere" / "80000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no"):
        resolve_official_weights(tmp_path / "empty")
    with pytest.raises(InputError, match="full model"):
        build_arch("proposed-tiny", cin=False, weights=str(folder))
    bad = tmp_path / "bad"
    bad.mkdir()
    for suffix in SUFFIXES:
        (bad / f"1-{suffix}.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ImageReadError, match="cannot read official checkpoint"):
        build_arch("proposed-tiny", weights=str(bad))


def test_official_mode_edges_equal_the_official_loader(shared_data):
    # The official test loader's Canny maps of all seven exposures (input_edges/), recomputed from the PNGs.
    from hdrbench.imaging.io import read_image
    from hdrbench.imaging.edges import canny_edges

    root = shared_data / FIXTURE
    imgs = torch.stack([torch.from_numpy(read_image(root / "input_stack" / f"{n}.png").data).permute(2, 0, 1)
                        for n in EV_NAMES])
    edges = canny_edges(imgs, channel_order_quirk=True)[:, 0].numpy()
    for i, n in enumerate(EV_NAMES):
        want = read_image(root / "input_edges" / f"{n}.png").data[..., 0] > 0.5
        assert np.array_equal(edges[i] > 0.5, want), n
    np.testing.assert_array_equal(edges[:, None], np.load(root / "input_edge_stack.npy"))
    # The intended BT.601 grey gives other edges here, so the check above can fail.
    assert not np.array_equal(canny_edges(imgs)[:, 0].numpy(), edges)

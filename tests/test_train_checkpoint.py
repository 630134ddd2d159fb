"""Checkpoints: atomic writes, the kept previous checkpoint, corrupt files, RNG round trips."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError
from hdrbench.train import checkpoint as ckpt


def _state(value: float, iteration: int = 1) -> dict:
    net = torch.nn.Linear(2, 2)
    torch.nn.init.constant_(net.weight, value)
    opt = torch.optim.Adam(net.parameters())
    return ckpt.training_state(modules={"net": net}, optimizers={"opt": opt}, schedulers={}, iteration=iteration,
                               data_state=None, recipe={"name": "x"}, recipe_hash="abc")


def test_save_load_round_trip_with_weights_only(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "run" / "checkpoint.pt", _state(0.5, iteration=7))
    # The file opens with the safe loader: no pickled code objects inside.
    raw = torch.load(path, weights_only=True)
    assert raw["iteration"] == 7 and raw["format_version"] == ckpt.FORMAT_VERSION
    state = ckpt.load_checkpoint(path)
    assert torch.equal(state["modules"]["net"]["weight"], torch.full((2, 2), 0.5))
    assert ckpt.peek(path)["recipe_hash"] == "abc"


def test_previous_checkpoint_is_kept(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, _state(1.0, 1))
    ckpt.save_checkpoint(path, _state(2.0, 2))
    ckpt.save_checkpoint(path, _state(3.0, 3))
    assert ckpt.load_checkpoint(path)["iteration"] == 3
    assert ckpt.load_checkpoint(tmp_path / "checkpoint.prev.pt")["iteration"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


def test_crash_during_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, _state(1.0, 1))
    before = path.read_bytes()

    def broken_save(obj, fh):
        fh.write(b"partial bytes of a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, _state(2.0, 2))
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_truncated_checkpoint_is_named_and_latest_falls_back(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, _state(1.0, 1))
    ckpt.save_checkpoint(path, _state(2.0, 2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # simulate a file cut short by something outside hdrbench
    with pytest.raises(InputError, match="checkpoint.pt is unreadable"):
        ckpt.load_checkpoint(path)
    assert ckpt.latest(tmp_path) == tmp_path / "checkpoint.prev.pt"
    assert ckpt.latest(tmp_path / "nothing-here") is None
    with pytest.raises(InputError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "foreign.pt").write_bytes(b"")
    with pytest.raises(InputError, match="foreign.pt"):
        ckpt.load_checkpoint(tmp_path / "foreign.pt")


def test_foreign_torch_file_is_rejected(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an hdrbench checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")


def test_rng_states_round_trip_through_a_file(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.random(), np.random.rand(), torch.rand(1)  # advance, then snapshot mid-stream
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = _state(0.0)
    expected = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist())
    ckpt.save_checkpoint(tmp_path / "c.pt", state)
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    ckpt.set_rng_state(ckpt.load_checkpoint(tmp_path / "c.pt")["rng"])
    got = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist())
    assert got == expected


def test_restore_checks_network_names(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "c.pt", _state(1.0))
    state = ckpt.load_checkpoint(path)
    with pytest.raises(InputError, match="networks"):
        ckpt.restore_modules({"other": torch.nn.Linear(2, 2)}, state, str(path))
    net = torch.nn.Linear(2, 2)
    ckpt.restore_modules({"net": net}, state, str(path))
    assert torch.equal(net.weight.detach(), torch.ones(2, 2))

"""Checkpoint integrity: the digest recorded at write, verification before promotion and rotation, and a
save crashed between each of its steps never leaving both ``checkpoint.pt`` and ``checkpoint.prev.pt`` bad."""

from __future__ import annotations

import os

import pytest
import torch

from hdrbench.errors import InputError
from hdrbench.train import checkpoint as ckpt


def _state(iteration: int) -> dict:
    net = torch.nn.Linear(4, 4)
    torch.nn.init.constant_(net.weight, 0.5)  # 0x3f000000: a byte pattern findable in the file
    torch.nn.init.constant_(net.bias, float(iteration))
    opt = torch.optim.Adam(net.parameters())
    return ckpt.training_state(modules={"net": net}, optimizers={"opt": opt}, schedulers={}, iteration=iteration,
                               data_state=None, recipe={"name": "x"}, recipe_hash="abc")


def _iteration(path) -> int | None:
    try:
        return int(ckpt.verify_checkpoint(path)["iteration"])
    except InputError:
        return None


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


class _Crash(BaseException):
    """Stands for the process being killed (BaseException: no ``except Exception`` handler catches it)."""


def _crash_at(monkeypatch, k: int) -> list[str]:
    """Make the k-th file-system step of a save (torch.save, fsync, link, replace) raise ``_Crash``."""
    calls: list[str] = []
    for owner, name in ((torch, "save"), (os, "fsync"), (os, "link"), (os, "replace")):
        real = getattr(owner, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            if len(calls) == k:
                if _name == "save":  # a kill in the middle of writing: half a file on disk
                    args[1].write(b"PK\x03\x04 half a checkpoint")
                raise _Crash(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)
    return calls


def test_digest_catches_changed_bytes_that_still_load(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "checkpoint.pt", _state(1))
    assert ckpt.verify_checkpoint(path)["digest"] == ckpt.content_digest(ckpt.load_checkpoint(path))
    data = bytearray(path.read_bytes())
    at = data.find(bytes.fromhex("0000003f") * 16)  # inside the 4 x 4 weight of 0.5
    assert at > 0
    data[at + 3] = 0x40  # 0.5 -> 2.0 in one weight
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checkpoint.pt"):
        ckpt.verify_checkpoint(path)
    assert ckpt.latest(tmp_path) is None


def test_a_corrupt_checkpoint_is_never_rotated_over_a_good_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, _state(1))
    ckpt.save_checkpoint(path, _state(2))
    _truncate(path)  # as `truncate -s` by something outside hdrbench
    with pytest.warns(UserWarning, match="checkpoint.pt is unreadable or corrupt"):
        ckpt.save_checkpoint(path, _state(3))
    assert _iteration(path) == 3
    assert _iteration(tmp_path / ckpt.PREVIOUS_NAME) == 1  # the good fallback survived the save


# With a corrupt checkpoint.pt every save warns that it is not rotated (checked in the test above).
@pytest.mark.filterwarnings("ignore:.*is unreadable or corrupt:UserWarning")
@pytest.mark.parametrize("corrupt_current", [False, True])
def test_a_save_killed_between_any_two_steps_leaves_a_good_checkpoint(tmp_path, monkeypatch, corrupt_current):
    # Count the steps of one complete save, then crash a fresh copy of the same situation at each of them.
    def situation(folder):
        path = folder / "checkpoint.pt"
        ckpt.save_checkpoint(path, _state(1))
        ckpt.save_checkpoint(path, _state(2))
        if corrupt_current:
            _truncate(path)
        return path

    with monkeypatch.context() as m:
        calls = _crash_at(m, 10**9)
        path = situation(tmp_path / "count")
        calls.clear()
        ckpt.save_checkpoint(path, _state(3))
        n_steps = len(calls)
    # save, fsync, the final replace; with a good current file also a link (or a copy) and its replace.
    assert n_steps == (3 if corrupt_current else 5)
    for k in range(1, n_steps + 1):
        path = situation(tmp_path / f"crash{k}")
        with monkeypatch.context() as m:
            _crash_at(m, k)
            with pytest.raises(_Crash):
                ckpt.save_checkpoint(path, _state(3))
        now, prev = _iteration(path), _iteration(path.parent / ckpt.PREVIOUS_NAME)
        assert now is not None or prev is not None, f"crash at step {k}: both checkpoints bad"
        # Never older than before the save: the newest good checkpoint is 2 (or 1 when 2 was corrupted), or 3.
        newest = ckpt.latest(path.parent)
        assert _iteration(newest) in ((1, 3) if corrupt_current else (2, 3)), f"crash at step {k}"

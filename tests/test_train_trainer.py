"""The trainer with a real small task (tests/test_train_toy.py): in-process exact resume, NaN guard,
determinism, AMP, channels_last, data order and augmentation (the SIGKILL resume test is in
tests/test_train_resume_kill.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hdrbench.errors import InputError
from hdrbench.train import checkpoint as ckpt
from hdrbench.train.data import SeededSampler, TrainingData
from hdrbench.train.recipes import load_recipe
from hdrbench.train.trainer import TrainingDivergedError, dataset_slug, run_dir_for, train

from test_train_toy import TESTS_DIR, ToyDataset, assert_bitwise_equal, checkpoint_weights, write_toy_recipe

REPO = TESTS_DIR.parent


def test_in_process_resume_to_more_iterations_equals_one_longer_run(tmp_path):
    recipe = write_toy_recipe(tmp_path)
    ds = ToyDataset()
    full = train(str(recipe), ds, iters=9, out=tmp_path / "full", progress=False)
    part = train(str(recipe), ds, iters=4, out=tmp_path / "part", progress=False)
    assert ckpt.load_checkpoint(part)["iteration"] == 4
    torch.manual_seed(1234)  # disturb the global RNG: resume must restore it
    cont = train(str(recipe), ds, iters=9, out=tmp_path / "part", resume=True, progress=False)
    assert_bitwise_equal(checkpoint_weights(full), checkpoint_weights(cont))


def test_resume_without_a_checkpoint_starts_from_iteration_zero(tmp_path):
    recipe = write_toy_recipe(tmp_path)
    ds = ToyDataset()
    fresh = train(str(recipe), ds, iters=2, out=tmp_path / "fresh", progress=False)
    resumed = train(str(recipe), ds, iters=2, out=tmp_path / "new" / "run", resume=True, progress=False)
    assert "resume: no checkpoint" in (tmp_path / "new" / "run" / "train.log").read_text()
    assert_bitwise_equal(checkpoint_weights(fresh), checkpoint_weights(resumed))


def test_resume_refuses_a_different_configuration(tmp_path):
    recipe = write_toy_recipe(tmp_path)
    ds = ToyDataset()
    train(str(recipe), ds, iters=2, out=tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="cannot resume.*recipe hash"):
        train(str(recipe), ds, iters=4, batch_size=3, out=tmp_path / "run", resume=True, progress=False)


def test_same_seed_is_bitwise_deterministic_and_seed_matters(tmp_path):
    recipe = write_toy_recipe(tmp_path)
    ds = ToyDataset()
    a = checkpoint_weights(train(str(recipe), ds, iters=5, out=tmp_path / "a", seed=3, progress=False))
    b = checkpoint_weights(train(str(recipe), ds, iters=5, out=tmp_path / "b", seed=3, progress=False))
    c = checkpoint_weights(train(str(recipe), ds, iters=5, out=tmp_path / "c", seed=4, progress=False))
    assert_bitwise_equal(a, b)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    recipe = write_toy_recipe(tmp_path, extra="")
    text = recipe.read_text().replace("[loss]\n", "[loss]\nnan_at = 8\n")
    recipe.write_text(text)
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as info:
        train(str(recipe), ToyDataset(), out=run, progress=False)
    msg = str(info.value)
    assert "iteration 8 of 12" in msg and "up = inf" in msg and str(run / "checkpoint.pt") in msg
    state = ckpt.load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 5  # save_every = 5: the step-8 weights were never written
    assert all(torch.isfinite(v).all() for sd in state["modules"].values() for v in sd.values())
    assert "non-finite loss at iteration 8" in (run / "train.log").read_text()


def test_nan_before_any_checkpoint_says_so(tmp_path):
    recipe = write_toy_recipe(tmp_path)
    recipe.write_text(recipe.read_text().replace("[loss]\n", "[loss]\nnan_at = 1\n"))
    with pytest.raises(TrainingDivergedError, match="iteration 1 of 12.*no checkpoint was written yet"):
        train(str(recipe), ToyDataset(), out=tmp_path / "run", progress=False)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_runs_on_cpu_and_stays_close_to_fp32(tmp_path, amp):
    # bf16 autocast keeps 8 mantissa bits: after 3 steps of lr 1e-2 the weights agree with fp32 to ~lr
    # (Adam moves each weight by about lr a step, and rounding flips the sign of tiny steps).
    recipe = write_toy_recipe(tmp_path)
    ds = ToyDataset()
    ref = checkpoint_weights(train(str(recipe), ds, iters=3, out=tmp_path / "fp32", progress=False))
    path = train(str(recipe), ds, iters=3, out=tmp_path / amp, amp=amp, progress=False)
    got = checkpoint_weights(path)
    assert json.loads((tmp_path / amp / "recipe.json").read_text())["amp"] == amp
    init = ckpt.load_checkpoint(path)["iteration"]
    assert init == 3
    for k in ref:
        assert torch.isfinite(got[k]).all()
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0.05)
    assert any(not torch.equal(got[k], ref[k]) for k in ref)  # autocast really ran


def test_channels_last_matches_contiguous(tmp_path):
    # Same arithmetic in another memory layout; oneDNN may sum in another order: 1e-5 absolute.
    recipe = write_toy_recipe(tmp_path)
    ds = ToyDataset()
    ref = checkpoint_weights(train(str(recipe), ds, iters=3, out=tmp_path / "a", progress=False))
    got = checkpoint_weights(train(str(recipe), ds, iters=3, out=tmp_path / "b", channels_last=True, progress=False))
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-5)


def test_run_folder_layout_and_fresh_run_archives_the_old_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("HDRBENCH_RUNS", str(tmp_path / "runs"))
    recipe = write_toy_recipe(tmp_path)
    ds = ToyDataset()
    first = train(str(recipe), ds, iters=2, progress=False)
    assert first == tmp_path / "runs" / "toy__toy" / "checkpoint.pt"
    settings = json.loads((first.parent / "recipe.json").read_text())
    assert settings["recipe"]["schedule"]["iters"] == 2 and settings["recipe_hash"] == ckpt.peek(first)["recipe_hash"]
    identity = settings["identity"]
    train(str(recipe), ds, iters=3, progress=False)
    assert (first.parent / f"checkpoint-{identity}-it2.pt").is_file()
    assert ckpt.peek(first)["iteration"] == 3 and ckpt.peek(first)["complete"] is True


def test_dataset_slug():
    assert dataset_slug("synthetic") == "synthetic"
    a, b = dataset_slug("hdr-folder:/data/a/my hdrs"), dataset_slug("hdr-folder:/data/b/my hdrs")
    assert a.startswith("hdr-folder-my-hdrs-") and a != b
    assert run_dir_for("proposed", "synthetic", None).name == "proposed__synthetic"


def test_bad_arguments(tmp_path):
    recipe = write_toy_recipe(tmp_path)
    with pytest.raises(InputError, match="amp"):
        train(str(recipe), ToyDataset(), amp="fp8", out=tmp_path / "r")
    with pytest.raises(InputError, match="iters must be a positive integer"):
        train(str(recipe), ToyDataset(), iters=0, out=tmp_path / "r")


# -- data order and augmentation -------------------------------------------------------------------------

def test_sampler_covers_each_epoch_once_and_shards_like_one_process():
    one = SeededSampler(5, seed=1)
    rows = one.next_global(10)
    assert sorted(r[0] for r in rows[:5]) == list(range(5)) and sorted(r[0] for r in rows[5:]) == list(range(5))
    assert [r[1] for r in rows] == [0] * 5 + [1] * 5
    single = SeededSampler(5, seed=1)
    ranks = [SeededSampler(5, seed=1, rank=r, world_size=2) for r in range(2)]
    for _ in range(4):
        glob = single.next_indices(4)
        assert glob == ranks[0].next_indices(2) + ranks[1].next_indices(2)
    # state round trip continues the same order
    state = single.state_dict()
    nxt = single.next_indices(3)
    again = SeededSampler(5, seed=1)
    again.load_state_dict(state)
    assert again.next_indices(3) == nxt
    with pytest.raises(InputError, match="seed"):
        SeededSampler(5, seed=2).load_state_dict(state)


def test_augmentation_is_consistent_between_stack_and_hdr():
    # Flip, crop and scale must move the stack and the HDR image together: re-render the stack from the
    # augmented HDR with the toy camera (gamma 2.2) and compare. Bicubic resampling of the stack and of the
    # HDR differ where the curve bends, hence a check on unscaled crops/flips (exact) and a loose one with
    # scaling (mean abs error < 0.02 on [0, 1] images).
    ds = ToyDataset(n=3, size=24)
    exact = TrainingData(ds, {"crop": 16, "flip": True}, batch_size=3, seed=0)
    for _ in range(3):
        b = exact.next_batch()
        for i in range(3):
            for j, ev in enumerate([-2, -1, 0, 1, 2]):
                render = (b["hdr"][i] * 2.0**ev).clamp(0, 1) ** (1 / 2.2)
                torch.testing.assert_close(b["stack"][i, j], render, rtol=0, atol=1e-6)
    scaled = TrainingData(ds, {"crop": 16, "flip": True, "scale_aug": [1.0, 2.0]}, batch_size=3, seed=0)
    b = scaled.next_batch()
    assert b["stack"].shape == (3, 5, 3, 16, 16) and b["hdr"].shape == (3, 3, 16, 16)
    render = (b["hdr"][:, None] * (2.0 ** torch.tensor([-2.0, -1, 0, 1, 2]))[None, :, None, None, None])
    render = render.clamp(0, 1) ** (1 / 2.2)
    assert (render - b["stack"]).abs().mean() < 0.02
    assert float(b["hdr"].min()) >= float(np.float32(1e-6)) and 0 <= float(b["stack"].min()) and float(b["stack"].max()) <= 1


def test_flip_happens_about_half_the_time_and_resolution_resizes():
    ds = ToyDataset(n=4, size=24)
    data = TrainingData(ds, {"flip": True}, batch_size=4, seed=0)
    flips = 0
    for _ in range(25):
        b = data.next_batch()
        for i, name in enumerate(b["scene"]):
            flips += int(not torch.equal(b["stack"][i], ds.load("train", name).stack))
    assert 30 < flips < 70  # 100 fair coin flips: outside (30, 70) has probability < 1e-4
    res = TrainingData(ds, {"resolution": [12, 20]}, batch_size=2, seed=0).next_batch()
    assert res["stack"].shape == (2, 5, 3, 12, 20)


def test_data_errors_name_the_problem():
    ds = ToyDataset(n=2, size=16)
    with pytest.raises(Exception, match="data.evs asks for 3.0"):
        TrainingData(ds, {"evs": [3.0]}, batch_size=1, seed=0).next_batch()
    with pytest.raises(InputError, match="crop"):
        TrainingData(ds, {"crop": 32}, batch_size=1, seed=0).next_batch()
    sel = TrainingData(ds, {"evs": [-1.0, 1.0]}, batch_size=1, seed=0).next_batch()
    assert sel["stack"].shape[1] == 2 and sel["evs"].tolist() == [-1.0, 1.0]


def test_shipped_proposed_recipe_data_table_is_understood():
    # The [data] keys of the real recipe resolve without error (types checked by load_recipe).
    names = [p.stem for p in (REPO / "methods").glob("proposed.toml")]
    if not names:
        pytest.skip("methods/proposed.toml not present")
    from hdrbench.train.data import DataConfig

    cfg = DataConfig.from_recipe(load_recipe("proposed", preset="paper")["data"])
    assert cfg.resolution == (256, 256) and cfg.crop == (256, 256) and cfg.flip and cfg.scale_aug == (1.0, 2.0)
    assert np.allclose(cfg.evs, [-3, -2, -1, 0, 1, 2, 3])

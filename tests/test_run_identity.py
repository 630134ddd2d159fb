"""What identifies a trained model, and what may be scored for a leaderboard (CLI and API, toy recipe, small
``synthetic`` dataset): checkpoints of runs that differ only in seed, dataset options or resolution are kept
apart and never reused for each other; a corrupt checkpoint never costs the good previous one; ``--resume``
never silently starts over; incomplete, fallback and ``--limit`` evaluations are refused or marked."""

from __future__ import annotations

import csv
import json

import pytest

from hdrbench.cli import main
from hdrbench.errors import InputError
from hdrbench.train import checkpoint as ckpt

from test_cli_run import DATA, METRICS, _run_dir, recipe  # noqa: F401  (recipe: the shared fixture)


def _trained(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("training: "))


def test_runs_differing_only_in_seed_keep_separate_checkpoints(tmp_path, recipe, capsys):
    base = ["run", "--method", str(recipe), *DATA, *METRICS, "--iters", "3", "--no-progress", "--no-leaderboard"]
    for seed in ("0", "1", "2"):
        assert main(base + ["--seed", seed]) == 0
        assert "trained from scratch" in _trained(capsys.readouterr().out)
    kept = sorted(p.name for p in _run_dir(tmp_path).glob("checkpoint-*-it3.pt"))
    assert len(kept) == 2  # seeds 0 and 1, archived when the next seed started; seed 2 is checkpoint.pt
    # Seed 0's model is still there and is reused, not retrained.
    assert main(base + ["--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "not needed" in _trained(out)
    used = _trained(out).split("checkpoint: ", 1)[1]
    assert ckpt.peek(used)["seed"] == 0 and ckpt.peek(used)["complete"]


def test_run_retrains_for_other_dataset_options_or_resolution(tmp_path, recipe, capsys):
    base = ["run", "--method", str(recipe), *METRICS, "--iters", "3", "--no-progress", "--no-leaderboard"]
    assert main(base + DATA) == 0
    capsys.readouterr()
    fewer = [a if a != "n_train=3" else "n_train=2" for a in DATA]
    assert main(base + fewer) == 0
    assert "trained from scratch" in _trained(capsys.readouterr().out)
    larger = DATA[:-1] + ["48"]
    assert main(base + larger) == 0
    assert "trained from scratch" in _trained(capsys.readouterr().out)
    infos = {json.dumps(ckpt.peek(p)["dataset_info"], sort_keys=True) for p in _run_dir(tmp_path).glob("*.pt")}
    assert len(infos) == 3
    assert main(base + DATA) == 0  # the first configuration's checkpoint was kept and is reused
    assert "not needed" in _trained(capsys.readouterr().out)


def test_a_truncated_checkpoint_does_not_cost_the_previous_one(tmp_path, recipe, capsys):
    args = ["run", "--method", str(recipe), *DATA, *METRICS, "--iters", "6", "--no-progress", "--no-leaderboard"]
    assert main(args) == 0  # saves at 5 (save_every) and 6
    current, prev = _run_dir(tmp_path) / "checkpoint.pt", _run_dir(tmp_path) / ckpt.PREVIOUS_NAME
    assert ckpt.peek(prev)["iteration"] == 5
    current.write_bytes(current.read_bytes()[:2000])  # `truncate -s 2000` by something outside hdrbench
    capsys.readouterr()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "resumed an unfinished run" in captured.out  # from checkpoint.prev.pt at iteration 5
    assert "resuming from the previous checkpoint" in captured.err and "checkpoint.pt is unreadable" in captured.err
    assert ckpt.verify_checkpoint(current)["iteration"] == 6
    assert ckpt.verify_checkpoint(prev)["iteration"] == 5  # not replaced by the truncated file


def test_resume_without_a_readable_checkpoint_is_an_error_naming_the_files(tmp_path, recipe, capsys):
    args = ["train", "--method", str(recipe), *DATA, "--iters", "6", "--no-progress"]
    assert main(args) == 0
    folder = _run_dir(tmp_path)
    for name in ("checkpoint.pt", ckpt.PREVIOUS_NAME):
        (folder / name).write_bytes((folder / name).read_bytes()[:1000])
    before = {p.name: p.read_bytes() for p in folder.glob("*.pt")}
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "Traceback" not in err
    assert str(folder / "checkpoint.pt") in err and str(folder / ckpt.PREVIOUS_NAME) in err
    assert {p.name: p.read_bytes() for p in folder.glob("*.pt")} == before  # nothing overwritten
    # A fresh start is asked for by leaving out --resume: the unreadable files are kept aside.
    assert main(args) == 0
    assert ckpt.verify_checkpoint(folder / "checkpoint.pt")["iteration"] == 6
    aside = sorted(p.name for p in folder.glob("checkpoint-unreadable-*.pt"))
    assert aside == ["checkpoint-unreadable-0.pt", "checkpoint-unreadable-1.pt"]


def _leaderboard(tmp_path) -> list[dict]:
    with open(tmp_path / "results" / "leaderboard-synthetic.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_incomplete_and_fallback_checkpoints_are_refused_for_the_leaderboard(tmp_path, recipe, monkeypatch):
    from hdrbench.data import get_dataset
    from hdrbench.evaluate.harness import evaluate
    from hdrbench.evaluate.trained import load_trained_method
    from hdrbench.train import trainer

    ds = get_dataset("synthetic", n_train=3, n_test=2, resolution=32)
    real = trainer._to_device
    calls = []

    def killed_at_six(*args):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt  # the run is killed during iteration 6, after the save at 5
        return real(*args)

    monkeypatch.setattr(trainer, "_to_device", killed_at_six)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(str(recipe), ds, iters=8, progress=False)
    monkeypatch.setattr(trainer, "_to_device", real)
    path = _run_dir(tmp_path) / "checkpoint.pt"
    assert ckpt.peek(path)["iteration"] == 5 and not ckpt.peek(path)["complete"]

    kw = dict(hdr_metrics=["pu21-psnr"], stack_metrics=["psnr"])
    meth = load_trained_method("toy", dataset="synthetic")
    with pytest.raises(InputError, match="refusing to score checkpoint .*iteration 5 of 8, INCOMPLETE"):
        evaluate(meth, ds, **kw)
    assert not (tmp_path / "results" / "leaderboard-synthetic.csv").exists()
    run = evaluate(meth, ds, allow_incomplete=True, **kw)
    config = json.loads((run / "config.json").read_text())
    assert config["method"]["checkpoint"] == str(path) and config["method"]["iteration"] == 5
    assert config["method"]["complete"] is False and config["caveat"] == "incomplete checkpoint: iteration 5 of 8"
    assert {r["caveat"] for r in _leaderboard(tmp_path)} == {"incomplete checkpoint: iteration 5 of 8"}
    from hdrbench.commands.evaluate import scored_checkpoint_line

    assert "(iteration 5 of 8, INCOMPLETE)" in scored_checkpoint_line(run)

    # Finish the run, then corrupt its last checkpoint: the fallback to checkpoint.prev.pt is refused too.
    trainer.train(str(recipe), ds, iters=8, resume=True, progress=False)
    path.write_bytes(path.read_bytes()[:2000])
    meth = load_trained_method("toy", dataset="synthetic")
    assert meth.checkpoint.name == ckpt.PREVIOUS_NAME
    with pytest.raises(InputError, match="fallback checkpoint: checkpoint.prev.pt"):
        evaluate(meth, ds, **kw)
    evaluate(meth, ds, leaderboard=False, **kw)  # scoring without publishing stays possible


def test_a_kept_checkpoint_of_another_run_is_a_fallback_when_the_current_one_is_unreadable(tmp_path, recipe):
    from hdrbench.data import get_dataset
    from hdrbench.evaluate.harness import evaluate
    from hdrbench.evaluate.trained import load_trained_method
    from hdrbench.train import trainer

    ds = get_dataset("synthetic", n_train=3, n_test=2, resolution=32)
    trainer.train(str(recipe), ds, iters=2, seed=0, progress=False)
    current = trainer.train(str(recipe), ds, iters=2, seed=1, progress=False)  # keeps seed 0's checkpoint aside
    current.write_bytes(current.read_bytes()[:2000])
    meth = load_trained_method("toy", dataset="synthetic")
    assert meth.checkpoint.name.startswith("checkpoint-") and meth.info["seed"] == 0
    with pytest.raises(InputError, match="fallback checkpoint: checkpoint-"):
        evaluate(meth, ds, hdr_metrics=["pu21-psnr"], stack_metrics=["psnr"])


def test_a_limit_run_is_marked_and_never_shadows_the_full_run(tmp_path, capsys):
    from hdrbench.evaluate.leaderboard import leaderboard_text

    base = ["run", "--method", "ldr-linear", *DATA, *METRICS, "--no-progress"]
    assert main(base) == 0
    assert main(base + ["--limit", "1"]) == 0  # the newer run covers 1 of the 2 test scenes
    rows = _leaderboard(tmp_path)
    assert {r["caveat"] for r in rows} == {"", "partial: 1 of 2 scenes"}
    text = leaderboard_text("synthetic")
    full = {r["run_id"] for r in rows if not r["caveat"]}
    hdr = [r for r in rows if r["target"] == "hdr" and not r["caveat"]][0]
    assert f"{float(hdr['mean']):.4g} ± " in text and "partial" not in text
    assert len(full) == 1 and hdr["n_images"] == "2"
    capsys.readouterr()
    assert main(base + ["--limit", "1", "--publish-records"]) == 2
    assert "refusing to publish" in capsys.readouterr().err


def test_a_leaderboard_written_before_the_caveat_column_is_read_and_upgraded(tmp_path):
    from hdrbench.evaluate.leaderboard import (LEADERBOARD_COLUMNS, leaderboard_text, read_leaderboard_file,
                                               update_leaderboard)
    from hdrbench.evaluate.records import Record

    def records(run_id, value, stamp):
        return [Record(run_id=run_id, method="m", dataset="synthetic", split="test", scene=s, target="hdr",
                       metric="pu21-psnr", value=value, protocol="singlehdr", timestamp=stamp).as_row()
                for s in ("a", "b")]

    path = update_leaderboard(records("full", 10.0, "2026-01-01"), dataset="synthetic", results=tmp_path)
    old_header = ",".join(LEADERBOARD_COLUMNS[:-1])
    lines = path.read_text().splitlines()
    path.write_text("\n".join([old_header] + [line.rsplit(",", 1)[0] for line in lines[1:]]) + "\n")
    assert [r["caveat"] for r in read_leaderboard_file(path)] == [""]
    # A newer partial block does not replace the full one as the method's latest entry.
    update_leaderboard(records("part", 20.0, "2026-02-01"), dataset="synthetic", results=tmp_path,
                       caveat="partial: 2 of 8 scenes")
    assert path.read_text().splitlines()[0] == ",".join(LEADERBOARD_COLUMNS)
    text = leaderboard_text("synthetic", results=tmp_path)
    assert "10 ± 0" in text and "20 ±" not in text
    assert "partial: 2 of 8 scenes" in leaderboard_text("synthetic", results=tmp_path, all_runs=True)

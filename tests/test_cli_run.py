"""``hdrbench train``, ``hdrbench run`` and ``hdrbench bench train`` end to end on the CLI (toy recipe, small
``synthetic`` dataset): training, no-op resume, train-once-then-reuse, exact extension, leaderboard rows,
error messages and the benchmark's rows."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from hdrbench.cli import build_parser, main
from hdrbench.train import checkpoint as ckpt
from hdrbench.train.recipes import load_recipe
from hdrbench.train.trainer import train

from test_train_toy import assert_bitwise_equal, checkpoint_weights, write_toy_recipe

# Three 32 x 32 training scenes and two test scenes: enough for the toy task's 16 x 16 crops.
DATA = ["--dataset", "synthetic", "--dataset-option", "n_train=3", "--dataset-option", "n_test=2",
        "--resolution", "32"]
# Cheap metrics: the point is the pipeline, not the scores.
METRICS = ["--hdr-metrics", "pu21-psnr", "--stack-metrics", "psnr"]


@pytest.fixture
def recipe(tmp_path):
    return write_toy_recipe(tmp_path / "recipes")


def _run_dir(tmp_path):
    return tmp_path / "runs" / "toy__synthetic"


def _leaderboard_run_ids(tmp_path) -> set[str]:
    with open(tmp_path / "results" / "leaderboard-synthetic.csv", newline="") as fh:
        return {row["run_id"] for row in csv.DictReader(fh) if row["method"] == "toy"}


def test_train_command_trains_and_resume_of_a_finished_run_is_a_no_op(tmp_path, recipe, capsys):
    assert main(["train", "--method", str(recipe), *DATA, "--iters", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    path = _run_dir(tmp_path) / "checkpoint.pt"
    assert f"checkpoint: {path} (iteration 4 of 4, complete" in out
    before = checkpoint_weights(path)
    stamp = path.stat().st_mtime_ns

    assert main(["train", "--method", str(recipe), *DATA, "--iters", "4", "--resume", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "nothing to train" in captured.err and "iteration 4 of 4" in captured.err
    assert path.stat().st_mtime_ns == stamp  # the checkpoint was not rewritten
    assert_bitwise_equal(before, checkpoint_weights(path))
    assert "nothing to train" in (path.parent / "train.log").read_text()


def test_run_trains_once_then_reuses_the_checkpoint_and_updates_the_leaderboard(tmp_path, recipe, capsys):
    args = ["run", "--method", str(recipe), *DATA, *METRICS, "--iters", "3", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "training: trained from scratch" in out
    path = _run_dir(tmp_path) / "checkpoint.pt"
    assert ckpt.peek(path)["iteration"] == 3 and ckpt.peek(path)["complete"]
    records = [line.split("records: ", 1)[1] for line in out.splitlines() if line.startswith("records: ")]
    assert len(records) == 1
    with open(records[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["metric"] for r in rows} == {"psnr", "pu21-psnr"} and {r["method"] for r in rows} == {"toy"}
    assert len({r["scene"] for r in rows}) == 2 and not any(r["error"] for r in rows)
    assert f"leaderboard: {tmp_path / 'results' / 'leaderboard-synthetic.csv'}" in out
    assert len(_leaderboard_run_ids(tmp_path)) == 1
    stamp = path.stat().st_mtime_ns

    # Same recipe, dataset and seed: no training, a second evaluation run, the same checkpoint file.
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "training: not needed" in out
    assert path.stat().st_mtime_ns == stamp
    assert (path.parent / "train.log").read_text().count(" start toy ") == 1
    assert len(_leaderboard_run_ids(tmp_path)) == 2


def test_run_extends_a_shorter_finished_run_exactly_and_retrains_for_another_seed(tmp_path, recipe, capsys):
    base = ["run", "--method", str(recipe), *DATA, *METRICS, "--no-progress", "--no-leaderboard"]
    assert main(base + ["--iters", "3"]) == 0
    assert main(base + ["--iters", "6"]) == 0
    assert "training: resumed an unfinished run" in capsys.readouterr().out
    path = _run_dir(tmp_path) / "checkpoint.pt"
    assert ckpt.peek(path)["iteration"] == 6
    # 3 + 3 resumed iterations are bitwise the 6 iterations of one run (same data order, RNG and optimiser).
    from hdrbench.data import get_dataset

    ds = get_dataset("synthetic", n_train=3, n_test=2, resolution=32)
    straight = train(str(recipe), ds, iters=6, out=tmp_path / "straight", progress=False)
    assert_bitwise_equal(checkpoint_weights(straight), checkpoint_weights(path))

    assert main(base + ["--iters", "6", "--seed", "1"]) == 0
    assert "training: trained from scratch" in capsys.readouterr().out
    assert ckpt.peek(path)["seed"] == 1
    assert any(not torch.equal(a, b) for a, b in zip(checkpoint_weights(straight).values(),
                                                     checkpoint_weights(path).values()))


def test_run_defaults_to_the_proposed_method_on_photos_at_the_cpu_preset():
    args = build_parser().parse_args(["run"])
    assert (args.method, args.dataset, args.preset, args.device) == ("proposed", "photos", None, "cpu")
    assert (args.publish, args.no_bounds) == (False, False)
    # No --preset means the recipe's default preset, which for the proposed method is the CPU one.
    assert load_recipe(args.method, preset=args.preset).preset == "cpu"
    train_args = build_parser().parse_args(["train", "--method", "proposed", "--dataset", "synthetic", "--amp", "bf16",
                                            "--channels-last", "--compile", "--resume", "--out", "x", "--seed", "3",
                                            "--iters", "5", "--batch-size", "2", "--preset", "tiny", "--root", "r"])
    assert (train_args.amp, train_args.channels_last, train_args.compile, train_args.resume) == ("bf16", True, True,
                                                                                                 True)
    assert (train_args.iters, train_args.batch_size, train_args.seed, train_args.out) == (5, 2, 3, "x")


def test_cli_errors_name_the_bad_argument(tmp_path, recipe, capsys):
    assert main(["train", "--method", "propsed", "--dataset", "synthetic"]) == 2
    assert "propsed" in capsys.readouterr().err
    assert main(["train", "--method", str(recipe), "--dataset", "synthetic", "--dataset-option", "n_train"]) == 2
    assert "--dataset-option expects KEY=VALUE" in capsys.readouterr().err
    assert main(["run", "--method", str(recipe), *DATA, "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
    assert main(["train", "--method", str(recipe), *DATA, "--iters", "0"]) == 2
    assert "iters must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--method", "x", "--dataset", "y", "--amp", "fp8"])


def test_train_command_reports_a_non_finite_loss_without_a_traceback(tmp_path, capsys):
    path = write_toy_recipe(tmp_path / "recipes")
    path.write_text(path.read_text().replace("[loss]\n", "[loss]\nnan_at = 7\n"))
    assert main(["train", "--method", str(path), *DATA, "--no-progress"]) == 2
    err = capsys.readouterr().err
    ckpt_path = _run_dir(tmp_path) / "checkpoint.pt"
    assert "non-finite loss at iteration 7 of 12" in err and f"last good checkpoint: {ckpt_path}" in err
    assert "Traceback" not in err
    assert ckpt.peek(ckpt_path)["iteration"] == 5  # save_every = 5


def test_bench_train_appends_rows_with_ratios_and_a_schedule_estimate(tmp_path, capsys):
    # Toy recipe with a pre-training phase so both phases and the weighted schedule estimate are exercised,
    # and a paper preset, which runs only on CUDA.
    folder = tmp_path / "recipes"
    path = write_toy_recipe(folder, extra="\n[presets.paper.schedule]\niters = 80000\n")
    path.write_text(path.read_text().replace("[schedule]\n", "[schedule]\npretrain_iters = 4\n"))
    out_csv = tmp_path / "bench-train.csv"
    rc = main(["bench", "train", "--method", str(path), "--presets", "tiny,paper", "--variants", "fp32,channels_last",
               "--warmup", "0", "--repeat", "1", "--rounds", "2", "--device", "auto", "--out", str(out_csv)])
    assert rc == 0
    printed = capsys.readouterr().out
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    tiny = [r for r in rows if r["preset"] == "tiny"]
    assert [r["variant"] for r in tiny] == ["fp32", "channels_last"]
    base, cl = tiny
    assert float(base["ratio_full"]) == 1.0 and float(base["ratio_pretrain"]) == 1.0
    for phase in ("pretrain", "full"):
        ratio = float(cl[f"step_s_{phase}"]) / float(base[f"step_s_{phase}"])
        assert math.isclose(float(cl[f"ratio_{phase}"]), ratio, rel_tol=1e-12)
    # tiny preset: 12 iterations, 4 of them pre-training
    for r in tiny:
        want = (4 * float(r["step_s_pretrain"]) + 8 * float(r["step_s_full"])) / 3600
        assert math.isclose(float(r["schedule_hours"]), want, rel_tol=1e-12)
        assert float(r["peak_mem_mb"]) > 0 and r["torch"] == torch.__version__ and r["machine"]
    assert cl["channels_last"] == "True" and base["amp"] == "fp32" and base["rounds"] == "2"
    if torch.cuda.is_available():
        assert [r["variant"] for r in rows if r["preset"] == "paper"][0] == "fp32"
    else:
        assert "preset paper: no CUDA" in printed and not [r for r in rows if r["preset"] == "paper"]


def test_run_publishes_records_for_the_report_layer(tmp_path, capsys):
    from hdrbench.report.records_io import read_records

    assert main(["run", "--method", "ldr-linear", *DATA, *METRICS, "--publish-records", "--no-progress"]) == 0
    published = tmp_path / "results" / "records" / "synthetic" / "ldr-linear.records.csv"
    df = read_records([tmp_path / "results" / "records"])
    assert published.is_file() and set(df["method"]) == {"ldr-linear"}
    assert set(df["metric"]) == {"pu21-psnr"} and (df["error"] == "").all()
    # Another protocol is published beside it, not over it (the protocol-sensitivity table needs both).
    assert main(["run", "--method", "ldr-linear", *DATA, *METRICS, "--publish-records", "--no-progress",
                 "--protocol", "display"]) == 0
    assert published.is_file() and published.with_name("ldr-linear--display.records.csv").is_file()
    df = read_records([tmp_path / "results" / "records"])
    assert set(df["protocol"]) == {"singlehdr", "display"}

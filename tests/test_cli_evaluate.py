"""The ``evaluate``, ``leaderboard``, ``methods`` and ``datasets`` sub-commands, run through the CLI entry point."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from hdrbench.cli import main
from hdrbench.evaluate.leaderboard import leaderboard_path, read_leaderboard_file
from hdrbench.evaluate.records import COLUMNS
from hdrbench.evaluate.runs import read_records_csv

SMALL = ["--dataset-option", "n_train=0", "--dataset-option", "n_test=2", "--resolution", "32"]


def test_evaluate_writes_run_leaderboard_and_published_records(tmp_path, capsys):
    rc = main(["evaluate", "--method", "exposure-scaling", "--dataset", "synthetic", *SMALL, "--no-progress",
               "--stack-metrics", "psnr", "--hdr-metrics", "pu21-psnr", "--publish-records"])
    assert rc == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert run.parent == tmp_path / "runs" and run.name.endswith("_exposure-scaling_synthetic")
    assert {p.name for p in run.iterdir()} == {"config.json", "environment.json", "records.csv", "log.txt"}
    rows = read_records_csv(run / "records.csv")
    assert len(rows) == 2 * (6 + 1) and all(not r["error"] and math.isfinite(r["value"]) for r in rows)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["resolution"] == "32x32-rendered" and cfg["scenes"] == ["test-0000", "test-0001"]
    assert cfg["merge"]["inverse_crf"] == "own"
    # The published copy is what the report layer reads.
    published = tmp_path / "results" / "records" / "synthetic" / "exposure-scaling.records.csv"
    assert published.read_text() == (run / "records.csv").read_text()
    from hdrbench.report.records_io import read_records

    df = read_records([tmp_path / "results" / "records"])
    assert list(df.columns) == list(COLUMNS) and len(df) == len(rows)
    lb = read_leaderboard_file(leaderboard_path("synthetic"))
    assert {(r["target"], r["metric"]) for r in lb} == {("stack", "psnr"), ("hdr", "pu21-psnr")}

    assert main(["leaderboard", "--dataset", "synthetic"]) == 0
    text = capsys.readouterr().out
    assert "exposure-scaling" in text and "pu21-psnr" in text and "psnr EV+" in text
    assert main(["leaderboard", "--dataset", "synthetic", "--csv"]) == 0
    assert capsys.readouterr().out == leaderboard_path("synthetic").read_text()


def test_evaluate_errors_are_one_line_without_traceback(capsys):
    assert main(["evaluate", "--method", "ldr-liner", "--dataset", "synthetic", *SMALL, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'ldr-linear'" in err and "Traceback" not in err
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "vds", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "needs a folder" in err and "<scene>_<ev>EV_true.jpg.png" in err  # the expected layout is shown
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", "--limit", "0",
                 "--no-progress", *SMALL]) == 2
    assert "limit must be >= 1" in capsys.readouterr().err
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "synthetic", "--method-option", "white",
                 *SMALL]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_leaderboard_of_an_unevaluated_dataset(capsys):
    assert main(["leaderboard", "--dataset", "vds"]) == 0
    assert "no leaderboard for dataset 'vds'" in capsys.readouterr().out
    assert main(["leaderboard", "--dataset", "vds", "--csv"]) == 1


def test_methods_list_and_show(capsys):
    assert main(["methods", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {line.split()[0] for line in lines}
    assert {"gt-stack", "ldr-linear", "exposure-scaling", "akyuz07", "banterle06", "masia09"} <= names
    assert any(line.startswith("banterle06") and "training-free" in line and "direct" in line for line in lines)
    assert main(["methods", "show", "banterle06"]) == 0
    assert "GRAPHITE 2006" in capsys.readouterr().out
    assert main(["methods", "show", "nope-method"]) == 2


def test_datasets_list(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic", "vds", "hdr-eye", "hdr-folder:<path>", "stack-folder:<path>"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "Deep Chain HDRI" in out and "licence:" in out


def _vds_tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for scene in ("t01", "t02"):
        (root / "test_set" / scene).mkdir(parents=True)
        (root / "test_hdr_set" / scene).mkdir(parents=True)
        for ev in range(-3, 4):
            img = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
            assert cv2.imwrite(str(root / "test_set" / scene / f"{scene}_{ev}EV_true.jpg.png"), img)
        hdr = (rng.random((12, 16, 3)) * 8 + 0.01).astype(np.float32)
        assert cv2.imwrite(str(root / "test_hdr_set" / scene / "target_hdr.hdr"), hdr)
    return root


def test_datasets_check_lists_every_problem_with_the_layout(tmp_path, capsys):
    root = _vds_tree(tmp_path / "vds")
    assert main(["datasets", "check", "--dataset", "vds", "--root", str(root), "--split", "test"]) == 0
    assert "is complete (test: 2 scenes)" in capsys.readouterr().out
    # A test-only download passes the whole-dataset check; the absent train split is a note, not a problem.
    assert main(["datasets", "check", "--dataset", "vds", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "note: split 'train' is not present and was skipped" in out and "is complete (test: 2 scenes)" in out
    (root / "test_set/t01/t01_1EV_true.jpg.png").unlink()
    (root / "test_hdr_set/t02/target_hdr.hdr").write_bytes(b"#?RADIANCE\nbroken")
    assert main(["datasets", "check", "--dataset", "vds", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "2 problem(s)" in out  # the missing EV and the corrupt HDR (the absent train split is a note)
    assert "t01_1EV_true.jpg.png: missing" in out and "target_hdr.hdr: unreadable" in out
    assert "split 'train' is not present" in out and "expected layout:" in out and str(root) + "/<split>_set" in out
    # The same check runs before an evaluation, which then refuses to start.
    assert main(["evaluate", "--method", "ldr-linear", "--dataset", "vds", "--root", str(root), "--resolution",
                 "native", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "failed its check" in err and "t01_1EV_true.jpg.png: missing" in err


def test_saved_hdr_reproduces_the_record(tmp_path, capsys):
    from hdrbench.data import get_dataset
    from hdrbench.imaging.io import read_image
    from hdrbench.metrics.protocols import get_protocol
    from hdrbench.metrics.registry import compute_hdr_metrics

    assert main(["evaluate", "--method", "banterle06", "--dataset", "synthetic", *SMALL, "--no-progress",
                 "--hdr-metrics", "pu21-psnr", "--save-hdr", "--no-leaderboard"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(p.name for p in (run / "hdr").iterdir()) == ["test-0000.pfm", "test-0001.pfm"]
    assert json.loads((run / "config.json").read_text())["saved_hdr"] == "hdr/<scene>.pfm"
    ds = get_dataset("synthetic", n_train=0, n_test=2, resolution=32)
    import torch

    for r in read_records_csv(run / "records.csv"):
        saved = torch.from_numpy(read_image(run / "hdr" / f"{r['scene']}.pfm").data).permute(2, 0, 1)[None]
        ref = ds.load("test", r["scene"]).hdr[None]
        again = compute_hdr_metrics(saved, ref, protocol=get_protocol("singlehdr"), metrics=["pu21-psnr"],
                                    allow_small_window=True)["pu21-psnr"][0]
        assert float(again) == r["value"]  # PFM is lossless float32: the same input gives the same number
    assert not leaderboard_path("synthetic").exists()  # --no-leaderboard

"""``hdrbench ... | head``: a reader that closes early ends the command quietly (exit 141, nothing on stderr),
as it does for Unix tools, instead of a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hdrbench.evaluate.leaderboard import LEADERBOARD_COLUMNS, leaderboard_csv_text, leaderboard_path

REPO = Path(__file__).resolve().parent.parent

#: Runs in the leaderboard below: about 100 bytes of ``--all-runs`` table each, so the output (~380 kB) is several
#: times a pipe's buffer (64 kB on Linux) plus what the reader takes in with its one line (8 kB): the command is
#: still writing when the reader closes, whatever the timing.
N_RUNS = 4000


def _leaderboard(results: Path) -> None:
    rows = []
    for i in range(N_RUNS):
        for metric, mean in (("pu21-psnr", 30.0 + i % 7), ("pu21-ssim", 0.9)):
            rows.append({c: "" for c in LEADERBOARD_COLUMNS} | {
                "run_id": f"20260101T000000000Z_m{i}_synthetic", "method": f"m{i}", "dataset": "synthetic",
                "split": "test", "resolution": "64x64", "protocol": "singlehdr", "protocol_version": "1",
                "target": "hdr", "ev": "nan", "metric": metric, "metric_version": "1", "mean": repr(mean),
                "std": "0.5", "n_images": "4", "n_failed": "0", "seed": "0", "hdrbench_version": "0.1.0",
                "torch_version": "2", "timestamp": f"2026-01-01T00:00:{i % 60:02d}.000000Z",
            })
    leaderboard_path("synthetic", results).write_text(leaderboard_csv_text(rows), encoding="utf-8")


@pytest.mark.skipif(sys.platform == "win32", reason="tests the POSIX pipe behaviour")
def test_reader_closing_after_one_line_ends_the_command_quietly(tmp_path):
    _leaderboard(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hdrbench", "leaderboard", "--dataset", "synthetic", "--results", str(tmp_path),
         "--all-runs"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    )
    first = proc.stdout.readline()  # what ``head -n 1`` does: one line, then the reading end closes
    proc.stdout.close()
    err = proc.stderr.read().decode(errors="replace")
    rc = proc.wait(timeout=120)
    assert first.startswith(b"leaderboard ")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert err == "", err
    assert rc == 141  # 128 + SIGPIPE, the status of a Unix tool whose reader went away


def test_complete_output_still_exits_zero(tmp_path, capsys):
    # The flush added for closed pipes leaves the ordinary case alone.
    from hdrbench.cli import main

    _leaderboard(tmp_path)
    assert main(["leaderboard", "--dataset", "synthetic", "--results", str(tmp_path), "--csv"]) == 0
    out = capsys.readouterr().out
    assert out == leaderboard_path("synthetic", tmp_path).read_text(encoding="utf-8")

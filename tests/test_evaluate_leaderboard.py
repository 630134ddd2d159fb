"""Leaderboards: aggregation with failure counts, idempotent updates, concurrent writers and a writer killed
mid-write (SIGKILL), which must lose no rows and leave a valid file."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hdrbench.errors import InputError
from hdrbench.evaluate.leaderboard import (
    LEADERBOARD_COLUMNS, aggregate, leaderboard_path, leaderboard_text, read_leaderboard_file, update_leaderboard,
)
from hdrbench.evaluate.records import Record

REPO = Path(__file__).resolve().parent.parent


def _records(run_id: str, values: list[float], *, method: str = "m", errors: list[str] | None = None,
             metric: str = "pu21-psnr") -> list[dict]:
    errors = errors or [""] * len(values)
    return [Record(run_id=run_id, method=method, dataset="synthetic", split="test", scene=f"s{i}", target="hdr",
                   metric=metric, value=v, error=e, protocol="singlehdr", protocol_version="1", metric_version="1",
                   resolution="32x32-rendered", timestamp=f"2026-01-01T00:00:{i:02d}Z").as_row()
            for i, (v, e) in enumerate(zip(values, errors))]


def _read_csv_strictly(path: Path) -> list[dict]:
    # An independent reader: the stdlib csv module, every row must have exactly the header's fields.
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(LEADERBOARD_COLUMNS)
    assert all(len(r) == len(LEADERBOARD_COLUMNS) for r in rows[1:])
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_aggregate_counts_failures_and_matches_numpy():
    values = [10.0, 12.5, math.nan, 20.0, 7.0]
    errors = ["", "", "metric returned NaN", "", "RuntimeError: boom"]
    rows = aggregate(_records("r1", values, errors=errors))
    assert len(rows) == 1
    row = rows[0]
    valid = np.array([10.0, 12.5, 20.0])  # NaN and error rows are left out of the mean, and counted
    assert float(row["mean"]) == pytest.approx(valid.mean(), rel=1e-15)
    # Sample std (ddof = 1) and valid-image counts: the conventions of the report's tables.
    assert float(row["std"]) == pytest.approx(valid.std(ddof=1), rel=1e-12)
    assert (row["n_images"], row["n_failed"]) == ("3", "2")
    every_failed = aggregate(_records("r2", [math.nan, math.nan], errors=["x", "y"]))[0]
    assert every_failed["mean"] == "nan" and every_failed["n_failed"] == "2" and every_failed["n_images"] == "0"


def test_update_is_idempotent_per_run_and_keeps_other_runs(tmp_path):
    update_leaderboard(_records("r1", [1.0, 2.0]), dataset="synthetic", results=tmp_path)
    update_leaderboard(_records("r2", [3.0, 5.0], method="other"), dataset="synthetic", results=tmp_path)
    path = update_leaderboard(_records("r1", [1.0, 2.0]), dataset="synthetic", results=tmp_path)  # same run again
    assert path == leaderboard_path("synthetic", tmp_path) and path.name == "leaderboard-synthetic.csv"
    rows = _read_csv_strictly(path)
    assert sorted(r["run_id"] for r in rows) == ["r1", "r2"]
    assert {r["run_id"]: float(r["mean"]) for r in rows} == {"r1": 1.5, "r2": 4.0}
    text = leaderboard_text("synthetic", results=tmp_path)
    assert "other" in text and "pu21-psnr" in text


def test_foreign_or_damaged_files_are_refused(tmp_path):
    path = leaderboard_path("synthetic", tmp_path)
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a leaderboard"):
        update_leaderboard(_records("r1", [1.0]), dataset="synthetic", results=tmp_path)
    assert path.read_text(encoding="utf-8") == "a,b\n1,2\n"  # left untouched
    path.write_text(",".join(LEADERBOARD_COLUMNS) + "\nr1,m\n", encoding="utf-8")
    with pytest.raises(InputError, match="wrong number of fields"):
        read_leaderboard_file(path)


# --------------------------------------------------------------------------------------------------
# Concurrency and crashes, with real processes


_WRITER = textwrap.dedent("""
    import random, sys, time
    sys.path.insert(0, {tests!r})
    from test_evaluate_leaderboard import _records
    from hdrbench.evaluate.leaderboard import update_leaderboard
    from pathlib import Path
    tag, n, peers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    Path({results!r}).mkdir(parents=True, exist_ok=True)
    (Path({results!r}) / f"ready-{{tag}}").touch()
    while not all((Path({results!r}) / f"ready-{{p}}").exists() for p in peers):  # start together
        time.sleep(0.001)
    for i in range(n):
        update_leaderboard(_records(f"{{tag}}-{{i:03d}}", [float(i), float(i) + 1.0], method=tag),
                           dataset="synthetic", results={results!r})
        print(f"{{tag}}-{{i:03d}} {{time.time()!r}}", flush=True)  # this run's block is now committed
        # A pause between updates, as between two evaluations: without it one process re-takes the lock before
        # the other polls it (filelock polls every 50 ms), and the writers would take turns in long bursts.
        time.sleep(random.uniform(0.0, 0.06))
""")


def _writer_script(tmp_path: Path) -> Path:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(tests=str(REPO / "tests"), results=str(tmp_path / "results")), encoding="utf-8")
    return script


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_two_concurrent_writers_lose_no_rows(tmp_path):
    script = _writer_script(tmp_path)
    n = 25
    procs = [subprocess.Popen([sys.executable, str(script), tag, str(n), "a", "b"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env()) for tag in ("a", "b")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    # The two writers really ran at the same time: each committed updates while the other was still writing.
    done = [[float(line.split()[1]) for line in o[0].splitlines()] for o in outs]
    assert done[0][0] < done[1][-1] and done[1][0] < done[0][-1]
    rows = _read_csv_strictly(leaderboard_path("synthetic", tmp_path / "results"))
    expected = {f"{t}-{i:03d}" for t in ("a", "b") for i in range(n)}
    assert {r["run_id"] for r in rows} == expected and len(rows) == 2 * n  # one row per run: nothing lost
    for r in rows:
        i = int(r["run_id"].split("-")[1])
        assert float(r["mean"]) == i + 0.5 and r["method"] == r["run_id"][0]
    assert not list((tmp_path / "results").glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.slow
def test_two_concurrent_evaluations_share_one_leaderboard(tmp_path):
    import cv2

    folder = tmp_path / "hdr"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        assert cv2.imwrite(str(folder / f"im{i}.hdr"), (rng.random((24, 24, 3)) * 30 + 0.01).astype(np.float32))
    cmd = [sys.executable, "-m", "hdrbench", "evaluate", "--dataset", f"hdr-folder:{folder}", "--split", "all",
           "--resolution", "native", "--hdr-metrics", "pu21-psnr", "--stack-metrics", "psnr", "--no-progress",
           "--out", str(tmp_path / "runs")]
    procs = [subprocess.Popen(cmd + ["--method", m], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env()) for m in ("ldr-linear", "exposure-scaling")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    rows = read_leaderboard_file(leaderboard_path(f"hdr-folder:{folder}"))
    assert {r["method"] for r in rows} == {"ldr-linear", "exposure-scaling"}
    assert len({r["run_id"] for r in rows}) == 2
    # ldr-linear: one HDR row; exposure-scaling: one HDR row and six stack EVs.
    assert sorted((r["method"], r["target"]) for r in rows).count(("exposure-scaling", "stack")) == 6
    assert all(r["n_images"] == "2" and r["n_failed"] == "0" for r in rows)


_SLOW_WRITER = textwrap.dedent("""
    import io, sys, time
    sys.path.insert(0, {tests!r})
    from test_evaluate_leaderboard import _records
    from hdrbench.evaluate import leaderboard as lb
    real = lb._write_rows

    def half_then_hang(fh, rows):
        # Write part of the new table into the temporary file, say so, then wait to be killed.
        buf = io.StringIO()
        real(buf, rows)
        text = buf.getvalue()
        fh.write(text[: len(text) // 2])
        fh.flush()
        open({marker!r}, "w").close()
        time.sleep(600)

    lb._write_rows = half_then_hang
    lb.update_leaderboard(_records("killed", [1.0, 2.0, 3.0], method="victim"), dataset="synthetic",
                          results={results!r})
""")


def test_writer_killed_mid_write_leaves_the_previous_file(tmp_path):
    results = tmp_path / "results"
    update_leaderboard(_records("before", [4.0, 6.0]), dataset="synthetic", results=results)
    path = leaderboard_path("synthetic", results)
    before = path.read_bytes()
    marker = tmp_path / "writing"
    script = tmp_path / "slow.py"
    script.write_text(_SLOW_WRITER.format(tests=str(REPO / "tests"), marker=str(marker), results=str(results)),
                      encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.time() < deadline, "the writer never started writing"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # while it holds the lock with a half-written temporary file
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before  # the leaderboard is exactly the previous file
    orphans = list(results.glob(f".{path.name}.*.tmp"))
    assert len(orphans) == 1 and orphans[0].stat().st_size > 0  # the half-written temporary is all that was lost
    # The dead writer's lock is released with its process; the next update succeeds and cleans up.
    update_leaderboard(_records("after", [1.0]), dataset="synthetic", results=results)
    rows = _read_csv_strictly(path)
    assert sorted(r["run_id"] for r in rows) == ["after", "before"]
    assert not list(results.glob(f".{path.name}.*.tmp"))


def test_writer_killed_at_a_random_moment_keeps_every_committed_run(tmp_path):
    script = _writer_script(tmp_path)
    proc = subprocess.Popen([sys.executable, str(script), "k", "400"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    committed: list[str] = []
    try:
        # Wait for a few committed updates, then kill at an arbitrary point of the loop (mostly inside an update,
        # which is where the writer spends its time).
        while len(committed) < 8:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()[-2000:]
            committed.append(line.strip())
        time.sleep(0.137)
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    committed = [c.split()[0] for c in committed] + [line.split()[0] for line in rest.splitlines() if line.strip()]
    path = leaderboard_path("synthetic", tmp_path / "results")
    rows = _read_csv_strictly(path)
    ids = [r["run_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(committed) <= set(ids)  # every update that returned is in the file
    # At most the one update in flight at the kill is present without its print.
    assert len(set(ids) - set(committed)) <= 1
    update_leaderboard(_records("next", [1.0]), dataset="synthetic", results=tmp_path / "results")
    assert {r["run_id"] for r in _read_csv_strictly(path)} == set(ids) | {"next"}

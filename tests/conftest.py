"""Test configuration shared by every test module.

Real data lives in ``../shared/data`` beside the repository (``HDRBENCH_SHARED_DATA`` overrides it).
Tests read it through the :func:`shared_data` fixture only. Where it is absent the test is skipped
with the reason, except under ``CI=true``, where a missing data folder is a failure: CI always has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before torch loads OpenMP: idle threads sleep instead of spin-waiting. Tests that start torchrun workers
# put more threads than cores on a 2-core machine, and spinning threads then slow every process tenfold.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after the OpenMP setting above)

# One intra-op thread for the whole session, set once: the tests use small tensors, for which OpenMP's
# start-up and spin-waiting cost more than a second core gains (measured on a busy 2-core machine: the
# 30-row HDR-VDP reference check 77 s with two threads against 6.5 s with one, the MS-SSIM check 10 s
# against 0.9 s), and changing the thread count inside one process has been seen to break a later LAPACK
# call in oneMKL, so no module changes it. Results do not depend on the thread count beyond rounding.
torch.set_num_threads(int(os.environ.get("HDRBENCH_TEST_THREADS", "1")))

REPO_ROOT = Path(__file__).resolve().parent.parent


def _shared_data_root() -> Path:
    env = os.environ.get("HDRBENCH_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ``../shared/data``; skips (fails in CI) when absent."""
    root = _shared_data_root()
    if not root.is_dir():
        msg = f"real test data not found at {root} (set HDRBENCH_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + "; CI must have it")
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory) -> Path:
    # Generated datasets are deterministic for their parameters (the cache folder name hashes them), so
    # one cache per test session is safe and spares every test the generation time.
    return tmp_path_factory.mktemp("hdrbench-cache")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch, _session_cache):
    """Keep every test's caches, runs and results out of the user's folders and the repository."""
    monkeypatch.setenv("HDRBENCH_CACHE", str(_session_cache))
    monkeypatch.setenv("HDRBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HDRBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("OPENCV_IO_ENABLE_OPENEXR", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(0)

"""Where hdrbench keeps caches, runs and results, and where its declarations (recipes, cards) live.

Every location can be overridden by an environment variable so that tests and CI never touch a
user's home directory:

* ``HDRBENCH_CACHE``: generated datasets (default ``~/.cache/hdrbench``).
* ``HDRBENCH_RESULTS``: leaderboards (default ``./results``).
* ``HDRBENCH_RUNS``: run folders and checkpoints (default ``./runs``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Directory for generated data (synthetic scenes, stacks simulated from HDR folders)."""
    return Path(os.environ.get("HDRBENCH_CACHE", Path.home() / ".cache" / "hdrbench"))


def results_dir() -> Path:
    """Directory that holds the leaderboards and committed result tables."""
    return Path(os.environ.get("HDRBENCH_RESULTS", "results"))


def runs_dir() -> Path:
    """Directory that holds one folder per run (configuration, environment, records, log, checkpoints)."""
    return Path(os.environ.get("HDRBENCH_RUNS", "runs"))


PACKAGE_ROOT = Path(__file__).resolve().parent


def _declaration_dir(package_subdir: str, repo_subdir: str) -> Path:
    # A source checkout reads the top-level folder directly; an installed wheel ships the same files
    # inside the package as ``hdrbench/<package_subdir>`` (see setup.py).
    local = REPO_ROOT / repo_subdir
    if local.is_dir() and (REPO_ROOT / "pyproject.toml").is_file():
        return local
    return PACKAGE_ROOT / package_subdir


def recipes_dir() -> Path:
    """Folder of method recipes (``methods/*.toml``)."""
    return _declaration_dir("_recipes", "methods")


def cards_dir() -> Path:
    """Folder of dataset cards (``datasets/*.toml``)."""
    return _declaration_dir("_cards", "datasets")

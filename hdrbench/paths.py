"""Where hdrbench keeps caches, runs and results, and where its declarations (recipes, cards) live.

Every location can be overridden by an environment variable so that tests and CI never touch a
user's home directory:

* ``HDRBENCH_CACHE``: generated datasets and lock files (default ``~/.cache/hdrbench``).
* ``HDRBENCH_RESULTS``: the user's results folder: leaderboards and published records (default
  ``<runs folder>/results``, i.e. ``./runs/results``).
* ``HDRBENCH_RUNS``: run folders and checkpoints (default ``./runs``).

The repository's committed ``results/`` is never written by default: only ``--publish`` (a maintainer's
explicit request, :func:`published_results_dir`) or an explicit ``HDRBENCH_RESULTS`` pointing at it do so.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Directory for generated data (synthetic scenes, stacks simulated from HDR folders)."""
    return Path(os.environ.get("HDRBENCH_CACHE", Path.home() / ".cache" / "hdrbench"))


def results_dir() -> Path:
    """The user's results folder: leaderboards and published records (``$HDRBENCH_RESULTS``, default
    ``<runs folder>/results``)."""
    env = os.environ.get("HDRBENCH_RESULTS")
    return Path(env) if env else runs_dir() / "results"


def published_results_dir() -> Path:
    """The repository's committed ``results/`` folder, written only on an explicit ``--publish``.

    Raises:
        InputError: hdrbench runs from an installed package, not from a source checkout (there is no
            committed results folder to publish into).
    """
    from hdrbench.errors import InputError

    folder = REPO_ROOT / "results"
    if not ((REPO_ROOT / "pyproject.toml").is_file() and folder.is_dir()):
        raise InputError(f"--publish writes the committed results/ of a source checkout, and {REPO_ROOT} is not "
                         "one; set HDRBENCH_RESULTS to choose a results folder instead")
    return folder


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file guarding ``target`` (a leaderboard, a benchmark CSV): in the cache folder, named by a hash
    of ``target``'s absolute path, so that no lock file is left beside results (or in a git checkout)."""
    import hashlib

    resolved = Path(target).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:16]
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{resolved.name}-{digest}.lock"


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

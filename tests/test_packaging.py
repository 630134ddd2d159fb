"""The README's set-up commands, CI's entry point and the wheel's contents stay consistent."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- setup-commands -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README.md must hold the set-up commands in a ```bash block after <!-- setup-commands -->"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_readme_has_exactly_two_setup_commands():
    cmds = _readme_setup_commands()
    assert len(cmds) == 2, cmds
    assert any(c.endswith("demo") for c in cmds) and any(c.endswith("test") for c in cmds), cmds


def test_ci_runs_the_readme_test_command():
    test_cmd = next(c for c in _readme_setup_commands() if c.endswith("test"))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_cmds = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert test_cmd in ci_cmds, f"{test_cmd!r} not found in .ci/run"


@pytest.mark.slow
def test_wheel_ships_recipes_cards_and_package_data(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("hdrbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for toml in (ROOT / "methods").glob("*.toml"):
        assert f"hdrbench/_recipes/{toml.name}" in names, toml.name
    for toml in (ROOT / "datasets").glob("*.toml"):
        assert f"hdrbench/_cards/{toml.name}" in names, toml.name
    # The embedded photographs, their manifest and licence texts travel with the card that names them.
    for path in (ROOT / "datasets" / "photos").rglob("*"):
        if path.is_file():
            rel = path.relative_to(ROOT / "datasets").as_posix()
            assert f"hdrbench/_cards/{rel}" in names, rel
    assert "hdrbench/cli.py" in names
    # HDR-VDP's constants are data, not code: without them the metric cannot load from an installed wheel.
    assert "hdrbench/metrics/hdrvdp2/constants.json" in names
    # The native kernels (synthesis layer, HDR-VDP-2) are compiled from their sources on first use, on the user's machine.
    assert "hdrbench/imaging/synthesis/log_merge_kernel.cpp" in names
    assert "hdrbench/metrics/hdrvdp2/kernels.cpp" in names

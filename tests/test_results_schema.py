"""Every committed file under results/ is valid, and committed tables regenerate byte for byte.

Result files are data other people cite; this test keeps them machine-readable (kornia's practice of
validating committed benchmark results) and proves the tables come from the committed records.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hdrbench.evaluate.records import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
BENCH_ENV_COLUMNS = {"timestamp_utc", "machine", "platform", "device", "python", "torch", "hdrbench"}


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def _files(pattern: str) -> list[Path]:
    return sorted(RESULTS.glob(pattern)) if RESULTS.is_dir() else []


@pytest.mark.parametrize("path", _files("records/**/*.csv"), ids=str)
def test_committed_records_follow_the_schema(path):
    from hdrbench.report.records_io import read_records

    assert _header(path) == list(COLUMNS)
    assert len(read_records([path])) > 0


@pytest.mark.parametrize("path", _files("bench-*.csv"), ids=str)
def test_benchmark_rows_carry_machine_and_versions(path):
    header = set(_header(path))
    assert BENCH_ENV_COLUMNS <= header, BENCH_ENV_COLUMNS - header
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["torch"] and r["machine"] and r["timestamp_utc"] for r in rows)


def test_committed_tables_regenerate_byte_identically(tmp_path):
    records = RESULTS / "records"
    # The CRF study is computed from a dataset's stacks, not from records (`hdrbench calibrate --study`).
    committed = [p for p in sorted((RESULTS / "tables").glob("*.csv")) if not p.name.startswith("crf_study")] \
        if (RESULTS / "tables").is_dir() else []
    if not committed:
        pytest.skip("no committed tables under results/tables")
    from hdrbench.report.build import build_tables

    build_tables([records], tmp_path, figures_on=False)
    for path in committed:
        regenerated = tmp_path / "tables" / path.name
        assert regenerated.exists(), f"{path.name} is committed but not produced from the records"
        assert regenerated.read_bytes() == path.read_bytes(), f"{path.name} differs when regenerated"

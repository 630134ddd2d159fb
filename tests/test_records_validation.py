"""``hdrbench tables`` validates every record file it is given or finds: each malformed file is an error that
names the file, the line and the reason (never a silently skipped method or a short count)."""

from __future__ import annotations

import math

import pytest

from hdrbench.cli import main
from hdrbench.evaluate.records import COLUMNS, Record
from hdrbench.evaluate.runs import write_records_csv
from hdrbench.report.records_io import RecordSetError, read_records


def _rows(method: str = "m") -> list[dict]:
    rows = []
    for scene in ("s0", "s1", "s2"):
        base = dict(run_id="r", method=method, dataset="synthetic", split="test", scene=scene)
        rows.append(Record(**base, target="stack", ev=1.0, metric="psnr", value=30.0).as_row())
        rows.append(Record(**base, target="hdr", metric="pu21-psnr", value=math.inf, protocol="singlehdr",
                           protocol_version="1").as_row())
    return rows


def _folder(tmp_path):
    """A published record set with two methods, as the harness writes it."""
    folder = tmp_path / "records" / "synthetic"
    write_records_csv(folder / "a.records.csv", _rows("a"))
    write_records_csv(folder / "b.records.csv", _rows("b"))
    return tmp_path / "records"


def test_a_valid_record_set_with_infinite_psnr_reads(tmp_path):
    df = read_records([_folder(tmp_path)])
    assert set(df["method"]) == {"a", "b"} and len(df) == 12
    assert (df.loc[df["metric"] == "pu21-psnr", "value"] == math.inf).all()  # identical images: +inf is a result


def _edit_line(path, line: int, fn) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = fn(lines[line - 1])
    path.write_text("".join(lines))


def _set_field(column: str, value: str):
    i = COLUMNS.index(column)

    def fn(text: str) -> str:
        fields = text.rstrip("\n").split(",")
        fields[i] = value
        return ",".join(fields) + "\n"

    return fn


@pytest.mark.parametrize("damage, line, reason", [
    # a missing column: the method would vanish from every table if the file were skipped
    (lambda p: p.write_text("\n".join(",".join(f for j, f in enumerate(row.split(",")) if j != 10)
                                      for row in p.read_text().splitlines()) + "\n"), 1, "missing columns .'value'."),
    (lambda p: p.write_bytes(p.read_bytes()[:-25]), 7, "ends in the middle of a row"),  # cut mid-row
    (lambda p: _edit_line(p, 3, _set_field("value", "nan")), 3, "NaN of pu21-psnr on a row without an error"),
    (lambda p: _edit_line(p, 2, _set_field("value", "")), 2, "psnr has no value and no error"),
    (lambda p: _edit_line(p, 3, _set_field("value", "-inf")), 3, "'-inf' is not a possible pu21-psnr result"),
    # +inf is not a possible SSIM: an infinite PSNR row relabelled as SSIM
    (lambda p: _edit_line(p, 3, _set_field("metric", "ssim")), 3, "'inf' is not a possible ssim result"),
    (lambda p: _edit_line(p, 4, _set_field("schema_version", "99")), 4, "schema_version '99'"),
    (lambda p: _edit_line(p, 5, lambda t: t.replace(",test,", ",test,x,", 1)), 5, "21 fields, expected 20"),
])
def test_each_malformed_record_file_is_named_with_its_line(tmp_path, damage, line, reason):
    records = _folder(tmp_path)
    bad = records / "synthetic" / "b.records.csv"
    damage(bad)
    # Found by searching the folder, and named explicitly: the same error.
    for source in (records, bad):
        with pytest.raises(RecordSetError, match=reason) as info:
            read_records([source])
        assert f"{bad}, line {line}:" in str(info.value)


def test_tables_command_exits_2_naming_the_bad_file(tmp_path, capsys):
    records = _folder(tmp_path)
    bad = records / "synthetic" / "a.records.csv"
    _edit_line(bad, 2, _set_field("schema_version", "99"))
    assert main(["tables", "--records", str(records), "--out", str(tmp_path / "out"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, line 2: schema_version '99'" in err and "Traceback" not in err


def test_other_csv_files_in_a_searched_folder_are_not_record_files(tmp_path):
    records = _folder(tmp_path)
    (records / "leaderboard-synthetic.csv").write_text("run_id,method,mean\nr,a,1.0\n")
    assert len(read_records([records])) == 12

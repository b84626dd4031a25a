import os
import stat

import pandas as pd
import pytest
from openpyxl import load_workbook

from helpers.files import (
    neutralise_formula,
    open_raw,
    save_csv,
    save_parquet,
    save_text,
    save_xlsx,
    write_atomically,
)


def test_interrupted_write_leaves_previous_output_intact(tmp_path):
    target = tmp_path / "customers_customer.parquet"
    save_parquet(pd.DataFrame({"customer_key": ["c_1", "c_2"]}), target)

    def crash_halfway(path):
        path.write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, crash_halfway)

    assert pd.read_parquet(target)["customer_key"].tolist() == ["c_1", "c_2"]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1 202 555 0143", "'+1 202 555 0143"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("Customer 17", "Customer 17"),
        (-5, -5),
    ],
)
def test_formula_cells_are_neutralised(cell, expected):
    assert neutralise_formula(cell) == expected


def test_csv_and_xlsx_writers_neutralise_formulas(tmp_path):
    frame = pd.DataFrame({"name": ["=1+1", "Ann"], "outcome": [None, None]})
    save_csv(frame, tmp_path / "list.csv")
    save_xlsx(
        frame, tmp_path / "list.xlsx", dropdowns={"outcome": ["connected", "busy"]}
    )

    assert pd.read_csv(tmp_path / "list.csv")["name"].tolist() == ["'=1+1", "Ann"]
    sheet = load_workbook(tmp_path / "list.xlsx").active
    assert sheet["A2"].value == "=1+1", "shown as typed, without an apostrophe"
    assert sheet["A2"].data_type == "s" and sheet["A2"].quotePrefix
    assert not sheet["A3"].quotePrefix
    validations = sheet.data_validations.dataValidation
    assert [str(v.sqref) for v in validations] == ["B2:B3"]


def test_raw_files_cannot_be_opened_for_writing(tmp_path):
    raw = tmp_path / "orders.csv"
    raw.write_text("Name\n#1001\n")
    with pytest.raises(ValueError, match="read-only"):
        open_raw(raw, "r+")
    with open_raw(raw) as handle:
        assert handle.read() == b"Name\n#1001\n"


def test_column_names_and_drop_down_values_are_neutralised_too(tmp_path):
    # Names and list values can come from the data (a code, an arm, a product).
    frame = pd.DataFrame({"=cmd|' /C calc'!A0": ["x"], "outcome": [None]})
    save_csv(frame, tmp_path / "list.csv")
    save_xlsx(
        frame, tmp_path / "list.xlsx",
        dropdowns={"outcome": ["=HYPERLINK(\"http://x\")", "busy"]},
        column_widths={"=cmd|' /C calc'!A0": 30},
    )  # fmt: skip
    header = (tmp_path / "list.csv").read_text().splitlines()[0]
    assert header.startswith("'=cmd|")
    workbook = load_workbook(tmp_path / "list.xlsx")
    cells = [
        cell for sheet in workbook for row in sheet.iter_rows() for cell in row
        if cell.value is not None
    ]  # fmt: skip
    assert {cell.data_type for cell in cells} == {"s"}, "no cell is a formula"
    assert workbook["lists"]["A1"].quotePrefix
    assert workbook.active["A1"].value == "=cmd|' /C calc'!A0"
    assert workbook.active["A1"].quotePrefix


def test_a_written_file_has_the_umask_permissions_not_mkstemps(tmp_path):
    previous = os.umask(0o022)
    try:
        save_text("report", tmp_path / "report.txt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "report.txt").stat().st_mode) == 0o644


def test_a_temporary_file_left_by_a_killed_run_goes_with_the_next_write(tmp_path):
    target = tmp_path / "call-list.csv"
    left = tmp_path / ".call-list.csv.abc123.part"
    left.write_text("name,phone\nCustomer 1,+12025550111\n")
    other = tmp_path / ".orders.csv.abc123.part"
    other.write_text("kept: another target's write may be under way")
    save_text("new", target)
    assert not left.exists() and other.exists()
    assert target.read_text() == "new"

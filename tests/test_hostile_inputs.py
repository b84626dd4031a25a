"""Hostile inputs: each gives a clear error, or a warning and a right result.

Every error must be a HeardInputError (never a bare traceback) whose message names
the file, the row and column where there is one, and says what to do. Each input is
a small valid file broken in one way, so the expected outcome is known by hand.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import calls, coding, experiments, exports, insights
from helpers.checks import check_study
from helpers.cli import main
from helpers.codebook import load_codebook
from helpers.errors import HeardInputError
from helpers.study import load_defaults, load_study

from conftest import REPO

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
MONTH = "2026-11"
AS_OF = pd.Timestamp("2026-12-01", tz="UTC")
STUDY_YML = f"""\
study:
  default_country: US
  timezone: America/New_York
  store_opened: 2023-03-01
months:
  "{MONTH}":
    question: What almost stopped you from buying?
    segments: [cart_abandoners]
"""
HEADER = (HOSTILE / "orders.csv").read_text().splitlines()[0]
ROW = "#{n},c{n}@example.com,2026-11-05 09:00:00 -0500,{total},1,{product},{total},,US"


def order_row(n: int, *, total: str = "10.00", product: str = "Mug") -> str:
    return ROW.format(n=n, total=total, product=product)


@pytest.fixture
def study_dir(tmp_path) -> Path:
    folder = tmp_path / "data" / "raw" / "hostile"
    (folder / "exports" / MONTH).mkdir(parents=True)
    (folder / "study.yml").write_text(STUDY_YML)
    return folder


def put_export(study_dir: Path, data: bytes | str, name="orders_export.csv") -> Path:
    path = study_dir / "exports" / MONTH / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def read_exports(study_dir: Path):
    study = load_study(study_dir, root=study_dir.parents[2])
    return exports.load_store_exports(study, MONTH, as_of=AS_OF)


def problems_of(study_dir: Path, severity: str) -> list:
    found = check_study(study_dir, month=MONTH, root=study_dir.parents[2])
    return [p for p in found if p.severity == severity]


def assert_names(error: HeardInputError, path: Path, *, row=None, column=None):
    """The message names the file (and row and column) and says how to fix it."""
    message = str(error)
    assert str(path) in message
    assert error.fix, "the message must say what to do"
    if row is not None:
        assert error.row == row and f"row {row}" in message
    if column is not None:
        assert error.column == column and f"column '{column}'" in message


# --------------------------------------------------------------------------------------
# Store exports
# --------------------------------------------------------------------------------------


def test_empty_export_is_an_error_at_row_1(study_dir):
    path = put_export(study_dir, b"")
    with pytest.raises(HeardInputError) as caught:
        read_exports(study_dir)
    assert_names(caught.value, path, row=1)
    [problem] = problems_of(study_dir, "error")
    assert problem.file == str(path) and "empty" in problem.found


def test_header_only_export_reads_as_no_orders_with_a_warning(study_dir):
    put_export(study_dir, HEADER + "\n")
    assert len(read_exports(study_dir).orders) == 0
    warnings = problems_of(study_dir, "warning")
    assert any("a header and no rows" in p.message for p in warnings)
    assert problems_of(study_dir, "error") == []


def test_meta_ads_export_given_as_orders_names_the_closest_layout(study_dir):
    path = put_export(study_dir, (HOSTILE / "meta-ads-export.csv").read_bytes())
    with pytest.raises(HeardInputError) as caught:
        read_exports(study_dir)
    assert_names(caught.value, path, row=1)
    assert "Amount spent (USD)" in str(caught.value)
    assert "exports.column_map" in caught.value.fix


def test_truncated_row_is_named_and_never_counted_as_an_order(study_dir):
    text = f"{HEADER}\n{order_row(1)}\n#2,c2@example.com,2026-11-05 09:00:00 -0500\n"
    path = put_export(study_dir, text)
    [problem] = problems_of(study_dir, "error")
    assert (problem.file, problem.row, problem.column) == (str(path), 3, "Total")
    assert "cut short" in problem.fix
    # The loader on its own must not turn the half row into a zero-value order.
    with pytest.raises(HeardInputError) as caught:
        read_exports(study_dir)
    assert_names(caught.value, path, column="total")


def test_cp1252_bytes_inside_a_utf8_export_name_the_line(study_dir):
    utf8 = f"{HEADER}\n{order_row(1, product='Zoë mug')}\n".encode()
    pasted = (order_row(2, product="Café mug") + "\n").encode("cp1252")
    path = put_export(study_dir, utf8 + pasted)
    with pytest.raises(HeardInputError) as caught:
        read_exports(study_dir)
    assert_names(caught.value, path, row=3)
    [problem] = problems_of(study_dir, "error")
    assert problem.row == 3 and "UTF-8" in problem.fix


def test_cp1252_bytes_past_the_sniffed_sample_are_not_a_traceback(study_dir):
    rows = [order_row(n, product="Zoë mug") for n in range(1, 1200)]
    utf8 = "\n".join([HEADER, *rows, ""]).encode()
    assert len(utf8) > exports.SAMPLE_BYTES
    path = put_export(study_dir, utf8 + (order_row(9999) + " café\n").encode("cp1252"))
    with pytest.raises(HeardInputError) as caught:
        read_exports(study_dir)
    assert str(path) in str(caught.value) and caught.value.fix
    [problem] = problems_of(study_dir, "error")
    assert problem.row == 1201


def test_a_whole_cp1252_export_is_read_correctly(study_dir):
    text = f"{HEADER}\n{order_row(1, product='Café mug', total='12.50')}\n"
    put_export(study_dir, text.encode("cp1252"))
    read = read_exports(study_dir)
    assert read.lines["product"].tolist() == ["Café mug"]
    assert read.orders["total"].tolist() == [12.5]
    assert problems_of(study_dir, "error") == []


def test_utf16_export_is_named_as_such_not_read_as_garbled_columns(study_dir):
    # Excel's 'Unicode Text' is UTF-16: read as cp1252 it is NULs between letters.
    text = f"{HEADER}\n{order_row(1)}\n".replace(",", "\t")
    path = put_export(study_dir, text.encode("utf-16"))
    with pytest.raises(HeardInputError) as caught:
        read_exports(study_dir)
    assert_names(caught.value, path, row=1)
    assert "UTF-16" in str(caught.value.found) and "CSV UTF-8" in caught.value.fix
    [problem] = problems_of(study_dir, "error")
    assert (problem.file, problem.row) == (str(path), 1)
    assert "UTF-16" in problem.found


@pytest.mark.parametrize(
    ("data", "found"),
    [(b"", "an empty file"), (b"Name,Email\n#1,a@example.com\n", "another kind")],
    ids=["empty", "renamed-csv"],
)
def test_export_xlsx_that_is_not_a_workbook_is_an_error(study_dir, data, found):
    path = put_export(study_dir, data, name="orders_export.xlsx")
    with pytest.raises(HeardInputError) as caught:
        read_exports(study_dir)
    assert_names(caught.value, path)
    assert caught.value.found.startswith(found)
    [problem] = problems_of(study_dir, "error")
    assert problem.file == str(path) and problem.expected.startswith("an Excel")


def test_duplicated_header_is_an_error_naming_the_column(study_dir):
    header = HEADER.replace("Lineitem price", "Total")
    path = put_export(study_dir, f"{header}\n{order_row(1)}\n")
    [problem] = problems_of(study_dir, "error")
    assert (problem.file, problem.row, problem.column) == (str(path), 1, "Total")
    assert "columns 4 and 7" in problem.found
    with pytest.raises(HeardInputError) as caught:
        read_exports(study_dir)
    assert_names(caught.value, path, row=1, column="Total")


def test_million_character_cell_warns_and_keeps_every_total_right(study_dir):
    long_name = "x" * 1_000_000
    text = "\n".join(
        [HEADER, order_row(1, total="20.00"), order_row(2, product=long_name), ""]
    )
    put_export(study_dir, text)
    read = read_exports(study_dir)
    assert dict(zip(read.orders["order_id"], read.orders["total"], strict=True)) == {
        "#1": 20.0,
        "#2": 10.0,
    }
    warnings = problems_of(study_dir, "warning")
    assert any("1,000,000 characters" in p.message for p in warnings)
    assert problems_of(study_dir, "error") == []


def test_dates_in_the_future_or_before_the_store_opened_are_rejected_with_reasons(
    study_dir,
):
    future = order_row(2).replace("2026-11-05", "2031-11-05")
    early = order_row(3).replace("2026-11-05", "2019-06-01")
    put_export(study_dir, "\n".join([HEADER, order_row(1), future, early, ""]))
    read = read_exports(study_dir)
    assert read.orders["order_id"].tolist() == ["#1"]
    reasons = dict(zip(read.rejected["row"], read.rejected["reason"], strict=True))
    assert reasons == {
        3: "date in the future",
        4: "date before the store opened (study.store_opened)",
    }
    assert set(read.rejected["column"]) == {"Created at"}
    [warning] = [
        p.message for p in problems_of(study_dir, "warning") if "rejected" in p.message
    ]
    assert warning.endswith(
        "2 of 3 rows rejected and kept with their reasons: 1 × date in the future "
        "(row 3); 1 × date before the store opened (study.store_opened) (row 4)"
    )


def test_checkout_ids_damaged_by_a_spreadsheet_are_rejected_not_merged(study_dir):
    # Excel rounds 14-digit checkout ids to 3.187E+13: one id for many checkouts.
    rows = [order_row(n).replace(f"#{n},", "3.187E+13,", 1) for n in (1, 2)]
    put_export(study_dir, "\n".join([HEADER, *rows, order_row(3), ""]),
               name="abandoned_checkouts_export.csv")  # fmt: skip
    read = read_exports(study_dir)
    assert read.checkouts["checkout_id"].tolist() == ["#3"]
    assert set(read.rejected["reason"]) == {
        "id damaged by a spreadsheet (scientific notation)"
    }
    assert read.rejected["row"].tolist() == [2, 3]


def test_negative_and_non_numeric_amounts_are_rejected_and_totals_stay_right(
    study_dir,
):
    rows = [order_row(1, total="20.00"), order_row(2, total="-20.00"),
            order_row(3, total="twenty"), order_row(4, total="5.25"),
            order_row(5, total="1e400")]  # fmt: skip
    put_export(study_dir, "\n".join([HEADER, *rows, ""]))
    read = read_exports(study_dir)
    assert read.orders["total"].sum() == pytest.approx(25.25)
    rejected = read.rejected.query("column == 'Total'")
    # 1e400 reads as a float overflowing to infinity: no amount is infinite.
    assert dict(zip(rejected["row"], rejected["reason"], strict=True)) == {
        3: "negative amount",
        4: "not a number",
        6: "not a number",
    }
    # Rejected rows are kept with their reasons, never with their values.
    assert list(read.rejected.columns) == ["file", "row", "column", "reason"]


# --------------------------------------------------------------------------------------
# Call logs
# --------------------------------------------------------------------------------------

LOG_HEADER = "reference,attempted_at,caller,outcome,talk_seconds\n"
ASSIGNMENT = pd.DataFrame(
    {"customer_key": ["c_1", "c_2"], "segment": ["s", "s"], "arm": ["called"] * 2}
)
CALLS_CONFIG = {"study": {"timezone": "America/New_York", "default_country": "US"}}


def read_log(tmp_path: Path, data: bytes | str) -> tuple[Path, object]:
    path = tmp_path / "calls" / MONTH / "call-log.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path, lambda: calls.load_call_log(
        path, assignment=ASSIGNMENT, config=CALLS_CONFIG, now=AS_OF
    )


def test_unknown_outcome_names_row_column_and_the_vocabulary(tmp_path):
    line = "c_1,2026-11-05T10:00:00-05:00,Alex,picked up,30\n"
    path, load = read_log(tmp_path, LOG_HEADER + line)
    with pytest.raises(HeardInputError) as caught:
        load()
    assert_names(caught.value, path, row=2, column="outcome")
    assert "voicemail" in caught.value.expected and "status_map" in caught.value.fix


def test_negative_talk_time_names_its_row(tmp_path):
    rows = "c_1,2026-11-05T10:00:00-05:00,Alex,connected,30\n" + (
        "c_2,2026-11-05T11:00:00-05:00,Alex,connected,-30\n"
    )
    path, load = read_log(tmp_path, LOG_HEADER + rows)
    with pytest.raises(HeardInputError) as caught:
        load()
    assert_names(caught.value, path, row=3, column="talk_seconds")


def test_a_tired_callers_mistakes_are_all_named_at_once(tmp_path):
    rows = (
        "c_1,2026-11-05T10:00:00-05:00,Alex,conected,30\n"
        "c_2,2026-11-05T11:00:00-05:00,Alex,connected,-30\n"
        "c_3,2026-11-05T12:00:00-05:00,Alex,voicemail,5\n"
        "c_1,2026-11-31T09:00:00-05:00,Alex,no_answer,\n"
        "c_2,2026-11-06T09:00:00-05:00,Alex,connected,ten minutes\n"
    )
    path, load = read_log(tmp_path, LOG_HEADER + rows)
    with pytest.raises(HeardInputError) as caught:
        load()
    named = [(p.row, p.column) for p in caught.value.problems]
    assert named == [
        (2, "outcome"), (3, "talk_seconds"), (4, "reference"),
        (5, "attempted_at"), (6, "talk_seconds"),
    ]  # fmt: skip
    for problem in caught.value.problems:
        assert_names(problem, path, row=problem.row, column=problem.column)
        assert problem.expected and problem.found is not None
        assert str(problem) in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        # 0x81 is a byte neither UTF-8 nor Windows-1252 can decode.
        (LOG_HEADER + "c_1,2026-11-05T10:00:00-05:00,Ren\xe9,connected,3\n").encode(
            "latin-1"
        )
        + b"\x81\n",
    ],
    ids=["empty", "not-text"],
)
def test_unreadable_call_log_is_an_error_not_a_traceback(tmp_path, data):
    path, load = read_log(tmp_path, data)
    with pytest.raises(HeardInputError) as caught:
        load()
    assert_names(caught.value, path)
    assert "exports." not in caught.value.fix  # a setting call logs do not read


def test_call_log_saved_in_windows_1252_reads_its_accents(tmp_path):
    line = "c_1,2026-11-05T10:00:00-05:00,Ren\xe9,connected,3\n"
    _, load = read_log(tmp_path, (LOG_HEADER + line).encode("cp1252"))
    assert load()["caller"].tolist() == ["René"]


def test_header_only_call_log_has_no_attempts(tmp_path):
    _, load = read_log(tmp_path, LOG_HEADER)
    assert len(load()) == 0


# --------------------------------------------------------------------------------------
# Codebook, coding sheets, conversations
# --------------------------------------------------------------------------------------


@pytest.fixture
def codebook():
    return load_codebook(HOSTILE / "codebook.yml")


def write_sheet(tmp_path: Path, **changes) -> Path:
    sheet = pd.DataFrame(
        {
            "conversation_id": ["a", "a"],
            "excerpt_id": ["a-001", "a-002"],
            "position": [1, 2],
            "speaker": ["customer", "customer"],
            "text": ["too dear", "slow post"],
            "code_1": ["OBJ-PRICE", "OBJ-SHIP"],
            "code_2": [None, None],
            "code_3": [None, None],
        }
    )
    sheet = sheet.rename(columns=changes.pop("rename", {})).assign(**changes)
    path = tmp_path / "Rita.xlsx"
    sheet.to_excel(path, index=False)
    return path


def test_valid_sheet_reads_each_code(tmp_path, codebook):
    codings = coding.read_coding_sheet(write_sheet(tmp_path), codebook)
    assert codings[["excerpt_id", "code"]].values.tolist() == [
        ["a-001", "OBJ-PRICE"],
        ["a-002", "OBJ-SHIP"],
    ]


def test_unknown_code_in_a_coding_sheet_names_row_and_column(tmp_path, codebook):
    path = write_sheet(tmp_path, code_1=["OBJ-PRICE", "OBJ-TRUST"])
    with pytest.raises(HeardInputError) as caught:
        coding.read_coding_sheet(path, codebook)
    assert_names(caught.value, path, row=3, column="code_1")
    assert caught.value.found == "OBJ-TRUST"


@pytest.mark.parametrize(
    ("renamed", "reported"),
    [({"code_1": "Code 1"}, "code_1"), ({"excerpt_id": "Excerpt"}, "excerpt_id")],
)
def test_coding_sheet_with_renamed_columns_names_the_column(
    tmp_path, codebook, renamed, reported
):
    path = write_sheet(tmp_path, rename=renamed)
    with pytest.raises(HeardInputError) as caught:
        coding.read_coding_sheet(path, codebook)
    assert_names(caught.value, path, row=1, column=reported)


@pytest.mark.parametrize("data", [b"", b"conversation_id,excerpt_id\na,a-001\n"])
def test_coding_sheet_that_is_not_a_workbook_is_an_error(tmp_path, codebook, data):
    path = tmp_path / "Sam.xlsx"
    path.write_bytes(data)
    with pytest.raises(HeardInputError) as caught:
        coding.read_coding_sheet(path, codebook)
    assert_names(caught.value, path)


def test_conversation_without_front_matter_says_how_to_add_it(tmp_path):
    folder = tmp_path / "conversations"
    folder.mkdir()
    path = folder / "2026-11-01.md"
    shutil.copy(HOSTILE / "note-without-front-matter.md", path)
    with pytest.raises(HeardInputError) as caught:
        coding.read_conversations(folder)
    assert_names(caught.value, path, row=1)
    assert "customer_key" in caught.value.fix


def test_conversation_in_cp1252_names_the_line(tmp_path):
    folder = tmp_path / "conversations"
    folder.mkdir()
    note = (
        "---\nconversation_id: x\ncustomer_key: c_1\ndate: 2026-11-05\n"
        "segment: s\ninterviewer: Al\nconsent_to_quote: yes\n---\n"
        "Customer: the café was closed\n"
    )
    path = folder / "x.md"
    path.write_bytes(note.encode("cp1252"))
    with pytest.raises(HeardInputError) as caught:
        coding.read_conversations(folder)
    assert_names(caught.value, path, row=9)


# --------------------------------------------------------------------------------------
# Experiments, predictions, insights
# --------------------------------------------------------------------------------------

EXPERIMENT = """\
name: subject
hypothesis: Naming free returns lifts orders.
variants:
  - id: control
    name: Current
{more}
split: {split}
primary_metric: conversion_rate
results: {{file: results.csv, kind: arms}}
"""
TWO_ARMS = dict(
    more="  - id: free-returns\n    name: Free returns",
    split="{control: 0.5, free-returns: 0.5}",
)


def load_experiment(tmp_path: Path, results: str, **yml) -> dict:
    (tmp_path / "experiment.yml").write_text(EXPERIMENT.format(**(yml or TWO_ARMS)))
    (tmp_path / "results.csv").write_text(results)
    definition = experiments.load_experiment(
        tmp_path / "experiment.yml", defaults=load_defaults()["experiments"]
    )
    return experiments.read_results(definition)


def test_experiment_with_one_arm_is_refused(tmp_path):
    with pytest.raises(HeardInputError) as caught:
        load_experiment(
            tmp_path, "variant,n,conversions\ncontrol,1000,30\n",
            more="", split="{control: 1.0}",
        )  # fmt: skip
    assert_names(caught.value, tmp_path / "experiment.yml", column="variants")


@pytest.mark.parametrize(
    ("results", "column"),
    [
        (
            "variant,n,conversions\ncontrol,1000,30\nfree-returns,1000,-5\n",
            "conversions",
        ),
        ("variant,n,conversions\ncontrol,1000,30\nfree-returns,1000,1005\n", None),
        (
            "variant,n,conversions\ncontrol,1000,30\nfree-returns,1000,lots\n",
            "conversions",
        ),
        ("", None),
        # A blank is not a zero: read as 0 it made the control convert nobody.
        ("variant,n,conversions\ncontrol,1000,\nfree-returns,1000,40\n", "conversions"),
        ("variant,n,conversions\ncontrol,1000.5,30\nfree-returns,1000,40\n", "n"),
    ],
    ids=["negative", "more-than-n", "not-a-number", "empty", "blank", "partial-unit"],
)
def test_impossible_arm_results_are_errors_not_p_values(tmp_path, results, column):
    with pytest.raises(HeardInputError) as caught:
        load_experiment(tmp_path, results)
    assert_names(caught.value, tmp_path / "results.csv", column=column)


def test_experiment_yml_that_is_a_list_is_an_error(tmp_path):
    path = tmp_path / "experiment.yml"
    path.write_text("- name\n- hypothesis\n")
    with pytest.raises(HeardInputError) as caught:
        experiments.load_experiment(path)
    assert_names(caught.value, path)


@pytest.mark.parametrize(
    "load", [insights.load_predictions, insights.load_insights], ids=["pred", "ins"]
)
def test_empty_predictions_or_insights_file_is_an_error(tmp_path, load):
    path = tmp_path / "file.csv"
    path.write_bytes(b"")
    with pytest.raises(HeardInputError) as caught:
        load(path)
    assert_names(caught.value, path)


# --------------------------------------------------------------------------------------
# Several problems at once, and the command line
# --------------------------------------------------------------------------------------


def test_check_reports_each_broken_file_of_a_study(study_dir):
    put_export(study_dir, b"", name="customers_export.csv")
    put_export(study_dir, (HOSTILE / "meta-ads-export.csv").read_bytes())
    (study_dir / "conversations" / MONTH).mkdir(parents=True)
    shutil.copy(
        HOSTILE / "note-without-front-matter.md",
        study_dir / "conversations" / MONTH / "2026-11-02.md",
    )
    errors = problems_of(study_dir, "error")
    named = sorted(Path(p.file).name for p in errors)
    assert named == ["2026-11-02.md", "customers_export.csv", "orders_export.csv"]
    assert {p.step for p in errors} == {"exports", "conversations"}


def test_heard_check_prints_file_row_and_fix_and_exits_1(
    study_dir, capsys, monkeypatch
):
    monkeypatch.setenv("HEARD_ROOT", str(study_dir.parents[2]))
    put_export(study_dir, f"{HEADER}\n{order_row(1)}\n#2,c2@example.com\n")
    assert main(["check", "hostile", "--month", MONTH]) == 1
    printed = capsys.readouterr().out
    assert "1 error(s)" in printed
    assert "exports/2026-11/orders_export.csv, row 3, column 'Created at'" in printed
    assert "fix:" in printed and "Traceback" not in printed


def test_heard_check_on_a_bad_month_is_a_usage_error_not_a_traceback(study_dir, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["check", str(study_dir), "--month", "2026/11"])
    assert stopped.value.code == 2
    assert "'2026/11' is not a month: write it as YYYY-MM" in capsys.readouterr().err


@pytest.mark.slow
def test_heard_report_stops_on_a_broken_study_with_exit_code_2(study_dir):
    put_export(study_dir, b"")
    for folder in ("notebooks", "reports"):
        (study_dir.parents[2] / folder).symlink_to(REPO / folder)
    result = subprocess.run(
        [sys.executable, "-m", "helpers.cli", "report", "--study", "hostile",
         "--month", MONTH, "--renderer", "fallback"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
        env={"HEARD_ROOT": str(study_dir.parents[2]), "PATH": "/usr/bin:/bin",
             "HEARD_KEY_FILE": str(study_dir.parents[2] / "key")},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    said = result.stderr[result.stderr.index("heard: ") :]
    assert said.startswith(
        f"heard: {study_dir}: expected a study folder without errors"
    )
    assert "orders_export.csv, row 1" in said and "fix:" in said
    assert "Traceback" not in result.stderr

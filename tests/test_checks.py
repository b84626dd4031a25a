"""``heard check``, and nothing lost: safe writes, re-imports merged by key."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from helpers.calls import merge_attempts
from helpers.checks import (
    Problem,
    check_study,
    compare_codings,
    ensure_checked,
    format_problems,
    scan_text_file,
)
from helpers.errors import HeardInputError
from helpers.files import save_parquet, write_atomically
from helpers.study import load_study

from conftest import REPO

MONTH = "2026-11"
ORDERS = (REPO / "tests" / "fixtures" / "hostile" / "orders.csv").read_text()


@pytest.fixture
def study_dir(tmp_path):
    folder = tmp_path / "data" / "raw" / "small"
    (folder / "exports" / MONTH).mkdir(parents=True)
    (folder / "exports" / MONTH / "orders_export.csv").write_text(ORDERS)
    (folder / "study.yml").write_text(
        f'study: {{timezone: America/New_York}}\nmonths:\n  "{MONTH}": {{}}\n'
    )
    return folder


# --------------------------------------------------------------------------------------
# Problems and their report
# --------------------------------------------------------------------------------------


def test_problem_keeps_every_part_of_the_error():
    error = HeardInputError(
        "calls/2026-11/log.csv", row=4, column="outcome", expected="an outcome",
        found="picked up", fix="use the drop-down",
    )  # fmt: skip
    problem = Problem.from_error(error, step="calls", month=MONTH)
    assert (problem.file, problem.row, problem.column) == (
        "calls/2026-11/log.csv", 4, "outcome",
    )  # fmt: skip
    assert (problem.found, problem.fix, problem.message) == (
        "picked up", "use the drop-down", str(error),
    )  # fmt: skip


def test_a_sound_study_has_no_problems(study_dir):
    assert check_study(study_dir, month=MONTH, root=study_dir.parents[2]) == []


def test_errors_come_before_warnings_and_each_file_is_checked(study_dir):
    exports = study_dir / "exports" / MONTH
    (exports / "orders_export_2.csv").write_text(ORDERS.splitlines()[0] + "\n")
    (exports / "orders_export_3.csv").write_bytes(b"")
    (exports / "orders_export_4.csv").write_text("Campaign name,Spend\nA,1\n")
    problems = check_study(study_dir, month=MONTH, root=study_dir.parents[2])
    assert [p.severity for p in problems] == ["error", "error", "warning"]
    assert [p.file.rsplit("/", 1)[-1] for p in problems[:2]] == [
        "orders_export_3.csv", "orders_export_4.csv",
    ]  # fmt: skip
    assert "orders_export_2.csv: a header and no rows" in problems[2].message


def test_a_month_without_exports_is_an_error_naming_the_months_that_have_them(
    study_dir,
):
    problems = check_study(study_dir, month="2026-12", root=study_dir.parents[2])
    assert [(p.severity, p.step) for p in problems] == [("error", "exports")]
    assert problems[0].file.endswith("exports/2026-12")
    assert problems[0].fix.endswith(f"choose a month that has them: {MONTH}")

    processed = study_dir.parents[2] / "data" / "processed" / "small" / "2026-12"
    processed.mkdir(parents=True)
    save_parquet(
        pd.DataFrame({"customer_key": ["k1"]}), processed / "customers_customer.parquet"
    )
    problems = check_study(study_dir, month="2026-12", root=study_dir.parents[2])
    assert [(p.severity, p.step) for p in problems] == [("warning", "exports")]


def test_check_stops_an_experiment_named_unlike_its_folder_as_the_step_would(
    study_dir,
):
    folder = study_dir / "experiments" / "subject-nov"
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text(
        "variant,n,conversions\ncontrol,900,30\nb,900,41\n"
    )
    (folder / "experiment.yml").write_text(
        "name: subject-dec\nhypothesis: h\n"
        "variants: [{id: control, quote_ids: []}, {id: b, quote_ids: []}]\n"
        "split: {control: 0.5, b: 0.5}\nprimary_metric: conversion_rate\n"
        "dates: {start: 2026-11-01, end: 2026-11-14}\n"
        "results: {file: results.csv, kind: arms}\n"
    )
    (study_dir / "study.yml").write_text(
        "study: {timezone: America/New_York}\nmonths:\n"
        f'  "{MONTH}": {{experiments: [subject-nov]}}\n'
    )
    problems = check_study(study_dir, month=MONTH, root=study_dir.parents[2])
    errors = [p for p in problems if p.severity == "error"]
    assert [(p.step, p.file, p.column) for p in errors] == [
        ("experiments", str(folder / "experiment.yml"), "name")
    ]
    assert errors[0].found == "subject-dec" and "name: subject-nov" in errors[0].fix


def test_format_groups_by_severity_with_where_expected_found_and_fix(study_dir):
    (study_dir / "exports" / MONTH / "orders_export.csv").write_bytes(b"")
    study = load_study(study_dir, root=study_dir.parents[2])
    problems = check_study(study, month=MONTH)
    problems.append(Problem("warning", "coding", "Sam.xlsx: 3 rows not yet coded"))
    text = format_problems(problems, study=study)
    assert text.splitlines() == [
        "1 error(s), 1 warning(s).",
        "",
        "Errors (the pipeline stops until they are fixed):",
        f"  1. [exports {MONTH}] exports/{MONTH}/orders_export.csv, row 1",
        "       expected: content",
        "       found:    an empty file",
        "       fix:      export or save the file again",
        "",
        "Warnings (results run, but read them with these in mind):",
        "  1. [coding] Sam.xlsx: 3 rows not yet coded",
    ]
    assert format_problems([]) == "No problems found."


def test_ensure_checked_raises_with_the_count_and_logs_warnings(
    study_dir, monkeypatch, caplog
):
    monkeypatch.setenv("HEARD_ROOT", str(study_dir.parents[2]))
    study = load_study(study_dir)
    exports = study_dir / "exports" / MONTH
    (exports / "orders_export_2.csv").write_text(ORDERS.splitlines()[0] + "\n")
    with caplog.at_level(logging.WARNING, logger="helpers"):
        ensure_checked(study, MONTH)
    assert "a header and no rows" in caplog.text
    (exports / "orders_export_3.csv").write_bytes(b"")
    with pytest.raises(HeardInputError) as caught:
        ensure_checked(study, MONTH)
    assert "1 error(s)" in str(caught.value)
    assert "orders_export_3.csv" in caught.value.fix
    assert f"heard check small --month {MONTH}" in caught.value.fix


def test_a_passed_check_is_reused_only_when_asked(study_dir, monkeypatch):
    monkeypatch.setenv("HEARD_ROOT", str(study_dir.parents[2]))
    study = load_study(study_dir)
    ensure_checked(study, MONTH)
    (study_dir / "exports" / MONTH / "orders_export_3.csv").write_bytes(b"")

    ensure_checked(study, MONTH, reuse=True)
    with pytest.raises(HeardInputError, match=r"1 error\(s\)"):
        ensure_checked(study, MONTH)


def test_a_crashing_loader_is_reported_not_raised(study_dir, monkeypatch):
    import helpers.exports

    def crash(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(helpers.exports, "read_export", crash)
    [problem] = check_study(study_dir, month=MONTH, root=study_dir.parents[2])
    assert problem.severity == "error" and problem.file.endswith("orders_export.csv")
    assert "KeyError" in problem.message


# --------------------------------------------------------------------------------------
# The scan every raw text file gets
# --------------------------------------------------------------------------------------


def test_scan_names_a_row_with_text_beyond_the_last_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7,\n")
    [problem] = scan_text_file(path)
    assert (problem.row, problem.found) == (
        3,
        "3 cells with text beyond the last column",
    )


def test_scan_accepts_cp1252_only_where_the_loader_reads_it(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("name\nCafé\n".encode("cp1252"))
    assert scan_text_file(path, encodings=("utf-8", "cp1252")) == []
    [problem] = scan_text_file(path)
    assert problem.row == 2 and "0xe9" in problem.found


def test_scan_reads_quoted_line_breaks_as_one_row(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('id,text\n1,"two\nlines"\n2,one\n')
    assert scan_text_file(path) == []


# --------------------------------------------------------------------------------------
# Nothing lost
# --------------------------------------------------------------------------------------


def test_writer_failing_halfway_leaves_the_previous_output(tmp_path):
    target = tmp_path / "themes_code.parquet"
    previous = pd.DataFrame({"code": ["OBJ-PRICE"], "n_with_theme": [7]})
    save_parquet(previous, target)

    def write_half_then_fail(path):
        path.write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, write_half_then_fail)
    pd.testing.assert_frame_equal(pd.read_parquet(target), previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["themes_code.parquet"]


KILLED_WRITER = """
import sys, time
from pathlib import Path
from helpers.files import write_atomically

def write_slowly(path):
    with open(path, "wb") as handle:
        handle.write(b"PAR1" + b"x" * 4096)
        handle.flush()
        Path(sys.argv[2]).touch()
        time.sleep(60)

write_atomically(Path(sys.argv[1]), write_slowly)
"""


def test_run_killed_mid_write_leaves_the_previous_output_readable(tmp_path):
    target = tmp_path / "summary.parquet"
    previous = pd.DataFrame({"n_conversations": [24]})
    save_parquet(previous, target)
    marker = tmp_path / "writing"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target), str(marker)],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the writer never started"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    pd.testing.assert_frame_equal(pd.read_parquet(target), previous)
    # The half-written file is hidden beside it, never under the target's name.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".summary.parquet.")


def attempts(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["customer_key", "attempted_at", "outcome", "source_row"]
    )
    return frame.assign(
        attempted_at=pd.to_datetime(frame["attempted_at"], utc=True),
        caller="Alex", talk_seconds=30.0, notes_file=None, recovered_order=None,
        is_zone_assumed=False, source_file="call-log.xlsx",
    )  # fmt: skip


def test_reimported_call_log_merges_by_key_and_reports_conflicts():
    logged = attempts(
        [("c_1", "2026-11-05 15:00", "connected", 2),
         ("c_2", "2026-11-05 16:00", "voicemail", 3)]
    )  # fmt: skip
    incoming = attempts(
        [("c_1", "2026-11-05 15:00", "connected", 2),
         ("c_2", "2026-11-05 16:00", "declined", 3),
         ("c_3", "2026-11-06 15:00", "no_answer", 4)]
    )  # fmt: skip
    merged, conflicts = merge_attempts(logged, incoming)
    assert merged[["customer_key", "outcome"]].values.tolist() == [
        ["c_1", "connected"], ["c_2", "voicemail"], ["c_3", "no_answer"],
    ]  # fmt: skip
    reported = ["customer_key", "column", "logged", "incoming", "source_row"]
    assert conflicts[reported].values.tolist() == [
        ["c_2", "outcome", "voicemail", "declined", 3]
    ]


def test_a_logged_attempt_no_log_holds_any_more_is_kept_with_a_warning(caplog):
    # The caller corrected 15:00 to 15:30: the old time stays, so it is reported.
    logged = attempts([("c_1", "2026-11-05 15:00", "connected", 2)])
    incoming = attempts([("c_1", "2026-11-05 15:30", "connected", 2)])
    merged, conflicts = merge_attempts(logged, incoming)
    assert len(merged) == 2 and conflicts.empty
    assert "1 attempts already logged are no longer in the raw call logs" in caplog.text


def codings(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["coder", "excerpt_id", "code"])
    return frame.assign(conversation_id="a", is_suggestion=False)


def test_recoded_and_vanished_excerpts_are_reported_not_overwritten():
    previous = codings(
        [("Rita", "a-001", "OBJ-PRICE"), ("Rita", "a-002", "OBJ-SHIP"),
         ("Rita", "a-003", "OBJ-SHIP"), ("Sam", "a-001", "OBJ-PRICE")]
    )  # fmt: skip
    current = codings(
        [("Rita", "a-001", "OBJ-PRICE"), ("Rita", "a-002", "OBJ-PRICE"),
         ("Rita", "a-002", "OBJ-SHIP")]
    )  # fmt: skip
    changed = compare_codings(previous, current)
    assert changed.values.tolist() == [
        ["Rita", "a-002", "OBJ-SHIP", "OBJ-PRICE;OBJ-SHIP"],
        ["Rita", "a-003", "OBJ-SHIP", ""],
    ]


def test_check_warns_when_a_coding_sheet_lost_earlier_codes(tmp_path):
    from helpers.codebook import load_codebook
    from helpers.coding import write_coding_sheet

    folder = tmp_path / "data" / "raw" / "small"
    (folder / "coding" / MONTH).mkdir(parents=True)
    (folder / "study.yml").write_text(f'months:\n  "{MONTH}": {{}}\n')
    codebook_path = REPO / "tests" / "fixtures" / "hostile" / "codebook.yml"
    (folder / "codebook.yml").write_text(codebook_path.read_text())
    excerpts = pd.DataFrame(
        {"conversation_id": ["a"], "excerpt_id": ["a-001"], "position": [1],
         "speaker": ["customer"], "text": ["too dear"]}
    )  # fmt: skip
    write_coding_sheet(
        excerpts, load_codebook(codebook_path), folder / "coding" / MONTH / "Rita.xlsx"
    )
    study = load_study(folder, root=tmp_path)
    save_parquet(
        codings([("Rita", "a-001", "OBJ-PRICE")]),
        study.processed(MONTH, "coded-excerpts_excerpt.parquet"),
    )
    warnings = [p.message for p in check_study(study, month=MONTH)]
    assert any(
        "1 excerpt codes recorded by the last run are missing" in w for w in warnings
    )


NOTE = """\
---
conversation_id: a
customer_key: c_1
date: 2026-11-03
segment: cart_abandoners
interviewer: Alex
consent_to_quote: true
---
Interviewer: What almost stopped you?
Customer: Thanks Alex. The shipping was a shock. Mail me at ana@example.com please.
Customer: The sizes looked odd too.
"""


def coding_errors(study) -> list:
    return [
        p for p in check_study(study, month=MONTH)
        if p.step == "coding" and p.severity == "error"
    ]  # fmt: skip


def test_check_reads_coding_sheets_against_the_notes_as_step_03_splits_them(
    tmp_path,
):
    from openpyxl import load_workbook

    from helpers.coding_step import run_coding_step

    folder = tmp_path / "data" / "raw" / "small"
    (folder / "conversations" / MONTH).mkdir(parents=True)
    (folder / "study.yml").write_text(
        f'coding: {{excerpt_max_words: 6}}\nmonths:\n  "{MONTH}": {{}}\n'
    )
    codebook = REPO / "tests" / "fixtures" / "coding" / "codebook.yml"
    (folder / "codebook.yml").write_text(codebook.read_text())
    note = folder / "conversations" / MONTH / "a.md"
    note.write_text(NOTE)
    study = load_study(folder, root=tmp_path)

    # A coder copies the step's blank sheet (redacted, long turns split at six
    # words) and codes its last row.
    run_coding_step(study, MONTH)
    sheet = folder / "coding" / MONTH / "ana.xlsx"
    sheet.parent.mkdir(parents=True)
    workbook = load_workbook(study.processed(MONTH, "coding-sheet_excerpt.xlsx"))
    rows = workbook["coding"]
    assert [r[4] for r in rows.iter_rows(min_row=2, values_only=True)] == [
        "Thanks [name].", "The shipping was a shock.", "Mail me at [email] please.",
        "The sizes looked odd too.",
    ]  # fmt: skip
    rows.cell(row=rows.max_row, column=6).value = "OBJ-SIZE"
    workbook.save(sheet)
    assert coding_errors(study) == []

    # A line added to the note moves every later excerpt id onto other words.
    note.write_text(NOTE.replace("Customer: Thanks", "Customer: Hi.\nCustomer: Thanks"))
    errors = coding_errors(study)
    assert [(e.file, e.row, e.column) for e in errors] == [(str(sheet), 2, "text")]


@pytest.mark.slow
def test_heard_check_on_the_demo_study_never_crashes():
    demo = REPO / "data" / "raw" / "demo"
    if not demo.is_dir():
        pytest.skip("no demo study: run `heard demo`")
    problems = check_study(demo, root=REPO)
    assert all(p.severity in ("error", "warning") and p.message for p in problems)
    assert not any("could not be read" in p.message for p in problems)


def test_ensure_private_stops_on_a_phone_in_a_processed_file(study_dir):
    from helpers.checks import ensure_private

    study = load_study(study_dir, root=study_dir.parents[2])
    call_list = pd.DataFrame({"phone": ["+12125550101"]})
    save_parquet(
        call_list, study.processed(MONTH, "call-list_customer_2026-11.parquet")
    )
    ensure_private(study, root=study_dir.parents[2])  # the call list may hold phones
    quotes = pd.DataFrame(
        {"quote_id": ["q-2026-11-01-001"], "text": ["I'm on 212 555 0101"]}
    )
    save_parquet(quotes, study.processed(MONTH, "quote-bank_quote.parquet"))
    with pytest.raises(HeardInputError) as caught:
        ensure_private(study, month=MONTH, root=study_dir.parents[2])
    assert caught.value.file.endswith("quote-bank_quote.parquet")
    assert caught.value.column == "text" and "212 555 0101" in caught.value.found


def test_heard_check_names_every_bad_call_row_and_warns_on_recovered_orders(
    study_dir,
):
    study = load_study(study_dir, root=study_dir.parents[2])
    assignment = pd.DataFrame(
        {"customer_key": ["c_1", "c_2"], "segment": "s", "arm": "called"}
    )
    save_parquet(assignment, study.processed(MONTH, "assignment_customer.parquet"))
    log = study_dir / "calls" / MONTH / "call-log.csv"
    log.parent.mkdir(parents=True)
    header = "reference,attempted_at,caller,outcome,talk_seconds,recovered_order\n"
    log.write_text(
        header + "c_1,2026-11-05T10:00:00-05:00,Alex,picked up,30,\n"
        "c_9,2026-11-05T11:00:00-05:00,Alex,busy,,\n"
        "c_2,2026-11-05T12:00:00-05:00,Alex,connected,-5,#1001\n"
    )
    calls = [p for p in check_study(study, month=MONTH) if p.step == "calls"]
    assert [(p.severity, p.row, p.column) for p in calls] == [
        ("error", 2, "outcome"), ("error", 3, "reference"),
        ("error", 4, "talk_seconds"),
    ]  # fmt: skip
    assert all(p.file == str(log) and p.expected and p.fix for p in calls)

    # Rows fixed; the order the caller typed was placed the day before the call.
    log.write_text(header + "c_2,2026-11-05T12:00:00-05:00,Alex,connected,300,#1001\n")
    orders = pd.DataFrame(
        {"order_id": ["#1001"], "customer_key": ["c_2"],
         "created_at": [pd.Timestamp("2026-11-04T15:00Z")], "total": [20.0]}
    )  # fmt: skip
    save_parquet(orders, study.processed(MONTH, "orders_order.parquet"))
    [warning] = [p for p in check_study(study, month=MONTH) if p.step == "calls"]
    assert (warning.severity, warning.row, warning.column) == (
        "warning", 2, "recovered_order",
    )  # fmt: skip
    assert warning.file == str(log) and "before this attempt" in warning.found


def test_a_call_log_before_step_01_is_left_to_step_02_without_a_warning(
    study_dir, caplog
):
    from helpers.calls import check_call_logs

    # The report checks before step 01 draws the list; step 02 then checks the log.
    study = load_study(study_dir, root=study_dir.parents[2])
    log = study_dir / "calls" / MONTH / "call-log.csv"
    log.parent.mkdir(parents=True)
    log.write_text(
        "reference,attempted_at,caller,outcome\n"
        "c_9,2026-11-05T11:00:00-05:00,Alex,busy\n"
    )
    assert [p for p in check_study(study, month=MONTH) if p.step == "calls"] == []
    with caplog.at_level(logging.INFO, logger="helpers"):
        assert check_call_logs(study, MONTH) == []
    assert "checked against the call list by step 02" in caplog.text


def test_a_broken_call_log_is_reported_once_before_the_logs_are_read(study_dir):
    calls = study_dir / "calls" / MONTH
    calls.mkdir(parents=True)
    (calls / "call-log.csv").write_text("reference,attempted_at,outcome\nc_1,2026-11")
    (calls / "dialler.xlsx").write_bytes(b"not a workbook")
    problems = check_study(study_dir, month=MONTH, root=study_dir.parents[2])
    errors = [(p.step, p.file.rsplit("/", 1)[-1], p.row) for p in problems]
    assert errors == [("calls", "call-log.csv", 2), ("calls", "dialler.xlsx", None)]

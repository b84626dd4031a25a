"""Tests for helpers.calls on the hand-worked fixture study in tests/fixtures/calls.

The fixture (times in New York, UTC-5 in late November):

- cart_abandoners, called: a1 (no answer, then connected; orders 12 Nov, counted),
  a2 (voicemail twice; ordered 5 Nov, before the call: not counted), a3 (asks not
  to be called), a4 (busy, no answer, connected; orders 30 Nov, after the 14-day
  window), a5 (declines; orders 15 Nov, counted), a6 (never dialled; orders 13 Nov,
  after the segment's median first attempt, 9 Nov 17:00 UTC: counted).
- cart_abandoners, hold-out: h1 (orders 5 Nov, before the reference), h2 (orders
  15 Nov, counted), h3 (30 Nov, outside the window), h4-h6 no order.
- first_time_no_return, called, no hold-out: f1 connected (Los Angeles), f2 wrong
  number, f3 callback requested then connected (no time zone on file).

So: 13 attempts; 8 customers dialled, 6 reached (a1 a3 a4 a5 f1 f3); 7 attempts
answered by a person; 4 conversations; recovery 3/6 called against 1/6 hold-out.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, binomtest, bootstrap, hypergeom

from helpers.calls import (
    OUTCOMES,
    build_call_guide,
    compare_recovery,
    compare_with_field,
    describe_attempts,
    estimate_revenue_per_conversation,
    load_call_log,
    merge_attempts,
    run_calls_step,
    tally_connect_rates,
    tally_conversations,
)
from helpers.errors import HeardInputError, HeardInputGroupError
from helpers.study import load_defaults, load_study, merge_config

FIXTURES = Path(__file__).parent / "fixtures" / "calls"
MONTH = "2026-11"
NOW = pd.Timestamp("2026-12-01T00:00Z")
Z = 1.959963984540054


def key(name: str) -> str:
    return f"c_0000000000{name}"


def wilson_by_hand(k, n, z=Z):
    """The closed-form Wilson score interval (Wilson 1927)."""
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def newcombe_by_hand(k1, n1, k2, n2):
    """Newcombe (1998) method 10: the hybrid score interval for p1 - p2."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_by_hand(k1, n1)
    l2, u2 = wilson_by_hand(k2, n2)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def fisher_by_hand(k1, n1, k2, n2):
    """Two-sided Fisher p: tables at most as likely as the one seen, summed."""
    total, drawn, successes = n1 + n2, n1, k1 + k2
    law = hypergeom(total, successes, drawn)
    seen = law.pmf(k1)
    support = range(max(0, drawn - (total - successes)), min(successes, drawn) + 1)
    return sum(law.pmf(x) for x in support if law.pmf(x) <= seen * (1 + 1e-7))


@pytest.fixture
def study(tmp_path):
    """The fixture study copied to tmp, with step 01's outputs as Parquet."""
    shutil.copytree(FIXTURES / "study", tmp_path / "raw" / "fixture")
    study = load_study(tmp_path / "raw" / "fixture", processed_root=tmp_path / "out")
    folder = study.processed(MONTH)
    write_step_01_outputs(folder)
    shutil.copy(FIXTURES / "processed" / f"call-list_customer_{MONTH}.csv", folder)
    return study


def write_step_01_outputs(folder: Path) -> None:
    """Write the fixture's step-01 tables into `folder` as step 01 types them."""
    folder.mkdir(parents=True)
    for name in ("assignment_customer", "orders_order", "customers_customer"):
        table = pd.read_csv(FIXTURES / "processed" / f"{name}.csv", dtype=str)
        if "created_at" in table:
            table["created_at"] = pd.to_datetime(table["created_at"], utc=True)
            table[["total", "refunded_amount"]] = table[
                ["total", "refunded_amount"]
            ].astype(float)
        table.to_parquet(folder / f"{name}.parquet")


@pytest.fixture
def assignment():
    return pd.read_csv(FIXTURES / "processed" / "assignment_customer.csv")


@pytest.fixture
def config():
    raw = FIXTURES / "study" / "study.yml"
    import yaml

    return merge_config(load_defaults(), yaml.safe_load(raw.read_text()))


@pytest.fixture
def attempts(study, assignment, config):
    path = study.raw("calls", MONTH, "call-list_filled.csv")
    logged = load_call_log(path, assignment=assignment, config=config, now=NOW)
    customers = pd.read_csv(FIXTURES / "processed" / "customers_customer.csv")
    return describe_attempts(
        logged, assignment=assignment, customers=customers, config=config
    )


def write_log(folder: Path, rows: list[str], *, name="log.csv") -> Path:
    """Write a Heard-format call log with the fixture's header."""
    header = (FIXTURES / "study" / "calls" / MONTH / "call-list_filled.csv").read_text()
    path = folder / MONTH / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header.splitlines()[0], *rows]) + "\n")
    return path


# --- reading the log ---------------------------------------------------------------


def test_call_list_reads_repeat_attempts_and_skips_undialled_rows(attempts):
    assert len(attempts) == 13
    assert key("a6") not in set(attempts["customer_key"])
    a4 = attempts[attempts["customer_key"] == key("a4")]
    assert a4["attempt_number"].tolist() == [1, 2, 3]
    assert a4["outcome"].tolist() == ["busy", "no_answer", "connected"]
    a2 = attempts[attempts["customer_key"] == key("a2")]
    assert a2["outcome"].tolist() == ["voicemail", "voicemail"]  # "Voicemail" too
    first = attempts.iloc[0]
    assert first["attempted_at"] == pd.Timestamp("2026-11-09T15:00Z")
    assert first["source_row"] == 2
    assert not attempts["is_zone_assumed"].any()


def test_a_log_saved_by_excel_with_semicolons_in_cp1252_reads_the_same(
    study, assignment, config, tmp_path
):
    path = study.raw("calls", MONTH, "call-list_filled.csv")
    text = path.read_text().replace("Alex", "José")
    european = tmp_path / MONTH / "log.csv"
    european.parent.mkdir()
    european.write_bytes(text.replace(",", ";").encode("cp1252"))
    comma = tmp_path / MONTH / "comma.csv"
    comma.write_text(text, encoding="utf-8")
    read = [
        load_call_log(file, assignment=assignment, config=config, now=NOW)
        for file in (european, comma)
    ]
    assert len(read[0]) == 13
    assert (read[0]["caller"] == "José").sum() == 7  # every row Alex dialled
    pd.testing.assert_frame_equal(
        read[0].drop(columns="source_file"), read[1].drop(columns="source_file")
    )


def test_local_hour_uses_the_customers_zone(attempts):
    hours = attempts.set_index("customer_key")["local_hour"]
    assert hours[key("f1")] == 16  # 19:00 New York is 16:00 Los Angeles
    assert hours[key("a3")] == 11  # 12:00 New York is 11:00 Chicago
    f3 = attempts[attempts["customer_key"] == key("f3")]
    assert f3["timezone"].unique().tolist() == ["America/New_York"]  # study's zone


def test_xlsx_call_list_with_plain_dates_reads_in_the_study_zone(
    study, assignment, config, tmp_path
):
    csv = study.raw("calls", MONTH, "call-list_filled.csv")
    frame = pd.read_csv(csv, dtype=str)
    stamps = pd.to_datetime(frame["attempted_at"], utc=True)
    frame["attempted_at"] = stamps.dt.tz_convert("America/New_York").dt.tz_localize(
        None
    )
    xlsx = tmp_path / MONTH / "call-list.xlsx"
    xlsx.parent.mkdir()
    frame.to_excel(xlsx, index=False)
    from_xlsx = load_call_log(xlsx, assignment=assignment, config=config, now=NOW)
    from_csv = load_call_log(csv, assignment=assignment, config=config, now=NOW)
    assert from_xlsx["is_zone_assumed"].all()
    assert from_xlsx["attempted_at"].tolist() == from_csv["attempted_at"].tolist()
    assert from_xlsx["outcome"].tolist() == from_csv["outcome"].tolist()


def test_call_list_workbook_as_step_01_writes_it(assignment, config, tmp_path):
    from helpers.files import save_xlsx

    sheet = pd.DataFrame(
        {
            "customer_key": [key("a1"), key("h1"), key("a2"), None],
            "arm": ["called", "holdout", "called", None],
            "reference": [key("a1"), key("h1"), key("a2"), key("a1")],
            "name": ["Customer 1", None, "Customer 2", None],
            "phone_e164": ["+12025550101", None, "+12025550102", None],
            "segment": ["cart_abandoners"] * 3 + [None],
            "attempted_at": [
                "2026-11-09T10:00:00-05:00",
                None,
                None,
                "2026-11-10T10:00:00-05:00",
            ],
            "caller": ["Alex", None, None, "Sam"],
            "outcome": ["busy", None, None, "connected"],
            "talk_seconds": [None, None, None, 300],
            "notes_file": [None, None, None, "2026-11-01.md"],
            "recovered_order": [None] * 4,
        }
    )
    path = tmp_path / MONTH / f"call-list_customer_{MONTH}.xlsx"
    save_xlsx(sheet, path, dropdowns={"outcome": list(OUTCOMES)})
    attempts = load_call_log(path, assignment=assignment, config=config, now=NOW)
    assert attempts["customer_key"].tolist() == [key("a1"), key("a1")]
    assert attempts["outcome"].tolist() == ["busy", "connected"]
    assert attempts["source_row"].tolist() == [2, 5]
    assert attempts["talk_seconds"].iloc[1] == 300


def test_twilio_completed_counts_only_when_a_human_answered(
    study, assignment, config, tmp_path
):
    lines = (FIXTURES / "twilio-log.csv").read_text().splitlines()
    path = tmp_path / MONTH / "twilio.csv"
    path.parent.mkdir()
    path.write_text("\n".join(lines[:-1]) + "\n")  # without the AnsweredBy=unknown row
    book = {f"+120255501{n:02d}": key(f"a{n}") for n in range(1, 7)}
    attempts = load_call_log(
        path, assignment=assignment, config=config, now=NOW, phone_book=book
    )
    assert attempts["outcome"].tolist() == [
        "connected",
        "voicemail",
        "no_answer",
        "busy",
    ]
    assert attempts["customer_key"].tolist() == [key(f"a{n}") for n in range(1, 5)]
    assert attempts["attempted_at"].iloc[0] == pd.Timestamp("2026-11-09T15:00Z")

    # completed with AnsweredBy=unknown: refused, not guessed.
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HeardInputError) as error:
        load_call_log(
            path, assignment=assignment, config=config, now=NOW, phone_book=book
        )
    assert error.value.row == 7 and error.value.column == "outcome"
    assert "AnsweredBy" in str(error.value)

    # A study without machine detection says what completed means for it.
    mapped = merge_config(config, {"calls": {"status_map": {"completed": "voicemail"}}})
    attempts = load_call_log(
        path, assignment=assignment, config=mapped, now=NOW, phone_book=book
    )
    assert attempts["outcome"].tolist()[0] == "connected"  # human still wins
    assert attempts["outcome"].tolist()[-1] == "voicemail"


def test_ringcentral_call_connected_is_a_voicemail_not_a_connect(
    study, assignment, config, tmp_path
):
    path = tmp_path / MONTH / "ringcentral.csv"
    path.parent.mkdir()
    shutil.copy(FIXTURES / "ringcentral-log.csv", path)
    book = {f"+120255501{n:02d}": key(f"a{n}") for n in range(1, 7)}
    attempts = load_call_log(
        path, assignment=assignment, config=config, now=NOW, phone_book=book
    )
    assert attempts["outcome"].tolist() == [
        "connected",
        "voicemail",
        "no_answer",
        "busy",
    ]
    assert attempts["talk_seconds"].tolist() == [580.0, 35.0, 0.0, 0.0]
    assert attempts["is_zone_assumed"].all()
    assert attempts["attempted_at"].iloc[0] == pd.Timestamp("2026-11-09T15:00Z")


def test_aircall_answered_needs_the_study_to_say_what_it_means(
    assignment, config, tmp_path
):
    path = tmp_path / MONTH / "aircall.csv"
    path.parent.mkdir()
    path.write_text(
        "line,datetime (tz offset incl.),direction,answered,user,"
        "duration (in call),customer number\n"
        "Sales,2026-11-09 10:00:00 -05:00,outbound,No,Alex,0,+1 202-555-0101\n"
        "Sales,2026-11-09 10:05:00 -05:00,inbound,Yes,Alex,120,+1 202-555-0102\n"
        "Sales,2026-11-09 10:10:00 -05:00,outbound,Yes,Alex,300,+1 202-555-0103\n"
    )
    book = {f"+120255501{n:02d}": key(f"a{n}") for n in range(1, 7)}
    with pytest.raises(HeardInputError) as error:
        load_call_log(
            path, assignment=assignment, config=config, now=NOW, phone_book=book
        )
    assert (error.value.row, error.value.found) == (4, "Yes")
    mapped = merge_config(config, {"calls": {"status_map": {"yes": "connected"}}})
    attempts = load_call_log(
        path, assignment=assignment, config=mapped, now=NOW, phone_book=book
    )
    assert attempts["outcome"].tolist() == [
        "no_answer",
        "connected",
    ]  # inbound left out
    assert attempts["customer_key"].tolist() == [key("a1"), key("a3")]
    assert attempts["talk_seconds"].tolist() == [0.0, 300.0]


def test_other_phone_systems_read_through_column_and_status_maps(
    assignment, config, tmp_path
):
    path = tmp_path / MONTH / "justcall.csv"
    path.parent.mkdir()
    path.write_text(
        "Contact,When,Agent,Result,Talk\n"
        "+1 202 555 0104,2026-11-09T10:00:00-05:00,Alex,Talked,0:05:00\n"
        "+1 202 555 0105,2026-11-09T10:10:00-05:00,Alex,VM,\n"
    )
    mapped = merge_config(
        config,
        {
            "calls": {
                "column_map": {
                    "phone": "Contact",
                    "attempted_at": "When",
                    "caller": "Agent",
                    "outcome": "Result",
                    "talk_seconds": "Talk",
                },
                "status_map": {"Talked": "connected", "VM": "voicemail"},
            }
        },
    )
    book = {f"+120255501{n:02d}": key(f"a{n}") for n in range(1, 7)}
    attempts = load_call_log(
        path, assignment=assignment, config=mapped, now=NOW, phone_book=book
    )
    assert attempts["outcome"].tolist() == ["connected", "voicemail"]
    assert attempts["customer_key"].tolist() == [key("a4"), key("a5")]
    assert attempts["talk_seconds"].iloc[0] == 300.0
    # The callers' own sheet still reads in the same study.
    own = FIXTURES / "study" / "calls" / MONTH / "call-list_filled.csv"
    assert len(load_call_log(own, assignment=assignment, config=mapped, now=NOW)) == 13


def test_phone_not_on_the_call_list_is_refused(assignment, config, tmp_path):
    lines = (FIXTURES / "twilio-log.csv").read_text().splitlines()
    path = tmp_path / MONTH / "twilio.csv"
    path.parent.mkdir()
    path.write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(HeardInputError) as error:
        load_call_log(
            path, assignment=assignment, config=config, now=NOW, phone_book={}
        )
    assert (error.value.row, error.value.column) == (2, "phone")


def test_phone_book_comes_from_the_processed_call_list(study):
    from helpers.calls import read_phone_book

    book = read_phone_book(study, MONTH)
    assert book["+12025550103"] == key("a3")
    assert len(book) == 6


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["completed", "left message"])
def test_unknown_outcome_names_file_row_and_column(
    status, assignment, config, tmp_path
):
    path = write_log(
        tmp_path,
        [
            f"{key('a1')},,,,2026-11-09T10:00:00-05:00,Alex,no_answer,,,",
            f"{key('a2')},,,,2026-11-09T11:00:00-05:00,Alex,{status},30,,",
        ],
    )
    with pytest.raises(HeardInputError) as error:
        load_call_log(path, assignment=assignment, config=config, now=NOW)
    assert (error.value.row, error.value.column, error.value.found) == (
        3,
        "outcome",
        status,
    )
    assert path.name in str(error.value) and "status_map" in str(error.value)
    if status == "completed":  # a caller's word: say which outcome to write instead
        assert "write connected if the customer talked" in error.value.fix
        assert "AnsweredBy" not in error.value.fix

    mapped = merge_config(
        config, {"calls": {"status_map": {status.title(): "voicemail"}}}
    )
    attempts = load_call_log(path, assignment=assignment, config=mapped, now=NOW)
    assert attempts["outcome"].tolist() == ["no_answer", "voicemail"]


@pytest.mark.parametrize(
    ("customer", "hint"), [("c_0000000000zz", "copied"), (key("h2"), "hold-out")]
)
def test_customer_not_on_the_call_list_is_refused(
    customer, hint, assignment, config, tmp_path
):
    path = write_log(
        tmp_path, [f"{customer},,,,2026-11-09T10:00:00-05:00,Alex,busy,,,"]
    )
    with pytest.raises(HeardInputError) as error:
        load_call_log(path, assignment=assignment, config=config, now=NOW)
    assert (error.value.row, error.value.column) == (2, "reference")
    assert hint in str(error.value)


def test_many_unknown_customers_point_at_a_redrawn_call_list(
    assignment, config, tmp_path
):
    rows = [
        f"c_0000000000z{n},,,,2026-11-09T10:0{n}:00-05:00,Alex,busy,,,"
        for n in range(4)
    ]
    path = write_log(tmp_path, rows)
    with pytest.raises(HeardInputError) as error:
        load_call_log(path, assignment=assignment, config=config, now=NOW)
    assert "4 of 4 attempts" in str(error.value)
    assert "step 01 run again" in str(error.value)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-10-30T10:00:00-05:00", "on or after the call list's month"),
        ("2026-12-02T10:00:00-05:00", "not after now"),
        ("next tuesday", "a date and time"),
    ],
)
def test_impossible_times_are_refused(when, expected, assignment, config, tmp_path):
    path = write_log(tmp_path, [f"{key('a1')},,,,{when},Alex,busy,,,"])
    with pytest.raises(HeardInputError) as error:
        load_call_log(path, assignment=assignment, config=config, now=NOW)
    assert (error.value.row, error.value.column) == (2, "attempted_at")
    assert expected in str(error.value)


def test_time_without_zone_is_read_in_the_study_zone_and_flagged(
    assignment, config, tmp_path, caplog
):
    path = write_log(tmp_path, [f"{key('a1')},,,,2026-11-09 10:00,Alex,busy,,,"])
    attempts = load_call_log(path, assignment=assignment, config=config, now=NOW)
    assert attempts["attempted_at"].iloc[0] == pd.Timestamp("2026-11-09T15:00Z")
    assert attempts["is_zone_assumed"].iloc[0]
    assert "no time zone" in caplog.text


def test_check_call_logs_raises_what_the_step_would(study):
    from helpers.calls import check_call_logs

    check_call_logs(study, MONTH)  # the fixture is clean
    raw = study.raw("calls", MONTH, "call-list_filled.csv")
    raw.write_text(raw.read_text().replace(",busy,", ",engaged,"))
    with pytest.raises(HeardInputError) as error:
        check_call_logs(study, MONTH)
    assert (error.value.row, error.value.found) == (7, "engaged")


def test_every_bad_row_of_a_log_is_named_in_one_error(assignment, config, tmp_path):
    path = write_log(
        tmp_path,
        [
            f"{key('a1')},,,,2026-11-09T10:00:00-05:00,Alex,no_answer,,,",
            f"{key('a2')},,,,2026-11-09T11:00:00-05:00,Alex,picked up,30,,",
            "c_0000000000zz,,,,2026-11-09T12:00:00-05:00,Alex,busy,,,",
            f"{key('a4')},,,,2026-10-30T10:00:00-05:00,Sam,busy,,,",
            f"{key('a5')},,,,2026-11-10T10:00:00-05:00,Sam,declined,15,,",
        ],
    )
    with pytest.raises(HeardInputGroupError) as error:
        load_call_log(path, assignment=assignment, config=config, now=NOW)
    named = [(p.row, p.column) for p in error.value.problems]
    assert named == [(3, "outcome"), (4, "reference"), (5, "attempted_at")]
    message = str(error.value)
    assert message.startswith(f"{path}: 3 problems")
    for problem in error.value.problems:
        assert str(problem) in message and problem.fix in message
    assert "row 2" not in message and "row 6" not in message  # the good rows


def test_a_row_with_two_mistakes_is_named_for_both(assignment, config, tmp_path):
    path = write_log(tmp_path, ["c_0000000000zz,,,,next tuesday,Alex,picked up,,,"])
    with pytest.raises(HeardInputGroupError) as error:
        load_call_log(path, assignment=assignment, config=config, now=NOW)
    columns = [p.column for p in error.value.problems]
    assert columns == ["outcome", "attempted_at", "reference"]


def test_a_long_list_of_problems_is_cut_at_twenty_and_counted(
    assignment, config, tmp_path
):
    rows = [
        f"{key('a1')},,,,2026-11-09T10:{n:02d}:00-05:00,Alex,engaged,,,"
        for n in range(25)
    ]
    path = write_log(tmp_path, rows)
    with pytest.raises(HeardInputGroupError) as error:
        load_call_log(path, assignment=assignment, config=config, now=NOW)
    assert len(error.value.problems) == 25
    message = str(error.value).splitlines()
    assert len(message) == 1 + 20 + 1
    assert "row 21," in message[-2] and message[-1].endswith("and 5 more")


def test_check_call_logs_names_the_problems_of_every_file(study):
    from helpers.calls import check_call_logs

    raw = study.raw("calls", MONTH, "call-list_filled.csv")
    raw.write_text(raw.read_text().replace(",busy,", ",engaged,"))
    write_log(
        study.raw("calls"),
        [f"{key('f2')},,,,2026-11-19T10:00:00-05:00,Sam,picked up,,,"],
        name="later.csv",
    )
    with pytest.raises(HeardInputGroupError) as error:
        check_call_logs(study, MONTH)
    found = [(Path(p.file).name, p.row) for p in error.value.problems]
    assert found == [("call-list_filled.csv", 7), ("later.csv", 2)]
    assert error.value.file == str(study.raw("calls", MONTH))


def test_half_filled_row_is_refused(assignment, config, tmp_path):
    path = write_log(tmp_path, [f"{key('a1')},,,,,Alex,busy,,,"])
    with pytest.raises(HeardInputError) as error:
        load_call_log(path, assignment=assignment, config=config, now=NOW)
    assert (error.value.row, error.value.column) == (2, "attempted_at")


# --- connect rates -------------------------------------------------------------------


def test_connect_rate_counts_people_not_voicemail_both_ways(attempts):
    rates = tally_connect_rates(attempts).set_index("unit")
    # Customers: a1 a3 a4 a5 f1 f3 reached of 8 dialled; a2 (voicemail) and f2 not.
    assert rates.loc["customer", ["n_connected", "n_dialled"]].tolist() == [6, 8]
    # Attempts: a1, a3 (do not call), a4, a5 (declined), f1, f3 twice = 7 of 13.
    assert rates.loc["attempt", ["n_connected", "n_dialled"]].tolist() == [7, 13]
    for unit, (k, n) in {"customer": (6, 8), "attempt": (7, 13)}.items():
        row = rates.loc[unit]
        assert row["connect_rate"] == pytest.approx(k / n)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson_by_hand(k, n))
        scipy_ci = binomtest(k, n).proportion_ci(method="wilson")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(
            (scipy_ci.low, scipy_ci.high)
        )


def test_connect_rate_by_attempt_number_and_segment(attempts):
    by_attempt = tally_connect_rates(attempts, by="attempt-number")
    counts = by_attempt.set_index("attempt_number")[["n_connected", "n_dialled"]]
    assert counts.to_dict("index") == {
        1: {"n_connected": 4, "n_dialled": 8},
        2: {"n_connected": 2, "n_dialled": 4},
        3: {"n_connected": 1, "n_dialled": 1},
    }
    assert set(by_attempt["unit"]) == {"attempt"}
    by_segment = tally_connect_rates(attempts, by="segment")
    customers = by_segment[by_segment["unit"] == "customer"].set_index("segment")
    assert customers.loc["cart_abandoners", ["n_connected", "n_dialled"]].tolist() == [
        4,
        5,
    ]
    assert customers.loc["first_time_no_return", "n_connected"] == 2
    by_caller = tally_connect_rates(attempts, by="caller").set_index("caller")
    assert by_caller.loc["Sam", ["n_connected", "n_dialled"]].tolist() == [2, 6]


def test_attempts_per_conversation_and_progress(attempts, assignment):
    table = tally_conversations(attempts, assignment=assignment).set_index("segment")
    cart = table.loc["cart_abandoners"]
    assert cart[
        ["n_called", "n_dialled", "n_attempts", "n_conversations"]
    ].tolist() == [
        6,
        5,
        9,
        2,
    ]
    assert cart["attempts_per_conversation"] == pytest.approx(4.5)
    low, high = wilson_by_hand(2, 9)
    assert (cart["ci_low"], cart["ci_high"]) == pytest.approx((1 / high, 1 / low))
    assert cart["n_to_target"] == 18 and not cart["is_on_target"]
    assert cart["n_attempts_to_target"] == 81
    assert table.loc["first_time_no_return", "attempts_per_conversation"] == 2.0


def test_weekly_progress_counts_each_conversation_once(attempts, config):
    from helpers.calls import tally_weekly_progress

    weekly = tally_weekly_progress(attempts, config=config)
    table = weekly.set_index(["segment", "week_start"])
    nov9, nov16 = pd.Timestamp("2026-11-09").date(), pd.Timestamp("2026-11-16").date()
    # Week of 9 Nov: a1 (10th) and a4 (12th) spoken to; 9 cart attempts in all.
    assert table.loc[("cart_abandoners", nov9), "n_attempts"] == 9
    assert table.loc[("cart_abandoners", nov9), "n_new_conversations"] == 2
    # Week of 16 Nov (f1 on the 16th at 19:00 New York, f3 on the 18th): f3's
    # callback on the 17th is a connect but not a conversation.
    row = table.loc[("first_time_no_return", nov16)]
    assert row[["n_attempts", "n_connected", "n_new_conversations"]].tolist() == [
        4,
        3,
        2,
    ]
    assert weekly["n_new_conversations"].sum() == 4


def test_field_comparison_uses_interval_and_exact_tests():
    above = compare_with_field(6, 8)
    assert above["verdict"] == "above"  # Wilson low 0.409 > 0.40
    assert above["ci_low"] == pytest.approx(wilson_by_hand(6, 8)[0])

    def exact_two_sided(k, n, p):
        seen = binom.pmf(k, n, p)
        return sum(
            binom.pmf(x, n, p)
            for x in range(n + 1)
            if binom.pmf(x, n, p) <= seen * (1 + 1e-7)
        )

    assert above["p_value_low"] == pytest.approx(exact_two_sided(6, 8, 0.30))
    assert above["p_value_high"] == pytest.approx(exact_two_sided(6, 8, 0.40))
    # The interval misses 40% but the exact test against 40% gives p 0.067:
    # the two disagree at the edge, so it is not called more than noise.
    assert above["p_value_nearer"] == pytest.approx(exact_two_sided(6, 8, 0.40))
    assert above["p_value_nearer"] == pytest.approx(0.0666, abs=1e-4)
    assert not above["is_more_than_noise"]
    # 0 of 9: Wilson [0, 29.9%] misses 30%, yet the test against 30% gives 0.066.
    none = compare_with_field(0, 9)
    assert none["verdict"] == "below" and not none["is_more_than_noise"]
    within = compare_with_field(35, 100)
    assert within["verdict"] == "within" and not within["is_more_than_noise"]
    assert math.isnan(within["p_value_nearer"])
    # 20% of 400: the interval [16.4%, 24.2%] misses the range, and the test
    # against 30% rejects.
    below = compare_with_field(80, 400)
    assert below["verdict"] == "below" and below["is_more_than_noise"]
    assert below["p_value_nearer"] == pytest.approx(exact_two_sided(80, 400, 0.30))
    assert below["p_value_nearer"] < 0.05
    # 20% of 20: far below on the point, but the interval reaches 30%+: noise.
    assert compare_with_field(4, 20)["verdict"] == "within"


# --- recovery ------------------------------------------------------------------------


def test_recovery_counts_only_orders_after_the_call_within_the_window(study):
    outputs = run_calls_step(study, MONTH, now=NOW)
    recovery = outputs["recovery"].set_index("customer_key")
    recovered = set(recovery.index[recovery["is_recovered"]])
    assert recovered == {key("a1"), key("a5"), key("a6"), key("h2")}
    # a2 ordered before her first call: not counted, but seen.
    assert recovery.loc[key("a2"), "has_order_before_reference"]
    assert recovery.loc[key("a2"), "n_orders"] == 0
    # a6 was never dialled: the hold-out's reference, the median first attempt.
    median = pd.Timestamp("2026-11-09T17:00Z")
    assert recovery.loc[key("a6"), "reference_at"] == median
    assert recovery.loc[key("h1"), "reference_at"] == median
    assert set(recovery["segment"]) == {"cart_abandoners"}  # no hold-out elsewhere

    arms = outputs["recovery_arms"].set_index("arm")
    assert arms.loc["called", ["n_recovered", "n_customers"]].tolist() == [3, 6]
    assert arms.loc["holdout", ["n_recovered", "n_customers"]].tolist() == [1, 6]
    assert arms.loc["called_reached", ["n_recovered", "n_customers"]].tolist() == [2, 4]
    assert arms.loc["called_reached", "analysis"] == "per_protocol_not_randomised"
    assert arms.loc["called", "revenue"] == 170.0  # 80 + 50 + 40
    assert arms.loc["holdout", "revenue"] == 60.0


def test_a_cancelled_order_is_no_recovery(study):
    # h4 (hold-out) and a3 (called) place orders inside their windows and cancel
    # them: neither is a purchase, so the arms stay at 3/6 and 1/6 with the same
    # revenue, as in the fixture without them.
    path = study.processed(MONTH, "orders_order.parquet")
    orders = pd.read_parquet(path).assign(is_cancelled=False)
    cancelled = pd.DataFrame(
        {
            "order_id": ["#1010", "#1011"],
            "customer_key": [key("h4"), key("a3")],
            "created_at": pd.to_datetime(["2026-11-12T15:00Z", "2026-11-12T15:00Z"]),
            "total": [55.0, 45.0],
            "is_cancelled": [True, True],
        }
    )
    pd.concat([orders, cancelled], ignore_index=True).to_parquet(path)

    outputs = run_calls_step(study, MONTH, now=NOW)
    arms = outputs["recovery_arms"].set_index("arm")
    assert arms.loc["called", ["n_recovered", "n_customers"]].tolist() == [3, 6]
    assert arms.loc["holdout", ["n_recovered", "n_customers"]].tolist() == [1, 6]
    assert arms.loc[["called", "holdout"], "revenue"].tolist() == [170.0, 60.0]
    recovery = outputs["recovery"].set_index("customer_key")
    assert recovery.loc[[key("h4"), key("a3")], "n_orders"].tolist() == [0, 0]

    # A caller who typed a3's cancelled order as recovered is told it was cancelled.
    study.processed(MONTH, "attempts_attempt.parquet").unlink()
    raw = study.raw("calls", MONTH, "call-list_filled.csv")
    lines = raw.read_text().splitlines()
    [row] = [n for n, line in enumerate(lines) if key("a3") in line]
    lines[row] += "#1011"
    raw.write_text("\n".join(lines) + "\n")
    flags = run_calls_step(study, MONTH, now=NOW)["recovered_order_flags"]
    assert flags[["row", "reason"]].values.tolist() == [[row + 1, "cancelled"]]
    assert flags["found"].iloc[0] == (
        "order #1011 placed 2026-11-12 15:00 UTC, since cancelled"
    )


def test_recovered_revenue_is_net_of_refunds(study):
    # a1's recovered order (80) is partly refunded (30): it still counts as a
    # recovery, and the called arm's revenue is 170 - 30.
    path = study.processed(MONTH, "orders_order.parquet")
    orders = pd.read_parquet(path)
    recovered = (orders["customer_key"] == key("a1")) & (orders["total"] == 80.0)
    assert recovered.sum() == 1
    orders["refunded_amount"] = np.where(recovered, 30.0, np.nan)
    orders.to_parquet(path)

    outputs = run_calls_step(study, MONTH, now=NOW)
    arms = outputs["recovery_arms"].set_index("arm")
    assert arms.loc["called", ["n_recovered", "n_customers"]].tolist() == [3, 6]
    assert arms.loc[["called", "holdout"], "revenue"].tolist() == [140.0, 60.0]
    recovery = outputs["recovery"].set_index("customer_key")
    assert recovery.loc[key("a1"), "revenue"] == 50.0


def test_recovery_difference_matches_newcombe_and_fisher_by_hand(study):
    comparison = run_calls_step(study, MONTH, now=NOW)["summary"]["recovery"]
    cart = comparison["cart_abandoners"]
    low, high = newcombe_by_hand(3, 6, 1, 6)
    assert cart["difference"]["estimate"] == pytest.approx(3 / 6 - 1 / 6)
    assert (
        cart["difference"]["ci_low"],
        cart["difference"]["ci_high"],
    ) == pytest.approx((low, high))
    assert cart["p_value"] == pytest.approx(fisher_by_hand(3, 6, 1, 6))
    assert cart["excess_revenue"] == pytest.approx(170 - 6 * 60 / 6)
    assert cart["per_protocol"]["label"].endswith("not randomised")
    assert cart["verdict"] == "no_clear_difference"  # 3/6 vs 1/6 is noise


TYPED_REFERENCES = {
    # (customer, attempt time in the fixture): what the caller typed.
    (key("a2"), "2026-11-11T11:00"): "#1002",  # her own, placed 5 Nov
    (key("a4"), "2026-11-12T10:00"): "#1003",  # his own, placed 30 Nov
    (key("a5"), "2026-11-10T10:00"): "#1007",  # h2's order
    (key("f1"), "2026-11-16T19:00"): " 1009",  # f1's own, in the window
    (key("f3"), "2026-11-18T10:00"): "#9999",  # no such order
}


def type_references(study) -> None:
    """Write the callers' recovered-order references into the fixture's log."""
    raw = study.raw("calls", MONTH, "call-list_filled.csv")
    lines = raw.read_text().splitlines()
    for (customer, when), reference in TYPED_REFERENCES.items():
        [number] = [
            n for n, line in enumerate(lines) if customer in line and when in line
        ]
        lines[number] = lines[number] + reference
    raw.write_text("\n".join(lines) + "\n")


def test_recovered_order_the_orders_do_not_bear_out_is_flagged_not_counted(
    study, caplog
):
    clean = run_calls_step(study, MONTH, now=NOW)
    assert clean["recovered_order_flags"].empty  # a1's #1001 is right
    study.processed(MONTH, "attempts_attempt.parquet").unlink()
    type_references(study)
    typed = run_calls_step(study, MONTH, now=NOW)

    flags = typed["recovered_order_flags"]
    assert flags[["row", "column", "recovered_order", "reason"]].values.tolist() == [
        [5, "recovered_order", "#1002", "before_attempt"],
        [9, "recovered_order", "#1003", "after_window"],
        [10, "recovered_order", "#1007", "other_customer"],
        [15, "recovered_order", "#9999", "not_in_orders"],
    ]
    assert set(flags["file"]) == {"call-list_filled.csv"}
    found = flags.set_index("reason")["found"]
    assert found["before_attempt"] == (
        "order #1002 placed 2026-11-05 15:00 UTC, before this attempt "
        "(2026-11-11 16:00 UTC)"
    )
    # a4's window opened at his first attempt, 10 Nov 14:30 UTC, for 14 days.
    assert found["after_window"].endswith(
        "after the window closed (2026-11-24 14:30 UTC)"
    )
    assert found["other_customer"] == f"order #1007 of customer {key('h2')}"
    assert "14 days after their first attempt" in flags["expected"].iloc[0]
    saved = pd.read_parquet(
        study.processed(MONTH, "recovered-order-flags_attempt.parquet")
    )
    assert saved["row"].tolist() == [5, 9, 10, 15]
    assert "4 recovered_order references" in caplog.text

    # The orders decide: a2's typed order (before her call) is no recovery, and
    # no rate moves with what callers typed.
    recovery = typed["recovery"].set_index("customer_key")
    assert not recovery.loc[key("a2"), "is_recovered"]
    pd.testing.assert_frame_equal(typed["recovery_arms"], clean["recovery_arms"])
    assert typed["summary"]["recovery"] == clean["summary"]["recovery"]


def test_heard_check_warns_about_each_flagged_reference(study):
    from helpers.calls import check_call_logs
    from helpers.checks import check_study, format_problems

    type_references(study)
    flagged = check_call_logs(study, MONTH)
    assert [(e.row, e.column) for e in flagged] == [
        (5, "recovered_order"),
        (9, "recovered_order"),
        (10, "recovered_order"),
        (15, "recovered_order"),
    ]
    warnings = [
        p
        for p in check_study(study, month=MONTH)
        if p.step == "calls" and p.severity == "warning"
    ]
    assert [(Path(p.file).name, p.row) for p in warnings] == [
        ("call-list_filled.csv", row) for row in (5, 9, 10, 15)
    ]
    shown = format_problems(warnings, study=study)
    assert (
        f"calls/{MONTH}/call-list_filled.csv, row 15, column 'recovered_order'" in shown
    )
    assert "'#9999', which is not in the orders export" in shown
    assert "check the order number with the store" in shown


@pytest.mark.parametrize(
    ("low", "high", "p_value", "verdict"),
    [
        (0.02, 0.30, 0.01, "higher"),
        (-0.30, -0.02, 0.01, "lower"),
        (0.015, 0.37, 0.062, "borderline"),  # the demo's November: CI and test split
        (-0.17, 0.67, 0.55, "no_clear_difference"),
    ],
)
def test_difference_verdict_needs_interval_and_test_to_agree(
    low, high, p_value, verdict
):
    from helpers.calls import judge_difference

    assert judge_difference(low, high, p_value, alpha=0.05) == verdict


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"), [(45, 80, 30, 82), (12, 40, 0, 38)])
def test_recovery_comparison_on_larger_counts(k1, n1, k2, n2):
    rows = [("called", i < k1, 10.0 * (i < k1)) for i in range(n1)] + [
        ("holdout", i < k2, 10.0 * (i < k2)) for i in range(n2)
    ]
    recovery = pd.DataFrame(rows, columns=["arm", "is_recovered", "revenue"]).assign(
        segment="cart_abandoners",
        is_reached=True,
        customer_key=[f"c_{i:012d}" for i in range(n1 + n2)],
    )
    _, comparison = compare_recovery(recovery)
    cart = comparison["cart_abandoners"]
    assert (
        cart["difference"]["ci_low"],
        cart["difference"]["ci_high"],
    ) == pytest.approx(newcombe_by_hand(k1, n1, k2, n2))
    assert cart["p_value"] == pytest.approx(fisher_by_hand(k1, n1, k2, n2))


def test_revenue_per_conversation_point_and_interval():
    # The fixture by hand: excess 170 - 6 * 10 = 110 over 2 conversations.
    fixture = pd.DataFrame(
        {
            "segment": "cart_abandoners",
            "arm": ["called"] * 6 + ["holdout"] * 6,
            "revenue": [80, 0, 0, 0, 50, 40, 0, 60, 0, 0, 0, 0],
            "is_conversation": [True, False, False, True, False, False] + [False] * 6,
        }
    )
    assert estimate_revenue_per_conversation(fixture)["estimate"] == pytest.approx(55)

    # A larger sample: the bootstrap interval agrees with the delta method.
    rng = np.random.default_rng(7)
    n_called, n_holdout = 400, 400
    talked = rng.random(n_called) < 0.35
    called = np.where(rng.random(n_called) < np.where(talked, 0.5, 0.25), 80.0, 0.0)
    holdout = np.where(rng.random(n_holdout) < 0.2, 80.0, 0.0)
    frame = pd.DataFrame(
        {
            "segment": "cart_abandoners",
            "arm": ["called"] * n_called + ["holdout"] * n_holdout,
            "revenue": np.concatenate([called, holdout]),
            "is_conversation": np.concatenate([talked, np.zeros(n_holdout, bool)]),
        }
    )
    result = estimate_revenue_per_conversation(frame, resamples=2000, seed=1)
    d, p = called.mean() - holdout.mean(), talked.mean()
    assert result["estimate"] == pytest.approx(d / p)
    var_d = called.var(ddof=1) / n_called + holdout.var(ddof=1) / n_holdout
    var_p = p * (1 - p) / n_called
    cov = np.cov(called, talked.astype(float))[0, 1] / n_called
    se = math.sqrt(var_d / p**2 + d**2 * var_p / p**4 - 2 * d * cov / p**3)
    half = (result["ci_high"] - result["ci_low"]) / 2
    assert half == pytest.approx(Z * se, rel=0.12)

    # And with scipy's own two-sample bootstrap resampling the same units.
    def ratio(index, held):
        index = index.astype(int)
        return (called[index].sum() - len(index) * held.mean()) / talked[index].sum()

    scipy_ci = bootstrap(
        (np.arange(n_called, dtype=float), holdout),
        ratio,
        vectorized=False,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert result["ci_low"] == pytest.approx(scipy_ci.low, rel=0.1, abs=5)
    assert result["ci_high"] == pytest.approx(scipy_ci.high, rel=0.1, abs=5)


# --- re-import, do-not-call and the step's files -------------------------------------


def test_run_calls_step_writes_outputs_and_summary(study):
    outputs = run_calls_step(study, MONTH, now=NOW)
    folder = study.processed(MONTH)
    for name in (
        "attempts_attempt.parquet",
        "recovery_arm.parquet",
        "do-not-call-requests_customer.parquet",
        "connect-rates_local-hour.parquet",
        "connect-rates_attempt-number.parquet",
        "summary_calls.json",
    ):
        assert (folder / name).exists(), name
    summary = outputs["summary"]
    assert (
        summary["n_dialled"],
        summary["n_attempts"],
        summary["n_conversations"],
    ) == (
        8,
        13,
        4,
    )
    assert {"k", "n", "rate", "ci_low", "ci_high"} <= set(
        summary["connect_rate_customer"]
    )
    assert summary["connect_rate_attempt"]["k"] == 7
    requests = pd.read_parquet(folder / "do-not-call-requests_customer.parquet")
    assert requests["customer_key"].tolist() == [key("a3")]
    assert requests["requested_at"].iloc[0] == pd.Timestamp("2026-11-09T17:00Z")
    assert not any("name" in c or "phone" in c for c in outputs["attempts"].columns)


def test_without_a_holdout_recovery_is_left_undefined(study):
    path = study.processed(MONTH, "assignment_customer.parquet")
    assignment = pd.read_parquet(path)
    assignment[assignment["arm"] == "called"].to_parquet(path)
    summary = run_calls_step(study, MONTH, now=NOW)["summary"]
    assert summary["recovery"] == {}
    per_conversation = summary["revenue_per_conversation"]
    assert per_conversation["estimate"] is None
    assert per_conversation["attributable_revenue"] is None
    assert summary["n_conversations"] == 4  # connect rates do not need a hold-out


def test_reimport_keeps_what_was_logged_and_reports_conflicts(study, caplog):
    run_calls_step(study, MONTH, now=NOW)
    raw = study.raw("calls", MONTH, "call-list_filled.csv")
    lines = raw.read_text().splitlines()

    # The callers' file changes: a5's outcome edited, a2's second attempt deleted,
    # a new attempt for a6 added.
    edited = [
        line.replace("declined,15", "connected,15") if key("a5") in line else line
        for line in lines
        if "2026-11-11T11:00" not in line
    ]
    edited.append(f"{key('a6')},,,,2026-11-19T10:00:00-05:00,Sam,no_answer,,,")
    raw.write_text("\n".join(edited) + "\n")
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()

    outputs = run_calls_step(study, MONTH, now=NOW)
    attempts = outputs["attempts"].set_index("customer_key")
    assert len(outputs["attempts"]) == 14  # 13 kept + 1 new
    assert attempts.loc[key("a5"), "outcome"] == "declined"  # logged value kept
    assert len(attempts.loc[[key("a2")]]) == 2  # the deleted row is still logged
    # ... and the warning says so, naming where it came from (row 5 of the log).
    assert (
        "1 attempts already logged are no longer in the raw call logs "
        f"(e.g. call-list_filled.csv row 5, {key('a2')} at 2026-11-11 16:00 UTC)"
    ) in caplog.text
    conflicts = outputs["conflicts"]
    assert conflicts[
        ["customer_key", "column", "logged", "incoming"]
    ].values.tolist() == [[key("a5"), "outcome", "declined", "connected"]]
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == digest  # raw untouched
    saved = pd.read_parquet(study.processed(MONTH, "attempt-conflicts_attempt.parquet"))
    assert len(saved) == 1


def test_conversations_without_notes_are_found(study, attempts, tmp_path, caplog):
    from helpers.calls import find_missing_notes

    # No notes folder yet: all four connected attempts name a file not there.
    missing = find_missing_notes(attempts, folder=tmp_path / "none")
    assert missing["notes_file"].tolist() == [
        "2026-11-01.md", "2026-11-02.md", "2026-11-03.md", "2026-11-04.md",
    ]  # fmt: skip
    assert set(missing["reason"]) == {"not_in_folder"}

    # Two notes written; a1's row names hers by path; f3's row names none.
    folder = tmp_path / "conversations"
    folder.mkdir()
    for name in ("2026-11-01.md", "2026-11-02.md"):
        (folder / name).write_text("---\n---\n")
    edited = attempts.copy()
    edited["notes_file"] = edited["notes_file"].replace(
        {"2026-11-01.md": "conversations/2026-11/2026-11-01.md", "2026-11-04.md": None}
    )
    missing = find_missing_notes(edited, folder=folder)
    assert missing[["customer_key", "notes_file", "reason"]].values.tolist() == [
        [key("f1"), "2026-11-03.md", "not_in_folder"],
        [key("f3"), None, "not_named"],
    ]
    assert missing["source_row"].tolist() == [12, 15]

    # The step warns with counts and the first row to look at.
    run_calls_step(study, MONTH, now=NOW)
    assert "4 conversations in the call logs have no notes" in caplog.text
    assert "call-list_filled.csv row 3" in caplog.text


def test_merge_drops_identical_repeats(attempts):
    merged, conflicts = merge_attempts(attempts, attempts.copy())
    assert len(merged) == len(attempts) and conflicts.empty


# --- the call guide ------------------------------------------------------------------


def test_call_guide_has_question_prompts_consent_and_codes(study):
    guide = build_call_guide(study, MONTH, "cart_abandoners")
    assert "> What almost stopped you from buying?" in guide
    assert "What surprised you" in guide
    assert "Walk me through what happened at checkout." in guide
    assert "May we quote what you said" in guide
    for outcome in OUTCOMES:
        assert f"| `{outcome}` |" in guide
    assert guide.count("What almost stopped you from buying?") == 2  # asked once
    assert len(guide.splitlines()) < 60  # one printed page
    other = build_call_guide(study, MONTH, "first_time_no_return")
    assert "checkout" not in other
    assert guide.startswith(
        "# Call guide: Cart abandoners, 2026-11\n\n**Fixture Store.**"
    )


def test_call_guide_ends_a_store_name_with_one_full_stop(study):
    study.config["study"]["name"] = "Demo Outdoor Co."
    guide = build_call_guide(study, MONTH, "cart_abandoners", with_title=False)
    assert guide.startswith("**Demo Outdoor Co.** You are calling to learn")


def test_call_guide_without_a_question_says_where_to_add_it(study):
    with pytest.raises(HeardInputError) as error:
        build_call_guide(study, "2026-12", "cart_abandoners")
    assert error.value.column == "months.2026-12.question"


@pytest.mark.slow
def test_call_guide_renders_to_one_pdf_page(study, tmp_path):
    render = pytest.importorskip("helpers.render")
    if not hasattr(render, "render_markdown_pdf"):
        pytest.skip("the report renderer has no render_markdown_pdf yet")
    from pypdf import PdfReader

    guide = build_call_guide(study, MONTH, "cart_abandoners")
    target = render.render_markdown_pdf(guide, tmp_path / "guide.pdf", title="Guide")
    pages = PdfReader(target).pages
    assert len(pages) == 1
    assert "What almost stopped you from buying?" in pages[0].extract_text()


@pytest.mark.slow
def test_call_guides_are_ready_before_any_call_is_logged(study):
    from pypdf import PdfReader

    from helpers.calls import write_call_guides

    shutil.rmtree(study.raw("calls", MONTH))  # week 1: a call list, no log yet
    assert study.processed(MONTH, f"call-list_customer_{MONTH}.csv").exists()
    segments = ["cart_abandoners", "first_time_no_return"]
    paths = write_call_guides(study, MONTH, segments)
    assert [p.name for p in paths] == [f"call-guide_{s}_{MONTH}.pdf" for s in segments]
    titles = ["Cart abandoners", "First-time, no return"]
    for path, segment, title in zip(paths, segments, titles, strict=True):
        pages = PdfReader(path).pages
        text = " ".join(pages[0].extract_text().split())
        assert len(pages) == 1
        assert f"Call guide: {title}, {MONTH}" in text
        assert "What almost stopped you from buying?" in text  # the month's question
        assert study.config["calls"]["guide"]["consent_wording"] in text
        for outcome in OUTCOMES:
            assert outcome in text
        markdown = path.with_suffix(".md").read_text(encoding="utf-8")
        assert markdown == build_call_guide(study, MONTH, segment)


@pytest.mark.slow
def test_notebook_runs_on_the_fixture_study(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "study", root / "data" / "raw" / "fixture")
    folder = root / "data" / "processed" / "fixture" / MONTH
    write_step_01_outputs(folder)
    monkeypatch.setenv("HEARD_ROOT", str(root))
    notebooks = Path(__file__).parents[1] / "notebooks"
    papermill.execute_notebook(
        str(notebooks / "02_calls.ipynb"),
        str(tmp_path / "02_calls.ipynb"),
        parameters={"study": "fixture", "month": MONTH},
        cwd=str(notebooks),
        progress_bar=False,
    )
    summary = json.loads((folder / "summary_calls.json").read_text())
    assert (summary["n_attempts"], summary["n_conversations"]) == (13, 4)
    # The guides go out with the call list (notebook 01): one writer per file.
    assert not list(folder.glob("call-guide_*"))

    # 6 of 8 answered: Wilson [40.9%, 92.9%] clears 40%, but the exact binomial
    # test against 40% gives p 0.067, so the prose must not call it more than noise.
    assert binomtest(6, 8, 0.40).pvalue > 0.05
    executed = json.loads((tmp_path / "02_calls.ipynb").read_text())
    prose = " ".join(
        "".join(output.get("data", {}).get("text/markdown", ""))
        for cell in executed["cells"]
        for output in cell.get("outputs", [])
    )
    assert "field reports, more than noise" not in prose
    assert "by more than noise" not in prose
    assert "borderline" in prose
    assert "USD undefined" not in prose
    assert "## Method" in prose and "Newcombe's hybrid score" in prose


def test_a_month_without_a_call_log_is_told_apart_from_a_month_with_one(study):
    from helpers.calls import describe_missing_log, list_call_logs, read_call_log

    logs = list_call_logs(study, MONTH)
    assert logs and all(path.parent == study.raw("calls", MONTH) for path in logs)
    (study.raw("calls", MONTH) / "~$call-list.xlsx").write_bytes(b"lock")
    assert list_call_logs(study, MONTH) == logs  # a spreadsheet's lock file
    assert list_call_logs(study, "2026-12") == []
    assert "No call log for 2026-12 yet" in describe_missing_log(study, "2026-12")
    with pytest.raises(HeardInputError, match="no call log"):
        read_call_log(study, "2026-12")

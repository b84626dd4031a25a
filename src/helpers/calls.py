"""Weeks 2-3, calls: the call log read back, connect rates and cart recovery.

Callers fill in the call list (one row per attempt) or a phone system exports its
own log. Heard reads either into one table of attempts with one vocabulary of
outcomes, then measures how often customers answer, how many conversations each
segment has, and, for segments drawn with a not-called hold-out, whether calling
changed how many customers ordered.

Two words are kept apart throughout:

- **reached** (a connect): the customer answered the phone in person. Outcomes
  ``connected``, ``declined``, ``callback_requested`` and ``do_not_call`` all need a
  person to answer, so all four are connects. A voicemail, a machine, or a phone
  system's "completed" status is never a connect.
- **conversation**: an attempt whose outcome is ``connected``, i.e. the interview
  happened. Conversations are counted per customer (a customer spoken to twice is
  one conversation).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.errors import HeardInputError, raise_problems
from helpers.schemas import ATTEMPTS, OUTCOMES, order_flag, validate
from helpers.study import Study, check_month, load_study
from helpers.tables import (
    format_count_rate,
    format_interval,
    format_money,
    format_segment,
)

log = logging.getLogger(__name__)

OUTCOME_MEANINGS = {
    "connected": "the customer answered and the conversation happened",
    "voicemail": "a voicemail or answering machine picked up (message left or not)",
    "no_answer": "it rang out, or the call was cancelled before anyone answered",
    "busy": "the line was busy",
    "wrong_number": "the number is not the customer's, or does not exist",
    "declined": "the customer answered but did not want to talk",
    "callback_requested": "the customer answered and asked to be called later",
    "do_not_call": "the customer asked never to be called again",
}
REACHED_OUTCOMES = frozenset(
    {"connected", "declined", "callback_requested", "do_not_call"}
)
LOG_COLUMNS = (
    "customer_key",
    "attempted_at",
    "caller",
    "outcome",
    "talk_seconds",
    "notes_file",
    "recovered_order",
)
RECORD_COLUMNS = (*LOG_COLUMNS, "is_zone_assumed", "source_file", "source_row")
KEY_ALIASES = ("customer_key", "reference")
RECOVERY_COLUMNS = [
    "customer_key",
    "segment",
    "arm",
    "reference_at",
    "is_own_reference",
    "is_dialled",
    "is_reached",
    "is_conversation",
    "n_orders",
    "revenue",
    "is_recovered",
    "has_order_before_reference",
]
RECOVERY_FLAG_COLUMNS = [
    "file",
    "row",
    "column",
    "customer_key",
    "attempted_at",
    "recovered_order",
    "reason",
    "expected",
    "found",
]
RECOVERY_FLAG_FIX = (
    "check the order number with the store and correct the cell; recovery counts "
    "the orders export, never this reference, so it adds no recovery either way"
)
BREAKDOWNS = ("overall", "segment", "caller", "local-hour", "attempt-number")
CALL_FILE_SUFFIXES = (".csv", ".xlsx")

# Phone systems recognised from their header (docs: FORMATS.md section 4). Each
# maps Heard's columns to the log's (lower-cased) columns and its statuses onto
# Heard's outcomes. A status missing here is an error unless calls.status_map
# covers it: guessing would turn machines into connects.
PHONE_SYSTEMS = {
    "twilio": {
        "detect": ("call sid", "status"),
        "columns": {
            "phone": ("to",),
            "attempted_at": ("start time", "starttime", "date created"),
            "caller": ("from",),
            "outcome": ("status",),
            "answered_by": ("answeredby", "answered by"),
            "talk_seconds": ("duration",),
            "direction": ("direction",),
        },
        "status_map": {
            "busy": "busy",
            "no-answer": "no_answer",
            "canceled": "no_answer",
            "failed": "wrong_number",
        },
    },
    "ringcentral": {
        "detect": ("action result",),
        "columns": {
            "phone": ("phone number", "to"),
            "attempted_at": ("date time", "start time"),
            "date": ("date",),
            "time": ("time",),
            "caller": ("from name", "extension", "from"),
            "outcome": ("action result", "result"),
            "talk_seconds": ("duration", "duration (h:mm:ss)"),
            "direction": ("direction",),
        },
        "status_map": {
            "accepted": "connected",
            "call connected": "voicemail",
            "voicemail": "voicemail",
            "missed": "no_answer",
            "no answer": "no_answer",
            "hang up": "no_answer",
            "busy": "busy",
            "rejected": "declined",
            "declined": "declined",
            "wrong number": "wrong_number",
            "restricted number": "wrong_number",
        },
    },
    "aircall": {
        "detect": ("duration (in call)", "answered"),
        "columns": {
            "phone": ("customer number", "to"),
            "attempted_at": ("datetime (tz offset incl.)", "datetime (utc)"),
            "caller": ("user",),
            "outcome": ("answered",),
            "talk_seconds": ("duration (in call)",),
            "direction": ("direction",),
        },
        # Aircall cannot tell a person from a voicemail box on outbound calls, so
        # "yes" is left for the study to map (or for callers to code by hand).
        "status_map": {"no": "no_answer"},
    },
}
TWILIO_MACHINES = ("machine", "fax")

# The printable call guide; {placeholders} are filled by build_call_guide.
DEFAULT_CONSENT = "May we quote what you said, without your name?"
CALL_GUIDE = """{title}**{store}.** You are calling to learn, not to sell. Listen more
than you talk; ask "what happened next?" rather than "did you like it?".

## This month's question

> {question}

## Prompts (open-ended; follow the customer, not the order)

{prompts}

Ask for a story ("tell me about the last time..."), not an opinion. Write the
customer's own words down as they say them.

## Consent to quote

Before you finish, read this out; note the answer as `consent_to_quote` in the
conversation's notes file:

> {consent}

## Recording each attempt

One row per attempt in the call list: `attempted_at` (date, time and zone),
`caller`, `outcome`, `talk_seconds`, `notes_file`. Add a new row for each retry.
Only `connected` means a conversation happened; a voicemail is never `connected`.

| code | use when |
|:---|:---|
{codes}

If the customer asks not to be called again, record `do_not_call`: they are left off
every later call list.
"""


# --------------------------------------------------------------------------------------
# Reading one log
# --------------------------------------------------------------------------------------


def load_call_log(
    path: Path,
    *,
    assignment: pd.DataFrame,
    config: dict,
    month: str | None = None,
    now: pd.Timestamp | None = None,
    phone_book: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read one call log (Heard's columns or a phone system's) into attempts.

    Parameters
    ----------
    path : Path
        A ``.csv`` or ``.xlsx`` file: the call list as callers filled it in (a
        ``reference`` or ``customer_key`` column), or a phone system's export
        (Twilio, RingCentral, Aircall recognised from the header; others through
        ``calls.column_map``).
    assignment : DataFrame
        ``assignment_customer.parquet``: ``customer_key``, ``segment``, ``arm``.
    config : dict
        The study configuration (``study.timezone``, ``calls.status_map``,
        ``calls.column_map``, ``study.default_country``, ``exports.dayfirst``).
    month : str, optional
        The call list's month; taken from the parent folder's name when omitted.
    now : Timestamp, optional
        Attempts after this are impossible; the current time when omitted.
    phone_book : dict, optional
        E.164 phone -> ``customer_key``, for logs that name customers by phone.

    Returns
    -------
    DataFrame
        One row per attempt: ``customer_key``, ``attempted_at`` (UTC),
        ``caller``, ``outcome``, ``talk_seconds``, ``notes_file``,
        ``recovered_order``, ``is_zone_assumed``, ``source_file``, ``source_row``
        (the spreadsheet row). Rows of the call list nobody dialled yet (no time
        and no outcome) are skipped.

    Raises
    ------
    HeardInputError
        For a file that cannot be read or lacks a column; or for one bad row:
        an unknown outcome, a customer not on the call list (or in the
        hold-out), an unparseable time, a time before the month or in the
        future, a phone number not on the call list, a half-filled row, a
        negative or unreadable talk time.
    HeardInputGroupError
        When several rows are bad: every problem in the file, in row order.

    Notes
    -----
    Times without a zone are read in the study's time zone, flagged in
    ``is_zone_assumed`` and logged as a warning.
    """
    path = Path(path)
    month = check_month(month or path.parent.name)
    table = read_table(path)

    # Put the log in Heard's columns, then drop rows nobody has dialled.
    attempts = keep_outbound(rename_log_columns(table, path=path, config=config))
    attempts, half_filled = drop_undialled_rows(attempts, path=path)
    attempts = attempts.reset_index(drop=True)
    for column in LOG_COLUMNS:
        if column not in attempts and column not in ("customer_key", "attempted_at"):
            attempts[column] = None

    # Every row is checked before any is refused: a caller fixes them all at once.
    cells, problems = check_log_rows(
        attempts,
        path=path,
        month=month,
        assignment=assignment,
        config=config,
        now=now,
        book=phone_book,
    )
    raise_problems(sorted([*half_filled, *problems], key=lambda p: p.row or 0))

    result = pd.DataFrame(
        {
            **cells,
            "caller": clean_text(attempts["caller"]),
            "notes_file": clean_text(attempts["notes_file"]),
            "recovered_order": clean_text(attempts["recovered_order"]),
            "source_file": path.name,
            "source_row": attempts["source_row"].to_numpy(),
        }
    )[list(RECORD_COLUMNS)]
    log.info("read %d attempts from %s", len(result), path.name)
    return validate(result, ATTEMPTS, file=path, fix="correct the cell in the log")


def check_log_rows(
    attempts: pd.DataFrame,
    *,
    path: Path,
    month: str,
    assignment: pd.DataFrame,
    config: dict,
    now: pd.Timestamp | None,
    book: dict[str, str] | None,
) -> tuple[dict, list[HeardInputError]]:
    """Return the checked cells of every attempt, and every row problem found.

    Parameters
    ----------
    attempts : DataFrame
        Dialled rows in Heard's column names (:func:`rename_log_columns`).
    path, month, assignment, config, now, book
        As :func:`load_call_log` (``book`` is its ``phone_book``).

    Returns
    -------
    cells : dict
        ``customer_key``, ``attempted_at`` (UTC), ``is_zone_assumed``,
        ``outcome`` and ``talk_seconds``, one value per attempt; a bad cell
        holds a missing value.
    problems : list of HeardInputError
        One per bad cell (one for the whole file when most customers are off
        the list), in the order the checks ran.

    Raises
    ------
    HeardInputError
        For a problem of the whole file (no customer or phone column).
    """
    outcomes, problems = map_outcomes(attempts, path=path, config=config)
    times, assumed, bad_times = parse_attempt_times(attempts, path=path, config=config)
    problems += bad_times
    problems += check_attempt_times(
        times, attempts, path=path, month=month, config=config, now=now
    )
    keys, unknown = resolve_customer_keys(attempts, path=path, config=config, book=book)
    problems += unknown
    problems += check_customers_called(keys, attempts, path=path, assignment=assignment)
    talk, bad_talk = check_durations(attempts, path=path)
    cells = {
        "customer_key": keys,
        "attempted_at": times,
        "is_zone_assumed": assumed,
        "outcome": outcomes,
        "talk_seconds": talk,
    }
    return cells, problems + bad_talk


def read_table(path: Path) -> pd.DataFrame:
    """Return a CSV or XLSX sheet as text/datetime cells with normalised headers.

    Headers are stripped of spaces and a byte-order mark and lower-cased; the
    column ``source_row`` holds each row's spreadsheet number (header = 1).
    """
    suffix = path.suffix.lower()
    try:
        table = read_log_file(path, suffix)
    except (pd.errors.EmptyDataError, UnicodeDecodeError, zipfile.BadZipFile) as error:
        raise HeardInputError(
            path,
            expected="a call log saved as CSV UTF-8 or XLSX, with a header row",
            found=f"{type(error).__name__}: {error}",
            fix="export the log again; in Excel choose 'CSV UTF-8' or 'Excel Workbook'",
        ) from error
    if table is None:
        raise HeardInputError(
            path,
            expected="a .csv or .xlsx call log",
            found=suffix or "no extension",
            fix="save the log as CSV or XLSX",
        )
    table = table.rename(columns=lambda c: str(c).strip().lstrip("\ufeff").lower())
    table = table.map(lambda v: None if isinstance(v, str) and not v.strip() else v)
    table["source_row"] = np.arange(2, len(table) + 2)
    return table


def read_log_file(path: Path, suffix: str) -> pd.DataFrame | None:
    """Return the raw sheet of a .csv or .xlsx log; None for another suffix.

    A CSV's encoding (UTF-8, with or without a byte-order mark, or Windows-1252)
    and delimiter (comma, semicolon or tab) are recognised as for store exports
    (:func:`helpers.exports.sniff_file`): Excel in many European locales saves
    "CSV" with semicolons in Windows-1252.
    """
    if suffix == ".csv":
        from helpers.exports import read_text_table

        try:
            return read_text_table(path)
        except HeardInputError as error:
            # exports.encoding does not apply to call logs: say what does.
            raise HeardInputError(
                path,
                row=error.row,
                expected=error.expected,
                found=error.found,
                fix="save the log again as CSV UTF-8 or as an Excel workbook",
            ) from error
    if suffix == ".xlsx":
        return pd.read_excel(path, dtype=object, engine="openpyxl")
    return None


def rename_log_columns(
    table: pd.DataFrame, *, path: Path, config: dict
) -> pd.DataFrame:
    """Return `table` with its columns renamed to Heard's log columns.

    Heard's own names come first (``reference`` counts as ``customer_key``), so
    the call list callers fill in always reads; then the study's
    ``calls.column_map``; then a known phone system's header.
    """
    if "outcome" in table and any(alias in table for alias in KEY_ALIASES):
        # The call list carries both; a caller's extra row may fill only one.
        keys = table[[c for c in KEY_ALIASES if c in table]].bfill(axis=1).iloc[:, 0]
        renamed = table.drop(columns=[c for c in KEY_ALIASES if c in table])
        return renamed.assign(customer_key=keys, phone_system="heard")
    column_map = {
        heard: str(theirs).strip().lower()
        for heard, theirs in (config.get("calls", {}).get("column_map") or {}).items()
    }
    if column_map:
        missing = [theirs for theirs in column_map.values() if theirs not in table]
        if missing:
            raise HeardInputError(
                path,
                column=missing[0],
                expected="the column named in calls.column_map",
                found=f"columns {sorted(c for c in table if c != 'source_row')}",
                fix="correct calls.column_map in study.yml",
            )
        renamed = table.rename(columns={v: k for k, v in column_map.items()})
        return renamed.assign(phone_system="custom")
    for name, system in PHONE_SYSTEMS.items():
        if all(column in table for column in system["detect"]):
            renamed = table.rename(columns=_pick_columns(table, system["columns"]))
            log.info("%s: read as a %s call log", path.name, name)
            return renamed.assign(phone_system=name)
    raise HeardInputError(
        path,
        expected="a call log with columns reference (or customer_key), attempted_at, "
        "caller, outcome, or a Twilio / RingCentral / Aircall export",
        found=f"columns {sorted(c for c in table if c != 'source_row')}",
        fix="use the call list's own columns, or map yours in calls.column_map",
    )


def _pick_columns(table: pd.DataFrame, candidates: dict) -> dict:
    """Return ``{their column: Heard's column}`` taking the first candidate found."""
    chosen = {}
    for heard, names in candidates.items():
        found = next((name for name in names if name in table), None)
        if found is not None and found not in chosen:
            chosen[found] = heard
    return chosen


def keep_outbound(attempts: pd.DataFrame) -> pd.DataFrame:
    """Return the legs that rang a customer: a phone system's inbound calls (a
    customer calling in, or a caller's app leg into Twilio) are not attempts."""
    if (
        "direction" not in attempts
        or attempts["phone_system"].iloc[:1].eq("heard").all()
    ):
        return attempts
    direction = attempts["direction"].fillna("").astype(str).str.strip().str.casefold()
    is_outbound = direction.str.startswith("outbound") | direction.eq("")
    if (~is_outbound).any():
        log.info("left out %d inbound call legs", int((~is_outbound).sum()))
    return attempts[is_outbound]


def drop_undialled_rows(
    attempts: pd.DataFrame, *, path: Path
) -> tuple[pd.DataFrame, list[HeardInputError]]:
    """Return the rows that record an attempt, and a problem per half-filled row
    (a time without an outcome or the reverse; left out of the rows returned)."""
    time_column = "attempted_at" if "attempted_at" in attempts else "date"
    for column in (time_column, "outcome"):
        if column not in attempts:
            raise HeardInputError(
                path,
                column=column,
                expected=f"a column {column!r}",
                found="no such column",
                fix="add the column, or map it in calls.column_map",
            )
    has_time = attempts[time_column].notna()
    has_outcome = attempts["outcome"].notna()
    problems = []
    for _, row in attempts[has_time != has_outcome].iterrows():
        missing = time_column if pd.isna(row[time_column]) else "outcome"
        problems.append(
            HeardInputError(
                path,
                row=int(row["source_row"]),
                column=missing,
                expected="both an attempt time and an outcome for a dialled row",
                found="one of them blank",
                fix=f"fill in {missing}, or clear the row if nobody dialled",
            )
        )
    return attempts[has_time & has_outcome], problems


def build_status_map(config: dict, *, system: str) -> dict[str, str]:
    """Return status -> outcome: Heard's vocabulary, the phone system's statuses,
    then the study's ``calls.status_map`` on top (keys case-folded)."""
    status_map = {outcome: outcome for outcome in OUTCOMES}
    status_map.update({o.replace("_", " "): o for o in OUTCOMES})
    status_map.update({o.replace("_", "-"): o for o in OUTCOMES})
    status_map.update(PHONE_SYSTEMS.get(system, {}).get("status_map", {}))
    study_map = config.get("calls", {}).get("status_map") or {}
    status_map.update({str(k).strip().casefold(): v for k, v in study_map.items()})
    return status_map


def map_outcomes(
    attempts: pd.DataFrame, *, path: Path, config: dict
) -> tuple[np.ndarray, list[HeardInputError]]:
    """Return each attempt's outcome in Heard's vocabulary (None when unknown),
    and a problem per unknown status.

    Twilio's ``completed`` is a connect only when ``AnsweredBy`` is ``human``; a
    machine or fax makes it a voicemail. When ``AnsweredBy`` is blank or
    ``unknown`` it is refused, unless ``calls.status_map`` says what
    ``completed`` means for this study.
    """
    system = attempts["phone_system"].iloc[0] if len(attempts) else "heard"
    status_map = build_status_map(config, system=system)
    answered_by = attempts.get("answered_by")
    outcomes, problems = [], []
    for position, status in enumerate(attempts["outcome"]):
        text = str(status).strip().casefold()
        outcome = status_map.get(text)
        if system == "twilio" and text == "completed":
            outcome = _twilio_answer(answered_by, position) or status_map.get(text)
        if outcome not in OUTCOMES:
            problems.append(
                _unknown_outcome(
                    attempts, position, path=path, status=status, system=system
                )
            )
            outcome = None
        outcomes.append(outcome)
    return np.array(outcomes, dtype=object), problems


def _twilio_answer(answered_by: pd.Series | None, position: int) -> str | None:
    """Return Heard's outcome for a completed Twilio call from ``AnsweredBy``, or
    None when it does not say (no detection, or ``unknown``)."""
    if answered_by is None or pd.isna(answered_by.iloc[position]):
        return None
    who = str(answered_by.iloc[position]).strip().casefold()
    if who == "human":
        return "connected"
    if who.startswith(TWILIO_MACHINES):
        return "voicemail"
    return None


def _unknown_outcome(
    attempts, position, *, path, status, system: str
) -> HeardInputError:
    """Return the error for a status that maps to no outcome."""
    row = attempts.iloc[position]
    completed = str(status).strip().casefold() == "completed"
    fix = (
        "use one of the outcomes, or add this status to calls.status_map in "
        "study.yml (for example `status_map: {Left message: voicemail}`)"
    )
    if completed and system == "heard":
        fix = (
            "'completed' does not say who answered: write connected if the customer "
            "talked with you, voicemail if a machine answered (a phone system's "
            "'completed' can be mapped in calls.status_map)"
        )
    elif completed:
        fix = (
            "a 'completed' call may have been answered by voicemail: turn on "
            "answering machine detection (AnsweredBy), have callers record the "
            "outcome, or say what it means for this study in calls.status_map"
        )
    return HeardInputError(
        path,
        row=int(row["source_row"]),
        column="outcome",
        expected=f"one of {', '.join(OUTCOMES)}",
        found=status,
        fix=fix,
    )


def parse_attempt_times(
    attempts: pd.DataFrame, *, path: Path, config: dict
) -> tuple[pd.Series, np.ndarray, list[HeardInputError]]:
    """Return attempt times in UTC (NaT when unreadable), whether each one's zone
    was assumed, and a problem per unreadable time.

    Cells may be ISO 8601 text with an offset, RFC 2822 text (Twilio), separate
    date and time columns (RingCentral), or spreadsheet dates. Times without a
    zone are taken to be in the study's time zone.
    """
    zone = config.get("study", {}).get("timezone", "UTC")
    dayfirst = bool(config.get("exports", {}).get("dayfirst", False))
    if "attempted_at" in attempts:
        cells = attempts["attempted_at"]
    else:
        clock = attempts["time"].fillna("").astype(str) if "time" in attempts else ""
        cells = attempts["date"].astype(str) + " " + clock
    times, assumed, problems = [], [], []
    for position, cell in enumerate(cells):
        moment = _parse_one_time(cell, dayfirst=dayfirst)
        is_naive = moment is not None and moment.tzinfo is None
        if is_naive:
            moment = moment.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        if moment is None or pd.isna(moment):
            problems.append(
                _bad_time(attempts, position, path=path, cell=cell, dst=is_naive)
            )
            moment = pd.NaT
        assumed.append(is_naive and moment is not pd.NaT)
        times.append(moment if moment is pd.NaT else moment.tz_convert("UTC"))
    if any(assumed):
        log.warning(
            "%s: %d attempt times had no time zone; read them in the study's zone %s",
            path.name,
            sum(assumed),
            zone,
        )
    series = pd.Series(pd.DatetimeIndex(times, tz="UTC"), index=attempts.index)
    return series, np.array(assumed, dtype=bool), problems


def _parse_one_time(cell: object, *, dayfirst: bool) -> pd.Timestamp | None:
    """Return one cell as a Timestamp, or None when it cannot be read."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    try:
        moment = pd.Timestamp(cell) if not isinstance(cell, str) else None
        if moment is None:
            moment = pd.to_datetime(cell.strip(), dayfirst=dayfirst)
    except (ValueError, TypeError, OverflowError):
        return None
    return None if pd.isna(moment) else moment


def _bad_time(attempts, position, *, path, cell, dst=False) -> HeardInputError:
    """Return the error for an attempt time that cannot be read."""
    column = "attempted_at" if "attempted_at" in attempts else "date"
    expected = (
        "a time that exists once in the study's zone (this one falls in a "
        "daylight-saving change)"
        if dst
        else "a date and time such as 2026-11-09T14:05:00-05:00"
    )
    return HeardInputError(
        path,
        row=int(attempts.iloc[position]["source_row"]),
        column=column,
        expected=expected,
        found=cell,
        fix="write the time in ISO 8601 with its UTC offset",
    )


def check_attempt_times(
    times: pd.Series,
    attempts: pd.DataFrame,
    *,
    path: Path,
    month: str,
    config: dict,
    now: pd.Timestamp | None,
) -> list[HeardInputError]:
    """Return a problem per attempt before the call list's month or in the
    future (unreadable times, NaT, are left to :func:`parse_attempt_times`)."""
    month_start = month_start_utc(month, config=config)
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    column = "attempted_at" if "attempted_at" in attempts else "date"
    problems = []
    for position, moment in enumerate(times):
        if pd.isna(moment) or month_start <= moment <= now:
            continue
        early = moment < month_start
        problems.append(
            HeardInputError(
                path,
                row=int(attempts.iloc[position]["source_row"]),
                column=column,
                expected=f"a time on or after the call list's month ({month})"
                if early
                else f"a time not after now ({now:%Y-%m-%d %H:%M} UTC)",
                found=f"{moment:%Y-%m-%d %H:%M} UTC",
                fix="check the year and the day/month order of this attempt",
            )
        )
    return problems


def month_start_utc(month: str, *, config: dict) -> pd.Timestamp:
    """Return midnight on the month's first day in the study's zone, in UTC."""
    zone = config.get("study", {}).get("timezone", "UTC")
    return pd.Timestamp(f"{check_month(month)}-01").tz_localize(zone).tz_convert("UTC")


def resolve_customer_keys(
    attempts: pd.DataFrame, *, path: Path, config: dict, book: dict | None
) -> tuple[np.ndarray, list[HeardInputError]]:
    """Return each attempt's ``customer_key``, looked up by phone when needed
    (None when blank or not found), and a problem per such row."""
    if "customer_key" in attempts:
        keys = clean_text(attempts["customer_key"])
        problems = [
            HeardInputError(
                path,
                row=int(row),
                column="reference",
                expected="the customer's reference from the call list",
                found="a blank cell",
                fix="copy the reference from the customer's first row",
            )
            for row in attempts.loc[pd.isna(keys), "source_row"]
        ]
        return keys.to_numpy(dtype=object), problems
    if "phone" not in attempts:
        raise HeardInputError(
            path,
            expected="a customer reference or phone column",
            found="neither",
            fix="map customer_key or phone in calls.column_map",
        )
    return _keys_from_phones(attempts, path=path, config=config, book=book or {})


def _keys_from_phones(attempts, *, path, config, book) -> tuple[np.ndarray, list]:
    """Return ``customer_key`` for each attempt's phone via the call list (None
    when the phone is not on it), and a problem per unknown phone."""
    import phonenumbers

    region = config.get("study", {}).get("default_country", "US")
    keys, problems = [], []
    for position, raw in enumerate(attempts["phone"]):
        try:
            number = phonenumbers.parse(str(raw), region)
            e164 = phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.E164
            )
        except phonenumbers.NumberParseException:
            e164 = None
        if e164 not in book:
            problems.append(
                HeardInputError(
                    path,
                    row=int(attempts.iloc[position]["source_row"]),
                    column="phone",
                    expected="a phone number from this month's call list",
                    found="a number not on the call list",
                    fix="check the log is for this study and month; calls to other "
                    "numbers cannot be matched to a customer",
                )
            )
        keys.append(book.get(e164))
    return np.array(keys, dtype=object), problems


def check_customers_called(
    keys: np.ndarray, attempts: pd.DataFrame, *, path: Path, assignment: pd.DataFrame
) -> list[HeardInputError]:
    """Return a problem per attempt on a customer who is not in the called arm
    (blank or unmatched keys, None, are left to :func:`resolve_customer_keys`).

    When many attempts miss the list at once, the likely cause is a call list
    drawn again after the calls (step 01 re-run on later exports): one problem
    says so, instead of one per row.
    """
    arms = assignment.drop_duplicates("customer_key").set_index("customer_key")["arm"]
    found = pd.Series(keys).map(arms)
    wrong = np.flatnonzero((found.ne("called") & pd.Series(keys).notna()).to_numpy())
    redrawn = len(wrong) > max(2, 0.2 * len(keys))
    problems = []
    for position in wrong[:1] if redrawn else wrong:
        holdout = found.iloc[position] == "holdout"
        fix = (
            "remove the row: calling a hold-out customer spoils the comparison"
            if holdout
            else "check the reference was copied from the call list"
        )
        if redrawn:
            fix = (
                f"{len(wrong)} of {len(keys)} attempts name customers outside this "
                "month's called arm. Was step 01 run again on later exports, "
                "drawing a new list? Restore assignment_customer.parquet as drawn "
                "when the call list went out"
            )
        key = keys[position]
        problems.append(
            HeardInputError(
                path,
                row=int(attempts.iloc[position]["source_row"]),
                column="reference" if "customer_key" in attempts else "phone",
                expected="a customer on this month's call list",
                found=f"{key} (in the not-called hold-out)" if holdout else key,
                fix=fix,
            )
        )
    return problems


def clean_text(column: pd.Series) -> pd.Series:
    """Return text cells stripped, with blanks as missing."""
    text = column.map(lambda v: None if pd.isna(v) else str(v).strip() or None)
    return text.astype(object)


def parse_durations(column: pd.Series) -> pd.Series:
    """Return talk time in seconds from seconds or ``H:MM:SS`` cells."""

    def seconds(value: object) -> float:
        if pd.isna(value):
            return np.nan
        text = str(value).strip()
        if re.fullmatch(r"\d+:\d{1,2}(:\d{1,2})?", text):
            parts = [int(p) for p in text.split(":")]
            return float(sum(p * 60**i for i, p in enumerate(reversed(parts))))
        try:
            return float(text)
        except ValueError:
            return np.nan

    return column.map(seconds).astype(float)


def check_durations(
    attempts: pd.DataFrame, *, path: Path
) -> tuple[pd.Series, list[HeardInputError]]:
    """Return talk times in seconds (:func:`parse_durations`), and a problem per
    cell that is filled in but unreadable or negative."""
    seconds = parse_durations(attempts["talk_seconds"])
    unreadable = seconds.isna() & clean_text(attempts["talk_seconds"]).notna()
    bad = unreadable | seconds.lt(0)
    problems = [
        HeardInputError(
            path,
            row=int(attempts.loc[index, "source_row"]),
            column="talk_seconds",
            expected="the talk time in seconds (a number of at least 0) or H:MM:SS",
            found=attempts.loc[index, "talk_seconds"],
            fix="write the seconds the customer was on the line, or leave it blank",
        )
        for index in attempts.index[bad]
    ]
    return seconds.to_numpy(dtype=float), problems


# --------------------------------------------------------------------------------------
# Reading a month's logs and merging re-imports
# --------------------------------------------------------------------------------------

MERGE_KEY = ["customer_key", "attempted_at"]
COMPARED_COLUMNS = (
    "caller",
    "outcome",
    "talk_seconds",
    "notes_file",
    "recovered_order",
)


def read_call_log(study: Study | str, month: str, *, now=None) -> pd.DataFrame:
    """Read every call log in ``calls/<month>/`` of a study.

    Parameters
    ----------
    study : Study or str
        The study, or its name.
    month : str
        ``YYYY-MM``.
    now : Timestamp, optional
        Passed to :func:`load_call_log` (attempts after it are impossible).

    Returns
    -------
    DataFrame
        The attempts of all files, in file-name order, columns as in
        :func:`load_call_log`. Duplicates are not removed here: see
        :func:`merge_attempts`.

    Raises
    ------
    HeardInputError
        When the folder holds no log, or as :func:`load_call_log`.
    HeardInputGroupError
        When there are several problems: those of every file, together.
    """
    study = load_study(study) if not isinstance(study, Study) else study
    folder = study.raw("calls", check_month(month))
    files = list_call_logs(study, month)
    if not files:
        raise HeardInputError(
            folder,
            expected="the filled-in call list (.xlsx or .csv) or a phone-system log",
            found="no call log",
            fix="put the callers' call list or the phone system's export there",
        )
    assignment = pd.read_parquet(study.processed(month, "assignment_customer.parquet"))
    book = read_phone_book(study, month)
    logs, problems = [], []
    for path in files:
        try:
            logs.append(
                load_call_log(
                    path,
                    assignment=assignment,
                    config=study.config,
                    month=month,
                    now=now,
                    phone_book=book,
                )
            )
        except HeardInputError as error:
            problems.append(error)
    raise_problems(problems)
    return pd.concat(logs, ignore_index=True)


def list_call_logs(study: Study, month: str) -> list[Path]:
    """Return the month's call log files in ``calls/<month>/``, by name.

    Spreadsheet lock files (``~$``) and hidden files are left out; an empty list
    means the month has no call log yet (step 02 then says so and stops).
    """
    folder = study.raw("calls", check_month(month))
    return sorted(
        p
        for p in (folder.iterdir() if folder.is_dir() else [])
        if p.suffix.lower() in CALL_FILE_SUFFIXES and not p.name.startswith((".", "~$"))
    )


def describe_missing_log(study: Study, month: str) -> str:
    """Return step 02's sentence for a month without a call log yet."""
    return (
        f"**No call log for {check_month(month)} yet**, so there is no connect "
        "rate, no conversation count and no cart-recovery comparison this month. "
        "Once callers have filled in the call list, put it (or the phone system's "
        f"export) in `calls/{month}/` of the study folder `{study.raw_dir.name}` "
        "and run the report again; the steps after this one carry on without "
        "the calls."
    )


def check_call_logs(study: Study, month: str | None) -> list[HeardInputError]:
    """Read the month's call logs as :func:`read_call_log` would, for ``heard check``.

    Parameters
    ----------
    study : Study
        The study.
    month : str or None
        ``YYYY-MM``; nothing is checked without a month, without a
        ``calls/<month>/`` folder, or before step 01 has drawn the month's call
        list (customers cannot be checked without it).

    Returns
    -------
    list of HeardInputError
        Not raised: one per ``recovered_order`` reference the month's
        ``orders_order.parquet`` does not bear out (:func:`flag_recovered_orders`),
        for ``heard check`` to list as warnings; empty before step 01 has
        written the orders.

    Raises
    ------
    HeardInputError
        The problems in the logs, as :func:`read_call_log` raises them (several
        together as a :class:`~helpers.errors.HeardInputGroupError`).
    """
    if not month or not study.raw("calls", month).is_dir():
        return []
    if not study.processed(month, "assignment_customer.parquet").exists():
        # Not a warning: step 02 reads the log against the call list once step 01
        # has drawn it, and stops on a customer the list lacks.
        log.info(
            "calls/%s: customers are checked against the call list by step 02, "
            "once step 01 has drawn it",
            month,
        )
        return []
    attempts = read_call_log(study, month)
    orders_path = study.processed(month, "orders_order.parquet")
    if not orders_path.exists():
        return []
    orders = pd.read_parquet(orders_path)
    orders["created_at"] = pd.to_datetime(orders["created_at"], utc=True)
    flags = flag_recovered_orders(
        attempts, orders, window=recovery_window(study.config)
    )
    return describe_recovery_flags(flags, folder=study.raw("calls", month))


def read_phone_book(study: Study, month: str) -> dict[str, str]:
    """Return E.164 phone -> ``customer_key`` from the month's processed call list.

    Only phone-system logs need it; an absent call list gives an empty book.
    """
    path = study.processed(month, f"call-list_customer_{month}.csv")
    if not path.exists():
        return {}
    call_list = pd.read_csv(path, dtype=str, keep_default_na=False)
    call_list = call_list.rename(columns=lambda c: str(c).strip().lower())
    key_column = next((c for c in KEY_ALIASES if c in call_list), None)
    if key_column is None:
        return {}
    book = {}
    for column in (c for c in call_list if "phone" in c):
        for phone, key in zip(call_list[column], call_list[key_column], strict=True):
            phone = phone.lstrip("'")
            if phone.startswith("+"):
                book[phone] = key
    return book


def merge_attempts(
    logged: pd.DataFrame | None, incoming: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge newly read attempts into those already logged, losing nothing.

    Parameters
    ----------
    logged : DataFrame or None
        Attempts from the processed ``attempts_attempt.parquet`` of an earlier run.
    incoming : DataFrame
        Attempts just read from raw (:func:`read_call_log`).

    Returns
    -------
    merged : DataFrame
        One row per (``customer_key``, ``attempted_at``), columns
        ``RECORD_COLUMNS``. A logged row always stays as it was; rows only in the
        earlier file are kept.
    conflicts : DataFrame
        One row per differing value: ``customer_key``, ``attempted_at``,
        ``column``, ``logged``, ``incoming``, ``source_file``, ``source_row``
        (where the incoming value came from).

    Notes
    -----
    Identical repeats are dropped silently. A repeat with a different value is
    a conflict: the first value is kept and the conflict reported, never
    overwritten. A logged attempt the raw logs no longer hold is kept and
    counted in a warning: a caller may have cleared old rows, or corrected an
    attempt's time, which leaves the old time logged as an extra attempt. To
    accept a correction, delete the processed attempts file and rebuild from
    raw.
    """
    columns = list(RECORD_COLUMNS)
    if logged is not None:
        _warn_missing_from_raw(logged, incoming)
    parts = (
        [incoming[columns]] if logged is None else [logged[columns], incoming[columns]]
    )
    stacked = pd.concat(parts, ignore_index=True)
    is_repeat = stacked.duplicated(MERGE_KEY, keep="first")
    merged = stacked[~is_repeat].sort_values(MERGE_KEY, ignore_index=True)

    # Compare every repeat with the row that was kept.
    repeats = stacked[is_repeat].merge(
        merged, on=MERGE_KEY, suffixes=("_incoming", "_logged")
    )
    conflicts = []
    for column in COMPARED_COLUMNS:
        new, old = repeats[f"{column}_incoming"], repeats[f"{column}_logged"]
        same = (new == old) | (new.isna() & old.isna())
        for _, row in repeats[~same].iterrows():
            conflicts.append(
                {
                    "customer_key": row["customer_key"],
                    "attempted_at": row["attempted_at"],
                    "column": column,
                    "logged": _none_or_text(row[f"{column}_logged"]),
                    "incoming": _none_or_text(row[f"{column}_incoming"]),
                    "source_file": row["source_file_incoming"],
                    "source_row": int(row["source_row_incoming"]),
                }
            )
    if conflicts:
        log.warning(
            "%d re-imported values differ from those already logged; kept the "
            "logged ones (see attempt-conflicts_attempt.parquet)",
            len(conflicts),
        )
    conflict_columns = [*MERGE_KEY, "column", "logged", "incoming", "source_file"]
    return merged, pd.DataFrame(conflicts, columns=[*conflict_columns, "source_row"])


def _warn_missing_from_raw(logged: pd.DataFrame, incoming: pd.DataFrame) -> None:
    """Log a warning naming logged attempts that no raw log holds any more."""
    keys = pd.MultiIndex.from_frame(incoming[MERGE_KEY])
    gone = logged[~pd.MultiIndex.from_frame(logged[MERGE_KEY]).isin(keys)]
    if gone.empty:
        return
    first = gone.sort_values(MERGE_KEY).iloc[0]
    log.warning(
        "%d attempts already logged are no longer in the raw call logs (e.g. %s "
        "row %d, %s at %s UTC); kept. If a time was corrected, the old one now "
        "counts as an extra attempt: delete attempts_attempt.parquet to rebuild "
        "from raw",
        len(gone),
        first["source_file"],
        int(first["source_row"]),
        first["customer_key"],
        f"{first['attempted_at']:%Y-%m-%d %H:%M}",
    )


def _none_or_text(value: object) -> str | None:
    """Return `value` as text, or None when missing."""
    return None if pd.isna(value) else str(value)


def collect_do_not_call(attempts: pd.DataFrame) -> pd.DataFrame:
    """Return the do-not-call requests made during calls.

    Returns
    -------
    DataFrame
        ``customer_key``, ``requested_at`` (the first request, UTC), one row per
        customer.
    """
    requests = attempts.loc[attempts["outcome"] == "do_not_call", MERGE_KEY]
    requests = requests.groupby("customer_key", as_index=False)["attempted_at"].min()
    return requests.rename(columns={"attempted_at": "requested_at"})


def describe_attempts(
    attempts: pd.DataFrame,
    *,
    assignment: pd.DataFrame,
    customers: pd.DataFrame | None,
    config: dict,
) -> pd.DataFrame:
    """Return attempts with their segment, attempt number and local hour.

    Parameters
    ----------
    attempts : DataFrame
        Merged attempts (:func:`merge_attempts`).
    assignment : DataFrame
        ``customer_key``, ``segment``.
    customers : DataFrame or None
        ``customer_key``, ``timezone``; a customer without one is timed in the
        study's zone.
    config : dict
        The study configuration (``study.timezone``).

    Returns
    -------
    DataFrame
        `attempts` plus ``segment``, ``attempt_number`` (1 for a customer's
        first attempt, in time order), ``timezone``, ``local_hour`` (0-23, the
        customer's local time), ``is_reached`` (a person answered) and
        ``is_conversation`` (outcome ``connected``).
    """
    study_zone = config.get("study", {}).get("timezone", "UTC")
    described = attempts.sort_values(MERGE_KEY, ignore_index=True)
    segments = assignment.drop_duplicates("customer_key")[["customer_key", "segment"]]
    described = described.merge(segments, on="customer_key", how="left")
    described["attempt_number"] = described.groupby("customer_key").cumcount() + 1

    # Local hour in each customer's own zone; the study's zone when unknown.
    described["timezone"] = lookup_zones(
        described["customer_key"], customers=customers, default=study_zone
    )
    described["local_hour"] = [
        moment.tz_convert(zone).hour
        for moment, zone in zip(
            described["attempted_at"], described["timezone"], strict=True
        )
    ]
    described["is_reached"] = described["outcome"].isin(REACHED_OUTCOMES)
    described["is_conversation"] = described["outcome"].eq("connected")
    return described


def lookup_zones(
    keys: pd.Series, *, customers: pd.DataFrame | None, default: str
) -> pd.Series:
    """Return each customer's IANA time zone, `default` when missing or unknown."""
    from zoneinfo import available_timezones

    zones = pd.Series(dtype=object)
    if customers is not None and "timezone" in customers:
        zones = customers.drop_duplicates("customer_key").set_index("customer_key")
        zones = zones["timezone"]
    found = keys.map(zones)
    known = found.isin(available_timezones())
    if (~known).any():
        log.warning(
            "%d attempts timed in the study's zone (%s): customer's zone unknown",
            int((~known).sum()),
            default,
        )
    return found.where(known, default).astype(object)


# --------------------------------------------------------------------------------------
# Connect rates and conversations
# --------------------------------------------------------------------------------------

GROUP_COLUMNS = {
    "overall": None,
    "segment": "segment",
    "caller": "caller",
    "local-hour": "local_hour",
    "attempt-number": "attempt_number",
}


def tally_connect_rates(
    attempts: pd.DataFrame, *, by: str = "overall", alpha: float = 0.05
) -> pd.DataFrame:
    """Return connect rates with Wilson intervals, per customer and per attempt.

    Parameters
    ----------
    attempts : DataFrame
        Described attempts (:func:`describe_attempts`).
    by : {"overall", "segment", "caller", "local-hour", "attempt-number"}
        The breakdown. Per-customer rates are given for ``overall`` and
        ``segment``; callers, hours and attempt numbers are properties of an
        attempt, so only per-attempt rates are given for them.
    alpha : float
        One minus the confidence level.

    Returns
    -------
    DataFrame
        The group column (none for ``overall``), ``unit`` (``customer``: customers
        reached at least once / customers dialled; ``attempt``: attempts a person
        answered / attempts), ``n_connected``, ``n_dialled``, ``connect_rate``,
        ``ci_low``, ``ci_high`` (Wilson).
    """
    from helpers.stats import tally_rate

    if by not in GROUP_COLUMNS:
        raise ValueError(f"by must be one of {', '.join(GROUP_COLUMNS)}; got {by!r}")
    group = GROUP_COLUMNS[by]
    keys = [group] if group else []
    framed = attempts.assign(_all="all")
    grouping = keys or ["_all"]

    per_attempt = framed.groupby(grouping, as_index=False, dropna=False).agg(
        n_connected=("is_reached", "sum"), n_dialled=("is_reached", "size")
    )
    tables = [per_attempt.assign(unit="attempt")]
    if by in ("overall", "segment"):
        reached = framed.groupby([*grouping, "customer_key"], dropna=False)[
            "is_reached"
        ].any()
        per_customer = reached.groupby(level=grouping, dropna=False).agg(
            n_connected="sum", n_dialled="size"
        )
        tables.insert(0, per_customer.reset_index().assign(unit="customer"))
    rates = pd.concat(tables, ignore_index=True).drop(columns="_all", errors="ignore")
    rates[["n_connected", "n_dialled"]] = rates[["n_connected", "n_dialled"]].astype(
        int
    )
    rates = tally_rate(
        rates,
        successes="n_connected",
        trials="n_dialled",
        rate="connect_rate",
        alpha=alpha,
    )
    return rates[
        [*keys, "unit", "n_connected", "n_dialled", "connect_rate", "ci_low", "ci_high"]
    ]


def tally_conversations(
    attempts: pd.DataFrame,
    *,
    assignment: pd.DataFrame,
    target: tuple[int, int] = (20, 30),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Return conversations per segment, attempts per conversation and progress.

    Parameters
    ----------
    attempts : DataFrame
        Described attempts (:func:`describe_attempts`).
    assignment : DataFrame
        ``customer_key``, ``segment``, ``arm``: the called customers per segment.
    target : tuple of int
        The conversations wanted per segment (low, high).
    alpha : float
        One minus the confidence level.

    Returns
    -------
    DataFrame
        One row per segment: ``segment``, ``n_called`` (on the call list),
        ``n_dialled``, ``n_attempts``, ``n_reached`` (customers), ``n_conversations``
        (customers with a ``connected`` attempt), ``attempts_per_conversation`` with
        ``ci_low``/``ci_high``, ``target_low``, ``target_high``, ``n_to_target``
        (conversations still needed to reach the low target), ``is_on_target`` and
        ``n_attempts_to_target`` (the attempts that would likely take, at the
        current pace).

    Notes
    -----
    The interval for attempts per conversation inverts the Wilson interval of
    conversations per attempt. It treats attempts as independent; repeat
    attempts on the same hard-to-reach customer make it somewhat too narrow.
    """

    called = assignment[assignment["arm"] == "called"]
    per_customer = attempts.groupby(["segment", "customer_key"]).agg(
        n_attempts=("outcome", "size"),
        is_reached=("is_reached", "any"),
        is_conversation=("is_conversation", "any"),
    )
    table = per_customer.groupby("segment").agg(
        n_dialled=("n_attempts", "size"),
        n_attempts=("n_attempts", "sum"),
        n_reached=("is_reached", "sum"),
        n_conversations=("is_conversation", "sum"),
    )
    table = (
        called.groupby("segment")
        .size()
        .rename("n_called")
        .to_frame()
        .join(table, how="outer")
    )
    table = table.fillna(0).astype(int).reset_index()

    # Attempts per conversation: the inverse of conversations per attempt.
    per_conversation = _attempts_per_success(
        table["n_conversations"], table["n_attempts"], alpha=alpha
    )
    table = pd.concat([table, per_conversation], axis=1)

    table["target_low"], table["target_high"] = target
    table["n_to_target"] = (table["target_low"] - table["n_conversations"]).clip(
        lower=0
    )
    table["is_on_target"] = table["n_conversations"] >= table["target_low"]
    table["n_attempts_to_target"] = np.ceil(
        table["n_to_target"] * table["attempts_per_conversation"]
    )
    return table


def _attempts_per_success(successes, trials, *, alpha: float) -> pd.DataFrame:
    """Return ``attempts_per_conversation``, ``ci_low``, ``ci_high``: trials per
    success, its interval the inverted Wilson interval of successes per trial
    (no success: estimate undefined, upper bound infinite)."""
    from helpers.stats import wilson_interval

    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    low, high = wilson_interval(successes, trials, alpha=alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame = pd.DataFrame(
            {
                "attempts_per_conversation": np.where(
                    successes > 0, trials / successes, np.nan
                ),
                "ci_low": 1 / np.asarray(high),
                "ci_high": np.where(np.asarray(low) > 0, 1 / np.asarray(low), np.inf),
            }
        )
    frame.loc[trials == 0, ["ci_low", "ci_high"]] = np.nan
    return frame


def tally_weekly_progress(
    attempts: pd.DataFrame, *, config: dict, target: tuple[int, int] = (20, 30)
) -> pd.DataFrame:
    """Return each segment's calls week by week, with conversations to date.

    Parameters
    ----------
    attempts : DataFrame
        Described attempts (:func:`describe_attempts`).
    config : dict
        ``study.timezone``: weeks run Monday to Sunday on the store's clock.
    target : tuple of int
        The conversations wanted per segment (low, high).

    Returns
    -------
    DataFrame
        One row per segment and week: ``segment``, ``week_start`` (the Monday,
        a date), ``n_attempts``, ``n_connected`` (attempts a person answered),
        ``n_new_conversations`` (customers first spoken to that week),
        ``n_conversations_to_date``, ``target_low``, ``is_on_target``.
    """
    zone = config.get("study", {}).get("timezone", "UTC")
    local = attempts["attempted_at"].dt.tz_convert(zone).dt.tz_localize(None)
    weekly = attempts.assign(week_start=local.dt.to_period("W-SUN").dt.start_time)
    weekly["week_start"] = weekly["week_start"].dt.date

    # A conversation counts in the week of the customer's first connected attempt.
    first_talk = (
        weekly[weekly["is_conversation"]]
        .sort_values("attempted_at")
        .drop_duplicates("customer_key")
    )
    new = first_talk.groupby(["segment", "week_start"]).size()
    table = weekly.groupby(["segment", "week_start"]).agg(
        n_attempts=("outcome", "size"), n_connected=("is_reached", "sum")
    )
    table["n_new_conversations"] = new.reindex(table.index, fill_value=0)
    table = table.astype(int).reset_index()
    table["n_conversations_to_date"] = table.groupby("segment")[
        "n_new_conversations"
    ].cumsum()
    table["target_low"] = target[0]
    table["is_on_target"] = table["n_conversations_to_date"] >= target[0]
    return table


def compare_with_field(
    n_connected: int,
    n_dialled: int,
    *,
    field: tuple[float, float] = (0.30, 0.40),
    alpha: float = 0.05,
) -> dict:
    """Compare a connect rate with the range the field reports.

    Parameters
    ----------
    n_connected, n_dialled : int
        Customers reached and customers dialled (or attempts answered and made).
    field : tuple of float
        The field's range, default 30-40%.
    alpha : float
        One minus the confidence level.

    Returns
    -------
    dict
        ``k``, ``n``, ``rate``, ``ci_low``, ``ci_high`` (Wilson), ``field_low``,
        ``field_high``, ``p_value_low`` and ``p_value_high`` (exact two-sided
        binomial tests of the rate against each end), ``verdict`` (``below``,
        ``within``, ``above``: below or above only when the whole interval lies
        outside the range), ``p_value_nearer`` (the test against the end the
        interval lies beyond; NaN when ``within``), ``is_more_than_noise`` and
        ``method``.

    Notes
    -----
    The difference is more than noise only when the Wilson interval misses the
    range entirely **and** the exact test against the nearer end rejects at
    `alpha`; an interval that overlaps the range cannot tell the rate from the
    field's, however far the point estimate is. The two can disagree near the
    edge (the Wilson interval is not the exact test's inversion): the verdict
    is then ``below`` or ``above`` with ``is_more_than_noise`` false, which a
    reader should take as borderline.
    """
    from scipy.stats import binomtest

    from helpers.stats import wilson_interval

    low, high = wilson_interval(n_connected, n_dialled, alpha=alpha)
    rate = n_connected / n_dialled if n_dialled else math.nan
    verdict = "within"
    if n_dialled and high < field[0]:
        verdict = "below"
    elif n_dialled and low > field[1]:
        verdict = "above"
    p_values = [
        binomtest(n_connected, n_dialled, p).pvalue if n_dialled else math.nan
        for p in field
    ]
    nearer = {"below": p_values[0], "above": p_values[1]}.get(verdict, math.nan)
    return {
        "k": int(n_connected),
        "n": int(n_dialled),
        "rate": rate,
        "ci_low": low,
        "ci_high": high,
        "field_low": field[0],
        "field_high": field[1],
        "p_value_low": p_values[0],
        "p_value_high": p_values[1],
        "verdict": verdict,
        "p_value_nearer": nearer,
        "is_more_than_noise": bool(verdict != "within" and nearer < alpha),
        "method": f"Wilson {100 * (1 - alpha):.0f}% interval compared with the "
        "field's range; exact two-sided binomial tests against each end; more "
        f"than noise when the interval misses the range and the test against "
        f"the nearer end rejects at {alpha:g}",
    }


# --------------------------------------------------------------------------------------
# Cart recovery and revenue per conversation
# --------------------------------------------------------------------------------------


def measure_recovery(
    assignment: pd.DataFrame,
    orders: pd.DataFrame,
    attempts: pd.DataFrame,
    *,
    month: str,
    config: dict,
) -> pd.DataFrame:
    """Return, per randomised customer, whether they ordered within the window.

    Only segments drawn with a not-called hold-out are measured: without one
    there is nothing to compare with.

    Parameters
    ----------
    assignment : DataFrame
        ``customer_key``, ``segment``, ``arm`` (``called``/``holdout``).
    orders : DataFrame
        ``customer_key``, ``created_at`` (UTC), ``total``; optional
        ``is_cancelled`` (cancelled orders are left out) and
        ``refunded_amount`` (taken off the revenue).
    attempts : DataFrame
        Described attempts (:func:`describe_attempts`).
    month : str
        The call list's month.
    config : dict
        ``calls.recovery_window_days`` and ``study.timezone``.

    Returns
    -------
    DataFrame
        One row per customer: ``customer_key``, ``segment``, ``arm``,
        ``reference_at``, ``is_own_reference`` (the customer's own first attempt),
        ``is_dialled``, ``is_reached``, ``is_conversation``, ``n_orders``,
        ``revenue`` (order totals in the window, less their recorded refunds),
        ``is_recovered`` and
        ``has_order_before_reference`` (ordered between the month's start and the
        reference time: not counted).

    Notes
    -----
    An order counts when placed after the customer's reference time and no more than
    ``calls.recovery_window_days`` later, and was not cancelled. A dialled
    customer's reference is their own first attempt, so an order placed before the
    call never counts. A hold-out customer has no call, and neither has a called
    customer nobody dialled; both take the **median first-attempt time of the
    segment's dialled customers**. The month's start would open the hold-out's
    window days before the typical called customer's, when abandoners are most
    likely to come back by themselves, and so flatter the hold-out; the median puts
    both arms' windows at the same point of the calling period. Everyone randomised
    stays in the denominator of their arm (intent to treat).

    The orders export is the only source of recoveries. The ``recovered_order``
    a caller types is never counted: the hold-out has no caller to type one, so
    counting references would favour the called arm. They are checked against
    the orders instead (:func:`flag_recovered_orders`).

    Limitations: a called customer's window depends on when they were dialled,
    which is not randomised; if callers dial the likeliest buyers first, the
    comparison shifts a little. Orders must be exported after the last window
    closes; windows still open are logged as a warning.
    """
    window = recovery_window(config)
    start = month_start_utc(month, config=config)
    arms = assignment.groupby("segment")["arm"].agg(set)
    randomised = [s for s, found in arms.items() if {"called", "holdout"} <= found]
    customers = assignment[assignment["segment"].isin(randomised)]
    customers = customers[["customer_key", "segment", "arm"]].copy()
    if not randomised:
        log.warning(
            "no segment was drawn with a not-called hold-out: recovery "
            "cannot be compared"
        )
        return pd.DataFrame(columns=RECOVERY_COLUMNS)

    customers = assign_reference_times(customers, attempts, start=start)
    placed = drop_cancelled_orders(orders)
    customers = count_window_orders(customers, placed, window=window, start=start)
    _warn_open_windows(customers, orders, window=window)
    return customers[RECOVERY_COLUMNS]


def drop_cancelled_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Return the orders that were not cancelled (all of them without an
    ``is_cancelled`` column): a cancelled order is no purchase, in either arm,
    as step 01 counts purchases."""
    is_cancelled = order_flag(orders, "is_cancelled")
    if is_cancelled.any():
        log.info("recovery leaves out %d cancelled orders", int(is_cancelled.sum()))
    return orders[~is_cancelled]


def recovery_window(config: dict) -> pd.Timedelta:
    """Return ``calls.recovery_window_days`` (14 when unset) as a Timedelta."""
    return pd.Timedelta(
        days=int(config.get("calls", {}).get("recovery_window_days", 14))
    )


def assign_reference_times(
    customers: pd.DataFrame, attempts: pd.DataFrame, *, start: pd.Timestamp
) -> pd.DataFrame:
    """Return `customers` with ``first_attempt``, ``reference_at``, ``is_dialled``,
    ``is_own_reference``, ``is_reached`` and ``is_conversation`` (see
    :func:`measure_recovery` for the rule)."""
    per_customer = attempts.groupby("customer_key").agg(
        first_attempt=("attempted_at", "min"),
        is_reached=("is_reached", "any"),
        is_conversation=("is_conversation", "any"),
    )
    timed = customers.merge(per_customer, on="customer_key", how="left")

    # Own first attempt, else the median first attempt of the segment's dialled.
    median = timed.groupby("segment")["first_attempt"].median()
    fallback = timed["segment"].map(median).fillna(start)
    timed["is_dialled"] = timed["first_attempt"].notna()
    timed["is_own_reference"] = timed["is_dialled"]
    timed["reference_at"] = timed["first_attempt"].fillna(fallback)
    flags = ["is_reached", "is_conversation"]
    timed[flags] = timed[flags].fillna(False).astype(bool)
    return timed


def count_window_orders(
    customers: pd.DataFrame,
    orders: pd.DataFrame,
    *,
    window: pd.Timedelta,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """Return `customers` with ``n_orders`` and ``revenue`` in each one's window,
    ``is_recovered`` and ``has_order_before_reference``.

    Revenue is net of the refunds the orders export records
    (``refunded_amount``, when present): money handed back was not recovered.
    A refunded order still counts as an order, as step 01 counts purchases."""
    refunded = orders.get("refunded_amount", pd.Series(0.0, index=orders.index))
    net = orders[["customer_key", "created_at"]].assign(
        total=orders["total"] - refunded.fillna(0.0)
    )
    placed = customers[["customer_key", "reference_at"]].merge(net, on="customer_key")
    after = placed["created_at"] > placed["reference_at"]
    in_window = placed[
        after & (placed["created_at"] <= placed["reference_at"] + window)
    ]
    before = placed[~after & (placed["created_at"] >= start)]
    totals = in_window.groupby("customer_key").agg(
        n_orders=("total", "size"), revenue=("total", "sum")
    )
    counted = customers.merge(totals, on="customer_key", how="left")
    counted["n_orders"] = counted["n_orders"].fillna(0).astype(int)
    counted["revenue"] = counted["revenue"].fillna(0.0).astype(float)
    counted["is_recovered"] = counted["n_orders"] > 0
    counted["has_order_before_reference"] = counted["customer_key"].isin(
        before["customer_key"]
    )
    return counted


def _warn_open_windows(customers, orders, *, window) -> None:
    """Log a warning when the orders export ends before some windows close."""
    if orders.empty or customers.empty:
        return
    last_order = orders["created_at"].max()
    n_open = int((customers["reference_at"] + window > last_order).sum())
    if n_open:
        log.warning(
            "%d of %d recovery windows close after the last order in the export "
            "(%s): recovery is undercounted until a later export is read",
            n_open,
            len(customers),
            f"{last_order:%Y-%m-%d}",
        )


def flag_recovered_orders(
    attempts: pd.DataFrame, orders: pd.DataFrame, *, window: pd.Timedelta
) -> pd.DataFrame:
    """Return the order references callers typed that the orders do not bear out.

    Parameters
    ----------
    attempts : DataFrame
        Attempts (:func:`load_call_log`, or merged): ``customer_key``,
        ``attempted_at``, ``recovered_order``, ``source_file``, ``source_row``.
    orders : DataFrame
        ``orders_order.parquet``: ``order_id``, ``customer_key``, ``created_at``
        (UTC).
    window : Timedelta
        The recovery window (:func:`recovery_window`); it opens at the
        customer's first attempt, as in :func:`measure_recovery`.

    Returns
    -------
    DataFrame
        One row per reference flagged: ``file``, ``row`` (the spreadsheet row),
        ``column`` (``recovered_order``), ``customer_key``, ``attempted_at``,
        ``recovered_order`` (as typed), ``reason`` (``not_in_orders``,
        ``other_customer``, ``cancelled``, ``before_attempt``,
        ``after_window``), ``expected`` and ``found``.

    Notes
    -----
    References match ignoring case, spaces and a leading ``#`` (a caller's
    ``1001`` is Shopify's ``#1001``). Recovery never counts a typed reference
    (:func:`measure_recovery`), so a flag changes no number: it says that the
    caller's record and the store's disagree.
    """
    # Each window opens at the customer's first attempt; orders found by reference.
    opens = attempts.groupby("customer_key")["attempted_at"].min()
    by_reference = orders.assign(
        reference=orders["order_id"].map(_order_reference)
    ).drop_duplicates("reference")
    by_reference = by_reference.set_index("reference")
    expected = (
        "an order of this customer in the month's orders export, not cancelled, "
        f"placed after this attempt and at most {window.days} days after their "
        "first attempt"
    )

    # Judge each typed reference against the order it names.
    flags = []
    for attempt in attempts[attempts["recovered_order"].notna()].itertuples():
        reference = _order_reference(attempt.recovered_order)
        order = by_reference.loc[reference] if reference in by_reference.index else None
        closes = opens[attempt.customer_key] + window
        judged = _judge_reference(attempt, order, closes=closes)
        if judged is not None:
            flags.append(
                {
                    "file": attempt.source_file,
                    "row": int(attempt.source_row),
                    "column": "recovered_order",
                    "customer_key": attempt.customer_key,
                    "attempted_at": attempt.attempted_at,
                    "recovered_order": attempt.recovered_order,
                    "reason": judged[0],
                    "expected": expected,
                    "found": judged[1],
                }
            )
    return pd.DataFrame(flags, columns=RECOVERY_FLAG_COLUMNS)


def _order_reference(order_id: object) -> str:
    """Return an order reference as compared: text, no spaces, case or ``#``."""
    return re.sub(r"\s+", "", str(order_id)).casefold().lstrip("#")


def _judge_reference(attempt, order, *, closes) -> tuple[str, str] | None:
    """Return ``(reason, found)`` for a reference the order does not bear out,
    or None when the order is the customer's and inside the window."""
    if order is None:
        return "not_in_orders", (
            f"{attempt.recovered_order!r}, which is not in the orders export"
        )
    placed = (
        f"order {order['order_id']} placed {order['created_at']:%Y-%m-%d %H:%M} UTC"
    )
    if order["customer_key"] != attempt.customer_key:
        owner = order["customer_key"] if pd.notna(order["customer_key"]) else "none"
        return "other_customer", f"order {order['order_id']} of customer {owner}"
    cancelled = order.get("is_cancelled")
    if cancelled is not None and pd.notna(cancelled) and bool(cancelled):
        return "cancelled", f"{placed}, since cancelled"
    if order["created_at"] <= attempt.attempted_at:
        return "before_attempt", (
            f"{placed}, before this attempt ({attempt.attempted_at:%Y-%m-%d %H:%M} UTC)"
        )
    if order["created_at"] > closes:
        return "after_window", (
            f"{placed}, after the window closed ({closes:%Y-%m-%d %H:%M} UTC)"
        )
    return None


def describe_recovery_flags(
    flags: pd.DataFrame, *, folder: Path
) -> list[HeardInputError]:
    """Return each flagged reference as a :class:`HeardInputError` (not raised),
    naming the call log in `folder`, for ``heard check`` to list as warnings."""
    return [
        HeardInputError(
            folder / flag.file,
            row=flag.row,
            column=flag.column,
            expected=flag.expected,
            found=flag.found,
            fix=RECOVERY_FLAG_FIX,
        )
        for flag in flags.itertuples()
    ]


def _warn_flagged(flags: pd.DataFrame) -> None:
    """Log a warning when callers' order references are not borne out."""
    if len(flags):
        log.warning(
            "%d recovered_order references in the call logs do not match the "
            "orders export (%s; e.g. %s row %d); recovery counts only the export's "
            "orders, so none of them is a recovery: see "
            "recovered-order-flags_attempt.parquet",
            len(flags),
            ", ".join(f"{n} {r}" for r, n in flags["reason"].value_counts().items()),
            flags["file"].iloc[0],
            flags["row"].iloc[0],
        )


def compare_recovery(
    recovery: pd.DataFrame, *, alpha: float = 0.05
) -> tuple[pd.DataFrame, dict]:
    """Return recovery per arm and the called-minus-holdout comparison.

    Parameters
    ----------
    recovery : DataFrame
        Per customer, from :func:`measure_recovery`.
    alpha : float
        One minus the confidence level.

    Returns
    -------
    arms : DataFrame
        ``segment``, ``arm`` (``called``, ``holdout``, ``called_reached``),
        ``analysis`` (``intent_to_treat``, or ``per_protocol_not_randomised`` for
        the customers actually reached), ``n_customers``, ``n_recovered``,
        ``recovery_rate``, ``ci_low``, ``ci_high`` (Wilson), ``revenue``,
        ``revenue_per_customer``.
    comparison : dict
        Per segment: ``called`` and ``holdout`` (``k``, ``n``, ``rate``,
        ``ci_low``, ``ci_high``), ``difference`` (called minus hold-out, with
        ``ci_low``/``ci_high``: Newcombe's hybrid score interval), ``p_value``
        (Fisher's exact test, two-sided), ``verdict`` (:func:`judge_difference`:
        called ``higher``/``lower`` than the hold-out, ``borderline`` or
        ``no_clear_difference``), ``revenue_called``,
        ``revenue_holdout``, ``excess_revenue`` (called revenue minus what the
        called arm would have spent at the hold-out's rate per customer),
        ``per_protocol`` and ``method``.
    """
    from helpers.stats import tally_rate

    reached = recovery[recovery["is_reached"] & (recovery["arm"] == "called")]
    labelled = pd.concat(
        [
            recovery.assign(analysis="intent_to_treat"),
            reached.assign(
                arm="called_reached", analysis="per_protocol_not_randomised"
            ),
        ]
    )
    arms = labelled.groupby(["segment", "arm", "analysis"], as_index=False).agg(
        n_customers=("customer_key", "size"),
        n_recovered=("is_recovered", "sum"),
        revenue=("revenue", "sum"),
    )
    arms["n_recovered"] = arms["n_recovered"].astype(int)
    arms = tally_rate(
        arms,
        successes="n_recovered",
        trials="n_customers",
        rate="recovery_rate",
        alpha=alpha,
    )
    arms["revenue_per_customer"] = arms["revenue"] / arms["n_customers"]
    columns = [
        "segment",
        "arm",
        "analysis",
        "n_customers",
        "n_recovered",
        "recovery_rate",
        "ci_low",
        "ci_high",
        "revenue",
        "revenue_per_customer",
    ]
    arms = arms[columns]
    comparison = {
        segment: _compare_arms(rows.set_index("arm"), alpha=alpha)
        for segment, rows in arms.groupby("segment")
    }
    return arms, comparison


def _compare_arms(rows: pd.DataFrame, *, alpha: float) -> dict:
    """Return one segment's called-versus-holdout comparison (see
    :func:`compare_recovery`)."""
    from scipy.stats import fisher_exact
    from statsmodels.stats.proportion import confint_proportions_2indep

    called, holdout = _arm_counts(rows, "called"), _arm_counts(rows, "holdout")
    low, high = confint_proportions_2indep(
        called["k"],
        called["n"],
        holdout["k"],
        holdout["n"],
        method="newcomb",
        compare="diff",
        alpha=alpha,
    )
    table = [
        [called["k"], called["n"] - called["k"]],
        [holdout["k"], holdout["n"] - holdout["k"]],
    ]
    revenue = {arm: float(rows.loc[arm, "revenue"]) for arm in ("called", "holdout")}
    holdout_per_customer = revenue["holdout"] / holdout["n"]
    p_value = float(fisher_exact(table, alternative="two-sided").pvalue)
    return {
        "called": called,
        "holdout": holdout,
        "difference": {
            "estimate": called["rate"] - holdout["rate"],
            "ci_low": float(low),
            "ci_high": float(high),
        },
        "p_value": p_value,
        "verdict": judge_difference(float(low), float(high), p_value, alpha=alpha),
        "revenue_called": revenue["called"],
        "revenue_holdout": revenue["holdout"],
        "excess_revenue": revenue["called"] - called["n"] * holdout_per_customer,
        "per_protocol": {
            **_arm_counts(rows, "called_reached"),
            "label": "customers actually reached: per protocol, not randomised",
        },
        "method": "intent to treat; difference with Newcombe's hybrid score "
        "interval; Fisher's exact test, two-sided",
    }


def _arm_counts(rows: pd.DataFrame, arm: str) -> dict:
    """Return ``k``, ``n``, ``rate``, ``ci_low``, ``ci_high`` of one arm's row."""
    if arm not in rows.index:
        return dict.fromkeys(("rate", "ci_low", "ci_high"), math.nan) | {"k": 0, "n": 0}
    row = rows.loc[arm]
    return {
        "k": int(row["n_recovered"]),
        "n": int(row["n_customers"]),
        "rate": float(row["recovery_rate"]),
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
    }


def judge_difference(low: float, high: float, p_value: float, *, alpha: float) -> str:
    """Return ``higher``, ``lower``, ``borderline`` or ``no_clear_difference``.

    ``higher`` (``lower``) needs both the interval to exclude zero and the test
    to reject at `alpha`; when only one of them does (the Newcombe interval and
    Fisher's test can disagree near the edge) the result is ``borderline``.
    """
    excludes_zero = low > 0 or high < 0
    rejects = p_value < alpha
    if excludes_zero and rejects:
        return "higher" if low > 0 else "lower"
    if excludes_zero or rejects:
        return "borderline"
    return "no_clear_difference"


def estimate_revenue_per_conversation(
    recovery: pd.DataFrame,
    *,
    resamples: int = 2000,
    seed: int = 2026,
    alpha: float = 0.05,
) -> dict:
    """Return revenue attributable to the calls per conversation held.

    Parameters
    ----------
    recovery : DataFrame
        Per customer, from :func:`measure_recovery` (segments with a hold-out).
    resamples : int
        Bootstrap resamples.
    seed : int
        Seeds the bootstrap.
    alpha : float
        One minus the confidence level.

    Returns
    -------
    dict
        ``estimate`` (attributable revenue / conversations), ``ci_low``,
        ``ci_high``, ``attributable_revenue``, ``n_conversations``, ``segments``
        and ``method``.

    Notes
    -----
    Attributable revenue is, per segment, the called arm's revenue in the window
    minus what the same number of customers spent at the hold-out's revenue per
    customer (the intent-to-treat excess); it includes both recovered orders and
    any other order placed within the window after a call. It is summed over
    segments and divided by the conversations held in their called arms. The
    interval is a percentile bootstrap (``scipy.stats.bootstrap``) resampling
    customers independently within each segment and arm, so it carries the
    uncertainty of both arms and of the number of conversations. Undefined when
    no conversation was held.
    """
    strata = _revenue_strata(recovery)
    n_conversations = int(sum(talked.sum() for _, talked, _ in strata))
    data = [
        sample
        for revenue, _, holdout in strata
        for sample in (np.arange(len(revenue), dtype=float), holdout)
    ]
    statistic = _revenue_ratio(strata)
    result = {
        "estimate": float(statistic(*data)) if strata else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
    if n_conversations and all(len(r) > 1 and len(h) > 1 for r, _, h in strata):
        result.update(
            _bootstrap_interval(
                data, statistic, resamples=resamples, seed=seed, alpha=alpha
            )
        )
    if n_conversations and math.isnan(result["ci_low"]):
        log.warning(
            "revenue per conversation: some resamples held no conversation; "
            "the interval is undefined"
        )
    excess = (
        sum(r.sum() - len(r) * h.mean() for r, _, h in strata) if strata else math.nan
    )
    result.update(
        attributable_revenue=float(excess),
        n_conversations=n_conversations,
        segments=sorted(recovery["segment"].unique().tolist()),
        method=f"intent-to-treat excess revenue over the hold-out / conversations "
        f"held; percentile bootstrap, {resamples} resamples within segment and arm",
    )
    return result


def _revenue_strata(recovery: pd.DataFrame) -> list[tuple]:
    """Return per segment: called revenue, called conversation flags (0/1) and
    hold-out revenue, as float arrays."""
    strata = []
    for _, rows in recovery.groupby("segment"):
        called = rows[rows["arm"] == "called"]
        strata.append(
            (
                called["revenue"].to_numpy(float),
                called["is_conversation"].to_numpy(float),
                rows.loc[rows["arm"] == "holdout", "revenue"].to_numpy(float),
            )
        )
    return strata


def _revenue_ratio(strata: list[tuple]):
    """Return the statistic for :func:`scipy.stats.bootstrap`: it takes, per
    segment, the indices of the called customers drawn and the hold-out revenues
    drawn, and returns summed excess revenue over summed conversations."""

    def statistic(*samples):
        excess, conversations = 0.0, 0.0
        for (revenue, talked, _), picked, holdout in zip(
            strata, samples[0::2], samples[1::2], strict=True
        ):
            index = picked.astype(int)
            excess += revenue[index].sum() - len(index) * holdout.mean()
            conversations += talked[index].sum()
        return excess / conversations if conversations else np.nan

    return statistic


def _bootstrap_interval(data, statistic, *, resamples, seed, alpha) -> dict:
    """Return ``ci_low``, ``ci_high``: percentile bootstrap, samples resampled
    independently (one sample per segment and arm)."""
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        # A resample without conversations is undefined; the caller says so.
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = bootstrap(
            data,
            statistic,
            n_resamples=resamples,
            vectorized=False,
            paired=False,
            method="percentile",
            confidence_level=1 - alpha,
            rng=np.random.default_rng(seed),
        ).confidence_interval
    return {"ci_low": float(interval.low), "ci_high": float(interval.high)}


# --------------------------------------------------------------------------------------
# Call guide
# --------------------------------------------------------------------------------------


def build_call_guide(
    study: Study | str, month: str, segment: str, *, with_title: bool = True
) -> str:
    """Return a one-page call guide for one segment as Markdown.

    Parameters
    ----------
    study : Study or str
        The study, or its name.
    month : str
        ``YYYY-MM``: its ``question`` comes from the study's ``months:`` block.
    segment : str
        The segment the guide is for.
    with_title : bool
        Start with a level-1 heading; leave it out when the renderer sets the
        title itself.

    Returns
    -------
    str
        Markdown: the month's question, open-ended prompts (``calls.guide``), the
        consent-to-quote wording and the outcome codes callers record.

    Raises
    ------
    HeardInputError
        When the month has no question in ``study.yml``.
    """
    study = load_study(study) if not isinstance(study, Study) else study
    question = study.month_config(month).get("question")
    if not question:
        raise HeardInputError(
            study.raw("study.yml"),
            column=f"months.{month}.question",
            expected="the month's question",
            found="nothing",
            fix=f'add `months: {{"{month}": {{question: ...}}}}` to study.yml',
        )
    prompts = list(dict.fromkeys([question, *guide_prompts(study, month, segment)]))
    guide = study.config.get("calls", {}).get("guide", {})
    codes = "\n".join(
        f"| `{code}` | {meaning} |" for code, meaning in OUTCOME_MEANINGS.items()
    )
    # The guide's first sentence ends the name with a full stop ("Co." keeps one).
    store = str(study.config.get("study", {}).get("name", study.name)).rstrip(".")
    return CALL_GUIDE.format(
        title=f"# {call_guide_title(segment, month)}\n\n" if with_title else "",
        store=store,
        question=question,
        prompts="\n".join(f"{i}. {p}" for i, p in enumerate(prompts, start=1)),
        consent=guide.get("consent_wording", DEFAULT_CONSENT),
        codes=codes,
    )


def call_guide_title(segment: str, month: str) -> str:
    """Return the call guide's title: ``Call guide: Cart abandoners, 2026-11``."""
    return f"Call guide: {format_segment(segment)}, {month}"


def write_call_guides(study: Study, month: str, segments: list[str]) -> list[Path]:
    """Write one printable call guide per segment next to the month's call list.

    Parameters
    ----------
    study : Study
        The study.
    month : str
        ``YYYY-MM``.
    segments : list of str
        The month's segments, in the order the call list draws them.

    Returns
    -------
    list of Path
        The PDFs, ``call-guide_<segment>_<month>.pdf``; each has a ``.md``
        twin with the same text, for editing or printing elsewhere.

    Raises
    ------
    HeardInputError
        When the month has no question in ``study.yml``.
    """
    from helpers.files import save_text
    from helpers.render import render_markdown_pdf

    paths = []
    for segment in segments:
        target = study.processed(month, f"call-guide_{segment}_{month}.pdf")
        save_text(build_call_guide(study, month, segment), target.with_suffix(".md"))
        body = build_call_guide(study, month, segment, with_title=False)
        title = call_guide_title(segment, month)
        paths.append(render_markdown_pdf(body, target, title=title))
    return paths


def guide_prompts(study: Study, month: str, segment: str) -> list[str]:
    """Return the prompts for one segment: the month's own ``prompts`` (a list,
    or a mapping by segment with an optional ``default``) when given, else
    ``calls.guide.prompts`` followed by ``calls.guide.segment_prompts``."""
    month_prompts = study.month_config(month).get("prompts")
    if isinstance(month_prompts, dict):
        month_prompts = month_prompts.get(segment) or month_prompts.get("default")
    if month_prompts:
        return [str(p) for p in month_prompts]
    guide = study.config.get("calls", {}).get("guide", {}) or {}
    segment_prompts = (guide.get("segment_prompts") or {}).get(segment) or []
    return [*(guide.get("prompts") or []), *segment_prompts]


# --------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------


def run_calls_step(study: Study | str, month: str, *, now=None) -> dict:
    """Read the month's call logs and write every processed output of step 02.

    Parameters
    ----------
    study : Study or str
        The study, or its name.
    month : str
        ``YYYY-MM``.
    now : Timestamp, optional
        Attempts after this are refused; the current time when omitted.

    Returns
    -------
    dict
        ``attempts``, ``conflicts``, ``do_not_call``, ``rates`` (breakdown ->
        DataFrame), ``conversations``, ``weekly`` (:func:`tally_weekly_progress`),
        ``recovery`` (per customer), ``recovery_arms``,
        ``recovered_order_flags`` (:func:`flag_recovered_orders`), ``summary``
        (the contents of ``summary_calls.json``) and ``paths`` (the files
        written).

    Raises
    ------
    HeardInputError
        As :func:`load_call_log`, or when step 01's outputs are missing.

    Notes
    -----
    Earlier processed attempts are merged with the raw logs, never replaced
    (:func:`merge_attempts`). Every file is written atomically. Conversations
    whose notes the month's ``conversations/`` folder lacks are logged as a
    warning (:func:`find_missing_notes`): step 03 codes only the notes there.
    """
    study = load_study(study) if not isinstance(study, Study) else study
    inputs = read_step_inputs(study, month)
    incoming = read_call_log(study, month, now=now)
    attempts_path = study.processed(month, "attempts_attempt.parquet")
    logged = pd.read_parquet(attempts_path) if attempts_path.exists() else None
    merged, conflicts = merge_attempts(logged, incoming)
    attempts = describe_attempts(
        merged,
        assignment=inputs["assignment"],
        customers=inputs["customers"],
        config=study.config,
    )
    _warn_missing_notes(
        find_missing_notes(attempts, folder=study.raw("conversations", month))
    )
    outputs = measure_calls(attempts, inputs=inputs, month=month, config=study.config)
    outputs.update(attempts=attempts, conflicts=conflicts)
    outputs["paths"] = save_calls_outputs(outputs, study=study, month=month)
    log.info("calls step: %d attempts, %d conflicts", len(attempts), len(conflicts))
    return outputs


def find_missing_notes(attempts: pd.DataFrame, *, folder: Path) -> pd.DataFrame:
    """Return the conversations whose notes step 03 will not find.

    Parameters
    ----------
    attempts : DataFrame
        Attempts with ``outcome``, ``notes_file``, ``customer_key``,
        ``source_file``, ``source_row``.
    folder : Path
        The month's ``conversations/<month>/`` folder.

    Returns
    -------
    DataFrame
        ``source_file``, ``source_row``, ``customer_key``, ``notes_file``,
        ``reason``: ``not_in_folder`` (a notes file is named but not there) or
        ``not_named`` (a ``connected`` attempt names no notes file). Only the
        file name is compared, so ``conversations/2026-11/a.md`` finds ``a.md``.
    """
    present = {path.name for path in folder.iterdir()} if folder.is_dir() else set()
    named = attempts["notes_file"].notna()
    names = attempts["notes_file"].map(lambda v: Path(str(v)).name, na_action="ignore")
    reasons = np.select(
        [named & ~names.isin(present), ~named & attempts["outcome"].eq("connected")],
        ["not_in_folder", "not_named"],
        default="",
    )
    missing = attempts.assign(reason=reasons)[reasons != ""]
    columns = ["source_file", "source_row", "customer_key", "notes_file", "reason"]
    return missing[columns].reset_index(drop=True)


def _warn_missing_notes(missing: pd.DataFrame) -> None:
    """Log a warning when conversations in the log have no notes to code."""
    if missing.empty:
        return
    first = missing.iloc[0]
    log.warning(
        "%d conversations in the call logs have no notes in the conversations "
        "folder (%s; e.g. %s row %d): they cannot be coded until the notes are "
        "there and named in notes_file",
        len(missing),
        ", ".join(f"{n} {r}" for r, n in missing["reason"].value_counts().items()),
        first["source_file"],
        int(first["source_row"]),
    )


def read_step_inputs(study: Study, month: str) -> dict:
    """Return step 01's processed tables this step needs.

    Returns
    -------
    dict
        ``assignment`` and ``orders`` (required), ``customers`` (optional, for
        time zones; None when absent).
    """
    inputs = {}
    for name, stem, required in (
        ("assignment", "assignment_customer", True),
        ("orders", "orders_order", True),
        ("customers", "customers_customer", False),
    ):
        path = study.processed(month, f"{stem}.parquet")
        if not path.exists() and required:
            raise HeardInputError(
                path,
                expected="step 01's output",
                found="no file",
                fix="run notebooks/01_segment_export.ipynb for this month first",
            )
        inputs[name] = pd.read_parquet(path) if path.exists() else None
    orders = inputs["orders"]
    orders["created_at"] = pd.to_datetime(orders["created_at"], utc=True)
    return inputs


def measure_calls(attempts: pd.DataFrame, *, inputs: dict, month: str, config) -> dict:
    """Return rates, conversations, recovery (with the callers' order references
    the orders do not bear out) and the summary for the attempts."""
    calls_config = config.get("calls", {})
    rates = {by: tally_connect_rates(attempts, by=by) for by in BREAKDOWNS}
    conversations = tally_conversations(
        attempts,
        assignment=inputs["assignment"],
        target=tuple(calls_config.get("target_conversations", (20, 30))),
    )
    weekly = tally_weekly_progress(
        attempts,
        config=config,
        target=tuple(calls_config.get("target_conversations", (20, 30))),
    )
    recovery = measure_recovery(
        inputs["assignment"], inputs["orders"], attempts, month=month, config=config
    )
    recovery_arms, comparison = compare_recovery(recovery)
    flags = flag_recovered_orders(
        attempts, inputs["orders"], window=recovery_window(config)
    )
    _warn_flagged(flags)
    per_conversation = estimate_revenue_per_conversation(
        recovery,
        resamples=int(calls_config.get("bootstrap_resamples", 2000)),
        seed=int(calls_config.get("seed", 2026)),
    )
    summary = summarise_calls(
        attempts,
        rates=rates,
        conversations=conversations,
        comparison=comparison,
        per_conversation=per_conversation,
        config=config,
    )
    return {
        "do_not_call": collect_do_not_call(attempts),
        "rates": rates,
        "conversations": conversations,
        "weekly": weekly,
        "recovery": recovery,
        "recovery_arms": recovery_arms,
        "recovered_order_flags": flags,
        "summary": summary,
    }


def summarise_calls(
    attempts, *, rates, conversations, comparison, per_conversation, config
) -> dict:
    """Return the contents of ``summary_calls.json`` (keys in
    docs/study-folder.md)."""
    overall = rates["overall"].set_index("unit")
    field = tuple(config.get("calls", {}).get("field_connect_rate", (0.30, 0.40)))
    summary = {
        "n_dialled": int(attempts["customer_key"].nunique()),
        "n_attempts": int(len(attempts)),
        "n_conversations": int(conversations["n_conversations"].sum()),
        "recovery_window_days": int(
            config.get("calls", {}).get("recovery_window_days")
        ),
        "conversations_by_segment": conversations.to_dict(orient="records"),
        "recovery": comparison,
        "revenue_per_conversation": per_conversation,
    }
    for unit in ("customer", "attempt"):
        row = overall.loc[unit]
        summary[f"connect_rate_{unit}"] = compare_with_field(
            int(row["n_connected"]), int(row["n_dialled"]), field=field
        )
    summary["field_comparison"] = summary["connect_rate_customer"]["verdict"]
    return _to_plain(summary)


def _to_plain(value):
    """Return `value` with NumPy scalars and NaN made JSON-friendly (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_calls_outputs(outputs: dict, *, study: Study, month: str) -> list[Path]:
    """Write the step's processed files atomically; return their paths."""
    from helpers.files import save_json, save_parquet

    folder = study.processed(month)
    paths = [
        save_parquet(outputs["attempts"], folder / "attempts_attempt.parquet"),
        save_parquet(
            outputs["conflicts"], folder / "attempt-conflicts_attempt.parquet"
        ),
        save_parquet(
            outputs["do_not_call"], folder / "do-not-call-requests_customer.parquet"
        ),
        save_parquet(
            outputs["conversations"], folder / "conversations_segment.parquet"
        ),
        save_parquet(outputs["recovery_arms"], folder / "recovery_arm.parquet"),
        save_parquet(outputs["weekly"], folder / "progress_segment-week.parquet"),
        save_parquet(
            outputs["recovered_order_flags"],
            folder / "recovered-order-flags_attempt.parquet",
        ),
    ]
    for by, table in outputs["rates"].items():
        paths.append(save_parquet(table, folder / f"connect-rates_{by}.parquet"))
    paths.append(save_json(outputs["summary"], folder / "summary_calls.json"))
    return paths


# --------------------------------------------------------------------------------------
# Display: tables and a figure for the notebook
# --------------------------------------------------------------------------------------

BREAKDOWN_LABELS = {
    "segment": "Segment",
    "caller": "Caller",
    "local_hour": "Local hour",
    "attempt_number": "Attempt",
}
UNIT_LABELS = {
    "customer": "per customer (reached / dialled)",
    "attempt": "per attempt (answered / attempts)",
}


def format_connect_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """Return a connect-rate table for display: group, unit, rate with its
    denominator, and the 95% Wilson interval (from :func:`tally_connect_rates`)."""
    group = [c for c in rates.columns if c in BREAKDOWN_LABELS]
    shown = rates[group].rename(columns=BREAKDOWN_LABELS).astype(str)
    if "segment" in group:
        shown["Segment"] = rates["segment"].map(format_segment)
    shown["Unit"] = rates["unit"].map(UNIT_LABELS)
    shown["Connect rate"] = [
        format_count_rate(k, n)
        for k, n in zip(rates["n_connected"], rates["n_dialled"], strict=True)
    ]
    shown["95% Wilson interval"] = [
        format_interval(low, high, digits=0)
        for low, high in zip(rates["ci_low"], rates["ci_high"], strict=True)
    ]
    return shown.reset_index(drop=True)


def format_conversations(conversations: pd.DataFrame) -> pd.DataFrame:
    """Return conversations per segment for display: called, dialled, attempts,
    conversations against the target, attempts per conversation with interval."""
    return pd.DataFrame(
        {
            "Segment": conversations["segment"].map(format_segment),
            "On list": conversations["n_called"],
            "Dialled": conversations["n_dialled"],
            "Attempts": conversations["n_attempts"],
            "Conversations": [
                f"{n} (target {low}-{high})"
                for n, low, high in zip(
                    conversations["n_conversations"],
                    conversations["target_low"],
                    conversations["target_high"],
                    strict=True,
                )
            ],
            "Attempts per conversation": [
                "–"
                if math.isnan(x)
                else f"{x:.1f} {format_interval(lo, hi, percent=False)}"
                for x, lo, hi in zip(
                    conversations["attempts_per_conversation"],
                    conversations["ci_low"],
                    conversations["ci_high"],
                    strict=True,
                )
            ],
            "Still needed": conversations["n_to_target"],
        }
    )


def format_recovery(arms: pd.DataFrame, *, currency: str = "USD") -> pd.DataFrame:
    """Return recovery per arm for display, the per-protocol row labelled as such."""
    labels = {
        "called": "Called (intent to treat)",
        "holdout": "Not called (hold-out)",
        "called_reached": "Reached only (per protocol, not randomised)",
    }
    return pd.DataFrame(
        {
            "Segment": arms["segment"].map(format_segment),
            "Arm": arms["arm"].map(labels),
            "Recovered": [
                format_count_rate(k, n)
                for k, n in zip(arms["n_recovered"], arms["n_customers"], strict=True)
            ],
            "95% Wilson interval": [
                format_interval(lo, hi, digits=0)
                for lo, hi in zip(arms["ci_low"], arms["ci_high"], strict=True)
            ],
            "Revenue in window": [
                format_money(v, currency=currency) for v in arms["revenue"]
            ],
        }
    )


def plot_connect_rates(rates: pd.DataFrame, *, by: str = "attempt_number"):
    """Draw per-attempt connect rates with 95% Wilson intervals.

    Parameters
    ----------
    rates : DataFrame
        From :func:`tally_connect_rates` with ``by="attempt-number"`` or
        ``"local-hour"``.
    by : str
        The group column: ``attempt_number`` or ``local_hour``.

    Returns
    -------
    Figure
        Points with interval bars, the denominator written above each bar.
    """
    from helpers.figures import PALETTE, new_figure

    shown = rates[rates["unit"] == "attempt"].sort_values(by)
    figure, axes = new_figure()
    rate = shown["connect_rate"].to_numpy()
    errors = [rate - shown["ci_low"].to_numpy(), shown["ci_high"].to_numpy() - rate]
    axes.errorbar(shown[by], rate, yerr=errors, fmt="o", color=PALETTE[0], capsize=3)
    for x, high, n in zip(shown[by], shown["ci_high"], shown["n_dialled"], strict=True):
        axes.annotate(
            f"n={n}",
            (x, high),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=8,
        )
    axes.set_xlabel(
        BREAKDOWN_LABELS[by]
        + (" (customer's local time)" if by == "local_hour" else "")
    )
    axes.set_ylabel("Answered by the customer")
    axes.set_ylim(0, 1.08)
    axes.yaxis.set_major_formatter(lambda value, _: f"{100 * value:.0f}%")
    axes.set_xticks(shown[by].to_numpy())
    return figure

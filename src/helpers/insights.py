"""Insight velocity and pre-call predictions.

The insight log (``data/raw/<study>/insights.csv``) records each friction point the
team found: ``id``, ``friction``, ``codes``, ``conversations``, ``first_heard``,
``owner``, ``action``, ``addressed_on`` (blank while open). Velocity is how many
were found, how many addressed, and how long that took.

Predictions (``predictions/<YYYY-MM>.csv``: ``caller``, ``customer_key``,
``predicted_code``, optional ``probability``) are what callers expected to hear
before the calls. Each is scored against the consensus coding: correct when the
predicted theme (or one of its children) came up in that customer's conversation.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.errors import HeardInputError
from helpers.stats import tally_rate

log = logging.getLogger(__name__)

INSIGHT_COLUMNS = [
    "id",
    "friction",
    "codes",
    "conversations",
    "first_heard",
    "owner",
    "action",
    "addressed_on",
]
PREDICTION_COLUMNS = ["caller", "customer_key", "predicted_code"]
AGE_BANDS = [0, 7, 30, 90, math.inf]
AGE_LABELS = ["under 1 week", "1-4 weeks", "1-3 months", "over 3 months"]


def read_csv_raw(path) -> pd.DataFrame:
    """Read a raw CSV as text, refusing to write to it.

    The encoding (UTF-8 or Windows-1252) and delimiter (comma, semicolon or tab)
    are recognised as for store exports (:func:`helpers.exports.sniff_file`), so
    a log kept in Excel and saved as "CSV" in a European locale reads too.
    """
    from helpers.exports import read_text_table

    if Path(path).stat().st_size == 0:
        raise HeardInputError(
            path,
            expected="a CSV UTF-8 file with a header row",
            found="an empty file",
            fix="save the file again as CSV UTF-8 with its header",
        )
    try:
        return read_text_table(path)
    except pd.errors.EmptyDataError as error:
        raise HeardInputError(
            path,
            expected="a CSV UTF-8 file with a header row",
            found="an empty file" if Path(path).stat().st_size == 0 else str(error),
            fix="save the file again as CSV UTF-8 with its header",
        ) from error


def parse_dates(frame: pd.DataFrame, column: str, path, *, required: bool) -> pd.Series:
    """Return `column` as dates; blank is NaT unless `required`; else raise."""
    values = frame[column].str.strip()
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    for index in frame.index[(parsed.isna()) & ((values != "") | required)]:
        raise HeardInputError(
            path,
            row=int(index) + 2,
            column=column,
            expected="a date like 2026-11-09" + ("" if required else " or blank"),
            found=values[index],
            fix="write the date as YYYY-MM-DD",
        )
    return parsed.dt.normalize()


def load_insights(path, *, codes: list[str] | None = None) -> pd.DataFrame:
    """Read the insight log.

    Parameters
    ----------
    path : Path
        ``insights.csv``.
    codes : list of str, optional
        The codebook's ids. When given, every code in the ``codes`` cells
        (separated by commas, semicolons or spaces) must be one of them, any
        case.

    Returns
    -------
    DataFrame
        The log's columns, ``first_heard`` and ``addressed_on`` as dates
        (``addressed_on`` NaT while open), plus ``is_addressed``.

    Raises
    ------
    HeardInputError
        A missing column, a duplicate id, an unreadable date, a point addressed
        before it was first heard, or (with `codes`) a code not in the codebook.
    """
    log_frame = read_csv_raw(path)
    missing = [c for c in INSIGHT_COLUMNS if c not in log_frame.columns]
    if missing:
        raise HeardInputError(
            path,
            row=1,
            expected=f"columns {', '.join(INSIGHT_COLUMNS)}",
            found=f"missing {', '.join(missing)}",
            fix="add the missing columns to the header (blank cells are fine)",
        )
    duplicated = log_frame["id"].duplicated()
    if duplicated.any():
        index = int(log_frame.index[duplicated][0])
        raise HeardInputError(
            path,
            row=index + 2,
            column="id",
            expected="a unique id",
            found=log_frame.loc[index, "id"],
            fix="give each insight its own id",
        )
    insights = log_frame.assign(
        first_heard=parse_dates(log_frame, "first_heard", path, required=True),
        addressed_on=parse_dates(log_frame, "addressed_on", path, required=False),
    )
    early = insights["addressed_on"] < insights["first_heard"]
    if early.any():
        index = int(insights.index[early][0])
        raise HeardInputError(
            path,
            row=index + 2,
            column="addressed_on",
            expected="a date on or after first_heard",
            found=log_frame.loc[index, "addressed_on"],
            fix="check both dates",
        )
    if codes is not None:
        check_insight_codes(log_frame, codes, path)
    insights["is_addressed"] = insights["addressed_on"].notna()
    log.info("read %d insights from %s", len(insights), path)
    return insights


def check_insight_codes(log_frame: pd.DataFrame, codes: list[str], path) -> None:
    """Raise at the first code in the log's ``codes`` cells that the codebook
    lacks, naming its row: a misspelt code would tie the insight to nothing."""
    known = {code.casefold() for code in codes}
    for index, cell in log_frame["codes"].items():
        unknown = [
            c for c in re.split(r"[,;\s]+", cell) if c and c.casefold() not in known
        ]
        if unknown:
            raise HeardInputError(
                path,
                row=int(index) + 2,
                column="codes",
                expected="code ids from the codebook, separated by commas",
                found=unknown[0],
                fix="write the code's id as in codebook.yml, e.g. OBJ-PRICE",
            )


def summarise_insight_velocity(insights: pd.DataFrame, *, as_of) -> dict:
    """Return how many insights were found and addressed, and how fast.

    Parameters
    ----------
    insights : DataFrame
        The output of :func:`load_insights`.
    as_of : date-like
        The day open points are aged to (the month's last day in a report).

    Returns
    -------
    dict
        ``n_found`` (first heard on or before `as_of`), ``n_addressed`` (addressed
        on or before `as_of`), ``addressed_rate``, ``median_days_to_address``
        (first heard to addressed, NaN when none), ``open`` (a DataFrame: ``id``,
        ``friction``, ``owner``, ``first_heard``, ``age_days``, ``age_band``,
        oldest first), ``open_by_age`` (a DataFrame: ``age_band``, ``n_open``).
    """
    as_of = pd.Timestamp(as_of).normalize()
    found = insights[insights["first_heard"] <= as_of]
    is_done = found["addressed_on"].notna() & (found["addressed_on"] <= as_of)
    days = (
        found.loc[is_done, "addressed_on"] - found.loc[is_done, "first_heard"]
    ).dt.days

    # Age the points still open on `as_of`.
    still_open = found.loc[~is_done, ["id", "friction", "owner", "first_heard"]].copy()
    still_open["age_days"] = (as_of - still_open["first_heard"]).dt.days
    still_open["age_band"] = pd.cut(
        still_open["age_days"], AGE_BANDS, labels=AGE_LABELS, right=False
    )
    by_age = (
        still_open["age_band"]
        .value_counts()
        .reindex(AGE_LABELS, fill_value=0)
        .rename_axis("age_band")
        .reset_index(name="n_open")
    )
    n_found, n_addressed = len(found), int(is_done.sum())
    return {
        "n_found": n_found,
        "n_addressed": n_addressed,
        "addressed_rate": n_addressed / n_found if n_found else math.nan,
        "median_days_to_address": float(days.median()) if len(days) else math.nan,
        "open": still_open.sort_values("age_days", ascending=False).reset_index(
            drop=True
        ),
        "open_by_age": by_age,
    }


def load_predictions(
    path, *, month: str | None = None, codes: list[str] | None = None
) -> pd.DataFrame:
    """Read one month's predictions file.

    Parameters
    ----------
    path : Path
        ``predictions/<YYYY-MM>.csv``.
    month : str, optional
        Added as a ``month`` column (the file's stem when omitted).
    codes : list of str, optional
        The codebook's ids. When given, every ``predicted_code`` must be one of
        them (any case; read back as the id).

    Returns
    -------
    DataFrame
        ``month``, ``caller``, ``customer_key``, ``predicted_code``,
        ``probability`` (NaN when not given).

    Raises
    ------
    HeardInputError
        A missing column, a probability that is not a number in [0, 1], or
        (with `codes`) a predicted code not in the codebook.
    """
    raw = read_csv_raw(path)
    missing = [c for c in PREDICTION_COLUMNS if c not in raw.columns]
    if missing:
        raise HeardInputError(
            path,
            row=1,
            expected=f"columns {', '.join(PREDICTION_COLUMNS)}",
            found=f"missing {', '.join(missing)}",
            fix="add the columns; probability is optional",
        )
    text = (
        raw["probability"].str.strip()
        if "probability" in raw
        else pd.Series("", raw.index)
    )
    probability = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    bad = (probability.isna() & (text != "")) | (probability < 0) | (probability > 1)
    if bad.any():
        index = int(raw.index[bad][0])
        raise HeardInputError(
            path,
            row=index + 2,
            column="probability",
            expected="a probability between 0 and 1, or blank",
            found=text[index],
            fix="write e.g. 0.6 (not 60%)",
        )
    predictions = raw[PREDICTION_COLUMNS].apply(lambda column: column.str.strip())
    predictions.insert(0, "month", month or Path(path).stem)
    predictions["probability"] = probability
    if codes is not None:
        predictions["predicted_code"] = match_codes(
            predictions["predicted_code"], codes, path
        )
    return predictions


def match_codes(predicted: pd.Series, codes: list[str], path) -> pd.Series:
    """Return `predicted` as codebook ids, matched case-blind.

    Raises
    ------
    HeardInputError
        At the first code that is not in `codes`, naming its row; otherwise the
        prediction would silently go unscored.
    """
    lookup = {code.casefold(): code for code in codes}
    matched = predicted.fillna("").str.casefold().map(lookup)
    if matched.isna().any():
        index = int(predicted.index[matched.isna()][0])
        raise HeardInputError(
            path,
            row=index + 2,
            column="predicted_code",
            expected="a code id from the codebook",
            found=predicted[index],
            fix="write the code's id as in codebook.yml, e.g. OBJ-PRICE",
        )
    return matched


def score_predictions(
    predictions: pd.DataFrame, theme_matrix: pd.DataFrame, conversations: pd.DataFrame
) -> pd.DataFrame:
    """Return each prediction marked right or wrong against the consensus coding.

    Parameters
    ----------
    predictions : DataFrame
        The output of :func:`load_predictions`.
    theme_matrix : DataFrame
        ``helpers.themes.build_theme_matrix`` for the same month (children rolled
        up, so predicting ``OBJ`` is right when ``OBJ-PRICE`` came up).
    conversations : DataFrame
        ``conversation_id``, ``customer_key``.

    Returns
    -------
    DataFrame
        `predictions` plus ``is_scored`` (the customer had a coded conversation
        and the code is in the codebook), ``is_correct`` (float 1/0, NaN when not
        scored) and ``brier`` ((probability - outcome)², NaN without a
        probability).
    """
    keys = conversations.set_index("conversation_id")["customer_key"]
    present = theme_matrix.groupby(keys.reindex(theme_matrix.index).to_numpy()).any()
    outcomes = [
        float(present.loc[key, code])
        if key in present.index and code in present.columns
        else math.nan
        for key, code in zip(
            predictions["customer_key"], predictions["predicted_code"], strict=False
        )
    ]
    scored = predictions.assign(is_correct=outcomes)
    scored["is_scored"] = scored["is_correct"].notna()
    scored["brier"] = (scored["probability"] - scored["is_correct"]) ** 2
    n_unscored = int((~scored["is_scored"]).sum())
    if n_unscored:
        log.warning(
            "%d predictions not scored: no conversation with that customer, or a "
            "code not in the codebook",
            n_unscored,
        )
    return scored


def tally_prediction_scores(
    scored: pd.DataFrame, *, by: tuple[str, ...] = ("month", "caller")
) -> pd.DataFrame:
    """Return accuracy (with a Wilson interval) and Brier score per group.

    Parameters
    ----------
    scored : DataFrame
        The output of :func:`score_predictions`, possibly several months.
    by : tuple of str
        Grouping columns.

    Returns
    -------
    DataFrame
        The `by` columns, ``n_predictions`` (scored), ``n_correct``,
        ``accuracy_rate``, ``ci_low``, ``ci_high``, ``n_with_probability``,
        ``brier_score`` (mean over predictions with a probability; lower is
        better, 0.25 is always saying 50%).
    """
    usable = scored[scored["is_scored"]]
    grouped = usable.groupby(list(by), sort=True)
    table = grouped.agg(
        n_predictions=("is_correct", "size"),
        n_correct=("is_correct", "sum"),
        n_with_probability=("brier", "count"),
        brier_score=("brier", "mean"),
    ).reset_index()
    table["n_correct"] = table["n_correct"].astype(int)
    table = tally_rate(
        table, successes="n_correct", trials="n_predictions", rate="accuracy_rate"
    )
    columns = [*by, "n_predictions", "n_correct", "accuracy_rate", "ci_low", "ci_high"]
    return table[[*columns, "n_with_probability", "brier_score"]]

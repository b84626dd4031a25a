"""Schemas: declared once, and their failures told as file, row and column."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.errors import HeardInputError
from helpers.schemas import (
    ARMS,
    ATTEMPTS,
    CODINGS,
    ORDERS,
    is_purchase,
    order_flag,
    validate,
)

NOW = pd.Timestamp("2026-11-05 15:00", tz="UTC")


def attempts(**changes) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_key": ["c_1", "c_2"],
            "attempted_at": [NOW, NOW],
            "outcome": ["connected", "voicemail"],
            "talk_seconds": [30.0, None],
            "source_row": [2, 9],
        }
    )
    return frame.assign(**changes)


def test_a_sound_table_comes_back_unchanged():
    frame = attempts()
    pd.testing.assert_frame_equal(validate(frame, ATTEMPTS, file="log.csv"), frame)


def test_a_bad_value_is_named_by_its_spreadsheet_row_and_column():
    with pytest.raises(HeardInputError) as caught:
        validate(attempts(outcome=["connected", "picked up"]), ATTEMPTS, file="log.csv")
    error = caught.value
    assert (error.file, error.row, error.column) == ("log.csv", 9, "outcome")
    assert "voicemail" in error.expected and error.found == "'picked up'"


def test_rows_can_be_given_when_the_table_has_no_source_row():
    orders = pd.DataFrame(
        {"order_id": ["#1", "#2"], "created_at": [NOW, NOW], "total": [5.0, -1.0],
         "refunded_amount": [0.0, 0.0], "n_items": [1, 2]}
    )  # fmt: skip
    with pytest.raises(HeardInputError) as caught:
        validate(orders, ORDERS, file="orders.csv", rows=pd.Series([2, 3]))
    assert (caught.value.row, caught.value.column) == (3, "total")


def test_a_missing_column_and_naive_times_are_named():
    with pytest.raises(HeardInputError) as caught:
        validate(attempts().drop(columns="outcome"), ATTEMPTS, file="log.csv")
    assert caught.value.column == "outcome" and caught.value.found == "no such column"
    naive = attempts(attempted_at=[NOW.tz_localize(None)] * 2)
    with pytest.raises(HeardInputError) as caught:
        validate(naive, ATTEMPTS, file="log.csv")
    assert caught.value.column == "attempted_at"
    assert "time zone" in caught.value.expected


def test_arm_checks_span_columns_and_rows():
    arms = pd.DataFrame({"variant": ["control", "b"], "n": [10, 10],
                         "conversions": [3.0, 11.0]})  # fmt: skip
    with pytest.raises(HeardInputError, match="conversions at most n"):
        validate(arms, ARMS, file="results.csv")
    with pytest.raises(HeardInputError, match="variant"):
        validate(arms.assign(variant="control", conversions=1.0), ARMS, file="r.csv")


def test_codings_need_every_key_filled():
    codings = pd.DataFrame(
        {"conversation_id": ["a"], "excerpt_id": ["a-001"], "coder": [None],
         "code": ["OBJ-PRICE"], "is_suggestion": [False]}
    )  # fmt: skip
    with pytest.raises(HeardInputError) as caught:
        validate(codings, CODINGS, file="Rita.xlsx")
    assert caught.value.column == "coder"


def test_a_purchase_is_neither_cancelled_nor_a_credit_note():
    orders = pd.DataFrame(
        {
            "is_cancelled": [False, True, None, False],
            "is_return": [False, False, False, True],
        }
    )
    assert is_purchase(orders).tolist() == [True, False, True, False]
    # Exports without credit notes have no is_return column.
    assert is_purchase(orders.drop(columns="is_return")).tolist() == [
        True,
        False,
        True,
        True,
    ]
    assert order_flag(orders, "is_cancelled").tolist() == [False, True, False, False]

"""The canonical tables, declared once: what each loader promises to return.

Each schema is a pandera ``DataFrameSchema`` over the columns a later step relies
on; other columns may ride along. Loaders pass their result through
:func:`validate`, which turns pandera's report into one
:class:`~helpers.errors.HeardInputError` naming the file, the row and the column,
so a value that slipped past a reader stops the run where it entered instead of
becoming a wrong number three steps later.

String columns are not given a dtype (pandas' ``object`` and ``string`` both
occur); their rules are about presence and values.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from helpers.errors import HeardInputError

log = logging.getLogger(__name__)

OUTCOMES = (
    "connected",
    "voicemail",
    "no_answer",
    "busy",
    "wrong_number",
    "declined",
    "callback_requested",
    "do_not_call",
)
PHONE_STATUSES = ("valid", "possible", "invalid", "damaged", "missing")

is_aware_time = pa.Check(
    lambda column: isinstance(column.dtype, pd.DatetimeTZDtype),
    element_wise=False,
    error="times with a time zone (UTC)",
)
is_datetime = pa.Check(
    lambda column: pd.api.types.is_datetime64_any_dtype(column),
    element_wise=False,
    error="dates",
)
is_number = pa.Check(
    lambda column: pd.api.types.is_numeric_dtype(column),
    element_wise=False,
    error="numbers",
)
at_least_zero = pa.Check.ge(0, error="a number of at least 0")


def one_of(values: tuple[str, ...]) -> pa.Check:
    """Return a check that each value is one of `values`, named in its message."""
    return pa.Check.isin(values, error=f"one of {', '.join(values)}")


def text(*, nullable: bool = False, unique: bool = False, checks=None) -> pa.Column:
    """Return a column of text (no dtype enforced), by default always filled."""
    return pa.Column(nullable=nullable, unique=unique, checks=checks)


def amount(*, nullable: bool = False) -> pa.Column:
    """Return a column of non-negative numbers (any numeric dtype)."""
    return pa.Column(checks=[is_number, at_least_zero], nullable=nullable)


def number(*, nullable: bool = True, required: bool = True) -> pa.Column:
    """Return a column of numbers of any sign and numeric dtype."""
    return pa.Column(checks=is_number, nullable=nullable, required=required)


ORDERS = pa.DataFrameSchema(
    {
        "order_id": text(),
        "created_at": pa.Column(checks=is_aware_time),
        "total": amount(),
        "refunded_amount": amount(),
        "n_items": number(),
    },
    name="orders",
)
LINES = pa.DataFrameSchema(
    {
        "order_id": text(),
        "quantity": number(),
        "price": amount(nullable=True),
    },
    name="lines",
)
CHECKOUTS = pa.DataFrameSchema(
    {
        "checkout_id": text(),
        "created_at": pa.Column(checks=is_aware_time),
        "total": amount(nullable=True),
        "n_items": number(),
    },
    name="checkouts",
)
CUSTOMERS = pa.DataFrameSchema(
    {
        "customer_key": text(unique=True),
        "phone_status": text(nullable=True, checks=one_of(PHONE_STATUSES)),
        "is_callable": pa.Column(bool),
        "has_consent": pa.Column(bool),
        "is_do_not_call": pa.Column(bool),
    },
    name="customers",
)
ATTEMPTS = pa.DataFrameSchema(
    {
        "customer_key": text(),
        "attempted_at": pa.Column(checks=is_aware_time),
        "outcome": text(checks=one_of(OUTCOMES)),
        "talk_seconds": amount(nullable=True),
        "source_row": number(nullable=False),
    },
    name="attempts",
)
CONVERSATIONS = pa.DataFrameSchema(
    {
        "conversation_id": text(unique=True),
        "customer_key": text(),
        "date": pa.Column(checks=is_datetime, nullable=True),
        "consent_to_quote": pa.Column(bool),
        "text": text(nullable=True),
    },
    name="conversations",
)
EXCERPTS = pa.DataFrameSchema(
    {
        "conversation_id": text(),
        "excerpt_id": text(unique=True),
        "position": pa.Column(checks=[is_number, pa.Check.ge(1, error="from 1")]),
    },
    name="excerpts",
)
CODINGS = pa.DataFrameSchema(
    {
        "conversation_id": text(),
        "excerpt_id": text(),
        "coder": text(),
        "code": text(),
        "is_suggestion": pa.Column(bool),
    },
    name="codings",
)
ARMS = pa.DataFrameSchema(
    {
        "variant": text(unique=True),
        "n": pa.Column(checks=pa.Check.ge(1, error="at least one unit per arm")),
        "conversions": pa.Column(checks=[is_number, at_least_zero], required=False),
        "revenue": number(required=False),
        "orders": pa.Column(checks=[is_number, at_least_zero], required=False),
    },
    checks=pa.Check(
        lambda arms: (
            ~arms.columns.isin(["conversions"]).any()
            or arms["conversions"].le(arms["n"])
        ),
        error="conversions at most n",
    ),
    name="experiment arms",
)


def order_flag(orders: pd.DataFrame, flag: str) -> pd.Series:
    """Return an order flag (``is_cancelled``, ``is_return``) as booleans.

    Parameters
    ----------
    orders : DataFrame
        Orders as the reader or step 01 writes them.
    flag : str
        The flag column.

    Returns
    -------
    Series
        bool, on `orders`' index: missing counts as False, and so does every
        order of a table without the column (a credit note exists only in
        exports that have them).
    """
    if flag not in orders:
        return pd.Series(False, index=orders.index)
    return orders[flag].fillna(False).astype(bool)


def is_purchase(orders: pd.DataFrame) -> pd.Series:
    """Return whether each order counts as a purchase: neither cancelled nor a
    credit note (:func:`order_flag`)."""
    return ~order_flag(orders, "is_return") & ~order_flag(orders, "is_cancelled")


def validate(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema,
    *,
    file: str | Path,
    rows: pd.Series | None = None,
    fix: str | None = None,
) -> pd.DataFrame:
    """Return `frame` when it meets `schema`; raise naming file, row and column.

    Parameters
    ----------
    frame : DataFrame
        A loader's result.
    schema : pandera.DataFrameSchema
        One of this module's schemas.
    file : str or Path
        The raw file the rows came from, for the message.
    rows : Series, optional
        The spreadsheet row of each frame row (aligned on the index); the
        frame's ``source_row`` column when present, else none is named.
    fix : str, optional
        What to do; a generic hint when omitted.

    Returns
    -------
    DataFrame
        `frame`'s values unchanged (pandera may return a copy; these schemas
        never coerce).

    Raises
    ------
    HeardInputError
        For the first failure pandera reports (all are logged at DEBUG).
    """
    try:
        return schema.validate(frame, lazy=True)
    except (SchemaErrors, SchemaError) as errors:
        cases = getattr(errors, "failure_cases", None)
        if cases is None or not len(cases):
            raise _as_input_error(str(errors), file, None, None, schema, fix) from None
        log.debug("%s: %s", file, cases.to_string())
        first = cases.iloc[0]
        column = None if pd.isna(first["column"]) else str(first["column"])
        if first["check"] == "column_in_dataframe":
            column = str(first["failure_case"])
        elif first["schema_context"] == "DataFrameSchema":
            column = None
        rows = rows if rows is not None else frame.get("source_row")
        row = None
        if rows is not None and pd.notna(first["index"]) and first["index"] in rows:
            row = int(rows.loc[first["index"]])
        value = first["failure_case"]
        value = value.item() if hasattr(value, "item") else value
        found = f"{value!r}" + (
            f" ({len(cases)} failing values)" if len(cases) > 1 else ""
        )
        raise _as_input_error(
            first["check"], file, row, column, schema, fix, found=found
        ) from None


def _as_input_error(check, file, row, column, schema, fix, *, found=None):
    expected = str(check)
    if expected == "column_in_dataframe":
        expected, found = f"a column named {column}", "no such column"
    return HeardInputError(
        file,
        row=row,
        column=column,
        expected=f"{schema.name}: {expected}",
        found=found,
        fix=fix
        or "correct the value in the raw file, or report the loader bug "
        "if the raw file looks right",
    )

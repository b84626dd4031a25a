"""Segments and the call list: who the month's calls go to, drawn fairly.

Per-customer features come from the store exports (orders counted as orders, not
line-item rows); segments are rules from the study config evaluated by DuckDB on
those features; the call list is a seeded, stratified random sample per segment,
with a not-called hold-out for cart abandoners so recovery can be compared later.

The entry points are :func:`plan_call_list` (pure: returns the call list) and
:func:`run_segment_step` (writes every processed file of step 01).
"""

from __future__ import annotations

import functools
import io
import logging
import math
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from helpers import files
from helpers.errors import HeardInputError
from helpers.privacy import customer_key as make_customer_key
from helpers.schemas import OUTCOMES, is_purchase, order_flag
from helpers.study import Study, check_month, load_study
from helpers.tables import format_segment

log = logging.getLogger(__name__)

CALLER_COLUMNS = [
    "attempted_at",
    "caller",
    "outcome",
    "talk_seconds",
    "notes_file",
    "recovered_order",
]
CALL_LIST_COLUMNS = [
    "reference",
    "name",
    "phone_e164",
    "phone_national",
    "extension",
    "local_timezone",
    "is_timezone_assumed",
    "calling_window_local",
    "calling_window_store",
    "segment",
    "question",
    "prompts",
    *CALLER_COLUMNS,
]
PLAN_COLUMNS = ["customer_key", "arm", "stratum", *CALL_LIST_COLUMNS]
CUSTOMER_COLUMNS = [
    "customer_key",
    "country",
    "timezone",
    "has_consent",
    "is_do_not_call",
    "phone_status",
    "is_callable",
    "accepts_email_marketing",
    "accepts_sms_marketing",
    "n_merged",
]
VIEW_COLUMNS = ("email", "product", "viewed_at")
NEVER_BOUGHT = "never_bought"
# What a customer without orders, products or checkouts has.
BLOCK_DEFAULTS = {
    "n_orders": 0, "n_orders_placed": 0, "n_returned_orders": 0, "n_products": 0,
    "n_checkouts": 0, "spend": 0.0, "refunded_amount": 0.0,
    "has_open_checkout": False,
}  # fmt: skip


# --------------------------------------------------------------------------- keys


def normalise_email(emails: pd.Series) -> pd.Series:
    """Return e-mails trimmed and case-folded; blanks become missing."""
    text = emails.astype("string").str.strip().str.casefold()
    return text.mask(text == "")


def attach_customer_keys(frame: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` (orders, checkouts or views) with a ``customer_key`` column.

    Parameters
    ----------
    frame : DataFrame
        Rows with ``email`` and optionally ``customer_id``.
    customers : DataFrame
        The deduplicated customers: ``customer_key``, ``email``.

    Returns
    -------
    DataFrame
        A copy of `frame` with ``customer_key`` (missing when the row has neither an
        e-mail nor a customer id); `frame` itself, unchanged, when every row
        already has a key.

    Notes
    -----
    Keys the reader already set (``helpers.exports`` does) are kept. The e-mail
    is matched to the customers table first, so a customer merged from
    several rows keeps one key. A row whose e-mail is not there gets the key its
    identity would have (``helpers.privacy.customer_key`` of the e-mail, else of the
    platform's customer id), computed once per distinct identity.
    """
    if "customer_key" in frame and frame["customer_key"].notna().all():
        return frame
    keyed = frame.copy()
    email = normalise_email(keyed["email"]) if "email" in keyed else None
    known = pd.Series(
        customers["customer_key"].to_numpy(),
        index=normalise_email(customers["email"]),
    )
    known = known[known.index.notna() & ~known.index.duplicated()]
    keys = (
        email.map(known) if email is not None else pd.Series(pd.NA, index=keyed.index)
    )
    if "customer_key" in keyed:
        keys = (
            keyed["customer_key"]
            .astype(object)
            .where(keyed["customer_key"].notna(), keys)
        )

    # Fall back to the identity's own key: e-mail first, then the platform id.
    identity = email if email is not None else pd.Series(pd.NA, index=keyed.index)
    if "customer_id" in keyed:
        platform_id = keyed["customer_id"].astype("string").str.strip()
        identity = identity.fillna(platform_id.mask(platform_id == ""))
    missing = keys.isna() & identity.notna()
    if missing.any():
        distinct = identity[missing].unique()
        lookup = {value: make_customer_key(value) for value in distinct}
        keys = keys.astype(object)
        keys[missing] = identity[missing].map(lookup)
    keyed["customer_key"] = keys.astype("string")
    return keyed


# ----------------------------------------------------------------------- features


def build_customer_features(
    exports,
    *,
    as_of: datetime | pd.Timestamp,
    config: dict,
    views: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return one row per customer with the features segment rules use.

    Parameters
    ----------
    exports : StoreExports
        From ``helpers.exports.load_store_exports``: ``.orders`` (one row per
        order), ``.lines``, ``.customers`` (deduplicated), ``.checkouts``.
    as_of : datetime
        The moment days are counted to (the month's first day, UTC).
    config : dict
        The study configuration; reads ``segments``.
    views : DataFrame, optional
        Product views (``email``, ``product``, ``viewed_at``); without it the view
        features are missing and view rules select nobody.

    Returns
    -------
    DataFrame
        ``customer_key`` (the customers export's text dtype: pandas ``str`` for
        ``load_store_exports``, whose keys come from polars), the customers'
        non-personal columns (``country``, ``timezone``, ``has_consent``,
        ``is_do_not_call``, ``phone_status``, ``is_callable``, …), ``n_orders``
        (purchases: neither cancelled nor a credit note), ``n_orders_placed``
        (cancelled included),
        ``n_returned_orders`` (refunded, cancelled, or a credit note),
        ``return_rate`` (returned / placed; above 1 when credit notes outnumber
        the orders they refer to), ``spend`` (purchase totals less refunds),
        ``refunded_amount``,
        ``first_order_at``, ``last_order_at``, ``days_since_last_order``,
        ``lifecycle_stage``, ``n_products`` (distinct products bought),
        ``max_product_return_rate``, ``n_checkouts``, ``last_checkout_at``,
        ``has_open_checkout``, ``open_checkout_items``, ``open_checkout_total``,
        ``n_repeat_viewed_products``.

    Notes
    -----
    Orders are counted on the reader's one-row-per-order table (line-item rows
    are collapsed there), so a line-item export can never turn a one-order buyer
    into a repeat buyer; a repeated ``order_id`` raises ValueError. A product's
    return rate is the share of the orders containing it that were refunded (any
    amount), cancelled or credit notes (``is_return``, e.g. an invoice starting
    ``C``); products bought in fewer than ``high_return_min_orders`` orders get no
    rate. A checkout is open when it is the customer's latest, no order (cancelled
    or not) came after it, and it is at most ``abandoned_within_days`` old at
    `as_of`. A checkout without a date still counts in ``n_checkouts`` but is
    never open: with no time to compare, ``last_checkout_at`` stays missing and
    ``has_open_checkout`` is False.
    """
    rules = config["segments"]
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tz is None else as_of.tz_convert("UTC")
    customers = exports.customers

    # Describe the store as it stood at `as_of`: exports downloaded later hold
    # later orders (the calls' own recoveries among them), which must not change
    # who is sampled.
    orders = _before(
        _order_flags(attach_customer_keys(exports.orders, customers)), as_of, "orders"
    )
    checkouts = _before(
        _checkout_rows(attach_customer_keys(exports.checkouts, customers)),
        as_of,
        "checkouts",
    )

    # Aggregate orders, products and checkouts per customer in polars.
    order_features = _order_features(orders, as_of)
    product_features = _product_features(
        orders, exports.lines, min_orders=int(rules["high_return_min_orders"])
    )
    checkout_features = _checkout_features(
        checkouts, order_features, as_of, within_days=rules.get("abandoned_within_days")
    )

    # Start from every customer known anywhere, then join each block.
    base = _all_customers(customers, [order_features, checkout_features])
    features = _join_blocks(
        base,
        [order_features.drop("any_order_at"), product_features, checkout_features],
    )
    features = _fill_feature_defaults(features)
    features["lifecycle_stage"] = label_lifecycle(
        features["days_since_last_order"], bands=rules["lifecycle_bands"]
    )
    features["n_repeat_viewed_products"] = _view_features(
        views,
        customers,
        features["customer_key"],
        minimum=int(rules["repeat_view_min"]),
    )
    log.info("built features for %d customers as of %s", len(features), as_of.date())
    return features


def _all_customers(customers: pd.DataFrame, blocks: list[pl.DataFrame]) -> pd.DataFrame:
    """Return the customers' non-personal columns, plus a bare row for each key
    that appears only in the per-customer `blocks` (orders, checkouts).

    The new keys are looked for in the blocks, which hold each key once, not
    among the order and checkout rows, which repeat it."""
    base = customers[[c for c in CUSTOMER_COLUMNS if c in customers]]
    extra = (
        pl.concat([block.select("customer_key") for block in blocks])
        .unique()
        .join(_select_keys(base), on="customer_key", how="anti")
        .sort("customer_key")
    )
    if extra.height:
        log.warning(
            "%d customers appear in orders or checkouts but not in the customers "
            "export; they are kept without consent or phone",
            extra.height,
        )
        base = pd.concat([base, extra.to_pandas()], ignore_index=True)
    return base


def _select_keys(frame: pd.DataFrame) -> pl.DataFrame:
    """Return `frame`'s ``customer_key`` column as a polars text column."""
    return pl.from_pandas(frame[["customer_key"]]).cast({"customer_key": pl.String})


def _join_blocks(base: pd.DataFrame, blocks: list[pl.DataFrame]) -> pd.DataFrame:
    """Return `base` sorted by key, with each per-customer block joined on and
    the counts, sums and flags of customers a block misses filled in.

    The blocks are joined and sorted on the key in polars, and pandas is handed
    their columns once: no pandas merge copies the customers' columns per block."""
    joined = (
        _select_keys(base).with_row_index("row").sort("customer_key", nulls_last=True)
    )
    for block in blocks:
        joined = joined.join(
            block, on="customer_key", how="left", maintain_order="left"
        )
    values = (
        joined.with_columns(pl.col(c).fill_null(v) for c, v in BLOCK_DEFAULTS.items())
        .drop("row", "customer_key")
        .to_pandas()
    )
    ordered = base.take(joined["row"].to_numpy()).reset_index(drop=True)
    return pd.concat([ordered, values], axis=1)


def _order_flags(orders: pd.DataFrame) -> pl.DataFrame:
    """Return order_id, customer_key, created_at, the amounts and the flags every
    count below uses, as polars columns."""
    flags = pl.from_pandas(
        pd.DataFrame(
            {
                "customer_key": orders["customer_key"],
                "order_id": orders["order_id"],
                "created_at": orders["created_at"],
                "total": orders["total"].astype("float64").fillna(0.0),
                "refunded_amount": orders["refunded_amount"]
                .astype("float64")
                .fillna(0.0),
                "is_cancelled": order_flag(orders, "is_cancelled"),
                "is_return": order_flag(orders, "is_return"),
                "is_purchase": is_purchase(orders),
            }
        )
    )
    col = pl.col
    return _in_utc(flags).with_columns(
        col("customer_key").cast(pl.String),
        col("order_id").cast(pl.String),
        is_returned=col("is_return")
        | col("is_cancelled")
        | (col("refunded_amount") > 0),
    )


def _checkout_rows(checkouts: pd.DataFrame) -> pl.DataFrame:
    """Return the checkouts' key, time, items and total as polars columns."""
    rows = pl.from_pandas(
        checkouts[["customer_key", "checkout_id", "created_at", "n_items", "total"]]
    )
    return _in_utc(rows).with_columns(
        pl.col("customer_key").cast(pl.String),
        pl.col("n_items", "total").cast(pl.Float64),
    )


def _in_utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` with ``created_at`` in UTC, in microseconds: one unit for
    every time the features compare or return, whatever unit the export had."""
    kind = frame.schema["created_at"]
    stamps = pl.col("created_at")
    if not isinstance(kind, pl.Datetime):
        # An empty export's column has no type yet.
        return frame.with_columns(stamps.cast(pl.Datetime("us", "UTC")))
    if kind.time_zone is None:
        stamps = stamps.dt.replace_time_zone("UTC")
    return frame.with_columns(
        stamps.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    )


def _before(table: pl.DataFrame, as_of: pd.Timestamp, what: str) -> pl.DataFrame:
    # A row without a date is kept, as the comparison with NaT did in pandas.
    is_late = (pl.col("created_at") >= as_of.to_pydatetime()).fill_null(False)
    n_late = table.select(is_late.sum()).item()
    if not n_late:
        return table
    log.info(
        "left out %d %s dated on or after %s: features describe the store "
        "as it stood then",
        n_late,
        what,
        as_of.date(),
    )
    return table.filter(~is_late)


def _order_features(orders: pl.DataFrame, as_of: pd.Timestamp) -> pl.DataFrame:
    # The reader gives one row per order; a repeated id would be counted twice.
    keyed = orders.filter(pl.col("customer_key").is_not_null())
    if keyed["order_id"].n_unique() != keyed.height:
        raise ValueError("orders must hold one row per order_id")
    col = pl.col
    purchase = col("is_purchase")
    features = keyed.group_by("customer_key").agg(
        n_orders=purchase.sum().cast(pl.Int64),
        n_orders_placed=(~col("is_return")).sum().cast(pl.Int64),
        n_returned_orders=col("is_returned").sum().cast(pl.Int64),
        spend=col("total").filter(purchase).sum() - col("refunded_amount").sum(),
        refunded_amount=col("refunded_amount").sum(),
        first_order_at=col("created_at").filter(purchase).min(),
        last_order_at=col("created_at").filter(purchase).max(),
        any_order_at=col("created_at").max(),
    )
    placed = col("n_orders_placed")
    elapsed = pl.lit(as_of.to_pydatetime()) - col("last_order_at")
    return features.with_columns(
        return_rate=pl.when(placed > 0).then(col("n_returned_orders") / placed),
        days_since_last_order=elapsed.dt.total_days(),
    )


def _product_features(
    orders: pl.DataFrame, lines: pd.DataFrame, *, min_orders: int
) -> pl.DataFrame:
    col = pl.col
    joined = _items_with_orders(orders, lines)

    # A product's rate counts its orders.
    rates = joined.group_by("product").agg(
        col("order_id").n_unique().alias("n_orders"),
        col("order_id").filter("is_returned").n_unique().alias("n_returned"),
    )
    rates = rates.select(
        "product", "n_orders", (col("n_returned") / col("n_orders")).alias("rate")
    )

    # Per customer: distinct products bought, and the highest rate among them.
    bought = joined.filter(~col("is_return") & col("customer_key").is_not_null())
    return (
        bought.join(rates, on="product")
        .group_by("customer_key")
        .agg(
            col("product").n_unique().cast(pl.Int64).alias("n_products"),
            col("rate").filter(col("n_orders") >= min_orders).max()
            .alias("max_product_return_rate"),
        )
    )  # fmt: skip


def _items_with_orders(orders: pl.DataFrame, lines: pd.DataFrame) -> pl.DataFrame:
    """Return each line item's ``order_id`` and ``product`` (a number) with its
    order's ``customer_key``, ``is_returned`` and ``is_return``.

    Lines meet their order in one hash join on the order id, whatever order
    the ids come in (ranking them sorts them, slow unless already sorted).
    Products are numbered through a categorical, which numbers each name once
    without sorting the long names as a rank would."""
    # A line without an order id or a product counts for nothing.
    # The reader's products are categories already: no round trip through text.
    products = pl.from_pandas(lines["product"]).cast(pl.Categorical)
    items = pl.DataFrame({
        "order_id": pl.from_pandas(lines["order_id"]).cast(pl.String),
        "product": products.to_physical(),
    }).drop_nulls()  # fmt: skip
    flags = orders.select("order_id", "customer_key", "is_returned", "is_return")
    return items.join(flags, on="order_id")


def _checkout_features(
    checkouts: pl.DataFrame,
    order_features: pl.DataFrame,
    as_of: pd.Timestamp,
    *,
    within_days: int | None,
) -> pl.DataFrame:
    col = pl.col
    latest = (
        checkouts.filter(col("customer_key").is_not_null())
        .group_by("customer_key")
        .agg(
            n_checkouts=pl.len().cast(pl.Int64),
            last_checkout_at=col("created_at").max(),
            last_checkout_items=_at_latest("n_items"),
            last_checkout_total=_at_latest("total"),
        )
        .join(order_features.select("customer_key", "any_order_at"), on="customer_key",
              how="left")
    )  # fmt: skip

    # Open: the latest checkout, with no order after it, recent enough.
    oldest = (
        datetime(1900, 1, 1, tzinfo=UTC)
        if within_days is None
        else (as_of - pd.Timedelta(days=int(within_days))).to_pydatetime()
    )
    last, any_order = col("last_checkout_at"), col("any_order_at")
    is_open = (any_order.is_null() | (any_order < last)) & (last >= oldest)
    return latest.select(
        "customer_key", "n_checkouts", "last_checkout_at",
        is_open.alias("has_open_checkout"),
        pl.when(is_open).then("last_checkout_items").alias("open_checkout_items"),
        pl.when(is_open).then("last_checkout_total").alias("open_checkout_total"),
    )  # fmt: skip


def _at_latest(column: str) -> pl.Expr:
    """Return `column` on the latest row where it and the time are known, the
    first such row on a tie (the stable sort keeps tied rows in order)."""
    known = pl.col(column).is_not_null() & pl.col("created_at").is_not_null()
    stamps = pl.col("created_at").filter(known)
    return (
        pl.col(column)
        .filter(known)
        .sort_by(stamps, descending=True, maintain_order=True)
        .first()
    )


def _view_features(
    views: pd.DataFrame | None,
    customers: pd.DataFrame,
    keys: pd.Series,
    *,
    minimum: int,
) -> pd.Series:
    if views is None:
        return pd.Series(pd.NA, index=keys.index, dtype="Int64")
    keyed = attach_customer_keys(views, customers)
    counts = keyed.groupby(["customer_key", "product"]).size()
    repeated = (counts >= minimum).groupby(level="customer_key").sum()
    return keys.map(repeated).fillna(0).astype("Int64").set_axis(keys.index)


def _fill_feature_defaults(features: pd.DataFrame) -> pd.DataFrame:
    filled = {
        column: features[column].astype("Int64")
        for column in ("days_since_last_order", "open_checkout_items")
    }
    for column in ("has_consent", "is_do_not_call", "is_callable"):
        values = (
            features[column]
            if column in features
            else pd.Series(False, index=features.index)
        )
        filled[column] = values.fillna(False).astype(bool)
    status = (
        features["phone_status"]
        if "phone_status" in features
        else pd.Series(pd.NA, index=features.index)
    )
    filled["phone_status"] = status.astype("string").fillna("missing")
    return features.assign(**filled)


@functools.cache
def _connection() -> duckdb.DuckDBPyConnection:
    """Return this process's DuckDB connection (opening one costs ~0.1 s)."""
    connection = duckdb.connect()
    return connection


def _query(sql: str, **tables: pd.DataFrame) -> duckdb.DuckDBPyRelation:
    """Run `sql` with `tables` registered by name; consume the result at once."""
    connection = _connection()
    for name, table in tables.items():
        connection.register(name, table)
    return connection.sql(sql)


def label_lifecycle(days: pd.Series, *, bands: list[int]) -> pd.Series:
    """Return each customer's lifecycle stage from days since the last order.

    Parameters
    ----------
    days : Series
        Days since the last order; missing for customers who never bought.
    bands : list of int
        Band starts in days, ascending, e.g. ``[0, 30, 90, 180, 365]``.

    Returns
    -------
    Series
        Labels such as ``"0-29d"``, ``"30-89d"``, ``"365d+"``, and
        ``"never_bought"``. An order dated after the reference day counts as 0.

    Raises
    ------
    ValueError
        When `bands` is not ascending from 0.
    """
    if list(bands) != sorted(set(bands)) or bands[0] != 0:
        raise ValueError(f"lifecycle_bands must rise from 0, got {bands!r}")
    labels = lifecycle_labels(bands)
    stage = pd.cut(
        days.astype("Float64").clip(lower=0),
        bins=[*bands, math.inf],
        right=False,
        labels=False,
    )

    # Each band's number picks its label, never_bought (last) where none does:
    # labelled bands turned into text would make a Python string per row.
    band = stage.fillna(len(labels) - 1).to_numpy(dtype=np.int64)
    names = pd.array(labels, dtype="string").take(band)
    return pd.Series(names, index=days.index, name=days.name)


def lifecycle_labels(bands: list[int]) -> list[str]:
    """Return the lifecycle stage labels in order, ``never_bought`` last."""
    labels = [f"{low}-{high - 1}d" for low, high in zip(bands, bands[1:], strict=False)]
    return [*labels, f"{bands[-1]}d+", NEVER_BOUGHT]


# ----------------------------------------------------------------------- segments


def assign_segments(
    features: pd.DataFrame, *, config: dict, has_views: bool = False
) -> pd.DataFrame:
    """Return which customers belong to which segment.

    Parameters
    ----------
    features : DataFrame
        From :func:`build_customer_features`.
    config : dict
        The study configuration; reads ``segments.rules`` and the thresholds the
        rules name in braces.
    has_views : bool
        Whether a views export was given; rules that use view features are
        skipped without one.

    Returns
    -------
    DataFrame
        ``customer_key``, ``segment``: one row per customer and segment, a customer
        in several segments on several rows. Lifecycle stages are segments too,
        named ``lifecycle_<stage>``.

    Raises
    ------
    HeardInputError
        When a rule is not a valid condition on the features.
    """
    settings = config["segments"]
    thresholds = {k: v for k, v in settings.items() if not isinstance(v, dict | list)}
    conditions = {
        segment: rule.format_map(thresholds)
        for segment, rule in (settings.get("rules") or {}).items()
        if rule is not None and (has_views or "viewed" not in rule)
    }

    # Evaluate every rule in one pass over the features.
    flags = _evaluate_rules(features, conditions)
    found = [
        flags.filter(segment).select(
            pl.col("customer_key").cast(pl.String), segment=pl.lit(segment)
        )
        for segment in conditions
    ]

    # Lifecycle stages are segments as well, so stages can be compared.
    stages = pl.from_pandas(features[["customer_key", "lifecycle_stage"]])
    found.append(
        stages.select(
            pl.col("customer_key").cast(pl.String),
            segment=pl.lit("lifecycle_") + pl.col("lifecycle_stage").cast(pl.String),
        )
    )

    # Hand pandas the Arrow text: DuckDB's and polars' own pandas conversions
    # make a Python string of every key.
    segments = pl.concat(found)
    segments = pd.DataFrame(
        {
            name: pd.array(segments[name].to_arrow(), dtype="string")
            for name in segments.columns
        }
    )
    log.info("assigned %d customer-segment rows", len(segments))
    return segments


def _evaluate_rules(features: pd.DataFrame, conditions: dict) -> pl.DataFrame:
    """Return, as a polars frame sorted by key, customer_key and one boolean
    column per rule (NULL counts as no)."""
    selects = ", ".join(
        f'coalesce(({condition}), false) AS "{segment}"'
        for segment, condition in conditions.items()
    )
    try:
        return _query(
            f"SELECT customer_key{', ' if selects else ''}{selects} FROM features "
            "ORDER BY customer_key",
            features=features,
        ).pl()
    except duckdb.Error:
        # Find the rule at fault, to name it.
        for segment, condition in conditions.items():
            try:
                _query(f"SELECT ({condition}) FROM features LIMIT 0", features=features)
            except duckdb.Error as fault:
                raise HeardInputError(
                    "study.yml",
                    column=f"segments.rules.{segment}",
                    expected="a SQL condition on the customer features",
                    found=condition,
                    fix=f"correct the rule ({str(fault).splitlines()[0]})",
                ) from fault
        raise


def tally_segments(
    segments: pd.DataFrame, *, config: dict, has_views: bool = False
) -> pd.DataFrame:
    """Return the size of every segment, empty ones included.

    Parameters
    ----------
    segments : DataFrame
        From :func:`assign_segments`.
    config : dict
        The study configuration (for the rule order and lifecycle bands).
    has_views : bool
        Whether view rules were evaluated.

    Returns
    -------
    DataFrame
        ``segment``, ``n_customers``, in the order of the rules then the stages.
    """
    settings = config["segments"]
    names = [
        name
        for name, rule in (settings.get("rules") or {}).items()
        if rule is not None and (has_views or "viewed" not in rule)
    ]
    names += [
        f"lifecycle_{label}" for label in lifecycle_labels(settings["lifecycle_bands"])
    ]
    counts = segments.groupby("segment")["customer_key"].nunique()
    return pd.DataFrame(
        {
            "segment": names,
            "n_customers": [int(counts.get(name, 0)) for name in names],
        }
    )


# ----------------------------------------------------------------------- sampling


def count_to_dial(*, target_conversations: int, expected_connect_rate: float) -> int:
    """Return how many customers to call for a segment.

    Parameters
    ----------
    target_conversations : int
        Conversations wanted from the segment (20-30 is usual).
    expected_connect_rate : float
        The share of called customers expected to talk, in (0, 1].

    Returns
    -------
    int
        ``ceil(target_conversations / expected_connect_rate)``: 25 conversations
        at a 35% connect rate need 72 customers.

    Raises
    ------
    ValueError
        When the rate is not in (0, 1] or the target is not positive.
    """
    if not 0 < expected_connect_rate <= 1:
        raise ValueError(
            f"expected_connect_rate must be in (0, 1], got {expected_connect_rate!r}"
        )
    if target_conversations < 1:
        raise ValueError(
            f"target_conversations must be positive, got {target_conversations!r}"
        )
    return math.ceil(target_conversations / expected_connect_rate)


def expected_conversations(
    n_dialled: int, connect_rate: float, *, coverage: float = 0.95
) -> dict:
    """Return how many conversations `n_dialled` calls should give.

    Parameters
    ----------
    n_dialled : int
        Customers on the call list.
    connect_rate : float
        The expected share who talk.
    coverage : float
        The probability the range covers.

    Returns
    -------
    dict
        ``expected`` (``n * rate``), ``low`` and ``high``: the central range of a
        binomial(n, rate) count (``scipy.stats.binom.interval``).

    Notes
    -----
    The binomial treats customers as independent with one shared rate; a real
    rate that is itself uncertain (30-40%) widens the range.
    """
    from scipy.stats import binom

    low, high = binom.interval(coverage, n_dialled, connect_rate)
    return {
        "expected": n_dialled * connect_rate,
        "low": int(low),
        "high": int(high),
    }


def allocate_proportionally(total: int, sizes: pd.Series) -> pd.Series:
    """Split `total` across strata in proportion to `sizes` (largest remainder).

    Parameters
    ----------
    total : int
        How many to draw; at most ``sizes.sum()``.
    sizes : Series
        Stratum -> how many are available.

    Returns
    -------
    Series
        Stratum -> how many to draw; sums to `total`, never above a stratum's size.
        Ties in the remainder go to the larger stratum, then the first by name.
    """
    if total >= sizes.sum():
        return sizes.astype(int)
    exact = sizes * total / sizes.sum()
    quota = np.floor(exact).astype(int)
    order = (
        pd.DataFrame({"fraction": exact - quota, "size": sizes})
        .rename_axis("stratum")
        .reset_index()
        .sort_values(["fraction", "size", "stratum"], ascending=[False, False, True])
    )
    for stratum in order["stratum"][: total - quota.sum()]:
        quota[stratum] += 1
    return quota


def draw_call_list(
    features: pd.DataFrame,
    segments: pd.DataFrame,
    *,
    month_segments: list[str],
    excluded: pd.DataFrame,
    config: dict,
) -> pd.DataFrame:
    """Draw the month's sample: who is called and who is held back, per segment.

    Parameters
    ----------
    features : DataFrame
        From :func:`build_customer_features` (``customer_key`` and the
        ``sampling.stratify_by`` column).
    segments : DataFrame
        From :func:`assign_segments`.
    month_segments : list of str
        The segments to call, in priority order: a customer in two of them is drawn
        only for the first that picks them.
    excluded : DataFrame
        From :func:`find_exclusions`: ``customer_key``, ``reason``.
    config : dict
        The study configuration; reads ``sampling``.

    Returns
    -------
    DataFrame
        ``customer_key``, ``segment``, ``arm`` (``called`` or ``holdout``),
        ``stratum`` (``<segment>/<stratify_by value>``), sorted by segment, arm and
        key.

    Raises
    ------
    HeardInputError
        When a month names a segment no rule defines.

    Notes
    -----
    Each segment is sampled with its own random stream, seeded from
    ``sampling.seed`` and the segment's name, from customers sorted by key, so the
    same inputs and seed always give the same list. Strata get proportional
    shares (largest remainder). In ``sampling.holdout_segments`` the draw is
    ``ceil(n / (1 - holdout_share))`` customers, of whom a random
    ``holdout_share`` are kept back, stratum by stratum.
    """
    sampling = config["sampling"]
    n_called = count_to_dial(
        target_conversations=int(sampling["target_conversations"]),
        expected_connect_rate=float(sampling["expected_connect_rate"]),
    )
    unavailable = _as_text(excluded["customer_key"])
    stratify_by = sampling.get("stratify_by") or "segment"
    strata = pl.DataFrame(
        {
            "customer_key": _as_text(features["customer_key"]),
            "stratum": _as_text(features[stratify_by].astype("string")),
        }
    )
    known = set(segments["segment"].unique()) | _rule_names(config)
    drawn = []
    for segment in month_segments:
        if segment not in known:
            raise HeardInputError(
                "study.yml",
                column="months.segments",
                expected="segment names defined under segments.rules",
                found=segment,
                fix=f"use one of {sorted(_rule_names(config))}",
            )

        # Eligible members, sorted by key so row order never changes the draw.
        members = segments.loc[segments["segment"] == segment, "customer_key"]
        pool = members[~_is_in(members, unavailable)].drop_duplicates()
        sample = _draw_segment(
            pool.astype("string").sort_values(ignore_index=True),
            strata,
            segment=segment,
            n_called=n_called,
            config=config,
        )
        unavailable = pl.concat([unavailable, _as_text(sample["customer_key"])])
        drawn.append(sample)
    columns = ["customer_key", "segment", "arm", "stratum"]
    if not drawn:
        return pd.DataFrame(columns=columns)
    return pd.concat(drawn, ignore_index=True)[columns]


def count_to_draw(segment: str, *, config: dict) -> int:
    """Return how many customers a segment's draw wants, hold-out included.

    ``ceil(target / connect rate)`` to call, divided by ``1 - holdout_share``
    (rounded up) when the segment is in ``sampling.holdout_segments``.
    """
    sampling = config["sampling"]
    n_called = count_to_dial(
        target_conversations=int(sampling["target_conversations"]),
        expected_connect_rate=float(sampling["expected_connect_rate"]),
    )
    share = float(sampling.get("holdout_share") or 0.0)
    if segment in (sampling.get("holdout_segments") or []) and share > 0:
        return math.ceil(n_called / (1 - share))
    return n_called


def _rule_names(config: dict) -> set:
    return {n for n, rule in config["segments"].get("rules", {}).items() if rule}


def _draw_segment(
    pool: pd.Series,
    strata: pl.DataFrame,
    *,
    segment: str,
    n_called: int,
    config: dict,
) -> pd.DataFrame:
    sampling = config["sampling"]
    share = float(sampling.get("holdout_share") or 0.0)
    has_holdout = segment in (sampling.get("holdout_segments") or []) and share > 0
    n_total = count_to_draw(segment, config=config)
    if len(pool) < n_total:
        log.warning(
            "segment %s has %d eligible customers, fewer than the %d wanted",
            segment,
            len(pool),
            n_total,
        )
        n_total = len(pool)
        n_called = round(n_total * (1 - share)) if has_holdout else n_total

    # Look the pool's strata up in polars: a pandas index of the Arrow keys
    # would make a Python string of every customer's.
    found = pl.DataFrame({"customer_key": _as_text(pool)}).join(
        strata, on="customer_key", how="left", maintain_order="left"
    )
    frame = pd.DataFrame(
        {
            "customer_key": pool,
            "stratum": segment + "/" + found["stratum"].fill_null("none").to_numpy(),
        }
    )

    # One random stream per segment: adding a segment never reshuffles another.
    seed = [int(sampling["seed"]), zlib.crc32(segment.encode("utf-8"))]
    rng = np.random.default_rng(seed)
    sizes = frame.groupby("stratum").size()
    totals = allocate_proportionally(n_total, sizes)
    called = allocate_proportionally(n_called, totals)
    picked = []
    for stratum, group in frame.groupby("stratum", sort=True):
        order = rng.permutation(len(group))[: totals[stratum]]
        chosen = group.iloc[order]
        arms = np.where(np.arange(len(chosen)) < called[stratum], "called", "holdout")
        picked.append(chosen.assign(arm=arms))
    if not picked:
        return pd.DataFrame(columns=["customer_key", "segment", "arm", "stratum"])
    sample = pd.concat(picked).assign(segment=segment)
    return sample.sort_values(["arm", "customer_key"], ignore_index=True)


def find_exclusions(
    features: pd.DataFrame,
    *,
    called_before: set | frozenset = frozenset(),
    do_not_call_keys: set | frozenset = frozenset(),
    do_not_call_phones: set | frozenset = frozenset(),
    phones: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return the customers who may not be called, with the first reason found.

    Parameters
    ----------
    features : DataFrame
        ``customer_key``, ``has_consent``, ``is_do_not_call``, ``is_callable``.
    called_before : set
        Keys called (or held back) in an earlier month.
    do_not_call_keys : set
        Keys who asked during an earlier call never to be called again.
    do_not_call_phones : set
        E.164 numbers on the do-not-call list.
    phones : DataFrame, optional
        ``customer_key``, ``phone_e164``, to match `do_not_call_phones`.

    Returns
    -------
    DataFrame
        ``customer_key``, ``reason``: one of ``called_before``, ``do_not_call``,
        ``no_consent``, ``not_callable``, checked in that order.
    """
    dnc = features["is_do_not_call"].astype(bool) | _is_in(
        features["customer_key"], do_not_call_keys
    )
    if phones is not None and do_not_call_phones:
        listed = phones.loc[
            _is_in(phones["phone_e164"], do_not_call_phones), "customer_key"
        ]
        dnc = dnc | _is_in(features["customer_key"], listed)
    reasons = np.select(
        [
            _is_in(features["customer_key"], called_before),
            dnc,
            ~features["has_consent"].astype(bool),
            ~features["is_callable"].astype(bool),
        ],
        ["called_before", "do_not_call", "no_consent", "not_callable"],
        default="",
    )

    # Keep the excluded before making text of their reasons.
    is_excluded = reasons != ""
    return pd.DataFrame(
        {
            "customer_key": features["customer_key"][is_excluded],
            "reason": reasons[is_excluded],
        }
    ).reset_index(drop=True)


def _is_in(values: pd.Series, members) -> np.ndarray:
    """Return whether each text value is among `members` (a set or a pandas or
    polars Series), in polars.

    pandas' ``isin`` on Arrow strings makes a pyarrow scalar of every member, and
    an object index a Python string of every value; polars reads the Arrow text
    as it is."""
    found = _as_text(values).is_in(_as_text(members).implode())
    return found.fill_null(False).to_numpy()


def _as_text(values) -> pl.Series:
    """Return `values` (a set, or a pandas or polars Series) as polars text."""
    if isinstance(values, pl.Series):
        return values.cast(pl.String)
    if isinstance(values, pd.Series):
        return pl.from_pandas(values).cast(pl.String)
    return pl.Series(list(values), dtype=pl.String)


def load_called_before(study: Study, month: str, *, phones: pd.DataFrame) -> set:
    """Return the keys of everyone called or held back before `month`.

    Parameters
    ----------
    study : Study
        The study.
    month : str
        ``YYYY-MM``; only earlier months count.
    phones : DataFrame
        ``customer_key``, ``phone_e164``: matches a phone system's log, which has
        numbers rather than references.

    Returns
    -------
    set
        Keys from earlier raw call logs (``customer_key`` or ``reference``
        column, or a phone column matched on E.164) and earlier processed
        ``assignment_customer.parquet`` files.
    """
    check_month(month)
    keys: set = set()
    region = study.config["study"].get("default_country") or "US"
    calls_root = study.raw("calls")
    for folder in sorted(calls_root.glob("*")) if calls_root.is_dir() else []:
        if not folder.is_dir() or not folder.name < month:
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in (".csv", ".xlsx"):
                keys |= _keys_in_call_log(path, phones, region=region)
    if study.processed_root.is_dir():
        for path in study.processed_root.glob("*/assignment_customer.parquet"):
            if path.parent.name < month:
                keys |= set(pd.read_parquet(path, columns=["customer_key"]).iloc[:, 0])
    log.info("%d customers were called or held back before %s", len(keys), month)
    return keys


def _keys_in_call_log(path: Path, phones: pd.DataFrame, *, region: str) -> set:
    with files.open_raw(path) as handle:
        if path.suffix.lower() == ".xlsx":
            log_rows = pd.read_excel(handle, dtype=str)
        else:
            text = handle.read().decode("utf-8-sig")
            header = text.partition("\n")[0]
            delimiter = max(",;\t", key=header.count)
            log_rows = pd.read_csv(io.StringIO(text), dtype=str, sep=delimiter)
    log_rows.columns = [str(c).strip().casefold() for c in log_rows.columns]
    for column in ("customer_key", "reference"):
        if column in log_rows:
            return set(log_rows[column].dropna().str.strip().str.lstrip("'"))
    for column in ("phone_e164", "phone", "phone_number", "to", "number"):
        if column in log_rows:
            from helpers.phones import normalise_phones

            numbers = log_rows[column].dropna()
            regions = pd.Series(region, index=numbers.index)
            parsed = normalise_phones(numbers, regions)["phone_e164"].dropna()
            matched = phones["phone_e164"].isin(set(parsed))
            return set(phones.loc[matched, "customer_key"])
    raise HeardInputError(
        path,
        row=1,
        expected="a customer_key, reference or phone column",
        found=list(log_rows.columns),
        fix="keep the call list's reference column when filling it in",
    )


def load_views(study: Study, month: str) -> pd.DataFrame | None:
    """Return the month's product views, or None when no views export is given.

    Parameters
    ----------
    study : Study
        The study.
    month : str
        ``YYYY-MM``.

    Returns
    -------
    DataFrame or None
        ``email``, ``product``, ``viewed_at`` (UTC) from every CSV in
        ``exports/<month>/views/`` (or in ``exports/<month>/`` itself) whose
        header holds exactly those three columns.

    Notes
    -----
    The ``views/`` sub-folder keeps the file away from the store-export reader,
    which refuses headers it does not know.
    """
    folder = study.raw("exports", check_month(month))
    found = []
    for path in sorted([*folder.glob("*.csv"), *folder.glob("views/*.csv")]):
        with files.open_raw(path) as handle:
            header = pd.read_csv(handle, nrows=0, encoding="utf-8-sig").columns
        names = [str(c).strip().casefold() for c in header]
        if sorted(names) != sorted(VIEW_COLUMNS):
            continue
        with files.open_raw(path) as handle:
            views = pd.read_csv(handle, dtype=str, encoding="utf-8-sig")
        views.columns = names
        views["viewed_at"] = pd.to_datetime(views["viewed_at"], utc=True)
        found.append(views)
        log.info("read %d product views from %s", len(views), path.name)
    return pd.concat(found, ignore_index=True) if found else None


# -------------------------------------------------------------------- call list


def calling_window(
    timezone: str, day: date, *, start: str = "09:00", end: str = "20:00"
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Return the calling window of one day in a customer's time zone, in UTC.

    Parameters
    ----------
    timezone : str
        An IANA zone such as ``Europe/London``.
    day : date
        The customer's local calendar day.
    start, end : str
        ``HH:MM`` local times.

    Returns
    -------
    tuple of Timestamp
        ``(start_utc, end_utc)``, tz-aware; clock changes are applied.

    Raises
    ------
    HeardInputError
        When the zone is not an IANA time zone.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise HeardInputError(
            "customers",
            column="timezone",
            expected="an IANA time zone such as Europe/London",
            found=timezone,
            fix="correct the customer's country or the study's timezone",
        ) from error
    bounds = [
        datetime.combine(day, time.fromisoformat(clock), tzinfo=zone)
        for clock in (start, end)
    ]
    return tuple(pd.Timestamp(b).tz_convert("UTC") for b in bounds)


def format_calling_window(
    timezone: str,
    day: date,
    *,
    start: str,
    end: str,
    show_in: str,
) -> str:
    """Return the window as another zone's clock shows it: ``"04:00-15:00"``.

    Parameters
    ----------
    timezone : str
        The customer's IANA zone.
    day : date
        The customer's local day.
    start, end : str
        The local window, ``HH:MM``.
    show_in : str
        The zone to show it in (the store's, where callers sit).

    Returns
    -------
    str
        ``HH:MM-HH:MM``, with ``(+1d)`` or ``(-1d)`` when the window crosses a
        day boundary in `show_in`.
    """
    low, high = calling_window(timezone, day, start=start, end=end)
    zone = ZoneInfo(show_in)
    shown = [stamp.tz_convert(zone) for stamp in (low, high)]
    text = [stamp.strftime("%H:%M") for stamp in shown]
    for position, stamp in enumerate(shown):
        shift = (stamp.date() - day).days
        if shift:
            text[position] += f" ({shift:+d}d)"
    return f"{text[0]}-{text[1]}"


def format_call_list(
    assignment: pd.DataFrame,
    customers: pd.DataFrame,
    *,
    month: str,
    config: dict,
) -> pd.DataFrame:
    """Return the sheet callers fill in, holdout rows included but flagged.

    Parameters
    ----------
    assignment : DataFrame
        From :func:`draw_call_list`.
    customers : DataFrame
        The deduplicated customers with personal details: ``customer_key``,
        ``first_name``, ``last_name``, ``phone_e164``, ``phone_national``,
        ``phone_extension``, ``timezone`` and, when known,
        ``is_timezone_assumed``.
    month : str
        ``YYYY-MM``; its block gives ``question`` and optional ``prompts``.
    config : dict
        The study configuration (``calling_window``, ``study.timezone``,
        ``segments.prompts``).

    Returns
    -------
    DataFrame
        ``customer_key``, ``arm``, ``stratum``, then the call-list columns:
        ``reference`` (= ``customer_key``), ``name``, ``phone_e164``,
        ``phone_national``, ``extension``, ``local_timezone``,
        ``is_timezone_assumed`` (True where neither the number nor the country
        gave the zone and the store's stands in: the caller should check the
        customer's local time), ``calling_window_local``,
        ``calling_window_store`` (the store's clock on the 15th of the month),
        ``segment``, ``question``, ``prompts`` and the empty caller columns.
        Holdout rows carry no name or phone.
    """
    window = config["calling_window"]
    store_zone = config["study"]["timezone"]
    month_block = config.get("months", {}).get(month, {}) or {}
    day = date.fromisoformat(f"{month}-15")

    # Index only the drawn customers: a pandas index of every customer's Arrow
    # key would make a Python string of each.
    drawn = customers[_is_in(customers["customer_key"], assignment["customer_key"])]
    people = drawn.set_index("customer_key").reindex(assignment["customer_key"])
    zones = people["timezone"].astype("string")
    known = zones.map(_is_zone, na_action="ignore").fillna(False).astype(bool)
    zones = zones.where(known, store_zone)

    # Flag the zones neither the number nor the country gave: callers check them.
    assumed = ~known
    if "is_timezone_assumed" in people:
        flags = people["is_timezone_assumed"].astype("boolean").fillna(True)
        assumed = assumed | flags.astype(bool)
    if assumed.any():
        log.warning(
            "%d drawn customers have no time zone from their number or country; "
            "the store's (%s) is shown and is_timezone_assumed is True",
            int(assumed.sum()),
            store_zone,
        )
    store_windows = {
        zone: format_calling_window(
            zone, day, start=window["start"], end=window["end"], show_in=store_zone
        )
        for zone in zones.unique()
    }
    is_called = (assignment["arm"] == "called").to_numpy()
    names = people["first_name"].fillna("") + " " + people["last_name"].fillna("")
    call_list = pd.DataFrame(
        {
            "customer_key": assignment["customer_key"].to_numpy(),
            "arm": assignment["arm"].to_numpy(),
            "stratum": assignment["stratum"].to_numpy(),
            "reference": assignment["customer_key"].to_numpy(),
            "name": names.str.strip().where(is_called).to_numpy(),
            "phone_e164": people["phone_e164"].where(is_called).to_numpy(),
            "phone_national": people["phone_national"].where(is_called).to_numpy(),
            "extension": people["phone_extension"].where(is_called).to_numpy(),
            "local_timezone": zones.to_numpy(),
            "is_timezone_assumed": assumed.to_numpy(),
            "calling_window_local": f"{window['start']}-{window['end']}",
            "calling_window_store": zones.map(store_windows).to_numpy(),
            "segment": assignment["segment"].to_numpy(),
            "question": month_block.get("question"),
            "prompts": [
                format_prompts(s, month_block=month_block, config=config)
                for s in assignment["segment"]
            ],
        }
    )
    for column in CALLER_COLUMNS:
        call_list[column] = pd.Series(pd.NA, index=call_list.index, dtype="string")
    return call_list[PLAN_COLUMNS]


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def format_prompts(segment: str, *, month_block: dict, config: dict) -> str:
    """Return the prompts for one segment as one line.

    The month's own ``prompts`` (a list, or a mapping by segment) win; otherwise
    the interview guide of the calls step (``calls.guide.segment_prompts`` for the
    segment, else ``calls.guide.prompts``).
    """
    prompts = month_block.get("prompts")
    if isinstance(prompts, dict):
        prompts = prompts.get(segment) or prompts.get("default")
    if not prompts:
        guide = (config.get("calls") or {}).get("guide") or {}
        prompts = (guide.get("segment_prompts") or {}).get(segment) or guide.get(
            "prompts"
        )
    return " / ".join(str(p) for p in prompts or [])


# ------------------------------------------------------------------ entry points


@dataclass(frozen=True)
class SegmentPlan:
    """Everything step 01 derives for one month, before anything is written."""

    study: Study
    month: str
    as_of: pd.Timestamp
    exports: object
    has_views: bool
    features: pd.DataFrame
    segments: pd.DataFrame
    sizes: pd.DataFrame
    month_segments: list
    excluded: pd.DataFrame
    assignment: pd.DataFrame
    call_list: pd.DataFrame


def prepare_segment_plan(study: str | Path | Study, month: str) -> SegmentPlan:
    """Read the month's exports and derive features, segments and the sample.

    Parameters
    ----------
    study : str, Path or Study
        A study name, raw folder, or loaded study.
    month : str
        ``YYYY-MM``: exports are read from ``exports/<month>/`` and days are
        counted to the month's first day (UTC).

    Returns
    -------
    SegmentPlan
        Features, segments, sizes, exclusions, assignment and call list. Writes
        nothing.

    Raises
    ------
    HeardInputError
        From the readers, or when a rule or a month's segment is unknown.
    """
    from helpers.exports import load_do_not_call, load_store_exports

    study = study if isinstance(study, Study) else load_study(study)
    check_month(month)
    config = study.config
    as_of = pd.Timestamp(f"{month}-01", tz="UTC")

    # Read and derive per-customer features and segments.
    exports = load_store_exports(study, month)
    views = load_views(study, month)
    features = build_customer_features(exports, as_of=as_of, config=config, views=views)
    has_views = views is not None
    segments = assign_segments(features, config=config, has_views=has_views)
    sizes = tally_segments(segments, config=config, has_views=has_views)

    # Exclude earlier months' customers, do-not-call and the uncallable.
    phones = exports.customers[["customer_key", "phone_e164"]]
    listed = load_do_not_call(study, before=month)
    excluded = find_exclusions(
        features,
        called_before=load_called_before(study, month, phones=phones),
        do_not_call_keys=set(listed["customer_key"].dropna()),
        do_not_call_phones=set(listed["phone_e164"].dropna()),
        phones=phones,
    )

    # Draw the sample and lay out the sheet for callers.
    month_segments = study.month_config(month).get("segments") or list(
        config["sampling"].get("segments") or []
    )
    assignment = draw_call_list(
        features,
        segments,
        month_segments=month_segments,
        excluded=excluded,
        config=config,
    )
    call_list = format_call_list(
        assignment, exports.customers, month=month, config=config
    )
    return SegmentPlan(
        study, month, as_of, exports, has_views, features, segments, sizes,
        list(month_segments), excluded, assignment, call_list,
    )  # fmt: skip


def plan_call_list(study: str | Path | Study, month: str) -> pd.DataFrame:
    """Return the month's call list without writing anything.

    Parameters
    ----------
    study : str, Path or Study
        A study name, raw folder, or loaded study.
    month : str
        ``YYYY-MM``.

    Returns
    -------
    DataFrame
        ``customer_key``, ``arm`` (``called``/``holdout``), ``stratum``,
        ``reference``, ``name``, ``phone_e164``, ``phone_national``,
        ``extension``, ``local_timezone``, ``is_timezone_assumed``,
        ``calling_window_local``, ``calling_window_store``, ``segment``,
        ``question``, ``prompts`` and the empty caller columns ``attempted_at``,
        ``caller``, ``outcome``, ``talk_seconds``, ``notes_file``,
        ``recovered_order``. Holdout rows have no name or phone.

    Raises
    ------
    HeardInputError
        When an export or the study config is wrong.

    Notes
    -----
    Same exports, config and seed give the same rows in the same order.
    """
    return prepare_segment_plan(study, month).call_list


def run_segment_step(study: str | Path | Study, month: str) -> dict:
    """Run step 01 and write its processed files (docs/study-folder.md, 01).

    Parameters
    ----------
    study : str, Path or Study
        A study name, raw folder, or loaded study.
    month : str
        ``YYYY-MM``.

    Returns
    -------
    dict
        The summary written to ``summary_segments.json`` (``n_customers``,
        ``n_orders``, ``segment_sizes``, ``n_call_list``, ``n_holdout``,
        ``phone_rule``, ``calling_window``, …) plus ``outputs``: the paths
        written, and ``plan``: the :class:`SegmentPlan` for display.

    Raises
    ------
    HeardInputError
        When an export or the study config is wrong.
    """
    plan = prepare_segment_plan(study, month)
    folder = plan.study.processed(month)
    outputs = {}

    # Tables without personal details.
    orders = attach_customer_keys(plan.exports.orders, plan.exports.customers)
    checkouts = attach_customer_keys(plan.exports.checkouts, plan.exports.customers)
    tables = {
        "orders_order.parquet": _pick(orders, ORDER_COLUMNS),
        "checkouts_checkout.parquet": _pick(checkouts, CHECKOUT_COLUMNS),
        "customers_customer.parquet": plan.features,
        "segments_customer.parquet": plan.segments,
        "assignment_customer.parquet": plan.assignment,
    }
    for name, table in tables.items():
        outputs[name] = files.save_parquet(table, folder / name)

    # The call list for callers: called customers only, with drop-downs.
    sheet = plan.call_list.loc[plan.call_list["arm"] == "called", CALL_LIST_COLUMNS]
    stem = f"call-list_customer_{month}"
    outputs["call_list_xlsx"] = files.save_xlsx(
        sheet,
        folder / f"{stem}.xlsx",
        sheet="call list",
        dropdowns={"outcome": list(OUTCOMES)},
        column_widths={"name": 24, "prompts": 60, "question": 40},
    )
    outputs["call_list_csv"] = files.save_csv(sheet, folder / f"{stem}.csv")
    outputs["rejected"] = files.save_csv(
        _rejected_rows(plan.exports), folder / f"rejected-rows_row_{month}.csv"
    )
    summary = summarise_plan(plan)
    outputs["summary"] = files.save_json(summary, folder / "summary_segments.json")
    return {**summary, "outputs": outputs, "plan": plan}


ORDER_COLUMNS = [
    "order_id", "customer_key", "created_at", "total", "subtotal", "n_items",
    "refunded_amount", "financial_status", "is_cancelled", "currency", "country",
]  # fmt: skip
CHECKOUT_COLUMNS = ["checkout_id", "customer_key", "created_at", "total", "n_items"]


def _pick(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[[c for c in columns if c in frame]].reset_index(drop=True)


def _rejected_rows(exports) -> pd.DataFrame:
    rejected = getattr(exports, "rejected", None)
    columns = ["file", "row", "column", "reason"]
    if rejected is None or len(rejected) == 0:
        return pd.DataFrame(columns=columns)
    return rejected[[c for c in columns if c in rejected]]


def summarise_plan(plan: SegmentPlan) -> dict:
    """Return the summary of step 01 for the report.

    Parameters
    ----------
    plan : SegmentPlan
        From :func:`prepare_segment_plan`.

    Returns
    -------
    dict
        ``n_customers``, ``n_orders`` (distinct orders not cancelled),
        ``segment_sizes`` (segment -> customers), ``month_segments``,
        ``n_to_dial`` (per segment, ``ceil(target / connect rate)``),
        ``n_call_list``, ``n_holdout``, ``n_excluded`` (reason -> customers in
        the month's segments), ``phone_rule``, ``calling_window``, ``as_of``,
        ``period`` (first and last order), ``seed``, ``n_rejected_rows``.
    """
    config = plan.study.config
    sampling = config["sampling"]
    orders = plan.exports.orders
    # Counted in polars, which reads the Arrow-backed ids without making Python
    # strings of them.
    is_placed = is_purchase(orders)
    placed = pl.from_pandas(orders["order_id"][is_placed.to_numpy()]).drop_nulls()
    in_month = plan.segments.loc[
        plan.segments["segment"].isin(plan.month_segments), "customer_key"
    ]
    excluded = plan.excluded[_is_in(plan.excluded["customer_key"], in_month)]
    arms = plan.assignment["arm"].value_counts()
    return {
        "n_customers": int(len(plan.features)),
        "n_orders": placed.n_unique(),
        "segment_sizes": dict(
            zip(plan.sizes["segment"], plan.sizes["n_customers"], strict=True)
        ),
        "month_segments": plan.month_segments,
        "n_to_dial": count_to_dial(
            target_conversations=int(sampling["target_conversations"]),
            expected_connect_rate=float(sampling["expected_connect_rate"]),
        ),
        "target_conversations": int(sampling["target_conversations"]),
        "expected_connect_rate": float(sampling["expected_connect_rate"]),
        "holdout_share": float(sampling.get("holdout_share") or 0),
        "seed": int(sampling["seed"]),
        "n_call_list": int(arms.get("called", 0)),
        "n_holdout": int(arms.get("holdout", 0)),
        "n_excluded": excluded["reason"].value_counts().sort_index().to_dict(),
        "phone_rule": config["phones"]["keep"],
        "calling_window": {
            "start": config["calling_window"]["start"],
            "end": config["calling_window"]["end"],
            "timezone": "customer's local",
        },
        "as_of": plan.as_of.isoformat(),
        "period": {
            "first_order_at": _iso(orders["created_at"].min()),
            "last_order_at": _iso(orders["created_at"].max()),
        },
        "n_rejected_rows": int(len(_rejected_rows(plan.exports))),
    }


def _iso(stamp) -> str | None:
    return None if pd.isna(stamp) else pd.Timestamp(stamp).isoformat()


# -------------------------------------------------------------------- display


def tally_phone_status(features: pd.DataFrame) -> pd.DataFrame:
    """Return customers per phone status and whether the keep rule calls them.

    Parameters
    ----------
    features : DataFrame
        ``phone_status``, ``is_callable``.

    Returns
    -------
    DataFrame
        ``phone_status``, ``is_callable``, ``n_customers``, largest first.
    """
    counts = features.groupby(["phone_status", "is_callable"]).size()
    counts = counts.rename("n_customers").reset_index()
    return counts.sort_values("n_customers", ascending=False, ignore_index=True)


def tally_exclusions(plan: SegmentPlan) -> pd.DataFrame:
    """Return, per month segment, members, exclusions by reason and the eligible.

    Parameters
    ----------
    plan : SegmentPlan
        From :func:`prepare_segment_plan`.

    Returns
    -------
    DataFrame
        ``segment``, ``n_members``, one ``n_<reason>`` column per exclusion
        reason, ``n_eligible``, ``n_wanted`` (called plus hold-out planned),
        ``n_called``, ``n_holdout``.
    """
    reasons = ["called_before", "do_not_call", "no_consent", "not_callable"]
    reason_of = plan.excluded.set_index("customer_key")["reason"]
    rows = []
    for segment in plan.month_segments:
        keys = plan.segments.loc[plan.segments["segment"] == segment, "customer_key"]
        found = keys.map(reason_of)
        drawn = plan.assignment.loc[plan.assignment["segment"] == segment, "arm"]
        row = {"segment": segment, "n_members": int(len(keys))}
        row |= {f"n_{r}": int((found == r).sum()) for r in reasons}
        row |= {
            "n_eligible": int(found.isna().sum()),
            "n_wanted": count_to_draw(segment, config=plan.study.config),
            "n_called": int((drawn == "called").sum()),
            "n_holdout": int((drawn == "holdout").sum()),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def tally_call_list(assignment: pd.DataFrame) -> pd.DataFrame:
    """Return the drawn customers per segment, stratum and arm (no personal data).

    Returns
    -------
    DataFrame
        ``segment``, ``stratum``, ``called``, ``holdout``.
    """
    counts = pd.crosstab(
        [assignment["segment"], assignment["stratum"]], assignment["arm"]
    ).reindex(columns=["called", "holdout"], fill_value=0)
    return counts.reset_index().rename_axis(columns=None)


def tally_rejected(rejected: pd.DataFrame) -> pd.DataFrame:
    """Return rejected raw rows per file, column and reason.

    Returns
    -------
    DataFrame
        ``file``, ``column``, ``reason``, ``n_rows``, largest first.
    """
    if rejected is None or len(rejected) == 0:
        return pd.DataFrame(columns=["file", "column", "reason", "n_rows"])
    counts = rejected.groupby(["file", "column", "reason"], dropna=False).size()
    counts = counts.rename("n_rows").reset_index()
    return counts.sort_values("n_rows", ascending=False, ignore_index=True)


def plot_segment_sizes(sizes: pd.DataFrame, *, month_segments: list[str]):
    """Plot customers per segment, the month's segments highlighted.

    Parameters
    ----------
    sizes : DataFrame
        From :func:`tally_segments`.
    month_segments : list of str
        The segments called this month.

    Returns
    -------
    Figure
        A horizontal bar chart; no title (the caption carries the takeaway).
    """
    from helpers.figures import CONTROL_GREY, PALETTE, new_figure

    figure, axes = new_figure(figsize=(6.4, 0.28 * len(sizes) + 1.0))
    colours = [
        PALETTE[0] if s in month_segments else CONTROL_GREY for s in sizes["segment"]
    ]
    axes.barh(sizes["segment"].map(format_segment), sizes["n_customers"], color=colours)
    axes.invert_yaxis()
    axes.set_xlabel("customers")
    axes.set_ylabel("")
    for position, value in enumerate(sizes["n_customers"]):
        axes.annotate(
            f"{value:,}", (value, position), xytext=(3, 0), textcoords="offset points",
            va="center", fontsize=8,
        )  # fmt: skip
    figure.tight_layout()
    return figure

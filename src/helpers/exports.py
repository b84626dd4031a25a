"""Store exports in, clean orders, line items, checkouts and customers out.

A study's ``exports/<YYYY-MM>/`` folder holds files exactly as a platform gave them.
Each file's platform and kind is recognised from its header (names compared
case-insensitively after stripping spaces and a byte-order mark):

- Shopify customers (current layout and the older import-template layout),
- Shopify orders (one row per line item; order fields only on an order's first row),
- Shopify abandoned checkouts (the orders layout; ``Name`` holds the checkout id),
- WooCommerce orders (Advanced Order Export's default columns; the Customer/Order
  CSV Export's one-row-per-item and one-row-per-order formats),
- any other CSV or XLSX whose columns ``exports.column_map`` in ``study.yml`` maps
  to Heard's names (see :data:`GENERIC_FIELDS`).

Big files are parsed by polars with every cell as text and only the needed columns
kept, typed and grouped there; pandas holds the (much smaller) results. (DuckDB's
CSV reader took about three times the CPU of polars' on a 79-column Shopify export
of 1M rows, so polars does the reading.) Rows that cannot be used are kept in
a ``rejected`` table (file, spreadsheet row, column, reason) without their values.

Orders carry two columns beyond the documented schema: ``customer_key`` (the
deduplicated customer the order belongs to) and ``is_return`` (True for a credit
note of a generic export, whose amount is in ``refunded_amount`` and whose
``total`` is 0). Checkouts carry ``customer_key`` as well.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import polars as pl

from helpers import phones, privacy
from helpers.errors import HeardInputError
from helpers.files import open_raw, require_workbook
from helpers.frames import number_rows_by_group
from helpers.schemas import CHECKOUTS, CUSTOMERS, LINES, ORDERS, validate
from helpers.study import Study, check_month

log = logging.getLogger(__name__)
T = TypeVar("T")  # what a batch typing function returns

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t")
EXPORT_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx")

# Heard's names a generic export can map (exports.column_map: Heard name -> column).
GENERIC_FIELDS = (
    "order_id", "email", "customer_id", "created_at", "total", "subtotal",
    "refunded_amount", "financial_status", "cancelled_at", "currency", "country",
    "phone", "name", "first_name", "last_name", "product", "sku", "quantity",
    "price", "accepts_marketing", "accepts_sms_marketing", "zip", "tags",
)  # fmt: skip
ALL_FIELDS = (*GENERIC_FIELDS, "line_items")
TEXT_FIELDS = ("order_id", "customer_id", "phone", "zip", "email", "sku")

ORDER_COLUMNS = [
    "order_id", "email", "customer_id", "created_at", "total", "subtotal",
    "refunded_amount", "financial_status", "is_cancelled", "currency", "n_items",
    "country", "phone_raw", "name", "source_file", "accepts_marketing", "is_return",
]  # fmt: skip
LINE_COLUMNS = ["order_id", "product", "sku", "quantity", "price"]
CHECKOUT_COLUMNS = [
    "checkout_id", "email", "created_at", "total", "n_items", "phone_raw",
    "country", "name", "accepts_marketing", "source_file",
]  # fmt: skip
CUSTOMER_COLUMNS = [
    "customer_key", "email", "first_name", "last_name", "country", "zip",
    "phone_e164", "phone_national", "phone_extension", "phone_status",
    "is_callable", "timezone", "is_timezone_assumed", "accepts_email_marketing",
    "accepts_sms_marketing", "has_consent", "is_do_not_call", "tags", "n_merged",
]  # fmt: skip
REJECTED_COLUMNS = ["file", "row", "column", "reason"]
TABLE_SCHEMAS = {"orders": ORDERS, "lines": LINES, "checkouts": CHECKOUTS}


# --------------------------------------------------------------------------------
# Known layouts
# --------------------------------------------------------------------------------

SHOPIFY_ORDERS_79 = [
    "Name",
    "Email",
    "Financial Status",
    "Paid at",
    "Fulfillment Status",
    "Fulfilled at",
    "Accepts Marketing",
    "Currency",
    "Subtotal",
    "Shipping",
    "Taxes",
    "Total",
    "Discount Code",
    "Discount Amount",
    "Shipping Method",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem compare at price",
    "Lineitem sku",
    "Lineitem requires shipping",
    "Lineitem taxable",
    "Lineitem fulfillment status",
    "Billing Name",
    "Billing Street",
    "Billing Address1",
    "Billing Address2",
    "Billing Company",
    "Billing City",
    "Billing Zip",
    "Billing Province",
    "Billing Country",
    "Billing Phone",
    "Shipping Name",
    "Shipping Street",
    "Shipping Address1",
    "Shipping Address2",
    "Shipping Company",
    "Shipping City",
    "Shipping Zip",
    "Shipping Province",
    "Shipping Country",
    "Shipping Phone",
    "Notes",
    "Note Attributes",
    "Cancelled at",
    "Payment Method",
    "Payment Reference",
    "Refunded Amount",
    "Vendor",
    "Outstanding Balance",
    "Employee",
    "Location",
    "Device ID",
    "Id",
    "Tags",
    "Risk Level",
    "Source",
    "Lineitem discount",
    "Tax 1 Name",
    "Tax 1 Value",
    "Tax 2 Name",
    "Tax 2 Value",
    "Tax 3 Name",
    "Tax 3 Value",
    "Tax 4 Name",
    "Tax 4 Value",
    "Tax 5 Name",
    "Tax 5 Value",
    "Phone",
    "Receipt Number",
    "Duties",
    "Billing Province Name",
    "Shipping Province Name",
    "Payment ID",
    "Payment Terms Name",
    "Next Payment Due At",
    "Payment References",
]
# The older 70-column layout: the current one without the columns Shopify added
# for point-of-sale (Outstanding Balance, Employee, Location, Device ID), duties
# and payment terms (Duties, Payment ID, Payment Terms Name, Next Payment Due At,
# Payment References). Public copies of older exports show the same order with
# those columns absent (66 columns ending at "Tax 5 Value"; 73 columns ending at
# "Next Payment Due At"); any of them is read by the column names Heard needs.
SHOPIFY_ORDERS_OLD_ABSENT = (
    "Outstanding Balance", "Employee", "Location", "Device ID", "Duties",
    "Payment ID", "Payment Terms Name", "Next Payment Due At", "Payment References",
)  # fmt: skip
SHOPIFY_ORDERS_70 = [c for c in SHOPIFY_ORDERS_79 if c not in SHOPIFY_ORDERS_OLD_ABSENT]

SHOPIFY_CUSTOMERS = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Default Address Company",
    "Default Address Address1",
    "Default Address Address2",
    "Default Address City",
    "Default Address Province Code",
    "Default Address Country Code",
    "Default Address Zip",
    "Default Address Phone",
    "Phone",
    "Accepts SMS Marketing",
    "Total Spent",
    "Total Orders",
    "Note",
    "Tax Exempt",
    "Tags",
]
SHOPIFY_CUSTOMERS_OLD = [
    "First Name",
    "Last Name",
    "Email",
    "Company",
    "Address1",
    "Address2",
    "City",
    "Province",
    "Province Code",
    "Country",
    "Country Code",
    "Zip",
    "Phone",
    "Accepts Marketing",
    "Total Spent",
    "Total Orders",
    "Tags",
    "Note",
    "Tax Exempt",
]

WOO_ALGOL = [
    "Order Number",
    "Order Status",
    "Order Date",
    "Customer Note",
    "First Name (Billing)",
    "Last Name (Billing)",
    "Company (Billing)",
    "Address 1&2 (Billing)",
    "City (Billing)",
    "State Code (Billing)",
    "Postcode (Billing)",
    "Country Code (Billing)",
    "Email (Billing)",
    "Phone (Billing)",
    "First Name (Shipping)",
    "Last Name (Shipping)",
    "Address 1&2 (Shipping)",
    "City (Shipping)",
    "State Code (Shipping)",
    "Postcode (Shipping)",
    "Country Code (Shipping)",
    "SKU",
    "Item #",
    "Item Name",
    "Quantity (- Refund)",
    "Item Cost",
    "Coupon Code",
    "Discount Amount",
    "Discount Amount Tax",
    "Payment Method Title",
    "Cart Discount Amount",
    "Order Subtotal Amount",
    "Shipping Method Title",
    "Order Shipping Amount",
    "Order Refund Amount",
    "Order Total Amount",
    "Order Total Tax Amount",
]
_WOO_SKYVERGE_HEAD = [
    "order_id",
    "order_number",
    "order_number_formatted",
    "date",
    "status",
    "shipping_total",
    "shipping_tax_total",
    "fee_total",
    "fee_tax_total",
    "tax_total",
    "discount_total",
    "order_total",
    "refunded_total",
    "order_currency",
    "payment_method",
    "shipping_method",
    "customer_id",
    "billing_first_name",
    "billing_last_name",
    "billing_company",
    "billing_email",
    "billing_phone",
    "billing_address_1",
    "billing_address_2",
    "billing_postcode",
    "billing_city",
    "billing_state",
    "billing_country",
    "shipping_first_name",
    "shipping_last_name",
    "shipping_address_1",
    "shipping_address_2",
    "shipping_postcode",
    "shipping_city",
    "shipping_state",
    "shipping_country",
    "shipping_company",
    "customer_note",
]
WOO_SKYVERGE_ORDER = [
    *_WOO_SKYVERGE_HEAD,
    *[
        "line_items",
        "shipping_items",
        "fee_items",
        "tax_items",
        "coupon_items",
        "refunds",
        "order_notes",
        "download_permissions_granted",
    ],
]
WOO_SKYVERGE_ITEM = [
    *[c for c in _WOO_SKYVERGE_HEAD if c != "order_number_formatted"],
    *[
        "item_id",
        "item_product_id",
        "item_name",
        "item_sku",
        "item_price",
        "item_quantity",
        "item_subtotal",
        "item_subtotal_tax",
        "item_total",
        "item_total_tax",
        "item_refunded",
        "item_refunded_qty",
        "item_meta",
        "shipping_items",
        "fee_items",
        "tax_items",
        "coupon_items",
        "order_notes",
        "download_permissions_granted",
    ],
]


@dataclass(frozen=True)
class Layout:
    """A known export layout: which platform and kind, and where Heard's fields are.

    ``fields`` maps a Heard name to the file's column names to try in turn (the
    first present and non-blank one wins); ``required`` lists the Heard names
    whose column must be in the header for the layout to match.
    """

    name: str
    platform: str
    kind: str
    columns: tuple[str, ...]
    fields: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    options: dict = field(default_factory=dict)


SHOPIFY_ORDER_FIELDS = {
    "order_id": ("Name",),
    "email": ("Email",),
    "created_at": ("Created at",),
    "total": ("Total",),
    "subtotal": ("Subtotal",),
    "refunded_amount": ("Refunded Amount",),
    "financial_status": ("Financial Status",),
    "cancelled_at": ("Cancelled at",),
    "currency": ("Currency",),
    "country": ("Billing Country", "Shipping Country"),
    "phone": ("Billing Phone", "Phone", "Shipping Phone"),
    "name": ("Billing Name", "Shipping Name"),
    "product": ("Lineitem name",),
    "sku": ("Lineitem sku",),
    "quantity": ("Lineitem quantity",),
    "price": ("Lineitem price",),
    "accepts_marketing": ("Accepts Marketing",),
}
SHOPIFY_ORDER_REQUIRED = ("order_id", "email", "created_at", "total", "quantity")

LAYOUTS = (
    Layout(
        "shopify-orders-79", "shopify", "orders", tuple(SHOPIFY_ORDERS_79),
        SHOPIFY_ORDER_FIELDS, SHOPIFY_ORDER_REQUIRED,
    ),
    Layout(
        "shopify-orders-70", "shopify", "orders", tuple(SHOPIFY_ORDERS_70),
        SHOPIFY_ORDER_FIELDS, SHOPIFY_ORDER_REQUIRED,
    ),
    Layout(
        "shopify-customers", "shopify", "customers", tuple(SHOPIFY_CUSTOMERS),
        {
            "customer_id": ("Customer ID",),
            "first_name": ("First Name",),
            "last_name": ("Last Name",),
            "email": ("Email",),
            "accepts_marketing": ("Accepts Email Marketing",),
            "accepts_sms_marketing": ("Accepts SMS Marketing",),
            "country": ("Default Address Country Code",),
            "zip": ("Default Address Zip",),
            "phone": ("Phone", "Default Address Phone"),
            "tags": ("Tags",),
        },
        ("customer_id", "email", "accepts_marketing"),
    ),
    Layout(
        "shopify-customers-old", "shopify", "customers",
        tuple(SHOPIFY_CUSTOMERS_OLD),
        {
            "first_name": ("First Name",),
            "last_name": ("Last Name",),
            "email": ("Email",),
            "accepts_marketing": ("Accepts Marketing",),
            "country": ("Country Code", "Country"),
            "zip": ("Zip",),
            "phone": ("Phone",),
            "tags": ("Tags",),
        },
        ("email", "accepts_marketing", "country"),
    ),
    Layout(
        "woocommerce-advanced-order-export", "woocommerce", "orders",
        tuple(WOO_ALGOL),
        {
            "order_id": ("Order Number", "Order ID"),
            "email": ("Email (Billing)", "Customer User Email"),
            "customer_id": ("Customer User ID",),
            "created_at": ("Order Date",),
            "total": ("Order Total Amount",),
            "subtotal": ("Order Subtotal Amount",),
            "refunded_amount": ("Order Refund Amount",),
            "financial_status": ("Order Status",),
            "currency": ("Currency",),
            "country": ("Country Code (Billing)", "Country Code (Shipping)"),
            "phone": ("Phone (Billing)", "Phone (Shipping)"),
            "first_name": ("First Name (Billing)",),
            "last_name": ("Last Name (Billing)",),
            "name": ("Full Name (Billing)",),
            "product": ("Item Name",),
            "sku": ("SKU",),
            "quantity": ("Quantity (- Refund)", "Quantity"),
            "price": ("Item Cost",),
        },
        ("order_id", "created_at", "total", "product"),
    ),
    Layout(
        "woocommerce-csv-export-item", "woocommerce", "orders",
        tuple(WOO_SKYVERGE_ITEM),
        {
            "order_id": ("order_id",),
            "email": ("billing_email",),
            "customer_id": ("customer_id",),
            "created_at": ("date",),
            "total": ("order_total",),
            "refunded_amount": ("refunded_total",),
            "financial_status": ("status",),
            "currency": ("order_currency",),
            "country": ("billing_country", "shipping_country"),
            "phone": ("billing_phone",),
            "first_name": ("billing_first_name",),
            "last_name": ("billing_last_name",),
            "product": ("item_name",),
            "sku": ("item_sku",),
            "quantity": ("item_quantity",),
            "price": ("item_price",),
        },
        ("order_id", "created_at", "total", "product"),
    ),
    Layout(
        "woocommerce-csv-export-order", "woocommerce", "orders",
        tuple(WOO_SKYVERGE_ORDER),
        {
            "order_id": ("order_id",),
            "email": ("billing_email",),
            "customer_id": ("customer_id",),
            "created_at": ("date",),
            "total": ("order_total",),
            "refunded_amount": ("refunded_total",),
            "financial_status": ("status",),
            "currency": ("order_currency",),
            "country": ("billing_country", "shipping_country"),
            "phone": ("billing_phone",),
            "first_name": ("billing_first_name",),
            "last_name": ("billing_last_name",),
            "line_items": ("line_items",),
        },
        ("order_id", "created_at", "total", "line_items"),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class FileFormat:
    """How one raw file was read: its encoding, delimiter and header."""

    path: Path
    encoding: str
    delimiter: str
    header: tuple[str, ...]


@dataclass(frozen=True)
class StoreExports:
    """One month's exports, read and cleaned.

    Attributes
    ----------
    orders : DataFrame
        One row per order; columns in :data:`ORDER_COLUMNS` plus ``customer_key``.
        Text columns are pandas ``str`` (NaN where blank), as for customers.
    lines : DataFrame
        One row per line item: ``order_id``, ``product``, ``sku``, ``quantity``,
        ``price``. ``product`` and ``sku`` are categories (from a line-item
        export; a WooCommerce one's packed items give text): each name is held
        once, not on each of its rows.
    customers : DataFrame
        One row per deduplicated customer; columns in :data:`CUSTOMER_COLUMNS`.
        Text columns are pandas ``str`` (Arrow-backed; NaN where blank), not
        objects holding None: as polars builds them, at a third of the memory.
    checkouts : DataFrame
        One row per abandoned checkout; :data:`CHECKOUT_COLUMNS` plus
        ``customer_key``.
    rejected : DataFrame
        ``file``, ``row`` (header = 1), ``column``, ``reason``; no raw values.
    read_log : DataFrame
        One row per file: ``file``, ``platform``, ``kind``, ``layout``,
        ``encoding``, ``delimiter``, ``decimal`` (the decimal mark),
        ``dates`` (``ISO``, ``day first``, ``month first`` or the declared
        ``date_format``), ``n_rows``, ``n_rejected``.
    """

    orders: pd.DataFrame
    lines: pd.DataFrame
    customers: pd.DataFrame
    checkouts: pd.DataFrame
    rejected: pd.DataFrame
    read_log: pd.DataFrame


def normalise_header(name: object) -> str:
    """Return a column name as compared: no BOM, trimmed, single spaces, casefolded."""
    text = str(name).replace("\ufeff", "").strip()
    return re.sub(r"\s+", " ", text).casefold()


def normalise_emails(emails: pd.Series) -> pd.Series:
    """Return e-mails trimmed and case-folded, missing where blank.

    Parameters
    ----------
    emails : Series
        E-mail addresses as typed.

    Returns
    -------
    Series
        Same index, pandas' ``str`` dtype (NaN where missing or blank);
        ``" Ann@Example.COM "`` becomes ``"ann@example.com"``, and so does
        ``"' Ann@Example.COM"`` (a spreadsheet's leading apostrophe).

    Notes
    -----
    Each distinct address is normalised once (case-folding runs in Python, and
    an order export repeats its customers' addresses).
    """
    codes, distinct = pd.factorize(emails.astype("string"))
    text = pd.Series(distinct, dtype="string").str.strip().str.lstrip("'")
    text = text.str.strip().str.casefold()
    cleaned = pd.array(text.mask(text == ""), dtype="str")
    return pd.Series(
        cleaned.take(codes, allow_fill=True), index=emails.index, name=emails.name
    )


def normalise_email_column(emails: pl.Series) -> pl.Series:
    """Return :func:`normalise_emails` for a polars column (null where blank).

    ASCII addresses are lower-cased by polars; the few others are case-folded
    by Python, once per distinct address, so the result is the same.
    """
    text = emails.cast(pl.String).str.strip_chars(phones.WHITESPACE)
    text = text.str.strip_chars_start("'").str.strip_chars(phones.WHITESPACE)
    folded = text.str.to_lowercase()
    # Non-ASCII text takes more bytes than characters (cheaper than a regex).
    other = (text.str.len_bytes() != text.str.len_chars()).fill_null(False)
    if other.any():
        distinct = text.filter(other).unique().to_list()
        lookup = pl.DataFrame(
            {"text": distinct, "folded": [v.casefold() for v in distinct]},
            schema={"text": pl.String, "folded": pl.String},
        )
        unusual = pl.DataFrame({"text": text}).join(
            lookup, on="text", how="left", maintain_order="left"
        )["folded"]
        folded = folded.zip_with(~other, unusual)
    return folded.replace("", None).alias(emails.name)


# --------------------------------------------------------------------------------
# Recognising a file: encoding, delimiter, layout
# --------------------------------------------------------------------------------


def read_text_table(path: Path) -> pd.DataFrame:
    """Return a small raw CSV (a call log, an insight log, conversations) as text.

    Its encoding and delimiter are recognised by :func:`sniff_file`, as for
    store exports: Excel in many European locales saves "CSV" with semicolons in
    Windows-1252.

    Raises
    ------
    HeardInputError
        From :func:`sniff_file`, or when a line past the sniffed sample is in
        another encoding than the file's start.
    """
    found = sniff_file(path)
    try:
        with open_raw(path) as handle:
            return pd.read_csv(
                handle,
                dtype=str,
                keep_default_na=False,
                encoding=found.encoding,
                sep=found.delimiter,
            )
    except UnicodeDecodeError as error:
        raise HeardInputError(
            path,
            expected=f"text in one encoding ({found.encoding}, as the file begins)",
            found=f"byte {error.object[error.start]:#04x} further on",
            fix="save the file again as CSV UTF-8",
        ) from error


def sniff_file(path: Path, *, encoding: str = "auto", delimiter: str = "auto"):
    """Return how to read a CSV file: its encoding, delimiter and header.

    Parameters
    ----------
    path : Path
        The raw file (only its first 64 KB are read).
    encoding : {"auto", "utf-8", "utf-8-sig", "cp1252"}
        ``auto`` picks ``utf-8-sig`` when the file starts with a byte-order mark,
        ``utf-8`` when the sample decodes as UTF-8, ``cp1252`` otherwise.
    delimiter : {"auto", ",", ";", "\\t"}
        ``auto`` picks the one that splits the header into the most columns.

    Returns
    -------
    FileFormat

    Raises
    ------
    HeardInputError
        When the sample is neither UTF-8 nor cp1252, or the header is empty.
    """
    with open_raw(path) as handle:
        sample = handle.read(SAMPLE_BYTES)
    encoding = encoding if encoding != "auto" else detect_encoding(sample, path)
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    first_line = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    if not first_line.strip():
        raise HeardInputError(
            path,
            row=1,
            expected="a header row",
            found="an empty first line",
            fix="export the file again with its header row",
        )
    if delimiter == "auto":
        delimiter = max(DELIMITERS, key=lambda d: len(_split_line(first_line, d)))
    header = tuple(_split_line(first_line, delimiter))
    log.info(
        "%s: encoding %s, delimiter %r, %d columns",
        path.name,
        encoding,
        delimiter,
        len(header),
    )
    return FileFormat(Path(path), encoding, delimiter, header)


def detect_encoding(sample: bytes, path: Path) -> str:
    """Return ``utf-8-sig``, ``utf-8`` or ``cp1252`` for a file's first bytes."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if b"\x00" in sample:
        # UTF-16 (Excel's 'Unicode Text') would read as cp1252 full of NULs.
        raise HeardInputError(
            path, row=1, expected="text in UTF-8 or Windows-1252 (cp1252)",
            found="UTF-16 text or binary data (NUL bytes)",
            fix="save the file as 'CSV UTF-8' (Excel: File > Save As)",
        )  # fmt: skip
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError as error:
        if re.search(rb"[\xc2-\xf4][\x80-\xbf]", sample[: error.start]):
            # Valid UTF-8 before the bad byte: two encodings in one file.
            raise HeardInputError(
                path,
                row=sample.count(b"\n", 0, error.start) + 1,
                expected="text in one encoding",
                found=f"UTF-8 text, then byte {sample[error.start]:#04x}",
                fix="correct that line in a text editor and save as CSV UTF-8",
            ) from error
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError as error:
        raise HeardInputError(
            path,
            expected="text in UTF-8 or Windows-1252 (cp1252)",
            found=f"byte {sample[error.start]:#04x} at byte {error.start}",
            fix="save the file as CSV UTF-8, or set exports.encoding in study.yml",
        ) from error


def _split_line(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter, quotechar='"'))


def detect_layout(header, path: Path, *, config: dict | None = None) -> Layout:
    """Return the known layout a header belongs to.

    Parameters
    ----------
    header : sequence of str
        The file's column names as written.
    path : Path
        The file, for messages and to tell abandoned checkouts from orders (the
        two share a layout: a file whose name contains ``checkout``, or that
        ``exports.kinds`` names as ``checkouts``, holds checkouts).
    config : dict, optional
        The study's ``exports`` section (``platform``, ``column_map``,
        ``generic``, ``kinds``); ``platform`` other than ``auto`` limits the
        layouts tried to that platform's (``generic``: the column map only).

    Returns
    -------
    Layout
        The layout with the most columns in common among those whose required
        columns are all present; the generic layout built from
        ``exports.column_map`` when no known layout matches.

    Raises
    ------
    HeardInputError
        When no layout matches: lists the columns found and the closest layout.
    """
    config = config or {}
    found = {normalise_header(c) for c in header}
    platform = config.get("platform") or "auto"
    matches = [
        layout for layout in LAYOUTS if platform in ("auto", layout.platform)
        and all(_present(layout.fields[name], found) for name in layout.required)
    ]  # fmt: skip
    if matches:
        layout = max(matches, key=lambda lay: _overlap(lay.columns, found))
        return _with_kind(layout, path, config)
    column_map = config.get("column_map") or {}
    if column_map and all(normalise_header(c) in found for c in column_map.values()):
        return _with_kind(generic_layout(column_map, config), path, config)
    raise _unknown_header(header, path, column_map)


def _present(candidates: tuple[str, ...], found: set[str]) -> bool:
    return any(normalise_header(c) in found for c in candidates)


def _overlap(columns: tuple[str, ...], found: set[str]) -> float:
    known = {normalise_header(c) for c in columns}
    return len(known & found) / len(known | found)


def _with_kind(layout: Layout, path: Path, config: dict) -> Layout:
    """Return the layout as checkouts when the file is named or declared so."""
    declared = (config.get("kinds") or {}).get(Path(path).name)
    is_checkout = declared == "checkouts" or (
        declared is None and "checkout" in Path(path).name.casefold()
    )
    if layout.kind == "orders" and is_checkout:
        return Layout(
            layout.name.replace("orders", "checkouts"),
            layout.platform,
            "checkouts",
            layout.columns,
            layout.fields,
            layout.required,
            layout.options,
        )
    return layout


def generic_layout(column_map: dict, config: dict) -> Layout:
    """Return a layout from ``exports.column_map`` (Heard name -> file column).

    Heard names are those of :data:`GENERIC_FIELDS`. ``exports.generic`` adds
    ``kind`` (orders, customers or checkouts), ``date_format`` (a strptime
    format such as ``%d/%m/%Y %H:%M``), ``return_prefix`` (order ids that start
    with it are returns or credit notes, such as ``C``) and ``missing_values``
    (cell texts that mean blank, such as ``NA``).
    """
    unknown = sorted(set(column_map) - set(GENERIC_FIELDS))
    if unknown:
        raise HeardInputError(
            "study.yml",
            column="exports.column_map",
            expected=f"Heard names among {', '.join(GENERIC_FIELDS)}",
            found=", ".join(unknown),
            fix="use Heard's names as keys and the file's columns as values",
        )
    generic = config.get("generic") or {}
    kind = generic.get("kind", "orders")
    required = {"orders": ("order_id", "created_at"), "checkouts": ("order_id",)}
    return Layout(
        "generic",
        "generic",
        kind,
        tuple(column_map.values()),
        {name: (column,) for name, column in column_map.items()},
        tuple(n for n in required.get(kind, ()) if n in column_map),
        dict(generic),
    )


def _unknown_header(header, path: Path, column_map: dict) -> HeardInputError:
    """Return the error for a header no layout matches, naming the closest one."""
    found = [normalise_header(c) for c in header]
    scores = {
        layout.name: difflib.SequenceMatcher(
            None, found, [normalise_header(c) for c in layout.columns]
        ).ratio()
        for layout in LAYOUTS
    }
    closest = max(scores, key=scores.get)
    layout = next(lay for lay in LAYOUTS if lay.name == closest)
    missing = [
        layout.fields[name][0] for name in layout.required
        if not _present(layout.fields[name], set(found))
    ]  # fmt: skip
    mapped = ""
    if column_map:
        absent = [c for c in column_map.values() if normalise_header(c) not in found]
        mapped = f"; exports.column_map names columns not in the file: {absent}"
    return HeardInputError(
        path,
        row=1,
        expected="the header of a known export (Shopify customers, orders or "
        "abandoned checkouts; WooCommerce orders) or of exports.column_map",
        found=f"{len(header)} unknown columns",
        fix=f"the file's columns are {list(header)}; the closest known layout is "
        f"{closest}, which also needs {missing}{mapped}. Export the file again "
        "with the platform's default columns, or map its columns in study.yml "
        "under exports.column_map",
    )


# --------------------------------------------------------------------------------
# Reading a file's needed columns as clean text (polars)
# --------------------------------------------------------------------------------

AWARE_FORMATS = (
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M %z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%z",
)
NAIVE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
SLASH_TIMES = ("%H:%M:%S", "%H:%M", "")
# Dates such as 03/04/2026 or 3.4.26: month or day first cannot be told apart.
SLASH_DATE = r"^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}"
DECIMAL_COMMA = r"^[-+]?[\s$£€]*(\d+|\d{1,3}(\.\d{3})+),\d{1,2}[\s$£€]*$"
DOT_THOUSANDS = r"^[-+]?[0-9]{1,3}([.][0-9]{3})+(,[0-9]*)?$"
NUMBER_PATTERN = r"^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$"
THOUSANDS_PATTERN = r"^[-+]?[0-9]{1,3}(,[0-9]{3})+([.][0-9]+)?$"
TRUE_WORDS = ["yes", "true", "1", "y", "subscribed"]
FALSE_WORDS = ["no", "false", "0", "n", "unsubscribed", "not_subscribed", "pending"]
AMOUNT_FIELDS = ("total", "subtotal", "refunded_amount", "price", "quantity")
DATE_SAMPLE = 2_000
DATE_ORDERS = {True: "day first", False: "month first", None: "ISO"}
# Order statuses that record no purchase: cancelled, a payment that failed
# (WooCommerce) or was voided (Shopify), a draft of the block checkout.
NOT_PURCHASED = ["cancelled", "canceled", "wc-cancelled", "failed", "wc-failed",
                 "voided", "checkout-draft"]  # fmt: skip
BATCH_ROWS = 100_000  # rows typed at a time
# Order-level text of an orders or checkouts export, kept once per order.
ORDER_TEXT_FIELDS = [
    "email", "customer_id", "financial_status", "currency", "country", "phone",
    "name", "line_items",
]  # fmt: skip
# An orders or checkouts export's fields read on every row; the others are read
# once per order (:func:`read_order_rows`).
LINE_FIELDS = ("order_id", "created_at", *AMOUNT_FIELDS, "product", "sku")
ORDER_FIELDS = (
    *ORDER_TEXT_FIELDS, "cancelled_at", "first_name", "last_name", "accepts_marketing",
)  # fmt: skip
# Bytes polars fetches from a CSV at a time (its default is 32 MiB, and it
# fetches several ahead: about the whole of a 0.5 GB file in memory at once).
CSV_CHUNK_BYTES = 2 * 1024 * 1024


def read_typed(
    fmt: FileFormat,
    columns: dict,
    *,
    missing,
    options: dict,
    timezone: str,
    workdir: Path,
) -> pl.DataFrame:
    """Return a file's rows, every field trimmed (:func:`text_expression`) and
    typed by :func:`type_rows`.

    The rows are typed in batches as polars reads them, so a large file's text
    never sits in memory whole next to its typed copy. Each value is typed on
    its own, and the date formats come from the file's first dates, as when the
    whole file is typed at once, so the result is the same. `columns` and
    `missing` are as for :func:`read_order_rows`.
    """
    positions = _find_positions(columns, ALL_FIELDS)
    dates = text_expression(columns.get("created_at", []), "created_at", missing)
    type_batch = partial(
        _type_batch, fields=ALL_FIELDS, columns=columns, missing=missing,
        type_text=type_rows, options=options, timezone=timezone,
    )  # fmt: skip
    batches = _typed_batches(
        fmt, [pl.col(p) for p in positions], dates, type_batch, options=options,
        workdir=workdir,
    )  # fmt: skip
    return _concat_typed(list(batches))


def read_order_rows(
    fmt: FileFormat,
    columns: dict,
    *,
    missing,
    options: dict,
    timezone: str,
    workdir: Path,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return an orders or checkouts export's rows and its order-level fields.

    Parameters
    ----------
    fmt : FileFormat
        The file.
    columns : dict
        :func:`field_columns` of its layout.
    missing : list of str
        Texts that mean blank.
    options : dict
        The ``exports`` options (``decimal``, ``dayfirst``, ``date_format``,
        ``return_prefix``).
    timezone : str
        The store's time zone, for dates without an offset.
    workdir : Path
        Where a cp1252 file is copied to UTF-8.

    Returns
    -------
    rows : polars DataFrame
        One row per file row: ``row``, :data:`LINE_FIELDS` typed by
        :func:`type_values` (with their ``<field>_text``; ``product`` and
        ``sku`` Categorical) and ``is_return``.
    orders : polars DataFrame
        One row per order (``order_id``, ``is_return``): the first non-null
        value of :data:`ORDER_TEXT_FIELDS` and ``accepts_marketing`` its rows
        give, and ``is_cancelled`` (any row cancelled).

    Notes
    -----
    Held per row, each text field costs 16 bytes a row even where it is blank,
    and trimming it costs as much as reading it. Shopify fills order fields on
    an order's first row only (WooCommerce repeats them), so a row whose order
    fields are all empty or the same as the row before's of the same order is
    dropped before they are trimmed and typed: it could give no order a first
    value or a cancellation the rows kept do not give. What is left is about
    one row per order, grouped once at the end.
    """
    positions = _find_positions(columns, LINE_FIELDS + ORDER_FIELDS)
    dates = text_expression(columns.get("created_at", []), "created_at", missing)

    type_line_fields = partial(
        _type_batch, fields=LINE_FIELDS, columns=columns, missing=missing,
        type_text=type_values, options=options, timezone=timezone,
    )  # fmt: skip

    seam = None  # the previous batch's last row: an order may span two batches

    def type_batch(batch, formats):
        nonlocal seam
        rows = type_line_fields(batch, formats)
        # An export repeats a few hundred names on a million rows: as categories
        # they take 4 bytes a row, not 16 and the text.
        rows = rows.with_columns(pl.col("product", "sku").cast(pl.Categorical))
        frame = batch.select(
            *_find_positions(columns, ORDER_FIELDS), rows["order_id"], rows["is_return"]
        )
        kept = _keep_order_fields(frame, columns, missing, before=seam)
        seam = frame.tail(1)
        return rows, kept

    batches = list(
        _typed_batches(fmt, [pl.col(p) for p in positions], dates, type_batch,
                       options=options, workdir=workdir)
    )  # fmt: skip
    rows = _concat_typed([rows for rows, _ in batches])
    return rows, _group_order_fields(pl.concat([orders for _, orders in batches]))


def _find_positions(columns: dict, fields) -> list[str]:
    """Return the file columns (by position name) the `fields` are read from."""
    return list(dict.fromkeys(p for f in fields for p, _ in columns.get(f, [])))


def _type_batch(
    batch: pl.DataFrame,
    formats: tuple[list, list],
    *,
    fields,
    columns: dict,
    missing,
    type_text: Callable[..., pl.DataFrame],
    options: dict,
    timezone: str,
) -> pl.DataFrame:
    """Return a batch's ``row`` and `fields` trimmed (:func:`_batch_texts`) and
    typed by `type_text` (:func:`type_rows` or :func:`type_values`)."""
    # Lazily, so each trimmed text is computed once (eager selects repeat it).
    texts = _batch_texts(batch, fields, columns, missing)
    text = batch.lazy().select("row", *texts).collect()
    return type_text(text, options=options, timezone=timezone, formats=formats)


def _batch_texts(frame: pl.DataFrame, fields, columns: dict, missing) -> list:
    """Return :func:`text_expression` for each field over a batch's raw columns.

    A spreadsheet's leading apostrophe is looked for only in a column that
    holds an apostrophe somewhere: elsewhere that step changes nothing. An
    amount read from one column stays raw: :func:`type_values` trims only the
    amounts a number cast cannot read.
    """
    texts = []
    for name in fields:
        parts = columns.get(name, [])
        if name in AMOUNT_FIELDS and len(parts) == 1 and not missing:
            texts.append(pl.col(parts[0][0]).alias(name))
            continue
        quoted = name in TEXT_FIELDS and any(
            frame[p].str.contains("'", literal=True).any() for p, _ in parts
        )
        texts.append(text_expression(parts, name, missing, quoted=quoted))
    return texts


def _keep_order_fields(
    frame: pl.DataFrame, columns: dict, missing, *, before: pl.DataFrame | None
) -> pl.DataFrame:
    """Return the order-level fields, typed, of the batch rows that may give an
    order a value: those whose raw order fields are not all empty or equal to
    the row before's of the same order.

    `frame` holds a batch's raw order fields (by position), ``order_id`` and
    ``is_return``; `before` is the previous batch's last row of them (None for
    the first batch), so an order split between two batches keeps the rows it
    would keep whole, and is usually still given by one row. Only a column
    filled on most rows (WooCommerce repeats order fields, Shopify the e-mail)
    is compared with the row before; a column empty in the whole batch is not
    read.
    """
    positions = _find_positions(columns, ORDER_FIELDS)
    first = 0 if before is None else 1  # the batch's first row in `frame`
    if before is not None:
        frame = pl.concat([before, frame])
    filled = frame.select((pl.col(p) != "").fill_null(False) for p in positions)
    counts = dict(zip(positions, filled.sum().row(0), strict=True)) if positions else {}

    # Rows that may give an order a value it has not got yet.
    order_id = pl.col("order_id")
    same_order = order_id.eq(order_id.shift(1)).fill_null(False)
    new_value = [
        pl.lit(filled[p]) & ~(same_order & pl.col(p).eq_missing(pl.col(p).shift(1)))
        if 2 * n > frame.height
        else pl.lit(filled[p])
        for p, n in counts.items()
        if n
    ]
    keep = order_id.is_not_null() & (
        pl.any_horizontal(new_value) if new_value else pl.lit(False)
    )
    kept = frame.filter(keep & (pl.int_range(pl.len()) >= first))

    # Their fields, from the columns with some text.
    read = {
        name: [(p, c) for p, c in columns.get(name, []) if counts[p]]
        for name in ORDER_FIELDS
    }
    texts = _batch_texts(kept, ORDER_FIELDS, read, missing)
    text = kept.lazy().select("order_id", "is_return", *texts)
    typed = text.with_columns(_order_types())
    return typed.select(
        "order_id", "is_return", *ORDER_TEXT_FIELDS, "accepts_marketing", "is_cancelled"
    ).collect()


def _group_order_fields(rows: pl.DataFrame) -> pl.DataFrame:
    """Return each order's first non-null :data:`ORDER_TEXT_FIELDS` and
    ``accepts_marketing``, and whether any of its rows is cancelled."""
    firsts = [*ORDER_TEXT_FIELDS, "accepts_marketing"]
    if rows["order_id"].null_count():
        rows = rows.filter(pl.col("order_id").is_not_null())

    # One row per order (the usual case): each row is its order's first.
    if rows["order_id"].n_unique() == rows.height:
        return rows.select("order_id", "is_return", *firsts, "is_cancelled")
    return rows.group_by(["order_id", "is_return"], maintain_order=True).agg(
        *(pl.col(f).first(ignore_nulls=True) for f in firsts),
        pl.col("is_cancelled").any(),
    )


def _typed_batches(
    fmt: FileFormat,
    selected: list[pl.Expr],
    dates: pl.Expr,
    type_batch: Callable[[pl.DataFrame, tuple[list, list]], T],
    *,
    options: dict,
    workdir: Path,
) -> Iterator[T]:
    """Yield ``type_batch(batch, formats)`` for each batch of the file's
    `selected` columns (once for an empty batch when the file has no rows);
    `formats` are the :func:`date_formats` of the first `dates`."""
    source = scan_source(fmt, selected, workdir=workdir)
    try:
        with small_csv_chunks():
            sample = source.select(dates.alias("created_at")).drop_nulls()
            sample = sample.head(DATE_SAMPLE).collect()
            formats = date_formats(sample["created_at"], options=options)
            n_batches = 0
            for batch in source.collect_batches(chunk_size=BATCH_ROWS):
                n_batches += 1
                yield type_batch(batch, formats)
        if not n_batches:
            yield type_batch(source.head(0).collect(), formats)
    except pl.exceptions.ComputeError as error:
        raise _mixed_encoding(fmt, error) from error


def _concat_typed(batches: list[pl.DataFrame]) -> pl.DataFrame:
    """Return the typed batches as one frame."""
    typed = pl.concat(batches, how="vertical", rechunk=False)

    # A field read in full in every batch keeps a constant null text column.
    read = [
        f"{f}_text" for f in ("created_at", *AMOUNT_FIELDS)
        if typed[f"{f}_text"].null_count() == typed.height
    ]  # fmt: skip
    return typed.with_columns(pl.lit(None, pl.String).alias(c) for c in read)


@contextmanager
def small_csv_chunks():
    """Let polars read CSVs in :data:`CSV_CHUNK_BYTES` chunks for a while.

    Notes
    -----
    polars reads the chunk size from the ``POLARS_CSV_CHUNK_SIZE`` environment
    variable each time a CSV scan starts; it only sizes the raw reads (rows are
    split after, quotes respected), so what is read is the same. A value the
    user set is kept. Peak memory of a plain read of the 1M-row benchmark's
    orders: 0.58 GB with the default, 0.37 GB with 2 MiB, for the same CPU.
    """
    name = "POLARS_CSV_CHUNK_SIZE"
    if name in os.environ:
        yield
        return
    os.environ[name] = str(CSV_CHUNK_BYTES)
    try:
        yield
    finally:
        os.environ.pop(name, None)


def scan_source(fmt: FileFormat, selected: list, *, workdir: Path) -> pl.LazyFrame:
    """Return the lazy query reading the spreadsheet row and the `selected`
    expressions of a raw file.

    Columns are named ``c0``, ``c1``… by position, so header quirks (a BOM,
    duplicate or oddly spaced names) cannot break anything; ``row`` counts the
    header as row 1. `selected` holds polars expressions over those names, run
    while the file is read. CSVs are parsed by polars, every cell as text and
    only the needed columns (about a third of the CPU DuckDB's CSV reader took on
    a 79-column Shopify export). cp1252 files are copied to UTF-8 in `workdir`
    first; the raw file is never changed.
    """
    path = fmt.path
    names = [f"c{i}" for i in range(len(fmt.header))]
    if path.suffix.lower() == ".xlsx":
        sheet = pd.read_excel(path, dtype=str, header=0, engine="openpyxl")
        sheet.columns = names[: sheet.shape[1]]
        sheet = sheet.astype(object).where(sheet.notna(), None)
        source = pl.DataFrame(
            {name: pl.Series(name, sheet[name].tolist(), dtype=pl.String)
             for name in sheet.columns}
        ).with_row_index("row", offset=2).lazy()  # fmt: skip
    else:
        if fmt.encoding == "cp1252":
            path = _to_utf8(path, workdir)
        source = pl.scan_csv(
            path, has_header=True, new_columns=names, infer_schema=False,
            separator=fmt.delimiter, quote_char='"', encoding="utf8",
            truncate_ragged_lines=True, row_index_name="row", row_index_offset=2,
        )  # fmt: skip
    return source.select(pl.col("row").cast(pl.Int64), *selected)


def _mixed_encoding(fmt: FileFormat, error: Exception) -> HeardInputError:
    """Return the error for bytes beyond the sniffed sample that are not UTF-8
    (a pasted cp1252 row)."""
    return HeardInputError(
        fmt.path,
        expected=f"text in one encoding ({fmt.encoding}) throughout",
        found=str(error).split("\n", 1)[0],
        fix="run `heard check` to find the line, correct it and save the file "
        "as CSV UTF-8",
    )


def _to_utf8(path: Path, workdir: Path) -> Path:
    """Copy a cp1252 file to UTF-8 in `workdir`, in chunks."""
    target = workdir / f"{path.stem}.utf8.csv"
    with open_raw(path) as source, open(target, "w", encoding="utf-8") as copy:
        text = io.TextIOWrapper(source, encoding="cp1252", newline="")
        while chunk := text.read(1 << 20):
            copy.write(chunk)
    log.info("%s: read as cp1252 (Windows-1252)", path.name)
    return target


def field_columns(layout: Layout, header) -> dict[str, list[tuple[str, str]]]:
    """Return, per Heard field, the (position name, file column) pairs present."""
    positions = {}
    for i, column in enumerate(header):
        positions.setdefault(normalise_header(column), (f"c{i}", column))
    return {
        name: [positions[normalise_header(c)] for c in candidates
               if normalise_header(c) in positions]
        for name, candidates in layout.fields.items()
    }  # fmt: skip


def text_expression(
    columns: list[tuple[str, str]], name: str, missing, *, quoted: bool = False
) -> pl.Expr:
    """Return a field as trimmed text, null when blank (or a missing-value text).

    Parameters
    ----------
    columns : list of (str, str)
        The field's (position name, file column) pairs, from :func:`field_columns`;
        the first non-blank one wins.
    name : str
        The field, the expression's output name.
    missing : list of str
        Texts that mean blank.
    quoted : bool, default False
        Also drop the leading apostrophe a spreadsheet adds to keep a value as
        text. Callers pass ``name in TEXT_FIELDS`` (IDs, phones, ZIPs, e-mails,
        SKUs), or False for a column known to hold no apostrophe.

    Returns
    -------
    polars Expr
        A String column named `name`; a null literal when `columns` is empty.
    """
    if not columns:
        return pl.lit(None, dtype=pl.String).alias(name)
    parts = []
    for position, _ in columns:
        value = pl.col(position).str.strip_chars()
        if quoted:
            value = value.str.strip_chars_start("'").str.strip_chars()
        blank = (value == "") | value.is_in(list(missing)) if missing else value == ""
        parts.append(pl.when(blank).then(None).otherwise(value))
    return pl.coalesce(parts).alias(name)


# --------------------------------------------------------------------------------
# Typing the text: numbers, dates, booleans; rows that cannot be used
# --------------------------------------------------------------------------------


def parse_numbers(
    text: pl.Series, *, decimal: str
) -> tuple[pl.Series, pl.Series | None]:
    """Return money or quantity texts as floats, and the texts that are not numbers.

    Parameters
    ----------
    text : polars Series
        Amount texts, trimmed or raw (blank counts as null).
    decimal : {".", ","}
        The decimal mark.

    Returns
    -------
    values : polars Series
        Float64, null where blank or not a number.
    unread : polars Series or None
        String, named as `text`: the trimmed texts that are not numbers, null
        elsewhere; None when every filled text is a number.

    Notes
    -----
    Currency symbols and spaces are dropped. With ``decimal: "."`` a comma is
    accepted only as a thousands separator (``1,299.00``); with ``decimal: ","``
    dots are thousands separators and the comma the decimal mark (``1.299,00``).
    Only the texts a fast number cast cannot read (one it reads has no white
    space around it) are trimmed as :func:`text_expression` trims and meet the
    regular expressions.
    """
    fast = text.cast(pl.Float64, strict=False)
    filled = text.is_not_null() & (text != "")
    # Decimal commas all meet the expressions; a cast also accepts 'nan' and
    # 'inf', which are not amounts.
    odd = filled if decimal == "," else (fast.is_null() & filled) | ~fast.is_finite()
    odd = odd.fill_null(False)
    if not odd.any():
        return fast, None
    trimmed = text.filter(odd).to_frame("value")
    trimmed = trimmed.select(text_expression([("value", "")], "value", []))["value"]
    slow = _parse_numbers_slowly(trimmed, decimal=decimal)
    positions = odd.arg_true()
    unread = slow.is_null() & trimmed.is_not_null()
    if not unread.any():
        return fast.scatter(positions, slow), None
    texts = pl.repeat(None, len(text), dtype=pl.String, eager=True).scatter(
        positions.filter(unread), trimmed.filter(unread)
    )
    return fast.scatter(positions, slow), texts.alias(text.name)


def _parse_numbers_slowly(text: pl.Series, *, decimal: str) -> pl.Series:
    clean = text.str.replace_all(r"[\s$£€]", "")
    if decimal == ",":
        # Only dots grouping thousands go: '25.00' (Shopify's own) is not 2500.
        grouped = clean.str.contains(DOT_THOUSANDS).fill_null(False)
        clean = clean.zip_with(~grouped, clean.str.replace_all(".", "", literal=True))
        clean = clean.str.replace(",", ".", literal=True)
    else:
        thousands = clean.str.contains(THOUSANDS_PATTERN).fill_null(False)
        clean = clean.zip_with(~thousands, clean.str.replace_all(",", "", literal=True))
    values = clean.cast(pl.Float64, strict=False)
    # '1e400' matches the pattern but overflows to inf: no amount is infinite.
    number = clean.str.contains(NUMBER_PATTERN) & values.is_finite()
    return values.zip_with(
        number.fill_null(False),
        pl.Series([None], dtype=pl.Float64).extend_constant(None, len(text) - 1),
    )


def date_formats(values: pl.Series, *, options: dict) -> tuple[list, list]:
    """Return the (with offset, without offset) formats a file's dates use.

    ``date_format`` replaces the built-in ISO forms; ``dayfirst`` (true or
    false) adds day/month/year or month/day/year forms, never guessed. Only
    formats that read at least one of the first values are kept, so each date is
    tried against the few formats the file actually uses.
    """
    declared = options.get("date_format")
    candidates = [declared] if declared else [*AWARE_FORMATS, *NAIVE_FORMATS]
    if not declared and options.get("dayfirst") is not None:
        order = "%d{0}%m{0}%Y" if options["dayfirst"] else "%m{0}%d{0}%Y"
        slash = [
            f"{order.format(sep)} {time}".strip()
            for sep in "/.-"
            for time in SLASH_TIMES
        ]
        candidates += slash + [f.replace("%Y", "%y") for f in slash]
    sample = values.drop_nulls().head(DATE_SAMPLE).str.replace(r"Z$", "+00:00")
    used = [
        f for f in candidates
        if sample.str.to_datetime(f, strict=False).is_not_null().any()
    ] or candidates[:1]  # fmt: skip
    return [f for f in used if "%z" in f], [f for f in used if "%z" not in f]


def parse_dates(text: pl.Series, formats: tuple, *, timezone: str) -> pl.Series:
    """Return date texts as UTC timestamps (null when not understood).

    Times with an offset (``2025-12-06 10:37:33 -0500``, ISO 8601 with ``Z``)
    are exact; times without one are the store's local time (`timezone`), so a
    daylight-saving change is applied (an hour that does not exist is null, one
    that happens twice is taken as the earlier). Each format after the first is
    tried only on the dates still unread, and each run of equal texts (an
    order's line items repeat its date) is parsed once.
    """
    runs = text.rle_id()
    first = runs.ne(runs.shift(1)).fill_null(True)
    return _parse_each_date(text.filter(first), formats, timezone).gather(runs)


def _parse_each_date(text: pl.Series, formats: tuple, timezone: str) -> pl.Series:
    """Return :func:`parse_dates` of `text`, each value parsed on its own."""
    aware, naive = formats
    utc = pl.Datetime("us", "UTC")
    result = pl.repeat(None, len(text), dtype=utc, eager=True).alias(text.name)
    for form in [*aware, *naive]:
        todo = (result.is_null() & text.is_not_null()).fill_null(False)
        if not todo.any():
            break
        values = text.filter(todo)
        if "%z" in form and values.str.ends_with("Z").any():
            values = values.str.replace(r"Z$", "+00:00")
        # No cache of distinct texts: a run of equal texts is parsed once already.
        parsed = values.str.to_datetime(form, strict=False, time_unit="us", cache=False)
        if "%z" not in form:
            parsed = parsed.dt.replace_time_zone(
                timezone, ambiguous="earliest", non_existent="null"
            )
        result = result.scatter(todo.arg_true(), parsed.dt.convert_time_zone("UTC"))
    return result


def boolean_expression(text: pl.Expr) -> pl.Expr:
    """Return yes/no, true/false, 1/0 as a boolean (null otherwise)."""
    lower = text.str.to_lowercase()
    return (
        pl.when(lower.is_in(TRUE_WORDS))
        .then(True)
        .when(lower.is_in(FALSE_WORDS))
        .then(False)
        .otherwise(None)
    )


def type_rows(
    text: pl.DataFrame, *, options: dict, timezone: str, formats: tuple | None = None
) -> pl.DataFrame:
    """Return the rows with every field typed.

    Amounts and dates keep their text in ``<field>_text`` only where it could not
    be read, for the rejected-rows table and the format checks. `formats` are
    the date formats (:func:`date_formats`), found from `text` when omitted.
    """
    sms = boolean_expression(pl.col("accepts_sms_marketing"))
    text = text.with_columns(*_order_types(), sms.alias("accepts_sms_marketing"))
    return type_values(text, options=options, timezone=timezone, formats=formats)


def _order_types() -> list[pl.Expr]:
    """Return the typed order-level fields: status, e-mail, id, consent, name."""
    col = pl.col
    return [
        (
            col("cancelled_at").is_not_null()
            | col("financial_status")
            .str.to_lowercase()
            .is_in(NOT_PURCHASED)
            .fill_null(False)
        ).alias("is_cancelled"),
        col("email").str.to_lowercase(),
        # WooCommerce writes customer id 0 for a guest: no id, not one customer.
        pl.when(col("customer_id") != "0")
        .then(col("customer_id"))
        .alias("customer_id"),
        col("financial_status").str.to_lowercase(),
        boolean_expression(col("accepts_marketing")).alias("accepts_marketing"),
        pl.coalesce(
            col("name"),
            pl.concat_str(
                [col("first_name"), col("last_name")], separator=" ", ignore_nulls=True
            ).replace("", None),
        ).alias("name"),  # fmt: skip
    ]


def type_values(
    text: pl.DataFrame, *, options: dict, timezone: str, formats: tuple | None = None
) -> pl.DataFrame:
    """Return the rows with ``created_at`` and the amounts typed and ``is_return``.

    Parameters
    ----------
    text : polars DataFrame
        ``order_id``, ``created_at`` and :data:`AMOUNT_FIELDS` as text (the
        amounts may be raw, see :func:`parse_numbers`), and any other columns.
    options : dict
        The ``exports`` options (``decimal``, ``dayfirst``, ``date_format``,
        ``return_prefix``).
    timezone : str
        The store's time zone, for dates without an offset.
    formats : tuple of (list, list), optional
        The date formats (:func:`date_formats`); found from `text` when omitted.

    Returns
    -------
    polars DataFrame
        `text`'s columns with ``created_at`` a UTC Datetime, the amounts Float64,
        ``is_return`` (``order_id`` starts with ``return_prefix``) and
        ``<field>_text`` for ``created_at`` and each amount: the text where it
        could not be read, for the rejected-rows table and the format checks.

    Notes
    -----
    A field read in full gets a constant null ``<field>_text`` column, which
    takes no memory.
    """
    decimal = options.get("decimal", ".")
    prefix = options.get("return_prefix")
    formats = formats or date_formats(text["created_at"], options=options)
    dates = parse_dates(text["created_at"], formats, timezone=timezone)
    unread_dates = (dates.is_null() & text["created_at"].is_not_null()).any()
    texts = [
        pl.when(pl.lit(dates).is_null()).then(pl.col("created_at"))
        if unread_dates
        else pl.lit(None, pl.String)
    ]
    typed = [
        pl.lit(dates).alias("created_at"),
        (
            pl.col("order_id").str.starts_with(prefix).fill_null(False)
            if prefix
            else pl.lit(False)
        ).alias("is_return"),
    ]
    for name in AMOUNT_FIELDS:
        values, unread = parse_numbers(text[name], decimal=decimal)
        typed.append(pl.lit(values).alias(name))
        texts.append(pl.lit(None, pl.String) if unread is None else pl.lit(unread))
    kept = ["created_at", *AMOUNT_FIELDS]
    return text.with_columns(
        unread.alias(f"{name}_text") for name, unread in zip(kept, texts, strict=True)
    ).with_columns(typed)


def check_declared_formats(typed: pl.DataFrame, columns: dict, fmt, options) -> None:
    """Raise when dates or amounts need a day-first or decimal-comma rule that
    the study did not declare; never guess."""
    checks = []
    if options.get("decimal", ".") != ",":
        checks += [
            (name, DECIMAL_COMMA, "a decimal point (12.50)", "exports.decimal: ','")
            for name in AMOUNT_FIELDS
            if name in columns
        ]
    if options.get("dayfirst") is None and not options.get("date_format"):
        checks.append(
            ("created_at", SLASH_DATE, "dates as YYYY-MM-DD",
             _date_order_hint(typed["created_at_text"]))
        )  # fmt: skip
    for name, pattern, expected, setting in checks:
        found = typed.filter(pl.col(f"{name}_text").str.contains(pattern)).head(1)
        if len(found):
            raise HeardInputError(
                fmt.path, row=found["row"][0], column=columns.get(name, name),
                expected=expected, found=found[f"{name}_text"][0],
                fix=f"declare the file's convention in study.yml ({setting})",
            )  # fmt: skip


def _date_order_hint(dates: pl.Series) -> str:
    """Return the setting to declare, naming a date that shows the order (13/04
    can only be day first, 04/13 only month first); never applied unasked."""
    parts = dates.str.extract_groups(r"^(\d{1,2})[/.-](\d{1,2})[/.-]")
    first, second = (parts.struct.field(f).cast(pl.Int32) for f in ("1", "2"))
    for clue, order, value in ((first > 12, "day first", "true"),
                               (second > 12, "month first", "false")):  # fmt: skip
        shown = dates.filter(clue.fill_null(False))
        if len(shown):
            return (
                f"exports.dayfirst: {value}; the file's dates look {order}, "
                f"e.g. {shown[0]}"
            )
    return "exports.dayfirst: true (or false), or exports.date_format"


def find_rejected(typed: pl.DataFrame, columns: dict, *, kind: str, limits: dict):
    """Return the rows that cannot be used: ``row``, ``column``, ``reason``.

    Orders and checkouts: a missing id or date, a date not understood, in the
    future or before the store opened, an amount that is not a number or is
    negative (a generic export's returns may have negative quantities). An order
    with one bad row is dropped whole, and its other rows say so. Customers:
    rows with no e-mail, phone or customer id.
    """
    col = pl.col
    if kind == "customers":
        checks = [
            (
                "email",
                col("email").is_null()
                & col("phone").is_null()
                & col("customer_id").is_null(),
                "no e-mail, phone or customer id",
            )
        ]
    else:
        checks = [
            ("order_id", col("order_id").is_null(), "missing order id"),
            # 3.187E+13: a spreadsheet's rounding gives many checkouts one id.
            (
                "order_id",
                col("order_id").str.contains(phones.SCIENTIFIC),
                "id damaged by a spreadsheet (scientific notation)",
            ),
            (
                "created_at",
                col("created_at").is_null() & col("created_at_text").is_null(),
                "missing date",
            ),
            ("created_at", col("created_at_text").is_not_null(), "date not understood"),
            ("created_at", col("created_at") > limits["now"], "date in the future"),
        ]
        if limits.get("opened") is not None:
            checks.append(
                (
                    "created_at",
                    col("created_at") < limits["opened"],
                    "date before the store opened (study.store_opened)",
                )
            )
        for name in AMOUNT_FIELDS:
            negative = col(name) < 0
            if name == "quantity":
                negative = negative & ~col("is_return")
            checks += [
                (name, col(f"{name}_text").is_not_null(), "not a number"),
                (name, negative, "negative amount"),
            ]
    rejected = pl.concat([
        typed.filter(mask.fill_null(False)).select(
            "row", pl.lit(columns.get(name, name)).alias("column"),
            pl.lit(reason).alias("reason"),
        )
        for name, mask, reason in checks
    ])  # fmt: skip
    if kind == "customers":
        return rejected
    dropped = typed.filter(
        col("row").is_in(rejected["row"].implode()) & col("order_id").is_not_null()
    )["order_id"].unique()
    others = typed.filter(
        col("order_id").is_in(dropped.implode())
        & ~col("row").is_in(rejected["row"].implode())
    ).select(
        "row",
        pl.lit(columns.get("order_id", "order_id")).alias("column"),
        pl.lit("another row of this order was rejected").alias("reason"),
    )
    return pl.concat([rejected, others]).sort("row", maintain_order=True)


def build_orders(
    typed: pl.DataFrame, rejected: pl.DataFrame, texts: pl.DataFrame
) -> pl.DataFrame:
    """Return one row per order from its line-item rows.

    Order fields come from the first row that has them (Shopify fills them on an
    order's first row only; WooCommerce repeats them); `texts` holds the text
    ones, ``accepts_marketing`` and ``is_cancelled`` per order
    (:func:`read_order_rows`). Without a total the lines' quantity times price
    is used. A return (generic exports) has ``total`` 0 and its value in
    ``refunded_amount``. An order's rows are all usable or all rejected, so
    `texts` needs no filtering.
    """
    col = pl.col

    def first(name: str) -> pl.Expr:
        return col(name).first(ignore_nulls=True).alias(name)

    # The lines' value, null (not 0) when no line has both quantity and price.
    line = col("quantity") * col("price")
    value = pl.when(line.is_not_null().any()).then(line.sum())
    keys = ["order_id", "is_return"]
    orders = usable_rows(typed, rejected).group_by(keys, maintain_order=True).agg(
        col("created_at").min(), first("total"), first("subtotal"),
        first("refunded_amount"), col("quantity").sum().alias("n_items"),
        value.alias("line_value"),
    )  # fmt: skip
    # Each order's first row usually gives its order fields: then the two
    # tables list the same orders in the same order and need no join.
    if orders.select(keys).equals(texts.select(keys)):
        orders = orders.hstack(texts.drop(keys))
    else:
        orders = orders.join(texts, on=keys, how="left", maintain_order="left")
    orders = orders.rename({"phone": "phone_raw"})
    return orders.with_columns(
        col("is_cancelled").fill_null(False),
        pl.when(col("is_return")).then(0.0)
        .otherwise(pl.coalesce(col("total"), col("line_value"))).alias("total"),
        pl.coalesce(col("subtotal"), col("line_value")).alias("subtotal"),
        pl.when(col("is_return")).then(col("line_value").abs())
        .otherwise(col("refunded_amount").fill_null(0.0)).alias("refunded_amount"),
    ).drop("line_value")  # fmt: skip


def usable_rows(typed: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """Return the rows not rejected that belong to an order (`typed` itself,
    not a copy, when that is every row)."""
    usable = typed.select(
        pl.col("order_id").is_not_null()
        & ~pl.col("row").is_in(rejected["row"].implode())
    ).to_series()
    return typed if usable.all() else typed.filter(usable)


@dataclass
class ExportFile:
    """What one raw file gave: tables of its kind, its rejected rows, its log."""

    kind: str
    tables: dict[str, pd.DataFrame]
    rejected: pd.DataFrame
    log: dict


def read_export(path: Path, *, config: dict, as_of=None) -> ExportFile:
    """Read one export file into clean tables.

    Parameters
    ----------
    path : Path
        A CSV or XLSX file as downloaded from the store.
    config : dict
        The study's merged configuration (``study``, ``exports`` sections).
    as_of : Timestamp, optional
        Dates after it are rejected as in the future; now when omitted.

    Returns
    -------
    ExportFile
        ``kind`` (orders, checkouts or customers); ``tables`` holds ``orders``
        and ``lines``, or ``checkouts``, or ``customers`` (one row per file row:
        ``email``, ``customer_id``, ``first_name``, ``last_name``, ``country``,
        ``zip``, ``phone_raw``, ``accepts_email_marketing``,
        ``accepts_sms_marketing``, ``tags``); ``email`` is normalised
        (:func:`normalise_emails`) and ``country`` a code (:func:`country_codes`);
        ``rejected`` has ``file``, ``row``, ``column``, ``reason``; ``log`` says
        how the file was read.

    Raises
    ------
    HeardInputError
        For an unknown header, an undeclared decimal comma or day-first date,
        or an encoding that is neither UTF-8 nor cp1252.
    """
    path = Path(path)
    options = _read_options(config)
    fmt = _sniff_any(path, options)
    _refuse_repeated_columns(fmt.header, path)
    layout = detect_layout(fmt.header, path, config=options)
    log.info("%s: %s (%s %s)", path.name, layout.name, layout.platform, layout.kind)
    options = {**options, **layout.options}
    limits = _date_limits(config, as_of)
    columns = field_columns(layout, fmt.header)
    missing = options.get("missing_values") or []
    texts = None
    with tempfile.TemporaryDirectory(prefix="heard-") as workdir:
        kwargs = {"options": options, "timezone": limits["timezone"],
                  "workdir": Path(workdir)}  # fmt: skip
        if layout.kind == "customers":
            typed = read_typed(fmt, columns, missing=missing, **kwargs)
        else:
            typed, texts = read_order_rows(fmt, columns, missing=missing, **kwargs)
    names = {name: cols[0][1] for name, cols in columns.items() if cols}
    check_declared_formats(typed, names, fmt, options)
    rejected = find_rejected(typed, names, kind=layout.kind, limits=limits)
    tables = {
        name: validate(table, TABLE_SCHEMAS[name], file=path)
        if name in TABLE_SCHEMAS
        else table
        for name, table in _collect_tables(typed, rejected, texts, layout, path).items()
    }
    rejected = rejected.to_pandas()
    rejected.insert(0, "file", path.name)
    _warn_rejected(path, rejected, len(typed))
    entry = {
        "file": path.name, "platform": layout.platform, "kind": layout.kind,
        "layout": layout.name, "encoding": fmt.encoding,
        "delimiter": fmt.delimiter, "decimal": options.get("decimal", "."),
        "dates": options.get("date_format") or DATE_ORDERS[options.get("dayfirst")],
        "n_rows": len(typed),
        "n_rejected": int(rejected["row"].nunique()),
    }  # fmt: skip
    return ExportFile(layout.kind, tables, rejected[REJECTED_COLUMNS], entry)


def _refuse_repeated_columns(header, path: Path) -> None:
    """Raise when a column name appears twice: which one holds the data is unknown."""
    names = pd.Index([normalise_header(c) for c in header])
    repeated = names.duplicated() & (names != "")
    if repeated.any():
        position = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero(names == names[position])[0])
        raise HeardInputError(
            path, row=1, column=str(header[position]),
            expected="each column name once",
            found=f"columns {first + 1} and {position + 1} both named so",
            fix="delete the column that should not be there, or rename it",
        )  # fmt: skip


def _read_options(config: dict) -> dict:
    """Return the ``exports`` options with the study's missing-value texts."""
    options = dict(config.get("exports") or {})
    generic = options.get("generic") or {}
    if generic.get("date_format") and not options.get("date_format"):
        options["date_format"] = generic["date_format"]
    return options


def _sniff_any(path: Path, options: dict) -> FileFormat:
    """Return the format of a CSV, or the header of an XLSX's first sheet."""
    if path.suffix.lower() == ".xlsx":
        require_workbook(path)
        header = pd.read_excel(path, nrows=0, dtype=str, engine="openpyxl").columns
        return FileFormat(path, "xlsx", "", tuple(map(str, header)))
    return sniff_file(
        path,
        encoding=options.get("encoding", "auto"),
        delimiter=options.get("delimiter", "auto"),
    )


def _date_limits(config: dict, as_of) -> dict:
    """Return the store's time zone and the earliest and latest possible dates."""
    study = config.get("study") or {}
    timezone = study.get("timezone") or "UTC"
    now = pd.Timestamp.now(tz="UTC") if as_of is None else pd.Timestamp(as_of)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    opened = study.get("store_opened")
    if opened:
        opened = pd.Timestamp(str(opened))
        opened = opened.tz_localize(timezone) if opened.tzinfo is None else opened
        opened = opened.tz_convert("UTC").to_pydatetime()
    return {"now": now.to_pydatetime(), "opened": opened or None,
            "timezone": timezone}  # fmt: skip


def _warn_rejected(path: Path, rejected: pd.DataFrame, n_rows: int) -> None:
    if len(rejected):
        # Each reason with its count and first rows, so a person can look.
        by_reason = rejected.groupby("reason", sort=False)["row"]
        reasons = [
            f"{len(rows)} × {reason} (row{'s' if len(rows) > 1 else ''} "
            f"{', '.join(map(str, rows[:3]))}{', …' if len(rows) > 3 else ''})"
            for reason, rows in ((r, list(g)) for r, g in by_reason)
        ]
        log.warning(
            "%s: %d of %d rows rejected and kept with their reasons: %s",
            path.name, rejected["row"].nunique(), n_rows, "; ".join(reasons),
        )  # fmt: skip


def _collect_tables(typed, rejected, texts, layout: Layout, path: Path) -> dict:
    """Return the file's clean tables as pandas frames."""
    if layout.kind == "customers":
        rejects = pl.col("row").is_in(rejected["row"].implode())
        usable = typed.filter(~rejects) if len(rejected) else typed
        customers = usable.select(
            *CUSTOMER_SQL_COLUMNS[:6], pl.col("phone").alias("phone_raw"),
            pl.col("accepts_marketing").alias("accepts_email_marketing"),
            "accepts_sms_marketing", "tags",
        )  # fmt: skip
        return {"customers": _clean_contacts(customers).to_pandas()}
    orders = _clean_contacts(build_orders(typed, rejected, texts)).to_pandas()
    orders["source_file"] = path.name

    # WooCommerce's packed cells give the line items and, where the export has
    # none, the counts and subtotals; other exports' rows are the line items.
    lines = None
    if orders["line_items"].notna().any():
        lines = parse_woo_line_items(orders["order_id"], orders["line_items"])
        by_order = lines.assign(value=lines["quantity"] * lines["price"]).groupby(
            "order_id"
        )
        orders["n_items"] = orders["order_id"].map(by_order["quantity"].sum())
        orders["n_items"] = orders["n_items"].fillna(0.0).astype(float)
        orders["subtotal"] = orders["subtotal"].fillna(
            orders["order_id"].map(by_order["value"].sum())
        )
    orders = orders.drop(columns="line_items")
    if layout.kind == "checkouts":
        checkouts = orders.rename(columns={"order_id": "checkout_id"})
        return {"checkouts": checkouts[CHECKOUT_COLUMNS]}
    if lines is None:
        lines = _select_line_items(typed, rejected)
    return {"orders": orders[ORDER_COLUMNS], "lines": lines[LINE_COLUMNS]}


def _clean_contacts(table: pl.DataFrame) -> pl.DataFrame:
    """Return `table` with e-mails normalised (:func:`normalise_email_column`)
    and countries as codes (:func:`country_codes`): customers are matched on
    them, and pandas gets them as its text dtype, not objects."""
    countries = table["country"].drop_nulls().unique()
    codes = pl.Series(country_codes(countries.to_pandas()).tolist(), dtype=pl.String)
    return table.with_columns(
        normalise_email_column(table["email"]),
        pl.col("country").replace_strict(countries, codes, default=None),
    )


def _select_line_items(typed: pl.DataFrame, rejected: pl.DataFrame) -> pd.DataFrame:
    """Return the usable rows that hold a line item (no copy when all do)."""
    items = usable_rows(typed.select("row", *LINE_COLUMNS), rejected)
    fields = ("product", "sku", "quantity")
    has_item = items.select(
        pl.any_horizontal(pl.col(c).is_not_null() for c in fields)
    ).to_series()
    items = items if has_item.all() else items.filter(has_item)
    return items.select(LINE_COLUMNS).to_pandas()


def parse_woo_line_items(order_ids: pd.Series, packed: pd.Series) -> pd.DataFrame:
    """Return line items from WooCommerce's packed ``line_items`` cells.

    Parameters
    ----------
    order_ids, packed : Series
        The order id and its ``line_items`` text, such as
        ``name:Mug|product_id:42|sku:MUG-1|quantity:2|total:18.00;name:Tee|…``
        (items split by ``;``, fields by ``|``, reserved characters escaped with
        a backslash).

    Returns
    -------
    DataFrame
        ``order_id``, ``product``, ``sku``, ``quantity``, ``price`` (the unit
        price: the item's total divided by its quantity).
    """
    records = []
    for order_id, text in zip(order_ids, packed, strict=True):
        if not isinstance(text, str):
            continue
        for item in re.split(r"(?<!\\);", text):
            pairs = dict(
                part.split(":", 1) for part in re.split(r"(?<!\\)\|", item)
                if ":" in part
            )  # fmt: skip
            values = {k.strip(): v.replace("\\", "").strip() for k, v in pairs.items()}
            quantity = pd.to_numeric(values.get("quantity"), errors="coerce")
            total = pd.to_numeric(values.get("total"), errors="coerce")
            records.append({
                "order_id": order_id, "product": values.get("name"),
                "sku": values.get("sku") or None, "quantity": quantity,
                "price": total / quantity if quantity else np.nan,
            })  # fmt: skip
    return pd.DataFrame(records, columns=LINE_COLUMNS)


# --------------------------------------------------------------------------------
# Customers: one row per person, consent and do-not-call
# --------------------------------------------------------------------------------

STATUS_RANK = {status: rank for rank, status in enumerate(phones.PHONE_STATUSES)}
SOURCE_RANK = {"customers": 0, "orders": 1, "checkouts": 2}
CANDIDATE_COLUMNS = [
    "source", "email", "customer_id", "first_name", "last_name", "country", "zip",
    "phone_raw", "accepts_email_marketing", "accepts_sms_marketing", "tags",
    "seen_at",
]  # fmt: skip
CANDIDATE_TYPES = {
    **dict.fromkeys(CANDIDATE_COLUMNS, pl.String),
    "accepts_email_marketing": pl.Boolean,
    "accepts_sms_marketing": pl.Boolean,
    "seen_at": pl.Datetime("us", "UTC"),
}
CONSENT_COLUMNS = ["accepts_email_marketing", "accepts_sms_marketing"]
DETAIL_COLUMNS = [
    "email", "customer_id", "first_name", "last_name", "country", "zip", "tags",
]  # fmt: skip
PHONE_COLUMNS = [
    "phone_e164", "phone_national", "phone_extension", "phone_status",
    "is_callable", "timezone",
]  # fmt: skip


def gather_candidates(
    customer_rows: pd.DataFrame, orders: pd.DataFrame, checkouts: pd.DataFrame
) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """Return one row per customer record or distinct order/checkout identity.

    Orders and checkouts contribute one row per distinct (e-mail, customer id,
    phone), with the latest name, country and marketing choice seen, so cart
    abandoners without an account still become customers. E-mails are taken as
    they come: the reader has normalised them (:func:`normalise_email_column`).

    Returns
    -------
    candidates : polars DataFrame
        :data:`CANDIDATE_COLUMNS`, one row per record or identity; customer
        records have no ``seen_at``.
    positions : dict
        ``orders`` and ``checkouts``: each table row's candidate row number.
    """
    frames = [_polars_columns(customer_rows, CANDIDATE_TYPES).with_columns(
        pl.lit("customers").alias("source")
    )]  # fmt: skip
    positions, offset = {}, len(customer_rows)
    for source, table in (("orders", orders), ("checkouts", checkouts)):
        if table.empty:
            positions[source] = np.zeros(0, dtype=int)
            continue
        latest, positions[source] = _identities(table)
        positions[source] += offset
        frames.append(latest.with_columns(pl.lit(source).alias("source")))
        offset += len(latest)
    candidates = pl.concat(
        [_polars_columns(frame, CANDIDATE_TYPES) for frame in frames], how="vertical"
    )
    candidates = candidates.with_columns(_usable_ids(candidates["customer_id"]))
    return candidates, positions


def _usable_ids(ids: pl.Series) -> pl.Series:
    """Return platform customer ids, null where a spreadsheet damaged them: one
    id shown as 7.00001E+12 stands for many customers, who must not merge."""
    damaged = (
        ids.str.contains(phones.SCIENTIFIC) | ids.str.contains(phones.FLOAT_LIKE)
    ).fill_null(False)
    if damaged.any():
        log.warning(
            "%d customer ids were damaged by a spreadsheet (such as %s) and are "
            "not used to match customers; export the file again and do not save "
            "it from Excel", int(damaged.sum()), ids.filter(damaged)[0],
        )  # fmt: skip
    return (
        pl.select(pl.when(pl.lit(damaged)).then(None).otherwise(pl.lit(ids)))
        .to_series()
        .alias(ids.name)
    )


def _polars_columns(table, types: dict) -> pl.DataFrame:
    """Return `types`' columns of a pandas or polars table as polars, typed;
    a column the table lacks is all null."""
    n = len(table)
    columns = []
    for name, dtype in types.items():
        if name not in table.columns:
            columns.append(pl.Series(name, [None] * n, dtype=dtype))
        elif isinstance(table, pl.DataFrame):
            columns.append(table[name].cast(dtype))
        elif dtype == pl.String:
            values = table[name].astype("string")
            columns.append(pl.from_pandas(values).cast(pl.String).alias(name))
        elif table[name].dtype != object:
            columns.append(pl.from_pandas(table[name]).cast(dtype).alias(name))
        else:
            values = table[name].where(table[name].notna(), None)
            columns.append(pl.Series(name, values.tolist(), dtype=dtype))
    return pl.DataFrame(columns)


def _identities(table: pd.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """Return one row per distinct (e-mail, customer id, phone) of an orders or
    checkouts table with its latest details (the name also split at its first
    space into ``first_name`` and ``last_name``), and each table row's identity."""
    keys = ["email", "customer_id", "phone_raw"]
    types = {
        **dict.fromkeys([*keys, "name", "country"], pl.String),
        "accepts_marketing": pl.Boolean,
        "created_at": pl.Datetime("us", "UTC"),
    }
    frame = _polars_columns(table, types).with_row_index("position")
    latest = (
        frame.sort("created_at", nulls_last=False, maintain_order=True)
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("name").last(), pl.col("country").last(),
            pl.col("accepts_marketing").last().alias("accepts_email_marketing"),
            pl.col("created_at").max().alias("seen_at"), pl.col("position"),
        )
    )  # fmt: skip

    # Each row's identity from the rows each identity gathered: no join back
    # on the three text keys.
    positions = number_rows_by_group(latest["position"])

    # A name splits at its first space, into first and last name.
    names = pl.col("name").str.splitn(" ", 2)
    latest = latest.drop("position").with_columns(
        first_name=names.struct.field("field_0"),
        last_name=names.struct.field("field_1"),
    )
    return latest, positions


def link_candidates(candidates: pl.DataFrame) -> np.ndarray:
    """Return a customer number per candidate: rows sharing an e-mail, a callable
    E.164 phone or a platform customer id are one customer (transitively)."""
    usable_phone = pl.when(pl.col("phone_status").is_in(["valid", "possible"])).then(
        pl.col("phone_e164")
    )
    # Star each group: every row linked to the group's first row. Lazy and
    # collected together: eager calls cost about half as much CPU again.
    stars = [
        candidates.lazy()
        .select(key.alias("key"))
        .with_row_index("row")
        .filter(pl.col("key").is_not_null())
        .select("row", pl.col("row").min().over("key").alias("first"))
        for key in (pl.col("email"), usable_phone, pl.col("customer_id"))
    ]
    linked = pl.concat(pl.collect_all(stars))
    return connected_labels(
        len(candidates),
        linked["row"].to_numpy().astype(np.int64),
        linked["first"].to_numpy().astype(np.int64),
    )


def connected_labels(n: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Return for each of `n` nodes the smallest node number in its component.

    Union-find by repeated minimum-label propagation along the edges with pointer
    jumping; it converges in a few rounds for the star-shaped groups built here.
    """
    labels = np.arange(n)
    while True:
        lowest = np.minimum(labels[starts], labels[ends])
        updated = labels.copy()
        np.minimum.at(updated, starts, lowest)
        np.minimum.at(updated, ends, lowest)
        updated = updated[updated]  # jump to the label's own label
        if np.array_equal(updated, labels):
            return labels
        labels = updated


def build_customers(
    candidates: pl.DataFrame, *, config: dict, do_not_call: pd.DataFrame
) -> tuple[pd.DataFrame, pl.Series]:
    """Return deduplicated customers and each candidate's customer_key.

    Parameters
    ----------
    candidates : polars DataFrame
        From :func:`gather_candidates`, with the columns of
        :func:`helpers.phones.normalise_phone_texts` added.
    config : dict
        The study's merged configuration (``study``, ``consent``).
    do_not_call : DataFrame
        ``phone_e164``, ``email``, ``customer_key`` to exclude.

    Returns
    -------
    customers : DataFrame
        Columns in :data:`CUSTOMER_COLUMNS`, one row per customer, in the order
        of each customer's first candidate.
    keys : polars Series
        ``customer_key`` per candidate row.
    """
    # Each candidate's customer and the ranks its details and phone sort by.
    col = pl.col
    frame = candidates.with_columns(
        pl.Series("component", link_candidates(candidates)),
        col("source").replace_strict(SOURCE_RANK, return_dtype=pl.Int8)
        .alias("source_rank"),
        col("phone_status").replace_strict(STATUS_RANK, default=None,
                                           return_dtype=pl.Int8).alias("rank"),
    )  # fmt: skip

    # One row per customer: its details, then its best phone.
    details = _merge_details(frame, config=config, do_not_call=do_not_call)
    _warn_shared_identities(details["n_emails"])
    customers = details.join(_pick_phones(frame), on="component").sort("component")
    customers = customers.with_columns(_keys(customers))
    customers = _consent(customers, config, do_not_call)
    customers = _fill_timezones(customers, config)

    # Each candidate's key, and the table in pandas' dtypes.
    keys = frame.select("component").join(
        customers.select("component", "customer_key"), on="component",
        how="left", maintain_order="left",
    )["customer_key"]  # fmt: skip
    table = customers.select(CUSTOMER_COLUMNS).to_pandas()
    for column in ("accepts_email_marketing", "accepts_sms_marketing"):
        table[column] = table[column].astype("boolean")
    table["n_merged"] = table["n_merged"].astype("int64")
    return table, keys


def _first_values(columns) -> list[pl.Expr]:
    """Return each column's first non-blank value, as pandas' groupby().first()."""
    return [pl.col(c).first(ignore_nulls=True).alias(c) for c in columns]


def _merge_details(
    frame: pl.DataFrame, *, config: dict, do_not_call: pd.DataFrame
) -> pl.DataFrame:
    """Return per ``component`` its details (:data:`DETAIL_COLUMNS`: the customers
    export first, then the latest order or checkout), ``n_merged``, consent (any
    False wins), ``is_do_not_call`` and ``n_emails``."""
    col = pl.col

    # The columns the records give, sorted in details order (customers export
    # first, then the latest order or checkout). Consent and the count of
    # e-mails ride along: their totals do not depend on the order.
    records = frame.select(
        "component", "source_rank", "seen_at", *DETAIL_COLUMNS, *CONSENT_COLUMNS,
        _is_listed(frame, config, do_not_call).alias("is_listed"),
        # An e-mail links all its rows into one customer, so its first row
        # counts it once there.
        (col("email").is_first_distinct() & col("email").is_not_null())
        .alias("is_new_email"),
    )  # fmt: skip
    return (
        records.sort(["source_rank", "seen_at"], descending=[False, True],
                     nulls_last=True, maintain_order=True)
        .group_by("component").agg(
            *_first_values(DETAIL_COLUMNS), pl.len().alias("n_merged"),
            # Any False wins over True; no recorded choice stays unknown.
            *[col(c).min() for c in CONSENT_COLUMNS],
            col("is_listed").any().alias("is_do_not_call"),
            col("is_new_email").sum().alias("n_emails"),
        )
    )  # fmt: skip


def _pick_phones(frame: pl.DataFrame) -> pl.DataFrame:
    """Return per ``component`` the :data:`PHONE_COLUMNS` of the most usable
    number any record gives, ties broken by source (customers export first)."""
    records = frame.select("component", "rank", "source_rank", *PHONE_COLUMNS)
    return (
        records.sort(["rank", "source_rank"], nulls_last=True, maintain_order=True)
        .group_by("component").agg(*_first_values(PHONE_COLUMNS))
    )  # fmt: skip


SHARED_PHONE_EMAILS = 3  # e-mails one customer may gather before a warning


def _warn_shared_identities(n_emails: pl.Series) -> None:
    """Warn when one phone or customer id joins several e-mail addresses (the
    count per customer): a household, or the store's own number typed on
    counter sales, whose orders then count as one customer's."""
    shared = n_emails.filter(n_emails >= SHARED_PHONE_EMAILS)
    if len(shared):
        log.warning(
            "%d customer(s) each merge %d or more e-mail addresses (at most %d) "
            "through one phone or customer id, perhaps the store's own number; "
            "their orders count as one customer's: check n_merged in "
            "customers_customer.parquet",
            len(shared), SHARED_PHONE_EMAILS, int(shared.max()),
        )  # fmt: skip


def _keys(customers: pl.DataFrame) -> pl.Series:
    """Return customer_key from the e-mail, else the E.164 phone, else the id.

    The platform id is hashed as ``id:<id>`` so that an id can never stand for
    the same identity as an e-mail or a phone number.
    """
    identity = customers.select(
        pl.coalesce(
            "email",
            pl.when(pl.col("phone_status") != "invalid").then("phone_e164"),
            pl.concat_str(pl.lit("id:"), "customer_id"),
        )
    ).to_series()
    keys = privacy.customer_keys(identity.to_list())
    return pl.Series("customer_key", keys, dtype=pl.String)


def _is_listed(frame: pl.DataFrame, config: dict, do_not_call) -> pl.Series:
    """Return whether each record carries the do-not-call tag, or its phone or
    e-mail is on the do-not-call list."""
    tag = str((config.get("consent") or {}).get("do_not_call_tag") or "").casefold()
    listed_phones, listed_emails = (
        pl.Series(do_not_call[c].dropna().tolist(), dtype=pl.String).implode()
        for c in ("phone_e164", "email")
    )
    return frame.select(
        pl.lit(_tag_column(frame["tags"], tag))
        | pl.col("phone_e164").is_in(listed_phones).fill_null(False)
        | pl.col("email").is_in(listed_emails).fill_null(False)
    ).to_series()


def _consent(customers: pl.DataFrame, config, do_not_call) -> pl.DataFrame:
    """Return customers with a do-not-call flag that also holds for a listed
    customer_key, and ``has_consent`` by the study's consent rule."""
    col = pl.col
    consent_config = config.get("consent") or {}
    listed_keys = pl.Series(
        do_not_call["customer_key"].dropna().tolist(), dtype=pl.String
    )
    customers = customers.with_columns(
        (col("is_do_not_call") | col("customer_key").is_in(listed_keys.implode()))
        .alias("is_do_not_call")
    )  # fmt: skip
    rule = consent_config.get("require", "accepts_marketing")
    required = {
        "accepts_marketing": "accepts_email_marketing",
        "accepts_sms": "accepts_sms_marketing",
    }
    consent = col(required[rule]).fill_null(False) if rule in required else pl.lit(True)
    return customers.with_columns(consent.alias("has_consent"))


def _tag_column(tags: pl.Series, tag: str) -> pl.Series:
    """Return :func:`_has_tag` for a polars column, once per distinct tag list."""
    if not tag:
        return pl.Series([False] * len(tags), dtype=pl.Boolean)
    distinct = tags.unique().drop_nulls().to_list()
    found = _has_tag(pd.Series(distinct, dtype=object), tag)
    tagged = [value for value, has in zip(distinct, found, strict=True) if has]
    return tags.is_in(pl.Series(tagged, dtype=pl.String).implode()).fill_null(False)


def _has_tag(tags: pd.Series, tag: str) -> pd.Series:
    """Return whether a comma-separated tag list holds `tag` (any case)."""
    if not tag:
        return pd.Series(False, index=tags.index)
    pattern = rf"(?:^|,)\s*{re.escape(tag)}\s*(?:,|$)"
    text = tags.astype("string").str.casefold()
    return text.str.contains(pattern, regex=True).fillna(False).astype(bool)


def _fill_timezones(customers: pl.DataFrame, config: dict) -> pl.DataFrame:
    """Return customers with a time zone from the phone, country or the store.

    A number or a country spanning several UTC offsets gives no zone (see
    :func:`helpers.phones.agreed_zone`); the study's zone then stands in and
    ``is_timezone_assumed`` is True, so the call list can say so.
    """
    study_zone = (config.get("study") or {}).get("timezone")
    countries = customers["country"].unique().drop_nulls().to_list()
    zones = pl.DataFrame(
        {"country": countries, "zone": [phones.zone_for_country(c) for c in countries]},
        schema={"country": pl.String, "zone": pl.String},
    )
    customers = customers.join(zones, on="country", how="left", maintain_order="left")
    from_country = pl.col("zone")
    zone = pl.coalesce("timezone", from_country, pl.lit(study_zone, pl.String))
    assumed = pl.col("timezone").is_null() & from_country.is_null()
    return customers.with_columns(
        zone.alias("timezone"), assumed.alias("is_timezone_assumed")
    ).drop("zone")


def country_codes(countries: pd.Series) -> pd.Series:
    """Return ISO 3166 alpha-2 codes for country codes or English country names.

    Two-letter values are upper-cased; names (``United Kingdom``) are looked up
    in Babel's English territory names when Babel is installed. Anything else
    becomes None.
    """
    codes, distinct = pd.factorize(countries, use_na_sentinel=True)
    names = _territory_codes()
    mapped = []
    for value in distinct:
        text = str(value).strip()
        if len(text) == 2 and text.isalpha():
            mapped.append(text.upper())
        else:
            mapped.append(names.get(text.casefold()))
    lookup = np.array([*mapped, None], dtype=object)
    return pd.Series(lookup[codes], index=countries.index, dtype=object)


def _territory_codes() -> dict[str, str]:
    try:
        from babel import Locale
    except ImportError:  # Babel is optional: names then stay unknown
        return {}
    territories = Locale("en").territories
    return {
        name.casefold(): code
        for code, name in territories.items()
        if len(code) == 2 and code.isalpha()
    }


# --------------------------------------------------------------------------------
# A month's exports
# --------------------------------------------------------------------------------

DO_NOT_CALL_FILE = "do-not-call.csv"
DO_NOT_CALL_REQUESTS = "do-not-call-requests_customer.parquet"


def load_do_not_call(
    study: Study,
    *,
    customers: pd.DataFrame | None = None,
    before: str | None = None,
):
    """Return everyone who must not be called.

    Parameters
    ----------
    study : Study
        The study; its raw ``do-not-call.csv`` (``phone`` in any format, optional
        ``email``) and the processed ``do-not-call-requests_customer.parquet``
        (``customer_key``) of every month before `before` are read.
    customers : DataFrame, optional
        Customer records with ``tags``, ``email``, ``phone_e164`` and
        ``customer_key``; those tagged with ``consent.do_not_call_tag`` are added.
    before : str, optional
        ``YYYY-MM``: requests made during this month's own calls or later are
        left out, so re-running a month draws the call list it drew the first
        time. Every month's requests count when omitted.

    Returns
    -------
    DataFrame
        ``phone_e164``, ``email`` (normalised), ``customer_key``; any may be
        None. Match customers on E.164, e-mail or customer_key.
    """
    config = study.config
    frames = [_raw_do_not_call(study)]
    tag = str((config.get("consent") or {}).get("do_not_call_tag") or "").casefold()
    if customers is not None and tag:
        tagged = customers[_has_tag(customers["tags"], tag).to_numpy()]
        frames.append(tagged.reindex(columns=["phone_e164", "email", "customer_key"]))
    for path in sorted(study.processed_root.glob(f"*/{DO_NOT_CALL_REQUESTS}")):
        if before is not None and path.parent.name >= before:
            continue
        requests = pd.read_parquet(path, columns=["customer_key"])
        frames.append(requests.assign(phone_e164=None, email=None))
    columns = ["phone_e164", "email", "customer_key"]
    listed = pd.concat([f.reindex(columns=columns) for f in frames], ignore_index=True)
    listed = listed.astype(object).where(listed.notna(), None).drop_duplicates()
    log.info("do-not-call: %d entries", len(listed))
    return listed.reset_index(drop=True)


def _raw_do_not_call(study: Study) -> pd.DataFrame:
    """Return the raw do-not-call list with phones in E.164 and keys."""
    path = study.raw(DO_NOT_CALL_FILE)
    columns = ["phone_e164", "email", "customer_key"]
    if not path.exists():
        return pd.DataFrame(columns=columns)
    fmt = sniff_file(path)
    with open_raw(path) as handle:
        listed = pd.read_csv(
            handle, dtype=str, sep=fmt.delimiter, encoding=fmt.encoding,
            keep_default_na=False,
        )  # fmt: skip
    listed.columns = [normalise_header(c) for c in listed.columns]
    if "phone" not in listed and "email" not in listed:
        raise HeardInputError(
            path, row=1, expected="a 'phone' column (and optionally 'email')",
            found=list(listed.columns), fix="name the phone column 'phone'",
        )  # fmt: skip
    region = (study.config.get("study") or {}).get("default_country")
    phone = listed.get("phone", pd.Series(None, index=listed.index, dtype=object))
    regions = pd.Series(region, index=listed.index, dtype=object)
    if "country" in listed:
        regions = country_codes(listed["country"].replace("", None)).fillna(region)
    numbers = phones.normalise_phones(phone, regions, keep="possible")
    _refuse_unmatched(path, phone, numbers["phone_e164"], region)
    email = normalise_emails(listed.get("email", pd.Series(None, index=listed.index)))
    identity = email.fillna(numbers["phone_e164"])
    return pd.DataFrame({
        "phone_e164": numbers["phone_e164"], "email": email,
        "customer_key": privacy.customer_keys(identity.tolist()),
    })  # fmt: skip


def _refuse_unmatched(path: Path, phone: pd.Series, e164: pd.Series, region) -> None:
    """Raise when a listed phone gives no E.164: it could keep no one off a list."""
    unread = (phone.fillna("").astype(str).str.strip() != "") & e164.isna()
    if unread.any():
        first = int(np.flatnonzero(unread.to_numpy())[0])
        raise HeardInputError(
            path, row=first + 2, column="phone",
            expected=f"a phone number readable in E.164 (default country {region})",
            found=f"{phone.iloc[first]} ({int(unread.sum())} such row(s))",
            fix="write the number with its country code (+44 7700 900123), or add "
            "a 'country' column; an unread number would be called",
        )  # fmt: skip


def load_store_exports(study: Study, month: str, *, as_of=None) -> StoreExports:
    """Read every export of a month into orders, lines, checkouts and customers.

    Parameters
    ----------
    study : Study
        The study (its ``exports``, ``phones``, ``consent`` and ``study``
        settings apply).
    month : str
        ``YYYY-MM``: the files in ``data/raw/<study>/exports/<month>/`` are read.
    as_of : Timestamp, optional
        Dates after it are rejected as in the future; now when omitted.

    Returns
    -------
    StoreExports
        ``orders``, ``lines``, ``customers``, ``checkouts``, ``rejected`` and
        ``read_log``, as documented on :class:`StoreExports`.

    Raises
    ------
    HeardInputError
        When the folder holds no export, or a file cannot be read (see
        :func:`read_export`).

    Notes
    -----
    The same order in two files (overlapping exports) is kept once, from the
    first file by name. Customers are deduplicated on normalised e-mail, phone
    and platform id; the strictest marketing consent and any do-not-call flag
    win. The phone rule (``phones.keep``) decides ``is_callable``.
    """
    check_month(month)
    files = _export_files(study, month)
    (orders, lines, checkouts, customer_rows), rejected, read_log = _read_exports(
        study, files, as_of=as_of
    )
    customers, orders, checkouts = _customers_and_keys(
        study, month, customer_rows, orders, checkouts
    )
    log.info(
        "%s %s: %d orders, %d lines, %d checkouts, %d customers, %d rejected rows",
        study.name, month, len(orders), len(lines), len(checkouts),
        len(customers), len(rejected),
    )  # fmt: skip
    checkouts = _blank_as_none(checkouts)
    customers = validate(customers, CUSTOMERS, file=study.raw("exports", month))
    return StoreExports(
        orders.reset_index(drop=True), lines.reset_index(drop=True),
        customers, checkouts.reset_index(drop=True), rejected, read_log,
    )  # fmt: skip


def _read_exports(study: Study, files: list[Path], *, as_of):
    """Return the files' orders, lines, checkouts and customer rows combined,
    their rejected rows and the read log.

    The biggest file (the orders) is read first, so that the memory its read
    needs for a while does not come on top of the other files' tables; the
    files are then taken in name order. Each file's own tables go when this
    returns: held next to the combined copies, they would add to the customers'
    stage, the step's peak memory.
    """
    biggest_first = sorted(files, key=lambda path: path.stat().st_size, reverse=True)
    by_path = {
        path: read_export(path, config=study.config, as_of=as_of)
        for path in biggest_first
    }
    read = [by_path[path] for path in files]
    orders, lines = _first_copy_of_orders(read)
    checkouts = _drop_repeats(
        _concat(read, "checkouts", CHECKOUT_COLUMNS), "checkout_id"
    )
    customer_rows = _concat(read, "customers", CUSTOMER_SQL_COLUMNS)
    rejected = pd.concat([r.rejected for r in read], ignore_index=True).reindex(
        columns=REJECTED_COLUMNS
    )
    read_log = pd.DataFrame([r.log for r in read])
    return (orders, lines, checkouts, customer_rows), rejected, read_log


CUSTOMER_SQL_COLUMNS = [
    "email", "customer_id", "first_name", "last_name", "country", "zip",
    "phone_raw", "accepts_email_marketing", "accepts_sms_marketing", "tags",
]  # fmt: skip


def _blank_as_none(table: pd.DataFrame) -> pd.DataFrame:
    """Return `table` with text columns as objects holding None where blank."""
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object or pd.api.types.is_string_dtype(table[column]):
            values = table[column].astype(object)
            table[column] = values.where(values.notna(), None)
    return table


def _export_files(study: Study, month: str) -> list[Path]:
    folder = study.raw("exports", month)
    files = sorted(
        p for p in folder.glob("*")
        if p.suffix.lower() in EXPORT_SUFFIXES and not p.name.startswith((".", "~$"))
    ) if folder.is_dir() else []  # fmt: skip
    if not files:
        raise HeardInputError(
            folder, expected="store exports (CSV or XLSX)", found="no export files",
            fix="download the customers, orders and abandoned checkouts exports "
            "into this folder",
        )  # fmt: skip
    return files


def _concat(read: list[ExportFile], name: str, columns: list[str]) -> pd.DataFrame:
    frames = [r.tables[name] for r in read if name in r.tables]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _first_copy_of_orders(read: list[ExportFile]):
    """Return orders and lines, each order from the first file (by name) that has
    it: overlapping exports must not double an order or its items."""
    files = [r for r in read if "orders" in r.tables]
    if not files:
        return pd.DataFrame(columns=ORDER_COLUMNS), pd.DataFrame(columns=LINE_COLUMNS)
    if len(files) == 1:
        return files[0].tables["orders"], files[0].tables["lines"]
    orders = pd.concat(
        [r.tables["orders"].assign(file_number=i) for i, r in enumerate(files)],
        ignore_index=True,
    )
    lines = pd.concat(
        [r.tables["lines"].assign(file_number=i) for i, r in enumerate(files)],
        ignore_index=True,
    )
    # pd.concat makes objects of categories that differ between files.
    lines = lines.astype({"product": "category", "sku": "category"})
    repeated = orders["order_id"].duplicated(keep="first")
    if repeated.any():
        log.warning(
            "%d orders appear in more than one file; kept each from the first",
            int(repeated.sum()),
        )
        orders = orders[~repeated]
        lines = lines.merge(orders[["order_id", "file_number"]], how="inner")
    return orders.drop(columns="file_number"), lines.drop(columns="file_number")


def _drop_repeats(table: pd.DataFrame, id_column: str) -> pd.DataFrame:
    repeated = table.duplicated(id_column, keep="first")
    if repeated.any():
        log.warning(
            "%d %s values appear in more than one file; kept the first",
            int(repeated.sum()), id_column,
        )  # fmt: skip
    return table[~repeated].copy()


def _customers_and_keys(study, month, customer_rows, orders, checkouts):
    """Return customers, and orders and checkouts with their customer_key."""
    config = study.config
    candidates, positions = gather_candidates(customer_rows, orders, checkouts)
    identified = candidates.select(
        pl.any_horizontal(
            pl.col(c).is_not_null() for c in ("email", "customer_id", "phone_raw")
        )
    ).to_series()
    known = candidates.filter(identified)
    default_region = (config.get("study") or {}).get("default_country")
    keep = (config.get("phones") or {}).get("keep", "possible")
    numbers = phones.normalise_phone_texts(
        known["phone_raw"],
        known["country"].fill_null(pl.lit(default_region, pl.String)),
        keep=keep,
    )
    known = known.hstack(numbers.drop("phone_region"))
    do_not_call = load_do_not_call(study, before=month)
    customers, keys = build_customers(known, config=config, do_not_call=do_not_call)
    damaged = int((customers["phone_status"] == "damaged").sum())
    if damaged:
        log.warning(
            "%d customer(s) have only a phone number a spreadsheet damaged "
            "(in scientific notation such as 1.2E+10, or ending in .0) and "
            "cannot be called; export the file again and do not save it from "
            "Excel", damaged,
        )  # fmt: skip

    # Each order or checkout gets the key of its identity's customer.
    all_keys = pl.Series("customer_key", [None] * len(candidates), dtype=pl.String)
    all_keys = all_keys.scatter(identified.arg_true(), keys)
    orders = orders.assign(
        customer_key=_to_pandas_text(all_keys.gather(positions["orders"]))
    )
    checkouts = checkouts.assign(
        customer_key=_to_pandas_text(all_keys.gather(positions["checkouts"]))
    )
    return customers, orders, checkouts


def _to_pandas_text(values: pl.Series) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """Return a text column as pandas infers it from Python strings and None
    (its text dtype, object when all are None), built from Arrow: converting
    each value costs about 0.15 s for 400,000 orders."""
    inferred = pd.Series([*values.drop_nulls().head(1).to_list(), None]).dtype
    if isinstance(inferred, pd.StringDtype):
        return pd.array(values.to_arrow(), dtype=inferred)
    return np.array(values.to_list(), dtype=object)

"""Study pieces for the tests that run Heard on the real public data in
``../shared/data``: the Online Retail sample as an order export read through a
column map, reviews written as conversation notes, and the Hillstrom e-mail
test's arms."""

from __future__ import annotations

import pandas as pd

RETAIL_STUDY = """\
study:
  currency: GBP
  default_country: GB
  timezone: Europe/London
exports:
  column_map:
    order_id: InvoiceNo
    sku: StockCode
    product: Description
    quantity: Quantity
    created_at: InvoiceDate
    price: UnitPrice
    customer_id: CustomerID
    country: Country
  generic:
    kind: orders
    date_format: "%Y-%m-%d %H:%M:%S"
    return_prefix: C
    missing_values: [NA]
consent:
  require: none
months:
  "2012-01":
    question: What made you stop ordering from us?
    segments: [churned, first_time_no_return]
"""
HILLSTROM_VARIANTS = [
    {"id": "control", "name": "No E-Mail", "copy": "", "quote_ids": []},
    {"id": "mens", "name": "Mens E-Mail", "copy": "", "quote_ids": []},
    {"id": "womens", "name": "Womens E-Mail", "copy": "", "quote_ids": []},
]
HILLSTROM_SPLIT = {"control": 1 / 3, "mens": 1 / 3, "womens": 1 / 3}


def hillstrom_results(file: str) -> dict:
    """Return the ``results:`` entry that reads the Hillstrom CSV row by row."""
    return {
        "file": file,
        "kind": "rows",
        "variant_column": "segment",
        "variant_map": {
            "No E-Mail": "control",
            "Mens E-Mail": "mens",
            "Womens E-Mail": "womens",
        },
        "column_map": {
            "revenue": "spend",
            "converted": "conversion",
            "visited": "visit",
        },
    }


def write_review_notes(
    reviews: pd.DataFrame, folder, *, month: str, keys: list[str], segments: tuple
) -> None:
    """Write each review as one conversation note of customer ``keys[i]``, in the
    first of `segments` when rated 3 or less, else in the second."""
    folder.mkdir(parents=True)
    for index, review in reviews.iterrows():
        segment = segments[0] if review["Rating"] <= 3 else segments[1]
        text = " ".join(str(review["Review Text"]).split())
        (folder / f"r-{index:03d}.md").write_text(
            "---\n"
            f"conversation_id: r-{index:03d}\n"
            f"customer_key: {keys[index]}\n"
            f"date: {month}-{1 + index % 28:02d}\n"
            f"segment: {segment}\n"
            "interviewer: Notes\n"
            "consent_to_quote: true\n"
            "---\n"
            f"Customer: {text}\n",
            encoding="utf-8",
        )

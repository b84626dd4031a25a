"""Tests for helpers.exports: each export quirk against hand-checked values.

Fixtures in tests/fixtures/exports are small hand-made files, one per quirk; the
expected values in each test are worked out by hand from those rows (shown in the
comments) or computed independently from the raw file with the csv module.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import yaml

from helpers import exports, privacy
from helpers.errors import HeardInputError
from helpers.study import load_defaults, load_study, merge_config

FIXTURES = Path(__file__).parent / "fixtures" / "exports"
SHARED = Path(__file__).parents[2] / "shared" / "data"
SHOPIFY_REAL = SHARED / "shopify-dev-orders" / "orders_export_1.csv"
RETAIL_REAL = SHARED / "online-retail-sample" / "online_retail_sample.csv"
MONTH = "2026-11"
AS_OF = "2026-12-01"


@pytest.fixture(autouse=True)
def pseudonym_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARD_KEY_FILE", str(tmp_path / "pseudonym.key"))


def make_study(tmp_path, files, config=None, *, do_not_call=None):
    """Lay out a study folder with the given fixture files as one month's exports."""
    raw = tmp_path / "raw" / "shop"
    month_dir = raw / "exports" / MONTH
    month_dir.mkdir(parents=True)
    for file in files:
        shutil.copy(file if Path(file).is_absolute() else FIXTURES / file, month_dir)
    (raw / "study.yml").write_text(yaml.safe_dump(config or {}), encoding="utf-8")
    if do_not_call is not None:
        (raw / "do-not-call.csv").write_text(do_not_call, encoding="utf-8")
    return load_study(raw, root=tmp_path, processed_root=tmp_path / "processed")


def read(name, config=None):
    """Read one fixture with the defaults overlaid by `config`."""
    merged = merge_config(load_defaults(), config or {})
    return exports.read_export(FIXTURES / name, config=merged, as_of=AS_OF)


# Shopify orders --------------------------------------------------------------


def test_shopify_line_item_rows_collapse_to_one_order_each():
    result = read("shopify_orders_79.csv")
    orders = result.tables["orders"].set_index("order_id")

    # 5 rows: #1001 (1 row), #1002 (3 rows, order cells on the first only), #1003.
    assert list(orders.index) == ["#1001", "#1002", "#1003"]
    assert len(result.tables["lines"]) == 5
    # #1002's items: 1 + 2 + 1; its order-level values come from its first row.
    assert orders.loc["#1002", "n_items"] == 4
    assert orders.loc["#1002", "total"] == 66.0
    assert orders.loc["#1002", "refunded_amount"] == 66.0
    assert orders.loc["#1002", "financial_status"] == "refunded"
    assert orders.loc["#1003", "is_cancelled"]
    assert not orders.loc["#1001", "is_cancelled"]
    assert result.log["layout"] == "shopify-orders-79"


def test_offsets_either_side_of_dst_become_utc():
    orders = read("shopify_orders_79.csv").tables["orders"].set_index("order_id")

    # 10:00 at -0400 (EDT, before 2 Nov 2025) is 14:00 UTC; 10:00 at -0500 (EST,
    # after) is 15:00 UTC.
    assert orders.loc["#1001", "created_at"] == pd.Timestamp("2025-11-01 14:00Z")
    assert orders.loc["#1002", "created_at"] == pd.Timestamp("2025-11-03 15:00Z")
    assert str(orders["created_at"].dt.tz) == "UTC"


def test_local_times_without_offset_use_the_store_zone_across_dst():
    config = {"study": {"timezone": "Europe/London"}}
    orders = read("woo_advanced_export.csv", config).tables["orders"]
    times = orders.set_index("order_id")["created_at"]

    # London: 23:30 on 28 March 2026 is GMT (= UTC); clocks go forward at 01:00 on
    # the 29th, so 02:30 that morning is BST, 01:30 UTC.
    assert times["2001"] == pd.Timestamp("2026-03-28 23:30Z")
    assert times["2002"] == pd.Timestamp("2026-03-29 01:30Z")


def test_older_70_column_orders_layout_is_recognised():
    result = read("shopify_orders_70.csv")

    assert result.log["layout"] == "shopify-orders-70"
    assert len(exports.SHOPIFY_ORDERS_70) == 70
    assert result.tables["orders"]["total"].tolist() == [15.5, 24.0]


def test_abandoned_checkouts_keep_the_checkout_id():
    result = read("abandoned_checkouts_export.csv")
    checkouts = result.tables["checkouts"].set_index("checkout_id")

    assert result.kind == "checkouts"
    assert list(checkouts.index) == ["#12345678", "#12345679"]
    # Second checkout: 2 mugs + 1 tee over two rows; e-mail trimmed, lower case.
    assert checkouts.loc["#12345679", "n_items"] == 3
    assert checkouts.loc["#12345679", "email"] == "ann@example.com"


def test_leading_apostrophes_are_stripped_and_zip_zeros_kept():
    orders = read("shopify_orders_79.csv").tables["orders"].set_index("order_id")
    customers = read("customers_export.csv").tables["customers"]

    assert orders.loc["#1001", "phone_raw"] == "+1 202-555-0111"
    assert customers["zip"].iloc[0] == "02134"
    assert customers["customer_id"].iloc[0] == "0070001"


def test_emails_lose_the_space_behind_a_leading_apostrophe():
    emails = pd.Series(["' Ann@Example.COM", "ann@example.com ", "'", None])
    normalised = exports.normalise_emails(emails)

    # One address however the spreadsheet kept it; blanks stay missing.
    assert normalised.iloc[:2].tolist() == ["ann@example.com"] * 2
    assert normalised.iloc[2:].isna().all()
    # Arrow-backed text, not Python objects: an order export repeats them.
    assert normalised.dtype == "str"


def test_the_reader_normalises_emails_as_pandas_does():
    # The reader's polars pass and normalise_emails must name one person alike.
    typed = ["' Ann@Example.COM", "\u00a0Jo.Straße@Example.de ", "'", "", None, "b@x"]
    by_polars = exports.normalise_email_column(pl.Series("email", typed))
    by_pandas = exports.normalise_emails(pd.Series(typed))
    assert by_polars.to_list() == [None if pd.isna(v) else v for v in by_pandas]
    assert by_polars.to_list()[:2] == ["ann@example.com", "jo.strasse@example.de"]


def test_rejected_rows_name_row_column_and_reason_without_values(tmp_path):
    config = {"study": {"store_opened": "2020-01-01"}}
    result = read("shopify_orders_rejected.csv", config)
    rejected = result.rejected.set_index("row")

    # Spreadsheet rows (header = 1): 3 bad date, 4 negative total, 5 no order id,
    # 6 in the future, 7 total not a number (its order's row 8 goes with it),
    # 9 before the store opened.
    assert rejected["reason"].to_dict() == {
        3: "date not understood",
        4: "negative amount",
        5: "missing order id",
        6: "date in the future",
        7: "not a number",
        8: "another row of this order was rejected",
        9: "date before the store opened (study.store_opened)",
    }
    assert rejected.loc[3, "column"] == "Created at"
    assert rejected.loc[4, "column"] == "Total"
    assert result.tables["orders"]["order_id"].tolist() == ["#9001"]
    assert list(result.rejected.columns) == ["file", "row", "column", "reason"]
    assert "ten" not in result.rejected.to_string()


# WooCommerce -----------------------------------------------------------------


def test_orders_split_between_batches_are_read_as_in_one(monkeypatch):
    # Order #1002's three rows fall into two batches of two rows.
    whole = read("shopify_orders_79.csv")
    monkeypatch.setattr(exports, "BATCH_ROWS", 2)
    split = read("shopify_orders_79.csv")
    for name in ("orders", "lines"):
        pd.testing.assert_frame_equal(split.tables[name], whole.tables[name])


def test_woo_advanced_export_repeats_order_fields_on_each_item():
    result = read("woo_advanced_export.csv")
    orders = result.tables["orders"].set_index("order_id")

    # Order 2001: two rows, both carrying the order total 31.00; items 2 + 1.
    assert orders.loc["2001", "total"] == 31.0
    assert orders.loc["2001", "n_items"] == 3
    assert orders.loc["2001", "name"] == "Ria Sen"
    assert orders.loc["2001", "phone_raw"] == "+44 7700 900789"
    assert orders.loc["2002", "is_cancelled"]
    assert orders.loc["2002", "financial_status"] == "cancelled"


def test_woo_csv_export_one_row_per_item():
    orders = read("woo_csv_export_items.csv").tables["orders"]

    assert orders["order_id"].tolist() == ["3001"]
    assert orders["n_items"].tolist() == [3.0]
    assert orders["customer_id"].tolist() == ["17"]
    assert orders["currency"].tolist() == ["EUR"]


def test_woo_csv_export_one_row_per_order_unpacks_line_items():
    result = read("woo_csv_export_orders.csv")
    lines = result.tables["lines"]
    orders = result.tables["orders"]

    # name:Mug|…|quantity:2|total:18.00 ; name:Tee\; blue|…|quantity:1|total:18.00
    assert lines["product"].tolist() == ["Mug", "Tee; blue"]
    assert lines["price"].tolist() == [9.0, 18.0]
    assert orders["n_items"].tolist() == [3.0]
    assert orders["subtotal"].tolist() == [36.0]


@pytest.mark.parametrize(
    ("status", "purchased"),
    [("completed", True), ("failed", False), ("cancelled", False),
     ("checkout-draft", False), ("processing", True)],
)  # fmt: skip
def test_woo_orders_that_failed_or_were_cancelled_are_no_purchase(
    tmp_path, status, purchased
):
    # A failed payment is a cart abandoner's order, not a first purchase.
    text = (FIXTURES / "woo_csv_export_orders.csv").read_text()
    path = tmp_path / "woo_csv_export_orders.csv"
    path.write_text(text.replace(",completed,", f",{status},", 1))
    merged = merge_config(load_defaults(), {})
    orders = exports.read_export(path, config=merged, as_of=AS_OF).tables["orders"]
    assert orders["is_cancelled"].tolist() == [not purchased]


# Encodings, delimiters, declared conventions ----------------------------------


@pytest.mark.parametrize(
    ("name", "encoding", "delimiter"),
    [
        ("customers_cp1252_semicolon.csv", "cp1252", ";"),
        ("customers_bom_tab.csv", "utf-8-sig", "\t"),
    ],
)
def test_encoding_and_delimiter_are_detected(name, encoding, delimiter):
    result = read(name)
    customers = result.tables["customers"]

    assert (result.log["encoding"], result.log["delimiter"]) == (encoding, delimiter)
    assert customers["first_name"].tolist() == ["Zoë", "José"]
    assert customers["zip"].tolist() == ["01067", "08001"]


GENERIC_MAP = {
    "column_map": {
        "order_id": "Order",
        "created_at": "Date",
        "total": "Amount",
        "email": "Email",
    }
}


def test_decimal_comma_is_an_error_unless_declared():
    with pytest.raises(HeardInputError) as caught:
        read("orders_decimal_comma.csv", {"exports": GENERIC_MAP})
    assert "exports.decimal" in str(caught.value)
    assert "row 2" in str(caught.value)

    declared = {"exports": {**GENERIC_MAP, "decimal": ","}}
    read_file = read("orders_decimal_comma.csv", declared)
    assert (read_file.log["decimal"], read_file.log["dates"]) == (",", "ISO")
    assert read_file.tables["orders"]["total"].tolist() == [12.5, 1299.0]


def test_declared_decimal_comma_leaves_a_shopify_exports_dot_decimals_alone():
    # One study, two files: a generic one with decimal commas, Shopify's own with
    # dots. '25.00' has no thousands group, so it is never read as 2500.
    declared = {"exports": {**GENERIC_MAP, "decimal": ","}}
    shopify = read("shopify_orders_79.csv", declared).tables["orders"]
    plain = read("shopify_orders_79.csv").tables["orders"]
    assert shopify["total"].tolist() == plain["total"].tolist() == [25.0, 66.0, 10.0]
    generic = read("orders_decimal_comma.csv", declared).tables["orders"]
    assert generic["total"].tolist() == [12.5, 1299.0]


def test_grouped_decimal_comma_is_an_error_unless_declared(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("Order;Date;Amount;Email\nA1;2026-01-05 10:00;€1.299,00;a@x.com\n")
    merged = merge_config(load_defaults(), {"exports": GENERIC_MAP})
    with pytest.raises(HeardInputError) as caught:
        exports.read_export(path, config=merged, as_of=AS_OF)
    assert (caught.value.row, caught.value.column) == (2, "Amount")
    assert "exports.decimal" in caught.value.fix


def test_day_first_dates_are_an_error_unless_declared():
    with pytest.raises(HeardInputError) as caught:
        read("orders_dayfirst.csv", {"exports": GENERIC_MAP})
    # Detected, named, and still not applied until the study declares it.
    assert caught.value.fix.endswith(
        "(exports.dayfirst: true; the file's dates look day first, e.g. "
        "13/04/2026 10:00)"
    )

    declared = {"exports": {**GENERIC_MAP, "dayfirst": True}}
    read_file = read("orders_dayfirst.csv", declared)
    assert read_file.log["dates"] == "day first"  # what was used is logged
    orders = read_file.tables["orders"]
    # 03/04/2026 day first is 3 April; 10:00 in New York (EDT) is 14:00 UTC.
    assert orders["created_at"].tolist() == [
        pd.Timestamp("2026-04-03 14:00Z"),
        pd.Timestamp("2026-04-13 14:00Z"),
    ]


def test_unknown_header_lists_columns_and_closest_layout():
    with pytest.raises(HeardInputError) as caught:
        read("unknown_header.csv")
    message = str(caught.value)

    assert "['Invoice', 'When', 'Buyer', 'Sum']" in message
    assert "closest known layout is" in message
    assert "exports.column_map" in message


def test_header_names_match_case_and_spaces_insensitively(tmp_path):
    source = (FIXTURES / "shopify_orders_70.csv").read_text(encoding="utf-8")
    header, rest = source.split("\n", 1)
    shouted = ",".join(f"  {name.upper()} " for name in header.split(","))
    path = tmp_path / "orders_export.csv"
    path.write_text("\ufeff" + shouted + "\n" + rest, encoding="utf-8")

    result = exports.read_export(path, config=load_defaults(), as_of=AS_OF)
    assert result.log["layout"] == "shopify-orders-70"
    assert len(result.tables["orders"]) == 2


def test_generic_xlsx_through_column_map(tmp_path):
    path = tmp_path / "orders.xlsx"
    pd.DataFrame(
        {
            "Ref": ["007", "008"],
            "When": ["2026-01-05 10:00", "2026-01-06 11:00"],
            "Sum": ["10.50", "20.00"],
            "Mail": ["A@x.com", "b@x.com"],
        }
    ).to_excel(path, index=False)
    config = merge_config(
        load_defaults(),
        {
            "exports": {
                "column_map": {
                    "order_id": "Ref",
                    "created_at": "When",
                    "total": "Sum",
                    "email": "Mail",
                }
            }
        },
    )

    orders = exports.read_export(path, config=config, as_of=AS_OF).tables["orders"]
    assert orders["order_id"].tolist() == ["007", "008"]
    assert orders["total"].tolist() == [10.5, 20.0]
    assert orders["email"].tolist() == ["a@x.com", "b@x.com"]


def test_reader_gives_orders_matched_emails_and_country_codes(tmp_path):
    # Case-folding, not lower-casing: 'STRASSE' and 'straße' are one address.
    path = tmp_path / "orders.csv"
    path.write_text(
        "Ref,When,Sum,Mail,Land\n"
        "A1,2026-01-05 10:00,10.50,Jo.Straße@Example.de,United Kingdom\n"
        "A2,2026-01-06 11:00,20.00,'b@x.com,de\n",
        encoding="utf-8",
    )
    columns = {"order_id": "Ref", "created_at": "When", "total": "Sum",
               "email": "Mail", "country": "Land"}  # fmt: skip
    config = merge_config(load_defaults(), {"exports": {"column_map": columns}})

    orders = exports.read_export(path, config=config, as_of=AS_OF).tables["orders"]
    assert orders["email"].tolist() == ["jo.strasse@example.de", "b@x.com"]
    assert orders["country"].tolist() == ["GB", "DE"]
    assert orders["email"].dtype == orders["country"].dtype == "str"


# Customers --------------------------------------------------------------------


def test_customers_deduplicate_on_email_and_phone(tmp_path):
    study = make_study(
        tmp_path,
        ["customers_export.csv", "shopify_orders_79.csv"],
        {"study": {"default_country": "US"}},
    )
    result = exports.load_store_exports(study, MONTH, as_of=AS_OF)
    customers = result.customers.set_index("email")

    # 6 customer rows: Ann twice (e-mail case differs), Eve and Eva share a
    # phone; plus Bob from the orders only -> Ann, Eve/Eva, Sam, Kai, Bob.
    assert len(customers) == 5
    assert customers.loc["ann@example.com", "n_merged"] >= 2
    assert customers.loc["ann@example.com", "phone_e164"] == "+12025550111"
    # Ann said yes once and no once: the strictest choice wins.
    assert not customers.loc["ann@example.com", "accepts_email_marketing"]
    assert not customers.loc["ann@example.com", "has_consent"]
    # Eve and Eva are one customer; Eva's do-not-call tag covers both.
    merged = customers[customers["phone_e164"] == "+447700900456"]
    assert len(merged) == 1
    assert merged["is_do_not_call"].all()
    assert customers.loc["bob@example.com", "phone_e164"] == "+447700900123"
    assert customers.loc["bob@example.com", "timezone"] == "Europe/London"


def test_a_zone_neither_number_nor_country_gives_is_the_study_zone_flagged(tmp_path):
    study = make_study(
        tmp_path,
        ["customers_export.csv", "shopify_orders_79.csv"],
        {"study": {"default_country": "US", "timezone": "Europe/Berlin"}},
    )
    customers = exports.load_store_exports(study, MONTH, as_of=AS_OF).customers
    customers = customers.set_index("email")

    # Ann's number is in New York; Bob's UK number is only possible (no zone)
    # but the UK keeps one clock; Sam's number is damaged and the US has six.
    zones = customers[["timezone", "is_timezone_assumed"]]
    assert zones.loc["ann@example.com"].tolist() == ["America/New_York", False]
    assert zones.loc["bob@example.com"].tolist() == ["Europe/London", False]
    assert zones.loc["sam@example.com"].tolist() == ["Europe/Berlin", True]


def test_customers_phone_quirks(tmp_path, caplog):
    study = make_study(tmp_path, ["customers_export.csv"])
    customers = exports.load_store_exports(study, MONTH, as_of=AS_OF).customers
    by_email = customers.set_index("email")

    assert by_email.loc["sam@example.com", "phone_status"] == "damaged"
    assert "1 customer(s) have only a phone number a spreadsheet damaged" in (
        caplog.text
    )
    assert pd.isna(by_email.loc["sam@example.com", "phone_e164"])
    assert not by_email.loc["sam@example.com", "is_callable"]
    assert by_email.loc["kai@example.com", "phone_e164"] == "+12025550188"
    assert by_email.loc["kai@example.com", "phone_extension"] == "12"
    # UK 07700 900xxx: possible, not valid; callable under the default rule.
    assert by_email.loc["eve@example.com", "phone_status"] == "possible"
    assert by_email.loc["eve@example.com", "is_callable"]


def test_phone_rule_valid_drops_fictional_uk_numbers(tmp_path):
    study = make_study(
        tmp_path, ["customers_export.csv"], {"phones": {"keep": "valid"}}
    )
    customers = exports.load_store_exports(study, MONTH, as_of=AS_OF).customers

    callable_phones = set(customers.loc[customers["is_callable"], "phone_e164"])
    assert callable_phones == {"+12025550111", "+12025550188"}


def test_cart_abandoners_without_account_become_customers(tmp_path):
    study = make_study(tmp_path, ["abandoned_checkouts_export.csv"])
    result = exports.load_store_exports(study, MONTH, as_of=AS_OF)

    assert sorted(result.customers["email"]) == ["ann@example.com", "dee@example.com"]
    keys = dict(
        zip(result.customers["email"], result.customers["customer_key"], strict=True)
    )
    checkouts = result.checkouts.set_index("checkout_id")
    assert checkouts.loc["#12345678", "customer_key"] == keys["dee@example.com"]
    # customer_key is the keyed hash of the normalised e-mail.
    assert keys["dee@example.com"] == privacy.customer_key("dee@example.com")


def test_customer_ids_damaged_by_a_spreadsheet_merge_no_one(tmp_path, caplog):
    # Excel shows a 13-digit Shopify id as 7.00001E+12 and saves it so: the same
    # text for every customer, which would make them all one person.
    header = "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,"
    header += "Default Address Country Code,Phone,Accepts SMS Marketing,Tags\n"
    rows = (
        "7.00001E+12,Ann,Lee,ann@example.com,yes,US,,no,\n"
        "7.00001E+12,Bob,Roe,bob@example.com,no,US,,no,\n"
    )
    (tmp_path / "customers_export.csv").write_text(header + rows)
    study = make_study(tmp_path, [tmp_path / "customers_export.csv"])
    customers = exports.load_store_exports(study, MONTH, as_of=AS_OF).customers
    by_email = customers.set_index("email")["accepts_email_marketing"]
    consent = by_email.to_dict()
    assert consent == {"ann@example.com": True, "bob@example.com": False}
    assert "2 customer ids were damaged by a spreadsheet (such as 7.00001E+12)" in (
        caplog.text
    )


def test_one_phone_joining_many_e_mails_warns(tmp_path, caplog):
    # Counter sales typed with the store's own number: six people, one phone.
    header = "Name,Email,Created at,Total,Lineitem quantity,Lineitem name,"
    header += "Lineitem price,Billing Phone,Billing Country\n"
    rows = "".join(
        f"#10{i},p{i}@example.com,2026-11-0{i + 1} 10:00:00 -0500,10.00,1,Mug,"
        "10.00,(202) 555-0100,US\n"
        for i in range(6)
    )
    (tmp_path / "orders_export.csv").write_text(header + rows)
    study = make_study(tmp_path, [tmp_path / "orders_export.csv"])
    customers = exports.load_store_exports(study, MONTH, as_of=AS_OF).customers
    assert customers["n_merged"].tolist() == [6]
    assert "1 customer(s) each merge 3 or more e-mail addresses (at most 6)" in (
        caplog.text
    )


def test_do_not_call_list_matches_any_phone_format(tmp_path):
    study = make_study(
        tmp_path,
        ["customers_export.csv"],
        do_not_call="phone,source\n(202) 555-0188,email\n",
    )
    listed = exports.load_do_not_call(study)
    customers = exports.load_store_exports(study, MONTH, as_of=AS_OF).customers

    assert listed["phone_e164"].tolist() == ["+12025550188"]
    # Kai by the list; Eve/Eva (one customer) by Eva's tag.
    flagged = customers.loc[customers["is_do_not_call"], "phone_e164"]
    assert sorted(flagged) == ["+12025550188", "+447700900456"]


def test_do_not_call_phone_of_another_country_is_read_with_its_country(tmp_path):
    study = make_study(
        tmp_path, ["customers_export.csv"],
        {"study": {"default_country": "US"}},
        do_not_call="phone,country\n07700 900456,GB\n(202) 555-0188,\n",
    )  # fmt: skip
    listed = exports.load_do_not_call(study)
    assert listed["phone_e164"].tolist() == ["+447700900456", "+12025550188"]


def test_do_not_call_phone_that_cannot_be_read_stops_the_step(tmp_path):
    # Read as a US number, a UK one is no number at all, and would be called.
    study = make_study(
        tmp_path, ["customers_export.csv"],
        {"study": {"default_country": "US"}},
        do_not_call="phone\n(202) 555-0188\n07700 900456\n",
    )  # fmt: skip
    with pytest.raises(HeardInputError) as caught:
        exports.load_do_not_call(study)
    assert (caught.value.row, caught.value.column) == (3, "phone")
    assert caught.value.found.startswith("07700 900456")
    assert "country code" in caught.value.fix


def test_do_not_call_requests_from_calls_are_matched_on_key(tmp_path):
    study = make_study(tmp_path, ["customers_export.csv"])
    key = privacy.customer_key("sam@example.com")
    requests = tmp_path / "processed" / "2026-10"
    requests.mkdir(parents=True)
    pd.DataFrame({"customer_key": [key], "requested_at": ["2026-10-09"]}).to_parquet(
        requests / exports.DO_NOT_CALL_REQUESTS
    )

    customers = exports.load_store_exports(study, MONTH, as_of=AS_OF).customers
    assert customers.set_index("customer_key").loc[key, "is_do_not_call"]


def test_a_months_own_do_not_call_requests_wait_for_the_next_month(tmp_path):
    study = make_study(tmp_path, ["customers_export.csv"])
    october, november = (
        privacy.customer_key(e) for e in ("sam@example.com", "lee@example.com")
    )
    for month, key in (("2026-10", october), ("2026-11", november)):
        folder = tmp_path / "processed" / month
        folder.mkdir(parents=True)
        pd.DataFrame({"customer_key": [key]}).to_parquet(
            folder / exports.DO_NOT_CALL_REQUESTS
        )

    listed = exports.load_do_not_call(study, before="2026-11")
    assert set(listed["customer_key"].dropna()) == {october}
    everyone = exports.load_do_not_call(study)
    assert set(everyone["customer_key"].dropna()) == {october, november}


def test_same_order_in_two_files_is_kept_once(tmp_path):
    # The two downloads name one item differently: the first file by name wins.
    copy = tmp_path / "orders_export_2.csv"
    text = (FIXTURES / "shopify_orders_79.csv").read_text(encoding="utf-8")
    copy.write_text(text.replace("Cap,20.00,,CAP-1", "Hat,20.00,,HAT-1"))
    study = make_study(tmp_path, ["shopify_orders_79.csv", copy])

    result = exports.load_store_exports(study, MONTH, as_of=AS_OF)
    assert result.orders["order_id"].tolist() == ["#1001", "#1002", "#1003"]
    assert result.lines["product"].tolist() == ["Mug", "Tee", "Sock", "Hat", "Mug"]
    assert len(result.read_log) == 2
    # Each name is held once, as a category, though the files' categories differ.
    assert result.lines["product"].dtype == "category"
    assert result.lines["sku"].dtype == "category"


def test_schemas_are_as_documented(tmp_path):
    study = make_study(
        tmp_path,
        ["customers_export.csv", "shopify_orders_79.csv",
         "abandoned_checkouts_export.csv"],
    )  # fmt: skip
    result = exports.load_store_exports(study, MONTH, as_of=AS_OF)

    assert list(result.orders.columns[:15]) == [
        "order_id", "email", "customer_id", "created_at", "total", "subtotal",
        "refunded_amount", "financial_status", "is_cancelled", "currency",
        "n_items", "country", "phone_raw", "name", "source_file",
    ]  # fmt: skip
    assert list(result.lines.columns) == exports.LINE_COLUMNS
    assert list(result.customers.columns) == exports.CUSTOMER_COLUMNS
    assert set(exports.CHECKOUT_COLUMNS) <= set(result.checkouts.columns)
    assert result.customers["customer_key"].is_unique
    assert result.orders["customer_key"].notna().all()
    # Text stays pandas' Arrow-backed str (NaN where blank), as polars gives it.
    text = ["customer_key", "email", "first_name", "country", "phone_e164", "tags"]
    assert all(result.customers[c].dtype == "str" for c in text)
    assert all(result.orders[c].dtype == "str" for c in ("email", "country"))


def test_country_names_become_codes():
    codes = exports.country_codes(pd.Series(["United Kingdom", "de", "Germany", "??"]))
    assert codes.tolist() == ["GB", "DE", "DE", None]


# Real exports -----------------------------------------------------------------


@pytest.mark.skipif(not SHOPIFY_REAL.exists(), reason="shared data not present")
def test_real_shopify_export_reads_into_51_orders(tmp_path):
    with SHOPIFY_REAL.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected_total = sum(float(r["Total"]) for r in rows if r["Total"])
    expected_items = sum(float(r["Lineitem quantity"]) for r in rows)
    study = make_study(tmp_path, [SHOPIFY_REAL])

    result = exports.load_store_exports(study, MONTH, as_of=AS_OF)
    assert len(result.orders) == 51
    assert len(result.lines) == 121
    assert result.orders["total"].sum() == pytest.approx(expected_total)
    assert result.orders["n_items"].sum() == pytest.approx(expected_items)
    assert result.read_log["layout"].tolist() == ["shopify-orders-79"]
    assert len(result.customers) == 2


@pytest.mark.skipif(not SHOPIFY_REAL.exists(), reason="shared data not present")
def test_current_layout_matches_the_real_header():
    with SHOPIFY_REAL.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == exports.SHOPIFY_ORDERS_79


RETAIL_CONFIG = {
    "study": {"default_country": "GB", "timezone": "Europe/London"},
    "exports": {
        "column_map": {
            "order_id": "InvoiceNo",
            "sku": "StockCode",
            "product": "Description",
            "quantity": "Quantity",
            "created_at": "InvoiceDate",
            "price": "UnitPrice",
            "customer_id": "CustomerID",
            "country": "Country",
        },
        "date_format": "%Y-%m-%d %H:%M:%S",
        "generic": {"return_prefix": "C", "missing_values": ["NA"]},
    },
}


@pytest.mark.skipif(not RETAIL_REAL.exists(), reason="shared data not present")
def test_online_retail_reads_through_a_column_map(tmp_path):
    with RETAIL_REAL.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # Independently: a line is rejected when its quantity is negative outside a
    # 'C' invoice (stock adjustments), and its invoice goes with it.
    bad_invoices = {
        r["InvoiceNo"]
        for r in rows
        if float(r["Quantity"]) < 0 and not r["InvoiceNo"].startswith("C")
    }
    kept = [r for r in rows if r["InvoiceNo"] not in bad_invoices]
    sales = [r for r in kept if not r["InvoiceNo"].startswith("C")]
    returns = [r for r in kept if r["InvoiceNo"].startswith("C")]
    study = make_study(tmp_path, [RETAIL_REAL], RETAIL_CONFIG)

    result = exports.load_store_exports(study, MONTH, as_of=AS_OF)
    orders = result.orders

    # Values stated in the data's SOURCE.md.
    assert len({r["InvoiceNo"] for r in rows}) == 9362
    assert len(orders) + len(bad_invoices) == 9362
    assert orders["customer_id"].nunique() == 3049
    assert len(result.customers) == 3049
    assert sum(r["CustomerID"] == "NA" for r in rows) == 5078
    no_id = orders.loc[orders["customer_id"].isna(), "order_id"]
    no_id_rejected = sum(
        r["CustomerID"] == "NA" for r in rows if r["InvoiceNo"] in bad_invoices
    )
    assert result.lines["order_id"].isin(no_id).sum() + no_id_rejected == 5078
    assert result.lines["order_id"].str.startswith("C").sum() == 350
    # Totals: quantity x unit price per invoice; returns as refunds.
    sale_value = sum(float(r["Quantity"]) * float(r["UnitPrice"]) for r in sales)
    return_value = -sum(float(r["Quantity"]) * float(r["UnitPrice"]) for r in returns)
    assert orders["total"].sum() == pytest.approx(sale_value)
    assert orders["refunded_amount"].sum() == pytest.approx(return_value)
    assert orders["is_return"].sum() == len({r["InvoiceNo"] for r in returns})
    assert Counter(result.rejected["reason"])["negative amount"] == sum(
        float(r["Quantity"]) < 0 and not r["InvoiceNo"].startswith("C") for r in rows
    )
    # Without e-mail or phone, the key is the hash of the platform's id.
    first = orders[orders["customer_id"] == "12621"].iloc[0]
    assert first["customer_key"] == privacy.customer_key("id:12621")
    # 2011-06-12 13:17 in London is BST: 12:17 UTC.
    assert (orders["created_at"] == pd.Timestamp("2011-06-12 12:17Z")).any()


def test_other_older_order_layouts_read_by_their_column_names(tmp_path):
    # Public copies of older exports end at "Tax 5 Value" (66 columns): no
    # point-of-sale, duties or payment-terms columns.
    dropped = {"Outstanding Balance", "Employee", "Location", "Device ID"}
    header = exports.SHOPIFY_ORDERS_79[: exports.SHOPIFY_ORDERS_79.index("Phone")]
    header = [c for c in header if c not in dropped]
    path = tmp_path / "orders_export.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        row = {"Name": "#7", "Email": "a@example.com", "Total": "5.00",
               "Created at": "2018-03-01 10:00:00 +0000",
               "Lineitem quantity": "1", "Lineitem price": "5.00"}  # fmt: skip
        writer.writerow(row)

    result = exports.read_export(path, config=load_defaults(), as_of=AS_OF)
    assert len(header) == 66
    assert result.log["layout"] == "shopify-orders-70"
    assert result.tables["orders"]["total"].tolist() == [5.0]


def test_woo_guest_customer_id_zero_is_no_id(tmp_path):
    source = (FIXTURES / "woo_csv_export_items.csv").read_text(encoding="utf-8")
    guest = source.replace(",17,", ",0,").replace("ida@example.com", "{email}")
    first, *rows = guest.splitlines()
    second = rows[1].replace("3001", "3002")
    lines = [
        first,
        rows[0].format(email="g1@example.com"),
        second.format(email="g2@example.com"),
    ]
    path = tmp_path / "woo.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    study = make_study(tmp_path, [path])

    result = exports.load_store_exports(study, MONTH, as_of=AS_OF)
    assert result.orders["customer_id"].isna().all()
    assert sorted(result.customers["email"]) == ["g1@example.com", "g2@example.com"]


def test_bulk_customer_keys_equal_one_at_a_time():
    identities = ["ann@example.com", "+447700900123", "id:0070001", None]
    assert privacy.customer_keys(identities) == [
        privacy.customer_key("ann@example.com"),
        privacy.customer_key("+447700900123"),
        privacy.customer_key("id:0070001"),
        None,
    ]


def test_declared_kind_and_platform_are_obeyed(tmp_path):
    path = tmp_path / "export.csv"
    shutil.copy(FIXTURES / "abandoned_checkouts_export.csv", path)

    # The name does not say "checkout", so without a declaration these are orders.
    assert read_path(path, {}).kind == "orders"
    declared = {"exports": {"kinds": {"export.csv": "checkouts"}}}
    assert read_path(path, declared).kind == "checkouts"
    with pytest.raises(HeardInputError):
        read_path(path, {"exports": {"platform": "woocommerce"}})


def read_path(path, config):
    merged = merge_config(load_defaults(), config)
    return exports.read_export(path, config=merged, as_of=AS_OF)


# Order rows dropped before grouping ------------------------------------------

# The order-level cells of shopify_orders_79.csv (Shopify fills them on an
# order's first row only).
ORDER_CELLS = [
    "Email", "Financial Status", "Accepts Marketing", "Currency", "Subtotal", "Total",
    "Cancelled at", "Billing Name", "Billing Country", "Phone", "Billing Phone", "Id",
]  # fmt: skip
LATER_CANCEL = "2025-11-05 10:00:00 -0500"


def _moved_fields(rows):
    """#1002's order cells on its second row, its first row's cells blank but
    the e-mail: the second row alone can give its status and consent."""
    rows[1], rows[2] = dict(rows[1]), dict(rows[2])
    for name in ORDER_CELLS:
        rows[1][name], rows[2][name] = rows[2][name], rows[1][name]
    return rows


def _repeated_fields(rows):
    """#1002's order cells repeated on all three rows (as WooCommerce does),
    the third row cancelled and consenting: consent stays the first row's."""
    rows[2] = {**rows[2], **{name: rows[1][name] for name in ORDER_CELLS}}
    rows[3] = {**rows[3], **{name: rows[1][name] for name in ORDER_CELLS}}
    rows[3]["Cancelled at"] = LATER_CANCEL
    rows[3]["Accepts Marketing"] = "yes"
    return rows


def _later_cancel(rows):
    """#1002 cancelled on its second row only, its other cells blank there."""
    rows[2] = {**rows[2], "Cancelled at": LATER_CANCEL}
    return rows


# Per case: the file's row order (indexes into the fixture's five rows), an
# edit, the order ids expected (in the order their first row comes), and #1002's
# expected (e-mail, accepts_marketing, is_cancelled, financial_status), worked out
# by hand from the rows.
IN_FILE_ORDER, IDS = [0, 1, 2, 3, 4], ["#1001", "#1002", "#1003"]
SPLIT_ROWS_CASES = {
    "adjacent": (IN_FILE_ORDER, None, IDS, False),
    "split_apart": ([1, 0, 4, 2, 3], None, ["#1002", "#1001", "#1003"], False),
    "split_twice": ([1, 4, 2, 0, 3], None, ["#1002", "#1003", "#1001"], False),
    "fields_on_second_row": (IN_FILE_ORDER, _moved_fields, IDS, False),
    "fields_repeated_cancelled_later": (IN_FILE_ORDER, _repeated_fields, IDS, True),
    "cancelled_on_a_later_row": (IN_FILE_ORDER, _later_cancel, IDS, True),
}
# Per order, from the fixture's rows: e-mail (lower case), accepts_marketing,
# is_cancelled (before any edit), financial_status, n_items, total.
# #1001: one row, "Ann@Example.com", "yes", 2 mugs, total 25.00.
# #1002: three rows, 1 + 2 + 1 items, "no", refunded, total 66.00.
# #1003: one row, 1 mug, consent blank, cancelled at 2025-11-04, total 10.00.
SPLIT_ROWS_ORDERS = {
    "#1001": ("ann@example.com", True, False, "paid", 2.0, 25.0),
    "#1002": ("bob@example.com", False, False, "refunded", 4.0, 66.0),
    "#1003": ("ann@example.com", None, True, "paid", 1.0, 10.0),
}


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 100_000])
@pytest.mark.parametrize("case", list(SPLIT_ROWS_CASES))
def test_orders_split_over_rows_and_batches_keep_each_orders_fields(
    tmp_path, monkeypatch, case, batch_rows
):
    monkeypatch.setattr(exports, "BATCH_ROWS", batch_rows)
    order, edit, expected_ids, is_1002_cancelled = SPLIT_ROWS_CASES[case]
    with open(FIXTURES / "shopify_orders_79.csv", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    rows = edit(rows) if edit else rows
    path = tmp_path / "orders_export.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows[i] for i in order)

    orders = read_path(path, {}).tables["orders"]

    assert list(orders["order_id"]) == expected_ids
    for _, got in orders.iterrows():
        email, consent, cancelled, status, n_items, total = SPLIT_ROWS_ORDERS[
            got["order_id"]
        ]
        if got["order_id"] == "#1002":
            cancelled = is_1002_cancelled
        assert got["email"] == email
        if consent is None:
            assert pd.isna(got["accepts_marketing"])
        else:
            assert got["accepts_marketing"] == consent
        assert bool(got["is_cancelled"]) is cancelled
        assert got["financial_status"] == status
        assert got["n_items"] == n_items
        assert got["total"] == total

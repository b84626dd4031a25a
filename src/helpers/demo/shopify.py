"""Lay the demo store out as Shopify's admin exports write it.

Three files per month: customers, orders (one row per line item, order fields on
the first row only) and abandoned checkouts (the older order layout, `Name` holding
the checkout id). The flaws real exports carry are put in on purpose: phone numbers
typed every which way, an Excel-mangled phone, a negative total and a date that
does not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from helpers.demo.world import PRODUCTS, Order, Person, order_total

CUSTOMER_COLUMNS = [
    "Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing",
    "Default Address Company", "Default Address Address1", "Default Address Address2",
    "Default Address City", "Default Address Province Code",
    "Default Address Country Code", "Default Address Zip", "Default Address Phone",
    "Phone", "Accepts SMS Marketing", "Total Spent", "Total Orders", "Note",
    "Tax Exempt", "Tags",
]  # fmt: skip
# Shopify's current order-export header (names as in a real export, 79 columns).
ORDER_COLUMNS = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status",
    "Fulfilled at", "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes",
    "Total", "Discount Code", "Discount Amount", "Shipping Method", "Created at",
    "Lineitem quantity", "Lineitem name", "Lineitem price",
    "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
    "Lineitem taxable", "Lineitem fulfillment status", "Billing Name",
    "Billing Street", "Billing Address1", "Billing Address2", "Billing Company",
    "Billing City", "Billing Zip", "Billing Province", "Billing Country",
    "Billing Phone", "Shipping Name", "Shipping Street", "Shipping Address1",
    "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes",
    "Note Attributes", "Cancelled at", "Payment Method", "Payment Reference",
    "Refunded Amount", "Vendor", "Outstanding Balance", "Employee", "Location",
    "Device ID", "Id", "Tags", "Risk Level", "Source", "Lineitem discount",
    "Tax 1 Name", "Tax 1 Value", "Tax 2 Name", "Tax 2 Value", "Tax 3 Name",
    "Tax 3 Value", "Tax 4 Name", "Tax 4 Value", "Tax 5 Name", "Tax 5 Value",
    "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name",
    "Next Payment Due At", "Payment References",
]  # fmt: skip
# Columns the current layout added; the abandoned-checkout export still lacks them.
NEWER_ORDER_COLUMNS = (
    "Outstanding Balance", "Employee", "Location", "Device ID", "Payment References",
)  # fmt: skip
CHECKOUT_COLUMNS = [c for c in ORDER_COLUMNS if c not in NEWER_ORDER_COLUMNS]
LINE_ITEM_FIELDS = (
    "Name", "Email", "Created at", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem compare at price", "Lineitem sku",
    "Lineitem requires shipping", "Lineitem taxable", "Lineitem fulfillment status",
    "Vendor", "Lineitem discount",
)  # fmt: skip
PROVINCE_NAMES = {
    "DC": "District of Columbia", "NY": "New York", "MA": "Massachusetts",
    "PA": "Pennsylvania", "GA": "Georgia", "FL": "Florida", "IL": "Illinois",
    "TX": "Texas", "MN": "Minnesota", "CO": "Colorado", "AZ": "Arizona",
    "WA": "Washington", "OR": "Oregon", "CA": "California",
}  # fmt: skip
US_PHONE_STYLES = (
    "+1 ({a}) {p}-{l}", "{a}.{p}.{l}", "({a}) {p}-{l}", "+1{a}{p}{l}", "{a}-{p}-{l}",
    "1-{a}-{p}-{l}", "{a}{p}{l}",
)  # fmt: skip
UK_PHONE_STYLES = ("0044 7700 {l}", "07700 {l}", "+44 7700 {l}", "+447700{l}")
EXCEL_MANGLED_PHONE = "1.20256E+10"
TIMESTAMP = "%Y-%m-%d %H:%M:%S %z"


def format_phone(e164: str | None, style: int) -> str:
    """Return `e164` typed in one of the ways people type phone numbers.

    Style numbers past the plain styles add an extension (`` x12``) to US numbers.
    """
    if not e164:
        return ""
    if e164.startswith("+44"):
        return UK_PHONE_STYLES[style % len(UK_PHONE_STYLES)].format(l=e164[-6:])
    digits = {"a": e164[2:5], "p": e164[5:8], "l": e164[8:]}
    typed = US_PHONE_STYLES[style % len(US_PHONE_STYLES)].format(**digits)
    return f"{typed} x{10 + style % 20}" if style % 41 == 0 else typed


def money(value: float) -> str:
    """Return `value` as Shopify writes money: two decimals, no separators."""
    return f"{value:.2f}"


def stamp(moment: datetime | None) -> str:
    """Return a store-local timestamp as Shopify writes it (``-0500`` offset)."""
    return moment.strftime(TIMESTAMP) if moment else ""


def build_customers_export(
    people: list[Person],
    orders: list[Order],
    *,
    until: datetime,
    tagged_do_not_call: frozenset[int] = frozenset(),
    mangled_phone: int | None = None,
) -> pd.DataFrame:
    """Return the customers export as downloaded at the moment `until`.

    Returns
    -------
    DataFrame
        ``CUSTOMER_COLUMNS``; one row per customer record (duplicates included),
        totals counting orders created before `until`.
    """
    spent: dict[tuple, list[float]] = {}
    for order in orders:
        if order.created_at < until and order.flaw in ("", "excel_phone"):
            money_ = order_total(order)["total"] * (1 - order.refunded)
            spent.setdefault((order.person, order.email), []).append(money_)
    rows = []
    for person in people:
        if person.joined_on >= until.date():
            continue
        totals = spent.get((person.number, person.email), [])
        tags = ["do-not-call"] if person.number in tagged_do_not_call else []
        tags += ["vip"] if len(totals) >= 5 else []
        typed = format_phone(person.phone_e164, person.number * 3 + 1)
        if person.number == mangled_phone and person.duplicate_of is None:
            typed = EXCEL_MANGLED_PHONE
        rows.append(
            {
                "Customer ID": person.shopify_id,
                "First Name": "Customer",
                "Last Name": str(person.number),
                "Email": person.email or "",
                "Accepts Email Marketing": "yes" if person.accepts_email else "no",
                "Default Address Company": "",
                "Default Address Address1": f"{person.number} Example Street",
                "Default Address Address2": "",
                "Default Address City": person.city,
                "Default Address Province Code": person.province,
                "Default Address Country Code": person.country,
                "Default Address Zip": postcode(person),
                "Default Address Phone": typed,
                "Phone": person.phone_e164 if person.accepts_sms else "",
                "Accepts SMS Marketing": "yes" if person.accepts_sms else "no",
                "Total Spent": money(sum(totals)),
                "Total Orders": len(totals),
                "Note": "",
                "Tax Exempt": "no",
                "Tags": ", ".join(tags),
            }
        )
    return pd.DataFrame(rows, columns=CUSTOMER_COLUMNS)


def postcode(person: Person) -> str:
    """Return an invented postcode of the right shape for the person's country."""
    if person.country == "GB":
        return f"ZX{person.number % 9 + 1} {person.number % 7 + 1}AA"
    return f"{10000 + (person.number * 37) % 89999:05d}"


def build_orders_export(
    orders: list[Order],
    people: dict[tuple, Person],
    *,
    until: datetime,
) -> pd.DataFrame:
    """Return the orders export as downloaded at the moment `until`.

    Parameters
    ----------
    orders : list of Order
        Every order; those created at or after `until` are left out.
    people : dict
        ``(person number, e-mail) -> Person`` for addresses and phones.
    until : datetime
        The download moment (time-zone aware).

    Returns
    -------
    DataFrame
        ``ORDER_COLUMNS``, newest order first, one row per line item; order fields
        only on an order's first row.
    """
    rows = []
    for order in sorted(orders, key=lambda o: o.created_at, reverse=True):
        if order.created_at >= until:
            continue
        person = people[(order.person, order.email)]
        first = order_fields(order, person, until=until)
        if order.flaw == "excel_phone":
            first["Billing Phone"] = EXCEL_MANGLED_PHONE
        rows += line_rows(
            order, first, is_fulfilled=first["Fulfillment Status"] == "fulfilled"
        )
    return pd.DataFrame(rows, columns=ORDER_COLUMNS, dtype=object).fillna("")


def order_fields(order: Order, person: Person, *, until: datetime) -> dict:
    """Return the order-level fields of an order's first row."""
    amounts = order_total(order)
    is_fulfilled = order.created_at + timedelta(days=3) < until
    status = {0.0: "paid", 0.5: "partially_refunded", 1.0: "refunded"}[order.refunded]
    created = stamp(order.created_at)
    total = money(amounts["total"])
    if order.flaw == "negative_total":
        total = -round(amounts["total"], 2)
    if order.flaw == "bad_date":
        created = order.created_at.strftime("%Y-%m-31 %H:%M:%S %z")
    address = address_fields(person, order.order_id)
    return {
        "Name": order.name,
        "Email": order.email or "",
        "Financial Status": status,
        "Paid at": created,
        "Fulfillment Status": "fulfilled" if is_fulfilled else "unfulfilled",
        "Fulfilled at": stamp(order.created_at + timedelta(days=2))
        if is_fulfilled
        else "",
        "Accepts Marketing": "yes" if person.accepts_email else "no",
        "Currency": "USD",
        "Subtotal": money(amounts["subtotal"]),
        "Shipping": money(amounts["shipping"]),
        "Taxes": money(amounts["taxes"]),
        "Total": total,
        "Discount Code": order.discount_code,
        "Discount Amount": money(amounts["discount"]),
        "Shipping Method": "Free Shipping" if not amounts["shipping"] else "Standard",
        "Created at": created,
        **address,
        "Payment Method": "Shopify Payments",
        "Payment Reference": f"c{order.order_id}.1",
        "Refunded Amount": money(amounts["total"] * order.refunded),
        "Outstanding Balance": "0.00",
        "Id": str(order.order_id),
        "Tags": "",
        "Risk Level": "Low",
        "Source": order.source,
        "Tax 1 Name": f"{person.province or 'GB'} Tax 6%",
        "Tax 1 Value": money(amounts["taxes"]),
        "Payment ID": f"c{order.order_id}",
        "Payment References": f"c{order.order_id}.1",
    }


def address_fields(person: Person, order_id: int) -> dict:
    """Return the billing and shipping address fields (the same address)."""
    street = f"{person.number} Example Street"
    province_name = PROVINCE_NAMES.get(person.province, "")
    fields = {}
    for side in ("Billing", "Shipping"):
        fields |= {
            f"{side} Name": person.name,
            f"{side} Street": street,
            f"{side} Address1": street,
            f"{side} City": person.city,
            f"{side} Zip": postcode(person),
            f"{side} Province": person.province,
            f"{side} Country": person.country,
            f"{side} Province Name": province_name,
        }
    fields["Billing Phone"] = format_phone(person.phone_e164, order_id // 7 % 97)
    return fields


def line_rows(order: Order, first: dict, *, is_fulfilled: bool) -> list[dict]:
    """Return one row per line item; only the first carries order fields."""
    rows = []
    for index, (product, quantity) in enumerate(order.items):
        name, sku, price, vendor = PRODUCTS[product]
        row = dict(first) if index == 0 else {k: first[k] for k in ("Name", "Email")}
        row |= {
            "Created at": first["Created at"],
            "Lineitem quantity": quantity,
            "Lineitem name": name,
            "Lineitem price": money(price),
            "Lineitem sku": sku,
            "Lineitem requires shipping": "true",
            "Lineitem taxable": "true",
            "Lineitem fulfillment status": "fulfilled" if is_fulfilled else "pending",
            "Vendor": vendor,
            "Lineitem discount": "0.00",
        }
        rows.append(row)
    return rows


def build_checkouts_export(
    checkouts: list[Order], people: dict[tuple, Person], *, until: datetime
) -> pd.DataFrame:
    """Return the abandoned-checkouts export as downloaded at the moment `until`.

    Returns
    -------
    DataFrame
        ``CHECKOUT_COLUMNS`` (the older order layout), one row per line item;
        ``Name`` and ``Id`` hold the checkout id.
    """
    rows = []
    for checkout in sorted(checkouts, key=lambda c: c.created_at, reverse=True):
        if checkout.created_at >= until:
            continue
        person = people[(checkout.person, checkout.email)]
        amounts = order_total(checkout)
        first = {
            "Name": checkout.name,
            "Email": checkout.email or "",
            "Accepts Marketing": "yes" if person.accepts_email else "no",
            "Currency": "USD",
            "Subtotal": money(amounts["subtotal"]),
            "Shipping": money(amounts["shipping"]),
            "Taxes": money(amounts["taxes"]),
            "Total": money(amounts["total"]),
            "Discount Amount": "0.00",
            "Created at": stamp(checkout.created_at),
            **address_fields(person, checkout.order_id),
            "Id": str(checkout.order_id),
            "Source": "web",
        }
        first["Billing Phone"] = format_phone(person.phone_e164, person.number * 3 + 1)
        for row in line_rows(checkout, first, is_fulfilled=False):
            row["Lineitem fulfillment status"] = ""
            rows.append(row)
    return pd.DataFrame(rows, columns=CHECKOUT_COLUMNS, dtype=object).fillna("")

"""Benchmark the segment step on Shopify-format exports of 100k, 1M and 5M rows.

Generates a study folder per size under ``benchmarks/_data/`` (git-ignored): an
orders export with Shopify's full 79-column header (one row per line item, order
fields on the first row only), a customers export and an abandoned-checkouts export.
Then runs, each in its own process so memory is measured per process:

- ``step``: ``helpers.segments.run_segment_step`` end to end, as a user would (read,
  features, segments, call list, every processed file written);
- ``duckdb``: a plain DuckDB read of the same three files (every row, the columns
  the step needs, one group-by per file), the floor any reader stands on;
- ``polars``: the same read with polars' lazy CSV scan (the three files
  collected together), a second floor: it parses in parallel where DuckDB's
  ``all_varchar`` read of these files does not keep both cores busy;
- ``imports``: starting Python and importing the step's modules, no data read:
  the fixed cost every run pays before it reads a byte;
- ``work``: two pieces of work the issue asks of the step beyond reading, each
  timed alone with the plain library call: ``phonenumbers`` parsing, validating
  and formatting each distinct (digits, region) pair of the customers' and
  orders' phones (a seeded sample of them, scaled to all), and the standard
  library's HMAC-SHA256 for each customer's e-mail (all of them). Together with
  the imports and the read they are a floor no design of the step goes below.

Wall time is measured around each process; peak memory is the process's maximum
resident set size and CPU time its user + system time, both from ``os.wait4``
(the child's own ``getrusage``), taken by a small launcher process so the
benchmark's own memory is not inherited.

Usage::

    .venv/bin/python benchmarks/bench_segments.py --rows 100000 1000000
    .venv/bin/python benchmarks/bench_segments.py --rows 5000000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

from helpers.exports import SHOPIFY_CUSTOMERS, SHOPIFY_ORDERS_70, SHOPIFY_ORDERS_79

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
MONTH = "2026-11"
CHUNK_ROWS = 1_000_000
TARGETS = {100_000: (1.0, None), 1_000_000: (2.5, 0.75), 5_000_000: (15.0, 1.5)}
PRODUCTS = [
    f"Organic Everyday Product {i:03d} - Large, Natural Finish, Gift Box"
    for i in range(400)
]
# One number per customer (a shared number would merge customers), typed the
# ways people type them: US numbers on the 555 exchange of 700 area codes, UK
# mobiles from 07400 000000 up. Unique for up to 7 million customers.
US_STYLES = ["+1 ({a}) 555-{n:04d}", "{a}.555.{n:04d}", "({a}) 555-{n:04d}"]
UK_STYLES = ["074{n:08d}", "+44 74{n:08d}", "0044 74{n:08d}"]

STUDY_YML = f"""\
study:
  name: Benchmark store
  currency: USD
  default_country: US
  timezone: America/New_York
months:
  "{MONTH}":
    question: What almost stopped you from buying?
    segments: [cart_abandoners, first_time_no_return]
"""

LAUNCHER_CODE = """
import json, os, subprocess, sys, time
started = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
output = process.stdout.read()
_, status, usage = os.wait4(process.pid, 0)
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "cpu_seconds": usage.ru_utime + usage.ru_stime,
    "gb": usage.ru_maxrss / 1024**2,  # KiB on Linux
    "status": os.waitstatus_to_exitcode(status),
    "output": output.strip(),
}))
"""

STEP_CODE = """
import logging, sys
from helpers.segments import run_segment_step
logging.basicConfig(level=logging.WARNING)
result = run_segment_step(sys.argv[1], sys.argv[2])
print(result["n_orders"], result["n_call_list"], result["n_holdout"])
"""

IMPORT_CODE = "import helpers.exports, helpers.segments"

DUCKDB_CODE = """
import sys, duckdb
folder = sys.argv[1]
options = "all_varchar = true, header = true"
orders = duckdb.sql(f'''
    SELECT lower(trim("Email")) AS email, count(DISTINCT "Name") AS n_orders,
        max("Created at") AS last_order
    FROM read_csv('{folder}/orders_export.csv', {options}) GROUP BY 1''').fetchall()
customers = duckdb.sql(f'''
    SELECT lower(trim("Email")), any_value("Phone"),
        any_value("Accepts Email Marketing")
    FROM read_csv('{folder}/customers_export.csv', {options}) GROUP BY 1''').fetchall()
checkouts = duckdb.sql(f'''
    SELECT lower(trim("Email")), max("Created at"), count(*)
    FROM read_csv('{folder}/abandoned_checkouts_export.csv', {options})
    GROUP BY 1''').fetchall()
print(len(orders), len(customers), len(checkouts))
"""


POLARS_CODE = """
import sys, polars as pl
folder = sys.argv[1]
email = pl.col("Email").str.strip_chars().str.to_lowercase()
def scan(name, columns):
    return pl.scan_csv(f"{folder}/{name}", infer_schema=False).select(columns)
orders = scan("orders_export.csv", ["Email", "Name", "Created at"]).group_by(
    email).agg(pl.col("Name").n_unique(), pl.col("Created at").max())
customers = scan("customers_export.csv", ["Email", "Phone",
    "Accepts Email Marketing"]).group_by(email).agg(pl.all().first())
checkouts = scan("abandoned_checkouts_export.csv", ["Email", "Created at"]
    ).group_by(email).agg(pl.col("Created at").max(), pl.len())
print(*(frame.height for frame in pl.collect_all([orders, customers, checkouts])))
"""

WORK_CODE = """
import hashlib, hmac, json, random, sys, time
import phonenumbers, polars as pl
folder, sample_size = sys.argv[1], int(sys.argv[2])
digits = pl.col("phone").str.replace_all(r"\\D+", "")
def phones(name, phone, country):
    return pl.scan_csv(f"{folder}/{name}", infer_schema=False).select(
        pl.col(phone).alias("phone"), pl.col(country).alias("region"))
pairs = pl.concat([
    phones("customers_export.csv", "Phone", "Default Address Country Code"),
    phones("orders_export.csv", "Billing Phone", "Billing Country"),
]).filter(pl.col("phone") != "").select(digits, "region").unique().collect()
sample = random.Random(0).sample(pairs.rows(), min(sample_size, pairs.height))
started = time.process_time()
for number, region in sample:
    parsed = phonenumbers.parse(number, region)
    phonenumbers.is_valid_number(parsed)
    phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
per_number = (time.process_time() - started) / len(sample)
emails = pl.read_csv(f"{folder}/customers_export.csv", infer_schema=False,
    columns=["Email"])["Email"].str.to_lowercase().unique().to_list()
key = bytes(range(32))
started = time.process_time()
for email in emails:
    hmac.new(key, email.encode(), hashlib.sha256).hexdigest()
print(json.dumps({"n_numbers": pairs.height, "per_number_us": per_number * 1e6,
    "phonenumbers_cpu_seconds": per_number * pairs.height, "n_keys": len(emails),
    "hmac_cpu_seconds": time.process_time() - started}))
"""
PHONE_SAMPLE = 20_000  # distinct numbers timed with phonenumbers, then scaled


def to_frame(columns: dict, header: list[str], n_rows: int) -> pl.DataFrame:
    """Return the filled `columns` as text, the rest of `header` blank, in order."""
    filled = {
        name: pl.Series(
            name, np.broadcast_to(np.asarray(values), (n_rows,)).astype(str)
        )
        for name, values in columns.items()
    }
    frame = pl.DataFrame(list(filled.values()))
    blank = [pl.lit("").alias(name) for name in header if name not in filled]
    return frame.with_columns(blank).select(header)


def draw_phones(
    rng: np.random.Generator, customers: np.ndarray, countries: np.ndarray
) -> np.ndarray:
    """Return each customer's own number, typed in a random style."""
    style = rng.integers(0, 3, len(customers))
    return np.array(
        [
            UK_STYLES[s].format(n=i)
            if c == "GB"
            else US_STYLES[s].format(a=201 + i // 10_000, n=i % 10_000)
            for i, c, s in zip(customers, countries, style, strict=True)
        ],
        dtype=object,
    )


def build_customers(rng: np.random.Generator, n_customers: int) -> pl.DataFrame:
    """Return the customers export (Shopify's current layout)."""
    ids = np.arange(1, n_customers + 1)
    countries = np.where(ids % 10 < 3, "GB", "US")
    columns = dict(
        {
            "Customer ID": (7_000_000_000 + ids).astype(str),
            "First Name": np.char.add("Pat", (ids % 997).astype(str)),
            "Last Name": np.char.add("Lee", (ids % 991).astype(str)),
            "Email": np.char.add(
                np.char.add("customer", ids.astype(str)), "@example.com"
            ),
            "Accepts Email Marketing": np.where(
                rng.random(n_customers) < 0.8, "yes", "no"
            ),
            "Default Address Address1": np.char.add(
                (ids % 900 + 1).astype(str), " Main Street"
            ),
            "Default Address City": np.where(countries == "GB", "London", "Washington"),
            "Default Address Country Code": countries,
            "Default Address Zip": np.where(countries == "GB", "SW1A 1AA", "02134"),
            "Phone": draw_phones(rng, ids, countries),
            "Accepts SMS Marketing": np.where(
                rng.random(n_customers) < 0.4, "yes", "no"
            ),
            "Total Spent": "0.00",
            "Total Orders": "0",
            "Tax Exempt": "no",
            "Tags": np.where(
                rng.random(n_customers) < 0.01, "do-not-call", "newsletter"
            ),
        }
    )
    return to_frame(columns, SHOPIFY_CUSTOMERS, n_customers)


def build_orders(
    rng: np.random.Generator, n_rows: int, n_customers: int, *, first_order: int = 0
) -> pl.DataFrame:
    """Return `n_rows` line-item rows of the orders export, about 2.5 per order,
    numbering orders from `first_order`."""
    items = rng.integers(1, 5, n_rows)  # 1-4 items per order
    first_row = np.zeros(n_rows, dtype=bool)
    starts = np.concatenate([[0], np.cumsum(items)])
    starts = starts[starts < n_rows]
    first_row[starts] = True
    order_of_row = np.cumsum(first_row) - 1
    n_orders = int(first_row.sum())
    customer = rng.integers(1, n_customers + 1, n_orders)
    seconds = rng.integers(0, 365 * 86400, n_orders)
    created = np.datetime64("2025-10-31T00:00:00") + seconds.astype("timedelta64[s]")
    created_text = np.char.add(np.datetime_as_string(created, unit="s"), " -0500")
    created_text = np.char.replace(created_text, "T", " ")
    total = np.round(rng.gamma(2.0, 40.0, n_orders), 2)
    refunded = np.where(rng.random(n_orders) < 0.08, total, 0.0)
    countries = np.where(customer % 10 < 3, "GB", "US")
    product = rng.integers(0, len(PRODUCTS), n_rows)

    def per_order(values, blank=""):
        # Order-level fields sit on an order's first row only.
        spread = np.asarray(values, dtype=object)[order_of_row]
        return np.where(first_row, spread, blank)

    columns = dict(
        {
            "Name": np.char.add("#", (1000 + first_order + order_of_row).astype(str)),
            "Email": np.char.add(
                np.char.add("customer", customer.astype(str)), "@example.com"
            )[order_of_row],
            "Financial Status": per_order(np.where(refunded > 0, "refunded", "paid")),
            "Paid at": per_order(created_text),
            "Fulfillment Status": per_order(np.full(n_orders, "fulfilled")),
            "Accepts Marketing": per_order(np.full(n_orders, "yes")),
            "Currency": per_order(np.full(n_orders, "USD")),
            "Subtotal": per_order(np.char.mod("%.2f", total)),
            "Shipping": per_order(np.full(n_orders, "0.00")),
            "Taxes": per_order(np.full(n_orders, "0.00")),
            "Total": per_order(np.char.mod("%.2f", total)),
            "Discount Amount": per_order(np.full(n_orders, "0.00")),
            "Shipping Method": per_order(np.full(n_orders, "Standard")),
            "Created at": created_text[order_of_row],
            "Lineitem quantity": rng.integers(1, 4, n_rows).astype(str),
            "Lineitem name": np.asarray(PRODUCTS, dtype=object)[product],
            "Lineitem price": np.char.mod("%.2f", rng.gamma(2.0, 15.0, n_rows)),
            "Lineitem sku": np.char.add("SKU-", product.astype(str)),
            "Lineitem requires shipping": "true",
            "Lineitem taxable": "true",
            "Lineitem fulfillment status": "fulfilled",
            "Billing Name": per_order(
                np.char.add("Pat Lee", (customer % 991).astype(str))
            ),
            "Billing Address1": per_order(
                np.char.add((customer % 900 + 1).astype(str), " Main Street")
            ),
            "Billing City": per_order(
                np.where(countries == "GB", "London", "Washington")
            ),
            "Billing Zip": per_order(np.where(countries == "GB", "SW1A 1AA", "02134")),
            "Billing Country": per_order(countries),
            "Billing Phone": per_order(draw_phones(rng, customer, countries)),
            "Shipping Country": per_order(countries),
            "Payment Method": per_order(np.full(n_orders, "Shopify Payments")),
            "Refunded Amount": per_order(np.char.mod("%.2f", refunded)),
            "Vendor": "Benchmark Goods",
            "Id": per_order(
                (5_000_000_000 + first_order + np.arange(n_orders)).astype(str)
            ),
            "Risk Level": per_order(np.full(n_orders, "Low")),
            "Source": per_order(np.full(n_orders, "web")),
            "Lineitem discount": "0.00",
            "Lineitem compare at price": np.char.mod(
                "%.2f", rng.gamma(2.0, 18.0, n_rows)
            ),
        }
    )
    # Fill the address, payment and tax fields a real export carries, so the
    # file is as wide as a real one (about 580 bytes a row).
    street = np.char.add((customer % 900 + 1).astype(str), " Main Street, Apt 4")
    columns.update(
        {
            "Fulfilled at": per_order(created_text),
            "Billing Street": per_order(street),
            "Billing Province": per_order(np.where(countries == "GB", "", "DC")),
            "Billing Province Name": per_order(
                np.where(countries == "GB", "", "District of Columbia")
            ),
            "Shipping Name": columns["Billing Name"],
            "Shipping Street": per_order(street),
            "Shipping Address1": columns["Billing Address1"],
            "Shipping City": columns["Billing City"],
            "Shipping Zip": columns["Billing Zip"],
            "Shipping Province": per_order(np.where(countries == "GB", "", "DC")),
            "Shipping Province Name": per_order(
                np.where(countries == "GB", "", "District of Columbia")
            ),
            "Shipping Phone": columns["Billing Phone"],
            "Notes": per_order(
                np.where(rng.random(n_orders) < 0.2, "Leave with the neighbour", "")
            ),
            "Payment Reference": per_order(
                np.char.add("c2983746591.", np.arange(n_orders).astype(str))
            ),
            "Payment ID": per_order(
                np.char.add("r", (8_000_000_000 + np.arange(n_orders)).astype(str))
            ),
            "Note Attributes": per_order(
                np.full(n_orders, "gift_wrap: no, landing: /collections/all")
            ),
            "Tags": per_order(np.full(n_orders, "wholesale, returning, newsletter")),
            "Tax 1 Name": per_order(np.full(n_orders, "DC State Tax 6%")),
            "Tax 1 Value": per_order(np.char.mod("%.2f", total * 0.06)),
            "Receipt Number": per_order(
                np.char.add("R", np.arange(n_orders).astype(str))
            ),
        }
    )
    return to_frame(columns, SHOPIFY_ORDERS_79, n_rows)


def build_checkouts(rng: np.random.Generator, n_customers: int) -> pl.DataFrame:
    """Return abandoned checkouts (older orders layout, one row per checkout)."""
    n_checkouts = max(n_customers // 5, 10)
    customer = rng.integers(1, n_customers + 1, n_checkouts)
    seconds = rng.integers(0, 90 * 86400, n_checkouts)
    created = np.datetime64("2026-08-02T00:00:00") + seconds.astype("timedelta64[s]")
    created_text = np.char.replace(
        np.char.add(np.datetime_as_string(created, unit="s"), " -0500"), "T", " "
    )
    countries = np.where(customer % 10 < 3, "GB", "US")
    total = np.round(rng.gamma(2.0, 40.0, n_checkouts), 2)
    columns = dict(
        {
            "Name": np.char.add(
                "#", (30_000_000_000 + np.arange(n_checkouts)).astype(str)
            ),
            "Email": np.char.add(
                np.char.add("customer", customer.astype(str)), "@example.com"
            ),
            "Currency": "USD",
            "Subtotal": np.char.mod("%.2f", total),
            "Total": np.char.mod("%.2f", total),
            "Created at": created_text,
            "Lineitem quantity": rng.integers(1, 4, n_checkouts).astype(str),
            "Lineitem name": np.asarray(PRODUCTS, dtype=object)[
                rng.integers(0, 400, n_checkouts)
            ],
            "Lineitem price": np.char.mod("%.2f", total),
            "Billing Country": countries,
            "Billing Phone": draw_phones(rng, customer, countries),
        }
    )
    return to_frame(columns, SHOPIFY_ORDERS_70, n_checkouts)


def generate(n_rows: int, *, force: bool = False) -> Path:
    """Write the study folder for `n_rows` order rows; return its raw folder."""
    raw = DATA / f"rows-{n_rows}" / "data" / "raw" / "bench"
    exports = raw / "exports" / MONTH
    if (exports / "orders_export.csv").exists() and not force:
        return raw
    exports.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n_rows)
    n_customers = max(n_rows // 6, 50)
    (raw / "study.yml").write_text(STUDY_YML, encoding="utf-8")
    build_customers(rng, n_customers).write_csv(exports / "customers_export.csv")
    build_checkouts(rng, n_customers).write_csv(
        exports / "abandoned_checkouts_export.csv"
    )
    # Orders in chunks of a million rows, so 5M rows fit in a few GB.
    with open(exports / "orders_export.csv", "wb") as handle:
        first_order = 0
        for start in range(0, n_rows, CHUNK_ROWS):
            size = min(CHUNK_ROWS, n_rows - start)
            chunk = build_orders(rng, size, n_customers, first_order=first_order)
            chunk.write_csv(handle, include_header=start == 0)
            first_order += chunk["Name"].n_unique()
    return raw


def measure(arguments: list[str], *, env: dict) -> dict:
    """Run one process; return its wall and CPU seconds, peak RSS (GB), output.

    A small launcher process starts it: a child's peak RSS starts at its parent's
    size at fork, so measuring from this (large) process would inflate it.
    """
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER_CODE, *arguments],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(launched.stdout.strip().splitlines()[-1])
    if result["status"]:
        raise SystemExit(f"{arguments[:3]} failed: exit {result['status']}")
    return result


def bench(n_rows: int, *, repeat: int, force: bool) -> dict:
    """Generate (once) and time the step and the DuckDB read for one size."""
    raw = generate(n_rows, force=force)
    exports = raw / "exports" / MONTH
    size_mb = sum(p.stat().st_size for p in exports.iterdir()) / 1024**2
    orders_mb = (exports / "orders_export.csv").stat().st_size / 1024**2
    env = {
        **os.environ,
        "HEARD_ROOT": str(raw.parents[2]),
        "HEARD_KEY_FILE": str(DATA / "pseudonym.key"),
    }
    runs = {"step": [], "duckdb": [], "polars": [], "imports": []}
    for _ in range(repeat):
        runs["imports"].append(measure([sys.executable, "-c", IMPORT_CODE], env=env))
        for name, code in (("duckdb", DUCKDB_CODE), ("polars", POLARS_CODE)):
            runs[name].append(
                measure([sys.executable, "-c", code, str(exports)], env=env)
            )
        runs["step"].append(
            measure([sys.executable, "-c", STEP_CODE, str(raw), MONTH], env=env)
        )
    result = {"rows": n_rows, "csv_mb": size_mb, "orders_csv_mb": orders_mb}
    for name, found in runs.items():
        fastest = min(found, key=lambda run: run["seconds"])
        result[f"{name}_seconds"] = fastest["seconds"]
        result[f"{name}_cpu_seconds"] = fastest["cpu_seconds"]
        result[f"{name}_gb"] = max(run["gb"] for run in found)
    work = measure(
        [sys.executable, "-c", WORK_CODE, str(exports), str(PHONE_SAMPLE)], env=env
    )
    result.update(json.loads(work["output"]))
    result["step_output"] = runs["step"][0]["output"]
    result["load_average"] = os.getloadavg()[0]
    return result


HEADER = (
    f"{'rows':>9} {'CSV MB':>7} {'step s':>7} {'cpu s':>6} {'GB':>6} "
    f"{'duck s':>7} {'cpu s':>6} {'GB':>6} {'t x':>5} {'m x':>5} "
    f"{'pl s':>5} {'GB':>6} {'imp s':>6} {'GB':>6} {'pn s':>6} {'hmac s':>6} "
    f"{'load':>5}  target"
)


def format_row(result: dict) -> str:
    """Return one line of the printed table, with ratios and targets."""
    seconds, gigabytes = TARGETS.get(result["rows"], (None, None))
    verdict = []
    if seconds is not None:
        verdict.append("time ok" if result["step_seconds"] <= seconds else "TIME OVER")
    if gigabytes is not None:
        verdict.append("memory ok" if result["step_gb"] <= gigabytes else "MEMORY OVER")
    return (
        f"{result['rows']:>9,} {result['csv_mb']:>7.0f} "
        f"{result['step_seconds']:>7.2f} {result['step_cpu_seconds']:>6.2f} "
        f"{result['step_gb']:>6.3f} {result['duckdb_seconds']:>7.2f} "
        f"{result['duckdb_cpu_seconds']:>6.2f} {result['duckdb_gb']:>6.3f} "
        f"{result['step_seconds'] / result['duckdb_seconds']:>5.1f} "
        f"{result['step_gb'] / result['duckdb_gb']:>5.1f} "
        f"{result['polars_seconds']:>5.2f} {result['polars_gb']:>6.3f} "
        f"{result['imports_seconds']:>6.2f} {result['imports_gb']:>6.3f} "
        f"{result['phonenumbers_cpu_seconds']:>6.2f} "
        f"{result['hmac_cpu_seconds']:>6.2f} "
        f"{result['load_average']:>5.1f}  "
        f"{seconds or '-'} s, {gigabytes or '-'} GB: {', '.join(verdict)}"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the sizes, run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs per size (best)")
    parser.add_argument("--force", action="store_true", help="regenerate the data")
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args(argv)

    print(HEADER)
    results = []
    for n_rows in arguments.rows:
        result = bench(n_rows, repeat=arguments.repeat, force=arguments.force)
        results.append(result)
        print(format_row(result), flush=True)
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Property-based tests: readers, the phone normaliser and the statistics.

Each property holds for every input Hypothesis draws: a generated Shopify export
reads back to the orders that made it, in any row order; a phone number written in
any standard format normalises to the same E.164; agreement is perfect when coders
agree; an interval contains its estimate; and row order never changes a result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpers import experiment_stats as es
from helpers.coding import agreement_table
from helpers.errors import HeardInputError
from helpers.experiments import load_experiment, read_results
from helpers.exports import read_export
from helpers.phones import normalise_phones
from helpers.stats import wilson_interval
from helpers.study import load_defaults, merge_config

FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
HEADER = ["Name", "Email", "Created at", "Total", "Lineitem quantity",
          "Lineitem name", "Lineitem price"]  # fmt: skip
CONFIG = merge_config(load_defaults(), {"study": {"timezone": "UTC"}})
AS_OF = pd.Timestamp("2026-12-01", tz="UTC")


# --------------------------------------------------------------------------------------
# A generated Shopify orders export
# --------------------------------------------------------------------------------------

cents = st.integers(min_value=1, max_value=50_000)
line = st.tuples(st.integers(min_value=1, max_value=5), cents)
order = st.tuples(
    st.lists(line, min_size=1, max_size=4),
    st.integers(min_value=0, max_value=2_000),  # shipping, in cents
    st.integers(min_value=0, max_value=29 * 24 * 60),  # minutes into November
)


def shopify_rows(orders: list) -> tuple[list[list[str]], dict]:
    """Return the export's rows (as Shopify: name, e-mail and date on every row,
    the total on an order's first row only) and the expected
    ``{name: (total, n_items)}``, computed with integer cents."""
    rows, expected = [], {}
    for number, (lines, shipping, minutes) in enumerate(orders, start=1001):
        name = f"#{number}"
        total = sum(q * p for q, p in lines) + shipping
        expected[name] = (total / 100, float(sum(q for q, _ in lines)))
        created = pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(minutes=minutes)
        for position, (quantity, price) in enumerate(lines):
            first = position == 0
            rows.append([
                name, f"c{number}@example.com",
                created.strftime("%Y-%m-%d %H:%M:%S +0000"),
                f"{total / 100:.2f}" if first else "", str(quantity),
                f"Item {position}", f"{price / 100:.2f}",
            ])  # fmt: skip
    return rows, expected


def read_orders(rows: list[list[str]]) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders_export.csv"
        pd.DataFrame(rows, columns=HEADER).to_csv(path, index=False)
        return read_export(path, config=CONFIG, as_of=AS_OF).tables["orders"]


@FAST
@given(orders=st.lists(order, min_size=1, max_size=8), seed=st.integers(0, 2**32 - 1))
def test_shopify_export_reads_back_its_orders_in_any_row_order(orders, seed):
    rows, expected = shopify_rows(orders)
    shuffled = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    for table in (rows, shuffled):
        read = read_orders(table)
        assert len(read) == read["order_id"].nunique() == len(expected)
        got = {
            name: (total, n_items)
            for name, total, n_items in read[["order_id", "total", "n_items"]].values
        }
        assert got.keys() == expected.keys()
        for name, (total, n_items) in expected.items():
            assert got[name][0] == pytest.approx(total, abs=1e-9)
            assert got[name][1] == n_items


HOSTILE_CELLS = st.one_of(
    st.text(max_size=12),
    st.sampled_from([
        "", "-1", "1e400", "nan", "inf", "2026-13-45", "05/11/2026", "12,50",
        "1,299.00", "=1+1", "'+44 7700 900123", "\ufeff", "2031-01-01 10:00:00 +0000",
    ]),
)  # fmt: skip


@FAST
@given(rows=st.lists(st.lists(HOSTILE_CELLS, min_size=7, max_size=7), max_size=6))
def test_any_cell_text_gives_a_clear_error_or_sound_orders(rows):
    # Never a traceback; never an order counted twice, negative or infinite.
    try:
        read = read_orders(rows)
    except HeardInputError as error:
        assert error.file.endswith("orders_export.csv") and error.fix
        return
    assert read["order_id"].is_unique
    totals = read["total"].dropna()
    assert ((totals >= 0) & np.isfinite(totals)).all()
    assert (read["created_at"] <= AS_OF).all()


# --------------------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------------------

REGIONS = ["US", "GB", "DE", "FR", "AU", "CA", "NL", "ES", "IT", "IE"]
FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
]


@FAST
@given(
    region=st.sampled_from(REGIONS),
    tail=st.integers(min_value=0, max_value=99),
    style=st.sampled_from(FORMATS),
    apostrophe=st.booleans(),
)
def test_a_number_in_any_standard_format_normalises_to_its_e164(
    region, tail, style, apostrophe
):
    example = phonenumbers.example_number_for_type(
        region, phonenumbers.PhoneNumberType.MOBILE
    )
    digits = str(example.national_number)
    number = phonenumbers.parse(f"+{example.country_code}{digits[:-2]}{tail:02d}")
    assume(phonenumbers.is_valid_number(number))
    written = ("'" if apostrophe else "") + phonenumbers.format_number(number, style)
    result = normalise_phones(pd.Series([written]), pd.Series([region]))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert result.loc[0, "phone_e164"] == e164
    assert result.loc[0, "phone_status"] == "valid"


@pytest.mark.parametrize(
    ("uri", "region", "e164", "extension"),
    [
        ("tel:+49-1512-3456700", "DE", "+4915123456700", None),
        ("TEL:+1-202-555-0111;ext=42", "US", "+12025550111", "42"),
        ("tel:7946-0000;phone-context=+44-20", "US", "+442079460000", None),
        ("tel:07700 900123", "GB", "+447700900123", None),
    ],
    ids=["plus", "extension", "phone-context", "no-plus"],
)
def test_a_tel_uri_normalises_to_its_e164(uri, region, e164, extension):
    result = normalise_phones(pd.Series([uri]), pd.Series([region]))
    assert result.loc[0, "phone_e164"] == e164
    assert result.loc[0, "phone_extension"] == extension


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=100_000),
    share=st.floats(min_value=0, max_value=1),
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]),
)
def test_wilson_interval_contains_its_estimate(n, share, alpha):
    k = round(share * n)
    low, high = wilson_interval(k, n, alpha=alpha)
    assert 0 <= low <= k / n <= high <= 1


arm_counts = st.integers(min_value=1, max_value=200_000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


@settings(max_examples=100, deadline=None)
@given(control=arm_counts, treatment=arm_counts)
def test_chance_to_beat_control_and_its_mirror_sum_to_one(control, treatment):
    # P(B > A) + P(A > B) = 1 for continuous posteriors, whatever their widths.
    (k0, n0), (k1, n1) = control, treatment
    forward = es.chance_beta_binomial([k0], [n0], [k1], [n1])[0]
    mirror = es.chance_beta_binomial([k1], [n1], [k0], [n0])[0]
    assert 0 <= forward <= 1 + 1e-9
    assert forward + mirror == pytest.approx(1, abs=1e-5)


@settings(max_examples=100, deadline=None)
@given(control=arm_counts, treatment=arm_counts, alpha=st.sampled_from([0.01, 0.05]))
def test_lift_intervals_contain_their_estimates(control, treatment, alpha):
    (k0, n0), (k1, n1) = control, treatment
    result = es.compare_proportions(k0, n0, k1, n1, alpha=alpha)
    assert result["abs_ci_low"] <= result["abs_lift"] <= result["abs_ci_high"]
    p0, p1 = k0 / n0, k1 / n1
    relative = es.relative_lift(
        p0, p0 * (1 - p0) / n0, p1, p1 * (1 - p1) / n1, alpha=alpha
    )
    if k0 > 0 and k1 > 0:
        low, high = relative["rel_ci_low"], relative["rel_ci_high"]
        assert low <= relative["rel_lift"] * (1 + 1e-12) + 1e-12
        assert relative["rel_lift"] <= high * (1 + 1e-12) + 1e-12


CODES = ["OBJ-PRICE", "OBJ-SHIP", "OBJ-TRUST"]
unit_codes = st.lists(
    st.lists(st.sampled_from(CODES), max_size=2, unique=True), min_size=2, max_size=15
)


def two_coders(units: list[list[str]], *, second: list[list[str]] | None = None):
    rows = []
    for coder, coded in (("Rita", units), ("Sam", second or units)):
        for index, codes in enumerate(coded):
            for code in codes or ["no code"]:
                rows.append(("a", f"a-{index + 1:03d}", coder, code))
    frame = pd.DataFrame(
        rows, columns=["conversation_id", "excerpt_id", "coder", "code"]
    )
    return frame.assign(is_suggestion=False)


@FAST
@given(units=unit_codes)
def test_agreement_is_perfect_when_coders_agree_and_codes_vary(units):
    table = agreement_table(two_coders(units), n_boot=0).set_index("code")
    for code in CODES:
        applied = sum(code in codes for codes in units)
        if 0 < applied < len(units):  # variation: defined, and perfect
            assert table.loc[code, "percent_agreement"] == 1
            assert table.loc[code, "kappa"] == pytest.approx(1)
            assert table.loc[code, "alpha"] == pytest.approx(1)
    if any(units):  # the overall row pools the codes used at least once
        assert table.loc["overall", "percent_agreement"] == 1


@FAST
@given(units=unit_codes, other=unit_codes, seed=st.integers(0, 2**32 - 1))
def test_shuffling_coding_rows_never_changes_agreement(units, other, seed):
    other = (other * len(units))[: len(units)]
    codings = two_coders(units, second=other)
    shuffled = codings.sample(frac=1, random_state=seed % 2**31)
    pd.testing.assert_frame_equal(
        agreement_table(codings, n_boot=0), agreement_table(shuffled, n_boot=0)
    )


EXPERIMENT = """\
name: rows
hypothesis: Shuffling rows changes nothing.
variants: [{id: control, name: A}, {id: b, name: B}]
split: {control: 0.5, b: 0.5}
primary_metric: revenue_per_visitor
secondary_metrics: [conversion_rate]
results: {file: results.csv, kind: rows, unit_column: unit}
"""
visitor = st.tuples(
    st.sampled_from(["control", "b"]),
    st.integers(min_value=0, max_value=3),  # orders
    st.integers(min_value=0, max_value=20_000),  # revenue in cents
)


@settings(max_examples=10, deadline=None)
@given(visitors=st.lists(visitor, min_size=4, max_size=40), seed=st.integers(0, 999))
def test_experiment_sufficient_statistics_ignore_row_order(visitors, seed):
    assume({arm for arm, _, _ in visitors} == {"control", "b"})
    results = pd.DataFrame(visitors, columns=["variant", "orders", "revenue"])
    results = results.assign(unit=range(len(results)), revenue=results["revenue"] / 100)
    arms = []
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "experiment.yml").write_text(EXPERIMENT)
        for frame in (results, results.sample(frac=1, random_state=seed)):
            frame.to_csv(Path(folder) / "results.csv", index=False)
            definition = load_experiment(
                Path(folder) / "experiment.yml", defaults=CONFIG["experiments"]
            )
            arms.append(read_results(definition)[0].set_index("variant"))
    pd.testing.assert_frame_equal(arms[0], arms[1], check_exact=False, rtol=1e-12)

    # The same sums, counted independently with pandas.
    by_arm = results.groupby("variant")
    assert arms[0]["n"].to_dict() == by_arm.size().to_dict()
    assert arms[0]["revenue"].to_dict() == pytest.approx(
        by_arm["revenue"].sum().to_dict()
    )
    squares = (results["revenue"] ** 2).groupby(results["variant"]).sum()
    assert arms[0]["revenue_sq"].to_dict() == pytest.approx(squares.to_dict())
    buyers = (results["orders"] > 0).groupby(results["variant"]).sum()
    assert arms[0]["conversions"].to_dict() == pytest.approx(buyers.to_dict())

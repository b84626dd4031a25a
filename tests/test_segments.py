"""Tests for helpers.segments: features, segment rules, the draw and the call list.

The crafted store below is small enough to check by hand; each expected value is
worked out in a comment from the fixture's dates, not read back from the code.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import openpyxl
import pandas as pd
import pytest
from public_data import RETAIL_STUDY

from helpers import files, segments
from helpers.privacy import customer_key
from helpers.study import load_defaults, load_study, merge_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

AS_OF = pd.Timestamp("2026-11-01", tz="UTC")


def stamp(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def crafted_config(**overrides) -> dict:
    config = load_defaults()
    config = merge_config(config, {"segments": {"high_return_min_orders": 2}})
    return merge_config(config, overrides)


def crafted_exports() -> SimpleNamespace:
    """Seven customers A-G; the docstring of each test says who should match."""
    people = list("ABCDEFG")
    customers = pd.DataFrame(
        {
            "customer_key": [f"c_{p}" for p in people],
            # Mixed case and spaces: orders must still match on the normalised e-mail.
            "email": [f" {p}@Example.com" for p in people],
            "first_name": people,
            "last_name": ["Smith"] * 7,
            "country": ["GB", "US", "US", "GB", "US", "US", "US"],
            "phone_e164": [f"+4477009001{i:02d}" for i in range(7)],
            "phone_national": [f"07700 9001{i:02d}" for i in range(7)],
            "phone_extension": [None] * 7,
            "phone_status": ["possible"] * 7,
            "is_callable": [True] * 7,
            "timezone": ["Europe/London", *["America/New_York"] * 6],
            "has_consent": [True] * 7,
            "is_do_not_call": [False] * 7,
        }
    )
    # Order 1003 of C spans three line-item rows in the export but is one order.
    orders = pd.DataFrame(
        {
            "order_id": ["1001", "1002", "1003", "1004", "1005", "1006", "1007"],
            "email": [
                "a@example.com",
                "B@EXAMPLE.COM",
                "c@example.com",
                "c@example.com",
                "d@example.com",
                "e@example.com",
                "b@example.com",
            ],
            "customer_id": [None] * 7,
            "created_at": [
                stamp("2026-10-20"),  # A: 12 days before 1 Nov
                stamp("2026-07-01"),  # B: 123 days
                stamp("2026-01-10"),  # C: first order
                stamp("2026-03-01"),  # C: 245 days
                stamp("2026-09-01"),  # D: 61 days
                stamp("2026-10-12"),  # E: after E's checkout of 10 Oct
                stamp("2026-06-15"),  # B: cancelled, so not an order
            ],
            "total": [50.0, 20.0, 30.0, 40.0, 25.0, 15.0, 99.0],
            "refunded_amount": [50.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "is_cancelled": [False, False, False, False, False, False, True],
            "n_items": [1, 2, 3, 1, 1, 1, 1],
        }
    )
    lines = pd.DataFrame(
        {
            "order_id": ["1001", "1002", "1002", "1003", "1003", "1003", "1004"]
            + ["1005", "1006", "1007"],
            "product": ["Mug", "Tee", "Cap", "Mug", "Tee", "Tee", "Tee"]
            + ["Tee", "Tee", "Cap"],
            "quantity": [1] * 10,
            "price": [10.0] * 10,
        }
    )
    checkouts = pd.DataFrame(
        {
            "checkout_id": ["k1", "k2", "k3", "k4"],
            "email": [
                "d@example.com",
                "e@example.com",
                "f@example.com",
                "g@example.com",
            ],
            "created_at": [
                stamp("2026-10-15"),  # D: after D's only order, 17 days old
                stamp("2026-10-10"),  # E: E ordered two days later
                stamp("2026-10-25"),  # F: never ordered
                stamp("2026-08-01"),  # G: 92 days old, past the 30-day window
            ],
            "total": [80.0, 10.0, 12.0, 30.0],
            "n_items": [3, 1, 1, 2],
        }
    )
    return SimpleNamespace(
        orders=orders,
        lines=lines,
        customers=customers,
        checkouts=checkouts,
        rejected=pd.DataFrame(columns=["file", "row", "column", "reason"]),
    )


def crafted_views() -> pd.DataFrame:
    # F viewed Mug twice (a repeat viewer who never bought); G viewed Tee once.
    return pd.DataFrame(
        {
            "email": ["f@example.com", "F@example.com", "g@example.com"],
            "product": ["Mug", "Mug", "Tee"],
            "viewed_at": [
                stamp("2026-10-01"),
                stamp("2026-10-02"),
                stamp("2026-10-03"),
            ],
        }
    )


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return segments.build_customer_features(
        crafted_exports(), as_of=AS_OF, config=crafted_config(), views=crafted_views()
    )


def members(table: pd.DataFrame, segment: str) -> set:
    return set(table.loc[table["segment"] == segment, "customer_key"])


# ------------------------------------------------------------------ features


def test_orders_are_counted_as_orders_not_line_rows(features):
    by_key = features.set_index("customer_key")
    # C has 4 line rows over 2 orders; B's cancelled order does not count.
    assert by_key.loc["c_C", "n_orders"] == 2
    assert by_key.loc["c_B", "n_orders"] == 1
    assert by_key.loc["c_B", "n_orders_placed"] == 2
    assert by_key.loc["c_F", "n_orders"] == 0


def test_spend_refunds_and_return_rate(features):
    by_key = features.set_index("customer_key")
    # A paid 50 and got 50 back: spend 0, one of one orders returned.
    assert by_key.loc["c_A", "spend"] == 0.0
    assert by_key.loc["c_A", "refunded_amount"] == 50.0
    assert by_key.loc["c_A", "return_rate"] == 1.0
    # B: 20 kept, the cancelled 99 excluded; 1 of 2 placed orders cancelled.
    assert by_key.loc["c_B", "spend"] == 20.0
    assert by_key.loc["c_B", "return_rate"] == 0.5
    assert by_key.loc["c_C", "spend"] == 70.0


def test_days_since_last_order_and_lifecycle(features):
    by_key = features.set_index("customer_key")
    expected_days = {"c_A": 12, "c_B": 123, "c_C": 245, "c_D": 61, "c_E": 20}
    for key, days in expected_days.items():
        assert by_key.loc[key, "days_since_last_order"] == days
        assert (
            by_key.loc[key, "days_since_last_order"]
            == (AS_OF - by_key.loc[key, "last_order_at"]).days
        )
    stages = by_key["lifecycle_stage"].to_dict()
    assert stages["c_A"] == "0-29d"
    assert stages["c_B"] == "90-179d"
    assert stages["c_C"] == "180-364d"
    assert stages["c_D"] == "30-89d"
    assert stages["c_F"] == "never_bought"
    assert by_key.loc["c_C", "first_order_at"] == stamp("2026-01-10")


def test_products_bought_per_customer(features):
    by_key = features.set_index("customer_key")
    assert by_key.loc["c_C", "n_products"] == 2  # Mug, Tee (Tee twice)
    assert by_key.loc["c_A", "n_products"] == 1
    assert by_key.loc["c_B", "n_products"] == 2  # Tee, Cap (Cap also cancelled)


def test_customer_key_is_pandas_text(features):
    # The fixture's keys are Python strings, which pandas stores as its str dtype.
    assert features["customer_key"].dtype == "str"
    assert list(features["customer_key"]) == [f"c_{p}" for p in "ABCDEFG"]


def test_checkout_without_a_date_counts_but_is_never_open():
    exports = crafted_exports()
    # F's only checkout (k3) loses its date: F never ordered, so it was open.
    exports.checkouts.loc[exports.checkouts["checkout_id"] == "k3", "created_at"] = (
        pd.NaT
    )
    features = segments.build_customer_features(
        exports, as_of=AS_OF, config=crafted_config()
    )
    f = features.set_index("customer_key").loc["c_F"]
    assert f["n_checkouts"] == 1
    assert pd.isna(f["last_checkout_at"])
    assert not f["has_open_checkout"]
    assert pd.isna(f["open_checkout_items"]) and pd.isna(f["open_checkout_total"])


# ------------------------------------------------------------------ segments


def test_segment_membership_on_crafted_store(features):
    table = segments.assign_segments(features, config=crafted_config(), has_views=True)
    assert members(table, "recent_buyers") == {"c_A", "c_E"}  # 12 and 20 days
    # One order, none for more than 60 days: B (123) and D (61).
    assert members(table, "first_time_no_return") == {"c_B", "c_D"}
    assert members(table, "churned") == {"c_C"}  # two orders, 245 days
    # D's checkout came after D's last order; E ordered after; G's is too old.
    assert members(table, "cart_abandoners") == {"c_D", "c_F"}
    assert members(table, "multi_item_abandoners") == {"c_D"}
    assert members(table, "single_item_abandoners") == {"c_F"}
    # Mug: 2 orders (1001 refunded, 1003 not) -> 0.5 >= 0.3; Tee: 0 of 6 orders;
    # Cap: 1 of 2 orders (1007 cancelled) -> 0.5. Buyers of Mug or Cap: A, B, C.
    assert members(table, "high_return_buyers") == {"c_A", "c_B", "c_C"}
    assert members(table, "viewers_never_bought") == {"c_F"}
    assert members(table, "lifecycle_never_bought") == {"c_F", "c_G"}


def test_view_rules_are_skipped_without_views():
    features = segments.build_customer_features(
        crafted_exports(), as_of=AS_OF, config=crafted_config()
    )
    table = segments.assign_segments(features, config=crafted_config())
    sizes = segments.tally_segments(table, config=crafted_config())
    assert "viewers_never_bought" not in set(table["segment"])
    assert "viewers_never_bought" not in set(sizes["segment"])


def test_segment_sizes_include_empty_segments(features):
    config = crafted_config()
    table = segments.assign_segments(features, config=config, has_views=True)
    sizes = segments.tally_segments(table, config=config, has_views=True)
    sizes = sizes.set_index("segment")["n_customers"]
    assert sizes["churned"] == 1
    assert sizes["lifecycle_365d+"] == 0
    # Every customer is in exactly one lifecycle stage.
    stages = sizes[sizes.index.str.startswith("lifecycle_")]
    assert stages.sum() == 7


def test_study_rule_overrides_and_bad_rule_names_the_rule(features):
    config = crafted_config(
        segments={"rules": {"big_spenders": "spend >= 70", "churned": None}}
    )
    table = segments.assign_segments(features, config=config)
    assert members(table, "big_spenders") == {"c_C"}
    assert "churned" not in set(table["segment"])
    broken = crafted_config(segments={"rules": {"oops": "no_such_column > 1"}})
    with pytest.raises(segments.HeardInputError, match="segments.rules.oops"):
        segments.assign_segments(features, config=broken)


# ------------------------------------------------------------------ sampling


def test_count_to_dial_is_target_over_connect_rate():
    # 25 / 0.35 = 71.43 -> 72; 20 / 0.4 = 50 exactly.
    assert (
        segments.count_to_dial(target_conversations=25, expected_connect_rate=0.35)
        == 72
    )
    assert (
        segments.count_to_dial(target_conversations=20, expected_connect_rate=0.4) == 50
    )
    with pytest.raises(ValueError, match="expected_connect_rate"):
        segments.count_to_dial(target_conversations=20, expected_connect_rate=0)


def test_expected_conversations_range_matches_the_binomial_by_hand():
    # Central 95% range of Binomial(72, 0.35): the smallest k with P(X <= k) >= 2.5%
    # and the smallest k with P(X <= k) >= 97.5%, summed from the pmf by hand.
    n, p = 72, 0.35
    cdf = np.cumsum([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])
    low = int(np.argmax(cdf >= 0.025))
    high = int(np.argmax(cdf >= 0.975))
    found = segments.expected_conversations(72, 0.35)
    assert found["expected"] == pytest.approx(25.2)
    assert (found["low"], found["high"]) == (low, high)
    assert 17 <= low < 25 < high <= 34


def test_allocate_proportionally_uses_largest_remainder():
    sizes = pd.Series({"a": 5, "b": 3, "c": 2})
    # Exact shares of 7: 3.5, 2.1, 1.4 -> floors 3, 2, 1 and the spare one to a.
    assert segments.allocate_proportionally(7, sizes).to_dict() == {
        "a": 4,
        "b": 2,
        "c": 1,
    }
    assert segments.allocate_proportionally(20, sizes).to_dict() == sizes.to_dict()


def population(n: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    keys = [f"c_{i:05d}" for i in range(n)]
    features = pd.DataFrame(
        {
            "customer_key": keys,
            # 60% in one stage and 40% in another.
            "lifecycle_stage": np.where(np.arange(n) % 5 < 3, "0-29d", "30-89d"),
            "has_consent": True,
            "is_do_not_call": False,
            "is_callable": True,
        }
    )
    table = pd.DataFrame({"customer_key": keys, "segment": "cart_abandoners"})
    return features, table


def draw(features, table, *, excluded=None, config=None):
    return segments.draw_call_list(
        features,
        table,
        month_segments=["cart_abandoners"],
        excluded=excluded
        if excluded is not None
        else pd.DataFrame(columns=["customer_key", "reason"]),
        config=config or load_defaults(),
    )


def test_holdout_split_sizes_and_strata():
    features, table = population()
    sample = draw(features, table)
    # 72 to call with half held back: ceil(72 / 0.5) = 144 drawn, 72 held back.
    counts = sample["arm"].value_counts()
    assert counts["called"] == 72
    assert counts["holdout"] == math.ceil(72 / 0.5) - 72
    # Strata 600:400 -> 86.4 and 57.6 of 144 -> 86 and 58.
    per_stratum = sample.groupby("stratum").size().to_dict()
    assert per_stratum == {"cart_abandoners/0-29d": 86, "cart_abandoners/30-89d": 58}
    called = sample[sample["arm"] == "called"].groupby("stratum").size().to_dict()
    # 72 split 86:58 -> 43.0 and 29.0.
    assert called == {"cart_abandoners/0-29d": 43, "cart_abandoners/30-89d": 29}
    assert sample["customer_key"].is_unique


def test_same_inputs_and_seed_give_the_same_draw_in_any_row_order():
    features, table = population()
    first = draw(features, table)
    shuffled = draw(
        features.sample(frac=1, random_state=1), table.sample(frac=1, random_state=2)
    )
    pd.testing.assert_frame_equal(first, shuffled)
    other_seed = draw(
        features, table, config=merge_config(load_defaults(), {"sampling": {"seed": 7}})
    )
    assert set(other_seed["customer_key"]) != set(first["customer_key"])


def test_segments_without_holdout_call_everyone_drawn():
    features, table = population(100)
    table = table.assign(segment="churned")
    sample = segments.draw_call_list(
        features,
        table,
        month_segments=["churned"],
        excluded=pd.DataFrame(columns=["customer_key", "reason"]),
        config=load_defaults(),
    )
    assert (sample["arm"] == "called").sum() == 72
    assert "holdout" not in set(sample["arm"])


def test_exclusions_keep_earlier_called_dnc_and_unconsented_off_the_list():
    features, table = population(200)
    features = features.copy()
    features.loc[0:9, "has_consent"] = False
    features.loc[10:19, "is_do_not_call"] = True
    features.loc[20:29, "is_callable"] = False
    phones = pd.DataFrame(
        {
            "customer_key": features["customer_key"],
            "phone_e164": [f"+1202555{i:04d}" for i in range(200)],
        }
    )
    excluded = segments.find_exclusions(
        features,
        called_before={f"c_{i:05d}" for i in range(30, 40)},
        do_not_call_keys={"c_00040"},
        do_not_call_phones={"+12025550041"},
        phones=phones,
    )
    reasons = excluded.set_index("customer_key")["reason"]
    assert reasons.value_counts().to_dict() == {
        "called_before": 10,
        "do_not_call": 12,
        "no_consent": 10,
        "not_callable": 10,
    }
    assert reasons["c_00041"] == "do_not_call"
    sample = draw(features, table, excluded=excluded)
    assert not set(sample["customer_key"]) & set(excluded["customer_key"])
    # 200 - 42 excluded = 158 eligible, more than the 144 wanted.
    assert len(sample) == 144


def test_earlier_call_logs_and_assignments_are_read(tmp_path):
    study_dir = tmp_path / "raw" / "shop"
    (study_dir / "calls" / "2026-10").mkdir(parents=True)
    (study_dir / "calls" / "2026-11").mkdir(parents=True)
    pd.DataFrame({"reference": ["c_a"], "outcome": ["connected"]}).to_csv(
        study_dir / "calls" / "2026-10" / "list.csv", index=False
    )
    # A phone system's log: numbers only, matched on E.164.
    pd.DataFrame({"To": ["(202) 555-0142"]}).to_csv(
        study_dir / "calls" / "2026-10" / "aircall.csv", index=False
    )
    # This month's own log must not exclude anyone.
    pd.DataFrame({"customer_key": ["c_now"]}).to_csv(
        study_dir / "calls" / "2026-11" / "list.csv", index=False
    )
    processed = tmp_path / "processed"
    (processed / "2026-09").mkdir(parents=True)
    pd.DataFrame({"customer_key": ["c_held"], "arm": ["holdout"]}).to_parquet(
        processed / "2026-09" / "assignment_customer.parquet"
    )
    study = load_study(study_dir, root=tmp_path, processed_root=processed)
    phones = pd.DataFrame(
        {"customer_key": ["c_phone", "c_other"], "phone_e164": ["+12025550142", "+1"]}
    )
    called = segments.load_called_before(study, "2026-11", phones=phones)
    assert called == {"c_a", "c_phone", "c_held"}


# ------------------------------------------------------------------ call list


def test_uk_calling_window_is_london_time_across_clock_changes():
    # London is UTC+0 in November and UTC+1 (BST) in July.
    low, high = segments.calling_window("Europe/London", date(2026, 11, 10))
    assert (low, high) == (stamp("2026-11-10 09:00"), stamp("2026-11-10 20:00"))
    low, high = segments.calling_window("Europe/London", date(2026, 7, 10))
    assert (low, high) == (stamp("2026-07-10 08:00"), stamp("2026-07-10 19:00"))


def test_window_in_store_time_follows_both_clocks():
    def shown(zone, day):
        return segments.format_calling_window(
            zone, day, start="09:00", end="20:00", show_in="America/New_York"
        )

    # 15 Nov: London UTC+0, New York UTC-5 -> 04:00-15:00.
    assert shown("Europe/London", date(2026, 11, 15)) == "04:00-15:00"
    # 28 Oct: London back on UTC+0 (25 Oct), New York still UTC-4 -> 05:00-16:00.
    assert shown("Europe/London", date(2026, 10, 28)) == "05:00-16:00"
    # Tokyo UTC+9: 09:00 is 00:00 UTC, 19:00 the day before in New York.
    assert shown("Asia/Tokyo", date(2026, 11, 15)) == "19:00 (-1d)-06:00"


def test_call_list_columns_and_holdout_rows_without_phones():
    exports = crafted_exports()
    assignment = pd.DataFrame(
        {
            "customer_key": ["c_A", "c_D"],
            "segment": ["cart_abandoners"] * 2,
            "arm": ["called", "holdout"],
            "stratum": ["cart_abandoners/0-29d", "cart_abandoners/30-89d"],
        }
    )
    config = crafted_config(
        months={"2026-11": {"question": "What almost stopped you?"}},
        calls={
            "guide": {
                "prompts": ["Ask the question."],
                "segment_prompts": {"cart_abandoners": ["Mention the basket.", "Why?"]},
            }
        },
    )
    sheet = segments.format_call_list(
        assignment, exports.customers, month="2026-11", config=config
    )
    assert list(sheet.columns) == segments.PLAN_COLUMNS
    called = sheet.iloc[0]
    assert called["reference"] == "c_A"
    assert called["name"] == "A Smith"
    assert called["phone_e164"] == "+447700900100"
    assert called["local_timezone"] == "Europe/London"
    assert called["calling_window_local"] == "09:00-20:00"
    assert called["calling_window_store"] == "04:00-15:00"
    assert called["question"] == "What almost stopped you?"
    assert called["prompts"] == "Mention the basket. / Why?"
    assert pd.isna(sheet.iloc[1]["phone_e164"]) and pd.isna(sheet.iloc[1]["name"])
    assert sheet[segments.CALLER_COLUMNS].isna().all().all()
    assert not sheet["is_timezone_assumed"].any()


def test_call_list_flags_a_zone_the_store_stood_in_for(caplog):
    """B's zone was assumed at export; C's is blank; A's came from the number."""
    exports = crafted_exports()
    customers = exports.customers.assign(
        is_timezone_assumed=[False, True, False, False, False, False, False]
    )
    customers.loc[2, "timezone"] = None
    assignment = pd.DataFrame(
        {
            "customer_key": ["c_A", "c_B", "c_C"],
            "segment": ["cart_abandoners"] * 3,
            "arm": ["called"] * 3,
            "stratum": ["cart_abandoners/0-29d"] * 3,
        }
    )
    config = crafted_config(study={"timezone": "Asia/Tokyo"})
    sheet = segments.format_call_list(
        assignment, customers, month="2026-11", config=config
    )
    assert sheet["is_timezone_assumed"].tolist() == [False, True, True]
    # B keeps the zone the export filled in; C gets the store's.
    assert sheet["local_timezone"].tolist()[1:] == ["America/New_York", "Asia/Tokyo"]
    assert "2 drawn customers have no time zone" in caplog.text


def test_month_prompts_win_over_the_guide():
    config = crafted_config(calls={"guide": {"prompts": ["Guide prompt."]}})
    month_block = {"prompts": {"churned": ["Ask why they stopped."]}}
    assert (
        segments.format_prompts("churned", month_block=month_block, config=config)
        == "Ask why they stopped."
    )
    assert (
        segments.format_prompts("recent_buyers", month_block={}, config=config)
        == "Guide prompt."
    )


def test_formula_names_are_neutralised_in_xlsx_and_csv(tmp_path):
    sheet = pd.DataFrame(
        {
            "reference": ["c_1"],
            "name": ['=HYPERLINK("http://evil.example","click")'],
            "outcome": [None],
        }
    )
    files.save_xlsx(
        sheet, tmp_path / "list.xlsx", dropdowns={"outcome": list(segments.OUTCOMES)}
    )
    files.save_csv(sheet, tmp_path / "list.csv")
    cell = openpyxl.load_workbook(tmp_path / "list.xlsx")["Sheet1"]["B2"]
    assert cell.data_type == "s" and cell.quotePrefix
    assert cell.value == '=HYPERLINK("http://evil.example","click")'
    text = (tmp_path / "list.csv").read_text()
    assert "'=HYPERLINK" in text
    assert "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text


# ------------------------------------------------------------------ whole step


@pytest.fixture(scope="module")
def retail_run(tmp_path_factory):
    source = SHARED / "online-retail-sample" / "online_retail_sample.csv"
    if not source.exists():
        pytest.skip(f"real public data not found at {source}")
    root = tmp_path_factory.mktemp("retail")
    raw = root / "raw" / "retail"
    (raw / "exports" / "2012-01").mkdir(parents=True)
    shutil.copy(source, raw / "exports" / "2012-01" / source.name)
    (raw / "study.yml").write_text(RETAIL_STUDY, encoding="utf-8")
    study = load_study(raw, root=root, processed_root=root / "processed")
    # The same key file as conftest's per-test fixture, set before it runs.
    with pytest.MonkeyPatch.context() as patch:
        key_file = tmp_path_factory.getbasetemp() / "pseudonym.key"
        patch.setenv("HEARD_KEY_FILE", str(key_file))
        yield source, study, segments.run_segment_step(study, "2012-01")


def expected_retail_segments(source) -> dict:
    """Segment members computed with plain pandas from the raw file.

    Rules as documented: an invoice starting with C is a credit note, not an
    order; an invoice with a negative quantity that is not a credit note is
    rejected whole; dates are London time; days are counted to 1 Jan 2012.
    """
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)
    quantity = pd.to_numeric(raw["Quantity"])
    is_credit = raw["InvoiceNo"].str.startswith("C")
    bad = set(raw.loc[(quantity < 0) & ~is_credit, "InvoiceNo"])
    purchases = raw[~is_credit & ~raw["InvoiceNo"].isin(bad)]
    by_customer = purchases[purchases["CustomerID"] != "NA"].assign(
        when=lambda f: (
            pd.to_datetime(f["InvoiceDate"])
            .dt.tz_localize("Europe/London")
            .dt.tz_convert("UTC")
        )
    )
    per = by_customer.groupby("CustomerID").agg(
        n_orders=("InvoiceNo", "nunique"), last=("when", "max")
    )
    days = (pd.Timestamp("2012-01-01", tz="UTC") - per["last"]).dt.days
    keys = {c: customer_key(f"id:{c}") for c in raw["CustomerID"].unique()}
    pick = lambda mask: {keys[c] for c in per.index[mask]}  # noqa: E731
    return {
        "n_orders": purchases["InvoiceNo"].nunique(),
        "recent_buyers": pick(days <= 30),
        "first_time_no_return": pick((per["n_orders"] == 1) & (days > 60)),
        "churned": pick((per["n_orders"] >= 2) & (days > 180)),
    }


def test_real_online_retail_segments_match_pandas(retail_run):
    source, study, result = retail_run
    expected = expected_retail_segments(source)
    table = result["plan"].segments
    # 3,049 distinct customer ids, as the data set's SOURCE.md states.
    assert result["n_customers"] == 3049
    assert result["n_orders"] == expected["n_orders"]
    for segment in ("recent_buyers", "first_time_no_return", "churned"):
        assert members(table, segment) == expected[segment], segment
        assert result["segment_sizes"][segment] == len(expected[segment])
    assert result["segment_sizes"]["churned"] > 100


def test_real_online_retail_writes_every_file_without_personal_details(retail_run):
    _, study, result = retail_run
    folder = study.processed("2012-01")
    names = {
        "orders_order.parquet",
        "checkouts_checkout.parquet",
        "customers_customer.parquet",
        "segments_customer.parquet",
        "assignment_customer.parquet",
        "call-list_customer_2012-01.xlsx",
        "call-list_customer_2012-01.csv",
        "rejected-rows_row_2012-01.csv",
        "summary_segments.json",
    }
    assert names <= {p.name for p in folder.iterdir()}
    customers = pd.read_parquet(folder / "customers_customer.parquet")
    personal = {"email", "first_name", "last_name", "name", "zip", "phone_e164"}
    assert not personal & set(customers.columns)
    assert not personal & set(pd.read_parquet(folder / "orders_order.parquet").columns)
    summary = json.loads((folder / "summary_segments.json").read_text())
    assert summary["segment_sizes"] == result["segment_sizes"]
    # This data set has no phone numbers, so nobody can be called.
    assert summary["n_call_list"] == 0
    assert summary["n_excluded"]["not_callable"] > 0
    rejected = pd.read_csv(folder / "rejected-rows_row_2012-01.csv")
    assert list(rejected.columns) == ["file", "row", "column", "reason"]


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory):
    from helpers.demo import write_demo_study

    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        key_file = tmp_path_factory.getbasetemp() / "pseudonym.key"
        patch.setenv("HEARD_KEY_FILE", str(key_file))
        raw = write_demo_study(root / "raw" / "demo")
        # Two repeat viewers of one product who never bought, and one who did.
        customers = pd.read_csv(
            raw / "exports" / "2026-11" / "customers_export.csv", dtype=str
        )
        orders = pd.read_csv(
            raw / "exports" / "2026-11" / "orders_export_1.csv", dtype=str
        )
        buyers = set(orders["Email"].str.casefold())
        never = [e for e in customers["Email"].dropna() if e.casefold() not in buyers]
        bought = next(e for e in customers["Email"].dropna() if e.casefold() in buyers)
        views = pd.DataFrame(
            {
                "email": [never[0], never[0], never[1], never[1], bought, bought],
                "product": ["Tent"] * 6,
                "viewed_at": [f"2026-10-0{d}T10:00:00Z" for d in range(1, 7)],
            }
        )
        (raw / "exports" / "2026-11" / "views").mkdir()
        views.to_csv(raw / "exports" / "2026-11" / "views" / "views.csv", index=False)
        study = load_study(raw, root=root, processed_root=root / "processed")
        yield study, {customer_key(e.strip().casefold()) for e in never[:2]}


@pytest.mark.slow
def test_demo_plan_is_reproducible_and_excludes_earlier_calls(demo_study):
    study, _ = demo_study
    first = segments.plan_call_list(study, "2026-11")
    again = segments.plan_call_list(study, "2026-11")
    pd.testing.assert_frame_equal(first, again)
    assert list(first.columns) == segments.PLAN_COLUMNS

    # Everyone in October's raw call log is off November's list.
    october = pd.read_excel(study.raw("calls", "2026-10", "call-log.xlsx"), dtype=str)
    key_column = "customer_key" if "customer_key" in october else "reference"
    assert len(october) > 0
    assert not set(october[key_column]) & set(first["customer_key"])

    # Only the cart abandoners have a hold-out, of the share configured.
    holdout = first[first["arm"] == "holdout"]
    assert set(holdout["segment"]) == {"cart_abandoners"}
    abandoners = first[first["segment"] == "cart_abandoners"]
    assert len(holdout) == len(abandoners) // 2
    assert holdout["phone_e164"].isna().all()
    called = first[first["arm"] == "called"]
    assert called["phone_e164"].str.match(r"^\+\d{8,15}$").all()


@pytest.mark.slow
def test_demo_step_writes_call_list_with_outcome_dropdown(demo_study):
    study, viewers = demo_study
    result = segments.run_segment_step(study, "2026-11")
    plan = result["plan"]
    assert members(plan.segments, "viewers_never_bought") == viewers

    # Nobody drawn is excluded for consent, do-not-call or an earlier call.
    drawn = set(plan.assignment["customer_key"])
    assert not drawn & set(plan.excluded["customer_key"])
    features = plan.features.set_index("customer_key").loc[sorted(drawn)]
    assert features["has_consent"].all() and features["is_callable"].all()
    assert not features["is_do_not_call"].any()

    folder = study.processed("2026-11")
    sheet = pd.read_csv(folder / "call-list_customer_2026-11.csv", dtype=str)
    assert list(sheet.columns) == segments.CALL_LIST_COLUMNS
    assert len(sheet) == result["n_call_list"]
    workbook = openpyxl.load_workbook(folder / "call-list_customer_2026-11.xlsx")
    validations = workbook["call list"].data_validations.dataValidation
    outcome = segments.CALL_LIST_COLUMNS.index("outcome")
    letter = openpyxl.utils.get_column_letter(outcome + 1)
    assert any(str(v.sqref).startswith(f"{letter}2") for v in validations)
    lists = workbook["lists"]
    assert [c.value for c in lists["A"]] == list(segments.OUTCOMES)
    assignment = pd.read_parquet(folder / "assignment_customer.parquet")
    assert set(assignment["arm"]) == {"called", "holdout"}


@pytest.mark.slow
def test_notebook_runs_on_the_real_retail_study(tmp_path, monkeypatch, shared_data):
    papermill = pytest.importorskip("papermill")
    source = shared_data / "online-retail-sample" / "online_retail_sample.csv"
    raw = tmp_path / "data" / "raw" / "retail"
    (raw / "exports" / "2012-01").mkdir(parents=True)
    shutil.copy(source, raw / "exports" / "2012-01" / source.name)
    (raw / "study.yml").write_text(RETAIL_STUDY, encoding="utf-8")
    monkeypatch.setenv("HEARD_ROOT", str(tmp_path))
    notebooks = Path(__file__).parents[1] / "notebooks"
    papermill.execute_notebook(
        str(notebooks / "01_segment_export.ipynb"),
        str(tmp_path / "01_segment_export.ipynb"),
        parameters={"study": "retail", "month": "2012-01"},
        cwd=str(notebooks),
        progress_bar=False,
    )
    folder = tmp_path / "data" / "processed" / "retail" / "2012-01"
    summary = json.loads((folder / "summary_segments.json").read_text())
    assert summary["n_customers"] == 3049
    assert summary["segment_sizes"]["churned"] == len(
        expected_retail_segments(source)["churned"]
    )


def test_customers_only_in_checkouts_are_kept_but_never_callable():
    exports = crafted_exports()
    # G's checkout stays; G is dropped from the customers export.
    exports.customers = exports.customers[exports.customers["customer_key"] != "c_G"]
    features = segments.build_customer_features(
        exports, as_of=AS_OF, config=crafted_config()
    )
    g_key = customer_key("g@example.com")
    assert len(features) == 7
    g = features.set_index("customer_key").loc[g_key]
    assert g["n_checkouts"] == 1 and g["n_orders"] == 0
    assert not g["has_consent"] and not g["is_callable"]
    assert g["phone_status"] == "missing"

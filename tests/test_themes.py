"""Themes: per-conversation rates, intervals, segment tests, non-buyers, value."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers import themes

Z = 1.959963984540054  # the 97.5% normal quantile


@pytest.fixture
def codebook() -> pd.DataFrame:
    rows = [
        ("OBJ", "Objections", None, 1),
        ("OBJ-PRICE", "Price", "OBJ", 2),
        ("OBJ-SHIP", "Shipping cost", "OBJ", 2),
        ("TRUST", "Trust", None, 1),
        ("STAGE", "Stages", None, 1),
        ("STAGE-COMPARE", "Compare", "STAGE", 2),
    ]
    return pd.DataFrame(rows, columns=["code", "name", "parent", "depth"])


@pytest.fixture
def conversations() -> pd.DataFrame:
    # Segment a: a1-a4, segment b: b1-b4; one customer (k5) had two conversations.
    ids = ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"]
    return pd.DataFrame(
        {
            "conversation_id": ids,
            "customer_key": ["k1", "k2", "k3", "k4", "k5", "k5", "k7", "k8"],
            "date": pd.to_datetime([f"2026-11-{d:02d}" for d in range(1, 9)]),
            "segment": ["a"] * 4 + ["b"] * 4,
        }
    )


@pytest.fixture
def coded() -> pd.DataFrame:
    # Price in a1, a2, a3 (twice in a1); shipping in a1 and b1; nothing in a4, b4.
    rows = [
        ("a1", "a1-002", "OBJ-PRICE"),
        ("a1", "a1-004", "OBJ-PRICE"),
        ("a1", "a1-004", "OBJ-SHIP"),
        ("a2", "a2-002", "OBJ-PRICE"),
        ("a3", "a3-002", "OBJ-PRICE"),
        ("b1", "b1-002", "OBJ-SHIP"),
        ("b2", "b2-002", "STAGE-COMPARE"),
        ("b3", "b3-002", "STAGE-COMPARE"),
    ]
    return pd.DataFrame(rows, columns=["conversation_id", "excerpt_id", "code"])


def test_parent_counts_conversations_with_any_child(coded, conversations, codebook):
    table = themes.tally_themes(coded, conversations, codebook, by_segment=False)
    counts = table.set_index("code")["n_with_theme"]
    # OBJ: a1, a2, a3 (price) and b1 (shipping) -> 4; a1 counted once.
    assert counts["OBJ"] == 4
    assert counts["OBJ-PRICE"] == 3
    assert counts["STAGE"] == 2
    assert (table["n_conversations"] == 8).all()


def test_rank_themes_keeps_leaf_themes_of_all_segments_most_frequent_first(
    coded, conversations, codebook
):
    table = themes.tally_themes(coded, conversations, codebook)
    # Leaves outside STAGE: price in a1-a3 (3), shipping in a1, b1 (2), trust none;
    # the parent OBJ and STAGE-COMPARE are left out.
    for ranked in (
        themes.rank_themes(table),
        themes.rank_themes(table, codebook=codebook),
    ):
        assert ranked["code"].tolist() == ["OBJ-PRICE", "OBJ-SHIP", "TRUST"]
        assert ranked["n_with_theme"].tolist() == [3, 2, 0]
        assert (ranked["segment"] == "all").all()
        assert ranked.index.tolist() == [0, 1, 2]


def test_wilson_interval_at_zero_and_at_all(coded, conversations, codebook):
    table = themes.tally_themes(coded, conversations, codebook).set_index(
        ["segment", "code"]
    )
    # 0 of 8 (TRUST): Wilson gives [0, z^2 / (n + z^2)].
    unused = table.loc[("all", "TRUST")]
    assert unused["rate"] == 0
    assert unused["ci_low"] == pytest.approx(0, abs=1e-12)
    assert unused["ci_high"] == pytest.approx(Z**2 / (8 + Z**2), rel=1e-9)
    # n of n: TRUST coded in every conversation of segment a gives [n/(n+z^2), 1].
    everyone = pd.DataFrame(
        {
            "conversation_id": ["a1", "a2", "a3", "a4"],
            "excerpt_id": "x",
            "code": "TRUST",
        }
    )
    full = themes.tally_themes(everyone, conversations, codebook).set_index(
        ["segment", "code"]
    )
    row = full.loc[("a", "TRUST")]
    assert (row["n_with_theme"], row["n_conversations"]) == (4, 4)
    assert row["ci_high"] == pytest.approx(1, abs=1e-12)
    assert row["ci_low"] == pytest.approx(4 / (4 + Z**2), rel=1e-9)


def test_wilson_interval_matches_the_textbook_formula(coded, conversations, codebook):
    row = (
        themes.tally_themes(coded, conversations, codebook)
        .set_index(["segment", "code"])
        .loc[("all", "OBJ-PRICE")]
    )
    k, n = 3, 8
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    assert row["ci_low"] == pytest.approx(centre - half, rel=1e-9)
    assert row["ci_high"] == pytest.approx(centre + half, rel=1e-9)


def test_fisher_exact_between_two_segments_by_hand(coded, conversations, codebook):
    tests = themes.compare_segments(coded, conversations, codebook).set_index("code")
    # Price: 3 of 4 in a, 0 of 4 in b. With margins fixed, the count in a is
    # hypergeometric: P(x) = C(3, x) C(5, 4 - x) / C(8, 4) = 5, 30, 30, 5 over 70.
    # Two-sided: tables as unlikely as x = 3 are x = 0 and x = 3 -> 10 / 70.
    probabilities = [math.comb(3, x) * math.comb(5, 4 - x) / 70 for x in range(4)]
    assert probabilities == pytest.approx([5 / 70, 30 / 70, 30 / 70, 5 / 70])
    assert tests.loc["OBJ-PRICE", "p_value"] == pytest.approx(10 / 70, rel=1e-9)
    assert tests.loc["OBJ-PRICE", "test"].startswith("Fisher exact")
    # Nobody said TRUST: every table is the same, p = 1.
    assert tests.loc["TRUST", "p_value"] == pytest.approx(1.0)


def test_freeman_halton_on_three_segments_by_hand():
    # Segments of 3, 3 and 2 conversations; the theme came up 3, 0 and 1 times.
    # Tables with the same margins, weighted C(3,xa) C(3,xb) C(2,xc) out of
    # C(8,4) = 70: (1,3,0) 3, (2,2,0) 9, (3,1,0) 3, (0,3,1) 2, (1,2,1) 18,
    # (2,1,1) 18, (3,0,1) 2, (0,2,2) 3, (1,1,2) 9, (2,0,2) 3 (sum 70).
    # Observed (3,0,1) weighs 2; as unlikely: (0,3,1) and itself -> 4 / 70.
    table = np.array([[3, 0, 1], [0, 3, 1]])
    assert themes.compute_freeman_halton(table) == pytest.approx(4 / 70, rel=1e-9)


def test_freeman_halton_agrees_with_scipy_monte_carlo():
    table = np.array([[5, 1, 2, 4], [2, 6, 4, 1]])
    exact = themes.compute_freeman_halton(table)
    method = stats.MonteCarloMethod(n_resamples=40_000, rng=7)
    estimate = stats.fisher_exact(table, method=method).pvalue
    assert exact == pytest.approx(estimate, abs=0.01)


def test_cooccurrence_counts_shared_conversations(coded, conversations, codebook):
    shared = themes.count_cooccurrence(coded, conversations, codebook)
    # Leaf themes used: price (a1, a2, a3) and shipping (a1, b1); both in a1.
    assert list(shared.index) == ["OBJ-PRICE", "OBJ-SHIP"]
    assert shared.loc["OBJ-PRICE", "OBJ-SHIP"] == 1
    assert shared.loc["OBJ-PRICE", "OBJ-PRICE"] == 3
    assert shared.loc["OBJ-SHIP", "OBJ-SHIP"] == 2


def test_price_among_nonbuyers(coded, conversations, codebook):
    orders = pd.DataFrame(
        {
            # k1 bought in November, k2 in October only, k8 in November.
            "customer_key": ["k1", "k2", "k8"],
            "created_at": pd.to_datetime(
                ["2026-11-20T10:00Z", "2026-10-31T23:00Z", "2026-11-02T08:00Z"]
            ),
        }
    )
    result = themes.tally_theme_among_nonbuyers(
        coded, conversations, codebook, orders, "2026-11"
    )
    # Non-buyers: k2, k3, k4, k5, k7 (5); of them k2 and k3 cited price.
    assert (result["k"], result["n"]) == (2, 5)
    assert result["rate"] == pytest.approx(0.4)
    low, high = stats.binomtest(2, 5).proportion_ci(method="wilson")
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
    assert result["n_customers"] == 7


def test_a_customer_whose_only_order_was_cancelled_did_not_buy(
    coded, conversations, codebook
):
    orders = pd.DataFrame(
        {
            # k1 bought in November; k2 and k3 ordered and cancelled.
            "customer_key": ["k1", "k2", "k3"],
            "created_at": pd.to_datetime(["2026-11-20T10:00Z"] * 3),
            "is_cancelled": [False, True, True],
        }
    )
    result = themes.tally_theme_among_nonbuyers(
        coded, conversations, codebook, orders, "2026-11"
    )
    # Non-buyers: k2, k3, k4, k5, k7, k8 (6); k2 and k3 cited price.
    assert (result["k"], result["n"]) == (2, 6)
    low, high = stats.binomtest(2, 6).proportion_ci(method="wilson")
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))


def test_value_at_stake_sums_each_citing_customer_once(coded, conversations, codebook):
    customers = pd.DataFrame(
        {"customer_key": ["k1", "k2", "k3", "k5"], "spend": [100.0, 50.0, 0.0, 30.0]}
    )
    checkouts = pd.DataFrame(
        {"customer_key": ["k3", "k3", "k5"], "total": [40.0, 20.0, 70.0]}
    )
    value = themes.weigh_themes_by_value(
        coded, conversations, codebook, customers, checkouts
    ).set_index("code")
    # Price: k1, k2, k3 -> spend 150, abandoned 60.
    assert value.loc["OBJ-PRICE", "spend"] == 150
    assert value.loc["OBJ-PRICE", "abandoned_value"] == 60
    assert value.loc["OBJ-PRICE", "revenue_at_stake"] == 210
    # OBJ: k1, k2, k3, k5 -> 180 + 130.
    assert value.loc["OBJ", "revenue_at_stake"] == 310
    assert "STAGE" not in value.index
    assert value.index[0] == "OBJ"


def test_a_price_code_the_codebook_lacks_gives_no_share(
    coded, conversations, codebook, caplog
):
    orders = pd.DataFrame(
        {"customer_key": ["k1"], "created_at": pd.to_datetime(["2026-11-20T10:00Z"])}
    )
    result = themes.tally_theme_among_nonbuyers(
        coded, conversations, codebook, orders, "2026-11", code="PRICE"
    )
    assert result is None  # not "0 of 6 non-buyers cited it"
    assert "PRICE is not in the codebook" in caplog.text

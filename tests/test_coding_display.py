"""Display helpers for notebook 03: undefined stays undefined, denominators shown."""

from __future__ import annotations

import math

import pandas as pd

from helpers import coding_display, journeys, themes


def test_undefined_kappa_is_written_as_undefined_never_zero():
    agreement = pd.DataFrame(
        {
            "code": ["OBJ-STOCK", "OBJ-FIT"],
            "n_units": [40, 40],
            "n_applied": [0, 6],
            "percent_agreement": [1.0, 0.95],
            "percent_agreement_ci_low": [1.0, 0.9],
            "percent_agreement_ci_high": [1.0, 0.975],
            "kappa": [math.nan, 0.8123],
            "kappa_ci_low": [math.nan, 0.5],
            "kappa_ci_high": [math.nan, 1.0],
            "alpha": [math.nan, 0.81],
            "alpha_ci_low": [math.nan, 0.49],
            "alpha_ci_high": [math.nan, 1.0],
            "status": ["undefined (no variation)", "ok"],
        }
    )
    table = coding_display.format_agreement(agreement)
    assert table.loc[0, "Cohen's kappa [95% CI]"] == "undefined"
    assert table.loc[0, "Agreement [95% CI]"] == "100.0% [100.0%, 100.0%]"
    assert table.loc[1, "Agreement [95% CI]"] == "95.0% [90.0%, 97.5%]"
    assert table.loc[1, "Cohen's kappa [95% CI]"] == "0.81 [0.50, 1.00]"
    assert table["Code"].tolist() == ["OBJ-STOCK", "OBJ-FIT"]


def test_agreement_names_codes_from_the_codebook_and_the_overall_row():
    agreement = pd.DataFrame(
        {"code": ["OBJ-FIT", "overall", "OBJ-NEW"], "n_units": [40, 40, 40]}
    ).assign(
        n_applied=3, percent_agreement=0.9, percent_agreement_ci_low=0.8,
        percent_agreement_ci_high=1.0, kappa=0.5, kappa_ci_low=0.2,
        kappa_ci_high=0.8, alpha=0.5, alpha_ci_low=0.2, alpha_ci_high=0.8,
        status="ok",
    )  # fmt: skip
    codebook = pd.DataFrame({"code": ["OBJ-FIT"], "name": ["Sizing and fit"]})
    table = coding_display.format_agreement(agreement, codebook=codebook)
    assert table["Code"].tolist() == ["Sizing and fit", "All codes", "OBJ-NEW"]


def test_agreement_bounds_that_round_to_zero_read_zero_not_minus_zero():
    agreement = pd.DataFrame(
        {
            "code": ["STAGE-CHECKOUT", "POS-SERVICE"],
            "n_units": [118, 118],
            "n_applied": [5, 2],
            "percent_agreement": [0.992, 0.983],
            "percent_agreement_ci_low": [0.974, 0.957],
            "percent_agreement_ci_high": [1.0, 1.0],
            "kappa": [0.7981, 0.0],
            "kappa_ci_low": [0.0, 0.0],
            "kappa_ci_high": [1.0, 0.0],
            "alpha": [0.7990, -0.0043],
            "alpha_ci_low": [-0.0021, -0.0172],
            "alpha_ci_high": [1.0, 0.0],
            "status": ["rare (5 applications): interval unreliable", "ok"],
        }
    )
    table = coding_display.format_agreement(agreement)
    alpha = "Krippendorff's alpha [95% CI]"
    assert table[alpha].tolist() == ["0.80 [0.00, 1.00]", "0.00 [-0.02, 0.00]"]
    assert coding_display.format_number(-0.0043) == "0.00"


def test_theme_table_carries_denominators_and_skips_stage_codes():
    codebook = pd.DataFrame(
        {
            "code": ["OBJ", "OBJ-PRICE", "OBJ-FIT", "STAGE", "STAGE-BUY"],
            "name": ["Objections", "Price", "Fit", "Stages", "Buy"],
            "parent": [None, "OBJ", "OBJ", None, "STAGE"],
            "depth": [0, 1, 1, 0, 1],
        }
    )
    conversations = pd.DataFrame(
        {"conversation_id": ["a", "b", "c"], "segment": ["x", "x", "y"]}
    )
    coded = pd.DataFrame(
        {
            "conversation_id": ["a", "b", "a"],
            "excerpt_id": ["a-1", "b-1", "a-2"],
            "code": ["OBJ-FIT", "OBJ-FIT", "STAGE-BUY"],
        }
    )
    tallied = themes.tally_themes(coded, conversations, codebook)
    table = coding_display.format_themes(tallied, codebook)
    assert table["Code"].tolist() == ["OBJ-FIT", "OBJ-PRICE"]
    assert table["Conversations"].tolist() == ["67% (2 of 3)", "0% (0 of 3)"]
    shared = themes.count_cooccurrence(
        coded, conversations, codebook, codes=["OBJ-FIT", "OBJ-PRICE"]
    )
    assert coding_display.find_top_pair(shared) is None


def test_journey_moves_read_as_stage_names_not_code_ids():
    codebook = pd.DataFrame(
        {
            "code": ["STAGE", "STAGE-DISCOVER", "STAGE-CHECKOUT"],
            "name": ["Stages", "Discovery", "Checkout"],
            "parent": [None, "STAGE", "STAGE"],
        }
    )
    steps = pd.DataFrame(
        {
            "conversation_id": ["a", "a", "b", "b", "c"],
            "step": [1, 2, 1, 2, 1],
            "stage": ["STAGE-DISCOVER", "STAGE-CHECKOUT"] * 2 + ["STAGE-DISCOVER"],
        }
    )
    conversations = pd.DataFrame(
        {"conversation_id": ["a", "b", "c"], "segment": ["x", "x", "y"]}
    )
    transitions = journeys.tally_transitions(steps, conversations)
    table = coding_display.format_transitions(transitions, codebook)
    # By hand: a and b go start → discover → checkout → end; c start →
    # discover → end.
    assert table.to_dict("list") == {
        "Move": [
            "(start) → Discovery",
            "Checkout → (end)",
            "Discovery → Checkout",
            "Discovery → (end)",
        ],
        "Times": [3, 2, 2, 1],
        "Conversations": [3, 2, 2, 1],
    }
    inner = coding_display.format_transitions(
        transitions, codebook, segment="y", include_ends=False
    )
    assert inner.empty and list(inner.columns) == ["Move", "Times", "Conversations"]


def test_cooccurrence_table_names_its_themes():
    shared = pd.DataFrame(
        [[2, 1], [1, 3]],
        index=pd.Index(["OBJ-FIT", "OBJ-PRICE"], name="code"),
        columns=pd.Index(["OBJ-FIT", "OBJ-PRICE"], name="code"),
    )
    codebook = pd.DataFrame(
        {"code": ["OBJ-FIT", "OBJ-PRICE"], "name": ["Fit", "Price"]}
    )
    table = coding_display.format_cooccurrence(shared, codebook)
    assert table.to_dict("list") == {
        "Theme": ["Fit", "Price"],
        "Fit": [2, 1],
        "Price": [1, 3],
    }


def test_price_sentence_counts_customers_not_conversations():
    # 2 of 17 non-buyers: Wilson 95% interval [3.3%, 34.3%] (statsmodels'
    # proportion_confint(2, 17, method="wilson") gives 0.0329, 0.3433).
    price = {"k": 2, "n": 17, "rate": 2 / 17, "ci_low": 0.0329, "ci_high": 0.3433}
    text = coding_display.describe_price_objection(
        price, month="2026-11", code="OBJ-PRICE"
    )
    assert text.startswith(
        "Of the **17 customers we talked to who did not buy** in 2026-11, **2** "
        "cited price (12%, 95% interval [3%, 34%])."
    )
    assert "conversation" not in text
    one = {"k": 1, "n": 1, "rate": 1.0, "ci_low": 0.21, "ci_high": 1.0}
    text = coding_display.describe_price_objection(one, month="2026-11", code="P")
    assert "**1 customer we talked to" in text and "too wide" in text
    missing = coding_display.describe_price_objection(None, month="m", code="P")
    assert "no code `P`" in missing

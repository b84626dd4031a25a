"""Saturation: new codes per conversation in date order and the stopping rule."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from helpers import saturation


@pytest.fixture
def codebook() -> pd.DataFrame:
    rows = [
        ("A", "A", None),
        ("B", "B", None),
        ("C", "C", None),
        ("D", "D", None),
        ("STAGE", "Stages", None),
        ("STAGE-BUY", "Buy", "STAGE"),
    ]
    return pd.DataFrame(rows, columns=["code", "name", "parent"])


@pytest.fixture
def sequence() -> tuple[pd.DataFrame, pd.DataFrame]:
    # In date order: c1 {A,B}, c2 {B,C}, c3 {A}, c4 {}, c5 {D}, c6 {A,D}, c7 {B},
    # c8 {C}. Rows are shuffled so only the dates give the order.
    codes = {
        "c1": "AB",
        "c2": "BC",
        "c3": "A",
        "c4": "",
        "c5": "D",
        "c6": "AD",
        "c7": "B",
        "c8": "C",
    }
    coded = pd.DataFrame(
        [(c, code) for c, letters in codes.items() for code in letters],
        columns=["conversation_id", "code"],
    )
    # A stage code is not a theme and must never count as new.
    coded = pd.concat(
        [coded, pd.DataFrame({"conversation_id": ["c7"], "code": ["STAGE-BUY"]})]
    )
    order = ["c5", "c2", "c8", "c1", "c4", "c7", "c3", "c6"]
    conversations = pd.DataFrame(
        {
            "conversation_id": order,
            "date": pd.to_datetime([f"2026-11-{int(c[1]):02d}" for c in order]),
            "segment": ["x" if int(c[1]) % 2 else "y" for c in order],
        }
    )
    return coded, conversations


def test_new_codes_per_conversation_by_hand(sequence, codebook):
    coded, conversations = sequence
    curve = saturation.build_saturation_curve(coded, conversations, codebook)
    overall = curve[curve["segment"] == "all"]
    # By hand: c1 brings A,B (2); c2 brings C (1); c3, c4 nothing; c5 brings D;
    # c6-c8 nothing. Cumulative: 2, 3, 3, 3, 4, 4, 4, 4.
    assert overall["conversation_id"].tolist() == [f"c{i}" for i in range(1, 9)]
    assert overall["n_new_codes"].tolist() == [2, 1, 0, 0, 1, 0, 0, 0]
    assert overall["n_distinct_codes"].tolist() == [2, 3, 3, 3, 4, 4, 4, 4]
    assert overall["new_codes"].tolist()[:2] == ["A, B", "C"]


def test_stopping_rule_on_the_crafted_sequence(sequence, codebook):
    coded, conversations = sequence
    curve = saturation.build_saturation_curve(coded, conversations, codebook)
    # Run of 3: c3, c4 make 2 quiet conversations, c5 breaks it; c6, c7, c8 are
    # the first 3 in a row -> could have stopped at the 8th; saturated.
    verdict = saturation.check_saturation(curve, run=3).set_index("segment")
    assert verdict.loc["all", "stop_at"] == 8
    assert bool(verdict.loc["all", "is_saturated"])
    assert verdict.loc["all", "n_codes_in_last_run"] == 0
    assert verdict.loc["all", "n_codes"] == 4
    # Run of 2: c3, c4 already complete it -> stop at the 4th.
    assert (
        saturation.check_saturation(curve, run=2)
        .set_index("segment")
        .loc["all", "stop_at"]
        == 4
    )


def test_segment_curves_and_share_first_seen_late(sequence, codebook):
    coded, conversations = sequence
    curve = saturation.build_saturation_curve(coded, conversations, codebook)
    verdict = saturation.check_saturation(curve, run=3).set_index("segment")
    # Segment x (odd): c1 {A,B} 2, c3 {A} 0, c5 {D} 1, c7 {B} 0 -> last 3 bring 1
    # of 3 codes: not saturated, share 1/3, never a quiet run of 3.
    x = curve[curve["segment"] == "x"]
    assert x["n_new_codes"].tolist() == [2, 0, 1, 0]
    assert not verdict.loc["x", "is_saturated"]
    assert verdict.loc["x", "last_run_share"] == pytest.approx(1 / 3)
    assert math.isnan(verdict.loc["x", "stop_at"])
    # Segment y (even): c2 {B,C} 2, c4 {} 0, c6 {A,D} 2, c8 {C} 0.
    y = curve[curve["segment"] == "y"]
    assert y["n_new_codes"].tolist() == [2, 0, 2, 0]
    assert verdict.loc["y", "n_codes_in_last_run"] == 2


def test_too_few_conversations_are_never_saturated():
    verdict = saturation.apply_stopping_rule([3, 0, 0], run=3)
    assert not verdict["is_saturated"]
    assert verdict["n_conversations"] == 3


def test_plot_saturation_draws_one_line_per_group(sequence, codebook):
    coded, conversations = sequence
    curve = saturation.build_saturation_curve(coded, conversations, codebook)
    figure = saturation.plot_saturation(curve, run=3)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels == ["All segments (n=8)", "X (n=4)", "Y (n=4)"]


def test_stop_at_counts_the_codes_a_stop_there_would_have_missed(sequence, codebook):
    # Run of 2 stops at c4 on the crafted sequence, but D first came up in c5:
    # stopping there would have missed 1 of the 4 codes. Run of 3 stops at c8,
    # after every code.
    coded, conversations = sequence
    curve = saturation.build_saturation_curve(coded, conversations, codebook)
    early = saturation.check_saturation(curve, run=2).set_index("segment")
    assert early.loc["all", "n_codes_after_stop"] == 1
    late = saturation.check_saturation(curve, run=3).set_index("segment")
    assert late.loc["all", "n_codes_after_stop"] == 0
    # No stop, nothing to count.
    assert math.isnan(late.loc["x", "n_codes_after_stop"])


def test_a_segment_nobody_coded_is_not_called_saturated(caplog):
    conversations = pd.DataFrame(
        {
            "conversation_id": [f"c{i}" for i in range(1, 6)],
            "date": [f"2026-11-0{i}" for i in range(1, 6)],
            "segment": ["x", "x", "x", "x", "y"],
        }
    )
    coded = pd.DataFrame({"conversation_id": ["c5"], "code": ["A"]})
    curve = saturation.build_saturation_curve(coded, conversations)
    verdict = saturation.check_saturation(curve, run=3).set_index("segment")
    # Four conversations in x, none coded: no stop, no share, not saturated.
    assert verdict.loc["x", ["n_conversations", "n_codes"]].tolist() == [4, 0]
    assert not verdict.loc["x", "is_saturated"]
    assert math.isnan(verdict.loc["x", "stop_at"])
    assert math.isnan(verdict.loc["x", "last_run_share"])
    assert "x: no code applied in 4 conversations" in caplog.text
    assert "x: not saturated" not in caplog.text

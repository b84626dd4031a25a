"""Insight velocity and prediction scoring (accuracy, Brier score)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from helpers import insights, themes
from helpers.errors import HeardInputError

INSIGHTS = """id,friction,codes,conversations,first_heard,owner,action,addressed_on
I1,Shipping shown late,OBJ-SHIP,"c1, c2",2026-10-01,Sam,Show shipping early,2026-10-11
I2,Price vs competitor,OBJ-PRICE,c3,2026-10-20,Ana,Price-match banner,2026-11-19
I3,Sizing unclear,FIT,c4,2026-11-02,Sam,,
I4,No trust badges,TRUST,c5,2026-08-15,Lee,,
I5,Found after the month,TRUST,c6,2026-12-03,Lee,,
"""


def test_insight_velocity_by_hand(tmp_path):
    path = tmp_path / "insights.csv"
    path.write_text(INSIGHTS)
    log = insights.load_insights(path)
    velocity = insights.summarise_insight_velocity(log, as_of="2026-11-30")
    # Found by 30 Nov: I1-I4 (4). Addressed: I1 after 10 days, I2 after 30 days.
    assert velocity["n_found"] == 4
    assert velocity["n_addressed"] == 2
    assert velocity["median_days_to_address"] == pytest.approx((10 + 30) / 2)
    # Open: I4 since 15 Aug (107 days), I3 since 2 Nov (28 days).
    still_open = velocity["open"]
    assert still_open["id"].tolist() == ["I4", "I3"]
    assert still_open["age_days"].tolist() == [107, 28]
    by_age = velocity["open_by_age"].set_index("age_band")["n_open"]
    assert by_age["1-4 weeks"] == 1
    assert by_age["over 3 months"] == 1
    assert by_age.sum() == 2


def test_an_insight_log_saved_by_excel_in_a_european_locale_reads_the_same(
    tmp_path,
):
    comma = tmp_path / "insights.csv"
    comma.write_text(INSIGHTS.replace("Ana", "Ana Peña"))
    semicolon = tmp_path / "insights-eu.csv"
    # Excel writes ";" between cells and keeps the quoted "c1, c2" as one cell.
    text = INSIGHTS.replace("Ana", "Ana Peña").replace(",", ";")
    semicolon.write_bytes(text.replace('"c1; c2"', '"c1, c2"').encode("cp1252"))
    read = [insights.load_insights(path) for path in (comma, semicolon)]
    pd.testing.assert_frame_equal(read[0], read[1])
    assert read[1].loc[1, "owner"] == "Ana Peña"


def test_insight_addressed_before_heard_names_the_row(tmp_path):
    path = tmp_path / "insights.csv"
    path.write_text(INSIGHTS.replace("2026-10-11", "2026-09-11"))
    with pytest.raises(HeardInputError, match=r"row 2, column 'addressed_on'"):
        insights.load_insights(path)


def test_an_insight_code_not_in_the_codebook_names_its_row(tmp_path):
    path = tmp_path / "insights.csv"
    path.write_text(INSIGHTS)
    codes = ["OBJ-SHIP", "OBJ-PRICE", "FIT", "TRUST"]
    assert len(insights.load_insights(path, codes=codes)) == 5
    # Case does not matter (I3 as "fit"); a code the codebook lacks is named.
    path.write_text(INSIGHTS.replace("I3,Sizing unclear,FIT", "I3,Sizing unclear,fit"))
    assert len(insights.load_insights(path, codes=codes)) == 5
    path.write_text(INSIGHTS.replace('OBJ-SHIP,"c1', 'OBJ-SHIP;OBJ-SIZE,"c1'))
    with pytest.raises(HeardInputError) as caught:
        insights.load_insights(path, codes=codes)
    assert (caught.value.row, caught.value.column) == (2, "codes")
    assert "OBJ-SIZE" in str(caught.value)


def test_bad_probability_names_the_row(tmp_path):
    path = tmp_path / "2026-11.csv"
    path.write_text("caller,customer_key,predicted_code,probability\nSam,k1,OBJ,60%\n")
    with pytest.raises(HeardInputError, match=r"row 2, column 'probability'"):
        insights.load_predictions(path)


@pytest.fixture
def month_setup():
    codebook = pd.DataFrame(
        {
            "code": ["OBJ", "OBJ-PRICE", "OBJ-SHIP", "TRUST"],
            "name": ["Objections", "Price", "Shipping", "Trust"],
            "parent": [None, "OBJ", "OBJ", None],
        }
    )
    conversations = pd.DataFrame(
        {"conversation_id": ["c1", "c2", "c3"], "customer_key": ["k1", "k2", "k3"]}
    )
    coded = pd.DataFrame(
        {
            "conversation_id": ["c1", "c2", "c3"],
            "excerpt_id": ["c1-002", "c2-002", "c3-004"],
            "code": ["OBJ-PRICE", "OBJ-SHIP", "TRUST"],
        }
    )
    matrix = themes.build_theme_matrix(coded, conversations, codebook)
    return matrix, conversations


def test_brier_score_and_accuracy_by_hand(tmp_path, month_setup):
    matrix, conversations = month_setup
    path = tmp_path / "2026-11.csv"
    path.write_text(
        "caller,customer_key,predicted_code,probability\n"
        "Sam,k1,OBJ-PRICE,0.8\n"  # right: (0.8 - 1)^2 = 0.04
        "Sam,k2,OBJ-PRICE,0.6\n"  # wrong (k2 said shipping): (0.6 - 0)^2 = 0.36
        "Sam,k3,OBJ,\n"  # wrong, no probability: counts for accuracy only
        "Ana,k2,OBJ,0.5\n"  # right through the child OBJ-SHIP: 0.25
        "Ana,k9,TRUST,0.9\n"  # k9 was never reached: not scored
    )
    predictions = insights.load_predictions(path)
    scored = insights.score_predictions(predictions, matrix, conversations)
    assert scored["is_correct"].tolist()[:4] == [1.0, 0.0, 0.0, 1.0]
    assert not scored["is_scored"].iloc[4]
    scores = insights.tally_prediction_scores(scored).set_index("caller")
    assert scores.loc["Sam", "n_predictions"] == 3
    assert scores.loc["Sam", "n_correct"] == 1
    assert scores.loc["Sam", "accuracy_rate"] == pytest.approx(1 / 3)
    assert scores.loc["Sam", "brier_score"] == pytest.approx((0.04 + 0.36) / 2)
    assert scores.loc["Sam", "n_with_probability"] == 2
    assert scores.loc["Ana", "brier_score"] == pytest.approx(0.25)
    assert scores.loc["Ana", "n_predictions"] == 1
    assert (scores["month"] == "2026-11").all()


def test_scores_compare_months(tmp_path, month_setup):
    matrix, conversations = month_setup
    frames = []
    for month, probability in [("2026-10", 0.3), ("2026-11", 0.9)]:
        path = tmp_path / f"{month}.csv"
        path.write_text(
            f"caller,customer_key,predicted_code,probability\nSam,k1,OBJ,{probability}\n"
        )
        frames.append(
            insights.score_predictions(
                insights.load_predictions(path), matrix, conversations
            )
        )
    scores = insights.tally_prediction_scores(pd.concat(frames), by=("month",))
    # Both right; Brier (0.3 - 1)^2 = 0.49 then (0.9 - 1)^2 = 0.01.
    assert scores["brier_score"].tolist() == pytest.approx([0.49, 0.01])
    assert not math.isnan(scores["ci_low"].iloc[0])


def test_a_predicted_code_not_in_the_codebook_names_its_row(tmp_path):
    # A typo would otherwise leave the prediction unscored without a word, and
    # the caller's accuracy would rest on fewer predictions than they made.
    path = tmp_path / "2026-11.csv"
    path.write_text(
        "caller,customer_key,predicted_code,probability\n"
        "Sam,k1,obj-price,0.6\nSam,k2,OBJ-PRCE,0.4\n"
    )
    codes = ["OBJ", "OBJ-PRICE"]
    with pytest.raises(HeardInputError) as caught:
        insights.load_predictions(path, codes=codes)
    assert (caught.value.row, caught.value.column) == (3, "predicted_code")
    assert caught.value.found == "OBJ-PRCE"
    path.write_text(
        "caller,customer_key,predicted_code,probability\nSam,k1,obj-price,0.6\n"
    )
    read = insights.load_predictions(path, codes=codes)
    assert read["predicted_code"].tolist() == ["OBJ-PRICE"]  # case folded to the id

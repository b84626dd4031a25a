"""The coding step end to end, on real customer reviews written as conversation notes.

Forty reviews from the public Women's E-Commerce Clothing Reviews data (CC0) become
Markdown notes in a temporary study; with no coding sheets, the codebook's keyword
rules code them as labelled suggestions, and the themes and phrases are checked
against counts made here with plain Python.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from helpers import coding_step
from helpers.study import load_study

MONTH = "2026-11"
N_REVIEWS = 40
CODEBOOK = """\
version: 1
codes:
  - id: FIT
    name: Fit
    definition: How the garment fits.
    children:
      - id: FIT-SMALL
        name: Runs small
        definition: The item is smaller or tighter than expected.
        keywords: [small]
      - id: FIT-LARGE
        name: Runs large
        definition: The item is bigger or looser than expected.
        keywords: [large, big]
  - id: OBJ
    name: Objections
    definition: What held the customer back.
    children:
      - id: OBJ-PRICE
        name: Price
        definition: The price held the customer back.
        keywords: [price, expensive]
      - id: OBJ-FABRIC
        name: Fabric
        definition: The material disappointed.
        keywords: [fabric, material]
"""


@pytest.fixture(scope="module")
def reviews(request) -> pd.DataFrame:
    path = (
        request.config.rootpath.parent
        / "shared"
        / "data"
        / "womens-clothing-reviews"
        / "Womens Clothing E-Commerce Reviews.csv.gz"
    )
    if not path.exists():
        pytest.skip(f"real public data not found at {path}")
    frame = pd.read_csv(path, nrows=200)
    frame = frame[frame["Review Text"].notna()].head(N_REVIEWS).reset_index(drop=True)
    assert len(frame) == N_REVIEWS
    return frame


def write_review_study(reviews: pd.DataFrame, folder) -> None:
    """Write each review as one conversation note, low ratings as their own segment."""
    notes = folder / "conversations" / MONTH
    notes.mkdir(parents=True)
    (folder / "codebook.yml").write_text(CODEBOOK)
    for index, review in reviews.iterrows():
        segment = "low_rating" if review["Rating"] <= 3 else "high_rating"
        text = " ".join(str(review["Review Text"]).split())
        (notes / f"r-{index:03d}.md").write_text(
            "---\n"
            f"conversation_id: r-{index:03d}\n"
            f"customer_key: c_review{index:03d}\n"
            f"date: 2026-11-{1 + index % 28:02d}\n"
            f"segment: {segment}\n"
            "interviewer: Notes\n"
            "consent_to_quote: true\n"
            "---\n"
            f"Customer: {text}\n",
            encoding="utf-8",
        )


@pytest.fixture(scope="module")
def results(reviews, tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    folder = root / "data" / "raw" / "reviews"
    write_review_study(reviews, folder)
    study = load_study("reviews", root=root)
    return coding_step.run_coding_step(study, MONTH), study


def test_reviews_coded_by_keywords_are_labelled_suggestions(results):
    output, study = results
    summary = json.loads(
        study.processed(MONTH, "summary_coding.json").read_text("utf-8")
    )
    assert summary["coding_source"] == coding_step.SOURCE_SUGGESTED
    assert summary["n_conversations"] == N_REVIEWS
    assert summary["kappa"] is None and summary["alpha"] is None
    assert output["codings"]["is_suggestion"].all()


def test_theme_counts_match_plain_python(results, reviews):
    output, _ = results
    texts = reviews["Review Text"].str.lower()
    # A review has "Runs small" when it contains the whole word "small".
    n_small = sum(bool(re.search(r"\bsmall\b", text)) for text in texts)
    n_large = sum(bool(re.search(r"\b(large|big)\b", text)) for text in texts)
    overall = output["themes"].query("segment == 'all'").set_index("code")
    assert overall.loc["FIT-SMALL", "n_with_theme"] == n_small
    assert overall.loc["FIT-SMALL", "n_conversations"] == N_REVIEWS
    # The parent FIT counts reviews with either child once.
    n_fit = sum(bool(re.search(r"\b(small|large|big)\b", text)) for text in texts)
    assert overall.loc["FIT", "n_with_theme"] == n_fit
    assert n_fit <= n_small + n_large
    low = reviews["Rating"] <= 3
    by_segment = output["themes"].set_index(["segment", "code"])
    n_small_low = sum(bool(re.search(r"\bsmall\b", t)) for t in texts[low])
    assert by_segment.loc[("low_rating", "FIT-SMALL"), "n_with_theme"] == n_small_low
    assert by_segment.loc[("low_rating", "FIT-SMALL"), "n_conversations"] == low.sum()


def test_phrase_counts_match_plain_python(results, reviews):
    output, _ = results
    phrases = output["phrases"].set_index("phrase")
    # "true to size", counted on the raw text with a plain regular expression.
    pattern = re.compile(r"\btrue to size\b")
    expected = sum(len(pattern.findall(t.lower())) for t in reviews["Review Text"])
    assert expected == 2
    assert phrases.loc["true to size", "n_occurrences"] == expected
    # The most repeated two-word phrase of letters (heights like 5'5" split into
    # numbers): recount it on the raw text, any punctuation between the words.
    pairs = output["phrases"].query("n_words == 2")
    top = pairs[pairs["phrase"].str.fullmatch(r"[a-z' ]+")].iloc[0]
    words = top["phrase"].split()
    raw = re.compile(r"\b" + r"[^\w']+".join(map(re.escape, words)) + r"\b")
    recount = sum(
        len(raw.findall(t.lower().replace("\u2019", "'")))
        for t in reviews["Review Text"]
    )
    assert top["n_occurrences"] == recount


def test_quote_bank_and_saturation_outputs(results, reviews):
    output, study = results
    quotes = pd.read_parquet(study.processed(MONTH, "quote-bank_quote.parquet"))
    assert quotes["quote_id"].str.fullmatch(r"q-r-\d{3}-\d{3}").all()
    assert quotes["consent_to_quote"].all()
    curve = output["saturation"].query("segment == 'all'")
    assert len(curve) == N_REVIEWS
    assert curve["n_distinct_codes"].iloc[-1] == curve["n_new_codes"].sum()
    summary = output["summary"]
    assert summary["top_themes"][0]["k"] == max(t["k"] for t in summary["top_themes"])
    assert all(t["quote_id"].startswith("q-r-") for t in summary["top_themes"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo study in a temporary project, segment and coding steps run."""
    from helpers.demo import write_demo_study
    from helpers.segments import run_segment_step

    root = tmp_path_factory.mktemp("demo-project")
    write_demo_study(root / "data" / "raw" / "demo")
    study = load_study("demo", root=root)
    outputs = {}
    for month in ("2026-10", "2026-11"):
        run_segment_step(study, month)
        outputs[month] = coding_step.run_coding_step(study, month)
    return study, outputs


@pytest.mark.slow
def test_demo_summary_agrees_with_its_own_tables(demo):
    from helpers.privacy import find_pii

    study, outputs = demo
    output = outputs["2026-11"]
    summary = json.loads(
        study.processed("2026-11", "summary_coding.json").read_text("utf-8")
    )
    assert summary["coding_source"] == coding_step.SOURCE_CONSENSUS
    overall = output["agreement"].set_index("code").loc["overall"]
    assert summary["kappa"] == pytest.approx(overall["kappa"])

    # Non-buyers recounted from the processed orders with plain pandas.
    orders = pd.read_parquet(study.processed("2026-11", "orders_order.parquet"))
    bought = set(
        orders.loc[
            pd.to_datetime(orders["created_at"], utc=True).dt.strftime("%Y-%m")
            == "2026-11",
            "customer_key",
        ]
    )
    talked = set(output["conversations"]["customer_key"])
    assert summary["price_objection"]["n"] == len(talked - bought)

    # Quotes in the summary come only from customers who agreed; none leaks a phone.
    consent = output["conversations"].set_index("conversation_id")["consent_to_quote"]
    for theme in summary["top_themes"]:
        if theme["quote_id"]:
            conversation = theme["quote_id"][2:-4]
            assert consent[conversation]
    quotes = pd.read_parquet(study.processed("2026-11", "quote-bank_quote.parquet"))
    assert not any(find_pii(text) for text in quotes["text"])

    # Prediction scores carry the earlier month for comparison; the month's Brier
    # score is the plain mean of (probability - outcome)^2 over scored rows.
    scores = output["prediction_scores"]
    assert set(scores["month"]) == {"2026-10", "2026-11"}
    scored = pd.read_parquet(
        study.processed("2026-11", "predictions_prediction.parquet")
    )
    scored = scored[scored["is_scored"] & scored["probability"].notna()]
    pairs = zip(scored["probability"], scored["is_correct"], strict=True)
    squared = [(p - o) ** 2 for p, o in pairs]
    assert summary["predictions"]["brier_score"] == pytest.approx(
        sum(squared) / len(squared)
    )


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_on_the_demo(demo, monkeypatch, tmp_path):
    import nbformat
    import papermill

    study, _ = demo
    monkeypatch.setenv("HEARD_ROOT", str(study.raw_dir.parents[2]))
    notebook = request_notebook()
    output = tmp_path / "03_coding.ipynb"
    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters={"study": "demo", "month": "2026-11"},
        cwd=str(notebook.parent),
        progress_bar=False,
    )
    executed = nbformat.read(output, as_version=4)
    shown = "\n".join(
        o["data"].get("text/markdown", "")
        for cell in executed.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") in ("execute_result", "display_data")
    )
    summary = json.loads(
        study.processed("2026-11", "summary_coding.json").read_text("utf-8")
    )
    top = summary["top_themes"][0]
    assert f"{top['k']} of {top['n']} conversations" in shown
    assert "Cohen's kappa" in shown


def request_notebook():
    """Return the path of notebooks/03_coding.ipynb in this checkout."""
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "notebooks" / "03_coding.ipynb"

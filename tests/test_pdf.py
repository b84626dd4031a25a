"""The demo study's monthly PDF holds the numbers its processed data holds.

Runs the whole chain on the demo study (two months) with the fallback renderer,
then reads the PDFs' text with pypdf and looks for the summary numbers, written
the way the report writes them, computed here from the summary files.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from pypdf import PdfReader
from report_chain import demo_chain

from helpers.checks import scan_outputs
from helpers.privacy import find_pii
from helpers.report import build_report
from helpers.study import load_study

pytestmark = pytest.mark.slow


def pdf_text(path) -> str:
    text = "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    return re.sub(r"\s+", " ", text)


def summary(root, month: str, name: str) -> dict:
    path = root / "data" / "processed" / "demo" / month / f"summary_{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return demo_chain(tmp_path_factory.getbasetemp())


def test_pdf_holds_the_summary_numbers(built):
    root, text = built["root"], pdf_text(built["2026-11"].pdf)
    calls = summary(root, "2026-11", "calls")
    segments = summary(root, "2026-11", "segments")
    coding = summary(root, "2026-11", "coding")
    assert calls, "the calls stage wrote no summary"

    # Connect rate as "k of n", with k and n from the calls summary.
    rate = calls["connect_rate_customer"]
    assert f"({rate['k']} of {rate['n']})" in text
    assert f"{round(100 * rate['k'] / rate['n'])}%" in text
    assert f"held {calls['n_conversations']} conversations" in text
    if segments:
        assert f"held {segments['n_customers']:,} customers" in text
    for theme in (coding.get("top_themes") or [])[:3]:
        assert f"({theme['k']} of {theme['n']})" in text
    # Title page: the study, the month and the renderer used.
    assert "2026-11" in text and "fallback renderer" in text
    assert "Executive summary" in text and "Reproducibility appendix" in text


def test_pdf_shows_agreement_phrases_and_quotes_as_the_coding_summary_holds_them(
    built,
):
    text = pdf_text(built["2026-11"].pdf)
    coding = summary(built["root"], "2026-11", "coding")
    agreement = coding["agreement"]
    assert f"Per {agreement['unit']} ({agreement['n_units']} " in text
    for key, label in (("kappa", "Cohen's kappa"), ("alpha", "Krippendorff's alpha")):
        shown = agreement[key]
        assert (
            f"{label} {shown['estimate']:.2f} "
            f"[{shown['ci_low']:.2f}, {shown['ci_high']:.2f}]"
        ) in text
    percent = agreement["percent_agreement"]
    assert f"percent agreement {100 * percent['estimate']:.0f}% [" in text
    assert "In their own words" in text
    for phrase in coding["top_phrases"]:
        # An apostrophe inside a word is shown typographic; the words are as said.
        words = re.sub(r"(?<=\w)'(?=\w)", "\u2019", phrase["phrase"])
        assert (
            f"{words}\u201d {phrase['n_conversations']} of "
            f"{coding['n_conversations']} {phrase['n_occurrences']}"
        ) in text
    quoted = [t for t in coding["top_themes"] if t["quote_id"]]
    assert quoted, "the demo study should have consented quotes"
    for theme in quoted:  # an id may wrap at a hyphen
        assert theme["quote_id"] in text.replace("- ", "-")
    assert "Figure 1: Share of coded conversations with each top theme" in text


def test_second_month_shows_month_over_month_changes(built):
    october = summary(built["root"], "2026-10", "calls")["connect_rate_customer"]
    november = summary(built["root"], "2026-11", "calls")["connect_rate_customer"]
    change = 100 * (november["k"] / november["n"] - october["k"] / october["n"])
    text = pdf_text(built["2026-11"].pdf)
    assert f"October 2026 to November 2026: {change:+.0f} pp" in text
    assert "first month" in pdf_text(built["2026-10"].pdf)


def test_rendered_files_hold_no_email_or_phone(built):
    for month in ("2026-10", "2026-11"):
        outputs = built[month]
        assert find_pii(pdf_text(outputs.pdf)) == []
        for page in outputs.site.parent.glob("*.html"):
            assert find_pii(re.sub(r"<[^>]+>", " ", page.read_text())) == []


def test_privacy_scan_of_processed_and_rendered_files_is_clean(built):
    # The product's own scan, over everything the chain wrote but the call lists.
    study = load_study("demo", root=built["root"])
    rendered = list((built["root"] / "reports" / "_output" / "demo").rglob("*.pdf"))
    assert len(rendered) >= 2, "the scan must have rendered reports to read"
    assert scan_outputs(study, root=built["root"]) == []


def test_rendering_a_month_again_gives_the_same_numbers(built):
    before = pdf_text(built["2026-10"].pdf)
    again = build_report(
        "demo", "2026-10", root=built["root"], renderer="fallback", fresh=True
    )
    after = pdf_text(again.pdf)

    # Only the rendering date may differ; every number in the body is the same.
    def numbers(text: str) -> list[str]:
        body = text.split("Executive summary", 1)[1]
        return re.findall(
            r"\d+(?:\.\d+)?", re.sub(r"(Rendered on|commit) \S+", "", body)
        )

    assert numbers(after) == numbers(before)


def test_pdf_shows_every_tested_metric_and_what_each_arm_said(built):
    root, text = built["root"], pdf_text(built["2026-11"].pdf).replace("\u2212", "-")
    processed = root / "data" / "processed" / "demo" / "2026-11"
    results = pd.concat(
        pd.read_parquet(path) for path in processed.glob("experiment-results_*.parquet")
    )
    tested = results[
        results["variant"].ne("control") & results["role"].ne("sensitivity")
    ]
    assert set(tested["role"]) >= {"primary", "secondary", "guardrail"}

    # Every tested metric with its role, relative lift and interval; a narrow
    # cell may wrap the interval onto the next line, never inside it.
    for row in tested.itertuples():
        lift = f"{100 * row.rel_lift:+.0f}%"
        interval = f"[{100 * row.rel_ci_low:+.0f}%, {100 * row.rel_ci_high:+.0f}%]"
        assert lift in text and interval in text, f"{row.metric} lift missing"
        assert f", {row.role}" in text
    assert "Average order value (AOV), secondary" in text
    # Testable results get a reading: a column the loader dropped once made
    # every one of them "not testable".
    if tested["is_testable"].all():
        assert "not testable" not in text

    # Each arm's copy, and the quote ids it was written from, from experiment.yml.
    for path in (root / "data" / "raw" / "demo" / "experiments").glob(
        "*/experiment.yml"
    ):
        definition = yaml.safe_load(path.read_text())
        if definition["name"] not in set(results["experiment"]):
            continue
        for variant in definition["variants"]:
            assert variant["copy"] in text
            for quote_id in variant.get("quote_ids") or []:
                assert quote_id in text.replace("- ", "-")


def test_pdf_explains_unheard_customers_and_open_disagreements(built):
    root, text = built["root"], pdf_text(built["2026-11"].pdf)
    processed = root / "data" / "processed" / "demo" / "2026-11"
    attempts = pd.read_parquet(processed / "attempts_attempt.parquet")
    reached = set(attempts.loc[attempts["is_reached"], "customer_key"])
    talked = set(attempts.loc[attempts["is_conversation"], "customer_key"])
    assert f"{len(reached)} answered, {len(reached - talked)} of them without" in text

    queue = pd.read_parquet(processed / "disagreements_excerpt.parquet")
    still_open = queue["decision"].isna() & (
        2 * queue["n_applied"] <= queue["n_coders"]
    )
    if still_open.any():
        assert (
            f"{int(still_open.sum())} of {len(queue)} excerpt-code disagreements"
        ) in text
    top = summary(root, "2026-11", "coding")["top_themes"][0]
    assert f"even the top theme, {top['name']}, heard in {top['k']} of them" in text

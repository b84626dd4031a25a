"""The report chain on real public data that nobody here wrote (../shared/data).

One study: the Online Retail sample as the store's order export (read through a
column map), forty Women's Clothing reviews as the month's conversation notes
(no coding sheets, so the codebook's keyword rules code them as suggestions), and
the Hillstrom e-mail test as the month's messaging experiment. ``heard report``
runs every notebook and renders the monthly report with the fallback; the
expected values are computed here from the raw files with pandas.

None of the public data sets is a call log, so the month has none: step 02 says
so and ends, and the report carries on without the calls. The retail export has
no phone numbers, so its call list is empty; each review is attached to a real
retail customer's key so the coding step's customer check passes.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil

import pandas as pd
import pytest
import yaml
from public_data import (
    HILLSTROM_SPLIT,
    HILLSTROM_VARIANTS,
    RETAIL_STUDY,
    hillstrom_results,
    write_review_notes,
)
from pypdf import PdfReader
from report_chain import copy_project

from helpers import segments
from helpers.calls import OUTCOMES
from helpers.report import build_report
from helpers.study import load_study

pytestmark = pytest.mark.slow

MONTH = "2012-01"
N_REVIEWS = 40
RETAIL = "online-retail-sample/online_retail_sample.csv"
REVIEWS = "womens-clothing-reviews/Womens Clothing E-Commerce Reviews.csv.gz"
HILLSTROM = "hillstrom-email/hillstrom_data.csv"
STUDY = yaml.safe_load(RETAIL_STUDY)
STUDY["study"]["name"] = "Public data study"
STUDY["months"][MONTH].update(
    next_question="What would bring you back?", experiments=["hillstrom"]
)
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
  - id: OBJ-FABRIC
    name: Fabric
    definition: The material disappointed or delighted.
    keywords: [fabric, material]
"""
HILLSTROM_DEFINITION = {
    "name": "hillstrom",
    "hypothesis": "A merchandise e-mail lifts the share of customers who buy.",
    "dates": {"start": "2008-03-01", "end": "2008-03-14"},
    "variants": HILLSTROM_VARIANTS,
    "split": HILLSTROM_SPLIT,
    "primary_metric": "conversion_rate",
    "secondary_metrics": ["visit_rate"],
    "results": hillstrom_results("results.csv"),
}
ARMS = {"control": "No E-Mail", "mens": "Mens E-Mail", "womens": "Womens E-Mail"}


def text_of_pdf(path) -> str:
    text = "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    return re.sub(r"\s+", " ", text)


def text_of_html(path) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", path.read_text())))


def first_reviews(shared) -> pd.DataFrame:
    """Return the first forty reviews that have a text."""
    frame = pd.read_csv(shared / REVIEWS, nrows=200)
    frame = frame[frame["Review Text"].notna()].head(N_REVIEWS)
    return frame.reset_index(drop=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory, request):
    shared = request.config.rootpath.parent / "shared" / "data"
    if not (shared / RETAIL).exists():
        pytest.skip(f"real public data not found at {shared}")
    root = copy_project(tmp_path_factory.mktemp("real-data") / "project")
    raw = root / "data" / "raw" / "public"
    (raw / "exports" / MONTH).mkdir(parents=True)
    shutil.copy(shared / RETAIL, raw / "exports" / MONTH)
    (raw / "study.yml").write_text(yaml.safe_dump(STUDY), encoding="utf-8")
    (raw / "codebook.yml").write_text(CODEBOOK, encoding="utf-8")
    experiment = raw / "experiments" / "hillstrom"
    experiment.mkdir(parents=True)
    shutil.copy(shared / HILLSTROM, experiment / "results.csv")
    (experiment / "experiment.yml").write_text(yaml.safe_dump(HILLSTROM_DEFINITION))

    # The notes need customers the export knows: take them from step 01's output.
    segments.run_segment_step(load_study("public", root=root), MONTH)
    customers = pd.read_parquet(
        root / "data" / "processed" / "public" / MONTH / "customers_customer.parquet"
    )
    keys = sorted(customers["customer_key"])[:N_REVIEWS]
    reviews = first_reviews(shared)
    write_review_notes(
        reviews, raw / "conversations" / MONTH, month=MONTH, keys=keys,
        segments=("churned", "first_time_no_return"),
    )  # fmt: skip

    outputs = build_report("public", MONTH, root=root, renderer="fallback")
    return {"root": root, "shared": shared, "outputs": outputs, "reviews": reviews}


def test_experiment_lifts_in_the_pdf_match_the_raw_hillstrom_rows(built):
    rows = pd.read_csv(built["shared"] / HILLSTROM)
    rates = rows.groupby("segment")["conversion"].mean()
    # The published arm means (Hillstrom, MineThatData 2008).
    assert rates[ARMS["mens"]] == pytest.approx(0.01253, abs=5e-6)
    assert rates[ARMS["womens"]] == pytest.approx(0.00884, abs=5e-6)
    assert rates[ARMS["control"]] == pytest.approx(0.00573, abs=5e-6)

    text = text_of_pdf(built["outputs"].pdf)
    for variant in ("mens", "womens"):
        lift = rates[ARMS[variant]] / rates[ARMS["control"]] - 1
        assert (
            f"Experiment hillstrom ({variant} vs control, conversion rate): "
            f"relative lift {100 * lift:+.0f}% [" in text
        )
    assert f"{len(rows):,}" in text  # units in the experiments table


def test_experiment_page_shows_each_arm_with_its_size_and_rate(built):
    rows = pd.read_csv(built["shared"] / HILLSTROM)
    page = text_of_html(built["outputs"].site.parent / "04_messaging_experiments.html")
    for variant, label in ARMS.items():
        arm = rows[rows["segment"] == label]
        shown = f"Conversion rate primary {variant} {len(arm):,} "
        assert f"{shown}{100 * arm['conversion'].mean():.2f}%" in page


def test_suggested_codes_are_counted_and_labelled_in_the_pdf(built):
    text = text_of_pdf(built["outputs"].pdf)
    assert "Suggested codes, not coded by people" in text
    assert "Themes are suggested codes" in text and "Two coders" not in text
    # "Runs small": reviews with the whole word "small", counted on the raw text.
    texts = built["reviews"]["Review Text"].str.lower()
    n_small = sum(bool(re.search(r"\bsmall\b", t)) for t in texts)
    assert f"Runs small {round(100 * n_small / N_REVIEWS)}% ({n_small} of 40)" in text


def test_retail_export_reaches_the_report_through_the_column_map(built):
    source = built["shared"] / RETAIL
    retail = pd.read_csv(source, na_values=["NA"])
    text = text_of_pdf(built["outputs"].pdf)
    assert (
        f"The store's exports held {retail['CustomerID'].nunique():,} customers" in text
    )
    # The appendix: the export's data rows and the start of its SHA-256.
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert f"online_retail_sample.csv {len(retail):,} {digest[:32]}" in text
    summary = json.loads(
        (
            built["root"] / "data" / "processed" / "public" / MONTH
            / "summary_segments.json"
        ).read_text()
    )  # fmt: skip
    assert summary["n_call_list"] == 0  # the export carries no phone numbers
    assert "no call log this month" in text


def test_calls_step_says_the_month_has_no_call_log_yet(built):
    page = text_of_html(built["outputs"].site.parent / "02_calls.html")
    assert f"No call log for {MONTH} yet" in page
    assert "Callers logged" not in page and "Traceback" not in page
    # One short note: no method for results that do not exist, no empty sections.
    for absent in ("Method", "Connect rate, per customer", "Newcombe", "Caveats"):
        assert absent not in page
    processed = built["root"] / "data" / "processed" / "public" / MONTH
    assert not (processed / "summary_calls.json").exists()


def test_call_guides_go_out_with_the_call_list_before_any_call(built):
    processed = built["root"] / "data" / "processed" / "public" / MONTH
    assert (processed / f"call-list_customer_{MONTH}.xlsx").exists()
    assert not (built["root"] / "data" / "raw" / "public" / "calls" / MONTH).exists()
    titles = {"churned": "Churned", "first_time_no_return": "First-time, no return"}
    for segment, title in titles.items():
        text = text_of_pdf(processed / f"call-guide_{segment}_{MONTH}.pdf")
        assert f"Call guide: {title}, {MONTH}" in text
        assert "What made you stop ordering from us?" in text
        for outcome in OUTCOMES:
            assert outcome in text

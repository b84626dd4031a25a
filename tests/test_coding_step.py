"""The coding step end to end, on real customer reviews written as conversation notes.

Forty reviews from the public Women's E-Commerce Clothing Reviews data (CC0) become
Markdown notes in a temporary study; with no coding sheets, the codebook's keyword
rules code them as labelled suggestions, and the themes and phrases are checked
against counts made here with plain Python.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from public_data import write_review_notes

from helpers import coding_step
from helpers.errors import HeardInputError
from helpers.study import load_study, merge_config

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
    folder.mkdir(parents=True)
    (folder / "codebook.yml").write_text(CODEBOOK)
    keys = [f"c_review{index:03d}" for index in reviews.index]
    write_review_notes(
        reviews, folder / "conversations" / MONTH, month=MONTH, keys=keys,
        segments=("low_rating", "high_rating"),
    )  # fmt: skip


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


def with_coding_settings(study, **settings):
    """Return `study` with ``coding:`` settings laid over, as study.yml would."""
    config = merge_config(study.config, {"coding": settings})
    return dataclasses.replace(study, config=config)


def test_excerpt_max_words_sets_where_long_turns_split(results, reviews):
    output, study = results
    # Some reviews run past the default 40 words, so the default splits them.
    n_words = [len(str(text).split()) for text in reviews["Review Text"]]
    assert max(n_words) > study.config["coding"]["excerpt_max_words"]
    assert len(output["excerpts"]) > N_REVIEWS
    # With a limit no review reaches, every review is one excerpt.
    whole = coding_step.run_coding_step(
        with_coding_settings(study, excerpt_max_words=max(n_words)), MONTH, write=False
    )
    assert len(whole["excerpts"]) == whole["summary"]["n_excerpts"] == N_REVIEWS


def test_a_coding_setting_out_of_range_names_study_yml(results):
    _, study = results
    for key, value in [
        ("agreement_unit", "sentence"),
        ("n_bootstrap", -1),
        ("price_code", 5),
    ]:
        with pytest.raises(HeardInputError) as caught:
            coding_step.read_coding_settings(
                with_coding_settings(study, **{key: value})
            )
        assert caught.value.file.endswith("study.yml")
        assert caught.value.column == f"coding.{key}"


def test_without_coding_sheets_only_the_blank_sheet_is_written(results):
    output, study = results
    sheet = load_workbook(study.processed(MONTH, "coding-sheet_excerpt.xlsx"))["coding"]
    excerpt_ids = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert excerpt_ids == output["excerpts"]["excerpt_id"].tolist()
    assert not study.processed(MONTH, "reconcile_excerpt.xlsx").exists()


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
    phrases = pd.read_parquet(
        study.processed("2026-11", "repeated-phrases_phrase.parquet")
    )
    listed = [row["phrase"] for row in summary["top_phrases"]]
    assert listed == phrases["phrase"].head(len(listed)).tolist()
    counts = phrases.set_index("phrase")["n_occurrences"]
    assert [row["n_occurrences"] for row in summary["top_phrases"]] == [
        counts[p] for p in listed
    ]
    # Pieces of one sentence ("I'll go back and order it tonight"), each said
    # in the same places, are one repeated phrase, never two of the five slots.
    ngrams = pd.read_parquet(study.processed("2026-11", "phrases_phrase.parquet"))
    assert {"back and order", "order it tonight"} <= set(ngrams["phrase"])
    assert "back and order it tonight" in set(phrases["phrase"])
    assert not {"back and order", "order it tonight"} & set(phrases["phrase"])
    assert summary["top_phrases"][0]["n_occurrences"] >= 2
    agreement = summary["agreement"]
    assert (agreement["unit"], agreement["n_coders"]) == ("excerpt", 2)
    assert agreement["n_units"] == overall["n_units"]
    for name in ("percent_agreement", "kappa", "alpha"):
        block = agreement[name]
        assert block["estimate"] == pytest.approx(overall[name])
        assert (block["ci_low"], block["ci_high"]) == pytest.approx(
            (overall[f"{name}_ci_low"], overall[f"{name}_ci_high"])
        )
        assert block["ci_low"] <= block["estimate"] <= block["ci_high"]

    # Non-buyers recounted from the processed orders with plain pandas: an order
    # of the month that was not cancelled makes a buyer.
    orders = pd.read_parquet(study.processed("2026-11", "orders_order.parquet"))
    month_of = pd.to_datetime(orders["created_at"], utc=True).dt.strftime("%Y-%m")
    kept = (month_of == "2026-11") & ~orders["is_cancelled"].astype(bool)
    bought = set(orders.loc[kept, "customer_key"])
    talked = set(output["coded_conversations"]["customer_key"])
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


def test_price_code_names_the_theme_counted_among_non_buyers(demo, caplog):
    study, outputs = demo
    conversations = outputs["2026-11"]["conversations"]
    consensus = outputs["2026-11"]["consensus"]
    orders = pd.read_parquet(study.processed("2026-11", "orders_order.parquet"))
    in_month = pd.to_datetime(orders["created_at"], utc=True).dt.strftime("%Y-%m")
    bought = (in_month == "2026-11") & ~orders["is_cancelled"].astype(bool)
    nonbuyers = set(conversations["customer_key"]) - set(
        orders.loc[bought, "customer_key"]
    )

    # Shipping cost instead of price: recounted from the consensus by hand.
    shipping = coding_step.run_coding_step(
        with_coding_settings(study, price_code="OBJ-SHIP-COST"), "2026-11", write=False
    )["summary"]["price_objection"]
    citing = consensus.loc[consensus["code"] == "OBJ-SHIP-COST", "conversation_id"]
    keys = conversations.set_index("conversation_id")["customer_key"]
    k = len(set(keys[citing.unique()]) & nonbuyers)
    assert (shipping["code"], shipping["k"], shipping["n"]) == (
        "OBJ-SHIP-COST",
        k,
        len(nonbuyers),
    )

    # A code the codebook lacks gives no share at all, never 0 of n.
    missing = coding_step.run_coding_step(
        with_coding_settings(study, price_code="PRICE"), "2026-11", write=False
    )
    assert missing["price_objection"] is None
    assert missing["summary"]["price_objection"] is None
    assert "PRICE is not in the codebook" in caplog.text


def workbook_cells(path) -> list[str]:
    """Return every filled cell of every sheet in the workbook, as text."""
    workbook = load_workbook(path)
    return [
        str(value)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    ]


@pytest.mark.slow
@pytest.mark.parametrize("month", ["2026-10", "2026-11"])
def test_workbooks_for_coders_carry_no_email_phone_or_name(demo, month):
    from helpers.privacy import EMAIL_PATTERN, PHONE_PATTERN, find_pii, scan_for_pii

    study, outputs = demo
    output = outputs[month]
    paths = [
        study.processed(month, name) for name in coding_step.WORKBOOK_FILES.values()
    ]
    # The demo notes do hold e-mails or phones, so redaction has work to do.
    raw = [found for text in output["excerpts"]["text"] for found in find_pii(text)]
    assert raw

    # Neither workbook shows one, in any cell of any sheet, nor a person's name.
    cells = [cell for path in paths for cell in workbook_cells(path)]
    assert not any(found in cell for found in raw for cell in cells)
    assert not any(EMAIL_PATTERN.search(cell) for cell in cells)
    texts = [cell for path in paths for cell in pd.read_excel(path, dtype=str)["text"]]
    assert not any(PHONE_PATTERN.search(text) for text in texts)
    assert scan_for_pii(paths) == []
    call_list = pd.read_csv(
        study.processed(month, f"call-list_customer_{month}.csv"), dtype=str
    )
    names = [*call_list["name"].dropna(), *output["conversations"]["interviewer"]]
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b")
    assert not any(pattern.search(cell) for cell in cells)

    # The queue is the step's disagreements, each beside its redacted text.
    queue = pd.read_excel(paths[1], dtype=str)
    assert len(queue) == len(output["disagreements"]) > 0
    redacted = output["redacted_excerpts"].set_index("excerpt_id")["text"]
    assert queue["text"].tolist() == redacted[queue["excerpt_id"]].tolist()


@pytest.mark.slow
def test_a_coder_sheet_made_from_the_blank_one_round_trips(demo, tmp_path):
    from helpers.codebook import load_codebook
    from helpers.coding import read_coding_sheet

    study, outputs = demo
    output = outputs["2026-11"]
    codebook = load_codebook(study.raw("codebook.yml"))
    path = tmp_path / "Ana.xlsx"
    shutil.copy(study.processed("2026-11", "coding-sheet_excerpt.xlsx"), path)

    # Code every row up to and past the first one whose text was redacted.
    redacted = output["redacted_excerpts"]
    customer = redacted["speaker"] != "interviewer"
    changed = customer & (redacted["text"] != output["excerpts"]["text"])
    last = list(redacted.loc[customer, "excerpt_id"]).index(
        redacted.loc[changed, "excerpt_id"].iloc[0]
    )
    workbook = load_workbook(path)
    for row in range(2, last + 4):
        workbook["coding"].cell(row=row, column=6).value = "OBJ-PRICE"
    workbook.save(path)

    codings = read_coding_sheet(
        path, codebook, excerpts=output["excerpts"], redacted=redacted
    )
    expected = list(redacted.loc[customer, "excerpt_id"])[: last + 2]
    assert codings["excerpt_id"].tolist() == expected
    assert set(codings["code"]) == {"OBJ-PRICE"} and set(codings["coder"]) == {"Ana"}
    with pytest.raises(HeardInputError):
        read_coding_sheet(path, codebook, excerpts=output["excerpts"])


@pytest.mark.slow
def test_agreement_unit_and_bootstrap_follow_the_study_config(demo):
    study, outputs = demo
    human = outputs["2026-11"]["codings"].query("~is_suggestion")
    by_conversation = coding_step.run_coding_step(
        with_coding_settings(study, agreement_unit="conversation", n_bootstrap=0),
        "2026-11",
        write=False,
    )
    overall = by_conversation["agreement"].set_index("code").loc["overall"]
    # Units coded by both coders, counted here with plain pandas.
    both = human.groupby("conversation_id")["coder"].nunique().eq(2).sum()
    assert overall["n_units"] == both
    assert overall[["kappa_ci_low", "alpha_ci_high"]].isna().all()
    default = outputs["2026-11"]["agreement"].set_index("code").loc["overall"]
    assert (
        default["n_units"] == human.groupby("excerpt_id")["coder"].nunique().eq(2).sum()
    )
    assert default[["kappa_ci_low", "alpha_ci_high"]].notna().all()


@pytest.mark.slow
def test_a_filled_in_reconcile_sheet_settles_the_consensus(demo, tmp_path):
    study, _ = demo
    root = tmp_path / "project"
    shutil.copytree(study.raw_dir, root / "data" / "raw" / "demo")
    copy = load_study("demo", root=root)
    # From nothing settled: without the demo's own decisions.
    copy.raw("coding", "2026-11", "reconciled.xlsx").unlink()
    before = coding_step.run_coding_step(copy, "2026-11")
    queue_path = copy.processed("2026-11", "reconcile_excerpt.xlsx")

    # The coders keep every other disputed code and drop the rest.
    workbook = load_workbook(queue_path)
    sheet = workbook["reconcile"]
    column = [cell.value for cell in sheet[1]].index("decision") + 1
    n_rows = sheet.max_row - 1
    decisions = ["keep" if i % 2 == 0 else "drop" for i in range(n_rows)]
    for row, decision in enumerate(decisions, start=2):
        sheet.cell(row=row, column=column).value = decision
    workbook.save(copy.raw("coding", "2026-11", "reconciled.xlsx"))
    after = coding_step.run_coding_step(copy, "2026-11")

    # With two coders an unsettled code is left out: each "keep" adds one.
    queue = before["disagreements"]
    assert n_rows == len(queue) > 1
    kept = queue.loc[[d == "keep" for d in decisions], ["excerpt_id", "code"]]
    resolved = after["consensus"].query("basis == 'resolved'")
    assert len(after["consensus"]) == len(before["consensus"]) + len(kept)
    assert resolved[["excerpt_id", "code"]].values.tolist() == kept.values.tolist()
    rewritten = pd.read_excel(queue_path, dtype=str)
    assert rewritten["decision"].tolist() == decisions


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


def write_partly_coded_study(root) -> object:
    """Write five one-turn notes, the coders' sheets for only the first two of
    them, and a caller's predictions for a coded and an uncoded customer."""
    folder = root / "data" / "raw" / "partly"
    notes = folder / "conversations" / MONTH
    notes.mkdir(parents=True)
    (folder / "codebook.yml").write_text(CODEBOOK)
    said = ["It runs small.", "Too expensive.", "Runs small.", "Small.", "Small!"]
    for day, text in enumerate(said, start=1):
        (notes / f"n{day}.md").write_text(
            f"---\nconversation_id: n{day}\ncustomer_key: c_n{day}\n"
            f"date: {MONTH}-{day:02d}\nsegment: s\ninterviewer: Notes\n"
            f"consent_to_quote: true\n---\nCustomer: {text}\n"
        )
    predictions = folder / "predictions"
    predictions.mkdir()
    (predictions / f"{MONTH}.csv").write_text(
        "caller,customer_key,predicted_code,probability\n"
        "Sam,c_n1,FIT-SMALL,0.7\nSam,c_n4,FIT-SMALL,0.7\n"
    )
    study = load_study("partly", root=root)

    # Both coders start from the step's blank sheet and stop after two rows.
    coding_step.run_coding_step(study, MONTH)
    blank = study.processed(MONTH, "coding-sheet_excerpt.xlsx")
    sheets = folder / "coding" / MONTH
    sheets.mkdir(parents=True)
    for coder in ("ana", "ben"):
        workbook = load_workbook(blank)
        workbook["coding"]["F2"].value = "FIT-SMALL"
        workbook["coding"]["F3"].value = "OBJ-PRICE"
        workbook.save(sheets / f"{coder}.xlsx")
    return study


def test_conversations_no_coder_reached_are_left_out_of_the_analysis(tmp_path, caplog):
    study = write_partly_coded_study(tmp_path)
    output = coding_step.run_coding_step(study, MONTH, write=False)

    # Themes: n1 (runs small) and n2 (price) were coded; n3-n5 were not read by
    # anyone, so "small" there is not a theme yet and they are no denominator.
    themes = output["themes"].query("segment == 'all'").set_index("code")
    assert themes.loc["FIT-SMALL", ["n_with_theme", "n_conversations"]].tolist() == [
        1,
        2,
    ]
    # Saturation: two coded conversations, both bringing a code; three uncoded
    # ones must not read as a quiet run of three (saturated).
    curve = output["saturation"].query("segment == 'all'")
    assert curve["conversation_id"].tolist() == ["n1", "n2"]
    assert curve["n_new_codes"].tolist() == [1, 1]
    verdict = output["saturation_verdict"].set_index("segment")
    assert not verdict.loc["all", "is_saturated"]
    # Predictions: c_n4's conversation was not coded, so that one is unscored,
    # not wrong; c_n1's is right with Brier (0.7 - 1)^2.
    scored = output["predictions"].set_index("customer_key")
    assert scored.loc["c_n1", "is_correct"] == 1.0
    assert not scored.loc["c_n4", "is_scored"]
    assert output["summary"]["predictions"]["k"] == 1
    assert output["summary"]["predictions"]["n"] == 1
    assert output["summary"]["predictions"]["brier_score"] == pytest.approx(0.09)
    # The summary keeps both counts, and the warning says what was left out.
    assert output["summary"]["n_conversations"] == 5
    assert output["summary"]["n_conversations_coded"] == 2
    assert "3 of 5 conversations have no coding yet" in caplog.text


def test_the_codebook_goes_out_as_a_valid_refi_qda_file(tmp_path):
    import xmlschema

    from helpers.codebook import load_codebook, read_qdc

    study = write_partly_coded_study(tmp_path)
    written = study.processed(MONTH, "codebook_code.qdc")
    schema = Path(__file__).parent / "fixtures" / "coding" / "Codebook.xsd"
    xmlschema.XMLSchema(schema).validate(written)
    assert read_qdc(written) == load_codebook(study.raw("codebook.yml"))


def test_prediction_summary_carries_the_latest_earlier_month():
    months = pd.DataFrame(
        {
            "month": ["2026-09", "2026-10", "2026-11"],
            "n_predictions": [8, 10, 12],
            "n_correct": [2, 4, 9],
            "accuracy_rate": [2 / 8, 4 / 10, 9 / 12],
            "ci_low": [0.07, 0.17, 0.47],
            "ci_high": [0.59, 0.69, 0.91],
            "n_with_probability": [8, 10, 12],
            "brier_score": [0.31, 0.27, 0.18],
        }
    )
    november = coding_step.summarise_predictions(months, "2026-11")
    assert (november["k"], november["n"], november["brier_score"]) == (9, 12, 0.18)
    previous = november["previous"]
    assert (previous["month"], previous["k"], previous["n"]) == ("2026-10", 4, 10)
    assert previous["brier_score"] == 0.27
    assert coding_step.summarise_predictions(months, "2026-10")["previous"]["k"] == 2
    assert coding_step.summarise_predictions(months, "2026-09")["previous"] is None


def test_velocity_summary_counts_open_points_by_age(tmp_path):
    from helpers import insights

    path = tmp_path / "insights.csv"
    path.write_text(
        "id,friction,codes,conversations,first_heard,owner,action,addressed_on\n"
        "I1,Late shipping,OBJ-SHIP,c1,2026-10-01,Sam,Show it,2026-10-11\n"
        "I2,Sizing,FIT,c4,2026-11-02,Sam,,\n"
        "I3,No badges,TRUST,c5,2026-08-15,Lee,,\n"
    )
    velocity = insights.summarise_insight_velocity(
        insights.load_insights(path), as_of="2026-11-30"
    )
    summary = coding_step.summarise_velocity(velocity)["insights"]
    # Open on 30 Nov: I2 for 28 days, I3 for 107 days; I1 addressed after 10.
    assert (summary["n_found"], summary["n_addressed"], summary["n_open"]) == (3, 1, 2)
    assert summary["median_days_to_address"] == 10
    assert summary["open_by_age"] == {
        "under 1 week": 0,
        "1-4 weeks": 1,
        "1-3 months": 0,
        "over 3 months": 1,
    }

"""The report chain: fallback conversion, caching, failing stages, month over month.

Fixture notebooks live in tests/fixtures/report/; they are executed with papermill
here, so what is converted is what a real run produces.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from report_chain import FIXTURES, REPO, copy_project, execute_fixture

from helpers import render, report, report_data
from helpers.study import load_study

pytestmark = pytest.mark.slow  # papermill starts a kernel per fixture notebook


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The stage fixture, executed once."""
    return execute_fixture("stage", tmp_path_factory.mktemp("executed"))


@pytest.fixture(scope="module")
def page(executed):
    return render.notebook_to_page(executed, name="stage", subtitle="demo · 2026-11")


@pytest.fixture(scope="module")
def info():
    return render.RenderInfo(
        "Demo store", "2026-11", "fallback", "2026-12-01", "abc1234"
    )


def test_cell_options_are_read_as_yaml():
    source = (
        '#| label: fig-x\n#| fig-cap: "Rate: 35% (7 of 20)"\nplot()\n#| not: options'
    )
    assert render.read_cell_options(source) == {
        "label": "fig-x",
        "fig-cap": "Rate: 35% (7 of 20)",
    }
    assert render.read_cell_options("x = 1") == {}


def test_code_hidden_outputs_kept_and_include_false_dropped(page):
    # echo false: no source line reaches the page; include false drops the output too.
    assert "SECRET_SOURCE_MARKER" not in page.markdown
    assert "HIDDEN OUTPUT" not in page.markdown
    assert "import" not in page.markdown
    # Log lines (stdout) and plain-text reprs are dropped.
    assert "LOG LINE" not in page.markdown
    assert "0.65" not in page.markdown  # 14/40 + 9/30, the last cell's plain repr
    # Markdown outputs keep the computed number: 40 + 30 dialled, and the parameter.
    assert "We dialled **70** customers of study demo in 2026-11." in page.markdown
    assert page.title == "Fixture stage"


def test_tables_become_real_tables_in_html_and_typst(page, info):
    html = render.page_to_html(
        page, nav=[{"href": "stage.html", "label": "Stage"}], info=info
    )
    table = re.search(r"<table.*?</table>", html, flags=re.S).group(0)
    assert 'id="tbl-rates"' in table
    assert (
        "<caption>Table 1. Connect rate by segment (customers dialled)</caption>"
        in table
    )
    assert len(re.findall(r"<tr", table)) == 3  # header and two segments
    # 14 of 40 and 9 of 30, formatted by the notebook as rates.
    assert "<td" in table and "35.0%" in table and "30.0%" in table

    typst = render.page_to_typst(page, info=info, toc=True)
    assert "#table(" in typst and "columns: 4" in typst
    assert "caption: [Connect rate by segment (customers dialled)]" in typst
    assert "kind: table" in typst


def test_figures_are_files_with_caption_and_alt_text(page, info, tmp_path):
    (path, png), *_ = page.figures.items()
    assert path == "figures/stage-fig-rates.png"
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    alt = "Bar chart of connect rate for two segments, 35% and 30%"

    html = render.page_to_html(page, nav=[], info=info)
    assert f'<img src="{path}"' in html and f'alt="{alt}"' in html
    assert "Figure 1. Connect rate by segment; n = 70 customers dialled" in html

    typst = render.page_to_typst(page, info=info, toc=False)
    assert f'#image("{path}", width: 84%, alt: "{alt}")' in typst
    # Cross-references become words; Typst numbers the captions itself.
    assert "Table 1 lists the rates and Figure 1 draws them." in typst


def test_pdf_holds_the_title_page_and_numbers(page, info, tmp_path):
    from pypdf import PdfReader

    pdf = render.render_page_pdf(page, tmp_path / "stage.pdf", info=info)
    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    for expected in ("Fixture stage", "Demo store", "2026-11", "abc1234", "fallback"):
        assert expected in text
    assert "70" in text and "35.0%" in text
    assert "Page 1 of" in text
    assert "SECRET_SOURCE_MARKER" not in text


def test_markdown_pdf_for_call_guides_is_one_page(tmp_path):
    from pypdf import PdfReader

    guide = (
        "## Prompts\n\n- What almost stopped you from buying?\n- What surprised you?\n"
    )
    pdf = render.render_markdown_pdf(guide, tmp_path / "guide.pdf", title="Call guide")
    reader = PdfReader(pdf)
    assert len(reader.pages) == 1
    assert "What almost stopped you from buying?" in reader.pages[0].extract_text()


def fixture_project(tmp_path: Path, stages: dict[str, Path]) -> Path:
    root = copy_project(tmp_path / "project", stages=stages)
    (root / "data" / "raw" / "fixture").mkdir(parents=True)
    (root / "data" / "raw" / "fixture" / "study.yml").write_text(
        "study:\n  name: Fixture store\n", encoding="utf-8"
    )
    return root


@pytest.fixture
def no_checks(monkeypatch):
    # The fixture study has no exports; the checks module is tested on its own.
    monkeypatch.setattr(report, "check_inputs", lambda *args: None)


@pytest.fixture
def frozen_code(monkeypatch):
    # Heard's code is in the keys; hold it still so that an edit elsewhere in the
    # working tree during the test cannot look like a change.
    helpers, rendering = report.helpers_fingerprint(), report.render_fingerprint()
    monkeypatch.setattr(report, "helpers_fingerprint", lambda: helpers)
    monkeypatch.setattr(report, "render_fingerprint", lambda: rendering)


def test_second_run_reuses_unchanged_notebooks(
    tmp_path, no_checks, frozen_code, capsys
):
    root = fixture_project(tmp_path, {"01_stage": FIXTURES / "stage.ipynb"})
    first = report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    executed = root / "reports/_output/fixture/2026-11/executed/01_stage.ipynb"
    stamp = executed.stat().st_mtime_ns

    # Nothing changed: both notebooks are reused, and so are the PDF and the site.
    second = report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    assert executed.stat().st_mtime_ns == stamp
    assert "[2026-11 2/4] 01_stage (unchanged, reused)" in capsys.readouterr().err
    assert second == first and first.pdf.name == "monthly-2026-11.pdf"
    assert first.site == root / "reports/_output/fixture/2026-11/site/index.html"

    # A changed raw file runs the chain again.
    (root / "data/raw/fixture/study.yml").write_text("study:\n  name: Renamed\n")
    report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    assert executed.stat().st_mtime_ns != stamp
    assert (
        "Renamed"
        in (root / "reports/_output/fixture/2026-11/site/index.html").read_text()
    )


def rendered_stamps(outputs: report.ReportOutputs) -> tuple[int, int]:
    return outputs.pdf.stat().st_mtime_ns, outputs.site.stat().st_mtime_ns


def test_unchanged_second_run_renders_nothing_and_scans_nothing(
    tmp_path, no_checks, frozen_code, capsys, monkeypatch
):
    root = fixture_project(tmp_path, {"01_stage": FIXTURES / "stage.ipynb"})
    first = report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    stamps = rendered_stamps(first)
    capsys.readouterr()

    # Every file was scanned and rendered by the first run: neither runs again.
    def again(*args, **kwargs):
        raise AssertionError("scanned or rendered again with nothing changed")

    for name in ("ensure_private", "check_rendered_privacy", "render_fallback"):
        monkeypatch.setattr(report, name, again)
    second = report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    assert second == first and rendered_stamps(second) == stamps
    assert "[2026-11 4/4] render (fallback) (unchanged, reused)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "change", ["home page", "deleted pdf", "deleted site", "edited page", "fresh"]
)
def test_changed_input_or_output_renders_again(
    tmp_path, no_checks, frozen_code, capsys, change
):
    root = fixture_project(tmp_path, {"01_stage": FIXTURES / "stage.ipynb"})
    first = report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    stamps = rendered_stamps(first)
    capsys.readouterr()

    # Change one input of the render, or damage one of its outputs.
    if change == "home page":
        (root / "index.qmd").write_text("---\ntitle: Changed home\n---\n\nHello.\n")
    elif change == "deleted pdf":
        first.pdf.unlink()
    elif change == "deleted site":
        shutil.rmtree(first.site.parent)
    elif change == "edited page":
        first.site.write_text(first.site.read_text() + "<!-- edited -->")
    second = report.build_report(
        "fixture", "2026-11", root=root, renderer="fallback", fresh=change == "fresh"
    )
    assert "render (fallback)\n" in capsys.readouterr().err
    assert second.pdf.exists() and second.site.exists()
    assert rendered_stamps(second) != stamps
    if change == "home page":
        assert "Changed home" in second.site.read_text()


def test_a_phone_added_after_a_clean_run_still_stops_the_report(
    tmp_path, no_checks, frozen_code
):
    root = fixture_project(tmp_path, {"01_stage": FIXTURES / "stage.ipynb"})
    first = report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    assert (first.pdf.parent / "privacy.json").exists()

    # The new file was never scanned, so the recorded pass does not cover it.
    processed = root / "data" / "processed" / "fixture" / "2026-11"
    processed.mkdir(parents=True, exist_ok=True)
    leaking = processed / "insights-open_insight.csv"
    leaking.write_text("insight,note\ni-1,call her back on +1 202-555-0147\n")
    with pytest.raises(report.HeardInputError, match="202-555-0147"):
        report.build_report("fixture", "2026-11", root=root, renderer="fallback")


def test_cache_key_covers_notebook_parameters_raw_helpers_and_upstream(tmp_path):
    root = fixture_project(tmp_path, {"01_stage": FIXTURES / "stage.ipynb"})
    stage, monthly = report.list_stages(root)
    digests = report.stage_digests(stage, "fixture", "2026-11", root=root, upstream="")
    assert set(digests) == {"notebook", "parameters", "raw", "helpers", "upstream"}
    october = report.stage_digests(stage, "fixture", "2026-10", root=root, upstream="")
    assert october["parameters"] != digests["parameters"]
    assert october["raw"] == digests["raw"]
    # The report also reads earlier months' processed files.
    later = report.stage_digests(monthly, "fixture", "2026-11", root=root, upstream="x")
    assert "earlier" in later


def test_failing_stage_names_notebook_cell_and_error(tmp_path, no_checks):
    root = fixture_project(tmp_path, {"01_failing": FIXTURES / "failing.ipynb"})
    with pytest.raises(report.ReportStageError) as caught:
        report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    message = str(caught.value)
    # Cell 4 of the source: front matter, parameters, `total = 1`, then the division.
    assert (
        "01_failing.ipynb (cell 4: `ratio = total / 0  # the cell that fails`)"
        in message
    )
    assert "ZeroDivisionError: division by zero" in message


def test_privacy_scan_stops_a_report_with_a_phone_number(tmp_path, info):
    leaking = render.Page("monthly", "Report", "Call back on +1 202-555-0147 today.\n")
    site = render.render_site([leaking], tmp_path / "site", info=info)
    pdf = render.render_page_pdf(leaking, tmp_path / "report.pdf", info=info)
    with pytest.raises(report.HeardInputError, match="202-555-0147"):
        report.check_rendered_privacy(report.ReportOutputs(pdf=pdf, site=site))
    assert not pdf.exists() and not site.exists()


def test_a_phone_in_a_processed_file_stops_the_report_before_rendering(
    tmp_path, no_checks
):
    root = fixture_project(tmp_path, {"01_stage": FIXTURES / "stage.ipynb"})
    processed = root / "data" / "processed" / "fixture" / "2026-11"
    processed.mkdir(parents=True)
    leaking = processed / "insights-open_insight.csv"
    leaking.write_text("insight,note\ni-1,call her back on +1 202-555-0147\n")
    # The call list is meant to hold phones and is left alone.
    (processed / "call-list_customer_2026-11.csv").write_text(
        "name,phone\nAnn,+1 202-555-0111\n"
    )
    with pytest.raises(report.HeardInputError) as caught:
        report.build_report("fixture", "2026-11", root=root, renderer="fallback")
    assert caught.value.file == str(leaking)
    assert "+1 202-555-0147" in str(caught.value) and caught.value.fix
    assert not list((root / "reports" / "_output").rglob("*.pdf"))


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval, written out from the textbook formula."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_month_over_month_change_matches_newcombe_by_hand():
    import pandas as pd

    rates = pd.DataFrame(
        {"month": ["2026-10", "2026-11"], "k": [30, 45], "n": [100, 120]}
    )
    change = report_data.compare_last_two(rates)

    # Newcombe's hybrid score interval (method 10) from the two Wilson intervals.
    p1, p2 = 45 / 120, 30 / 100
    l1, u1 = wilson(45, 120)
    l2, u2 = wilson(30, 100)
    low = (p1 - p2) - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = (p1 - p2) + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    assert change["difference"] == pytest.approx(0.075)
    assert change["ci_low"] == pytest.approx(low, abs=1e-9)
    assert change["ci_high"] == pytest.approx(high, abs=1e-9)
    assert (change["before"], change["after"]) == ("2026-10", "2026-11")


def write_month(processed: Path, month: str, calls: dict, themes: list[dict]) -> None:
    import pandas as pd

    folder = processed / month
    folder.mkdir(parents=True)
    (folder / "summary_calls.json").write_text(json.dumps(calls))
    pd.DataFrame(themes).to_parquet(folder / "themes_code.parquet")


def connect(k: int, n: int) -> dict:
    low, high = wilson(k, n)
    return {
        "connect_rate_customer": {
            "k": k,
            "n": n,
            "rate": k / n,
            "ci_low": low,
            "ci_high": high,
        }
    }


def theme(k: int, n: int) -> dict:
    low, high = wilson(k, n)
    return {"segment": "all", "code": "OBJ-PRICE", "name": "Price",
            "n_with_theme": k, "n_conversations": n, "rate": k / n,
            "ci_low": low, "ci_high": high}  # fmt: skip


def test_month_over_month_reads_earlier_months(tmp_path):
    raw = tmp_path / "data" / "raw" / "shop"
    raw.mkdir(parents=True)
    processed = tmp_path / "data" / "processed" / "shop"
    write_month(processed, "2026-10", connect(28, 80), [theme(3, 24)])
    write_month(processed, "2026-11", connect(36, 90), [theme(6, 27)])
    write_month(processed, "2026-12", connect(1, 2), [theme(1, 2)])  # later: ignored
    study = load_study("shop", root=tmp_path)

    rates = report_data.compare_connect_rates(study, "2026-11")
    assert rates["month"].tolist() == ["2026-10", "2026-11"]
    assert rates["k"].tolist() == [28, 36] and rates["n"].tolist() == [80, 90]
    themes = report_data.compare_themes(study, "2026-11", ["OBJ-PRICE"])
    assert themes["k"].tolist() == [3, 6]

    text = report_data.describe_months(rates, themes, month="2026-11")
    # 36/90 - 28/80 = 0.40 - 0.35 = +5 points, whole like every other pp figure.
    low, high = newcombe_by_hand(36, 90, 28, 80)
    assert (
        f"October 2026 to November 2026: +5 pp [{100 * low:.0f}, {100 * high:.0f}]"
    ) in text
    assert "The largest change is Price: 12% (3 of 24)" in text
    assert "22% (6 of 27)" in text and "in October 2026" in text

    first = report_data.describe_months(
        rates.iloc[:1], themes.iloc[:1], month="2026-10"
    )
    assert "first month" in first


def test_executive_summary_carries_denominators_quotes_and_questions(tmp_path):
    raw = tmp_path / "data" / "raw" / "shop"
    raw.mkdir(parents=True)
    (raw / "study.yml").write_text(
        'months:\n  "2026-11":\n    question: What almost stopped you?\n'
        "    next_question: What would bring you back?\n"
    )
    study = load_study("shop", root=tmp_path)
    low, high = wilson(12, 35)
    summaries = {
        "calls": {"n_conversations": 12, "n_dialled": 35, "connect_rate_customer":
                  {"k": 12, "n": 35, "rate": 12 / 35, "ci_low": low, "ci_high": high,
                   "verdict": "within", "field_low": 0.3, "field_high": 0.4}},
        "coding": {"top_themes": [{"code": "OBJ-PRICE", "name": "Price",
                   "k": 4, "n": 12, "ci_low": 0.14, "ci_high": 0.61,
                   "quote": "Shipping was a shock, call me on 020 7946 0958"}]},
        "experiments": {"experiments": [{"name": "subject-nov", "variant": "b",
                        "primary_metric": "conversion", "lift": 0.2, "ci_low": -0.05,
                        "ci_high": 0.5, "p_adjusted": 0.12,
                        "verdict": "b vs control: not significant."}]},
    }  # fmt: skip
    text = report_data.write_executive_summary(study, "2026-11", summaries)
    assert "What almost stopped you?" in text and "What would bring you back?" in text
    # 12/35 = 34.3%; Wilson 95% [20.8%, 50.8%] by the formula above.
    assert f"34% (12 of 35) [{100 * low:.0f}%, {100 * high:.0f}%]" in text
    assert "Price** in 33% (4 of 12)" in text
    assert "\u201cShipping was a shock, call me on [phone]\u201d" in text  # redacted
    assert "+20% [-5%, +50%]" in text and "adjusted p 0.12" in text
    assert "not distinguishable from no change" in text


def coded_theme(code: str, name: str, k: int, n: int) -> dict:
    """A ``themes_code.parquet`` row of a leaf theme, all segments together."""
    return theme(k, n) | {"code": code, "name": name, "parent": None}


def write_theme_months(tmp_path: Path, october: list, november: list):
    """Return a study with two months of theme counts (and no other outputs)."""
    (tmp_path / "data" / "raw" / "shop").mkdir(parents=True)
    processed = tmp_path / "data" / "processed" / "shop"
    write_month(processed, "2026-10", connect(28, 80), october)
    write_month(processed, "2026-11", connect(36, 90), november)
    return load_study("shop", root=tmp_path)


def test_executive_summary_names_the_clear_theme_changes_since_last_month(tmp_path):
    study = write_theme_months(
        tmp_path,
        [coded_theme("FIT", "Sizing and fit", 4, 22),
         coded_theme("CODE", "Discount-code hunting", 10, 22),
         coded_theme("SHIP", "Shipping cost", 6, 22)],
        [coded_theme("FIT", "Sizing and fit", 13, 25),
         coded_theme("CODE", "Discount-code hunting", 3, 25),
         coded_theme("SHIP", "Shipping cost", 7, 25)],
    )  # fmt: skip
    text = report_data.write_executive_summary(study, "2026-11", {})

    # Both clear changes, largest first, checked against Fisher and Newcombe by hand.
    fit_p, code_p = fisher_by_hand(13, 25, 4, 22), fisher_by_hand(3, 25, 10, 22)
    assert fit_p < 0.05 and code_p < 0.05
    assert fisher_by_hand(7, 25, 6, 22) >= 0.05
    fit_low, fit_high = newcombe_by_hand(13, 25, 4, 22)
    fit = (
        f"Sizing and fit rose from 18% (4 of 22) to 52% (13 of 25), +34 pp "
        f"[{100 * fit_low:.0f}, {100 * fit_high:.0f}], p {fit_p:.2g}"
    )
    line = next(x for x in text.splitlines() if "theme changes since" in x)
    assert line.startswith(
        "- **Biggest theme changes since October 2026** (Fisher's exact p below "
        "0.05, not corrected for the 3 themes compared; 95% Newcombe intervals): " + fit
    )
    code_low, code_high = newcombe_by_hand(3, 25, 10, 22)
    assert (
        f"; Discount-code hunting fell from 45% (10 of 22) to 12% (3 of 25), -33 pp "
        f"[{100 * code_low:.0f}, {100 * code_high:.0f}], p {code_p:.2g}."
    ) in line
    assert "Shipping cost" not in line


def test_executive_summary_says_when_no_theme_changed_clearly(tmp_path):
    study = write_theme_months(
        tmp_path,
        [coded_theme("FIT", "Sizing and fit", 5, 22)],
        [coded_theme("FIT", "Sizing and fit", 8, 25)],
    )
    text = report_data.write_executive_summary(study, "2026-11", {})
    assert fisher_by_hand(8, 25, 5, 22) >= 0.05
    assert (
        "- **Theme changes since October 2026:** no clear change in the 1 theme "
        "compared (every Fisher's exact p is 0.05 or more); the largest: Sizing and "
        "fit rose from 23% (5 of 22) to 32% (8 of 25)"
    ) in text

    # The study's first month has nothing to compare, so no line.
    first = report_data.write_executive_summary(study, "2026-10", {})
    assert "theme change" not in first.lower()


def test_summary_line_of_an_experiment_with_a_sample_ratio_mismatch_claims_nothing():
    entry = {
        "name": "subject-nov",
        "variant": "b",
        "primary_metric": "conversion",
        "lift": 0.3,
        "ci_low": 0.1,
        "ci_high": 0.5,
        "p_adjusted": 0.001,
    }
    [clean] = report_data.describe_experiments({"experiments": [entry]})
    assert clean.endswith("the variant did better than control.")
    [mismatched] = report_data.describe_experiments(
        {"experiments": [{**entry, "has_srm": True, "srm_p_value": 1e-6}]}
    )
    assert "sample-ratio mismatch" in mismatched
    assert "did better" not in mismatched


def test_experiment_lines_state_the_interval_level_their_alpha_gives():
    entry = {
        "name": "subject-nov",
        "variant": "b",
        "primary_metric": "aov",
        "lift": 0.3,
        "ci_low": 0.1,
        "ci_high": 0.5,
        "p_adjusted": 0.001,
        "alpha": 0.1,
    }
    [line] = report_data.describe_experiments({"experiments": [entry]})
    assert "average order value (AOV)): relative lift +30% [+10%, +50%] (90% " in line
    table = report_data.tabulate_experiment_results(RESULTS.assign(alpha=0.1))
    assert "Relative lift [90% CI]" in table.columns
    mixed = report_data.tabulate_experiment_results(
        pd.concat([RESULTS, RESULTS.assign(experiment="other", alpha=0.1)])
    )
    levels = [
        cell.rsplit(" ", 1)[1] for cell in mixed["Relative lift [CI at its level]"]
    ]
    assert levels == ["(95%)"] * 3 + ["(90%)"] * 3


def rate_entry(k: int, n: int) -> dict:
    low, high = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n, "ci_low": low, "ci_high": high}


def test_summary_states_recovery_against_the_hold_out_with_its_interval():
    calls = {
        "recovery": {
            "cart_abandoners": {
                "called": rate_entry(12, 35),
                "holdout": rate_entry(2, 35),
                "difference": {"estimate": 10 / 35, "ci_low": 0.099, "ci_high": 0.456},
                "p_value": 0.0057,
            },
            "first_time_no_return": {"called": {"k": 3, "n": 35}, "holdout": None},
        },
        "revenue_per_conversation": {
            "estimate": 195.3, "ci_low": 31.8, "ci_high": 354.8, "n_conversations": 14,
            "attributable_revenue": 2734.2, "segments": ["cart_abandoners"],
        },
    }  # fmt: skip
    lines = report_data.describe_recovery(calls, currency="GBP")
    assert len(lines) == 2  # no line for a segment without a hold-out
    # 12/35 = 34%, 2/35 = 6%, difference 10/35 = +29 pp.
    assert "34% (12 of 35) [21%, 51%]" in lines[0]
    assert "6% (2 of 35) [2%, 19%]" in lines[0]
    assert "+29 pp [10, 46]" in lines[0] and "Fisher p 0.0057" in lines[0]
    assert "GBP 195 [32, 355]" in lines[1] and "14 conversations" in lines[1]
    # 2734.2 / 14 = 195.3: the extra revenue is named with its denominator.
    assert (
        "called customers (Cart abandoners) spent GBP 2,734 more than the not-called "
        "hold-out over the 14 conversations held with them."
    ) in lines[1]

    # With each arm's spend the line shows both, so the extra cannot be read as
    # the hold-out's spend: 3,796.80 - 263.94 = 3,532.86 (equal arms of 35).
    calls["recovery"]["cart_abandoners"] |= {
        "revenue_called": 3796.8, "revenue_holdout": 263.94,
        "excess_revenue": 3796.8 - 35 * 263.94 / 35,
    }  # fmt: skip
    calls["revenue_per_conversation"]["attributable_revenue"] = 3532.86
    line = report_data.describe_recovery(calls, currency="USD")[1]
    assert (
        "spent USD 3,797 and the not-called hold-out of the same size USD 264, so "
        "USD 3,533 more over the 14 conversations held with them."
    ) in line
    # A smaller hold-out is scaled to the called arm: 40 x 263.94 / 35 = 301.65.
    calls["recovery"]["cart_abandoners"]["called"] = rate_entry(12, 40)
    excess = 3796.8 - 40 * 263.94 / 35
    calls["recovery"]["cart_abandoners"]["excess_revenue"] = excess
    calls["revenue_per_conversation"]["attributable_revenue"] = excess
    line = report_data.describe_recovery(calls, currency="USD")[1]
    assert (
        "and as many not-called hold-out customers, at the hold-out's spend per "
        "customer, USD 302, so USD 3,495 more"
    ) in line


def test_inputs_table_has_row_counts_and_sha256(tmp_path):
    raw = tmp_path / "data" / "raw" / "shop"
    (raw / "exports" / "2026-11").mkdir(parents=True)
    (raw / "conversations" / "2026-11").mkdir(parents=True)
    orders = raw / "exports" / "2026-11" / "orders.csv"
    orders.write_text('Name,Total\n#1001,"12,50"\n#1002,3\n#1003,4\n')
    for number in (1, 2):
        (raw / "conversations" / "2026-11" / f"c{number}.md").write_text(
            f"note {number}"
        )
    study = load_study("shop", root=tmp_path)

    table = report_data.tabulate_inputs(study, "2026-11").set_index("File")
    assert table.loc["exports/2026-11/orders.csv", "Rows"] == 3  # quoted comma kept
    assert (
        table.loc["exports/2026-11/orders.csv", "SHA-256"]
        == hashlib.sha256(orders.read_bytes()).hexdigest()
    )
    notes = sorted(hashlib.sha256(f"note {n}".encode()).hexdigest() for n in (1, 2))
    combined = hashlib.sha256("".join(notes).encode()).hexdigest()
    assert table.loc["conversations/2026-11/*.md", "SHA-256"] == combined
    assert table.loc["conversations/2026-11/*.md", "Rows"] == "2 files"


def test_rules_table_says_settings_in_words_and_keeps_unknown_values(tmp_path):
    raw = tmp_path / "data" / "raw" / "shop"
    raw.mkdir(parents=True)
    (raw / "study.yml").write_text(
        "experiments: {correction: fdr_bh, seed: 7}\n"
        "consent: {do_not_call_tag: never}\ncoding: {n_bootstrap: 500}\n"
    )
    rules = report_data.tabulate_rules(load_study("shop", root=tmp_path))
    settings = rules.set_index("Rule")["Setting"]
    # Each bootstrap's seed, study.yml over the defaults.
    defaults = load_study("shop", root=tmp_path).config
    assert settings["Bootstrap: experiment means"] == (
        f"{defaults['experiments']['bootstrap_resamples']:,} resamples, seed 7"
    )
    assert settings["Bootstrap: coder agreement"] == (
        f"500 resamples, seed {defaults['coding']['bootstrap_seed']}"
    )
    assert settings["Bootstrap: revenue per conversation"].endswith(
        f"seed {defaults['calls']['seed']}"
    )
    assert settings["Experiment alpha and correction"] == (
        "0.05, Benjamini-Hochberg (false discovery rate)"
    )
    assert settings["Consent required to call"].startswith("the customer accepts")
    # The phone rule says what is kept and dropped, and keeps its name in view.
    phones = settings["Phone numbers kept"]
    assert phones.startswith('the right length for their country ("possible" rule')
    assert "fictional test ranges pass" not in phones
    segments = report_data.describe_segments({"phone_rule": "possible"})
    assert (
        "Phone numbers are kept when they have the right length for their country "
        '(the "possible" rule) and dropped when missing, damaged'
    ) in segments
    assert "made-up numbers of test data can be called" in segments
    segments = report_data.describe_segments({"phone_rule": "valid"})
    assert (
        "Phone numbers are kept only when they are in a range phone companies have "
        'issued (the "valid" rule)'
    ) in segments
    assert settings["Do-not-call tag"] == "never"


def test_fallback_output_is_removed_before_a_site_is_rebuilt(tmp_path, info):
    site = tmp_path / "site"
    render.render_site([render.Page("index", "Home", "Hello\n")], site, info=info)
    (site / "stale.html").write_text("old")
    render.render_site([render.Page("index", "Home", "Hello again\n")], site, info=info)
    assert not (site / "stale.html").exists()


def test_missing_quarto_is_said_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    assert report.choose_renderer("auto") is False
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Quarto is not installed")
    with pytest.raises(report.HeardInputError, match="Quarto on PATH"):
        report.choose_renderer("quarto")
    monkeypatch.setattr(report.shutil, "which", lambda name: "/usr/bin/quarto")
    assert report.choose_renderer("auto") is True
    assert report.choose_renderer("fallback") is False


def test_quarto_copy_of_the_report_carries_study_and_month_in_its_title():
    import nbformat

    notebook = nbformat.read(FIXTURES / "monthly.ipynb", as_version=4)
    titled = render.with_title(notebook, suffix="Demo store, 2026-11")
    front = render.read_front_matter(titled)
    assert front["title"] == "Fixture monthly report: Demo store, 2026-11"
    assert front["execute"] == {"enabled": True, "echo": False, "warning": False}
    assert render.read_front_matter(notebook)["title"] == "Fixture monthly report"


def test_earlier_months_without_outputs_are_built_first(tmp_path):
    raw = tmp_path / "data" / "raw" / "shop"
    for month in ("2026-09", "2026-10", "2026-11"):
        (raw / "exports" / month).mkdir(parents=True)
    months = {m: {"question": "?"} for m in ("2026-09", "2026-10", "2026-11")}
    (raw / "study.yml").write_text(yaml.safe_dump({"months": months}))
    done = tmp_path / "data" / "processed" / "shop" / "2026-09"
    done.mkdir(parents=True)
    (done / "summary_segments.json").write_text("{}")

    assert report.missing_earlier_months("shop", "2026-11", root=tmp_path) == [
        "2026-10"
    ]
    assert report.missing_earlier_months("shop", "2026-10", root=tmp_path) == []


def test_price_sentence_says_who_the_non_buyers_are():
    low, high = wilson(2, 17)
    price = {"k": 2, "n": 17, "rate": 2 / 17, "ci_low": low, "ci_high": high,
             "n_customers": 24}  # fmt: skip
    section = report_data.describe_coding(
        {"n_conversations": 25, "price_objection": price}
    )
    # 2/17 = 11.8%; Wilson 95% by the formula above.
    assert (
        "Of the 17 customers we talked to who placed no order this month (of 24 "
        f"customers talked to in all), 2 raised price: 12% [{100 * low:.0f}%, "
        f"{100 * high:.0f}%]."
    ) in section
    assert "themes table" not in section


def test_suggested_codes_are_labelled_and_never_called_coders_work():
    coding = {
        "coding_source": "suggested (keyword rules, not coded by people)",
        "n_conversations": 40, "kappa": None, "alpha": None,
        "price_objection": {"k": 0, "n": 0, "rate": None},
        "top_themes": [{"code": "FIT-SMALL", "name": "Runs small", "k": 9, "n": 40,
                        "ci_low": 0.12, "ci_high": 0.38, "quote": "Too small."}],
    }  # fmt: skip
    section = report_data.describe_coding(coding)
    assert "Suggested codes, not coded by people" in section
    assert "**40** conversations" in section
    assert "Two coders" not in section and "undefined" not in section
    assert "not available" not in section  # no non-buyers: no price sentence
    lines = report_data.describe_top_themes(coding)
    assert lines[0].startswith("**Themes are suggested codes:**")
    assert "Runs small** in 22% (9 of 40)" in lines[1]
    caveats = report_data.write_caveats({"coding": coding})
    assert "keyword suggestions" in caveats
    assert "answer the phone" not in caveats  # no calls this month
    assert "Experiment p-values" not in caveats  # no experiment this month

    # People's coding keeps the agreement sentence.
    coded = coding | {"coding_source": "consensus", "kappa": 0.75, "alpha": 0.7}
    section = report_data.describe_coding(coded)
    assert "Two coders coded **40** conversations" in section
    assert "Cohen's kappa 0.75, Krippendorff's alpha 0.70" in section


def test_summary_without_a_call_log_says_so_instead_of_an_empty_rate(tmp_path):
    (tmp_path / "data" / "raw" / "shop").mkdir(parents=True)
    study = load_study("shop", root=tmp_path)
    summaries = {"calls": {}, "coding": {"n_conversations": 40}, "experiments": {}}
    text = report_data.write_executive_summary(study, "2026-11", summaries)
    assert "**Conversations held:** 40 (conversation notes)" in text
    assert "no call log this month" in text
    assert "unknown number" not in text and "not available, 95%" not in text


def fisher_by_hand(k1: int, n1: int, k2: int, n2: int) -> float:
    """Fisher's exact two-sided p: the hypergeometric tables no likelier than
    the one observed, summed from binomial coefficients."""
    total, hits = n1 + n2, k1 + k2

    def chance(k: int) -> float:
        return math.comb(n1, k) * math.comb(n2, hits - k) / math.comb(total, hits)

    observed = chance(k1)
    low, high = max(0, hits - n2), min(n1, hits)
    return sum(
        chance(k) for k in range(low, high + 1) if chance(k) <= observed * (1 + 1e-7)
    )


def newcombe_by_hand(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval of k1/n1 - k2/n2 from Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    return (
        p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def test_coding_section_reports_insight_velocity_and_prediction_trend():
    from helpers.stats import wilson_interval

    def entry(k, n, brier, **extra):
        low, high = wilson_interval(k, n)
        return {"k": k, "n": n, "rate": k / n, "ci_low": low, "ci_high": high,
                "brier_score": brier, **extra}  # fmt: skip

    coding = {
        "coding_source": "consensus", "n_conversations": 24, "kappa": 0.7,
        "alpha": 0.7, "is_saturated": True,
        "insights": {"n_found": 5, "n_addressed": 2, "median_days_to_address": 12.5,
                     "n_open": 3, "open_by_age": {"under 1 week": 1, "1-4 weeks": 0,
                                                  "1-3 months": 2}},
        "predictions": entry(6, 10, 0.21, previous=entry(3, 10, 0.3, month="2026-10")),
    }  # fmt: skip
    section = report_data.describe_coding(coding)
    assert (
        "**Insight log:** 5 friction points found so far, 2 addressed, a median of "
        "12 days after first heard; 3 still open: 1 for under 1 week, 2 for 1-3 "
        "months."
    ) in section
    assert "came up for 60% (6 of 10)" in section
    assert "Brier score 0.21 (lower is better)" in section
    assert "In October 2026: 30% (3 of 10)" in section
    assert "Brier score 0.30" in section
    # 6 of 10 against 3 of 10: the test, not the intervals, decides.
    p_value = fisher_by_hand(6, 10, 3, 10)
    low, high = newcombe_by_hand(6, 10, 3, 10)
    assert p_value > 0.05
    assert (
        f"change +30 pp [{100 * low:.0f}, {100 * high:.0f}] (Newcombe 95% interval; "
        f"Fisher's exact p {p_value:.2g}): at the 5% level the test cannot tell this "
        "change from chance."
    ) in section.replace("\u2212", "-")

    # The demo's 20 of 25 against 9 of 22: the intervals touch, the test says rose.
    coding["predictions"] = entry(
        20, 25, 0.24, previous=entry(9, 22, 0.27, month="2026-10")
    )
    p_value = fisher_by_hand(20, 25, 9, 22)
    low, high = newcombe_by_hand(20, 25, 9, 22)
    assert p_value < 0.05
    shown = f"[{100 * low:.0f}, {100 * high:.0f}]"
    assert (
        f"change +39 pp {shown} (Newcombe 95% interval; Fisher's exact p "
        f"{p_value:.2g}): accuracy rose by more than chance explains at the 5% level."
    ) in report_data.describe_coding(coding)
    # Open points all of one age are said once, never as "3 1-3 months".
    coding["insights"]["open_by_age"] = {"1-3 months": 3, "1-4 weeks": 0}
    assert "3 still open, all for 1-3 months." in report_data.describe_coding(coding)
    coding["insights"] |= {"n_open": 1, "open_by_age": {"1-3 months": 1}}
    assert "1 still open, for 1-3 months." in report_data.describe_coding(coding)
    # Without an insight log or predictions, no sentence about them.
    bare = report_data.describe_coding(coding | {"insights": None, "predictions": None})
    assert "Insight log" not in bare and "Predictions" not in bare


def test_caveats_count_only_the_conversations_coded():
    low, high = wilson(5, 12)
    top = {"code": "OBJ-PRICE", "name": "Price", "k": 5, "n": 12,
           "ci_low": low, "ci_high": high}  # fmt: skip
    coding = {"n_conversations": 25, "n_conversations_coded": 12, "top_themes": [top]}
    text = report_data.write_caveats({"coding": coding})
    assert "Only 12 of the 25 conversations had been coded" in text
    # The interval example is the month's real top theme, 5 of the 12 coded.
    assert "With 12 conversations coded, even the top theme, Price, heard in 5" in text
    assert f"from {100 * low:.0f}% to {100 * high:.0f}%" in text
    finished = report_data.write_caveats(
        {"coding": {"n_conversations": 12, "top_themes": [top]}}
    )
    assert "had been coded" not in finished and "With 12 conversations" in finished
    assert "With" not in report_data.write_caveats({"coding": {"n_conversations": 3}})


def test_a_p_value_of_zero_reads_below_0001_not_missing():
    # Huge experiments give p-values that underflow to exactly 0.0.
    entry = {"name": "big", "variant": "b", "primary_metric": "conversion_rate",
             "lift": 0.5, "ci_low": 0.4, "ci_high": 0.6, "p_value": 0.0,
             "p_adjusted": 0.0, "n": 64000}  # fmt: skip
    table = report_data.tabulate_experiment_results(RESULTS.assign(p_adjusted=0.0))
    assert set(table["p (adjusted)"]) == {"<0.001"}
    by_month = report_data.format_experiments_table(
        pd.DataFrame([{"month": "2026-11", "p_value": 0.0} | entry])
    )
    assert by_month.loc[0, "p (adjusted)"] == "<0.001"
    recovery = {"recovery": {"cart_abandoners": {"p_value": 0.0}}}
    assert report_data.tabulate_recovery(recovery).loc[0, "p"] == "<0.001"


def test_first_month_of_a_study_asks_for_no_earlier_month():
    rates = pd.DataFrame({"month": ["2026-10"], "k": [20], "n": [70]})
    themes = pd.DataFrame(columns=["month", "code", "name"])
    first = report_data.describe_months(
        rates, themes, month="2026-10", study_months=["2026-10", "2026-11"]
    )
    assert "this study's first month" in first and "Render" not in first
    unbuilt = report_data.describe_months(
        rates.assign(month="2026-11"), themes, month="2026-11",
        study_months=["2026-10", "2026-11"],
    )  # fmt: skip
    assert "Render the earlier month first" in unbuilt


def test_theme_table_by_month_names_its_column_theme():
    rates = pd.DataFrame({"month": ["2026-10"], "name": ["Price"], "k": [3],
                          "n": [24], "ci_low": [0.04], "ci_high": [0.31]})  # fmt: skip
    shown = report_data.format_months_table(rates, group="name", label="Theme")
    assert list(shown.columns) == ["Theme", "Month", "Rate (k of n) [95% CI]"]
    assert shown.loc[0, "Rate (k of n) [95% CI]"] == "12% (3 of 24) [4%, 31%]"


def test_missing_quarto_is_said_once_when_earlier_months_are_built(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "monthly.ipynb").write_text("{}")
    asked = []

    def earlier(study, month, *, root):
        asked.append(month)
        return ["2026-10"] if month == "2026-11" else []

    class StopError(Exception):
        pass

    def stop(*args, **kwargs):
        raise StopError

    # Stop each build where its work would start; the nested build raises first.
    monkeypatch.setattr(report, "missing_earlier_months", earlier)
    monkeypatch.setattr(report, "output_folder", stop)
    with pytest.raises(StopError):
        report.build_report("shop", "2026-11", root=tmp_path)
    assert asked == ["2026-11", "2026-10"]
    assert capsys.readouterr().err.count("Quarto is not installed") == 1


def test_inputs_table_shows_row_counts_with_thousands_separators():
    inputs = pd.DataFrame(
        {"File": ["orders.csv", "study.yml"], "Rows": [20000, "–"],
         "SHA-256": ["a" * 64, "b" * 64]}
    )  # fmt: skip
    shown = report_data.format_inputs_table(inputs)
    assert shown["Rows"].tolist() == ["20,000", "–"]
    only_counts = report_data.format_inputs_table(inputs.iloc[:1].astype({"Rows": int}))
    assert only_counts["Rows"].tolist() == ["20,000"]
    assert shown.loc[0, "SHA-256"] == "a" * 32 + "\u200b" + "a" * 32


def interval(estimate: float, low: float, high: float) -> dict:
    return {"estimate": estimate, "ci_low": low, "ci_high": high}


def test_agreement_shows_each_statistic_with_its_interval_and_unit():
    agreement = {
        "unit": "excerpt", "n_units": 122, "n_coders": 2, "n_applied": 189,
        "percent_agreement": interval(0.9747, 0.9633, 0.9848),
        "kappa": interval(0.7907, 0.6815, 0.8774),
        "alpha": interval(0.7908, 0.6816, 0.8774), "status": "ok",
    }  # fmt: skip
    section = report_data.describe_coding(
        {"coding_source": "consensus", "n_conversations": 25, "agreement": agreement}
    )
    assert "Two coders coded **25** conversations" in section
    assert "Per excerpt (122 excerpts" in section
    assert "percent agreement 97% [96%, 98%]" in section
    assert "Cohen's kappa 0.79 [0.68, 0.88]" in section
    assert "Krippendorff's alpha 0.79 [0.68, 0.88]" in section
    # Alpha's interval lies between Krippendorff's 0.667 and 0.80 bars.
    assert "tentative conclusions" in section and "reliable" not in section

    # Three coders: no Cohen's kappa; an undefined alpha says so.
    three = agreement | {"n_coders": 3, "unit": "conversation", "n_units": 20,
                         "alpha": interval(None, None, None)}  # fmt: skip
    text = report_data.describe_agreement(three, n_conversations=20)
    assert "3 coders" in text and "Per conversation (20 conversations" in text
    assert "kappa" not in text and "Krippendorff's alpha undefined" in text
    strong = agreement | {"alpha": interval(0.9, 0.85, 0.95)}
    assert "reliable by Krippendorff's 0.80 bar" in report_data.describe_agreement(
        strong, n_conversations=25
    )


def test_connect_rate_sentence_says_whether_the_field_gap_is_more_than_noise():
    from scipy.stats import binomtest

    from helpers.calls import compare_with_field

    # 8 of 70 lies below 30-40% by more than noise; 14 of 70 only borderline.
    clear = compare_with_field(8, 70)
    assert clear["verdict"] == "below" and clear["is_more_than_noise"]
    p_clear = binomtest(8, 70, 0.30).pvalue
    assert report_data.field_sentence(clear, tests=True).endswith(
        f"by more than noise (exact binomial test against the nearer end, "
        f"p {report_data.format_p(p_clear)})"
    )
    borderline = {**clear, "is_more_than_noise": False, "p_value_nearer": 0.07}
    sentence = report_data.field_sentence(borderline, tests=True)
    assert "does not reject, p 0.07" in sentence and "not clearly by more" in sentence

    # 27 of 70: Wilson [28%, 50%] holds the whole 30-40% range and more on both
    # sides, so overlapping it does not put the rate inside it.
    within = compare_with_field(27, 70)
    low, high = wilson(27, 70)
    assert low < 0.30 and high > 0.40
    summary = report_data.describe_reach({"connect_rate_customer": within}, {})[1]
    assert summary.endswith(
        "the interval overlaps the 30%-40% the field reports but reaches below and "
        "above it, so these data fit a rate in the field's range but also one below "
        "or above it."
    )
    # The calls section backs it with the tests; the summary does not repeat it.
    p_low, p_high = (binomtest(27, 70, end).pvalue for end in (0.30, 0.40))
    tests = (
        f"(exact binomial tests of the rate against each end: p {p_low:.2g} against "
        f"30%, p {p_high:.2g} against 40%)"
    )
    assert tests in report_data.describe_calls({"connect_rate_customer": within})
    assert tests not in summary
    # 350 of 1,000: Wilson [32%, 38%] lies inside the range.
    low, high = wilson(350, 1000)
    assert low > 0.30 and high < 0.40
    assert report_data.field_sentence(compare_with_field(350, 1000)) == (
        "; the whole interval lies inside the 30%-40% the field reports, so the rate "
        "is in line with the field"
    )
    # 14 of 70: Wilson [12%, 31%] reaches below the range only.
    low, high = wilson(14, 70)
    assert low < 0.30 < high < 0.40
    assert report_data.field_sentence(compare_with_field(14, 70)).endswith(
        "reaches below it, so these data fit a rate in the field's range but also "
        "one below it"
    )


CODED = {
    "n_conversations": 25,
    "top_phrases": [
        {"phrase": "camping trip", "n_words": 2, "n_occurrences": 9,
         "n_conversations": 8},
        {"phrase": "order it tonight", "n_words": 3, "n_occurrences": 7,
         "n_conversations": 7},
    ],
    "top_themes": [
        {"code": "OBJ-SHIP-COST", "name": "Shipping cost", "k": 8, "n": 25,
         "rate": 0.32, "ci_low": 0.172, "ci_high": 0.516,
         "quote_id": "q-2026-11-01-006", "quote": "Mail me at a@b.example."},
        {"code": "OBJ-TRUST", "name": "Trust", "k": 5, "n": 25, "rate": 0.2,
         "ci_low": 0.089, "ci_high": 0.391, "quote_id": None, "quote": None},
    ],
}  # fmt: skip


def test_own_words_list_phrases_with_counts_and_quotes_with_their_ids():
    phrases = report_data.tabulate_phrases(CODED)
    assert phrases.to_dict("records") == [
        {"Phrase": "\u201ccamping trip\u201d", "Conversations": "8 of 25",
         "Times said": "9"},
        {"Phrase": "\u201corder it tonight\u201d", "Conversations": "7 of 25",
         "Times said": "7"},
    ]  # fmt: skip
    quotes = report_data.list_quotes(CODED)
    # A theme without a consented quote is left out; e-mails never reach a page.
    assert quotes.count("\n- ") == 0 and "(`q-2026-11-01-006`)" in quotes
    assert "a@b.example" not in quotes and "*Shipping cost*" in quotes
    assert "No phrase came up twice" in report_data.describe_own_words(
        {"n_conversations": 3, "top_phrases": [], "top_themes": []}
    )
    assert "no summary" in report_data.describe_own_words({})


def test_customers_words_get_typographic_apostrophes_and_keep_their_case():
    said = CODED["top_themes"][0] | {"quote": "I wasn't sure, 'honestly'."}
    coded = CODED | {
        "top_phrases": [{"phrase": "friend's photo on instagram", "n_words": 4,
                         "n_occurrences": 7, "n_conversations": 7}],
        "top_themes": [said],
    }  # fmt: skip
    phrase = report_data.tabulate_phrases(coded).loc[0, "Phrase"]
    assert phrase == "\u201cfriend\u2019s photo on instagram\u201d"
    # Only in-word apostrophes change: the quote marks around 'honestly' stay.
    quote = "\u201cI wasn\u2019t sure, 'honestly'.\u201d"
    assert quote in report_data.list_quotes(coded)
    assert quote in report_data.describe_top_themes(coded)[0]


def test_theme_figure_draws_each_top_theme_with_its_wilson_interval():
    figure = report_data.plot_theme_shares(CODED)
    axes = figure.axes[0]
    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert labels == ["Trust", "Shipping cost"]  # most frequent on top
    [line] = [line for line in axes.lines if line.get_marker() == "o"]
    assert list(line.get_xdata()) == [0.2, 0.32]
    caps = sorted(x for c in axes.lines if c.get_marker() == "|" for x in c.get_xdata())
    assert caps == pytest.approx(sorted([0.089, 0.391, 0.172, 0.516]))
    assert axes.get_xlabel() == "share of the 25 conversations coded"
    assert {t.get_text() for t in axes.texts} == {"8 of 25", "5 of 25"}
    assert report_data.plot_theme_shares({}) is None


def test_each_stage_line_names_its_month_and_earlier_pdfs_are_printed(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "monthly.ipynb").write_text("{}")
    original = report.build_report
    earlier_pdf = tmp_path / "monthly-2026-10.pdf"

    def build(study, month, **options):
        if month == "2026-10":
            return report.ReportOutputs(pdf=earlier_pdf, site=tmp_path / "site")
        return original(study, month, **options)

    class StopError(Exception):
        pass

    def stop(*args, **kwargs):
        raise StopError

    # The later month builds the earlier one first, then stops where work starts.
    monkeypatch.setattr(report, "build_report", build)
    monkeypatch.setattr(report, "missing_earlier_months", lambda *a, **k: ["2026-10"])
    monkeypatch.setattr(report, "output_folder", stop)
    with pytest.raises(StopError):
        report.build_report("shop", "2026-11", root=tmp_path)
    lines = capsys.readouterr().err.splitlines()
    assert f"2026-10 PDF: {earlier_pdf}" in lines
    report.announce(2, 7, "01_segment_export", month="2026-10")
    assert capsys.readouterr().err == "[2026-10 2/7] 01_segment_export\n"


def make_study(tmp_path, name: str = "shop"):
    """An empty study folder and its processed folder for 2026-11."""
    (tmp_path / "data" / "raw" / name).mkdir(parents=True)
    processed = tmp_path / "data" / "processed" / name / "2026-11"
    processed.mkdir(parents=True)
    return load_study(name, root=tmp_path), processed


def test_segments_read_as_labels_from_one_mapping_everywhere():
    segments = {
        "segment_sizes": {"cart_abandoners": 136, "first_time_no_return": 1434},
        "month_segments": ["cart_abandoners", "first_time_no_return"],
    }
    table = report_data.tabulate_segments(segments)
    assert table.to_dict("records") == [
        {"Segment": "First-time, no return", "Customers": "1,434"},
        {"Segment": "Cart abandoners", "Customers": "136"},
    ]
    recovery = {"recovery": {"cart_abandoners": {"called": rate_entry(3, 9)}}}
    assert report_data.tabulate_recovery(recovery).loc[0, "Segment"] == (
        "Cart abandoners"
    )
    text = report_data.describe_segments({"n_customers": 1495, "n_orders": 2787})
    assert "**1,495** customers and **2,787** orders" in text


def test_segments_section_says_which_segments_were_called_and_the_split(tmp_path):
    study, processed = make_study(tmp_path)
    arms = ["called"] * 3 + ["holdout"] * 2 + ["called"] * 4
    segments = ["cart_abandoners"] * 5 + ["first_time_no_return"] * 4
    pd.DataFrame(
        {"customer_key": [f"c{i}" for i in range(9)], "segment": segments,
         "arm": arms, "stratum": "s"}
    ).to_parquet(processed / "assignment_customer.parquet")  # fmt: skip
    summary = {
        "segment_sizes": {"cart_abandoners": 136, "first_time_no_return": 430,
                          "churned": 201, "recent_buyers": 206},
        "month_segments": ["cart_abandoners", "first_time_no_return"],
        "n_call_list": 7, "n_holdout": 2,
    }  # fmt: skip

    # Counted by hand from the nine rows above.
    call_list = report_data.tally_call_list(study, "2026-11")
    assert call_list.to_dict("records") == [
        {"segment": "first_time_no_return", "n_called": 4, "n_holdout": 0},
        {"segment": "cart_abandoners", "n_called": 3, "n_holdout": 2},
    ]
    text = report_data.describe_segments(summary, call_list=call_list)
    assert "Of the 4 segments Heard builds from them, this month's calls drew on 2" in (
        text
    )
    assert (
        "a call list of **7** customers (First-time, no return 4; Cart abandoners 3)"
    ) in text
    table = report_data.tabulate_segments(summary, call_list=call_list)
    assert table.to_dict("records") == [
        {"Segment": "First-time, no return", "Customers": "430", "Called": "4",
         "Not called": "0"},
        {"Segment": "Cart abandoners", "Customers": "136", "Called": "3",
         "Not called": "2"},
    ]  # fmt: skip

    # The notebook's caption says the table lists the called segments only.
    notebook = json.loads((REPO / "reports" / "monthly.ipynb").read_text())
    cell = next(
        "".join(c["source"]) for c in notebook["cells"]
        if "label: tbl-segments" in "".join(c["source"])
    )  # fmt: skip
    assert "segments this month's calls drew on, not every segment" in cell
    assert report_data.tally_call_list(
        make_study(tmp_path, "empty")[0], "2026-11"
    ).empty


def test_customers_who_answered_without_a_conversation_are_explained(tmp_path):
    study, processed = make_study(tmp_path)
    at = pd.Timestamp("2026-11-02 10:00", tz="UTC")
    rows = [  # customer, minutes later, outcome, reached, conversation
        ("a", 0, "no_answer", False, False), ("a", 5, "connected", True, True),
        ("b", 0, "callback_requested", True, False), ("b", 9, "declined", True, False),
        ("c", 0, "do_not_call", True, False), ("d", 0, "voicemail", False, False),
    ]  # fmt: skip
    pd.DataFrame(
        [{"customer_key": c, "attempted_at": at + pd.Timedelta(minutes=m),
          "outcome": o, "is_reached": r, "is_conversation": t}
         for c, m, o, r, t in rows]
    ).to_parquet(processed / "attempts_attempt.parquet")  # fmt: skip

    unheard = report_data.tally_reached_without_conversation(study, "2026-11")
    # a, b and c answered; b (last: declined) and c never had a conversation.
    assert unheard == {"n_reached": 3, "n_without": 2,
                       "outcomes": {"declined": 1, "do_not_call": 1}}  # fmt: skip
    calls = {"n_conversations": 1, "n_dialled": 4,
             "connect_rate_customer": rate_entry(3, 4)}  # fmt: skip
    [held, _] = report_data.describe_reach(calls, {}, unheard=unheard)
    assert held.endswith(
        "1 with 4 customers dialled; 3 answered, 2 of them without a conversation "
        "(1 declined, 1 asked not to be called)."
    )
    assert report_data.describe_unheard({"n_reached": 3, "n_without": 0}) == ""


def test_open_coder_disagreements_show_how_far_theme_shares_could_rise(
    tmp_path, monkeypatch
):
    study, processed = make_study(tmp_path)
    queue = pd.DataFrame(
        {"conversation_id": ["c1", "c2", "c2", "c3", "c4"],
         "excerpt_id": ["c1-1", "c2-1", "c2-2", "c3-1", "c4-1"],
         "code": ["OBJ-PRICE", "OBJ-PRICE", "OBJ-PRICE", "OBJ-FIT", "OBJ-PRICE"],
         "n_coders": [2, 2, 2, 2, 2], "n_applied": [1, 1, 1, 1, 1],
         "decision": [None, None, None, None, "drop"]}
    )  # fmt: skip
    queue.to_parquet(processed / "disagreements_excerpt.parquet")
    pd.DataFrame(
        {"conversation_id": ["c1", "c9"], "code": ["OBJ-PRICE"] * 2}
    ).to_parquet(processed / "consensus_excerpt.parquet")
    coding = {"top_themes": [{"code": "OBJ-PRICE", "name": "Price", "k": 2, "n": 10}]}

    open_codes = report_data.tally_open_disagreements(study, "2026-11", coding)
    # 4 open (c4's was dropped); Price gains c2 only (c1 already counts it).
    assert open_codes["n_open"] == 4 and open_codes["n_total"] == 5
    assert open_codes["themes"] == [{"code": "OBJ-PRICE", "name": "Price", "k": 2,
                                     "n": 10, "n_open": 3, "k_max": 3}]  # fmt: skip
    caveats = report_data.write_caveats({"coding": coding}, open_codes=open_codes)
    assert (
        "4 of 5 excerpt-code disagreements between the coders are not reconciled"
        in (caveats)
    )
    assert "Price from 2 up to 3 of 10" in caveats
    # The caveat names the file step 03 reads the decisions from, not its queue.
    from helpers import coding as coding_module

    [named] = re.findall(r"save it as `([^`]+)`, which step 03 reads", caveats)
    (study.raw() / named).parent.mkdir(parents=True)
    (study.raw() / named).touch()
    monkeypatch.setattr(coding_module, "read_resolutions", lambda path, _: path)
    assert coding_module.load_resolutions(study, "2026-11") == study.raw() / named
    short = report_data.describe_open_disagreements(open_codes, short=True)
    assert short.startswith("**Coding not reconciled yet:** 4 of 5")
    assert "Price 2 of 10, up to 3" in short


RESULTS = pd.DataFrame(
    [
        ("exp", "b", "conversion_rate", "primary", 0.46, 0.27, 0.69,
         0.0138, 0.0081, 0.0207, 1e-6, True),
        ("exp", "b", "aov", "secondary", 0.04, -0.04, 0.14, 2.1, -2.2, 7.4, 0.68, True),
        ("exp", "b", "unsubscribe_rate", "guardrail", -0.06, -0.39, 0.47,
         -0.0002, -0.0013, 0.0016, 0.8, False),
    ],
    columns=["experiment", "variant", "metric", "role", "rel_lift", "rel_ci_low",
             "rel_ci_high", "abs_lift", "abs_ci_low", "abs_ci_high", "p_adjusted",
             "higher_is_better"],
).assign(is_testable=True, flags="", alpha=0.05)  # fmt: skip


def test_every_tested_metric_is_shown_and_an_unclear_guardrail_reaches_the_summary():
    table = report_data.tabulate_experiment_results(RESULTS)
    assert table["Metric"].tolist() == [
        "Conversion rate, primary",
        "Average order value (AOV), secondary",
        "Unsubscribe rate, guardrail",
    ]
    lifts = [lift.replace("\u00a0", " ") for lift in table["Relative lift [95% CI]"]]
    assert lifts == ["+46% [+27%, +69%]", "+4% [-4%, +14%]", "-6% [-39%, +47%]"]
    assert "Arm" not in table  # a single arm: the arm list above names it
    two = report_data.tabulate_experiment_results(
        pd.concat([RESULTS, RESULTS.assign(experiment="other")])
    )
    assert two["Arm"].tolist() == ["exp: b"] * 3 + ["other: b"] * 3
    assert table["p (adjusted)"].tolist() == ["<0.001", "0.68", "0.8"]
    assert table["Reading"].tolist() == [
        "better", "no clear difference", "no clear difference"
    ]  # fmt: skip
    [line] = report_data.describe_guardrails(RESULTS)
    assert "unsubscribe rate): relative change -6% [-39%, +47%]" in line
    assert "a rise of up to 47% is not ruled out" in line

    # A guardrail that clearly rose is worse; one that clearly fell needs no line.
    worse = RESULTS.iloc[[2]].assign(
        rel_lift=0.5, rel_ci_low=0.2, rel_ci_high=0.9, abs_lift=0.0015,
        abs_ci_low=0.0006, abs_ci_high=0.0027, p_adjusted=0.001,
    )  # fmt: skip
    assert "the variant made it worse" in report_data.describe_guardrails(worse)[0]
    better = worse.assign(
        rel_lift=-0.5, rel_ci_low=-0.7, rel_ci_high=-0.2, abs_lift=-0.0015,
        abs_ci_low=-0.0021, abs_ci_high=-0.0006,
    )  # fmt: skip
    assert report_data.describe_guardrails(better) == []
    # A sample-ratio mismatch makes any reading, good or bad, unreadable.
    broken = better.assign(flags="srm;below_min_sample")
    assert report_data.tabulate_experiment_results(broken).loc[0, "Reading"] == (
        "not readable: sample-ratio mismatch"
    )
    assert "sample-ratio mismatch" in report_data.describe_guardrails(broken)[0]


def test_arms_show_their_copy_and_the_quotes_they_were_written_from():
    arms = pd.DataFrame(
        [
            {"experiment": "exp", "variant": "control", "name": "Current",
             "copy": "Our winter edit", "n": 10462, "quotes": []},
            {"experiment": "exp", "variant": "ship", "name": "Shipping",
             "copy": "Free shipping", "n": 10538,
             "quotes": [("q-2026-11-01-006", "It was the shipping cost."),
                        ("q-2026-11-02-004", None)]},
        ]
    )  # fmt: skip
    text = report_data.list_experiment_arms(arms)
    assert text.startswith("**exp** (21,000 units in all), what each arm said:")
    assert (
        "- *control* (Current), 10,462 units: \u201cOur winter edit\u201d, not "
        "written from a customer quote."
    ) in text
    assert (
        "- *ship* (Shipping), 10,538 units: \u201cFree shipping\u201d; written from "
        "`q-2026-11-01-006` \u201cIt was the shipping cost.\u201d; "
        "`q-2026-11-02-004` (text not shown: no consent to quote)."
    ) in text
    quoted = arms.iloc[[1]].assign(quotes=[[("q-1", "Hi.")]])
    text = report_data.list_experiment_arms(quoted)
    assert text.endswith("written from `q-1` \u201cHi.\u201d")  # no second stop


def theme_rows(counts: dict, n: int) -> list[dict]:
    rows = [{"segment": "all", "code": "OBJ", "name": "Objections", "parent": None,
             "n_with_theme": n, "n_conversations": n, "rate": 1.0, "ci_low": 0.9,
             "ci_high": 1.0},
            {"segment": "all", "code": "STAGE-X", "name": "Stage", "parent": "STAGE",
             "n_with_theme": n, "n_conversations": n, "rate": 1.0, "ci_low": 0.9,
             "ci_high": 1.0}]  # fmt: skip
    for code, k in counts.items():
        low, high = wilson(k, n)
        rows.append({"segment": "all", "code": code, "name": code.title(),
                     "parent": "OBJ", "n_with_theme": k, "n_conversations": n,
                     "rate": k / n, "ci_low": low, "ci_high": high})  # fmt: skip
    return rows


def test_theme_comparison_keeps_last_months_top_and_the_largest_movers(tmp_path):
    raw = tmp_path / "data" / "raw" / "shop"
    raw.mkdir(parents=True)
    processed = tmp_path / "data" / "processed" / "shop"
    october = {"OBJ-A": 9, "OBJ-B": 8, "OBJ-C": 7, "OBJ-D": 4, "OBJ-E": 2, "OBJ-F": 2}
    # OBJ-D is not in November's table at all: heard in 0 of 25.
    november = {"OBJ-A": 3, "OBJ-G": 8, "OBJ-H": 7, "OBJ-I": 6, "OBJ-E": 5, "OBJ-F": 2}
    write_month(processed, "2026-10", connect(20, 70), theme_rows(october, 22))
    write_month(processed, "2026-11", connect(27, 70), theme_rows(november, 25))
    study = load_study("shop", root=tmp_path)

    codes = report_data.choose_theme_codes(study, "2026-11")
    # Both months' top 3, then the two largest other changes (D -18 pp, E +11 pp);
    # the parent OBJ and the stage code are never themes.
    assert codes == ["OBJ-A", "OBJ-B", "OBJ-C", "OBJ-G", "OBJ-H", "OBJ-I", "OBJ-D",
                     "OBJ-E"]  # fmt: skip
    themes = report_data.compare_themes(study, "2026-11", codes)
    changes = report_data.compare_theme_changes(themes)
    fallen = changes.set_index("code").loc["OBJ-D"]
    assert (fallen["k_before"], fallen["n_before"]) == (4, 22)
    assert (fallen["k_after"], fallen["n_after"]) == (0, 25)
    assert fallen["difference"] == pytest.approx(-4 / 22)
    assert changes["difference"].abs().is_monotonic_decreasing
    shown = report_data.format_theme_changes(changes, themes).replace(
        "\u00a0", " ", regex=True
    )
    row = shown.set_index("Theme").loc["Obj-D"]
    low, high = wilson(0, 25)
    assert row["November 2026"] == f"0% (0 of 25) [{100 * low:.0f}%, {100 * high:.0f}%]"
    assert row["October 2026"].startswith("18% (4 of 22)")
    assert row["Change [95% CI]"].startswith("-18 pp [")
    figure = report_data.plot_theme_changes(changes)
    assert len(figure.axes[0].get_yticklabels()) == len(changes)


def test_difference_in_points_never_reads_minus_zero():
    difference = {"estimate": 0.21, "ci_low": -0.004, "ci_high": 0.37}
    assert report_data.format_difference(difference) == "+21 pp [0, 37]"
    assert report_data.format_difference({"estimate": -0.004}) == "–"


def test_relative_lift_never_reads_minus_zero():
    lift = {"lift": -0.004, "ci_low": -0.29, "ci_high": 0.12}
    assert report_data.format_lift(lift) == "+0% [-29%, +12%]"
    assert report_data.format_lift({**lift, "ci_high": None}) == "+0% [-29%, –]"


def test_the_report_reads_a_result_as_step_04_does():
    # Step 04 calls a result significant only when the adjusted p-value is below
    # alpha and both intervals exclude no change; the report must not say
    # "better" where step 04 says "borderline".
    clear = RESULTS.iloc[0].to_dict()
    assert report_data.read_result(clear) == "better"
    relative_only = {**clear, "abs_ci_low": -0.0004}
    assert report_data.read_result(relative_only) == "borderline"
    p_only = {**clear, "rel_ci_low": -0.01, "abs_ci_low": -0.0004}
    assert report_data.read_result(p_only) == "borderline"
    interval_only = {**clear, "p_adjusted": 0.2}
    assert report_data.read_result(interval_only) == "no clear difference"
    # A control of zero has no relative lift; the absolute interval decides.
    no_relative = {**clear, "rel_lift": float("nan"), "rel_ci_low": float("nan")}
    assert report_data.read_result(no_relative) == "better"


def test_results_read_from_step_04s_file_are_testable(tmp_path):
    # The report must read the file step 04 writes, not only hand-built rows:
    # a column the loader drops turned every reading into "not testable".
    import shutil

    from statsmodels.stats.proportion import proportions_ztest

    from helpers.experiments import run_experiments_step

    study, _ = make_study(tmp_path)
    shutil.copytree(
        REPO / "tests" / "fixtures" / "experiments" / "arms-basic",
        study.raw("experiments", "arms-basic"),
    )
    study.raw("study.yml").write_text(
        "months:\n  '2026-11':\n    experiments: [arms-basic]\n", encoding="utf-8"
    )
    study = load_study("shop", root=tmp_path)
    run_experiments_step(study, "2026-11")

    results = report_data.load_experiment_results(study, "2026-11")
    table = report_data.tabulate_experiment_results(results).set_index("Metric")
    # Independently: conversions 760 of 20,100 against 600 of 20,000 (pooled z),
    # unsubscribes 38 against 40; Holm multiplies the smallest of 4 p-values by 4.
    _, p_conversion = proportions_ztest([760, 600], [20100, 20000])
    _, p_unsubscribe = proportions_ztest([38, 40], [20100, 20000])
    assert 4 * p_conversion < 0.05 < p_unsubscribe
    assert table.loc["Conversion rate, secondary", "Reading"] == "better"
    assert table.loc["Unsubscribe rate, guardrail", "Reading"] == (
        "no clear difference"
    )
    assert "not testable" not in table["Reading"].tolist()

    # Both arms' values beside the lift, from the fixture's raw counts.
    arms = pd.read_csv(
        REPO / "tests" / "fixtures" / "experiments" / "arms-basic" / "results.csv",
        index_col="variant",
    )
    control, arm = arms.loc["control"], arms.loc["free-returns"]
    assert table.loc["Conversion rate, secondary", "Control vs arm"] == (
        f"{100 * control.conversions / control.n:.2f}% (600 of 20,000) vs "
        f"{100 * arm.conversions / arm.n:.2f}% (760 of 20,100)"
    )
    assert table.loc["Average order value (AOV), secondary", "Control vs arm"] == (
        f"{control.revenue / control.orders:.2f} vs {arm.revenue / arm.orders:.2f}"
    )
    # The harm left open is the top of the log risk-ratio interval.
    ratio = (38 / 20100) / (40 / 20000)
    spread = 1.959964 * math.sqrt(1 / 38 - 1 / 20100 + 1 / 40 - 1 / 20000)
    rise = math.exp(math.log(ratio) + spread) - 1
    [line] = report_data.describe_guardrails(results)
    assert "not testable" not in line
    assert f"a rise of up to {100 * rise:.0f}% is not ruled out" in line


def test_input_rows_are_told_apart_from_the_customers_and_orders_counted():
    segments = {"n_customers": 1495, "n_orders": 2787, "n_rejected_rows": 3}
    text = report_data.describe_input_rows(segments, month="2026-11")
    assert "the orders export has a row per line item" in text
    assert "counts **2,787** distinct orders, neither cancelled nor" in text
    assert "counts **1,495** distinct customers" in text
    assert text.endswith(
        "The checks set aside 3 rows, listed with the reason in "
        "`rejected-rows_row_2026-11.csv`."
    )
    one = report_data.describe_input_rows(segments | {"n_rejected_rows": 1}, month="m")
    assert "set aside 1 row," in one
    assert "set aside" not in report_data.describe_input_rows(
        segments | {"n_rejected_rows": 0}, month="m"
    )
    assert report_data.describe_input_rows({}, month="m") == ""

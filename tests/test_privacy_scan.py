"""Privacy guards: no e-mail or phone outside raw data and the call list; safe CSV/XLSX.

The scan is tested on hand-made files first (it must find what is there and not
flag Heard's own ids), then run over the whole demo study after steps 01-04 (slow),
where it is also checked that running the steps leaves every raw file as it was.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

from helpers.checks import scan_outputs
from helpers.errors import HeardInputError
from helpers.files import save_csv, save_json, save_parquet, save_text, save_xlsx
from helpers.language import build_quote_bank
from helpers.privacy import scan_for_pii

from conftest import REPO

MONTHS = ("2026-10", "2026-11")


# --------------------------------------------------------------------------------------
# The scan itself
# --------------------------------------------------------------------------------------


def test_scan_finds_contact_details_in_every_kind_of_output(tmp_path):
    table = pd.DataFrame(
        {"customer_key": ["c_1a2b3c4d5e6f"], "note": ["write to ann.lee@example.com"]}
    )
    paths = [
        save_parquet(table, tmp_path / "a.parquet"),
        save_csv(pd.DataFrame({"x": ["call +44 7700 900123"]}), tmp_path / "b.csv"),
        save_json({"top": {"quote": "ring me on 212-555-0147"}}, tmp_path / "c.json"),
        save_text("<p>Email <b>bo@example.org</b></p>", tmp_path / "d.html"),
    ]
    found = {(Path(f["file"]).name, f["found"]) for f in scan_for_pii(paths)}
    assert found == {
        ("a.parquet", "ann.lee@example.com"),
        ("b.csv", "+44 7700 900123"),
        ("c.json", "212-555-0147"),
        ("d.html", "bo@example.org"),
    }


def test_scan_leaves_heard_ids_times_and_numbers_alone(tmp_path):
    table = pd.DataFrame(
        {
            "checkout_id": ["31870002106741"],
            "quote_id": ["q-2026-11-07-003"],
            "excerpt": ["see q-2026-11-07-003 and 2026-11-07-003"],
            "attempted": ["2026-11-05 10:00:00+00:00"],
            "total": [1234567890.0],
        }
    )
    paths = [
        save_parquet(table, tmp_path / "ids.parquet"),
        save_csv(pd.DataFrame({"row": range(900, 1200)}), tmp_path / "rows.csv"),
    ]
    assert scan_for_pii(paths) == []


def test_scan_reads_every_sheet_headers_and_e_mails_in_id_columns(tmp_path):
    with pd.ExcelWriter(tmp_path / "book.xlsx") as workbook:
        pd.DataFrame({"note": ["fine"]}).to_excel(workbook, sheet_name="a")
        pd.DataFrame({"note": ["ann@example.com"]}).to_excel(workbook, sheet_name="b")
    by_header = pd.DataFrame({"bo@example.org": [1], "order_id": ["31870002106741"]})
    by_id = pd.DataFrame({"conversation_id": ["cy@example.net", "2026-11-01"]})
    (tmp_path / "empty.csv").write_bytes(b"")
    paths = [
        tmp_path / "book.xlsx",
        save_parquet(by_header, tmp_path / "header.parquet"),
        save_parquet(by_id, tmp_path / "ids.parquet"),
        tmp_path / "empty.csv",
    ]
    findings = scan_for_pii(paths)
    found = {(Path(f["file"]).name, f["where"], f["found"]) for f in findings}
    assert found == {
        ("book.xlsx", "column note", "ann@example.com"),
        ("header.parquet", "header", "bo@example.org"),
        ("ids.parquet", "column conversation_id", "cy@example.net"),
    }


def test_scan_reads_the_text_of_a_pdf(tmp_path):
    typst = pytest.importorskip("typst")
    source = tmp_path / "page.typ"
    source.write_text("Quote: call me on 07700 900123 after six.\n")
    typst.compile(str(source), output=str(tmp_path / "page.pdf"))
    [finding] = scan_for_pii([tmp_path / "page.pdf"])
    assert finding["found"] == "07700 900123"


def test_quotes_are_redacted_of_names_phones_and_emails():
    excerpts = pd.DataFrame(
        {
            "conversation_id": ["2026-11-01"],
            "excerpt_id": ["2026-11-01-002"],
            "position": [2],
            "speaker": ["Customer"],
            "is_customer": [True],
            "text": [
                "Priya was kind; text me on 07700 900123 or mail "
                "dana.o@example.com, I'm Dana."
            ],
        }
    )
    conversations = pd.DataFrame(
        {
            "conversation_id": ["2026-11-01"],
            "customer_key": ["c_1"],
            "segment": ["cart_abandoners"],
            "consent_to_quote": [True],
            "interviewer": ["Priya"],
            "customer_name": ["Dana"],
        }
    )
    coded = pd.DataFrame({"excerpt_id": ["2026-11-01-002"], "code": ["OBJ-PRICE"]})
    codebook = pd.DataFrame({"code": ["OBJ", "OBJ-PRICE"], "parent": [None, "OBJ"]})
    bank = build_quote_bank(excerpts, conversations, coded, codebook)
    text = bank.loc[0, "text"]
    assert "07700" not in text and "@" not in text
    assert not re.search(r"\b(Priya|Dana)\b", text)
    assert text.count("[name]") == 2 and "[phone]" in text and "[email]" in text


# --------------------------------------------------------------------------------------
# Safe CSV and XLSX: every writer goes through helpers.files
# --------------------------------------------------------------------------------------

RAW_WRITES = re.compile(r"\.to_csv\(|\.to_excel\(|\bWorkbook\(|csv\.writer\(")


def test_every_csv_and_xlsx_write_goes_through_helpers_files():
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "src" / "helpers").rglob("*.py"))
        if path.name != "files.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if RAW_WRITES.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_written_csv_and_xlsx_neutralise_formulas(tmp_path):
    from openpyxl import load_workbook

    frame = pd.DataFrame({"note": ['=HYPERLINK("http://x")', "+1 2", "@SUM(A1)", "ok"]})
    save_csv(frame, tmp_path / "n.csv")
    save_xlsx(frame, tmp_path / "n.xlsx")
    written = pd.read_csv(tmp_path / "n.csv")["note"].tolist()
    cells = [row[0] for row in load_workbook(tmp_path / "n.xlsx").active][1:]
    expected = ['\'=HYPERLINK("http://x")', "'+1 2", "'@SUM(A1)", "ok"]
    assert written == expected
    assert [(cell.value, cell.data_type, cell.quotePrefix) for cell in cells] == [
        ('=HYPERLINK("http://x")', "s", True), ("+1 2", "s", True),
        ("@SUM(A1)", "s", True), ("ok", "s", False),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------
# The demo study end to end (slow)
# --------------------------------------------------------------------------------------


def hash_tree(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(
            path.read_bytes()
        ).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Write the demo study into a fresh project, hash raw, run steps 01-04."""
    from helpers.calls import run_calls_step
    from helpers.coding_step import run_coding_step
    from helpers.demo import write_demo_study
    from helpers.experiments import run_experiments_step
    from helpers.segments import run_segment_step
    from helpers.study import load_study

    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEARD_ROOT", str(root))
        patch.setenv("HEARD_KEY_FILE", str(root / ".heard" / "pseudonym.key"))
        raw = write_demo_study(root / "data" / "raw" / "demo")
        before = hash_tree(raw)
        study = load_study("demo", root=root)
        failures = []
        for month in MONTHS:
            for step in (run_segment_step, run_calls_step, run_coding_step,
                         run_experiments_step):  # fmt: skip
                # A step that stops on its input must not hide what the others wrote.
                try:
                    step(study, month)
                except HeardInputError as error:
                    failures.append(f"{step.__name__} {month}: {error}")
        yield {"root": root, "study": study, "raw_before": before, "failed": failures}


@pytest.mark.slow
def test_running_steps_01_to_04_leaves_every_raw_file_unchanged(demo_run):
    after = hash_tree(demo_run["study"].raw_dir)
    assert after == demo_run["raw_before"]
    assert len(after) > 50


@pytest.mark.slow
def test_processed_outputs_of_the_demo_hold_no_email_or_phone(demo_run):
    study = demo_run["study"]
    scanned = [
        p for p in study.processed_root.rglob("*")
        if p.is_file() and not p.name.startswith("call-list_")
    ]  # fmt: skip
    assert len(scanned) > 20, demo_run["failed"]
    assert not any(f.startswith("run_segment_step") for f in demo_run["failed"])
    assert scan_outputs(study, root=demo_run["root"]) == []
    # The scan does find the call list's phones: it is not blind.
    call_list = study.processed(MONTHS[1], f"call-list_customer_{MONTHS[1]}.csv")
    assert any(f["found"].startswith("+") for f in scan_for_pii([call_list]))


@pytest.mark.slow
def test_rendered_report_holds_no_email_or_phone():
    rendered = [
        p for p in (REPO / "reports" / "_output").rglob("*")
        if p.suffix in (".html", ".typ", ".md", ".pdf")
    ]  # fmt: skip
    if not rendered:
        pytest.skip("no rendered report: run `heard report` first")
    assert scan_for_pii(rendered) == []

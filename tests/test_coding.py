"""Tests for helpers.coding: conversations, excerpts, coding sheets, agreement."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from helpers.codebook import load_codebook
from helpers.coding import (
    CODING_COLUMNS,
    NO_CODE,
    SUGGESTED_CODER,
    agreement_table,
    alpha_from_coincidences,
    build_consensus,
    build_presence,
    cohen_kappa,
    disagreement_queue,
    draw_bootstrap_weights,
    kappa_from_tables,
    nominal_alpha,
    percent_agreement,
    read_coding_sheet,
    read_coding_sheets,
    read_conversations,
    read_resolutions,
    split_excerpts,
    suggest_codes,
    unit_agreement_shares,
    unit_coincidences,
    unit_cross_tables,
    write_coding_sheet,
    write_reconciliation_sheet,
)
from helpers.errors import HeardInputError

FIXTURES = Path(__file__).parent / "fixtures" / "coding"
CONVERSATIONS = FIXTURES / "conversations"


# ---------------------------------------------------------------- conversations


@pytest.fixture(scope="module")
def conversations() -> pd.DataFrame:
    return read_conversations(CONVERSATIONS)


def test_every_format_gives_one_conversation(conversations):
    by_file = conversations.set_index("source_file")["conversation_id"].to_dict()
    assert by_file == {
        "2026-11-01.md": "2026-11-01",
        "2026-11-02.vtt": "2026-11-02",
        "2026-11-03.vtt": "2026-11-03",
        "2026-11-04.srt": "2026-11-04",
        "2026-11-05.txt": "2026-11-05",
        "batch.csv": "2026-11-06",
    }


def test_front_matter_values_are_typed(conversations):
    first = conversations.set_index("conversation_id").loc["2026-11-01"]
    assert first["customer_key"] == "c_aaaaaaaaaaa1"
    assert first["date"] == pd.Timestamp("2026-11-03")
    assert first["segment"] == "cart_abandoners"
    assert bool(first["consent_to_quote"]) is True
    # "consent_to_quote: no" in the VTT's sidecar file
    vtt = conversations.set_index("conversation_id").loc["2026-11-02"]
    assert bool(vtt["consent_to_quote"]) is False


def test_a_support_chat_where_the_customer_speaks_first_keeps_its_roles(caplog):
    # As in support chats (ABCD, Twitter threads): "Agent" is the store's side.
    chat = pd.DataFrame(
        {
            "conversation_id": ["t1"],
            "text": ["Customer: my parcel never came\nAgent: sorry, which order?"],
        }
    )
    excerpts = split_excerpts(chat)
    assert excerpts["speaker"].tolist() == ["customer", "interviewer"]
    assert "took the first speaker" not in caplog.text


def test_speaker_names_become_roles(conversations):
    text = "\n".join(conversations["text"])
    for name in ("Dana", "Okafor", "Priya", "Lund", "Sam Reyes", "Lee Chan"):
        assert name not in text
    zoom = conversations.set_index("conversation_id").loc["2026-11-02", "text"]
    # the colon inside the customer's sentence is not a second label
    assert zoom.splitlines()[-1] == "Customer: The price: it was just too expensive."


def test_teams_cues_of_one_speaker_merge_into_one_turn(conversations):
    teams = conversations.set_index("conversation_id").loc["2026-11-03", "text"]
    assert teams.splitlines() == [
        "Interviewer: What almost stopped you from buying?",
        "Customer: Delivery took too long and returns looked hard.",
    ]


def test_srt_and_otter_text_transcripts(conversations):
    texts = conversations.set_index("conversation_id")["text"]
    assert (
        texts["2026-11-04"].splitlines()[-1] == "Customer: Shipping was too expensive."
    )
    assert texts["2026-11-05"].splitlines() == [
        "Interviewer: What almost stopped you?",
        "Customer: I could not find a discount code.",
    ]


def test_zoom_local_and_google_meet_text_transcripts(tmp_path):
    folder = copy_folder(tmp_path, [])
    meta = "conversation_id: {}\ncustomer_key: c_1{}\ninterviewer: Dana Okafor\n"
    (folder / "zoom.txt").write_text(
        "[Dana Okafor] 00:00:02\nWhy did you stop?\n\n"
        "[Priya Lund] 00:00:06\nThe delivery date: too late.\nReally late.\n"
    )
    (folder / "zoom.yml").write_text(meta.format("z1", "1"))
    (folder / "meet.txt").write_text(
        "Weekly sync - Transcript\nAttendees\nDana Okafor, Priya Lund\nTranscript\n"
        "00:00:00\n\nDana Okafor: Why did you stop?\nPriya Lund: Returns.\n00:05:00\n"
    )
    (folder / "meet.yml").write_text(meta.format("m1", "2"))
    texts = read_conversations(folder).set_index("conversation_id")["text"]
    assert texts["z1"].splitlines() == [
        "Interviewer: Why did you stop?",
        "Customer: The delivery date: too late. Really late.",
    ]
    assert texts["m1"].splitlines() == [
        "Interviewer: Why did you stop?",
        "Customer: Returns.",
    ]


def test_excerpt_ids_follow_position(conversations):
    excerpts = split_excerpts(conversations)
    first = excerpts[excerpts["conversation_id"] == "2026-11-01"]
    assert first["position"].tolist() == [1, 2, 3, 4, 5]
    assert first["excerpt_id"].tolist() == [f"2026-11-01-{i:03d}" for i in range(1, 6)]
    assert first["speaker"].tolist() == [
        "interviewer", "customer", "interviewer", "customer", "customer",
    ]  # fmt: skip
    assert first["is_customer"].tolist() == [False, True, False, True, True]
    # an unlabelled line continues the customer's turn
    assert first["text"].iloc[1] == (
        "Honestly the shipping cost at checkout. It was more than I expected."
    )
    # the long last turn (48 words) is split into sentences; "e.g." does not split
    assert first["text"].iloc[3] == "I wasn't sure about the sizing."
    assert first["text"].iloc[4].startswith("The chart was confusing")
    assert first["text"].iloc[4].endswith("before deciding anything at all.")


def test_excerpt_ids_are_stable_across_runs(conversations):
    again = split_excerpts(read_conversations(CONVERSATIONS))
    pd.testing.assert_frame_equal(split_excerpts(conversations), again)


def test_notes_without_labels_are_notes():
    frame = pd.DataFrame(
        {
            "conversation_id": ["x1"],
            "text": ["Called back, said the price put her off."],
        }
    )
    excerpts = split_excerpts(frame)
    assert excerpts["speaker"].tolist() == ["note"]
    assert excerpts["is_customer"].tolist() == [False]


def test_a_colon_in_notes_is_not_a_speaker():
    frame = pd.DataFrame(
        {
            "conversation_id": ["x2"],
            "interviewer": ["Alex"],
            "text": ["Alex: Why?\nCustomer: Honestly: the price.\nHonestly: yes."],
        }
    )
    excerpts = split_excerpts(frame)
    assert excerpts["speaker"].tolist() == ["interviewer", "customer"]
    assert excerpts["text"].tolist()[1] == "Honestly: the price. Honestly: yes."


# ---------------------------------------------------------------- input errors


def copy_folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "conversations"
    folder.mkdir()
    for name in names:
        shutil.copy(CONVERSATIONS / name, folder / name)
    return folder


def test_a_conversation_csv_with_semicolons_in_cp1252_reads_the_same(tmp_path):
    text = (CONVERSATIONS / "batch.csv").read_text(encoding="utf-8")
    assert ";" not in text
    folder = tmp_path / "eu"
    folder.mkdir()
    (folder / "batch.csv").write_bytes(
        text.replace("Too expensive", "Trop cher, vraiment")
        .replace(",", ";")
        .replace("Trop cher; vraiment", "Trop cher, vraiment")
        .encode("cp1252")
    )
    read = read_conversations(folder)
    original = read_conversations(CONVERSATIONS).set_index("source_file")
    row = read.iloc[0]
    assert row["conversation_id"] == "2026-11-06"
    assert row["customer_key"] == original.loc["batch.csv", "customer_key"]
    assert "Customer: Trop cher, vraiment for what it is." in row["text"]


def test_a_conversation_csv_turning_cp1252_late_is_an_error_not_a_traceback(
    tmp_path,
):
    text = (CONVERSATIONS / "batch.csv").read_text(encoding="utf-8")
    header, row = text.split("\n", 1)
    padding = "".join(
        f'p{i},c_pad{i},2026-11-08,s,Alex,yes,"Customer: {"ok " * 30}"\n'
        for i in range(800)
    )  # past the 64 KB sample that fixes the encoding
    data = (header + "\n" + padding).encode() + row.replace("expensive", "chér").encode(
        "cp1252"
    )
    (tmp_path / "batch.csv").write_bytes(data)
    with pytest.raises(HeardInputError) as caught:
        read_conversations(tmp_path)
    assert caught.value.file.endswith("batch.csv")
    assert "0xe9" in str(caught.value)


def test_malformed_front_matter_names_file_and_line(tmp_path):
    folder = copy_folder(tmp_path, [])
    (folder / "bad.md").write_text(
        "---\nconversation_id: bad\ncustomer_key: c_1\ndate: [2026-11-09\n---\nhi\n"
    )
    with pytest.raises(HeardInputError) as caught:
        read_conversations(folder)
    assert caught.value.file.endswith("bad.md")
    assert caught.value.row == 4  # where the unclosed bracket opened


def test_unclosed_front_matter_is_an_error(tmp_path):
    folder = copy_folder(tmp_path, [])
    (folder / "open.md").write_text("---\nconversation_id: open\ncustomer_key: c_1\n")
    with pytest.raises(HeardInputError, match="closing"):
        read_conversations(folder)


def test_bad_date_names_its_line(tmp_path):
    folder = copy_folder(tmp_path, [])
    (folder / "d.md").write_text(
        "---\nconversation_id: d\ncustomer_key: c_1\ndate: 9 Nov\n---\nCustomer: hi\n"
    )
    with pytest.raises(HeardInputError) as caught:
        read_conversations(folder)
    assert (caught.value.row, caught.value.column) == (4, "date")


def test_duplicate_ids_name_both_files(tmp_path):
    folder = copy_folder(tmp_path, ["2026-11-01.md"])
    text = (CONVERSATIONS / "2026-11-01.md").read_text()
    (folder / "copy.md").write_text(text)
    with pytest.raises(HeardInputError) as caught:
        read_conversations(folder)
    assert caught.value.row == 2
    assert "2026-11-01.md" in str(caught.value) and "copy.md" in str(caught.value)


def test_unknown_customer_names_file_and_line(tmp_path):
    folder = copy_folder(tmp_path, ["2026-11-01.md", "batch.csv"])
    with pytest.raises(HeardInputError) as caught:
        read_conversations(folder, known_customers={"c_aaaaaaaaaaa1"})
    assert caught.value.file.endswith("batch.csv")
    assert (caught.value.row, caught.value.column) == (2, "customer_key")
    assert "store exports" in caught.value.expected
    assert "call list" not in caught.value.expected
    known = {"c_aaaaaaaaaaa1", "c_aaaaaaaaaaa6"}
    assert len(read_conversations(folder, known_customers=known)) == 2


def test_transcript_without_sidecar_is_an_error(tmp_path):
    folder = copy_folder(tmp_path, ["2026-11-04.srt"])
    with pytest.raises(HeardInputError, match="front matter"):
        read_conversations(folder)


# ---------------------------------------------------------------- coding sheets


@pytest.fixture(scope="module")
def codebook():
    return load_codebook(FIXTURES / "codebook.yml")


@pytest.fixture(scope="module")
def excerpts(conversations):
    return split_excerpts(conversations)


def fill_sheet(path: Path, codes: dict[int, list[str]]) -> Path:
    """Fill data rows (1 = first excerpt) of a written sheet as a coder would."""
    workbook = load_workbook(path)
    sheet = workbook["coding"]
    header = [cell.value for cell in sheet[1]]
    for row, values in codes.items():
        for offset, value in enumerate(values):
            sheet.cell(
                row=row + 1, column=header.index("code_1") + 1 + offset
            ).value = value
    workbook.save(path)
    return path


def test_coding_sheet_has_excerpts_and_codebook_drop_downs(
    excerpts, codebook, tmp_path
):
    path = write_coding_sheet(excerpts, codebook, tmp_path / "ana.xlsx")
    workbook = load_workbook(path)
    sheet = workbook["coding"]
    assert [c.value for c in sheet[1]] == [
        "conversation_id", "excerpt_id", "position", "speaker", "text",
        "code_1", "code_2", "code_3",
    ]  # fmt: skip
    # only the excerpts to code: 17 excerpts less 8 interviewer lines
    assert sheet.max_row - 1 == 9
    assert sheet["B2"].value == "2026-11-01-002"
    # the drop-down offers the codable ids and "no code", not the group codes
    lists = [c.value for c in workbook["lists"]["A"]]
    assert lists == [*codebook.ids(codable_only=True), NO_CODE]
    ranges = {str(v.sqref) for v in sheet.data_validations.dataValidation}
    assert ranges == {"F2:F10", "G2:G10", "H2:H10"}


def test_reading_a_sheet_keeps_blank_rows_as_no_code_and_trailing_as_missing(
    excerpts, codebook, tmp_path
):
    path = write_coding_sheet(excerpts, codebook, tmp_path / "ana.xlsx")
    fill_sheet(
        path, {1: ["OBJ-SHIP", "stage-checkout"], 3: ["OBJ-PRICE"], 4: [NO_CODE]}
    )
    codings = read_coding_sheet(path, codebook)
    assert list(codings.columns) == CODING_COLUMNS
    assert codings[["excerpt_id", "coder", "code"]].values.tolist() == [
        ["2026-11-01-002", "ana", "OBJ-SHIP"],
        ["2026-11-01-002", "ana", "STAGE-CHECKOUT"],  # case folded to the id
        ["2026-11-01-004", "ana", NO_CODE],  # blank above the last coded row
        ["2026-11-01-005", "ana", "OBJ-PRICE"],
        ["2026-11-02-002", "ana", NO_CODE],
    ]
    # rows 5-9 are after the last filled row: not coded, so absent (missing)
    assert codings["excerpt_id"].nunique() == 4


@pytest.mark.parametrize(
    ("last_filled", "warning"), [(8, "1 blank row after"), (4, "5 blank rows after")]
)
def test_rows_not_yet_coded_are_counted_in_the_warning(
    excerpts, codebook, tmp_path, caplog, last_filled, warning
):
    path = write_coding_sheet(excerpts, codebook, tmp_path / "ana.xlsx")
    fill_sheet(path, {last_filled: ["OBJ-PRICE"]})
    with caplog.at_level("WARNING", logger="helpers.coding"):
        read_coding_sheet(path, codebook)
    assert f"ana.xlsx: {warning} the last coded row" in caplog.text


@pytest.mark.parametrize(
    ("value", "column"), [("OBJ-PRCE", "code_1"), ("OBJ", "code_2")]
)
def test_codes_not_in_the_codebook_name_row_and_column(
    excerpts, codebook, tmp_path, value, column
):
    path = write_coding_sheet(excerpts, codebook, tmp_path / "ana.xlsx")
    fill_sheet(
        path,
        {1: ["OBJ-PRICE"], 3: ["OBJ-PRICE", value] if column == "code_2" else [value]},
    )
    with pytest.raises(HeardInputError) as caught:
        read_coding_sheet(path, codebook)
    assert (caught.value.row, caught.value.column, caught.value.found) == (
        4,
        column,
        value,
    )


def test_renamed_or_missing_column_is_named(excerpts, codebook, tmp_path):
    path = write_coding_sheet(excerpts, codebook, tmp_path / "ana.xlsx")
    workbook = load_workbook(path)
    workbook["coding"]["G1"].value = "Code 2"
    workbook.save(path)
    with pytest.raises(HeardInputError) as caught:
        read_coding_sheet(path, codebook)
    assert (caught.value.row, caught.value.column) == (1, "code 2")
    workbook["coding"]["G1"].value = "code_2"
    workbook["coding"]["B1"].value = "excerpt"
    workbook.save(path)
    with pytest.raises(HeardInputError) as caught:
        read_coding_sheet(path, codebook)
    assert caught.value.column == "excerpt_id"


def test_suggestions_come_from_keywords_and_are_marked(excerpts, codebook):
    suggestions = suggest_codes(excerpts, codebook)
    assert suggestions["is_suggestion"].all()
    assert set(suggestions["coder"]) == {SUGGESTED_CODER}
    by_excerpt = suggestions.groupby("excerpt_id")["code"].agg(sorted).to_dict()
    # worked by hand from the fixture texts and codebook.yml's keywords
    assert by_excerpt == {
        "2026-11-01-002": ["OBJ-SHIP", "STAGE-CHECKOUT"],  # shipping, checkout
        "2026-11-01-004": ["OBJ-SIZE"],  # sizing
        # "size up", "basket", "reviews"
        "2026-11-01-005": ["OBJ-SIZE", "STAGE-CHECKOUT", "STAGE-RESEARCH"],
        "2026-11-02-004": ["OBJ-PRICE"],  # price, expensive
        "2026-11-03-002": ["DELIVERY"],  # delivery took
        "2026-11-04-002": ["OBJ-PRICE", "OBJ-SHIP"],  # shipping, expensive
        "2026-11-06-002": ["OBJ-PRICE"],  # expensive
    }


# ---------------------------------------------------------------- agreement


def codings_from_table(table, *, code="X") -> pd.DataFrame:
    """Two coders' yes/no judgements of `code`: table[a][b] units where coder A
    said a and coder B said b (1 = applied, 0 = coded without it); each unit
    in a conversation of its own, so units are independent."""
    rows, unit = [], 0
    for a in (0, 1):
        for b in (0, 1):
            for _ in range(table[a][b]):
                unit += 1
                for coder, said in (("A", a), ("B", b)):
                    rows.append(
                        [
                            f"c{unit:03d}",
                            f"c-{unit:03d}",
                            coder,
                            code if said else NO_CODE,
                            False,
                        ]
                    )
    return pd.DataFrame(rows, columns=CODING_COLUMNS)


def test_kappa_and_alpha_match_a_hand_computed_two_by_two():
    # A applied X on 40 of 100 units, B on 30; they agree on 45 + 15 = 60.
    # po = 0.60; pe = 0.4 * 0.3 + 0.6 * 0.7 = 0.54; kappa = 0.06 / 0.46.
    # Alpha: coincidences o00 = 90, o11 = 30, o01 = o10 = 40; n0 = 130, n1 = 70,
    # n = 200; alpha = 1 - (n - 1) * 80 / (2 * 130 * 70) = 1 - 15920 / 18200.
    table = agreement_table(codings_from_table([[45, 15], [25, 15]]), n_boot=200)
    row = table.set_index("code").loc["X"]
    assert row["n_units"] == 100 and row["n_applied"] == 70
    assert row["percent_agreement"] == pytest.approx(0.60)
    assert row["kappa"] == pytest.approx(0.06 / 0.46)
    assert row["alpha"] == pytest.approx(1 - 15920 / 18200)
    assert row["status"] == "ok"
    assert row["kappa_ci_low"] < row["kappa"] < row["kappa_ci_high"]
    assert row["alpha_ci_low"] < row["alpha"] < row["alpha_ci_high"]


def test_kappa_on_the_symmetric_textbook_table():
    # 20 yes-yes, 15 no-no, 5 and 10 split: po = 0.7, pe = 0.5 * 0.6 + 0.5 * 0.4
    table = agreement_table(codings_from_table([[15, 10], [5, 20]]), n_boot=0)
    assert table.loc[0, "kappa"] == pytest.approx((0.7 - 0.5) / (1 - 0.5))
    assert np.isnan(table.loc[0, "kappa_ci_low"])  # no bootstrap asked for


def test_alpha_matches_krippendorffs_worked_example_with_missing_values():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section
    # C: four observers, twelve units, nominal values, blanks missing; alpha = 0.743
    nan = np.nan
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    )
    assert round(nominal_alpha(data), 3) == 0.743
    # the bootstrap's own coincidence arithmetic gives the same value
    assert alpha_from_coincidences(
        unit_coincidences(data).sum(axis=0)
    ) == pytest.approx(nominal_alpha(data))


def test_a_code_nobody_used_is_undefined_not_zero_or_one(codebook):
    codings = codings_from_table([[45, 15], [25, 15]], code="OBJ-PRICE")
    table = agreement_table(codings, codebook=codebook, n_boot=100).set_index("code")
    unused = table.loc["OBJ-SHIP"]
    assert np.isnan(unused["kappa"]) and np.isnan(unused["alpha"])
    assert np.isnan(unused["kappa_ci_low"]) and np.isnan(unused["alpha_ci_high"])
    assert unused["status"] == "undefined (no variation)"
    assert unused["percent_agreement"] == 1.0  # raw agreement still shown
    assert unused["n_units"] == 100
    # the overall row pools only the codes someone used
    assert table.loc["overall", "kappa"] == pytest.approx(
        table.loc["OBJ-PRICE", "kappa"]
    )


def test_a_code_everyone_used_everywhere_is_undefined_too():
    codings = codings_from_table([[0, 0], [0, 12]])
    row = agreement_table(codings, n_boot=50).iloc[0]
    assert np.isnan(row["kappa"]) and row["status"] == "undefined (no variation)"
    assert row["percent_agreement"] == 1.0


def test_blank_codes_are_missing_not_disagreement():
    # B did not code units 3 and 4 (absent from B's sheet): only units 1-2 count.
    rows = [
        ["c", "u1", "A", "X"], ["c", "u1", "B", "X"],
        ["c", "u2", "A", NO_CODE], ["c", "u2", "B", NO_CODE],
        ["c", "u3", "A", "X"], ["c", "u4", "A", NO_CODE],
    ]  # fmt: skip
    codings = pd.DataFrame(rows, columns=CODING_COLUMNS[:4]).assign(is_suggestion=False)
    row = agreement_table(codings, n_boot=0).iloc[0]
    assert row["n_units"] == 2
    assert row["percent_agreement"] == 1.0
    assert row["kappa"] == pytest.approx(1.0)  # po = 1, pe = 0.5
    # alpha with u3, u4 skipped: o00 = o11 = 2, n = 4, no disagreement -> 1
    assert row["alpha"] == pytest.approx(1.0)
    presence, *_ = build_presence(codings)
    assert np.isnan(presence[0, 1, 2:]).all()


def test_units_one_coder_left_blank_are_skipped_in_kappa_and_alpha():
    # A applied X on u1 u2 u3 u7; B on u1 u2 u4 and never reached u7, u8.
    # Units both coded, u1-u6: A 1 1 1 0 0 0, B 1 1 0 1 0 0.
    # Kappa: po = 4/6, pe = 3/6 * 3/6 + 3/6 * 3/6 = 1/2, kappa = (4/6 - 1/2) / (1/2).
    # Alpha (u7, u8 unpairable, skipped): o11 = 4, o00 = 4, o01 = o10 = 2; n1 = n0
    # = 6, n = 12; alpha = 1 - (n - 1) * 4 / (2 * 6 * 6) = 1 - 44 / 72.
    # Read as "not applied" instead, u7 would be one more disagreement.
    rows = []
    for unit, (a, b) in enumerate(
        [(1, 1), (1, 1), (1, 0), (0, 1), (0, 0), (0, 0), (1, None), (0, None)],
        start=1,
    ):
        for coder, said in (("A", a), ("B", b)):
            if said is not None:
                rows.append(
                    [f"c{unit}", f"c{unit}-001", coder, "X" if said else NO_CODE]
                )
    codings = pd.DataFrame(rows, columns=CODING_COLUMNS[:4]).assign(is_suggestion=False)
    row = agreement_table(codings, n_boot=0).iloc[0]
    assert row["n_units"] == 6
    assert row["percent_agreement"] == pytest.approx(4 / 6)
    assert row["kappa"] == pytest.approx((4 / 6 - 1 / 2) / (1 / 2))
    assert row["alpha"] == pytest.approx(1 - 44 / 72)


def test_suggestions_never_count_as_a_coder(excerpts, codebook):
    codings = codings_from_table([[45, 15], [25, 15]], code="OBJ-PRICE")
    suggestions = suggest_codes(excerpts, codebook)
    with_suggestions = pd.concat([codings, suggestions], ignore_index=True)
    pd.testing.assert_frame_equal(
        agreement_table(with_suggestions, n_boot=100),
        agreement_table(codings, n_boot=100),
    )


def test_bootstrap_is_seeded_and_perfect_agreement_stays_at_one():
    codings = codings_from_table([[30, 0], [0, 10]])
    first = agreement_table(codings, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(first, agreement_table(codings, n_boot=300, seed=7))
    assert first.loc[0, ["kappa", "kappa_ci_low", "kappa_ci_high"]].tolist() == [
        1,
        1,
        1,
    ]
    other = codings_from_table([[45, 15], [25, 15]])
    a = agreement_table(other, n_boot=300, seed=7).loc[0, "kappa_ci_low"]
    b = agreement_table(other, n_boot=300, seed=8).loc[0, "kappa_ci_low"]
    assert a != b


def test_bootstrap_arithmetic_matches_the_libraries_on_resamples():
    rng = np.random.default_rng(3)
    data = (rng.random((2, 60)) < 0.35).astype(float)
    data[1, rng.choice(60, 6, replace=False)] = np.nan
    for _ in range(5):
        sample = rng.integers(0, 60, 60)
        weights = np.bincount(sample, minlength=60).astype(float)
        alpha = alpha_from_coincidences(
            np.tensordot(weights, unit_coincidences(data), 1)
        )
        kappa = kappa_from_tables(np.tensordot(weights, unit_cross_tables(data), 1))
        assert alpha == pytest.approx(nominal_alpha(data[:, sample]))
        assert kappa == pytest.approx(cohen_kappa(data[:, sample]))


def test_percent_agreement_interval_is_a_bootstrap_over_units():
    # 60 of 100 units agree; each unit is its own conversation. The interval is
    # the percentile bootstrap of the share of agreeing units, recomputed here
    # from the same draws, and lies near the normal approximation
    # 0.60 +- 1.96 * sqrt(0.24 / 100) = [0.504, 0.696].
    table = agreement_table(codings_from_table([[45, 15], [25, 15]]), n_boot=2000)
    row = table.set_index("code").loc["X"]
    weights = draw_bootstrap_weights(np.arange(100), n_boot=2000, seed=2026)
    # units c001-c045 agree on no, c046-c085 split, c086-c100 agree on yes
    agrees = np.concatenate([np.ones(45), np.zeros(40), np.ones(15)])
    shares = weights @ agrees / weights.sum(axis=1)
    low, high = np.percentile(shares, [2.5, 97.5])
    assert (row["percent_agreement_ci_low"], row["percent_agreement_ci_high"]) == (
        pytest.approx(low),
        pytest.approx(high),
    )
    assert row["percent_agreement_ci_low"] == pytest.approx(0.504, abs=0.02)
    assert row["percent_agreement_ci_high"] == pytest.approx(0.696, abs=0.02)


def test_percent_agreement_resamples_match_the_direct_computation():
    rng = np.random.default_rng(5)
    data = rng.integers(0, 2, (3, 4, 50)).astype(float)  # codes x coders x units
    data[:, 2, rng.choice(50, 10, replace=False)] = np.nan
    data[:, 1:, :3] = np.nan  # three units only one coder coded: skipped
    shares, pairable = unit_agreement_shares(data)
    for _ in range(5):
        sample = rng.integers(0, 50, 50)
        weights = np.bincount(sample, minlength=50).astype(float)
        pooled = np.concatenate(list(data[:, :, sample]), axis=1)
        assert weights @ shares / (weights @ pairable) == pytest.approx(
            percent_agreement(pooled)
        )
        two = data[0, :2]
        two_shares, two_pairable = unit_agreement_shares(two)
        both = ~np.isnan(two[:, sample]).any(axis=0)
        direct = np.mean(two[0, sample][both] == two[1, sample][both])
        assert weights @ two_shares / (weights @ two_pairable) == pytest.approx(direct)


def test_a_code_nobody_used_has_a_percent_interval_but_no_kappa_interval(codebook):
    codings = codings_from_table([[45, 15], [25, 15]], code="OBJ-PRICE")
    table = agreement_table(codings, codebook=codebook, n_boot=100).set_index("code")
    unused = table.loc["OBJ-SHIP"]
    assert unused[
        ["percent_agreement_ci_low", "percent_agreement_ci_high"]
    ].tolist() == [
        1.0,
        1.0,
    ]
    assert np.isnan(unused["kappa_ci_low"]) and np.isnan(unused["alpha_ci_low"])


def test_three_coders_get_alpha_but_no_kappa():
    rows = []
    for unit, said in enumerate(
        [(1, 1, 1), (1, 1, 0), (0, 0, 0), (0, 0, 0), (1, 0, 1)]
    ):
        for coder, value in zip("ABC", said, strict=True):
            rows.append(["c", f"u{unit}", coder, "X" if value else NO_CODE, False])
    codings = pd.DataFrame(rows, columns=CODING_COLUMNS)
    row = agreement_table(codings, n_boot=50).iloc[0]
    assert np.isnan(row["kappa"]) and "two coders" in row["status"]
    # pairs agreeing per unit: 3, 1, 3, 3, 1 of 3 -> 11 / 15
    assert row["percent_agreement"] == pytest.approx(11 / 15)
    # coincidences, unit by unit (m_u = 3, each pair weighted 1 / (m_u - 1)):
    # (1,1,1) o11 += 3; (1,1,0) and (1,0,1) o11 += 1, o01 += 1, o10 += 1 each;
    # (0,0,0) twice o00 += 3. So o11 = 5, o00 = 6, o01 = o10 = 2; n1 = 7, n0 = 8,
    # n = 15; alpha = 1 - (n - 1) * 4 / (2 * 7 * 8) = 1 - 56 / 112 = 0.5
    assert row["alpha"] == pytest.approx(0.5)


def test_conversation_level_agreement_counts_a_code_anywhere_in_it():
    rows = [
        ["c1", "c1-001", "A", "X"], ["c1", "c1-001", "B", NO_CODE],
        ["c1", "c1-002", "A", NO_CODE], ["c1", "c1-002", "B", "X"],
        ["c2", "c2-001", "A", NO_CODE], ["c2", "c2-001", "B", NO_CODE],
    ]  # fmt: skip
    codings = pd.DataFrame(rows, columns=CODING_COLUMNS[:4]).assign(is_suggestion=False)
    by_excerpt = agreement_table(codings, n_boot=0).iloc[0]
    by_conversation = agreement_table(codings, unit="conversation", n_boot=0).iloc[0]
    assert by_excerpt["percent_agreement"] == pytest.approx(1 / 3)
    assert (by_conversation["n_units"], by_conversation["percent_agreement"]) == (
        2,
        1.0,
    )
    assert by_conversation["kappa"] == pytest.approx(1.0)


# ---------------------------------------------------------------- consensus


def coding_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["excerpt_id", "coder", "code"])
    frame.insert(0, "conversation_id", frame["excerpt_id"].str[:2])
    return frame.assign(is_suggestion=False)


def test_consensus_keeps_agreed_codes_and_drops_two_coder_splits():
    codings = coding_frame(
        [
            ["c1-001", "ana", "A"],
            ["c1-001", "ben", "A"],
            ["c1-002", "ana", "A"],
            ["c1-002", "ben", "B"],
            ["c1-003", "ana", NO_CODE],
            ["c1-003", "ben", NO_CODE],
        ]  # fmt: skip
    )
    consensus = build_consensus(codings)
    assert consensus[["excerpt_id", "code", "basis"]].values.tolist() == [
        ["c1-001", "A", "agreed"]
    ]
    queue = disagreement_queue(codings)
    assert queue[
        ["excerpt_id", "code", "applied_by", "not_applied_by"]
    ].values.tolist() == [
        ["c1-002", "A", "ana", "ben"],
        ["c1-002", "B", "ben", "ana"],
    ]
    assert queue.loc[0, "codings"] == "ana: A | ben: B"


def test_consensus_majority_of_three_and_resolutions(tmp_path):
    codings = coding_frame(
        [
            ["c1-001", "ana", "A"],
            ["c1-001", "ben", "A"],
            ["c1-001", "cy", NO_CODE],
            ["c1-002", "ana", "B"],
            ["c1-002", "ben", NO_CODE],
            ["c1-002", "cy", NO_CODE],
        ]  # fmt: skip
    )
    # A on c1-001: 2 of 3 -> kept by majority; B on c1-002: 1 of 3 -> out
    consensus = build_consensus(codings)
    assert consensus[["excerpt_id", "code", "basis"]].values.tolist() == [
        ["c1-001", "A", "majority"]
    ]

    # the coders reconcile: drop A, keep B
    sheet = write_reconciliation_sheet(disagreement_queue(codings), tmp_path / "r.xlsx")
    workbook = load_workbook(sheet)
    rows = workbook["reconcile"]
    column = [c.value for c in rows[1]].index("decision") + 1
    rows.cell(row=2, column=column).value = "drop"
    rows.cell(row=3, column=column).value = "Keep"
    workbook.save(sheet)
    resolutions = read_resolutions(sheet)
    consensus = build_consensus(codings, resolutions=resolutions)
    assert consensus[["excerpt_id", "code", "basis"]].values.tolist() == [
        ["c1-002", "B", "resolved"]
    ]
    resolved = disagreement_queue(codings, resolutions=resolutions)
    assert resolved["decision"].tolist() == ["drop", "keep"]


def test_bad_decision_names_row_and_column(tmp_path):
    codings = coding_frame([["c1-001", "ana", "A"], ["c1-001", "ben", NO_CODE]])
    sheet = write_reconciliation_sheet(disagreement_queue(codings), tmp_path / "r.xlsx")
    workbook = load_workbook(sheet)
    header = [c.value for c in workbook["reconcile"][1]]
    workbook["reconcile"].cell(
        row=2, column=header.index("decision") + 1
    ).value = "maybe"
    workbook.save(sheet)
    with pytest.raises(HeardInputError) as caught:
        read_resolutions(sheet)
    assert (caught.value.row, caught.value.column) == (2, "decision")


def test_sheets_folder_round_trip_to_agreement(excerpts, codebook, tmp_path):
    for coder, codes in {
        "ana": {1: ["OBJ-SHIP"], 2: ["OBJ-SIZE"], 5: ["OBJ-PRICE"]},
        "ben": {1: ["OBJ-SHIP", "STAGE-CHECKOUT"], 2: ["OBJ-SIZE"], 5: ["OBJ-PRICE"]},
    }.items():
        fill_sheet(
            write_coding_sheet(excerpts, codebook, tmp_path / f"{coder}.xlsx"), codes
        )
    codings = read_coding_sheets(tmp_path, codebook)
    assert sorted(codings["coder"].unique()) == ["ana", "ben"]
    table = agreement_table(codings, codebook=codebook, n_boot=0).set_index("code")
    # 5 units coded by both (rows 3-4 blank above the last coded row = no code)
    assert table.loc[
        "OBJ-SHIP", ["n_units", "percent_agreement", "kappa"]
    ].tolist() == [5, 1.0, 1.0]
    # ana never used STAGE-CHECKOUT, ben once: po = 0.8, pe = 1 * 0.8, kappa = 0
    assert table.loc["STAGE-CHECKOUT", "percent_agreement"] == pytest.approx(0.8)
    assert table.loc["STAGE-CHECKOUT", "kappa"] == pytest.approx(0.0)
    assert table.loc["DELIVERY", "status"] == "undefined (no variation)"
    consensus = build_consensus(codings)
    assert set(consensus["code"]) == {"OBJ-SHIP", "OBJ-SIZE", "OBJ-PRICE"}


def test_blank_interviewer_rows_are_context_not_units(excerpts, codebook, tmp_path):
    path = write_coding_sheet(
        excerpts, codebook, tmp_path / "ana.xlsx", include_interviewer=True
    )
    # rows: 1 interviewer, 2 customer, 3 interviewer, 4 customer, 5 customer
    fill_sheet(path, {2: ["OBJ-SHIP"], 5: ["OBJ-SIZE"]})
    codings = read_coding_sheet(path, codebook)
    assert codings[["excerpt_id", "code"]].values.tolist() == [
        ["2026-11-01-002", "OBJ-SHIP"],
        ["2026-11-01-004", NO_CODE],
        ["2026-11-01-005", "OBJ-SIZE"],
    ]


def test_split_excerpts_accepts_missing_interviewer_and_text():
    frame = pd.DataFrame(
        {
            "conversation_id": ["a", "b"],
            "interviewer": [np.nan, "Alex"],
            "text": ["Customer: Too slow.", np.nan],
        }
    )
    excerpts = split_excerpts(frame)
    assert excerpts[["excerpt_id", "speaker", "text"]].values.tolist() == [
        ["a-001", "customer", "Too slow."]
    ]


def test_a_sheet_from_before_the_notes_changed_names_the_moved_excerpt(
    excerpts, codebook, tmp_path
):
    # Excerpt ids follow position, so a line added to a note after the sheets went
    # out moves every later id onto different words: codes would land on them.
    path = write_coding_sheet(excerpts, codebook, tmp_path / "ana.xlsx")
    fill_sheet(path, {1: ["OBJ-SHIP"], 2: ["OBJ-PRICE"]})
    edited = excerpts.copy()
    second = edited.index[edited["excerpt_id"] == "2026-11-01-004"][0]
    edited.loc[second, "text"] = "A line someone added to the note later."
    assert len(read_coding_sheet(path, codebook, excerpts=excerpts)) == 2
    with pytest.raises(HeardInputError) as caught:
        read_coding_sheets(tmp_path, codebook, excerpts=edited)
    assert (caught.value.row, caught.value.column) == (3, "text")
    assert "A line someone added" in caught.value.expected


def test_a_sheet_row_for_an_excerpt_the_notes_lack_is_an_error(
    excerpts, codebook, tmp_path
):
    path = write_coding_sheet(excerpts, codebook, tmp_path / "ana.xlsx")
    fill_sheet(path, {1: ["OBJ-SHIP"], 2: ["OBJ-PRICE"]})
    fewer = excerpts[excerpts["excerpt_id"] != "2026-11-01-004"]
    with pytest.raises(HeardInputError) as caught:
        read_coding_sheet(path, codebook, excerpts=fewer)
    assert (caught.value.row, caught.value.column) == (3, "excerpt_id")
    assert caught.value.found == "2026-11-01-004"


def test_a_code_only_one_coder_used_says_so_beside_its_zero_kappa():
    # A applied X once in 40 units, B never: po = 39/40, pe = 39/40 * 1, so
    # kappa = 0 in every resample and the bootstrap "interval" is [0, 0]. That
    # is arithmetic, not certainty; the status must say why.
    row = agreement_table(codings_from_table([[39, 0], [1, 0]]), n_boot=200).iloc[0]
    assert row["kappa"] == pytest.approx(0.0)
    assert row["kappa_ci_low"] == row["kappa_ci_high"] == pytest.approx(0.0)
    assert row["status"].startswith("used by one coder only")


def test_a_rarely_applied_code_warns_that_its_interval_is_too_narrow():
    # Both coders applied X to the same 2 of 40 units: kappa = 1 and every
    # defined resample gives 1, so the interval [1, 1] hides how little two
    # agreements show. Fewer than 10 applications: flagged as rare.
    row = agreement_table(codings_from_table([[38, 0], [0, 2]]), n_boot=200).iloc[0]
    assert row["kappa"] == pytest.approx(1.0)
    assert row["kappa_ci_low"] == pytest.approx(1.0)
    assert row["n_applied"] == 4
    assert row["status"] == "rare (4 applications): interval unreliable"
    common = agreement_table(codings_from_table([[30, 2], [3, 5]]), n_boot=0)
    assert common.iloc[0]["status"] == "ok"


def test_sheet_text_check_allows_formula_neutralising_and_a_leading_apostrophe(
    codebook, tmp_path
):
    # "=" text is written as "'=..." (formula neutralising) and must still match;
    # a turn that itself starts with an apostrophe must match too.
    notes = pd.DataFrame(
        {
            "conversation_id": ["a"],
            "interviewer": ["Alex"],
            "text": [
                "Customer: 'Cause the fee was silly.\nCustomer: =SUM was the total"
            ],
        }
    )
    excerpts = split_excerpts(notes)
    assert excerpts["text"].tolist() == [
        "'Cause the fee was silly.",
        "=SUM was the total",
    ]
    path = write_coding_sheet(excerpts, codebook, tmp_path / "ana.xlsx")
    fill_sheet(path, {1: ["OBJ-SHIP"], 2: ["OBJ-PRICE"]})
    codings = read_coding_sheet(path, codebook, excerpts=excerpts)
    assert codings["code"].tolist() == ["OBJ-SHIP", "OBJ-PRICE"]


def test_a_conversation_without_customer_turns_is_warned_about(caplog):
    # Unlabelled notes are the interviewer's summary: coded, but never quoted or
    # counted as the customer's words. The reader must hear about it.
    notes = pd.DataFrame(
        {
            "conversation_id": ["a", "b"],
            "interviewer": ["Alex", "Alex"],
            "text": ["Said shipping was too dear.", "Customer: Too slow."],
        }
    )
    with caplog.at_level("WARNING", logger="helpers.coding"):
        excerpts = split_excerpts(notes)
    assert excerpts["is_customer"].tolist() == [False, True]
    assert "1 conversation(s) without a customer turn: a" in caplog.text


def test_bootstrap_resamples_conversations_so_copies_add_no_certainty():
    # Ten conversations, one excerpt each, against the same ten excerpts each
    # said five times over in its conversation. Copies within a conversation
    # carry no new information; kappa is unchanged by them (every cell of the
    # cross-table scales by 5), and so, when whole conversations are resampled
    # with the same seed, is every replicate and the interval.
    said = [
        (1, 1),
        (1, 0),
        (0, 0),
        (0, 0),
        (1, 1),
        (0, 1),
        (0, 0),
        (1, 1),
        (0, 0),
        (0, 0),
    ]
    once, copies = [], []
    for index, (a, b) in enumerate(said):
        for copy in range(5):
            for coder, value in (("A", a), ("B", b)):
                row = [
                    f"c{index}",
                    f"c{index}-{copy}",
                    coder,
                    "X" if value else NO_CODE,
                ]
                copies.append([*row, False])
                if copy == 0:
                    once.append([*row, False])
    single = agreement_table(pd.DataFrame(once, columns=CODING_COLUMNS), n_boot=300)
    copied = agreement_table(pd.DataFrame(copies, columns=CODING_COLUMNS), n_boot=300)
    columns = ["kappa", "kappa_ci_low", "kappa_ci_high"]
    assert copied.loc[0, columns].tolist() == pytest.approx(
        single.loc[0, columns].tolist()
    )
    # Ten conversations leave kappa far from settled, copies or not.
    assert copied.loc[0, "kappa_ci_high"] - copied.loc[0, "kappa_ci_low"] > 0.4


def test_a_sheet_made_from_the_redacted_template_reads_back_against_the_notes(
    codebook, tmp_path
):
    from helpers.language import redact_excerpts

    # The step's blank sheet shows redacted text; reading it back must accept that
    # text for its own excerpt, and still refuse it for any other.
    notes = pd.DataFrame(
        {
            "conversation_id": ["a"],
            "interviewer": ["Alex Moss"],
            "text": [
                "Interviewer: What stopped you?\n"
                "Customer: Thanks Alex. Mail me at ana@example.com or 202-555-0143.\n"
                "Customer: The shipping was a shock."
            ],
        }
    )
    excerpts = split_excerpts(notes)
    redacted = redact_excerpts(excerpts, notes)
    path = write_coding_sheet(redacted, codebook, tmp_path / "ana.xlsx")
    assert load_workbook(path)["coding"]["E2"].value == (
        "Thanks [name]. Mail me at [email] or [phone]."
    )
    fill_sheet(path, {1: [NO_CODE], 2: ["OBJ-SHIP"]})

    codings = read_coding_sheet(path, codebook, excerpts=excerpts, redacted=redacted)
    assert codings[["excerpt_id", "code"]].values.tolist() == [
        ["a-002", NO_CODE],
        ["a-003", "OBJ-SHIP"],
    ]
    with pytest.raises(HeardInputError) as caught:
        read_coding_sheet(path, codebook, excerpts=excerpts)
    assert (caught.value.row, caught.value.column) == (2, "text")
    swapped = redacted.assign(text=np.roll(redacted["text"].to_numpy(), 1))
    with pytest.raises(HeardInputError) as caught:
        read_coding_sheet(path, codebook, excerpts=excerpts, redacted=swapped)
    assert caught.value.row == 2
    assert "ana@example.com" not in caught.value.expected

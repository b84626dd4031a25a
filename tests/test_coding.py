"""Tests for helpers.coding: conversations, excerpts, coding sheets, agreement."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers.coding import read_conversations, split_excerpts
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


def test_malformed_front_matter_names_file_and_line(tmp_path):
    folder = copy_folder(tmp_path, [])
    (folder / "bad.md").write_text(
        "---\nconversation_id: bad\ncustomer_key: c_1\ndate: [2026-11-09\n---\nhi\n"
    )
    with pytest.raises(HeardInputError) as caught:
        read_conversations(folder)
    assert caught.value.file.endswith("bad.md")
    assert caught.value.row == 5  # the parser notices at the closing line


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
    known = {"c_aaaaaaaaaaa1", "c_aaaaaaaaaaa6"}
    assert len(read_conversations(folder, known_customers=known)) == 2


def test_transcript_without_sidecar_is_an_error(tmp_path):
    folder = copy_folder(tmp_path, ["2026-11-04.srt"])
    with pytest.raises(HeardInputError, match="front matter"):
        read_conversations(folder)

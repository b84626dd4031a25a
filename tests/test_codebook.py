"""Tests for helpers.codebook: the YAML codebook and REFI-QDA exchange."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers.codebook import (
    GUID_NAMESPACE,
    code_guid,
    codebook_to_qdc,
    load_codebook,
    read_qdc,
    save_codebook_yaml,
    save_qdc,
)
from helpers.errors import HeardInputError

FIXTURES = Path(__file__).parent / "fixtures" / "coding"
NS = {"q": "urn:QDA-XML:codebook:1.0"}


@pytest.fixture(scope="module")
def codebook():
    return load_codebook(FIXTURES / "codebook.yml")


def test_nested_yaml_gives_tree_order_and_depth(codebook):
    table = codebook.table()
    assert table["code"].tolist() == [
        "OBJ", "OBJ-PRICE", "OBJ-SHIP", "OBJ-SIZE",
        "STAGE", "STAGE-RESEARCH", "STAGE-CHECKOUT", "DELIVERY",
    ]  # fmt: skip
    assert table.set_index("code")["depth"].to_dict()["OBJ-PRICE"] == 1
    assert table.set_index("code")["path"]["STAGE-CHECKOUT"] == "STAGE > STAGE-CHECKOUT"
    assert codebook.version == "3"
    assert codebook.ids(codable_only=True) == [
        "OBJ-PRICE", "OBJ-SHIP", "OBJ-SIZE", "STAGE-RESEARCH", "STAGE-CHECKOUT",
        "DELIVERY",
    ]  # fmt: skip
    assert codebook.branch("STAGE") == ["STAGE", "STAGE-RESEARCH", "STAGE-CHECKOUT"]
    assert codebook["OBJ-PRICE"].keywords == ("expensive", "price", "cost too much")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "codebook.yml"
    path.write_text(text)
    return path


def test_duplicate_id_names_its_line(tmp_path):
    path = write(
        tmp_path,
        "version: 1\ncodes:\n  - id: A\n    name: One\n  - id: B\n    name: Two\n"
        "    children:\n      - id: A\n        name: Again\n",
    )
    with pytest.raises(HeardInputError) as caught:
        load_codebook(path)
    assert (caught.value.row, caught.value.column) == (8, "id")
    assert caught.value.found == "A"


def test_missing_name_names_its_line(tmp_path):
    path = write(tmp_path, "version: 1\ncodes:\n  - id: A\n    name: One\n  - id: B\n")
    with pytest.raises(HeardInputError) as caught:
        load_codebook(path)
    assert (caught.value.row, caught.value.column) == (5, "name")


def test_unknown_parent_and_bad_yaml(tmp_path):
    path = write(tmp_path, "codes:\n  - id: A\n    name: One\n    parent: Z\n")
    with pytest.raises(HeardInputError, match="parent"):
        load_codebook(path)
    path = write(tmp_path, "codes:\n  - id: A\n   name: [One\n")
    with pytest.raises(HeardInputError) as caught:
        load_codebook(path)
    assert caught.value.row is not None


def test_flat_codes_linked_by_parent(tmp_path):
    path = write(
        tmp_path,
        "codes:\n  - {id: A, name: One}\n  - {id: A1, name: Sub, parent: A}\n",
    )
    assert load_codebook(path).ancestors("A1") == ["A"]


# ---------------------------------------------------------------- REFI-QDA


def test_guids_are_uuid5_of_the_id_and_stable(codebook):
    assert (
        code_guid("OBJ-PRICE") == str(uuid.uuid5(GUID_NAMESPACE, "OBJ-PRICE")).upper()
    )
    assert codebook_to_qdc(codebook) == codebook_to_qdc(codebook)


def test_export_validates_against_the_refi_qda_codebook_schema(codebook, tmp_path):
    # A hard import: xmlschema is a dependency, and a skip would pass unvalidated.
    import xmlschema

    schema = xmlschema.XMLSchema(FIXTURES / "Codebook.xsd")
    target = save_qdc(codebook, tmp_path / "codebook.qdc")
    schema.validate(target)
    # the schema is strict enough to catch a mistake: no isCodable -> invalid
    broken = target.read_text().replace(' isCodable="true"', "", 1)
    assert not schema.is_valid(broken)


def test_export_nests_codes_as_in_the_tree(codebook):
    root = ET.fromstring(codebook_to_qdc(codebook).encode())
    assert root.tag == "{urn:QDA-XML:codebook:1.0}CodeBook"
    top = root.findall("q:Codes/q:Code", NS)
    assert [c.get("name") for c in top] == [
        "Objections",
        "Decision stages",
        "Delivery speed",
    ]
    under = top[0].findall("q:Code", NS)
    assert [c.get("guid") for c in under] == [
        code_guid(i) for i in ("OBJ-PRICE", "OBJ-SHIP", "OBJ-SIZE")
    ]
    assert top[0].get("isCodable") == "false" and top[0].get("color") == "#D55E00"
    members = root.findall("q:Sets/q:Set/q:MemberCode", NS)
    assert [m.get("guid") for m in members] == [
        code_guid("OBJ-PRICE"),
        code_guid("OBJ-SHIP"),
    ]


def test_round_trip_keeps_ids_names_hierarchy_and_definitions(codebook, tmp_path):
    back = read_qdc(save_qdc(codebook, tmp_path / "codebook.qdc"))
    assert back == codebook  # every field of every code, the version and the sets
    again = load_codebook(save_codebook_yaml(back, tmp_path / "again.yml"))
    assert again == codebook


def test_round_trip_through_another_tools_file_stays_valid(tmp_path):
    # Another tool's file (targetGUID members, braced guids, no Heard ids) read
    # and written again must still be a valid REFI-QDA codebook, and reading
    # Heard's own export back must give the same codebook.
    import xmlschema

    schema = xmlschema.XMLSchema(FIXTURES / "Codebook.xsd")
    imported = read_qdc(FIXTURES / "other-tool.qdc")
    exported = save_qdc(imported, tmp_path / "again.qdc")
    schema.validate(exported)
    assert read_qdc(exported) == imported
    root = ET.parse(exported).getroot()
    members = root.findall("q:Sets/q:Set/q:MemberCode", NS)
    assert [m.get("guid") for m in members] == [
        code_guid("REVIEWS"),
        code_guid("RETURNS-POLICY"),
    ]


def test_import_from_another_tool(caplog):
    imported = read_qdc(FIXTURES / "other-tool.qdc")
    table = imported.table().set_index("code")
    # no Heard ids: made from the names, the second "Trust" made unique
    assert table.index.tolist() == ["TRUST", "REVIEWS", "RETURNS-POLICY", "TRUST-2"]
    assert table.loc["REVIEWS", "parent"] == "TRUST"
    assert table.loc["REVIEWS", "definition"] == "Mentions reviews or ratings."
    assert table.loc["REVIEWS", "color"] == "#0072B2"
    assert not table.loc["TRUST", "is_codable"]
    # MemberCode by targetGUID and by guid (braces and case ignored)
    assert imported.sets == {"Reassurance": ("REVIEWS", "RETURNS-POLICY")}
    assert "has no Heard id" in caplog.text


def test_import_rejects_unknown_member_and_bad_xml(tmp_path):
    text = (FIXTURES / "other-tool.qdc").read_text()
    bad_member = tmp_path / "member.qdc"
    bad_member.write_text(
        text.replace('000000000003"/>\n    </Set>', '0000000000aa"/>\n    </Set>')
    )
    with pytest.raises(HeardInputError, match="MemberCode"):
        read_qdc(bad_member)
    not_xml = tmp_path / "broken.qdc"
    not_xml.write_text("<CodeBook><Codes>\n<Code>\n</CodeBook>")
    with pytest.raises(HeardInputError) as caught:
        read_qdc(not_xml)
    assert caught.value.row == 3


def test_ids_that_differ_only_in_case_are_duplicates(tmp_path):
    # Coding sheets match codes case-blind, so OBJ-Price and OBJ-PRICE would
    # collide there: a coder's pick would be read as the other code.
    path = write(
        tmp_path,
        "version: 1\ncodes:\n  - id: OBJ-PRICE\n    name: Price\n"
        "  - id: OBJ-Price\n    name: Price again\n",
    )
    with pytest.raises(HeardInputError) as caught:
        load_codebook(path)
    assert (caught.value.row, caught.value.column) == (5, "id")
    assert caught.value.found == "OBJ-Price"


def test_a_codebook_without_codes_is_an_error(tmp_path):
    with pytest.raises(HeardInputError, match="at least one code"):
        load_codebook(write(tmp_path, "version: 1\ncodes: []\n"))


def test_a_single_keyword_need_not_be_a_list(tmp_path):
    path = write(
        tmp_path, "version: 1\ncodes:\n  - id: A\n    name: One\n    keywords: 404\n"
    )
    assert load_codebook(path)["A"].keywords == ("404",)


def test_a_codebook_not_in_utf8_names_its_line(tmp_path):
    path = tmp_path / "codebook.yml"
    path.write_bytes(b"version: 1\ncodes:\n  - id: A\n    name: Caf\xe9\n")
    with pytest.raises(HeardInputError) as caught:
        load_codebook(path)
    assert caught.value.row == 4
    assert "UTF-8" in caught.value.expected

"""Tests for helpers.phones: E.164 from the ways people and spreadsheets write numbers.

Expected E.164 strings are written out by hand from the numbering plans (UK +44
drops the trunk 0; NANP +1 keeps all ten digits); the property tests check the
normaliser against phonenumbers' own formatting of the same number.
"""

from __future__ import annotations

import pandas as pd
import phonenumbers
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import phones
from helpers.phones import normalise_phones

E164 = phonenumbers.PhoneNumberFormat.E164


def normalise(numbers, regions, **options) -> pd.DataFrame:
    return normalise_phones(pd.Series(numbers), pd.Series(regions), **options)


@pytest.mark.parametrize(
    ("text", "region", "e164"),
    [
        ("07700 900123", "GB", "+447700900123"),
        ("+44 7700 900123", "US", "+447700900123"),
        ("'+44 7700 900123", "US", "+447700900123"),  # spreadsheet apostrophe
        ("0044 7700 900123", "GB", "+447700900123"),  # UK international prefix
        ("011 44 20 7946 0018", "US", "+442079460018"),  # US international prefix
        ("7700900123", "GB", "+447700900123"),  # lost its leading zero
        ("(202) 555-0111", "US", "+12025550111"),
        ("202.555.0111", "US", "+12025550111"),
        ("1-202-555-0111", "US", "+12025550111"),
        ("030 901820", "DE", "+4930901820"),
    ],
)
def test_numbers_become_e164(text, region, e164):
    assert normalise([text], [region])["phone_e164"].tolist() == [e164]


def test_uk_fictional_range_is_possible_but_not_valid():
    result = normalise(["07700 900123", "020 7946 0018"], ["GB", "GB"])

    assert result["phone_status"].tolist() == ["possible", "valid"]
    assert result["is_callable"].tolist() == [True, True]
    strict = normalise(["07700 900123", "020 7946 0018"], ["GB", "GB"], keep="valid")
    assert strict["is_callable"].tolist() == [False, True]


def test_us_555_01xx_is_valid_with_its_zone():
    result = normalise(["202-555-0111"], ["US"]).iloc[0]

    assert result["phone_status"] == "valid"
    assert result["phone_region"] == "US"
    assert result["timezone"] == "America/New_York"
    assert result["phone_national"] == "(202) 555-0111"


@pytest.mark.parametrize(
    ("text", "extension"),
    [
        ("+1 202-555-0111 ext. 42", "42"),
        ("(202) 555-0111 x42", "42"),
        ("202 555 0111 #7", "7"),
        ("202 555 0111 extension 305", "305"),
    ],
)
def test_extensions_are_split_off(text, extension):
    result = normalise([text], ["US"]).iloc[0]

    assert result["phone_e164"] == "+12025550111"
    assert result["phone_extension"] == extension


@pytest.mark.parametrize("text", ["1.20256E+10", "2.02555E+11", "4.47701E+11"])
def test_scientific_notation_is_damaged_and_not_repaired(text):
    result = normalise([text], ["US"]).iloc[0]

    assert result["phone_status"] == "damaged"
    assert result["phone_e164"] is None
    assert not result["is_callable"]


def test_float_looking_number_is_damaged():
    # Parsed as text, '12025550111.0' would give +120255501110, a different number.
    result = normalise(["12025550111.0"], ["US"]).iloc[0]
    assert result["phone_status"] == "damaged"


def test_blank_and_garbage():
    result = normalise([None, "", "   ", "call me", "12"], ["US"] * 5)
    assert result["phone_status"].tolist() == [
        "missing",
        "missing",
        "missing",
        "invalid",
        "invalid",
    ]
    assert not result["is_callable"].any()


def test_lost_plus_is_read_only_when_the_result_is_valid():
    # 44 20 7946 0018 without '+' for a US customer is a valid London number;
    # 44 7700 900123 (a fictional range, only possible) is not guessed.
    result = normalise(["442079460018", "447700900123"], ["US", "US"])
    assert result["phone_e164"].tolist() == ["+442079460018", None]
    assert result["phone_status"].tolist() == ["valid", "invalid"]


def test_index_is_kept_and_rows_align():
    numbers = pd.Series(["07700 900123", "(202) 555-0111"], index=[10, 3])
    regions = pd.Series(["GB", "US"], index=[10, 3])

    result = normalise_phones(numbers, regions)
    assert list(result.index) == [10, 3]
    assert result.loc[3, "phone_e164"] == "+12025550111"


def test_phonenumbers_runs_once_per_distinct_number(monkeypatch):
    calls = []
    real_parse = phonenumbers.parse

    def counting_parse(*args, **kwargs):
        calls.append(args)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    phones._parse_one.cache_clear()
    numbers = ["1-202-555-0111", "1 (202) 555-0111", "+1 202 555 0123", "2025550199"]
    result = normalise(numbers * 250, ["US"] * 1000)

    # 1,000 rows. A national number that starts with its own country code (1…)
    # is left to phonenumbers; the first two reduce to the same digits, so one
    # call. The other two are settled from the metadata without a call.
    assert len(calls) == 1
    assert result["phone_e164"].iloc[:4].tolist() == [
        "+12025550111", "+12025550111", "+12025550123", "+12025550199",
    ]  # fmt: skip


def test_judged_numbers_must_come_back_one_row_each(monkeypatch):
    # Results are fetched by position: a dropped row must raise, not shift zones.
    judge = phones._judge_numbers
    monkeypatch.setattr(phones, "_judge_numbers", lambda numbers: judge(numbers)[1:])
    with pytest.raises(RuntimeError, match="returned 1 rows for 2 distinct numbers"):
        normalise(["07700 900123", "(202) 555-0111"], ["GB", "US"])


def test_bad_keep_rule_is_refused():
    with pytest.raises(ValueError, match="keep"):
        normalise(["1"], ["US"], keep="maybe")


def test_zone_for_country():
    assert phones.zone_for_country("GB") == "Europe/London"
    assert phones.zone_for_country("de ") == "Europe/Berlin"  # Busingen agrees
    assert phones.zone_for_country(None) is None
    assert phones.zone_for_country("XX") is None


@pytest.mark.parametrize("region", ["US", "CA", "AU", "RU", "BR", "MX", "ES"])
def test_a_country_with_several_offsets_gives_no_zone(region):
    assert phones.zone_for_country(region) is None


def test_zones_that_differ_only_in_summer_do_not_agree():
    # Phoenix keeps standard time; Denver moves its clocks in March.
    assert phones.agreed_zone(("America/Phoenix", "America/Denver")) is None
    assert phones.agreed_zone(("America/Phoenix",)) == "America/Phoenix"
    assert phones.agreed_zone(("Etc/Unknown",)) is None
    assert phones.agreed_zone(("Europe/Jersey", "Europe/London"), "GB") == (
        "Europe/London"
    )
    assert phones.agreed_zone(("Europe/Jersey", "Europe/London"), "JE") == (
        "Europe/Jersey"
    )


# Property tests -----------------------------------------------------------------

REGIONS = ["US", "GB", "DE", "FR", "AU", "IN", "CA", "ES"]


@st.composite
def valid_numbers(draw):
    """A valid number: a region's example number with its last digits redrawn."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number(region)
    national = str(example.national_number)
    tail = draw(st.integers(0, 9999))
    digits = national[:-4] + f"{tail:04d}"
    number = phonenumbers.parse("+" + str(example.country_code) + digits)
    if not phonenumbers.is_valid_number(number):
        number = example
    return region, number


FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
]


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(valid_numbers(), st.sampled_from(FORMATS)), min_size=1,
                max_size=25))  # fmt: skip
def test_any_written_form_normalises_back_to_the_same_e164(cases):
    written = [
        phonenumbers.format_number(number, style).replace("tel:", "")
        for (_, number), style in cases
    ]
    regions = [region for (region, _), _ in cases]
    numbers = [number for (_, number), _ in cases]

    result = normalise(written, regions)
    assert result["phone_e164"].tolist() == [
        phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
        for n in numbers
    ]
    assert (result["phone_status"] == "valid").all()
    assert result["phone_region"].tolist() == [
        phonenumbers.region_code_for_number(n) for n in numbers
    ]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(valid_numbers(), st.sampled_from(FORMATS)), min_size=1,
             max_size=12),
    st.randoms(use_true_random=False),
)  # fmt: skip
def test_shuffling_rows_never_changes_the_result(cases, random):
    numbers = [
        phonenumbers.format_number(number, style).replace("tel:", "")
        for (_, number), style in cases
    ]
    regions = [region for (region, _), _ in cases]
    frame = pd.DataFrame({"number": numbers, "region": regions})
    order = list(frame.index)
    random.shuffle(order)
    shuffled = frame.loc[order]

    straight = normalise_phones(frame["number"], frame["region"])
    mixed = normalise_phones(shuffled["number"], shuffled["region"])
    pd.testing.assert_frame_equal(mixed.loc[straight.index], straight)


KEY_REGIONS = ["US", "GB", "DE", "FR", "AU", "IN", "CA", "IT", "BR", "MX", "JP", ""]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "+", "00", "011", "0", "1"]),
            st.text("0123456789", min_size=3, max_size=14),
            st.sampled_from(KEY_REGIONS),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_metadata_pass_agrees_with_phonenumbers(cases):
    keys = [prefix + digits for prefix, digits, _ in cases]
    regions = [region for _, _, region in cases]

    fast, settled = phones.parse_keys_fast(keys, regions)
    for i in settled.nonzero()[0]:
        expected = phones._parse_one(keys[i], regions[i])
        expected = expected or (None, None, "invalid", None, None)
        found = tuple(None if pd.isna(v) else v for v in fast.iloc[i])
        assert found == expected, (keys[i], regions[i])


@pytest.mark.parametrize(
    ("number", "region", "zone"),
    [
        ("+1 800 555 0199", "US", None),  # toll-free: Adak to Guam
        ("+61 412 345 678", "AU", None),  # mobile: Perth to Lord Howe
        ("08 9222 1111", "AU", None),  # area code 08: Adelaide and Perth
        ("020 7946 0000", "GB", "Europe/London"),
        ("(212) 555-0111", "US", "America/New_York"),
        ("07400 123456", "GB", "Europe/London"),  # mobile: London, Jersey, ...
        ("07797 123456", "JE", "Europe/Jersey"),
    ],
)
def test_a_number_gets_a_zone_only_when_its_candidates_agree(number, region, zone):
    result = normalise_phones(pd.Series([number]), pd.Series([region]))
    assert result.loc[0, "phone_status"] == "valid"
    assert result.loc[0, "timezone"] == zone


ZONE_REGIONS = [*KEY_REGIONS[:-1], "RU", "KZ", "CN", "AR", "ID", "JE", "ES", "NZ"]


def test_metadata_pass_agrees_with_phonenumbers_on_every_number_type():
    keys, regions = [], []
    for region in ZONE_REGIONS:
        for kind in vars(phonenumbers.PhoneNumberType).values():
            if not isinstance(kind, int):
                continue
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                keys.append(phonenumbers.format_number(number, E164))
                regions.append(region)

    fast, settled = phones.parse_keys_fast(keys, regions)
    assert settled.sum() > 100
    for i in settled.nonzero()[0]:
        expected = phones._parse_one(keys[i], regions[i])
        found = tuple(None if pd.isna(v) else v for v in fast.iloc[i])
        assert found == expected, (keys[i], regions[i])


def test_metadata_pass_agrees_with_phonenumbers_on_regions_sharing_a_code():
    # A +1 or +44 number of another region, typed without its code by a
    # customer of the main region, is assigned among the regions sharing it.
    keys, regions = [], []
    for code, main in ((1, "US"), (44, "GB")):
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
            for kind in vars(phonenumbers.PhoneNumberType).values():
                number = isinstance(kind, int) and (
                    phonenumbers.example_number_for_type(region, kind)
                )
                if number:
                    e164 = phonenumbers.format_number(number, E164)
                    keys += [e164, e164[1 + len(str(code)) :]]
                    regions += [main, main]

    fast, settled = phones.parse_keys_fast(keys, regions)
    assert settled.sum() > 100
    for i in settled.nonzero()[0]:
        expected = phones._parse_one(keys[i], regions[i])
        expected = expected or (None, None, "invalid", None, None)
        found = tuple(None if pd.isna(v) else v for v in fast.iloc[i])
        assert found == expected, (keys[i], regions[i])


def test_whitespace_is_what_python_strips():
    expected = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    assert expected == phones.WHITESPACE


def test_extension_split_agrees_with_the_full_expression():
    texts = pl.Series([
        "+1 202 555 0111 ext. 42", "202-555-0111 x7", "(202) 555-0111 EXT:9",
        "020 7946 0000 #12", "+44 20 7946 0000 extension 123", "202 555 0111",
        "", "202\n555 0111", "0x12", "12025550111 x", "tel#", "+1 202 555 0111X3",
    ])  # fmt: skip
    expected = texts.str.extract_groups(phones.EXTENSION)
    found = phones._split_extensions(texts)
    assert found["main"].to_list() == expected.struct.field("main").to_list()
    assert found["ext"].to_list() == expected.struct.field("ext").to_list()

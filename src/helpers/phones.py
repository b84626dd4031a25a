"""Phone numbers as customers typed them, turned into E.164 with ``phonenumbers``.

Every number is parsed with the customer's own country as the default region, so a
UK number written ``07700 900123`` and a US number written ``(202) 555-0111`` both
come out in E.164. Numbers a spreadsheet has already mangled are flagged, never
"repaired": the digits a repair would need are gone.

``phonenumbers`` is slow per call (tens of microseconds), so it runs once per
distinct pair of digits and region, never once per row.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import pandas as pd
import phonenumbers
from phonenumbers import PhoneNumberFormat, timezone

log = logging.getLogger(__name__)

PHONE_STATUSES = ("valid", "possible", "invalid", "damaged", "missing")
KEEP_RULES = ("possible", "valid")
CALLABLE = {"possible": {"valid", "possible"}, "valid": {"valid"}}

# A spreadsheet showing a long number in scientific notation: the digits past the
# shown precision are lost for good.
SCIENTIFIC = r"^[+-]?\d+(?:[.,]\d+)?[eE]\+?\d+$"
# A number that went through a float on its way out: '12025550111.0'.
FLOAT_LIKE = r"^\+?\d+\.0+$"
EXTENSION = (
    r"(?i)^(?P<main>.*?)(?:\s*(?:ext\.?|extension|ext:|x|#)\s*(?P<ext>\d{1,7}))?$"
)
UNKNOWN_ZONE = "Etc/Unknown"
COLUMNS = [
    "phone_e164",
    "phone_national",
    "phone_extension",
    "phone_status",
    "phone_region",
    "timezone",
    "is_callable",
]


def normalise_phones(
    numbers: pd.Series, regions: pd.Series, *, keep: str = "possible"
) -> pd.DataFrame:
    """Return each phone number in E.164 with its status, region and time zone.

    Parameters
    ----------
    numbers : Series
        Phone numbers as text, in any format a person or a platform writes them.
        Leading apostrophes (added by spreadsheets and some exports) are ignored.
    regions : Series
        ISO 3166 alpha-2 country code per row (same index), used as the default
        region for numbers written without ``+``; blank means unknown.
    keep : {"possible", "valid"}
        Which numbers are callable: ``possible`` keeps numbers of a plausible
        length for their country (needed for fictional ranges such as UK
        07700 900xxx); ``valid`` keeps only numbers in an assigned range.

    Returns
    -------
    DataFrame
        Same index as `numbers`, columns ``phone_e164`` (``+447700900123``),
        ``phone_national`` (``07700 900123``), ``phone_extension`` (digits or
        None), ``phone_status`` (one of ``valid``, ``possible``, ``invalid``,
        ``damaged``, ``missing``), ``phone_region`` (ISO code of the number's
        country), ``timezone`` (IANA name, first candidate of
        ``phonenumbers.timezone``, None when unknown) and ``is_callable``.

    Raises
    ------
    ValueError
        When `keep` is not ``possible`` or ``valid``, or the two Series differ in
        length.

    Notes
    -----
    ``damaged`` marks numbers a spreadsheet or program has already changed:
    scientific notation (``1.20256E+10``: the hidden digits are gone) and
    float-looking numbers (``12025550111.0``). The second still holds its digits,
    but it went through a float, which also drops leading zeros and a ``+``, and
    parsing the text as it stands gives a different, valid-looking number; both
    are flagged so a person looks them up instead of a caller dialling a stranger.

    ``00`` and ``011`` international prefixes are understood when they are the
    dialling prefix of the default region. A number stored as a spreadsheet number
    loses its leading zero (``7700900123`` for ``07700 900123``); parsing with the
    region's rules still reads it. A number that lost its ``+`` or ``00``
    (``447700900123`` for a US customer) is read as international only when the
    result is a valid number, so that no digits are guessed.
    """
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be 'possible' or 'valid', got {keep!r}")
    if len(numbers) != len(regions):
        raise ValueError(
            f"numbers and regions differ in length: {len(numbers)} != {len(regions)}"
        )

    # Work on distinct (text, region) pairs: a customer base repeats both a lot.
    pairs = pd.DataFrame(
        {"text": _as_text(numbers).fillna("").to_numpy(), "region": _as_region(regions)}
    )
    codes, _ = pd.factorize(pairs["text"] + "\x1f" + pairs["region"])
    distinct = pairs.iloc[pd.Series(range(len(pairs))).groupby(codes).first()]
    distinct = distinct.reset_index(drop=True)
    parsed = _parse_distinct(distinct["text"], distinct["region"])

    # Spread back to rows and apply the keep rule.
    result = parsed.iloc[codes].set_axis(numbers.index)
    result = result.astype(object).where(result.notna(), None)
    result["is_callable"] = result["phone_status"].isin(CALLABLE[keep])
    log.info(
        "normalised %d phone numbers (%d distinct): %s",
        len(result),
        len(distinct),
        result["phone_status"].value_counts().to_dict(),
    )
    return result[COLUMNS]


def _as_text(numbers: pd.Series) -> pd.Series:
    """Return the numbers as stripped text without leading apostrophes."""
    text = numbers.astype("string").str.strip().str.lstrip("'").str.strip()
    return text.where(text.notna() & (text != ""), None).astype(object)


def _as_region(regions: pd.Series) -> list[str]:
    """Return upper-case two-letter regions ('' when unknown)."""
    text = regions.astype("string").str.strip().str.upper().fillna("")
    return [r if len(r) == 2 and r.isalpha() else "" for r in text]


def _parse_distinct(texts: pd.Series, regions: pd.Series) -> pd.DataFrame:
    """Parse distinct (text, region) pairs; reduce to digits before parsing."""
    status = pd.Series("missing", index=texts.index, dtype=object)
    present = texts != ""
    damaged = present & (
        texts.str.match(SCIENTIFIC) | texts.str.match(FLOAT_LIKE)
    ).fillna(False)
    status[damaged] = "damaged"

    # Split the extension off and keep a '+' plus digits: the parse key.
    parts = texts.str.extract(EXTENSION)
    digits = parts["main"].str.replace(r"\D", "", regex=True)
    plus = parts["main"].str.lstrip().str.startswith("+")
    keys = (plus.map({True: "+", False: ""}) + digits).where(present & ~damaged)
    parsed = [
        _parse_one(key, region) if isinstance(key, str) and key else None
        for key, region in zip(keys, regions, strict=True)
    ]
    frame = pd.DataFrame(
        [p or (None, None, "invalid", None, None) for p in parsed],
        index=texts.index,
        columns=[
            "phone_e164",
            "phone_national",
            "phone_status",
            "phone_region",
            "timezone",
        ],
    )
    frame["phone_status"] = frame["phone_status"].where(present & ~damaged, status)
    frame["phone_extension"] = parts["ext"].where(present & ~damaged).astype(object)
    frame["phone_extension"] = frame["phone_extension"].where(
        frame["phone_extension"].notna(), None
    )
    return frame


@lru_cache(maxsize=200_000)
def _parse_one(key: str, region: str) -> tuple | None:
    """Return (e164, national, status, region, timezone) for one digit key."""
    number = _try_parse(key, region or None)
    if number is not None and not phonenumbers.is_possible_number(number):
        # A lost '+' or '00': accept the international reading only when valid.
        international = _try_parse("+" + key.lstrip("+"), None)
        if international is not None and phonenumbers.is_valid_number(international):
            number = international
    if number is None or not phonenumbers.is_possible_number(number):
        return None
    number_region = _valid_region(number, region)
    zone = None
    if number_region is not None:
        zones = timezone.time_zones_for_geographical_number(number)
        zone = zones[0] if zones and zones[0] != UNKNOWN_ZONE else None
    return (
        phonenumbers.format_number(number, PhoneNumberFormat.E164),
        phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        "possible" if number_region is None else "valid",
        number_region or phonenumbers.region_code_for_country_code(number.country_code),
        zone,
    )


def _valid_region(number, region: str) -> str | None:
    """Return the region the number is valid in, or None when it is not valid.

    Checking the customer's own region first avoids ``is_valid_number``'s walk
    through every region sharing the country code (about 25 for +1).
    """
    if region and phonenumbers.is_valid_number_for_region(number, region):
        return region
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.region_code_for_number(number)


def _try_parse(key: str, region: str | None):
    try:
        return phonenumbers.parse(key, region)
    except phonenumbers.NumberParseException:
        return None


def _zone_for_number(number) -> str | None:
    zones = timezone.time_zones_for_geographical_number(number)
    return zones[0] if zones and zones[0] != UNKNOWN_ZONE else None


@lru_cache(maxsize=512)
def zone_for_country(region: str | None) -> str | None:
    """Return an IANA time zone for a country code, or None when unknown.

    Parameters
    ----------
    region : str or None
        ISO 3166 alpha-2 code such as ``GB``.

    Returns
    -------
    str or None
        The first zone ``phonenumbers`` gives for the country's example number
        (``Europe/London`` for GB). Countries spanning several zones get their
        first one (``America/New_York`` for US): a rough guess that a phone
        number or address should replace.
    """
    if not region or not isinstance(region, str):
        return None
    example = phonenumbers.example_number(region.strip().upper())
    return _zone_for_number(example) if example is not None else None

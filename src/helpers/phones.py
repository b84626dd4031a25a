"""Phone numbers as customers typed them, turned into E.164 with ``phonenumbers``.

Every number is parsed with the customer's own country as the default region, so a
UK number written ``07700 900123`` and a US number written ``(202) 555-0111`` both
come out in E.164. Numbers a spreadsheet has already mangled are flagged, never
"repaired": the digits a repair would need are gone.

``phonenumbers`` is slow per call (50-150 microseconds with validation and
formatting), so numbers are reduced to distinct pairs of digits and region first,
and those are judged in one pass over whole columns with phonenumbers' own
metadata (its regular expressions for prefixes, possible lengths, valid ranges and
national layouts, applied by polars). Numbers that pass needs care for (regions
with prefix transform rules, non-geographic codes, a national number starting with
its own country code, a failure that may be a lost ``+``) go to
``phonenumbers.parse`` itself, once per distinct key.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import phonenumbers
import polars as pl
from phonenumbers import PhoneNumberFormat, PhoneNumberType, timezone
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.tzdata import TIMEZONE_DATA

from helpers.frames import number_rows_by_group

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
# A tel: URI (RFC 3966), as some CRMs and web forms write numbers.
TEL_URI = r"(?i)^\s*tel:"
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
        country), ``timezone`` (IANA name from ``phonenumbers.timezone``,
        see Notes) and ``is_callable``.

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

    Only valid numbers get a zone, and only when all of phonenumbers' candidate
    zones keep the same clock (:func:`agreed_zone`): a London landline gives
    ``Europe/London``, a UK mobile too (its candidates are London and the Crown
    Dependencies), but a US toll-free number (Adak to Guam), an Australian
    mobile (Perth to Sydney) or a Russian mobile gives None, so that the
    customer's country or the study's zone decides instead.
    """
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be 'possible' or 'valid', got {keep!r}")
    if len(numbers) != len(regions):
        raise ValueError(
            f"numbers and regions differ in length: {len(numbers)} != {len(regions)}"
        )

    texts = pl.Series("text", _as_text(numbers).fillna("").tolist(), dtype=pl.String)
    regions = pl.Series("region", list(_as_region(regions)), dtype=pl.String)
    result = normalise_phone_texts(texts, regions, keep=keep).to_pandas()
    result = result.astype(object).where(result.notna(), None).set_axis(numbers.index)
    result["is_callable"] = result["is_callable"].astype(bool)
    return result


def normalise_phone_texts(
    texts: pl.Series, regions: pl.Series, *, keep: str = "possible"
) -> pl.DataFrame:
    """Return :func:`normalise_phones` for polars columns, as a polars frame.

    Parameters
    ----------
    texts : polars Series
        Phone numbers as text (null when blank); surrounding white space and a
        leading apostrophe are removed here.
    regions : polars Series
        ISO 3166 alpha-2 default region per number (null or any other text
        means unknown).
    keep : {"possible", "valid"}
        Which numbers are callable, as in :func:`normalise_phones`.

    Returns
    -------
    polars DataFrame
        One row per number, in order, with the columns of :func:`normalise_phones`.
    """
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be 'possible' or 'valid', got {keep!r}")

    # Text rules row by row (cheaper than a join back on the texts), then
    # phonenumbers' rules once per distinct (digits, region).
    pairs = pl.DataFrame({
        "text": _clean_texts(texts).fill_null(""), "region": _clean_regions(regions),
    })  # fmt: skip
    parsed, n_distinct = _parse_rows(pairs)
    result = parsed.with_columns(
        pl.col("phone_status").is_in(CALLABLE[keep]).alias("is_callable")
    )
    log.info(
        "normalised %d phone numbers (%d distinct): %s",
        len(result),
        n_distinct,
        dict(result["phone_status"].value_counts(sort=True).iter_rows()),
    )
    return result.select(COLUMNS)


def _as_text(numbers: pd.Series) -> pd.Series:
    """Return the numbers as stripped text without leading apostrophes."""
    text = numbers.astype("string").str.strip().str.lstrip("'").str.strip()
    return text.where(text.notna() & (text != ""), None).astype(object)


def _as_region(regions: pd.Series) -> np.ndarray:
    """Return upper-case two-letter regions ('' when unknown)."""
    text = regions.astype("string").str.strip().str.upper().fillna("")

    # Check each distinct value once: a customer base has a few dozen countries.
    codes, distinct = pd.factorize(text)
    cleaned = [r if len(r) == 2 and r.isalpha() else "" for r in distinct]
    return np.array(cleaned, dtype=object)[codes]


# Python's white space (what str.strip removes), wider than polars' default:
# the characters c with chr(c).isspace().
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003"
    "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _clean_texts(texts: pl.Series) -> pl.Series:
    """Return :func:`_as_text` for a polars column."""
    text = texts.cast(pl.String).str.strip_chars(WHITESPACE)
    text = text.str.strip_chars_start("'").str.strip_chars(WHITESPACE)
    return text.replace("", None)


def _clean_regions(regions: pl.Series) -> pl.Series:
    """Return :func:`_as_region` for a polars column, once per distinct value."""
    values = regions.cast(pl.String).fill_null("")
    distinct = values.unique().to_list()
    cleaned = _as_region(pd.Series(distinct, dtype=object))
    return values.replace_strict(distinct, list(cleaned), return_dtype=pl.String)


def _parse_rows(pairs: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Parse (text, region) rows; reduce to digits before parsing.

    Returns `pairs` with the result columns (all but ``is_callable``) added,
    and the number of distinct (digits, region) keys judged.
    """
    # Flag spreadsheet damage; split the extension off; keep '+' and digits.
    col = pl.col
    main = col("main")
    texts = _read_tel_uris(pairs["text"])
    frame = pairs.with_columns(_split_extensions(texts)).with_columns(
        (col("text") != "").alias("present"),
        col("text").str.contains(SCIENTIFIC).alias("scientific"),
        col("text").str.contains(FLOAT_LIKE).alias("float_like"),
        pl.concat_str([
            pl.when(main.str.strip_chars_start().str.starts_with("+"))
            .then(pl.lit("+")).otherwise(pl.lit("")),
            main.str.replace_all(r"\D+", ""),
        ]).alias("key"),
    ).with_columns(
        (col("present") & (col("scientific") | col("float_like")))
        .fill_null(False).alias("damaged"),
    ).with_columns(
        (col("present") & ~col("damaged") & col("key").is_not_null()
         & (col("key") != "")).alias("usable"),
    )  # fmt: skip

    # Judge each distinct (digits, region) once; phonenumbers only for the rest.
    keys, inverse = _reduce_to_distinct(frame.filter("usable").select("key", "region"))
    # Only what the result needs, next to the judged keys.
    frame = frame.select("text", "region", "ext", "present", "damaged", "usable")
    rows = pl.repeat(None, len(frame), dtype=pl.Int64, eager=True)
    rows = rows.scatter(frame["usable"].arg_true(), inverse)
    # An unusable row's number is null, so its gathered results are null.
    frame = frame.hstack(_judge_keys(keys).select(pl.all().gather(rows)))
    usable = col("usable")
    clean = col("present") & ~col("damaged")
    return frame.select(
        "text", "region", "phone_e164", "phone_national", "phone_region", "timezone",
        pl.when(clean).then(col("ext")).alias("phone_extension"),
        pl.when(~col("present")).then(pl.lit("missing"))
        .when(col("damaged")).then(pl.lit("damaged"))
        .when(usable).then(col("phone_status").fill_null("invalid"))
        .otherwise(pl.lit("invalid")).alias("phone_status"),
    ), len(keys)  # fmt: skip


def _split_extensions(texts: pl.Series) -> pl.DataFrame:
    """Return ``main`` and ``ext`` of each text, as :data:`EXTENSION` splits it.

    Every extension marker holds an ``x`` or a ``#``, so only texts with one
    meet the (slow, lazy) expression; the others are all ``main``, or null when
    they span lines (the expression does not match them).
    """
    main = pl.select(
        pl.when(pl.lit(texts).str.contains("\n")).then(None).otherwise(pl.lit(texts))
    ).to_series()
    ext = pl.Series([None] * len(texts), dtype=pl.String)
    marked = texts.str.contains("[xX#]").fill_null(False)
    if marked.any():
        parts = texts.filter(marked).str.extract_groups(EXTENSION)
        rows = marked.arg_true()
        main = main.scatter(rows, parts.struct.field("main"))
        ext = ext.scatter(rows, parts.struct.field("ext"))
    return pl.DataFrame({"main": main, "ext": ext})


def _judge_keys(keys: pl.DataFrame) -> pl.DataFrame:
    """Return FAST_COLUMNS for distinct (key, region) pairs, in order: the
    metadata pass first, :func:`_parse_one` for the keys it does not settle."""
    fast = _parse_keys_frame(keys)
    slow = fast.filter(~pl.col("settled")).select("key", "region")
    parsed = pl.DataFrame(
        [_parse_one(key, region) or (None, None, "invalid", None, None)
         for key, region in slow.iter_rows()],
        schema=dict.fromkeys(FAST_COLUMNS, pl.String), orient="row",
    )  # fmt: skip
    rows = (~fast["settled"]).arg_true()
    return pl.DataFrame([fast[c].scatter(rows, parsed[c]) for c in FAST_COLUMNS])


def _reduce_to_distinct(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """Return the distinct rows of `frame` in first-seen order (nulls equal),
    and per row of `frame` the number of its distinct row: a gather by it is
    cheaper than a join back on the text columns."""
    groups = (
        frame.with_row_index("row")
        .group_by(frame.columns, maintain_order=True)
        .agg("row")
    )
    return groups.drop("row"), pl.Series(number_rows_by_group(groups["row"]))


def _read_tel_uris(texts: pl.Series) -> pl.Series:
    """Return `texts` with each tel: URI rewritten by :func:`_from_tel_uri`: it
    would lose its '+' with the other non-digits."""
    uri = texts.str.contains(TEL_URI).fill_null(False)
    if not uri.any():
        return texts
    read = [_from_tel_uri(text) for text in texts.filter(uri)]
    return texts.clone().scatter(uri.arg_true(), read)


def _from_tel_uri(uri: str) -> str:
    """Return a tel: URI (RFC 3966) as ``+digits ext N``, read by phonenumbers.

    Its ``+`` (or ``phone-context``) and ``;ext=`` survive; a URI phonenumbers
    cannot read without a region keeps its number part for the customer's region.
    """
    try:
        number = phonenumbers.parse(uri, None)
    except phonenumbers.NumberParseException:
        return uri[4:].split(";", 1)[0]
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return f"{e164} ext {number.extension}" if number.extension else e164


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
        zone = agreed_zone(timezone.time_zones_for_number(number), number_region)
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


@lru_cache(maxsize=4096)
def agreed_zone(zones: tuple, region: str | None = None) -> str | None:
    """Return one zone for candidates that keep the same clock, else None.

    Parameters
    ----------
    zones : tuple of str
        IANA zones, as ``phonenumbers.timezone.time_zones_for_number`` gives them.
    region : str or None
        ISO 3166 alpha-2 code of the number or the country; its main zone is
        preferred when it is a candidate.

    Returns
    -------
    str or None
        The region's main zone (the zone of its example fixed-line number, such
        as ``Europe/London`` for GB) when it is among the candidates, else the
        first candidate; None when there is none, or when two candidates differ
        in UTC offset on any day of the year (``America/Adak`` and
        ``America/New_York`` for a US toll-free number): picking one would put
        the calling window hours off for part of the customers.
    """
    known = [zone for zone in zones if zone != UNKNOWN_ZONE]
    offsets = {_year_of_offsets(zone) for zone in known}
    if len(offsets) != 1 or None in offsets:
        return None
    main = _main_zone(region)
    return main if main in known else known[0]


@lru_cache(maxsize=1024)
def _year_of_offsets(zone: str) -> tuple | None:
    """Return a zone's UTC offsets at noon UTC on every day of this year (None
    when the zone is not in the time zone database)."""
    try:
        clock = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    start = datetime(datetime.now(UTC).year, 1, 1, 12, tzinfo=UTC)
    days = (start + timedelta(days=n) for n in range(366))
    return tuple(day.astimezone(clock).utcoffset() for day in days)


@lru_cache(maxsize=512)
def _main_zone(region: str | None) -> str | None:
    """Return the single zone of a region's example number, else None."""
    example = phonenumbers.example_number(region) if region else None
    if example is None:
        return None
    zones = timezone.time_zones_for_geographical_number(example)
    return zones[0] if len(zones) == 1 and zones[0] != UNKNOWN_ZONE else None


@lru_cache(maxsize=512)
def zone_for_country(region: str | None) -> str | None:
    """Return the time zone of a country that keeps one clock, else None.

    Parameters
    ----------
    region : str or None
        ISO 3166 alpha-2 code such as ``GB``.

    Returns
    -------
    str or None
        The country's zone when all its zones in the time zone database's
        ``zone.tab`` keep the same UTC offset all year (``Europe/London`` for
        GB, ``Europe/Berlin`` for DE, chosen as :func:`agreed_zone` does). None
        for an unknown code and for a country spanning several offsets (US, CA,
        AU, RU, BR, MX, ES with the Canaries): a guess there could put the
        calling window hours off, so the study's zone is used and marked as
        assumed instead.
    """
    if not region or not isinstance(region, str):
        return None
    region = region.strip().upper()
    return agreed_zone(_country_zones().get(region, ()), region)


@lru_cache(maxsize=1)
def _country_zones() -> dict[str, tuple]:
    """Return the zones of each country, as the tzdata package's zone.tab lists them."""
    table = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    zones: dict[str, list] = {}
    for line in table.splitlines():
        if line and not line.startswith("#"):
            country, _, zone = line.split("\t")[:3]
            zones.setdefault(country, []).append(zone)
    return {country: tuple(names) for country, names in zones.items()}


# --------------------------------------------------------------------------------
# Fast path: phonenumbers' own metadata, applied to many numbers at once
# --------------------------------------------------------------------------------
# phonenumbers decides with regular expressions kept in its metadata (which
# prefixes to strip, which national numbers are possible or valid, how to lay them
# out). Applying those same expressions to a whole column at once (polars, Rust
# regex) gives the library's answers for ordinary numbers at a fraction of the
# per-call cost; anything unusual (a region with a prefix transform rule, a
# non-geographic code, a national number starting with the country code) is left
# to phonenumbers itself. tests/test_phones.py checks both paths agree.

TYPE_DESCS = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
    "pager", "uan", "voicemail", "fixed_line", "mobile",
)  # fmt: skip
FAST_COLUMNS = ["phone_e164", "phone_national", "phone_status", "phone_region",
                "timezone"]  # fmt: skip


def parse_keys_fast(keys: list, regions: list) -> tuple[pd.DataFrame, np.ndarray]:
    """Return phonenumbers' results for digit keys, and which rows it settled.

    Parameters
    ----------
    keys, regions : list of str
        ``+`` and digits (or digits alone), and the default region per key.

    Returns
    -------
    results : DataFrame
        :data:`FAST_COLUMNS` per key (None where not settled or invalid).
    settled : ndarray of bool
        False where the key needs :func:`phonenumbers.parse` itself.
    """
    frame = pl.DataFrame(
        {"key": keys, "region": regions}, schema={"key": pl.String, "region": pl.String}
    )
    found = _parse_keys_frame(frame)
    results = found.select(FAST_COLUMNS).to_pandas().astype(object)
    results = results.where(results.notna(), None)
    return results, found["settled"].to_numpy()


def _parse_keys_frame(keys: pl.DataFrame) -> pl.DataFrame:
    """Return `keys` (``key``, ``region``) with :data:`FAST_COLUMNS` and
    ``settled`` (False where phonenumbers itself must decide), in order."""
    empty = {c: pl.String for c in FAST_COLUMNS}
    frame = keys.with_row_index("i")
    if not len(frame):
        return frame.with_columns(
            *[pl.lit(None, pl.String).alias(c) for c in empty],
            pl.lit(False).alias("settled"),
        ).drop("i")
    settled = _settle_keys(frame)

    # Each key's settled row, by position (no join and sort on the index).
    rows = pl.repeat(None, len(frame), dtype=pl.Int64, eager=True)
    rows = rows.scatter(settled["i"], pl.int_range(len(settled), eager=True))
    return (
        frame.drop("i")
        .hstack(settled.select(pl.col(FAST_COLUMNS).gather(rows)))
        .with_columns(rows.is_not_null().alias("settled"))
    )


def _settle_keys(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``i`` and :data:`FAST_COLUMNS` of the keys of `frame` (``i``,
    ``key``, ``region``) the metadata pass settles, one row per key.

    A function of its own so that its routed and national tables (a dozen
    columns per key) are freed before the caller gathers the results.
    """
    routed = _route_keys(frame)
    national = pl.concat(
        [_strip_national_prefix(group, cc) for (cc,), group
         in routed.filter(pl.col("cc").is_not_null()).group_by("cc")]
        or [routed.clear().with_columns(pl.lit(None, pl.String).alias("status"))],
        how="diagonal_relaxed",
    )  # fmt: skip
    parts = [
        routed.filter(pl.col("invalid")).select(
            "i", *[pl.lit("invalid" if c == "phone_status" else None, pl.String)
                   .alias(c) for c in FAST_COLUMNS],
        )
    ]  # fmt: skip
    if len(national):
        done = _judge_distinct(national)
        # A key without '+' that fails may have lost its '+': phonenumbers decides.
        done = done.filter(
            (pl.col("phone_status") != "invalid") | pl.col("key").str.starts_with("+")
        )
        parts.append(done.select("i", *FAST_COLUMNS))
    return pl.concat(parts, how="vertical_relaxed").unique("i", keep="first")


def _judge_distinct(national: pl.DataFrame) -> pl.DataFrame:
    """Return :func:`_judge_numbers` per row of `national`, judging each distinct
    (country code, national number, default region) once: the ways one number
    is typed (``+1 202…``, ``202…``, ``001 202…``) reduce to the same three."""
    by = ["cc", "number", "region"]
    # ``sane`` depends on the number alone: it does not split a group.
    distinct, inverse = _reduce_to_distinct(national.select(*by, "sane"))
    judged = _judge_numbers(distinct.with_row_index("i")).sort("i").drop("i")

    # Fetched by position below: a missing or doubled row would shift the rest.
    if judged.height != distinct.height:
        raise RuntimeError(
            f"_judge_numbers returned {judged.height} rows for {distinct.height} "
            "distinct numbers, where each needs exactly one; this is a bug in "
            "helpers.phones, not in the export: please report it"
        )
    return national.select("i", "key", *by).hstack(
        judged.select(pl.all().gather(inverse))
    )


def _route_keys(frame: pl.DataFrame) -> pl.DataFrame:
    """Return each key's country code and national number, or a flag.

    Columns added: ``cc`` (int, null when the key needs the slow path or is
    invalid), ``number`` (national digits before prefix stripping), ``invalid``.
    """
    parts = []
    for (region,), group in frame.group_by("region"):
        meta = PhoneMetadata.metadata_for_region(region) if region else None
        digits = pl.col("key").str.strip_chars_start("+")
        plus = pl.col("key").str.starts_with("+")
        idd = (
            pl.col("key").str.extract(f"^({meta.international_prefix})", 1)
            if meta is not None and meta.international_prefix
            else pl.lit(None, pl.String)
        )
        group = group.with_columns(
            plus.alias("plus"), idd.alias("idd"), digits.alias("digits")
        ).with_columns(
            pl.when(pl.col("plus")).then(pl.col("digits"))
            .when(pl.col("idd").is_not_null())
            .then(pl.col("digits").str.slice(pl.col("idd").str.len_chars()))
            .alias("international")
        )  # fmt: skip
        parts.append(_split_country_code(group, meta))
    return pl.concat(parts, how="diagonal_relaxed")


def _split_country_code(group: pl.DataFrame, meta) -> pl.DataFrame:
    """Add ``cc``, ``number`` and ``invalid`` for one default region's keys, and
    drop the working columns :func:`_route_keys` added."""
    international = pl.col("international")
    code = pl.lit(None, pl.Int64)
    for length in (3, 2, 1):
        prefix = international.str.slice(0, length)
        known = prefix.is_in([str(c) for c in COUNTRY_CODES_GEO])
        code = pl.when(known).then(prefix.cast(pl.Int64)).otherwise(code)
    any_code = pl.lit(False)
    for length in (1, 2, 3):
        any_code = any_code | international.str.slice(0, length).is_in(
            [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]
        )
    own = meta.country_code if meta is not None else None
    simple_national = meta is not None and not meta.national_prefix_transform_rule
    national_ok = pl.lit(simple_national) & ~pl.col("digits").str.starts_with(str(own))
    is_international = international.is_not_null()
    # Lazy, so the country code expression is computed once.
    return (
        group.lazy()
        .with_columns(
            pl.when(is_international & ~international.str.starts_with("0"))
            .then(code)
            .when(~is_international & national_ok)
            .then(pl.lit(own, pl.Int64))
            .alias("cc"),
            pl.when(is_international)
            .then(international.str.slice(code.cast(pl.String).str.len_chars()))
            .otherwise(pl.col("digits"))
            .alias("number"),
            (pl.col("plus") & ~any_code & ~international.str.starts_with("0")).alias(
                "invalid"
            ),
        )
        # The working columns would ride along to every later table.
        .drop("plus", "idd", "digits", "international")
        .collect()
    )


def _strip_national_prefix(group: pl.DataFrame, cc: int) -> pl.DataFrame:
    """Strip the national prefix as phonenumbers.parse does, for one country."""
    meta = _main_metadata(cc)
    if meta is None or meta.national_prefix_transform_rule:
        return group.clear().with_columns(pl.lit(None, pl.String).alias("status"))
    number = pl.col("number")
    general = _fullmatch(number, meta.general_desc)
    if meta.national_prefix_for_parsing:
        prefix = number.str.extract(f"^({meta.national_prefix_for_parsing})", 1)
        stripped = number.str.slice(prefix.str.len_chars())
        keep_original = general & ~_fullmatch(stripped, meta.general_desc)
        candidate = (
            pl.when(prefix.is_not_null() & ~keep_original).then(stripped)
            .otherwise(number)
        )  # fmt: skip
        too_short = _length_status(candidate.str.len_chars(), meta.general_desc)
        number = (
            pl.when(too_short.is_in(["too_short", "local_only", "invalid_length"]))
            .then(number).otherwise(candidate)
        )  # fmt: skip
    # Lazy, so the prefix and its tests are computed once (common
    # subexpressions are only shared in lazy mode).
    return (
        group.lazy()
        .with_columns(number.alias("number"))
        .with_columns(pl.col("number").str.len_chars().is_between(2, 17).alias("sane"))
        .collect()
    )


def _judge_numbers(numbers: pl.DataFrame) -> pl.DataFrame:
    """Return E.164, national layout, status, region and zone per number."""
    parts = []
    for (cc,), group in numbers.group_by("cc"):
        meta = _main_metadata(cc)
        length = _length_status(pl.col("number").str.len_chars(), meta.general_desc)
        group = group.with_columns(
            (pl.col("sane") & length.is_in(["possible", "local_only"])).alias(
                "possible"
            ),
            pl.concat_str(pl.lit(f"+{cc}"), pl.col("number")).alias("phone_e164"),
            pl.lit(phonenumbers.region_code_for_country_code(cc)).alias("main"),
        )
        group = _valid_region_column(group, cc)
        group = group.with_columns(
            _national_layout(group["number"], meta).alias("phone_national"),
            pl.when(pl.col("valid_region").is_not_null()).then(pl.lit("valid"))
            .when(pl.col("possible")).then(pl.lit("possible"))
            .otherwise(pl.lit("invalid")).alias("phone_status"),
            pl.coalesce("valid_region", "main").alias("phone_region"),
        )  # fmt: skip
        parts.append(group.with_columns(_zone_prefix_column(group, cc)))
    judged = pl.concat(parts, how="diagonal_relaxed")
    usable = pl.col("phone_status") != "invalid"
    judged = judged.with_columns(
        [pl.when(usable).then(pl.col(c)).alias(c)
         for c in ("phone_e164", "phone_national", "phone_region")]
    ).with_columns(_zone_column(judged))  # fmt: skip
    return judged.select("i", *FAST_COLUMNS)


def _valid_region_column(group: pl.DataFrame, cc: int) -> pl.DataFrame:
    """Add ``valid_region``: the customer's region when the number is valid
    there, else the region phonenumbers assigns, when valid there."""
    number = pl.col("number")
    valid = pl.Series("valid_region", [None] * len(group), dtype=pl.String)
    # The customer's own region first, as in _valid_region.
    for region in group["region"].unique().to_list():
        meta = PhoneMetadata.metadata_for_region(region) if region else None
        if meta is None or meta.country_code != cc:
            continue
        mine = group.select(
            pl.col("sane") & (pl.col("region") == region) & _valid_for(number, meta)
        ).to_series()
        valid = valid.zip_with(~mine, pl.Series([region] * len(group)))
    # Else phonenumbers' own choice among the regions sharing the code, tried
    # only on the (usually few) numbers still without a region.
    rest = valid.is_null() & group["sane"]
    if rest.any():
        chosen = _shared_code_region(group["number"].filter(rest), cc)
        valid = valid.scatter(rest.arg_true(), chosen)
    return group.with_columns(valid)


def _shared_code_region(numbers: pl.Series, cc: int) -> pl.Series:
    """Return the region ``region_code_for_number`` picks for each national
    number of country code `cc`, null unless the number is valid there.

    The first region in phonenumbers' order that claims a number (by its
    leading digits, or by validity when it has none) picks it; every claim is
    tested in one pass, and validity only for the numbers each region picked.
    """
    number = pl.col("number")
    regions = {
        region: meta
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
        if (meta := PhoneMetadata.metadata_for_region(region)) is not None
    }
    claims = [
        pl.when(
            number.str.contains(f"^(?:{meta.leading_digits})")
            if meta.leading_digits
            else _valid_for(number, meta)
        ).then(pl.lit(region))
        for region, meta in regions.items()
    ]
    frame = pl.DataFrame({"number": numbers})
    picked = frame.select(pl.coalesce(claims or [pl.lit(None, pl.String)])).to_series()
    chosen = pl.repeat(None, len(numbers), dtype=pl.String, eager=True)
    for region in picked.drop_nulls().unique().to_list():
        meta = regions[region]
        rows = (picked == region).fill_null(False)
        if meta.leading_digits:
            # A region claimed by leading digits must still be valid.
            valid = frame.select(_valid_for(number, meta)).to_series()
            rows = rows & valid
        chosen = chosen.scatter(rows.arg_true(), region)
    return chosen.alias("valid_region")


def _valid_for(number: pl.Expr, meta) -> pl.Expr:
    """Whether numbers are valid for a region: phonenumbers' number-type test."""
    types = [getattr(meta, name) for name in TYPE_DESCS]
    any_type = pl.lit(False)
    for desc in types:
        any_type = any_type | _matches_desc(number, desc)
    return _matches_desc(number, meta.general_desc) & any_type


def _matches_desc(number: pl.Expr, desc) -> pl.Expr:
    """phonenumbers' _is_number_matching_desc: allowed length and pattern."""
    if desc is None or not desc.national_number_pattern:
        return pl.lit(False)
    matched = _fullmatch(number, desc)
    lengths = [n for n in (desc.possible_length or ()) if n > 0]
    if desc.possible_length and not lengths:
        return pl.lit(False)
    if lengths:
        matched = matched & number.str.len_chars().is_in(lengths)
    return matched


def _fullmatch(number: pl.Expr, desc) -> pl.Expr:
    if desc is None or not desc.national_number_pattern:
        return pl.lit(False)
    return number.str.contains(f"^(?:{desc.national_number_pattern})$").fill_null(False)


def _length_status(length: pl.Expr, desc) -> pl.Expr:
    """phonenumbers' _test_number_length for the general description."""
    possible = list(desc.possible_length or ())
    local = list(desc.possible_length_local_only or ())
    if not possible or possible[0] == -1:
        return pl.lit("invalid_length")
    return (
        pl.when(length.is_in(local)).then(pl.lit("local_only"))
        .when(length == possible[0]).then(pl.lit("possible"))
        .when(length < possible[0]).then(pl.lit("too_short"))
        .when(length > possible[-1]).then(pl.lit("too_long"))
        .when(length.is_in(possible[1:])).then(pl.lit("possible"))
        .otherwise(pl.lit("invalid_length"))
    )  # fmt: skip


def _national_layout(numbers: pl.Series, meta) -> pl.Series:
    """Format national numbers as format_number(NATIONAL) does: the first rule
    whose leading digits and pattern fit; the bare digits when none does."""
    layout = numbers.clone()
    open_rows = pl.Series([True] * len(numbers))
    for rule in meta.number_format or ():
        if not open_rows.any():
            break
        pattern = f"^(?:{rule.pattern})$"
        fits = open_rows & numbers.str.contains(pattern).fill_null(False)
        if rule.leading_digits_pattern:
            starts = numbers.str.contains(f"^(?:{rule.leading_digits_pattern[-1]})")
            fits = fits & starts.fill_null(False)
        if not fits.any():
            continue
        template = _national_template(rule)
        replaced = numbers.filter(fits).str.replace(pattern, template)
        layout = layout.scatter(fits.arg_true(), replaced)
        open_rows = open_rows & ~fits
    return layout


def _national_template(rule) -> str:
    """Return a rule's national layout as a polars replacement template."""
    template = rule.format
    prefix_rule = rule.national_prefix_formatting_rule
    if prefix_rule:
        template = re.sub(r"(\\\d)", lambda _: prefix_rule, template, count=1)
    return re.sub(r"\\(\d)", r"${\1}", template)


def _zone_prefix_column(group: pl.DataFrame, cc: int) -> pl.Series:
    """Return the key of ``TIMEZONE_DATA`` that ``time_zones_for_number`` reads
    for each valid number of one country code (null for the others).

    A geographical number (fixed line, or mobile where mobiles have areas) is
    read by the longest known prefix of its digits; any other type (mobile,
    toll-free, ...) by its country code alone, as phonenumbers does.
    """
    digits = pl.concat_str(pl.lit(str(cc)), pl.col("number"))
    longest = pl.lit(None, pl.String)
    for length, prefixes in _list_zone_prefixes(cc).items():
        prefix = digits.str.slice(0, length)
        longest = pl.when(prefix.is_in(prefixes)).then(prefix).otherwise(longest)
    code = str(cc)
    country = next(
        (code[:n] for n in range(len(code), 0, -1) if code[:n] in TIMEZONE_DATA), None
    )

    # Each region's valid numbers alone (a when/then would test every number).
    zones = pl.repeat(None, len(group), dtype=pl.String, eager=True)
    for region in group["valid_region"].drop_nulls().unique().to_list():
        meta = PhoneMetadata.metadata_for_region(region)
        mine = (group["valid_region"] == region).fill_null(False)
        geographical = _is_geographical(pl.col("number"), meta, cc)
        found = (
            group.filter(mine)
            .lazy()
            .select(
                pl.when(geographical)
                .then(longest)
                .otherwise(pl.lit(country, pl.String))
            )
        )
        zones = zones.scatter(mine.arg_true(), found.collect().to_series())
    return zones.alias("zone_prefix")


def _is_geographical(number: pl.Expr, meta, cc: int) -> pl.Expr:
    """phonenumbers' is_number_geographical, from the number's region metadata:
    its type is fixed line (or fixed line or mobile), or mobile in a country
    whose mobiles have areas."""
    other_type = pl.lit(False)
    for name in TYPE_DESCS[:-2]:
        other_type = other_type | _matches_desc(number, getattr(meta, name))
    areas = phonenumbers.is_number_type_geographical(PhoneNumberType.MOBILE, cc)
    mobile = _matches_desc(number, meta.mobile) & pl.lit(
        areas and not meta.same_mobile_and_fixed_line_pattern
    )
    fixed_line = _matches_desc(number, meta.fixed_line)
    return (
        _matches_desc(number, meta.general_desc) & ~other_type & (fixed_line | mobile)
    )


def _zone_column(judged: pl.DataFrame) -> pl.Series:
    """Time zone of valid numbers: :func:`agreed_zone` of the candidates that
    ``zone_prefix`` names, once per distinct prefix and region."""
    valid = judged.filter(pl.col("phone_status") == "valid")
    pairs = valid.select("zone_prefix", "phone_region").unique().rows()
    lookup = pl.DataFrame(
        [(prefix, region, agreed_zone(TIMEZONE_DATA.get(prefix, ()), region))
         for prefix, region in pairs],
        schema={"zone_prefix": pl.String, "phone_region": pl.String,
                "timezone": pl.String},
        orient="row",
    )  # fmt: skip
    zones = judged.select("zone_prefix", "phone_region", "phone_status").join(
        lookup, on=["zone_prefix", "phone_region"], how="left",
        maintain_order="left", nulls_equal=True,
    )  # fmt: skip
    return zones.select(
        pl.when(pl.col("phone_status") == "valid").then("timezone").alias("timezone")
    ).to_series()


@lru_cache(maxsize=512)
def _main_metadata(cc: int):
    region = phonenumbers.region_code_for_country_code(cc)
    if region in (None, "ZZ", "001"):
        return None
    return PhoneMetadata.metadata_for_region_or_calling_code(cc, region)


COUNTRY_CODES_GEO = [
    cc for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
    if "001" not in regions
]  # fmt: skip


@lru_cache(maxsize=512)
def _list_zone_prefixes(cc: int) -> dict[int, list[str]]:
    """Return the prefixes of ``TIMEZONE_DATA`` a number of country code `cc`
    can start with, by length, shortest first: the caller applies them in this
    order, so the longest prefix a number matches is applied last and wins."""
    code = str(cc)
    lengths: dict[int, list[str]] = {}
    for prefix in TIMEZONE_DATA:
        if prefix.startswith(code) or code.startswith(prefix):
            lengths.setdefault(len(prefix), []).append(prefix)
    return dict(sorted(lengths.items()))

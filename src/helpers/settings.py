"""The study's settings checked before any step runs: each one a step reads.

A time zone Heard cannot find, a country phonenumbers does not know or a connect
rate of 35 (meant as 35%) would otherwise surface halfway through a step, as a
traceback or as a quietly wrong call list. Each rule names the setting, what it
must be and, when ``study.yml`` sets it, the line it is on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml

from helpers.errors import HeardInputError

CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _is_zone(value) -> bool:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return bool(value)


def _is_region(value) -> bool:
    import phonenumbers

    return isinstance(value, str) and value.upper() in phonenumbers.SUPPORTED_REGIONS


def _is_date_or_none(value) -> bool:
    if value is None:
        return True
    try:
        return pd.notna(pd.Timestamp(str(value)))
    except ValueError:
        return False


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_share(low_open: bool, high_open: bool) -> Callable[[object], bool]:
    def test(value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        above = value > 0 if low_open else value >= 0
        below = value < 1 if high_open else value <= 1
        return above and below

    return test


def _one_of(*allowed) -> Callable[[object], bool]:
    return lambda value: value in allowed


def _is_bands(value) -> bool:
    return (
        isinstance(value, list) and bool(value) and value[0] == 0
        and all(_is_count(v) for v in value[1:]) and value == sorted(set(value))
    )  # fmt: skip


# (setting, test, what it must be). Only settings a step reads are listed.
RULES = (
    ("study.timezone", _is_zone, "an IANA time zone such as America/New_York"),
    ("study.default_country", _is_region, "a two-letter country code such as US"),
    ("study.store_opened", _is_date_or_none, "a date (YYYY-MM-DD) or nothing"),
    ("phones.keep", _one_of("possible", "valid"), "possible or valid"),
    ("consent.require", _one_of("accepts_marketing", "accepts_sms", "none"),
     "accepts_marketing, accepts_sms or none"),
    ("calling_window.start", lambda v: bool(CLOCK.match(str(v))), "a time as HH:MM"),
    ("calling_window.end", lambda v: bool(CLOCK.match(str(v))), "a time as HH:MM"),
    ("sampling.target_conversations", _is_count, "a whole number of at least 1"),
    ("sampling.expected_connect_rate", _is_share(True, False),
     "a share above 0 and at most 1 (0.35 for 35%)"),
    ("sampling.holdout_share", _is_share(False, True),
     "a share from 0 up to, not including, 1 (0.5 for half)"),
    ("exports.decimal", _one_of(".", ","), "'.' or ','"),
    ("exports.dayfirst", _one_of(None, True, False), "true, false or nothing"),
    ("exports.encoding", _one_of("auto", "utf-8", "utf-8-sig", "cp1252"),
     "auto, utf-8, utf-8-sig or cp1252"),
    ("exports.delimiter", _one_of("auto", ",", ";", "\t"), "auto, ',', ';' or tab"),
    ("exports.platform", _one_of("auto", "shopify", "woocommerce", "generic"),
     "auto, shopify, woocommerce or generic"),
    ("experiments.correction", _one_of("holm", "fdr_bh"), "holm or fdr_bh"),
    ("segments.lifecycle_bands", _is_bands,
     "days rising from 0 in whole numbers, such as [0, 30, 90, 180, 365]"),
)  # fmt: skip


def check_settings(config: dict, path: Path) -> list[HeardInputError]:
    """Return a problem for each setting a step could not use.

    Parameters
    ----------
    config : dict
        The study's merged configuration (defaults with ``study.yml`` over them).
    path : Path
        The study's ``study.yml``, named in each problem (with the line of the
        setting when the file sets it).

    Returns
    -------
    list of HeardInputError
        One per bad setting, in :data:`RULES` order, then the calling window's
        order and each month's segment names; ``column`` is the dotted setting.
    """
    lines = setting_lines(path)

    def problem(setting: str, expected: str, found) -> HeardInputError:
        return HeardInputError(
            path, row=lines.get(setting), column=setting, expected=expected,
            found=found, fix=f"correct {setting} in study.yml (docs/study-folder.md "
            "describes each setting)",
        )  # fmt: skip

    problems = [
        problem(setting, expected, value)
        for setting, test, expected in RULES
        if not test(value := _setting(config, setting))
    ]
    window = config.get("calling_window") or {}
    start, end = str(window.get("start")), str(window.get("end"))
    if CLOCK.match(start) and CLOCK.match(end) and start >= end:
        problems.append(
            problem("calling_window.end", f"a time after the start ({start})", end)
        )
    return problems + _segment_problems(config, problem)


def _segment_problems(config: dict, problem: Callable) -> list[HeardInputError]:
    """Return a problem for each segment a month (or ``sampling.segments``)
    names that no rule or lifecycle stage defines."""
    from helpers.segments import lifecycle_labels

    settings = config.get("segments") or {}
    defined = sorted(n for n, rule in (settings.get("rules") or {}).items() if rule)
    bands = settings.get("lifecycle_bands")
    stages = lifecycle_labels(bands) if _is_bands(bands) else []
    known = {*defined, *(f"lifecycle_{stage}" for stage in stages)}
    named = {"sampling.segments": _setting(config, "sampling.segments")}
    for month, block in sorted((config.get("months") or {}).items()):
        named[f"months.{month}.segments"] = (block or {}).get("segments")
    return [
        problem(setting, f"segment names defined under segments.rules: {defined} "
                "(or lifecycle_<stage>)", segment)
        for setting, segments in named.items()
        for segment in ([segments] if isinstance(segments, str) else segments or [])
        if segment not in known
    ]  # fmt: skip


def _setting(config: dict, dotted: str):
    """Return a nested setting by its dotted name (None when absent)."""
    value = config
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def setting_lines(path: Path) -> dict[str, int]:
    """Return the line of each setting ``study.yml`` sets, by dotted name.

    Parameters
    ----------
    path : Path
        A ``study.yml``; a missing or unreadable file gives an empty mapping.

    Returns
    -------
    dict
        ``{"study.timezone": 3, "months.2026-11.segments": 12, ...}``, lines
        counted from 1.
    """
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    lines: dict[str, int] = {}
    todo = [("", root)]
    while todo:
        prefix, node = todo.pop()
        if not isinstance(node, yaml.MappingNode):
            continue
        for key, value in node.value:
            name = f"{prefix}{key.value}"
            lines[name] = key.start_mark.line + 1
            todo.append((f"{name}.", value))
    return lines

"""Formatting for display: numbers stay raw in files and are dressed only here.

Rates show as ``12.3%``, differences as ``+2.1 pp [0.4, 3.8]``, p-values to two
figures or ``<0.001``, and with small counts a rate always carries its denominator.
"""

from __future__ import annotations

import math
import re

import pandas as pd


def format_decimal(value: float, *, digits: int = 2, sign: str = "") -> str:
    """Return `value` to `digits` decimals; a value that rounds to zero reads
    ``0.00``, never ``-0.00``.

    Parameters
    ----------
    value : float
        The number; a bootstrap bound of -0.0004 is zero at two decimals.
    digits : int
        Decimals shown.
    sign : {"", "+"}
        ``"+"`` writes the sign of positive numbers too (``+2.1``, ``+0.0``).

    Returns
    -------
    str
        The number as text, thousands separated by commas (``1,234.50``), with
        no sign a reader would take for a direction when the digits are all zero.
    """
    if sign not in ("", "+"):
        raise ValueError(f"sign must be '' or '+', got {sign!r}")
    # Adding 0.0 turns the -0.0 that rounding leaves into 0.0.
    return f"{round(value, digits) + 0.0:{sign},.{digits}f}"


def format_rate(rate: float, *, digits: int = 1) -> str:
    """Return a proportion as a percentage: ``0.1234`` -> ``"12.3%"``."""
    if rate is None or math.isnan(rate):
        return "–"
    return f"{format_decimal(100 * rate, digits=digits)}%"


def format_count_rate(successes: int, trials: int, *, digits: int = 0) -> str:
    """Return ``"12% (3 of 25)"``: a rate with its denominator."""
    if not trials:
        return f"– (0 of {trials})"
    return f"{format_rate(successes / trials, digits=digits)} ({successes} of {trials})"


def format_interval(low: float, high: float, *, digits: int = 1, percent=True) -> str:
    """Return ``"[10.2%, 15.1%]"`` (or plain numbers with ``percent=False``)."""
    if percent:
        return (
            f"[{format_rate(low, digits=digits)}, {format_rate(high, digits=digits)}]"
        )
    shown = [format_decimal(bound, digits=digits) for bound in (low, high)]
    return f"[{shown[0]}, {shown[1]}]"


def format_rate_ci(rate: float, low: float, high: float, *, digits: int = 1) -> str:
    """Return ``"34.0% [28.1%, 40.4%]"``."""
    interval = format_interval(low, high, digits=digits)
    return f"{format_rate(rate, digits=digits)} {interval}"


def format_pp(difference: float, low: float, high: float, *, digits: int = 1) -> str:
    """Return a difference of proportions in percentage points with its interval:
    ``+2.1 pp [0.4, 3.8]``."""
    scale = 100
    return (
        f"{format_decimal(scale * difference, digits=digits, sign='+')} pp "
        f"[{format_decimal(scale * low, digits=digits)}, "
        f"{format_decimal(scale * high, digits=digits)}]"
    )


def format_p(p_value: float) -> str:
    """Return a p-value to two significant figures, or ``<0.001``."""
    if p_value is None or math.isnan(p_value):
        return "–"
    if p_value < 0.001:
        return "<0.001"
    return f"{p_value:.2g}"


# A straight apostrophe inside a word ("friend's"), the only quote mark whose
# typographic form is certain without reading the sentence.
IN_WORD_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")


def format_quoted(text: str) -> str:
    """Return a customer's words in curly quotes, an apostrophe inside a word
    made typographic: ``friend's photo`` -> ``“friend’s photo”``.

    Only the apostrophe's glyph changes: the words, their case and the other
    punctuation stay as the customer said them, so a quote still reads verbatim.
    """
    words = IN_WORD_APOSTROPHE.sub("\u2019", text)
    return f"\u201c{words}\u201d"


def format_money(amount: float, *, currency: str = "USD", digits: int = 0) -> str:
    """Return ``"USD 1,234"``; the currency code avoids guessing a symbol."""
    if amount is None or math.isnan(amount):
        return "–"
    return f"{currency} {amount:,.{digits}f}"


def to_markdown(frame: pd.DataFrame, *, index: bool = False) -> str:
    """Return `frame` as a pipe table, which Quarto and pandoc both read as a real
    table in HTML and PDF."""
    return frame.to_markdown(index=index, disable_numparse=True)


# Segment names as a reader sees them, in every table, figure and sentence.
SEGMENT_LABELS = {
    "cart_abandoners": "Cart abandoners",
    "first_time_no_return": "First-time, no return",
    "multi_item_abandoners": "Multi-item abandoners",
    "single_item_abandoners": "Single-item abandoners",
    "recent_buyers": "Recent buyers",
    "high_return_buyers": "High-return buyers",
    "churned": "Churned",
    "all": "All segments",
}


def format_segment(segment: str) -> str:
    """Return a segment's label: ``"First-time, no return"`` for
    ``first_time_no_return``; lifecycle bands read ``"Lifecycle 30-89 days"``.

    Every table, figure and sentence names segments through this, so a
    segment reads the same everywhere; a name Heard has no label for is shown
    with spaces and a capital.
    """
    name = str(segment)
    if name in SEGMENT_LABELS:
        return SEGMENT_LABELS[name]
    if name.startswith("lifecycle_"):
        band = name.removeprefix("lifecycle_").replace("d+", "+ days")
        band = band.replace("d", " days") if band.endswith("d") else band
        return f"Lifecycle {band.replace('_', ' ')}"
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


# Abbreviations a header keeps in capitals once its underscores become spaces.
HEADER_ABBREVIATIONS = {
    "aov": "AOV",
    "ci": "CI",
    "ctr": "CTR",
    "id": "ID",
    "ids": "IDs",
    "ltv": "LTV",
    "p": "p",
    "pp": "pp",
    "roas": "ROAS",
}


def format_header(name: object) -> str:
    """Return a column name as a reader's header.

    ``n_called_before`` -> ``"Called before"``, ``is_callable`` -> ``"Callable"``,
    ``ci_low`` -> ``"CI low"``, ``p (adjusted)`` -> ``"p (adjusted)"``: a leading
    abbreviation keeps its own case, since a p-value is a lower-case p in the
    text too. A name with a capital letter was written for readers already and
    is returned unchanged.
    """
    text = str(name)
    if text != text.lower():
        return text
    words = text.replace("_", " ").split()
    if len(words) > 1 and words[0] in ("n", "is", "has"):
        words = words[1:]
    is_abbreviation = bool(words) and words[0] in HEADER_ABBREVIATIONS
    phrase = " ".join(HEADER_ABBREVIATIONS.get(word, word) for word in words)
    return phrase if is_abbreviation else phrase[:1].upper() + phrase[1:]


def format_for_readers(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of `frame` with reader's headers, ``yes``/``no`` for
    true/false columns and segment labels in a ``segment`` column; other values
    are left as they are."""
    readable = frame.rename(columns=format_header)
    if "segment" in frame.columns:
        readable["Segment"] = frame["segment"].map(format_segment)
    for column in readable.columns[readable.dtypes.eq(bool)]:
        readable[column] = readable[column].map({True: "yes", False: "no"})
    return readable


def show_table(frame: pd.DataFrame, *, index: bool = False):
    """Display `frame` as a Markdown table in a notebook, headers made readable.

    The caption and label come from the cell's options (``#| label: tbl-…`` and
    ``#| tbl-cap: …``), which both Quarto and Heard's fallback renderer read.
    See :func:`format_for_readers` for what changes on the way.
    """
    from IPython.display import Markdown

    return Markdown(to_markdown(format_for_readers(frame), index=index))

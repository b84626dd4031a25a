"""What the monthly report shows: the stage summaries, month over month, provenance.

The report notebook stays thin: it loads the four stage summaries written by the
numbered notebooks (keys in docs/study-folder.md), a few processed tables, and
formats them here. Numbers stay raw until the last step, where
:mod:`helpers.tables` dresses them for display.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import json
import logging
import math
import numbers
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

from helpers.coding import RECONCILED_SHEET, is_kept_by_majority
from helpers.experiment_tables import format_level, format_metric
from helpers.experiments import intervals_clear_of_zero
from helpers.files import none_if_nan
from helpers.privacy import redact
from helpers.study import Study, check_month, previous_months
from helpers.tables import (
    format_count_rate,
    format_decimal,
    format_interval,
    format_p,
    format_pp,
    format_quoted,
    format_rate,
    format_segment,
)

log = logging.getLogger(__name__)

SUMMARY_FILES = {
    "segments": "summary_segments.json",
    "calls": "summary_calls.json",
    "coding": "summary_coding.json",
    "experiments": "summary_experiments.json",
}
PACKAGES = [
    "pandas", "numpy", "scipy", "statsmodels", "duckdb", "polars", "pyarrow",
    "phonenumbers", "pandera", "krippendorff", "nltk", "matplotlib", "seaborn",
    "papermill", "pypandoc_binary", "typst",
]  # fmt: skip
TOP_THEMES = 3
# A change between months (a theme's share, the callers' prediction accuracy) is
# clear below this Fisher p: the level of the 95% Newcombe intervals shown beside it.
CLEAR_CHANGE_P = 0.05
# Krippendorff's thresholds for alpha: rely on the codes, draw tentative conclusions.
ALPHA_RELIABLE, ALPHA_TENTATIVE = 0.80, 0.667
SPREAD = ("difference", "ci_low", "ci_high")
# Why a customer who answered had no conversation, in words.
NO_CONVERSATION = {
    "declined": "declined",
    "do_not_call": "asked not to be called",
    "callback_requested": "asked to be called back",
}
# The phone rule for a reader: what is kept, what is dropped and why, with the
# rule's name kept visible so "possible" is not read as "valid".
PHONE_RULES = {
    "possible": "are kept when they have the right length for their country (the "
    '"possible" rule) and dropped when missing, damaged (by a spreadsheet, say), '
    "too short or too long. They are not checked against the ranges phone "
    "companies have issued, so the made-up numbers of test data can be called; "
    'the stricter "valid" rule would drop those',
    "valid": "are kept only when they are in a range phone companies have issued "
    '(the "valid" rule) and dropped when missing, damaged, of the wrong length or '
    "in an unissued range, made-up test numbers included",
}
# The same rules in a table cell; the segments section says them in full.
PLAIN_SETTINGS = {
    "possible": 'the right length for their country ("possible" rule; the stricter '
    '"valid" also checks issued ranges)',
    "valid": 'in a range phone companies have issued ("valid" rule)',
    "accepts_marketing": "the customer accepts e-mail marketing",
    "accepts_sms": "the customer accepts SMS marketing",
    "none": "no consent flag required",
    "holm": "Holm (family-wise error)",
    "fdr_bh": "Benjamini-Hochberg (false discovery rate)",
}


def load_summaries(study: Study, month: str) -> dict[str, dict]:
    """Return the month's four stage summaries by stage name.

    Parameters
    ----------
    study : Study
        The loaded study.
    month : str
        ``YYYY-MM``.

    Returns
    -------
    dict
        ``segments``, ``calls``, ``coding``, ``experiments`` -> the parsed JSON;
        a stage whose summary is missing maps to ``{}`` (logged as a warning,
        since the report then lacks that stage's numbers).
    """
    summaries = {}
    for stage, name in SUMMARY_FILES.items():
        path = study.processed(month, name)
        if path.exists():
            summaries[stage] = json.loads(path.read_text(encoding="utf-8"))
        else:
            log.warning(
                "no %s for %s: that stage is missing from the report", name, month
            )
            summaries[stage] = {}
    return summaries


def format_month(month: str) -> str:
    """Return ``"November 2026"`` for ``"2026-11"``."""
    year, number = check_month(month).split("-")
    return f"{calendar.month_name[int(number)]} {year}"


def format_study_name(study: Study, *, fallback: str | None = None) -> str:
    """Return the study's display name from study.yml, else `fallback` (by
    default its folder name) when the name is blank or the default's
    ``Unnamed study``."""
    name = (study.config.get("study") or {}).get("name")
    if not name or name == "Unnamed study":
        return study.name if fallback is None else fallback
    return str(name)


def format_rate_entry(entry: dict | None, *, digits: int = 0) -> str:
    """Return ``"34% (12 of 35) [21%, 50%]"`` from a ``k, n, ci_low, ci_high`` dict."""
    entry = dict(entry) if entry is not None else {}
    if not entry.get("n"):
        return "not available"
    counted = format_count_rate(int(entry["k"]), int(entry["n"]), digits=digits)
    interval = format_interval(entry["ci_low"], entry["ci_high"], digits=digits)
    return f"{counted} {interval}"


def format_lift(entry: dict) -> str:
    """Return a relative lift with its interval: ``+12% [-3%, +29%]``."""
    if entry.get("lift") is None:
        return "not estimable"
    parts = [entry["lift"], entry.get("ci_low"), entry.get("ci_high")]
    low, high = (_format_percent(v) if v is not None else "–" for v in parts[1:])
    return f"{_format_percent(parts[0])} [{low}, {high}]"


def _format_percent(value: float) -> str:
    """Return a relative change as ``+12%``; one that rounds to zero is ``+0%``."""
    return f"{format_decimal(100 * value, digits=0, sign='+')}%"


def write_executive_summary(study: Study, month: str, summaries: dict) -> str:
    """Return the executive summary as Markdown, every number with its denominator.

    Parameters
    ----------
    study : Study
        For the month's question and next question (``months:`` in study.yml).
    month : str
        ``YYYY-MM``.
    summaries : dict
        From :func:`load_summaries`.

    Returns
    -------
    str
        A question line, a bullet list (conversations with the customers who
        answered without one, connect rate, recovery, top themes with one
        consented quote each, the clear theme changes since last month (or that
        none changed clearly), coder disagreements still open, experiment
        verdicts, and any guardrail that got worse or stayed unclear) and next
        month's question. Besides the summaries it reads the month's attempts,
        disagreement queue and experiment results (processed files).
    """
    plan = study.month_config(month)
    calls, coding = summaries.get("calls", {}), summaries.get("coding", {})
    unheard = tally_reached_without_conversation(study, month)
    open_codes = tally_open_disagreements(study, month, coding)
    lines = [
        f"**The question this month:** {plan.get('question', 'not set in study.yml')}",
        "",
        *(f"- {line}" for line in describe_reach(calls, coding, unheard=unheard)),
    ]
    currency = study.config["study"]["currency"]
    lines += [f"- {line}" for line in describe_recovery(calls, currency=currency)]
    lines += [f"- {line}" for line in describe_top_themes(coding)]
    lines += [f"- {line}" for line in summarise_theme_changes(study, month)]
    if open_codes.get("n_open"):
        lines.append(
            f"- {describe_open_disagreements(open_codes, limit=TOP_THEMES, short=True)}"
        )
    lines += [
        f"- {line}" for line in describe_experiments(summaries.get("experiments", {}))
    ]
    lines += [
        f"- {line}"
        for line in describe_guardrails(load_experiment_results(study, month))
    ]
    lines += [
        "",
        f"**Next month's question:** {plan.get('next_question', 'not set yet')}",
    ]
    return "\n".join(lines)


def describe_reach(
    calls: dict, coding: dict, *, unheard: dict | None = None
) -> list[str]:
    """Return the summary's lines on conversations held and the connect rate.

    `unheard` (from :func:`tally_reached_without_conversation`) explains the
    customers counted as reached who held no conversation. Without a calls
    summary (no call log this month) the lines say so instead of showing an
    empty rate.
    """
    if not calls:
        held = coding.get("n_conversations")
        return [
            f"**Conversations held:** {'not available' if held is None else held} "
            "(conversation notes); no call log this month, so no connect rate."
        ]
    entry = calls.get("connect_rate_customer")
    return [
        f"**Conversations held:** {calls.get('n_conversations', 'not available')} "
        f"with {calls.get('n_dialled', 'an unknown number of')} customers dialled"
        f"{describe_unheard(unheard)}.",
        "**Connect rate** (customers reached at least once / customers dialled): "
        f"{format_rate_entry(entry)}, 95% Wilson interval{field_sentence(entry)}.",
    ]


def describe_recovery(calls: dict, *, currency: str) -> list[str]:
    """Return one line per segment with a hold-out: recovery called vs not called,
    then revenue per conversation, each with its interval."""
    lines = []
    for segment, result in (calls.get("recovery") or {}).items():
        if not result.get("holdout"):
            continue
        lines.append(
            f"**Cart recovery by phone** ({format_segment(segment)}: everyone "
            f"assigned counts, reached or not): {format_rate_entry(result['called'])} "
            f"called against {format_rate_entry(result['holdout'])} not called; "
            f"difference {format_difference(result.get('difference', {}))} "
            f"(95% Newcombe interval, Fisher p {format_p(result.get('p_value'))})."
        )
    revenue = calls.get("revenue_per_conversation") or {}
    if revenue.get("estimate") is not None:
        segments = " and ".join(
            format_segment(s) for s in revenue.get("segments") or []
        )
        lines.append(
            f"**Revenue per conversation:** {currency} {revenue['estimate']:,.0f} "
            f"[{revenue['ci_low']:,.0f}, {revenue['ci_high']:,.0f}] (95% bootstrap "
            f"interval): the called customers ({segments or 'every segment'}) "
            f"{describe_extra_spend(calls, currency=currency)} over the "
            f"{revenue.get('n_conversations', '–')} conversations held with them."
        )
    return lines


def describe_extra_spend(calls: dict, *, currency: str) -> str:
    """Return what the called customers spent, against the hold-out, and the
    extra that revenue per conversation divides.

    Parameters
    ----------
    calls : dict
        ``summary_calls.json``: ``revenue_per_conversation`` (``segments``,
        ``attributable_revenue``) and, per segment, ``recovery``'s
        ``revenue_called``, ``excess_revenue`` and arm sizes.
    currency : str, keyword-only

    Returns
    -------
    str
        ``spent USD 3,797 and the not-called hold-out of the same size USD 264,
        so USD 3,533 more``; the extra alone when the segments' spends are
        missing.
    """
    revenue = calls["revenue_per_conversation"]
    extra = revenue.get("attributable_revenue")
    entries = [
        (calls.get("recovery") or {}).get(segment) or {}
        for segment in revenue.get("segments") or []
    ]
    if extra is None or not entries:
        return "spent beyond the not-called hold-out"
    needed = ("revenue_called", "excess_revenue", "called", "holdout")
    if any(entry.get(key) is None for entry in entries for key in needed):
        return f"spent {currency} {extra:,.0f} more than the not-called hold-out"

    # The hold-out's spend is scaled to the called arm's size, as the extra is.
    spent = sum(entry["revenue_called"] for entry in entries)
    expected = sum(
        entry["revenue_called"] - entry["excess_revenue"] for entry in entries
    )
    same_size = all(entry["called"]["n"] == entry["holdout"]["n"] for entry in entries)
    holdout = (
        "the not-called hold-out of the same size"
        if same_size
        else "as many not-called hold-out customers, at the hold-out's spend per "
        "customer,"
    )
    return (
        f"spent {currency} {spent:,.0f} and {holdout} {currency} {expected:,.0f}, "
        f"so {currency} {extra:,.0f} more"
    )


def field_sentence(entry: dict | None, *, tests: bool = False) -> str:
    """Return how the connect rate compares with the 30-40% the field reports.

    Parameters
    ----------
    entry : dict or None
        ``summary_calls.json``'s ``connect_rate_customer`` (from
        :func:`helpers.calls.compare_with_field`).
    tests : bool, keyword-only
        Add the exact binomial tests behind the reading (the calls section);
        the summary gives the reading alone, so the two do not repeat.

    Returns
    -------
    str
        A clause to follow the rate, or nothing without a comparison.

    Notes
    -----
    An interval that overlaps the range does not put the rate inside it: only
    an interval wholly inside says the rate is in line with the field. Outside
    the range, the gap is called more than noise as the calls step judged it
    (``is_more_than_noise``: the Wilson interval misses the range and the exact
    binomial test against the nearer end, ``p_value_nearer``, rejects).
    """
    if not entry or "verdict" not in entry:
        return ""
    low, high = entry.get("field_low", 0.30), entry.get("field_high", 0.40)
    if entry["verdict"] == "within":
        return compare_with_range(entry, low=low, high=high, tests=tests)
    field = f"{format_rate(low, digits=0)}-{format_rate(high, digits=0)}"
    outside = (
        f"; the whole interval lies {entry['verdict']} the {field} the field reports"
    )
    nearer = entry.get("p_value_nearer")
    test = "" if nearer is None else f", p {format_p(nearer)}"
    if entry.get("is_more_than_noise"):
        detail = f" (exact binomial test against the nearer end{test})"
        return f"{outside}, by more than noise{detail if tests else ''}"
    detail = f" (the exact binomial test against the nearer end does not reject{test})"
    return f"{outside}, but not clearly by more than noise{detail if tests else ''}"


def compare_with_range(
    entry: dict, *, low: float, high: float, tests: bool = False
) -> str:
    """Return what an interval that meets the field's range `low`-`high` says
    (see :func:`field_sentence`): inside it, or overlapping it and reaching
    beyond it."""
    field = f"{format_rate(low, digits=0)}-{format_rate(high, digits=0)}"
    beyond = [
        side
        for side, is_beyond in (
            ("below", entry["ci_low"] < low),
            ("above", entry["ci_high"] > high),
        )
        if is_beyond
    ]
    reading = (
        f"; the interval overlaps the {field} the field reports but reaches "
        f"{' and '.join(beyond)} it, so these data fit a rate in the field's range "
        f"but also one {' or '.join(beyond)} it"
        if beyond
        else f"; the whole interval lies inside the {field} the field reports, so "
        "the rate is in line with the field"
    )

    # The tests against each end back the reading where there is room for them.
    ends = [(entry.get("p_value_low"), low), (entry.get("p_value_high"), high)]
    if not tests or any(p_value is None for p_value, _ in ends):
        return reading
    against = ", ".join(
        f"p {format_p(p_value)} against {format_rate(end, digits=0)}"
        for p_value, end in ends
    )
    return f"{reading} (exact binomial tests of the rate against each end: {against})"


def describe_top_themes(coding: dict, *, limit: int = TOP_THEMES) -> list[str]:
    """Return one line per top theme: share of conversations and a quote."""
    themes = coding.get("top_themes") or []
    if not themes:
        return ["**Themes:** no coded conversations this month."]
    lines = []
    if is_suggested(coding):
        lines.append(
            "**Themes are suggested codes:** no coding sheets this month, so the "
            "codebook's keyword rules coded the notes; no person has read them yet."
        )
    for theme in themes[:limit]:
        share = format_rate_entry(theme)
        # The coding step redacts quotes; redacting again costs nothing.
        quote = redact(theme["quote"]) if theme.get("quote") else None
        missing = " — no consented quote for this theme"
        said = f" — {format_quoted(quote)}" if quote else missing
        lines.append(
            f"**Theme: {theme.get('name', theme.get('code'))}** in {share}{said}"
        )
    return lines


def summarise_theme_changes(study: Study, month: str) -> list[str]:
    """Return the summary's line on the themes that changed clearly since the
    previous month, from the month-over-month comparison the report shows
    (:func:`choose_theme_codes`, :func:`compare_themes`,
    :func:`compare_theme_changes`); no line without an earlier month."""
    codes = choose_theme_codes(study, month)
    themes = compare_themes(study, month, codes)
    changes = compare_theme_changes(themes)
    if changes.empty:
        return []
    return [describe_theme_changes(changes)]


def describe_theme_changes(changes: pd.DataFrame, *, limit: int = TOP_THEMES) -> str:
    """Return the clear theme changes between the last two months, largest first.

    Parameters
    ----------
    changes : DataFrame
        From :func:`compare_theme_changes`, largest change first.
    limit : int, keyword-only
        The most changes named; the rest are counted.

    Returns
    -------
    str
        Markdown: each theme whose Fisher p is below :data:`CLEAR_CHANGE_P`,
        with both months' counts, the change in percentage points and its 95%
        Newcombe interval and p; else that none changed clearly, with the
        largest change.

    Notes
    -----
    The p-values are not corrected for the several themes compared, so the
    line says how many were compared: with five themes and no real change, about
    one month in four would still show a clear change by chance.
    """
    since = format_month(changes["before"].iloc[0])
    compared = f"{len(changes)} theme{'s' if len(changes) > 1 else ''} compared"
    clear = changes[changes["p_value"] < CLEAR_CHANGE_P]
    if clear.empty:
        largest = describe_theme_change(changes.iloc[0])
        return (
            f"**Theme changes since {since}:** no clear change in the {compared} "
            f"(every Fisher's exact p is {CLEAR_CHANGE_P} or more); the largest: "
            f"{largest} (95% Newcombe interval)."
        )
    named = [describe_theme_change(row) for _, row in clear.head(limit).iterrows()]
    more = len(clear) - len(named)
    rest = f"; {more} more in Month over month" if more else ""
    title = "Biggest theme change" if len(clear) == 1 else "Biggest theme changes"
    return (
        f"**{title} since {since}** (Fisher's exact p below {CLEAR_CHANGE_P}, "
        f"not corrected for the {compared}; 95% Newcombe intervals): "
        f"{'; '.join(named)}{rest}."
    )


def describe_theme_change(change: pd.Series) -> str:
    """Return one theme's change: ``Sizing and fit rose from 18% (4 of 22) to
    52% (13 of 25), +34 pp [6, 55], p 0.032``."""
    before = format_count_rate(int(change["k_before"]), int(change["n_before"]))
    after = format_count_rate(int(change["k_after"]), int(change["n_after"]))
    difference = change["difference"]
    moved = "rose" if difference > 0 else "fell" if difference < 0 else "went"
    spread = format_pp(*(change[k] for k in SPREAD), digits=0)
    p_value = format_p(change["p_value"])
    return f"{change['name']} {moved} from {before} to {after}, {spread}, p {p_value}"


def is_suggested(coding: dict) -> bool:
    """Return True when the month's codes are keyword suggestions, not coders'."""
    return str(coding.get("coding_source", "")).startswith("suggested")


def describe_experiments(experiments: dict) -> list[str]:
    """Return one line per experiment arm: relative lift, interval and reading."""
    entries = experiments.get("experiments") or []
    if not entries:
        return ["**Experiments:** none analysed this month."]
    lines = []
    for entry in entries:
        metric = format_metric(entry.get("primary_metric", ""), in_sentence=True)
        level = format_level(entry.get("alpha", 0.05))
        p_value = entry.get("p_adjusted", entry.get("p_value"))
        p_value = math.nan if p_value is None else p_value
        lines.append(
            f"**Experiment {entry.get('name')}** ({entry.get('variant', 'variant')} "
            f"vs control, {metric}): relative lift {format_lift(entry)} ({level} "
            f"interval), adjusted p {format_p(p_value)}"
            f": {read_interval(entry)}."
        )
    return lines


def read_interval(entry: dict) -> str:
    """Return what an interval of a relative lift says, in words; a sample-ratio
    mismatch comes first, since it makes any lift unreadable."""
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if entry.get("has_srm"):
        return (
            "the arms are not the planned sizes (sample-ratio mismatch), so this "
            "lift cannot be read until the split is explained"
        )
    if low is None or high is None:
        return "not estimable this month"
    if low > 0:
        return "the variant did better than control"
    if high < 0:
        return "the variant did worse than control"
    return "not distinguishable from no change"


def tabulate_segments(
    segments: dict, *, call_list: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Return the segments this month calls, their sizes and who was drawn.

    Parameters
    ----------
    segments : dict
        ``summary_segments.json``: ``segment_sizes`` and ``month_segments``.
    call_list : DataFrame, keyword-only, optional
        From :func:`tally_call_list`; adds the two arms' columns.

    Returns
    -------
    DataFrame
        ``Segment``, ``Customers`` (everyone in the segment), and with
        `call_list` ``Called`` (on the call list) and ``Not called`` (the
        hold-out); largest segment first. Only the segments the month calls
        (``month_segments``) are listed; all segments when the summary does
        not name them.
    """
    sizes = segments.get("segment_sizes") or {}
    chosen = segments.get("month_segments") or list(sizes)
    sizes = {name: sizes[name] for name in chosen if name in sizes}
    ordered = sorted(sizes.items(), key=lambda item: -item[1])
    table = pd.DataFrame(
        {
            "Segment": [format_segment(s) for s, _ in ordered],
            "Customers": [format_count(n) for _, n in ordered],
        }
    )
    if call_list is None:
        return table

    # A segment nobody was drawn from shows 0, not a blank.
    drawn = call_list.set_index("segment").reindex([s for s, _ in ordered])
    for column, arm in (("Called", "n_called"), ("Not called", "n_holdout")):
        table[column] = [format_count(n) for n in drawn[arm].fillna(0)]
    return table


def tally_call_list(study: Study, month: str) -> pd.DataFrame:
    """Return how many customers of each segment were drawn into each arm.

    Parameters
    ----------
    study : Study
    month : str
        ``YYYY-MM``; reads step 01's ``assignment_customer.parquet``.

    Returns
    -------
    DataFrame
        ``segment``, ``n_called`` (on the call list), ``n_holdout`` (kept back,
        not called), largest call list first; no rows without the file.
    """
    columns = ["segment", "n_called", "n_holdout"]
    path = study.processed(month, "assignment_customer.parquet")
    if not path.exists():
        return pd.DataFrame(columns=columns)
    assignment = pd.read_parquet(path, columns=["segment", "arm"])
    counts = pd.crosstab(assignment["segment"], assignment["arm"])
    counts = counts.reindex(columns=["called", "holdout"], fill_value=0)
    counts.columns = ["n_called", "n_holdout"]
    ordered = counts.reset_index().sort_values(
        ["n_called", "segment"], ascending=[False, True], ignore_index=True
    )
    return ordered[columns]


def tabulate_recovery(calls: dict) -> pd.DataFrame:
    """Return cart recovery per segment: called vs hold-out and the difference.

    Returns
    -------
    DataFrame
        ``Segment``, ``Called``, ``Not called``, ``Difference`` (percentage
        points, Newcombe interval), ``p`` (Fisher's exact test), formatted.
    """
    rows = []
    for segment, result in (calls.get("recovery") or {}).items():
        difference = result.get("difference", {})
        rows.append(
            {
                "Segment": format_segment(segment),
                "Called": format_rate_entry(result.get("called")),
                "Not called": format_rate_entry(result.get("holdout")),
                "Difference": format_difference(difference),
                "p": format_p(result.get("p_value")),
            }
        )
    return pd.DataFrame(
        rows, columns=["Segment", "Called", "Not called", "Difference", "p"]
    )


def format_difference(difference: dict) -> str:
    """Return ``+21 pp [4, 37]`` from an ``estimate, ci_low, ci_high`` dict."""
    values = [difference.get(k) for k in ("estimate", "ci_low", "ci_high")]
    if any(v is None for v in values):
        return "–"
    return format_pp(*values, digits=0)


def tabulate_themes(coding: dict) -> pd.DataFrame:
    """Return the top themes: name, conversations with it (k of n) and interval."""
    rows = [
        {
            "Theme": theme.get("name", theme.get("code")),
            "Conversations": format_count_rate(int(theme["k"]), int(theme["n"])),
            "95% interval": format_interval(
                theme["ci_low"], theme["ci_high"], digits=0
            ),
        }
        for theme in coding.get("top_themes") or []
    ]
    return pd.DataFrame(rows, columns=["Theme", "Conversations", "95% interval"])


def format_count(value) -> str:
    """Return a count with thousands separators (``64,000``), ``–`` when missing."""
    return "–" if value is None or value == "" else f"{int(value):,}"


def compare_connect_rates(study: Study, month: str) -> pd.DataFrame:
    """Return the customer connect rate of `month` and each earlier processed month.

    Returns
    -------
    DataFrame
        ``month``, ``k`` (customers reached), ``n`` (customers dialled), ``rate``,
        ``ci_low``, ``ci_high`` (Wilson, from each month's ``summary_calls.json``),
        oldest first; months without a calls summary are left out.
    """
    rows = []
    for each in [*previous_months(study, month), month]:
        path = study.processed(each, SUMMARY_FILES["calls"])
        if not path.exists():
            continue
        entry = json.loads(path.read_text(encoding="utf-8")).get(
            "connect_rate_customer"
        )
        if entry and entry.get("n"):
            rows.append(
                {"month": each}
                | {k: entry[k] for k in ("k", "n", "rate", "ci_low", "ci_high")}
            )
    return pd.DataFrame(rows, columns=["month", "k", "n", "rate", "ci_low", "ci_high"])


def compare_themes(study: Study, month: str, codes: list[str]) -> pd.DataFrame:
    """Return the share of conversations with each theme in `codes`, month by month.

    Returns
    -------
    DataFrame
        ``month``, ``code``, ``name``, ``k`` (conversations with the theme),
        ``n`` (conversations coded), ``rate``, ``ci_low``, ``ci_high`` (Wilson),
        read from each month's ``themes_code.parquet`` (all segments together).
    """
    columns = ["month", "code", "name", "k", "n", "rate", "ci_low", "ci_high"]
    frames = []
    for each in [*previous_months(study, month), month]:
        path = study.processed(each, "themes_code.parquet")
        if not path.exists():
            continue
        themes = pd.read_parquet(path)
        if "segment" in themes.columns:
            themes = themes[themes["segment"] == "all"]
        themes = themes.rename(columns={"n_with_theme": "k", "n_conversations": "n"})
        frames.append(fill_unheard(themes, codes).assign(month=each)[columns])
    if not frames:
        return pd.DataFrame(columns=columns)
    combined = pd.concat(frames, ignore_index=True)
    names = combined.dropna(subset=["name"]).groupby("code")["name"].last()
    combined["name"] = combined["code"].map(names).fillna(combined["code"])
    return combined.sort_values(["name", "month"], ignore_index=True)


def fill_unheard(themes: pd.DataFrame, codes: list[str]) -> pd.DataFrame:
    """Return the rows of `codes`, a code missing from the month as 0 of the
    month's conversations (with its Wilson interval), so a theme that was not
    heard still shows its fall."""
    from helpers.stats import wilson_interval

    chosen = themes[themes["code"].isin(codes)]
    missing = [code for code in codes if code not in set(chosen["code"])]
    if not missing or themes.empty:
        return chosen
    n = int(themes["n"].max())
    low, high = wilson_interval(0, n)
    added = pd.DataFrame(
        {"code": missing, "name": None, "k": 0, "n": n, "rate": 0.0,
         "ci_low": float(low), "ci_high": float(high)}
    )  # fmt: skip
    return pd.concat([chosen, added], ignore_index=True)


def compare_experiments(study: Study, month: str) -> pd.DataFrame:
    """Return every experiment arm's primary result, month by month.

    Returns
    -------
    DataFrame
        ``month``, ``name``, ``variant``, ``lift`` (relative), ``ci_low``,
        ``ci_high``, ``p_value`` (adjusted when the stage adjusted it).
    """
    rows = []
    for each in [*previous_months(study, month), month]:
        path = study.processed(each, SUMMARY_FILES["experiments"])
        if not path.exists():
            continue
        for entry in json.loads(path.read_text(encoding="utf-8")).get(
            "experiments", []
        ):
            rows.append(
                {
                    "month": each,
                    "name": entry.get("name"),
                    "variant": entry.get("variant"),
                    "lift": entry.get("lift"),
                    "ci_low": entry.get("ci_low"),
                    "ci_high": entry.get("ci_high"),
                    "p_value": entry.get("p_adjusted", entry.get("p_value")),
                }
            )
    columns = ["month", "name", "variant", "lift", "ci_low", "ci_high", "p_value"]
    return pd.DataFrame(rows, columns=columns)


def compare_last_two(rates: pd.DataFrame) -> dict | None:
    """Return the change between the last two months of a ``k``/``n`` table.

    Returns
    -------
    dict or None
        ``before``, ``after`` (months), ``difference`` (after minus before),
        ``ci_low``, ``ci_high`` (Newcombe's hybrid score interval, 95%) and
        ``p_value`` (Fisher's exact test, two-sided); None with fewer than two
        months.
    """
    from scipy.stats import fisher_exact
    from statsmodels.stats.proportion import confint_proportions_2indep

    if len(rates) < 2:
        return None
    before, after = rates.iloc[-2], rates.iloc[-1]
    low, high = confint_proportions_2indep(
        int(after["k"]), int(after["n"]), int(before["k"]), int(before["n"]),
        method="newcomb", compare="diff",
    )  # fmt: skip
    table = [
        [int(after["k"]), int(after["n"] - after["k"])],
        [int(before["k"]), int(before["n"] - before["k"])],
    ]
    return {
        "before": before["month"],
        "after": after["month"],
        "difference": float(after["k"] / after["n"] - before["k"] / before["n"]),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": float(fisher_exact(table).pvalue),
    }


def format_months_table(
    rates: pd.DataFrame, *, group: str | None = None, label: str | None = None
) -> pd.DataFrame:
    """Return a ``k``/``n`` rate table by month for display: ``12% (3 of 25) [..]``.

    `group` names the column with one series per value (themes); `label` is its
    header (``Theme``), the column name capitalised when omitted.
    """
    shown = pd.DataFrame({"Month": rates["month"].map(format_month)})
    if group:
        shown.insert(0, label or group.capitalize(), rates[group].to_numpy())
    shown["Rate (k of n) [95% CI]"] = [
        format_rate_entry(row) for row in rates.to_dict(orient="records")
    ]
    return shown


def format_experiments_table(results: pd.DataFrame) -> pd.DataFrame:
    """Return experiment results by month for display: ``Month``, ``Experiment``,
    ``Arm``, ``Relative lift [95% CI]`` and ``p (adjusted)``, the p-value after
    the month's multiple-testing correction, as in the experiments table."""
    return pd.DataFrame(
        {
            "Month": results["month"].map(format_month),
            "Experiment": results["name"],
            "Arm": results["variant"],
            "Relative lift [95% CI]": [
                format_lift(row) for row in results.to_dict(orient="records")
            ],
            "p (adjusted)": [format_p(p) for p in results["p_value"]],
        }
    )


def plot_rates_by_month(rates: pd.DataFrame, *, group: str | None = None, ylabel: str):
    """Draw rates by month with their intervals; one colour per group.

    Parameters
    ----------
    rates : DataFrame
        ``month``, ``rate``, ``ci_low``, ``ci_high`` and optionally `group`.
    group : str, optional
        A column whose values get their own series (themes); markers differ
        too, so the figure reads in black and white.
    ylabel : str
        The y axis label.

    Returns
    -------
    Figure
    """
    from helpers.figures import PALETTE, new_figure

    figure, axes = new_figure()
    months = sorted(rates["month"].unique())
    groups = sorted(rates[group].unique()) if group else [None]
    width = 0.6 / max(len(groups), 1)
    for position, name in enumerate(groups):
        part = rates if name is None else rates[rates[group] == name]
        x = [
            months.index(m) + (position - (len(groups) - 1) / 2) * width
            for m in part["month"]
        ]
        errors = [part["rate"] - part["ci_low"], part["ci_high"] - part["rate"]]
        axes.errorbar(
            x, part["rate"], yerr=errors, fmt="osD^v"[position % 5], capsize=4,
            color=PALETTE[position % len(PALETTE)], label=name, markersize=6,
        )  # fmt: skip
    axes.set_xticks(range(len(months)), [format_month(m) for m in months])
    axes.set_xlim(-0.6, len(months) - 0.4)
    axes.set_ylim(0, min(1, max(0.1, float(rates["ci_high"].max()) * 1.15)))
    axes.yaxis.set_major_formatter(lambda value, _: f"{100 * value:.0f}%")
    axes.set_ylabel(ylabel)
    if group:
        axes.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    figure.tight_layout()
    return figure


def hash_file(path: Path) -> str:
    """Return the SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_rows(path: Path) -> int | None:
    """Return the data rows of a CSV or XLSX file (header excluded), else None."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True)
        rows = max((workbook.active.max_row or 1) - 1, 0)
        workbook.close()
        return rows
    return None


def month_inputs(study: Study, month: str) -> list[Path]:
    """Return the raw files the month's run reads, in a stable order."""
    raw = study.raw_dir
    chosen = [raw / "study.yml", raw / "do-not-call.csv", raw / "codebook.yml"]
    for folder in ("exports", "calls", "conversations", "coding"):
        chosen += sorted((raw / folder / month).glob("*"))
    chosen.append(raw / "predictions" / f"{month}.csv")
    for name in study.month_config(month).get("experiments", []):
        chosen += sorted((raw / "experiments" / name).glob("*"))
    return [path for path in chosen if path.is_file()]


def tabulate_inputs(study: Study, month: str) -> pd.DataFrame:
    """Return the month's raw input files with row counts and SHA-256.

    Returns
    -------
    DataFrame
        ``File`` (relative to the study folder), ``Rows`` (data rows of CSV and
        XLSX files; the file count for conversation notes), ``SHA-256``.
        Conversation notes are one row: the SHA-256 of their sorted hashes.
    """
    rows, notes = [], []
    for path in month_inputs(study, month):
        relative = path.relative_to(study.raw_dir).as_posix()
        if path.parent.name == month and path.parent.parent.name == "conversations":
            notes.append(hash_file(path))
            continue
        rows_count = count_rows(path)
        rows.append(
            {"File": relative, "Rows": "–" if rows_count is None else rows_count,
             "SHA-256": hash_file(path)}
        )  # fmt: skip
    if notes:
        combined = hashlib.sha256("".join(sorted(notes)).encode()).hexdigest()
        rows.append(
            {"File": f"conversations/{month}/*.md", "Rows": f"{len(notes)} files",
             "SHA-256": combined}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["File", "Rows", "SHA-256"])


def tabulate_packages() -> pd.DataFrame:
    """Return Python's and the main packages' versions (``Package``, ``Version``)."""
    rows = [{"Package": "python", "Version": platform.python_version()}]
    for name in PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"Package": name, "Version": version})
    return pd.DataFrame(rows)


def tabulate_rules(study: Study) -> pd.DataFrame:
    """Return the rules the run used (``Rule``, ``Setting``), from the study config.

    Consent, phone validity, calling window, recovery window, the sampling seed,
    hold-out share, experiment alpha and correction, the saturation rule, and each
    bootstrap's resamples and seed (so its intervals repeat exactly).
    """
    config = study.config
    window = config.get("calling_window", {})
    consent, sampling = config.get("consent", {}), config.get("sampling", {})
    calls, coding = config.get("calls", {}), config.get("coding", {})
    tests = config.get("experiments", {})
    rules = {
        "Consent required to call": plain_setting(consent.get("require")),
        "Do-not-call tag": consent.get("do_not_call_tag"),
        "Phone numbers kept": plain_setting(config.get("phones", {}).get("keep")),
        "Calling window (customer's local time)": (
            f"{window.get('start')} to {window.get('end')}"
        ),
        "Recovery window (days after the call)": (
            config.get("calls", {}).get("recovery_window_days")
        ),
        "Sampling seed": sampling.get("seed"),
        "Hold-out share of cart abandoners": sampling.get("holdout_share"),
        "Experiment alpha and correction": (
            f"{tests.get('alpha')}, {plain_setting(tests.get('correction'))}"
        ),
        "Saturation: conversations in a row adding no code": (
            coding.get("saturation_run")
        ),
        "Bootstrap: revenue per conversation": describe_bootstrap(
            calls.get("bootstrap_resamples"), calls.get("seed")
        ),
        "Bootstrap: coder agreement": describe_bootstrap(
            coding.get("n_bootstrap"), coding.get("bootstrap_seed")
        ),
        "Bootstrap: experiment means": describe_bootstrap(
            tests.get("bootstrap_resamples"), tests.get("seed")
        ),
    }
    return pd.DataFrame(
        {"Rule": list(rules), "Setting": [str(v) for v in rules.values()]}
    )


def describe_bootstrap(resamples, seed) -> str:
    """Return ``"2,000 resamples, seed 2026"`` for the rules table."""
    count = f"{resamples:,}" if isinstance(resamples, int) else str(resamples)
    return f"{count} resamples, seed {seed}"


def plain_setting(value) -> str:
    """Return a config value as a stakeholder reads it (the value itself when
    Heard has no plainer words for it)."""
    return PLAIN_SETTINGS.get(value, str(value))


def describe_commit() -> str:
    """Return the git commit the report was computed from (or a note why not)."""
    from helpers.report import git_commit
    from helpers.study import find_project_root

    return git_commit(find_project_root())


def describe_segments(segments: dict, *, call_list: pd.DataFrame | None = None) -> str:
    """Return the segment section's sentences: customers, orders, the segments
    called, the call list by segment (`call_list`, from :func:`tally_call_list`)
    and the rules."""
    if not segments:
        return "The segment step has no summary for this month."
    window = segments.get("calling_window") or {}
    window_text = (
        f"{window.get('start')} to {window.get('end')} "
        f"({window.get('timezone', 'local')} time)"
        if isinstance(window, dict)
        else str(window)
    )
    return (
        f"The store's exports held **{format_count(segments.get('n_customers'))}** "
        f"customers and **{format_count(segments.get('n_orders'))}** orders."
        f"{describe_month_segments(segments)} We drew a call list of "
        f"**{format_count(segments.get('n_call_list'))}** customers"
        f"{split_by_segment(call_list, 'n_called')} and kept "
        f"**{format_count(segments.get('n_holdout'))}** cart abandoners back as a "
        "not-called hold-out. Phone numbers "
        f"{describe_phone_rule(segments.get('phone_rule'))}. Calls were placed "
        f"{window_text}."
    )


def describe_phone_rule(rule: str | None) -> str:
    """Return what the phone rule keeps and drops, to follow "Phone numbers";
    a rule Heard has no words for is named as it is."""
    return PHONE_RULES.get(rule, f"are kept by the rule {rule!r}")


def describe_month_segments(segments: dict) -> str:
    """Return how many of the segments Heard built the month calls, or nothing
    when the summary does not name them."""
    sizes, chosen = segments.get("segment_sizes"), segments.get("month_segments")
    if not sizes or not chosen:
        return ""
    return (
        f" Of the {len(sizes)} segments Heard builds from them, this month's calls "
        f"drew on {len(chosen)}, listed in the table below."
    )


def split_by_segment(call_list: pd.DataFrame | None, column: str) -> str:
    """Return `column`'s counts by segment, ``" (Cart abandoners 35;
    First-time, no return 35)"``; nothing without counts."""
    if call_list is None or call_list.empty:
        return ""
    parts = [
        f"{format_segment(row['segment'])} {format_count(row[column])}"
        for row in call_list.to_dict("records")
        if row[column]
    ]
    return f" ({'; '.join(parts)})" if parts else ""


def describe_calls(calls: dict, *, unheard: dict | None = None) -> str:
    """Return the calls section's sentences: attempts, both connect rates, and
    the customers who answered without a conversation (`unheard`, from
    :func:`tally_reached_without_conversation`)."""
    if not calls:
        return "The calls step has no summary for this month."
    return (
        f"Callers made **{format_count(calls.get('n_attempts'))}** attempts to "
        f"**{format_count(calls.get('n_dialled'))}** customers and held "
        f"**{format_count(calls.get('n_conversations'))}** conversations"
        f"{describe_unheard(unheard)}. Per customer, the "
        f"connect rate was {format_rate_entry(calls.get('connect_rate_customer'))}"
        f"{field_sentence(calls.get('connect_rate_customer'), tests=True)}; per "
        "attempt it was "
        f"{format_rate_entry(calls.get('connect_rate_attempt'))} (95% Wilson "
        "intervals). Recovery below counts orders placed after the call and within "
        f"{calls.get('recovery_window_days', 'the configured')} days."
    )


def describe_coding(coding: dict) -> str:
    """Return the coding section's sentences: conversations, agreement, saturation."""
    if not coding:
        return "The coding step has no summary for this month."
    price_text = describe_price_among_nonbuyers(coding.get("price_objection"))
    saturated = coding.get("is_saturated")
    saturation = {
        True: "The last conversations added no new code: themes look saturated.",
        False: "New codes still appeared at the end: themes are not saturated.",
    }.get(saturated, "")
    learning = " ".join(
        text
        for text in (describe_insights(coding), describe_predictions(coding))
        if text
    )
    section = f"{describe_coders(coding)}{price_text} {saturation}"
    return f"{section}\n\n{learning}" if learning else section


def describe_price_among_nonbuyers(price: dict | None) -> str:
    """Return the sentence on price among the customers who did not buy.

    Parameters
    ----------
    price : dict or None
        ``summary_coding.json``'s ``price_objection``: ``k`` (customers who
        raised price), ``n`` (customers talked to with no order this month),
        ``ci_low``, ``ci_high`` (Wilson), ``n_customers`` (all customers
        talked to).

    Returns
    -------
    str
        A sentence led by a space that names who the `n` customers are (the
        unit is the customer, not the conversation the themes table counts);
        nothing without non-buyers.
    """
    if not isinstance(price, dict) or not price.get("n"):
        return ""
    k, n = int(price["k"]), int(price["n"])
    talked = price.get("n_customers")
    of_all = f" (of {talked} customers talked to in all)" if talked else ""
    rate = format_rate(k / n, digits=0)
    interval = format_interval(price["ci_low"], price["ci_high"], digits=0)
    return (
        f" Of the {n} customers we talked to who placed no order this month"
        f"{of_all}, {k} raised price: {rate} {interval}."
    )


def describe_insights(coding: dict) -> str:
    """Return the insight log's sentence: found, addressed, median days, open by
    age; empty without an insight log."""
    insights = coding.get("insights")
    if not insights or not insights.get("n_found"):
        return ""
    median = insights.get("median_days_to_address")
    speed = (
        f", a median of {median:.0f} days after first heard"
        if median is not None
        else ""
    )
    n_open = insights.get("n_open")
    still_open = (
        f"; {n_open} still open{format_open_ages(insights.get('open_by_age'))}"
        if n_open
        else "; none is open"
        if n_open == 0
        else ""
    )
    return (
        f"**Insight log:** {insights['n_found']} friction points found so far, "
        f"{insights['n_addressed']} addressed{speed}{still_open}."
    )


def format_open_ages(open_by_age: dict | None) -> str:
    """Return how long the open insights have been open, to follow "N still open".

    Parameters
    ----------
    open_by_age : dict or None
        Age band (``1-3 months``) -> insights open that long; empty bands are
        left out.

    Returns
    -------
    str
        ``", all for 1-3 months"`` when every open point is in one band (``", for
        1-3 months"`` for a single point), ``": 1 for under 1 week, 2 for 1-3
        months"`` when they spread, nothing without bands.
    """
    # "for" keeps a count from running into a band that starts with a number.
    bands = {band: n for band, n in (open_by_age or {}).items() if n}
    if len(bands) > 1:
        return ": " + ", ".join(f"{n} for {band}" for band, n in bands.items())
    if bands:
        [(band, n)] = bands.items()
        return f", all for {band}" if n > 1 else f", for {band}"
    return ""


def describe_predictions(coding: dict) -> str:
    """Return the sentence on callers' pre-call predictions: accuracy with its
    interval and Brier score, beside the latest earlier month's and tested
    against it; empty without predictions.

    Notes
    -----
    The change is tested as the month-over-month themes are
    (:func:`compare_last_two`: Newcombe interval, Fisher's exact test), and read
    at the 5% level that matches the report's 95% intervals.
    """
    entry = coding.get("predictions")
    if not entry or not entry.get("n"):
        return ""
    text = (
        "**Predictions:** the theme callers expected came up for "
        f"{format_rate_entry(entry)} of the customers they predicted for"
        f"{format_brier(entry)}."
    )
    previous = entry.get("previous")
    if not previous or not previous.get("n"):
        return text

    # Overlapping intervals are no test: compare the two proportions.
    months = pd.DataFrame([previous, {**entry, "month": None}])[["month", "k", "n"]]
    change = compare_last_two(months)
    if change["p_value"] >= CLEAR_CHANGE_P:
        reading = "at the 5% level the test cannot tell this change from chance"
    else:
        direction = "rose" if change["difference"] > 0 else "fell"
        reading = f"accuracy {direction} by more than chance explains at the 5% level"
    return (
        f"{text} In {format_month(previous['month'])}: "
        f"{format_rate_entry(previous)}{format_brier(previous)}; change "
        f"{format_pp(*(change[k] for k in SPREAD), digits=0)} (Newcombe 95% "
        f"interval; Fisher's exact p {format_p(change['p_value'])}): {reading}."
    )


def format_brier(entry: dict) -> str:
    """Return ``", Brier score 0.18"`` (lower is better), or nothing."""
    brier = entry.get("brier_score")
    return (
        ""
        if brier is None
        else f", Brier score {format_decimal(brier)} (lower is better)"
    )


def describe_coders(coding: dict) -> str:
    """Return who coded the month's conversations, and how well coders agreed."""
    n_conversations = coding.get("n_conversations", "–")
    if is_suggested(coding):
        return (
            f"**Suggested codes, not coded by people:** no coding sheets came back "
            f"this month, so the codebook's keyword rules coded the "
            f"**{n_conversations}** conversations as a first pass. Read the themes "
            "as leads; agreement needs two coders' sheets."
        )
    if coding.get("agreement"):
        return describe_agreement(coding["agreement"], n_conversations=n_conversations)
    agreement = []
    for key, label in (("kappa", "Cohen's kappa"), ("alpha", "Krippendorff's alpha")):
        value = coding.get(key)
        if isinstance(value, dict):
            value = value.get("estimate", value.get("value"))
        agreement.append(
            f"{label} {format_decimal(value)}"
            if value is not None
            else f"{label} undefined"
        )
    return (
        f"Two coders coded **{n_conversations}** conversations blind to each "
        f"other; agreement: {', '.join(agreement)}."
    )


def describe_agreement(agreement: dict, *, n_conversations) -> str:
    """Return the coders' overall agreement with its bootstrap intervals and unit.

    Parameters
    ----------
    agreement : dict
        ``summary_coding.json``'s ``agreement``: ``unit``, ``n_units``,
        ``n_coders``, and ``percent_agreement``, ``kappa``, ``alpha`` each as
        ``{estimate, ci_low, ci_high}``.
    n_conversations : int
        Conversations coded.

    Returns
    -------
    str
        Who coded, the unit, then percent agreement, Cohen's kappa (two coders
        only) and Krippendorff's alpha, each ``0.79 [0.68, 0.88]``; a statistic
        without an estimate reads "undefined".
    """
    n_coders = agreement.get("n_coders", 2)
    unit = agreement.get("unit", "excerpt")
    percent = format_statistic(agreement.get("percent_agreement"), percent=True)
    parts = [f"percent agreement {percent}"]
    if n_coders == 2:
        parts.append(f"Cohen's kappa {format_statistic(agreement.get('kappa'))}")
    parts.append(f"Krippendorff's alpha {format_statistic(agreement.get('alpha'))}")
    coders = "Two coders" if n_coders == 2 else f"{n_coders} coders"
    return (
        f"{coders} coded **{n_conversations}** conversations blind to each other. "
        f"Per {unit} ({agreement.get('n_units', '–')} {unit}s, each code a yes or "
        f"no): {', '.join(parts)} (95% bootstrap intervals over conversations)"
        f"{read_alpha(agreement.get('alpha'))}."
    )


def read_alpha(alpha: dict | None) -> str:
    """Return what Krippendorff's alpha allows, by his 0.80 and 0.667 thresholds.

    Krippendorff (2004) relies on codes with alpha of at least 0.80 and draws
    tentative conclusions from 0.667; the interval decides when it straddles one.
    """
    alpha = alpha or {}
    low, high = alpha.get("ci_low"), alpha.get("ci_high")
    if alpha.get("estimate") is None or low is None or high is None:
        return ""
    if low >= ALPHA_RELIABLE:
        return ": reliable by Krippendorff's 0.80 bar"
    if low >= ALPHA_TENTATIVE:
        return (
            ": good enough for tentative conclusions by Krippendorff's 0.667 bar; "
            "the interval does not show it reaches 0.80"
        )
    if high < ALPHA_TENTATIVE:
        return ": below Krippendorff's 0.667 bar, so the codebook needs work first"
    return (
        ": the interval reaches below Krippendorff's 0.667 bar, so read the "
        "themes with care"
    )


def format_statistic(entry: dict | None, *, percent: bool = False) -> str:
    """Return ``0.79 [0.68, 0.88]`` (or ``97% [96%, 98%]``), ``undefined`` when
    the estimate is missing."""
    entry = entry or {}
    estimate, low, high = (entry.get(k) for k in ("estimate", "ci_low", "ci_high"))
    if estimate is None:
        return "undefined"
    shown = format_rate(estimate, digits=0) if percent else format_decimal(estimate)
    if low is None or high is None:
        return f"{shown} (no interval)"
    if percent:
        return f"{shown} {format_interval(low, high, digits=0)}"
    return f"{shown} {format_interval(low, high, digits=2, percent=False)}"


def tabulate_phrases(coding: dict) -> pd.DataFrame:
    """Return the customers' most repeated phrases with how often they came up.

    Returns
    -------
    DataFrame
        ``Phrase`` (quoted), ``Conversations`` (conversations it came up in, of
        those coded) and ``Times said``, most repeated first, as
        ``summary_coding.json``'s ``top_phrases`` holds them.
    """
    n = coding.get("n_conversations")
    rows = [
        {
            "Phrase": format_quoted(phrase["phrase"]),
            "Conversations": f"{phrase['n_conversations']} of {n}"
            if n
            else str(phrase["n_conversations"]),
            "Times said": str(phrase["n_occurrences"]),
        }
        for phrase in coding.get("top_phrases") or []
    ]
    return pd.DataFrame(rows, columns=["Phrase", "Conversations", "Times said"])


def tabulate_quotes(coding: dict, *, limit: int = 5) -> pd.DataFrame:
    """Return a few verbatim quotes, one per top theme, with their quote ids.

    Only quotes from customers who agreed to be quoted reach the summary; the
    coding step redacts them and they are redacted again here.

    Returns
    -------
    DataFrame
        ``Quote id`` (the id experiments cite), ``Theme``, ``Quote``; themes
        without a consented quote are left out.
    """
    rows = [
        {
            "Quote id": theme["quote_id"],
            "Theme": theme.get("name", theme.get("code")),
            "Quote": format_quoted(redact(theme["quote"])),
        }
        for theme in coding.get("top_themes") or []
        if theme.get("quote") and theme.get("quote_id")
    ]
    return pd.DataFrame(rows[:limit], columns=["Quote id", "Theme", "Quote"])


def describe_own_words(coding: dict) -> str:
    """Return the sentence that opens "in their own words", or why it is empty."""
    if not coding:
        return "The coding step has no summary for this month."
    if not coding.get("top_phrases") and tabulate_quotes(coding).empty:
        return "No phrase came up twice and no customer agreed to be quoted this month."
    return (
        "The phrases customers repeated most, counted in their own turns (pieces "
        "of one longer utterance said in the same places are shown once, as the "
        "words they cover), and below them a few "
        "verbatim quotes from customers who agreed to be quoted, with personal "
        "details removed; experiments cite a quote by its id."
    )


def list_quotes(coding: dict) -> str:
    """Return :func:`tabulate_quotes` as a Markdown list: quote, theme and id."""
    return "\n".join(
        f"- {row['Quote']} — *{row['Theme']}* (`{row['Quote id']}`)"
        for row in tabulate_quotes(coding).to_dict("records")
    )


def plot_theme_shares(coding: dict):
    """Draw each top theme's share of coded conversations with its Wilson interval.

    Parameters
    ----------
    coding : dict
        ``summary_coding.json``: ``top_themes`` with ``name``, ``k``, ``n``,
        ``rate``, ``ci_low``, ``ci_high``.

    Returns
    -------
    Figure or None
        A horizontal dot plot, most frequent theme on top, each point labelled
        ``k of n``; None without themes.
    """
    from helpers.figures import PALETTE, new_figure

    themes = pd.DataFrame(coding.get("top_themes") or [])
    if themes.empty:
        return None
    themes = themes.iloc[::-1].reset_index(drop=True)
    figure, axes = new_figure(figsize=(6.4, 0.45 * len(themes) + 1.0))
    errors = [themes["rate"] - themes["ci_low"], themes["ci_high"] - themes["rate"]]
    axes.errorbar(
        themes["rate"], themes.index, xerr=errors, fmt="o", capsize=4,
        color=PALETTE[0], markersize=6,
    )  # fmt: skip
    for row in themes.itertuples():
        axes.annotate(
            f"{row.k} of {row.n}", (row.ci_high, row.Index), xytext=(6, 0),
            textcoords="offset points", va="center", fontsize=8,
        )  # fmt: skip
    names = themes["name"] if "name" in themes else themes["code"]
    axes.set_yticks(themes.index, names.fillna(themes["code"]))
    axes.set_xlim(0, min(1, float(themes["ci_high"].max()) * 1.25 + 0.05))
    axes.xaxis.set_major_formatter(lambda value, _: f"{100 * value:.0f}%")
    axes.set_xlabel(f"share of the {int(themes['n'].max())} conversations coded")
    figure.tight_layout()
    return figure


def describe_experiment_verdicts(experiments: dict) -> str:
    """Return each experiment arm's verdict sentence as a list."""
    entries = experiments.get("experiments") or []
    if not entries:
        return "No messaging experiment was analysed this month."
    return "\n".join(
        f"- **{entry.get('name')}, {entry.get('variant', 'variant')}:** "
        f"{entry.get('verdict') or 'no verdict recorded'}"
        for entry in entries
    )


def describe_months(
    connect: pd.DataFrame,
    themes: pd.DataFrame,
    *,
    month: str,
    study_months: list[str] | None = None,
) -> str:
    """Return the month-over-month sentences, or why there is nothing to compare.

    Parameters
    ----------
    connect : DataFrame
        From :func:`compare_connect_rates`.
    themes : DataFrame
        From :func:`compare_themes`.
    month : str
        The report's month.
    study_months : list of str, optional
        The months study.yml lists; when none comes before `month`, the report
        says this is the study's first month instead of asking for earlier ones.

    Returns
    -------
    str
        The change in connect rate since the previous month with its Newcombe
        interval and p-value, and each top theme's share then and now.
    """
    if connect["month"].nunique() < 2:
        earlier = [m for m in study_months or [] if m < month]
        if study_months is not None and not earlier:
            return (
                f"{format_month(month)} is this study's first month: there is no "
                "earlier month to compare with yet."
            )
        return (
            f"{format_month(month)} is the first month of this study with processed "
            "outputs, so there is nothing to compare yet. Render the earlier month "
            "first (`heard report --month <earlier month>`) to see changes here."
        )
    change = compare_last_two(connect)
    lines = [
        f"Connect rate, {format_month(change['before'])} to "
        f"{format_month(change['after'])}: "
        f"{format_pp(*(change[k] for k in SPREAD), digits=0)} "
        f"(Newcombe 95% interval; Fisher's exact p {format_p(change['p_value'])})."
    ]
    changes = compare_theme_changes(themes)
    if len(changes):
        largest = changes.iloc[0]
        lines.append(
            "Themes: the table below compares every theme in either month's top "
            f"{TOP_THEMES} and the other themes that changed most. The largest "
            f"change is {largest['name']}: "
            f"{format_rate_entry(themes_row(themes, largest, 'before'))} in "
            f"{format_month(largest['before'])}, "
            f"{format_rate_entry(themes_row(themes, largest, 'after'))} now, "
            + format_pp(*(largest[k] for k in SPREAD), digits=0)
            + f" (Fisher's exact p {format_p(largest['p_value'])})."
        )
    return "\n\n".join(lines)


def themes_row(themes: pd.DataFrame, change: pd.Series, when: str) -> dict:
    """Return the by-month row of `change`'s theme in its ``before`` or ``after``
    month."""
    match = themes[themes["code"].eq(change["code"]) & themes["month"].eq(change[when])]
    return match.iloc[0].to_dict()


def write_caveats(summaries: dict, *, open_codes: dict | None = None) -> str:
    """Return the caveats that change how this month's results should be read.

    `open_codes` (from :func:`tally_open_disagreements`) adds what unreconciled
    coder disagreements do to the theme shares.
    """
    coding, calls = summaries.get("coding", {}), summaries.get("calls", {})
    n_held = coding.get("n_conversations")
    n_coded = coding.get("n_conversations_coded", n_held)
    lines = []
    if n_held and n_coded is not None and n_coded < n_held:
        lines.append(
            f"Only {n_coded} of the {n_held} conversations had been coded: the "
            "themes and saturation count those, and may change once the coders "
            "finish."
        )
    top = (coding.get("top_themes") or [None])[0]
    if n_coded and top and top.get("n"):
        lines.append(
            f"With {top['n']} conversations coded, even the top theme, "
            f"{top.get('name', top['code'])}, heard in {top['k']} of them, has a "
            f"95% interval from {format_rate(top['ci_low'], digits=0)} to "
            f"{format_rate(top['ci_high'], digits=0)}: shares are directions, not "
            "measurements, and every share carries its denominator."
        )
    if open_codes and open_codes.get("n_open"):
        lines.append(describe_open_disagreements(open_codes))
    if is_suggested(coding):
        lines.append(
            "The codes are keyword suggestions: a keyword rule misses what "
            "customers say in other words and counts words used in passing."
        )
    if calls:
        lines += [
            "Customers who answer the phone differ from those who do not; themes "
            "describe the customers we reached, not every customer.",
            "Cart recovery compares customers assigned to be called with a randomly "
            "held-out group (intent to treat); the rate among customers actually "
            "reached is not randomised and overstates what calling does.",
        ]
    if (summaries.get("experiments") or {}).get("experiments"):
        lines.append(
            "Experiment p-values are corrected for the number of arms and metrics "
            "tested; an interval that includes zero means the change could be noise."
        )
    if calls and not calls.get("recovery"):
        lines.append("No cart-recovery comparison was possible this month.")
    if not lines:
        return "No stage has results this month, so there is nothing to qualify."
    return "\n".join(f"- {line}" for line in lines)


def describe_run(study: Study, month: str) -> str:
    """Return the provenance sentence: study, month, commit, seed."""
    seed = study.config.get("sampling", {}).get("seed")
    return (
        f"Study **{format_study_name(study)}** (folder `data/raw/{study.name}`), "
        f"month **{month}**, computed from git commit `{describe_commit()}` with "
        f"sampling seed {seed}. Processed files: "
        f"`data/processed/{study.name}/{month}/`; the report only reads them and "
        "writes nothing there."
    )


def describe_input_rows(segments: dict, *, month: str) -> str:
    """Return why the inputs table's rows are not the customers and orders the
    segments section counts.

    Parameters
    ----------
    segments : dict
        ``summary_segments.json``: ``n_customers``, ``n_orders``,
        ``n_rejected_rows``.
    month : str
        ``YYYY-MM``, naming the file of rejected rows.

    Returns
    -------
    str
        A short paragraph; empty without a segments summary.
    """
    if not segments or segments.get("n_customers") is None:
        return ""
    rejected = segments.get("n_rejected_rows") or 0
    kept_out = (
        f" The checks set aside {format_count(rejected)} "
        f"{'row' if rejected == 1 else 'rows'}, listed with the reason in "
        f"`rejected-rows_row_{month}.csv`."
        if rejected
        else ""
    )
    return (
        "Rows are the data rows of each file as received, so they are not the "
        "counts in the segments section: the orders export has a row per line "
        f"item, where that section counts **{format_count(segments['n_orders'])}** "
        "distinct orders, neither cancelled nor credit notes; the customers export "
        "can list one customer on several rows, where that section counts "
        f"**{format_count(segments['n_customers'])}** distinct customers (one "
        f"pseudonymous key each, from every export).{kept_out}"
    )


def format_inputs_table(inputs: pd.DataFrame) -> pd.DataFrame:
    """Return the inputs table for display: each SHA-256 may wrap after 32 digits.

    A zero-width space splits the hash so that it fits a printed page; the raw
    hash stays in :func:`tabulate_inputs`' result. Row counts get thousands
    separators.
    """
    shown = inputs.copy()
    shown["Rows"] = [
        f"{rows:,}" if isinstance(rows, numbers.Integral) else rows
        for rows in shown["Rows"]
    ]
    shown["SHA-256"] = [f"{h[:32]}\u200b{h[32:]}" for h in shown["SHA-256"]]
    return shown


# ---------------------------------------------------------------------------
# Calls: customers who answered without a conversation
# ---------------------------------------------------------------------------


def tally_reached_without_conversation(study: Study, month: str) -> dict:
    """Return why customers who answered held no conversation, by outcome.

    Parameters
    ----------
    study : Study
    month : str
        ``YYYY-MM``; reads ``attempts_attempt.parquet``.

    Returns
    -------
    dict
        ``n_reached`` (customers reached at least once), ``n_without``
        (reached, never a conversation) and ``outcomes``: outcome of the
        customer's last reaching attempt -> customers. Empty without the file.
    """
    path = study.processed(month, "attempts_attempt.parquet")
    if not path.exists():
        return {}
    attempts = pd.read_parquet(
        path, columns=["customer_key", "attempted_at", "outcome", "is_reached",
                       "is_conversation"],
    )  # fmt: skip

    # Per customer: reached at all, ever a conversation, last reaching outcome.
    reached = attempts[attempts["is_reached"]].sort_values("attempted_at")
    last = reached.groupby("customer_key")["outcome"].last()
    talked = set(attempts.loc[attempts["is_conversation"], "customer_key"])
    without = last[~last.index.isin(talked)]
    return {
        "n_reached": int(last.size),
        "n_without": int(without.size),
        "outcomes": {str(k): int(v) for k, v in without.value_counts().items()},
    }


def describe_unheard(unheard: dict | None) -> str:
    """Return ``"; 27 answered, 2 of them without a conversation (1 declined, 1
    asked not to be called)"``, or nothing when everyone who answered talked."""
    if not unheard or not unheard.get("n_without"):
        return ""
    reasons = ", ".join(
        f"{n} {NO_CONVERSATION.get(outcome, outcome.replace('_', ' '))}"
        for outcome, n in unheard["outcomes"].items()
    )
    return (
        f"; {unheard['n_reached']} answered, {unheard['n_without']} of them "
        f"without a conversation ({reasons})"
    )


# ---------------------------------------------------------------------------
# Coding: disagreements not reconciled yet
# ---------------------------------------------------------------------------


def tally_open_disagreements(study: Study, month: str, coding: dict) -> dict:
    """Return the coders' disagreements left out of the themes, and what settling
    them could do to each top theme.

    Parameters
    ----------
    study : Study
    month : str
        ``YYYY-MM``; reads ``disagreements_excerpt.parquet`` and
        ``consensus_excerpt.parquet``.
    coding : dict
        ``summary_coding.json`` (its ``top_themes``).

    Returns
    -------
    dict
        ``n_open`` (excerpt-code disagreements neither reconciled nor kept by a
        majority, so left out), ``n_total`` (all disagreements) and ``themes``:
        per top theme with open disagreements ``code``, ``name``, ``k``, ``n``,
        ``n_open`` and ``k_max`` (conversations with the theme if every open
        disagreement on it were kept), and ``decisions``: the file in the study
        folder step 03 reads the coders' decisions from. Empty without the
        queue file.
    """
    path = study.processed(month, "disagreements_excerpt.parquet")
    if not path.exists():
        return {}
    queue = pd.read_parquet(path)
    if queue.empty:
        return {"n_open": 0, "n_total": 0, "themes": []}

    # Open: no decision yet and no majority of the excerpt's coders for it.
    unresolved = queue["decision"].isna() | queue["decision"].eq("")
    majority = is_kept_by_majority(queue["n_applied"], queue["n_coders"])
    open_queue = queue[unresolved & ~majority]
    consensus_path = study.processed(month, "consensus_excerpt.parquet")
    consensus = (
        pd.read_parquet(consensus_path, columns=["conversation_id", "code"])
        if consensus_path.exists()
        else pd.DataFrame(columns=["conversation_id", "code"])
    )

    # Each top theme: conversations it would gain if its open codes were kept.
    affected = []
    for theme in coding.get("top_themes") or []:
        mine = open_queue[open_queue["code"] == theme["code"]]
        if mine.empty:
            continue
        counted = set(
            consensus.loc[consensus["code"] == theme["code"], "conversation_id"]
        )
        gained = set(mine["conversation_id"]) - counted
        affected.append(
            {"code": theme["code"], "name": theme.get("name", theme["code"]),
             "k": int(theme["k"]), "n": int(theme["n"]), "n_open": len(mine),
             "k_max": int(theme["k"]) + len(gained)}
        )  # fmt: skip
    return {"n_open": len(open_queue), "n_total": len(queue), "themes": affected,
            "decisions": f"coding/{month}/{RECONCILED_SHEET}"}  # fmt: skip


def describe_open_disagreements(
    open_codes: dict, *, limit: int | None = None, short: bool = False
) -> str:
    """Return what unreconciled coder disagreements do to the theme shares.

    `short` gives the executive summary's line (the first `limit` themes);
    otherwise the caveat's fuller sentence. Empty when nothing is open.
    """
    if not open_codes or not open_codes.get("n_open"):
        return ""
    rises = [
        f"{t['name']} {t['k']} of {t['n']}, up to {t['k_max']}"
        if short
        else f"{t['name']} from {t['k']} up to {t['k_max']} of {t['n']}"
        for t in open_codes.get("themes", [])[:limit]
        if t["k_max"] > t["k"]
    ]
    counted = (
        f"{open_codes['n_open']} of {open_codes['n_total']} excerpt-code "
        "disagreements between the coders"
    )
    if short:
        could = f" ({'; '.join(rises)}; see Caveats)" if rises else ""
        return (
            f"**Coding not reconciled yet:** {counted} are still open and left out, "
            f"so the theme shares above may rise{could}."
        )
    effect = (
        f"settled in their favour, {'; '.join(rises)}"
        if rises
        else "none of them would add a conversation to a top theme"
    )
    return (
        f"{counted} are not reconciled yet and are left out of the themes, so "
        f"theme shares are lower bounds: {effect}. The coders settle them in "
        "step 03's `reconcile_excerpt.xlsx` and save it as "
        f"`{open_codes.get('decisions', RECONCILED_SHEET)}`, which step 03 reads."
    )


# ---------------------------------------------------------------------------
# Experiments: every tested metric, arms' copy and the quotes behind them
# ---------------------------------------------------------------------------

# What the report shows of a result and what read_result needs to read it the
# way step 04 does: the absolute interval as well as the relative one.
RESULT_COLUMNS = [
    "experiment", "variant", "metric", "role", "metric_kind", "n", "estimate",
    "control_n", "control_estimate", "abs_lift", "abs_ci_low", "abs_ci_high",
    "rel_lift", "rel_ci_low", "rel_ci_high", "p_adjusted", "is_testable", "flags",
    "higher_is_better", "alpha",
]  # fmt: skip


def load_experiment_results(study: Study, month: str) -> pd.DataFrame:
    """Return every tested comparison of the month's experiments.

    Returns
    -------
    DataFrame
        One row per non-control arm and metric in the correction family
        (``role`` primary, secondary or guardrail): :data:`RESULT_COLUMNS`, with
        ``n`` and ``estimate`` the arm's units and value, ``control_n`` and
        ``control_estimate`` its control's, and ``higher_is_better`` and
        ``alpha`` from the experiment's definition. Experiments without a
        results file are left out (logged).
    """
    from helpers.experiment_tables import load_month_outputs

    outputs = load_month_outputs(study, month, parts=("results",), missing_ok=True)
    results = outputs["results"]
    if results.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)

    # Each row reads its direction and alpha from its own experiment.
    definitions = {d["name"]: d for d in outputs["definitions"]}
    better = {
        (name, metric): bool(spec[3])
        for name, definition in definitions.items()
        for metric, spec in definition["metrics"].items()
    }

    # Each comparison carries its control's value, so both arms can be shown.
    same = ["experiment", "metric", "role"]
    control = (
        results.loc[results["variant"].eq("control"), [*same, "n", "estimate"]]
        .drop_duplicates(subset=same)
        .rename(columns={"n": "control_n", "estimate": "control_estimate"})
    )
    results = results[
        results["variant"].ne("control") & results["role"].ne("sensitivity")
    ].merge(control, on=same, how="left")
    keys = zip(results["experiment"], results["metric"], strict=True)
    return results.assign(
        higher_is_better=[better.get(key, True) for key in keys],
        alpha=[float(definitions[name]["alpha"]) for name in results["experiment"]],
    )[RESULT_COLUMNS].reset_index(drop=True)


def read_result(row: dict) -> str:
    """Return what one comparison says against control: ``better``, ``worse``,
    ``borderline``, ``no clear difference``, ``not testable`` or, before anything
    else, ``not readable: sample-ratio mismatch`` (the arms are not the planned
    sizes).

    The rule is step 04's: better or worse only when the adjusted p-value is
    below alpha and both the absolute and the relative interval exclude no
    change (:func:`helpers.experiments.intervals_clear_of_zero`); borderline when
    the two intervals disagree, or the p-value is below alpha while the
    intervals include no change. The direction is read against the metric's
    ``higher_is_better`` (a rise in unsubscribes is worse).
    """
    if "srm" in str(row.get("flags") or "").split(";"):
        return "not readable: sample-ratio mismatch"
    if not row.get("is_testable", True) or pd.isna(row.get("abs_ci_low")):
        return "not testable"
    clear_abs, clear_rel = intervals_clear_of_zero(row)
    p_value = row.get("p_adjusted")
    significant = not pd.isna(p_value) and p_value < row["alpha"]
    if clear_abs != clear_rel or (significant and not clear_abs):
        return "borderline"
    if not (significant and clear_abs):
        return "no clear difference"
    good = (row["abs_lift"] > 0) == bool(row["higher_is_better"])
    return "better" if good else "worse"


def tabulate_experiment_results(results: pd.DataFrame) -> pd.DataFrame:
    """Return every tested metric of every arm for display.

    Returns
    -------
    DataFrame
        ``Arm`` (the variant; ``experiment: variant`` when the month has several
        experiments; no column when the month tested a single arm), ``Metric``
        (with its role), ``Control vs arm`` (:func:`format_arm_values`),
        ``Relative lift [95% CI]`` (the level is 1 - the experiments' alpha; with
        several levels each cell names its own), ``p (adjusted)``, ``Reading``
        (:func:`read_result`); primary metrics first.
    """
    order = {"primary": 0, "secondary": 1, "guardrail": 2}
    several = len(set(results["experiment"])) > 1
    arms = set(zip(results["experiment"], results["variant"], strict=True))
    rows = sorted(
        results.to_dict("records"),
        key=lambda r: (r["experiment"], r["variant"], order.get(r["role"], 3)),
    )
    # Each experiment sets its own alpha: one level goes in the header, several
    # go beside each interval.
    levels = {format_level(alpha) for alpha in results["alpha"]} or {"95%"}
    lift_column = f"Relative lift [{next(iter(levels))} CI]"
    if len(levels) > 1:
        lift_column = "Relative lift [CI at its level]"
    table = pd.DataFrame(
        [
            {
                "Arm": f"{row['experiment']}: {row['variant']}"
                if several
                else row["variant"],
                "Metric": f"{format_metric(row['metric'])}, {row['role']}",
                "Control vs arm": format_arm_values(row),
                lift_column: keep_together(format_result_lift(row))
                + (f" ({format_level(row['alpha'])})" if len(levels) > 1 else ""),
                "p (adjusted)": format_p(row["p_adjusted"]),
                "Reading": read_result(row),
            }
            for row in rows
        ],
        columns=[
            "Arm",
            "Metric",
            "Control vs arm",
            lift_column,
            "p (adjusted)",
            "Reading",
        ],  # fmt: skip
    )
    # With a single arm the column would repeat one name; the arm list names it.
    return table.drop(columns="Arm") if len(arms) == 1 else table


def format_arm_values(row: dict) -> str:
    """Return a result's control and arm values: ``2.80% (293 of 10,462) vs
    4.10% (432 of 10,538)`` for a proportion, ``2.92 vs 4.44`` for a mean or
    ratio, ``–`` when the results carry no values.

    Notes
    -----
    A proportion's count is its estimate times its units: step 04 writes the
    proportion as conversions over units, so the product is the count.
    """
    values = [row.get(key) for key in ("control_estimate", "estimate")]
    if any(value is None or pd.isna(value) for value in values):
        return "–"
    if row.get("metric_kind") != "proportion":
        return " vs ".join(format_decimal(value) for value in values)
    sizes = [row.get("control_n"), row.get("n")]
    return " vs ".join(
        f"{format_rate(value, digits=2)} ({round(value * size):,} of {size:,.0f})"
        for value, size in zip(values, sizes, strict=True)
    )


def format_result_lift(row: dict) -> str:
    """Return a results row's relative lift with its interval (:func:`format_lift`)."""
    return format_lift(
        {
            "lift": none_if_nan(row["rel_lift"]),
            "ci_low": none_if_nan(row["rel_ci_low"]),
            "ci_high": none_if_nan(row["rel_ci_high"]),
        }
    )


def keep_together(text: str) -> str:
    """Return `text` with its interval's inner spaces made non-breaking, so a
    narrow table cell wraps before ``[`` and never inside the interval."""
    head, bracket, interval = text.partition("[")
    return head + bracket + interval.replace(" ", "\u00a0")


def describe_guardrails(results: pd.DataFrame) -> list[str]:
    """Return a summary line per guardrail that got worse or stayed unclear.

    A guardrail the variant clearly did not harm needs no line; one whose
    interval still allows harm says how much harm it allows.
    """
    lines = []
    for row in results[results["role"].eq("guardrail")].to_dict("records"):
        reading = read_result(row)
        if reading == "better":
            continue
        lift = format_result_lift(row)
        if reading == "worse":
            meaning = "the variant made it worse"
        elif reading == "not testable":
            meaning = "not testable this month, so harm is not ruled out"
        elif reading.startswith("not readable"):
            meaning = (
                "the arms are not the planned sizes (sample-ratio mismatch), so "
                "harm cannot be judged until the split is explained"
            )
        else:
            worst = row["rel_ci_low"] if row["higher_is_better"] else row["rel_ci_high"]
            change = "fall" if row["higher_is_better"] else "rise"
            meaning = (
                f"inconclusive, a {change} of up to {100 * abs(worst):.0f}% is not "
                "ruled out"
            )
        lines.append(
            f"**Guardrail of {row['experiment']}** ({row['variant']} vs control, "
            f"{format_metric(row['metric'], in_sentence=True)}): relative change "
            f"{lift} ({format_level(row['alpha'])} "
            f"interval), adjusted p {format_p(row['p_adjusted'])}; {meaning}."
        )
    return lines


def load_experiment_arms(study: Study, month: str) -> pd.DataFrame:
    """Return each arm of the month's experiments: its copy and source quotes.

    Returns
    -------
    DataFrame
        ``experiment``, ``variant``, ``name``, ``copy`` (from experiment.yml),
        ``n`` (units in the arm, from ``experiment-arms_<name>.parquet``; None
        for a planned experiment) and ``quotes``: a list of ``(quote_id, text)``
        with ``text`` None when the customer did not agree to be quoted or the
        quote is not in the month's quote bank.
    """
    from helpers.experiment_tables import load_month_outputs

    bank_path = study.processed(month, "quote-bank_quote.parquet")
    bank = (
        pd.read_parquet(bank_path, columns=["quote_id", "text", "consent_to_quote"])
        if bank_path.exists()
        else pd.DataFrame(columns=["quote_id", "text", "consent_to_quote"])
    )
    consented = bank[bank["consent_to_quote"].astype(bool)]
    texts = dict(zip(consented["quote_id"], consented["text"], strict=True))
    outputs = load_month_outputs(study, month, parts=("arms",), missing_ok=True)
    counted = outputs["arms"]
    sizes = dict(
        zip(
            zip(counted["experiment"], counted["variant"], strict=True),
            counted["n"],
            strict=True,
        )
    )
    rows = []
    for definition in outputs["definitions"]:
        name = definition["name"]
        for variant in definition["variants"]:
            quotes = [
                (quote_id, redact(texts[quote_id]) if quote_id in texts else None)
                for quote_id in variant.get("quote_ids") or []
            ]
            rows.append(
                {"experiment": name, "variant": variant["id"],
                 "name": variant.get("name", ""), "copy": variant.get("copy", ""),
                 "n": sizes.get((name, variant["id"])), "quotes": quotes}
            )  # fmt: skip
    columns = ["experiment", "variant", "name", "copy", "n", "quotes"]
    return pd.DataFrame(rows, columns=columns)


def list_experiment_arms(arms: pd.DataFrame) -> str:
    """Return what each arm said and which customers' words it came from.

    Returns
    -------
    str
        A Markdown list per experiment, headed by its name and units in all:
        each arm's id and name, its units, its
        copy (quoted) and the quote ids with their texts it was written from (or
        why a text is not shown).
    """

    def sources(quotes: list) -> str:
        if not quotes:
            return ", not written from a customer quote"
        return "; written from " + "; ".join(
            f"`{quote_id}` {format_quoted(text)}"
            if text
            else f"`{quote_id}` (text not shown: no consent to quote)"
            for quote_id, text in quotes
        )

    blocks = []
    for experiment, rows in arms.groupby("experiment", sort=False):
        total = none_if_nan(rows["n"].sum(min_count=1))
        units = f" ({format_count(total)} units in all)" if total is not None else ""
        lines = [f"**{experiment}**{units}, what each arm said:", ""]
        for row in rows.itertuples():
            name = f" ({row.name})" if row.name else ""
            units = none_if_nan(row.n)
            counted = f", {format_count(units)} units" if units is not None else ""
            copy = f"\u201c{row.copy}\u201d" if row.copy else "no copy given"
            line = f"- *{row.variant}*{name}{counted}: {copy}{sources(row.quotes)}"
            # A quote ends its own sentence; no second full stop after it.
            lines.append(line if line.endswith("\u201d") else f"{line}.")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------
# Month over month: which themes to compare, and their changes
# ---------------------------------------------------------------------------


def choose_theme_codes(
    study: Study, month: str, *, top: int = TOP_THEMES, movers: int = 2
) -> list[str]:
    """Return the themes to compare with the latest earlier month.

    The union of both months' `top` themes, plus the `movers` other themes whose
    share changed most, so a theme that fell out of the top is not hidden.
    Only this month's top themes without an earlier month.
    """
    from helpers.themes import rank_themes

    months = [
        m
        for m in [*previous_months(study, month), month]
        if study.processed(m, "themes_code.parquet").exists()
    ]
    if month not in months:
        return []
    ranked = {
        m: rank_themes(pd.read_parquet(study.processed(m, "themes_code.parquet")))
        for m in months[-2:]
    }
    chosen = list(dict.fromkeys(
        code for frame in ranked.values() for code in frame["code"].head(top)
    ))  # fmt: skip
    if len(ranked) < 2:
        return chosen

    # The largest other changes in share, either way.
    before, after = (frame.set_index("code")["rate"] for frame in ranked.values())
    change = after.sub(before, fill_value=0).abs()
    change = change[~change.index.isin(chosen) & change.gt(0)]
    ordered = change.sort_values(ascending=False, kind="stable")
    return chosen + list(ordered.index[:movers])


def compare_theme_changes(themes: pd.DataFrame) -> pd.DataFrame:
    """Return each theme's change in share between the last two months.

    Parameters
    ----------
    themes : DataFrame
        From :func:`compare_themes`.

    Returns
    -------
    DataFrame
        ``code``, ``name``, ``before``, ``after`` (months), ``k_before``,
        ``n_before``, ``k_after``, ``n_after``, ``difference`` (after minus
        before), ``ci_low``, ``ci_high`` (Newcombe, 95%), ``p_value`` (Fisher),
        largest change first; themes seen in one month only are left out.
    """
    rows = []
    for code, by_month in themes.groupby("code", sort=False):
        by_month = by_month.sort_values("month")
        if len(by_month) < 2:
            continue
        change = compare_last_two(by_month)
        then, now = by_month.iloc[-2], by_month.iloc[-1]
        rows.append(
            {"code": code, "name": now["name"], "before": change["before"],
             "after": change["after"], "k_before": int(then["k"]),
             "n_before": int(then["n"]), "k_after": int(now["k"]),
             "n_after": int(now["n"])}
            | {k: change[k] for k in ("difference", "ci_low", "ci_high", "p_value")}
        )  # fmt: skip
    columns = ["code", "name", "before", "after", "k_before", "n_before", "k_after",
               "n_after", "difference", "ci_low", "ci_high", "p_value"]  # fmt: skip
    changes = pd.DataFrame(rows, columns=columns)
    order = changes["difference"].abs().sort_values(ascending=False, kind="stable")
    return changes.loc[order.index].reset_index(drop=True)


def format_theme_changes(changes: pd.DataFrame, themes: pd.DataFrame) -> pd.DataFrame:
    """Return the theme changes for display: ``Theme``, one column per month
    (``24% (6 of 25) [11%, 43%]``) and ``Change [95% CI]`` in percentage
    points; intervals never break across lines."""
    if changes.empty:
        return pd.DataFrame(columns=["Theme"])
    before, after = changes["before"].iloc[0], changes["after"].iloc[0]
    by_key = {
        (row["code"], row["month"]): format_rate_entry(row)
        for row in themes.to_dict("records")
    }
    return pd.DataFrame(
        {
            "Theme": changes["name"],
            format_month(before): [
                keep_together(by_key[(c, before)]) for c in changes["code"]
            ],
            format_month(after): [
                keep_together(by_key[(c, after)]) for c in changes["code"]
            ],
            "Change [95% CI]": [
                keep_together(format_pp(*(row[k] for k in SPREAD), digits=0))
                for row in changes.to_dict("records")
            ],
        }
    )


def plot_theme_changes(changes: pd.DataFrame):
    """Draw each theme's change in share with its Newcombe interval.

    Parameters
    ----------
    changes : DataFrame
        From :func:`compare_theme_changes`.

    Returns
    -------
    Figure or None
        One row per theme (largest change on top), the change in percentage
        points as a dot with its 95% interval, a grey line at no change, each
        row labelled ``k of n -> k of n``; None without changes.
    """
    from helpers.figures import PALETTE, new_figure

    if changes.empty:
        return None
    shown = changes.iloc[::-1].reset_index(drop=True)
    figure, axes = new_figure(figsize=(6.4, 0.42 * len(shown) + 1.1))
    axes.axvline(0, color="0.35", linewidth=1, linestyle="--")
    points = 100 * shown["difference"]
    errors = [points - 100 * shown["ci_low"], 100 * shown["ci_high"] - points]
    axes.errorbar(
        points, shown.index, xerr=errors, fmt="o", capsize=4, color=PALETTE[0],
        markersize=6,
    )  # fmt: skip
    for row in shown.itertuples():
        axes.annotate(
            f"{row.k_before} of {row.n_before} \u2192 {row.k_after} of {row.n_after}",
            (100 * row.ci_high, row.Index), xytext=(6, 0),
            textcoords="offset points", va="center", fontsize=8,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "linewidth": 0},
        )  # fmt: skip
    axes.set_yticks(shown.index, shown["name"])
    low, high = 100 * shown["ci_low"].min(), 100 * shown["ci_high"].max()
    axes.set_xlim(min(low, 0) - 5, max(high, 0) + 0.45 * (high - min(low, 0)) + 5)
    axes.set_xlabel(
        f"change, {format_month(shown['before'].iloc[0])} to "
        f"{format_month(shown['after'].iloc[0])} (percentage points)"
    )
    figure.tight_layout()
    return figure

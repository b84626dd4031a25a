"""Display tables and figures for notebook 03: raw numbers in, formatted text out.

Processed files keep raw numbers; these helpers dress them for people: rates with
their denominators and Wilson intervals, p-values to two figures, money with the
currency code, and only quotes the customer agreed to.
"""

from __future__ import annotations

import math

import pandas as pd

from helpers.coding import OVERALL
from helpers.journeys import END, START, name_codes
from helpers.tables import (
    format_count_rate,
    format_decimal,
    format_interval,
    format_money,
    format_p,
    format_rate,
    format_rate_ci,
    format_segment,
)
from helpers.themes import ALL_SEGMENTS, list_theme_codes


def format_number(value: float, *, digits: int = 2) -> str:
    """Return `value` to `digits` decimals, or ``undefined`` for NaN/None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    return format_decimal(value, digits=digits)


def format_agreement(
    agreement: pd.DataFrame, *, codebook: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Return the agreement table for display: one row per code, overall last.

    Parameters
    ----------
    agreement : DataFrame
        ``helpers.coding.agreement_table``.
    codebook : DataFrame, optional
        With ``code`` and ``name``: each code is shown by its name, and the
        overall row reads "All codes".

    Returns
    -------
    DataFrame
        ``Code``, ``Units``, ``Applied``, ``Agreement [95% CI]``,
        ``Cohen's kappa [95% CI]``,
        ``Krippendorff's alpha [95% CI]``, ``Status``; an undefined statistic reads
        "undefined" beside its raw agreement, never 0 or 1.
    """
    names = {}
    if codebook is not None:
        names = dict(zip(codebook["code"], codebook["name"], strict=True))
        names[OVERALL] = "All codes"
    rows = []
    for row in agreement.itertuples(index=False):
        rows.append(
            {
                "Code": names.get(row.code, row.code),
                "Units": row.n_units,
                "Applied": row.n_applied,
                "Agreement [95% CI]": with_rate_interval(
                    row.percent_agreement,
                    row.percent_agreement_ci_low,
                    row.percent_agreement_ci_high,
                ),
                "Cohen's kappa [95% CI]": with_interval(
                    row.kappa, row.kappa_ci_low, row.kappa_ci_high
                ),
                "Krippendorff's alpha [95% CI]": with_interval(
                    row.alpha, row.alpha_ci_low, row.alpha_ci_high
                ),
                "Status": row.status,
            }
        )
    return pd.DataFrame(rows)


def with_rate_interval(rate: float, low: float, high: float) -> str:
    """Return ``95.0% [90.1%, 98.2%]``, the rate alone without an interval, or
    ``–`` when no unit was coded by two coders."""
    if low is None or math.isnan(low):
        return format_rate(rate)
    return format_rate_ci(rate, low, high)


def with_interval(value: float, low: float, high: float) -> str:
    """Return ``0.82 [0.66, 1.00]``, or ``undefined``."""
    if value is None or math.isnan(value):
        return "undefined"
    if low is None or math.isnan(low):
        return format_number(value)
    interval = format_interval(low, high, digits=2, percent=False)
    return f"{format_number(value)} {interval}"


def format_themes(themes: pd.DataFrame, codebook: pd.DataFrame) -> pd.DataFrame:
    """Return the overall rate of each leaf theme, most frequent first.

    Parameters
    ----------
    themes : DataFrame
        ``helpers.themes.tally_themes``.
    codebook : DataFrame
        The codebook's flat table.

    Returns
    -------
    DataFrame
        ``Code``, ``Theme``, ``Conversations`` (``31% (8 of 26)``),
        ``95% Wilson interval``; unused codes included (0 of n has an interval).
    """
    overall = select_leaf_themes(themes, codebook)
    return pd.DataFrame(
        {
            "Code": overall["code"],
            "Theme": overall["name"],
            "Conversations": format_counts(
                overall, successes="n_with_theme", trials="n_conversations"
            ),
            "95% Wilson interval": format_intervals(overall),
        }
    )


def format_counts(frame: pd.DataFrame, *, successes: str, trials: str) -> list[str]:
    """Return each row's rate with its denominator, ``31% (8 of 26)``."""
    pairs = zip(frame[successes], frame[trials], strict=True)
    return [format_count_rate(k, n) for k, n in pairs]


def format_intervals(frame: pd.DataFrame) -> list[str]:
    """Return each row's ``ci_low``/``ci_high`` as ``[12%, 45%]``."""
    pairs = zip(frame["ci_low"], frame["ci_high"], strict=True)
    return [format_interval(low, high, digits=0) for low, high in pairs]


def select_leaf_themes(
    themes: pd.DataFrame, codebook: pd.DataFrame, *, segment: str = ALL_SEGMENTS
) -> pd.DataFrame:
    """Return one segment's rows for leaf theme codes, most frequent first."""
    leaves = list_theme_codes(codebook, leaves_only=True)
    part = themes[(themes["segment"] == segment) & themes["code"].isin(leaves)]
    return part.sort_values(
        ["n_with_theme", "code"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def format_segment_comparison(
    themes: pd.DataFrame, tests: pd.DataFrame, codebook: pd.DataFrame
) -> pd.DataFrame:
    """Return each leaf theme's rate per segment beside the exact test.

    Returns
    -------
    DataFrame
        ``Theme``, one column per segment (``k of n`` with the rate), ``p``,
        ``Test``; themes nobody raised are left out.
    """
    leaves = select_leaf_themes(themes, codebook)
    used = leaves.loc[leaves["n_with_theme"] > 0, ["code", "name"]]
    segments = sorted(s for s in themes["segment"].unique() if s != ALL_SEGMENTS)
    indexed = themes.set_index(["segment", "code"])
    table = pd.DataFrame({"Theme": used["name"].to_numpy()})
    for segment in segments:
        table[format_segment(segment)] = [
            format_count_rate(
                int(indexed.loc[(segment, code), "n_with_theme"]),
                int(indexed.loc[(segment, code), "n_conversations"]),
            )
            for code in used["code"]
        ]
    by_code = tests.set_index("code")
    table["p"] = [format_p(by_code.loc[code, "p_value"]) for code in used["code"]]
    table["Test"] = [by_code.loc[code, "test"] for code in used["code"]]
    return table


def format_value(value: pd.DataFrame, *, currency: str = "USD") -> pd.DataFrame:
    """Return revenue at stake per theme for display.

    Parameters
    ----------
    value : DataFrame
        From :func:`helpers.themes.weigh_themes_by_value`.
    currency : str
        The study's currency code, written before each amount.

    Returns
    -------
    DataFrame
        ``Theme``, ``Customers``, ``Spend to date``, ``Abandoned checkouts``,
        ``Revenue at stake`` (amounts as text with their currency).
    """
    return pd.DataFrame(
        {
            "Theme": value["name"],
            "Customers": value["n_customers"],
            "Spend to date": [
                format_money(v, currency=currency) for v in value["spend"]
            ],
            "Abandoned checkouts": [
                format_money(v, currency=currency) for v in value["abandoned_value"]
            ],
            "Revenue at stake": [
                format_money(v, currency=currency) for v in value["revenue_at_stake"]
            ],
        }
    )


def format_consented_quotes(
    quotes: pd.DataFrame, codebook: pd.DataFrame, *, limit: int = 8
) -> pd.DataFrame:
    """Return consented quotes for display, one per theme code at most.

    Returns
    -------
    DataFrame
        ``Quote id``, ``Theme``, ``Segment``, ``Quote``; only rows with
        ``consent_to_quote`` True, stage-only quotes left out.
    """
    names = codebook.set_index("code")["name"]
    themes = set(list_theme_codes(codebook))
    eligible = quotes[quotes["consent_to_quote"] & quotes["code"].isin(themes)]
    chosen = eligible.drop_duplicates("code").head(limit)
    return pd.DataFrame(
        {
            "Quote id": chosen["quote_id"],
            "Theme": chosen["code"].map(names),
            "Segment": chosen["segment"].map(format_segment),
            "Quote": chosen["text"],
        }
    )


def format_predictions(scores: pd.DataFrame) -> pd.DataFrame:
    """Return accuracy and Brier score per month and caller for display.

    Parameters
    ----------
    scores : DataFrame
        From :func:`helpers.insights.tally_prediction_scores`.

    Returns
    -------
    DataFrame
        ``Month``, ``Caller``, ``Right`` (rate with k of n), ``95% Wilson
        interval``, ``Brier score`` (``undefined`` without probabilities),
        ``With a probability`` (how many predictions stated one).
    """
    return pd.DataFrame(
        {
            "Month": scores["month"],
            "Caller": scores["caller"],
            "Right": format_counts(
                scores, successes="n_correct", trials="n_predictions"
            ),
            "95% Wilson interval": format_intervals(scores),
            "Brier score": [format_number(b) for b in scores["brier_score"]],
            "With a probability": scores["n_with_probability"],
        }
    )


def plot_themes(themes: pd.DataFrame, codebook: pd.DataFrame, *, limit: int = 12):
    """Draw each leaf theme's share of conversations with its Wilson interval.

    Returns
    -------
    Figure
        One row per theme (most frequent at the top): a dot at the rate and a line
        across the 95% Wilson interval, labelled ``k/n``.
    """
    from helpers.figures import PALETTE, new_figure

    shown = select_leaf_themes(themes, codebook).head(limit).iloc[::-1]
    figure, axes = new_figure(figsize=(6.4, 0.32 * len(shown) + 1.2))
    positions = range(len(shown))
    axes.hlines(positions, shown["ci_low"], shown["ci_high"], color=PALETTE[0])
    axes.plot(shown["rate"], positions, "o", color=PALETTE[0])
    for position, row in zip(positions, shown.itertuples(), strict=True):
        axes.annotate(
            f"{row.n_with_theme}/{row.n_conversations}",
            (row.ci_high, position),
            xytext=(4, -3),
            textcoords="offset points",
            fontsize=8,
        )
    axes.set_yticks(list(positions), shown["name"])
    axes.set_xlim(0, 1.08)
    axes.xaxis.set_major_formatter(lambda x, _: f"{100 * x:.0f}%")
    axes.set_xlabel("Share of conversations")
    figure.tight_layout()
    return figure


def find_top_pair(cooccurrence: pd.DataFrame) -> tuple | None:
    """Return ``(code_a, code_b, n)`` for the two themes most often raised together,
    or None when no two themes share a conversation."""
    best = None
    codes = list(cooccurrence.index)
    for i, first in enumerate(codes):
        for second in codes[i + 1 :]:
            n = int(cooccurrence.loc[first, second])
            if n and (best is None or n > best[2]):
                best = (first, second, n)
    return best


def format_transitions(
    transitions: pd.DataFrame,
    codebook: pd.DataFrame,
    *,
    segment: str = ALL_SEGMENTS,
    include_ends: bool = True,
) -> pd.DataFrame:
    """Return one segment's moves between decision stages for display.

    Parameters
    ----------
    transitions : DataFrame
        From :func:`helpers.journeys.tally_transitions`.
    codebook : DataFrame
        The codebook's flat table, for the stage names.
    segment : str
        The segment to show; ``"all"`` for everyone.
    include_ends : bool
        Keep the moves from the start of a conversation and to its end.

    Returns
    -------
    DataFrame
        ``Move`` (``Discover → Checkout``; ``(start)`` and ``(end)`` mark where
        conversations began and stopped), ``Times``, ``Conversations``, in the
        order of `transitions` (most frequent first).
    """
    part = transitions[transitions["segment"] == segment]
    if not include_ends:
        part = part[~part["from_stage"].eq(START) & ~part["to_stage"].eq(END)]
    moves = zip(
        name_codes(part["from_stage"], codebook),
        name_codes(part["to_stage"], codebook),
        strict=True,
    )
    return pd.DataFrame(
        {
            "Move": [f"{first} → {then}" for first, then in moves],
            "Times": part["n"].to_numpy(),
            "Conversations": part["n_conversations"].to_numpy(),
        }
    )


def format_cooccurrence(
    cooccurrence: pd.DataFrame, codebook: pd.DataFrame
) -> pd.DataFrame:
    """Return the co-occurrence matrix with theme names for rows and columns.

    Parameters
    ----------
    cooccurrence : DataFrame
        From :func:`helpers.themes.count_cooccurrence` (codes on both axes).
    codebook : DataFrame
        The codebook's flat table, for the names.

    Returns
    -------
    DataFrame
        ``Theme`` (the row theme's name), then one column per theme, named;
        cells are the conversations sharing both themes.
    """
    shared = cooccurrence.copy()
    shared.columns = name_codes(shared.columns, codebook)
    shared.insert(0, "Theme", name_codes(shared.index, codebook))
    return shared.reset_index(drop=True)


def describe_price_objection(price: dict | None, *, month: str, code: str) -> str:
    """Return the sentence on the share of non-buyers who cited price.

    Parameters
    ----------
    price : dict or None
        ``summary_coding.json``'s ``price_objection`` (``k``, ``n``, ``rate``,
        ``ci_low``, ``ci_high``), None when the codebook has no price code.
    month : str
        ``YYYY-MM``.
    code : str
        ``coding.price_code``, named when the codebook lacks it.

    Returns
    -------
    str
        Markdown. The unit is the customer (one with two conversations counts
        once), so the sentence counts customers, never conversations.
    """
    if price is None:
        return (
            f"The codebook has no code `{code}` (`coding.price_code`), so the share "
            "of non-buyers citing price is undefined."
        )
    if not price["n"]:
        return "Step 01's orders are missing, so buyers cannot be told from non-buyers."
    customers = "customer" if price["n"] == 1 else "customers"
    reading = (
        "Even the top of the interval is under half: price is not what most "
        "non-buyers say held them back."
        if price["ci_high"] < 0.5
        else "The interval is too wide to say whether price is the main reason."
    )
    interval = format_interval(price["ci_low"], price["ci_high"], digits=0)
    return (
        f"Of the **{price['n']} {customers} we talked to who did not buy** in "
        f"{month}, **{price['k']}** cited price "
        f"({format_rate(price['rate'], digits=0)}, 95% interval {interval}). "
        f"{reading}"
    )

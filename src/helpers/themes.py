"""Themes: how many conversations raised each code, for whom, and what it is worth.

The unit is the conversation. A conversation has a theme when any of its excerpts
carries the code or one of the code's descendants in the codebook, so a parent such
as ``OBJ`` counts every conversation with ``OBJ-PRICE`` or ``OBJ-SHIPPING``. With
20-30 conversations every rate carries its denominator and a Wilson interval.

Inputs follow ``helpers.coding``: ``conversations`` (one row per conversation with
``conversation_id``, ``customer_key``, ``date``, ``segment``), a coding with one row
per coded excerpt (``conversation_id``, ``excerpt_id``, ``code``) and the codebook's
flat table (``code``, ``name``, ``parent``, ``depth``).
"""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pandas as pd
from scipy import stats

from helpers.schemas import order_flag
from helpers.stats import tally_rate, wilson_interval

log = logging.getLogger(__name__)

ALL_SEGMENTS = "all"
STAGE_BRANCH = "STAGE"
PRICE_CODE = "OBJ-PRICE"
# Above this many tables with the observed margins, the Freeman-Halton p-value is
# estimated by Monte Carlo instead of summed exactly.
MAX_EXACT_TABLES = 200_000


def map_ancestors(codebook: pd.DataFrame) -> dict[str, list[str]]:
    """Return, for every code, the code itself followed by its ancestors.

    Parameters
    ----------
    codebook : DataFrame
        The codebook's flat table with ``code`` and ``parent`` (blank at the root).

    Returns
    -------
    dict
        ``{"OBJ-PRICE": ["OBJ-PRICE", "OBJ"], ...}``.
    """
    parents = {
        row.code: (row.parent if isinstance(row.parent, str) and row.parent else None)
        for row in codebook.itertuples(index=False)
    }
    lineage = {}
    for code in parents:
        chain, current = [], code
        while current is not None and current not in chain:
            chain.append(current)
            current = parents.get(current)
        lineage[code] = chain
    return lineage


def branch_codes(codebook: pd.DataFrame, root: str) -> list[str]:
    """Return the codes under `root` (itself included), in codebook order."""
    lineage = map_ancestors(codebook)
    return [code for code in codebook["code"] if root in lineage[code]]


def list_theme_codes(codebook: pd.DataFrame, *, leaves_only: bool = False) -> list:
    """Return the codebook's theme codes: every code outside the ``STAGE`` branch.

    Parameters
    ----------
    codebook : DataFrame
        The codebook's flat table.
    leaves_only : bool
        Keep only codes without children (the codes coders actually apply).

    Returns
    -------
    list of str
        Codes in codebook order.
    """
    stages = set(branch_codes(codebook, STAGE_BRANCH))
    parents = set(codebook["parent"].dropna())
    return [
        code
        for code in codebook["code"]
        if code not in stages and not (leaves_only and code in parents)
    ]


def rank_themes(
    themes: pd.DataFrame, *, codebook: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Return the leaf themes across all segments, most frequent first.

    Parameters
    ----------
    themes : DataFrame
        From :func:`tally_themes` (``themes_code.parquet``); only the
        ``segment`` ``"all"`` rows are ranked when the column is there.
    codebook : DataFrame, optional
        Says which codes are leaves and which belong to the ``STAGE`` branch;
        without it the rows' own ``code`` and ``parent`` say so.

    Returns
    -------
    DataFrame
        The rows of `themes` whose code is a leaf theme code
        (:func:`list_theme_codes`), by ``n_with_theme`` descending then ``code``,
        on a fresh index; codes no conversation carried are kept.
    """
    if "segment" in themes.columns:
        themes = themes[themes["segment"] == ALL_SEGMENTS]
    codebook = themes if codebook is None else codebook
    leaves = list_theme_codes(codebook, leaves_only=True)
    ranked = themes[themes["code"].isin(leaves)]
    return ranked.sort_values(
        ["n_with_theme", "code"], ascending=[False, True], ignore_index=True
    )


def build_theme_matrix(
    coded: pd.DataFrame, conversations: pd.DataFrame, codebook: pd.DataFrame
) -> pd.DataFrame:
    """Return which conversation has which theme, children rolled up to parents.

    Parameters
    ----------
    coded : DataFrame
        One row per coded excerpt: ``conversation_id``, ``code``.
    conversations : DataFrame
        One row per conversation: ``conversation_id``; conversations without any
        code stay in the matrix as all-False rows (they count in denominators).
    codebook : DataFrame
        The codebook's flat table.

    Returns
    -------
    DataFrame
        Index ``conversation_id``, one boolean column per codebook code.
    """
    lineage = map_ancestors(codebook)

    # Roll each coded excerpt up to every ancestor of its code.
    pairs = [
        (conversation, ancestor)
        for conversation, code in zip(
            coded["conversation_id"], coded["code"], strict=False
        )
        for ancestor in lineage.get(code, [code])
    ]
    rolled = pd.DataFrame(pairs, columns=["conversation_id", "code"]).drop_duplicates()

    matrix = pd.DataFrame(
        False,
        index=pd.Index(conversations["conversation_id"], name="conversation_id"),
        columns=list(codebook["code"]),
    )
    for conversation, code in rolled.itertuples(index=False):
        if conversation in matrix.index and code in matrix.columns:
            matrix.loc[conversation, code] = True
    return matrix


def tally_themes(
    coded: pd.DataFrame,
    conversations: pd.DataFrame,
    codebook: pd.DataFrame,
    *,
    by_segment: bool = True,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Return each theme's share of conversations, overall and by segment.

    Parameters
    ----------
    coded, conversations, codebook : DataFrame
        As for :func:`build_theme_matrix`; `conversations` also needs ``segment``.
    by_segment : bool
        Add one row per code and segment besides the overall ``"all"`` rows.
    alpha : float
        One minus the confidence level of the Wilson intervals.

    Returns
    -------
    DataFrame
        ``segment`` (``"all"`` or a segment), ``code``, ``name``, ``parent``,
        ``depth``, ``n_with_theme``, ``n_conversations``, ``rate``, ``ci_low``,
        ``ci_high``; every codebook code, used or not.

    Notes
    -----
    The denominator is every conversation in the group, including conversations
    that received no code at all.
    """
    matrix = build_theme_matrix(coded, conversations, codebook)
    segments = conversations.set_index("conversation_id")["segment"]
    groups = [(ALL_SEGMENTS, matrix)]
    if by_segment:
        groups += [
            (segment, matrix.loc[segments.index[segments == segment]])
            for segment in sorted(segments.dropna().unique())
        ]

    # Count conversations with each theme in each group.
    rows = [
        {
            "segment": segment,
            "code": code,
            "n_with_theme": int(part[code].sum()),
            "n_conversations": len(part),
        }
        for segment, part in groups
        for code in matrix.columns
    ]
    counts = pd.DataFrame(rows).merge(
        codebook[["code", "name", "parent", "depth"]], on="code", how="left"
    )
    themes = tally_rate(
        counts, successes="n_with_theme", trials="n_conversations", alpha=alpha
    )
    columns = ["segment", "code", "name", "parent", "depth", "n_with_theme"]
    return themes[[*columns, "n_conversations", "rate", "ci_low", "ci_high"]]


def compute_freeman_halton(table: np.ndarray, *, seed: int = 2026) -> float:
    """Return the Fisher-Freeman-Halton exact p-value of a 2 x S table.

    Parameters
    ----------
    table : array, shape (2, S)
        Row 0 counts conversations with the theme per segment, row 1 without.
    seed : int
        Seed of the Monte Carlo fallback used when there are too many tables.

    Returns
    -------
    float
        The probability, with all margins fixed, of a table no more likely than
        the observed one.

    Notes
    -----
    Every 2 x S table with the observed margins is enumerated and weighted by the
    multivariate hypergeometric probability (``scipy.stats.multivariate_hypergeom``);
    tables within a relative 1e-7 of the observed probability count as "as
    extreme", as in R's ``fisher.test``. When more than ``MAX_EXACT_TABLES`` tables
    exist, SciPy's Monte Carlo ``fisher_exact`` (99,999 resamples) is used and a
    warning says so.
    """
    table = np.asarray(table, dtype=int)
    column_totals, row_total = table.sum(axis=0), int(table[0].sum())
    n_tables = math.prod(int(c) + 1 for c in column_totals)
    if n_tables > MAX_EXACT_TABLES:
        log.warning(
            "%d possible tables: Monte Carlo p-value instead of exact", n_tables
        )
        method = stats.MonteCarloMethod(n_resamples=99_999, rng=seed)
        return float(stats.fisher_exact(table, method=method).pvalue)

    # Sum the probability of every table at most as likely as the observed one.
    law = stats.multivariate_hypergeom(m=column_totals, n=row_total)
    observed = law.pmf(table[0])
    p_value = 0.0
    for first_row in itertools.product(*(range(int(c) + 1) for c in column_totals)):
        if sum(first_row) != row_total:
            continue
        probability = law.pmf(first_row)
        if probability <= observed * (1 + 1e-7):
            p_value += probability
    return float(min(p_value, 1.0))


def compare_segments(
    coded: pd.DataFrame, conversations: pd.DataFrame, codebook: pd.DataFrame
) -> pd.DataFrame:
    """Return, per theme, an exact test of whether its rate differs by segment.

    Parameters
    ----------
    coded, conversations, codebook : DataFrame
        As for :func:`tally_themes`.

    Returns
    -------
    DataFrame
        ``code``, ``name``, ``n_segments``, ``n_with_theme``, ``n_conversations``,
        ``test`` (the test's name), ``p_value`` (NaN with fewer than two
        segments).

    Notes
    -----
    Two segments: Fisher's exact test on the 2 x 2 table
    (``scipy.stats.fisher_exact``, two-sided). More segments: the
    Fisher-Freeman-Halton exact test on the 2 x S table
    (:func:`compute_freeman_halton`). No correction for testing many codes; read
    small p-values as leads, not findings.
    """
    matrix = build_theme_matrix(coded, conversations, codebook)
    segments = conversations.set_index("conversation_id")["segment"]
    names = sorted(segments.dropna().unique())
    rows = []
    for code in matrix.columns:
        with_theme = [int(matrix.loc[segments == s, code].sum()) for s in names]
        sizes = [int((segments == s).sum()) for s in names]
        table = np.array([with_theme, np.subtract(sizes, with_theme)])
        if len(names) < 2:
            test, p_value = "none (one segment)", math.nan
        elif len(names) == 2:
            test = "Fisher exact (2x2, two-sided)"
            p_value = float(stats.fisher_exact(table).pvalue)
        else:
            test, p_value = "Fisher-Freeman-Halton exact", compute_freeman_halton(table)
        rows.append(
            {
                "code": code,
                "n_segments": len(names),
                "n_with_theme": sum(with_theme),
                "n_conversations": sum(sizes),
                "test": test,
                "p_value": p_value,
            }
        )
    tests = pd.DataFrame(rows).merge(codebook[["code", "name"]], on="code", how="left")
    return tests[["code", "name", *tests.columns.drop(["code", "name"])]]


def count_cooccurrence(
    coded: pd.DataFrame,
    conversations: pd.DataFrame,
    codebook: pd.DataFrame,
    *,
    codes: list[str] | None = None,
) -> pd.DataFrame:
    """Return how many conversations share each pair of themes.

    Parameters
    ----------
    coded, conversations, codebook : DataFrame
        As for :func:`build_theme_matrix`.
    codes : list of str, optional
        The themes to cross; by default the leaf theme codes used at least once.

    Returns
    -------
    DataFrame
        Square, index and columns the codes; cell (a, b) is the number of
        conversations with both a and b; the diagonal is each theme's count.
    """
    matrix = build_theme_matrix(coded, conversations, codebook)
    if codes is None:
        leaves = list_theme_codes(codebook, leaves_only=True)
        codes = [code for code in leaves if matrix[code].any()]
    chosen = matrix[codes].astype(int)
    shared = chosen.T @ chosen
    shared.index.name, shared.columns.name = "code", "code"
    return shared


def find_nonbuyers(
    conversations: pd.DataFrame, orders: pd.DataFrame, month: str
) -> pd.Series:
    """Return the keys of conversation customers with no order in `month`.

    Parameters
    ----------
    conversations : DataFrame
        ``customer_key`` per conversation.
    orders : DataFrame
        The processed orders (``customer_key``, ``created_at``, UTC; optional
        ``is_cancelled``).
    month : str
        ``YYYY-MM``; an order counts when created in that UTC calendar month and
        not cancelled (a cancelled order is no purchase, as in step 01).

    Returns
    -------
    Series
        Sorted unique ``customer_key`` values.
    """
    created = pd.to_datetime(orders["created_at"], utc=True)
    is_bought = created.dt.strftime("%Y-%m") == month
    is_bought &= ~order_flag(orders, "is_cancelled")
    in_month = orders.loc[is_bought, "customer_key"]
    talked = pd.Series(conversations["customer_key"].dropna().unique())
    return talked[~talked.isin(set(in_month))].sort_values().reset_index(drop=True)


def tally_theme_among_nonbuyers(
    coded: pd.DataFrame,
    conversations: pd.DataFrame,
    codebook: pd.DataFrame,
    orders: pd.DataFrame,
    month: str,
    *,
    code: str = PRICE_CODE,
    alpha: float = 0.05,
) -> dict:
    """Return the share of non-buyers who cite `code` (price, by default).

    Parameters
    ----------
    coded, conversations, codebook : DataFrame
        As for :func:`build_theme_matrix`.
    orders : DataFrame
        The processed orders, for who bought in the month.
    month : str
        ``YYYY-MM``.
    code : str
        The theme to count (descendants included).

    Returns
    -------
    dict or None
        ``code``, ``k`` (non-buyers citing it), ``n`` (non-buyers talked to),
        ``rate``, ``ci_low``, ``ci_high`` (Wilson), ``n_customers`` (all
        customers talked to). None when the codebook has no code `code`: a
        share of 0 would claim nobody cited a theme no coder could apply.

    Notes
    -----
    The unit is the customer: one with two conversations cites the theme when
    either conversation does.
    """
    if code not in set(codebook["code"]):
        log.warning(
            "%s is not in the codebook, so the share of non-buyers citing it is "
            "undefined (set coding.price_code to the codebook's price code)",
            code,
        )
        return None
    matrix = build_theme_matrix(coded, conversations, codebook)
    keys = conversations.set_index("conversation_id")["customer_key"]
    citing = set(keys[matrix[code].reindex(keys.index, fill_value=False)])
    nonbuyers = find_nonbuyers(conversations, orders, month)
    k, n = int(nonbuyers.isin(citing).sum()), len(nonbuyers)
    low, high = wilson_interval(k, n, alpha=alpha)
    if n < 10:
        log.warning("only %d non-buyers: the %s share is very uncertain", n, code)
    return {
        "code": code,
        "k": k,
        "n": n,
        "rate": k / n if n else math.nan,
        "ci_low": low,
        "ci_high": high,
        "n_customers": int(conversations["customer_key"].nunique()),
    }


def weigh_themes_by_value(
    coded: pd.DataFrame,
    conversations: pd.DataFrame,
    codebook: pd.DataFrame,
    customers: pd.DataFrame,
    checkouts: pd.DataFrame,
) -> pd.DataFrame:
    """Return, per theme, the value of the customers who raised it.

    Parameters
    ----------
    coded, conversations, codebook : DataFrame
        As for :func:`build_theme_matrix`.
    customers : DataFrame
        Processed customers: ``customer_key``, ``spend`` (lifetime spend).
    checkouts : DataFrame
        Processed abandoned checkouts: ``customer_key``, ``total``.

    Returns
    -------
    DataFrame
        ``code``, ``name``, ``n_customers`` (customers citing it), ``spend``
        (their summed spend), ``abandoned_value`` (their summed abandoned
        checkout totals), ``revenue_at_stake`` (spend plus abandoned value),
        sorted by ``revenue_at_stake``, theme codes used at least once.

    Notes
    -----
    A customer counts once per theme however many conversations raised it.
    Customers missing from the exports count as zero value, and a warning says
    how many.
    """
    matrix = build_theme_matrix(coded, conversations, codebook)
    keys = conversations.set_index("conversation_id")["customer_key"]
    spend = customers.groupby("customer_key")["spend"].sum()
    abandoned = checkouts.groupby("customer_key")["total"].sum()
    unknown = set(keys) - set(spend.index)
    if unknown:
        log.warning(
            "%d customers talked to are not in the customer export", len(unknown)
        )

    # Sum each theme's distinct customers' value.
    rows = []
    for code in list_theme_codes(codebook):
        citing = pd.Index(keys[matrix[code].reindex(keys.index)].unique())
        if citing.empty:
            continue
        rows.append(
            {
                "code": code,
                "n_customers": len(citing),
                "spend": float(spend.reindex(citing, fill_value=0).sum()),
                "abandoned_value": float(abandoned.reindex(citing, fill_value=0).sum()),
            }
        )
    columns = ["code", "n_customers", "spend", "abandoned_value"]
    value = pd.DataFrame(rows, columns=columns)
    value["revenue_at_stake"] = value["spend"] + value["abandoned_value"]
    value = value.merge(codebook[["code", "name"]], on="code", how="left")
    value = value.sort_values("revenue_at_stake", ascending=False, kind="stable")
    return value[["code", "name", *columns[1:], "revenue_at_stake"]].reset_index(
        drop=True
    )

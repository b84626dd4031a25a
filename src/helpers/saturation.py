"""Saturation: do new conversations still bring new codes?

Conversations are taken in the order they happened (date, then id). For each one
the curve records how many codes appeared for the first time, and the running count
of distinct codes. The stopping rule is the study's ``coding.saturation_run``: a
group is saturated when its last N conversations added no new code. Codes from the
``STAGE`` branch (decision stages for journey maps) are not themes and are left out.
"""

from __future__ import annotations

import logging

import pandas as pd

from helpers.tables import format_segment
from helpers.themes import ALL_SEGMENTS, STAGE_BRANCH, branch_codes

log = logging.getLogger(__name__)


def build_saturation_curve(
    coded: pd.DataFrame,
    conversations: pd.DataFrame,
    codebook: pd.DataFrame | None = None,
    *,
    by_segment: bool = True,
) -> pd.DataFrame:
    """Return the new and cumulative distinct codes per conversation, in date order.

    Parameters
    ----------
    coded : DataFrame
        One row per coded excerpt: ``conversation_id``, ``code`` (codes as
        applied; parents are not added, so a parent counts only when applied).
    conversations : DataFrame
        ``conversation_id``, ``date``, ``segment``; conversations without codes
        stay in the curve and add nothing.
    codebook : DataFrame, optional
        The codebook's flat table, to leave out the ``STAGE`` branch.
    by_segment : bool
        Add one curve per segment besides the overall ``"all"`` curve.

    Returns
    -------
    DataFrame
        ``segment``, ``order`` (1, 2, … within the segment), ``conversation_id``,
        ``date``, ``n_codes`` (distinct codes in the conversation),
        ``n_new_codes``, ``n_distinct_codes`` (cumulative), ``new_codes``
        (comma-separated).
    """
    excluded = (
        set(branch_codes(codebook, STAGE_BRANCH)) if codebook is not None else set()
    )
    kept = coded[~coded["code"].isin(excluded)]
    codes_by_conversation = kept.groupby("conversation_id")["code"].agg(set)
    # Undated conversations go last: they cannot be placed in time.
    ordered = conversations.assign(
        sort_date=pd.to_datetime(conversations["date"], errors="coerce")
    ).sort_values(["sort_date", "conversation_id"], kind="stable", na_position="last")

    groups = [(ALL_SEGMENTS, ordered)]
    if by_segment:
        groups += [
            (segment, ordered[ordered["segment"] == segment])
            for segment in sorted(ordered["segment"].dropna().unique())
        ]
    curves = [
        trace_new_codes(part, codes_by_conversation).assign(segment=segment)
        for segment, part in groups
    ]
    curve = pd.concat(curves, ignore_index=True)
    columns = ["segment", "order", "conversation_id", "date", "n_codes"]
    return curve[[*columns, "n_new_codes", "n_distinct_codes", "new_codes"]]


def trace_new_codes(ordered: pd.DataFrame, codes_by_conversation: pd.Series):
    """Return one curve row per conversation of `ordered` (already in order)."""
    seen: set[str] = set()
    rows = []
    for order, (conversation, date) in enumerate(
        zip(ordered["conversation_id"], ordered["date"], strict=False), start=1
    ):
        codes = codes_by_conversation.get(conversation, set())
        new = sorted(codes - seen)
        seen |= codes
        rows.append(
            {
                "order": order,
                "conversation_id": conversation,
                "date": date,
                "n_codes": len(codes),
                "n_new_codes": len(new),
                "n_distinct_codes": len(seen),
                "new_codes": ", ".join(new),
            }
        )
    return pd.DataFrame(rows)


def check_saturation(curve: pd.DataFrame, *, run: int = 3) -> pd.DataFrame:
    """Apply the stopping rule to each curve of :func:`build_saturation_curve`.

    Parameters
    ----------
    curve : DataFrame
        The output of :func:`build_saturation_curve`.
    run : int
        N: saturated when the last N conversations added no new code
        (``coding.saturation_run``).

    Returns
    -------
    DataFrame
        One row per segment: ``segment``, ``n_conversations``, ``n_codes``
        (distinct codes seen), ``run``, ``is_saturated``, ``stop_at`` (the order
        of the first conversation that completed a run of N without new codes,
        where the rule would first have stopped; NaN when none did),
        ``n_codes_after_stop`` (codes first heard after ``stop_at``: what
        stopping there would have missed; NaN without a stop),
        ``n_codes_in_last_run``
        (codes first seen in the last N conversations), ``last_run_share``
        (their share of all codes).

    Notes
    -----
    A group needs more than N conversations to be judged; with N or fewer it is
    not saturated. The first conversation always brings its codes, so a run only
    counts after at least one code was seen.
    """
    if run < 1:
        raise ValueError(f"run must be at least 1, got {run!r}")
    rows = []
    for segment, part in curve.groupby("segment", sort=False):
        new = part.sort_values("order")["n_new_codes"].tolist()
        rows.append({"segment": segment, **apply_stopping_rule(new, run=run)})
    result = pd.DataFrame(rows)
    for row in result.itertuples():
        if row.is_saturated:
            continue
        if row.n_codes == 0:
            # Nothing was coded: "no new code lately" would read as saturated.
            log.warning(
                "%s: no code applied in %d conversations, so saturation cannot "
                "be judged",
                row.segment,
                row.n_conversations,
            )
            continue
        log.warning(
            "%s: not saturated (%d conversations; %d codes new in the last %d)",
            row.segment,
            row.n_conversations,
            row.n_codes_in_last_run,
            run,
        )
    return result


def apply_stopping_rule(new_codes: list[int], *, run: int) -> dict:
    """Return the stopping-rule verdict for one sequence of new-code counts."""
    n, total = len(new_codes), sum(new_codes)

    # Find the first conversation completing `run` conversations with nothing new.
    stop_at, streak = None, 0
    for order, count in enumerate(new_codes, start=1):
        streak = streak + 1 if count == 0 and sum(new_codes[:order]) > 0 else 0
        if streak >= run and stop_at is None:
            stop_at = order

    in_last_run = sum(new_codes[-run:]) if n else 0
    return {
        "n_conversations": n,
        "n_codes": total,
        "run": run,
        "is_saturated": bool(n > run and total > 0 and in_last_run == 0),
        "stop_at": stop_at if stop_at is not None else float("nan"),
        "n_codes_after_stop": (
            sum(new_codes[stop_at:]) if stop_at is not None else float("nan")
        ),
        "n_codes_in_last_run": in_last_run,
        "last_run_share": in_last_run / total if total else float("nan"),
    }


def plot_saturation(curve: pd.DataFrame, *, run: int = 3):
    """Draw the cumulative distinct codes per conversation, one line per segment.

    Parameters
    ----------
    curve : DataFrame
        The output of :func:`build_saturation_curve`.
    run : int
        N of the stopping rule; the last N conversations of each line are drawn
        with filled markers when they added nothing new.

    Returns
    -------
    Figure
        Steps of cumulative distinct codes against conversations in date order;
        the overall curve is dark grey, segments take the palette.
    """
    from helpers.figures import CONTROL_GREY, PALETTE, new_figure

    figure, axes = new_figure()
    segments = [s for s in curve["segment"].unique() if s != ALL_SEGMENTS]
    colours = {ALL_SEGMENTS: "#333333"} | dict(zip(segments, PALETTE, strict=False))
    for segment, part in curve.groupby("segment", sort=False):
        part = part.sort_values("order")
        axes.step(
            part["order"],
            part["n_distinct_codes"],
            where="post",
            color=colours.get(segment, CONTROL_GREY),
            linewidth=2.2 if segment == ALL_SEGMENTS else 1.5,
            label=f"{format_segment(segment)} (n={len(part)})",
        )
        flat = part.tail(run)
        flat = flat[flat["n_new_codes"] == 0]
        axes.plot(
            flat["order"], flat["n_distinct_codes"], "o", color=colours.get(segment)
        )
    axes.set_xlabel("Conversations, in date order")
    axes.set_ylabel("Distinct codes so far")
    axes.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    return figure

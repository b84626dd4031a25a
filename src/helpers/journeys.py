"""Journey maps: the order in which decision stages come up in each conversation.

Where the codebook has a ``STAGE`` branch (for example ``STAGE-DISCOVER``,
``STAGE-COMPARE``, ``STAGE-CHECKOUT``), the stage codes of a conversation are read in
excerpt order. Consecutive repeats collapse into one step, and each move from one
stage to the next is a transition. This is the journey as customers told it, not as
analytics logged it.
"""

from __future__ import annotations

import logging

import pandas as pd

from helpers.tables import format_segment
from helpers.themes import ALL_SEGMENTS, STAGE_BRANCH, branch_codes

log = logging.getLogger(__name__)

START, END = "start", "end"
# How the ends of a journey read in tables, sentences and figures.
END_LABELS = {START: "(start)", END: "(end)"}


def order_stages(
    coded: pd.DataFrame, excerpts: pd.DataFrame, codebook: pd.DataFrame
) -> pd.DataFrame:
    """Return each conversation's stages in the order they came up.

    Parameters
    ----------
    coded : DataFrame
        One row per coded excerpt: ``conversation_id``, ``excerpt_id``, ``code``.
    excerpts : DataFrame
        ``excerpt_id``, ``position``.
    codebook : DataFrame
        The codebook's flat table; its ``STAGE`` branch names the stages.

    Returns
    -------
    DataFrame
        ``conversation_id``, ``step`` (1, 2, …), ``stage`` (a stage code),
        ``position`` (the excerpt where the step began). Two stage codes on one
        excerpt follow codebook order; a stage repeated in consecutive excerpts
        is one step. Empty when the codebook has no stage branch.
    """
    stages = [
        code for code in branch_codes(codebook, STAGE_BRANCH) if code != STAGE_BRANCH
    ]
    columns = ["conversation_id", "step", "stage", "position"]
    if not stages:
        log.info("the codebook has no %s branch: no journey map", STAGE_BRANCH)
        return pd.DataFrame(columns=columns)

    # Put stage codes in excerpt order, codebook order breaking ties.
    rank = {code: index for index, code in enumerate(stages)}
    staged = coded[coded["code"].isin(rank)].merge(
        excerpts[["excerpt_id", "position"]], on="excerpt_id", how="left"
    )
    staged = staged.assign(rank=staged["code"].map(rank)).sort_values(
        ["conversation_id", "position", "rank"], kind="stable"
    )

    # Collapse consecutive repeats of the same stage into one step.
    rows = []
    for conversation, part in staged.groupby("conversation_id", sort=True):
        previous = None
        for code, position in zip(part["code"], part["position"], strict=False):
            if code != previous:
                rows.append((conversation, code, position))
            previous = code
    steps = pd.DataFrame(rows, columns=["conversation_id", "stage", "position"])
    steps["step"] = steps.groupby("conversation_id").cumcount() + 1
    return steps[columns]


def tally_transitions(
    steps: pd.DataFrame, conversations: pd.DataFrame, *, include_ends: bool = True
) -> pd.DataFrame:
    """Return how often customers moved from one stage to the next, by segment.

    Parameters
    ----------
    steps : DataFrame
        The output of :func:`order_stages`.
    conversations : DataFrame
        ``conversation_id``, ``segment``.
    include_ends : bool
        Add ``start`` -> first stage and last stage -> ``end`` transitions, so a
        conversation with one stage still shows where journeys begin and stop.

    Returns
    -------
    DataFrame
        ``segment`` (``"all"`` or a segment), ``from_stage``, ``to_stage``,
        ``n`` (transitions), ``n_conversations`` (conversations with at least one
        such transition), sorted by segment and descending ``n``.
    """
    rows = []
    for conversation, part in steps.sort_values(["conversation_id", "step"]).groupby(
        "conversation_id"
    ):
        path = part["stage"].tolist()
        if include_ends:
            path = [START, *path, END]
        rows += [(conversation, a, b) for a, b in zip(path, path[1:], strict=False)]
    moves = pd.DataFrame(rows, columns=["conversation_id", "from_stage", "to_stage"])
    moves = moves.merge(conversations[["conversation_id", "segment"]], how="left")
    both = pd.concat([moves.assign(segment=ALL_SEGMENTS), moves], ignore_index=True)

    # Count transitions and the conversations that made them.
    keys = ["segment", "from_stage", "to_stage"]
    transitions = both.groupby(keys, sort=False).agg(
        n=("conversation_id", "size"), n_conversations=("conversation_id", "nunique")
    )
    transitions = transitions.reset_index()
    transitions["is_segment"] = transitions["segment"] != ALL_SEGMENTS
    transitions = transitions.sort_values(
        ["is_segment", "segment", "n", "from_stage", "to_stage"],
        ascending=[True, True, False, True, True],
        kind="stable",
    )
    return transitions.drop(columns="is_segment").reset_index(drop=True)


def name_codes(codes, codebook: pd.DataFrame) -> list[str]:
    """Return the codebook name of each code (the code itself when unnamed), and
    ``(start)``/``(end)`` for the ends of a journey."""
    names = dict(END_LABELS)
    if "name" in codebook.columns:
        names |= dict(zip(codebook["code"], codebook["name"], strict=True))
    return [names.get(code) or code for code in codes]


def plot_journeys(transitions: pd.DataFrame, codebook: pd.DataFrame):
    """Draw the transitions as one heatmap per segment (from-stage rows, to-stage
    columns).

    Parameters
    ----------
    transitions : DataFrame
        The output of :func:`tally_transitions`.
    codebook : DataFrame
        The codebook's flat table, for the stage order and names.

    Returns
    -------
    Figure
        One panel per segment (``all`` first); each cell shows the number of
        transitions; stages by name in codebook order, ``(start)`` first and
        ``(end)`` last.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    stages = [c for c in branch_codes(codebook, STAGE_BRANCH) if c != STAGE_BRANCH]
    segments = [ALL_SEGMENTS] + sorted(
        s for s in transitions["segment"].unique() if s != ALL_SEGMENTS
    )
    rows, columns = [START, *stages], [*stages, END]
    figure, axes = plt.subplots(
        1, len(segments), figsize=(3.6 * len(segments), 3.4), squeeze=False
    )
    for axis, segment in zip(axes[0], segments, strict=False):
        grid = (
            transitions[transitions["segment"] == segment]
            .pivot_table(
                index="from_stage", columns="to_stage", values="n", aggfunc="sum"
            )
            .reindex(index=rows, columns=columns)
            .fillna(0)
            .astype(int)
        )
        grid.index = name_codes(grid.index, codebook)
        grid.columns = name_codes(grid.columns, codebook)
        sns.heatmap(grid, annot=True, fmt="d", cmap="Blues", cbar=False, ax=axis)
        axis.set_xlabel(f"to ({format_segment(segment)})")
        axis.set_ylabel("from" if axis is axes[0][0] else "")
        if axis is not axes[0][0]:
            axis.set_yticklabels([])
    figure.tight_layout()
    return figure

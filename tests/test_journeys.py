"""Journey maps: stage order within conversations and transition counts."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import journeys


@pytest.fixture
def codebook() -> pd.DataFrame:
    rows = [
        ("OBJ", "Objections", None),
        ("STAGE", "Stages", None),
        ("STAGE-DISCOVER", "Discover", "STAGE"),
        ("STAGE-COMPARE", "Compare", "STAGE"),
        ("STAGE-CHECKOUT", "Checkout", "STAGE"),
    ]
    return pd.DataFrame(rows, columns=["code", "name", "parent"])


@pytest.fixture
def coded_sequence():
    # c1: discover (1), discover (2), objection (3), compare (4), checkout (6)
    # c2: compare and discover on one excerpt (2): codebook order puts discover
    #     first; then checkout (3), compare (5)
    # c3: checkout only
    rows = [
        ("c1", 1, "STAGE-DISCOVER"),
        ("c1", 2, "STAGE-DISCOVER"),
        ("c1", 3, "OBJ"),
        ("c1", 4, "STAGE-COMPARE"),
        ("c1", 6, "STAGE-CHECKOUT"),
        ("c2", 2, "STAGE-COMPARE"),
        ("c2", 2, "STAGE-DISCOVER"),
        ("c2", 3, "STAGE-CHECKOUT"),
        ("c2", 5, "STAGE-COMPARE"),
        ("c3", 1, "STAGE-CHECKOUT"),
    ]
    coded = pd.DataFrame(
        [(c, f"{c}-{p:03d}", code) for c, p, code in rows],
        columns=["conversation_id", "excerpt_id", "code"],
    )
    excerpts = pd.DataFrame(
        [(c, f"{c}-{p:03d}", p) for c in ["c1", "c2", "c3"] for p in range(1, 7)],
        columns=["conversation_id", "excerpt_id", "position"],
    )
    conversations = pd.DataFrame(
        {"conversation_id": ["c1", "c2", "c3"], "segment": ["a", "a", "b"]}
    )
    return coded, excerpts, conversations


def test_stage_order_collapses_repeats(coded_sequence, codebook):
    coded, excerpts, _ = coded_sequence
    steps = journeys.order_stages(coded, excerpts, codebook)
    paths = steps.groupby("conversation_id")["stage"].agg(list).to_dict()
    assert paths["c1"] == ["STAGE-DISCOVER", "STAGE-COMPARE", "STAGE-CHECKOUT"]
    assert paths["c2"] == [
        "STAGE-DISCOVER",
        "STAGE-COMPARE",
        "STAGE-CHECKOUT",
        "STAGE-COMPARE",
    ]
    assert paths["c3"] == ["STAGE-CHECKOUT"]
    assert steps.loc[steps["conversation_id"] == "c1", "position"].tolist() == [1, 4, 6]


def test_transitions_by_hand(coded_sequence, codebook):
    coded, excerpts, conversations = coded_sequence
    steps = journeys.order_stages(coded, excerpts, codebook)
    transitions = journeys.tally_transitions(steps, conversations)
    table = transitions.set_index(["segment", "from_stage", "to_stage"])["n"]
    # All: discover->compare in c1 and c2 (2); compare->checkout c1, c2 (2);
    # checkout->compare c2 (1); start->discover 2, start->checkout 1 (c3);
    # checkout->end c1, c3 (2); compare->end c2 (1).
    assert table[("all", "STAGE-DISCOVER", "STAGE-COMPARE")] == 2
    assert table[("all", "STAGE-COMPARE", "STAGE-CHECKOUT")] == 2
    assert table[("all", "STAGE-CHECKOUT", "STAGE-COMPARE")] == 1
    assert table[("all", "start", "STAGE-DISCOVER")] == 2
    assert table[("all", "start", "STAGE-CHECKOUT")] == 1
    assert table[("all", "STAGE-CHECKOUT", "end")] == 2
    assert table[("all", "STAGE-COMPARE", "end")] == 1
    assert table.loc["all"].sum() == 11  # 4 + 5 + 2 moves in c1, c2, c3
    # Segment b is c3 only: start -> checkout -> end.
    assert table.loc["b"].to_dict() == {
        ("start", "STAGE-CHECKOUT"): 1,
        ("STAGE-CHECKOUT", "end"): 1,
    }
    assert transitions["segment"].iloc[0] == "all"


def test_no_stage_branch_gives_an_empty_map(coded_sequence):
    coded, excerpts, _ = coded_sequence
    plain = pd.DataFrame({"code": ["OBJ"], "name": ["Objections"], "parent": [None]})
    assert journeys.order_stages(coded, excerpts, plain).empty


def test_plot_journeys_has_a_panel_per_segment(coded_sequence, codebook):
    coded, excerpts, conversations = coded_sequence
    steps = journeys.order_stages(coded, excerpts, codebook)
    transitions = journeys.tally_transitions(steps, conversations)
    figure = journeys.plot_journeys(transitions, codebook)
    assert len(figure.axes) == 3

"""Tests for helpers.experiment_tables: readers' names, levels and display tables.

The fixture is the invented two-arm e-mail test in ``fixtures/experiments``; each
expected number is worked out here from its sums.
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from helpers import experiment_tables as et
from helpers import experiments as ex
from helpers.study import load_defaults
from helpers.tables import format_p

FIXTURES = Path(__file__).parent / "fixtures" / "experiments"
SETTINGS = load_defaults()["experiments"]


def analyse_arms_basic(tmp_path: Path, **changes) -> tuple[dict, dict]:
    """Return ``(definition, analysis)`` of the arms-basic fixture with `changes`
    written into its experiment.yml."""
    folder = tmp_path / "arms-basic"
    shutil.copytree(FIXTURES / "arms-basic", folder)
    path = folder / "experiment.yml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**raw, **changes}), encoding="utf-8")
    definition = ex.load_experiment(path, defaults=SETTINGS)
    return definition, ex.analyse_experiment(definition)


# ---------------------------------------------------------------------------
# Names and levels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "label"),
    [
        ("aov", "Average order value (AOV)"),
        ("revenue_per_visitor", "Revenue per visitor"),
        ("revenue_per_visitor_capped", "Revenue per visitor, capped"),
        ("unsubscribe_rate", "Unsubscribe rate"),
        ("roas", "Return on ad spend (ROAS)"),
        ("repeat_purchase_rate", "Repeat purchase rate"),
    ],
)
def test_format_metric_gives_readers_names_without_the_role(metric, label):
    assert et.format_metric(metric) == label


def test_every_built_in_metric_has_a_label():
    assert set(ex.METRICS) <= set(et.METRIC_LABELS)


def test_format_metric_in_a_sentence_keeps_abbreviations():
    assert et.format_metric("aov", in_sentence=True) == "average order value (AOV)"
    assert et.format_metric("roas", in_sentence=True).startswith("return on")
    assert et.format_metric("CPA", in_sentence=True) == "CPA"


@pytest.mark.parametrize(
    ("alpha", "level"), [(0.05, "95%"), (0.1, "90%"), (0.10, "90%"), (0.025, "97.5%")]
)
def test_format_level_is_one_minus_alpha_unrounded(alpha, level):
    assert et.format_level(alpha) == level


def test_format_level_refuses_an_alpha_outside_zero_one():
    with pytest.raises(ValueError, match="between 0 and 1, got 5"):
        et.format_level(5)


def test_format_levels_names_experiments_only_when_levels_differ():
    same = [{"name": "a", "alpha": 0.1}, {"name": "b", "alpha": 0.1}]
    assert et.format_levels(same) == "90%"
    mixed = [*same, {"name": "c", "alpha": 0.05}]
    assert et.format_levels(mixed) == "90% for a and b, 95% for c"
    assert et.format_levels([]) == "95%"


# ---------------------------------------------------------------------------
# The level actually used reaches the reader
# ---------------------------------------------------------------------------


def test_alpha_010_gives_90_percent_intervals_verdicts_and_axis(tmp_path):
    definition, analysis = analyse_arms_basic(tmp_path, alpha=0.10)
    results = analysis["results"]
    found = results[
        results["metric"].eq("conversion_rate") & results["variant"].eq("free-returns")
    ].iloc[0]

    # The arm's own interval is 90% Wilson: 760 of 20,100 (scipy, independent).
    interval = stats.binomtest(760, 20100).proportion_ci(0.90, method="wilson")
    assert found["ci_low"] == pytest.approx(interval.low)
    assert found["ci_high"] == pytest.approx(interval.high)
    # The sentences say 90% and never 95%.
    verdicts = results.loc[results["variant"].ne("control"), "verdict"]
    assert verdicts.str.contains("90% interval").all()
    assert not verdicts.str.contains("95%").any()
    axis = ex.plot_lifts(results, definition).axes[0].get_xlabel()
    assert "90% delta-method interval" in axis


def test_default_alpha_still_says_95_percent(tmp_path):
    _, analysis = analyse_arms_basic(tmp_path)
    verdicts = analysis["results"].query("variant != 'control'")["verdict"]
    assert verdicts.str.contains("95% interval").all()


# ---------------------------------------------------------------------------
# Display tables
# ---------------------------------------------------------------------------


def test_results_table_is_narrow_and_keeps_every_number(tmp_path):
    _, analysis = analyse_arms_basic(tmp_path)
    results = analysis["results"]
    display = et.format_results(results)
    second = et.format_result_checks(results)

    assert len(display.columns) <= 9
    assert display["metric"].str.contains("_").sum() == 0
    conversion = display[
        display["metric"].eq("Conversion rate") & display["variant"].eq("free-returns")
    ].iloc[0]
    # 760 / 20,100 = 3.78%, its 95% Wilson interval beside it.
    low, high = stats.binomtest(760, 20100).proportion_ci(method="wilson")
    assert conversion["Value [CI]"] == f"3.78% [{100 * low:.2f}, {100 * high:.2f}]"
    # Adjusted p first, the raw one in brackets.
    raw = results.query("metric == 'conversion_rate' and variant == 'free-returns'")
    adjusted, p_value = raw[["p_adjusted", "p_value"]].iloc[0]
    assert conversion["p adjusted (raw)"] == (
        f"{format_p(adjusted)} ({format_p(p_value)})"
    )
    # The chance to beat control moved to the second table, one row per arm×metric.
    assert "chance to beat control" not in display
    tested = results[results["variant"].ne("control")]
    assert len(second) == len(tested)
    assert list(second["chance to beat control"]) == [
        et.format_chance(c) for c in tested["chance_to_beat_control"]
    ]


def test_flags_read_as_words():
    assert et.format_flags("srm;below_min_sample") == (
        "sample-ratio mismatch, below planned sample"
    )
    assert et.format_flags("") == et.format_flags(None) == ""
    assert et.format_flags("new_flag") == "new flag"


def test_several_experiments_name_theirs_in_the_metric_cell(tmp_path):
    _, analysis = analyse_arms_basic(tmp_path)
    both = pd.concat(
        [analysis["results"], analysis["results"].assign(experiment="again")]
    )
    display = et.format_results(both)
    assert "experiment" not in display
    assert display["metric"].iloc[0] == "arms-basic: Revenue per visitor"
    assert display["metric"].iloc[-1].startswith("again: ")


def test_capped_row_is_named_capped_and_role_stays_apart():
    row = {
        "metric": "revenue_per_visitor_capped",
        "role": "sensitivity",
        "variant": "control",
        "n": 10.0,
        "estimate": 2.0,
        "ci_low": 1.0,
        "ci_high": 3.0,
        "mode": "mean",
        "abs_lift": np.nan,
        "abs_ci_low": np.nan,
        "abs_ci_high": np.nan,
        "rel_lift": np.nan,
        "rel_ci_low": np.nan,
        "rel_ci_high": np.nan,
        "p_value": np.nan,
        "p_adjusted": np.nan,
        "flags": "capped",
    }
    display = et.format_results(pd.DataFrame([row])).iloc[0]
    assert display["metric"] == "Revenue per visitor, capped"
    assert display["role"] == "sensitivity"
    assert display["Value [CI]"] == "2 [1, 3]"
    assert display["p adjusted (raw)"] == "–"
    assert display["flags"] == "capped"


def test_intervals_that_round_to_zero_never_read_minus_zero():
    # A bootstrap bound of -0.00002 is 0.00 pp at two decimals, not -0.00.
    assert et.format_value_ci(0.0378, -0.00002, 0.0405, "proportion") == (
        "3.78% [0.00, 4.05]"
    )
    assert et.format_difference(0.0138, -0.00002, 0.0214, "proportion") == (
        "+1.38 pp [+0.00, +2.14]"
    )
    assert et.format_difference(-0.0138, -0.0214, -0.0063, "proportion") == (
        "-1.38 pp [-2.14, -0.63]"
    )


def test_relative_lifts_that_round_to_zero_never_read_minus_zero():
    # A relative bound of -0.00004 is 0.0% at one decimal, not -0.0%.
    assert et.format_relative(0.1234, -0.00004, 0.2466) == "+12.3% [+0.0%, +24.7%]"
    assert et.format_relative(-0.1234, -0.2466, -0.0012) == "-12.3% [-24.7%, -0.1%]"

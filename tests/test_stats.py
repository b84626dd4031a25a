import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from helpers.stats import tally_rate, wilson_interval


def wilson_by_hand(k, n, z=1.959963984540054):
    """The closed-form Wilson score interval (Wilson 1927)."""
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(0, 12), (12, 12), (7, 20), (35, 100)])
def test_wilson_matches_closed_form_and_scipy(k, n):
    low, high = wilson_interval(k, n)
    assert (low, high) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
    scipy_ci = binomtest(k, n).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((scipy_ci.low, scipy_ci.high), abs=1e-12)


def test_wilson_edges_are_exact():
    assert wilson_interval(0, 25)[0] == 0.0
    assert wilson_interval(25, 25)[1] == pytest.approx(1.0, abs=1e-15)


def test_zero_trials_give_no_interval():
    low, high = wilson_interval(np.array([0, 3]), np.array([0, 10]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert low[1] == pytest.approx(wilson_by_hand(3, 10)[0])


def test_tally_rate_adds_columns_without_touching_input():
    groups = pd.DataFrame({"segment": ["a", "b"], "k": [3, 0], "n": [10, 0]})
    before = groups.copy()
    result = tally_rate(groups, successes="k", trials="n", rate="connect_rate")
    pd.testing.assert_frame_equal(groups, before)
    assert result["connect_rate"].iloc[0] == pytest.approx(0.3)
    assert math.isnan(result["connect_rate"].iloc[1])


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_interval_always_contains_its_estimate(case):
    k, n = case
    low, high = wilson_interval(k, n)
    assert low - 1e-12 <= k / n <= high + 1e-12

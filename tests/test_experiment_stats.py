"""Tests for helpers.experiment_stats against independent computations.

Independent references: scipy (ttest_ind on raw rows, chisquare, bootstrap),
statsmodels (proportions_ztest, multipletests), gbstats 0.8.0 (GrowthBook's engine,
a test dependency only) on the same sufficient statistics, Newcombe's published
example, and hand formulas written out in the tests.
"""

import numpy as np
import pytest
from scipy import integrate, stats

from helpers import experiment_stats as es

gb_statistics = pytest.importorskip("gbstats.models.statistics")
gb_tests = pytest.importorskip("gbstats.frequentist.tests")


@pytest.fixture
def revenue_rows():
    """Heavy-tailed revenue per visitor: mostly zeros, log-normal order values."""
    rng = np.random.default_rng(7)
    control = np.where(rng.random(4000) < 0.05, rng.lognormal(4, 1, 4000), 0.0)
    treatment = np.where(rng.random(4200) < 0.06, rng.lognormal(4, 1, 4200), 0.0)
    return control, treatment


def sums(values):
    return len(values), values.sum(), (values**2).sum()


def test_welch_from_sums_matches_scipy_on_raw_rows(revenue_rows):
    control, treatment = revenue_rows
    n0, s0, q0 = sums(control)
    n1, s1, q1 = sums(treatment)
    m0, _, v0 = es.describe_mean(n0, s0, q0)
    m1, _, v1 = es.describe_mean(n1, s1, q1)
    df = es.welch_df(v0, n0, v1, n1)
    result = es.compare_estimates(m0, v0, m1, v1, alpha=0.05, df=df)

    reference = stats.ttest_ind(treatment, control, equal_var=False)
    low, high = reference.confidence_interval(0.95)
    assert result["p_value"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert result["abs_ci_low"] == pytest.approx(low, rel=1e-9)
    assert result["abs_ci_high"] == pytest.approx(high, rel=1e-9)
    assert df == pytest.approx(reference.df, rel=1e-9)


def test_welch_matches_gbstats_on_the_same_sufficient_statistics(revenue_rows):
    control, treatment = revenue_rows
    (n0, s0, q0), (n1, s1, q1) = sums(control), sums(treatment)
    m0, _, v0 = es.describe_mean(n0, s0, q0)
    m1, _, v1 = es.describe_mean(n1, s1, q1)
    ours = es.compare_estimates(
        m0, v0, m1, v1, alpha=0.05, df=es.welch_df(v0, n0, v1, n1)
    )

    stat_a = gb_statistics.SampleMeanStatistic(n=n0, sum=s0, sum_squares=q0)
    stat_b = gb_statistics.SampleMeanStatistic(n=n1, sum=s1, sum_squares=q1)
    config = gb_tests.FrequentistConfig(difference_type="absolute")
    theirs = gb_tests.TwoSidedTTest(stat_a, stat_b, config).compute_result()
    assert ours["abs_lift"] == pytest.approx(theirs.expected, rel=1e-9)
    assert ours["abs_ci_low"] == pytest.approx(theirs.ci[0], rel=1e-9)
    assert ours["abs_ci_high"] == pytest.approx(theirs.ci[1], rel=1e-9)
    assert ours["p_value"] == pytest.approx(theirs.p_value, rel=1e-9)


def test_relative_lift_uses_both_arms_variance_like_gbstats(revenue_rows):
    # gbstats' relative test is the delta method on treatment/control - 1 (linear
    # scale); ours is the delta method on the log ratio. Both standard errors come
    # from the same first-order expansion: se_linear = (m1 / m0) * se_log.
    control, treatment = revenue_rows
    (n0, s0, q0), (n1, s1, q1) = sums(control), sums(treatment)
    m0, _, v0 = es.describe_mean(n0, s0, q0)
    m1, _, v1 = es.describe_mean(n1, s1, q1)
    ours = es.relative_lift(m0, v0, m1, v1, alpha=0.05)

    stat_a = gb_statistics.SampleMeanStatistic(n=n0, sum=s0, sum_squares=q0)
    stat_b = gb_statistics.SampleMeanStatistic(n=n1, sum=s1, sum_squares=q1)
    theirs = gb_tests.TwoSidedTTest(stat_a, stat_b).compute_result()
    assert ours["rel_lift"] == pytest.approx(theirs.expected, rel=1e-9)
    assert (m1 / m0) * ours["rel_se_log"] == pytest.approx(
        theirs.uplift.stddev, rel=1e-9
    )
    # The interval is asymmetric (log scale) and wider than an absolute interval
    # divided by a fixed control mean, which ignores the control's own noise.
    absolute = es.compare_estimates(m0, v0, m1, v1, alpha=0.05)
    naive_width = (absolute["abs_ci_high"] - absolute["abs_ci_low"]) / m0
    assert ours["rel_ci_high"] - ours["rel_ci_low"] > naive_width
    assert (
        ours["rel_ci_high"] - ours["rel_lift"] > ours["rel_lift"] - ours["rel_ci_low"]
    )


def test_relative_interval_is_hand_computed_log_delta():
    # est 0.10 (var 1e-4) vs control 0.08 (var 4e-5):
    # se_log = sqrt(1e-4 / 0.01 + 4e-5 / 0.0064)
    result = es.relative_lift(0.08, 4e-5, 0.10, 1e-4, alpha=0.05)
    se_log = np.sqrt(0.01 + 0.00625)
    z = 1.959963984540054
    assert result["rel_ci_low"] == pytest.approx(1.25 * np.exp(-z * se_log) - 1)
    assert result["rel_ci_high"] == pytest.approx(1.25 * np.exp(z * se_log) - 1)


def test_ratio_delta_method_matches_hand_formula_and_gbstats():
    rng = np.random.default_rng(3)
    orders = rng.poisson(1.3, 500) + 1
    revenue = orders * rng.gamma(3, 20, 500)
    n = len(orders)
    ratio, variance = es.describe_ratio(
        n,
        revenue.sum(),
        orders.sum(),
        (revenue**2).sum(),
        (orders**2).sum(),
        (revenue * orders).sum(),
    )

    # Hand formula: var(r) = var(rev - r * orders) / (n * mean(orders)**2).
    r = revenue.sum() / orders.sum()
    residual = revenue - r * orders
    assert ratio == pytest.approx(r)
    assert variance == pytest.approx(
        residual.var(ddof=1) / (n * orders.mean() ** 2), rel=1e-9
    )

    # gbstats' RatioStatistic gives the per-unit variance (ours times n).
    gb = gb_statistics.RatioStatistic(
        n=n,
        m_statistic=gb_statistics.SampleMeanStatistic(
            n=n, sum=revenue.sum(), sum_squares=(revenue**2).sum()
        ),
        d_statistic=gb_statistics.SampleMeanStatistic(
            n=n, sum=orders.sum(), sum_squares=(orders**2).sum()
        ),
        m_d_sum_of_products=(revenue * orders).sum(),
    )
    assert variance * n == pytest.approx(gb.variance, rel=1e-9)


def ratio_statistic(numerator, denominator):
    n = len(numerator)
    return gb_statistics.RatioStatistic(
        n=n,
        m_statistic=gb_statistics.SampleMeanStatistic(
            n=n, sum=numerator.sum(), sum_squares=(numerator**2).sum()
        ),
        d_statistic=gb_statistics.SampleMeanStatistic(
            n=n, sum=denominator.sum(), sum_squares=(denominator**2).sum()
        ),
        m_d_sum_of_products=(numerator * denominator).sum(),
    )


def test_ratio_lift_over_few_campaigns_uses_welch_t_like_gbstats():
    # ROAS over 6 and 7 campaigns: a normal reference would be too narrow; gbstats
    # uses Welch's t on the delta-method variances, and so do we.
    rng = np.random.default_rng(21)
    arms = []
    for size, roas in [(6, 3.0), (7, 3.6)]:
        spend = rng.gamma(3, 400, size)
        arms.append((spend * rng.lognormal(np.log(roas), 0.3, size), spend))
    described = []
    for revenue, spend in arms:
        ratio, variance = es.describe_ratio(
            len(spend),
            revenue.sum(),
            spend.sum(),
            (revenue**2).sum(),
            (spend**2).sum(),
            (revenue * spend).sum(),
        )
        described.append((ratio, variance, len(spend)))
    (r0, v0, n0), (r1, v1, n1) = described
    df = es.welch_df(v0, n0, v1, n1)
    ours = es.compare_estimates(r0, v0, r1, v1, alpha=0.05, df=df)
    relative = es.relative_lift(r0, v0, r1, v1, alpha=0.05, df=df)

    stat_a, stat_b = ratio_statistic(*arms[0]), ratio_statistic(*arms[1])
    absolute = gb_tests.TwoSidedTTest(
        stat_a, stat_b, gb_tests.FrequentistConfig(difference_type="absolute")
    )
    theirs = absolute.compute_result()
    assert df == pytest.approx(absolute.dof, rel=1e-9) and df < 12
    assert ours["abs_lift"] == pytest.approx(theirs.expected, rel=1e-9)
    assert ours["abs_ci_low"] == pytest.approx(theirs.ci[0], rel=1e-9)
    assert ours["abs_ci_high"] == pytest.approx(theirs.ci[1], rel=1e-9)
    assert ours["p_value"] == pytest.approx(theirs.p_value, rel=1e-9)

    # Relative: the same lift and first-order standard error (ours on the log
    # scale), with the same t critical value.
    linear = gb_tests.TwoSidedTTest(stat_a, stat_b).compute_result()
    assert relative["rel_lift"] == pytest.approx(linear.expected, rel=1e-9)
    assert (r1 / r0) * relative["rel_se_log"] == pytest.approx(
        linear.uplift.stddev, rel=1e-9
    )
    critical = stats.t.ppf(0.975, absolute.dof)
    assert relative["rel_ci_high"] == pytest.approx(
        (r1 / r0) * np.exp(critical * relative["rel_se_log"]) - 1, rel=1e-9
    )


def test_ratio_delta_method_agrees_with_a_bootstrap_over_units():
    rng = np.random.default_rng(11)
    spend = rng.gamma(4, 50, 300)
    revenue = spend * rng.lognormal(1, 0.4, 300)
    _, variance = es.describe_ratio(
        300,
        revenue.sum(),
        spend.sum(),
        (revenue**2).sum(),
        (spend**2).sum(),
        (revenue * spend).sum(),
    )
    picks = rng.integers(0, 300, size=(4000, 300))
    ratios = revenue[picks].sum(axis=1) / spend[picks].sum(axis=1)
    # 4,000 resamples estimate a standard deviation to within about 2.5 %.
    assert np.sqrt(variance) == pytest.approx(ratios.std(ddof=1), rel=0.08)


def test_newcombe_interval_matches_published_example():
    # Newcombe (1998), Stat Med 17:873, table II example (a): 56/70 vs 48/80,
    # method 10 (hybrid score): 0.0524 to 0.3339.
    result = es.compare_proportions(48, 80, 56, 70, alpha=0.05)
    assert result["abs_lift"] == pytest.approx(0.2)
    assert result["abs_ci_low"] == pytest.approx(0.0524, abs=5e-5)
    assert result["abs_ci_high"] == pytest.approx(0.3339, abs=5e-5)


def test_proportion_z_test_matches_statsmodels_pooled_test():
    from statsmodels.stats.proportion import proportions_ztest

    k = np.array([[122, 267], [122, 189], [40, 38]])
    n = np.array([[21306, 21307], [21306, 21387], [20000, 20100]])
    result = es.compare_proportions(k[:, 0], n[:, 0], k[:, 1], n[:, 1], alpha=0.05)
    for i in range(3):
        _, p_value = proportions_ztest(k[i, ::-1], n[i, ::-1])
        assert result["p_value"][i] == pytest.approx(p_value, rel=1e-9)


def test_proportion_difference_standard_error_matches_gbstats():
    stat_a = gb_statistics.ProportionStatistic(n=5012, sum=61)
    stat_b = gb_statistics.ProportionStatistic(n=4988, sum=83)
    config = gb_tests.FrequentistConfig(difference_type="absolute")
    theirs = gb_tests.TwoSidedTTest(stat_a, stat_b, config).compute_result()
    ours = es.compare_proportions(61, 5012, 83, 4988, alpha=0.05)
    assert ours["abs_lift"] == pytest.approx(theirs.expected, rel=1e-12)
    assert ours["se"] == pytest.approx(theirs.uplift.stddev, rel=1e-9)


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_adjust_p_matches_multipletests_and_skips_untested(method):
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.001, 0.04, np.nan, 0.03, 0.2, 0.0101, 0.5])
    tested = ~np.isnan(p)
    expected = multipletests(p[tested], method=method)[1]
    adjusted = es.adjust_p(p, method=method)
    assert np.isnan(adjusted[2])
    np.testing.assert_allclose(adjusted[tested], expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("k0", "n0", "k1", "n1"),
    [
        (61, 5012, 83, 4988),
        (40, 20000, 38, 20100),
        (5, 50, 9, 50),
        (600, 20000, 760, 20100),
    ],
)
def test_chance_to_beat_control_matches_numerical_integration(k0, n0, k1, n1):
    # P(B > A) = integral of f_B(x) * F_A(x) for Beta(1 + k, 1 + n - k) posteriors,
    # by adaptive quadrature over the whole support.
    a, b = stats.beta(1 + k0, 1 + n0 - k0), stats.beta(1 + k1, 1 + n1 - k1)
    exact, _ = integrate.quad(
        lambda x: b.pdf(x) * a.cdf(x), 0, 1, limit=500, points=[a.mean(), b.mean()]
    )
    chance = es.chance_beta_binomial([k0], [n0], [k1], [n1])
    assert chance[0] == pytest.approx(exact, abs=1e-4)


def chance_closed_form(k0, n0, k1, n1):
    """P(B > A) for Beta(1 + k, 1 + n - k) posteriors as a finite sum (Evan
    Miller, "Formulas for Bayesian A/B testing", 2015), exact for whole counts:
    sum over i < a_B of B(a_A + i, b_A + b_B) / ((b_B + i) B(1 + i, b_B) B(a_A, b_A)).
    """
    from scipy import special

    a_a, b_a, a_b, b_b = 1 + k0, 1 + n0 - k0, 1 + k1, 1 + n1 - k1
    i = np.arange(a_b)
    log_terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(log_terms).sum())


@pytest.mark.parametrize(
    ("k0", "n0", "k1", "n1"),
    [
        # Posteriors of very different widths: a grid spanning both once missed
        # the narrow one between two points (chance 0.0 where it is 1.0).
        (2, 50_000, 400, 1_000),
        (400, 1_000, 2, 50_000),
        (10, 100_000, 1_000, 100_000),
        (10, 1_000, 1_200, 100_000),
        (1_200, 100_000, 10, 1_000),
        (5, 200_000, 30, 200_000),
        # Ordinary cases and tiny arms.
        (61, 5012, 83, 4988),
        (40, 20000, 38, 20100),
        (1, 3, 2, 3),
    ],
)
def test_chance_to_beat_control_matches_the_closed_form_sum(k0, n0, k1, n1):
    chance = es.chance_beta_binomial([k0], [n0], [k1], [n1])
    assert chance[0] == pytest.approx(chance_closed_form(k0, n0, k1, n1), abs=1e-5)


def test_exact_interval_at_zero_successes_is_clopper_pearson():
    low, high = es.exact_interval(np.array([0]), np.array([400]), alpha=0.05)
    assert low[0] == 0
    assert high[0] == pytest.approx(1 - 0.025 ** (1 / 400))


def test_srm_flags_a_crafted_split_against_the_planned_one():
    # 5,000 vs 5,400 under a planned 50/50: chi-square = 400**2/5200 * 2 = 15.38.
    p_value = es.srm_test([5000, 5400], [0.5, 0.5])
    assert p_value == pytest.approx(stats.chi2.sf(2 * 200**2 / 5200, 1))
    assert p_value < 0.001
    # The same counts are fine when the plan was 48/52.
    assert es.srm_test([5000, 5400], [0.4808, 0.5192]) > 0.5


def test_identical_values_have_zero_variance_and_no_p_value():
    mean, unit_variance, variance = es.describe_mean(3, 3 * 49.99, 3 * 49.99**2)
    assert unit_variance == 0
    result = es.compare_estimates(mean, variance, mean, variance, alpha=0.05)
    assert np.isnan(result["p_value"])


@pytest.mark.parametrize("seed", range(5))
def test_a_constant_order_value_has_zero_ratio_variance_and_no_p_value(seed):
    # 49.99 per order, 1-3 orders per customer: revenue / orders is 49.99 for every
    # customer, so the delta-method variance is 0; float sums used to leave 1e-16
    # and a p-value of 0 against a constant 59.99.
    rng = np.random.default_rng(seed)
    described = []
    for price in (49.99, 59.99):
        orders = rng.integers(1, 4, 1000).astype(float)
        revenue = price * orders
        described.append(
            es.describe_ratio(
                1000,
                revenue.sum(),
                orders.sum(),
                (revenue**2).sum(),
                (orders**2).sum(),
                (revenue * orders).sum(),
            )
        )
    (r0, v0), (r1, v1) = described
    assert (r0, r1) == (pytest.approx(49.99), pytest.approx(59.99))
    assert v0 == 0 and v1 == 0
    assert np.isnan(es.compare_estimates(r0, v0, r1, v1, alpha=0.05)["p_value"])

    # One cent of spread in one order is real variation and is kept: hand formula.
    orders = np.array([1.0, 2.0, 3.0, 1.0, 2.0])
    revenue = 49.99 * orders + np.array([0.0, 0.0, 0.01, 0.0, 0.0])
    _, variance = es.describe_ratio(
        5,
        revenue.sum(),
        orders.sum(),
        (revenue**2).sum(),
        (orders**2).sum(),
        (revenue * orders).sum(),
    )
    residual = revenue - revenue.sum() / orders.sum() * orders
    expected = residual.var(ddof=1) / (5 * orders.mean() ** 2)
    assert variance == pytest.approx(expected, rel=1e-6) and variance > 0


def test_multinomial_bootstrap_matches_scipy_bootstrap(revenue_rows):
    control, treatment = revenue_rows
    ours = es.bootstrap_mean_difference(treatment, control, resamples=4000, seed=5)
    reference = stats.bootstrap(
        (treatment, control),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        n_resamples=4000,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(5),
    ).confidence_interval
    # Two Monte Carlo estimates of the same quantiles.
    spread = reference.high - reference.low
    assert ours[0] == pytest.approx(reference.low, abs=0.05 * spread)
    assert ours[1] == pytest.approx(reference.high, abs=0.05 * spread)


def test_closed_form_wilson_and_newcombe_match_statsmodels():
    from statsmodels.stats.proportion import (
        confint_proportions_2indep,
        proportion_confint,
    )

    k = np.array([0, 3, 61, 83, 500])
    n = np.array([40, 50, 5012, 4988, 800])
    low, high = es.wilson_bounds(k, n, alpha=0.05)
    expected = proportion_confint(k, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(low, expected[0], atol=1e-12)
    np.testing.assert_allclose(high, expected[1], atol=1e-12)

    low, high = es.newcombe_interval(k[:-1], n[:-1], k[1:], n[1:], alpha=0.1)
    reference = confint_proportions_2indep(
        k[1:], n[1:], k[:-1], n[:-1], method="newcomb", compare="diff", alpha=0.1
    )
    np.testing.assert_allclose(low, reference[0], atol=1e-12)
    np.testing.assert_allclose(high, reference[1], atol=1e-12)


def test_srm_p_value_matches_scipy_chisquare_for_three_arms():
    observed = [21306, 21307, 21387]
    shares = [0.3, 0.3, 0.4]
    expected = stats.chisquare(observed, np.sum(observed) * np.array(shares)).pvalue
    assert es.srm_test(observed, shares) == pytest.approx(expected, rel=1e-9)

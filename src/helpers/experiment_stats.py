"""Vectorised tests on sufficient statistics: one call tests every arm × metric.

Every function takes numpy arrays with one element per comparison (a non-control
arm against the control on one metric) and returns arrays, so a whole experiment's
family is tested in a handful of array operations. Nothing here loops over
comparisons or calls statsmodels' ``multipletests`` (which runs the garbage
collector on every call).

Scales, stated once:

- proportions: absolute difference (treatment minus control) with Newcombe's
  hybrid score interval and a two-sided pooled z-test;
- means: absolute difference with Welch's t (unequal variances,
  Welch-Satterthwaite degrees of freedom) from n, sum and sum of squares;
- ratios (sum of a numerator over sum of a denominator, the unit being the
  row that was summed): delta-method variance with the unit's cross-products and a
  t reference with Welch-Satterthwaite degrees of freedom (which matters when the
  units are a few campaigns);
- relative lift: ``treatment / control - 1`` with the delta method on the log of the
  ratio, using both arms' variances, so the interval is never an absolute interval
  divided by a fixed control value; same reference distribution as the absolute
  difference.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import special


def describe_mean(n, total, total_sq):
    """Return the mean, the per-unit sample variance and the variance of the mean.

    Parameters
    ----------
    n, total, total_sq : array_like
        Units, the sum of the per-unit values and the sum of their squares.

    Returns
    -------
    tuple of ndarray
        ``(mean, unit_variance, variance_of_mean)``; nan where ``n < 2``.

    Notes
    -----
    The variance is ``(total_sq - total**2 / n) / (n - 1)``, clipped at zero to
    absorb rounding when every value is identical.
    """
    n, total, total_sq = (np.asarray(v, dtype=float) for v in (n, total, total_sq))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        unit_variance = np.clip((total_sq - total * mean) / (n - 1), 0.0, None)
        unit_variance = np.where(n >= 2, unit_variance, np.nan)
        # Sums of squares lose precision when the mean dwarfs the spread: treat a
        # variance below float rounding of the mean's square as exactly zero.
        tiny = 64 * np.finfo(float).eps * np.maximum(mean**2, 1e-300) * np.sqrt(n)
        unit_variance = np.where(unit_variance <= tiny, 0.0, unit_variance)
    return mean, unit_variance, unit_variance / n


def describe_ratio(n, numerator, denominator, numerator_sq, denominator_sq, cross):
    """Return a ratio of sums and its delta-method variance.

    Parameters
    ----------
    n : array_like
        Units (visitors, campaigns) the sums run over.
    numerator, denominator : array_like
        Sums over units, e.g. revenue and orders.
    numerator_sq, denominator_sq, cross : array_like
        Sums over units of the squared numerator, the squared denominator and
        their product.

    Returns
    -------
    tuple of ndarray
        ``(ratio, variance_of_ratio)``.

    Notes
    -----
    With unit means ``m`` and ``d``, ratio ``r = m / d`` and unit (co)variances
    ``s_mm``, ``s_dd``, ``s_md``: ``var(r) = (s_mm - 2 r s_md + r**2 s_dd) /
    (n d**2)``, the first-order Taylor expansion of the ratio of two means. A
    unit variance within float rounding of its terms is returned as exactly 0.
    """
    n = np.asarray(n, dtype=float)
    num, den, num_sq, den_sq, cross = (
        np.asarray(v, dtype=float)
        for v in (numerator, denominator, numerator_sq, denominator_sq, cross)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = num / den
        mean_num, mean_den = num / n, den / n
        var_num = (num_sq - num * mean_num) / (n - 1)
        var_den = (den_sq - den * mean_den) / (n - 1)
        covariance = (cross - num * mean_den) / (n - 1)
        unit_variance = var_num - 2 * ratio * covariance + ratio**2 * var_den
        # The three terms cancel exactly when every unit has the same ratio (one
        # price per order, however many orders): treat what is left at the
        # rounding scale of the terms as zero, or a constant order value would
        # get a standard error of 1e-8 and any difference a p-value of 0.
        scale = (num_sq + 2 * np.abs(ratio * cross) + ratio**2 * den_sq) / (n - 1)
        tiny = 64 * np.finfo(float).eps * scale * np.sqrt(n)
        unit_variance = np.where(unit_variance <= tiny, 0.0, unit_variance)
        variance = unit_variance / (n * mean_den**2)
    return ratio, np.where(n >= 2, variance, np.nan)


def compare_proportions(k_control, n_control, k_treatment, n_treatment, *, alpha):
    """Return the absolute difference of two proportions, its Newcombe interval
    and a pooled two-sided z-test.

    Returns
    -------
    dict of ndarray
        ``abs_lift``, ``abs_ci_low``, ``abs_ci_high``, ``p_value``, ``se``.

    Notes
    -----
    The interval is Newcombe's hybrid score (Wilson) interval, method 10 of
    Newcombe (1998); the p-value is the score (pooled) z-test, which agrees with
    the chi-square test without continuity correction.
    """
    k0, n0, k1, n1 = (
        np.asarray(v, dtype=float)
        for v in (k_control, n_control, k_treatment, n_treatment)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        p0, p1 = k0 / n0, k1 / n1
        pooled = (k0 + k1) / (n0 + n1)
        se_pooled = np.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
        z = (p1 - p0) / se_pooled
        p_value = np.where(se_pooled > 0, 2 * special.ndtr(-np.abs(z)), np.nan)
        se = np.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
    low, high = newcombe_interval(k0, n0, k1, n1, alpha=alpha)
    return {
        "abs_lift": p1 - p0,
        "abs_ci_low": low,
        "abs_ci_high": high,
        "p_value": p_value,
        "se": se,
    }


def wilson_bounds(k, n, *, alpha):
    """Return the Wilson score interval in closed form, arrays in and out.

    Notes
    -----
    ``(k + z**2 / 2) / (n + z**2) ± z sqrt(k (n - k) / n + z**2 / 4) / (n + z**2)``;
    the same values as statsmodels' ``proportion_confint(method="wilson")``
    (checked in the tests) without its per-call overhead.
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    z = special.ndtri(1 - alpha / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (k + z**2 / 2) / (n + z**2)
        half = z * np.sqrt(k * (n - k) / n + z**2 / 4) / (n + z**2)
    return centre - half, centre + half


def newcombe_interval(k_control, n_control, k_treatment, n_treatment, *, alpha):
    """Return Newcombe's hybrid score interval for ``p_treatment - p_control``.

    Notes
    -----
    With Wilson limits ``(l, u)`` per arm: ``d - sqrt((p_t - l_t)**2 +
    (u_c - p_c)**2)`` to ``d + sqrt((u_t - p_t)**2 + (p_c - l_c)**2)``.
    """
    k0, n0, k1, n1 = (
        np.asarray(v, dtype=float)
        for v in (k_control, n_control, k_treatment, n_treatment)
    )
    low0, high0 = wilson_bounds(k0, n0, alpha=alpha)
    low1, high1 = wilson_bounds(k1, n1, alpha=alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        p0, p1 = k0 / n0, k1 / n1
    difference = p1 - p0
    low = difference - np.sqrt((p1 - low1) ** 2 + (high0 - p0) ** 2)
    high = difference + np.sqrt((high1 - p1) ** 2 + (p0 - low0) ** 2)
    return low, high


def compare_estimates(
    est_control, var_control, est_treatment, var_treatment, *, alpha, df=None
):
    """Return the absolute difference of two independent estimates with its interval
    and two-sided p-value.

    Parameters
    ----------
    est_control, est_treatment : array_like
        The arms' estimates (means or ratios).
    var_control, var_treatment : array_like
        The variances of those estimates (already divided by n).
    alpha : float
        One minus the confidence level.
    df : array_like, optional
        Degrees of freedom for a t reference (Welch); normal when omitted or inf.

    Returns
    -------
    dict of ndarray
        ``abs_lift``, ``abs_ci_low``, ``abs_ci_high``, ``p_value``, ``se``.
        ``p_value`` is nan where the standard error is zero.
    """
    e0, v0, e1, v1 = (
        np.asarray(v, dtype=float)
        for v in (est_control, var_control, est_treatment, var_treatment)
    )
    df = np.full_like(e0, np.inf) if df is None else np.asarray(df, dtype=float)
    diff, se = e1 - e0, np.sqrt(v0 + v1)
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = np.where(se > 0, diff / se, np.nan)
        p_value = 2 * special.stdtr(df, -np.abs(statistic))
    critical = special.stdtrit(df, 1 - alpha / 2)
    return {
        "abs_lift": diff,
        "abs_ci_low": diff - critical * se,
        "abs_ci_high": diff + critical * se,
        "p_value": p_value,
        "se": se,
    }


def welch_df(var_control, n_control, var_treatment, n_treatment):
    """Return Welch-Satterthwaite degrees of freedom from the variances of the two
    means (``unit variance / n``) and the arm sizes."""
    v0, n0, v1, n1 = (
        np.asarray(v, dtype=float)
        for v in (var_control, n_control, var_treatment, n_treatment)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return (v0 + v1) ** 2 / (v0**2 / (n0 - 1) + v1**2 / (n1 - 1))


def relative_lift(
    est_control, var_control, est_treatment, var_treatment, *, alpha, df=None
):
    """Return the relative lift ``treatment / control - 1`` and its interval.

    Parameters
    ----------
    est_control, est_treatment : array_like
        The arms' estimates (rates, means or ratios).
    var_control, var_treatment : array_like
        The variances of those estimates.
    alpha : float
        One minus the confidence level.
    df : array_like, optional
        Degrees of freedom for a t critical value (Welch); normal when omitted
        or inf.

    Returns
    -------
    dict of ndarray
        ``rel_lift``, ``rel_ci_low``, ``rel_ci_high``, ``rel_se_log``; nan where
        either estimate is not positive.

    Notes
    -----
    Delta method on ``log(treatment) - log(control)``: its variance is
    ``var_t / est_t**2 + var_c / est_c**2``; the interval is built on the log
    scale and mapped back, so it is asymmetric and respects the control's own
    uncertainty.
    """
    e0, v0, e1, v1 = (
        np.asarray(v, dtype=float)
        for v in (est_control, var_control, est_treatment, var_treatment)
    )
    valid = (e0 > 0) & (e1 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.where(valid, np.log(np.where(valid, e1 / e0, 1.0)), np.nan)
        se_log = np.where(valid, np.sqrt(v1 / e1**2 + v0 / e0**2), np.nan)
    df = np.full_like(e0, np.inf) if df is None else np.asarray(df, dtype=float)
    critical = special.stdtrit(df, 1 - alpha / 2)
    return {
        "rel_lift": np.where(valid, e1 / np.where(e0 != 0, e0, np.nan) - 1, np.nan),
        "rel_ci_low": np.expm1(log_ratio - critical * se_log),
        "rel_ci_high": np.expm1(log_ratio + critical * se_log),
        "rel_se_log": se_log,
    }


def adjust_p(p_values, *, method="holm"):
    """Return p-values adjusted across one family, nan entries left out.

    Parameters
    ----------
    p_values : array_like
        The family's raw p-values; nan marks an untested comparison, which is not
        counted in the family.
    method : {"holm", "fdr_bh"}
        Holm's step-down (family-wise error) or Benjamini-Hochberg (false discovery
        rate).

    Returns
    -------
    ndarray
        Adjusted p-values, same order, capped at 1.

    Notes
    -----
    Matches statsmodels' ``multipletests`` (checked in the tests) without its
    per-call garbage collection.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = ~np.isnan(p)
    values = p[tested]
    m = values.size
    if m == 0:
        return adjusted
    order = np.argsort(values, kind="mergesort")
    ranked = values[order]
    if method == "holm":
        steps = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "fdr_bh":
        scaled = ranked * m / np.arange(1, m + 1)
        steps = np.minimum.accumulate(scaled[::-1])[::-1]
    else:
        raise ValueError(f"correction must be 'holm' or 'fdr_bh', got {method!r}")
    result = np.empty(m)
    result[order] = np.minimum(steps, 1.0)
    adjusted[tested] = result
    return adjusted


def chance_beta_binomial(k_control, n_control, k_treatment, n_treatment, *, nodes=96):
    """Return the posterior probability that the treatment's rate beats control's.

    Model: each arm's rate has a uniform Beta(1, 1) prior and a binomial
    likelihood, so its posterior is Beta(1 + k, 1 + n - k). All comparisons are
    computed at once.

    Notes
    -----
    ``P(p_t > p_c)`` is integrated over the narrower posterior's density, times
    the other posterior's exact distribution function (``scipy.special.betainc``):
    ``integral of f_t(x) F_c(x) dx`` when the treatment is narrower, else
    ``integral of f_c(x) (1 - F_t(x)) dx``. Gauss-Legendre quadrature with `nodes`
    points runs between the narrower posterior's 1e-12 and 1 - 1e-12 quantiles,
    and the result is divided by the same rule's integral of the density.
    Integrating over a grid spanning both posteriors instead missed a narrow
    posterior that fell between two grid points (a control of 2 in 50,000 against
    400 in 1,000 gave a chance near 0 instead of 1).
    """
    k0, n0, k1, n1 = (
        np.asarray(v, dtype=float)[:, None]
        for v in (k_control, n_control, k_treatment, n_treatment)
    )
    a0, b0, a1, b1 = 1 + k0, 1 + n0 - k0, 1 + k1, 1 + n1 - k1

    # The narrower posterior carries the nodes; the wider one enters exactly.
    def variance(a, b):
        return a * b / ((a + b) ** 2 * (a + b + 1))

    is_treatment = variance(a1, b1) <= variance(a0, b0)
    a_grid, b_grid = np.where(is_treatment, a1, a0), np.where(is_treatment, b1, b0)
    a_other, b_other = np.where(is_treatment, a0, a1), np.where(is_treatment, b0, b1)
    low = special.betaincinv(a_grid, b_grid, 1e-12)
    high = special.betaincinv(a_grid, b_grid, 1 - 1e-12)
    points, weights = _legendre_nodes(int(nodes))
    x = low + (high - low) * (points[None, :] + 1) / 2
    weights = weights[None, :] * (high - low) / 2

    # Treatment narrower: f_t F_c. Control narrower: f_c (1 - F_t).
    density = _beta_density(x, a_grid, b_grid)
    below = special.betainc(a_other, b_other, x)
    other = np.where(is_treatment, below, 1 - below)
    mass = (weights * density).sum(axis=1)
    return (weights * density * other).sum(axis=1) / mass


@functools.cache
def _legendre_nodes(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return Gauss-Legendre nodes and weights on [-1, 1], computed once."""
    return np.polynomial.legendre.leggauss(nodes)


def _beta_density(x, a, b):
    log_pdf = special.xlogy(a - 1, x) + special.xlog1py(b - 1, -x)
    return np.exp(log_pdf - special.betaln(a, b))


def chance_normal(diff, se):
    """Return ``P(true difference > 0)`` under a flat prior and a normal likelihood
    for the difference (the normal approximation used for means and ratios)."""
    diff, se = np.asarray(diff, dtype=float), np.asarray(se, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(se > 0, special.ndtr(diff / se), np.nan)


def exact_interval(k, n, *, alpha):
    """Return the Clopper-Pearson (exact) interval for ``k`` of ``n``; at ``k = 0``
    the upper bound is ``1 - (alpha / 2) ** (1 / n)``."""
    from statsmodels.stats.proportion import proportion_confint

    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    low, high = proportion_confint(k, np.maximum(n, 1), alpha=alpha, method="beta")
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def srm_test(observed, planned_shares):
    """Return the chi-square goodness-of-fit p-value of arm sizes against the
    planned split (sample-ratio mismatch).

    Notes
    -----
    Pearson's statistic ``sum((observed - expected)**2 / expected)`` on
    ``arms - 1`` degrees of freedom, as scipy.stats.chisquare computes it
    (checked in the tests), without its per-call overhead.
    """
    observed = np.asarray(observed, dtype=float)
    shares = np.asarray(planned_shares, dtype=float)
    expected = observed.sum() * shares / shares.sum()
    statistic = ((observed - expected) ** 2 / expected).sum()
    return float(special.chdtrc(len(observed) - 1, statistic))


def bootstrap_mean_difference(
    treatment, control, *, resamples=1000, alpha=0.05, seed=0
):
    """Return a percentile bootstrap interval for ``mean(treatment) -
    mean(control)``, resampling units with replacement within each arm.

    Parameters
    ----------
    treatment, control : array_like
        Per-unit values (e.g. revenue per visitor, zeros included).
    resamples : int
        Bootstrap resamples.
    alpha : float
        One minus the confidence level.
    seed : int
        Seed of the random generator.

    Returns
    -------
    tuple of float
        ``(ci_low, ci_high)``.

    Notes
    -----
    Drawing n units with replacement is the same as drawing multinomial counts
    over the arm's distinct values with probabilities equal to their shares, so
    each resample costs one multinomial draw over the distinct values instead of
    n index draws; revenue, mostly zeros, has few distinct values. The result
    has the distribution of scipy.stats.bootstrap's percentile interval (checked
    in the tests).
    """
    rng = np.random.default_rng(seed)
    means = []
    for values in (treatment, control):
        distinct, counts = np.unique(
            np.asarray(values, dtype=float), return_counts=True
        )
        n = int(counts.sum())
        draws = rng.multinomial(n, counts / n, size=int(resamples))
        means.append(draws @ distinct / n)
    difference = means[0] - means[1]
    low, high = np.quantile(difference, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)

"""Shared interval helpers: every rate Heard shows carries its interval.

The stage modules (calls, coding, experiments) hold their own tests; this module
holds only what several of them need.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint


def wilson_interval(
    successes: int | np.ndarray, trials: int | np.ndarray, *, alpha: float = 0.05
) -> tuple:
    """Return the Wilson score interval for `successes` out of `trials`.

    Parameters
    ----------
    successes, trials : int or array
        Counts; ``trials`` may be zero, which gives ``(nan, nan)``.
    alpha : float
        One minus the confidence level.

    Returns
    -------
    tuple
        ``(ci_low, ci_high)``, scalars or arrays like the input.

    Notes
    -----
    Calls statsmodels' ``proportion_confint(method="wilson")``. At 0/n the lower
    bound is exactly 0 and at n/n the upper bound exactly 1.
    """
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    safe_trials = np.where(trials > 0, trials, 1.0)
    low, high = proportion_confint(successes, safe_trials, alpha=alpha, method="wilson")
    # statsmodels leaves ~1e-19 at the edges; the docstring promises exact bounds.
    low = np.where(trials > 0, np.where(successes == 0, 0.0, low), np.nan)
    high = np.where(trials > 0, np.where(successes == trials, 1.0, high), np.nan)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def tally_rate(
    frame: pd.DataFrame,
    *,
    successes: str,
    trials: str,
    rate: str = "rate",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Return a copy of `frame` with a rate and its Wilson interval added.

    Parameters
    ----------
    frame : DataFrame
        One row per group with a successes column and a trials column.
    successes, trials : str
        The count columns.
    rate : str
        The name of the new rate column.

    Returns
    -------
    DataFrame
        `frame` plus ``<rate>``, ``ci_low``, ``ci_high``.
    """
    result = frame.copy()
    counts, totals = result[successes].to_numpy(), result[trials].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        result[rate] = np.where(
            totals > 0, counts / np.where(totals > 0, totals, 1), np.nan
        )
    result["ci_low"], result["ci_high"] = wilson_interval(counts, totals, alpha=alpha)
    return result

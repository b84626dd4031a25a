"""The experiments step's outputs read back and dressed for the notebook and report.

Numbers stay raw in ``data/processed``; these helpers only load the month's files
and format them (rates as percentages, lifts with intervals, p-values to two
figures), so notebook cells stay one line each.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from helpers.experiments import (
    PLAN_COLUMNS,
    RESULT_COLUMNS,
    load_listed_experiment,
)
from helpers.tables import format_decimal, format_p

log = logging.getLogger(__name__)

PARTS = ("results", "arms", "checks", "plan", "trace")
# Columns of each part when a month has no experiments, so display code still runs.
EMPTY_COLUMNS = {
    "results": [*RESULT_COLUMNS, "boot_ci_low", "boot_ci_high", "verdict"],
    "arms": ["variant", "n"],
    "checks": [
        "check",
        "metric",
        "variant",
        "value",
        "threshold",
        "is_passed",
        "message",
    ],
    "plan": list(PLAN_COLUMNS),
    "trace": [
        "quote_id",
        "quote",
        "variant",
        "variant_name",
        "metric",
        "rel_lift",
        "rel_ci_low",
        "rel_ci_high",
        "p_adjusted",
    ],
}


def load_month_outputs(
    study, month: str, *, parts: tuple = PARTS, missing_ok: bool = False
) -> dict:
    """Return the month's experiment outputs, each table across experiments.

    Parameters
    ----------
    study : helpers.study.Study
    month : str
        ``YYYY-MM``; :func:`helpers.experiments.run_experiments_step` must have
        run for it.
    parts : tuple of str, keyword-only
        Which of :data:`PARTS` to read; the others are left out of the result.
    missing_ok : bool, keyword-only
        Skip (with a warning) an experiment's part whose file is missing, as the
        report does for an experiment the step has not analysed yet; otherwise
        the missing file raises.

    Returns
    -------
    dict
        ``definitions`` (list of dict, from raw ``experiment.yml``, every listed
        experiment), one DataFrame per part in `parts` (``results``, ``arms``,
        ``checks``, ``plan``, ``trace``; with an ``experiment`` column) and
        ``summary`` (the JSON's contents).

    Raises
    ------
    FileNotFoundError
        When a part's file is missing and `missing_ok` is false.
    """
    names = study.month_config(month).get("experiments") or []
    outputs = {part: [] for part in parts}
    definitions = []
    for name in names:
        definitions.append(load_listed_experiment(study, name))
        for part in parts:
            path = study.processed(month, f"experiment-{part}_{name}.parquet")
            if missing_ok and not path.exists():
                log.warning("no %s for experiment %s in %s", part, name, month)
                continue
            frame = pd.read_parquet(path)
            outputs[part].append(frame.assign(experiment=name))
    tables = {
        part: pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*EMPTY_COLUMNS[part], "experiment"])
        for part, frames in outputs.items()
    }
    summary_path = study.processed(month, "summary_experiments.json")
    summary = (
        json.loads(summary_path.read_text("utf-8")) if summary_path.exists() else {}
    )
    return {"definitions": definitions, **tables, "summary": summary}


# Reader's names for the built-in metrics. The role (primary, guardrail, …) is a
# column of its own, so it stays out of the name.
METRIC_LABELS = {
    "conversion_rate": "Conversion rate",
    "visit_rate": "Visit rate",
    "unsubscribe_rate": "Unsubscribe rate",
    "revenue_per_visitor": "Revenue per visitor",
    "orders_per_visitor": "Orders per visitor",
    "aov": "Average order value (AOV)",
    "roas": "Return on ad spend (ROAS)",
    "ctr": "Click-through rate (CTR)",
    "click_conversion_rate": "Orders per click",
}
CAPPED_SUFFIX = "_capped"


def format_metric(metric: str, *, in_sentence: bool = False) -> str:
    """Return a metric's name as readers see it in tables, figures and verdicts.

    Parameters
    ----------
    metric : str
        A metric key as the results files store it (``aov``,
        ``revenue_per_visitor_capped``, or one defined in ``experiment.yml``).
    in_sentence : bool, keyword-only
        Start with a small letter, for use inside a sentence (an abbreviation
        such as ``ROAS`` keeps its capitals).

    Returns
    -------
    str
        ``aov`` -> ``"Average order value (AOV)"``,
        ``revenue_per_visitor_capped`` -> ``"Revenue per visitor, capped"``; a key
        with no label here has its underscores turned into spaces and a capital
        first letter (``repeat_rate`` -> ``"Repeat rate"``).
    """
    key = str(metric)
    capped = key.endswith(CAPPED_SUFFIX) and key != CAPPED_SUFFIX
    base = key.removesuffix(CAPPED_SUFFIX) if capped else key
    words = METRIC_LABELS.get(base) or base.replace("_", " ").strip()
    label = words[:1].upper() + words[1:] + (", capped" if capped else "")
    first = label.split(" ", 1)[0]
    if in_sentence and not (len(first) > 1 and first.isupper()):
        return label[:1].lower() + label[1:]
    return label


def format_level(alpha: float) -> str:
    """Return the confidence level ``1 - alpha`` as readers see it.

    Parameters
    ----------
    alpha : float
        The experiment's ``alpha`` (``experiment.yml`` or the study's default).

    Returns
    -------
    str
        ``0.05`` -> ``"95%"``, ``0.1`` -> ``"90%"``, ``0.025`` -> ``"97.5%"`` (not
        rounded to ``98%``: the level is stated as it was used).

    Raises
    ------
    ValueError
        If `alpha` is not a number strictly between 0 and 1.
    """
    number = float(alpha)
    if not 0 < number < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    return f"{round(100 * (1 - number), 6):g}%"


def format_levels(definitions: list[dict]) -> str:
    """Return the interval level of the month's experiments for a sentence.

    Parameters
    ----------
    definitions : list of dict
        The month's experiment definitions (``name``, ``alpha``).

    Returns
    -------
    str
        ``"95%"`` when every experiment uses the same alpha, else each level
        with its experiments (``"90% for a, 95% for b and c"``); ``"95%"`` (the
        default alpha 0.05) when there are none.
    """
    names_by_level = {}
    for definition in definitions:
        level = format_level(definition.get("alpha", 0.05))
        names_by_level.setdefault(level, []).append(definition["name"])
    if len(names_by_level) <= 1:
        return next(iter(names_by_level), format_level(0.05))
    return ", ".join(
        f"{level} for " + _join_names(names) for level, names in names_by_level.items()
    )


def _join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def format_value(value: float, mode: str) -> str:
    """Return a metric value: a percentage for proportions, else 3 figures."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{100 * value:.2f}%" if mode == "proportion" else f"{value:,.3g}"


def format_value_ci(value: float, low: float, high: float, mode: str) -> str:
    """Return an arm's value with its interval: ``3.78% [3.52, 4.05]`` for
    proportions (the brackets in the same unit), ``2.46 [2.18, 2.74]`` otherwise;
    the value alone when the interval is missing."""
    shown = format_value(value, mode)
    if shown == "–" or not (np.isfinite(low) and np.isfinite(high)):
        return shown
    if mode == "proportion":
        return f"{shown} [{format_decimal(100 * low)}, {format_decimal(100 * high)}]"
    return f"{shown} [{low:,.3g}, {high:,.3g}]"


def format_difference(value: float, low: float, high: float, mode: str) -> str:
    """Return ``+1.38 pp [+0.63, +2.14]`` for proportions, ``+0.77 [+0.49,
    +1.05]`` otherwise, or ``–`` when untested."""
    if not np.isfinite(value):
        return "–"
    if mode == "proportion":
        points = (format_decimal(100 * v, sign="+") for v in (value, low, high))
        return "{} pp [{}, {}]".format(*points)
    return f"{value:+,.3g} [{low:+,.3g}, {high:+,.3g}]"


def format_relative(value: float, low: float, high: float) -> str:
    """Return ``+50.5% [+20.3%, +88.3%]`` or ``–``."""
    if not np.isfinite(value):
        return "–"
    low, high = (f"{format_decimal(100 * v, digits=1, sign='+')}%" for v in (low, high))
    return f"{format_decimal(100 * value, digits=1, sign='+')}% [{low}, {high}]"


def format_chance(chance: float) -> str:
    """Return a probability as ``64%``, ``>99.9%`` or ``<0.1%``; ``–`` if missing."""
    if chance is None or not np.isfinite(chance):
        return "–"
    if chance > 0.999:
        return ">99.9%"
    if chance < 0.001:
        return "<0.1%"
    return f"{chance:.0%}"


def format_p_pair(p_adjusted: float, p_value: float) -> str:
    """Return ``0.036 (0.012)``: the family-adjusted p-value, then the raw one;
    ``– (0.012)`` for a row outside the family, ``–`` when untested."""
    raw = format_p(p_value)
    if raw == "–":
        return raw
    return f"{format_p(p_adjusted)} ({raw})"


# The results' flags in readers' words (the files keep the short keys).
FLAG_LABELS = {
    "srm": "sample-ratio mismatch",
    "zero_conversions": "no conversions",
    "zero_variance": "no variance",
    "below_min_sample": "below planned sample",
    "capped": "capped",
    "not_testable": "not testable",
}


def format_flags(flags: str | None) -> str:
    """Return ``;``-joined flag keys as words: ``srm;capped`` ->
    ``"sample-ratio mismatch, capped"``; an unknown key is shown with spaces."""
    keys = [key for key in str(flags or "").split(";") if key]
    return ", ".join(FLAG_LABELS.get(key, key.replace("_", " ")) for key in keys)


DISPLAY_COLUMNS = [
    "experiment",
    "metric",
    "role",
    "variant",
    "n",
    "Value [CI]",
    "Absolute lift [CI]",
    "Relative lift [CI]",
    "p adjusted (raw)",
    "flags",
]


def format_results(results: pd.DataFrame) -> pd.DataFrame:
    """Return the results table for display, narrow enough for a page's text
    column; :func:`format_result_checks` holds the bootstrap and Bayesian columns.

    Returns
    -------
    DataFrame
        ``metric`` (reader's name, after its experiment's name when there are
        several), ``role``, ``variant``, ``n``, ``Value [CI]`` (the arm's value
        with its interval), ``Absolute lift [CI]``, ``Relative lift [CI]``, ``p
        adjusted (raw)`` (family-adjusted p-value, the raw one in brackets),
        ``flags`` (in words, see :data:`FLAG_LABELS`; comma-separated).
    """
    rows = results.itertuples(index=False)
    display = pd.DataFrame(
        [
            {
                "experiment": getattr(r, "experiment", ""),
                "metric": format_metric(r.metric),
                "role": r.role,
                "variant": r.variant,
                "n": f"{r.n:,.0f}",
                "Value [CI]": format_value_ci(r.estimate, r.ci_low, r.ci_high, r.mode),
                "Absolute lift [CI]": format_difference(
                    r.abs_lift, r.abs_ci_low, r.abs_ci_high, r.mode
                ),
                "Relative lift [CI]": format_relative(
                    r.rel_lift, r.rel_ci_low, r.rel_ci_high
                ),
                "p adjusted (raw)": format_p_pair(r.p_adjusted, r.p_value),
                "flags": format_flags(r.flags),
            }
            for r in rows
        ],
        columns=DISPLAY_COLUMNS,
    )
    return _fold_experiment(display)


CHECK_DISPLAY_COLUMNS = [
    "experiment",
    "metric",
    "variant",
    "Absolute lift, bootstrap [CI]",
    "chance to beat control",
]


def format_result_checks(results: pd.DataFrame) -> pd.DataFrame:
    """Return the second look at each lift: the bootstrap interval of the
    absolute lift and the Bayesian chance to beat control.

    Returns
    -------
    DataFrame
        One row per non-control arm × metric: ``metric`` (reader's name, after
        its experiment's name when there are several), ``variant``, ``Absolute lift,
        bootstrap [CI]`` (row-level means only, else ``–``), ``chance to beat
        control`` (``–`` when switched off or untested).
    """
    arms = results[results["variant"].ne("control")]
    display = pd.DataFrame(
        [
            {
                "experiment": getattr(r, "experiment", ""),
                "metric": format_metric(r.metric),
                "variant": r.variant,
                "Absolute lift, bootstrap [CI]": format_difference(
                    r.abs_lift, r.boot_ci_low, r.boot_ci_high, r.mode
                )
                if np.isfinite(getattr(r, "boot_ci_low", np.nan))
                else "–",
                "chance to beat control": format_chance(r.chance_to_beat_control),
            }
            for r in arms.itertuples(index=False)
        ],
        columns=CHECK_DISPLAY_COLUMNS,
    )
    return _fold_experiment(display)


def _fold_experiment(display: pd.DataFrame) -> pd.DataFrame:
    """Return `display` without its experiment column; when it names several,
    each metric is prefixed with its experiment (``meta-ads: Conversion rate``),
    which costs a wider table no extra column."""
    if len(set(display["experiment"])) > 1:
        display = display.assign(
            metric=display["experiment"] + ": " + display["metric"]
        )
    return display.drop(columns="experiment")


def format_capping(results: pd.DataFrame) -> pd.DataFrame:
    """Return what capping revenue did: each arm's revenue per visitor and its
    lift, uncapped and capped.

    Returns
    -------
    DataFrame
        One row per experiment × arm with a capped row: ``experiment``,
        ``variant``, ``uncapped``, ``capped``, ``change`` (capped / uncapped - 1),
        ``Lift uncapped [CI]``, ``Lift capped [CI]`` (relative lifts, with their
        intervals); empty when nothing was capped.
    """
    keys = ["experiment", "variant"] if "experiment" in results else ["variant"]
    capped = results[results["metric"].eq("revenue_per_visitor_capped")]
    uncapped = results[results["metric"].eq("revenue_per_visitor")]
    both = uncapped.merge(capped, on=keys, suffixes=("", "_capped"))
    return pd.DataFrame(
        {
            "experiment": both.get("experiment", ""),
            "variant": both["variant"],
            "uncapped": [format_value(v, "mean") for v in both["estimate"]],
            "capped": [format_value(v, "mean") for v in both["estimate_capped"]],
            "change": [
                f"{c / u - 1:+.1%}" if u else "–"
                for u, c in zip(both["estimate"], both["estimate_capped"], strict=True)
            ],
            "Lift uncapped [CI]": _relative_column(both, ""),
            "Lift capped [CI]": _relative_column(both, "_capped"),
        }
    )


def _relative_column(frame: pd.DataFrame, suffix: str) -> list[str]:
    return [
        format_relative(v, lo, hi)
        for v, lo, hi in zip(
            frame[f"rel_lift{suffix}"],
            frame[f"rel_ci_low{suffix}"],
            frame[f"rel_ci_high{suffix}"],
            strict=True,
        )
    ]


def format_plan(plan: pd.DataFrame) -> pd.DataFrame:
    """Return the planning table for display: baseline, detectable effect,
    units per arm and days."""
    return pd.DataFrame(
        {
            "experiment": plan["experiment"],
            "metric": plan["metric"].map(format_metric),
            "baseline": [
                format_value(v, "proportion" if k == "proportion" else "mean")
                for v, k in zip(plan["baseline"], plan["metric_kind"], strict=True)
            ],
            "effect to detect": [f"{v:+.0%}" for v in plan["mde_rel"]],
            "alpha per test": [f"{v:.3g}" for v in plan["alpha"]],
            "power": [f"{v:.0%}" for v in plan["power"]],
            "units per arm": [f"{v:,.0f}" for v in plan["n_per_arm"]],
            "days needed": ["–" if np.isnan(v) else f"{v:,.0f}" for v in plan["days"]],
            "effect the planned dates can detect": [
                "–" if np.isnan(v) else f"{v:+.0%}"
                for v in plan["mde_rel_at_planned_days"]
            ],
        }
    )


def format_checks(checks: pd.DataFrame) -> pd.DataFrame:
    """Return the checks for display: experiment, check, variant, passed,
    message."""
    return pd.DataFrame(
        {
            "experiment": checks["experiment"],
            "check": checks["check"].str.replace("_", " "),
            "variant": checks["variant"],
            "passed": np.where(checks["is_passed"], "yes", "NO"),
            "message": checks["message"],
        }
    )


def format_trace(trace: pd.DataFrame) -> pd.DataFrame:
    """Return the quote -> variant -> lift trace for display; quote texts are
    shortened to 90 characters, ids shown when the quote bank had no text."""
    quotes = (
        trace["quote"]
        .fillna("")
        .map(lambda text: text if len(text) <= 90 else text[:89] + "…")
    )
    return pd.DataFrame(
        {
            "quote": trace["quote_id"] + np.where(quotes.ne(""), ": " + quotes, ""),
            "variant": trace["variant"] + " (" + trace["variant_name"] + ")",
            "metric": trace["metric"].map(format_metric),
            "Relative lift [CI]": [
                format_relative(v, lo, hi)
                for v, lo, hi in zip(
                    trace["rel_lift"],
                    trace["rel_ci_low"],
                    trace["rel_ci_high"],
                    strict=True,
                )
            ],
            "p adjusted": trace["p_adjusted"].map(format_p),
        }
    )

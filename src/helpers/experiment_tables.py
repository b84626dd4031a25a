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
from helpers.tables import format_p

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


def load_month_outputs(study, month: str) -> dict:
    """Return the month's experiment outputs, each table across experiments.

    Parameters
    ----------
    study : helpers.study.Study
    month : str
        ``YYYY-MM``; :func:`helpers.experiments.run_experiments_step` must have
        run for it.

    Returns
    -------
    dict
        ``definitions`` (list of dict, from raw ``experiment.yml``),
        ``results``, ``arms``, ``checks``, ``plan``, ``trace`` (DataFrames with
        an ``experiment`` column) and ``summary`` (the JSON's contents).
    """
    names = study.month_config(month).get("experiments") or []
    outputs = {part: [] for part in PARTS}
    definitions = []
    for name in names:
        definitions.append(load_listed_experiment(study, name))
        for part in PARTS:
            frame = pd.read_parquet(
                study.processed(month, f"experiment-{part}_{name}.parquet")
            )
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


def format_value(value: float, mode: str) -> str:
    """Return a metric value: a percentage for proportions, else 3 figures."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{100 * value:.2f}%" if mode == "proportion" else f"{value:,.3g}"


def format_difference(value: float, low: float, high: float, mode: str) -> str:
    """Return ``+1.38 pp [+0.63, +2.14]`` for proportions, ``+0.77 [+0.49,
    +1.05]`` otherwise, or ``–`` when untested."""
    if not np.isfinite(value):
        return "–"
    if mode == "proportion":
        return f"{100 * value:+.2f} pp [{100 * low:+.2f}, {100 * high:+.2f}]"
    return f"{value:+,.3g} [{low:+,.3g}, {high:+,.3g}]"


def format_relative(value: float, low: float, high: float) -> str:
    """Return ``+50.5% [+20.3%, +88.3%]`` or ``–``."""
    if not np.isfinite(value):
        return "–"
    return f"{value:+.1%} [{low:+.1%}, {high:+.1%}]"


def format_chance(chance: float) -> str:
    """Return a probability as ``64%``, ``>99.9%`` or ``<0.1%``; ``–`` if missing."""
    if chance is None or not np.isfinite(chance):
        return "–"
    if chance > 0.999:
        return ">99.9%"
    if chance < 0.001:
        return "<0.1%"
    return f"{chance:.0%}"


DISPLAY_COLUMNS = [
    "experiment",
    "metric",
    "role",
    "variant",
    "n",
    "value",
    "absolute lift [CI]",
    "relative lift [CI]",
    "p",
    "p adjusted",
    "chance to beat control",
    "bootstrap [CI]",
    "flags",
]


def format_results(results: pd.DataFrame) -> pd.DataFrame:
    """Return the results table for display.

    Returns
    -------
    DataFrame
        ``experiment``, ``metric``, ``role``, ``variant``, ``n``, ``value``,
        ``absolute lift [CI]``, ``relative lift [CI]``, ``p``, ``p adjusted``,
        ``chance to beat control``, ``bootstrap [CI]`` (the absolute lift with its
        bootstrap interval, row-level means only), ``flags``.
    """
    rows = results.itertuples(index=False)
    display = pd.DataFrame(
        [
            {
                "experiment": getattr(r, "experiment", ""),
                "metric": r.metric.replace("_", " "),
                "role": r.role,
                "variant": r.variant,
                "n": f"{r.n:,.0f}",
                "value": format_value(r.estimate, r.mode),
                "absolute lift [CI]": format_difference(
                    r.abs_lift, r.abs_ci_low, r.abs_ci_high, r.mode
                ),
                "relative lift [CI]": format_relative(
                    r.rel_lift, r.rel_ci_low, r.rel_ci_high
                ),
                "p": format_p(r.p_value),
                "p adjusted": format_p(r.p_adjusted),
                "chance to beat control": format_chance(r.chance_to_beat_control),
                "bootstrap [CI]": format_difference(
                    r.abs_lift, r.boot_ci_low, r.boot_ci_high, r.mode
                )
                if np.isfinite(getattr(r, "boot_ci_low", np.nan))
                else "–",
                "flags": r.flags or "",
            }
            for r in rows
        ],
        columns=DISPLAY_COLUMNS,
    )
    if len(set(display["experiment"])) <= 1:
        display = display.drop(columns="experiment")
    return display


def format_capping(results: pd.DataFrame) -> pd.DataFrame:
    """Return what capping revenue did: each arm's revenue per visitor and its
    lift, uncapped and capped.

    Returns
    -------
    DataFrame
        One row per experiment × arm with a capped row: ``experiment``,
        ``variant``, ``uncapped``, ``capped``, ``change`` (capped / uncapped - 1),
        ``lift uncapped [CI]``, ``lift capped [CI]`` (relative lifts, with their
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
            "lift uncapped [CI]": _relative_column(both, ""),
            "lift capped [CI]": _relative_column(both, "_capped"),
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
            "metric": plan["metric"].str.replace("_", " "),
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
            "metric": trace["metric"].str.replace("_", " "),
            "relative lift [CI]": [
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

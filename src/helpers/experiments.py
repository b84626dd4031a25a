"""Messaging experiments: plan, read results, check, test, trace back to quotes.

An experiment lives in ``data/raw/<study>/experiments/<name>/`` as an
``experiment.yml`` beside its results (docs/study-folder.md, section 04). Every
results kind is reduced to sufficient statistics per arm (n, sums, sums of squares,
cross-products); row-level files are summed per unit, then per arm, in DuckDB. The
statistics themselves live in :mod:`helpers.experiment_stats` and run vectorised
over the whole family of arms × metrics.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers import experiment_stats as es
from helpers.errors import HeardInputError
from helpers.experiment_readers import aggregate_rows, read_results  # noqa: F401

log = logging.getLogger(__name__)

# Built-in metrics: kind, numerator column of the arm table, denominator column
# (None: the arm's n), and whether a higher value is better.
METRICS = {
    "conversion_rate": ("proportion", "conversions", None, True),
    "visit_rate": ("proportion", "visits", None, True),
    "unsubscribe_rate": ("proportion", "unsubscribes", None, False),
    "revenue_per_visitor": ("mean", "revenue", None, True),
    "orders_per_visitor": ("mean", "orders", None, True),
    "aov": ("ratio", "revenue", "orders", True),
    "roas": ("ratio", "revenue", "spend", True),
    "ctr": ("ratio", "clicks", "impressions", True),
    "click_conversion_rate": ("ratio", "orders", "clicks", True),
}
KINDS = ("arms", "rows", "meta_ads", "google_ads", "klaviyo")
VARIANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
QUOTE_ID = re.compile(r"^q-.+-\d{3}$")
REQUIRED_KEYS = ("name", "hypothesis", "variants", "split", "primary_metric")


# ---------------------------------------------------------------------------
# Definition
# ---------------------------------------------------------------------------


def load_experiment(path: Path, *, defaults: dict | None = None) -> dict:
    """Read and check an ``experiment.yml``.

    Parameters
    ----------
    path : Path
        The ``experiment.yml`` file.
    defaults : dict, optional
        The study's ``experiments:`` settings (alpha, power, correction, …); keys
        in the file override them.

    Returns
    -------
    dict
        The definition with defaults filled in, plus ``folder`` (the file's
        folder), ``variant_ids`` (control first), ``metrics`` (name -> kind,
        numerator, denominator, higher_is_better) for every metric it names and
        ``is_planned`` (True without a ``results:`` entry: the experiment is
        planned, its results not in yet, and only its plan is computed).

    Raises
    ------
    HeardInputError
        When a required key is missing, the first variant is not ``control``, ids
        repeat or are malformed, the split does not match the variants or sum to 1,
        a metric is unknown, or a quote id is not ``q-<conversation_id>-<NNN>``.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise HeardInputError(
            path,
            expected="a readable YAML file",
            found=str(error),
            fix="check the path and the YAML indentation",
        ) from error
    if not isinstance(raw, dict):
        raise HeardInputError(
            path,
            expected="a mapping of keys (name:, hypothesis:, variants:, …)",
            found=f"a YAML {type(raw).__name__}",
            fix="write each setting as `key: value` (see docs/study-folder.md, 04)",
        )
    definition = {**(defaults or {}), **raw}
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise HeardInputError(
                path,
                column=key,
                expected=f"a `{key}:` entry",
                found="nothing",
                fix="see docs/study-folder.md, 04",
            )
    definition["folder"] = path.parent
    definition["variant_ids"] = _check_variants(raw["variants"], path)
    definition["split"] = _check_split(raw["split"], definition["variant_ids"], path)
    definition["metrics"] = _resolve_metrics(definition, path)
    definition["dates"] = _check_dates(raw.get("dates"), path)
    _check_planning_numbers(definition, path)
    _warn_buyer_only_primary(definition, path)
    _warn_untraced_arms(raw["variants"], path)
    definition.setdefault("secondary_metrics", [])
    definition.setdefault("guardrail_metrics", [])
    definition["is_planned"] = raw.get("results") is None
    definition["results"] = _check_results_spec(raw.get("results"), path)
    return definition


def _check_results_spec(spec, path: Path) -> dict | None:
    """Return the ``results:`` entry with its defaults, or None when absent."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise HeardInputError(
            path,
            column="results",
            expected="a mapping with file: and kind:",
            found=spec,
            fix="see docs/study-folder.md, 04; leave results: out until they are in",
        )
    spec = {
        "kind": "arms",
        "variant_column": "variant",
        "variant_map": {},
        "column_map": {},
        **spec,
    }
    if spec["kind"] not in KINDS:
        raise HeardInputError(
            path,
            column="results.kind",
            expected=" | ".join(KINDS),
            found=spec["kind"],
        )
    return spec


def _check_variants(variants: list, path: Path) -> list[str]:
    ids = [str(v.get("id", "")) if isinstance(v, dict) else "" for v in variants or []]
    if len(ids) < 2 or ids[0] != "control":
        raise HeardInputError(
            path,
            column="variants",
            expected="at least two variants, the first with `id: control`",
            found=ids,
            fix="list the control first, then each arm",
        )
    for variant, variant_id in zip(variants, ids, strict=True):
        if not VARIANT_ID.match(variant_id) or ids.count(variant_id) > 1:
            raise HeardInputError(
                path,
                column="variants.id",
                expected="unique ids of lowercase letters, digits and dashes",
                found=variant_id,
            )
        for quote_id in variant.get("quote_ids") or []:
            if not QUOTE_ID.match(str(quote_id)):
                raise HeardInputError(
                    path,
                    column=f"variants[{variant_id}].quote_ids",
                    expected="quote ids like q-2026-11-07-003",
                    found=quote_id,
                    fix="copy the quote_id column of quote-bank_quote.parquet",
                )
    return ids


def _check_split(split: dict, variant_ids: list[str], path: Path) -> dict:
    if not isinstance(split, dict) or sorted(split) != sorted(variant_ids):
        raise HeardInputError(
            path,
            column="split",
            expected=f"one share per variant {variant_ids}",
            found=split,
        )
    shares = {key: float(split[key]) for key in variant_ids}
    if abs(sum(shares.values()) - 1) > 1e-6 or min(shares.values()) <= 0:
        raise HeardInputError(
            path,
            column="split",
            expected="positive shares that sum to 1",
            found=shares,
            fix="e.g. {control: 0.5, arm: 0.5}",
        )
    return shares


def _resolve_metrics(definition: dict, path: Path) -> dict:
    custom = {
        name: (
            spec.get("kind"),
            spec.get("numerator"),
            spec.get("denominator"),
            spec.get("higher_is_better", True),
        )
        for name, spec in (definition.get("metrics") or {}).items()
    }
    known = {**METRICS, **custom}
    named = [
        definition["primary_metric"],
        *definition.get("secondary_metrics", []),
        *definition.get("guardrail_metrics", []),
    ]
    for name in named:
        if name not in known or known[name][0] not in ("proportion", "mean", "ratio"):
            raise HeardInputError(
                path,
                column="metrics",
                expected="a built-in metric "
                f"({', '.join(METRICS)}) or one defined under metrics:",
                found=name,
            )
    return {name: known[name] for name in dict.fromkeys(named)}


def _check_dates(dates, path: Path) -> dict:
    """Return ``{start, end}`` as dates (empty when not given), refusing dates
    that do not parse or end before they start."""
    if dates is None:
        log.warning("%s: no dates: the plan cannot say what the dates can detect", path)
        return {}
    try:
        start, end = _to_date(dates["start"]), _to_date(dates["end"])
    except (TypeError, KeyError, ValueError) as error:
        raise HeardInputError(
            path,
            column="dates",
            expected="start: and end: as YYYY-MM-DD",
            found=dates,
            fix="e.g. dates: {start: 2026-11-10, end: 2026-11-23}",
        ) from error
    if end < start:
        raise HeardInputError(
            path,
            column="dates",
            expected="an end on or after the start",
            found=f"start {start}, end {end}",
        )
    return {"start": start, "end": end}


def _check_planning_numbers(definition: dict, path: Path) -> None:
    """Refuse an alpha, power or minimum detectable effect that cannot plan
    (each checked when given, by the file or the study's defaults)."""
    for key, low, high in (("alpha", 0, 1), ("power", 0, 1), ("mde", 0, None)):
        value = definition.get(key)
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not (number > low and (high is None or number < high)):
            bound = f"between {low} and {high}" if high else f"above {low}"
            raise HeardInputError(
                path, column=key, expected=f"a number {bound}", found=value
            )
    scale = definition.get("mde_scale", "relative")
    if scale not in ("relative", "absolute"):
        raise HeardInputError(
            path, column="mde_scale", expected="relative | absolute", found=scale
        )


def _warn_untraced_arms(variants: list, path: Path) -> None:
    """Warn about arms that name no quotes: their lift cannot be traced back."""
    for variant in variants[1:]:
        if not variant.get("quote_ids"):
            log.warning(
                "%s: arm %s names no quote_ids, so its result cannot be traced back "
                "to the customers' words it was written from",
                path,
                variant["id"],
            )


def _warn_buyer_only_primary(definition: dict, path: Path) -> None:
    """Warn when the primary metric counts buyers only (a ratio over orders,
    such as AOV): copy that stops people buying can raise it."""
    primary = definition["primary_metric"]
    kind, _, denominator, _ = definition["metrics"][primary]
    if kind == "ratio" and denominator in ("orders", "conversions"):
        log.warning(
            "%s: primary metric %s counts buyers only, so an arm that turns buyers "
            "away can still raise it; revenue_per_visitor (non-buyers count as 0) "
            "is the recommended primary metric",
            path,
            primary,
        )


def metric_roles(definition: dict) -> dict[str, str]:
    """Return metric -> ``primary`` / ``secondary`` / ``guardrail``."""
    roles = {m: "guardrail" for m in definition.get("guardrail_metrics", [])}
    roles.update({m: "secondary" for m in definition.get("secondary_metrics", [])})
    roles[definition["primary_metric"]] = "primary"
    return roles


# ---------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------


PLAN_COLUMNS = (
    "metric",
    "metric_kind",
    "baseline",
    "sd",
    "mde_abs",
    "mde_rel",
    "alpha",
    "power",
    "n_per_arm",
    "n_total",
    "days",
    "planned_days",
    "mde_rel_at_planned_days",
)


def plan_experiment(definition: dict) -> pd.DataFrame:
    """Return sample size, duration and detectable effect for each planned metric.

    Parameters
    ----------
    definition : dict
        From :func:`load_experiment`; uses ``baseline`` (``<metric>`` value,
        ``<metric>_sd`` for means and ratios, ``daily_units``), ``mde``,
        ``mde_scale``, ``alpha``, ``power``, ``split`` and ``dates``.

    Returns
    -------
    DataFrame
        One row per metric with a baseline: ``metric``, ``metric_kind``,
        ``baseline``, ``sd``, ``mde_abs``, ``mde_rel``, ``alpha``, ``power``,
        ``n_per_arm`` (control arm), ``n_total``, ``days`` (at ``daily_units``),
        ``planned_days`` (from ``dates``), ``mde_rel_at_planned_days``.

    Notes
    -----
    Two-sided tests; statsmodels ``NormalIndPower`` on Cohen's h for proportions
    and ``TTestIndPower`` on Cohen's d (``mde_abs / sd``) for means and ratios.
    The planning alpha is Bonferroni-split over the family the results are
    corrected across, every non-control arm × every primary, secondary and
    guardrail metric (``alpha / ((arms - 1) * metrics)``): Holm's first step is
    that threshold, so a plan at the full alpha would promise power the
    corrected test does not have. The smallest arm sets the sample size.
    """
    baseline = definition.get("baseline") or {}
    rows = [
        _plan_metric(definition, metric, spec[0], baseline)
        for metric, spec in definition["metrics"].items()
        if metric in baseline
    ]
    return pd.DataFrame([r for r in rows if r], columns=list(PLAN_COLUMNS))


def _plan_metric(definition: dict, metric: str, kind: str, baseline: dict) -> dict:
    from statsmodels.stats.power import NormalIndPower, TTestIndPower

    # The effect to detect, on the absolute scale.
    value = float(baseline[metric])
    sd = (
        np.sqrt(value * (1 - value))
        if kind == "proportion"
        else baseline.get(f"{metric}_sd")
    )
    if sd is None:
        log.warning("no %s_sd in baseline: cannot plan %s", metric, metric)
        return {}
    mde = float(definition.get("mde", 0.1))
    mde_abs = (
        mde * value if definition.get("mde_scale", "relative") == "relative" else mde
    )
    shares = definition["split"]
    ratio = min(v for k, v in shares.items() if k != "control") / shares["control"]
    alpha = float(definition["alpha"]) / planned_family_size(definition)
    power = float(definition["power"])

    # Sample size for the control arm, then the whole test.
    if kind == "proportion":
        effect = _cohen_h(value + mde_abs, value)
        engine = NormalIndPower()
    else:
        effect = mde_abs / float(sd)
        engine = TTestIndPower()
    n_control = float(engine.solve_power(effect, alpha=alpha, power=power, ratio=ratio))
    n_total = n_control / shares["control"]
    daily = baseline.get("daily_units")
    days = float(np.ceil(n_total / daily)) if daily else np.nan

    # The effect the planned dates can detect.
    planned_days, mde_planned = _planned_dates_effect(
        definition, engine, kind, value, float(sd), alpha=alpha, ratio=ratio
    )
    return {
        "metric": metric,
        "metric_kind": kind,
        "baseline": value,
        "sd": float(sd),
        "mde_abs": mde_abs,
        "mde_rel": mde_abs / value if value else np.nan,
        "alpha": alpha,
        "power": power,
        "n_per_arm": float(np.ceil(n_control)),
        "n_total": float(np.ceil(n_total)),
        "days": days,
        "planned_days": planned_days,
        "mde_rel_at_planned_days": mde_planned,
    }


def planned_family_size(definition: dict) -> int:
    """Return how many comparisons the results will be corrected across:
    non-control arms × primary, secondary and guardrail metrics."""
    return (len(definition["split"]) - 1) * len(definition["metrics"])


def _planned_dates_effect(definition, engine, kind, value, sd, *, alpha, ratio):
    """Return the planned days and the relative effect they can detect at the
    planned power (nan without dates or daily traffic)."""
    daily = (definition.get("baseline") or {}).get("daily_units")
    dates = definition.get("dates") or {}
    if not (daily and dates.get("start") and dates.get("end")):
        return np.nan, np.nan
    days = (_to_date(dates["end"]) - _to_date(dates["start"])).days + 1
    nobs = daily * days * definition["split"]["control"]
    power = float(definition["power"])
    effect = float(
        engine.solve_power(None, nobs1=nobs, alpha=alpha, power=power, ratio=ratio)
    )
    if kind == "proportion":
        shift = _invert_cohen_h(value, effect) - value
    else:
        shift = effect * sd
    return float(days), (shift / value if value else np.nan)


def _cohen_h(p1: float, p0: float) -> float:
    return 2 * np.arcsin(np.sqrt(p1)) - 2 * np.arcsin(np.sqrt(p0))


def _invert_cohen_h(p0: float, h: float) -> float:
    return float(np.sin(np.arcsin(np.sqrt(p0)) + h / 2) ** 2)


def _to_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# ---------------------------------------------------------------------------
# Per-arm metric values
# ---------------------------------------------------------------------------


def describe_arms(arms: pd.DataFrame, definition: dict) -> pd.DataFrame:
    """Return each metric's value per arm with its interval, from sufficient stats.

    Parameters
    ----------
    arms : DataFrame
        From :func:`read_results` (control first).
    definition : dict
        From :func:`load_experiment`.

    Returns
    -------
    DataFrame
        One row per metric × variant, metrics in definition order and the
        control first within each: ``metric``, ``role``, ``metric_kind``,
        ``mode`` (the test family: ``proportion``, ``mean`` or ``ratio``;
        ``proportion`` for a ratio read as one trial per impression or click),
        ``variant``, ``n`` (trials for proportions), ``k`` (successes,
        proportions only), ``estimate``, ``variance`` (of the estimate),
        ``unit_variance``, ``ci_low``, ``ci_high``, ``is_zero_variance``,
        ``has_zero_conversions``, ``is_available``, ``higher_is_better``.

    Notes
    -----
    Proportion intervals are Wilson's; at zero successes Clopper-Pearson (exact),
    whose upper bound is the most the data allow. Means and ratios use a t
    interval with n - 1 degrees of freedom on the standard error (for ratios the
    delta-method one). Everything runs on numpy arrays, one block per metric.
    """
    columns = {c: arms[c].to_numpy(dtype=float) for c in arms.columns if c != "variant"}
    table = describe_arrays(columns, arms["variant"].to_numpy(dtype=object), definition)
    return pd.DataFrame({c: table[c] for c in VALUE_COLUMNS})


def describe_arrays(columns: dict, variants: np.ndarray, definition: dict) -> dict:
    """Return :func:`describe_arms`' columns as numpy arrays (no pandas), from
    arm sums given as ``{column: array over arms}``."""
    alpha = float(definition["alpha"])
    roles = metric_roles(definition)
    metrics = dict(definition["metrics"])
    if "revenue_capped" in columns and "revenue_per_visitor" in metrics:
        metrics["revenue_per_visitor_capped"] = ("mean", "revenue_capped", None, True)
        roles["revenue_per_visitor_capped"] = "sensitivity"
    blocks = [
        _metric_values(columns, kind, numerator, denominator)
        for kind, numerator, denominator, _ in metrics.values()
    ]
    table = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
    size = len(variants)
    table["metric"] = np.repeat(np.array(list(metrics), dtype=object), size)
    table["role"] = np.repeat(np.array([roles[m] for m in metrics], dtype=object), size)
    table["metric_kind"] = np.repeat(
        np.array([spec[0] for spec in metrics.values()], dtype=object), size
    )
    table["higher_is_better"] = np.repeat(
        np.array([bool(spec[3]) for spec in metrics.values()]), size
    )
    table["variant"] = np.tile(variants, len(metrics))
    table["ci_low"], table["ci_high"] = _arm_intervals(table, alpha)
    return table


VALUE_COLUMNS = [
    "metric",
    "role",
    "metric_kind",
    "mode",
    "variant",
    "n",
    "k",
    "estimate",
    "variance",
    "unit_variance",
    "ci_low",
    "ci_high",
    "is_zero_variance",
    "has_zero_conversions",
    "is_available",
    "higher_is_better",
]


def _arm_intervals(table: dict, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Return each arm's own interval: Wilson, exact at zero, t or normal."""
    from scipy import special

    # Means and ratios: estimate plus or minus a t multiple (n - 1 degrees of
    # freedom) of its standard error.
    estimate, n = table["estimate"], table["n"]
    is_t = table["mode"] != "proportion"
    critical = np.full(len(n), special.ndtri(1 - alpha / 2))
    critical[is_t] = special.stdtrit(np.maximum(n[is_t] - 1, 1), 1 - alpha / 2)
    se = np.sqrt(table["variance"])
    low, high = estimate - critical * se, estimate + critical * se

    # Proportions: Wilson, or Clopper-Pearson where there are no successes.
    is_prop = np.flatnonzero(table["mode"] == "proportion")
    if is_prop.size:
        k = table["k"][is_prop]
        low[is_prop], high[is_prop] = es.wilson_bounds(k, n[is_prop], alpha=alpha)
        zero = is_prop[k == 0]
        if zero.size:
            low[zero], high[zero] = es.exact_interval(
                table["k"][zero], n[zero], alpha=alpha
            )
    return low, high


def _metric_values(columns: dict, kind: str, numerator: str, denominator) -> dict:
    """Return one metric's arrays per arm (see describe_arms)."""
    n = columns["n"]
    empty = np.full(len(n), np.nan)
    out = {
        "mode": np.full(len(n), kind, dtype=object),
        "n": n,
        "k": empty,
        "estimate": empty,
        "variance": empty,
        "unit_variance": empty,
        "is_zero_variance": np.zeros(len(n), bool),
        "has_zero_conversions": np.zeros(len(n), bool),
        "is_available": np.ones(len(n), bool),
    }
    cross = f"{numerator}_x_{denominator}"
    ratio_sums = {numerator, denominator, f"{numerator}_sq", f"{denominator}_sq", cross}
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "proportion" and numerator in columns:
            k = columns[numerator]
            rate = k / n
            out.update(
                k=k,
                estimate=rate,
                variance=rate * (1 - rate) / n,
                unit_variance=rate * (1 - rate),
                has_zero_conversions=k == 0,
            )
        elif kind == "mean" and {numerator, f"{numerator}_sq"} <= set(columns):
            mean, unit_var, var = es.describe_mean(
                n, columns[numerator], columns[f"{numerator}_sq"]
            )
            out.update(
                estimate=mean,
                variance=var,
                unit_variance=unit_var,
                is_zero_variance=unit_var == 0,
            )
        elif kind == "ratio" and ratio_sums <= set(columns) and n.min() >= 2:
            ratio, var = es.describe_ratio(
                n,
                columns[numerator],
                columns[denominator],
                columns[f"{numerator}_sq"],
                columns[f"{denominator}_sq"],
                columns[cross],
            )
            out.update(
                estimate=ratio,
                variance=var,
                unit_variance=var * n,
                is_zero_variance=var == 0,
                has_zero_conversions=columns[denominator] == 0,
            )
        elif (
            kind == "ratio"
            and denominator in ("impressions", "clicks")
            and {numerator, denominator} <= set(columns)
        ):
            # Aggregates only: each impression (or click) is one trial.
            k, trials = columns[numerator], columns[denominator]
            rate = k / trials
            out.update(
                mode=np.full(len(n), "proportion", dtype=object),
                n=trials,
                k=k,
                estimate=rate,
                variance=rate * (1 - rate) / trials,
                unit_variance=rate * (1 - rate),
                has_zero_conversions=k == 0,
            )
        else:
            log.warning(
                "metric %s/%s: the results lack the sums it needs; not testable",
                numerator,
                denominator,
            )
            out["is_available"] = np.zeros(len(n), bool)
    return out


# ---------------------------------------------------------------------------
# Checks before any test
# ---------------------------------------------------------------------------


def check_experiment(
    arms: pd.DataFrame,
    values: pd.DataFrame,
    definition: dict,
    *,
    plan: pd.DataFrame | None = None,
    info: dict | None = None,
) -> pd.DataFrame:
    """Return the checks run before any test.

    Parameters
    ----------
    arms : DataFrame
        From :func:`read_results`.
    values : DataFrame
        From :func:`describe_arms`.
    definition : dict
        From :func:`load_experiment`.
    plan : DataFrame, optional
        From :func:`plan_experiment`; its primary-metric ``n_per_arm`` is the
        planned minimum sample.
    info : dict, optional
        From :func:`read_results` (``n_mixed_units``).

    Returns
    -------
    DataFrame
        ``check`` (``sample_ratio``, ``min_sample``, ``zero_conversions``,
        ``zero_variance``, ``mixed_units``), ``metric``, ``variant``, ``value``,
        ``threshold``, ``is_passed``, ``message``.

    Notes
    -----
    Sample-ratio mismatch: chi-square goodness of fit of the arm sizes against
    the *planned* split, failed at ``p < srm_alpha`` (0.001 by default). The
    minimum sample is the larger of ``min_units_per_arm`` and the plan's size
    for the primary metric, scaled by each arm's planned share. Both count what
    the primary metric counts: units, or impressions (clicks) when an ad export
    gives one row per arm and the primary metric is tested per impression (click).
    """
    sizes = _arm_sizes(arms, values, definition)
    rows = [
        *_sample_ratio_rows(sizes, definition),
        *_min_sample_rows(sizes, definition, plan),
        *_degenerate_rows(values, float(definition["alpha"])),
    ]
    n_mixed = (info or {}).get("n_mixed_units", 0)
    message = f"{n_mixed} units seen in more than one arm, left out"
    rows.append(("mixed_units", "", "all", float(n_mixed), 0.0, n_mixed == 0, message))
    checks = pd.DataFrame(rows, columns=CHECK_COLUMNS)
    for message in checks.loc[~checks["is_passed"], "message"]:
        log.warning("check failed: %s", message)
    return checks


CHECK_COLUMNS = [
    "check",
    "metric",
    "variant",
    "value",
    "threshold",
    "is_passed",
    "message",
]


def _arm_sizes(arms: pd.DataFrame, values: pd.DataFrame, definition: dict) -> tuple:
    """Return the arms' variants, sizes and what a size counts, as the primary
    metric counts them (impressions for a per-impression CTR, else units)."""
    primary = values[values["metric"].eq(definition["primary_metric"])]
    variants = arms["variant"].to_numpy(dtype=object)
    units = arms["n"].to_numpy(dtype=float)
    sizes = primary.set_index("variant").loc[variants, "n"].to_numpy(dtype=float)
    if np.array_equal(sizes, units):
        return variants, units, "units"
    return variants, sizes, str(definition["metrics"][definition["primary_metric"]][2])


def _sample_ratio_rows(sizes: tuple, definition: dict) -> list[tuple]:
    """Return the sample-ratio check against the planned split."""
    variants, observed, counted = sizes
    shares = np.array([definition["split"][v] for v in variants])
    p_srm = es.srm_test(observed, shares)
    srm_alpha = float(definition.get("srm_alpha", 0.001))
    seen = ", ".join(
        f"{v} {s:.1%}" for v, s in zip(variants, observed / observed.sum(), strict=True)
    )
    planned = ", ".join(f"{s:.1%}" for s in shares)
    message = (
        f"arm shares of {counted} {seen} against planned {planned}; "
        f"chi-square p = {p_srm:.2g}"
    )
    return [("sample_ratio", "", "all", p_srm, srm_alpha, p_srm >= srm_alpha, message)]


def _min_sample_rows(sizes: tuple, definition: dict, plan) -> list[tuple]:
    """Return one minimum-sample check per arm: the larger of the floor and the
    plan's per-arm size for the primary metric, scaled by the arm's share."""
    variants, observed, counted = sizes
    shares = np.array([definition["split"][v] for v in variants])
    need = np.full(len(shares), float(definition.get("min_units_per_arm", 100)))
    if plan is not None and len(plan):
        planned = plan.loc[plan["metric"].eq(definition["primary_metric"]), "n_per_arm"]
        if len(planned):
            need = np.maximum(need, float(planned.iloc[0]) * shares / shares[0])
    return [
        (
            "min_sample",
            "",
            v,
            n,
            m,
            n >= m,
            f"{v}: {n:,.0f} {counted} of {m:,.0f} needed",
        )
        for v, n, m in zip(variants, observed, need, strict=True)
    ]


def _degenerate_rows(values: pd.DataFrame, alpha: float) -> list[tuple]:
    """Return zero-conversion and zero-variance checks, metric by metric."""
    from helpers.experiment_tables import format_level, format_metric

    zero = values[values["has_zero_conversions"]]
    rows = [
        (
            "zero_conversions",
            m,
            v,
            0.0,
            1.0,
            False,
            f"{v} has 0 of {n:,.0f} on {format_metric(m, in_sentence=True)}: not "
            f"testable; exact {format_level(alpha)} upper bound {high:.2%}"
            if mode == "proportion"
            else f"{v} has no conversions (a zero denominator) on "
            f"{format_metric(m, in_sentence=True)}: undefined there, not testable",
        )
        for m, v, n, high, mode in zip(
            zero["metric"],
            zero["variant"],
            zero["n"],
            zero["ci_high"],
            zero["mode"],
            strict=True,
        )
    ]
    flat = values[values["is_zero_variance"]]
    rows += [
        (
            "zero_variance",
            m,
            v,
            0.0,
            0.0,
            False,
            f"{v}: every unit has the same {format_metric(m, in_sentence=True)}",
        )
        for m, v in zip(flat["metric"], flat["variant"], strict=True)
    ]
    return rows


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

# Each test with the scale it works on; every relative lift is the delta method on
# the log ratio with both arms' variances.
RELATIVE_SCALE = "relative lift: delta method on the log ratio"
TEST_NAMES = {
    "proportion": "two-proportion z-test (pooled) on the difference in rates "
    f"(percentage points), Newcombe hybrid score interval; {RELATIVE_SCALE}",
    "mean": "Welch's t from sufficient statistics on the difference in means; "
    + RELATIVE_SCALE,
    "ratio": "delta method (unit cross-products), Welch's t on the difference in "
    f"ratios; {RELATIVE_SCALE}",
}
CORRECTION_NAMES = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}
BAYES_MODELS = {
    "proportion": "beta-binomial, Beta(1, 1) priors, numerical integral",
    "mean": "normal approximation of the difference, flat prior",
    "ratio": "normal approximation of the difference (delta method), flat prior",
}
RESULT_COLUMNS = [
    "metric",
    "role",
    "metric_kind",
    "mode",
    "variant",
    "n",
    "estimate",
    "ci_low",
    "ci_high",
    "abs_lift",
    "abs_ci_low",
    "abs_ci_high",
    "rel_lift",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "p_adjusted",
    "test",
    "correction",
    "n_family",
    "chance_to_beat_control",
    "bayes_model",
    "is_testable",
    "flags",
]


def compare_arms(
    values: pd.DataFrame, definition: dict, *, checks: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Test every non-control arm against control on every metric, in one pass.

    Parameters
    ----------
    values : DataFrame
        From :func:`describe_arms` (control first within each metric).
    definition : dict
        From :func:`load_experiment` (``alpha``, ``correction``, ``bayesian``).
    checks : DataFrame, optional
        From :func:`check_experiment`; failed checks become flags.

    Returns
    -------
    DataFrame
        One row per metric × variant (control rows carry their own value and no
        lift): ``metric``, ``role``, ``metric_kind``, ``mode``, ``variant``,
        ``n``, ``estimate``, ``ci_low``, ``ci_high``, ``abs_lift``,
        ``abs_ci_low``, ``abs_ci_high``, ``rel_lift``, ``rel_ci_low``,
        ``rel_ci_high``, ``p_value``, ``p_adjusted``, ``test``, ``correction``,
        ``n_family`` (the comparisons corrected together; 0 outside the family),
        ``chance_to_beat_control``, ``bayes_model``, ``is_testable``, ``flags``.

    Notes
    -----
    The family for the correction is every testable non-control arm × metric
    with role primary, secondary or guardrail; sensitivity rows (capped revenue)
    are reported uncorrected. Untestable comparisons (zero conversions, zero
    variance in either arm, missing sums) get no p-value and stay out of the
    family. All arithmetic runs on whole columns at once.
    """
    table = {c: values[c].to_numpy() for c in VALUE_COLUMNS}
    has_srm, small = False, set()
    if checks is not None:
        failed = checks[~checks["is_passed"].to_numpy(bool)]
        has_srm = bool(failed["check"].eq("sample_ratio").any())
        small = set(failed.loc[failed["check"].eq("min_sample"), "variant"])
    correction = definition.get("correction", "holm")
    use_bayes = bool(definition.get("bayesian", True))
    is_control = table["variant"] == "control"
    arm, lifts = compare_family(table, definition, has_srm=has_srm, small=small)
    testable = lifts.pop("is_testable")
    flags = lifts.pop("flags")

    # One frame: control rows keep their value, arm rows add the lifts.
    out = {
        c: table[c]
        for c in (
            "metric",
            "role",
            "metric_kind",
            "mode",
            "variant",
            "n",
            "estimate",
            "ci_low",
            "ci_high",
        )
    }
    for key, column in lifts.items():
        full = np.full(len(is_control), np.nan)
        full[arm] = column
        out[key] = full
    mode = table["mode"].astype(str)
    out["test"] = np.where(
        is_control, "", np.vectorize(TEST_NAMES.get, otypes=[object])(mode)
    )
    out["correction"] = correction
    models = np.vectorize(BAYES_MODELS.get, otypes=[object])(mode)
    out["bayes_model"] = np.where(is_control | (not use_bayes), "", models)
    out["is_testable"] = np.zeros(len(is_control), bool)
    out["is_testable"][arm] = testable
    out["flags"] = np.full(len(is_control), "", dtype=object)
    out["flags"][arm] = flags
    return pd.DataFrame(out)[RESULT_COLUMNS]


def compare_family(
    table: dict, definition: dict, *, has_srm: bool = False, small: set | None = None
) -> tuple[np.ndarray, dict]:
    """Run every comparison of an experiment on arrays: the statistical core.

    Parameters
    ----------
    table : dict
        :func:`describe_arrays` output (control first within each metric).
    definition : dict
        ``alpha``, ``correction``, ``bayesian``.
    has_srm : bool
        Whether the sample-ratio check failed (flags every comparison).
    small : set, optional
        Variants below the minimum sample.

    Returns
    -------
    tuple
        ``(arm_rows, columns)``: the positions of the non-control rows in
        `table`, and arrays over them: ``abs_lift``, ``abs_ci_low``,
        ``abs_ci_high``, ``se``, ``p_value``, ``rel_lift``, ``rel_ci_low``,
        ``rel_ci_high``, ``p_adjusted``, ``n_family``, ``chance_to_beat_control``,
        ``is_testable``, ``flags``.
    """
    alpha = float(definition["alpha"])
    is_control = table["variant"] == "control"
    starts = np.flatnonzero(is_control)
    # Each row's control is the first row of its metric's block.
    base = np.repeat(starts, np.diff(np.append(starts, len(is_control))))
    arm = np.flatnonzero(~is_control)
    control = base[arm]
    lifts = _lift_columns(table, arm, control, alpha)

    # Flags and testability.
    flags, untestable = _flags(table, arm, control, has_srm, small or set())
    testable = ~untestable & np.isfinite(lifts["p_value"])
    lifts["p_value"] = np.where(testable, lifts["p_value"], np.nan)
    in_family = testable & (table["role"][arm] != "sensitivity")
    correction = definition.get("correction", "holm")
    lifts["p_adjusted"] = np.full(len(arm), np.nan)
    lifts["p_adjusted"][in_family] = es.adjust_p(
        lifts["p_value"][in_family], method=correction
    )
    lifts["n_family"] = np.where(in_family, in_family.sum(), 0)
    chance = np.full(len(arm), np.nan)
    if definition.get("bayesian", True):
        chance = _chance(table, arm, control, lifts)
    lifts["chance_to_beat_control"] = np.where(testable, chance, np.nan)
    lifts["is_testable"], lifts["flags"] = testable, flags
    return arm, lifts


def _lift_columns(
    table: dict, arm: np.ndarray, control: np.ndarray, alpha: float
) -> dict:
    """Return absolute and relative lift columns for every comparison at once."""
    mode = table["mode"][arm]
    e1, v1, n1 = (table[c][arm].astype(float) for c in ("estimate", "variance", "n"))
    e0, v0, n0 = (
        table[c][control].astype(float) for c in ("estimate", "variance", "n")
    )
    # Means and ratios: Welch-Satterthwaite degrees of freedom, so a ratio over a
    # handful of campaigns gets a t interval, not an overconfident normal one.
    df = np.where(mode != "proportion", es.welch_df(v0, n0, v1, n1), np.inf)
    result = es.compare_estimates(e0, v0, e1, v1, alpha=alpha, df=df)
    is_prop = mode == "proportion"
    if is_prop.any():
        k1, k0 = table["k"][arm].astype(float), table["k"][control].astype(float)
        props = es.compare_proportions(
            k0[is_prop], n0[is_prop], k1[is_prop], n1[is_prop], alpha=alpha
        )
        for key, column in props.items():
            result[key] = result[key].copy()
            result[key][is_prop] = column
    result.update(es.relative_lift(e0, v0, e1, v1, alpha=alpha, df=df))
    result.pop("rel_se_log")
    return result


def _flags(table: dict, arm, control, has_srm: bool, small: set) -> tuple:
    """Return ``;``-joined flags per comparison and whether each is untestable."""
    variants = table["variant"][arm]
    marks = {
        "srm": np.full(len(arm), has_srm),
        "zero_conversions": table["has_zero_conversions"][arm]
        | table["has_zero_conversions"][control],
        # One flat arm is enough: Welch's t (or the delta method) would take its
        # value as exact and run overconfident, e.g. a control that never bought.
        "zero_variance": table["is_zero_variance"][arm]
        | table["is_zero_variance"][control],
        "below_min_sample": np.isin(variants, list(small)) | ("control" in small),
        "capped": table["role"][arm] == "sensitivity",
        "not_testable": ~(table["is_available"][arm] & table["is_available"][control]),
    }
    names = list(marks)
    stacked = np.column_stack([marks[name] for name in names])
    flags = [
        ";".join(n for n, on in zip(names, row, strict=True) if on) for row in stacked
    ]
    untestable = (
        marks["zero_conversions"] | marks["zero_variance"] | marks["not_testable"]
    )
    return np.array(flags, dtype=object), untestable


def _chance(table: dict, arm, control, lifts: dict) -> np.ndarray:
    """Return the chance to beat control: beta-binomial for proportions, normal
    approximation for means and ratios. Beating control means doing better in
    the metric's wanted direction, so for a lower-is-better metric (unsubscribe
    rate) it is the chance of a lower value."""
    chance = es.chance_normal(lifts["abs_lift"], lifts["se"])
    is_prop = table["mode"][arm] == "proportion"
    if is_prop.any():
        k, n = table["k"].astype(float), table["n"].astype(float)
        chance[is_prop] = es.chance_beta_binomial(
            k[control][is_prop], n[control][is_prop], k[arm][is_prop], n[arm][is_prop]
        )
    higher = table["higher_is_better"][arm].astype(bool)
    return np.where(higher, chance, 1 - chance)


def bootstrap_lifts(
    results: pd.DataFrame, units: pd.DataFrame, definition: dict
) -> pd.DataFrame:
    """Return `results` with a percentile bootstrap interval of the absolute lift
    of each mean metric, resampling units within each arm.

    Parameters
    ----------
    results : DataFrame
        From :func:`compare_arms`.
    units : DataFrame
        Per-unit values from :func:`read_results` (``variant`` plus value
        columns).
    definition : dict
        ``bootstrap_resamples`` and ``seed``.

    Returns
    -------
    DataFrame
        `results` plus ``boot_ci_low`` and ``boot_ci_high`` (nan elsewhere).

    Notes
    -----
    Percentile bootstrap with independent resampling in each arm
    (:func:`helpers.experiment_stats.bootstrap_mean_difference`); a check on
    Welch's normal-theory interval when revenue is heavy-tailed.
    """
    labels = units["variant"]
    columns = {"revenue_per_visitor_capped": "revenue_capped"}
    low, high = np.full(len(results), np.nan), np.full(len(results), np.nan)
    alpha = float(definition["alpha"])
    for i, row in enumerate(results.itertuples(index=False)):
        spec = definition["metrics"].get(row.metric)
        column = columns.get(row.metric) or (spec[1] if spec else None)
        if row.variant == "control" or row.mode != "mean" or column not in units:
            continue
        treated = units.loc[labels.eq(row.variant).to_numpy(), column].to_numpy(float)
        control = units.loc[labels.eq("control").to_numpy(), column].to_numpy(float)
        low[i], high[i] = es.bootstrap_mean_difference(
            treated,
            control,
            resamples=int(definition.get("bootstrap_resamples", 1000)),
            alpha=alpha,
            seed=int(definition.get("seed", 2026)),
        )
    log.info("bootstrapped mean metrics from %s units", f"{len(units):,}")
    return results.assign(boot_ci_low=low, boot_ci_high=high)


# ---------------------------------------------------------------------------
# Verdicts, quote trace, forest plot
# ---------------------------------------------------------------------------


def write_verdicts(results: pd.DataFrame, definition: dict) -> pd.Series:
    """Return one plain-language sentence per row of `results`.

    A difference is called significant only together with its interval, the
    correction used and the number of comparisons corrected together; a failed
    check leads the sentence. Metrics are named as readers see them
    (:func:`helpers.experiment_tables.format_metric`) and every interval with the
    level it was computed at, ``1 - alpha`` (``90%`` for alpha 0.10).
    """
    from helpers.experiment_tables import format_metric

    alpha = float(definition["alpha"])
    better = {m: spec[3] for m, spec in definition["metrics"].items()}
    sentences = []
    for row in results.itertuples(index=False):
        if row.variant == "control":
            sentences.append("")
            continue
        head = (
            f"{row.variant} vs control on {format_metric(row.metric, in_sentence=True)}"
        )
        flags = set(str(row.flags).split(";")) - {""}
        lead = (
            "Sample-ratio mismatch: the arms are not the planned sizes, so do not "
            "trust this result until the split is explained. "
            if "srm" in flags
            else ""
        )
        if not row.is_testable:
            why = _why_untestable(flags, row.mode)
            sentences.append(lead + f"{head}: not testable, {why}.")
            continue
        text = _verdict_text(row, head, alpha, better.get(row.metric, True))
        if "below_min_sample" in flags:
            text += "; the arms are below the planned sample"
        if "capped" in flags:
            text += " (revenue capped per unit: compare with the uncapped row)"
        sentences.append(lead + text + ".")
    return pd.Series(sentences, index=results.index, dtype=object)


def _verdict_text(row, head: str, alpha: float, higher_is_better: bool) -> str:
    """Return the verdict's core: the lift with its interval, then what the
    interval and the (adjusted) p-value say, each described as it is."""
    from helpers.experiment_tables import format_level

    lift = _format_lift(row)
    in_family = row.role != "sensitivity"
    p_value = row.p_adjusted if in_family else row.p_value
    adjusted = ("adjusted p " if in_family else "uncorrected p ") + format_p_value(
        p_value
    )
    corrected = _correction_words(row) if in_family else "uncorrected"
    level = format_level(alpha)

    # The intervals shown are unadjusted; the p-value may be adjusted, a pooled
    # z-test can disagree with Newcombe's interval at the edge, and the relative
    # interval (log scale, asymmetric) can clear zero where the absolute one does
    # not: say which holds, and call nothing significant unless both clear zero.
    clear_abs, clear_rel = intervals_clear_of_zero(row._asdict())
    excludes = clear_abs and clear_rel
    stated = f"{adjusted} {corrected}" if in_family else adjusted
    if clear_abs != clear_rel:
        cleared, other = (
            ("relative", "absolute") if clear_rel else ("absolute", "relative")
        )
        return (
            f"{head}: {lift}; the {level} {cleared} interval lies clear of zero but "
            f"the {other} one does not ({stated}), so the evidence is borderline"
        )
    if p_value < alpha and excludes:
        good = (row.abs_lift > 0) == higher_is_better
        return (
            f"{head}: {lift}; the {level} interval excludes no change "
            f"and the difference is significant at alpha {alpha:g} "
            f"{corrected} ({adjusted}), "
            f"{'in the wanted direction' if good else 'in the unwanted direction'}"
        )
    if p_value < alpha:
        return (
            f"{head}: {lift}; the p-value is below alpha {alpha:g} {corrected} "
            f"({adjusted}) but the {level} interval still includes no change, "
            "so the evidence is borderline"
        )
    if excludes:
        return (
            f"{head}: {lift}; the unadjusted {level} interval excludes no change, "
            f"but the difference is not significant at alpha {alpha:g} {corrected} "
            f"({adjusted}), so treat it as unconfirmed"
        )
    return (
        f"{head}: {lift}; the {level} interval includes no change ({stated}), "
        "so these data cannot tell a real difference from noise"
    )


def _correction_words(row) -> str:
    """Return how the p-value was corrected, naming the family's size."""
    method = CORRECTION_NAMES.get(row.correction, row.correction)
    size = getattr(row, "n_family", np.nan)
    if not np.isfinite(size):
        return f"after {method} correction"
    if size <= 1:
        return "with no other comparison to correct for"
    return f"after {method} correction across its {size:.0f} tested comparisons"


def _why_untestable(flags: set, mode: str) -> str:
    if "zero_conversions" in flags and mode != "proportion":
        return "an arm has no conversions, so the ratio is undefined there"
    if "zero_conversions" in flags:
        return "an arm has no conversions, so only an exact upper bound can be given"
    if "zero_variance" in flags:
        return (
            "every unit has the same value in at least one arm, so that arm's value "
            "would look exact and a test would be overconfident"
        )
    if "not_testable" in flags:
        return "the results lack the sums this metric needs"
    return "there is no variation to test (every unit has the same outcome)"


def intervals_clear_of_zero(row) -> tuple[bool, bool]:
    """Return whether a result's absolute and relative intervals each lie clear
    of zero.

    Parameters
    ----------
    row : mapping
        A results row: ``abs_ci_low``, ``abs_ci_high``, ``rel_lift``,
        ``rel_ci_low``, ``rel_ci_high``.

    Returns
    -------
    tuple of bool
        ``(absolute, relative)``. Without a relative lift (a control of zero)
        the relative answer is the absolute one. The two can differ at the edge,
        since the relative interval is built on the log scale.
    """
    clear_abs = bool(row["abs_ci_low"] > 0 or row["abs_ci_high"] < 0)
    if not np.isfinite(row["rel_lift"]):
        return clear_abs, clear_abs
    return clear_abs, bool(row["rel_ci_low"] > 0 or row["rel_ci_high"] < 0)


def _format_lift(row) -> str:
    from helpers.experiment_tables import format_difference

    relative = (
        f"{row.rel_lift:+.1%} [{row.rel_ci_low:+.1%}, {row.rel_ci_high:+.1%}] relative"
    )
    absolute = format_difference(
        row.abs_lift, row.abs_ci_low, row.abs_ci_high, row.mode
    )
    if np.isnan(row.rel_lift):
        return f"{absolute} absolute"
    return f"{relative}, {absolute} absolute"


def format_p_value(p_value: float) -> str:
    """Return a p-value to two figures, ``<0.001``, or ``–`` when untested."""
    from helpers.tables import format_p

    return format_p(float(p_value))


def trace_quotes(
    results: pd.DataFrame, definition: dict, *, quote_bank: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Return the quote -> variant -> lift trace on the primary metric.

    Parameters
    ----------
    results : DataFrame
        From :func:`compare_arms`.
    definition : dict
        Its variants' ``quote_ids``.
    quote_bank : DataFrame, optional
        ``quote-bank_quote.parquet`` (``quote_id``, ``text``); without it the
        quote column is left empty and only ids are shown.

    Returns
    -------
    DataFrame
        ``quote_id``, ``quote``, ``variant``, ``variant_name``, ``metric``,
        ``rel_lift``, ``rel_ci_low``, ``rel_ci_high``, ``p_adjusted``.
    """
    primary = results[results["metric"].eq(definition["primary_metric"])]
    lifts = primary.set_index("variant")
    texts = (
        {}
        if quote_bank is None
        else dict(zip(quote_bank["quote_id"], quote_bank["text"], strict=False))
    )
    rows = []
    for variant in definition["variants"]:
        for quote_id in variant.get("quote_ids") or []:
            lift = lifts.loc[variant["id"]] if variant["id"] in lifts.index else None
            rows.append(
                {
                    "quote_id": quote_id,
                    "quote": texts.get(quote_id, ""),
                    "variant": variant["id"],
                    "variant_name": variant.get("name", ""),
                    "metric": definition["primary_metric"],
                    **{
                        c: (np.nan if lift is None else lift[c])
                        for c in ("rel_lift", "rel_ci_low", "rel_ci_high", "p_adjusted")
                    },
                }
            )
    trace = pd.DataFrame(
        rows,
        columns=[
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
    )
    missing = sorted(set(trace["quote_id"]) - set(texts)) if texts else []
    if missing:
        log.warning("quote ids not in the quote bank: %s", ", ".join(missing))
    return trace


def plot_lifts(results: pd.DataFrame, definitions):
    """Draw a forest plot of relative lifts with their intervals.

    Parameters
    ----------
    results : DataFrame
        From :func:`compare_arms` (with ``experiment`` when several are shown).
    definitions : dict or list of dict
        The experiments' definitions; each arm keeps the colour its position in
        its own definition gives it (control is grey: the zero line).

    Returns
    -------
    matplotlib.figure.Figure
        One row per experiment × metric, a point and interval per arm.
    """
    from matplotlib.ticker import PercentFormatter

    from helpers.experiment_tables import format_levels, format_metric
    from helpers.figures import CONTROL_GREY, arm_colours, new_figure

    definitions = [definitions] if isinstance(definitions, dict) else list(definitions)
    shown = results[results["variant"].ne("control") & results["rel_lift"].notna()]
    if "experiment" not in shown:
        shown = shown.assign(experiment=definitions[0]["name"])
    rows = list(dict.fromkeys(zip(shown["experiment"], shown["metric"], strict=True)))
    several = len(definitions) > 1
    figure, axes = new_figure(figsize=(6.4, 0.8 + 0.5 * max(len(rows), 1)))
    for definition in definitions:
        colours = arm_colours(definition["variant_ids"])
        arms = [v for v in definition["variant_ids"] if v != "control"]
        offsets = np.linspace(-0.2, 0.2, len(arms)) if len(arms) > 1 else [0.0]
        mine = shown[shown["experiment"].eq(definition["name"])]
        for offset, arm in zip(offsets, arms, strict=True):
            part = mine[mine["variant"].eq(arm)]
            if part.empty:
                continue
            keys = zip(part["experiment"], part["metric"], strict=True)
            y = np.array([rows.index(key) for key in keys]) + offset
            lift = part["rel_lift"].to_numpy()
            errors = [lift - part["rel_ci_low"], part["rel_ci_high"] - lift]
            label = f"{definition['name']}: {arm}" if several else arm
            axes.errorbar(
                lift,
                y,
                xerr=errors,
                fmt="o",
                color=colours[arm],
                capsize=3,
                label=label,
            )
    axes.axvline(0, color=CONTROL_GREY, linewidth=1.2, label="control (no change)")
    labels = [(f"{e}: " if several else "") + format_metric(m) for e, m in rows]
    axes.set_yticks(range(len(rows)), labels)
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    # One level when the experiments share alpha, else each with its experiments.
    axes.set_xlabel(
        f"relative lift vs control ({format_levels(definitions)} delta-method interval)"
    )
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------
# One experiment, and the month's step
# ---------------------------------------------------------------------------


def analyse_experiment(
    definition: dict, *, quote_bank: pd.DataFrame | None = None
) -> dict:
    """Plan, read, check, test and trace one experiment.

    Parameters
    ----------
    definition : dict
        From :func:`load_experiment`.
    quote_bank : DataFrame, optional
        The month's quote bank, for quote texts in the trace.

    Returns
    -------
    dict
        ``plan``, ``arms``, ``checks``, ``results`` (with ``experiment`` and
        ``verdict``; bootstrap columns when row-level data were small enough),
        ``trace`` (DataFrames) and ``info`` (dict).
    """
    if definition.get("is_planned"):
        plan = plan_experiment(definition)
        return _planned_analysis(plan, definition, quote_bank=quote_bank)

    # The plan uses the definition only; it is computed after the read so that
    # DuckDB's working memory is released before statsmodels is loaded, which
    # keeps the step's peak memory lower.
    arms, units, info = read_results(definition)
    plan = plan_experiment(definition)
    values = describe_arms(arms, definition)
    checks = check_experiment(arms, values, definition, plan=plan, info=info)
    results = compare_arms(values, definition, checks=checks)
    if units is not None and results["mode"].eq("mean").any():
        results = bootstrap_lifts(results, units, definition)
    else:
        results = results.assign(boot_ci_low=np.nan, boot_ci_high=np.nan)
    results = results.assign(
        experiment=definition["name"],
        test=_name_cap(results, info, definition),
        verdict=write_verdicts(results, definition),
    )
    trace = trace_quotes(results, definition, quote_bank=quote_bank)
    return {
        "plan": plan,
        "arms": arms,
        "checks": checks,
        "results": results,
        "trace": trace,
        "info": info,
    }


def _name_cap(results: pd.DataFrame, info: dict, definition: dict) -> pd.Series:
    """Return the ``test`` column with the cap named on the capped rows."""
    cap = info.get("revenue_cap")
    capped = results["role"].eq("sensitivity") & results["variant"].ne("control")
    if cap is None or not capped.any():
        return results["test"]
    quantile = float(definition["capping"]["revenue"])
    words = (
        f" on revenue capped at {cap:,.2f} per unit (the {quantile:.0%} quantile "
        "of units with revenue)"
    )
    return results["test"].where(~capped, results["test"] + words)


def _planned_analysis(plan: pd.DataFrame, definition: dict, *, quote_bank) -> dict:
    """Return :func:`analyse_experiment`'s parts for an experiment whose results
    are not in yet: the plan, the quote trace without lifts, empty tables typed
    like full ones (so they stack with other experiments' tables)."""
    text = {"metric", "role", "metric_kind", "mode", "variant", "test"}
    text |= {"correction", "bayes_model", "flags", "experiment", "verdict"}
    columns = [*RESULT_COLUMNS, "boot_ci_low", "boot_ci_high", "experiment", "verdict"]
    results = _empty_table(columns, text=text, flags={"is_testable"})
    checks = _empty_table(
        CHECK_COLUMNS,
        text={"check", "metric", "variant", "message"},
        flags={"is_passed"},
    )
    log.info("experiment %s is planned: no results yet, plan only", definition["name"])
    return {
        "plan": plan,
        "arms": _empty_table(["variant", "n"], text={"variant"}, flags=set()),
        "checks": checks,
        "results": results,
        "trace": trace_quotes(results, definition, quote_bank=quote_bank),
        "info": {"is_planned": True},
    }


def _empty_table(columns: list[str], *, text: set, flags: set) -> pd.DataFrame:
    """Return an empty frame: `text` columns as objects, `flags` as booleans,
    the rest as floats."""
    return pd.DataFrame(
        {
            c: pd.Series(dtype=object if c in text else bool if c in flags else float)
            for c in columns
        }
    )


def summarise_plan(plan: pd.DataFrame, definition: dict) -> dict:
    """Return the summary entry of a planned experiment: what the primary metric
    needs (units per arm, days) for the effect it is meant to detect."""
    primary = plan[plan["metric"].eq(definition["primary_metric"])]
    first = primary.iloc[0] if len(primary) else None
    return {
        "name": definition["name"],
        "primary_metric": definition["primary_metric"],
        **{
            key: None if first is None else _number(first[key])
            for key in ("mde_rel", "n_per_arm", "n_total", "days", "planned_days")
        },
    }


def summarise_experiment(analysis: dict, definition: dict) -> list[dict]:
    """Return the summary entries (one per non-control arm, primary metric)."""
    if analysis["info"].get("is_planned"):
        return []
    results = analysis["results"]
    srm = analysis["checks"].query("check == 'sample_ratio'").iloc[0]
    primary = results[
        results["metric"].eq(definition["primary_metric"])
        & results["variant"].ne("control")
    ]
    entries = []
    for row in primary.itertuples(index=False):
        entries.append(
            {
                "name": definition["name"],
                "variant": row.variant,
                "primary_metric": row.metric,
                "verdict": row.verdict,
                "lift": _number(row.rel_lift),
                "ci_low": _number(row.rel_ci_low),
                "ci_high": _number(row.rel_ci_high),
                "p_value": _number(row.p_value),
                "p_adjusted": _number(row.p_adjusted),
                "has_srm": not bool(srm.is_passed),
                "srm_p_value": _number(srm.value),
                "n": int(analysis["arms"]["n"].sum()),
                "alpha": float(definition["alpha"]),
            }
        )
    return entries


def _number(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def load_listed_experiment(study, name: str) -> dict:
    """Return the definition of the experiment a month lists as `name`.

    Parameters
    ----------
    study : helpers.study.Study
    name : str
        The folder under ``data/raw/<study>/experiments/``.

    Returns
    -------
    dict
        From :func:`load_experiment`, with the study's ``experiments:`` settings
        as defaults.

    Raises
    ------
    HeardInputError
        From :func:`load_experiment`, or when the file's ``name:`` is not its
        folder's name (outputs are named by the folder, results by ``name:``,
        and the two would not match up).
    """
    path = study.raw("experiments", name, "experiment.yml")
    definition = load_experiment(path, defaults=study.config.get("experiments", {}))
    if definition["name"] != name:
        raise HeardInputError(
            path,
            column="name",
            expected=f"the folder's name, {name}",
            found=definition["name"],
            fix=f"write `name: {name}` or rename the folder and the month's entry",
        )
    return definition


def run_experiments_step(study, month: str) -> dict:
    """Analyse the month's experiments and write their processed files.

    Parameters
    ----------
    study : helpers.study.Study
        The study; ``months.<month>.experiments`` names the experiments, each a
        folder under ``data/raw/<study>/experiments/``.
    month : str
        ``YYYY-MM``.

    Returns
    -------
    dict
        The contents of ``summary_experiments.json`` (``experiments``: one entry
        per analysed arm; ``planned``: one per experiment without results yet,
        from :func:`summarise_plan`) plus ``files``: the paths written.

    Raises
    ------
    HeardInputError
        From any experiment's definition or results.

    Notes
    -----
    Writes, per experiment, ``experiment-results_<name>.parquet``,
    ``experiment-arms_<name>.parquet``, ``experiment-checks_<name>.parquet``,
    ``experiment-plan_<name>.parquet``, ``experiment-trace_<name>.parquet``, then
    ``summary_experiments.json``, each atomically.
    """
    from helpers.files import save_json, save_parquet

    names = study.month_config(month).get("experiments") or []
    bank_path = study.processed(month, "quote-bank_quote.parquet")
    quote_bank = pd.read_parquet(bank_path) if bank_path.exists() else None
    entries, planned, files = [], [], []
    for name in names:
        definition = load_listed_experiment(study, name)
        analysis = analyse_experiment(definition, quote_bank=quote_bank)
        for part in ("results", "arms", "checks", "plan", "trace"):
            target = study.processed(month, f"experiment-{part}_{name}.parquet")
            files.append(save_parquet(analysis[part], target))
        entries.extend(summarise_experiment(analysis, definition))
        if definition["is_planned"]:
            planned.append(summarise_plan(analysis["plan"], definition))
    summary = {"experiments": entries, "planned": planned}
    files.append(save_json(summary, study.processed(month, "summary_experiments.json")))
    log.info("analysed %s experiments for %s", len(names), month)
    return {**summary, "files": [str(f) for f in files]}

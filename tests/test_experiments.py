"""Tests for helpers.experiments: definitions, readers, checks, tests, outputs.

Real data: the Hillstrom e-mail experiment (64,000 customers, published arm means)
read as row-level data, and the Kaggle Facebook ads export with campaigns as units.
Every expected value is computed independently in the test (pandas, scipy,
statsmodels, gbstats) or is a published number.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from public_data import HILLSTROM_SPLIT, HILLSTROM_VARIANTS, hillstrom_results
from scipy import stats

from helpers import experiments as ex
from helpers.errors import HeardInputError
from helpers.study import load_defaults, load_study

FIXTURES = Path(__file__).parent / "fixtures" / "experiments"
SHARED = Path(__file__).parents[2] / "shared" / "data"
HILLSTROM = SHARED / "hillstrom-email" / "hillstrom_data.csv"
FB_ADS = SHARED / "fb-ads-conversion" / "KAG_conversion_data.csv"
SETTINGS = load_defaults()["experiments"]


def write_experiment(
    folder: Path,
    definition: dict,
    results: pd.DataFrame | None,
    *,
    file: str = "results.csv",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if results is not None:
        results.to_csv(folder / file, index=False)
    path = folder / "experiment.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return path


def two_arm_definition(name="test", **changes) -> dict:
    definition = {
        "name": name,
        "hypothesis": "The new copy lifts orders.",
        "dates": {"start": "2026-11-01", "end": "2026-11-14"},
        "variants": [
            {"id": "control", "name": "Old", "copy": "old", "quote_ids": []},
            {
                "id": "new-copy",
                "name": "New",
                "copy": "new",
                "quote_ids": ["q-2026-11-07-003"],
            },
        ],
        "split": {"control": 0.5, "new-copy": 0.5},
        "primary_metric": "revenue_per_visitor",
        "secondary_metrics": ["conversion_rate", "aov"],
        "results": {"file": "results.csv", "kind": "rows"},
    }
    definition.update(changes)
    return definition


def analyse(path: Path) -> dict:
    return ex.analyse_experiment(ex.load_experiment(path, defaults=SETTINGS))


def row(results: pd.DataFrame, metric: str, variant: str) -> pd.Series:
    found = results[results["metric"].eq(metric) & results["variant"].eq(variant)]
    assert len(found) == 1, (metric, variant)
    return found.iloc[0]


# ---------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------


def test_one_arm_is_a_clear_error(tmp_path):
    definition = two_arm_definition()
    definition["variants"] = definition["variants"][:1]
    definition["split"] = {"control": 1.0}
    path = write_experiment(tmp_path / "one", definition, None)
    with pytest.raises(HeardInputError, match="at least two variants"):
        ex.load_experiment(path)


def test_results_with_only_the_control_arm_are_refused(tmp_path):
    rows = pd.DataFrame({"variant": ["control"] * 4, "revenue": [0, 1, 2, 3.0]})
    path = write_experiment(tmp_path / "x", two_arm_definition(), rows)
    with pytest.raises(HeardInputError, match="no rows for \\['new-copy'\\]"):
        analyse(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": {"control": 0.5, "new-copy": 0.6}}, "sum to 1"),
        ({"primary_metric": "happiness"}, "built-in metric"),
        ({"variants": [{"id": "control"}, {"id": "New Copy"}]}, "lowercase"),
        ({"dates": {"start": "2026-11-14", "end": "2026-11-01"}}, "on or after"),
        ({"dates": {"start": "14/11/2026", "end": "2026-11-20"}}, "YYYY-MM-DD"),
        ({"alpha": 5}, "between 0 and 1"),
        ({"power": "80%"}, "between 0 and 1"),
        ({"mde": -0.1}, "above 0"),
        ({"mde_scale": "percent"}, "relative | absolute"),
    ],
)
def test_bad_definitions_name_the_key(tmp_path, change, message):
    path = write_experiment(tmp_path / "bad", two_arm_definition(**change), None)
    with pytest.raises(HeardInputError, match=message):
        ex.load_experiment(path)


def test_quote_ids_must_follow_the_quote_bank_pattern(tmp_path):
    definition = two_arm_definition()
    definition["variants"][1]["quote_ids"] = ["quote 7"]
    path = write_experiment(tmp_path / "q", definition, None)
    with pytest.raises(HeardInputError, match="q-2026-11-07-003"):
        ex.load_experiment(path)


def test_an_arm_without_quote_ids_is_warned_about(tmp_path, caplog):
    definition = two_arm_definition()
    definition["variants"][1]["quote_ids"] = []
    with caplog.at_level("WARNING", logger="helpers.experiments"):
        ex.load_experiment(write_experiment(tmp_path / "untraced", definition, None))
    assert "arm new-copy names no quote_ids" in caplog.text


def test_a_buyers_only_primary_metric_is_warned_about(tmp_path, caplog):
    definition = two_arm_definition(primary_metric="aov", secondary_metrics=[])
    with caplog.at_level("WARNING", logger="helpers.experiments"):
        ex.load_experiment(write_experiment(tmp_path / "aov", definition, None))
    assert "counts buyers only" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="helpers.experiments"):
        ex.load_experiment(
            write_experiment(tmp_path / "rpv", two_arm_definition(), None)
        )
    assert "counts buyers only" not in caplog.text


def test_a_custom_mean_metric_such_as_ltv_is_tested_with_welch(tmp_path):
    rng = np.random.default_rng(4)
    ltv = np.concatenate([rng.gamma(2, 40, 300), rng.gamma(2, 46, 320)])
    rows = pd.DataFrame(
        {"variant": ["control"] * 300 + ["new-copy"] * 320, "ltv_90d": ltv}
    )
    definition = two_arm_definition(
        primary_metric="ltv",
        secondary_metrics=[],
        metrics={"ltv": {"kind": "mean", "numerator": "ltv_90d"}},
    )
    analysis = analyse(write_experiment(tmp_path / "ltv", definition, rows))
    reference = stats.ttest_ind(ltv[300:], ltv[:300], equal_var=False)
    found = row(analysis["results"], "ltv", "new-copy")
    assert found["p_value"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert found["abs_ci_low"] == pytest.approx(
        reference.confidence_interval().low, rel=1e-9
    )
    assert found["test"].startswith("Welch's t")


# ---------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------


def test_plan_matches_textbook_sample_size_formulas():
    definition = ex.load_experiment(
        FIXTURES / "arms-basic" / "experiment.yml", defaults=SETTINGS
    )
    plan = ex.plan_experiment(definition).set_index("metric")
    # One arm × four metrics (primary, two secondary, one guardrail) are corrected
    # together, so each is planned at alpha 0.05 / 4 (Holm's first threshold).
    assert plan["alpha"].eq(0.05 / 4).all()
    z = stats.norm.ppf(1 - 0.05 / 8) + stats.norm.ppf(0.8)

    # Proportion: var(2 asin sqrt(p)) = 1/n per arm, so n = 2 (z / h)**2 with
    # Cohen's h for 3.0% -> 3.3%; the classical unpooled formula agrees closely.
    h = 2 * np.arcsin(np.sqrt(0.033)) - 2 * np.arcsin(np.sqrt(0.03))
    assert plan.loc["conversion_rate", "n_per_arm"] == np.ceil(2 * (z / h) ** 2)
    classical = z**2 * (0.03 * 0.97 + 0.033 * 0.967) / 0.003**2
    assert plan.loc["conversion_rate", "n_per_arm"] == pytest.approx(
        classical, rel=0.005
    )

    # Mean: n = 2 (z sd / mde)**2, plus the t correction (under 0.1 % here).
    normal_n = 2 * (z * 19.0 / 0.21) ** 2
    assert plan.loc["revenue_per_visitor", "n_per_arm"] == pytest.approx(
        normal_n, rel=1e-3
    )
    # Duration at 4,000 units a day for both arms.
    total = plan.loc["revenue_per_visitor", "n_total"]
    assert plan.loc["revenue_per_visitor", "days"] == np.ceil(total / 4000)

    # The planned 14 days give 28,000 per arm: mde = z sd sqrt(2 / n) / mean.
    detectable = z * 19.0 * np.sqrt(2 / 28_000) / 2.10
    assert plan.loc["revenue_per_visitor", "planned_days"] == 14
    assert plan.loc["revenue_per_visitor", "mde_rel_at_planned_days"] == pytest.approx(
        detectable, rel=1e-3
    )


# ---------------------------------------------------------------------------
# Hillstrom: real data through the row-level path
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hillstrom(tmp_path_factory):
    if not HILLSTROM.exists():
        pytest.skip("shared Hillstrom data not present")
    definition = {
        "name": "hillstrom",
        "hypothesis": "A merchandise e-mail lifts spend per customer.",
        "dates": {"start": "2008-03-01", "end": "2008-03-14"},
        "variants": HILLSTROM_VARIANTS,
        "split": HILLSTROM_SPLIT,
        "primary_metric": "revenue_per_visitor",
        "secondary_metrics": ["conversion_rate", "visit_rate", "aov"],
        "capping": {"revenue": 0.9},
        "bootstrap_resamples": 400,
        "results": hillstrom_results(str(HILLSTROM)),
    }
    path = write_experiment(tmp_path_factory.mktemp("hill"), definition, None)
    return analyse(path), pd.read_csv(HILLSTROM)


@pytest.mark.parametrize(
    ("variant", "n", "visit", "conversion", "spend"),
    [
        ("mens", 21307, 0.18276, 0.01253, 1.42262),
        ("womens", 21387, 0.15140, 0.00884, 1.07720),
        ("control", 21306, 0.10617, 0.00573, 0.65279),
    ],
)
def test_hillstrom_arm_means_match_the_published_values(
    hillstrom, variant, n, visit, conversion, spend
):
    results = hillstrom[0]["results"]
    assert row(results, "visit_rate", variant)["n"] == n
    assert row(results, "visit_rate", variant)["estimate"] == pytest.approx(
        visit, abs=5e-6
    )
    assert row(results, "conversion_rate", variant)["estimate"] == pytest.approx(
        conversion, abs=5e-6
    )
    assert row(results, "revenue_per_visitor", variant)["estimate"] == pytest.approx(
        spend, abs=5e-6
    )


def test_hillstrom_welch_matches_scipy_on_raw_rows(hillstrom):
    analysis, raw = hillstrom
    for variant, label in [("mens", "Mens E-Mail"), ("womens", "Womens E-Mail")]:
        reference = stats.ttest_ind(
            raw.loc[raw.segment.eq(label), "spend"],
            raw.loc[raw.segment.eq("No E-Mail"), "spend"],
            equal_var=False,
        )
        low, high = reference.confidence_interval()
        found = row(analysis["results"], "revenue_per_visitor", variant)
        assert found["p_value"] == pytest.approx(reference.pvalue, rel=1e-6)
        assert found["abs_ci_low"] == pytest.approx(low, rel=1e-6)
        assert found["abs_ci_high"] == pytest.approx(high, rel=1e-6)
        # The bootstrap interval sits near Welch's (64,000 customers).
        assert found["boot_ci_low"] == pytest.approx(low, abs=0.1)


def gbstats_ratio(gb_statistics, numerator: pd.Series, denominator: pd.Series):
    """Return gbstats' RatioStatistic of one arm's per-unit numerator and
    denominator, built from their sums as our own sufficient statistics are."""
    return gb_statistics.RatioStatistic(
        n=len(numerator),
        m_statistic=gb_statistics.SampleMeanStatistic(
            n=len(numerator), sum=numerator.sum(), sum_squares=(numerator**2).sum()
        ),
        d_statistic=gb_statistics.SampleMeanStatistic(
            n=len(denominator),
            sum=denominator.sum(),
            sum_squares=(denominator**2).sum(),
        ),
        m_d_sum_of_products=(numerator * denominator).sum(),
    )


def test_hillstrom_aov_matches_gbstats_ratio_with_customer_as_unit(hillstrom):
    gb_statistics = pytest.importorskip("gbstats.models.statistics")
    gb_tests = pytest.importorskip("gbstats.frequentist.tests")
    analysis, raw = hillstrom

    def ratio_statistic(label):
        arm = raw[raw.segment.eq(label)]
        return gbstats_ratio(gb_statistics, arm["spend"], arm["conversion"])

    control = ratio_statistic("No E-Mail")
    mens = ratio_statistic("Mens E-Mail")
    config = gb_tests.FrequentistConfig(difference_type="absolute")
    theirs = gb_tests.TwoSidedTTest(control, mens, config).compute_result()
    found = row(analysis["results"], "aov", "mens")
    assert found["estimate"] == pytest.approx(mens.mean, rel=1e-9)
    assert found["abs_lift"] == pytest.approx(theirs.expected, rel=1e-9)
    # Both use Welch's t on the delta-method variances (about 340 df here).
    assert found["abs_ci_low"] == pytest.approx(theirs.ci[0], rel=1e-9)
    assert found["abs_ci_high"] == pytest.approx(theirs.ci[1], rel=1e-9)
    assert found["p_value"] == pytest.approx(theirs.p_value, rel=1e-9)


def test_hillstrom_holm_family_is_arms_times_metrics(hillstrom):
    from statsmodels.stats.multitest import multipletests

    results = hillstrom[0]["results"]
    family = results[
        results["variant"].ne("control") & results["role"].ne("sensitivity")
    ]
    assert len(family) == 2 * 4
    expected = multipletests(family["p_value"], method="holm")[1]
    np.testing.assert_allclose(family["p_adjusted"], expected, rtol=1e-12)
    # The family is stated: in its own column and in every verdict.
    assert family["n_family"].eq(8).all()
    assert family["verdict"].str.contains("Holm correction across its 8 tested").all()
    capped = results[
        results["role"].eq("sensitivity") & results["variant"].ne("control")
    ]
    assert capped["n_family"].eq(0).all()
    assert capped["verdict"].str.contains("uncorrected").all()


def test_hillstrom_capping_shows_its_effect_on_the_estimate(hillstrom):
    analysis, raw = hillstrom
    buyers = raw.loc[raw.spend.gt(0), "spend"]
    cap = buyers.quantile(0.9)
    control = raw.loc[raw.segment.eq("No E-Mail"), "spend"].clip(upper=cap)
    found = row(analysis["results"], "revenue_per_visitor_capped", "control")
    assert analysis["info"]["revenue_cap"] == pytest.approx(cap)
    assert found["estimate"] == pytest.approx(control.mean(), rel=1e-9)
    assert (
        found["estimate"]
        < row(analysis["results"], "revenue_per_visitor", "control")["estimate"]
    )
    assert (
        "capped"
        in row(analysis["results"], "revenue_per_visitor_capped", "mens")["flags"]
    )
    assert (
        f"capped at {cap:,.2f} per unit"
        in (row(analysis["results"], "revenue_per_visitor_capped", "mens")["test"])
    )


def test_hillstrom_capping_effect_table_shows_both_estimates_and_lifts(hillstrom):
    from helpers.experiment_tables import format_capping

    analysis, raw = hillstrom
    cap = raw.loc[raw.spend.gt(0), "spend"].quantile(0.9)
    table = format_capping(analysis["results"]).set_index("variant")
    mens = raw.loc[raw.segment.eq("Mens E-Mail"), "spend"]
    control = raw.loc[raw.segment.eq("No E-Mail"), "spend"]
    assert table.loc["mens", "uncapped"] == f"{mens.mean():,.3g}"
    assert table.loc["mens", "capped"] == f"{mens.clip(upper=cap).mean():,.3g}"
    change = mens.clip(upper=cap).mean() / mens.mean() - 1
    assert table.loc["mens", "change"] == f"{change:+.1%}"
    lift = mens.clip(upper=cap).mean() / control.clip(upper=cap).mean() - 1
    assert table.loc["mens", "Lift capped [CI]"].startswith(f"{lift:+.1%} [")
    lift = mens.mean() / control.mean() - 1
    assert table.loc["mens", "Lift uncapped [CI]"].startswith(f"{lift:+.1%} [")


def test_hillstrom_split_passes_the_srm_check(hillstrom):
    checks = hillstrom[0]["checks"].set_index("check")
    expected = stats.chisquare([21306, 21307, 21387]).pvalue
    assert checks.loc["sample_ratio", "value"] == pytest.approx(expected)
    assert bool(checks.loc["sample_ratio", "is_passed"])


# ---------------------------------------------------------------------------
# Facebook ads export: campaigns as units
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fb_ads(tmp_path_factory):
    if not FB_ADS.exists():
        pytest.skip("shared fb-ads-conversion data not present")
    definition = two_arm_definition(
        name="fb",
        variants=[
            {"id": "control", "name": "916"},
            {"id": "c936", "name": "936"},
            {"id": "c1178", "name": "1178"},
        ],
        split={"control": 0.05, "c936": 0.4, "c1178": 0.55},
        primary_metric="roas",
        secondary_metrics=["ctr", "click_conversion_rate"],
        results={
            "file": str(FB_ADS),
            "kind": "rows",
            "variant_column": "xyz_campaign_id",
            "unit_column": "fb_campaign_id",
            "variant_map": {"916": "control", "936": "c936", "1178": "c1178"},
            "column_map": {
                "spend": "Spent",
                "impressions": "Impressions",
                "clicks": "Clicks",
                "orders": "Approved_Conversion",
            },
            "value_per_conversion": 100,
        },
    )
    path = write_experiment(tmp_path_factory.mktemp("fb"), definition, None)
    return analyse(path), pd.read_csv(FB_ADS, encoding="utf-8-sig")


def test_fb_ads_roas_per_arm_and_campaign_count(fb_ads):
    analysis, raw = fb_ads
    campaigns = raw.groupby(["xyz_campaign_id", "fb_campaign_id"]).sum(
        numeric_only=True
    )
    for label, variant in [(916, "control"), (936, "c936"), (1178, "c1178")]:
        arm = campaigns.loc[label]
        found = row(analysis["results"], "roas", variant)
        assert found["n"] == len(arm)
        assert found["estimate"] == pytest.approx(
            100 * arm["Approved_Conversion"].sum() / arm["Spent"].sum(), rel=1e-9
        )


def test_fb_ads_roas_standard_error_matches_a_campaign_bootstrap(fb_ads):
    analysis, raw = fb_ads
    campaigns = (
        raw[raw.xyz_campaign_id.eq(936)]
        .groupby("fb_campaign_id")
        .sum(numeric_only=True)
    )
    revenue = 100 * campaigns["Approved_Conversion"].to_numpy()
    spend = campaigns["Spent"].to_numpy()
    rng = np.random.default_rng(2)
    picks = rng.integers(0, len(spend), size=(4000, len(spend)))
    boot = revenue[picks].sum(axis=1) / spend[picks].sum(axis=1)
    found = row(analysis["results"], "roas", "c936")
    se = (found["ci_high"] - found["ci_low"]) / (2 * stats.norm.ppf(0.975))
    assert se == pytest.approx(boot.std(ddof=1), rel=0.12)


def test_fb_ads_roas_lift_matches_gbstats_with_campaigns_as_units(fb_ads):
    gb_statistics = pytest.importorskip("gbstats.models.statistics")
    gb_tests = pytest.importorskip("gbstats.frequentist.tests")
    analysis, raw = fb_ads
    campaigns = raw.groupby(["xyz_campaign_id", "fb_campaign_id"]).sum(
        numeric_only=True
    )

    def roas_statistic(label):
        arm = campaigns.loc[label]
        revenue = 100 * arm["Approved_Conversion"]
        return gbstats_ratio(gb_statistics, revenue, arm["Spent"])

    control = roas_statistic(916)
    for label, variant in [(936, "c936"), (1178, "c1178")]:
        treated = roas_statistic(label)
        config = gb_tests.FrequentistConfig(difference_type="absolute")
        theirs = gb_tests.TwoSidedTTest(control, treated, config).compute_result()
        relative = gb_tests.TwoSidedTTest(control, treated).compute_result()
        found = row(analysis["results"], "roas", variant)
        assert found["abs_lift"] == pytest.approx(theirs.expected, rel=1e-9)
        assert found["abs_ci_low"] == pytest.approx(theirs.ci[0], rel=1e-9)
        assert found["abs_ci_high"] == pytest.approx(theirs.ci[1], rel=1e-9)
        assert found["p_value"] == pytest.approx(theirs.p_value, rel=1e-9)
        assert found["rel_lift"] == pytest.approx(relative.expected, rel=1e-9)
        # Ours is on the log scale: asymmetric, but around the same lift.
        assert found["rel_ci_low"] < relative.expected < found["rel_ci_high"]


def test_fb_ads_read_as_an_ad_platform_export_gives_the_same_arms(fb_ads, tmp_path):
    # The Kaggle file is an anonymised Facebook ads export with its own column
    # names: read through the ad-export path, mapped, it must give the same sums.
    analysis, _ = fb_ads
    definition = ex.load_experiment(
        write_experiment(
            tmp_path / "fb-meta",
            two_arm_definition(
                name="fb-meta",
                variants=[
                    {"id": "control", "name": "916"},
                    {"id": "c936", "name": "936"},
                    {"id": "c1178", "name": "1178"},
                ],
                split={"control": 0.05, "c936": 0.4, "c1178": 0.55},
                primary_metric="roas",
                secondary_metrics=["ctr"],
                results={
                    "file": str(FB_ADS),
                    "kind": "meta_ads",
                    "variant_column": "xyz_campaign_id",
                    "unit_column": "fb_campaign_id",
                    "variant_map": {"916": "control", "936": "c936", "1178": "c1178"},
                    "column_map": {
                        "spend": "Spent",
                        "clicks": "Clicks",
                        "orders": "Approved_Conversion",
                    },
                    "value_per_conversion": 100,
                },
            ),
            None,
        ),
        defaults=SETTINGS,
    )
    arms = ex.read_results(definition)[0].set_index("variant")
    expected = analysis["arms"].set_index("variant")
    for column in ("n", "spend", "impressions", "clicks", "revenue", "revenue_x_spend"):
        np.testing.assert_allclose(arms[column], expected[column], rtol=1e-12)


def test_fb_ads_planned_split_mismatch_is_flagged(fb_ads):
    analysis, _ = fb_ads
    checks = analysis["checks"].set_index("check")
    # 54 / 464 / 625 ads grouped into campaigns against a 5/40/55 plan.
    assert not bool(checks.loc["sample_ratio", "is_passed"])
    assert all(
        "srm" in flags
        for flags in analysis["results"].query("variant != 'control'")["flags"]
    )
    assert all(
        v.startswith("Sample-ratio mismatch")
        for v in analysis["results"].query("variant != 'control'")["verdict"]
    )


# ---------------------------------------------------------------------------
# Degenerate cases
# ---------------------------------------------------------------------------


def test_identical_order_values_are_not_significant(tmp_path):
    # Every buyer spends exactly 49.99 in both arms: AOV has no spread at all.
    rows = pd.DataFrame(
        {
            "variant": ["control"] * 400 + ["new-copy"] * 400,
            "revenue": [49.99] * 800,
            "orders": [1] * 800,
        }
    )
    definition = two_arm_definition(primary_metric="aov", secondary_metrics=[])
    analysis = analyse(write_experiment(tmp_path / "same", definition, rows))
    found = row(analysis["results"], "aov", "new-copy")
    assert not found["is_testable"]
    assert np.isnan(found["p_value"])
    assert "zero_variance" in found["flags"]
    assert "significant" not in found["verdict"]
    assert "not testable" in found["verdict"]


def test_constant_order_values_given_as_arm_sums_are_not_significant(tmp_path):
    # Per-arm sums from a spreadsheet: 49.99 against 59.99 per order, 1-3 orders
    # per customer. Each arm's AOV has no spread at all; float sums must not turn
    # that into a standard error of 1e-8 and a p-value of 0.
    rng = np.random.default_rng(0)
    arms = []
    for variant, price in (("control", 49.99), ("new-copy", 59.99)):
        orders = rng.integers(1, 4, 1000).astype(float)
        revenue = price * orders
        arms.append(
            {
                "variant": variant,
                "n": 1000,
                "revenue": revenue.sum(),
                "revenue_sq": (revenue**2).sum(),
                "orders": orders.sum(),
                "orders_sq": (orders**2).sum(),
                "revenue_x_orders": (revenue * orders).sum(),
            }
        )
    definition = two_arm_definition(
        primary_metric="aov",
        secondary_metrics=[],
        results={"file": "results.csv", "kind": "arms"},
    )
    path = write_experiment(tmp_path / "sums", definition, pd.DataFrame(arms))
    found = row(analyse(path)["results"], "aov", "new-copy")
    assert found["estimate"] == pytest.approx(59.99)
    assert not found["is_testable"] and np.isnan(found["p_value"])
    assert "zero_variance" in found["flags"]
    assert "significant" not in found["verdict"]


def test_zero_conversions_are_not_testable_with_an_exact_bound(tmp_path):
    rows = pd.DataFrame(
        {
            "variant": ["control"] * 500 + ["new-copy"] * 500,
            "converted": [0] * 500 + [1] * 3 + [0] * 497,
        }
    )
    definition = two_arm_definition(
        primary_metric="conversion_rate", secondary_metrics=[]
    )
    analysis = analyse(write_experiment(tmp_path / "zero", definition, rows))
    control = row(analysis["results"], "conversion_rate", "control")
    arm = row(analysis["results"], "conversion_rate", "new-copy")
    assert control["ci_low"] == 0
    assert control["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 500))
    assert not arm["is_testable"] and np.isnan(arm["p_adjusted"])
    assert "zero_conversions" in arm["flags"]
    assert "no conversions" in arm["verdict"]
    checks = analysis["checks"]
    assert checks["check"].eq("zero_conversions").sum() == 1


@pytest.mark.parametrize("control_share", [0.5, 0.4])
def test_arms_below_the_planned_sample_are_flagged_with_the_plans_size(
    tmp_path, control_share
):
    # arms-basic plans revenue per visitor for +10% of 2.10 (sd 19) at alpha
    # 0.05 / 4 and power 0.8; with a control share c and an arm share 1 - c the
    # control needs (z sd / mde)**2 (1 + c / (1 - c)) and each arm its share's
    # multiple (normal approximation; the t correction is under 0.1% here).
    definition = yaml.safe_load(
        (FIXTURES / "arms-basic" / "experiment.yml").read_text()
    )
    share = {"control": control_share, "free-returns": 1 - control_share}
    definition["split"] = share
    results = pd.read_csv(FIXTURES / "arms-basic" / "results.csv")
    analysis = analyse(write_experiment(tmp_path / "small", definition, results))

    z = stats.norm.ppf(1 - 0.05 / 8) + stats.norm.ppf(0.8)
    ratio = (1 - control_share) / control_share
    need_control = (z * 19.0 / 0.21) ** 2 * (1 + 1 / ratio)
    checks = analysis["checks"].query("check == 'min_sample'").set_index("variant")
    assert checks.loc["control", "threshold"] == pytest.approx(need_control, rel=2e-3)
    assert checks.loc["free-returns", "threshold"] == pytest.approx(
        need_control * ratio, rel=2e-3
    )
    assert not checks["is_passed"].any()
    assert checks.loc["control", "value"] == 20000
    arms = analysis["results"].query("variant != 'control'")
    assert arms["flags"].str.contains("below_min_sample").all()
    assert arms["verdict"].str.contains("below the planned sample").all()


def test_verdicts_say_significant_only_with_the_interval(tmp_path):
    analysis = analyse(FIXTURES / "arms-basic" / "experiment.yml")
    verdicts = analysis["results"].query("variant != 'control'")["verdict"]
    for verdict in verdicts:
        if "significant" in verdict:
            assert "[" in verdict and "interval" in verdict
    assert verdicts.str.contains("significant").any()


# ---------------------------------------------------------------------------
# Readers: generic arms, Klaviyo, Meta, Google
# ---------------------------------------------------------------------------


def test_arm_table_tests_match_hand_computation():
    analysis = analyse(FIXTURES / "arms-basic" / "experiment.yml")
    found = row(analysis["results"], "revenue_per_visitor", "free-returns")
    mean_c, mean_t = 42000 / 20000, 49500 / 20100
    var_c = (8_800_000 - 42000 * mean_c) / 19999 / 20000
    var_t = (10_400_000 - 49500 * mean_t) / 20099 / 20100
    t_stat = (mean_t - mean_c) / np.sqrt(var_c + var_t)
    df = (var_c + var_t) ** 2 / (var_c**2 / 19999 + var_t**2 / 20099)
    assert found["abs_lift"] == pytest.approx(mean_t - mean_c)
    assert found["p_value"] == pytest.approx(2 * stats.t.sf(abs(t_stat), df))
    assert found["role"] == "primary"
    unsub = row(analysis["results"], "unsubscribe_rate", "free-returns")
    assert unsub["role"] == "guardrail"
    assert unsub["estimate"] == pytest.approx(38 / 20100)


def test_chance_to_beat_control_on_a_guardrail_is_the_chance_of_fewer_unsubscribes():
    from scipy import integrate

    # 38 of 20,100 unsubscribed against 40 of 20,000: beating control means a
    # lower rate, P(p_arm < p_control) under Beta(1 + k, 1 + n - k) posteriors.
    analysis = analyse(FIXTURES / "arms-basic" / "experiment.yml")
    control, arm = stats.beta(41, 19961), stats.beta(39, 20063)
    lower, _ = integrate.quad(
        lambda x: arm.pdf(x) * control.sf(x), 0, 1, points=[0.002], limit=500
    )
    found = row(analysis["results"], "unsubscribe_rate", "free-returns")
    assert lower > 0.5
    assert found["chance_to_beat_control"] == pytest.approx(lower, abs=1e-4)


def test_klaviyo_export_gives_proportions_but_not_revenue_variance():
    analysis = analyse(FIXTURES / "klaviyo-subject" / "experiment.yml")
    arms = analysis["arms"].set_index("variant")
    assert arms.loc["control", "n"] == 5012
    assert arms.loc["delivery", "revenue"] == pytest.approx(5902.10)
    conversion = row(analysis["results"], "conversion_rate", "delivery")
    assert conversion["estimate"] == pytest.approx(83 / 4988)
    revenue = row(analysis["results"], "revenue_per_visitor", "delivery")
    assert not revenue["is_testable"]
    assert "not_testable" in revenue["flags"]


def test_meta_export_drops_the_totals_row_and_uses_campaigns_as_units():
    analysis = analyse(FIXTURES / "meta-ads" / "experiment.yml")
    arms = analysis["arms"].set_index("variant")
    assert arms.loc["control", "n"] == 4
    assert arms.loc["control", "spend"] == pytest.approx(810)
    roas = row(analysis["results"], "roas", "quote")
    assert roas["estimate"] == pytest.approx(5175 / 810)
    assert roas["metric_kind"] == "ratio" and roas["is_testable"]


def test_google_export_skips_title_lines_totals_and_blanks():
    analysis = analyse(FIXTURES / "google-ads" / "experiment.yml")
    arms = analysis["arms"].set_index("variant")
    assert arms.loc["control", "impressions"] == 120400
    assert arms.loc["words", "revenue"] == 0
    ctr = row(analysis["results"], "ctr", "words")
    # One row per arm: CTR is a proportion per impression, its scale stated.
    assert ctr["test"].startswith("two-proportion")
    assert "difference in rates (percentage points)" in ctr["test"]
    assert ctr["estimate"] == pytest.approx(2755 / 119800)
    # The checks count what CTR counts (impressions), not the one row per arm.
    checks = analysis["checks"].set_index(["check", "variant"])
    assert checks.loc[("sample_ratio", "all"), "value"] == pytest.approx(
        stats.chisquare([120400, 119800]).pvalue
    )
    assert checks.loc[("min_sample", "words"), "value"] == 119800
    assert bool(checks.loc[("min_sample", "words"), "is_passed"])
    assert "below_min_sample" not in ctr["flags"]


def test_campaign_ids_in_scientific_notation_are_refused_as_units(tmp_path):
    import shutil

    # An Excel re-save writes 120253000000000017 as 1.20253E+17: the four
    # control campaigns would collapse into one unit. Line 1 is the header,
    # line 2 the totals row, line 3 the first campaign.
    folder = tmp_path / "meta"
    shutil.copytree(FIXTURES / "meta-ads", folder)
    export = pd.read_csv(folder / "meta-export.csv", dtype=str)
    export.insert(2, "Campaign ID", ["", *["1.20253E+17"] * (len(export) - 1)])
    export.to_csv(folder / "meta-export.csv", index=False)
    definition = yaml.safe_load((folder / "experiment.yml").read_text("utf-8"))
    definition["results"]["unit_column"] = "Campaign ID"
    path = write_experiment(folder, definition, None)
    with pytest.raises(HeardInputError) as error:
        analyse(path)
    assert error.value.row == 3
    assert error.value.column == "Campaign ID"
    assert "scientific notation" in str(error.value)

    # The same ids typed as numbers by DuckDB (a row-level CSV) are refused too.
    rows = pd.DataFrame(
        {
            "variant": ["control", "new-copy"] * 100,
            "user_id": [1.20253e17] * 200,
            "revenue": np.arange(200.0),
        }
    )
    definition = two_arm_definition(
        secondary_metrics=[],
        results={"file": "results.csv", "kind": "rows", "unit_column": "user_id"},
    )
    with pytest.raises(HeardInputError, match="scientific notation"):
        analyse(write_experiment(tmp_path / "ids", definition, rows))


def test_a_semicolon_delimited_meta_resave_reads_like_the_original(tmp_path):
    import shutil

    folder = tmp_path / "meta-semicolon"
    shutil.copytree(FIXTURES / "meta-ads", folder)
    export = folder / "meta-export.csv"
    pd.read_csv(export, dtype=str).to_csv(export, sep=";", index=False)
    expected = analyse(FIXTURES / "meta-ads" / "experiment.yml")["arms"]
    pd.testing.assert_frame_equal(analyse(folder / "experiment.yml")["arms"], expected)


def test_localised_meta_headers_are_read(tmp_path):
    import shutil

    folder = tmp_path / "meta-pt"
    shutil.copytree(FIXTURES / "meta-ads", folder)
    export = folder / "meta-export.csv"
    text = export.read_text("utf-8")
    text = text.replace("Amount spent (EUR)", "Valor gasto (BRL)")
    export.write_text(text.replace("Link clicks", "Cliques no link"), "utf-8")
    arms = analyse(folder / "experiment.yml")["arms"].set_index("variant")
    assert arms.loc["control", "spend"] == pytest.approx(810)
    assert arms.loc["control", "clicks"] > 0


def test_a_decimal_comma_in_an_export_is_refused_at_its_file_row(tmp_path):
    import shutil

    # "1.204,00" (German number format) must not become 1.204 or 120400.
    folder = tmp_path / "google"
    shutil.copytree(FIXTURES / "google-ads", folder)
    export = folder / "google-campaigns.csv"
    export.write_text(
        export.read_text("utf-8").replace('"1,204.00"', '"1.204,00"'), "utf-8"
    )
    with pytest.raises(HeardInputError) as error:
        analyse(folder / "experiment.yml")
    # Title line, date line, header: the first campaign is line 4.
    assert error.value.row == 4
    assert error.value.column == "Cost"
    assert "decimal comma" in str(error.value)


@pytest.mark.parametrize("form", ["excel-csv", "xlsx"])
def test_google_export_in_its_utf16_and_xlsx_forms_reads_like_the_csv(tmp_path, form):
    import csv
    import shutil

    from openpyxl import Workbook

    # The same download saved as "Excel .csv" (UTF-16, tabs) or .xlsx, title
    # and date-range lines still on top.
    source = FIXTURES / "google-ads" / "google-campaigns.csv"
    rows = list(csv.reader(source.read_text("utf-8").splitlines()))
    folder = tmp_path / "google"
    shutil.copytree(FIXTURES / "google-ads", folder)
    if form == "xlsx":
        book = Workbook()
        for cells in rows:
            book.active.append(cells)
        book.save(folder / "download.xlsx")
        file = "download.xlsx"
    else:
        text = "\n".join("\t".join(cells) for cells in rows) + "\n"
        (folder / "download.csv").write_text(text, encoding="utf-16")
        file = "download.csv"
    assert form == "xlsx" or (folder / file).read_bytes()[:2] == b"\xff\xfe"
    definition = ex.load_experiment(folder / "experiment.yml", defaults=SETTINGS)
    expected = ex.read_results(definition)[0]
    definition["results"]["file"] = file
    arms = ex.read_results(definition)[0]
    pd.testing.assert_frame_equal(arms, expected)
    assert arms.set_index("variant").loc["control", "impressions"] == 120400


# ---------------------------------------------------------------------------
# Trace, plot, the month's step
# ---------------------------------------------------------------------------


def test_trace_joins_quote_texts_by_id():
    definition = ex.load_experiment(
        FIXTURES / "arms-basic" / "experiment.yml", defaults=SETTINGS
    )
    bank = pd.DataFrame(
        {
            "quote_id": ["q-2026-11-07-003"],
            "text": ["I only bought because returns were free"],
        }
    )
    analysis = ex.analyse_experiment(definition, quote_bank=bank)
    trace = analysis["trace"].set_index("quote_id")
    assert trace.loc["q-2026-11-07-003", "quote"].startswith("I only bought")
    assert trace.loc["q-2026-11-12-001", "quote"] == ""
    primary = row(analysis["results"], "revenue_per_visitor", "free-returns")
    assert trace.loc["q-2026-11-07-003", "rel_lift"] == primary["rel_lift"]


def test_forest_plot_keeps_arm_colours():
    from matplotlib.colors import to_hex

    from helpers.figures import arm_colours

    definition = ex.load_experiment(
        FIXTURES / "arms-basic" / "experiment.yml", defaults=SETTINGS
    )
    analysis = ex.analyse_experiment(definition)
    figure = ex.plot_lifts(analysis["results"], definition)
    lines = figure.axes[0].get_lines()
    colours = {to_hex(line.get_color()) for line in lines}
    assert arm_colours(definition["variant_ids"])["free-returns"] in colours


def test_run_step_writes_results_and_summary(tmp_path):
    raw = tmp_path / "raw" / "shop"
    (raw / "experiments").mkdir(parents=True)
    import shutil

    shutil.copytree(FIXTURES / "arms-basic", raw / "experiments" / "arms-basic")
    (raw / "study.yml").write_text(
        "months:\n  '2026-11':\n    experiments: [arms-basic]\n", encoding="utf-8"
    )
    study = load_study(raw, root=tmp_path, processed_root=tmp_path / "processed")
    summary = ex.run_experiments_step(study, "2026-11")

    month = tmp_path / "processed" / "2026-11"
    written = json.loads((month / "summary_experiments.json").read_text())
    entry = written["experiments"][0]
    assert {
        "name",
        "primary_metric",
        "verdict",
        "lift",
        "ci_low",
        "ci_high",
        "p_value",
    } <= set(entry)
    assert entry["variant"] == "free-returns"
    results = pd.read_parquet(month / "experiment-results_arms-basic.parquet")
    found = row(results, "revenue_per_visitor", "free-returns")
    assert entry["lift"] == pytest.approx(found["rel_lift"])
    assert summary["experiments"] == written["experiments"]
    for part in ("arms", "checks", "plan", "trace"):
        assert (month / f"experiment-{part}_arms-basic.parquet").exists()


def test_an_experiment_named_unlike_its_folder_is_refused_by_the_step(tmp_path):
    import shutil

    raw = tmp_path / "raw" / "shop"
    shutil.copytree(FIXTURES / "arms-basic", raw / "experiments" / "subject-nov")
    (raw / "study.yml").write_text(
        "months:\n  '2026-11':\n    experiments: [subject-nov]\n", encoding="utf-8"
    )
    study = load_study(raw, root=tmp_path, processed_root=tmp_path / "processed")
    with pytest.raises(HeardInputError) as error:
        ex.run_experiments_step(study, "2026-11")
    assert error.value.column == "name"
    assert "arms-basic" in str(error.value) and "subject-nov" in str(error.value)


def test_a_planned_experiment_without_results_writes_its_plan_only(tmp_path):
    # No results: entry yet: the step writes the plan (before any results
    # exist) and the quote trace, and reports no lift.
    raw = tmp_path / "raw" / "shop"
    definition = yaml.safe_load(
        (FIXTURES / "arms-basic" / "experiment.yml").read_text("utf-8")
    )
    definition.pop("results")
    write_experiment(raw / "experiments" / "arms-basic", definition, None)
    (raw / "study.yml").write_text(
        "months:\n  '2026-11':\n    experiments: [arms-basic]\n", encoding="utf-8"
    )
    study = load_study(raw, root=tmp_path, processed_root=tmp_path / "processed")
    summary = ex.run_experiments_step(study, "2026-11")

    assert summary["experiments"] == []
    planned = summary["planned"][0]
    z = stats.norm.ppf(1 - 0.05 / 8) + stats.norm.ppf(0.8)  # alpha 0.05 over 4
    # Welch's t needs a little more than the normal formula 2 (z sd / mde)**2.
    assert planned["n_per_arm"] == pytest.approx(2 * (z * 19.0 / 0.21) ** 2, rel=1e-3)
    assert planned["days"] == np.ceil(planned["n_total"] / 4000)
    month = tmp_path / "processed" / "2026-11"
    assert pd.read_parquet(month / "experiment-results_arms-basic.parquet").empty
    trace = pd.read_parquet(month / "experiment-trace_arms-basic.parquet")
    assert trace["quote_id"].tolist() == ["q-2026-11-07-003", "q-2026-11-12-001"]
    assert trace["rel_lift"].isna().all()
    arms, units, info = ex.read_results(
        ex.load_experiment(raw / "experiments" / "arms-basic" / "experiment.yml")
    )
    assert arms.empty and units is None and info["is_planned"]


def test_a_named_results_file_that_is_missing_is_an_error_not_a_plan(tmp_path):
    path = write_experiment(tmp_path / "missing", two_arm_definition(), None)
    with pytest.raises(HeardInputError, match="leave results: out"):
        analyse(path)


def test_month_outputs_load_back_and_format_for_display(tmp_path):
    import shutil

    from helpers import experiment_tables

    raw = tmp_path / "raw" / "shop"
    shutil.copytree(FIXTURES / "arms-basic", raw / "experiments" / "arms-basic")
    shutil.copytree(FIXTURES / "meta-ads", raw / "experiments" / "meta-ads")
    (raw / "study.yml").write_text(
        "months:\n  '2026-11':\n    experiments: [arms-basic, meta-ads]\n",
        encoding="utf-8",
    )
    study = load_study(raw, root=tmp_path, processed_root=tmp_path / "processed")
    ex.run_experiments_step(study, "2026-11")
    outputs = experiment_tables.load_month_outputs(study, "2026-11")

    assert [d["name"] for d in outputs["definitions"]] == ["arms-basic", "meta-ads"]
    assert set(outputs["results"]["experiment"]) == {"arms-basic", "meta-ads"}
    display = experiment_tables.format_results(outputs["results"])
    conversion = display[
        display["metric"].eq("arms-basic: Conversion rate")
        & display["variant"].eq("free-returns")
    ].iloc[0]
    # 760/20100 - 600/20000 = +0.78 percentage points.
    assert conversion["Absolute lift [CI]"].startswith("+0.78 pp [")
    assert conversion["Value [CI]"].startswith("3.78% [")
    figure = ex.plot_lifts(outputs["results"], outputs["definitions"])
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert "meta-ads: Return on ad spend (ROAS)" in labels


def test_crafted_split_is_flagged_as_srm_and_bayes_can_be_switched_off(tmp_path):
    # 5,000 vs 5,400 under a planned 50/50: chi-square p = 8.8e-5 < 0.001.
    arms = pd.DataFrame(
        {
            "variant": ["control", "new-copy"],
            "n": [5000, 5400],
            "conversions": [150, 190],
        }
    )
    definition = two_arm_definition(
        primary_metric="conversion_rate",
        secondary_metrics=[],
        bayesian=False,
        results={"file": "results.csv", "kind": "arms"},
    )
    analysis = analyse(write_experiment(tmp_path / "srm", definition, arms))
    checks = analysis["checks"].set_index("check")
    assert checks.loc["sample_ratio", "value"] == pytest.approx(
        stats.chisquare([5000, 5400]).pvalue
    )
    found = row(analysis["results"], "conversion_rate", "new-copy")
    assert found["flags"].split(";")[0] == "srm"
    assert found["verdict"].startswith("Sample-ratio mismatch")
    assert np.isnan(found["chance_to_beat_control"]) and found["bayes_model"] == ""


def verdict_row(**changes) -> pd.DataFrame:
    values = {
        "metric": "revenue_per_visitor",
        "variant": "new-copy",
        "role": "primary",
        "mode": "mean",
        "flags": "",
        "is_testable": True,
        "abs_lift": 1.0,
        "abs_ci_low": 0.1,
        "abs_ci_high": 1.9,
        "rel_lift": 0.2,
        "rel_ci_low": 0.02,
        "rel_ci_high": 0.4,
        "p_value": 0.03,
        "p_adjusted": 0.09,
        "correction": "holm",
    }
    values.update(changes)
    return pd.DataFrame([values])


def test_verdict_after_correction_does_not_deny_an_interval_that_excludes_zero():
    # Raw p 0.03 (the shown 95% interval [+0.1, +1.9] excludes zero) but Holm's
    # adjusted p is 0.09: the verdict must not say the interval includes no change.
    definition = {"alpha": 0.05, "metrics": {"revenue_per_visitor": (0, 0, 0, True)}}
    verdict = ex.write_verdicts(verdict_row(n_family=3), definition).iloc[0]
    assert "interval includes no change" not in verdict
    assert "not significant" in verdict
    assert "after Holm correction across its 3 tested comparisons" in verdict
    frame = verdict_row(correction="fdr_bh")
    assert (
        "after Benjamini-Hochberg correction"
        in ex.write_verdicts(frame, definition).iloc[0]
    )


def test_verdict_never_says_the_interval_excludes_zero_when_it_does_not():
    # A pooled z-test can fall just under alpha while Newcombe's interval still
    # touches zero; the sentence must describe the interval actually shown.
    definition = {"alpha": 0.05, "metrics": {"conversion_rate": (0, 0, 0, True)}}
    frame = verdict_row(
        metric="conversion_rate",
        mode="proportion",
        abs_lift=0.01,
        abs_ci_low=-0.0001,
        abs_ci_high=0.02,
        p_value=0.049,
        p_adjusted=0.049,
    )
    verdict = ex.write_verdicts(frame, definition).iloc[0]
    assert "interval excludes no change" not in verdict


def test_verdict_is_borderline_when_the_relative_and_absolute_intervals_disagree():
    # Meta fixture, CTR over 4 campaigns per arm: the log-scale relative interval
    # [+0.6%, +31.4%] clears zero, the absolute one [-0.00001, +0.0041] does not.
    analysis = analyse(FIXTURES / "meta-ads" / "experiment.yml")
    found = row(analysis["results"], "ctr", "quote")
    assert found["rel_ci_low"] > 0 > found["abs_ci_low"]
    assert (
        "relative interval lies clear of zero but the absolute one does not"
        in (found["verdict"])
    )
    assert "significant" not in found["verdict"]
    assert "includes no change" not in found["verdict"]


def test_an_arm_without_orders_makes_aov_untestable_and_says_why(tmp_path):
    # Control: 300 visitors, no orders, so its AOV (revenue / orders) is 0 / 0.
    # The verdict must blame the missing orders, not missing sums in the file.
    rows = pd.DataFrame(
        {
            "variant": ["control"] * 300 + ["new-copy"] * 300,
            "revenue": [0.0] * 300 + [50.0, 30.0, 70.0, 45.0, 60.0] + [0.0] * 295,
            "orders": [0] * 300 + [1] * 5 + [0] * 295,
        }
    )
    definition = two_arm_definition(primary_metric="aov", secondary_metrics=[])
    analysis = analyse(write_experiment(tmp_path / "no-orders", definition, rows))
    found = row(analysis["results"], "aov", "new-copy")
    assert not found["is_testable"]
    assert "zero_conversions" in found["flags"]
    assert "lack the sums" not in found["verdict"]
    assert "no conversions" in found["verdict"]
    checks = analysis["checks"]
    zero = checks[checks["check"].eq("zero_conversions")]
    assert zero["variant"].tolist() == ["control"]
    assert "nan" not in zero["message"].iloc[0]


def test_a_control_with_no_spread_does_not_make_revenue_significant(tmp_path):
    # Control: 300 visitors who all spent 0, so its sample variance is 0 and
    # Welch's t would treat its mean as known exactly. Treatment: 5 buyers of
    # 300 at 50. Welch would give p = 0.025 (a one-sample t on the treatment),
    # while Fisher's exact test on the same 5/300 vs 0/300 buyers gives 0.06.
    rows = pd.DataFrame(
        {
            "variant": ["control"] * 300 + ["new-copy"] * 300,
            "revenue": [0.0] * 300 + [50.0] * 5 + [0.0] * 295,
        }
    )
    assert stats.fisher_exact([[5, 295], [0, 300]]).pvalue > 0.05
    definition = two_arm_definition(secondary_metrics=[])
    analysis = analyse(write_experiment(tmp_path / "flat", definition, rows))
    found = row(analysis["results"], "revenue_per_visitor", "new-copy")
    assert "zero_variance" in found["flags"]
    assert not found["is_testable"] and np.isnan(found["p_value"])
    assert "significant" not in found["verdict"]


def test_row_level_text_that_is_not_a_number_is_refused_not_read_as_zero(tmp_path):
    # "$40" in a revenue column made DuckDB read the column as text; every
    # unparsable cell then became 0, so the control's revenue silently vanished.
    rows = pd.DataFrame(
        {
            "variant": ["control"] * 200 + ["new-copy"] * 200,
            "revenue": ["0"] * 190 + ["$40"] * 10 + ["0"] * 186 + ["55.5"] * 14,
        }
    )
    definition = two_arm_definition(secondary_metrics=[])
    path = write_experiment(tmp_path / "dollars", definition, rows)
    with pytest.raises(HeardInputError) as error:
        analyse(path)
    assert error.value.row == 192  # header is row 1, first "$40" is data row 191
    assert error.value.column == "revenue"
    assert "$40" in str(error.value)


def test_every_unit_converting_in_both_arms_is_not_blamed_on_missing_sums(tmp_path):
    # 200 of 200 in both arms: the pooled z-test's standard error is 0, so there
    # is nothing to test; the file has every sum the metric needs.
    rows = pd.DataFrame(
        {"variant": ["control"] * 200 + ["new-copy"] * 200, "converted": [1] * 400}
    )
    definition = two_arm_definition(
        primary_metric="conversion_rate", secondary_metrics=[]
    )
    analysis = analyse(write_experiment(tmp_path / "all", definition, rows))
    found = row(analysis["results"], "conversion_rate", "new-copy")
    assert not found["is_testable"]
    assert "lack the sums" not in found["verdict"]
    assert "not testable" in found["verdict"]

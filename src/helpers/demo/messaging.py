"""The demo's messaging experiments: one e-mail subject-line test per month.

Each month's test pits the current subject line (``control``) against one written
in customers' own words, citing the quotes it came from. October's results come
as one row per arm (sufficient statistics), November's as one row per recipient,
so both result layouts of step 04 are exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers import files

EXPERIMENTS = {
    "2026-10": {
        "name": "subject-line-oct",
        "dates": {"start": "2026-10-19", "end": "2026-10-26"},
        "control": "Our fall gear is in",
        "rates": (0.030, 0.040),
        "n_total": 20000,
        "kind": "arms",
    },
    "2026-11": {
        "name": "subject-line-nov",
        "dates": {"start": "2026-11-16", "end": "2026-11-23"},
        "control": "Our winter edit is here",
        "rates": (0.028, 0.041),
        "n_total": 21000,
        "kind": "rows",
    },
}
# The variant answers the month's most heard objection: code -> (id, name, copy).
VARIANTS = {
    "OBJ-SHIP-COST": ("free-shipping", "Shipping, in their words",
                      "Free shipping, no surprise at checkout"),
    "OBJ-TRUST": ("free-returns", "Free returns, in their words",
                  "Not sure yet? Returns are free"),
    "OBJ-FIT": ("fit-notes", "Sizing help, in their words",
                "Between sizes? Our fit notes tell you which"),
    "OBJ-DELIVERY": ("delivery-date", "Delivery date, in their words",
                     "Need it before the trip? See the delivery date first"),
    "INFO-PRODUCT": ("full-specs", "Answers on the page, in their words",
                     "Waterproof? How warm? Every answer is on the page"),
    "DISC-CODE": ("no-code-needed", "No code hunting, in their words",
                  "No code needed: the best price is already in your cart"),
    "OBJ-PAYMENT": ("pay-your-way", "Payment options, in their words",
                    "Pay your way: PayPal and Apple Pay at checkout"),
    "OBJ-PRICE": ("worth-it", "Value, in their words",
                  "Built to last a decade of weekends"),
}  # fmt: skip
VISIT_RATE = (0.12, 0.15)
UNSUBSCRIBE_RATE = 0.004


def find_top_objection(excerpts: pd.DataFrame) -> str:
    """Return the objection both coders agreed on in the most conversations."""
    agreed = excerpts[["conversation_id", "agreed"]].explode("agreed").dropna()
    agreed = agreed[agreed["agreed"].isin(list(VARIANTS))].drop_duplicates()
    counts = agreed.groupby("agreed").size()
    return sorted(counts.index, key=lambda code: (-counts[code], code))[0]


def cite_quotes(excerpts: pd.DataFrame, code: str, *, limit: int = 2) -> list[str]:
    """Return quote ids of consented customer excerpts both coders coded `code`."""
    fits = excerpts[
        excerpts["agreed"].apply(lambda codes: code in codes)
        & excerpts["consent_to_quote"].fillna(False).astype(bool)
    ]
    return [f"q-{excerpt_id}" for excerpt_id in fits["excerpt_id"].head(limit)]


def simulate_recipients(plan: dict, rng: np.random.Generator) -> pd.DataFrame:
    """Return one row per recipient: ``recipient_id``, ``variant``, ``visited``,
    ``converted``, ``orders``, ``revenue``, ``unsubscribed``.

    Notes
    -----
    Arms are split at random (so their sizes differ a little, as in a real send),
    but each arm's number of buyers is fixed at ``round(rate * n)``, so the lift
    lands where it is planned; which recipients buy is random.
    """
    n_total = plan["n_total"]
    is_variant = rng.random(n_total) < 0.5
    variant = np.where(is_variant, plan["variant"][0], "control")
    converted = np.zeros(n_total, dtype=bool)
    for arm, rate in ((~is_variant, plan["rates"][0]), (is_variant, plan["rates"][1])):
        members = np.flatnonzero(arm)
        buyers = rng.choice(members, size=round(rate * len(members)), replace=False)
        converted[buyers] = True
    visit = np.where(is_variant, VISIT_RATE[1], VISIT_RATE[0])
    visited = converted | (rng.random(n_total) < visit)
    orders = np.where(converted, 1 + (rng.random(n_total) < 0.1), 0)
    spend = rng.lognormal(np.log(95) - 0.125, 0.5, n_total) * orders
    return pd.DataFrame(
        {
            "recipient_id": np.arange(1, n_total + 1),
            "variant": variant,
            "visited": visited.astype(int),
            "converted": converted.astype(int),
            "orders": orders.astype(int),
            "revenue": np.round(spend, 2),
            "unsubscribed": (rng.random(n_total) < UNSUBSCRIBE_RATE).astype(int),
        }
    )


def sum_arms(recipients: pd.DataFrame) -> pd.DataFrame:
    """Return one row per arm with the sufficient statistics step 04 reads."""
    values = recipients.assign(
        revenue_sq=recipients["revenue"] ** 2,
        orders_sq=recipients["orders"] ** 2,
        revenue_x_orders=recipients["revenue"] * recipients["orders"],
    )
    arms = values.groupby("variant", sort=False).agg(
        n=("recipient_id", "size"),
        conversions=("converted", "sum"),
        visits=("visited", "sum"),
        unsubscribes=("unsubscribed", "sum"),
        revenue=("revenue", "sum"),
        orders=("orders", "sum"),
        revenue_sq=("revenue_sq", "sum"),
        orders_sq=("orders_sq", "sum"),
        revenue_x_orders=("revenue_x_orders", "sum"),
    )
    arms = arms.reindex(["control", *[v for v in arms.index if v != "control"]])
    return arms.round(4).reset_index()


def write_experiment(
    excerpts: pd.DataFrame, folder: Path, *, month: str, rng: np.random.Generator
) -> Path:
    """Write ``experiments/<name>/experiment.yml`` and its results file.

    Returns
    -------
    Path
        The experiment's folder.
    """
    code = find_top_objection(excerpts)
    plan = EXPERIMENTS[month] | {"code": code, "variant": VARIANTS[code]}
    target = folder / "experiments" / plan["name"]
    recipients = simulate_recipients(plan, rng)
    if plan["kind"] == "arms":
        files.save_csv(sum_arms(recipients), target / "results.csv")
    else:
        files.save_csv(recipients, target / "results.csv")
    definition = describe_experiment(plan, cite_quotes(excerpts, plan["code"]))
    header = "# A subject-line test written from the month's conversations.\n"
    files.save_text(
        header + yaml.safe_dump(definition, sort_keys=False), target / "experiment.yml"
    )
    return target


def describe_experiment(plan: dict, quote_ids: list[str]) -> dict:
    """Return the experiment.yml mapping (docs/study-folder.md, step 04)."""
    variant_id, variant_name, copy = plan["variant"]
    return {
        "name": plan["name"],
        "hypothesis": f"A subject line in customers' own words ({copy!r}) lifts "
        "the share of recipients who order over the current subject line.",
        "dates": plan["dates"],
        "unit": "recipient",
        "variants": [
            {
                "id": "control",
                "name": "Current subject line",
                "copy": plan["control"],
                "quote_ids": [],
            },
            {
                "id": variant_id,
                "name": variant_name,
                "copy": copy,
                "quote_ids": quote_ids,
            },
        ],
        "split": {"control": 0.5, variant_id: 0.5},
        "primary_metric": "conversion_rate",
        "secondary_metrics": ["revenue_per_visitor", "aov"],
        "guardrail_metrics": ["unsubscribe_rate"],
        "mde": 0.3,
        "mde_scale": "relative",
        "baseline": {
            "conversion_rate": plan["rates"][0],
            "revenue_per_visitor": 2.9,
            "revenue_per_visitor_sd": 19.0,
            "daily_units": 1200,
        },
        "results": {
            "file": "results.csv",
            "kind": plan["kind"],
            "variant_column": "variant",
            "unit_column": "recipient_id" if plan["kind"] == "rows" else None,
        },
    }

"""Assemble the demo study folder step by step, each step from its own seed."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import files
from helpers.demo import codebook as demo_codebook
from helpers.demo import shopify, world
from helpers.demo.world import MONTHS, Person

log = logging.getLogger(__name__)

STREAMS = (
    "world", "calls", "notes", "coding", "predictions", "experiments", "reconciling",
)  # fmt: skip


@dataclass(frozen=True)
class Store:
    """The invented store: people, order drafts, checkouts and planted flaws."""

    people: list[Person]
    order_drafts: list[dict]
    checkouts: list
    tagged_do_not_call: frozenset[int]
    mangled_phone: int
    do_not_call: pd.DataFrame


def build_demo_study(folder: Path, *, seed: int) -> dict:
    """Write the whole demo study into the new folder `folder`.

    Parameters
    ----------
    folder : Path
        A folder that does not exist yet; its name becomes the study's name.
    seed : int
        Seeds one numpy generator per part (:data:`STREAMS`), so changing one
        part's draws never reshuffles another's.

    Returns
    -------
    dict
        Month -> :class:`helpers.demo.calling.MonthCalls`: the call lists the
        calls were simulated from (hold-out included), for checks and tests.
    """
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    rng = {
        name: np.random.default_rng(s)
        for name, s in zip(STREAMS, children, strict=True)
    }
    folder.mkdir(parents=True)
    store = build_store(rng["world"])

    # Files written once per study.
    files.save_text(STUDY_YML, folder / "study.yml")
    codebook = demo_codebook.build_codebook()
    files.save_text(demo_codebook.format_codebook(codebook), folder / "codebook.yml")
    files.save_csv(store.do_not_call, folder / "do-not-call.csv")

    # Exports and calls, then what the conversations gave.
    months, orders = write_calls(folder, store, rng=rng["calls"])
    write_research(folder, store, months, orders, codebook=codebook, rng=rng)
    return months


def write_calls(folder: Path, store: Store, *, rng: np.random.Generator) -> tuple:
    """Write each month's exports and call log; return the calls and all orders.

    Returns
    -------
    tuple
        ``(months, orders)``: month -> MonthCalls, and every numbered order
        (ordinary and recovered).
    """
    from helpers.demo import calling

    recoveries: list[dict] = []
    months = {}
    processed = Path(tempfile.mkdtemp(prefix="heard-demo-"))
    for month in MONTHS:
        # Plan from the exports as they stood on the month's first moment, as a
        # researcher would; the month-end exports replace them below.
        until = world.planning_moment(month)
        write_exports(folder, store, month, extra_orders=recoveries, until=until)
        call_list = calling.plan_month(folder, month, processed=processed)
        outcome = calling.simulate_calls(call_list, store, month=month, rng=rng)
        recoveries = recoveries + outcome.recoveries
        calling.write_call_log(outcome, folder, month=month, orders=None)
        months[month] = outcome

    # Month-end exports carry the recovered orders; call logs name them.
    orders = world.number_orders(store.order_drafts + recoveries)
    for month in MONTHS:
        write_exports(folder, store, month, extra_orders=recoveries)
        calling.write_call_log(months[month], folder, month=month, orders=orders)
        calling.check_plan_unchanged(
            folder, month, months[month].call_list, processed=processed
        )
    shutil.rmtree(processed, ignore_errors=True)
    return months, orders


def write_research(
    folder: Path, store: Store, months: dict, orders: list, *, codebook, rng: dict
) -> None:
    """Write notes, coding sheets, predictions, experiments and the insight log."""
    from helpers.demo import calling, messaging, notes, sheets

    conversations = {}
    for month in MONTHS:
        buyers = calling.find_month_buyers(orders, store.people, month)
        turns = notes.write_notes(
            months[month],
            folder,
            month=month,
            buyers=buyers,
            rng=rng["notes"],
            coding_rng=rng["coding"],
        )
        excerpts = sheets.write_coding_sheets(
            turns, folder, month=month, codebook=codebook
        )
        sheets.write_reconciliation(
            excerpts, folder, month=month, rng=rng["reconciling"]
        )
        sheets.write_predictions(
            turns, months[month], folder, month=month, rng=rng["predictions"]
        )
        messaging.write_experiment(
            excerpts, folder, month=month, rng=rng["experiments"]
        )
        conversations[month] = turns
    sheets.write_insights(conversations, folder)


def build_store(rng: np.random.Generator) -> Store:
    """Return the invented store with its planted flaws and do-not-call list."""
    people = world.draw_people(rng)
    drafts = world.draw_history(people, rng)
    people, checkout_drafts = world.draw_checkouts(people, drafts, rng)
    drafts = plant_order_flaws(drafts, rng)
    checkouts = world.number_checkouts(checkout_drafts)
    abandoners = sorted({c.person for c in checkouts})
    phoned = [p for p in people if p.phone_e164 and p.duplicate_of is None]
    quiet = [p for p in phoned if p.number not in set(abandoners)]
    picks = rng.choice(len(quiet), size=4, replace=False)
    mangled, tagged, *listed = (quiet[i] for i in picks)
    listed_abandoners = [
        p for p in phoned if p.number in set(abandoners[-60:]) and p.country == "US"
    ][:2]
    return Store(
        people=people,
        order_drafts=drafts,
        checkouts=checkouts,
        tagged_do_not_call=frozenset({tagged.number, abandoners[3]}),
        mangled_phone=mangled.number,
        do_not_call=build_do_not_call(listed + listed_abandoners),
    )


def plant_order_flaws(drafts: list[dict], rng: np.random.Generator) -> list[dict]:
    """Return `drafts` with one negative total, one impossible date, one bad phone.

    The impossible date is written as the 31st of a 30-day month, so the order
    chosen must fall in September 2026.
    """
    flaws = {
        "bad_date": (date(2026, 9, 1), date(2026, 9, 30)),
        "negative_total": (date(2026, 8, 1), date(2026, 8, 31)),
        "excel_phone": (date(2026, 7, 1), date(2026, 7, 31)),
    }
    planted = [dict(d) for d in drafts]
    for flaw, (start, end) in flaws.items():
        inside = [
            i
            for i, d in enumerate(planted)
            if start <= d["created_at"].date() <= end and not d["flaw"]
        ]
        planted[inside[int(rng.integers(len(inside)))]]["flaw"] = flaw
    return planted


def build_do_not_call(people: list[Person]) -> pd.DataFrame:
    """Return the store's do-not-call list: numbers typed in assorted ways.

    Returns
    -------
    DataFrame
        ``phone``, ``email``, ``added_on``, ``source``; one row is a number that
        belongs to no customer.
    """
    styles = (0, 1, 3, 2, 5)
    rows = [
        {
            # UK numbers carry +44: the list is read with the store's country, US.
            "phone": shopify.format_phone(
                person.phone_e164, style if person.country == "US" else 2
            ),
            "email": person.email if index % 2 else "",
            "added_on": (date(2026, 3, 4) + timedelta(days=37 * index)).isoformat(),
            "source": ("customer e-mail", "phone call", "web form")[index % 3],
        }
        for index, (person, style) in enumerate(zip(people, styles, strict=False))
    ]
    rows.append(
        {
            "phone": "(718) 555-0100 x2",
            "email": "",
            "added_on": "2026-09-15",
            "source": "phone call",
        }
    )
    return pd.DataFrame(rows, columns=["phone", "email", "added_on", "source"])


def write_exports(
    folder: Path,
    store: Store,
    month: str,
    *,
    extra_orders: list[dict],
    until: datetime | None = None,
) -> None:
    """Write the month's three Shopify exports as downloaded at `until`.

    The default is the month's end, after the calls and the recovered orders.
    """
    until = until or world.download_moment(month)
    orders = world.number_orders(store.order_drafts + extra_orders)
    people = {(p.number, p.email): p for p in store.people}
    target = folder / "exports" / month
    files.save_csv(
        shopify.build_customers_export(
            store.people,
            orders,
            until=until,
            tagged_do_not_call=store.tagged_do_not_call,
            mangled_phone=store.mangled_phone,
        ),
        target / "customers_export.csv",
    )
    files.save_csv(
        shopify.build_orders_export(orders, people, until=until),
        target / "orders_export_1.csv",
    )
    files.save_csv(
        shopify.build_checkouts_export(store.checkouts, people, until=until),
        target / "abandoned_checkouts_export.csv",
    )


STUDY_YML = """\
# The demo study: an invented outdoor-gear store researched for two months.
# Written by `heard demo`; every person, phone number and e-mail is fictional.
study:
  name: Demo Outdoor Co.
  currency: USD
  default_country: US
  timezone: America/New_York
  store_opened: 2023-03-01

phones:
  # UK 07700 900xxx numbers are reserved for fiction: phonenumbers calls them
  # possible but not valid, so the demo keeps possible numbers.
  keep: possible

sampling:
  seed: 2026
  target_conversations: 12      # per segment: 35 customers called in each
  expected_connect_rate: 0.35
  holdout_share: 0.5

calls:
  target_conversations: [10, 15]   # per segment

months:
  "2026-10":
    question: What made you stop at checkout?
    segments: [cart_abandoners, first_time_no_return]
    next_question: What almost stopped you from buying?
    experiments: [subject-line-oct]
  "2026-11":
    question: What almost stopped you from buying?
    segments: [cart_abandoners, first_time_no_return]
    next_question: What would bring you back for a second order?
    experiments: [subject-line-nov]
"""

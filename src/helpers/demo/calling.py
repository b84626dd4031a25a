"""The demo's calls: who was dialled, what happened, and who came back to buy.

The call list comes from step 01 (``helpers.segments.plan_call_list``) run on the
demo's own exports, so the call log matches what the notebooks derive. Attempts are
then simulated and calibrated to what the field reports: 30-40% of dialled
customers reached, some voicemails, a do-not-call request, and cart abandoners who
were called coming back to buy clearly more often than the not-called hold-out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from helpers import files
from helpers.demo.world import STORE_ZONE, Person, month_start

log = logging.getLogger(__name__)

CALLERS = ("Alex", "Jordan", "Priya")
# Share of dialled customers reached for a conversation, per month. A declined
# call and a do-not-call request also reach a person, adding two more customers.
CONNECT_TARGET = {"2026-10": 0.31, "2026-11": 0.36}
# Recovery within the window: reached abandoners, dialled-not-reached, hold-out.
RECOVERY_RATE = {"reached": 0.55, "not_reached": 0.2, "holdout": 0.06}
FIRST_CALL_DAY = 2
LOG_COLUMNS = [
    "customer_key", "attempted_at", "caller", "outcome", "talk_seconds",
    "notes_file", "recovered_order",
]  # fmt: skip
TALK_SECONDS = {
    "connected": (300, 1100), "voicemail": (15, 45), "callback_requested": (20, 60),
    "declined": (8, 30), "do_not_call": (10, 25), "wrong_number": (8, 30),
    "no_answer": (0, 0), "busy": (0, 0),
}  # fmt: skip


@dataclass(frozen=True)
class MonthCalls:
    """One month's simulated calls.

    ``attempts`` has ``customer_key``, ``attempted_at`` (aware datetime),
    ``caller``, ``outcome``, ``talk_seconds``, ``conversation`` (index among the
    month's conversations or -1). ``conversations`` has ``customer_key``,
    ``segment``, ``interviewer``, ``talked_at``, ``person``, ``conversation_id``,
    ``is_recovered``. ``recoveries`` are order drafts.
    """

    call_list: pd.DataFrame
    attempts: pd.DataFrame
    conversations: pd.DataFrame
    recoveries: list[dict]
    recovered_keys: dict


def key_people(people: list[Person]) -> dict[str, Person]:
    """Return ``customer_key -> Person`` for the original (not duplicate) records."""
    from helpers.privacy import customer_key

    keyed = {}
    for person in people:
        if person.duplicate_of is None:
            identity = person.email.strip().casefold() if person.email else None
            keyed[customer_key(identity or person.phone_e164)] = person
    return keyed


def plan_month(folder: Path, month: str, *, processed: Path) -> pd.DataFrame:
    """Return step 01's call list for `month` of the study in `folder`.

    Parameters
    ----------
    folder : Path
        The demo study being built.
    month : str
        ``YYYY-MM``.
    processed : Path
        A throw-away processed root (never the project's ``data/processed``)
        holding earlier months' ``assignment_customer.parquet``, so customers
        called or held back before are excluded as step 01 excludes them.

    Returns
    -------
    DataFrame
        ``customer_key``, ``segment``, ``arm``; the month's assignment is also
        saved under `processed` for the months after it.
    """
    from helpers.segments import plan_call_list
    from helpers.study import load_study

    study = load_study(folder, processed_root=processed)
    call_list = plan_call_list(study, month)
    assignment = call_list[["customer_key", "segment", "arm"]].reset_index(drop=True)
    files.save_parquet(assignment, processed / month / "assignment_customer.parquet")
    log.info("planned %d customers for %s", len(assignment), month)
    return assignment


def find_month_buyers(orders, people: list[Person], month: str) -> set[str]:
    """Return the keys of customers with an order created in `month` (UTC)."""
    from helpers.privacy import customer_key

    phones = {p.number: p.phone_e164 for p in people}
    buyers = set()
    for order in orders:
        if order.created_at.astimezone(ZoneInfo("UTC")).strftime("%Y-%m") != month:
            continue
        identity = order.email.strip().casefold() if order.email else None
        buyers.add(customer_key(identity or phones[order.person]))
    return buyers


def check_plan_unchanged(
    folder: Path, month: str, planned: pd.DataFrame, *, processed: Path
) -> None:
    """Warn when the month-end exports would give step 01 a different call list."""
    again = plan_month(folder, month, processed=processed)
    if not again.equals(planned):
        log.warning(
            "step 01 draws a different call list for %s from the month-end "
            "exports: it counts orders and checkouts created after the month's "
            "first moment (the calls' recovered orders among them)",
            month,
        )


def simulate_calls(
    call_list: pd.DataFrame, store, *, month: str, rng: np.random.Generator
) -> MonthCalls:
    """Return the month's attempts, conversations and recovered orders.

    Parameters
    ----------
    call_list : DataFrame
        ``customer_key``, ``segment``, ``arm`` (``called``/``holdout``).
    store : Store
        The demo store (people and checkouts).
    month : str
        ``YYYY-MM``.
    rng : numpy.random.Generator

    Returns
    -------
    MonthCalls

    Notes
    -----
    Calibration is by counts, not chance: ``round(CONNECT_TARGET * n_dialled)``
    customers are reached, so the per-customer connect rate lands on target
    whatever the call list's size. Recovered orders follow ``RECOVERY_RATE`` the
    same way, one called abandoner orders before being dialled (must not count).
    """
    people = key_people(store.people)
    called = call_list[call_list["arm"] == "called"].reset_index(drop=True)
    fates = assign_fates(called, month=month, rng=rng)
    rows = []
    for index, customer in called.iterrows():
        person = people[customer["customer_key"]]
        caller = CALLERS[index % len(CALLERS)]
        rows += draw_attempts(
            person, customer["customer_key"], caller, fates[index], month, rng
        )
    attempts = pd.DataFrame(rows).sort_values(
        ["attempted_at", "customer_key"], ignore_index=True
    )
    conversations = list_conversations(attempts, called, people, month=month)
    recoveries, recovered = draw_recoveries(
        call_list,
        attempts,
        conversations,
        store,
        people,
        fates=dict(zip(called["customer_key"], fates, strict=True)),
        rng=rng,
    )
    conversations["is_recovered"] = conversations["customer_key"].isin(recovered)
    return MonthCalls(call_list, attempts, conversations, recoveries, recovered)


def assign_fates(
    called: pd.DataFrame, *, month: str, rng: np.random.Generator
) -> list[str]:
    """Return each dialled customer's final fate, calibrated by counts."""
    n = len(called)
    n_reached = round(CONNECT_TARGET[month] * n)
    fates = ["reached"] * n_reached + ["do_not_call", "wrong_number", "declined"]
    fates += ["voicemail_only"] * ((n - len(fates)) // 2)
    fates += ["unanswered"] * (n - len(fates))
    fates = [fates[i] for i in rng.permutation(n)]

    # One abandoner the caller did not reach had already come back and ordered.
    abandoners = [
        i for i in range(n)
        if called.loc[i, "segment"] == "cart_abandoners" and fates[i] == "unanswered"
    ]  # fmt: skip
    if abandoners:
        fates[abandoners[0]] = "ordered_first"
    return fates


def draw_attempts(
    person: Person,
    key: str,
    caller: str,
    fate: str,
    month: str,
    rng: np.random.Generator,
) -> list[dict]:
    """Return one customer's attempts (1-4), ending in their fate."""
    if fate == "reached":
        n_before = int(rng.choice([0, 0, 1, 1, 2, 3]))
        earlier = rng.choice(
            ["no_answer", "voicemail", "busy", "callback_requested"], size=n_before
        ).tolist()
        outcomes = earlier + ["connected"]
    elif fate in ("do_not_call", "wrong_number", "declined"):
        outcomes = rng.choice(
            ["no_answer", "voicemail"], size=int(rng.integers(0, 2))
        ).tolist() + [fate]
    elif fate == "voicemail_only":
        outcomes = ["voicemail"] + rng.choice(
            ["no_answer", "voicemail", "busy"], size=int(rng.integers(1, 4))
        ).tolist()
    else:
        outcomes = rng.choice(
            ["no_answer", "no_answer", "busy", "voicemail"],
            size=int(rng.integers(2, 5)),
        ).tolist()
    day = month_start(month) + timedelta(days=FIRST_CALL_DAY + int(rng.integers(0, 6)))
    if fate == "ordered_first":
        day = day + timedelta(days=4)
    rows = []
    for outcome in outcomes:
        low, high = TALK_SECONDS[outcome]
        rows.append(
            {
                "customer_key": key,
                "attempted_at": local_call_time(person, day, rng),
                "caller": caller,
                "outcome": outcome,
                "talk_seconds": int(rng.integers(low, high + 1)) if high else 0,
            }
        )
        day = day + timedelta(days=int(rng.integers(1, 4)))
    return rows


def local_call_time(person: Person, day: date, rng: np.random.Generator) -> datetime:
    """Return a moment on `day` inside the customer's 09:00-19:30 local window,
    expressed in the store's time zone."""
    minutes = int(rng.integers(9 * 60, 19 * 60 + 30))
    local = datetime.combine(
        day, time(minutes // 60, minutes % 60), tzinfo=ZoneInfo(person.zone)
    )
    return local.astimezone(STORE_ZONE)


def list_conversations(
    attempts: pd.DataFrame, called: pd.DataFrame, people: dict, *, month: str
) -> pd.DataFrame:
    """Return one row per connected customer, numbered by the time of the talk."""
    talks = attempts[attempts["outcome"] == "connected"].sort_values("attempted_at")
    talks = talks.merge(called[["customer_key", "segment"]], on="customer_key")
    return pd.DataFrame(
        {
            "conversation_id": [f"{month}-{i:02d}" for i in range(1, len(talks) + 1)],
            "customer_key": talks["customer_key"].to_numpy(),
            "segment": talks["segment"].to_numpy(),
            "interviewer": talks["caller"].to_numpy(),
            "talked_at": list(talks["attempted_at"]),
            "person": [people[k].number for k in talks["customer_key"]],
        }
    )


def draw_recoveries(
    call_list, attempts, conversations, store, people, *, fates, rng
) -> tuple[list[dict], dict]:
    """Return recovered-order drafts and ``customer_key -> recovery moment``.

    A reached abandoner orders 1-6 days after the conversation; a dialled one
    1-10 days after the first attempt; a hold-out customer 1-12 days after the
    median first attempt of the segment (the reference the calls step uses).
    Every recovery stays inside 14 days of its reference. One called abandoner
    orders two days before the first attempt (it must not count).
    """
    from helpers.demo.world import draw_items

    first = attempts.groupby("customer_key")["attempted_at"].min()
    talked = attempts[attempts["outcome"] == "connected"]
    talked = talked.groupby("customer_key")["attempted_at"].min()
    recovered = {}
    for group, keys in group_abandoners(call_list, first, talked, fates).items():
        n = round(RECOVERY_RATE[group] * len(keys))
        chosen = sorted(rng.choice(keys, size=n, replace=False).tolist()) if n else []
        for key in chosen:
            reference = first.get(key, median_moment(first, call_list))
            start = talked.get(key, reference)
            span = {"reached": 6, "not_reached": 10, "holdout": 12}[group]
            moment = start + timedelta(hours=float(rng.uniform(20, 24 * span)))
            recovered[key] = min(moment, reference + timedelta(days=13, hours=12))
    for key, fate in fates.items():
        if fate == "ordered_first":
            recovered[key] = first[key] - timedelta(days=2, hours=3)
    drafts = []
    for key, moment in sorted(recovered.items()):
        person = people[key]
        drafts.append(
            {
                "person": person.number,
                "shopify_id": person.shopify_id,
                "email": person.email,
                "created_at": moment.to_pydatetime()
                .astimezone(STORE_ZONE)
                .replace(microsecond=0),
                "items": last_basket(store, person) or draw_items(rng),
                "discount_code": "",
                "refunded": 0.0,
                "flaw": "",
            }
        )
    return drafts, recovered


def group_abandoners(call_list, first, talked, fates) -> dict[str, list[str]]:
    """Return the cart abandoners by what happened: reached, dialled, held back."""
    abandoners = call_list[call_list["segment"] == "cart_abandoners"]
    keys = abandoners["customer_key"]
    skipped = set(talked.index) | {k for k, f in fates.items() if f == "ordered_first"}
    return {
        "reached": [k for k in keys if k in talked.index],
        "not_reached": [k for k in keys if k in first.index and k not in skipped],
        "holdout": keys[abandoners["arm"] == "holdout"].tolist(),
    }


def median_moment(first: pd.Series, call_list: pd.DataFrame) -> pd.Timestamp:
    """Return the median first attempt among the dialled cart abandoners.

    The lower middle value for an even count, so it is an actual attempt time.
    """
    abandoners = call_list.loc[
        call_list["segment"] == "cart_abandoners", "customer_key"
    ]
    times = first.reindex(abandoners).dropna().sort_values()
    return times.iloc[(len(times) - 1) // 2]


def last_basket(store, person: Person):
    """Return the items of the person's latest abandoned checkout, if any."""
    mine = [c for c in store.checkouts if c.person == person.number]
    return max(mine, key=lambda c: c.created_at).items if mine else None


def write_call_log(outcome: MonthCalls, folder: Path, *, month: str, orders) -> Path:
    """Write ``calls/<month>/call-log.xlsx`` as the callers filled it in.

    ``recovered_order`` names the order on the reached customer's connected row
    once `orders` (numbered) is given; before that it stays blank.
    """
    log_rows = outcome.attempts.copy()
    ids = dict(
        zip(
            outcome.conversations["customer_key"],
            outcome.conversations["conversation_id"],
            strict=True,
        )
    )
    is_talk = log_rows["outcome"] == "connected"
    log_rows["notes_file"] = np.where(
        is_talk, log_rows["customer_key"].map(ids).fillna("") + ".md", ""
    )
    names = {}
    for order in orders or []:
        for key, moment in outcome.recovered_keys.items():
            if order.created_at == moment.astimezone(STORE_ZONE).replace(microsecond=0):
                names[key] = order.name
    log_rows["recovered_order"] = np.where(
        is_talk, [names.get(k, "") for k in log_rows["customer_key"]], ""
    )
    log_rows["attempted_at"] = [t.isoformat() for t in log_rows["attempted_at"]]
    target = folder / "calls" / month / "call-log.xlsx"
    return files.save_xlsx(log_rows[LOG_COLUMNS], target, sheet="calls")

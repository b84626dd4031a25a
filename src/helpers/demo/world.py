"""The demo store's people, orders and abandoned checkouts, before any file layout.

Everything here is invented: people are "Customer 17" with an example.com address
and a phone number from a range reserved for fiction (US 555-0100 to 555-0199 in
any area code; UK 07700 900000 to 900999). The world is drawn from seeded numpy
generators, so the same seed always gives the same store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

log = logging.getLogger(__name__)

STORE_ZONE = ZoneInfo("America/New_York")
HISTORY_START = date(2025, 6, 1)
HISTORY_END = date(2026, 11, 30)
N_PEOPLE = 1500
N_DUPLICATES = 12
N_EMAIL_LESS = 6

# Area code -> (province code, city, IANA zone); 555-0100..0199 is fictional in each.
US_AREAS = {
    "202": ("DC", "Washington", "America/New_York"),
    "212": ("NY", "New York", "America/New_York"),
    "617": ("MA", "Boston", "America/New_York"),
    "215": ("PA", "Philadelphia", "America/New_York"),
    "404": ("GA", "Atlanta", "America/New_York"),
    "305": ("FL", "Miami", "America/New_York"),
    "312": ("IL", "Chicago", "America/Chicago"),
    "512": ("TX", "Austin", "America/Chicago"),
    "612": ("MN", "Minneapolis", "America/Chicago"),
    "303": ("CO", "Denver", "America/Denver"),
    "602": ("AZ", "Phoenix", "America/Phoenix"),
    "206": ("WA", "Seattle", "America/Los_Angeles"),
    "503": ("OR", "Portland", "America/Los_Angeles"),
    "415": ("CA", "San Francisco", "America/Los_Angeles"),
    "213": ("CA", "Los Angeles", "America/Los_Angeles"),
}
UK_CITIES = ("London", "Manchester", "Leeds", "Bristol", "Glasgow")

PRODUCTS = (
    # name, sku, price, vendor
    ("Ridgeline Rain Jacket", "RJ-RDG-01", 149.00, "Northfold"),
    ("Trailhead Hiking Boots", "HB-TRL-02", 169.00, "Stonepath"),
    ("Merino Base Layer Top", "BL-MER-03", 79.00, "Northfold"),
    ("Down Puffer Vest", "PV-DWN-04", 119.00, "Northfold"),
    ("Summit 45L Backpack", "BP-SUM-45", 189.00, "Carryall"),
    ("Daypack 20L", "BP-DAY-20", 69.00, "Carryall"),
    ("Wool Hiking Socks (3 pack)", "SK-WOL-3P", 24.00, "Stonepath"),
    ("Insulated Water Bottle", "WB-INS-75", 32.00, "Campcraft"),
    ("Two-Person Dome Tent", "TN-DOM-2P", 229.00, "Campcraft"),
    ("Trekking Poles (pair)", "TP-TRK-PR", 59.00, "Stonepath"),
    ("Fleece Quarter Zip", "FL-QZP-05", 65.00, "Northfold"),
    ("Packable Sun Hat", "HT-SUN-06", 28.00, "Northfold"),
    ("Camp Stove Kit", "ST-CMP-07", 89.00, "Campcraft"),
    ("Headlamp 300", "HL-300-08", 36.00, "Campcraft"),
    ("Softshell Trail Pants", "PT-SFT-09", 95.00, "Northfold"),
)
PRODUCT_WEIGHTS = np.linspace(2.0, 0.6, len(PRODUCTS))
LINE_COUNTS = (1, 1, 1, 2, 2, 3, 4)
QUANTITIES = np.array([1, 1, 1, 1, 2, 3])
DISCOUNT_CODES = ("WELCOME10", "TRAIL15", "FALLGEAR", "FREESHIP")


@dataclass(frozen=True)
class Person:
    """One invented customer record as the store holds it."""

    number: int
    shopify_id: int
    email: str | None
    country: str
    province: str
    city: str
    zone: str
    phone_e164: str | None
    accepts_email: bool
    accepts_sms: bool
    joined_on: date
    tags: tuple[str, ...] = ()
    duplicate_of: int | None = None

    @property
    def name(self) -> str:
        return f"Customer {self.number}"


@dataclass(frozen=True)
class Order:
    """One order (or abandoned checkout) with its line items."""

    name: str
    order_id: int
    person: int
    email: str | None
    created_at: datetime
    items: tuple[tuple[int, int], ...]  # (product index, quantity)
    discount_code: str = ""
    refunded: float = 0.0  # share of the total refunded
    flaw: str = ""  # "", "negative_total", "bad_date": rows a reader must reject
    source: str = "web"
    tags: tuple[str, ...] = field(default=())


def draw_people(rng: np.random.Generator) -> list[Person]:
    """Return the store's invented customers, duplicates and flaws included.

    Parameters
    ----------
    rng : numpy.random.Generator
        The seeded generator; the same state gives the same people.

    Returns
    -------
    list of Person
        ``N_PEOPLE`` people numbered from 1, then ``N_DUPLICATES`` second records
        of existing people whose e-mail differs only in letter case.
    """
    # Hand out fictional numbers without repeats: 100 per US area, 1000 in the UK.
    us_numbers = [(area, n) for area in US_AREAS for n in range(100)]
    us_order = rng.permutation(len(us_numbers))
    uk_order = rng.permutation(1000)
    span = (HISTORY_END - HISTORY_START).days
    people = []
    for index in range(N_PEOPLE):
        number = index + 1
        is_uk = rng.random() < 0.09
        has_phone = rng.random() < 0.82
        if is_uk:
            city = UK_CITIES[int(rng.integers(len(UK_CITIES)))]
            place = ("GB", "", city, "Europe/London")
            phone = f"+447700900{uk_order[index % 1000]:03d}"
        else:
            area, line = us_numbers[us_order[index % len(us_numbers)]]
            province, city, zone = US_AREAS[area]
            place = ("US", province, city, zone)
            phone = f"+1{area}55501{line:02d}"
        # Growth: later months bring more new customers.
        joined = HISTORY_START + timedelta(days=int(span * rng.random() ** 0.8))
        people.append(
            Person(
                number=number,
                shopify_id=7301000000000 + number * 7919,
                email=f"customer{number}@example.com",
                country=place[0],
                province=place[1],
                city=place[2],
                zone=place[3],
                phone_e164=phone if has_phone else None,
                accepts_email=bool(rng.random() < 0.68),
                accepts_sms=bool(rng.random() < 0.22),
                joined_on=joined,
            )
        )
    people = drop_some_emails(people, rng)
    return people + draw_duplicates(people, rng)


def drop_some_emails(people: list[Person], rng: np.random.Generator) -> list[Person]:
    """Return `people` with a few phone-only customers (no e-mail on file)."""
    with_phone = [p.number for p in people if p.phone_e164]
    chosen = set(rng.choice(with_phone, size=N_EMAIL_LESS, replace=False).tolist())
    return [replace(p, email=None) if p.number in chosen else p for p in people]


def draw_duplicates(people: list[Person], rng: np.random.Generator) -> list[Person]:
    """Return second records of some people, e-mail typed with other capitals."""
    candidates = [p for p in people if p.email]
    picks = rng.choice(len(candidates), size=N_DUPLICATES, replace=False)
    duplicates = []
    for offset, pick in enumerate(sorted(picks.tolist())):
        original = candidates[pick]
        local = f"Customer{original.number}" if offset % 2 else original.email
        email = f"{local.split('@')[0]}@Example.com" if offset % 2 else local.upper()
        duplicates.append(
            replace(
                original,
                shopify_id=original.shopify_id + 1,
                email=email,
                joined_on=min(original.joined_on + timedelta(days=40), HISTORY_END),
                duplicate_of=original.number,
            )
        )
    return duplicates


def local_datetime(day: date, rng: np.random.Generator) -> datetime:
    """Return a store-local, time-zone-aware moment on `day` at a shopping hour."""
    minutes = int(rng.normal(14 * 60, 220)) % (24 * 60)
    moment = datetime.combine(day, time(minutes // 60, minutes % 60))
    return moment.replace(second=int(rng.integers(60)), tzinfo=STORE_ZONE)


def draw_items(rng: np.random.Generator) -> tuple[tuple[int, int], ...]:
    """Return one basket: 1-4 distinct products with quantities.

    Notes
    -----
    Products are drawn without replacement, weighted towards the first ones in
    :data:`PRODUCTS`, by the Efraimidis-Spirakis keys ``u ** (1 / weight)``:
    numpy's weighted ``choice`` without replacement is far slower per call.
    """
    n_lines = LINE_COUNTS[int(rng.integers(len(LINE_COUNTS)))]
    keys = rng.random(len(PRODUCTS)) ** (1 / PRODUCT_WEIGHTS)
    products = np.argsort(-keys, kind="stable")[:n_lines]
    quantities = QUANTITIES[rng.integers(len(QUANTITIES), size=n_lines)]
    return tuple((int(p), int(q)) for p, q in zip(products, quantities, strict=True))


def draw_history(people: list[Person], rng: np.random.Generator) -> list[dict]:
    """Return every person's ordinary orders as dicts (person, email, day, items).

    Notes
    -----
    About one customer in eight never orders (an account or a checkout only);
    about half of buyers order once. Repeat orders follow at exponential gaps.
    """
    drafts = []
    for person in people:
        if person.duplicate_of is not None:
            # The stray second record usually carries one order, typed at checkout.
            if rng.random() < 0.7:
                drafts.append(draft_order(person, person.joined_on, rng))
            continue
        if rng.random() < 0.13:
            continue
        n_orders = int(rng.choice([1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6]))
        day = person.joined_on
        for _ in range(n_orders):
            if day > HISTORY_END:
                break
            drafts.append(draft_order(person, day, rng))
            day = day + timedelta(days=int(rng.exponential(55)) + 7)
    return drafts


def draft_order(person: Person, day: date, rng: np.random.Generator) -> dict:
    """Return one order draft for `person` on `day`."""
    code = ""
    if rng.random() < 0.18:
        code = DISCOUNT_CODES[int(rng.integers(len(DISCOUNT_CODES)))]
    return {
        "person": person.number,
        "shopify_id": person.shopify_id,
        "email": person.email,
        "created_at": local_datetime(day, rng),
        "items": draw_items(rng),
        "discount_code": code,
        "refunded": draw_refund(rng),
        "flaw": "",
    }


def draw_refund(rng: np.random.Generator) -> float:
    """Return the refunded share of an order: mostly nothing, sometimes all."""
    roll = rng.random()
    return 1.0 if roll < 0.025 else 0.5 if roll < 0.045 else 0.0


def number_orders(drafts: list[dict]) -> list[Order]:
    """Return orders named #1001, #1002, ... in time order, with their ids."""
    ordered = sorted(drafts, key=lambda d: (d["created_at"], d["shopify_id"]))
    orders = []
    for position, draft in enumerate(ordered):
        orders.append(
            Order(
                name=f"#{1001 + position}",
                order_id=6100000000000 + position * 3571,
                person=draft["person"],
                email=draft["email"],
                created_at=draft["created_at"],
                items=draft["items"],
                discount_code=draft["discount_code"],
                refunded=draft["refunded"],
                flaw=draft["flaw"],
            )
        )
    return orders


def order_total(order: Order) -> dict:
    """Return an order's money: subtotal, discount, shipping, taxes, total."""
    subtotal = sum(PRODUCTS[p][2] * q for p, q in order.items)
    discount = 0.0
    if order.discount_code in ("WELCOME10", "FALLGEAR"):
        discount = round(subtotal * 0.10, 2)
    elif order.discount_code == "TRAIL15":
        discount = round(subtotal * 0.15, 2)
    shipping = 0.0 if subtotal >= 99 or order.discount_code == "FREESHIP" else 8.95
    taxes = round((subtotal - discount) * 0.06, 2)
    total = round(subtotal - discount + shipping + taxes, 2)
    return {
        "subtotal": subtotal,
        "discount": discount,
        "shipping": shipping,
        "taxes": taxes,
        "total": total,
    }


MONTHS = ("2026-10", "2026-11")
N_WINDOW_ABANDONERS = {"2026-10": 128, "2026-11": 136}
ABANDONED_WITHIN_DAYS = 30  # segments.abandoned_within_days
N_BACKGROUND_CHECKOUTS = 62
N_LATE_CHECKOUTS = 20


def month_start(month: str) -> date:
    """Return the first day of ``YYYY-MM``."""
    year, number = (int(part) for part in month.split("-"))
    return date(year, number, 1)


def month_end(month: str) -> date:
    """Return the last day of ``YYYY-MM``."""
    start = month_start(month)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(1)


def download_moment(month: str) -> datetime:
    """Return when the month's exports were downloaded: its end, store time."""
    end = month_end(month) + timedelta(days=1)
    return datetime.combine(end, time(0, 0), tzinfo=STORE_ZONE)


def planning_moment(month: str) -> datetime:
    """Return when the month's call list was planned: its first moment, UTC.

    Step 01 counts days to the month's first day in UTC; the exports the call
    list was drawn from end there.
    """
    return datetime.combine(month_start(month), time(0, 0), tzinfo=ZoneInfo("UTC"))


def checkout_window(month: str) -> tuple[date, date]:
    """Return the days whose abandoned checkouts feed `month`'s call list.

    The call list is planned on the month's first day from checkouts at most
    ``ABANDONED_WITHIN_DAYS`` old; the window keeps a day clear at both ends so
    late-evening checkouts stay inside it in UTC too (end exclusive).
    """
    start = month_start(month)
    return start - timedelta(days=ABANDONED_WITHIN_DAYS - 1), start - timedelta(1)


def draw_checkouts(
    people: list[Person], drafts: list[dict], rng: np.random.Generator
) -> tuple[list[Person], list[dict]]:
    """Return people (abandoners' consent adjusted) and abandoned-checkout drafts.

    Parameters
    ----------
    people : list of Person
        From :func:`draw_people`.
    drafts : list of dict
        Ordinary orders from :func:`draw_history`; abandoners are chosen among
        people with no ordinary order from their checkout until a month after the
        call list is planned, so every later order of theirs is a recovery.
    rng : numpy.random.Generator

    Returns
    -------
    tuple
        ``(people, checkouts)``; each checkout draft has ``person``,
        ``shopify_id``, ``email``, ``created_at``, ``items``.
    """
    by_number = {p.number: p for p in people if p.duplicate_of is None}
    ordered_on: dict[int, list[date]] = {}
    for draft in drafts:
        ordered_on.setdefault(draft["person"], []).append(draft["created_at"].date())
    used: set[int] = set()
    checkouts = []
    for month in MONTHS:
        start, end = checkout_window(month)
        quiet_until = end + timedelta(days=31)
        candidates = [
            n
            for n, p in by_number.items()
            if n not in used
            and p.email
            and not any(start <= d <= quiet_until for d in ordered_on.get(n, []))
        ]
        chosen = pick_abandoners(candidates, by_number, N_WINDOW_ABANDONERS[month], rng)
        used.update(chosen)
        for number in chosen:
            by_number[number] = prepare_abandoner(by_number[number], start, end, rng)
            day = draw_day(start, end, rng)
            checkouts.append(draft_checkout(by_number[number], day, rng))
            if rng.random() < 0.08:
                checkouts.append(draft_checkout(by_number[number], day, rng))
    checkouts += draw_other_checkouts(by_number, used, rng)
    people = [
        by_number.get(p.number, p) if p.duplicate_of is None else p for p in people
    ]
    return people, checkouts


def pick_abandoners(
    candidates: list[int], by_number: dict, size: int, rng: np.random.Generator
) -> list[int]:
    """Return `size` candidates, people with a phone far more likely."""
    weights = np.array([8.0 if by_number[n].phone_e164 else 0.4 for n in candidates])
    picks = rng.choice(
        len(candidates), size=size, replace=False, p=weights / weights.sum()
    )
    return sorted(candidates[i] for i in picks)


def prepare_abandoner(
    person: Person, start: date, end: date, rng: np.random.Generator
) -> Person:
    """Return `person` as an abandoner: most agreed to marketing at checkout."""
    joined = person.joined_on if person.joined_on < end else start
    return replace(person, accepts_email=bool(rng.random() < 0.9), joined_on=joined)


def draw_day(start: date, end: date, rng: np.random.Generator) -> date:
    """Return a day in ``[start, end)``."""
    return start + timedelta(days=int(rng.integers((end - start).days)))


def draft_checkout(person: Person, day: date, rng: np.random.Generator) -> dict:
    """Return one abandoned-checkout draft for `person` on `day`."""
    return {
        "person": person.number,
        "shopify_id": person.shopify_id,
        "email": person.email,
        "created_at": local_datetime(day, rng),
        "items": draw_items(rng),
    }


def draw_other_checkouts(
    by_number: dict, used: set[int], rng: np.random.Generator
) -> list[dict]:
    """Return checkouts outside the call-list windows: older ones and late ones."""
    others = [n for n in sorted(by_number) if n not in used and by_number[n].email]
    picks = rng.choice(
        others, size=N_BACKGROUND_CHECKOUTS + N_LATE_CHECKOUTS, replace=False
    )
    checkouts = []
    for index, number in enumerate(picks.tolist()):
        person = by_number[number]
        if index < N_BACKGROUND_CHECKOUTS:
            day = draw_day(date(2025, 7, 1), date(2026, 8, 25), rng)
        else:
            day = draw_day(date(2026, 11, 18), date(2026, 11, 29), rng)
        if day >= person.joined_on:
            checkouts.append(draft_checkout(person, day, rng))
    return checkouts


def number_checkouts(drafts: list[dict]) -> list[Order]:
    """Return abandoned checkouts in time order, each named by its checkout id."""
    ordered = sorted(drafts, key=lambda d: (d["created_at"], d["shopify_id"]))
    checkouts = []
    for position, draft in enumerate(ordered):
        checkout_id = 31870000000000 + position * 7717
        checkouts.append(
            Order(
                name=str(checkout_id),
                order_id=checkout_id,
                person=draft["person"],
                email=draft["email"],
                created_at=draft["created_at"],
                items=draft["items"],
            )
        )
    return checkouts

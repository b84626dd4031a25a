"""The demo's conversation notes: one Markdown file per conversation.

Each note has YAML front matter and speaker-labelled lines. Themes are drawn per
segment, with the price objection allotted by count (about one cart abandoner in
nine) and with saturation built in: after the first 60% of a month's conversations
no new theme appears. A couple of notes carry a phone number or an e-mail in the
text, which later steps must redact.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import files
from helpers.demo import phrases
from helpers.demo.world import PRODUCTS

log = logging.getLogger(__name__)

PRICE_SHARE = 1 / 9
NEW_THEMES_UNTIL = 0.6
NO_CONSENT_SHARE = 0.12  # customers who say no to being quoted
SATURATION_RUN = 3  # coding.saturation_run: this many in a row add no new code
QUESTIONS = {
    "2026-10": "What made you stop at checkout?",
    "2026-11": "What almost stopped you from buying?",
}


def write_notes(
    calls,
    folder: Path,
    *,
    month: str,
    buyers: set,
    rng: np.random.Generator,
    coding_rng: np.random.Generator,
) -> pd.DataFrame:
    """Write ``conversations/<month>/<conversation_id>.md`` for every conversation.

    Parameters
    ----------
    calls : MonthCalls
        The month's simulated calls (``conversations`` has one row per talk).
    folder : Path
        The study folder.
    month : str
        ``YYYY-MM``.
    buyers : set
        Keys of customers who ordered in the month: the rest are non-buyers.
    rng : numpy.random.Generator
        Draws what customers say.
    coding_rng : numpy.random.Generator
        Draws how each coder codes each customer turn (done here, turn by turn,
        so late conversations can keep to codes both coders already agreed on).

    Returns
    -------
    DataFrame
        One row per customer turn: ``conversation_id``, ``customer_key``,
        ``segment``, ``consent_to_quote``, ``turn`` (1-based among the customer's
        turns), ``text``, ``codes`` (tuple of the intended code ids), ``coded``
        (coder -> the codes that coder gave).
    """
    conversations = calls.conversations
    is_buyer = conversations["customer_key"].isin(buyers).to_numpy()
    late = find_late_conversations(conversations)
    price_at = choose_price_citers(conversations, is_buyer=is_buyer, late=late, rng=rng)
    pii_at = set(rng.choice(len(conversations), size=2, replace=False).tolist())
    n_refusals = max(2, round(NO_CONSENT_SHARE * len(conversations)))
    refused = set(
        rng.choice(len(conversations), size=n_refusals, replace=False).tolist()
    )
    heard: dict[str, Counter] = {}
    turns = []
    for index, row in conversations.iterrows():
        # Late in a segment's run, customers only repeat what both coders
        # already agreed on at least twice in that segment.
        seen = heard.setdefault(row["segment"], Counter())
        allowed = repeated_codes(seen) if index in late else None
        themes = plan_themes(
            row["segment"], allowed, cites_price=index in price_at, rng=rng
        )
        said = draw_turns(row, themes, allowed=allowed, rng=rng)
        said.append((closing(row, rng=rng, with_pii=index in pii_at), ()))
        coded = [code_turn(codes, rng=coding_rng) for _, codes in said]
        seen.update(code for given in coded for code in agreed_codes(given))
        consent = index not in refused
        text = format_note(row, said, month=month, consent=consent)
        path = folder / "conversations" / month / f"{row['conversation_id']}.md"
        files.save_text(text, path)
        turns += [
            {
                "conversation_id": row["conversation_id"],
                "customer_key": row["customer_key"],
                "segment": row["segment"],
                "consent_to_quote": consent,
                "turn": number,
                "text": line,
                "codes": codes,
                "coded": given,
            }
            for number, ((line, codes), given) in enumerate(
                zip(said, coded, strict=True), start=1
            )
        ]
    log.info("wrote %d conversation notes for %s", len(conversations), month)
    return pd.DataFrame(turns)


def find_late_conversations(conversations: pd.DataFrame) -> set[int]:
    """Return positions in the last part of their segment's run: past the first
    ``NEW_THEMES_UNTIL`` share, and always the last ``SATURATION_RUN``."""
    late = set()
    for _, group in conversations.groupby("segment", sort=False):
        n_early = min(int(NEW_THEMES_UNTIL * len(group)), len(group) - SATURATION_RUN)
        late |= set(group.index[max(n_early, 1) :])
    return late


def choose_price_citers(
    conversations: pd.DataFrame, *, is_buyer, late: set, rng: np.random.Generator
) -> set[int]:
    """Return the conversations (by position) whose customer cites price.

    Price goes to ``round(n_non_buyers / 9)`` non-buyers (at least one; cart
    abandoners first, early in the month), and to nobody else, so about one
    non-buyer in nine cites it. A non-buyer is a customer with no order in the
    month, as step 03 counts.
    """
    n = len(conversations)
    early = [i for i in range(n) if not is_buyer[i] and i not in late]
    early.sort(key=lambda i: conversations.loc[i, "segment"] != "cart_abandoners")
    n_price = max(1, round(PRICE_SHARE * int((~is_buyer).sum())))
    candidates = early[: max(n_price, len(early) // 2)]
    size = min(n_price, len(candidates))
    return set(rng.choice(candidates, size=size, replace=False).tolist())


def repeated_codes(seen: Counter) -> set[str]:
    """Return the codes agreed at least twice, else at least once."""
    return {c for c, n in seen.items() if n >= 2} or set(seen)


def code_turn(codes: tuple, *, rng: np.random.Generator) -> dict[str, list[str]]:
    """Return each coder's codes for one customer turn."""
    from helpers.demo.sheets import CODERS, code_excerpt

    return {coder: code_excerpt(codes, rng=rng) for coder in CODERS}


def agreed_codes(given: dict[str, list[str]]) -> set[str]:
    """Return the codes every coder gave."""
    return set.intersection(*(set(codes) for codes in given.values()))


def plan_themes(
    segment: str, allowed: set | None, *, cites_price: bool, rng: np.random.Generator
) -> list[str]:
    """Return one conversation's objection themes (1-2 codes).

    `allowed`, when given, holds the codes already heard in the segment: late
    conversations raise nothing new, so themes saturate.
    """
    weights = phrases.WEIGHTS[segment]
    codes = [c for c in weights if allowed is None or c in allowed]
    if not codes:
        # Nothing objection-like heard often yet: repeat the segment's commonest.
        codes = [max(weights, key=weights.get)] if allowed else list(weights)
    chance = np.array([weights[c] for c in codes])
    size = min(1 if rng.random() < 0.45 else 2, len(codes))
    picked = rng.choice(codes, size=size, replace=False, p=chance / chance.sum())
    picked = picked.tolist()
    return ["OBJ-PRICE", *picked[:1]] if cites_price else picked


def draw_turns(
    row, themes: list[str], *, allowed: set | None, rng: np.random.Generator
) -> list[tuple]:
    """Return the customer's turns as ``(text, codes)``, in speaking order.

    Optional turns (comparing, praise, delivery) and two-code phrases are only
    drawn when `allowed` is None or already holds their codes.
    """
    item = phrases.SHORT_ITEMS[PRODUCTS[int(rng.integers(len(PRODUCTS)))][0]]
    talk = {**phrases.THEMES, **phrases.STAGE_TALK}

    def say(code: str) -> tuple:
        return pick_phrase(talk[code], code, item, rng, allowed=allowed)

    def may(code: str) -> bool:
        return allowed is None or code in allowed

    said = [say("STAGE-DISCOVER"), *(say(theme) for theme in themes)]
    if rng.random() < 0.5 and may("STAGE-COMPARE"):
        said.insert(2, say("STAGE-COMPARE"))
    if row["segment"] == "first_time_no_return":
        said.append(say("STAGE-DELIVERY"))
        if rng.random() < 0.5 and may("POS-QUALITY"):
            said.append(say("POS-QUALITY"))
    if rng.random() < 0.15 and may("POS-SERVICE"):
        said.append(say("POS-SERVICE"))
    return said


def pick_phrase(
    options: list[str],
    code: str,
    item: str,
    rng: np.random.Generator,
    *,
    allowed: set | None = None,
) -> tuple:
    """Return one phrase with its codes (the theme, plus a stage if it names one).

    With `allowed`, a phrase whose second code is not in it is skipped; when that
    leaves none, a phrase is said with its theme's code alone.
    """
    usable = [
        o for o in options
        if allowed is None or " | " not in o or o.partition(" | ")[2] in allowed
    ]  # fmt: skip
    if not usable:
        usable = [o.partition(" | ")[0] for o in options]
    text, _, extra = usable[int(rng.integers(len(usable)))].partition(" | ")
    codes = (code, extra) if extra else (code,)
    return text.format(item=item), codes


def closing(row, *, rng: np.random.Generator, with_pii: bool) -> str:
    """Return the customer's last words; some slip in a phone number or e-mail."""
    if with_pii:
        template = phrases.PII_CLOSINGS[int(rng.integers(len(phrases.PII_CLOSINGS)))]
        return template.format(
            phone=f"202-555-01{row['person'] % 100:02d}",
            email=f"customer{row['person']}@example.com",
        )
    if row.get("is_recovered"):
        return phrases.RECOVERED_CLOSING
    return phrases.CLOSINGS[int(rng.integers(len(phrases.CLOSINGS)))]


def format_note(row, said: list[tuple], *, month: str, consent: bool) -> str:
    """Return one note: front matter, then alternating labelled lines."""
    front = [
        "---",
        f'conversation_id: "{row["conversation_id"]}"',
        f"customer_key: {row['customer_key']}",
        f"date: {row['talked_at'].date().isoformat()}",
        f"segment: {row['segment']}",
        f"interviewer: {row['interviewer']}",
        f"consent_to_quote: {'true' if consent else 'false'}",
        "---",
    ]
    questions = [phrases.OPENERS[row["segment"]], QUESTIONS[month]]
    # Probes rotate from a per-note offset, so none repeats within a note.
    offset = int(row["conversation_id"][-2:])
    probes = [phrases.PROBES[(offset + k) % len(phrases.PROBES)] for k in range(9)]
    lines = []
    for index, (text, _) in enumerate(said):
        if index < len(questions):
            asked = questions[index]
        elif index == len(said) - 1:
            asked = phrases.CLOSING_QUESTION
        else:
            asked = probes[index - len(questions)]
        lines += [f"Interviewer: {asked}", f"Customer: {text}"]
    return "\n".join(front + lines) + "\n"

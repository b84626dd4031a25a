"""The demo's conversation notes: one Markdown file per conversation.

Each note has YAML front matter and speaker-labelled lines. Themes are drawn per
segment, with the price objection allotted by count (about one cart abandoner in
nine) and with saturation built in: after the first 60% of a month's conversations
no new theme appears. A couple of notes carry a phone number or an e-mail in the
text, which later steps must redact.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import files
from helpers.demo import phrases
from helpers.demo.world import PRODUCTS

log = logging.getLogger(__name__)

PRICE_SHARE = 1 / 9
NEW_THEMES_UNTIL = 0.6
QUESTIONS = {
    "2026-10": "What made you stop at checkout?",
    "2026-11": "What almost stopped you from buying?",
}


def write_notes(
    calls, folder: Path, *, month: str, buyers: set, rng: np.random.Generator
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

    Returns
    -------
    DataFrame
        One row per customer turn: ``conversation_id``, ``customer_key``,
        ``segment``, ``consent_to_quote``, ``turn`` (1-based among the customer's
        turns), ``text``, ``codes`` (tuple of the intended code ids).
    """
    conversations = calls.conversations
    is_buyer = conversations["customer_key"].isin(buyers).to_numpy()
    themes = plan_themes(conversations, is_buyer=is_buyer, rng=rng)
    pii_at = set(rng.choice(len(conversations), size=2, replace=False).tolist())
    turns = []
    for index, row in conversations.iterrows():
        consent = bool(rng.random() > 0.15)
        said = draw_turns(row, themes[index], rng=rng, with_pii=index in pii_at)
        text = format_note(row, said, month=month, consent=consent)
        files.save_text(
            text, folder / "conversations" / month / f"{row['conversation_id']}.md"
        )
        for number, (line, codes) in enumerate(said, start=1):
            turns.append(
                {
                    "conversation_id": row["conversation_id"],
                    "customer_key": row["customer_key"],
                    "segment": row["segment"],
                    "consent_to_quote": consent,
                    "turn": number,
                    "text": line,
                    "codes": codes,
                }
            )
    log.info("wrote %d conversation notes for %s", len(conversations), month)
    return pd.DataFrame(turns)


def plan_themes(
    conversations: pd.DataFrame, *, is_buyer, rng: np.random.Generator
) -> list[list[str]]:
    """Return each conversation's themes (1-2 codes), saturating over the month.

    Price goes to ``round(n_non_buyers / 9)`` non-buyers (at least one; cart
    abandoners first), and to nobody else, so about one non-buyer in nine cites
    it. A non-buyer is a customer with no order in the month, as step 03 counts.
    """
    n = len(conversations)
    early = [i for i in range(n) if not is_buyer[i] and i < NEW_THEMES_UNTIL * n]
    early.sort(key=lambda i: conversations.loc[i, "segment"] != "cart_abandoners")
    n_price = max(1, round(PRICE_SHARE * int((~is_buyer).sum())))
    candidates = early[: max(n_price, len(early) // 2)]
    size = min(n_price, len(candidates))
    price_at = set(rng.choice(candidates, size=size, replace=False).tolist())
    seen: set[str] = set()
    plans = []
    for index in range(n):
        weights = phrases.WEIGHTS[conversations.loc[index, "segment"]]
        codes = list(weights)
        if index >= NEW_THEMES_UNTIL * n:
            codes = [c for c in codes if c in seen] or codes
        chance = np.array([weights[c] for c in codes])
        size = 1 if rng.random() < 0.45 else 2
        picked = rng.choice(
            codes, size=min(size, len(codes)), replace=False, p=chance / chance.sum()
        ).tolist()
        if index in price_at:
            picked = ["OBJ-PRICE", *picked[:1]]
        seen.update(picked)
        plans.append(picked)
    return plans


def draw_turns(
    row, themes: list[str], *, rng: np.random.Generator, with_pii: bool
) -> list[tuple]:
    """Return the customer's turns as ``(text, codes)``, in speaking order."""
    item = phrases.SHORT_ITEMS[PRODUCTS[int(rng.integers(len(PRODUCTS)))][0]]
    said = [
        pick_phrase(phrases.STAGE_TALK["STAGE-DISCOVER"], "STAGE-DISCOVER", item, rng)
    ]
    for theme in themes:
        said.append(pick_phrase(phrases.THEMES[theme], theme, item, rng))
    if rng.random() < 0.5:
        said.insert(
            2,
            pick_phrase(
                phrases.STAGE_TALK["STAGE-COMPARE"], "STAGE-COMPARE", item, rng
            ),
        )
    if row["segment"] == "first_time_no_return":
        talk = phrases.STAGE_TALK["STAGE-DELIVERY"]
        said.append(pick_phrase(talk, "STAGE-DELIVERY", item, rng))
        if rng.random() < 0.5:
            said.append(
                pick_phrase(phrases.THEMES["POS-QUALITY"], "POS-QUALITY", item, rng)
            )
    if rng.random() < 0.15:
        said.append(
            pick_phrase(phrases.THEMES["POS-SERVICE"], "POS-SERVICE", item, rng)
        )
    said.append((closing(row, rng=rng, with_pii=with_pii), ()))
    return said


def pick_phrase(
    options: list[str], code: str, item: str, rng: np.random.Generator
) -> tuple:
    """Return one phrase with its codes (the theme, plus a stage if it names one)."""
    text, _, extra = options[int(rng.integers(len(options)))].partition(" | ")
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

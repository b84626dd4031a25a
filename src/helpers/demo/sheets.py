"""The demo's coding sheets, reconciliation, pre-call predictions and insight log.

Two coders (Sam and Rita) code every excerpt blind. Each keeps the intended code
most of the time and sometimes swaps it for a neighbouring one or leaves it out,
so their agreement lands around kappa 0.7-0.85 with realistic disagreements.
Then they talk most disagreements through, as a finished month would show.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import files
from helpers.demo.codebook import leaf_ids

log = logging.getLogger(__name__)

CODERS = ("Sam", "Rita")
KEEP_CODE = 0.86
# The code a coder reaches for instead; never OBJ-PRICE, so price stays countable.
NEIGHBOURS = {
    "OBJ-SHIP-COST": "OBJ-DELIVERY",
    "OBJ-TRUST": "OBJ-FIT", "OBJ-FIT": "OBJ-TRUST", "INFO-PRODUCT": "OBJ-FIT",
    "DISC-CODE": "STAGE-CHECKOUT", "OBJ-DELIVERY": "STAGE-DELIVERY",
    "STAGE-COMPARE": "STAGE-DISCOVER", "STAGE-CHECKOUT": "OBJ-SHIP-COST",
    "POS-SERVICE": "POS-QUALITY",
}  # fmt: skip
SHEET_COLUMNS = [
    "conversation_id", "excerpt_id", "position", "speaker", "text",
    "code_1", "code_2", "code_3",
]  # fmt: skip
PREDICTION_HIT = {"2026-10": 0.35, "2026-11": 0.6}
# Disagreements the coders have not talked through yet when the report is
# written: none left from last month, a few from the month just coded.
STILL_OPEN = {"2026-10": 0.0, "2026-11": 0.15}


def split_demo_excerpts(folder: Path, month: str) -> pd.DataFrame:
    """Return the month's excerpts exactly as step 03 splits them."""
    from helpers.coding import read_conversations, split_excerpts

    conversations = read_conversations(folder / "conversations" / month)
    return split_excerpts(conversations)


def write_coding_sheets(
    turns: pd.DataFrame,
    folder: Path,
    *,
    month: str,
    codebook: dict,
) -> pd.DataFrame:
    """Write ``coding/<month>/<coder>.xlsx`` for both coders.

    Parameters
    ----------
    turns : DataFrame
        From :func:`helpers.demo.notes.write_notes`, each coder's codes drawn.
    folder : Path
        The study folder.
    month : str
        ``YYYY-MM``.
    codebook : dict
        Its leaf ids fill the drop-downs.

    Returns
    -------
    DataFrame
        Step 03's excerpts with ``codes`` (intended), ``agreed`` (the codes both
        coders gave), ``segment`` and ``consent_to_quote`` added.

    Raises
    ------
    RuntimeError
        When the customer excerpts do not line up with the turns written.
    """
    excerpts = split_demo_excerpts(folder, month)
    spoken = excerpts[excerpts["speaker"] == "customer"]
    if len(spoken) != len(turns) or list(spoken["text"]) != list(turns["text"]):
        raise RuntimeError(f"demo notes for {month} did not split one excerpt per turn")
    extra = turns[["codes", "coded", "segment", "consent_to_quote"]]
    excerpts = excerpts.join(extra.set_axis(spoken.index))
    blank = dict.fromkeys(CODERS, [])
    excerpts["codes"] = [c if isinstance(c, tuple) else () for c in excerpts["codes"]]
    excerpts["coded"] = [g if isinstance(g, dict) else blank for g in excerpts["coded"]]
    from helpers.coding import NO_CODE

    codes = [*leaf_ids(codebook), NO_CODE]
    is_customer = (excerpts["speaker"] == "customer").to_numpy()
    for coder in CODERS:
        sheet = excerpts[
            ["conversation_id", "excerpt_id", "position", "speaker", "text"]
        ].copy()
        # A finished sheet: a customer line the coder found nothing in says so.
        coded = [
            given[coder] or ([NO_CODE] if spoken else [])
            for given, spoken in zip(excerpts["coded"], is_customer, strict=True)
        ]
        for slot in range(3):
            sheet[f"code_{slot + 1}"] = [
                c[slot] if len(c) > slot else "" for c in coded
            ]
        files.save_xlsx(
            sheet[SHEET_COLUMNS],
            folder / "coding" / month / f"{coder}.xlsx",
            sheet="coding",
            dropdowns={f"code_{slot}": codes for slot in (1, 2, 3)},
            column_widths={"text": 80},
        )
    agreed = [
        tuple(sorted(set.intersection(*(set(c) for c in given.values()))))
        for given in excerpts["coded"]
    ]
    return excerpts.assign(agreed=agreed)


def write_reconciliation(
    excerpts: pd.DataFrame, folder: Path, *, month: str, rng: np.random.Generator
) -> Path:
    """Write ``coding/<month>/reconciled.xlsx`` as the two coders fill it in.

    Parameters
    ----------
    excerpts : DataFrame
        From :func:`write_coding_sheets`: ``excerpt_id`` and ``codes`` (intended).
    folder : Path
        The study folder, its coding sheets already written.
    month : str
        ``YYYY-MM``; :data:`STILL_OPEN` gives the share left undecided.
    rng : numpy Generator
        Draws which disagreements are still open.

    Returns
    -------
    Path
        The sheet written.

    Notes
    -----
    The queue is step 03's own (:func:`helpers.coding.disagreement_queue` of the
    sheets as written), so its rows are those a researcher would be handed.
    Talking an excerpt through, the coders keep a code the customer meant
    (one of its intended codes) and drop the others.
    """
    from helpers import coding
    from helpers.codebook import load_codebook

    codebook = load_codebook(folder / "codebook.yml")
    codings = coding.read_coding_sheets(folder / "coding" / month, codebook)
    queue = coding.disagreement_queue(codings)

    # Decide each disagreement, then leave a share of them undecided.
    intended = excerpts.set_index("excerpt_id")["codes"]
    meant = [
        code in intended.get(excerpt, ())
        for excerpt, code in zip(queue["excerpt_id"], queue["code"], strict=True)
    ]
    decided = rng.random(len(queue)) >= STILL_OPEN[month]
    queue["decision"] = np.where(decided, np.where(meant, "keep", "drop"), None)
    target = folder / "coding" / month / coding.RECONCILED_SHEET
    return coding.write_reconciliation_sheet(queue, target)


def code_excerpt(intended: tuple, *, rng: np.random.Generator) -> list[str]:
    """Return one coder's codes for an excerpt whose intended codes are given."""
    coded = []
    for code in intended:
        roll = rng.random()
        # Price is unmistakable in the demo, so the 1-in-9 share survives coding.
        if roll < KEEP_CODE or code == "OBJ-PRICE":
            coded.append(code)
        elif roll < KEEP_CODE + (1 - KEEP_CODE) * 0.6 and code in NEIGHBOURS:
            coded.append(NEIGHBOURS[code])
    return list(dict.fromkeys(coded))[:3]


def write_predictions(
    turns: pd.DataFrame, calls, folder: Path, *, month: str, rng: np.random.Generator
) -> Path:
    """Write ``predictions/<month>.csv``: what each caller expected to hear.

    One row per dialled customer. For customers later reached, the predicted
    code is one they raised with probability ``PREDICTION_HIT[month]`` (callers
    learn: November's hit rate is higher); otherwise a common objection.

    Returns
    -------
    Path
        The file written (``caller``, ``customer_key``, ``predicted_code``,
        ``probability``).
    """
    heard = turns.groupby("customer_key")["codes"].agg(
        lambda rows: sorted(
            {
                c
                for codes in rows
                for c in codes
                if c.startswith(("OBJ", "INFO", "DISC"))
            }
        )
    )
    common = ["OBJ-SHIP-COST", "OBJ-PRICE", "OBJ-FIT", "OBJ-DELIVERY", "OBJ-TRUST"]
    first = calls.attempts.groupby("customer_key")["caller"].first()
    rows = []
    for key, caller in first.items():
        raised = heard.get(key, [])
        if raised and rng.random() < PREDICTION_HIT[month]:
            code = raised[int(rng.integers(len(raised)))]
        else:
            code = common[int(rng.integers(len(common)))]
        rows.append(
            {
                "caller": caller,
                "customer_key": key,
                "predicted_code": code,
                "probability": round(float(rng.uniform(0.3, 0.8)), 2),
            }
        )
    frame = pd.DataFrame(rows).sort_values(
        ["caller", "customer_key"], ignore_index=True
    )
    return files.save_csv(frame, folder / "predictions" / f"{month}.csv")


INSIGHTS = [
    ("OBJ-SHIP-COST", "Shipping cost appears only at the last checkout step",
     "Dana (ecommerce)", "Show the shipping cost on the product page", "2026-11-05"),
    ("OBJ-FIT", "Customers between sizes cannot tell which to pick",
     "Lee (merchandising)", "Add fit notes and a size chart to boots and jackets", ""),
    ("OBJ-TRUST", "The returns policy is hard to find",
     "Dana (ecommerce)", "Link free returns from the cart", "2026-11-20"),
    ("OBJ-DELIVERY", "Delivery estimates are vague",
     "Sam (operations)", "Show a delivery date range at checkout", ""),
    ("DISC-CODE", "The code box sends people hunting for coupons",
     "Rita (marketing)", "Hide the code box unless a code link was used", ""),
]  # fmt: skip


def write_insights(turns_by_month: dict, folder: Path) -> Path:
    """Write ``insights.csv``: frictions heard, who owns them, what was done.

    Returns
    -------
    Path
        The file written: ``id``, ``friction``, ``codes``, ``conversations``
        (``;``-joined conversation ids), ``first_heard``, ``owner``, ``action``,
        ``addressed_on`` (blank while open).
    """
    turns = pd.concat(turns_by_month.values(), ignore_index=True)
    rows = []
    for number, (code, friction, owner, action, addressed) in enumerate(INSIGHTS, 1):
        heard = turns[turns["codes"].apply(lambda codes, c=code: c in codes)]
        ids = sorted(set(heard["conversation_id"]))
        rows.append(
            {
                "id": f"INS-{number:03d}",
                "friction": friction,
                "codes": code,
                "conversations": ";".join(ids),
                "first_heard": first_date(folder, ids[0]) if ids else "",
                "owner": owner,
                "action": action,
                "addressed_on": addressed,
            }
        )
    return files.save_csv(pd.DataFrame(rows), folder / "insights.csv")


def first_date(folder: Path, conversation_id: str) -> str:
    """Return the date in a conversation note's front matter."""
    month = conversation_id[:7]
    text = (folder / "conversations" / month / f"{conversation_id}.md").read_text(
        "utf-8"
    )
    line = next(line for line in text.splitlines() if line.startswith("date:"))
    return line.split(":", 1)[1].strip()

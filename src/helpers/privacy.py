"""Pseudonymous keys, redaction and the scan that keeps personal details out.

Names, phones and e-mails stay in ``data/raw`` and in call lists. Everything else
Heard writes refers to customers by ``customer_key``: a keyed hash whose key lives
outside git, in ``.heard/pseudonym.key`` (or the file named by ``$HEARD_KEY_FILE``),
created on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

from helpers.errors import HeardInputError
from helpers.study import find_project_root

log = logging.getLogger(__name__)

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# A run of 9 or more digits on one line, allowing the separators people type
# between them.
PHONE_PATTERN = re.compile(r"(?<![\w.])\+?\(?\d(?:[ \t().-]{0,2}\d){8,14}(?![\w])")
KEY_BYTES = 32


def key_path() -> Path:
    """Return where the pseudonymisation key lives."""
    if os.environ.get("HEARD_KEY_FILE"):
        return Path(os.environ["HEARD_KEY_FILE"])
    return find_project_root() / ".heard" / "pseudonym.key"


def load_key() -> bytes:
    """Return the pseudonymisation key, creating it (mode 600) on first use.

    Raises
    ------
    HeardInputError
        When the key file is empty, cut short or not hex: an empty or short key
        would make every customer key computable from an e-mail address.
    """
    path = key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES))
        log.info("created a new pseudonymisation key at %s", path)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not re.fullmatch(f"[0-9a-fA-F]{{{2 * KEY_BYTES}}}", text):
        raise HeardInputError(
            path,
            expected=f"a pseudonymisation key of {2 * KEY_BYTES} hex digits",
            found=f"{len(text)} characters"
            + ("" if re.fullmatch("[0-9a-fA-F]*", text) else ", not all hex"),
            fix="restore the key from your backup (a new key changes every "
            "customer_key, so earlier months no longer match); delete the file "
            "only when starting a study afresh",
        )
    return bytes.fromhex(text)


def customer_key(identity: str, *, key: bytes | None = None) -> str:
    """Return the pseudonymous key for one customer.

    Parameters
    ----------
    identity : str
        What identifies the customer: the normalised e-mail (trimmed, case-folded)
        when there is one, else the E.164 phone, else the platform's customer id.
    key : bytes, optional
        The secret; :func:`load_key` when omitted.

    Returns
    -------
    str
        ``"c_"`` and 12 hex digits of HMAC-SHA256(key, identity).
    """
    secret = key if key is not None else load_key()
    digest = hmac.new(secret, identity.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"c_{digest[:12]}"


def redact(text: str, *, names: list[str] | tuple[str, ...] = ()) -> str:
    """Return `text` with e-mails, phone numbers and the given names replaced.

    E-mails become ``[email]``, phone numbers ``[phone]`` and each name in `names`
    (matched as a whole word, any case) ``[name]``.
    """
    redacted = EMAIL_PATTERN.sub("[email]", text)
    redacted = PHONE_PATTERN.sub("[phone]", redacted)
    for name in sorted(filter(None, names), key=len, reverse=True):
        redacted = re.sub(rf"\b{re.escape(name)}\b", "[name]", redacted, flags=re.I)
    return redacted


# Heard's own ids (q-2026-11-07-003, 2026-11-07-003) and ISO times look like phone
# numbers to PHONE_PATTERN; find_pii removes them before it looks.
HEARD_IDS_AND_TIMES = re.compile(
    r"\b(?:q-)?\d{4}-\d{2}-\d{2}"
    r"(?:-\d{3}\b|[ T]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
# A decimal such as 0.0024 next to a count in a table reads as a dotted phone
# number; a dotted phone (202.555.0143) has more than one dot and is kept.
DECIMAL = re.compile(r"(?<![\d.])\d+\.\d+(?!\.?\d)")


def find_pii(text: str) -> list[str]:
    """Return the e-mail addresses and phone-like numbers found in `text`.

    Heard's own quote and excerpt ids, ISO dates and times, and decimals are
    removed first: their digit runs look like phone numbers.
    """
    cleaned = DECIMAL.sub(" ", HEARD_IDS_AND_TIMES.sub(" ", text))
    return EMAIL_PATTERN.findall(cleaned) + PHONE_PATTERN.findall(cleaned)


SCANNED_SUFFIXES = (".parquet", ".csv", ".xlsx", ".json", ".md", ".html", ".typ",
                    ".txt", ".pdf")  # fmt: skip


def scan_for_pii(paths) -> list[dict]:
    """Return every e-mail address or phone number found in the given files.

    Parameters
    ----------
    paths : iterable of Path
        Processed outputs or rendered reports: Parquet, CSV and XLSX tables
        (every sheet; column names and text columns, identifier columns ending
        in ``_id`` and ``customer_key`` for e-mails only), JSON, Markdown, HTML
        (tags removed), Typst, text and PDF (text extracted with pypdf). Other
        suffixes, and empty files, are skipped.

    Returns
    -------
    list of dict
        One per match: ``file``, ``where`` (``column <name>`` or ``header``
        for tables, else ``text``) and ``found`` (the matched text).

    Notes
    -----
    Matching uses :func:`find_pii`, which ignores Heard's own ids and ISO
    times. Limitations: a
    phone number written with letters, or an e-mail with spaces around the
    ``@``, is not found; names are not searched for (no list of names exists
    outside ``data/raw``).
    """
    findings, paths = [], [Path(p) for p in paths]
    for path in paths:
        if path.suffix.lower() not in SCANNED_SUFFIXES:
            continue
        for where, text in _scanned_texts(path):
            findings.extend(
                {"file": str(path), "where": where, "found": found}
                for found in find_pii(text)
            )
    log.info("scanned %d files: %d e-mails or phones", len(paths), len(findings))
    return findings


def _scanned_texts(path: Path):
    """Yield ``(where, text)`` pieces of one file for :func:`scan_for_pii`."""

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv", ".xlsx"):
        for table in _tables(path):
            yield from _table_texts(table)
    elif suffix == ".pdf":
        from pypdf import PdfReader

        pages = PdfReader(str(path)).pages
        yield "text", "\n".join(page.extract_text() or "" for page in pages)
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
        # A tag ends a line, so neighbouring table cells never join into one number.
        yield "text", re.sub(r"<[^>]+>", "\n", text) if suffix == ".html" else text


def _tables(path: Path) -> list:
    """Return a table file's tables: every sheet of a workbook; none when empty."""
    import pandas as pd

    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        return []
    if suffix == ".parquet":
        return [pd.read_parquet(path)]
    if suffix == ".xlsx":
        return list(pd.read_excel(path, sheet_name=None, dtype=str).values())
    try:
        return [pd.read_csv(path, dtype=str)]
    except pd.errors.EmptyDataError:
        return []


def _table_texts(table):
    """Yield ``(where, text)`` for a table's column names and text columns.

    Identifier columns (``*_id``, ``customer_key``) hold long digit runs that
    look like phone numbers, so only e-mail addresses are looked for in them.
    """
    import pandas as pd

    yield "header", "\n|\n".join(map(str, table.columns))
    for column in table.columns:
        name = str(column)
        values = table[column].dropna()
        if not len(values) or pd.api.types.is_numeric_dtype(values):
            continue
        # A separator no phone number spans, so cells are never joined.
        text = "\n|\n".join(map(str, values.unique()))
        if name.endswith("_id") or name == "customer_key":
            text = "\n".join(EMAIL_PATTERN.findall(text))
        yield f"column {name}", text


def customer_keys(identities, *, key: bytes | None = None) -> list[str | None]:
    """Return :func:`customer_key` for many identities at once.

    Parameters
    ----------
    identities : iterable of str or None
        Normalised identities as for :func:`customer_key`; None (or any
        non-text) gives None.
    key : bytes, optional
        The secret; :func:`load_key` when omitted (read once).

    Returns
    -------
    list
        The same keys :func:`customer_key` gives, in order. The HMAC is keyed
        once and copied per identity.
    """
    keyed = hmac.new(key if key is not None else load_key(), digestmod=hashlib.sha256)
    return [
        _hex_key(keyed, text) if isinstance(text, str) else None for text in identities
    ]


def _hex_key(keyed: hmac.HMAC, identity: str) -> str:
    digest = keyed.copy()
    digest.update(identity.encode("utf-8"))
    return f"c_{digest.hexdigest()[:12]}"

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

from helpers.study import find_project_root

log = logging.getLogger(__name__)

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# A run of 9 or more digits, allowing the separators people type between them.
PHONE_PATTERN = re.compile(r"(?<![\w.])\+?\(?\d(?:[\s().-]{0,2}\d){8,14}(?![\w])")
KEY_BYTES = 32


def key_path() -> Path:
    """Return where the pseudonymisation key lives."""
    if os.environ.get("HEARD_KEY_FILE"):
        return Path(os.environ["HEARD_KEY_FILE"])
    return find_project_root() / ".heard" / "pseudonym.key"


def load_key() -> bytes:
    """Return the pseudonymisation key, creating it (mode 600) on first use."""
    path = key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES))
        log.info("created a new pseudonymisation key at %s", path)
    return bytes.fromhex(path.read_text().strip())


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


def find_pii(text: str) -> list[str]:
    """Return the e-mail addresses and phone-like numbers found in `text`."""
    return EMAIL_PATTERN.findall(text) + PHONE_PATTERN.findall(text)

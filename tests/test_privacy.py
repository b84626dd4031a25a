import hashlib
import hmac

import pytest

from helpers.errors import HeardInputError
from helpers.privacy import customer_key, customer_keys, find_pii, load_key, redact


def test_customer_key_is_keyed_hmac_sha256():
    key = bytes(range(32))
    expected = hmac.new(key, b"ann@example.com", hashlib.sha256).hexdigest()[:12]
    assert customer_key("ann@example.com", key=key) == f"c_{expected}"
    assert customer_key("ann@example.com", key=b"other") != f"c_{expected}"


@pytest.mark.parametrize(
    "key", [bytes(range(32)), b"", b"k", bytes(64), bytes(range(65)), b"\xff" * 200],
    ids=["32-bytes", "empty", "one-byte", "block", "over-block", "long"],
)  # fmt: skip
def test_bulk_keys_are_hmac_sha256_for_any_key_and_identity(key):
    identities = [
        "ann@example.com", "", " ", "\x00", "é", "Ærøskøbing@例え.jp", "\u2603" * 40,
        "id:7000000001", "+447700900123", "x" * 55, "x" * 56, "y" * 64, "z" * 1000,
        "\U0001f600", "a\nb", "\udcff".encode("utf-8", "surrogatepass").decode(
            "utf-8", "replace"),
    ] + [f"customer{i}@example.com" for i in range(500)]  # fmt: skip
    expected = [
        f"c_{hmac.new(key, text.encode('utf-8'), hashlib.sha256).hexdigest()[:12]}"
        for text in identities
    ]
    assert customer_keys([*identities, None, 3.5], key=key) == [*expected, None, None]


def test_key_is_created_once_with_private_permissions(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARD_KEY_FILE", str(tmp_path / "k" / "pseudonym.key"))
    first = load_key()
    assert load_key() == first
    assert len(first) == 32
    assert (tmp_path / "k" / "pseudonym.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("text", "found"),
    [("", "0 characters"), ("ab12", "4 characters"),
     ("z" * 64, "64 characters, not all hex")],
    ids=["empty", "short", "not-hex"],
)  # fmt: skip
def test_an_empty_short_or_garbled_key_is_refused(tmp_path, monkeypatch, text, found):
    # An empty key still hashes: every customer key would be computable.
    path = tmp_path / "pseudonym.key"
    path.write_text(text)
    monkeypatch.setenv("HEARD_KEY_FILE", str(path))
    with pytest.raises(HeardInputError) as caught:
        customer_key("ann@example.com")
    assert caught.value.file == str(path) and caught.value.found == found
    assert "backup" in caught.value.fix
    assert path.read_text() == text, "a bad key is never replaced"


def test_redact_removes_emails_phones_and_names():
    text = "Call Dana on +1 (202) 555-0143 or 07700 900123, dana.o@example.com."
    assert redact(text, names=["Dana"]) == "Call [name] on [phone] or [phone], [email]."


def test_find_pii_ignores_order_numbers_and_money():
    assert find_pii("Order #1051 cost $1,204.50 on 2026-11-03") == []
    assert find_pii("reach me at 202.555.0143") == ["202.555.0143"]


def test_numbers_side_by_side_in_a_table_are_not_a_phone():
    assert find_pii("p-value 0.0024 16000 rows") == []
    assert find_pii("21307\n21387") == []
    assert find_pii("dotted 202.555.0143 stays found") == ["202.555.0143"]

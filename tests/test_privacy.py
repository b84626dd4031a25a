import hashlib
import hmac

from helpers.privacy import customer_key, find_pii, load_key, redact


def test_customer_key_is_keyed_hmac_sha256():
    key = bytes(range(32))
    expected = hmac.new(key, b"ann@example.com", hashlib.sha256).hexdigest()[:12]
    assert customer_key("ann@example.com", key=key) == f"c_{expected}"
    assert customer_key("ann@example.com", key=b"other") != f"c_{expected}"


def test_key_is_created_once_with_private_permissions(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARD_KEY_FILE", str(tmp_path / "k" / "pseudonym.key"))
    first = load_key()
    assert load_key() == first
    assert len(first) == 32
    assert (tmp_path / "k" / "pseudonym.key").stat().st_mode & 0o777 == 0o600


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

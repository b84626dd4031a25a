"""Shared fixtures: a private key and project root per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_key(tmp_path_factory):
    """Give the whole session one pseudonymisation key outside the repository.

    Session scope, so module fixtures that build a demo study (whose call logs
    carry keys) and the tests that re-run it use the same key.
    """
    with pytest.MonkeyPatch.context() as patch:
        key_file = tmp_path_factory.getbasetemp() / "pseudonym.key"
        patch.setenv("HEARD_KEY_FILE", str(key_file))
        yield key_file


@pytest.fixture(autouse=True)
def _unchecked(monkeypatch):
    """A check passed in one test must not count as passed in the next."""
    monkeypatch.setenv("HEARD_CHECKED", "")


@pytest.fixture
def shared_data() -> Path:
    """Return ../shared/data, or skip when this checkout has no copy beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public data not found at {SHARED_DATA}")
    return SHARED_DATA

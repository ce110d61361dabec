"""The suppression secret the erasure tests run under, and the peppered hash it gives a value (as the
``suppressions`` table stores identity keys and addresses)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

PEPPER = "a-test-pepper-of-enough-length-0123456789"


@pytest.fixture(autouse=True)
def pepper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Autouse where imported: the erasure and the processor read the same pepper from the environment."""
    monkeypatch.setenv("LEADSCORE_SUPPRESSION_SECRET", PEPPER)


def peppered(value: str) -> str:
    return hmac.new(PEPPER.encode(), value.encode(), hashlib.sha256).hexdigest()

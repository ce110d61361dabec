"""Addresses that must get no mail, kept as peppered hashes so an unsubscribe outlives an erasure.

The table holds HMAC-SHA256(pepper, normalised address), never the address: erasing a person leaves
the row (nothing in it names her), and when the same address comes back (a re-import, an identify)
its mail is still suppressed. The pepper is the server secret (``LEADSCORE_SUPPRESSION_SECRET``, else
``LEADSCORE_SECRET_KEY``), so a copy of the database alone cannot confirm an address by guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from sqlalchemy import Connection, select

from leadscore.store.schema import mail_suppressions
from leadscore.store.upsert import insert_ignore


def normalise_email(email: str) -> str:
    """The one spelling of an address that is hashed: NFC, surrounding blanks removed, lower case."""
    return unicodedata.normalize("NFC", email.strip()).lower()


def email_hash(email: str, pepper: str) -> str:
    """HMAC-SHA256 of the normalised address under ``pepper``, as 64 hex digits."""
    return hmac.new(pepper.encode(), normalise_email(email).encode(), hashlib.sha256).hexdigest()


def suppress(conn: Connection, email: str, reason: str, at_ms: int, pepper: str) -> bool:
    """Record that ``email`` gets no more mail; False when it was suppressed already."""
    row = {"email_hash": email_hash(email, pepper), "reason": reason, "at_ms": at_ms}
    return insert_ignore(conn, mail_suppressions, [row], ["email_hash"]) == 1


def is_suppressed(conn: Connection, email: str, pepper: str) -> bool:
    found = select(mail_suppressions.c.email_hash).where(
        mail_suppressions.c.email_hash == email_hash(email, pepper)
    )
    return conn.execute(found).first() is not None

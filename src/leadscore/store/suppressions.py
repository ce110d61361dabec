"""Who must not come back, kept as peppered hashes: addresses that get no mail (an unsubscribe outlives
an erasure), and the identity keys of people erased with ``--suppress``, whose messages are dropped.

The table holds HMAC-SHA256(pepper, normalised address), never the address: erasing a person leaves
the row (nothing in it names her), and when the same address comes back (a re-import, an identify)
its mail is still suppressed. ``tracking_suppressions`` holds the same hash of each identity key
(``u:<userId>``, ``a:<anonymousId>``) of a person erased with ``--suppress``: the ingest paths drop a
message naming one (``ingest.apply.unsuppressed``). The pepper is the server secret (``LEADSCORE_SUPPRESSION_SECRET``, else
``LEADSCORE_SECRET_KEY``), so a copy of the database alone cannot confirm an address by guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterable

from sqlalchemy import ColumnElement, Connection, Text, delete, or_, select

from leadscore.store.id_lists import in_values
from leadscore.store.people import anonymous_key, user_key
from leadscore.store.schema import mail_suppressions, tracking_suppressions
from leadscore.store.upsert import insert_ignore


def normalise_email(email: str) -> str:
    """The one spelling of an address that is hashed: NFC, surrounding blanks removed, lower case."""
    return unicodedata.normalize("NFC", email.strip()).lower()


def peppered(value: str, pepper: str) -> str:
    """HMAC-SHA256 of ``value`` under ``pepper``, as 64 hex digits: what every suppression keeps."""
    return hmac.new(pepper.encode(), value.encode(), hashlib.sha256).hexdigest()


def email_hash(email: str, pepper: str) -> str:
    """``peppered`` of the normalised address."""
    return peppered(normalise_email(email), pepper)


def suppress(conn: Connection, email: str, reason: str, at_ms: int, pepper: str) -> bool:
    """Record that ``email`` gets no more mail; False when it was suppressed already."""
    row = {"email_hash": email_hash(email, pepper), "reason": reason, "at_ms": at_ms}
    return insert_ignore(conn, mail_suppressions, [row], ["email_hash"]) == 1


def is_suppressed(conn: Connection, email: str, pepper: str) -> bool:
    found = select(mail_suppressions.c.email_hash).where(
        mail_suppressions.c.email_hash == email_hash(email, pepper)
    )
    return conn.execute(found).first() is not None


def suppress_keys(
    conn: Connection, keys: Iterable[str], email: str | None, person: str, at_ms: int, pepper: str
) -> int:
    """Drop every later message naming one of the identity ``keys`` (``u:<userId>``, ``a:<anonymousId>``);
    ``person`` (an erasure's pseudonym) and ``email`` let ``unsuppress_keys`` lift them together. Returns
    the keys newly suppressed."""
    hashed = email_hash(email, pepper) if email else None
    rows = [
        {"key_hash": peppered(key, pepper), "person": person, "email_hash": hashed, "at_ms": at_ms}
        for key in sorted(set(keys))
    ]
    return insert_ignore(conn, tracking_suppressions, rows, ["key_hash"]) if rows else 0


def any_keys_suppressed(conn: Connection) -> bool:
    """Whether anyone's keys are suppressed: one index probe, so an empty table costs a batch nothing more."""
    return conn.execute(select(tracking_suppressions.c.key_hash).limit(1)).first() is not None


def suppressed_keys(conn: Connection, keys: Iterable[str], pepper: str) -> set[str]:
    """Those of ``keys`` that are suppressed: one query for all of them."""
    by_hash = {peppered(key, pepper): key for key in set(keys)}
    if not by_hash:
        return set()
    found = conn.execute(
        select(tracking_suppressions.c.key_hash).where(
            in_values(tracking_suppressions.c.key_hash, by_hash, Text)
        )
    ).scalars()
    return {by_hash[h] for h in found}


def unsuppress_keys(conn: Connection, ref: str, pepper: str) -> tuple[list[str], int]:
    """Lift the suppression of the person ``ref`` names (``u:<userId>``, ``a:<anonymousId>``, an e-mail, or
    a plain id taken as either): every key suppressed with the one it finds, by the same erasure. Returns
    (the erasures' pseudonyms, keys lifted); ([], 0) when nothing of hers is suppressed."""
    explicit = ref.startswith(("u:", "a:")) and len(ref) > 2
    keys = [ref] if explicit else [user_key(ref), anonymous_key(ref)]
    table = tracking_suppressions
    match: ColumnElement[bool] = in_values(table.c.key_hash, [peppered(k, pepper) for k in keys], Text)
    if "@" in ref:
        match = or_(match, table.c.email_hash == email_hash(ref, pepper))
    persons = sorted(set(conn.execute(select(table.c.person).where(match)).scalars()))
    if not persons:
        return [], 0
    lifted = conn.execute(delete(table).where(in_values(table.c.person, persons, Text))).rowcount
    return persons, lifted

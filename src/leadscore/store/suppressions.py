"""Who must not come back, kept as peppered hashes: addresses that get no mail (an unsubscribe outlives
an erasure), and the identity keys and addresses of people erased with ``--suppress``, whose messages are
dropped.

The table holds HMAC-SHA256(pepper, normalised address), never the address: erasing a person leaves
the row (nothing in it names her), and when the same address comes back (a re-import, an identify)
its mail is still suppressed. ``tracking_suppressions`` holds the same hash of each identity key
(``u:<userId>``, ``a:<anonymousId>``) and of each address (a row keyed ``e:<address>``, matched by its
``email_hash``) of a person erased with ``--suppress``: the ingest paths drop a message naming one of the
keys or giving one of the addresses (``ingest.apply.suppressed_in``). Addresses are normalised by
``store.people.normalise_email``, the one normalisation leads are stored and found by. The pepper is the
server secret (``LEADSCORE_SUPPRESSION_SECRET``, else ``LEADSCORE_SECRET_KEY``), so a copy of the
database alone cannot confirm an address by guessing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import ColumnElement, Connection, Text, delete, or_, select

from leadscore.store.id_lists import in_values
from leadscore.store.people import anonymous_key, normalise_email, user_key
from leadscore.store.schema import mail_suppressions, tracking_suppressions
from leadscore.store.upsert import insert_ignore


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


def address_key(email: str) -> str:
    """The name of an e-mail address among suppressed names: ``e:`` and the normalised address (apart
    from every ``u:``/``a:`` identity key)."""
    return "e:" + normalise_email(email)


def suppress_keys(
    conn: Connection,
    keys: Iterable[str],
    addresses: Iterable[str],
    email: str | None,
    person: str,
    at_ms: int,
    pepper: str,
) -> tuple[int, int]:
    """Drop every later message naming one of the identity ``keys`` (``u:<userId>``, ``a:<anonymousId>``)
    or giving one of the e-mail ``addresses`` (each a row of its own: key ``e:<address>``, and the
    address's ``email_hash``, which is what a message's address is matched by). ``person`` (an erasure's
    pseudonym) and ``email`` (her lead's address, kept beside each key) let ``unsuppress_keys`` lift them
    together. Returns (keys, addresses) newly suppressed: one suppressed already (by an earlier erasure)
    stays that erasure's."""
    hashed = email_hash(email, pepper) if email else None
    rows = [
        {"key_hash": peppered(key, pepper), "person": person, "email_hash": hashed, "at_ms": at_ms}
        for key in sorted(set(keys))
    ]
    given = sorted({normalise_email(a) for a in addresses})
    rows_of_addresses = [
        {"key_hash": peppered(address_key(a), pepper), "person": person, "email_hash": email_hash(a, pepper),
         "at_ms": at_ms}
        for a in given
    ]  # fmt: skip
    added = insert_ignore(conn, tracking_suppressions, rows, ["key_hash"]) if rows else 0
    if rows_of_addresses:
        return added, insert_ignore(conn, tracking_suppressions, rows_of_addresses, ["key_hash"])
    return added, 0


def any_keys_suppressed(conn: Connection) -> bool:
    """Whether anyone's keys are suppressed: one index probe, so an empty table costs a batch nothing more."""
    return conn.execute(select(tracking_suppressions.c.key_hash).limit(1)).first() is not None


def suppressed_names(conn: Connection, names: Iterable[str], pepper: str) -> dict[str, str]:
    """Those of ``names`` that are suppressed, each with the erasure (its pseudonym) that suppressed it, in
    one query: an identity key (``u:``, ``a:``) by its ``key_hash``, an address (``address_key``, ``e:``)
    by the ``email_hash`` of a row of the erasure (a row of an erasure before addresses had rows of their
    own holds her lead's address there too)."""
    keys: dict[str, str] = {}
    emails: dict[str, str] = {}
    for name in set(names):
        if name.startswith("e:"):
            emails[peppered(name[2:], pepper)] = name
        else:
            keys[peppered(name, pepper)] = name
    if not keys and not emails:
        return {}
    table = tracking_suppressions
    found = conn.execute(
        select(table.c.key_hash, table.c.email_hash, table.c.person).where(
            or_(in_values(table.c.key_hash, keys, Text), in_values(table.c.email_hash, emails, Text))
        )
    ).all()
    hit = {keys[k]: person for k, _, person in found if k in keys}
    hit.update({emails[e]: person for _, e, person in found if e in emails})
    return hit


def suppress_more(conn: Connection, keys: dict[str, str], at_ms: int, pepper: str) -> None:
    """Suppress identity ``keys`` (key → the erasure's pseudonym) found to be hers after her erasure: a
    message gave her address under them. ``unsuppress_keys`` lifts them with the erasure's others."""
    rows = [
        {"key_hash": peppered(key, pepper), "person": person, "email_hash": None, "at_ms": at_ms}
        for key, person in sorted(keys.items())
    ]
    insert_ignore(conn, tracking_suppressions, rows, ["key_hash"])


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

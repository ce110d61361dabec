"""Who a person is in the store: their lead (if any), identity keys, and exact identifiers.

A person is found by exact values only: a lead id, an e-mail, a user id, or an identity key
(``u:<userId>``, ``a:<anonymousId>``). Someone who exists only as anonymous events, or only as events
still waiting in the inbox, is a person without a lead. Nothing is ever matched as a substring: user
"1001" is not user "11001", and ann@example.com is not joann@example.com.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, or_, select

from leadscore.errors import InputError, NotFoundError, Problem, StoreError
from leadscore.ingest.traits import addresses
from leadscore.store.event_log import waiting_rows
from leadscore.store.id_lists import in_values
from leadscore.store.lead_names import full_name
from leadscore.store.people import anonymous_key, find_lead, lead_by_id, normalise_email, user_key
from leadscore.store.schema import events, identities, leads


@dataclass(frozen=True)
class Person:
    lead_id: int | None  # None: only events (anonymous, or not yet processed)
    keys: tuple[str, ...]  # identity keys: u:<userId>, a:<anonymousId>
    email: str | None
    external_id: str | None
    name: str | None

    @property
    def user_ids(self) -> tuple[str, ...]:
        ids = {k[2:] for k in self.keys if k.startswith("u:")} | (
            {self.external_id} if self.external_id else set()
        )
        return tuple(sorted(ids))

    @property
    def anonymous_ids(self) -> tuple[str, ...]:
        return tuple(sorted(k[2:] for k in self.keys if k.startswith("a:")))

    @property
    def emails(self) -> tuple[str, ...]:
        """Normalised (lower case): compared with normalised column values."""
        return (normalise_email(self.email),) if self.email else ()

    @property
    def identifiers(self) -> tuple[str, ...]:
        """Every value that names this person: what the proof scan looks for as whole words."""
        values = {self.email, self.name, *self.user_ids, *self.anonymous_ids}
        return tuple(sorted(v for v in values if v))

    def label(self) -> str:
        return f"lead {self.lead_id}" if self.lead_id is not None else "the person of " + ", ".join(self.keys)


def find_person(conn: Connection, ref: str) -> Person:
    """A person by ``lead:<id>``, ``u:<userId>``, ``a:<anonymousId>``, or a plain lead id, e-mail or user
    id. A plain reference that names two different leads (lead 1001 and the lead of user "1001") is
    refused: say which."""
    if ref.startswith("lead:") and ref[5:].isascii() and ref[5:].isdigit():
        lead_id = lead_by_id(conn, int(ref[5:]))
        if lead_id is None:
            raise NotFoundError(f"no lead {ref!r}")
        return _of_lead(conn, lead_id)
    if ref.startswith(("u:", "a:")) and len(ref) > 2:
        linked = conn.execute(select(identities.c.lead_id).where(identities.c.key == ref)).scalar()
        if linked is None and ref.startswith("u:"):
            linked = find_lead(conn, external_id=ref[2:])
        return _of_lead(conn, linked) if linked is not None else _without_lead(conn, ref, [ref], None)
    candidates = {
        found
        for found in (
            lead_by_id(conn, int(ref)) if ref.isascii() and ref.isdigit() else None,
            find_lead(conn, email=ref) if "@" in ref else None,
            find_lead(conn, external_id=ref),
        )
        if found is not None
    }
    if not candidates and "@" in ref:
        # an address she used before (her traits changed it): the lead her events giving it are linked to
        candidates = {lead for lead in _keys_with_email(conn, ref).values() if lead is not None}
    if len(candidates) > 1:
        ids = ", ".join(f"lead:{i}" for i in sorted(candidates))
        raise InputError(
            Problem(f"{ref!r} names more than one lead ({ids}); say lead:<id>, u:<userId> or an e-mail")
        )
    if candidates:
        return _of_lead(conn, candidates.pop())
    email = ref if "@" in ref else None
    person = _without_lead(conn, ref, [user_key(ref), anonymous_key(ref)], email)
    if {user_key(ref), anonymous_key(ref)} <= set(person.keys):
        raise InputError(Problem(f"{ref!r} is both a user id and an anonymous id; say u:{ref} or a:{ref}"))
    return person


def as_now(conn: Connection, person: Person) -> Person:
    """The person found by a lookup made earlier, as the store holds them now: an erasure looks again in
    its own transaction, since the processor may have linked keys to their lead meanwhile (say, while the
    operator confirmed), or made a lead of someone known only by events. That last, or a lead gone (erased,
    merged into another), raises: the same reference may now name more than was shown."""
    if person.lead_id is not None:
        if find_lead(conn, lead_id=person.lead_id) != person.lead_id:
            raise NotFoundError(f"lead {person.lead_id} is gone since it was looked up (erased or merged)")
        return _of_lead(conn, person.lead_id)
    linked = conn.execute(
        select(identities.c.lead_id)
        .where(in_values(identities.c.key, person.keys, Text))
        .order_by(identities.c.lead_id)
    ).scalar()
    if linked is not None:
        raise StoreError(
            f"{person.label()} has been linked to lead {linked} since the lookup (their waiting events were"
            f" processed meanwhile): look them up again (lead:{linked})"
        )
    return _without_lead(conn, person.label(), person.keys, person.email)


def _of_lead(conn: Connection, lead_id: int) -> Person:
    row = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()
    keys = set(conn.execute(select(identities.c.key).where(identities.c.lead_id == lead_id)).scalars())
    if row["external_id"]:
        keys.add(user_key(row["external_id"]))
    if row["email"]:
        keys |= _unlinked_keys_with_email(conn, row["email"])
    keys |= _unlinked_keys_waiting_to_link(conn, keys)
    name = full_name(row["first_name"], row["last_name"]) or None
    return Person(lead_id, tuple(sorted(keys)), row["email"], row["external_id"], name)


# every look-up by a person's keys binds them as one list (``in_values``): she may have more of them than a
# statement takes parameters (65,535 on PostgreSQL), one an anonymous id a write key made


def _without_lead(conn: Connection, ref: str, keys: Iterable[str], email: str | None) -> Person:
    """A person known only by events: those of these keys (unlinked to any lead), or whose identify
    traits carry this exact e-mail."""
    wanted = set(keys)
    found = {k for k in wanted if _has_events(conn, k)}
    if email:
        found |= _unlinked_keys_with_email(conn, email)
    linked = set(
        conn.execute(select(identities.c.key).where(in_values(identities.c.key, found, Text))).scalars()
    )
    found -= linked
    found |= _unlinked_keys_waiting_to_link(conn, found)
    if not found:
        raise NotFoundError(
            f"no lead or events for {ref!r} (give a lead id, e-mail, user id, u:<userId> or a:<anonymousId>)"
        )
    return Person(None, tuple(sorted(found)), email, None, None)


def _has_events(conn: Connection, key: str) -> bool:
    if conn.execute(select(events.c.id).where(events.c.person_key == key).limit(1)).first():
        return True
    return any(row["person_key"] == key for row in waiting_rows(conn))


def row_addresses(context: Any) -> tuple[str, ...]:
    """The addresses an event-log row's traits give, normalised (``ingest.traits.addresses``)."""
    if not isinstance(context, dict):
        return ()
    return addresses(context.get("traits"), context)


def _keys_with_email(conn: Connection, email: str) -> dict[str, int | None]:
    """Keys of events (logged or waiting) whose traits give this address, compared normalised, with the
    lead each key is linked to (None: none). The normalisation (NFC, case) is Python's: SQL's ``lower``
    is ASCII-only on SQLite, and neither engine composes Unicode."""
    wanted = normalise_email(email)
    with_traits = or_(
        events.c.context["traits"].as_string().is_not(None),
        events.c.context["traits_once"].as_string().is_not(None),
    )
    keys = {
        str(key)
        for key, context in conn.execute(select(events.c.person_key, events.c.context).where(with_traits))
        if wanted in row_addresses(context)
    }
    keys |= {
        str(row["person_key"]) for row in waiting_rows(conn) if wanted in row_addresses(row.get("context"))
    }
    if not keys:
        return {}
    claimed = dict(
        conn.execute(
            select(identities.c.key, identities.c.lead_id).where(in_values(identities.c.key, keys, Text))
        ).all()
    )
    return {k: claimed.get(k) for k in keys}


def _unlinked_keys_with_email(conn: Connection, email: str) -> set[str]:
    """Keys of events whose traits give this address and that no lead has claimed yet (events still in
    the inbox, say): they are the same person. Keys linked to another lead stay theirs."""
    keys = _keys_with_email(conn, email)
    if not keys:
        return set()
    own = find_lead(conn, email=email)
    return {k for k, lead in keys.items() if lead in (None, own)}


def _unlinked_keys_waiting_to_link(conn: Connection, keys: set[str]) -> set[str]:
    """Keys with events that her events still in the inbox will link to her and that no lead has claimed
    yet: the anonymous id beside her user id (an identify from a browser she used anonymously), an
    alias's previous id. Processed, they would be hers, with their events. A key that another user's
    waiting event names too is left (whichever is applied first gets it), and one another lead holds stays
    theirs (an alias naming one merges the two leads only when it is processed)."""
    linking: dict[str, set[str]] = {}  # key → the users whose waiting events would link it
    waiting: set[str] = set()
    for row in waiting_rows(conn):
        owner = str(row["person_key"])
        waiting.add(owner)
        if not owner.startswith("u:"):
            continue
        if row.get("anonymous_id"):
            linking.setdefault(anonymous_key(str(row["anonymous_id"])), set()).add(owner)
        if row.get("type") == "alias" and row.get("previous_id"):
            for key in (user_key(str(row["previous_id"])), anonymous_key(str(row["previous_id"]))):
                linking.setdefault(key, set()).add(owner)
    named = {key for key, owners in linking.items() if owners <= keys} - keys
    if not named:
        return set()
    claimed = set(
        conn.execute(select(identities.c.key).where(in_values(identities.c.key, named, Text))).scalars()
    )
    logged = set(
        conn.execute(
            select(events.c.person_key).distinct().where(in_values(events.c.person_key, named, Text))
        ).scalars()
    )
    return (named - claimed) & (logged | waiting)

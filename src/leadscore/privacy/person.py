"""Who a person is in the store: their lead, identity keys, and the strings that identify them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from leadscore.store.people import resolve_lead_ref
from leadscore.store.schema import identities, leads

MIN_NEEDLE = 4  # shorter ids would match unrelated text; they are removed through keys instead


@dataclass(frozen=True)
class Person:
    lead_id: int
    keys: tuple[str, ...]  # identity keys: u:<userId>, a:<anonymousId>
    email: str | None
    external_id: str | None
    name: str | None

    @property
    def needles(self) -> tuple[str, ...]:
        """Strings whose presence anywhere in the database would be a trace of this person."""
        values = [self.email, self.external_id, self.name, *(k.split(":", 1)[1] for k in self.keys)]
        return tuple(sorted({v for v in values if v and len(v) >= MIN_NEEDLE}))


def find_person(conn: Connection, ref: str) -> Person:
    """A person by lead id, e-mail, or user id."""
    lead_id = resolve_lead_ref(conn, ref)
    row = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()
    keys = tuple(
        sorted(conn.execute(select(identities.c.key).where(identities.c.lead_id == lead_id)).scalars())
    )
    name = " ".join(p for p in (row["first_name"], row["last_name"]) if p) or None
    return Person(lead_id, keys, row["email"], row["external_id"], name)

"""Stored e-mail addresses in the one normalisation (``store.people.normalise_email``: Unicode NFC,
trimmed, lower case). Before, leads and staff users were stored trimmed and lower case only, so an
address sent decomposed (``e`` + combining acute) and one sent composed (``é``) were two leads; lookups
now compose, and a decomposed stored value would be found by nothing.

- ``leads.email`` and ``leads.email_domain``: each changed value is written composed. Two or more leads
  whose addresses are one once composed are one person, as ingest would have made them: each is merged
  into the lowest id (the oldest lead) by ``store.lead_merge.merge_leads`` (its keys, outcomes, stages and
  the rest move; audited ``lead.merge`` with cause ``migration 0031en``), and the kept lead is due for
  the clock (``scores.due_ms``), which scores it again with the merged events.
- ``users.email``: two staff users whose addresses are one once composed stop the upgrade, naming both
  (their roles and passwords are not merged): delete or rename one, then upgrade again.
  ``login_attempts.email`` is composed too (the throttle counts by address).

Only values with a non-ASCII character can change (ASCII ones were trimmed and lower-cased already).
Downgrading changes nothing: composed values are what the earlier code stored for composed input, and a
merge is not undone.

Revision ID: 0031en
Revises: 0030ts
"""

from __future__ import annotations

import time
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from leadscore.store.lead_merge import merge_leads
from leadscore.store.people import email_domain, normalise_email
from leadscore.store.results import due_at

revision = "0031en"
down_revision = "0030ts"
branch_labels = None
depends_on = None

CAUSE = "migration 0031en"


def upgrade() -> None:
    conn = op.get_bind()
    now = int(time.time() * 1000)
    _leads(conn, now)
    _users(conn)


def _changed(conn: sa.Connection, table: str, key: str = "id") -> dict[int, str]:
    """Row id → the composed address, for the rows of ``table`` whose address it changes."""
    rows = conn.execute(sa.text(f"SELECT {key}, email FROM {table} WHERE email IS NOT NULL"))
    return {
        int(row_id): new
        for row_id, email in rows
        if not email.isascii() and (new := normalise_email(email)) != email
    }


def _leads(conn: sa.Connection, now: int) -> None:
    changed = _changed(conn, "leads")
    if not changed:
        return
    kept: dict[int, int] = {}
    for new, members in sorted(_groups(conn, "leads", changed).items()):
        keep, *others = sorted(members)
        for gone in others:
            merge_leads(conn, keep, gone, now, CAUSE)
            kept[keep] = 0
        conn.execute(
            sa.text("UPDATE leads SET email = :e, email_domain = :d, updated_ms = :now WHERE id = :id"),
            {"e": new, "d": email_domain(new), "now": now, "id": keep},
        )
    due_at(conn, kept)  # the kept leads' scores lack the merged events until the clock's next tick


def _groups(conn: sa.Connection, table: str, changed: dict[int, str]) -> dict[str, set[int]]:
    """Composed address → the rows of ``table`` that will hold it: those changed to it, and the one
    holding it already."""
    groups: dict[str, set[int]] = defaultdict(set)
    for row_id, new in changed.items():
        groups[new].add(row_id)
    for new, members in groups.items():
        holder = conn.execute(sa.text(f"SELECT id FROM {table} WHERE email = :e"), {"e": new}).scalar()
        if holder is not None:
            members.add(int(holder))
    return groups


def _users(conn: sa.Connection) -> None:
    changed = _changed(conn, "users")
    for new, members in sorted(_groups(conn, "users", changed).items()):
        if len(members) > 1:
            ids = " and ".join(str(i) for i in sorted(members))
            raise RuntimeError(
                f"staff users {ids} have the same e-mail address once composed (Unicode NFC), {new!r}: "
                "delete or rename all but one (leadscore users), then upgrade again"
            )
    for user_id, new in sorted(changed.items()):
        conn.execute(sa.text("UPDATE users SET email = :e WHERE id = :id"), {"e": new, "id": user_id})
    for attempt, new in sorted(_changed(conn, "login_attempts").items()):
        conn.execute(
            sa.text("UPDATE login_attempts SET email = :e WHERE id = :id"), {"e": new, "id": attempt}
        )


def downgrade() -> None:
    pass  # composed addresses are valid before this revision too; merges are not undone

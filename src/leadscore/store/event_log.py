"""The append-only event log: insert once per message id, read a person's events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from leadscore.store.schema import events, identities
from leadscore.store.upsert import insert_ignore

EVENT_FIELDS = (
    "message_id",
    "type",
    "name",
    "person_key",
    "user_id",
    "anonymous_id",
    "group_id",
    "previous_id",
    "path",
    "url",
    "properties",
    "context",
    "ts",
    "received_ms",
    "source",
)


def known_message_ids(conn: Connection, message_ids: Sequence[str]) -> set[str]:
    """The ids among ``message_ids`` already in the log."""
    known: set[str] = set()
    ids = list(dict.fromkeys(message_ids))
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        known.update(conn.execute(select(events.c.message_id).where(events.c.message_id.in_(chunk))).scalars())
    return known


def append_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Append events; a message id already in the log is skipped. Returns the ids actually inserted."""
    if not rows:
        return set()
    fresh = [{k: row[k] for k in EVENT_FIELDS} for row in rows]
    known = set(
        conn.execute(
            select(events.c.message_id).where(events.c.message_id.in_([r["message_id"] for r in fresh]))
        ).scalars()
    )
    fresh = [r for r in fresh if r["message_id"] not in known]
    # two copies of one message in the same batch: the first wins
    unique = list({r["message_id"]: r for r in reversed(fresh)}.values())
    insert_ignore(conn, events, unique, ["message_id"])
    return {r["message_id"] for r in unique}


def lead_events(conn: Connection, lead_id: int, until_ms: int | None = None) -> list[dict[str, Any]]:
    """All events of a lead's identities, oldest first."""
    query = (
        select(events)
        .join(identities, identities.c.key == events.c.person_key)
        .where(identities.c.lead_id == lead_id)
        .order_by(events.c.ts, events.c.id)
    )
    if until_ms is not None:
        query = query.where(events.c.ts <= until_ms)
    return [dict(r) for r in conn.execute(query).mappings()]

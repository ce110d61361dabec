"""The append-only event log: insert once per message id, read a person's events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import Connection, Text, select

from leadscore.store.id_lists import in_list
from leadscore.store.schema import events, identities, inbox, leads

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
JSON_FIELDS = frozenset({"properties", "context"})
PG_TYPES = ("text",) * 10 + ("jsonb", "jsonb", "bigint", "bigint", "text")
PG_CHUNK = 5000
# SQLite takes a group's rows in multi-row INSERTs of up to 64 rows (7 statement shapes: 64, 32, ..., 1).
# With executemany the driver steps once per row and releases the GIL around every step; a busy event loop
# then holds up the writer thread at every row (each re-acquire can wait a switch interval). One JSON
# array per group would need a single step, but parsing it costs SQLite more than binding values does.
MULTI_ROWS = 64
PG_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_FIELDS)}) "
    f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in PG_TYPES)}) "
    "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
)
_KNOWN = select(events.c.message_id).where(in_list(events.c.message_id, "ids", Text))
PG_ENQUEUE = (
    "INSERT INTO inbox (message_id, received_ms) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
    "ON CONFLICT (message_id) DO NOTHING"
)


@lru_cache(maxsize=16)
def _sqlite_insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    """``INSERT ... VALUES (?, ...), ... ON CONFLICT DO NOTHING`` for ``rows`` rows."""
    row = f"({', '.join('?' * len(columns))})"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)} "
        "ON CONFLICT (message_id) DO NOTHING"
    )


def _sqlite_insert_rows(conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[Any]) -> None:
    at = 0
    while at < len(rows):
        left = len(rows) - at
        n = MULTI_ROWS if left >= MULTI_ROWS else 1 << (left.bit_length() - 1)
        conn.exec_driver_sql(_sqlite_insert(table, columns, n), tuple(chain.from_iterable(rows[at : at + n])))
        at += n


def known_message_ids(conn: Connection, message_ids: Sequence[str]) -> set[str]:
    """The ids among ``message_ids`` already in the log."""
    if not message_ids:
        return set()
    return set(conn.execute(_KNOWN, {"ids": list(dict.fromkeys(message_ids))}).scalars())


def append_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Append events; a message id already in the log is skipped, and of two copies of one message in
    ``rows`` the first wins. Returns the ids actually inserted.

    The ingest hot path: rows go to the driver as plain tuples in one statement per chunk (the ORM-level
    insert costs more than the database does here).
    """
    if not rows:
        return set()
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["message_id"], row)
    if conn.dialect.name == "postgresql":
        inserted: set[str] = set()
        unique = list(first.values())
        for start in range(0, len(unique), PG_CHUNK):
            columns = _columns(unique[start : start + PG_CHUNK])
            # RETURNING, not a prior SELECT: another process may insert the same id concurrently
            inserted.update(row[0] for row in conn.exec_driver_sql(PG_INSERT, columns))
        return inserted
    known = known_message_ids(conn, list(first))
    fresh = [_values(row) for mid, row in first.items() if mid not in known]
    # SQLite has one writer at a time (BEGIN IMMEDIATE), so what was not known is what gets inserted
    _sqlite_insert_rows(conn, "events", EVENT_FIELDS, fresh)
    return {mid for mid in first if mid not in known}


def enqueue(conn: Connection, entries: Sequence[tuple[str, int]]) -> None:
    """Add (message id, received ms) to the inbox of events to apply and score; present ids are kept."""
    if not entries:
        return
    if conn.dialect.name == "postgresql":
        for start in range(0, len(entries), PG_CHUNK):
            chunk = entries[start : start + PG_CHUNK]
            conn.exec_driver_sql(PG_ENQUEUE, ([m for m, _ in chunk], [t for _, t in chunk]))
    else:
        _sqlite_insert_rows(conn, "inbox", ("message_id", "received_ms"), entries)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits (from JSON Lines import): the standard library copes
        return json.dumps(value)


def _values(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_json(row[k]) if k in JSON_FIELDS else row[k] for k in EVENT_FIELDS)


def _columns(rows: Sequence[dict[str, Any]]) -> tuple[list[Any], ...]:
    return tuple(
        [_json(r[k]) for r in rows] if k in JSON_FIELDS else [r[k] for r in rows] for k in EVENT_FIELDS
    )


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


def drop_events_without_consent(conn: Connection, lead_ids: Sequence[int]) -> int:
    """Delete every event (and inbox row) of those ``lead_ids`` whose ``consent_tracking`` is false."""
    refused = [
        lead_id
        for lead_id, attributes in conn.execute(
            select(leads.c.id, leads.c.attributes).where(leads.c.id.in_(lead_ids))
        ).all()
        if (attributes or {}).get("consent_tracking") is False
    ]
    if not refused:
        return 0
    keys = select(identities.c.key).where(identities.c.lead_id.in_(refused))
    ids = select(events.c.message_id).where(events.c.person_key.in_(keys))
    conn.execute(inbox.delete().where(inbox.c.message_id.in_(ids)))
    return int(conn.execute(events.delete().where(events.c.person_key.in_(keys))).rowcount)

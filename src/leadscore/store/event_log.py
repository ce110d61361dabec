"""The append-only event log (insert once per message id, read a person's events) and its inbox.

The inbox holds events acknowledged to a client but not yet in the log. An acknowledgement appends one
inbox row per ``INBOX_ROW_EVENTS`` events (a JSON array of event-log rows, as objects) and nothing else: the log's
indexes (by message id, by person and time) would cost random page writes per event, in the
transaction the client waits for. The processor then claims inbox rows, appends their events to the log
(a message id already there is skipped), applies and scores them, and deletes the inbox rows, all in
one transaction (on PostgreSQL the claim deletes them, in one statement).
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, Integer, Text, bindparam, delete, func, literal_column, select
from sqlalchemy import text as sql_text

from leadscore.store.bulk import sqlite_insert
from leadscore.store.id_lists import in_list
from leadscore.store.model_versions import SHARE_MODELS
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
# SQLite takes a group's rows in multi-row INSERTs (``store/bulk.py``'s ``sqlite_insert``)
# the arrays go in binary (``%b``): as text, psycopg quotes and escapes every element of the JSON columns
# through a regular expression in Python (measured: 31x the CPU time of the binary form, 5,000 contexts).
# The models lock is shared before an event id is taken (a one-time filter, evaluated before the first row)
# and until the transaction ends: an id is taken at the insert, not at the commit, so a publication takes
# that lock alone for a moment to know that every id up to the newest is committed or never will be
# (``scoring/publication.py``). In the statement, not a round trip of its own: the processor's batch
# shares it again to save its scores (``share_models``), as before.
PG_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_FIELDS)}) "
    f"SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in PG_TYPES)}) "
    f"WHERE (SELECT true FROM (SELECT {SHARE_MODELS}) AS shared) "
    "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
)
_KNOWN = select(events.c.message_id).where(in_list(events.c.message_id, "ids", Text))
INBOX_ROW_EVENTS = 100
# PostgreSQL: people are spread over this many partitions (``partition``); an acknowledgement writes an
# inbox row per partition its events fall in, and concurrent processors each take their own partitions'
# rows (``claim``), so two never take events of the same person at once nor wait at each other's lead locks
PARTS = 16
# advisory lock keys (the first key is the schema's hash, so that schemas of one database stay apart):
# a partition claimed by a transaction is PART_LOCK + partition; a processor's membership (``members``)
# is its slot, below PART_LOCK
PART_LOCK = 1000
# the key of an inbox entry that holds leads to score, not an event (``mark_pending``)
PENDING = "pending_rescore"
_ENQUEUE = {
    "sqlite": "INSERT INTO inbox (received_ms, events, rows) VALUES (?, ?, ?)",
    "postgresql": "INSERT INTO inbox (received_ms, events, rows, part) VALUES (%s, %s, %s, %s)",
}
# the SQLite acknowledgement, on the driver's connection (see ``acknowledge_sqlite``)
_SQLITE_KNOWN = "SELECT message_id FROM events WHERE message_id IN (SELECT value FROM json_each(?))"
_WAITING = select(inbox.c.id, inbox.c.events).order_by(inbox.c.id).limit(bindparam("n"))
_CLAIMED = select(inbox.c.received_ms, inbox.c.rows).where(in_list(inbox.c.id, "ids", Integer))
_DONE = delete(inbox).where(in_list(inbox.c.id, "ids", Integer))
# PostgreSQL: the claim in one round trip instead of three (lock the ids, read the rows, delete them when
# done): the oldest unlocked rows up to ``n`` events (at least one row) are deleted at once, returning
# their events. The transaction that applies them holds the deletion until it commits; if it rolls back,
# the rows are back in the inbox, as an unclaimed row would be.
#
# Only rows of the partitions ``:parts`` whose lock this transaction gets are taken (a try-lock each: a
# partition another transaction holds is skipped, never waited for), so a partition's rows are taken by one
# transaction at a time, oldest first: a person's events are applied in the order they were acknowledged,
# whichever processors run. The locks are held until the transaction ends, with the deletion; every
# partition of ``:parts`` free then is locked, whether it had rows or not, so a processor asks for its own
# partitions only (``scoring/processor.py: Membership``). They are locked before the rows are read: a
# partition read first and locked after could have lost an older row to a transaction that rolled back.
_TAKE_PG = sql_text(
    "WITH parts AS MATERIALIZED ("
    " SELECT p FROM unnest(CAST(:parts AS INTEGER[])) AS p"
    f" WHERE pg_try_advisory_xact_lock(hashtext(current_schema()), {PART_LOCK} + p)"
    ") DELETE FROM inbox WHERE id IN ("
    " SELECT id FROM ("
    "  SELECT id, row_number() OVER (ORDER BY id) AS nth, sum(events) OVER (ORDER BY id) AS upto"
    "  FROM (SELECT id, events FROM inbox WHERE part IN (SELECT p FROM parts)"
    "   ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED) AS waiting"
    " ) AS counted WHERE nth = 1 OR upto <= :n"
    # whether anyone's ids are suppressed (``store/suppressions.py``), answered with the claim (an
    # uncorrelated subquery: evaluated once), so that a batch needs no round trip of its own to learn it
    ") RETURNING id, received_ms, rows, EXISTS (SELECT 1 FROM tracking_suppressions) AS suppressing"
)


def known_message_ids(conn: Connection, message_ids: Sequence[str]) -> set[str]:
    """The ids among ``message_ids`` already in the log."""
    if not message_ids:
        return set()
    return set(conn.execute(_KNOWN, {"ids": list(dict.fromkeys(message_ids))}).scalars())


def append_events(conn: Connection, rows: Sequence[dict[str, Any]], *, unknown: bool = False) -> set[str]:
    """Append events; a message id already in the log is skipped, and of two copies of one message in
    ``rows`` the first wins. Returns the ids actually inserted.

    ``unknown``: the caller found none of the rows' ids in the log within this transaction, and gives
    each id once; SQLite (one writer) then inserts them without searching again. PostgreSQL ignores it
    (another transaction may insert the same id meanwhile).

    The ingest hot path: rows go to the driver as plain tuples in one statement per chunk (the ORM-level
    insert costs more than the database does here).
    """
    if not rows:
        return set()
    if unknown and conn.dialect.name == "sqlite":
        sqlite_insert(conn, "events", EVENT_FIELDS, [_values(row) for row in rows], ("message_id",))
        return {row["message_id"] for row in rows}
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["message_id"], row)
    if conn.dialect.name == "postgresql":
        inserted: set[str] = set()
        # in message id order: two processors inserting overlapping ids wait for each other, never deadlock
        unique = sorted(first.values(), key=lambda row: str(row["message_id"]))
        for start in range(0, len(unique), PG_CHUNK):
            columns = _columns(unique[start : start + PG_CHUNK])
            # RETURNING, not a prior SELECT: another process may insert the same id concurrently
            inserted.update(row[0] for row in conn.exec_driver_sql(PG_INSERT, columns))
        return inserted
    known = known_message_ids(conn, list(first))
    fresh = [_values(row) for mid, row in first.items() if mid not in known]
    # SQLite has one writer at a time (BEGIN IMMEDIATE), so what was not known is what gets inserted
    sqlite_insert(conn, "events", EVENT_FIELDS, fresh, ("message_id",))
    return {mid for mid in first if mid not in known}


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Append event-log rows to the inbox, ``INBOX_ROW_EVENTS`` to an inbox row; returns the rows added."""
    if not rows:
        return 0
    entries: list[tuple[Any, ...]]
    if conn.dialect.name == "postgresql":  # a row per partition (``claim``), each in the rows' order
        by_part: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            by_part.setdefault(partition(row.get("person_key")), []).append(row)
        entries = [(*entry, part) for part, some in by_part.items() for entry in _inbox_entries(some)]
    else:
        entries = list(_inbox_entries(rows))
    conn.exec_driver_sql(_ENQUEUE[conn.dialect.name], entries if len(entries) > 1 else entries[0])
    return len(entries)


def partition(person_key: Any) -> int:
    """The inbox partition of a person key's events (the same in every process: CRC-32, not ``hash``)."""
    return zlib.crc32(str(person_key or "").encode()) % PARTS


def acknowledge_sqlite(db: sqlite3.Connection, rows: Mapping[str, dict[str, Any]]) -> set[str]:
    """SQLite: in one ``BEGIN IMMEDIATE`` transaction on the driver's connection, find which of ``rows``
    (event-log rows by message id) the log holds already and append every other one to the inbox
    (``enqueue``'s rows). Returns the ids the log held.

    The acknowledgement path of every tracking request: through SQLAlchemy's execution machinery the
    four statements cost several times what SQLite spends on them (measured: 125 against 22 µs for the
    lookup and the insert of a one-event group, 44 against 8 µs for the BEGIN). PostgreSQL's groups take
    ``known_message_ids`` and ``enqueue``.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        found = db.execute(_SQLITE_KNOWN, (orjson.dumps(list(rows)).decode(),))
        known = {mid for (mid,) in found}
        fresh = [row for mid, row in rows.items() if mid not in known]
        if fresh:
            db.executemany(_ENQUEUE["sqlite"], _inbox_entries(fresh))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return known


def _inbox_entries(rows: Sequence[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """``inbox_rows`` as the insert's parameters: (received_ms, events, rows)."""
    return [(r["received_ms"], r["events"], r["rows"]) for r in inbox_rows(rows)]


def inbox_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The inbox rows holding these event-log rows (as they are, one JSON object each), in order."""
    out = []
    for at in range(0, len(rows), INBOX_ROW_EVENTS):
        chunk = rows[at : at + INBOX_ROW_EVENTS]
        received = min(r["received_ms"] for r in chunk)
        out.append({"received_ms": received, "events": len(chunk), "rows": inbox_json(chunk)})
    return out


def inbox_events(text: str) -> list[dict[str, Any]]:
    """The event-log rows an inbox row holds."""
    try:
        rows: list[dict[str, Any]] = orjson.loads(text)
    except orjson.JSONDecodeError:  # integers beyond 64 bits were written by the standard library
        rows = json.loads(text)
    return rows


@dataclass
class Claimed:
    """Inbox rows taken by one processor transaction: their ids and their events, oldest first."""

    ids: list[int]
    rows: list[dict[str, Any]]
    oldest_ms: int
    # what could not be read as event-log rows (JSON text, the reason): the processor dead-letters it
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    released: bool = False  # deleted from the inbox already (PostgreSQL: in the claim's statement)
    # leads whose events are in the log but not yet scored (``PENDING`` entries: ``mark_pending``)
    pending: list[dict[str, Any]] = field(default_factory=list)
    # each taken row's acknowledgement time and events (a SQLite processor's arrivals that the inbox, once
    # they are taken, no longer shows: ``arrived_since``)
    arrivals: list[tuple[int, int]] = field(default_factory=list)
    # PostgreSQL: whether anyone's ids were suppressed when claimed (None: not asked, on SQLite)
    suppressing: bool | None = None


def claim(conn: Connection, limit: int, parts: Sequence[int] | None = None) -> Claimed | None:
    """The oldest inbox rows holding at most ``limit`` events (at least one row), or None when empty.

    On PostgreSQL the rows are deleted in the claim's statement (``release`` then has nothing left to do),
    and only rows of the partitions ``parts`` (default: all) that no other transaction holds are taken, so
    concurrent processors never take the same rows, nor the same partition's.
    """
    if conn.dialect.name == "postgresql":
        every = list(range(PARTS)) if parts is None else list(parts)
        deleted = sorted(conn.execute(_TAKE_PG, {"n": limit, "parts": every}).all())
        if not deleted:
            return None
        ids = [inbox_id for inbox_id, _, _, _ in deleted]
        taken: Sequence[tuple[int, str]] = [(received, body) for _, received, body, _ in deleted]
        suppressing: bool | None = bool(deleted[0][3])
    else:
        ids = []
        total = 0
        for inbox_id, count in conn.execute(_WAITING, {"n": limit}):
            if ids and total + count > limit:
                break
            ids.append(inbox_id)
            total += count
        if not ids:
            return None
        taken = [(received, body) for received, body in conn.execute(_CLAIMED, {"ids": ids})]
        suppressing = None
    claimed = Claimed(
        ids,
        [],
        min(received for received, _ in taken),
        released=conn.dialect.name == "postgresql",
        suppressing=suppressing,
    )
    for received, body in taken:
        try:
            rows = inbox_events(body)
        except (ValueError, RecursionError) as exc:
            claimed.unreadable.append((body, f"inbox row is not JSON: {exc}"))
            continue
        if not isinstance(rows, list):
            claimed.unreadable.append((body, "inbox row is not a JSON array"))
            continue
        before = len(claimed.rows)
        for row in rows:
            if isinstance(row, dict) and isinstance(row.get("message_id"), str):
                claimed.rows.append(row)
            elif isinstance(row, dict) and isinstance(row.get(PENDING), dict):
                claimed.pending.append(row[PENDING])
            else:
                claimed.unreadable.append((inbox_json(row), "inbox entry is not an event with a message_id"))
        if len(claimed.rows) > before:
            claimed.arrivals.append((received, len(claimed.rows) - before))
    return claimed


def mark_pending(conn: Connection, entry: dict[str, Any], events: int, received_ms: int) -> tuple[int, str]:
    """Add an inbox row holding ``entry`` (the leads a SQLite processor logged ``events`` for and scores
    outside the write lock: ``scoring/snapshot.py``), which ``claim`` returns in ``pending`` until
    ``done_pending`` deletes it; returns its id and text. Its events count as waiting
    (``waiting_events``) until then: they are in the log, not yet scored. Left by a processor that
    stopped before scoring, it is taken with the next batch, whose processor scores those leads."""
    text = inbox_json([{PENDING: entry}])
    row = conn.execute(inbox.insert().values(received_ms=received_ms, events=events, rows=text))
    assert row.inserted_primary_key is not None
    return int(row.inserted_primary_key[0]), text


def done_pending(conn: Connection, pending: tuple[int, str]) -> bool:
    """Delete the row ``mark_pending`` added; False when another processor took it first. Its id alone
    does not name it: once taken, a new inbox row may get the same id (SQLite reuses the largest)."""
    inbox_id, text = pending
    return bool(conn.execute(delete(inbox).where(inbox.c.id == inbox_id, inbox.c.rows == text)).rowcount)


def release(conn: Connection, claimed: Claimed) -> None:
    """Delete claimed inbox rows: their events are in the log, applied and scored."""
    if not claimed.released:
        conn.execute(_DONE, {"ids": claimed.ids})
        claimed.released = True


def waiting_events(conn: Connection) -> int:
    """How many events wait in the inbox (to be logged and scored, or logged and to be scored)."""
    return int(conn.execute(select(func.coalesce(func.sum(inbox.c.events), 0))).scalar_one())


def arrived_since(conn: Connection, since_ms: int, rows: int = 2000) -> int:
    """How many of the inbox's events were acknowledged at ``since_ms`` or later (a SQLite processor's
    measure of a flood: ``scoring/processor.py``, which adds those it took itself: ``Claimed.arrivals``),
    among its newest ``rows`` rows: SQLite gives a new row the largest id, so these are read from the end
    of the primary key, whatever waits before them."""
    newest = select(inbox.c.received_ms, inbox.c.events).order_by(inbox.c.id.desc()).limit(rows).subquery()
    query = select(func.coalesce(func.sum(newest.c.events), 0)).where(newest.c.received_ms >= since_ms)
    return int(conn.execute(query).scalar_one())


def inbox_json(value: Any) -> str:
    """JSON text of ``value`` as the inbox (and a dead letter) holds it."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits (from JSON Lines import): the standard library copes
        return json.dumps(value)


_FIELDS_OF = itemgetter(*EVENT_FIELDS)
_JSON_AT = tuple(i for i, k in enumerate(EVENT_FIELDS) if k in JSON_FIELDS)


def _values(row: dict[str, Any]) -> tuple[Any, ...]:
    """An event row's values in the order of ``EVENT_FIELDS``, JSON fields as text (one a stored event)."""
    values = list(_FIELDS_OF(row))
    for i in _JSON_AT:
        values[i] = inbox_json(values[i])
    return tuple(values)


def _columns(rows: Sequence[dict[str, Any]]) -> tuple[list[Any], ...]:
    return tuple(
        [inbox_json(r[k]) for r in rows] if k in JSON_FIELDS else [r[k] for r in rows] for k in EVENT_FIELDS
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


# searched by person key (``ix_events_person_ts``), the keys of the people a batch is about to link (each
# once in its life), never by type: the type is compared through coalesce, which no index serves. Both
# stores otherwise walked ``ix_events_type_ts_path``, every identify of every person (SQLite always;
# PostgreSQL where identifies are rare), a search that grew with the whole log
_IDENTIFIES_OF_KEYS = (
    select(events.c.person_key, events.c.ts, events.c.message_id, events.c.context)
    .where(
        in_list(events.c.person_key, "keys", Text),
        func.coalesce(events.c.type, literal_column("''")) == literal_column("'identify'"),
    )
    .order_by(events.c.ts, events.c.message_id)
)


def identifies_of_keys(conn: Connection, keys: Sequence[str]) -> list[Any]:
    """The identify events stored under person ``keys`` (person key, ts, message id, context), in event-time
    order: what an anonymous person said about itself before its id was linked to a lead."""
    return list(conn.execute(_IDENTIFIES_OF_KEYS, {"keys": list(keys)})) if keys else []


def drop_events_without_consent(conn: Connection, lead_ids: Sequence[int]) -> int:
    """Delete every event of those ``lead_ids`` whose ``consent_tracking`` is false (events still in the
    inbox are dropped the same way when they are processed)."""
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
    return int(conn.execute(events.delete().where(events.c.person_key.in_(keys))).rowcount)


def hold_inbox(conn: Connection) -> None:
    """PostgreSQL: lock every inbox row for the transaction, first waiting for the processors that claimed
    some (their claim deletes them) to commit, so that this transaction's next statements see what they
    logged and applied, and no processor takes a waiting row until it ends (an erasure). SQLite's writer
    is alone: nothing to do."""
    if conn.dialect.name == "postgresql":
        # in id order, as ``drop_from_inbox`` (retention) locks them: the two never wait for each other crosswise
        conn.execute(select(inbox.c.id).order_by(inbox.c.id).with_for_update())


def drop_from_inbox(conn: Connection, drop: Callable[[dict[str, Any]], bool]) -> int:
    """Remove the waiting events ``drop`` picks (erasure, retention); returns how many.

    Inbox rows are rewritten without them, or deleted when nothing is left. On PostgreSQL each row is
    locked first, so a processor holding one finishes with it before it is rewritten.
    """
    query = select(inbox.c.id, inbox.c.rows).order_by(inbox.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    dropped = 0
    for inbox_id, text in conn.execute(query).all():
        rows = inbox_events(text)
        # a pending row (``mark_pending``) names leads whose events are in the log: not a waiting event
        kept = [row for row in rows if PENDING in row or not drop(row)]
        if len(kept) == len(rows):
            continue
        dropped += len(rows) - len(kept)
        if kept:
            (entry,) = inbox_rows(kept)
            conn.execute(inbox.update().where(inbox.c.id == inbox_id).values(**entry))
        else:
            conn.execute(inbox.delete().where(inbox.c.id == inbox_id))
    return dropped


def waiting_rows(conn: Connection) -> list[dict[str, Any]]:
    """Every event waiting in the inbox (event-log rows), oldest inbox row first; not the leads a SQLite
    processor logged and scores between its two turns (``mark_pending``: their events are in the log)."""
    texts = conn.execute(select(inbox.c.rows).order_by(inbox.c.id)).scalars()
    return [row for text in texts for row in inbox_events(text) if PENDING not in row]


def stored_message_ids(conn: Connection) -> set[str]:
    """Every message id stored: in the event log or still waiting in the inbox (tests, audits). The inbox
    is read first: a processor moving a batch from it to the log between the two reads (PostgreSQL reads
    each statement at its own moment) left the batch in neither, read the other way round."""
    stored = {row["message_id"] for row in waiting_rows(conn)}
    stored.update(conn.execute(select(events.c.message_id)).scalars())
    return stored

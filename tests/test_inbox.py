"""The inbox: acknowledged events wait there, as JSON arrays, until the processor moves them into the log.

What must hold: a message is stored and applied once however often it was acknowledged (twice in one
group, in two inbox rows, or once more after it reached the log); the processor takes the oldest rows
first and at least one row whatever its size; and the migration from the old inbox (pointers into the
log) keeps every waiting event waiting, both ways.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import func, select, text

from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import GroupCommitter
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.scoring.processor import process_pending
from leadscore.store import Store
from leadscore.store.event_log import (
    INBOX_ROW_EVENTS,
    acknowledge_sqlite,
    claim,
    stored_message_ids,
    waiting_events,
)
from leadscore.store.ledger_lines import read_lines
from leadscore.store.schema import events, inbox
from migration_steps import migrate

NOW = 1_717_200_000_000
MODEL = """
model: inbox
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
scale: {engagement_max: 1000, bands: {hot: 70, warm: 20}}
"""


def _row(message_id: str, user: str = "ann", minutes_ago: int = 1) -> dict[str, Any]:
    message = {
        "type": "page",
        "userId": user,
        "messageId": message_id,
        "timestamp": NOW - minutes_ago * 60_000,
    }
    return event_row(normalise(message, received_ms=NOW), "api")


def _drain(store: Store, limit: int | None = None) -> int:
    """Process the inbox until it is empty; returns the transactions it took."""
    transactions = 0
    while process_pending(store, **({} if limit is None else {"limit": limit})):
        transactions += 1
    return transactions


def _visits(store: Store, user: str = "ann") -> int:
    with store.connect() as conn:
        matched = [
            ln["matched"] for ln in read_lines(conn, None, every_score=True) if ln["rule_id"] == "visit"
        ]
    return sum(m or 0 for m in matched)


def test_a_message_acknowledged_again_is_stored_and_counted_once(store: Store) -> None:
    publish(store, loads_model(MODEL), as_of=NOW)
    first = GroupCommitter(store).start()
    assert first.submit([_row("m1"), _row("m2"), _row("m1")]).result() == {"m1", "m2"}  # m1 twice in a group
    assert first.submit([_row("m2")]).result() == set()  # a resend while m2 still waits: a duplicate
    first.stop()
    # another process (or this one after a restart) knows nothing of m2 waiting: a second inbox row
    second = GroupCommitter(store).start()
    assert second.submit([_row("m2"), _row("m3")]).result() == {"m2", "m3"}
    with store.connect() as conn:
        assert waiting_events(conn) == 4
    assert _drain(store, limit=1) == 2  # one inbox row per transaction: {m1, m2}, then {m2, m3}
    # m2 reached the log already: the committer answers it as a duplicate now
    assert second.submit([_row("m2")]).result() == set()
    second.stop()
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 3
        assert waiting_events(conn) == 0
    assert _visits(store) == 3


def test_the_committer_remembers_the_last_recent_ids_it_stored(store: Store, monkeypatch: Any) -> None:
    monkeypatch.setattr("leadscore.ingest.committer.RECENT_IDS", 3)
    committer = GroupCommitter(store).start()
    assert committer.submit([_row("m1"), _row("m2")]).result() == {"m1", "m2"}
    assert committer.submit([_row("m3"), _row("m4")]).result() == {"m3", "m4"}  # m1 is forgotten
    assert committer.submit([_row("m2")]).result() == set()  # remembered: a duplicate
    assert committer.submit([_row("m1")]).result() == {"m1"}  # forgotten while waiting: accepted again
    committer.stop()
    with store.connect() as conn:
        assert waiting_events(conn) == 5
    publish(store, loads_model(MODEL), as_of=NOW)
    assert _drain(store) == 1  # three inbox rows, five events: one transaction
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 4
    assert _visits(store) == 4


def test_the_sqlite_acknowledgement_reports_logged_ids_and_rolls_back_a_failed_group(
    sqlite_store: Store,
) -> None:
    publish(sqlite_store, loads_model(MODEL), as_of=NOW)
    committer = GroupCommitter(sqlite_store).start()
    assert committer.submit([_row("m1"), _row("m2")]).result() == {"m1", "m2"}
    committer.stop()
    assert _drain(sqlite_store) == 1  # m1 and m2 reach the log
    with sqlite_store.engine.connect() as conn:
        db = conn.connection.driver_connection
        assert db is not None
        assert acknowledge_sqlite(db, {"m1": _row("m1")}) == {"m1"}
        assert acknowledge_sqlite(db, {r["message_id"]: r for r in map(_row, ["m2", "m3", "m4"])}) == {"m2"}
        # the database refuses a group holding m6 (after the lookup, at the insert)
        db.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON inbox WHEN NEW.rows LIKE '%\"m6\"%' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            acknowledge_sqlite(db, {"m5": _row("m5"), "m6": _row("m6")})
        assert not db.in_transaction  # rolled back: the connection takes the next group
        assert acknowledge_sqlite(db, {"m5": _row("m5")}) == set()
    with sqlite_store.connect() as conn:
        assert waiting_events(conn) == 3  # m3, m4 (one inbox row) and m5; nothing of the failed group
        assert conn.execute(select(func.count()).select_from(inbox)).scalar() == 2


def test_the_processor_takes_the_oldest_rows_up_to_its_limit(store: Store) -> None:
    committer = GroupCommitter(store).start()
    committer.submit([_row(f"a{i}") for i in range(INBOX_ROW_EVENTS + 50)]).result()  # rows of 100 and 50
    committer.submit([_row("b0")]).result()
    committer.stop()
    with store.begin() as conn:
        counts = conn.execute(select(inbox.c.events).order_by(inbox.c.id)).scalars().all()
        assert counts == [INBOX_ROW_EVENTS, 50, 1]
        small = claim(conn, 10)  # a row larger than the limit is still taken, alone
        assert small is not None and len(small.rows) == INBOX_ROW_EVENTS
        assert [r["message_id"] for r in small.rows[:2]] == ["a0", "a1"]
        conn.rollback()  # a claim rolled back leaves its rows to the next one (PostgreSQL deletes at claim)
    with store.begin() as conn:
        both = claim(conn, INBOX_ROW_EVENTS + 51)
        assert both is not None and len(both.rows) == INBOX_ROW_EVENTS + 51
        conn.rollback()
    assert process_pending(store, limit=120) == INBOX_ROW_EVENTS  # 100 + 50 would pass 120
    assert process_pending(store, limit=120) == 51
    assert process_pending(store, limit=120) == 0


def test_the_migration_keeps_waiting_events_waiting(store: Store) -> None:
    migrate(store, "downgrade", "0007")
    columns = "message_id, type, name, person_key, user_id, properties, context, ts, received_ms, source"
    with store.engine.begin() as conn:
        for mid in ("done", "waiting"):
            conn.execute(
                text(
                    f"INSERT INTO events ({columns}) VALUES "
                    f"(:mid, 'page', NULL, 'u:ann', 'ann', '{{\"path\": \"/a\"}}', '{{}}', :ts, :ts, 'api')"
                ),
                {"mid": mid, "ts": NOW},
            )
        conn.execute(text("INSERT INTO inbox (message_id, received_ms) VALUES ('waiting', :ts)"), {"ts": NOW})
    migrate(store, "upgrade", "heads")
    with store.connect() as conn:
        assert set(conn.execute(select(events.c.message_id)).scalars()) == {"done"}
        assert waiting_events(conn) == 1
        assert stored_message_ids(conn) == {"done", "waiting"}
    migrate(store, "downgrade", "0007")
    with store.engine.connect() as conn:
        assert set(conn.execute(text("SELECT message_id FROM events")).scalars()) == {"done", "waiting"}
        assert conn.execute(text("SELECT message_id FROM inbox")).scalars().all() == ["waiting"]
    migrate(store, "upgrade", "heads")
    assert process_pending(store) == 1
    with store.connect() as conn:
        waiting = conn.execute(
            select(events.c.properties).where(events.c.message_id == "waiting")
        ).scalar_one()
    assert waiting == {"path": "/a"}

"""Migration 0027ip: inbox rows carry the partition of people they hold (``store/event_log.py:
partition``). On PostgreSQL the rows already waiting are split by partition, in their order, so that a
person's waiting events stay ahead of the events acknowledged after the upgrade in the same partition
(kept in partition 0, a processor owning the person's partition would apply the newer events first).
On SQLite (one writer takes every row) they keep partition 0.

Partitions by hand (CRC-32, see tests/test_inbox_partitions.py): "u:a" → 14, "u:b" → 4.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.store import Store
from leadscore.store.event_log import claim, enqueue, inbox_events, inbox_json
from migration_steps import migrate

NOW = 1_717_200_000_000


def _row(user: str, mid: str, at: int) -> dict[str, Any]:
    return event_row(normalise({"type": "page", "userId": user, "messageId": mid}, received_ms=at), "api")


def _waiting_before_upgrade(store: Store) -> None:
    """Two inbox rows written before 0027ip: [a1, b1] and [a2]."""
    migrate(store, "downgrade", "0026ao")
    with store.engine.begin() as conn:
        for rows in ([_row("a", "a1", NOW + 1), _row("b", "b1", NOW + 2)], [_row("a", "a2", NOW + 3)]):
            conn.execute(
                text("INSERT INTO inbox (received_ms, events, rows) VALUES (:at, :n, :rows)"),
                {"at": rows[0]["received_ms"], "n": len(rows), "rows": inbox_json(rows)},
            )
    migrate(store, "upgrade", "heads")


def _inbox(store: Store) -> list[tuple[int, int, int, list[str]]]:
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT part, events, received_ms, rows FROM inbox ORDER BY id")).all()
    return [(p, n, at, [r["message_id"] for r in inbox_events(rows)]) for p, n, at, rows in stored]


@pytest.mark.postgres
def test_waiting_rows_are_split_by_partition_in_order(pg_store: Store) -> None:
    """After the upgrade a's partition holds a1 then a2 (b1 goes to b's); a3, acknowledged after the
    upgrade, comes after them: the processor owning a's partition takes a1, a2, a3 in that order."""
    _waiting_before_upgrade(pg_store)
    assert _inbox(pg_store) == [
        (14, 1, NOW + 1, ["a1"]),
        (4, 1, NOW + 2, ["b1"]),
        (14, 1, NOW + 3, ["a2"]),
    ]
    with pg_store.begin() as conn:
        enqueue(conn, [_row("a", "a3", NOW + 4)])
    with pg_store.begin() as conn:
        taken = claim(conn, 10, parts=[14])
        assert taken is not None and [r["message_id"] for r in taken.rows] == ["a1", "a2", "a3"]
        conn.rollback()
    migrate(pg_store, "downgrade", "0026ao")  # the column goes; the four rows stay
    with pg_store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), sum(events) FROM inbox")).one() == (4, 4)
    migrate(pg_store, "upgrade", "heads")


def test_waiting_rows_keep_partition_0_on_sqlite(tmp_path: Any) -> None:
    store = Store.from_url(str(tmp_path / "leadscore.db"))
    try:
        _waiting_before_upgrade(store)
        assert _inbox(store) == [(0, 2, NOW + 1, ["a1", "b1"]), (0, 1, NOW + 3, ["a2"])]
    finally:
        store.dispose()

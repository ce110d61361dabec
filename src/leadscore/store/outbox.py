"""The durable outbox: notifications written in the same transaction as the stage move that causes them,
delivered later by a worker that claims due rows with a lease.

Enqueueing is idempotent (unique ``key``). A claimed row gets ``next_attempt_ms`` pushed past its lease
before delivery starts, so a worker that dies mid-delivery leaves the row to be retried (at least once);
the key travels with every attempt so the receiver can drop a repeat (exactly once in effect).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select, update

from leadscore.store.schema import outbox
from leadscore.store.upsert import insert_ignore


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]], now_ms: int) -> int:
    """Add notifications (key, channel, action, lead_id, target, payload); existing keys are skipped."""
    full = [
        {"status": "pending", "attempts": 0, "next_attempt_ms": now_ms, "created_ms": now_ms, **r}
        for r in rows
    ]
    return insert_ignore(conn, outbox, full, ["key"])


def claim_due(conn: Connection, now_ms: int, lease_ms: int, limit: int) -> list[dict[str, Any]]:
    """Pending rows due now, leased to the caller until ``now_ms + lease_ms`` (commit to publish the lease)."""
    query = (
        select(outbox)
        .where(outbox.c.status == "pending", outbox.c.next_attempt_ms <= now_ms)
        .order_by(outbox.c.next_attempt_ms, outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    if rows:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([r["id"] for r in rows]))
            .values(next_attempt_ms=now_ms + lease_ms, attempts=outbox.c.attempts + 1)
        )
    return rows


def finish(conn: Connection, row_id: int, status: str, now_ms: int, error: str | None = None) -> None:
    """Mark a delivery sent, skipped (consent) or failed (given up)."""
    conn.execute(
        update(outbox)
        .where(outbox.c.id == row_id)
        .values(status=status, sent_ms=now_ms if status == "sent" else None, last_error=error)
    )


def retry_at(conn: Connection, row_id: int, when_ms: int, error: str) -> None:
    conn.execute(
        update(outbox).where(outbox.c.id == row_id).values(next_attempt_ms=when_ms, last_error=error)
    )


def read_outbox(
    conn: Connection, lead_id: int | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    query = select(outbox).order_by(outbox.c.id)
    if lead_id is not None:
        query = query.where(outbox.c.lead_id == lead_id)
    if status is not None:
        query = query.where(outbox.c.status == status)
    return [dict(r) for r in conn.execute(query).mappings()]


def outbox_counts(conn: Connection) -> dict[str, int]:
    query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
    return {str(s): int(n) for s, n in conn.execute(query).all()}

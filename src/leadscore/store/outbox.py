"""The durable outbox: notifications written in the same transaction as the stage move that causes them,
delivered later by a worker that claims due rows with a lease.

Enqueueing is idempotent (unique ``key``). A claimed row gets ``next_attempt_ms`` pushed past its lease
before delivery starts, so a worker that dies mid-delivery leaves the row to be retried (at least once);
the key travels with every attempt so the receiver can drop a repeat (exactly once in effect).

Each row names its ``endpoint`` (the webhook target, or ``smtp`` for mail) and counts its failed attempts
(``failures``, with the latest in ``last_error``): ``delivery_failures`` reads them by endpoint.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, case, func, select, update

from leadscore.store.newest import newest_rows
from leadscore.store.schema import outbox
from leadscore.store.upsert import insert_ignore

MAIL_ENDPOINT = "smtp"


def endpoint_of(channel: str, target: str) -> str:
    """Where a notification goes: one SMTP server for every mail, each webhook target on its own."""
    return MAIL_ENDPOINT if channel == "mail" else target


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]], now_ms: int) -> int:
    """Add notifications (key, channel, action, lead_id, target, payload); existing keys are skipped."""
    full = [
        {
            "status": "pending",
            "attempts": 0,
            "failures": 0,
            "next_attempt_ms": now_ms,
            "created_ms": now_ms,
            "endpoint": endpoint_of(str(r["channel"]), str(r["target"])),
            **r,
        }
        for r in rows
    ]
    return insert_ignore(conn, outbox, full, ["key"])


def ran_since(conn: Connection, action: str, lead_id: int, since_ms: int) -> bool:
    """Whether the model's action ``action`` was enqueued for the lead at or after ``since_ms`` (its
    ``quiet_for``: whatever became of the row, sent, skipped or failed)."""
    query = select(outbox.c.id).where(
        outbox.c.lead_id == lead_id, outbox.c.action == action, outbox.c.created_ms >= since_ms
    )
    return conn.execute(query.limit(1)).first() is not None


def claim_due(
    conn: Connection,
    now_ms: int,
    lease_ms: int,
    limit: int,
    *,
    skip_endpoints: Collection[str] = (),
    skip_prefixes: Collection[str] = (),
    channels: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Pending rows due now, leased to the caller until ``now_ms + lease_ms`` (commit to publish the lease);
    rows of ``skip_endpoints`` (busy, or their breaker open), of endpoints starting with one of
    ``skip_prefixes`` (URLs of a busy host) and of other ``channels`` stay where they are."""
    query = (
        select(outbox)
        .where(outbox.c.status == "pending", outbox.c.next_attempt_ms <= now_ms)
        .order_by(outbox.c.next_attempt_ms, outbox.c.id)
        .limit(limit)
    )
    if skip_endpoints:
        query = query.where(outbox.c.endpoint.not_in(sorted(skip_endpoints)))
    for prefix in sorted(skip_prefixes):
        query = query.where(~outbox.c.endpoint.startswith(prefix, autoescape=True))
    if channels is not None:
        query = query.where(outbox.c.channel.in_(sorted(channels)))
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


def release(conn: Connection, row_ids: Sequence[int], now_ms: int) -> None:
    """Give back claimed rows that were not attempted (their endpoint had no room): due again, no attempt."""
    if row_ids:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(list(row_ids)))
            .values(next_attempt_ms=now_ms, attempts=outbox.c.attempts - 1)
        )


def finish(conn: Connection, row_id: int, status: str, now_ms: int, error: str | None = None) -> None:
    """Mark a delivery sent, skipped (consent) or failed (given up: a failed attempt is counted)."""
    conn.execute(
        update(outbox)
        .where(outbox.c.id == row_id)
        .values(
            status=status,
            sent_ms=now_ms if status == "sent" else None,
            last_error=error,
            failures=outbox.c.failures + (1 if status == "failed" else 0),
        )
    )


def retry_at(conn: Connection, row_id: int, when_ms: int, error: str) -> None:
    """A failed attempt: counted, and the row is due again at ``when_ms``."""
    conn.execute(
        update(outbox)
        .where(outbox.c.id == row_id)
        .values(next_attempt_ms=when_ms, last_error=error, failures=outbox.c.failures + 1)
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


def outbox_rows(
    conn: Connection, lead_id: int, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """``limit`` of the lead's notifications, newest first from ``offset``, returned oldest first as
    ``read_outbox``'s; and the notifications there are (a lead a write key moves back and forth across a
    stage's line gets any number)."""
    return newest_rows(conn, outbox, [outbox.c.lead_id == lead_id], [outbox.c.id], limit, offset)


def outbox_counts(conn: Connection) -> dict[str, int]:
    query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
    return {str(s): int(n) for s, n in conn.execute(query).all()}


def delivery_failures(conn: Connection) -> dict[str, dict[str, int]]:
    """By endpoint: failed attempts, rows given up (``failed``) and rows waiting for a retry."""
    query = (
        select(
            outbox.c.endpoint,
            func.sum(outbox.c.failures),
            func.sum(case((outbox.c.status == "failed", 1), else_=0)),
            func.sum(case(((outbox.c.status == "pending") & (outbox.c.failures > 0), 1), else_=0)),
        )
        .where(outbox.c.failures > 0)
        .group_by(outbox.c.endpoint)
    )
    return {
        str(endpoint): {"failures": int(n), "failed": int(failed), "retrying": int(retrying)}
        for endpoint, n, failed, retrying in conn.execute(query).all()
    }

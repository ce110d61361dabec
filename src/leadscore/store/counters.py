"""Running totals kept in the database (events acknowledged, scored, dead-lettered): every process adds
to them in the transaction that did the work, so any worker reports the same numbers, across restarts."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, select

from leadscore.store.schema import counters
from leadscore.store.upsert import dialect_insert

ACKNOWLEDGED = "events_acknowledged"  # events the processor took from the inbox
SCORED = "events_scored"  # events appended to the log, applied and scored by the processor
DEAD_LETTERED = "events_dead_lettered"  # messages set aside as dead letters
SUPPRESSED = "events_suppressed"  # messages dropped, unstored, for naming a person erased with --suppress


def add(conn: Connection, amounts: Mapping[str, int]) -> None:
    """Add to counters (created at zero); in name order, so two PostgreSQL writers never deadlock."""
    rows = [{"name": name, "value": amount} for name, amount in sorted(amounts.items()) if amount]
    if not rows:
        return
    stmt = dialect_insert(conn, counters)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"], set_={"value": counters.c.value + stmt.excluded.value}
    )
    conn.execute(stmt, rows)


def read(conn: Connection) -> dict[str, int]:
    """Every counter by name (one never added to is absent)."""
    return {str(n): int(v) for n, v in conn.execute(select(counters.c.name, counters.c.value)).all()}

"""the inbox's partition: each inbox row holds the events of one partition of people (a hash of the
person key, ``store/event_log.py: partition``), so that PostgreSQL processors take different people's
events and never wait at each other's lead locks (``scoring/processor.py``)

On PostgreSQL the rows already waiting are split by partition, in their order (each keeps its place
before every row acknowledged after the upgrade): left in one partition, a person's waiting events could
be applied after newer ones of the same person, taken from the person's partition by another processor.
A row that does not hold event-log rows (unreadable) stays as it is, in partition 0. On SQLite, where one
writer takes every row, they keep partition 0.

Revision ID: 0027ip
Revises: 0026ao
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from leadscore.store.event_log import inbox_events, inbox_rows, partition

revision = "0027ip"
down_revision = "0026ao"
branch_labels = None
depends_on = None


def _split(text: str) -> list[dict[str, Any]] | None:
    """The inbox rows (with ``part``) holding one waiting row's events by partition, or None to keep it."""
    try:
        events = inbox_events(text)
        by_part: dict[int, list[dict[str, Any]]] = {}
        for row in events:
            by_part.setdefault(partition(row["person_key"]), []).append(row)
        return [{**entry, "part": part} for part, some in by_part.items() for entry in inbox_rows(some)]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("part", sa.SmallInteger(), nullable=False, server_default="0"))
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    inbox = sa.table(
        "inbox",
        sa.column("id"),
        sa.column("received_ms"),
        sa.column("events"),
        sa.column("rows"),
        sa.column("part"),
    )
    moved: list[int] = []
    entries: list[dict[str, Any]] = []
    for inbox_id, text in conn.execute(sa.select(inbox.c.id, inbox.c.rows).order_by(inbox.c.id)):
        split = _split(text)
        if split is None:  # kept where it is: it cannot be moved ahead of the rows after it
            continue
        moved.append(inbox_id)
        entries.extend(split)
    if moved:
        conn.execute(inbox.delete().where(inbox.c.id.in_(moved)))
        conn.execute(inbox.insert(), entries)


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("part")

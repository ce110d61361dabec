"""the inbox holds acknowledged events themselves (a JSON array per row), not pointers into the event log

Events still waiting in the old inbox are moved into the new one (and out of the event log), so the
processor stores, applies and scores them as it does every acknowledged event.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from leadscore.store.event_log import EVENT_FIELDS, JSON_FIELDS, inbox_events, inbox_rows

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _events_table() -> sa.TableClause:
    columns = (sa.column(c, sa.JSON()) if c in JSON_FIELDS else sa.column(c) for c in EVENT_FIELDS)
    return sa.table("events", *columns)


def upgrade() -> None:
    conn = op.get_bind()
    events = _events_table()
    old_inbox = sa.table("inbox", sa.column("message_id"))
    waiting = [
        dict(r)
        for r in conn.execute(
            sa.select(*events.c).where(events.c.message_id.in_(sa.select(old_inbox.c.message_id)))
        ).mappings()
    ]
    op.drop_table("inbox")
    if waiting:
        conn.execute(events.delete().where(events.c.message_id.in_([r["message_id"] for r in waiting])))
    inbox = op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Text(), nullable=False),
    )
    if waiting:
        op.bulk_insert(inbox, inbox_rows(waiting))


def downgrade() -> None:
    """Waiting events go back into the event log, with the old inbox pointing at them."""
    conn = op.get_bind()
    events = _events_table()
    new_inbox = sa.table("inbox", sa.column("rows"))
    waiting: dict[str, dict[str, object]] = {}
    for (text,) in conn.execute(sa.select(new_inbox.c.rows)):
        for row in inbox_events(text):
            waiting.setdefault(row["message_id"], row)
    known = set(
        conn.execute(sa.select(events.c.message_id).where(events.c.message_id.in_(list(waiting)))).scalars()
    )
    fresh = [row for mid, row in waiting.items() if mid not in known]
    op.drop_table("inbox")
    old_inbox = op.create_table(
        "inbox",
        sa.Column("message_id", sa.String(300), sa.ForeignKey("events.message_id"), primary_key=True),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
    )
    if fresh:
        conn.execute(events.insert(), fresh)
        op.bulk_insert(
            old_inbox, [{"message_id": r["message_id"], "received_ms": r["received_ms"]} for r in fresh]
        )

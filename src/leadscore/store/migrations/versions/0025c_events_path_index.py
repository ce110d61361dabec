"""page paths bounded (1,000 bytes of UTF-8) and indexed with the type, time and person of their event: the rule
builder counts the page views under a path in a span from the index alone (``ix_events_type_ts_path``,
which replaces ``ix_events_type_ts``, its first two columns)

PostgreSQL refuses an index entry over about 2,700 bytes, so the path is bounded before it is indexed:
ingestion refuses a longer one (``ingest.limits.PATH_BYTES``), and a path stored before this revision that
is longer is cut here to its first 1,000 bytes (at a character's boundary), the only way its row can be
indexed. Rules on paths test prefixes and short texts; a page path that long is a broken or hostile
client's.

Revision ID: 0025c
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = "0025c"
down_revision = "0024"
branch_labels = None
depends_on = None

PATH_BYTES = 1000  # ingest.limits.PATH_BYTES when this revision was written (a revision never changes)


def cut(path: str) -> str:
    """The longest prefix of ``path`` of at most ``PATH_BYTES`` bytes of UTF-8."""
    return path.encode()[:PATH_BYTES].decode(errors="ignore")


def upgrade() -> None:
    bind = op.get_bind()
    events = sa.table("events", sa.column("id", sa.Integer), sa.column("path", sa.Text))
    size = (
        sa.func.octet_length(events.c.path)
        if bind.dialect.name == "postgresql"
        else sa.func.length(sa.cast(events.c.path, sa.LargeBinary))
    )
    long = bind.execute(sa.select(events.c.id, events.c.path).where(size > PATH_BYTES)).all()
    for row_id, path in long:
        bind.execute(sa.update(events).where(events.c.id == row_id).values(path=cut(path)))
    if bind.dialect.name == "postgresql":  # SQLite keeps text of any length whatever the declared type
        op.alter_column("events", "path", type_=sa.String(PATH_BYTES), existing_type=sa.Text())
    op.create_index("ix_events_type_ts_path", "events", ["type", "ts", "path", "person_key"])
    op.drop_index("ix_events_type_ts", table_name="events")
    _statistics(bind)


def _statistics(bind: sa.Connection) -> None:
    """On a SQLite store with planner statistics (``ANALYZE`` run before), the events' are read again: the
    planner reads an index without statistics as very selective, and would drive a lead's events by type
    and time through the new index, reading every event of the span (an account page's product usage:
    3.5 s at 100k leads), instead of through the lead's identities (a few ms). PostgreSQL analyses by
    itself."""
    if bind.dialect.name != "sqlite":
        return
    if bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first() is not None:
        bind.execute(sa.text("ANALYZE events"))


def downgrade() -> None:
    op.create_index("ix_events_type_ts", "events", ["type", "ts"])
    op.drop_index("ix_events_type_ts_path", table_name="events")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("events", "path", type_=sa.Text(), existing_type=sa.String(PATH_BYTES))
    _statistics(op.get_bind())

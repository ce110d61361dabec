"""events by type and time: the rule builder's counts ("n events in the last 90 days") and its pickers
(event names, page paths) read a type's recent events through this index instead of the whole log

Revision ID: 0017
Revises: 0014
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_type_ts", "events", ["type", "ts"])


def downgrade() -> None:
    op.drop_index("ix_events_type_ts", table_name="events")

"""the inbox's partition: each inbox row holds the events of one partition of people (a hash of the
person key, ``store/event_log.py: partition``), so that PostgreSQL processors take different people's
events and never wait at each other's lead locks (``scoring/processor.py``)

Rows already waiting keep partition 0 (any processor may take them, in order, as before).

Revision ID: 0027ip
Revises: 0026ao
"""

import sqlalchemy as sa
from alembic import op

revision = "0027ip"
down_revision = "0026ao"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("part", sa.SmallInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("part")

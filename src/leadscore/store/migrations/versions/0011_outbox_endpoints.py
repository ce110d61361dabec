"""outbox: the endpoint a row is delivered to (webhook URL or target, ``smtp``) and its failed attempts

Deliveries are bounded per endpoint (concurrency, circuit breaker), and failures are counted by endpoint
(``SELECT endpoint, sum(failures) FROM outbox GROUP BY endpoint``). Existing rows get their endpoint
from their channel and target.

Revision ID: 0011
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("endpoint", sa.Text(), nullable=False, server_default=""))
    op.add_column("outbox", sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
    outbox = sa.table("outbox", sa.column("channel"), sa.column("target"), sa.column("endpoint"))
    op.get_bind().execute(
        outbox.update().values(
            endpoint=sa.case((outbox.c.channel == "mail", sa.literal("smtp")), else_=outbox.c.target)
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("failures")
        batch.drop_column("endpoint")

"""scores.due_ms: when the passing of time alone may next change a stored score (the clock's index)

Existing scores get NULL (never due) until they are next rescored; `leadscore score` or a publish
schedules every lead at once.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("due_ms", sa.BigInteger(), nullable=True))
        batch.create_index("ix_scores_due", ["due_ms"])


def downgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.drop_index("ix_scores_due")
        batch.drop_column("due_ms")

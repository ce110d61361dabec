"""an index of each named score's history by time: "getting warmer" finds the leads whose score moved
since a moment from it (a lead without a history row since then has not warmed: lifecycle/reports.py)

Revision ID: 0024
Revises: 0022
"""

from alembic import op

revision = "0024"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_history_name_at", "score_history", ["score_name", "at_ms", "lead_id"])


def downgrade() -> None:
    op.drop_index("ix_history_name_at", table_name="score_history")

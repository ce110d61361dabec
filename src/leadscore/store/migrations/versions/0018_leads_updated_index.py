"""an index on leads.updated_ms: the dashboard's remembered reports read the newest update in O(1)

Revision ID: 0018
Revises: 0014
"""

from alembic import op

revision = "0018"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_leads_updated_ms", "leads", ["updated_ms"])


def downgrade() -> None:
    op.drop_index("ix_leads_updated_ms", table_name="leads")

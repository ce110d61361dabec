"""indexes for the dashboard: leads.updated_ms (the remembered reports read the newest update in O(1))
and lead_stages.stage (the funnel counts the leads in a stage)

Revision ID: 0018
Revises: 0014
"""

from alembic import op

revision = "0018"
down_revision = "0016d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_leads_updated_ms", "leads", ["updated_ms"])
    op.create_index("ix_lead_stages_stage", "lead_stages", ["stage"])


def downgrade() -> None:
    op.drop_index("ix_lead_stages_stage", table_name="lead_stages")
    op.drop_index("ix_leads_updated_ms", table_name="leads")

"""the leads each digest row of the outbox tells of, so erasing one renders the digest without it

Revision ID: 0016d
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0016d"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_leads",
        sa.Column("outbox_id", sa.Integer(), sa.ForeignKey("outbox.id"), primary_key=True),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), primary_key=True),
        sa.Column("section", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("note", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    )
    op.create_index("ix_digest_leads_lead", "digest_leads", ["lead_id"])


def downgrade() -> None:
    op.drop_index("ix_digest_leads_lead", table_name="digest_leads")
    op.drop_table("digest_leads")

"""health alerts (drift, calibration, MQL volume, acceptance; each open until its check clears) and
shadow models (candidate versions scored beside the active one, with their current scores)

Revision ID: 0014
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("check", sa.String(32), nullable=False),
        sa.Column("raised_ms", sa.BigInteger(), nullable=False),
        sa.Column("cleared_ms", sa.BigInteger()),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("threshold", sa.Float(precision=53), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_alerts_check_cleared", "alerts", ["check", "cleared_ms"])
    op.create_table(
        "shadow_models",
        sa.Column("model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), primary_key=True),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "shadow_scores",
        sa.Column("model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), primary_key=True),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), primary_key=True),
        sa.Column("as_of_ms", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(precision=53), nullable=False),
        sa.Column("fit_score", sa.Float(precision=53), nullable=False),
        sa.Column("engagement_score", sa.Float(precision=53), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("band", sa.String(8), nullable=False),
        sa.Column("scored_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shadow_scores")
    op.drop_table("shadow_models")
    op.drop_index("ix_alerts_check_cleared", table_name="alerts")
    op.drop_table("alerts")

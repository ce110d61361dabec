"""model backtests: replayed MQL results of a candidate model version against a baseline

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "model_backtests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False, index=True
        ),
        sa.Column("baseline_version_id", sa.Integer(), sa.ForeignKey("model_versions.id")),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("threshold", sa.Float(precision=53), nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_backtests")

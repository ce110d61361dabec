"""ingest API: write/read keys, the inbox of acknowledged events, threshold crossings, attribute times

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("attribute_ts", JSON, nullable=False, server_default="{}"))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("group_id", sa.String(255)))
        batch.add_column(sa.Column("previous_id", sa.String(255)))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger()),
    )
    op.create_table(
        "inbox",
        sa.Column("message_id", sa.String(300), sa.ForeignKey("events.message_id"), primary_key=True),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "score_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), nullable=False, index=True),
        sa.Column("model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_value", sa.String(16)),
        sa.Column("to_value", sa.String(16), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(precision=53), nullable=False),
        sa.Column("cause_ref", sa.Text(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("lead_id", "model_version_id", "kind", "at_ms", "to_value"),
    )


def downgrade() -> None:
    op.drop_table("score_events")
    op.drop_table("inbox")
    op.drop_table("api_keys")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("previous_id")
        batch.drop_column("group_id")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("attribute_ts")

"""notifications per user: immediate and daily digest, by mail and by Slack-compatible webhook

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_settings",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("mail_immediate", sa.Boolean(), nullable=False),
        sa.Column("mail_digest", sa.Boolean(), nullable=False),
        sa.Column("slack_url", sa.Text()),
        sa.Column("slack_immediate", sa.Boolean(), nullable=False),
        sa.Column("slack_digest", sa.Boolean(), nullable=False),
        sa.Column("digest_hour", sa.Integer(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_settings")

"""lifecycle: lead stages and their history, the outbox, assignment, feedback, segments, account stages

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(astext_type=sa.Text()), "postgresql")
F = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "lead_stages",
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), primary_key=True),
        sa.Column("stage", sa.String(63), nullable=False),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
        sa.Column("seen_scored_ms", sa.BigInteger()),
        sa.Column("seen_crossing_id", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "stage_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), nullable=False),
        sa.Column("from_stage", sa.String(63)),
        sa.Column("to_stage", sa.String(63), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("transition", sa.String(63), nullable=False),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("cause_ref", sa.Text(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_stage_history_lead_at", "stage_history", ["lead_id", "at_ms"])
    op.create_index("ix_stage_history_to_at", "stage_history", ["to_stage", "at_ms"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action", sa.String(63), nullable=False),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id")),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent_ms", sa.BigInteger()),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_ms"])
    op.create_index("ix_outbox_lead", "outbox", ["lead_id"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), nullable=False, index=True),
        sa.Column(
            "stage_move_id", sa.Integer(), sa.ForeignKey("stage_history.id"), nullable=False, unique=True
        ),
        sa.Column("team", sa.String(63), nullable=False),
        sa.Column("seller", sa.String(63), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_ms", sa.BigInteger()),
        sa.Column("touched_ms", sa.BigInteger()),
        sa.Column("escalated_ms", sa.BigInteger()),
    )
    op.create_table(
        "team_cursors",
        sa.Column("team", sa.String(63), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_table(
        "account_owners",
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("seller", sa.String(63), nullable=False),
        sa.Column("team", sa.String(63), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), nullable=False, index=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(63)),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("stage_from", sa.String(63), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment", sa.String(63), primary_key=True),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), primary_key=True),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "segment_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("segment", sa.String(63), nullable=False),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), nullable=False, index=True),
        sa.Column("change", sa.String(8), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "account_stages",
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("score", F, nullable=False),
        sa.Column("fit_score", F, nullable=False),
        sa.Column("engagement_score", F, nullable=False),
        sa.Column("engaged_contacts", sa.Integer(), nullable=False),
        sa.Column("target", sa.Boolean(), nullable=False),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "account_stage_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("from_stage", sa.String(16)),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("score", F, nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "mail_suppressions",
        sa.Column("email", sa.String(320), primary_key=True),
        sa.Column("reason", sa.String(63), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "mail_suppressions",
        "account_stage_history",
        "account_stages",
        "segment_changes",
        "segment_members",
        "feedback",
        "account_owners",
        "team_cursors",
        "assignments",
        "outbox",
        "stage_history",
        "lead_stages",
    ):
        op.drop_table(table)

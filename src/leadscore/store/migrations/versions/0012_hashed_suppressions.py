"""mail suppressions keep a peppered hash of the address instead of the address

An unsubscribe must outlive the person's erasure, and an erased person's address must not stay in the
database: rows now hold HMAC-SHA256(pepper, normalised address) (see store/suppressions.py). Existing
addresses are hashed with the pepper configured when the migration runs (LEADSCORE_SUPPRESSION_SECRET,
else LEADSCORE_SECRET_KEY). A downgrade cannot turn hashes back into addresses: it leaves the old table
empty, so export what you need before downgrading.

Revision ID: 0012
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from leadscore.settings import Settings
from leadscore.store.suppressions import email_hash

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    old = sa.table("mail_suppressions", sa.column("email"), sa.column("reason"), sa.column("at_ms"))
    rows = [dict(r) for r in conn.execute(sa.select(old.c.email, old.c.reason, old.c.at_ms)).mappings()]
    op.drop_table("mail_suppressions")
    new = op.create_table(
        "mail_suppressions",
        sa.Column("email_hash", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(63), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    if rows:
        pepper = Settings().suppression_pepper
        hashed = {email_hash(r["email"], pepper): r for r in rows}
        op.bulk_insert(
            new, [{"email_hash": h, "reason": r["reason"], "at_ms": r["at_ms"]} for h, r in hashed.items()]
        )


def downgrade() -> None:
    op.drop_table("mail_suppressions")
    op.create_table(
        "mail_suppressions",
        sa.Column("email", sa.String(320), primary_key=True),
        sa.Column("reason", sa.String(63), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )

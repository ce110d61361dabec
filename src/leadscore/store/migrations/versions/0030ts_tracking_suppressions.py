"""``tracking_suppressions``: peppered hashes of the identity keys of people erased with ``--suppress``
(``leadscore privacy erase --suppress``), whose later messages are dropped before anything is stored.
A new, empty table; downgrading drops it (and so forgets every such suppression).

Revision ID: 0030ts
Revises: 0029gk
"""

import sqlalchemy as sa
from alembic import op

revision = "0030ts"
down_revision = "0029gk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracking_suppressions",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("person", sa.String(63), nullable=False),
        sa.Column("email_hash", sa.String(64)),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_tracking_suppressions_person", "tracking_suppressions", ["person"])
    op.create_index("ix_tracking_suppressions_email_hash", "tracking_suppressions", ["email_hash"])


def downgrade() -> None:
    op.drop_index("ix_tracking_suppressions_email_hash", table_name="tracking_suppressions")
    op.drop_index("ix_tracking_suppressions_person", table_name="tracking_suppressions")
    op.drop_table("tracking_suppressions")

"""an account owner per account and team: ``sticky_accounts`` keeps a lead with its account's owner in the
team its assignment stage routes to (the analytics team's owner of an account is not the core team's),
so ``account_owners`` is keyed by (account, team) instead of by account

Every existing row keeps its account, seller, team and time; the table is rebuilt with the wider key
(SQLite cannot change a primary key in place).

A health alert's check is named after its score when it is not the primary's (``volume:analytics``): the
column widens from 32 to 100 characters (a score name has up to 63).

Revision ID: 0026ao
Revises: 0025c
"""

import sqlalchemy as sa
from alembic import op

revision = "0026ao"
down_revision = "0025c"
branch_labels = None
depends_on = None


def _rebuild(*key: str) -> None:
    bind = op.get_bind()
    old = sa.table(
        "account_owners",
        sa.column("account_id", sa.Integer),
        sa.column("seller", sa.String),
        sa.column("team", sa.String),
        sa.column("at_ms", sa.BigInteger),
    )
    rows = [dict(r) for r in bind.execute(sa.select(old)).mappings()]
    op.drop_table("account_owners")
    table = op.create_table(
        "account_owners",
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("seller", sa.String(63), nullable=False),
        sa.Column("team", sa.String(63), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )
    seen: set[tuple[object, ...]] = set()
    kept = []
    for row in sorted(rows, key=lambda r: (r["at_ms"], r["team"])):  # going back: each account's first owner
        if tuple(row[k] for k in key) not in seen:
            seen.add(tuple(row[k] for k in key))
            kept.append(row)
    if kept:
        op.bulk_insert(table, kept)


def upgrade() -> None:
    _rebuild("account_id", "team")
    if op.get_bind().dialect.name == "postgresql":  # SQLite keeps text of any length whatever the type
        op.alter_column("alerts", "check", type_=sa.String(100), existing_type=sa.String(32))


def downgrade() -> None:
    _rebuild("account_id")
    if op.get_bind().dialect.name == "postgresql":
        op.execute('DELETE FROM alerts WHERE length("check") > 32')
        op.alter_column("alerts", "check", type_=sa.String(32), existing_type=sa.String(100))

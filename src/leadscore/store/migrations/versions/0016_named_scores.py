"""named scores: several scores per lead (one per product line or persona), each scored by the active
version of its own model; scores, ledgers, history and crossings keyed by lead and score name

An existing store becomes one score named "primary" (the primary score): every version, score, ledger
line, history row and crossing it holds is labelled "primary" and no number changes. The downgrade keeps
the primary score's rows and drops the other scores' rows (a store of one score can hold no others).

Revision ID: 0016
Revises: 0014
"""

import time
import warnings

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0018"
branch_labels = None
depends_on = None

PRIMARY = "primary"
NAME = sa.String(63)


def _name_column() -> sa.Column[str]:
    return sa.Column("score_name", NAME, nullable=False, server_default=PRIMARY)


def upgrade() -> None:
    op.create_table(
        "score_names",
        sa.Column("name", NAME, primary_key=True),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
    )
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(_name_column())
    if op.get_bind().execute(sa.text("SELECT count(*) FROM model_versions")).scalar():
        op.execute(
            sa.text(
                "INSERT INTO score_names (name, is_primary, created_ms) VALUES (:name, :yes, :now)"
            ).bindparams(name=PRIMARY, yes=True, now=int(time.time() * 1000))
        )
    for table in ("scores", "ledger"):
        _repartition(table, add=True)
    with op.batch_alter_table("score_history") as batch:
        batch.add_column(_name_column())
        batch.drop_index("ix_history_lead_at")
        batch.create_index("ix_history_lead_at", ["lead_id", "score_name", "at_ms"])
    with op.batch_alter_table("score_events") as batch:
        batch.add_column(_name_column())


def downgrade() -> None:
    keep = sa.text("score_name = (SELECT coalesce(max(name), :primary) FROM score_names WHERE is_primary)")
    for table in ("score_events", "score_history", "ledger", "scores"):
        op.execute(sa.text(f"DELETE FROM {table} WHERE NOT ({keep.text})").bindparams(primary=PRIMARY))
    with op.batch_alter_table("score_events") as batch:
        batch.drop_column("score_name")
    with op.batch_alter_table("score_history") as batch:
        batch.drop_index("ix_history_lead_at")
        batch.drop_column("score_name")
        batch.create_index("ix_history_lead_at", ["lead_id", "at_ms"])
    for table in ("ledger", "scores"):
        _repartition(table, add=False)
    op.execute(
        sa.text(f"UPDATE model_versions SET active = :no WHERE NOT ({keep.text})").bindparams(
            no=False, primary=PRIMARY
        )
    )
    # a plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch would recreate model_versions, which
    # SQLite refuses to drop while scores, history and backtests reference it
    op.drop_column("model_versions", "score_name")
    op.drop_table("score_names")


def _repartition(table: str, *, add: bool) -> None:
    """Add (or drop) ``score_name`` to a table whose primary key starts with the lead id."""
    key = {"scores": ["lead_id"], "ledger": ["lead_id", "rule_id"]}[table]
    if add:
        key = [key[0], "score_name", *key[1:]]
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
    # SQLite recreates the table from its reflection, whose key columns still say primary_key=True; the new
    # key constraint wins (as intended) and SQLAlchemy warns that the two disagree
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Table '_alembic_tmp_", sa.exc.SAWarning)
        _rekey(table, key, add=add)


def _rekey(table: str, key: list[str], *, add: bool) -> None:
    with op.batch_alter_table(
        table, recreate="always" if op.get_bind().dialect.name == "sqlite" else "auto"
    ) as batch:
        if add:
            batch.add_column(_name_column())
        else:
            batch.drop_column("score_name")
        batch.create_primary_key(f"{table}_pkey", key)

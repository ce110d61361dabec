"""the ledger a row per lead and score: each row holds all of that score's ledger lines as one JSON array
(``store/ledger_lines.py``) instead of a row per line

A further named score wrote, deleted and read ~7 rows a lead (each in two B-trees on SQLite); it now
writes one. Every line keeps every value: floats are written as the shortest text that reads back as the
same double (``-0.0`` included; NaN and infinities as text under ``"nonfinite"``), NULLs as null, note
text as it is. The downgrade writes the lines back as rows. Readers go through ``read_lines``.

Revision ID: 0028pl
Revises: 0027ip
"""

from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

from leadscore.store.ledger_lines import PACKED, pack_tuples, unpack_lines

revision = "0028pl"
down_revision = "0027ip"
branch_labels = None
depends_on = None

BATCH = 2000  # scores copied per insert
OLD = "ledger_rows_0027"  # the row-per-line table while it is copied
NEW = "ledger_packed_0028"  # the packed table while it is copied back


def _key() -> list[sa.Column[Any]]:
    return [
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), primary_key=True),
        sa.Column("score_name", sa.String(63), primary_key=True, server_default="primary"),
    ]


def _rename(old: str, new: str) -> None:
    """Rename a table and (PostgreSQL: its key's index is a relation of its own) its primary key."""
    op.rename_table(old, new)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(f"ALTER TABLE {new} RENAME CONSTRAINT {old}_pkey TO {new}_pkey"))


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def upgrade() -> None:
    conn = op.get_bind()
    _rename("ledger", OLD)
    packed = op.create_table("ledger", *_key(), sa.Column("lines", sa.Text(), nullable=False))
    old = sa.table(OLD, *(sa.column(c) for c in ("lead_id", "score_name", *PACKED)))
    query = sa.select(old).order_by(old.c.lead_id, old.c.score_name, old.c.rule_id)
    rows = conn.execute(query.execution_options(yield_per=10_000))
    scores = (
        (key, [tuple(r[2:]) for r in lines]) for key, lines in groupby(rows, key=lambda r: (r[0], r[1]))
    )
    for chunk in _chunks(scores, BATCH):
        texts = pack_tuples([lines for _, lines in chunk], signed_zero=conn.dialect.name != "sqlite")
        conn.execute(
            packed.insert(),
            [
                {"lead_id": lead_id, "score_name": name, "lines": text}
                for ((lead_id, name), _), text in zip(chunk, texts, strict=True)
            ],
        )
    op.drop_table(OLD)


def _rows(lead_id: int, name: str, text: str) -> Sequence[dict[str, Any]]:
    return [dict(zip(("lead_id", "score_name", *PACKED), (lead_id, name, *line), strict=True))
            for line in unpack_lines(text)]  # fmt: skip


def downgrade() -> None:
    conn = op.get_bind()
    _rename("ledger", NEW)
    rows = op.create_table(
        "ledger",
        *_key(),
        sa.Column("rule_id", sa.String(100), primary_key=True),
        sa.Column("section", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule_group", sa.String(100)),
        sa.Column("matched", sa.Integer()),
        sa.Column("raw", sa.Float(precision=53)),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("decay", sa.Float(precision=53)),
        sa.Column("score_points", sa.Float(precision=53), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    new = sa.table(NEW, sa.column("lead_id"), sa.column("score_name"), sa.column("lines"))
    query = sa.select(new).order_by(new.c.lead_id, new.c.score_name)
    for chunk in _chunks(iter(conn.execute(query.execution_options(yield_per=BATCH))), BATCH):
        lines = [line for lead_id, name, text in chunk for line in _rows(lead_id, name, text)]
        if lines:
            conn.execute(rows.insert(), lines)
    op.drop_table(NEW)

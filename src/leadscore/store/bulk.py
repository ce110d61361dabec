"""Plain multi-row INSERTs for the real-time path: rows go to the driver as tuples.

``conn.execute(table.insert(), dicts)`` runs every row through SQLAlchemy's parameter processing (a
few microseconds a row), which the processor pays for each ledger line and history row of every batch.
The tables written here hold plain numbers and text (no JSON, no types to convert), so the driver can
take the values as they are. One statement text per (dialect, table, columns), rendered once.

On PostgreSQL the rows go as one array per column into a single ``INSERT ... SELECT FROM unnest(...)``
(as the event log's inserts do): an ``executemany`` sends and executes every row on its own, which the
server and the driver pay for per row (a processor batch writes a score, its ledger lines and history
rows for every lead it touched).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table


@lru_cache(maxsize=64)
def _statement(dialect: str, table: str, columns: tuple[str, ...]) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


# the array type each column's values travel as (the insert casts them to the column's own type)
_PG_ARRAYS: dict[type, str] = {bool: "boolean", int: "bigint", float: "double precision", str: "text"}


@lru_cache(maxsize=64)
def _unnest_statement(table: Table, columns: tuple[str, ...]) -> tuple[str, tuple[type, ...]] | None:
    """PostgreSQL: the ``unnest`` insert of these columns and each column's Python type (None when a
    column holds something else than numbers, text and booleans: those rows take ``executemany``)."""
    kinds = []
    for name in columns:
        try:
            kind = table.c[name].type.python_type
        except NotImplementedError:
            return None
        if kind not in _PG_ARRAYS:
            return None
        kinds.append(kind)
    arrays = ", ".join(f"%s::{_PG_ARRAYS[kind]}[]" for kind in kinds)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})", tuple(kinds)


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, columns of ``table``) in one statement: an executemany
    (SQLite), or one array per column (PostgreSQL)."""
    if not rows:
        return
    columns = tuple(rows[0])
    values = itemgetter(*columns)
    insert_tuples(conn, table, columns, [values(row) for row in rows] if len(columns) > 1 else
                  [(row[columns[0]],) for row in rows])  # fmt: skip


def insert_tuples(
    conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``insert_rows`` of rows given as tuples in the order of ``columns`` (no dict a row to build)."""
    if not rows:
        return
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
    unnest = _unnest_statement(table, columns) if conn.dialect.name == "postgresql" else None
    if unnest is not None:
        sql, kinds = unnest
        # each value as its column's type (an integer score of 0 beside floats would make the driver
        # guess a mixed array's type)
        arrays = tuple(
            [None if value is None else kind(value) for value in cells]
            for cells, kind in zip(zip(*rows, strict=True), kinds, strict=True)
        )
        conn.exec_driver_sql(sql, arrays)
        return
    conn.exec_driver_sql(_statement(conn.dialect.name, table.name, columns), rows)

"""Plain multi-row INSERTs for the real-time path: rows go to the driver as tuples.

``conn.execute(table.insert(), dicts)`` runs every row through SQLAlchemy's parameter processing (a
few microseconds a row), which the processor pays for each ledger line and history row of every batch.
The tables written here hold plain numbers and text (no JSON, no types to convert), so the driver can
take the values as they are. One statement text per (dialect, table, columns), rendered once.

On PostgreSQL the rows go by ``COPY`` (the driver formats them in C): an ``executemany`` sends and
executes every row on its own, which the server and the driver pay for per row (a processor batch writes a
score, its ledger lines and history rows for every lead it touched), and one array per column into an
``INSERT ... SELECT FROM unnest(...)`` costs the driver a Python loop per value (measured on 20,000
history rows: 0.10 CPU-s and 0.71 s against 0.04 and 0.22 s by ``COPY``). Rows that may exist already
(``ignore``: skipped on a conflict of those columns) take the ``unnest`` insert, ``COPY`` having no
``ON CONFLICT``; its arrays go in binary (``%b``), which spares the driver quoting and escaping each
text element through a regular expression (2.5x the CPU time).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table


@lru_cache(maxsize=64)
def _statement(dialect: str, table: str, columns: tuple[str, ...], ignore: tuple[str, ...] = ()) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    conflict = f" ON CONFLICT ({', '.join(ignore)}) DO NOTHING" if ignore else ""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))}){conflict}"


# the array type each column's values travel as (the insert casts them to the column's own type)
_PG_ARRAYS: dict[type, str] = {bool: "boolean", int: "bigint", float: "double precision", str: "text"}


@lru_cache(maxsize=64)
def _unnest_statement(
    table: Table, columns: tuple[str, ...], ignore: tuple[str, ...] = ()
) -> tuple[str, tuple[type, ...]] | None:
    """PostgreSQL: the ``unnest`` insert of these columns and each column's Python type (None when a
    column holds something else than numbers, text and booleans: those rows take ``executemany``); with
    ``ignore``, rows conflicting on those columns are skipped and the inserted ones returned."""
    kinds = []
    for name in columns:
        try:
            kind = table.c[name].type.python_type
        except NotImplementedError:
            return None
        if kind not in _PG_ARRAYS:
            return None
        kinds.append(kind)
    arrays = ", ".join(f"%b::{_PG_ARRAYS[kind]}[]" for kind in kinds)
    conflict = f" ON CONFLICT ({', '.join(ignore)}) DO NOTHING RETURNING 1" if ignore else ""
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}){conflict}",
        tuple(kinds),
    )


def insert_rows(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, ignore: Sequence[str] = ()
) -> int:
    """Insert ``rows`` (dicts with the same keys, columns of ``table``) in one statement: an executemany
    (SQLite), ``COPY`` (PostgreSQL), or with ``ignore`` (columns of a unique constraint: a row
    conflicting on them is skipped) one array per column (PostgreSQL). Returns the rows inserted."""
    if not rows:
        return 0
    columns, skip = tuple(rows[0]), tuple(ignore)
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
    unnest = _unnest_statement(table, columns, skip) if conn.dialect.name == "postgresql" else None
    if unnest is not None:
        _, kinds = unnest
        # each value as its column's type (an integer score of 0 beside floats would make the driver
        # guess a mixed array's type)
        typed = [[None if row[c] is None else kind(row[c]) for row in rows] for c, kind in zip(columns, kinds, strict=True)]  # fmt: skip
        if not skip:
            return _copy(conn, table.name, columns, typed)
        return len(conn.exec_driver_sql(unnest[0], tuple(typed)).fetchall())
    sql = _statement(conn.dialect.name, table.name, columns, skip)
    return int(conn.exec_driver_sql(sql, [tuple(row[c] for c in columns) for row in rows]).rowcount)


def _copy(conn: Connection, table: str, columns: tuple[str, ...], typed: list[list[Any]]) -> int:
    """PostgreSQL: ``COPY`` the rows (given as one list per column) in the connection's transaction."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in zip(*typed, strict=True):
            copy.write_row(row)
    return len(typed[0])

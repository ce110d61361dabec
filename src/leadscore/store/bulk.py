"""Plain multi-row INSERTs for the real-time path: rows go to the driver as tuples.

``conn.execute(table.insert(), dicts)`` runs every row through SQLAlchemy's parameter processing (a
few microseconds a row), which the processor pays for each ledger line and history row of every batch.
The tables written here hold plain numbers and text (no JSON, no types to convert), so the driver can
take the values as they are. One statement text per (dialect, table, columns), rendered once.

On PostgreSQL the rows go as one JSON array of objects into a single ``INSERT ... SELECT FROM
json_populate_recordset(NULL::table, ...)``, which reads each object's values as its table's column
types: an ``executemany`` sends and executes every row on its own, which the server and the driver pay
for per row (a processor batch writes a score, its ledger lines and history rows for every lead it
touched), and one array per column (``unnest``, what this did before) costs the driver a Python loop with
a regular-expression test per value (psycopg's text array dumper: a fifth of the processor's CPU, 3,800
values a 50-event batch); ``orjson`` writes the whole batch in one call. A value JSON cannot carry (NaN,
an infinity) sends its rows as arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, Table


@lru_cache(maxsize=64)
def _statement(dialect: str, table: str, columns: tuple[str, ...]) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def _finite(row: dict[str, Any], floats: Sequence[str]) -> bool:
    """Whether JSON carries the row's float values as they are (orjson writes NaN and infinities as null)."""
    return all(row[c] is None or math.isfinite(row[c]) for c in floats)


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


@lru_cache(maxsize=64)
def _json_statement(table: Table, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    return (
        f"INSERT INTO {table.name} ({names}) "
        f"SELECT {names} FROM json_populate_recordset(NULL::{table.name}, %s::json)"
    )


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, columns of ``table``) in one statement: an executemany
    (SQLite), or one JSON array of the rows (PostgreSQL)."""
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
        # each value as its column's type (a float 3.0 for an integer column would not read as one)
        typed = [
            {c: None if v is None else kind(v) for c, kind, v in zip(columns, kinds, row, strict=True)}
            for row in rows
        ]
        floats = [c for c, kind in zip(columns, kinds, strict=True) if kind is float]
        if all(_finite(row, floats) for row in typed):
            conn.exec_driver_sql(_json_statement(table, columns), (orjson.dumps(typed).decode(),))
            return
        # as arrays (an integer score of 0 beside floats would make the driver guess a mixed array's type)
        conn.exec_driver_sql(sql, tuple([row[c] for row in typed] for c in columns))
        return
    conn.exec_driver_sql(_statement(conn.dialect.name, table.name, columns), rows)

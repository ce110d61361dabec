"""Plain multi-row INSERTs for the real-time path: rows go to the driver as tuples.

``conn.execute(table.insert(), dicts)`` runs every row through SQLAlchemy's parameter processing (a
few microseconds a row), which the processor pays for each ledger line and history row of every batch.
The tables written here hold plain numbers and text (no JSON, no types to convert), so the driver can
take the values as they are. One statement text per (dialect, table, columns), rendered once.

On PostgreSQL the rows go as one JSON array of objects into a single ``INSERT ... SELECT FROM
json_populate_recordset(NULL::table, ...)``, which reads each object's values as its table's column
types: an ``executemany`` sends and executes every row on its own, which the server and the driver pay
for per row (a processor batch writes a score, its ledger lines and history rows for every lead it
touched), and one array per column in text form costs the driver a Python loop with a
regular-expression test per value (psycopg's text array dumper: a fifth of the processor's CPU, 3,800
values a 50-event batch); ``orjson`` writes the whole batch in one call, and unlike ``COPY`` the statement
may go in a psycopg pipeline (``store/pipelined.py``). Rows that may exist already (``ignore``: skipped on
a conflict of those columns) and values JSON cannot carry (NaN, an infinity) take an ``INSERT ... SELECT
FROM unnest(...)`` whose arrays go in binary (``%b``), which spares the driver quoting and escaping each
text element through a regular expression (2.5x the CPU time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, Table

# SQLite takes rows in multi-row INSERTs of up to 64 rows (7 statement shapes: 64, 32, ..., 1; 64 rows of 13
# columns are 832 values, far below SQLite's 32,766 variables). With a row at a time the driver steps once
# per row and releases the GIL around every step; a busy event loop then holds up the writer thread at
# every row (each re-acquire can wait a switch interval). One JSON array per group would need a single
# step, but parsing it costs SQLite more than binding values does (twice the CPU, 21,000 ledger lines).
MULTI_ROWS = 64


@lru_cache(maxsize=64)
def _statement(
    dialect: str,
    table: str,
    columns: tuple[str, ...],
    ignore: tuple[str, ...] = (),
    rows: int = 1,
    update_on: tuple[str, ...] = (),
) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    conflict = f" ON CONFLICT ({', '.join(ignore)}) DO NOTHING" if ignore else ""
    if update_on:
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in update_on)
        conflict = f" ON CONFLICT ({', '.join(update_on)}) DO UPDATE SET {sets}"
    row = f"({', '.join([mark] * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}{conflict}"


def sqlite_insert(
    conn: Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    ignore: tuple[str, ...] = (),
    update_on: tuple[str, ...] = (),
) -> int:
    """SQLite: ``rows`` inserted ``MULTI_ROWS`` to a statement (one ``executemany`` of those), the rest
    by one statement of each power of two it holds; rows conflicting on ``ignore`` are skipped, and a row
    conflicting on ``update_on`` (a unique key) sets the stored row's other columns instead (an update in
    place: the key's index is not written). Returns the rows inserted or updated. A statement of many rows
    costs SQLite and the driver one step for all of them: a fifth less CPU than an ``executemany`` of one
    row at a time (the ledger lines of a full rescoring)."""
    full = len(rows) - len(rows) % MULTI_ROWS
    done = 0
    if full:
        sql = _statement("sqlite", table, columns, ignore, MULTI_ROWS, update_on)
        chunks = [tuple(chain.from_iterable(rows[at : at + MULTI_ROWS])) for at in range(0, full, MULTI_ROWS)]
        done += int(conn.exec_driver_sql(sql, chunks).rowcount)
    at = full
    while at < len(rows):
        n = 1 << ((len(rows) - at).bit_length() - 1)
        sql = _statement("sqlite", table, columns, ignore, n, update_on)
        done += int(conn.exec_driver_sql(sql, tuple(chain.from_iterable(rows[at : at + n]))).rowcount)
        at += n
    return done


def _finite(values: Sequence[float | None]) -> bool:
    """Whether JSON carries a column's float values as they are (orjson writes NaN and infinities as
    null): their sum is finite only if each is (a NaN or an infinity stays in it; a sum too large for a
    float says no too, and those rows take the arrays, which carry every value)."""
    return math.isfinite(sum(filter(None, values)))


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


@lru_cache(maxsize=64)
def _json_statement(table: Table, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    return (
        f"INSERT INTO {table.name} ({names}) "
        f"SELECT {names} FROM json_populate_recordset(NULL::{table.name}, %s::json)"
    )


def insert_rows(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, ignore: Sequence[str] = ()
) -> int:
    """Insert ``rows`` (dicts with the same keys, columns of ``table``) in one statement: an executemany
    (SQLite), one JSON array of the rows (PostgreSQL), or with ``ignore`` (columns of a unique constraint:
    a row conflicting on them is skipped) one array per column (PostgreSQL). Returns the rows inserted."""
    if not rows:
        return 0
    columns = tuple(rows[0])
    values = itemgetter(*columns)
    return insert_tuples(conn, table, columns, [values(row) for row in rows] if len(columns) > 1 else
                         [(row[columns[0]],) for row in rows], ignore=ignore)  # fmt: skip


def insert_tuples(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    *,
    ignore: Sequence[str] = (),
) -> int:
    """``insert_rows`` of rows given as tuples in the order of ``columns`` (no dict a row to build)."""
    if not rows:
        return 0
    skip = tuple(ignore)
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
    unnest = _unnest_statement(table, columns, skip) if conn.dialect.name == "postgresql" else None
    if unnest is not None:
        sql, kinds = unnest
        if not skip:
            # each value as its column's type (a float 3.0 for an integer column would not read as one):
            # a column is converted only where a value of another type is in it (the JSON is the same)
            cells = list(zip(*rows, strict=True))
            mixed = False
            for i, kind in enumerate(kinds):
                if not set(map(type, cells[i])) <= {kind, type(None)}:
                    cells[i] = tuple(None if v is None else kind(v) for v in cells[i])
                    mixed = True
            if all(_finite(cells[i]) for i, kind in enumerate(kinds) if kind is float):
                typed = [
                    dict(zip(columns, row, strict=True))
                    for row in (zip(*cells, strict=True) if mixed else rows)
                ]
                conn.exec_driver_sql(_json_statement(table, columns), (orjson.dumps(typed).decode(),))
                return len(rows)
        # as arrays, each value as its column's type (an integer score of 0 beside floats would make the
        # driver guess a mixed array's type)
        arrays = tuple(
            [None if value is None else kind(value) for value in cells]
            for cells, kind in zip(zip(*rows, strict=True), kinds, strict=True)
        )
        if skip:
            return len(conn.exec_driver_sql(sql, arrays).fetchall())
        conn.exec_driver_sql(sql, arrays)
        return len(rows)
    if conn.dialect.name == "sqlite":
        return sqlite_insert(conn, table.name, columns, rows, skip)
    sql = _statement(conn.dialect.name, table.name, columns, skip)
    return int(conn.exec_driver_sql(sql, rows).rowcount)

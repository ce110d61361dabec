"""PostgreSQL pipeline mode for a run of writes: sent together, answered together, one round trip.

Each statement of a processor batch is a round trip, and on a loaded machine each round trip costs far
more than the statement (the server and the client each wait for the scheduler): 27 statements a batch
made the round trips, not the work, what bounded two processors. Inside ``pipelined(conn)`` psycopg sends
statements without waiting for their answers; a statement that returns rows is run with ``returning``,
whose rows are read after the writes behind it were sent (reading them waits for all of them at once).

Statements executed through SQLAlchemy inside must not return rows (it reads a result's columns as soon
as the statement is sent, before the answer came, and closes it as returning none). An error surfaces at
the read or at the end of the block, as SQLAlchemy's exception for it (an ``IntegrityError`` for a
unique violation, as outside a pipeline), and the transaction is then failed as after any error.
SQLite runs the same code one statement at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase

Statement = Select[Any] | UpdateBase


class Pipeline:
    """The statements of one ``pipelined`` block that return rows (``returning``)."""

    def __init__(self, conn: Connection, driver: Any | None) -> None:
        self.conn, self.driver = conn, driver

    def returning(self, statement: Statement, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Send ``statement`` (a query, or a write with RETURNING); iterating the result (rows as dicts,
        by the statement's column names) waits for its answer."""
        if self.driver is None:
            result = self.conn.execute(statement, dict(params))
            names = list(result.keys())
            return iter([dict(zip(names, row, strict=True)) for row in result.all()])
        return _rows(self._send(statement, params))

    def tuples(self, statement: Statement, params: Mapping[str, Any]) -> Iterator[Sequence[Any]]:
        """``returning`` with each row as a tuple of the statement's columns, in their order: no dict a row
        for a reader that unpacks it (a history pass reads a row per event of its leads)."""
        if self.driver is None:
            return iter(self.conn.execute(statement, dict(params)).all())
        return _tuples(self._send(statement, params))

    def _send(self, statement: Statement, params: Mapping[str, Any]) -> Any:
        compiled = _compiled(statement, self.conn.dialect)
        assert self.driver is not None
        cursor = self.driver.cursor()
        cursor.execute(compiled.string, {**compiled.params, **params})  # the statement's own values too
        return cursor


def _fetched(cursor: Any) -> list[Any]:
    try:
        rows: list[Any] = cursor.fetchall()  # waits for this statement's answer, and every one sent before it
    except Exception as exc:
        raise _translated(exc) from exc
    return rows


def _tuples(cursor: Any) -> Iterator[Sequence[Any]]:
    yield from _fetched(cursor)  # a generator: the answer is waited for when the rows are read


def _rows(cursor: Any) -> Iterator[dict[str, Any]]:
    rows = _fetched(cursor)
    names = [column.name for column in cursor.description]
    for row in rows:
        yield dict(zip(names, row, strict=True))


@lru_cache(maxsize=64)
def _compiled(statement: Statement, dialect: Any) -> Any:
    """The statement as the driver takes it (``%(name)s`` placeholders), compiled once."""
    return statement.compile(dialect=dialect)


def _translated(exc: Exception) -> Exception:
    """A driver error as SQLAlchemy raises it outside a pipeline (``IntegrityError``, ``OperationalError``)."""
    import psycopg

    if isinstance(exc, psycopg.Error):
        return DBAPIError.instance(None, None, exc, psycopg.Error)
    return exc


@contextmanager
def pipelined(conn: Connection) -> Iterator[Pipeline]:
    """Run the block's statements in one PostgreSQL pipeline (see the module docstring); on SQLite, as
    they come."""
    if conn.dialect.name != "postgresql":
        yield Pipeline(conn, None)
        return
    driver = conn.connection.driver_connection
    try:
        with driver.pipeline():  # type: ignore[union-attr]
            yield Pipeline(conn, driver)
    except DBAPIError:
        raise
    except Exception as exc:
        raise _translated(exc) from exc

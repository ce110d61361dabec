"""Engines beyond the store's: DuckDB and Spark SQL, each a small SQLAlchemy dialect plus its spellings.

Importing this package registers the ``@compiles`` spellings and the ``CAPABILITIES`` entries of both
engines; ``compile/__init__.py`` imports it, so ``compile_model(..., engine="duckdb" | "spark")`` works
wherever the compiler is imported. Nothing here imports duckdb or pyspark: rendering SQL needs neither.

``render_sql(query, engine)`` is the one way to turn a compiled SELECT into the text an engine runs with
every constant inline (the SQL snapshots in ``tests/snapshots`` are this text).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from leadscore.compile.engines.duckdb import DuckDBDialect
from leadscore.compile.engines.spark import SparkDialect

ENGINES = ("sqlite", "postgresql", "duckdb", "spark")


def dialect_for(engine: str) -> Dialect:
    """A dialect object that renders SQL for ``engine`` (no database connection involved)."""
    if engine == "sqlite":
        return sqlite.dialect()
    if engine == "postgresql":
        return postgresql.psycopg.dialect()
    if engine == "duckdb":
        return DuckDBDialect()
    if engine == "spark":
        return SparkDialect()
    raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")


def render_sql(query: ClauseElement, engine: str) -> str:
    """The query as one SQL text for ``engine``, constants inline (floats as double precision)."""
    kw: dict[str, Any] = {"literal_binds": True}
    return str(query.compile(dialect=dialect_for(engine), compile_kwargs=kw))


__all__ = ["ENGINES", "DuckDBDialect", "SparkDialect", "dialect_for", "render_sql"]

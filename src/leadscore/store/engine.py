"""Engines for the store: SQLite (embedded default, WAL) and PostgreSQL, migrated on open."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

from leadscore.model import regex_search
from leadscore.model.text_case import fold_case
from leadscore.store.wal import WAL_AUTOCHECKPOINT

MIGRATIONS = Path(__file__).parent / "migrations"


def _regexp(pattern: str | None, value: Any) -> int | None:
    if pattern is None or value is None:
        return None
    # RE2, linear in the value: Python's backtracking ``re`` could stall the processor on one event
    return int(regex_search.search(pattern, str(value)))


def lower_text(value: Any) -> str | None:
    """Text ignoring case, Unicode letters too (PostgreSQL's lower() in a UTF-8 database): SQLite's
    ``leadscore_lower``, and what the dashboard counts as one value (``web.data.product``)."""
    return None if value is None else fold_case(str(value))


def json_text(value: Any) -> str | None:
    """A JSON column's text with its characters as they are (PostgreSQL's ``jsonb::text``): on SQLite the
    rows SQLAlchemy writes keep every non-ASCII character escaped (json.dumps' ``\\u00fc`` for ``ü``), so
    a search of the text for a name finds it only in this reading (SQLite's ``leadscore_json_text``)."""
    if value is None:
        return None
    text = str(value)
    if "\\u" not in text:
        return text
    try:
        read = json.dumps(_loads(text), ensure_ascii=False)
        read.encode()  # an escaped lone surrogate stays escaped: SQLite takes UTF-8 text only
    except (ValueError, RecursionError):
        return text
    return read


def _power(base: float | None, exp: float | None) -> float | None:
    return None if base is None or exp is None else math.pow(base, exp)


def _on_sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # leadscore issues BEGIN itself (see _on_sqlite_begin); the driver must not
    dbapi_conn.isolation_level = None
    dbapi_conn.create_function("leadscore_regexp", 2, _regexp, deterministic=True)
    dbapi_conn.create_function("leadscore_lower", 1, lower_text, deterministic=True)
    dbapi_conn.create_function("leadscore_json_text", 1, json_text, deterministic=True)
    try:
        dbapi_conn.execute("SELECT power(2, 2)")
    except sqlite3.OperationalError:  # SQLite built without math functions
        dbapi_conn.create_function("power", 2, _power, deterministic=True)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    # the processor copies the log between its turns, before this is reached (``store/wal.py``)
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
    cur.execute("PRAGMA busy_timeout=10000")
    # 64 MiB of page cache per connection instead of 2 MiB: ingest inserts into the (person_key, ts) index
    # at every active person's position, and scoring reads the same pages back
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def _on_sqlite_begin(conn: Any) -> None:
    """Write transactions take SQLite's write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes fails with SQLITE_BUSY_SNAPSHOT when another
    connection committed in between; taking the lock first makes concurrent writers queue instead.
    """
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return  # each statement commits on its own (e.g. ANALYZE, VACUUM)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("immediate", False) else "BEGIN")


def _loads(text: str | bytes) -> Any:
    """JSON columns as read: orjson (several times faster, and the processor reads every event's
    properties and context); the standard library for what only it writes (NaN)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def normalise_url(url: str) -> str:
    """Accept plain file paths and ``postgres://`` URLs; pick the psycopg 3 driver for PostgreSQL."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, json_deserializer=_loads)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    _cache_long_statements()
    return create_engine(url, pool_pre_ping=True, json_deserializer=_loads)


# statements psycopg keeps converted: the compiled scoring queries of a few models, the processor's others
PSYCOPG_CACHED_LENGTH = 256 * 1024
PSYCOPG_CACHED_PARAMS = 500


def _cache_long_statements() -> None:
    """Let psycopg keep the compiled scoring query converted between executions.

    psycopg turns a statement's ``%(name)s`` placeholders into ``$n`` with a regular-expression pass over
    its text on every execution, except for statements of at most 4,096 characters and 50 parameters,
    whose conversion it caches (``psycopg._queries``; no public setting). The compiled query is longer
    (tens of kilobytes and dozens of parameters), so the processor paid that pass three times a batch:
    about half of its CPU (cProfile of ``bench/process_batches.py``: ``_split_query``). The statement
    texts repeat (they are compiled once per model), so caching them costs a bounded LRU of 128 texts.
    """
    try:
        from psycopg import _queries
    except ImportError:  # another driver
        return
    if getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", None) is None:
        return  # a psycopg without these limits: nothing to raise
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, PSYCOPG_CACHED_LENGTH)
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, PSYCOPG_CACHED_PARAMS)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")  # every branch, should one be open again

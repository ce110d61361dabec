"""``Store``: the one door to the database. Every write goes through its connection helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, inspect

from leadscore.compile import Sources
from leadscore.settings import DEFAULT_DATABASE_URL, database_url
from leadscore.store import schema
from leadscore.store.engine import make_engine, migrate, normalise_url
from leadscore.store.wal import WAL_AUTOCHECKPOINT, backlog

DEFAULT_URL = DEFAULT_DATABASE_URL
# conn.info key: the transaction in which JIT was last switched off (``jit_off``)
_JIT_OFF = "leadscore.jit_off_in"


class Store:
    """A migrated database: SQLite by path or URL (embedded default) or PostgreSQL by URL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str | None = None, *, migrate_schema: bool = True) -> Store:
        url = url or database_url(None)  # LEADSCORE_DATABASE_URL, else ./leadscore.db
        store = cls(make_engine(url))
        if migrate_schema:
            migrate(store.engine)
        return store

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self, *, durable: bool = True, checkpoint: bool = True) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error.

        ``durable=False`` is for writes of derived data that are recomputed from durable inputs if lost
        (the processor's scores, made from inbox rows it deletes in the same transaction): the commit does
        not wait for the disk (SQLite ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``). A
        crash can lose such a transaction, never tear it, and the write-ahead log is sequential, so any
        later durable commit makes it durable too.

        ``checkpoint=False`` (SQLite): the commit leaves copying the write-ahead log into the database to
        a later ``checkpoint()``. SQLite's automatic checkpoint runs in the commit that grows the log past
        ``WAL_AUTOCHECKPOINT`` pages (``store/wal.py``), while the writer still holds its turn
        (``ingest/committer.py: write_turn``): after a large transaction (a processor's batch) every
        acknowledgement would wait for the copy.
        """
        with self.engine.connect() as conn:
            conn = conn.execution_options(immediate=True)
            relaxed = not durable and self.dialect == "sqlite"
            deferred = not checkpoint and self.dialect == "sqlite"
            if relaxed:
                _pragma(conn, "synchronous=NORMAL")
            if deferred:
                _pragma(conn, "wal_autocheckpoint=0")
            try:
                with conn.begin():
                    if not durable and self.dialect == "postgresql":
                        # one round trip for both: the processor's transactions run the compiled query
                        conn.exec_driver_sql(
                            "SELECT set_config('synchronous_commit', 'off', true), set_config('jit', 'off', true)"
                        )
                        conn.info[_JIT_OFF] = conn.get_transaction()
                    yield conn
            finally:
                if relaxed:
                    _pragma(conn, "synchronous=FULL")
                if deferred:
                    _pragma(conn, f"wal_autocheckpoint={WAL_AUTOCHECKPOINT}")

    def checkpoint(self, at_least: int = 0) -> bool:
        """SQLite: copy what the write-ahead log holds into the database as far as readers allow
        (``PASSIVE``: it waits for no writer or reader, and a writer may commit meanwhile), if at least
        ``at_least`` of its pages wait to be copied (or how many is not known: ``wal.backlog``). Returns
        whether it ran (never on PostgreSQL)."""
        if self.dialect != "sqlite":
            return False
        database = self.engine.url.database
        if at_least > 0 and database and not database.startswith("file:"):
            waiting = backlog(database)
            if waiting is not None and waiting < at_least:
                return False
        with self.engine.connect() as conn:
            _pragma(conn, "wal_checkpoint(PASSIVE)")
        return True

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @staticmethod
    def sources() -> Sources:
        """The store's tables as the relations the compiled query reads (also ``Store.sources()``)."""
        return Sources(
            events=schema.events, identities=schema.identities, leads=schema.leads, accounts=schema.accounts
        )

    def has_schema(self) -> bool:
        return inspect(self.engine).has_table("events")

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["DEFAULT_URL", "Store", "jit_off", "normalise_url"]


def jit_off(conn: Connection) -> None:
    """PostgreSQL: no JIT compilation for the rest of the transaction, whose wide aggregates' cost
    estimates switch it on although compiling costs more than it saves. Once per transaction: the
    processor runs the compiled query three times a batch, each a round trip when the setting was sent
    again. (Set inside a savepoint that is then rolled back, it is undone while still marked set: JIT may
    then run, which costs time, never a wrong answer.)"""
    if conn.dialect.name != "postgresql":
        return
    current = conn.get_transaction()
    if current is not None and conn.info.get(_JIT_OFF) is current:
        return
    conn.exec_driver_sql("SET LOCAL jit = off")
    conn.info[_JIT_OFF] = conn.get_transaction()


def _pragma(conn: Connection, setting: str) -> None:
    """A SQLite PRAGMA outside any transaction (through the driver: SQLAlchemy would begin one)."""
    conn.connection.driver_connection.execute(f"PRAGMA {setting}")  # type: ignore[union-attr]

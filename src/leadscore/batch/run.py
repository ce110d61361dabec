"""``run_batch(job)``: score every lead of ``job.leads`` as of ``job.as_of`` on the job's engine.

The steps are the same on every engine: name the four relations in the engine (Parquet views, loaded
tables, the store's tables or engine tables), compile the model once with ``compile_model`` for that
engine's dialect, execute, and turn each result row into a ledger with ``read_ledger``. Only the first
and the execution differ, in ``sql_engine``, ``duckdb_engine`` and ``spark_engine``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, Text, cast, column, false, literal, null, select, table
from sqlalchemy.sql import FromClause

from leadscore.batch.frames import SOURCES
from leadscore.batch.locations import Location, StoreLocation
from leadscore.compile import Sources
from leadscore.errors import InputError, Problem
from leadscore.model import ScoringModel

# CLI engine names → dialect names
ENGINES = {"sqlite": "sqlite", "postgres": "postgresql", "duckdb": "duckdb", "spark": "spark"}
CHUNK = 20_000


@dataclass(frozen=True)
class BatchJob:
    engine: str  # sqlite | postgres | duckdb | spark
    events: Location
    leads: Location
    out: Location
    model: ScoringModel
    as_of: int
    accounts: Location | None = None  # none: no lead has an account
    identities: Location | None = None  # none: an event's person_key is its lead's id
    db: str | None = None  # the store / SQL database (store and table: locations on SQLite, PostgreSQL)
    duckdb: str | None = None  # DuckDB database file for table: locations (default: in memory)
    master: str | None = None  # Spark master URL (default: local[*])
    version_id: int | None = None  # the model's stored version, needed to write to the store
    chunk: int = CHUNK

    @property
    def dialect(self) -> str:
        return ENGINES[self.engine]

    def locations(self) -> dict[str, Location | None]:
        return {
            "events": self.events,
            "identities": self.identities,
            "leads": self.leads,
            "accounts": self.accounts,
        }

    def uses_store(self) -> bool:
        return any(isinstance(loc, StoreLocation) for loc in (*self.locations().values(), self.out))


@dataclass(frozen=True)
class BatchResult:
    leads: int  # result rows (one per lead)
    ledger_lines: int
    out: str
    sql: str  # the SQL the engine ran (SQLAlchemy's rendering for SQLite / PostgreSQL)


def check_job(job: BatchJob) -> None:
    if job.engine not in ENGINES:
        raise InputError(Problem(f"unknown engine {job.engine!r}; known: {', '.join(ENGINES)}"))
    if isinstance(job.out, StoreLocation) and job.version_id is None:
        raise InputError(
            Problem(
                "--out store saves the active model's scores; a model file's scores go to Parquet or a table"
            )
        )


def relation(name: str, table_name: str, schema: str | None = None) -> FromClause:
    """A named table or view with the compiler's columns for ``name`` (events, leads, ...)."""
    cols = [column(f.name, BigInteger() if str(f.type) == "int64" else Text()) for f in SOURCES[name]]
    return table(table_name, *cols, schema=schema)


def no_accounts() -> FromClause:
    """An empty accounts relation (no lead has an account)."""
    cols: list[Any] = [
        cast(null(), Integer).label("id"),
        cast(null(), Text).label("domain"),
        cast(null(), Text).label("name"),
        cast(null(), Text).label("attributes"),
    ]
    return select(*cols).where(false()).subquery("accounts")


def identity_by_lead_id(leads: FromClause) -> FromClause:
    """Without an identities relation, each event's person_key is its lead's id (as text)."""
    return select(cast(leads.c.id, Text).label("key"), leads.c.id.label("lead_id")).subquery("identities")


def build_sources(job: BatchJob, resolve: Callable[[str, Location], FromClause]) -> Sources:
    """The four relations for the compiler; ``resolve`` names one location in the engine."""
    got = {name: resolve(name, loc) for name, loc in job.locations().items() if loc is not None}
    leads = got["leads"]
    return Sources(
        events=got["events"],
        identities=got.get("identities", identity_by_lead_id(leads)),
        leads=leads,
        accounts=got.get("accounts", no_accounts()),
    )


def targets(sources: Sources, as_of: int) -> Select[Any]:
    """Every lead of the leads relation, as of one time."""
    leads = sources.leads
    return select(leads.c.id.label("lead_id"), literal(as_of, BigInteger).label("as_of"))


def run_batch(job: BatchJob) -> BatchResult:
    """Run the job on its engine and write the scores and the long-form ledger to ``job.out``."""
    check_job(job)
    if job.engine == "duckdb":
        from leadscore.batch.duckdb_engine import run_duckdb

        return run_duckdb(job)
    if job.engine == "spark":
        from leadscore.batch.spark_engine import run_spark

        return run_spark(job)
    from leadscore.batch.sql_engine import run_sql

    return run_sql(job)

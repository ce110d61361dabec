"""``run_batch(job)``: score every lead of ``job.leads`` as of ``job.as_of`` on the job's engine.

The steps are the same on every engine: name the four relations in the engine (Parquet views, loaded
tables, the store's tables or engine tables), compile the model once with ``compile_model`` for that
engine's dialect, execute, and turn the result rows into ledgers with ``read_ledgers``, a fetched batch at a time. Only the first
and the execution differ, in ``sql_engine``, ``duckdb_engine`` and ``spark_engine``.

Several named scores (``run_batch_scores``) run as one job on every engine: the sources are named once,
every model is compiled into one statement with ``compile_models`` (the events read and aggregated once
for all of them, one row per score and lead, ``score_index`` first), and each row becomes a ledger of
its own score's model, written where that score goes (``out_for``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, Text, cast, column, false, literal, null, select, table
from sqlalchemy.sql import FromClause

from leadscore.batch.frames import SOURCES
from leadscore.batch.locations import (
    Location,
    NoLocation,
    ParquetLocation,
    Source,
    StoreLocation,
    TableLocation,
)
from leadscore.compile import Ledger, Sources, compile_model
from leadscore.compile.composite import SCORE_INDEX, compile_models
from leadscore.compile.ledger import Columns, read_ledgers
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
    # None: not given (complete_sources reads it from the store, or refuses the job); NoLocation: absent
    # on purpose (no lead has an account; an event's person_key is its lead's id)
    accounts: Source | None = None
    identities: Source | None = None
    db: str | None = None  # the store / SQL database (store and table: locations on SQLite, PostgreSQL)
    duckdb: str | None = None  # DuckDB database file for table: locations (default: in memory)
    master: str | None = None  # Spark master URL (default: local[*])
    version_id: int | None = None  # the model's stored version, needed to write to the store
    score_name: str | None = None  # the named score that version scores (None: the primary score)
    chunk: int = CHUNK

    @property
    def dialect(self) -> str:
        return ENGINES[self.engine]

    def locations(self) -> dict[str, Source | None]:
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


# a relation that is not given, and the one whose rows it completes: identities attribute the events'
# person keys to leads, accounts hold the accounts the leads' account_id point to
COMPLETES = {"identities": "events", "accounts": "leads"}
_ABSENT = {
    "identities": "--identities none (each event's person_key is already its lead's id)",
    "accounts": "--accounts none (no lead has an account)",
}


def complete_sources(job: BatchJob) -> tuple[BatchJob, list[str]]:
    """The job with every relation named, and a note for each one read from the store.

    A relation left out is read from the store when the relation it completes comes from the store
    (the store's events name its identities' keys; its leads its accounts' ids). Otherwise the job is
    refused: scoring without it would silently give every lead zero engagement or no account.
    """
    filled: dict[str, Source | None] = {}
    missing: list[str] = []
    for name, completed in COMPLETES.items():
        if getattr(job, name) is not None:
            continue
        if isinstance(getattr(job, completed), StoreLocation):
            filled[name] = StoreLocation()
        else:
            missing.append(name)
    if missing:
        reasons = "; ".join(
            f"--{name} is missing (--{COMPLETES[name]} {getattr(job, COMPLETES[name])} is not the store): "
            f"name it (store, table:NAME or a Parquet path) or give {_ABSENT[name]}"
            for name in missing
        )
        raise InputError(Problem(f"incomplete sources: {reasons}"))
    notes = [f"--{name} store (the store's {COMPLETES[name]} name them)" for name in filled]
    job = replace(
        job,
        identities=filled.get("identities", job.identities),
        accounts=filled.get("accounts", job.accounts),
    )
    return job, notes


def check_job(job: BatchJob) -> None:
    if job.engine not in ENGINES:
        raise InputError(Problem(f"unknown engine {job.engine!r}; known: {', '.join(ENGINES)}"))
    for name in ("events", "leads", "out"):
        if isinstance(getattr(job, name), NoLocation):
            raise InputError(Problem(f"--{name} none: only --identities and --accounts may be none"))
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
    got = {
        name: resolve(name, loc)
        for name, loc in job.locations().items()
        if loc is not None and not isinstance(loc, NoLocation)
    }
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


def scores_query(jobs: Sequence[BatchJob], sources: Sources) -> Select[Any]:
    """The one statement that scores every job's model (jobs that differ only in model and output, as
    ``score_jobs`` makes them): ``compile_model``'s for one job, ``compile_models``' for several."""
    if not jobs:
        raise ValueError("scores_query: no job to compile")
    job = jobs[0]
    lead_targets = targets(sources, job.as_of)
    if len(jobs) == 1:
        return compile_model(job.model, sources, lead_targets, job.dialect)
    return compile_models([one.model for one in jobs], sources, lead_targets, job.dialect)


def ledgers_by_job(jobs: Sequence[BatchJob], columns: Columns) -> list[list[Ledger]]:
    """A batch of rows of ``scores_query(jobs, ...)``, given column by column, as ledgers, one list per
    job, each read by its own model (``compile.read_ledgers``)."""
    if len(jobs) == 1:
        return [read_ledgers(jobs[0].model, columns)]
    rows: list[list[int]] = [[] for _ in jobs]
    for i, index in enumerate(columns[SCORE_INDEX]):
        if not isinstance(index, int) or not 0 <= index < len(jobs):
            raise ValueError(f"scores_query row with {SCORE_INDEX} {index!r}: not one of {len(jobs)} scores")
        rows[index].append(i)
    return [
        read_ledgers(job.model, {name: [cells[i] for i in part] for name, cells in columns.items()})
        for job, part in zip(jobs, rows, strict=True)
    ]


def run_batch(job: BatchJob) -> BatchResult:
    """Run the job on its engine and write the scores and the long-form ledger to ``job.out``."""
    check_job(job)
    job, _ = complete_sources(job)
    if job.engine == "duckdb":
        from leadscore.batch.duckdb_engine import run_duckdb

        return run_duckdb(job)
    if job.engine == "spark":
        from leadscore.batch.spark_engine import run_spark

        return run_spark(job)
    from leadscore.batch.sql_engine import run_sql

    return run_sql(job)


@dataclass(frozen=True)
class NamedModel:
    """One named score's active version, for a batch run of several scores."""

    score_name: str
    version_id: int
    model: ScoringModel


def out_for(out: Location, score_name: str) -> Location:
    """Where one of several scores goes: ``OUT/NAME/`` for a folder, tables ``T_NAME`` and ``T_NAME_ledger``
    for ``table:T``, and the store's rows of that score for ``store``."""
    if isinstance(out, ParquetLocation):
        return ParquetLocation(str(Path(out.path) / score_name))
    if isinstance(out, TableLocation):
        return TableLocation(f"{out.name}_{score_name}")
    return out


def score_jobs(job: BatchJob, named: Sequence[NamedModel]) -> list[BatchJob]:
    """The job once per named score, each writing where ``out_for`` says."""
    return [
        replace(
            job,
            model=m.model,
            version_id=m.version_id,
            score_name=m.score_name,
            out=out_for(job.out, m.score_name),
        )
        for m in named
    ]


def run_batch_scores(job: BatchJob, named: Sequence[NamedModel]) -> list[BatchResult]:
    """Several named scores over the same sources in one job: one statement for all the models
    (``scores_query``), so every engine reads and aggregates the events once; one result per score."""
    if not named:
        raise InputError(Problem("no score to run: publish a model, or name one with --score", field="score"))
    for one in score_jobs(job, named):
        check_job(one)
    jobs = [complete_sources(one)[0] for one in score_jobs(job, named)]
    if job.engine == "duckdb":
        from leadscore.batch.duckdb_engine import run_duckdb_jobs

        return run_duckdb_jobs(jobs)
    if job.engine == "spark":
        from leadscore.batch.spark_engine import run_spark_jobs

        return run_spark_jobs(jobs)
    from leadscore.batch.sql_engine import run_sql_jobs

    return run_sql_jobs(jobs)

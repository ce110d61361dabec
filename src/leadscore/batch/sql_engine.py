"""Batch scoring on SQLite or PostgreSQL: the ``--db`` database runs the compiled query.

Parquet sources are loaded into temporary tables of the scoring connection (in chunks, indexed like the
store's tables); ``store`` and ``table:`` sources are read where they are. Results are fetched
``job.chunk`` rows at a time (a server-side cursor on PostgreSQL).
"""

from __future__ import annotations

import json

from sqlalchemy import BigInteger, Column, Connection, Index, MetaData, Table, Text
from sqlalchemy.sql import FromClause

from leadscore.batch.frames import JSON_COLUMNS, SOURCES
from leadscore.batch.locations import Location, ParquetLocation, StoreLocation, TableLocation
from leadscore.batch.parquet import read_batches
from leadscore.batch.run import BatchJob, BatchResult, build_sources, ledgers_by_job, relation, scores_query
from leadscore.batch.sinks import ParquetSink, Sink, SqlTableSink, StoreSink
from leadscore.compile.ledger import columns_of, line_rows
from leadscore.errors import InputError, Problem
from leadscore.scoring.run import now_ms
from leadscore.store import Store
from leadscore.store.schema import Json

INDEXES = {"events": ("person_key", "ts"), "identities": ("key",), "leads": ("id",), "accounts": ("id",)}


def load_parquet(conn: Connection, name: str, location: ParquetLocation, chunk: int) -> Table:
    """A temporary table of the connection holding the relation's columns from Parquet."""
    metadata = MetaData()
    cols = [
        Column(f.name, Json if f.name in JSON_COLUMNS else BigInteger if str(f.type) == "int64" else Text)
        for f in SOURCES[name]
    ]
    temp = Table(f"leadscore_batch_{name}", metadata, *cols, prefixes=["TEMPORARY"])
    temp.create(conn)
    for batch in read_batches(location, name, chunk):
        rows = batch.to_pylist()
        for row in rows:
            for key in JSON_COLUMNS.intersection(row):
                row[key] = json.loads(row[key]) if row[key] is not None else {}
        if rows:
            conn.execute(temp.insert(), rows)
    Index(f"ix_leadscore_batch_{name}", *(temp.c[c] for c in INDEXES[name])).create(conn)
    return temp


def _sink(job: BatchJob, store: Store) -> Sink:
    out = job.out
    if isinstance(out, StoreLocation):
        assert job.version_id is not None
        return StoreSink(store, job.version_id, now_ms())
    if isinstance(out, TableLocation):
        return SqlTableSink(store.engine, out.table, out.schema)
    from pathlib import Path

    return ParquetSink(Path(out.path))


def run_sql(job: BatchJob) -> BatchResult:
    return run_sql_jobs([job])[0]


def run_sql_jobs(jobs: list[BatchJob]) -> list[BatchResult]:
    """Jobs that differ only in model and output (``run.score_jobs``): one query scores them all
    (``run.scores_query``), so Parquet sources are loaded once and the events aggregated once."""
    job = jobs[0]
    store = Store.from_url(job.db)
    try:
        if store.dialect != job.dialect:
            raise InputError(
                Problem(f"--engine {job.engine} needs a {job.dialect} --db; {store.url} is {store.dialect}")
            )
        return _run(jobs, store)
    finally:
        store.dispose()


def _run(jobs: list[BatchJob], store: Store) -> list[BatchResult]:
    job = jobs[0]
    leads = [0] * len(jobs)
    lines = [0] * len(jobs)
    with store.connect() as conn, conn.begin():

        def resolve(name: str, loc: Location) -> FromClause:
            if isinstance(loc, StoreLocation):
                source: FromClause = getattr(store.sources(), name)
                return source
            if isinstance(loc, TableLocation):
                return relation(name, loc.table, loc.schema)
            return load_parquet(conn, name, loc, job.chunk)

        sources = build_sources(job, resolve)
        query = scores_query(jobs, sources)
        if job.dialect == "postgresql":
            # as in scoring.run: the wide aggregate's cost estimate switches JIT on, which costs more than it saves
            conn.exec_driver_sql("SET LOCAL jit = off")
        sinks: list[Sink] = []
        try:
            for one in jobs:
                sinks.append(_sink(one, store))
            result = conn.execution_options(yield_per=job.chunk).execute(query)
            keys = list(result.keys())
            for part in result.partitions():
                for i, ledgers in enumerate(ledgers_by_job(jobs, columns_of(keys, part))):
                    if ledgers:
                        sinks[i].write(ledgers)
                        leads[i] += len(ledgers)
                        lines[i] += sum(len(line_rows(lg)) for lg in ledgers)
        finally:
            for sink in sinks:
                sink.close()
    sql = str(query.compile(dialect=store.engine.dialect))
    return [BatchResult(leads[i], lines[i], str(one.out), sql) for i, one in enumerate(jobs)]

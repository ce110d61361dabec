"""Batch scoring on SQLite or PostgreSQL: the ``--db`` database runs the compiled query.

Parquet sources are loaded into temporary tables of the scoring connection (in chunks, indexed like the
store's tables); ``store`` and ``table:`` sources are read where they are. Results are fetched
``job.chunk`` rows at a time (a server-side cursor on PostgreSQL).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Index, MetaData, Table, Text
from sqlalchemy.sql import FromClause

from leadscore.batch.frames import JSON_COLUMNS, SOURCES
from leadscore.batch.locations import Location, ParquetLocation, StoreLocation, TableLocation
from leadscore.batch.parquet import read_batches
from leadscore.batch.run import BatchJob, BatchResult, build_sources, relation, targets
from leadscore.batch.sinks import ParquetSink, Sink, SqlTableSink, StoreSink
from leadscore.compile import compile_model, read_ledger
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
        return StoreSink(store, job.version_id, now_ms(), job.score_name)
    if isinstance(out, TableLocation):
        return SqlTableSink(store.engine, out.table, out.schema)
    from pathlib import Path

    return ParquetSink(Path(out.path))


def run_sql(job: BatchJob) -> BatchResult:
    store = Store.from_url(job.db)
    try:
        if store.dialect != job.dialect:
            raise InputError(
                Problem(f"--engine {job.engine} needs a {job.dialect} --db; {store.url} is {store.dialect}")
            )
        return _run(job, store)
    finally:
        store.dispose()


def _run(job: BatchJob, store: Store) -> BatchResult:
    leads = lines = 0
    with store.connect() as conn, conn.begin():

        def resolve(name: str, loc: Location) -> FromClause:
            if isinstance(loc, StoreLocation):
                source: FromClause = getattr(store.sources(), name)
                return source
            if isinstance(loc, TableLocation):
                return relation(name, loc.table, loc.schema)
            return load_parquet(conn, name, loc, job.chunk)

        sources = build_sources(job, resolve)
        query = compile_model(job.model, sources, targets(sources, job.as_of), engine=job.dialect)
        if job.dialect == "postgresql":
            # as in scoring.run: the wide aggregate's cost estimate switches JIT on, which costs more than it saves
            conn.exec_driver_sql("SET LOCAL jit = off")
        sink = _sink(job, store)
        try:
            result = conn.execution_options(yield_per=job.chunk).execute(query).mappings()
            for part in result.partitions():
                ledgers = [read_ledger(job.model, dict(row)) for row in part]
                sink.write(ledgers)
                leads += len(ledgers)
                lines += sum(len(lg.lines) for lg in ledgers)
        finally:
            sink.close()
    sql: Any = query.compile(dialect=store.engine.dialect)
    return BatchResult(leads, lines, str(job.out), str(sql))

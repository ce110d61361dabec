"""Batch scoring on DuckDB, in process: Parquet read in place, the compiled query rendered for DuckDB.

Parquet sources become views over ``read_parquet`` (nothing is loaded first); ``store`` sources are
exported to Parquet in chunks (DuckDB cannot read SQLite or PostgreSQL without extensions that are
downloaded at run time); ``table:`` sources are tables of the ``--duckdb`` database file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.sql import FromClause

from leadscore.batch.frames import SOURCES
from leadscore.batch.locations import Location, StoreLocation, TableLocation
from leadscore.batch.parquet import export_relation
from leadscore.batch.run import BatchJob, BatchResult, build_sources, ledgers_by_job, relation, scores_query
from leadscore.batch.sinks import DuckDBTableSink, ParquetSink, Sink, StoreSink
from leadscore.compile import Sources, render_sql
from leadscore.compile.ledger import line_rows
from leadscore.scoring.run import now_ms
from leadscore.store import Store

DUCK_TYPES = {"int64": "BIGINT", "string": "VARCHAR"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parquet_view(con: Any, name: str, files: list[str]) -> str:
    """A temporary view with the relation's columns (cast to the compiler's types) over Parquet files."""
    view = f"leadscore_{name}"
    cols = ", ".join(f'CAST("{f.name}" AS {DUCK_TYPES[str(f.type)]}) AS "{f.name}"' for f in SOURCES[name])
    listed = ", ".join(_quote(f) for f in files)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {cols} FROM read_parquet([{listed}], union_by_name = true)"
    )
    return view


def arrow_batches(con: Any, sql: str, rows: int) -> Any:
    """The query's result as a stream of Arrow record batches (``rows`` each, never all at once)."""
    relation = con.sql(sql)
    # DuckDB 2 names it to_arrow_reader, 1.x fetch_arrow_reader
    reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    return reader(rows)


def run_duckdb(job: BatchJob) -> BatchResult:
    return run_duckdb_jobs([job])[0]


def run_duckdb_jobs(jobs: list[BatchJob]) -> list[BatchResult]:
    """Jobs that differ only in model and output (``run.score_jobs``): the sources are named once and every
    model is scored by one query (``run.scores_query``), so the Parquet files or the store are read once
    and the events aggregated once for all the models."""
    import duckdb

    job = jobs[0]
    con = duckdb.connect(job.duckdb or ":memory:")
    store = Store.from_url(job.db) if any(j.uses_store() for j in jobs) else None
    try:
        with tempfile.TemporaryDirectory(prefix="leadscore-batch-") as tmp:

            def resolve(name: str, loc: Location) -> FromClause:
                if isinstance(loc, TableLocation):
                    return relation(name, loc.table, loc.schema)
                if isinstance(loc, StoreLocation):
                    assert store is not None
                    loc = export_relation(store, name, Path(tmp) / f"{name}.parquet")
                return relation(name, parquet_view(con, name, loc.files()))

            sources = build_sources(job, resolve)
            return _score(con, store, jobs, sources)
    finally:
        con.close()
        if store is not None:
            store.dispose()


def _sink(con: Any, store: Store | None, job: BatchJob) -> Sink:
    if isinstance(job.out, StoreLocation):
        assert store is not None and job.version_id is not None
        return StoreSink(store, job.version_id, now_ms())
    if isinstance(job.out, TableLocation):
        return DuckDBTableSink(con.cursor(), job.out.name)
    return ParquetSink(Path(job.out.path))


def _score(con: Any, store: Store | None, jobs: list[BatchJob], sources: Sources) -> list[BatchResult]:
    sql = render_sql(scores_query(jobs, sources), "duckdb")
    sinks: list[Sink] = []
    leads = [0] * len(jobs)
    lines = [0] * len(jobs)
    try:
        for job in jobs:
            sinks.append(_sink(con, store, job))
        for batch in arrow_batches(con, sql, jobs[0].chunk):
            for i, ledgers in enumerate(ledgers_by_job(jobs, batch.to_pydict())):
                if ledgers:
                    sinks[i].write(ledgers)
                    leads[i] += len(ledgers)
                    lines[i] += sum(len(line_rows(lg)) for lg in ledgers)
    finally:
        for sink in sinks:
            sink.close()
    return [BatchResult(leads[i], lines[i], str(job.out), sql) for i, job in enumerate(jobs)]

"""Batch scoring on Spark: the compiled query rendered as Spark SQL, the ledger built on the executors.

The work partitions by lead: the query's joins shuffle events by ``person_key`` and aggregate by
``(lead_id, as_of)``, so each lead's events meet on one executor, and every later stage is per row.
The wide result is persisted once; ``mapInArrow`` turns its partitions into scores and long-form ledger
rows with ``read_ledger`` on the executors (which need leadscore installed; see docs/batch.md), and
Spark writes each output in parallel. Only ``--out store`` brings rows to the driver.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.sql import FromClause

from leadscore.batch.frames import LEDGER, SCORES, SOURCES, ledger_table, scores_table, spark_ddl
from leadscore.batch.locations import Location, ParquetLocation, StoreLocation, TableLocation
from leadscore.batch.parquet import export_relation
from leadscore.batch.run import BatchJob, BatchResult, build_sources, relation, scores_query
from leadscore.batch.sinks import LEDGER_FILE, SCORES_FILE, StoreSink
from leadscore.compile import read_ledger, render_sql
from leadscore.compile.composite import SCORE_INDEX
from leadscore.compile.ledger import line_rows, read_ledgers
from leadscore.extras import require
from leadscore.model import dump_model, loads_model
from leadscore.scoring.run import now_ms
from leadscore.store import Store

SPARK_TYPES = {"int64": "BIGINT", "string": "STRING"}


def session(master: str | None) -> Any:
    """The active Spark session, or a new one (``master``, default ``local[*]``)."""
    SparkSession = require("pyspark.sql", "spark", "the Spark engine (--engine spark)").SparkSession
    builder = (
        SparkSession.builder.appName("leadscore batch")
        .config("spark.ui.showConsoleProgress", "false")
        # adaptive execution may merge the persisted result's small shuffle partitions before mapInArrow
        .config("spark.sql.optimizer.canChangeCachedPlanOutputPartitioning", "true")
    )
    if master:
        builder = builder.master(master)
    elif SparkSession.getActiveSession() is None:
        # local mode: a few partitions per core (the default 200 is sized for clusters)
        cores = os.cpu_count() or 2
        # local workers run this interpreter (it has leadscore's dependencies), not the PATH's python3
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master("local[*]").config("spark.sql.shuffle.partitions", str(4 * cores))
    return builder.getOrCreate()


def to_ledgers(yaml_text: str, batches: Iterator[pa.RecordBatch], want: str) -> Iterator[pa.RecordBatch]:
    """Executor side: wide result rows → scores or ledger rows (``read_ledgers``, the one reading)."""
    model = loads_model(yaml_text, "batch", stored=True)  # the model the driver validated
    for batch in batches:
        ledgers = read_ledgers(model, batch.to_pydict())
        out = scores_table(ledgers) if want == "scores" else ledger_table(ledgers)
        yield from out.to_batches()


def parquet_view(spark: Any, name: str, location: ParquetLocation) -> str:
    view = f"leadscore_{name}"
    cols = [f"CAST(`{f.name}` AS {SPARK_TYPES[str(f.type)]}) AS `{f.name}`" for f in SOURCES[name]]
    spark.read.parquet(*location.files()).selectExpr(*cols).createOrReplaceTempView(view)
    return view


def run_spark(job: BatchJob) -> BatchResult:
    return run_spark_jobs([job])[0]


def run_spark_jobs(jobs: list[BatchJob]) -> list[BatchResult]:
    """Jobs that differ only in model and output (``run.score_jobs``): one query scores them all
    (``run.scores_query``), persisted once; each job's rows (its ``score_index``) are written from it."""
    job = jobs[0]
    spark = session(job.master)
    store = Store.from_url(job.db) if any(j.uses_store() for j in jobs) else None
    results: list[BatchResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="leadscore-batch-") as tmp:

            def resolve(name: str, loc: Location) -> FromClause:
                if isinstance(loc, TableLocation):
                    return relation(name, loc.table, loc.schema)
                if isinstance(loc, StoreLocation):
                    # a local file: fine in local mode; on a cluster give Parquet on shared storage
                    assert store is not None
                    loc = export_relation(store, name, Path(tmp) / f"{name}.parquet")
                return relation(name, parquet_view(spark, name, loc))

            sources = build_sources(job, resolve)
            sql = render_sql(scores_query(jobs, sources), "spark")
            wide = spark.sql(sql).persist()
            try:
                for i, one in enumerate(jobs):
                    rows = wide if len(jobs) == 1 else wide.where(f"{SCORE_INDEX} = {i}")
                    leads, lines = _write(one, spark, rows, store)
                    results.append(BatchResult(leads, lines, str(one.out), sql))
            finally:
                wide.unpersist()
    finally:
        if store is not None:
            store.dispose()
    return results


def _write(job: BatchJob, spark: Any, wide: Any, store: Store | None) -> tuple[int, int]:
    yaml_text = dump_model(job.model)
    if isinstance(job.out, StoreLocation):
        assert store is not None and job.version_id is not None
        sink = StoreSink(store, job.version_id, now_ms())
        leads = lines = 0
        chunk: list[Any] = []
        rows = (read_ledger(job.model, row.asDict()) for row in wide.toLocalIterator())
        for ledger in rows:
            chunk.append(ledger)
            if len(chunk) >= job.chunk:
                sink.write(chunk)
                leads, lines, chunk = leads + len(chunk), lines + sum(len(line_rows(lg)) for lg in chunk), []
        if chunk:
            sink.write(chunk)
            leads, lines = leads + len(chunk), lines + sum(len(line_rows(lg)) for lg in chunk)
        return leads, lines
    scores = wide.mapInArrow(partial(to_ledgers, yaml_text, want="scores"), spark_ddl(SCORES))
    ledger = wide.mapInArrow(partial(to_ledgers, yaml_text, want="ledger"), spark_ddl(LEDGER))
    if isinstance(job.out, TableLocation):
        scores.write.mode("overwrite").saveAsTable(job.out.name)
        ledger.write.mode("overwrite").saveAsTable(f"{job.out.name}_ledger")
        written_scores, written_ledger = spark.table(job.out.name), spark.table(f"{job.out.name}_ledger")
    else:
        folder = Path(job.out.path)
        scores.write.mode("overwrite").parquet(str(folder / SCORES_FILE))
        ledger.write.mode("overwrite").parquet(str(folder / LEDGER_FILE))
        written_scores = spark.read.parquet(str(folder / SCORES_FILE))
        written_ledger = spark.read.parquet(str(folder / LEDGER_FILE))
    return int(written_scores.count()), int(written_ledger.count())

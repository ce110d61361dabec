"""Batch scoring where the data is: the compiled model run on SQLite, PostgreSQL, DuckDB or Spark.

    locations.py   what ``--events`` / ``--leads`` / ``--out`` name: the store, Parquet, engine tables
    frames.py      Arrow schemas of the four sources and of the two outputs (scores, long-form ledger)
    parquet.py     the store's relations exported to Parquet in chunks; Parquet read back in chunks
    sinks.py       where driver-side results go (Parquet files, SQL / DuckDB tables, the store)
    sql_engine.py  SQLite / PostgreSQL       duckdb_engine.py  DuckDB       spark_engine.py  Spark
    run.py         ``BatchJob`` and ``run_batch``: pick the engine, compile, execute, write

Every engine runs ``compile.compile_model`` (the one scoring semantics) rendered for its dialect, and
every engine turns a result row into ledger lines with ``compile.read_ledger``.
"""

from leadscore.batch.run import BatchJob, BatchResult, run_batch

__all__ = ["BatchJob", "BatchResult", "run_batch"]

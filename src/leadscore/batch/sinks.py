"""Where results computed on the driver go: Parquet files, SQL tables, DuckDB tables or the store.

Every sink receives ledgers (``compile.read_ledger`` of each result row) a chunk at a time and writes
the scores and the long-form ledger; nothing holds more than one chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
)

from leadscore.batch.frames import LEDGER, SCORES, ledger_table, scores_table
from leadscore.compile import Ledger
from leadscore.scoring.pipeline import save_rescored
from leadscore.scoring.run import Active
from leadscore.store import Store
from leadscore.store.model_versions import get_version

SCORES_FILE = "scores.parquet"
LEDGER_FILE = "ledger.parquet"


class Sink(Protocol):
    def write(self, ledgers: Sequence[Ledger]) -> None: ...

    def close(self) -> None: ...


class ParquetSink:
    """``OUT/scores.parquet`` and ``OUT/ledger.parquet``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.scores = pq.ParquetWriter(folder / SCORES_FILE, SCORES)
        self.ledger = pq.ParquetWriter(folder / LEDGER_FILE, LEDGER)

    def write(self, ledgers: Sequence[Ledger]) -> None:
        self.scores.write_table(scores_table(ledgers))
        self.ledger.write_table(ledger_table(ledgers))

    def close(self) -> None:
        self.scores.close()
        self.ledger.close()


def _sql_type(t: pa.DataType) -> Any:
    if t == pa.int64():
        return BigInteger()
    if t == pa.int32():
        return Integer()
    if t == pa.float64():
        return Float(precision=53)
    if t == pa.bool_():
        return Boolean()
    return Text()


def sql_table(name: str, schema: pa.Schema, metadata: MetaData, db_schema: str | None = None) -> Table:
    return Table(name, metadata, *(Column(f.name, _sql_type(f.type)) for f in schema), schema=db_schema)


class SqlTableSink:
    """Tables NAME (scores) and NAME_ledger in a SQLite or PostgreSQL database, replaced."""

    def __init__(self, engine: Engine, name: str, db_schema: str | None = None) -> None:
        self.engine = engine
        metadata = MetaData()
        self.scores = sql_table(name, SCORES, metadata, db_schema)
        self.ledger = sql_table(f"{name}_ledger", LEDGER, metadata, db_schema)
        with engine.begin() as conn:
            metadata.drop_all(conn)
            metadata.create_all(conn)

    def write(self, ledgers: Sequence[Ledger]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.scores.insert(), scores_table(ledgers).to_pylist())
            lines = ledger_table(ledgers).to_pylist()
            if lines:
                conn.execute(self.ledger.insert(), lines)

    def close(self) -> None:
        return None


class DuckDBTableSink:
    """Tables NAME (scores) and NAME_ledger in a DuckDB database, replaced."""

    def __init__(self, con: Any, name: str) -> None:
        self.con = con
        self.names = (name, f"{name}_ledger")
        for table, schema in zip(self.names, (SCORES, LEDGER), strict=True):
            self.con.register("leadscore_chunk", schema.empty_table())
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM leadscore_chunk")
            self.con.unregister("leadscore_chunk")

    def write(self, ledgers: Sequence[Ledger]) -> None:
        for table, data in zip(self.names, (scores_table(ledgers), ledger_table(ledgers)), strict=True):
            self.con.register("leadscore_chunk", data)
            self.con.execute(f"INSERT INTO {table} SELECT * FROM leadscore_chunk")
            self.con.unregister("leadscore_chunk")

    def close(self) -> None:
        return None


class StoreSink:
    """The store's current scores and ledger of the version's score (only for its active version, as
    ``leadscore score``)."""

    def __init__(self, store: Store, version_id: int, scored_ms: int) -> None:
        self.store, self.version_id, self.scored_ms = store, version_id, scored_ms

    def write(self, ledgers: Sequence[Ledger]) -> None:
        # saved as ``leadscore score`` saves them (due times, crossings, history), not only the scores
        with self.store.begin() as conn:
            active = Active.of(get_version(conn, self.version_id))
            save_rescored(conn, self.store.sources(), active, ledgers, self.scored_ms)

    def close(self) -> None:
        return None

"""Parquet in and out, in chunks: the store's relations exported, Parquet sources read batch by batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import select

from leadscore.batch.frames import JSON_COLUMNS, SOURCES
from leadscore.batch.locations import ParquetLocation
from leadscore.errors import InputError, Problem
from leadscore.store import Store

CHUNK = 50_000


def export_relation(store: Store, relation: str, path: Path) -> ParquetLocation:
    """Write one of the store's source relations (the compiler's columns) to a Parquet file in chunks."""
    schema = SOURCES[relation]
    table = getattr(store.sources(), relation)
    query = select(*(table.c[name] for name in schema.names))
    with store.connect() as conn, pq.ParquetWriter(path, schema) as writer:
        result = conn.execution_options(yield_per=CHUNK).execute(query)
        for part in result.partitions():
            columns: list[Any] = list(zip(*part, strict=True)) if part else [() for _ in schema.names]
            arrays = {
                name: [_json_text(v) for v in col] if name in JSON_COLUMNS else list(col)
                for name, col in zip(schema.names, columns, strict=True)
            }
            writer.write_table(pa.table(arrays, schema=schema))
    return ParquetLocation(str(path))


def _json_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def read_batches(location: ParquetLocation, relation: str, rows: int = CHUNK) -> Iterator[pa.RecordBatch]:
    """The relation's columns from Parquet, cast to the compiler's types, ``rows`` at a time."""
    schema = SOURCES[relation]
    dataset = ds.dataset(location.files(), format="parquet")
    missing = [name for name in schema.names if name not in dataset.schema.names]
    if missing:
        raise InputError(Problem(f"{location}: {relation} lacks columns {', '.join(missing)}"))
    for batch in dataset.to_batches(columns=schema.names, batch_size=rows):
        yield batch.cast(schema)

"""The batch benchmark at a tiny size: generator determinism, and every baseline agrees with the model.

No timing assertions: bench/batch.py checks agreement before it times anything, and that check is what
runs here (DuckDB compiled vs hand-written, pandas, the plain Python loop).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import batch
import parquet_gen

TINY = parquet_gen.Spec(leads=300, events=20_000, seed=11)


def test_generated_parquet_is_deterministic_complete_and_heavy_tailed(tmp_path: Path) -> None:
    first = parquet_gen.write(TINY, tmp_path / "a")
    again = parquet_gen.write(TINY, tmp_path / "b")
    assert first == again == {"accounts": 37, "leads": 300, "identities": 420, "events": 20_000}
    for name in ("leads.parquet", "identities.parquet", "accounts.parquet"):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))
    events = pq.read_table(tmp_path / "a" / "events").sort_by("message_id")
    assert events.equals(pq.read_table(tmp_path / "b" / "events").sort_by("message_id"))
    per_key = events.group_by("person_key").aggregate([("ts", "count")]).column("ts_count").to_pylist()
    per_key.sort()
    # heavy tail: the busiest 10 % of people have far more than a tenth of the events
    top = per_key[-len(per_key) // 10 :]
    assert sum(top) > 0.3 * sum(per_key)
    kinds = set(zip(events.column("type").to_pylist(), events.column("name").to_pylist(), strict=True))
    assert {
        ("page", None),
        ("track", "Email Opened"),
        ("track", "Webinar Attended"),
        ("identify", None),
    } <= kinds


def test_every_baseline_agrees_with_the_compiled_model(tmp_path: Path) -> None:
    folder = batch.data_dir(TINY, tmp_path / "data")
    duck = batch.duckdb_bench(folder, repeat=1, threads=2)
    assert duck["rows"] == TINY.leads and duck["max_diff"] <= batch.TOLERANCE
    assert duck["compiled"] > 0 and duck["handwritten"] > 0 and duck["explain"] > 0
    for run in (batch.pandas_bench, batch.python_bench):
        result = run(folder, 1)
        assert result["rows"] == TINY.leads and result["max_diff"] <= batch.TOLERANCE

"""``import events`` as a backfill (``scoring.pipeline.Backfill``): chunks stored and applied without
scoring, every touched lead rescored once at the end through the same pipeline functions.

tests/data/import/events.jsonl (see tests/test_import_events.py for its lines): Linda (u-42, anon-7)
has fit 50 (marketer 30 + mid-size 20) and engagement 30 (two anonymous pricing pages × 5 + an e-book
20), score ½·50 + ½·30 = 40, grade B, band warm; her newest event is the e-book at 2024-03-04T12:00Z.
anon-9's page belongs to no lead. Lines 4 and 5 are rejected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text

from leadscore.ingest.jsonl_import import EventImportReport, import_events
from leadscore.model import load_model
from leadscore.scoring import pipeline
from leadscore.scoring.pipeline import Backfill, ingest, publish
from leadscore.store import Store
from leadscore.store.schema import events, leads, score_history, scores

DATA = Path(__file__).parent / "data" / "import"
EVENTS = DATA / "events.jsonl"
EBOOK_MS = 1_709_553_600_000  # 2024-03-04T12:00:00Z


def backfill(store: Store, path: Path = EVENTS, chunk_size: int = 5000) -> tuple[EventImportReport, int]:
    run = Backfill(store, source="import", cause_ref=f"import {path.name}")
    report = import_events(path, run.add, chunk_size=chunk_size)
    rescored, _ = run.finish()
    return report, rescored


def linda(store: Store) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with store.connect() as conn:
        lead_id = conn.execute(select(leads.c.id).where(leads.c.external_id == "u-42")).scalar_one()
        current = conn.execute(select(scores).where(scores.c.lead_id == lead_id)).mappings().one()
        rows = conn.execute(
            select(score_history).where(score_history.c.lead_id == lead_id).order_by(score_history.c.id)
        ).mappings()
        return dict(current), [dict(r) for r in rows]


@pytest.mark.parametrize("chunk_size", [1, 3, 5000])
def test_backfill_scores_as_the_slow_path_rescoring_each_lead_once(store: Store, chunk_size: int) -> None:
    publish(store, load_model(DATA / "model.yaml"))
    report, rescored = backfill(store, chunk_size=chunk_size)
    assert [(p.line, p.column) for p in report.problems] == [(4, 41), (5, None)]
    assert (report.lines, report.accepted, report.duplicates, report.leads_created) == (8, 6, 0, 1)
    assert rescored == 1  # Linda, once, however many chunks touched her
    current, history = linda(store)
    assert (current["fit_score"], current["engagement_score"], current["score"]) == pytest.approx(
        (50, 30, 40)
    )
    assert (current["grade"], current["band"]) == ("B", "warm")
    # the last history row: the score as of her newest event (the e-book, message m-7), the same row the
    # tracking API would have written for it (history does not depend on how events arrive)
    assert (history[-1]["at_ms"], history[-1]["score"], history[-1]["cause_ref"]) == (
        EBOOK_MS,
        pytest.approx(40),
        "m-7",
    )


def test_slow_path_gives_the_same_current_score(store: Store) -> None:
    """The per-chunk path (``pipeline.ingest``, what the tracking API's batches do) for comparison."""
    publish(store, load_model(DATA / "model.yaml"))
    import_events(EVENTS, lambda messages: ingest(store, messages, source="import"), chunk_size=3)
    current, _ = linda(store)
    assert current["score"] == pytest.approx(40)


def test_duplicates_within_the_file_and_against_the_log(store: Store, tmp_path: Path) -> None:
    publish(store, load_model(DATA / "model.yaml"))
    lines = EVENTS.read_bytes().splitlines(keepends=True)
    doubled = tmp_path / "doubled.jsonl"
    # line 11 resends line 9 (the e-book) and line 12 line 1 (a pricing page), chunks of 2: other chunks
    doubled.write_bytes(b"".join(lines) + lines[8] + lines[0])
    report, _ = backfill(store, doubled, chunk_size=2)
    assert (report.lines, report.accepted, report.duplicates) == (10, 6, 2)
    current, history = linda(store)
    assert current["score"] == pytest.approx(40)  # the resent e-book and page count once
    report, rescored = backfill(store, doubled, chunk_size=2)
    assert (report.accepted, report.duplicates, rescored) == (0, 8, 0)
    assert linda(store)[1] == history  # nothing new: no lead touched, no history row
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 6


# Python's own heap, traced: SQLite's page cache (PRAGMA cache_size, 64 MiB, store/engine.py) is C memory that
# fills with any file larger than it, so RSS would measure the cache, not whether messages are held.
CHILD = """
import sys, tracemalloc
tracemalloc.start()
from leadscore.cli.main import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("peak", tracemalloc.get_traced_memory()[1] // 1024)
"""


def _import_peak_kib(path: Path, db: str) -> int:
    command = [sys.executable, "-c", CHILD, "import", "events", str(path), "--no-progress", "--db", db]
    command += ["--chunk-size", "500"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(done.stdout.rsplit("peak", 1)[1])


def _export(path: Path, lines: int) -> None:
    padding = "x" * 4000  # 4 kB a line: holding the file's messages would cost far more than the bound
    with path.open("wb") as out:
        for n in range(lines):
            message = {
                "type": "track",
                "event": "Clicked",
                "userId": f"u-{n % 50}",
                "messageId": f"m-{n}",
                "timestamp": 1_709_553_600_000 + n,
                "properties": {"note": padding},
            }
            out.write(orjson.dumps(message) + b"\n")


def test_memory_is_bounded_by_the_chunk_not_the_file(tmp_path: Path) -> None:
    """The peak of Python's heap importing 16,000 lines (64 MB, 32 chunks of 500) exceeds that of 500 lines
    (one chunk) by less than 40 MiB; keeping the big file's messages would take more than 64 MiB of text alone."""
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    _export(small, 500)
    _export(big, 16_000)
    baseline = _import_peak_kib(small, str(tmp_path / "small.db"))
    peak = _import_peak_kib(big, str(tmp_path / "big.db"))
    assert peak - baseline < 40 * 1024, (baseline, peak)


@pytest.mark.postgres
def test_a_large_backfill_analyses_the_tables_before_its_rescore_pass(
    pg_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL plans the rescore pass's scoring query over the tables the backfill just filled, so a
    backfill that stored ``ANALYZE_AFTER`` events or more refreshes their statistics first; a smaller one
    leaves them to autovacuum (which does not analyse a table of a few rows)."""

    def analysed() -> int:  # column statistics of the event log: written by ANALYZE, in its transaction
        query = text(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'events' AND schemaname = current_schema()"
        )
        with pg_store.connect() as conn:
            return int(conn.execute(query).scalar_one())

    publish(pg_store, load_model(DATA / "model.yaml"))
    monkeypatch.setattr(pipeline, "ANALYZE_AFTER", 7)
    backfill(pg_store)  # six events stored: fewer than seven
    assert analysed() == 0
    again = tmp_path / "again.jsonl"  # the same messages under new ids
    again.write_bytes(EVENTS.read_bytes().replace(b'"m-', b'"again-'))
    monkeypatch.setattr(pipeline, "ANALYZE_AFTER", 5)
    report, _ = backfill(pg_store, again)
    assert report.accepted == 5  # line 7 has no message id: its derived id is the first run's
    assert analysed() > 0

"""store.planner_stats: the processor analyses a table whose size moved past the threshold (50 rows + half
the rows its last analysis saw)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from leadscore.store import Store
from leadscore.store.planner_stats import STALE_ROWS, refresh_stale, stale_tables
from leadscore.store.schema import leads


def _analysed(store: Store, table: str) -> int:
    with store.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT analyze_count FROM pg_stat_user_tables "
                    "WHERE schemaname = current_schema() AND relname = :t"
                ),
                {"t": table},
            ).scalar_one()
        )


def _add_leads(store: Store, n: int) -> None:
    with store.begin() as conn:
        conn.execute(leads.insert(), [{"attributes": {}, "created_ms": 1, "updated_ms": 1} for _ in range(n)])
        # the counts pg_stat_user_tables shows are sent at most once a second unless asked (PostgreSQL 15)
        conn.execute(text("SELECT pg_stat_force_next_flush()"))


def test_a_table_grown_past_the_threshold_is_analysed_once(pg_store: Store) -> None:
    _add_leads(pg_store, STALE_ROWS - 1)  # 49 rows changed on an empty table: below 50 + 50 % of 0
    with pg_store.connect() as conn:
        assert "leads" not in stale_tables(conn)
    assert refresh_stale(pg_store, ["leads"]) == []
    _add_leads(pg_store, 1)  # the 50th
    with pg_store.connect() as conn:
        assert stale_tables(conn, ["leads", "events"]) == ["leads"]
    before = _analysed(pg_store, "leads")
    assert refresh_stale(pg_store, ["leads"]) == ["leads"]
    assert _analysed(pg_store, "leads") == before + 1
    with pg_store.connect() as conn:
        assert (
            conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'leads'::regclass")).scalar() == 50
        )
        assert stale_tables(conn) == []  # analysed: nothing changed since
    _add_leads(pg_store, 74)  # 50 + 50 % of 50 = 75 changes are needed again
    assert refresh_stale(pg_store) == []
    _add_leads(pg_store, 1)
    assert refresh_stale(pg_store) == ["leads"]
    with pg_store.begin() as conn:  # rewritten, not resized (as a batch rewrites scores): nothing to do
        conn.execute(leads.update().values(updated_ms=2))
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
    assert refresh_stale(pg_store) == []


def test_sqlite_has_nothing_to_analyse(sqlite_store: Store) -> None:
    with sqlite_store.begin() as conn:
        conn.execute(leads.insert(), [{"attributes": {}, "created_ms": 1, "updated_ms": 1}] * 100)
    with sqlite_store.connect() as conn:
        assert stale_tables(conn) == []
    assert refresh_stale(sqlite_store) == []


def test_a_table_held_elsewhere_is_not_waited_for(pg_store: Store) -> None:
    """Another session holds the lock ANALYZE needs (as a VACUUM does): refresh_stale gives up after its
    lock timeout instead of holding the processor behind it, and analyses once the table is free."""
    _add_leads(pg_store, STALE_ROWS)
    with pg_store.begin() as other:
        other.execute(text("LOCK TABLE leads IN SHARE UPDATE EXCLUSIVE MODE"))
        with pytest.raises(OperationalError, match="lock timeout"):
            refresh_stale(pg_store, ["leads"])
    assert refresh_stale(pg_store, ["leads"]) == ["leads"]


def test_a_started_processor_analyses_on_a_thread_of_its_own(pg_store: Store) -> None:
    """The statistics are looked at beside the drain, not in it: a processor that drains nothing (no wake,
    its idle look a minute away) still analyses a grown table, and stopping it ends that thread too."""
    from leadscore.scoring.processor import Processor

    _add_leads(pg_store, STALE_ROWS)
    before = _analysed(pg_store, "leads")
    processor = Processor(pg_store, idle_s=60).start()
    try:
        deadline = time.monotonic() + 30
        while _analysed(pg_store, "leads") == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _analysed(pg_store, "leads") == before + 1
        assert processor.stats.batches == 0  # the drain never ran
    finally:
        processor.stop()
    assert not any(t.name == "leadscore-planner-stats" and t.is_alive() for t in threading.enumerate())

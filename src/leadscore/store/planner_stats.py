"""PostgreSQL planner statistics of the tables scoring reads, kept current by the writers that grow them.

The real-time statements (the compiled query for a batch's leads, the history and score lookups) are
right only when the planner knows how large the tables are: without statistics it takes ``events`` for a
table of a few rows and joins the whole of it into every batch, so each batch costs more as the log grows
(measured: a 100-event batch's compiled query read all 3,000 events of the log, 17-23 ms, against 6 ms
with statistics). Autovacuum gathers them, but only every ``autovacuum_naptime`` (a minute by default)
and not at all where it is switched off; a processor filling new tables at 1,000 events a second is
minutes ahead of it. So the processor asks
``pg_stat_user_tables`` now and then and analyses a table once its size moved by ``STALE_ROWS`` +
``STALE_FRACTION`` x the rows its last analysis saw (half: see there), whoever runs first. SQLite's
join order is fixed by the compiler, so it needs none of this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

if TYPE_CHECKING:
    from leadscore.store import Store

# the relations the scoring query and the processor's lookups read, whose sizes ingest changes
SCORED_TABLES = ("events", "identities", "leads", "accounts", "scores", "ledger", "score_history")
# autovacuum_analyze_threshold's default; the fraction is five times autovacuum_analyze_scale_factor's
# (0.1): between two analyses the planner scales a table's rows by its current size in pages
# (``reltuples`` / ``relpages`` x pages), so its estimates grow with the table anyway; an analysis adds
# the values' distribution, which a log that grows by the same kind of rows keeps. At 0.1 two processors
# at 1,000 events/s ran 16 analyses in 15 s (the log and the history at 20,000-30,000 rows: 150-250 ms of
# server CPU each), a quarter of their backends' CPU; a 20,000-event drain 17-20 at 0.1, 5 at 0.5
# (bench/README.md, fourteenth session)
STALE_ROWS = 50
STALE_FRACTION = 0.5
# one analysing writer at a time (a second one skips): a key of the two-integer advisory lock space, which
# never meets the lead locks' one-bigint keys (store/results.py: lock_leads)
_ANALYSE_LOCK = (0x1EAD, 0x57A7)
# the thresholds, applied to how far the table's size moved from the one its last analysis saw
# (``reltuples``: -1 before any, counted as 0) rather than to every change: plans follow sizes, and the
# scores and ledger are rewritten by every batch (analysed each second) without changing size
_STALE = text(
    "SELECT s.relname FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid "
    "WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables) "
    "AND abs(s.n_live_tup - greatest(c.reltuples, 0)) >= :rows + :fraction * greatest(c.reltuples, 0) "
    "ORDER BY s.relname"
)


LOCK_TIMEOUT_MS = 200  # how long refresh_stale waits for a table's lock


def stale_tables(conn: Connection, tables: Sequence[str] = SCORED_TABLES) -> list[str]:
    """The tables among ``tables`` whose size moved past the threshold since their last analysis
    (PostgreSQL; none on SQLite)."""
    if conn.dialect.name != "postgresql":
        return []
    params = {"tables": list(tables), "rows": STALE_ROWS, "fraction": STALE_FRACTION}
    return [str(name) for name in conn.execute(_STALE, params).scalars()]


def analyse(conn: Connection, tables: Sequence[str] = SCORED_TABLES) -> None:
    """Gather planner statistics of ``tables`` now (PostgreSQL; nothing on SQLite)."""
    if conn.dialect.name == "postgresql" and tables:
        conn.exec_driver_sql(f"ANALYZE {', '.join(_quoted(t) for t in tables)}")


def refresh_stale(store: Store, tables: Sequence[str] = SCORED_TABLES) -> list[str]:
    """Analyse the tables whose size moved past the threshold, unless another writer is at it;
    returns the tables analysed. In a transaction of its own: ANALYZE holds a lock that a second ANALYZE
    of the table waits for, never one that writers wait for."""
    if store.dialect != "postgresql":
        return []
    with store.begin() as conn:
        stale = stale_tables(conn, tables)
        if (
            not stale
            or not conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:a, :b)"), dict(zip("ab", _ANALYSE_LOCK, strict=True))
            ).scalar_one()
        ):
            return []
        # a table another session holds (a VACUUM, an index built concurrently, a backfill's ANALYZE) is
        # not waited for: the processor's batches wait behind this call (raises OperationalError)
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
        analyse(conn, stale)
    return stale


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a table name: {name!r}")
    return f'"{name}"'

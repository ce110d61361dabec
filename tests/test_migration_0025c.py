"""Migration 0025c: page paths bounded at 1,000 bytes of UTF-8 and indexed with the type, time and person of
their event (``ix_events_type_ts_path``, in place of ``ix_events_type_ts``). A path stored before it that
is longer is cut to its longest prefix within the bound, at a character's boundary; every other row and
column is kept as it was; downgrading restores the earlier index."""

from __future__ import annotations

from sqlalchemy import func, inspect, select, text

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.scoring.processor import process_pending
from leadscore.store import Store
from leadscore.store.event_log import enqueue
from leadscore.store.schema import dead_letters, events
from migration_steps import migrate

NOW = 1_717_200_000_000
COLUMNS = "message_id, type, name, person_key, user_id, path, properties, context, ts, received_ms, source"
# message id → the path stored before the migration, and the one after it, cut by hand: "é" is 2 bytes of
# UTF-8 and "😀" 4, so the first 1,000 bytes of "/" + "é" * 600 end inside its 500th "é" (1 + 998 bytes
# kept), those of "/ab" + "😀" * 300 inside its 250th "😀" (3 + 996 bytes kept)
PATHS = {
    "short": ("/pricing", "/pricing"),
    "none": (None, None),
    "at the bound": ("/" + "p" * 999, "/" + "p" * 999),
    "ascii": ("/" + "p" * 1500, "/" + "p" * 999),
    "two-byte": ("/" + "é" * 600, "/" + "é" * 499),
    "four-byte": ("/ab" + "😀" * 300, "/ab" + "😀" * 249),
}


def _indexes(store: Store) -> dict[str, list[str | None]]:
    with store.engine.connect() as conn:
        return {
            str(i["name"]): list(i["column_names"])
            for i in inspect(conn).get_indexes("events")
            if str(i["name"]).startswith("ix_events_type")
        }


def test_the_migration_cuts_long_paths_and_indexes_them(store: Store) -> None:
    migrate(store, "downgrade", "0024")
    if store.dialect == "sqlite":  # a store with planner statistics: the new index gets its own
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    assert _indexes(store) == {"ix_events_type_ts": ["type", "ts"]}
    with store.engine.begin() as conn:
        for number, (mid, (path, _)) in enumerate(PATHS.items()):
            conn.execute(
                text(
                    f"INSERT INTO events ({COLUMNS}) VALUES "
                    "(:mid, 'page', NULL, 'u:ann', 'ann', :path, '{}', '{}', :ts, :ts, 'api')"
                ),
                {"mid": mid, "path": path, "ts": NOW + number},
            )
    migrate(store, "upgrade", "heads")
    assert _indexes(store) == {"ix_events_type_ts_path": ["type", "ts", "path", "person_key"]}
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            analysed = conn.execute(text("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'events'")).all()
        # 6 events, 1 type: the index's rows and the rows per value of each column prefix
        assert ("ix_events_type_ts_path", "6 6 1 1 1") in analysed
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT message_id, path, ts, person_key FROM events ORDER BY ts")).all()
    assert [(r.message_id, r.path) for r in rows] == [(mid, after) for mid, (_, after) in PATHS.items()]
    assert all(r.path is None or len(r.path.encode()) <= 1000 for r in rows)
    assert [(r.ts, r.person_key) for r in rows] == [(NOW + n, "u:ann") for n in range(len(PATHS))]
    migrate(store, "downgrade", "0024")
    assert _indexes(store) == {"ix_events_type_ts": ["type", "ts"]}
    migrate(store, "upgrade", "heads")
    assert _indexes(store) == {"ix_events_type_ts_path": ["type", "ts", "path", "person_key"]}


def test_a_long_path_acknowledged_before_the_upgrade_is_cut_as_it_enters_the_log(store: Store) -> None:
    """An event acknowledged before the upgrade may still wait in the inbox with a path over the bound
    (ingestion checked none then): the processor moves it into the log cut as the migration cuts a
    stored one ("/" + 1,200 × "é": 2,401 bytes; its first 1,000 end inside the 500th "é", so "/" and 499
    are kept), never refused for its length (PostgreSQL: ``character varying(1000)``) into a dead letter."""
    message = {"type": "page", "userId": "ann", "messageId": "old", "timestamp": NOW - 60_000}
    row = event_row(normalise(message, received_ms=NOW), "api")
    row["path"] = "/" + "é" * 1200
    with store.begin() as conn:
        enqueue(conn, [row])
    drained = [process_pending(store) for _ in range(3)]
    assert drained[0] == 1 and drained[1:] == [0, 0]  # the one event, in the first batch
    with store.connect() as conn:
        assert conn.execute(select(events.c.path)).scalars().all() == ["/" + "é" * 499]
        assert conn.execute(select(func.count()).select_from(dead_letters)).scalar_one() == 0

"""SQLite: a processor batch logged in one write turn, scored on a read snapshot, saved in another
(``scoring/snapshot.py``).

What must hold: an event for the same lead that arrives between the computation and the save ends scored
with the others, whether it waits in the inbox (acknowledged meanwhile: the next batch) or another writer
put it in the log (the save sees the lead changed and scores it again, holding the lock); and a
processor stopped between the two turns leaves its leads to the next batch, unscored events included.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.processor import ProcessorStats, process_pending
from leadscore.scoring.snapshot import process_batch
from leadscore.store import Store, counters
from leadscore.store.event_log import enqueue, waiting_events
from leadscore.store.ledger_lines import read_lines
from leadscore.store.schema import events, inbox, scores

NOW = 1_717_200_000_000
# 10 points a visit, engagement out of 100 and weighted 1: the score is 10 per visit
MODEL = """
model: snapshot
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 10}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 15}}
"""


def _message(message_id: str, user: str = "ann", minutes_ago: int = 5) -> dict[str, Any]:
    return {"type": "page", "userId": user, "messageId": message_id, "timestamp": NOW - minutes_ago * 60_000}


def _acknowledge(store: Store, *message_ids: str) -> None:
    """Events into the inbox, as the tracking endpoint's group commit puts them there."""
    with store.begin() as conn:
        enqueue(conn, [event_row(normalise(_message(m), received_ms=NOW), "api") for m in message_ids])


def _ann(store: Store) -> tuple[int | None, float | None]:
    """Ann's visits counted in her ledger, and her score."""
    with store.connect() as conn:
        matched = next(
            (ln["matched"] for ln in read_lines(conn, None, every_score=True) if ln["rule_id"] == "visit"),
            None,
        )
        score = conn.execute(select(scores.c.score)).scalar()
    return matched, score


@pytest.fixture
def published(sqlite_store: Store) -> Store:
    publish(sqlite_store, loads_model(MODEL), as_of=NOW)
    return sqlite_store


def test_an_event_acknowledged_between_compute_and_save_is_scored_by_the_next_batch(published: Store) -> None:
    store = published
    _acknowledge(store, "m1")
    stats = ProcessorStats()
    assert process_batch(store, 100, stats, after_compute=lambda: _acknowledge(store, "m2")) == 1
    # m1's results were saved (nothing they read had changed); m2 waits for the next batch
    assert _ann(store) == (1, 10.0)
    assert stats.recomputed == 0
    assert process_batch(store, 100, stats) == 1
    assert _ann(store) == (2, 20.0)
    with store.connect() as conn:
        assert waiting_events(conn) == 0
        assert conn.execute(select(func.count()).select_from(inbox)).scalar() == 0


def test_an_event_logged_by_another_writer_between_compute_and_save_is_scored_at_once(
    published: Store,
) -> None:
    store = published
    _acknowledge(store, "m1")

    def import_one() -> None:  # another writer (an import) logs and scores m2 for the same lead
        ingest(store, [normalise(_message("m2", minutes_ago=3), received_ms=NOW)], source="import")
        assert _ann(store) == (2, 20.0)

    stats = ProcessorStats()
    assert process_batch(store, 100, stats, after_compute=import_one) == 1
    # the results computed before m2 (one visit) are stale: the save scored Ann again, with both
    assert stats.recomputed == 1
    assert _ann(store) == (2, 20.0)


def test_a_processor_stopped_between_log_and_save_leaves_its_leads_to_the_next(published: Store) -> None:
    store = published
    _acknowledge(store, "m1", "m2")

    def stopped() -> None:
        raise KeyboardInterrupt  # the process ends here: its events are in the log, unscored

    with pytest.raises(KeyboardInterrupt):
        process_batch(store, 100, ProcessorStats(), after_compute=stopped)
    assert _ann(store) == (None, None)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 2
        assert waiting_events(conn) == 2  # logged, not scored: the row left behind names Ann
        assert conn.execute(select(func.count()).select_from(inbox)).scalar() == 1
    with store.connect() as conn:
        assert counters.read(conn).get(counters.SCORED, 0) == 0
    assert process_pending(store) == 0  # no events to log: the row names leads only
    assert _ann(store) == (2, 20.0)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(inbox)).scalar() == waiting_events(conn) == 0
        # the events are counted scored once, by the batch that scored them
        tally = counters.read(conn)
        assert tally[counters.ACKNOWLEDGED] == tally[counters.SCORED] == 2


def test_a_pending_row_another_processor_took_is_not_confused_with_a_newer_inbox_row(
    published: Store,
) -> None:
    """SQLite gives a new inbox row the largest id plus one, so the id of a pending row another processor
    took comes back: the first processor's save must leave that new row (m2, not yet logged) alone."""
    store = published
    _acknowledge(store, "m1")

    def another_processor_then_m2() -> None:
        # the second processor takes the pending row with its batch and scores Ann (one visit)
        assert process_batch(store, 100, ProcessorStats()) == 0
        assert _ann(store) == (1, 10.0)
        _acknowledge(store, "m2")  # the inbox is empty: m2's row gets the pending row's id again

    stats = ProcessorStats()
    assert process_batch(store, 100, stats, after_compute=another_processor_then_m2) == 1
    with store.connect() as conn:
        assert waiting_events(conn) == 1  # m2 still waits
        tally = counters.read(conn)
    assert tally[counters.ACKNOWLEDGED] == tally[counters.SCORED] == 1  # m1, counted once (by the second)
    assert process_pending(store) == 1
    assert _ann(store) == (2, 20.0)


def test_a_score_the_clock_saved_between_compute_and_save_is_not_overwritten_by_the_snapshot(
    sqlite_store: Store,
) -> None:
    """Worked by hand: visits count for an hour. Ann's m1 is scored (10); m2 is logged and scored on the
    snapshot (20, as of now); before the save the clock rescores Ann as of two hours later, when both
    visits are out of their window (0). The snapshot's result would put her score back in time, so the
    save must see the scores changed and score Ann again holding the lock (once, counted in
    ``recomputed``) instead of writing the snapshot's rows."""
    store = sqlite_store
    now = int(time.time() * 1000)
    windowed = MODEL.replace("points: 10}", "points: 10, window: 1h}")
    publish(store, loads_model(windowed), as_of=now)

    def acknowledge(message_id: str) -> None:
        message = {"type": "page", "userId": "ann", "messageId": message_id, "timestamp": now - 60_000}
        with store.begin() as conn:
            enqueue(conn, [event_row(normalise(message, received_ms=now), "api")])

    acknowledge("m1")
    assert process_batch(store, 100, ProcessorStats()) == 1
    assert _ann(store) == (1, 10.0)
    acknowledge("m2")
    ticked: list[int] = []

    def clock() -> None:
        ticked.append(tick(store, now=now + 2 * 3_600_000).leads)
        assert _ann(store)[1] == 0.0

    stats = ProcessorStats()
    assert process_batch(store, 100, stats, after_compute=clock) == 1
    assert ticked == [1]
    assert stats.recomputed == 1

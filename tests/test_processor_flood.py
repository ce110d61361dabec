"""A SQLite processor under a flood (``scoring/processor.py``: ``flooded``, ``flood_pause``): events
arriving faster than it would score them with half a core (per CPU-second of its recent batches), and
scoring already more than 250 ms behind. It then scores only ``flood_duty`` of the time, in ``flood_batch`` batches, and
every event is still scored once. Within its latency slack (``SQLITE_GATHER_MS``) a drain that emptied
the inbox lets the next batch gather instead.

Expected values by hand: a batch of 100 events that took 0.05 s of CPU would score 2,000 per
CPU-second, half a core 1,000/s; at a duty of 0.25 a 0.1 s
batch is followed by 0.3 s of rest (0.1 of 0.4 s scoring).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring import processor as processor_module
from leadscore.scoring.pipeline import publish
from leadscore.scoring.processor import (
    FLOOD_BATCH,
    SQLITE_BACKLOG_BATCH,
    SQLITE_BATCH,
    Processor,
    flood_pause,
    flooded,
)
from leadscore.settings import Settings
from leadscore.store import Store, counters
from leadscore.store.event_log import arrived_since, claim, enqueue, waiting_events
from leadscore.store.schema import events, inbox

MODEL = """
model: floods
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
scale: {engagement_max: 100, bands: {hot: 90, warm: 20}}
"""

# (oldest event waited ms, arriving /s, per CPU-second) -> flooded
CASES = [
    ((400.0, 1500.0, 2000.0), True),
    ((400.0, 1000.0, 2000.0), False),  # half a core (1,000/s) keeps up
    ((400.0, 1500.0, 3100.0), False),  # half a core (1,550/s) keeps up
    ((250.0, 1500.0, 2000.0), False),  # within the 250 ms latency budget
    ((251.0, 5389.0, 6950.0), True),  # a quiet machine's flood, kept up with 81 % of a core
]


@pytest.mark.parametrize(("figures", "expected"), CASES)
def test_a_flood_is_arrivals_faster_than_the_processor_scores(
    figures: tuple[float, float, float], expected: bool
) -> None:
    assert flooded(*figures) is expected


def test_a_flooded_processor_rests_to_score_its_duty_of_the_time() -> None:
    assert flood_pause(0.1, 0.25) == pytest.approx(0.3)
    assert flood_pause(0.2, 0.5) == pytest.approx(0.2)
    assert flood_pause(0.1, 1.0) == 0.0


def test_the_flood_settings_are_bounded() -> None:
    assert (Settings().processor_flood_duty, Settings().processor_flood_batch) == (0.25, 1000)
    for bad in ({"processor_flood_duty": 0.0}, {"processor_flood_duty": 1.5}, {"processor_flood_batch": 0}):
        with pytest.raises(ValidationError):
            Settings(**bad)


def _row(i: int, received_ms: int) -> dict[str, Any]:
    message = {"type": "page", "userId": f"user-{i % 20}", "messageId": f"f-{i}"}
    return event_row(normalise(message, received_ms=received_ms), "api")


def _enqueue_rows(store: Store, rows: tuple[tuple[int, int], ...]) -> None:
    """An inbox row per (acknowledged at ms, events), the events numbered on from 0."""
    with store.begin() as conn:
        at = 0
        for received, n in rows:
            enqueue(conn, [_row(at + i, received) for i in range(n)])
            at += n


def test_arrivals_are_the_newest_inbox_rows_events_since_a_time(tmp_path: Path) -> None:
    """Inbox rows of 3, 2 and 5 events acknowledged at 1,000, 2,000 and 3,000 ms: 7 since 2,000, 5 since
    2,001, none after 3,000; among the newest row only, 5 since 0."""
    store = Store.from_url(str(tmp_path / "arrivals.db"))
    try:
        _enqueue_rows(store, ((1000, 3), (2000, 2), (3000, 5)))
        with store.connect() as conn:
            assert arrived_since(conn, 2000) == 7
            assert arrived_since(conn, 2001) == 5
            assert arrived_since(conn, 3001) == 0
            assert arrived_since(conn, 0, rows=1) == 5
    finally:
        store.dispose()


def test_a_claim_keeps_when_its_rows_arrived(tmp_path: Path) -> None:
    """Inbox rows of 3, 2 and 5 events acknowledged at 1,000, 2,000 and 3,000 ms, taken by a claim of up to
    5 events: the first two rows, (1,000, 3) and (2,000, 2); the next claim takes (3,000, 5)."""
    store = Store.from_url(str(tmp_path / "taken.db"))
    try:
        _enqueue_rows(store, ((1000, 3), (2000, 2), (3000, 5)))
        with store.begin() as conn:
            first = claim(conn, 5)
            assert first is not None
            assert first.arrivals == [(1000, 3), (2000, 2)]
            conn.execute(inbox.delete().where(inbox.c.id.in_(first.ids)))
            second = claim(conn, 5)
            assert second is not None
            assert second.arrivals == [(3000, 5)]
    finally:
        store.dispose()


def test_arrivals_count_the_events_the_processor_took(tmp_path: Path) -> None:
    """600 events acknowledged now still wait in the inbox; the last batches took rows of 500 and 400
    events acknowledged now: 1,500 arrived in the last second, more than half a core's 1,000/s (100 events
    in 0.05 s of CPU: 2,000 per CPU-second): a flood. The waiting 600 alone are none, nor are they with
    900 taken 2 s ago (out of the window)."""
    store = Store.from_url(str(tmp_path / "took.db"))
    try:
        now = int(time.time() * 1000)
        with store.begin() as conn:
            enqueue(conn, [_row(i, now) for i in range(600)])
        took = Processor(store)
        _stats(took, 400.0, 0.1, 0.05)
        took.stats.last_taken = [(now, 500), (now, 400)]
        assert took._sqlite_next(100, 100)[0] == FLOOD_BATCH
        assert took.floods == 1
        waiting_only = Processor(store)
        _stats(waiting_only, 400.0, 0.1, 0.05)
        assert waiting_only._sqlite_next(100, 100)[0] == SQLITE_BACKLOG_BATCH
        assert waiting_only.floods == 0
        earlier = Processor(store)
        _stats(earlier, 400.0, 0.1, 0.05)
        earlier.stats.last_taken = [(now - 2000, 500), (now - 2000, 400)]
        assert earlier._sqlite_next(100, 100)[0] == SQLITE_BACKLOG_BATCH
        assert earlier.floods == 0
        assert earlier._taken == []
    finally:
        store.dispose()


def _stats(processor: Processor, waited_ms: float, batch_s: float, cpu_s: float) -> None:
    """The last batch's figures, as a batch after the processor's first leaves them."""
    processor.stats.batches += 2
    processor.stats.last_latency_ms = waited_ms
    processor.stats.last_batch_s = batch_s
    processor.stats.last_batch_cpu_s = cpu_s


def test_the_next_batch_of_a_flooded_drain(tmp_path: Path) -> None:
    """After a batch of 100 (full) that waited 400 ms and took 0.1 s (0.05 s of CPU): 1,500 events
    acknowledged in the last second (more than half a core's 1,000/s) make
    a flood: a batch of 50 (``flood_batch``) after 0.1 s of rest (duty 0.5); 900 do not: 500 events after
    the 2 ms floor (behind, catching up). A duty of 1 never rests."""
    store = Store.from_url(str(tmp_path / "next.db"))
    try:
        now = int(time.time() * 1000)
        with store.begin() as conn:
            enqueue(conn, [_row(i, now) for i in range(900)])
        processor = Processor(store, flood_duty=0.5, flood_batch=50)
        _stats(processor, 400.0, 0.1, 0.05)
        assert processor._sqlite_next(100, 100) == (SQLITE_BACKLOG_BATCH, pytest.approx(0.002))
        assert processor.floods == 0
        with store.begin() as conn:
            enqueue(conn, [_row(900 + i, now) for i in range(600)])
        assert processor._sqlite_next(100, 100) == (50, pytest.approx(0.1))
        assert processor.floods == 1
        # within the latency budget: no flood, whatever arrives
        _stats(processor, 200.0, 0.1, 0.05)
        assert processor._sqlite_next(100, 100)[0] == SQLITE_BACKLOG_BATCH
        assert processor.floods == 0
        always = Processor(store, flood_duty=1.0)
        _stats(always, 400.0, 0.1, 0.05)
        assert always._sqlite_next(100, 100) == (SQLITE_BACKLOG_BATCH, pytest.approx(0.002))
    finally:
        store.dispose()


def test_a_drain_within_its_latency_slack_lets_the_next_batch_gather(tmp_path: Path) -> None:
    """A batch of 40 events of 100 (the inbox emptied) whose oldest event was scored 30 ms after it was
    acknowledged, the batch 0.01 s long, 0.004 s of it in the write turn: the next batch (of up to 500)
    starts 0.05 s after this one started, i.e. after 0.04 s, not the 0.008 s of twice the turn. After a
    0.049 s batch with 0.02 s in the turn, twice the turn (0.04 s) is the longer wait. At 100 ms behind,
    or with the batch full (a backlog), no gathering: 100 events after 0.008 s (40 is under half of 100),
    500 after 0.008 s."""
    store = Store.from_url(str(tmp_path / "slack.db"))
    try:
        processor = Processor(store)
        _stats(processor, 30.0, 0.01, 0.005)
        processor.stats.last_held_s = 0.004
        assert processor._sqlite_next(40, 100) == (SQLITE_BACKLOG_BATCH, pytest.approx(0.04))
        _stats(processor, 30.0, 0.049, 0.03)
        processor.stats.last_held_s = 0.02
        assert processor._sqlite_next(40, 100) == (SQLITE_BACKLOG_BATCH, pytest.approx(0.04))
        _stats(processor, 100.0, 0.01, 0.005)
        processor.stats.last_held_s = 0.004
        assert processor._sqlite_next(40, 100) == (SQLITE_BATCH, pytest.approx(0.008))
        _stats(processor, 30.0, 0.01, 0.005)
        assert processor._sqlite_next(100, 100) == (SQLITE_BACKLOG_BATCH, pytest.approx(0.008))
        assert processor.floods == 0
    finally:
        store.dispose()


def test_one_slow_batch_is_no_flood(tmp_path: Path) -> None:
    """600 events acknowledged in the last second; four batches of 100 events at 0.02 s (wall and CPU),
    then one at 0.2 s (500 per CPU-second: half a core 250/s, under 600). Weighted by 0.8 a batch back:
    events 100 × (1 + 0.8 + 0.64 + 0.512 + 0.4096) = 336.16, seconds 0.2 + 0.02 × 2.3616 = 0.247232,
    1,359.7 events/s, half a core 679.9/s: over the 600 arriving, so no flood."""
    store = Store.from_url(str(tmp_path / "slow.db"))
    try:
        now = int(time.time() * 1000)
        with store.begin() as conn:
            enqueue(conn, [_row(i, now) for i in range(600)])
        processor = Processor(store)
        for seconds in (0.02, 0.02, 0.02, 0.02, 0.2):
            _stats(processor, 400.0, seconds, seconds)
            assert processor._sqlite_next(100, 100)[0] == SQLITE_BACKLOG_BATCH
        assert processor._recent == pytest.approx([336.16, 0.247232, 0.247232])
        assert processor.floods == 0
        alone = Processor(store)
        _stats(alone, 400.0, 0.2, 0.2)
        assert alone._sqlite_next(100, 100)[0] == FLOOD_BATCH  # the slow batch alone: 500/s, a flood
    finally:
        store.dispose()


def test_the_first_batch_counts_for_no_rate(tmp_path: Path) -> None:
    """The processor's first batch (the model's query compiled, caches cold) is left out of its rates:
    however slow, it makes no flood."""
    store = Store.from_url(str(tmp_path / "first.db"))
    try:
        with store.begin() as conn:
            enqueue(conn, [_row(i, int(time.time() * 1000)) for i in range(600)])
        processor = Processor(store)
        processor.stats.batches = 1
        processor.stats.last_latency_ms, processor.stats.last_batch_s = 400.0, 2.0
        processor.stats.last_batch_cpu_s = 2.0
        assert processor._sqlite_next(100, 100)[0] == SQLITE_BACKLOG_BATCH
        assert processor._recent == [0.0, 0.0, 0.0]
    finally:
        store.dispose()


def test_a_flooded_drain_scores_every_event_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 single-event inbox rows acknowledged 2 s ago, arrivals counted as endless: every batch after
    the second is a flood batch of 300 (100, 500, 300, 100: the first counts for no rate, so the second
    is a drain behind's 500), and each of the 1,000 events is logged and counted as scored once."""
    monkeypatch.setattr(processor_module, "arrived_since", lambda conn, since_ms: 10**9)
    store = Store.from_url(str(tmp_path / "flood.db"))
    try:
        publish(store, loads_model(MODEL), as_of=int(time.time() * 1000))
        received = int(time.time() * 1000) - 2000
        with store.begin() as conn:
            for i in range(1000):
                enqueue(conn, [_row(i, received + i // 1000)])
        processor = Processor(store, flood_duty=0.9, flood_batch=300)
        processor.drain()
        assert (processor.stats.batches, processor.stats.events) == (4, 1000)
        assert processor.floods == 3  # the last batch, too, before the drain found the inbox empty
        with store.connect() as conn:
            assert waiting_events(conn) == 0
            assert counters.read(conn)[counters.SCORED] == 1000
            assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 1000
    finally:
        store.dispose()

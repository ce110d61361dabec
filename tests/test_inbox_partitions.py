"""PostgreSQL processors take work by person: an acknowledgement writes an inbox row per partition of
people (CRC-32 of the person key, modulo 16), a partition's rows are taken by one transaction at a time
(oldest first, another transaction skips the partition instead of waiting), running processors share the
partitions out, a drain that is behind takes batches of 500, and one that keeps up lets the next batch
gather (``gather_pause``).

Partitions by hand (CRC-32 as zlib, cksum -a crc32b or any CRC tool computes it): "u:a" 0xB267FC1E → 14,
"u:b" 0x2B6EADA4 → 4, "u:c" 0x5C699D32 → 2.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.scoring.processor import GATHER_S, Membership, Processor, ProcessorStats, gather_pause
from leadscore.store import Store, counters
from leadscore.store.event_log import claim, enqueue, inbox_events, partition, waiting_events
from leadscore.store.schema import inbox

pytestmark = pytest.mark.postgres

NOW = 1_717_200_000_000
MODEL = """
model: partitions
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
scale: {engagement_max: 100, bands: {hot: 90, warm: 20}}
"""


def _row(user: str, mid: str) -> dict[str, Any]:
    return event_row(normalise({"type": "page", "userId": user, "messageId": mid}, received_ms=NOW), "api")


def test_partitions_of_person_keys_by_hand() -> None:
    assert (partition("u:a"), partition("u:b"), partition("u:c")) == (14, 4, 2)


def test_an_acknowledgement_writes_a_row_per_partition_of_people(pg_store: Store) -> None:
    """Five events of three people in one group: three inbox rows, each holding one person's events in
    the order they came, with that person's partition."""
    rows = [_row("a", "a1"), _row("b", "b1"), _row("a", "a2"), _row("c", "c1"), _row("b", "b2")]
    with pg_store.begin() as conn:
        assert enqueue(conn, rows) == 3
    with pg_store.connect() as conn:
        stored = conn.execute(select(inbox.c.part, inbox.c.events, inbox.c.rows).order_by(inbox.c.id)).all()
    held = {part: (count, [r["message_id"] for r in inbox_events(text)]) for part, count, text in stored}
    assert held == {14: (2, ["a1", "a2"]), 4: (2, ["b1", "b2"]), 2: (1, ["c1"])}


def test_a_partition_is_taken_by_one_transaction_at_a_time_and_skipped_not_waited_for(
    pg_store: Store,
) -> None:
    """Person a's two events in two inbox rows (two acknowledgements), person b's one. While a
    transaction holds a's first row (it asked for a's partition only), another asking for every
    partition takes b's row and not a's second (a later event of a person
    waits for the earlier one's transaction, so a person's events are applied in order), without waiting
    (lock_timeout 300 ms would fail it); once the first transaction rolls back, a's rows are taken
    oldest first."""
    with pg_store.begin() as conn:
        enqueue(conn, [_row("a", "a1")])
        enqueue(conn, [_row("a", "a2")])
        enqueue(conn, [_row("b", "b1")])
    with pg_store.begin() as first:
        taken = claim(first, 1, parts=[14])  # a processor owning a's partition: a1 (one row, its one event)
        assert taken is not None and [r["message_id"] for r in taken.rows] == ["a1"]
        with pg_store.begin() as second:
            second.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
            other = claim(second, 10)
            assert other is not None and [r["message_id"] for r in other.rows] == ["b1"]
            second.rollback()
        with pg_store.begin() as third:  # only a's partition asked for: held, so nothing
            third.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
            assert claim(third, 10, parts=[14]) is None
        first.rollback()
    with pg_store.begin() as conn:
        again = claim(conn, 10, parts=[14])
        assert again is not None and [r["message_id"] for r in again.rows] == ["a1", "a2"]
        rest = claim(conn, 10, parts=[4])  # the second transaction rolled back: b1 waits still
        assert rest is not None and [r["message_id"] for r in rest.rows] == ["b1"]
        conn.rollback()


def test_running_processors_share_the_partitions_out(pg_store: Store) -> None:
    """One processor owns all 16 partitions; with a second they own the even and the odd ones (ranked by
    slot); when the first leaves, the second owns all 16 again."""
    first, second = Membership(pg_store), Membership(pg_store)
    try:
        assert first.refresh() == list(range(16))
        assert second.refresh() == [1, 3, 5, 7, 9, 11, 13, 15]
        assert first.refresh() == [0, 2, 4, 6, 8, 10, 12, 14]
        first.close()
        assert second.refresh() == list(range(16))
    finally:
        first.close()
        second.close()


def test_a_drain_behind_on_postgresql_keeps_batches_of_500(pg_store: Store) -> None:
    """3,000 events of one person in inbox rows of 100: every batch takes 500, behind or not (a batch's
    events wait for all of it; larger ones cost no less an event), then the drain finds the inbox empty:
    3,000 / 500 = 6 batches, every event scored once."""
    publish(pg_store, loads_model(MODEL), as_of=NOW)
    with pg_store.begin() as conn:
        enqueue(conn, [_row("a", f"d-{i}") for i in range(3000)])
    processor = Processor(pg_store)  # not started: drained here
    try:
        processor.drain()
    finally:
        processor.membership.close()
    assert (processor.stats.batches, processor.stats.events) == (6, 3000)
    with pg_store.connect() as conn:
        assert waiting_events(conn) == 0
        assert counters.read(conn)[counters.SCORED] == 3000


def test_a_drain_that_keeps_up_lets_the_next_batch_gather() -> None:
    """A batch of 40 events of up to 500 (its partitions emptied) whose oldest event was scored 30 ms
    after it was acknowledged, 0.01 s in its transaction: the next claim comes 0.05 s after this batch
    began, after 0.04 s. A 0.06 s batch: at once (it began more than 0.05 s ago). At 100 ms behind, or
    with the batch full (a backlog): at once."""
    assert GATHER_S == 0.05
    assert gather_pause(40, 500, ProcessorStats(last_latency_ms=30.0, last_held_s=0.01)) == pytest.approx(
        0.04
    )
    assert gather_pause(40, 500, ProcessorStats(last_latency_ms=30.0, last_held_s=0.06)) == 0.0
    assert gather_pause(40, 500, ProcessorStats(last_latency_ms=100.0, last_held_s=0.01)) == 0.0
    assert gather_pause(500, 500, ProcessorStats(last_latency_ms=30.0, last_held_s=0.01)) == 0.0


def test_a_membership_looked_at_from_two_threads_at_once_keeps_its_share(
    pg_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The processor's thread and a final drain on the server's thread may refresh at once: they share one
    connection, so each look waits for the other; neither fails (which would drop the slot: every
    partition) and both see the one processor owning all 16 partitions."""
    import threading

    member = Membership(pg_store)
    found: list[list[int] | None] = []

    def look() -> None:
        for _ in range(25):
            found.append(member.refresh())

    try:
        threads = [threading.Thread(target=look) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        member.close()
    assert found == [list(range(16))] * 150
    assert "not refreshed" not in caplog.text

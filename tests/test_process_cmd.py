"""``leadscore process``: processors in processes of their own; one killed mid-batch loses nothing and
applies nothing twice.

The inbox holds 40 leads × 60 page views (one point each, no cap), interleaved so that every inbox row
touches every lead and the two processors contend for the same leads. One processor is killed with
SIGKILL while the inbox is being drained; its transaction dies with it, its claimed rows are unlocked
and the other processor takes them. Afterwards, by hand: 2,400 events acknowledged and scored (the
counters are added in the transaction that does the work, so an event applied twice would count
twice), 2,400 events in the log, none in the inbox, and each lead's ledger counts 60 visits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import OperationalError

from leadscore.ingest.apply import Applied, event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.as_known import KNOWN, score_as_known
from leadscore.scoring.pipeline import publish, rescore_touched
from leadscore.scoring.processor import Processor, process_pending, sqlite_pause
from leadscore.store import Store, counters
from leadscore.store.event_log import enqueue, waiting_events
from leadscore.store.keys import create_key
from leadscore.store.ledger_lines import read_lines
from leadscore.store.results import lock_leads
from leadscore.store.schema import events, score_events, score_history, scores

NOW = 1_717_200_000_000
LEADS, VISITS = 40, 60
MODEL = """
model: processes
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
scale: {engagement_max: 100, bands: {hot: 90, warm: 20}}
"""


def _rows() -> list[dict[str, Any]]:
    rows = []
    for visit in range(VISITS):
        for lead in range(LEADS):
            message = {
                "type": "page",
                "userId": f"user-{lead}",
                "messageId": f"m-{lead}-{visit}",
                "timestamp": NOW - (VISITS - visit) * 60_000,
            }
            rows.append(event_row(normalise(message, received_ms=NOW), "api"))
    return rows


def _process(url: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from leadscore.cli.main import main; main()", "process", "--db", url]
    env = {**os.environ, "LEADSCORE_RUN_LIFECYCLE": "false"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(store: Store, done: Any, what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with store.connect() as conn:
            if done(conn):
                return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_processor_killed_mid_batch_loses_nothing_and_applies_nothing_twice(store: Store) -> None:
    publish(store, loads_model(MODEL), as_of=NOW)
    with store.begin() as conn:
        enqueue(conn, _rows())
    url = store.engine.url.render_as_string(hide_password=False)
    first, second = _process(url), _process(url)
    try:
        # killed once scoring is under way and much is left: while draining, a processor is in a batch
        _wait(store, lambda c: counters.read(c).get(counters.SCORED, 0) > 0, "the first batch")
        with store.connect() as conn:
            assert waiting_events(conn) > 0
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        _wait(store, lambda c: waiting_events(c) == 0, "the inbox to be drained")
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        errors = [proc.communicate(timeout=30)[1].decode() for proc in (first, second)]
    assert (first.returncode, second.returncode) == (-signal.SIGKILL, 0), errors[1]
    total = LEADS * VISITS
    with store.connect() as conn:
        tally = counters.read(conn)
        logged = conn.execute(select(func.count(), func.count(events.c.message_id.distinct()))).one()
        matched = [
            (ln["lead_id"], ln["matched"])
            for ln in read_lines(conn, None, every_score=True)
            if ln["rule_id"] == "visit"
        ]
        current = dict(conn.execute(select(scores.c.lead_id, scores.c.score)).all())
        history = conn.execute(
            select(score_history.c.lead_id, score_history.c.score).order_by(score_history.c.id)
        ).all()
        crossings = conn.execute(
            select(score_events.c.lead_id, score_events.c.to_value).where(score_events.c.kind == "band")
        ).all()
    assert tally[counters.ACKNOWLEDGED] == tally[counters.SCORED] == total
    assert tuple(logged) == (total, total)
    assert sorted(m for _, m in matched) == [VISITS] * LEADS
    # 60 points of 100: engagement 60, fit 0, score ½·0 + ½·60 = 30 for everyone
    assert sorted(current.values()) == [30.0] * LEADS
    last: dict[int, float] = {}
    for lead_id, score in history:
        assert last.get(lead_id) != score  # a row only when the score moved
        last[lead_id] = score
    assert last == current
    # cold → warm at 20 once per lead: a rescore repeated with a stale state would cross again
    assert sorted(crossings) == sorted((lead_id, "warm") for lead_id in current)


@pytest.mark.postgres
def test_a_lead_being_rescored_is_locked_until_the_transaction_ends(pg_store: Store) -> None:
    """While one transaction holds a lead for rescoring (``lock_leads``, as ``rescore_touched`` takes
    it), a second rescorer of that lead waits (here: gives up at its lock_timeout); another lead is free,
    and after the first commits the lead can be rescored."""
    store = pg_store
    publish(store, loads_model(MODEL), as_of=NOW)
    with store.begin() as conn:
        enqueue(conn, _rows()[:LEADS])  # one visit each
    rounds = 0
    while process_pending(store):
        rounds += 1
    assert rounds >= 1  # the inbox held work
    with store.connect() as conn:
        held, other = conn.execute(select(scores.c.lead_id).order_by(scores.c.lead_id)).scalars().all()[:2]
    with store.begin() as first:
        lock_leads(first, [held])
        with pytest.raises(OperationalError, match="lock timeout"), store.begin() as second:
            second.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
            rescore_touched(second, store.sources(), Applied(touched={held: NOW}))
        with store.begin() as second:
            second.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
            assert rescore_touched(second, store.sources(), Applied(touched={other: NOW}))[0] == 1
    with store.begin() as second:
        assert rescore_touched(second, store.sources(), Applied(touched={held: NOW}))[0] == 1


def test_serve_without_processor_leaves_scoring_to_process(tmp_path: Path) -> None:
    """``serve --no-processor`` acknowledges an event and leaves it in the inbox (readiness: processor
    "disabled", still ready); ``process`` then scores it: one visit, engagement 1, score ½·1 = 0.5."""
    db = str(tmp_path / "db.sqlite")
    store = Store.from_url(db)
    publish(store, loads_model(MODEL), as_of=NOW)
    with store.begin() as conn:
        _, token = create_key(conn, "write", "test", NOW)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = [sys.executable, "-c", "from leadscore.cli.main import main; main()"]
    serve = subprocess.Popen(
        [*cli, "serve", "--no-processor", "--port", str(port), "--db", db],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processor: subprocess.Popen[bytes] | None = None
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                ready = httpx.get(f"{base}/readyz", timeout=1)
                break
            assert serve.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        assert (ready.status_code, ready.json()["checks"]["processor"]) == (200, "disabled")
        sent = httpx.post(
            f"{base}/v1/page",
            json={"type": "page", "userId": "ann", "messageId": "only", "timestamp": NOW},
            auth=(token, ""),
            timeout=10,
        )
        assert sent.status_code == 200, sent.text
        time.sleep(1.0)  # a processor in the server would have scored it within milliseconds
        with store.connect() as conn:
            assert waiting_events(conn) == 1
        processor = _process(db)
        _wait(store, lambda c: waiting_events(c) == 0, "`leadscore process` to score the event")
        with store.connect() as conn:
            assert conn.execute(select(scores.c.score)).scalars().all() == [0.5]
    finally:
        for proc in (serve, processor):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=30)
        store.dispose()


def test_a_draining_processor_leaves_sqlite_two_thirds_of_the_write_lock() -> None:
    """After each batch of a drain the processor waits twice as long as it held the write lock (so it
    holds it at most a third of the time), and never less than the 2 ms floor; once scoring is more than
    250 ms behind the events it takes the floor only, to catch up."""
    assert sqlite_pause(0.030) == pytest.approx(0.060)
    assert sqlite_pause(0.250) == pytest.approx(0.500)
    assert sqlite_pause(0.0005) == pytest.approx(0.002)  # 2 × 0.5 ms = 1 ms, under the floor
    assert sqlite_pause(0.0) == pytest.approx(0.002)
    # scoring fell behind (the batch's oldest event waited 251 ms, over 250): catch up, floor pause only
    assert sqlite_pause(0.030, waited_ms=251.0) == pytest.approx(0.002)
    assert sqlite_pause(0.030, waited_ms=250.0) == pytest.approx(0.060)


def test_a_drain_behind_on_sqlite_takes_larger_batches(tmp_path: Path) -> None:
    """1,000 single-event inbox rows: the first batch takes 100 events (full, so the drain is behind),
    the next ones 500 each (500, then the 400 left), then it finds the inbox empty: 3 batches, every
    event scored once, the last batch's hold time recorded."""
    store = Store.from_url(str(tmp_path / "drain.db"))
    try:
        publish(store, loads_model(MODEL), as_of=NOW)
        rows = [
            event_row(
                normalise(
                    {"type": "page", "userId": f"user-{i % LEADS}", "messageId": f"d-{i}"},
                    received_ms=NOW + i,
                ),
                "api",
            )
            for i in range(1000)
        ]
        with store.begin() as conn:
            for row in rows:  # one inbox row per event, as single-event requests leave them
                enqueue(conn, [row])
        processor = Processor(store)
        processor.drain()
        assert (processor.stats.batches, processor.stats.events) == (3, 1000)
        assert processor.stats.last_held_s > 0
        with store.connect() as conn:
            assert waiting_events(conn) == 0
            assert counters.read(conn)[counters.SCORED] == 1000
            assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 1000
    finally:
        store.dispose()


def test_the_attributes_table_is_made_again_after_a_rollback_undid_it(store: Store) -> None:
    """A history point before a lead's attributes were observed is scored through a temporary table that
    a connection creates once (the processor skips the lookup after that); a rollback that undid its
    creation makes the next call create it again on the same connection, and both calls score the lead
    the same: one visit, 1 point of 100, score ½·0 + ½·1 = 0.5."""
    publish(store, loads_model(MODEL), as_of=NOW)
    # a trait the score reads (the tracking consent: a trait no rule reads makes no attribute set of its own)
    traits = {
        "type": "identify",
        "userId": "user-0",
        "traits": {"consent_tracking": True},
        "messageId": "who",
    }
    identify = event_row(normalise({**traits, "timestamp": NOW + 60_000}, received_ms=NOW), "api")
    with store.begin() as conn:
        enqueue(conn, [*_rows()[:1], identify])
    assert process_pending(store) == 2
    model = loads_model(MODEL)
    store.engine.dispose()  # a new database connection: no temporary table yet
    at = NOW + 1
    with store.connect() as conn:
        with conn.begin() as txn:
            lead_id = conn.execute(select(scores.c.lead_id)).scalar_one()
            first = score_as_known(conn, model, store.sources(), [(lead_id, at)])
            assert inspect(conn).has_table(KNOWN.name)  # the point took the temporary table
            txn.rollback()  # the table was created in this transaction: the rollback drops it
        with conn.begin():
            again = score_as_known(conn, model, store.sources(), [(lead_id, at)])
    assert first[(lead_id, at)].score == again[(lead_id, at)].score == pytest.approx(0.5)


def test_stopping_a_processor_ends_its_drain_after_the_batch_in_progress(store: Store) -> None:
    """``leadscore process`` on SIGTERM: the batch in progress commits, the backlog behind it waits for
    the next processor (before, the drain went on until the inbox was empty, however long that took).
    6,000 events wait; the processor is stopped once its first batch is in: at most the batch that was
    running then commits after it (500 events), so at least 6,000 − 3 × 500 = 4,500 still wait."""
    publish(store, loads_model(MODEL), as_of=NOW)
    rows = [
        event_row(
            normalise(
                {"type": "page", "userId": f"user-{i % LEADS}", "messageId": f"s-{i}"}, received_ms=NOW
            ),
            "api",
        )
        for i in range(6000)
    ]
    with store.begin() as conn:
        enqueue(conn, rows)
    processor = Processor(store, idle_s=0.01, linger_s=0.0).start()
    try:
        _wait(store, lambda c: counters.read(c).get(counters.SCORED, 0) > 0, "the first batch")
    finally:
        processor.stop()
    with store.connect() as conn:
        left = waiting_events(conn)
        scored = counters.read(conn)[counters.SCORED]
    assert left >= 4500
    assert scored + left == 6000  # what was taken was scored once; nothing was lost

"""A first publication racing the processor: on PostgreSQL an event's id is taken when it is inserted, not
when its transaction commits, so an event can become visible after events with larger ids. The publication
reads what other writers appended meanwhile by event id (``scoring/publication.py``); while no model is
active, the processor appends events without scoring them, and only the event ids show their leads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select, text

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring import processor, run
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.event_log import append_events, enqueue
from leadscore.store.model_versions import MODELS_LOCK
from leadscore.store.schema import events, leads, scores

NOW = 1_717_200_000_000
MODEL = (
    "model: m\nfit:\n  - {id: t, name: Title, when: {attribute: job_title, exists: true}, points: 10}\n"
    "engagement:\n  - {id: demo, name: Demo, event: {type: track, name: Demo}, points: 10}\n"
    "scale: {fit_max: 10, engagement_max: 10}\n"
)


def _identify(user: str) -> Any:
    return normalise(
        {
            "type": "identify",
            "userId": user,
            "messageId": f"i-{user}",
            "traits": {"email": f"{user}@x.example"},
        },
        received_ms=NOW,
    )


def _demo(user: str) -> Any:
    return normalise(
        {"type": "track", "userId": user, "event": "Demo", "messageId": f"demo-{user}", "timestamp": NOW},
        received_ms=NOW,
    )


class _Race:
    """The processor's batch held open after it appended its events (at ``hold``: before it reads the
    active models to score them, or just before it commits) until ``go`` is set. ``go`` is set when the
    publication first asks for the models lock alone, or first scores (its read snapshot taken: then the
    batch is waited for, so that it commits after that snapshot), whichever comes first."""

    def __init__(self) -> None:
        self.appended = threading.Event()
        self.go = threading.Event()
        self.batch: threading.Thread | None = None
        self.processed: list[int] = []

    def start_batch(self, store: Store) -> None:
        self.batch = threading.Thread(target=lambda: self.processed.append(processor.process_pending(store)))
        self.batch.start()
        assert self.appended.wait(30), "the processor's batch never appended its events"

    def let_commit(self) -> None:
        self.go.set()
        if self.batch is not None:
            self.batch.join(30)


@pytest.fixture(params=["rescore_touched", "release"])
def race(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, store: Store) -> Iterator[_Race]:
    race = _Race()
    hold, real_read = request.param, run.read_result
    real_hold = getattr(processor, hold)

    def holding(*args: Any, **kwargs: Any) -> Any:
        race.appended.set()
        assert race.go.wait(30), "the publication never came"
        return real_hold(*args, **kwargs)

    def reading(*args: Any, **kwargs: Any) -> Any:
        race.let_commit()
        return real_read(*args, **kwargs)

    def asking_alone(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "pg_advisory_xact_lock(" in statement:  # ``take_models``, not ``share_models``
            race.go.set()  # the batch is not waited for: the lock does that, or it would never be taken

    monkeypatch.setattr(processor, hold, holding)
    monkeypatch.setattr(run, "read_result", reading)
    event.listen(store.engine, "before_cursor_execute", asking_alone)
    try:
        yield race
    finally:
        event.remove(store.engine, "before_cursor_execute", asking_alone)
        race.go.set()


def test_an_event_committed_after_a_larger_id_counts_in_the_first_publication(
    store: Store, race: _Race
) -> None:
    """a and b are identified with no model published. The processor logs a's Demo (the smaller event id)
    and has not committed when b's Demo (the larger id) is imported and the first model is published: a's
    Demo commits once the publication has its snapshot (or, on PostgreSQL with the fix, while it waits for
    the models lock). Both Demos count: a and b each score (0 fit + 10 of 10 engagement points) = (0 + 100)
    / 2 = 50. Without the fix a kept 0, the score computed without its Demo, until her next event.

    SQLite has one writer at a time and its event ids come in commit order: the batch commits before b's
    Demo is imported (the only order SQLite allows), and the test passes trivially there."""
    ingest(store, [_identify("a"), _identify("b")], source="test")
    with store.begin() as conn:
        enqueue(conn, [event_row(_demo("a"), "api")])
    if store.dialect == "postgresql":
        race.start_batch(store)  # a's Demo logged, uncommitted
    else:
        race.go.set()
        race.processed.append(processor.process_pending(store))
    ingest(store, [_demo("b")], source="test")
    with store.connect() as conn:
        ids = dict(conn.execute(select(events.c.message_id, events.c.id)).all())
    if store.dialect == "postgresql":
        assert "demo-a" not in ids  # not yet committed: b's Demo is the newest event the publication sees
    publish(store, loads_model(MODEL))
    race.let_commit()
    assert race.processed == [1]
    with store.connect() as conn:
        ids = dict(conn.execute(select(events.c.message_id, events.c.id)).all())
        users = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
        saved = {
            users[lead_id]: score for lead_id, score in conn.execute(select(scores.c.lead_id, scores.c.score))
        }
    if store.dialect == "postgresql":
        assert ids["demo-a"] < ids["demo-b"]  # the race: the smaller id committed last
    assert saved == {"a": 50.0, "b": 50.0}


def test_a_transaction_appending_events_shares_the_models_lock_from_its_first_event(pg_store: Store) -> None:
    """Every path that appends to the log (the processor, imports, backfills: ``append_events``) holds the
    models lock shared from before its first event id is taken until it ends, so a publication taking it
    alone waits for every id taken so far to be committed or rolled back. PostgreSQL only: SQLite's
    writers take turns, and its ids come in commit order."""
    try_alone = text(f"SELECT pg_try_advisory_xact_lock(hashtext(current_schema()), {MODELS_LOCK})")
    with pg_store.begin() as appending:
        append_events(appending, [event_row(_demo("a"), "api")])
        with pg_store.begin() as publishing:
            assert publishing.execute(try_alone).scalar_one() is False
    with pg_store.begin() as publishing:
        assert publishing.execute(try_alone).scalar_one() is True

"""A publication, a full rescoring (``leadscore rescore``) and a shadow's publication score every lead
outside the write lock: while they score, acknowledgements and the processor's transactions go through
(they waited for it, and on SQLite failed with "database is locked" past the busy timeout), and what
changes meanwhile is scored when they save. No reader sees the new version before every lead's score is
of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import GroupCommitter
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring import run
from leadscore.scoring.pipeline import activate_version, ingest, publish, rescore_all
from leadscore.scoring.shadow import publish_shadow
from leadscore.store import Store
from leadscore.store.event_log import enqueue
from leadscore.store.model_versions import active_version, share_models
from leadscore.store.schema import leads, scores, shadow_scores

NOW = 1_717_200_000_000
LIST = ", ".join(f"d{i}.example" for i in range(5_000))
BEFORE = (
    "model: m\nfit:\n  - {id: t, name: Title, when: {attribute: job_title, exists: true}, points: 10}\n"
    "engagement:\n  - {id: demo, name: Demo, event: {type: track, name: Demo}, points: 10}\n"
    "scale: {fit_max: 10, engagement_max: 10}\n"
)
# the lead a's domain is the list's last value; b's is in no list
LISTED = (
    f"model: m\nlists:\n  targets: [{LIST}, a.example]\n"
    "fit:\n  - {id: t, name: Target, when: {attribute: email_domain, in_list: targets}, points: 10}\n"
    "engagement:\n  - {id: demo, name: Demo, event: {type: track, name: Demo}, points: 10}\n"
    "scale: {fit_max: 10, engagement_max: 10}\n"
)


def _identify(user: str, domain: str) -> Any:
    return normalise(
        {
            "type": "identify",
            "userId": user,
            "messageId": f"i-{user}",
            "traits": {"email": f"{user}@{domain}"},
        },
        received_ms=NOW,
    )


def _demo(user: str) -> Any:
    return normalise(
        {"type": "track", "userId": user, "event": "Demo", "messageId": f"demo-{user}", "timestamp": NOW},
        received_ms=NOW,
    )


FINISHED: list[str] = []


@pytest.fixture
def while_scoring(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[[], None]]]:
    """Callbacks run once, in a thread of their own, while the publication reads its first scored rows (as
    other writers would run meanwhile); each is waited for up to 20 s, and the publication goes on anyway.
    Each that did not finish by then appends "still waiting" to ``FINISHED``."""
    todo: list[Callable[[], None]] = []
    real = run.read_result
    FINISHED.clear()

    def reading(*args: Any, **kwargs: Any) -> Any:
        while todo:
            job = todo.pop(0)
            worker = threading.Thread(target=job, daemon=True)
            worker.start()
            worker.join(20)
            FINISHED.append("finished" if not worker.is_alive() else "still waiting")
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "read_result", reading)
    yield todo


def test_acknowledgements_and_the_processor_go_through_while_a_model_is_published(
    store: Store, while_scoring: list[Callable[[], None]]
) -> None:
    ingest(store, [_identify("a", "a.example"), _identify("b", "b.example")], source="test")
    first, _ = publish(store, loads_model(BEFORE))
    outcome: dict[str, Any] = {}

    def meanwhile() -> None:
        with store.connect() as conn:  # nothing of the new version is visible yet
            outcome["active"] = active_version(conn).id
            outcome["versions"] = set(conn.execute(select(scores.c.model_version_id)).scalars())
        committer = GroupCommitter(store).start()
        try:  # a /v1/track request's acknowledgement
            outcome["acknowledged"] = committer.submit([event_row(_demo("b"), "api")]).result(timeout=20)
        except Exception as exc:  # on SQLite: "database is locked" after the busy timeout of 10 s
            outcome["acknowledged"] = repr(exc)
        finally:
            committer.stop()
        with store.begin() as conn:  # a processor's turn: it reads the active models to save with them
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            try:
                share_models(conn)
                outcome["processor"] = "went through"
            except Exception as exc:
                outcome["processor"] = type(exc).__name__

    while_scoring.append(meanwhile)
    _, count = publish(store, loads_model(LISTED))
    assert FINISHED == ["finished"]
    assert outcome == {
        "active": first.id,
        "versions": {first.id},
        "acknowledged": {"demo-b"},
        "processor": "went through",
    }
    assert count == 2


def test_what_changes_while_a_model_is_published_is_scored_with_it(
    store: Store, while_scoring: list[Callable[[], None]]
) -> None:
    """a is in the list (10 of 10 fit points); her Demo event (10 of 10 engagement points) is ingested and
    scored with the old version while the new one scores everyone; c arrives meanwhile. Once published,
    every lead's score is of the new version and counts what came meanwhile: a (100 + 100) / 2 = 100,
    b 0, c (0 + 100) / 2 = 50."""
    ingest(store, [_identify("a", "a.example"), _identify("b", "b.example")], source="test")
    first, _ = publish(store, loads_model(BEFORE))
    done: list[str] = []

    def meanwhile() -> None:
        ingest(store, [_demo("a"), _identify("c", "c.example"), _demo("c")], source="test")
        done.append("ingested")

    while_scoring.append(meanwhile)
    second, count = publish(store, loads_model(LISTED))
    assert (done, FINISHED) == (["ingested"], ["finished"])
    with store.connect() as conn:
        users = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
        saved = {
            users[lead_id]: (version, score)
            for lead_id, version, score in conn.execute(
                select(scores.c.lead_id, scores.c.model_version_id, scores.c.score)
            )
        }
    assert saved == {"a": (second.id, 100.0), "b": (second.id, 0.0), "c": (second.id, 50.0)}
    assert count == 3
    # a rollback takes the same path: every lead back on the first version, what came meanwhile counted
    # (a: title none, Demo: (0 + 100) / 2 = 50), whether it came while everyone was scored (b's Demo) or
    # just before the save (d's identify and Demo: scored again in the save's transaction)
    while_scoring.append(lambda: ingest(store, [_demo("b")], source="test"))
    late = [_identify("d", "d.example"), _demo("d")]
    activate_version(
        store, first.id, action="rolled back", before_save=lambda: ingest(store, late, source="test")
    )
    assert FINISHED == ["finished", "finished"]
    with store.connect() as conn:
        users = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
        rolled = {
            users[lead_id]: (version, score)
            for lead_id, version, score in conn.execute(
                select(scores.c.lead_id, scores.c.model_version_id, scores.c.score)
            )
        }
    assert rolled == {
        "a": (first.id, 50.0),
        "b": (first.id, 50.0),
        "c": (first.id, 50.0),
        "d": (first.id, 50.0),
    }


def _writers(store: Store, outcome: dict[str, Any]) -> Callable[[], None]:
    """An acknowledgement of b's Demo (a /v1/track request's: the inbox row) and a processor's step that
    stores a's Demo and rescores her, each recorded in ``outcome``."""

    def meanwhile() -> None:
        committer = GroupCommitter(store).start()
        try:
            outcome["acknowledged"] = committer.submit([event_row(_demo("b"), "api")]).result(timeout=20)
        except Exception as exc:  # on SQLite: "database is locked" after the busy timeout of 10 s
            outcome["acknowledged"] = repr(exc)
        finally:
            committer.stop()
        try:
            ingest(store, [_demo("a")], source="test")
            outcome["processor"] = "went through"
        except Exception as exc:
            outcome["processor"] = repr(exc)

    return meanwhile


def _saved(store: Store, table: Any = scores) -> dict[str, tuple[int, float]]:
    with store.connect() as conn:
        users = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
        rows = conn.execute(select(table.c.lead_id, table.c.model_version_id, table.c.score))
        return {users[lead_id]: (version, score) for lead_id, version, score in rows}


def test_writers_go_through_while_every_lead_is_rescored_and_what_they_wrote_counts(
    store: Store, while_scoring: list[Callable[[], None]]
) -> None:
    """``rescore_all`` held the write lock (SQLite) while it scored; on PostgreSQL it saved a's score as
    read before her Demo over the processor's. a is in the list (10 of 10 fit points): 50 before her Demo
    and (100 + 100) / 2 = 100 with it; b's Demo is only acknowledged (not processed): 0."""
    ingest(store, [_identify("a", "a.example"), _identify("b", "b.example")], source="test")
    listed, _ = publish(store, loads_model(LISTED))
    assert _saved(store) == {"a": (listed.id, 50.0), "b": (listed.id, 0.0)}
    outcome: dict[str, Any] = {}
    while_scoring.append(_writers(store, outcome))
    ledgers = rescore_all(store)
    assert FINISHED == ["finished"]
    assert outcome == {"acknowledged": {"demo-b"}, "processor": "went through"}
    assert _saved(store) == {"a": (listed.id, 100.0), "b": (listed.id, 0.0)}
    assert sorted(lg.score for lg in ledgers) == [0.0, 100.0]


def test_a_version_published_while_every_lead_is_rescored_is_not_undone(
    store: Store, while_scoring: list[Callable[[], None]]
) -> None:
    """A publication during the rescoring goes through, and the rescoring saves every lead with the
    version it activated, not the one it read first: with BEFORE neither a (no title, no Demo) nor b
    scores, 0; with LISTED a would be 50."""
    ingest(store, [_identify("a", "a.example"), _identify("b", "b.example")], source="test")
    publish(store, loads_model(LISTED))
    published: list[int] = []
    while_scoring.append(lambda: published.append(publish(store, loads_model(BEFORE))[0].id))
    rescore_all(store)
    assert FINISHED == ["finished"]
    (before,) = published
    assert _saved(store) == {"a": (before, 0.0), "b": (before, 0.0)}


def test_writers_go_through_while_a_shadow_is_published_and_what_they_wrote_counts(
    store: Store, while_scoring: list[Callable[[], None]]
) -> None:
    """Scoring every lead in shadow held the write lock (SQLite); on PostgreSQL the shadow scores were of
    the snapshot before a's Demo (the processor did not score the shadow, not yet committed). With LISTED
    in shadow: a (100 + 100) / 2 = 100 with her Demo, b 0; the active BEFORE: a (0 + 100) / 2 = 50."""
    ingest(store, [_identify("a", "a.example"), _identify("b", "b.example")], source="test")
    active, _ = publish(store, loads_model(BEFORE))
    outcome: dict[str, Any] = {}
    while_scoring.append(_writers(store, outcome))
    shadow, count = publish_shadow(store, loads_model(LISTED))
    assert FINISHED == ["finished"]
    assert outcome == {"acknowledged": {"demo-b"}, "processor": "went through"}
    assert _saved(store, shadow_scores) == {"a": (shadow.id, 100.0), "b": (shadow.id, 0.0)}
    assert _saved(store) == {"a": (active.id, 50.0), "b": (active.id, 0.0)}
    assert count == 2


@pytest.mark.parametrize("work", ["rescore", "shadow"])
def test_a_processor_batch_committing_during_the_save_of_a_full_rescoring_counts(
    store: Store, monkeypatch: pytest.MonkeyPatch, work: str
) -> None:
    """``rescore_all`` (or a shadow's publication) has scored everyone, a without her Demo, when a processor
    batch scores a's Demo; the batch has not committed when the rescoring saves. The save waits for the
    batches under way and then scores the leads they changed, as a publication's save does: a (0 fit + 10
    of 10 engagement points) = (0 + 100) / 2 = 50, b 0; with LISTED in shadow a (100 + 100) / 2 = 100, b 0.
    Before, on PostgreSQL, the rescoring's save shared the models lock with the batch and failed once the
    batch committed ("duplicate key" on a's score row), and the shadow's took no lock and saved a's shadow
    score without her Demo (50).

    SQLite has one writer at a time: the batch commits before the save (the only order SQLite allows),
    and the test passes trivially there."""
    from leadscore.scoring import pipeline, processor, shadow

    ingest(store, [_identify("a", "a.example"), _identify("b", "b.example")], source="test")
    active, _ = publish(store, loads_model(BEFORE))
    with store.begin() as conn:
        enqueue(conn, [event_row(_demo("a"), "api")])
    held, go, pid = threading.Event(), threading.Event(), []
    batch = threading.Thread(target=processor.process_pending, args=(store,))
    module = pipeline if work == "rescore" else shadow
    real_release, real_pass = processor.release, module.run_pass

    def holding(conn: Any, claimed: Any) -> Any:  # the batch, a's Demo scored, just before it commits
        if conn.dialect.name == "postgresql":
            pid.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            held.set()
            assert go.wait(30), "the save never came"
        return real_release(conn, claimed)

    def batch_before_save() -> None:
        batch.start()
        if store.dialect == "postgresql":
            assert held.wait(30), "the processor's batch never scored a's Demo"
            threading.Thread(target=_let_go_once_waited_for, args=(store, pid[0], go), daemon=True).start()
        else:
            batch.join(30)

    def passing(store_: Store, work: Any, *, before_save: Any = None) -> Any:
        return real_pass(store_, work, before_save=batch_before_save)

    monkeypatch.setattr(processor, "release", holding)
    monkeypatch.setattr(module, "run_pass", passing)
    if work == "rescore":
        rescore_all(store)
    else:
        candidate, _ = publish_shadow(store, loads_model(LISTED))
    go.set()
    batch.join(30)
    assert not batch.is_alive()
    assert _saved(store) == {"a": (active.id, 50.0), "b": (active.id, 0.0)}
    if work == "shadow":
        assert _saved(store, shadow_scores) == {"a": (candidate.id, 100.0), "b": (candidate.id, 0.0)}


def _let_go_once_waited_for(store: Store, pid: int, go: threading.Event) -> None:
    """Set ``go`` once some backend waits for the one ``pid`` (a lock it holds), or after 30 s."""
    blocked = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    with store.connect() as conn:
        for _ in range(600):
            if conn.execute(blocked, {"pid": pid}).scalar_one():
                break
            conn.rollback()
            time.sleep(0.05)
    go.set()

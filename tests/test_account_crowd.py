"""An account-scope rule in an account of more people than ``pipeline.COLLEAGUES_NOW``: a colleague's
event rescores the person whose event it is at once, and leaves the others due for the clock's next tick,
so a batch's work does not grow with the square of an account a write key can fill (ws-hostile2 measured
4,000 people: 20 page views took 46 s and every other lead's scoring waited)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.ingest.apply import Applied
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import load_model
from leadscore.scoring import pipeline
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import score_history, scores

NOW = parse_time("2024-06-01T00:00:00Z", "now")
DAY = 86_400_000
# 40 points to every lead of an account where two or more people probed within 30 days
COMMITTEE = Path(__file__).resolve().parent / "models" / "committee.yaml"
PEOPLE = ("ann", "bob", "carl", "dan")
# the four in y.com; Ann and Bob probed (two people: 40 for all four)
PROBED = [
    *({"type": "group", "userId": p, "groupId": "y", "messageId": f"{p}2", "timestamp": NOW - 3 * DAY,
       "traits": {"domain": "y.com"}} for p in PEOPLE),
    {"type": "track", "userId": "ann", "event": "Probe", "messageId": "a3", "timestamp": NOW - 2 * DAY},
    {"type": "track", "userId": "bob", "event": "Probe", "messageId": "b3", "timestamp": NOW - DAY},
]  # fmt: skip


def _ingest(store: Store, messages: list[dict[str, Any]]) -> None:
    ingest(store, [normalise(m, received_ms=NOW) for m in messages], source="test", as_of=NOW)


def _stored(store: Store) -> dict[str, tuple[float, int | None]]:
    with store.connect() as conn:
        ids = {find_lead(conn, external_id=p): p for p in PEOPLE}
        rows = conn.execute(select(scores.c.lead_id, scores.c.score, scores.c.due_ms)).all()
    return {ids[lead]: (score, due) for lead, score, due in rows}


def test_a_crowded_accounts_colleagues_are_rescored_by_the_next_tick(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann, Bob, Carl and Dan of y.com (three colleagues each, above a limit of 2). Ann probed two days
    ago: one person, 0 for all. Bob probes yesterday: Bob, whose event it is, is scored at once (two
    people: 40); Ann, Carl and Dan keep 0, due at Bob's event, and the tick at now gives them 40, with a
    history row of cause ``time``."""
    monkeypatch.setattr(pipeline, "COLLEAGUES_NOW", 2)
    publish(store, load_model(COMMITTEE), as_of=NOW)
    _ingest(store, [
        *({"type": "identify", "userId": p, "messageId": f"{p}1", "timestamp": NOW - 3 * DAY,
           "traits": {"email": f"{p}@y.com"}} for p in PEOPLE),
        *({"type": "group", "userId": p, "groupId": "y", "messageId": f"{p}2", "timestamp": NOW - 3 * DAY,
           "traits": {"domain": "y.com"}} for p in PEOPLE),
        {"type": "track", "userId": "ann", "event": "Probe", "messageId": "a3", "timestamp": NOW - 2 * DAY},
    ])  # fmt: skip
    assert {p: s for p, (s, _) in _stored(store).items()} == dict.fromkeys(PEOPLE, 0.0)
    _ingest(store, [{"type": "track", "userId": "bob", "event": "Probe", "messageId": "b3",
                     "timestamp": NOW - DAY}])  # fmt: skip
    after = _stored(store)
    assert after["bob"][0] == 40.0
    for p in ("ann", "carl", "dan"):
        score, due = after[p]
        assert score == 0.0 and due is not None and due <= NOW, (p, score, due)
    stats = tick(store, now=NOW)
    assert stats.leads == 3
    assert {p: s for p, (s, _) in _stored(store).items()} == dict.fromkeys(PEOPLE, 40.0)
    with store.connect() as conn:
        ann = find_lead(conn, external_id="ann")
        last = conn.execute(
            select(score_history.c.score, score_history.c.cause, score_history.c.at_ms)
            .where(score_history.c.lead_id == ann)
            .order_by(score_history.c.id.desc())
            .limit(1)
        ).one()
    assert tuple(last) == (40.0, "time", NOW)


def test_a_small_accounts_colleagues_are_rescored_with_the_batch(store: Store) -> None:
    """The same four people under the default limit (200): Bob's probe gives all four 40 at once."""
    publish(store, load_model(COMMITTEE), as_of=NOW)
    _ingest(store, PROBED)
    assert {p: s for p, (s, _) in _stored(store).items()} == dict.fromkeys(PEOPLE, 40.0)


def test_the_colleagues_a_lead_leaves_in_a_crowded_account_are_rescored_by_the_next_tick(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann and Bob of y.com probed (two people: 40 for all four). Ann's group call moves her to z.com half
    a day ago: her probe leaves y.com, so Bob, Carl and Dan would fall to 0 (one person). With three
    colleagues left (above a limit of 2) only Ann, whose message it is, is rescored with the batch (alone
    in z.com: 0); the three keep 40, due at the move, and the tick at now gives them 0. Before, every
    colleague a lead left was rescored with its whole history in the batch, however many: two group calls
    moving one person out of an account of 1,600 and back took 3.3 CPU-s, growing with the square of it."""
    monkeypatch.setattr(pipeline, "COLLEAGUES_NOW", 2)
    publish(store, load_model(COMMITTEE), as_of=NOW)
    _ingest(store, PROBED)
    tick(store, now=NOW)  # the crowd's colleagues of the probes, due at them
    assert {p: s for p, (s, _) in _stored(store).items()} == dict.fromkeys(PEOPLE, 40.0)
    moved = normalise({"type": "group", "userId": "ann", "groupId": "z", "messageId": "a4",
                       "timestamp": NOW - DAY // 2, "traits": {"domain": "z.com"}}, received_ms=NOW)  # fmt: skip
    report = ingest(store, [moved], source="test", as_of=NOW)
    assert report.leads_rescored == 1
    after = _stored(store)
    assert after["ann"][0] == 0.0
    for p in ("bob", "carl", "dan"):
        score, due = after[p]
        assert score == 40.0 and due is not None and due <= NOW - DAY // 2, (p, score, due)
    stats = tick(store, now=NOW)
    assert stats.leads == 3
    assert {p: s for p, (s, _) in _stored(store).items()} == dict.fromkeys(PEOPLE, 0.0)


def test_a_batch_of_a_crowds_people_reads_each_account_once(store: Store) -> None:
    """600 people of one account (a crowd: more than 200 colleagues each), 300 of them touched by a batch.
    The colleagues are found per account, not per person: 300 x 599 (person, colleague) pairs would be
    179,700 tuples of at least 56 bytes, over 9.5 MiB, where the account's 600 ids take a few KiB; so the
    batch's plan stays under 8 MiB of Python memory at its peak. Before, it built the pairs (2,000 people:
    1.68 CPU-s and 112 MiB a batch of 500 probes, growing with the account)."""
    publish(store, load_model(COMMITTEE), as_of=NOW)
    _ingest(store, [{"type": "group", "userId": f"p{i}", "groupId": "y", "messageId": f"g{i}",
                     "timestamp": NOW - DAY, "traits": {"domain": "y.com"}} for i in range(600)])  # fmt: skip
    with store.connect() as conn:
        ids = sorted(find_lead(conn, external_id=f"p{i}") for i in range(300))  # type: ignore[type-var]
    applied = Applied(
        touched=dict.fromkeys(ids, NOW), since=dict.fromkeys(ids, NOW), causes={i: ["m"] for i in ids}
    )
    with store.begin() as conn:
        tracemalloc.start()
        try:
            plan = pipeline.plan_rescore(conn, store.sources(), applied, NOW)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert plan is not None and sorted(plan.everyone) == ids  # the touched, scored now
    assert len(plan.later) == 300  # the other 300, due for the clock
    assert peak < 8 * 1024 * 1024, peak

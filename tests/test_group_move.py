"""A ``group`` call that moves a lead to another account takes its events out of the old account: the
colleagues it leaves are rescored at once (account-scope rules), as an alias merge does
(``people.colleagues_left``), in real time (``pipeline.ingest``, the processor) and in a backfill, on
SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import Message, normalise
from leadscore.model import loads_model
from leadscore.scoring.pipeline import Backfill, ingest, publish
from leadscore.scoring.processor import process_pending
from leadscore.store import Store
from leadscore.store.event_log import enqueue
from leadscore.store.people import resolve_lead_ref
from leadscore.store.results import read_current, read_history

# 40 points to every lead of an account where two or more people probed within 30 days, else 0
MODEL = """
model: group-move
engagement:
  - {id: team, name: 2+ people of the account, kind: threshold, scope: account, event: {type: track, name: Probe},
     count: {distinct: person}, at_least: 2, within: 30d, points: 40}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""
MINUTE = 60_000
NOW = int(time.time() * 1000) // MINUTE * MINUTE  # the processor scores as of the clock


def message(n: int, **fields: Any) -> Message:
    at = NOW - (60 - n) * MINUTE
    return normalise({"messageId": f"m-{n}", "timestamp": at, **fields}, received_ms=at)


# bob and carl of y.com probed, dave of x.com probed: y.com has two people (40 each), x.com one (0)
BEFORE = [
    message(1, type="identify", userId="bob", traits={"email": "bob@y.com"}),
    message(2, type="identify", userId="carl", traits={"email": "carl@y.com"}),
    message(3, type="identify", userId="dave", traits={"email": "dave@x.com"}),
    message(4, type="group", userId="bob", groupId="y", traits={"domain": "y.com"}),
    message(5, type="group", userId="carl", groupId="y", traits={"domain": "y.com"}),
    message(6, type="group", userId="dave", groupId="x", traits={"domain": "x.com"}),
    message(7, type="track", userId="bob", event="Probe"),
    message(8, type="track", userId="carl", event="Probe"),
    message(9, type="track", userId="dave", event="Probe"),
]
# bob joins x.com: y.com is carl alone (0), x.com is bob and dave (40 each)
MOVE = [message(10, type="group", userId="bob", groupId="x", traits={"domain": "x.com"})]


def _realtime(store: Store, messages: Sequence[Message]) -> None:
    ingest(store, messages, source="test", as_of=NOW)


def _processor(store: Store, messages: Sequence[Message]) -> None:
    with store.begin() as conn:
        enqueue(conn, [event_row(m, "api") for m in messages])
    taken = sum(iter(lambda: process_pending(store), 0))  # until the inbox is empty
    assert taken == len(messages)


def _backfill(store: Store, messages: Sequence[Message]) -> None:
    run = Backfill(store, source="import", cause_ref="import")
    run.add(messages)
    run.finish()


PATHS = {"real time": _realtime, "processor": _processor, "backfill": _backfill}


def _scores(store: Store) -> dict[str, float]:
    out = {}
    with store.connect() as conn:
        for who in ("bob", "carl", "dave"):
            current, _ = read_current(conn, resolve_lead_ref(conn, who))
            assert current is not None
            out[who] = current["score"]
    return out


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_group_move_rescores_the_colleagues_it_leaves_at_once(store: Store, path: str) -> None:
    publish(store, loads_model(MODEL), as_of=NOW)
    _realtime(store, BEFORE)
    assert _scores(store) == {"bob": 40.0, "carl": 40.0, "dave": 0.0}
    PATHS[path](store, MOVE)
    assert _scores(store) == {"bob": 40.0, "carl": 0.0, "dave": 40.0}
    with store.connect() as conn:
        carl = resolve_lead_ref(conn, "carl")
        newest = read_history(conn, carl)[-1]
    # carl's history agrees with his score: the account is read as it is now, so it never counted bob
    assert newest["score"] == pytest.approx(0.0)


def test_a_group_call_naming_the_same_account_again_moves_no_one(store: Store) -> None:
    """bob's second y.com group call leaves him where he was: carl keeps his 40."""
    publish(store, loads_model(MODEL), as_of=NOW)
    _realtime(store, BEFORE)
    _realtime(store, [message(11, type="group", userId="bob", groupId="y", traits={"domain": "y.com"})])
    assert _scores(store) == {"bob": 40.0, "carl": 40.0, "dave": 0.0}


# 10 points a probe of the lead's own: no rule reads the account's events
OWN_MODEL = """
model: own-events
engagement:
  - {id: probe, name: Probe, event: {type: track, name: Probe}, points: 10}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""


@pytest.mark.parametrize(("model", "rescored"), [(OWN_MODEL, 1), (MODEL, 3)])
def test_only_a_model_reading_the_account_rescores_the_colleagues_left(
    store: Store, model: str, rescored: int
) -> None:
    """bob's move out of y.com rescores bob alone for a model of the lead's own events (carl's score owes
    bob nothing), and bob, dave (his new colleague) and carl (left behind) for the account model, in real
    time and in a backfill."""
    publish(store, loads_model(model), as_of=NOW)
    _realtime(store, BEFORE)
    before = _scores(store)
    report = ingest(store, MOVE, source="test", as_of=NOW)
    assert report.leads_rescored == rescored
    back = [message(12, type="group", userId="bob", groupId="y", traits={"domain": "y.com"})]
    run = Backfill(store, source="import", cause_ref="import")
    run.add(back)  # bob back to y.com: carl and bob colleagues again, dave left behind
    assert run.finish()[0] == rescored
    assert _scores(store) == before

"""PostHog ``$set_once`` in event-time order, whatever order the events arrive in, on SQLite and
PostgreSQL (``ingest.set_once``). A set-once sets a person property only where the person has no value
for it at the event's time: a property removed by ``$unset`` has none, so a set-once after the removal
fills it, one before it does not. That is what PostHog does with events that arrive in order (its
``$set_once`` writes a key absent from the person's properties). leadscore decided it from the lead as
it stood when the event arrived, so a late event changed what an earlier-arrived set-once had done or
not done, and the lead depended on the arrival order: a removal arriving after a later set-once left the
property empty (the set-once had found the value it removes), a set-once arriving after a later one won
nothing though it came first, a ``$set`` arriving after a later set-once lost to it.

Each case: one person's ``plan`` events (minute, operation, value), every arrival order (one request
each); the value hand-computed by applying them in time order:

=================================  ============================================================  =====
case                               in time order                                                 plan
=================================  ============================================================  =====
set-once after the removal         0 set A; 2 unset; 3 set-once B (absent: fills)                B
set-once before the removal        0 set A; 1 set-once B (A there: nothing); 2 unset             none
two set-onces after a removal      1 unset; 2 set-once C (fills); 3 set-once B (C there)         C
a set before a set-once            1 set A; 3 set-once B (A there)                               A
=================================  ============================================================  =====
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.ingest.apply import apply_messages
from leadscore.ingest.posthog import to_segment
from leadscore.ingest.segment import normalise
from leadscore.store import Store
from leadscore.store.event_log import waiting_events
from leadscore.store.schema import leads
from live_server import tracking
from test_api_tracking import MODEL, wait_until

posthog = pytest.importorskip("posthog", reason="posthog (posthog-python) is not installed")
T = 1_717_200_000_000
MINUTE = 60_000
CASES: dict[str, tuple[list[tuple[int, str, str | None]], str | None]] = {
    "set-once after the removal": ([(0, "$set", "A"), (2, "$unset", None), (3, "$set_once", "B")], "B"),
    "set-once before the removal": ([(0, "$set", "A"), (1, "$set_once", "B"), (2, "$unset", None)], None),
    "two set-onces after a removal": (
        [(1, "$unset", None), (2, "$set_once", "C"), (3, "$set_once", "B")],
        "C",
    ),
    "a set before a set-once": ([(1, "$set", "A"), (3, "$set_once", "B")], "A"),
}


def _event(person: str, minute: int, operation: str, value: str | None) -> dict[str, Any]:
    said: Any = ["plan"] if operation == "$unset" else {"plan": value}
    return {"event": "$set", "distinct_id": person, "uuid": f"{person}-{minute}",
            "timestamp": T + minute * MINUTE, "properties": {operation: said}}  # fmt: skip


def _plan(store: Store, person: str) -> Any:
    with store.connect() as conn:
        (attributes,) = conn.execute(
            select(leads.c.attributes).where(leads.c.external_id == person)
        ).scalars()
    return attributes.get("plan")


@pytest.mark.parametrize("case", list(CASES))
def test_set_once_as_in_event_time_order_whatever_the_arrival_order(store: Store, case: str) -> None:
    sent, expected = CASES[case]
    found = {}
    for order in itertools.permutations(range(len(sent))):
        person = "kim-" + "".join(map(str, order))  # one person per arrival order
        for i in order:
            with store.begin() as conn:
                messages = [
                    normalise(m, received_ms=T + 10 * MINUTE) for m in to_segment(_event(person, *sent[i]))
                ]
                apply_messages(conn, messages, "api")
        found[order] = _plan(store, person)
    assert found == dict.fromkeys(found, expected)


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    with tracking(store, MODEL, "product") as (url, write):
        yield url, write, store


def test_posthog_python_set_once_after_a_removal_that_arrives_late(api: tuple[str, str, Store]) -> None:
    """The first case sent by posthog-python, unchanged: ``set`` A and ``set_once`` B (minutes 0 and 3)
    in one flush, the ``$unset`` of minute 2 in a later one (a retried request, a server's backfill): B."""
    url, write, store = api
    start = datetime.now(UTC) - timedelta(hours=1)

    def drained() -> bool:
        with store.connect() as conn:
            return waiting_events(conn) == 0

    def uid(name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))

    client = posthog.Posthog(write, host=url)
    client.set(distinct_id="kim", properties={"plan": "A"}, timestamp=start, uuid=uid("s0"))
    client.set_once(distinct_id="kim", properties={"plan": "B"}, timestamp=start + timedelta(minutes=3),
                    uuid=uid("s3"))  # fmt: skip
    client.flush(timeout_seconds=180)
    assert wait_until(drained)
    client.capture("$set", distinct_id="kim", properties={"$unset": ["plan"]}, timestamp=start + timedelta(minutes=2),
                   uuid=uid("s2"))  # fmt: skip
    client.flush(timeout_seconds=180)
    client.shutdown()
    assert wait_until(drained)
    assert _plan(store, "kim") == "B"

"""Person properties across a merge of two PostHog people (``$create_alias``, ``$identify`` with
``$anon_distinct_id``, ``$merge_dangerously``: two leads become one, ``store.lead_merge``), on SQLite and
PostgreSQL. leadscore's rule (docs/ingest.md, "Person properties"): per property, the latest observation
by event time wins over both people, a removal (``$unset``) being an observation, whatever order the
events arrive in. It held for attributes, not for the name fields (``first_name``, ``last_name``,
``company``): a name the merged-away lead removed came back from the surviving lead's older value, and a
name the surviving lead removed came back from the other's older value, and which one showed depended on
the arrival order.

Hand-computed, minutes after ``T``; ``old`` merged into ``new`` at 3 (``posthog.alias('new', 'old')``
in posthog-python sends distinct id ``new``, alias ``old``):

============  =======================================  =========================  =====================
case          ``old``                                  ``new``                    after the merge
============  =======================================  =========================  =====================
merged away   0: Kim, title A; 2: ``$unset`` both      1: Kimberly, title B       no name, no title
survivor      1: Kimberly, title B                     0: Kim, title A; 2: unset  no name, no title
set again     0: Kim, title A; 1: ``$unset`` both      2: Kimberly, title B       Kimberly, title B
============  =======================================  =========================  =====================

A ``$set_once`` across a merge: one person from the merge on, so a set-once finds a value either person
had at its time (``ingest.set_once`` folds both people's identifies after the merge).
"""

from __future__ import annotations

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
SET_A, SET_B = {"first_name": "Kim", "job_title": "A"}, {"first_name": "Kimberly", "job_title": "B"}
UNSET = ["first_name", "job_title"]
# case → (old's person events, new's person events) as (minute, $set, $unset); expected (name, attributes)
CASES: dict[str, tuple[list[Any], list[Any], tuple[str | None, dict[str, Any]]]] = {
    "merged away": ([(0, SET_A, None), (2, None, UNSET)], [(1, SET_B, None)], (None, {})),
    "survivor": ([(1, SET_B, None)], [(0, SET_A, None), (2, None, UNSET)], (None, {})),
    "set again": ([(0, SET_A, None), (1, None, UNSET)], [(2, SET_B, None)], ("Kimberly", {"job_title": "B"})),
}


def _event(person: str, minute: int, set_: Any, unset: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {"$set": set_} if set_ else {"$unset": unset}
    return {"event": "$set", "distinct_id": person, "uuid": f"{person}-{minute}", "timestamp": T + minute * MINUTE,
            "properties": properties}  # fmt: skip


def _merged(store: Store) -> tuple[str | None, dict[str, Any]]:
    with store.connect() as conn:
        ((first_name, attributes),) = conn.execute(select(leads.c.first_name, leads.c.attributes)).all()
    return first_name, attributes


@pytest.mark.parametrize("order", ["in order", "reversed"])
@pytest.mark.parametrize("case", list(CASES))
def test_person_properties_across_a_merge(store: Store, case: str, order: str) -> None:
    old, new, expected = CASES[case]
    alias = {"event": "$create_alias", "distinct_id": "new", "uuid": "merge", "timestamp": T + 3 * MINUTE,
             "properties": {"alias": "old"}}  # fmt: skip
    events = [*(_event("old", *e) for e in old), *(_event("new", *e) for e in new)]
    events = [*sorted(events, key=lambda e: e["timestamp"]), alias]
    for event in events if order == "in order" else events[::-1]:  # one batch each, in arrival order
        with store.begin() as conn:
            apply_messages(
                conn, [normalise(m, received_ms=T + 10 * MINUTE) for m in to_segment(event)], "api"
            )
    assert _merged(store) == expected


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    with tracking(store, MODEL, "product") as (url, write):
        yield url, write, store


def test_posthog_python_merge_keeps_a_name_removed_later(api: tuple[str, str, Store]) -> None:
    """The "merged away" case sent by posthog-python, unchanged: ``set``, ``capture`` with ``$unset``
    and ``alias`` (previous id ``new``, the surviving person, alias ``old``)."""
    url, write, store = api
    start = datetime.now(UTC) - timedelta(hours=1)
    client = posthog.Posthog(write, host=url)

    def at(minute: int) -> datetime:
        return start + timedelta(minutes=minute)

    def uid(name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))

    client.set(distinct_id="old", properties=SET_A, timestamp=at(0), uuid=uid("m0"))
    client.set(distinct_id="new", properties=SET_B, timestamp=at(1), uuid=uid("m1"))
    client.capture("$set", distinct_id="old", properties={"$unset": UNSET}, timestamp=at(2), uuid=uid("m2"))
    client.alias(previous_id="new", distinct_id="old", timestamp=at(3), uuid=uid("m3"))
    client.flush(timeout_seconds=180)
    client.shutdown()

    def drained() -> bool:
        with store.connect() as conn:
            return waiting_events(conn) == 0 and len(conn.execute(select(leads.c.id)).all()) == 1

    assert wait_until(drained)
    assert _merged(store) == (None, {})


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_a_set_once_of_the_identify_that_merges_finds_the_other_persons_value(
    store: Store, order: str
) -> None:
    """A server library's anonymous distinct id ``srv-1`` (a lead of its own) says ``$set_once`` source
    ads at minute 0; kim's ``$identify`` with ``$anon_distinct_id`` ``srv-1`` at 2 says ``$set_once``
    source seo. One person from then on, with a value at 2: the identify's set-once does nothing, as in
    PostHog (which merges, then applies the event's ``$set_once``). It read seo: the identify's set-once
    filled kim's own lead before the alias merged the two, and the later stamp won the merge."""
    first = {"event": "$set_once", "distinct_id": "srv-1", "uuid": "o-0", "timestamp": T,
             "properties": {"$set_once": {"source": "ads"}}}  # fmt: skip
    identify = {"event": "$identify", "distinct_id": "kim", "uuid": "o-2", "timestamp": T + 2 * MINUTE,
                "properties": {"$anon_distinct_id": "srv-1", "$set_once": {"source": "seo"}}}  # fmt: skip
    for event in [first, identify] if order == "in order" else [identify, first]:
        with store.begin() as conn:
            apply_messages(
                conn, [normalise(m, received_ms=T + 10 * MINUTE) for m in to_segment(event)], "api"
            )
    with store.connect() as conn:
        (attributes,) = conn.execute(select(leads.c.attributes)).scalars().all()
    assert attributes == {"source": "ads"}


def test_merge_dangerously_merges_the_two_people(store: Store) -> None:
    """``$merge_dangerously`` (``properties.alias`` the other person) makes the two leads one, as
    ``$create_alias`` does: it was stored as an event named ``$merge_dangerously`` and merged no one."""
    events = [_event("old", 0, SET_A, None), _event("new", 1, SET_B, None),
              {"event": "$merge_dangerously", "distinct_id": "new", "uuid": "merge", "timestamp": T + 3 * MINUTE,
               "properties": {"alias": "old"}}]  # fmt: skip
    for event in events:
        with store.begin() as conn:
            apply_messages(
                conn, [normalise(m, received_ms=T + 10 * MINUTE) for m in to_segment(event)], "api"
            )
    assert _merged(store) == ("Kimberly", {"job_title": "B"})

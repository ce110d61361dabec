"""PostHog ``$unset`` (person properties removed: ``properties.$unset``, a list of keys, or an object whose
keys are) removes the lead's attributes, on SQLite and PostgreSQL: a removed ``job_title`` no longer
matches the title rule. It was ignored, and the lead kept scoring a title it no longer had.

As known over time (``scoring.as_known.Known``): an attribute removed at ``t`` is unknown from ``t`` on,
as one set at ``t`` is known from ``t`` on; before ``t`` it has the value set before. A removal is an
observation like a value: the latest by event time wins whatever order they arrive in.

Model: fit only (``fit_max`` 100, weights fit 1 engagement 0): marketing title 60 + 50+ employees 40.
Hand-computed, ``T`` three hours ago:

=========  ===============================================  ==============  =====
time       event                                            known           score
=========  ===============================================  ==============  =====
T          ``$identify`` ``$set`` job_title, employees 100  title, 100      100
T + 60'    Demo Requested                                   title, 100      100
T + 120'   ``$set`` event, ``$unset: ["job_title"]``        100             40
T + 150'   Demo Requested                                   100             40
=========  ===============================================  ==============  =====
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from leadscore.errors import MessageError
from leadscore.ingest.apply import apply_messages
from leadscore.ingest.posthog import as_sent, to_segment
from leadscore.ingest.segment import normalise
from leadscore.scoring.as_known import Known
from leadscore.store import Store
from leadscore.store.results import read_current, read_history
from leadscore.store.schema import leads
from live_server import tracking
from test_api_tracking import _drained, wait_until

MODEL = """
model: unset
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
  - {id: big, name: 50+ employees, when: {attribute: employees, gte: 50}, points: 40}
engagement:
  - {id: demo, name: Demo request, event: {type: track, name: Demo Requested}, points: 50}
scale: {fit_max: 100, weights: {fit: 1, engagement: 0}, bands: {hot: 70, warm: 30}}
"""
MINUTE = 60_000


def test_unset_is_mapped_to_the_identify_of_its_event() -> None:
    """``$unset`` beside ``$set`` (``$identify``, a ``$set`` event, any event with person properties), as a
    list or an object, at the top (posthog-js) or in the properties (posthog-python)."""
    identify = {
        "event": "$identify",
        "distinct_id": "u",
        "properties": {"$set": {"a": 1}, "$unset": ["jobTitle"]},
    }
    (message,) = to_segment(identify)
    assert message["type"] == "identify" and message["traits"] == {"a": 1}
    assert message["context"] == {"traits_unset": ["jobTitle"]}
    set_event = {
        "event": "$set",
        "distinct_id": "u",
        "$unset": {"job_title": None, "plan": None},
        "properties": {},
    }
    assert to_segment(set_event)[0]["context"] == {"traits_unset": ["job_title", "plan"]}
    other = {"event": "Demo Requested", "distinct_id": "u", "uuid": "e1", "properties": {"$unset": ["plan"]}}
    track, person = to_segment(other)
    assert track["type"] == "track" and "$unset" not in track["properties"]
    assert person["type"] == "identify" and person["context"] == {"traits_unset": ["plan"]}
    # PostHog keeps no person for the event: nothing is removed
    personless = {
        "event": "$set",
        "distinct_id": "u",
        "properties": {"$unset": ["plan"], "$process_person_profile": False},
    }
    assert [m["type"] for m in to_segment(personless)] == ["track"]
    for bad, field in (
        ("job_title", "properties.$unset"),
        ([1], "properties.$unset[0]"),
        ([""], "properties.$unset[0]"),
    ):
        event = {"event": "$set", "distinct_id": "u", "properties": {"$unset": bad}}
        with pytest.raises(MessageError) as refused:
            for m in to_segment(event):
                normalise(m, received_ms=0)
        assert as_sent(refused.value, event).problem.field == field  # as the client sent it


def _identify(ts: int, message_id: str, traits: dict[str, Any], unset: list[str] | None = None) -> Any:
    raw: dict[str, Any] = {
        "type": "identify",
        "userId": "k",
        "messageId": message_id,
        "timestamp": ts,
        "traits": traits,
    }
    if unset is not None:
        raw["context"] = {"traits_unset": unset}
    return normalise(raw, received_ms=ts + 1)


T = 1_717_200_000_000


@pytest.mark.parametrize("order", ["in order", "removal first"])
def test_a_removed_attribute_is_unknown_from_its_removal_on(store: Store, order: str) -> None:
    """job_title set at T, removed at T+2', set again at T+4' (another title); employees set at T. Known at
    T-1: nothing; T: title A; T+1': A; T+2': none; T+3': none; T+4': title B. Now: B (the latest). The
    removal alone (no later set): unknown now. The same whichever order the messages are applied in."""
    set_a = _identify(T, "k1", {"jobTitle": "Marketing A", "employees": 100})
    removed = _identify(T + 2 * MINUTE, "k2", {}, ["jobTitle"])
    set_b = _identify(T + 4 * MINUTE, "k3", {"jobTitle": "Marketing B"})
    for m in [set_a, removed] if order == "in order" else [removed, set_a]:
        with store.begin() as conn:
            apply_messages(conn, [m], "api")
    times = [T - 1, T, T + MINUTE, T + 2 * MINUTE, T + 3 * MINUTE]
    with store.connect() as conn:
        ((lead_id, attributes),) = conn.execute(select(leads.c.id, leads.c.attributes)).all()
        known = Known(conn, [lead_id]).over_time(lead_id, times)
    assert attributes == {"employees": 100}
    assert [k.get("job_title") for k in known] == [None, "Marketing A", "Marketing A", None, None]
    assert [k.get("employees") for k in known] == [None, 100, 100, 100, 100]
    with store.begin() as conn:
        apply_messages(conn, [set_b], "api")
    with store.connect() as conn:
        (attributes,) = conn.execute(select(leads.c.attributes)).scalars().all()
        known = Known(conn, [lead_id]).over_time(lead_id, [*times, T + 4 * MINUTE])
    assert attributes == {"employees": 100, "job_title": "Marketing B"}
    assert [k.get("job_title") for k in known] == [
        None,
        "Marketing A",
        "Marketing A",
        None,
        None,
        "Marketing B",
    ]


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    with tracking(store, MODEL, "product") as (url, write):
        yield url, write, store


@pytest.mark.parametrize("order", ["in order", "removal first"])
def test_a_lead_whose_job_title_is_unset_stops_scoring_the_title_rule(
    api: tuple[str, str, Store], order: str
) -> None:
    url, write, store = api
    t = (int(time.time()) - 180 * 60) * 1000  # whole seconds, as the events are dated

    def at(minutes: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t + minutes * MINUTE) / 1000)) + ".000Z"

    first = [
        {"event": "$identify", "distinct_id": "kim", "uuid": "u-0", "timestamp": at(0),
         "properties": {"$set": {"job_title": "Marketing Manager", "employees": 100}}},
        {"event": "Demo Requested", "distinct_id": "kim", "uuid": "u-1", "timestamp": at(60), "properties": {}},
    ]  # fmt: skip
    second = [
        {"event": "$set", "distinct_id": "kim", "uuid": "u-2", "timestamp": at(120),
         "properties": {"$unset": ["job_title"]}},
        {"event": "Demo Requested", "distinct_id": "kim", "uuid": "u-3", "timestamp": at(150), "properties": {}},
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        for batch in (first, second) if order == "in order" else (second, first):
            r = http.post("/batch/", json={"api_key": write, "batch": batch})
            assert r.status_code == 200 and r.json()["rejected"] == [], r.text
            assert wait_until(lambda: _drained(store))
    with store.connect() as conn:
        ((lead_id, attributes),) = conn.execute(select(leads.c.id, leads.c.attributes)).all()
        score, lines = read_current(conn, lead_id)
        history = {row["at_ms"]: row["score"] for row in read_history(conn, lead_id)}
    assert attributes == {"employees": 100}
    assert score is not None and score["score"] == 40
    assert {line["rule_id"] for line in lines if line["score_points"]} == {"big"}
    demo_before, demo_after = t + 60 * MINUTE, t + 150 * MINUTE
    assert history.get(demo_before) == 100 and history.get(demo_after) == 40, history

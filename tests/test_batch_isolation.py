"""One bad event never sinks the good ones, and every tracking client is answered as its own server would
answer it, over real HTTP on SQLite and PostgreSQL:

* a value JSON can spell but no store can hold (a lone surrogate ``\\ud800``, also as raw UTF-8 bytes; a
  NUL; a string longer than its column) refuses its own event, named by index and field, in a Segment
  ``/v1/batch`` and a PostHog ``/batch/``: a lone surrogate refused the whole request (the JSON parser);
* an id of whitespace only (``userId``, ``anonymousId``, ``previousId``, PostHog's ``distinct_id``) is no
  id: its event is refused (it made a person ``"   "``);
* PostHog person events without person processing (``$process_person_profile: false``) are dropped and
  reported, as PostHog drops them, but a request of only those is answered 200 as PostHog answers it (it
  was 400, which a client treats as a failure to retry or to drop its queue over);
* an envelope ``sentAt``/``sent_at`` of 0 is 1970-01-01, as a message's own ``sentAt: 0`` and
  ``timestamp: 0`` are: the clock-skew correction applies (it was dropped as missing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from leadscore.store import Store
from leadscore.store.schema import accounts, events, identities
from live_server import tracking
from test_api_tracking import _drained, basic, wait_until

MODEL = """
model: isolation
engagement:
  - {id: demo, name: Demo request, event: {type: track, name: Demo Requested}, points: 50}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    with tracking(store, MODEL, "site") as (url, write):
        yield url, write, store


def _stored(store: Store, prefix: str) -> dict[str, int]:
    assert wait_until(lambda: _drained(store))
    with store.connect() as conn:
        rows = conn.execute(select(events.c.message_id, events.c.ts)).all()
    return {m: ts for m, ts in rows if m.startswith(prefix)}


def _refused(answer: dict[str, Any]) -> list[tuple[int, str | None]]:
    return [(e["index"], e["field"]) for e in answer["rejected"]]


def _track(message_id: str, **fields: Any) -> str:
    return json.dumps(
        {"type": "track", "userId": "s", "event": "Demo Requested", "messageId": message_id, **fields}
    )


def test_a_segment_batch_refuses_only_the_event_with_a_value_no_store_holds(
    api: tuple[str, str, Store],
) -> None:
    url, write, store = api
    items = [
        _track("s-0"),
        _track("s-1", properties={"note": "\ud800"}),  # json.dumps writes it as the escape \ud800
        _track("s-2", properties={"note": "a\x00b"}),  # written as \u0000
        _track("s-3", userId="u" * 256),  # the column holds 255
        _track("s-4\ud800"),  # a messageId that cannot be echoed back as UTF-8
        _track("s-5"),
    ]
    # a lone surrogate as raw bytes (UTF-8's spelling of U+D800, which UTF-8 forbids) in a seventh event
    raw = ("[" + ",".join(items) + ",").encode() + b'{"type":"track","userId":"s","event":"Demo Requested",'
    raw += b'"messageId":"s-6","properties":{"note":"\xed\xa0\x80"}}]'
    body = b'{"batch":' + raw + b"}"
    with httpx.Client(base_url=url) as http:
        r = http.post("/v1/batch", content=body, headers={**basic(write), "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 2 and answer["rejected_count"] == 5
    assert _refused(answer) == [
        (1, "batch[1].properties.note"),
        (2, "batch[2].properties.note"),
        (3, "batch[3].userId"),
        (4, "batch[4].messageId"),
        (6, "batch[6].properties.note"),
    ]
    messages = [e["message"] for e in answer["rejected"]]
    assert "lone surrogate" in messages[0] and "NUL" in messages[1] and "255" in messages[2]
    assert "lone surrogate" in messages[3] and "lone surrogate" in messages[4]
    assert [e["messageId"] for e in answer["rejected"]] == ["s-1", "s-2", "s-3", None, "s-6"]
    assert set(_stored(store, "s-")) == {"s-0", "s-5"}


def test_a_posthog_batch_refuses_only_the_event_with_a_value_no_store_holds(
    api: tuple[str, str, Store],
) -> None:
    url, write, store = api

    def event(uuid: str, who: str = "p", **properties: Any) -> dict[str, Any]:
        return {"event": "Demo Requested", "distinct_id": who, "uuid": uuid, "properties": properties}

    batch = [
        event("p-0"),
        event("p-1", "\ud800"),
        event("p-2", plan="x\x00"),
        event("p-3", "d" * 256),
        event("p-4", plan="\udfff"),
        event("p-5"),
    ]
    body = json.dumps({"api_key": write, "batch": batch}).encode()
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 2 and answer["rejected_count"] == 4
    assert _refused(answer) == [
        (1, "batch[1].distinct_id"),
        (2, "batch[2].properties.plan"),
        (3, "batch[3].distinct_id"),
        (4, "batch[4].properties.plan"),
    ]
    assert set(_stored(store, "p-")) == {"p-0", "p-5"}


def test_an_id_of_whitespace_only_is_no_id_and_refuses_its_event_alone(api: tuple[str, str, Store]) -> None:
    url, write, store = api
    batch = [
        {"type": "track", "userId": "   ", "event": "Demo Requested", "messageId": "w-0"},
        {"type": "track", "anonymousId": "\t\n", "event": "Demo Requested", "messageId": "w-1"},
        {
            "type": "track",
            "userId": "\u3000",
            "anonymousId": "a-w",
            "event": "Demo Requested",
            "messageId": "w-2",
        },
        {"type": "alias", "userId": "w", "previousId": " ", "messageId": "w-3"},
        {
            "type": "track",
            "userId": " w ",
            "event": "Demo Requested",
            "messageId": "w-4",
        },  # text around: an id
    ]
    with httpx.Client(base_url=url) as http:
        r = http.post("/v1/batch", json={"batch": batch}, headers=basic(write))
        assert r.status_code == 200, r.text
        assert _refused(r.json()) == [
            (0, "batch[0].userId"),
            (1, "batch[1].anonymousId"),
            (2, "batch[2].userId"),
            (3, "batch[3].previousId"),
        ]
        assert r.json()["rejected"][0]["message"] == "userId is blank (whitespace only): an id is required"
        posthog = [
            {"event": "Demo Requested", "distinct_id": "  ", "uuid": "w-5", "properties": {}},
            {"event": "Demo Requested", "distinct_id": "w", "uuid": "w-6", "properties": {}},
        ]
        r = http.post("/batch/", json={"api_key": write, "batch": posthog})
        assert r.status_code == 200, r.text
        assert _refused(r.json()) == [(0, "batch[0].distinct_id")]
        assert (
            r.json()["rejected"][0]["message"] == "distinct_id is blank (whitespace only): an id is required"
        )
        # alone, the event is a 400 naming the field, as any refused single message
        r = http.post("/v1/track", json={"userId": " ", "event": "E"}, headers=basic(write))
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "userId"
    assert set(_stored(store, "w-")) == {"w-4", "w-6"}
    with store.connect() as conn:
        keys = {k for (k,) in conn.execute(select(identities.c.key))}
    assert keys == {"u: w ", "u:w"}


PERSONLESS = {"$process_person_profile": False}


@pytest.mark.parametrize("path", ["/batch/", "/e/", "/i/v0/e/", "/capture/"])
def test_a_request_of_only_person_events_without_person_processing_is_answered_200(
    api: tuple[str, str, Store], path: str
) -> None:
    """PostHog drops these events and answers 200: a 400 made posthog-js retry them and posthog-python
    log the batch as failed. The drop is reported as a per-event rejection."""
    url, write, store = api
    identify = {"event": "$identify", "distinct_id": "n", "uuid": "n-0", "api_key": write,
                "properties": {**PERSONLESS, "$set": {"email": "n@mail.test"}}}  # fmt: skip
    alias = {"event": "$create_alias", "distinct_id": "n", "uuid": "n-1", "api_key": write,
             "properties": {**PERSONLESS, "alias": "n-alias"}}  # fmt: skip
    body: Any = {"api_key": write, "batch": [identify, alias]} if path == "/batch/" else [identify, alias]
    if path == "/capture/":
        body = identify
    with httpx.Client(base_url=url) as http:
        r = http.post(path, json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    dropped = 1 if path == "/capture/" else 2
    assert answer["status"] == 1 and answer["accepted"] == 0 and answer["rejected_count"] == dropped
    assert _refused(answer) == [(i, f"batch[{i}].properties.$process_person_profile") for i in range(dropped)]
    assert "as PostHog drops it" in answer["rejected"][0]["message"]
    assert _stored(store, "n-") == {}


def test_a_request_of_dropped_and_invalid_events_is_answered_200_with_each_listed(
    api: tuple[str, str, Store],
) -> None:
    """A dropped event is handled as PostHog handles it: beside events refused as invalid, the request is
    a partial success (200, each bad one listed), as a batch with one good event is."""
    url, write, _ = api
    batch = [
        {"event": "$identify", "distinct_id": "n", "uuid": "v-0", "properties": PERSONLESS},
        {"event": "Demo Requested", "uuid": "v-1", "properties": {}},  # no distinct_id
    ]
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", json={"api_key": write, "batch": batch})
        assert r.status_code == 200, r.text
        assert _refused(r.json()) == [
            (0, "batch[0].properties.$process_person_profile"),
            (1, "batch[1].distinct_id"),
        ]
        # invalid events only: still the 400 of a request with nothing to keep
        r = http.post("/batch/", json={"api_key": write, "batch": batch[1:]})
        assert r.status_code == 400, r.text


def test_an_envelope_sent_at_of_0_is_1970_and_corrects_the_clock(api: tuple[str, str, Store]) -> None:
    """The sender's clock read 1970-01-01 when it sent the batch (``sentAt: 0``): an event it stamped 0 was
    sent as it happened, so it happened on arrival; one stamped 1,000 ms, a second after arrival. An event
    stamped with today's time was, on that clock, 56 years after it was sent: refused, naming sentAt. The
    envelope's 0 was dropped as "no sentAt": the events were stored in 1970."""
    url, write, store = api
    now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    segment = [
        {"type": "track", "userId": "t", "event": "Demo Requested", "messageId": "t-0", "timestamp": 0},
        {"type": "track", "userId": "t", "event": "Demo Requested", "messageId": "t-1", "timestamp": 1000},
        {"type": "track", "userId": "t", "event": "Demo Requested", "messageId": "t-2", "timestamp": now_iso},
    ]
    posthog = [
        {"event": "Demo Requested", "distinct_id": "t", "uuid": "t-3", "timestamp": 0, "properties": {}},
        {"event": "Demo Requested", "distinct_id": "t", "uuid": "t-4", "timestamp": 1000, "properties": {}},
    ]
    with httpx.Client(base_url=url) as http:
        before = int(time.time() * 1000)
        r = http.post("/v1/batch", json={"batch": segment, "sentAt": 0}, headers=basic(write))
        assert r.status_code == 200, r.text
        assert _refused(r.json()) == [(2, "batch[2].timestamp")]
        assert "sentAt" in r.json()["rejected"][0]["message"]
        r = http.post("/batch/", json={"api_key": write, "sent_at": 0, "batch": posthog})
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text
        after = int(time.time() * 1000)
    stored = _stored(store, "t-")
    assert set(stored) == {"t-0", "t-1", "t-3", "t-4"}
    for arrived, a_second_later in (("t-0", "t-1"), ("t-3", "t-4")):
        assert before <= stored[arrived] <= after
        assert stored[a_second_later] == stored[arrived] + 1000  # one batch: one arrival time


def test_a_group_id_of_whitespace_only_is_no_group_and_refuses_its_event_alone(
    api: tuple[str, str, Store],
) -> None:
    # "   " as a groupId (or PostHog's $group_key, or a $groups value) made one account of everyone sent
    # with it; it is refused as a blank person id is, the other events of the batch kept
    url, write, store = api
    batch = [
        {"type": "group", "userId": "g1", "groupId": "   ", "traits": {"name": "Blank"}, "messageId": "g-0"},
        {"type": "group", "userId": "g2", "groupId": "acme", "traits": {"name": "Acme"}, "messageId": "g-1"},
    ]
    posthog = [
        {"event": "$groupidentify", "distinct_id": "g3", "uuid": "g-2",
         "properties": {"$group_type": "company", "$group_key": "\t", "$group_set": {"name": "Tab"}}},
        {"event": "Demo Requested", "distinct_id": "g4", "uuid": "g-3", "properties": {"$groups": {"company": " "}}},
        {"event": "Demo Requested", "distinct_id": "g5", "uuid": "g-4", "properties": {}},
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        r = http.post("/v1/batch", json={"batch": batch}, headers=basic(write))
        assert r.status_code == 200, r.text
        assert _refused(r.json()) == [(0, "batch[0].groupId")]
        assert r.json()["rejected"][0]["message"] == "groupId is blank (whitespace only): an id is required"
        r = http.post("/batch/", json={"api_key": write, "batch": posthog})
        assert r.status_code == 200, r.text
        assert _refused(r.json()) == [
            (0, "batch[0].properties.$group_key"),
            (1, "batch[1].properties.$groups.company"),
        ]
    assert set(_stored(store, "g-")) == {"g-1", "g-4"}
    with store.connect() as conn:
        groups = {k for (k,) in conn.execute(select(accounts.c.group_key)) if k is not None}
    assert groups == {"acme"}

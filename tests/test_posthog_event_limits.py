"""A PostHog event's size and its ``distinct_id`` sent as a number.

Size: a PostHog event has a limit of its own, posthog-python's 900 KiB (``ingest.posthog.MAX_EVENT_BYTES``),
not the whole body's 8 MiB, checked as a Segment batch's messages are (``ingest.limits.check_message_size``,
the one check of both routes): the event over it is refused alone, named by its index and uuid, and the
others of its batch are stored.

``distinct_id``: posthog-python sends ``str(distinct_id)``, posthog-js' ``identify`` a number's
``toString()`` (the text JavaScript writes for it, as JSON.stringify does for a client that sends the
number as is). So a number is the text those clients send for it: ``42`` and ``42.0`` are "42",
``18446744073709551615`` (2^64 - 1, read exactly) its digits, ``1.5`` "1.5", ``1e-7`` "1e-7". A number
the JSON parser reads rounded (an integer beyond 64 bits, 2^64 + 1, or a float from 2^53 on: another
integer would read the same) is refused, "distinct_id must be a string or an integer"; so is a boolean,
a list or an object. Only an absent, null or empty one is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from leadscore.api import create_app
from leadscore.errors import MessageError
from leadscore.ingest.posthog import to_segment
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.event_log import waiting_rows
from leadscore.store.keys import create_key
from live_server import serving
from test_api_tracking import MODEL

LIMIT = 900 * 1024  # posthog-python's MAX_MSG_SIZE: it sends no larger event


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "product", 0)
    with serving(create_app(Settings(database_url="unused", run_processor=False), store=store)) as url:
        yield url, write, store


def _stored(store: Store) -> dict[str, str | None]:
    """The stored events' message ids → user ids (the inbox: no processor runs)."""
    with store.connect() as conn:
        return {row["message_id"]: row["user_id"] for row in waiting_rows(conn)}


def _event(uuid: str, pad: int) -> dict[str, Any]:
    """An event whose JSON text (as orjson writes it: no spaces) is 75 + ``pad`` bytes: 67 around the
    uuid of 8 and the pad."""
    return {"event": "E", "distinct_id": "ida", "uuid": uuid, "properties": {"pad": "x" * pad}}


def test_the_event_text_is_as_long_as_counted() -> None:
    text = '{"event":"E","distinct_id":"ida","uuid":"u-000001","properties":{"pad":""}}'
    assert len(text) == 67 + 8
    assert orjson.dumps(_event("u-000001", 0)).decode() == text


@pytest.mark.parametrize("path", ["/batch/", "/e/"])
def test_an_event_over_the_message_limit_is_refused_alone(api: tuple[str, str, Store], path: str) -> None:
    """Four events: one at the limit (75 + pad = 921,600 bytes), one a byte over, one of 2 MiB and a small
    one; the two over it are refused, named by index and uuid; the other two are stored."""
    url, write, store = api
    events = [
        _event("u-000001", LIMIT - 75),
        _event("u-000002", LIMIT - 74),
        _event("u-000003", 2 * 1024 * 1024),
        _event("u-000004", 10),
    ]
    # posthog-js' array, its key given as HTTP Basic (a token in the properties would lengthen each event)
    body: Any = {"api_key": write, "batch": events} if path == "/batch/" else events
    with httpx.Client(base_url=url, timeout=30, auth=(write, "")) as http:
        r = http.post(path, json=body)
    assert r.status_code == 200, r.text[:300]
    answer = r.json()
    refused = [(e["index"], e["messageId"], e["message"]) for e in answer["rejected"]]
    assert refused == [
        (1, "u-000002", f"event is larger than {LIMIT} bytes"),
        (2, "u-000003", f"event is larger than {LIMIT} bytes"),
    ], answer
    assert answer["accepted"] == 2
    assert set(_stored(store)) == {"u-000001", "u-000004"}


def test_one_event_over_the_limit_on_capture_is_refused(api: tuple[str, str, Store]) -> None:
    url, write, store = api
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/capture/", json={**_event("u-000009", LIMIT), "api_key": write})
    assert r.status_code == 400, r.text[:300]
    assert f"event is larger than {LIMIT} bytes" in r.text
    assert _stored(store) == {}


NUMBERS = [
    (42, "42"),
    (42.0, "42"),  # JSON has one number type: the same person as 42
    (-7, "-7"),
    (18446744073709551615, "18446744073709551615"),  # 2^64 - 1: read exactly
    (9007199254740991.0, "9007199254740991"),  # 2^53 - 1, the largest float every integer below is
    (1.5, "1.5"),
    (-0.25, "-0.25"),
    (0.1, "0.1"),
    (123456.789, "123456.789"),
    (0.000001, "0.000001"),
    (1e-7, "1e-7"),  # JavaScript writes it so (Python: 1e-07)
    (1.5e-10, "1.5e-10"),
]


@pytest.mark.parametrize(("number", "text"), NUMBERS, ids=[t for _, t in NUMBERS])
def test_a_number_distinct_id_is_the_text_a_client_sends(number: float, text: str) -> None:
    [message] = to_segment({"event": "E", "distinct_id": number})
    assert message["userId"] == text
    [message] = to_segment({"event": "E", "properties": {"distinct_id": number}})
    assert message["userId"] == text


REFUSED = [
    18446744073709551617.0,
    2.0**53,
    1e21,
    -1e300,
    float("nan"),
    float("inf"),
    True,
    False,
    [1],
    {"a": 1},
]


@pytest.mark.parametrize("value", REFUSED, ids=[repr(v) for v in REFUSED])
def test_a_distinct_id_no_client_sends_is_refused_never_missing(value: Any) -> None:
    for event, field in (
        ({"event": "E", "distinct_id": value}, "distinct_id"),
        ({"event": "E", "properties": {"distinct_id": value}}, "properties.distinct_id"),
    ):
        with pytest.raises(MessageError) as caught:
            to_segment(event)
        assert caught.value.problem.field == field
        assert str(caught.value).startswith(f"{field} must be a string or an integer"), str(caught.value)


@pytest.mark.parametrize("value", [None, ""])
def test_an_absent_null_or_empty_distinct_id_is_missing(value: Any) -> None:
    with pytest.raises(MessageError, match="a PostHog event needs 'distinct_id'"):
        to_segment({"event": "E", "distinct_id": value})
    with pytest.raises(MessageError, match="a PostHog event needs 'distinct_id'"):
        to_segment({"event": "E"})


def test_number_distinct_ids_over_the_api(api: tuple[str, str, Store]) -> None:
    """As sent on the wire (the JSON text itself: 2^64 + 1 is no float a client chose): 1.5 is the
    user "1.5", 2^64 - 1 its digits, 2^64 + 1 refused by itself naming the event."""
    url, write, store = api
    events = (
        '{"event":"E","uuid":"n-1","distinct_id":1.5},'
        '{"event":"E","uuid":"n-2","distinct_id":18446744073709551615},'
        '{"event":"E","uuid":"n-3","distinct_id":18446744073709551617},'
        '{"event":"E","uuid":"n-4","distinct_id":42.0}'
    )
    body = f'{{"api_key":"{write}","batch":[{events}]}}'
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/batch/", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    [refused] = r.json()["rejected"]
    assert (refused["index"], refused["messageId"], refused["field"]) == (2, "n-3", "batch[2].distinct_id")
    assert refused["message"].startswith("distinct_id must be a string or an integer"), refused
    assert _stored(store) == {"n-1": "1.5", "n-2": "18446744073709551615", "n-4": "42"}

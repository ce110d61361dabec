"""Every id of a PostHog event sent as a JSON number reads as ``distinct_id`` does
(``test_posthog_event_limits``): the text the clients send for it, by one definition
(``ingest.posthog.id_text``, ``ingest.segment.number_text``). The ids: ``properties.$device_id``, the
``properties.alias`` of ``$create_alias`` and ``$merge_dangerously``, ``properties.$anon_distinct_id`` of
``$identify``, ``properties.$group_key`` of ``$groupidentify``, the account group types' values of
``properties.$groups`` and the event's ``uuid``. A number read rounded, a boolean, a list or an object is
refused naming the field, "<field> must be a string or an integer", never read as missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from leadscore.errors import MessageError
from leadscore.ingest.posthog import to_segment
from leadscore.store import Store
from leadscore.store.event_log import waiting_rows
from test_posthog_event_limits import REFUSED, api  # noqa: F401  (api: the fixture)


def _device(value: Any) -> dict[str, Any]:
    return {"event": "E", "distinct_id": "u1", "properties": {"$device_id": value}}


def _alias(value: Any) -> dict[str, Any]:
    return {"event": "$create_alias", "distinct_id": "u1", "properties": {"alias": value}}


def _anonymous(value: Any) -> dict[str, Any]:
    return {"event": "$identify", "distinct_id": "u1", "properties": {"$anon_distinct_id": value}}


def _group_key(value: Any) -> dict[str, Any]:
    return {"event": "$groupidentify", "distinct_id": "u1", "properties": {"$group_type": "company",
            "$group_key": value}}  # fmt: skip


def _groups(value: Any) -> dict[str, Any]:
    return {"event": "E", "distinct_id": "u1", "properties": {"$groups": {"company": value}}}


def _uuid(value: Any) -> dict[str, Any]:
    return {"event": "E", "distinct_id": "u1", "uuid": value}


# each id field: an event sending ``value`` there, the field a refusal names, and where each message made
# of it holds the value (a Segment field per message, None where that message does not carry it)
FIELDS: dict[str, tuple[Callable[[Any], dict[str, Any]], str, list[str | None]]] = {
    "$device_id": (_device, "properties.$device_id", ["anonymousId"]),
    "alias": (_alias, "properties.alias", ["userId", "previousId"]),
    "$anon_distinct_id": (_anonymous, "properties.$anon_distinct_id", ["anonymousId", "previousId"]),
    "$group_key": (_group_key, "properties.$group_key", ["groupId"]),
    "$groups": (_groups, "properties.$groups.company", ["groupId"]),
    "uuid": (_uuid, "uuid", ["messageId"]),
}

NUMBERS = [
    (42, "42"),
    (42.0, "42"),
    (18446744073709551615, "18446744073709551615"),
    (1.5, "1.5"),
    (1e-7, "1e-7"),
]


@pytest.mark.parametrize("name", list(FIELDS))
@pytest.mark.parametrize(("number", "text"), NUMBERS, ids=[t for _, t in NUMBERS])
def test_a_number_id_is_the_text_a_client_sends(name: str, number: float, text: str) -> None:
    make, _, held = FIELDS[name]
    messages = to_segment(make(number))
    assert [m.get(k) if k else None for m, k in zip(messages, held, strict=True)] == [text] * len(held)


def test_a_number_device_id_equal_to_the_distinct_id_is_the_anonymous_person() -> None:
    [message] = to_segment({"event": "E", "distinct_id": 7, "properties": {"$device_id": 7.0}})
    assert (message["anonymousId"], "userId" in message) == ("7", False)


@pytest.mark.parametrize("name", list(FIELDS))
@pytest.mark.parametrize("value", REFUSED, ids=[repr(v) for v in REFUSED])
def test_an_id_no_client_sends_is_refused_never_missing(name: str, value: Any) -> None:
    make, field, _ = FIELDS[name]
    with pytest.raises(MessageError) as caught:
        to_segment(make(value))
    assert caught.value.problem.field == field
    assert str(caught.value).startswith(f"{field} must be a string or an integer"), str(caught.value)


def test_a_number_past_exact_names_why() -> None:
    with pytest.raises(MessageError) as caught:
        to_segment(_device(2.0**64))
    assert str(caught.value) == (
        "properties.$device_id must be a string or an integer: a number this large is not exact (send it as text)"
    )


@pytest.mark.parametrize("value", [None, ""])
def test_an_absent_null_or_empty_id_is_none(value: Any) -> None:
    [message] = to_segment(_device(value))
    assert "anonymousId" not in message
    with pytest.raises(MessageError, match=r"a \$create_alias event needs 'properties.alias'"):
        to_segment(_alias(value))
    with pytest.raises(MessageError, match=r"a \$groupidentify event needs '\$group_key'"):
        to_segment(_group_key(value))
    [message] = to_segment(_groups(value))
    assert "groupId" not in message


def test_number_ids_over_the_api(api: tuple[str, str, Store]) -> None:  # noqa: F811
    """As sent on the wire (the JSON text itself): a $device_id of 1.5, a $create_alias' alias of 42.0, an
    $anon_distinct_id of 2^64 - 1 are those texts; a $groups company of 2^64 + 1 refuses its event alone,
    naming the field."""
    url, write, store = api
    events = (
        '{"event":"E","uuid":"d-1","distinct_id":"u1","properties":{"$device_id":1.5}},'
        '{"event":"$create_alias","uuid":"d-2","distinct_id":"u2","properties":{"alias":42.0}},'
        '{"event":"E","uuid":"d-3","distinct_id":"u3","properties":{"$groups":{"company":18446744073709551617}}},'
        '{"event":"$identify","uuid":"d-4","distinct_id":"u4","properties":{"$anon_distinct_id":18446744073709551615}}'
    )
    body = f'{{"api_key":"{write}","batch":[{events}]}}'
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/batch/", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert len(r.json()["rejected"]) == 1, r.json()
    [refused] = r.json()["rejected"]
    assert (refused["index"], refused["messageId"], refused["field"]) == (
        2,
        "d-3",
        "batch[2].properties.$groups.company",
    )
    assert refused["message"].startswith("properties.$groups.company must be a string or an integer"), refused
    with store.connect() as conn:
        stored = {row["message_id"]: (row["user_id"], row["anonymous_id"]) for row in waiting_rows(conn)}
    assert stored["d-1"] == ("u1", "1.5")
    assert stored["d-2"] == ("42", None)  # the alias as the userId, u2 its previousId
    assert stored["d-2:back"] == ("u2", None)
    assert stored["d-4"] == ("u4", "18446744073709551615")
    assert stored["d-4:alias"] == ("u4", None)
    assert not any(k.startswith("d-3") for k in stored)


@pytest.mark.parametrize(
    ("make", "kept"),
    [
        (_device, lambda p: p["$device_id"]),
        (_alias, lambda p: p["alias"]),
        (_anonymous, lambda p: p["$anon_distinct_id"]),
        (_group_key, lambda p: p["$group_key"]),
        (_groups, lambda p: p["$groups"]["company"]),
    ],
    ids=["$device_id", "alias", "$anon_distinct_id", "$group_key", "$groups"],
)
def test_an_id_in_the_properties_is_kept_there_as_its_text(
    make: Callable[[Any], dict[str, Any]], kept: Callable[[dict[str, Any]], Any]
) -> None:
    """2^64 - 1 would be refused as a property (an integer beyond 64 bits): the property is the id."""
    message = to_segment(make(18446744073709551615))[0]
    assert kept(message["properties"]) == "18446744073709551615"

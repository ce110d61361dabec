"""The PostHog → Segment mapping (docs/ingest.md's table), row by row, on hand-written events."""

from __future__ import annotations

from typing import Any

import pytest

from leadscore.errors import MessageError
from leadscore.ingest.posthog import events_of, to_segment, token_of

CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "anonymous page view (distinct id = device id)",
        {"event": "$pageview", "uuid": "u1", "properties": {"distinct_id": "d1", "$device_id": "d1",
         "token": "k", "$current_url": "https://ex.com/a?b=1", "title": "A"}},
        [{"type": "page", "anonymousId": "d1", "messageId": "u1", "name": "A",
          "properties": {"$device_id": "d1", "$current_url": "https://ex.com/a?b=1", "title": "A",
                         "url": "https://ex.com/a?b=1"}}],
    ),
    (
        "identified event with a device id and a company",
        {"event": "Signed Up", "distinct_id": "ada", "timestamp": "2025-01-01T00:00:00Z",
         "properties": {"$device_id": "d1", "$groups": {"company": "acme"}}},
        [{"type": "track", "event": "Signed Up", "userId": "ada", "anonymousId": "d1", "groupId": "acme",
          "timestamp": "2025-01-01T00:00:00Z", "properties": {"$device_id": "d1", "$groups": {"company": "acme"}}}],
    ),
    (
        "$identify: identify with $set as traits, $set_once as context.traits_once, and an alias",
        {"event": "$identify", "distinct_id": "ada", "uuid": "u2", "$set": {"email": "a@x.io"},
         "$set_once": {"email": "old@x.io", "plan": "free"}, "properties": {"$anon_distinct_id": "d1"}},
        [
            {"type": "identify", "userId": "ada", "anonymousId": "d1", "messageId": "u2",
             "traits": {"email": "a@x.io"}, "context": {"traits_once": {"email": "old@x.io", "plan": "free"}},
             "properties": {"$anon_distinct_id": "d1"}},
            {"type": "alias", "userId": "ada", "previousId": "d1", "messageId": "u2:alias", "properties": {}},
        ],
    ),
    (
        "posthog.set(): identify with the $set traits",
        {"event": "$set", "distinct_id": "ada", "properties": {"$set": {"role": "CTO"}}},
        [{"type": "identify", "userId": "ada", "traits": {"role": "CTO"}, "properties": {}}],
    ),
    (
        "an event with $set and $set_once (posthog-python's properties): the event and an identify",
        {"event": "Feature Used", "distinct_id": "ada", "uuid": "u3", "properties": {"feature": "alerts",
         "$set": {"plan": "pro"}, "$set_once": {"first_feature": "alerts"}}},
        [
            {"type": "track", "event": "Feature Used", "userId": "ada", "messageId": "u3",
             "properties": {"feature": "alerts"}},
            {"type": "identify", "userId": "ada", "messageId": "u3:set", "properties": {},
             "traits": {"plan": "pro"}, "context": {"traits_once": {"first_feature": "alerts"}}},
        ],
    ),
    (
        "an anonymous event's person properties: an identify of the anonymous id beside it",
        {"event": "$pageview", "uuid": "u5", "properties": {"distinct_id": "d1", "$device_id": "d1",
         "$set_once": {"$initial_referrer": "$direct"}}},
        [{"type": "page", "anonymousId": "d1", "messageId": "u5", "properties": {"$device_id": "d1"}},
         {"type": "identify", "anonymousId": "d1", "messageId": "u5:set", "properties": {}, "traits": {},
          "context": {"traits_once": {"$initial_referrer": "$direct"}}}],
    ),
    (
        "an event PostHog keeps no person for ($process_person_profile false): its person properties are not kept",
        {"event": "Clicked", "$set": {"plan": "pro"}, "properties": {"distinct_id": "d1", "$device_id": "d1",
         "$process_person_profile": False}},
        [{"type": "track", "event": "Clicked", "anonymousId": "d1",
          "properties": {"$device_id": "d1", "$process_person_profile": False}}],
    ),
    (
        "posthog.alias(): an alias each way (posthog-python's alias is the new id, posthog-node's the old)",
        {"event": "$create_alias", "distinct_id": "old", "uuid": "u4",
         "properties": {"distinct_id": "old", "alias": "new", "$device_id": "d1"}},
        [{"type": "alias", "userId": "new", "previousId": "old", "anonymousId": "d1", "messageId": "u4",
          "properties": {"alias": "new", "$device_id": "d1"}},
         {"type": "alias", "userId": "old", "previousId": "new", "messageId": "u4:back", "properties": {}}],
    ),
    (
        "$merge_dangerously (posthog.capture('$merge_dangerously', {alias})): the same two aliases; it was an event",
        {"event": "$merge_dangerously", "distinct_id": "kim", "uuid": "u6", "properties": {"alias": "kim-2"}},
        [{"type": "alias", "userId": "kim-2", "previousId": "kim", "messageId": "u6",
          "properties": {"alias": "kim-2"}},
         {"type": "alias", "userId": "kim", "previousId": "kim-2", "messageId": "u6:back", "properties": {}}],
    ),
    (
        "$groupidentify of a company: the account, which only a person already known joins",
        {"event": "$groupidentify", "distinct_id": "ada", "properties": {"$group_type": "company",
         "$group_key": "acme", "$group_set": {"name": "Acme", "domain": "acme.com"}}},
        [{"type": "group", "userId": "ada", "groupId": "acme", "traits": {"name": "Acme", "domain": "acme.com"},
          "context": {"known_only": True}, "properties": {"$group_type": "company", "$group_key": "acme",
                         "$group_set": {"name": "Acme", "domain": "acme.com"}}}],
    ),
    (
        "$groupidentify of another group type: an event",
        {"event": "$groupidentify", "distinct_id": "ada", "properties": {"$group_type": "project", "$group_key": "p"}},
        [{"type": "track", "event": "$groupidentify", "userId": "ada",
          "properties": {"$group_type": "project", "$group_key": "p"}}],
    ),
    (
        "$screen",
        {"event": "$screen", "distinct_id": "ada", "properties": {"$screen_name": "Home"}},
        [{"type": "screen", "userId": "ada", "name": "Home", "properties": {"$screen_name": "Home"}}],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mapping(event: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert to_segment(event) == expected


def test_the_request_sent_at_is_each_messages_sent_at() -> None:
    [message] = to_segment({"event": "E", "distinct_id": "a"}, "2025-01-01T00:00:01Z")
    assert message["sentAt"] == "2025-01-01T00:00:01Z"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"distinct_id": "a"}, "event"),
        ({"event": "E"}, "distinct_id"),
        ({"event": "E", "distinct_id": "a", "properties": []}, "properties"),
        ({"event": "$identify", "distinct_id": "a", "$set": "x"}, "$set"),
        ({"event": "$create_alias", "distinct_id": "a"}, "properties.alias"),
        ({"event": "$merge_dangerously", "distinct_id": "a"}, "properties.alias"),
        ({"event": "$groupidentify", "distinct_id": "a", "properties": {"$group_type": "company"}}, "properties.$group_key"),
        ("not an object", None),
    ],
)  # fmt: skip
def test_a_bad_event_names_its_field(event: Any, field: str | None) -> None:
    with pytest.raises(MessageError) as caught:
        to_segment(event)
    assert caught.value.problem.field == field


def test_bodies_and_keys() -> None:
    assert events_of({"api_key": "k", "batch": [{"event": "E"}]}) == [{"event": "E"}]
    assert events_of([{"event": "E"}]) == [{"event": "E"}]
    assert events_of({"event": "E"}) == [{"event": "E"}]
    assert token_of({"api_key": "k1", "batch": []}) == "k1"
    assert token_of([{"event": "E", "properties": {"token": "k2"}}]) == "k2"
    assert token_of({"event": "E", "token": "k3"}) == "k3"
    assert token_of([]) is None
    with pytest.raises(MessageError):
        events_of("text")

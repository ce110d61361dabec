"""PostHog capture events → Segment-spec messages, so that posthog-python and posthog-js can send to
leadscore unchanged and their events take the one ingest path (``ingest.segment.normalise``, the event
log, the same compiled query). The mapping is a table in docs/ingest.md:

* ``distinct_id`` is the person: ``anonymousId`` while it is the browser's ``$device_id`` (posthog-js
  before ``identify``), else ``userId``; a ``$device_id`` beside another distinct id is the
  ``anonymousId`` too, so the browser's history stitches to the person.
* ``$identify`` → ``identify`` (``$set`` as traits, ``$set_once`` as ``context.traits_once``: set only
  where the lead has no value at the event's time, whatever the arrival order (``ingest.set_once``);
  ``$anon_distinct_id`` as the ``anonymousId``) and an ``alias`` from
  ``$anon_distinct_id``, which stitches an anonymous id that a server library sent as a distinct id (its
  person key is ``u:``).
* ``$unset`` (a list of person property names, or an object whose keys are) beside them →
  ``context.traits_unset`` of that ``identify``: the lead's attributes (and name fields) removed, after
  the values set (``store.people.upsert_lead``; unknown from the event's time on: ``scoring.as_known``).
* ``$set`` and ``$set_once`` events → ``identify`` with their traits; ``$create_alias`` and
  ``$merge_dangerously`` → two ``alias``
  messages, one each way (``<uuid>:back``): the clients disagree on which of its ids is the new one.
* any other event with ``$set`` or ``$set_once`` → the event and, beside it, an ``identify`` with those
  traits (message id ``<uuid>:set``), an anonymous person's too (its traits reach the lead its anonymous
  id is linked to, now or when it is: ``ingest.apply``); none where ``$process_person_profile`` is false.
* where ``$process_person_profile`` is false, ``$identify``, ``$create_alias``, ``$merge_dangerously`` and
  ``$groupidentify`` are dropped (``PERSON_EVENTS``, ``DroppedMessage``: PostHog drops them, and answers
  200 for a request of only those) and a ``$set`` or ``$set_once`` event is a track event without traits.
* ``$groupidentify`` of a group type in ``ACCOUNT_GROUP_TYPES`` → ``group`` (``$group_set`` are the
  company's traits; its sender joins it only when a person already known: ``context.known_only``,
  ``ingest.apply.known_only``); other group types are kept as track events.
* ``$pageview`` → ``page`` (``$current_url`` as ``url``, ``$pathname`` as ``path``, ``$title`` as
  ``name``); ``$screen`` → ``screen``; every other event → ``track`` with its name.
* every id (``distinct_id``, ``$device_id``, ``alias``, ``$anon_distinct_id``, ``$group_key``, ``$groups``
  values, ``uuid``) sent as a JSON number is the text its clients send for it (``id_text``), kept as that
  text in the properties; a number read rounded, a boolean, a list or an object refuses the event.
* ``uuid`` is the ``messageId`` (a resent event is a duplicate), ``timestamp`` and the request's
  ``sent_at`` correct the sender's clock as Segment's ``sentAt`` does; a second message's id
  (``<uuid>:alias``, ``<uuid>:set``) too long for the log is a hash of it (``derived_id``); ``$groups`` of an account group
  type gives the message its ``groupId``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from leadscore.errors import DroppedMessage, MessageError
from leadscore.ingest.limits import FIELD_LENGTH
from leadscore.ingest.segment import number_text, sent_at_given

ACCOUNT_GROUP_TYPES = ("company", "organization", "account")
# the largest event (as JSON): posthog-python's own bound (its consumer's MAX_MSG_SIZE, measured with
# spaces after its separators, so never over this written compactly); not the Segment message's 32 KB,
# which posthog-python's events of 60 KB pass. Checked as a Segment batch checks its messages
# (``limits.check_message_size``): an event over it is refused alone
MAX_EVENT_BYTES = 900 * 1024
TRAIT_KEYS = ("$set", "$set_once")
UNSET_KEY = "$unset"  # person properties to remove: a list of names, or an object whose keys are
# events only about a person, which PostHog drops whole when ``$process_person_profile`` is false
# (plugin-server's normalize-process-person step: ingestion warning
# ``invalid_event_when_process_person_profile_is_false``)
PERSON_EVENTS = ("$identify", "$create_alias", "$merge_dangerously", "$groupidentify")
# two people said to be one (``properties.alias`` and the distinct id): PostHog merges them, both alike here
# (its ``$create_alias`` refuses to merge an identified person, ``$merge_dangerously`` does not; leadscore
# never knew "identified": an alias between two leads merges them)
MERGE_EVENTS = ("$create_alias", "$merge_dangerously")


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # posthog-python stringifies; others may not
        return str(value)
    return None


def id_text(value: Any, field: str) -> str | None:
    """An id of a PostHog event (``field``: ``distinct_id``, ``properties.$device_id``, ``properties.alias``,
    ``properties.$anon_distinct_id``, ``properties.$group_key``, an account group type's value in
    ``properties.$groups``, ``uuid``) as text: a number as the clients write one (``segment.number_text``:
    posthog-python sends ``str()`` of it, posthog-js ``toString()``); None where absent, null or empty;
    MessageError naming ``field`` for a value no client sends (a number read rounded, a boolean, a list,
    an object): such an id is no missing one."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_text(value, field)
    raise MessageError(field, f"{field} must be a string or an integer")


def distinct_id_of(event: dict[str, Any], properties: dict[str, Any]) -> str:
    """The event's ``distinct_id`` (else its ``properties.distinct_id``) as text (``id_text``); MessageError
    naming the field for a value no client sends, or for none (absent, null or empty)."""
    for value, field in (
        (event.get("distinct_id"), "distinct_id"),
        (properties.get("distinct_id"), "properties.distinct_id"),
    ):
        found = id_text(value, field)
        if found is not None:
            return found
    raise MessageError("distinct_id", "a PostHog event needs 'distinct_id'")


def _id_property(properties: dict[str, Any], key: str) -> str | None:
    """The id an event's ``properties[key]`` holds (``id_text``), kept there as that text: the property is
    the id (2^64 - 1 is its digits, not an integer beyond a property's 64 bits)."""
    found = id_text(properties.get(key), f"properties.{key}")
    if found is not None:
        properties[key] = found
    return found


def _group_of(properties: dict[str, Any]) -> tuple[str, str] | None:
    """The account group (type, key) of an event's ``$groups``: the first account group type with a key."""
    groups = _dict(properties.get("$groups"), "properties.$groups")
    for group_type in ACCOUNT_GROUP_TYPES:
        key = id_text(groups.get(group_type), f"properties.$groups.{group_type}")
        if key is not None:
            return group_type, key
    return None


def derived_id(uuid: str, part: str) -> str:
    """The message id of the second message made from the event ``uuid`` (``<uuid>:<part>``); where that is
    longer than a message id may be, a SHA-256 of it (``posthog-<hex>:<part>``), so an event whose uuid fits
    is never refused on a message id the client did not send, and sending it again adds nothing (one uuid,
    one id; two uuids, two ids)."""
    derived = f"{uuid}:{part}"
    if len(derived) <= FIELD_LENGTH["messageId"]:
        return derived
    return f"posthog-{hashlib.sha256(derived.encode()).hexdigest()}:{part}"


def _dict(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(where, f"{where} must be an object")
    return value


def token_of(body: Any) -> str | None:
    """The project key a request carries: ``api_key`` (posthog-python's batch) or ``token`` at the top,
    else the first event's ``api_key`` or ``properties.token`` (posthog-js)."""
    if isinstance(body, dict):
        for key in ("api_key", "token"):
            if _text(body.get(key)):
                return str(body[key])
    for event in events_of(body)[:1]:
        if isinstance(event, dict):
            if _text(event.get("api_key")):
                return str(event["api_key"])
            properties = event.get("properties")
            if isinstance(properties, dict) and _text(properties.get("token")):
                return str(properties["token"])
    return None


def events_of(body: Any) -> list[Any]:
    """The events of a request body: ``{"batch": [...]}`` (posthog-python), a JSON array (posthog-js), or
    one event object (``/capture/``)."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        batch = body.get("batch")
        return batch if isinstance(batch, list) else [body]
    raise MessageError(None, "a PostHog request is an event object, an array of events or {'batch': [...]}")


def _person(event: dict[str, Any], properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``$set``, ``$set_once``) of an event, from the event or its properties (posthog-js sends them at
    the top, posthog-python in the properties)."""
    found: dict[str, dict[str, Any]] = {key: {} for key in TRAIT_KEYS}
    for key in TRAIT_KEYS:
        for source, where in ((properties, f"properties.{key}"), (event, key)):
            found[key].update(_dict(source.get(key), where))
    return found["$set"], found["$set_once"]


def _unset(event: dict[str, Any], properties: dict[str, Any]) -> list[Any]:
    """The names an event's ``$unset`` removes, from its properties and its top (as ``_person`` reads
    ``$set``): a list, or an object's keys (PostHog takes both); each name is checked with the message
    (``ingest.limits.check_unset``)."""
    names: list[Any] = []
    if UNSET_KEY not in properties and UNSET_KEY not in event:  # nearly every event
        return names
    for source, where in ((properties, f"properties.{UNSET_KEY}"), (event, UNSET_KEY)):
        value = source.get(UNSET_KEY)
        if value is None:
            continue
        if isinstance(value, dict):
            value = list(value)
        elif not isinstance(value, list):
            raise MessageError(where, f"{where} must be a list of property names")
        names.extend(value)
    return names


def _identify(
    base: dict[str, Any], set_: dict[str, Any], once: dict[str, Any], unset: list[Any] | None = None
) -> dict[str, Any]:
    """An ``identify`` carrying ``$set`` as its traits, ``$set_once`` as ``context.traits_once``
    (applied only where the lead has no value: ``ingest.apply.once_traits``) and ``$unset`` as
    ``context.traits_unset`` (removed after the values set: ``store.people.upsert_lead``)."""
    message = {**base, "type": "identify", "traits": set_}
    context: dict[str, Any] = {}
    if once:
        context["traits_once"] = once
    if unset:
        context["traits_unset"] = unset
    if context:
        message["context"] = context
    return message


def to_segment(event: Any, sent_at: Any = None) -> list[dict[str, Any]]:
    """The Segment messages of one PostHog event (one, or two: ``$identify`` with an alias, an event with
    person properties with an identify); raises MessageError naming the field."""
    if not isinstance(event, dict):
        raise MessageError(None, "a PostHog event is a JSON object")
    name = _text(event.get("event"))
    if name is None:
        raise MessageError("event", "a PostHog event needs 'event'")
    sent = _dict(event.get("properties"), "properties")  # as sent: its person properties are read from it
    properties = dict(sent)
    distinct_id = distinct_id_of(event, properties)
    device_id = _id_property(properties, "$device_id")
    for private in ("token", "distinct_id", *TRAIT_KEYS, UNSET_KEY):
        properties.pop(private, None)
    base: dict[str, Any] = {"properties": properties}
    if device_id == distinct_id:
        base["anonymousId"] = distinct_id
    else:
        base["userId"] = distinct_id
        if device_id:
            base["anonymousId"] = device_id
    message_id = id_text(event.get("uuid"), "uuid")
    if message_id:
        base["messageId"] = message_id
    # a timestamp is missing only when absent or null (epoch milliseconds 0 is 1970-01-01, not "now"); an
    # empty one is refused as Segment's is
    if event.get("timestamp") is not None:
        base["timestamp"] = event["timestamp"]
    if sent_at_given(event.get("sent_at")):
        base["sentAt"] = event["sent_at"]
    elif sent_at_given(sent_at):  # the request's, 0 included (1970-01-01, as an event's own)
        base["sentAt"] = sent_at
    account_group = _group_of(properties)
    if account_group is not None:
        base["groupId"] = account_group[1]
        properties["$groups"] = {**properties["$groups"], account_group[0]: account_group[1]}
    # PostHog keeps no person for the event (``$process_person_profile`` false, a boolean: posthog-js'
    # anonymous events in its default ``identified_only`` mode): an event only about a person is refused,
    # as PostHog drops it; any other is kept without its person properties
    personless = properties.get("$process_person_profile") is False
    if personless and name in PERSON_EVENTS:
        raise DroppedMessage(
            "properties.$process_person_profile",
            f"properties.$process_person_profile is false: a {name} event without a person is dropped, as"
            " PostHog drops it",
        )
    set_, once = _person(event, sent)
    unset = [] if personless else _unset(event, sent)
    if name == "$identify":
        anonymous = _id_property(properties, "$anon_distinct_id")
        identify = _identify(base, set_, once, unset)
        if anonymous and "userId" in base:
            identify["anonymousId"] = anonymous
            alias = {
                **base,
                "type": "alias",
                "previousId": anonymous,
                "properties": {},
                "messageId": derived_id(message_id, "alias") if message_id else None,
            }
            alias.pop("anonymousId", None)
            return [identify, {k: v for k, v in alias.items() if v is not None}]
        return [identify]
    if name in TRAIT_KEYS and not personless:  # posthog.set(), posthog.set_once()
        return [_identify(base, set_, once, unset)]
    if name in MERGE_EVENTS:
        alias_of = _id_property(properties, "alias")
        if alias_of is None:
            raise MessageError("properties.alias", f"a {name} event needs 'properties.alias'")
        # the two ids are one person, whichever is the new one: posthog-python sends the new id as the
        # alias (alias(previous_id, distinct_id)), posthog-node and posthog-js the other way round
        # (alias({distinctId, alias}): the alias is the browser's anonymous id). A Segment alias links
        # its previousId as a user id and as an anonymous id, its userId as a user id only: a second
        # alias, the other way round, links the alias as an anonymous id (a device id posthog-js sent)
        back = {
            **base,
            "type": "alias",
            "userId": distinct_id,
            "previousId": alias_of,
            "properties": {},
            "messageId": derived_id(message_id, "back") if message_id else None,
        }
        back.pop("anonymousId", None)
        return [
            {**base, "type": "alias", "userId": alias_of, "previousId": distinct_id},
            {k: v for k, v in back.items() if v is not None},
        ]
    if name == "$groupidentify" and properties.get("$group_type") in ACCOUNT_GROUP_TYPES:
        group_key = _id_property(properties, "$group_key")
        if group_key is None:
            raise MessageError("properties.$group_key", "a $groupidentify event needs '$group_key'")
        group_traits = _dict(properties.get("$group_set"), "properties.$group_set")
        # the account's traits; its sender joins it only when already known (``ingest.apply.known_only``)
        group = {**base, "type": "group", "groupId": group_key, "traits": group_traits}
        return [{**group, "context": {"known_only": True}}]
    # an event's person properties update its person as an identify beside it would: an anonymous one's
    # (an identify with the anonymous id alone) wait in the log for the lead its id is linked to
    # (``ingest.apply``); none from an event PostHog keeps no person for
    person = (
        [_identify({**base, "properties": {}}, set_, once, unset)]
        if (set_ or once or unset) and not personless
        else []
    )
    if person and message_id:
        person[0]["messageId"] = derived_id(message_id, "set")
    return [_event(name, base, properties), *person]


def _event(name: str, base: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """A page, screen or track message for a PostHog event that is not about the person."""
    if name == "$pageview":
        page: dict[str, Any] = {**base, "type": "page"}
        if _text(properties.get("$current_url")):
            page["properties"] = {**properties, "url": properties["$current_url"]}
        if _text(properties.get("$pathname")):
            page["properties"] = {**page["properties"], "path": properties["$pathname"]}
        if _text(properties.get("title")) or _text(properties.get("$title")):
            page["name"] = properties.get("$title") or properties.get("title")
        return page
    if name == "$screen":
        return {**base, "type": "screen", "name": _text(properties.get("$screen_name"))}
    return {**base, "type": "track", "event": name}


def as_sent(exc: MessageError, event: Any) -> MessageError:
    """A refusal of one of ``to_segment(event)``'s messages naming, in its path and its message, the field
    of the PostHog event the refused value came from, not the Segment field it became (``traits.email``
    for ``properties.$set.email``: a field the client never sent)."""
    field = exc.problem.field
    if field is None or not isinstance(event, dict):
        return exc
    sent = _sent_field(field, event)
    if sent == field:
        return exc
    message = exc.problem.message
    return MessageError(sent, sent + message[len(field) :] if message.startswith(field) else message)


def _sent_field(field: str, event: dict[str, Any]) -> str:
    """The PostHog field of ``event`` that ``to_segment`` made the Segment ``field`` of (its path within
    it kept), or ``field`` itself (``properties.plan`` is ``properties.plan``)."""
    name = event.get("event")
    properties = event["properties"] if isinstance(event.get("properties"), dict) else {}
    try:
        distinct_id: str | None = distinct_id_of(event, properties)
    except MessageError:
        distinct_id = None
    device_id = _read(properties.get("$device_id"), "properties.$device_id")
    anonymous = "distinct_id" if device_id == distinct_id else "properties.$device_id"
    ids = {"userId": "distinct_id", "anonymousId": anonymous}
    if name in MERGE_EVENTS:  # its first message: the alias as the userId, distinct_id as the previousId
        ids = {"userId": "properties.alias", "previousId": "distinct_id", "anonymousId": anonymous}
    elif (
        name == "$identify"
        and _read(properties.get("$anon_distinct_id"), "properties.$anon_distinct_id")
        and device_id != distinct_id
    ):
        ids = {
            **ids,
            "anonymousId": "properties.$anon_distinct_id",
            "previousId": "properties.$anon_distinct_id",
        }
    try:
        group = _group_of(properties)
    except MessageError:
        group = None
    group_type = ACCOUNT_GROUP_TYPES[0] if group is None else group[0]
    grouped = name == "$groupidentify"
    sent_as = {
        **ids,
        "messageId": "uuid",
        "sentAt": "sent_at",
        "groupId": "properties.$group_key" if grouped else f"properties.$groups.{group_type}",
        "traits": "properties.$group_set" if grouped else _traits_at("$set", event),
        "context.traits_once": _traits_at("$set_once", event),
        "context.traits_unset": _traits_at(UNSET_KEY, event),
    }
    for segment, sent in sent_as.items():
        if field == segment or field.startswith((segment + ".", segment + "[")):
            return sent + field[len(segment) :]
    return field


def _read(value: Any, field: str) -> str | None:
    """``id_text``, None for a value it refuses (a refusal of another field is being named)."""
    try:
        return id_text(value, field)
    except MessageError:
        return None


def _traits_at(key: str, event: dict[str, Any]) -> str:
    """Where the event's ``$set`` or ``$set_once`` is: at the top (posthog-js), else in the properties."""
    return key if isinstance(event.get(key), dict | list) and event[key] else f"properties.{key}"

"""Segment-spec messages → normalised events: type, ids, names, page path, time corrected for clock skew.

Timestamps follow Segment: ``timestamp = receivedAt - (sentAt - originalTimestamp)`` when the client sent
``sentAt``; otherwise ``timestamp`` (or ``originalTimestamp``) as given, else the receive time. An event
more than ``MAX_FUTURE_MS`` after its receive time is rejected (a broken clock, not a real future event).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from leadscore.errors import InputError, Problem

TYPES = ("track", "page", "screen", "identify", "group", "alias")
MAX_FUTURE_MS = 24 * 3600 * 1000
MAX_MESSAGE_BYTES = 32 * 1024


@dataclass(slots=True)
class Message:
    """One normalised Segment message (treated as immutable; not frozen, because a frozen dataclass sets
    each field through ``object.__setattr__``, which doubles the cost of ingesting an event)."""

    message_id: str
    type: str
    ts: int
    received_ms: int
    user_id: str | None = None
    anonymous_id: str | None = None
    name: str | None = None
    path: str | None = None
    url: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    group_id: str | None = None
    previous_id: str | None = None

    @property
    def person_key(self) -> str:
        return f"u:{self.user_id}" if self.user_id else f"a:{self.anonymous_id}"


def parse_time(value: Any, field_name: str) -> int:
    """ISO-8601 text (``Z`` or offset; naive means UTC) or epoch milliseconds → epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"{field_name} is not a time: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"{field_name} is not a time: {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field_name} is not an ISO-8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


# the longest value each field may have: the event log's column sizes, checked per message so one
# oversized message is rejected alone instead of failing the commit of every message grouped with it
MAX_LENGTH = {
    "messageId": 300,
    "userId": 255,
    "anonymousId": 255,
    "groupId": 255,
    "previousId": 255,
    "event": 500,
    "name": 500,
}


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if value.__class__ is not str:  # the common case costs one test; numbers become text, others fail
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{key} must be a string")
        value = str(value)
    if not value:
        return None
    limit = MAX_LENGTH.get(key)
    if limit is not None and len(value) > limit:
        raise ValueError(f"{key} is {len(value)} characters long; at most {limit} are allowed")
    return str(value)


def _mapping(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if value.__class__ is not dict and not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    return value


def derived_message_id(raw: dict[str, Any]) -> str:
    """A deterministic id for a message that has none, so re-importing it adds nothing."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return "derived-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def normalise(raw: Any, *, received_ms: int, default_type: str | None = None) -> Message:
    """Validate and normalise one message; raises ValueError saying which field is wrong.

    The ingest hot path (every tracked event passes here): optional fields are looked at only when the
    message has them.
    """
    if not isinstance(raw, dict):
        raise ValueError("a message is a JSON object")
    kind = raw.get("type") or default_type
    if kind not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)}, not {kind!r}")
    user_id, anonymous_id = _text(raw, "userId"), _text(raw, "anonymousId")
    if not user_id and not anonymous_id and kind != "alias":
        raise ValueError("userId or anonymousId is required")
    context = _mapping(raw, "context")
    properties = _mapping(raw, "properties")
    traits = _mapping(raw, "traits") or (_mapping(context, "traits") if context else {})
    received = parse_time(raw["receivedAt"], "receivedAt") if raw.get("receivedAt") else received_ms
    stamp_field = (
        "timestamp" if raw.get("timestamp") else "originalTimestamp" if raw.get("originalTimestamp") else None
    )
    if stamp_field is None:
        ts = received
    else:
        ts = parse_time(raw[stamp_field], stamp_field)
        if raw.get("sentAt"):
            ts = received - (parse_time(raw["sentAt"], "sentAt") - ts)
    if ts > received + MAX_FUTURE_MS:
        raise ValueError(f"timestamp {ms_to_iso(ts)} is more than 24 h after the message was received")
    name = None
    if kind == "track":
        name = _text(raw, "event")
        if not name:
            raise ValueError("a track message needs 'event'")
    elif kind in ("page", "screen"):
        name = _text(raw, "name") or _text(properties, "name")
    page = _mapping(context, "page") if "page" in context else None
    url = _text(properties, "url") or (_text(page, "url") if page else None)
    path = _text(properties, "path") or (_text(page, "path") if page else None)
    if path is None and url:
        path = urlsplit(url).path or "/"
    previous_id = _text(raw, "previousId") if "previousId" in raw else None
    if kind == "alias" and (not previous_id or not user_id):
        raise ValueError("an alias message needs 'previousId' and 'userId'")
    message_id = _text(raw, "messageId") or derived_message_id(raw)
    return Message(
        message_id=message_id,
        type=kind,
        ts=ts,
        received_ms=received,
        user_id=user_id,
        anonymous_id=anonymous_id,
        name=name,
        path=path,
        url=url,
        properties=properties,
        traits=traits,
        context=context,
        group_id=_text(raw, "groupId") if "groupId" in raw else None,
        previous_id=previous_id,
    )


def parse_line(line: str, number: int, file: str, *, received_ms: int) -> Message:
    """One JSONL line → Message, or InputError naming the line (and column for JSON syntax)."""
    size = len(line.encode())
    if size > MAX_MESSAGE_BYTES:
        raise InputError(
            Problem(f"message is {size} bytes; at most {MAX_MESSAGE_BYTES} are allowed", file, number)
        )
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(Problem(f"invalid JSON: {exc.msg}", file, number, exc.colno)) from None
    try:
        return normalise(raw, received_ms=received_ms)
    except ValueError as exc:
        raise InputError(Problem(str(exc), file, number)) from None

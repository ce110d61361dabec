"""Segment-spec messages → normalised events: type, ids, names, page path, time corrected for clock skew.

Timestamps follow Segment: ``timestamp = receivedAt - (sentAt - originalTimestamp)`` when the client sent
``sentAt``; otherwise ``timestamp`` (or ``originalTimestamp``) as given, else the receive time. The receive
time is the server's; a message's own ``receivedAt`` is honoured only for imports of recorded history. An
event more than ``MAX_FUTURE_MS`` after its receive time is rejected (a broken clock, not a real future
event). Every value must fit the stores (``ingest.limits``); a refusal names the field's path.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import orjson

from leadscore.errors import InputError, MessageError, Problem
from leadscore.ingest.limits import (
    EARLIEST_MS,
    FIELD_LENGTH,
    LATEST_MS,
    check_group,
    check_length,
    check_path,
    check_time,
    check_traits,
    check_unset,
    check_values,
    cut_path,
)
from leadscore.model.text_case import normalise_text, normalise_values

TYPES = ("track", "page", "screen", "identify", "group", "alias")
MAX_FUTURE_MS = 24 * 3600 * 1000
MAX_MESSAGE_BYTES = 32 * 1024
_SHORTEST_FIELD = min(FIELD_LENGTH.values())  # a text this long fits any top-level field's column
EXACT_FLOAT = 2.0**53  # from here on, not every integer is a float: a float id this large is not exact


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
    """ISO-8601 text (``Z`` or offset; naive means UTC) or epoch milliseconds → epoch milliseconds, between
    1970 and the year 9999; MessageError naming ``field_name`` otherwise."""
    if value.__class__ is not str:  # text first: an export's times are
        if isinstance(value, float):
            if not math.isfinite(value):
                raise MessageError(field_name, f"{field_name} is not a finite number")
            value = int(value)
        if value.__class__ is int:
            return check_time(field_name, value)
        if not isinstance(value, str):
            raise MessageError(field_name, f"{field_name} is not a time: {shown(value)}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MessageError(field_name, f"{field_name} is not an ISO-8601 time: {shown(value)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return check_time(field_name, int(moment.timestamp() * 1000))


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it: its repr, shortened (an error body stays small)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _text(raw: dict[str, Any], key: str, where: str = "") -> str | None:
    value = raw.get(key)
    if value.__class__ is str:  # the common case: a text no longer than any column it may land in
        if value and len(value) <= _SHORTEST_FIELD:
            return value
    elif value is None:
        return None
    if value.__class__ is not str:  # the common case costs one test; numbers become text, others fail
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise MessageError(where + key, f"{where}{key} must be a string")
        if not isinstance(value, str):
            # an id is a string or an integer (Segment's spec: a string): a fraction is refused
            if isinstance(value, float) and abs(value) < EXACT_FLOAT and not value.is_integer():
                raise MessageError(where + key, f"{where}{key} must be a string or an integer")
            value = number_text(value, where + key)
    if not value:
        return None
    limit = FIELD_LENGTH.get(key)
    if limit is not None:
        check_length(where + key, value, limit)
    return str(value)


def number_text(value: int | float, field: str) -> str:
    """The text of an id sent as a JSON number (``field``, e.g. ``userId``, PostHog's ``distinct_id``), as
    the clients that send ids as text write it: an integer's digits (``5.0`` is the integer 5, JSON having
    one number type: the user 5, not "5.0"), a fraction as JavaScript writes it (``String(1.5)``, what
    posthog-js' ``identify`` sends for a number and JSON.stringify writes for one, and what
    posthog-python's ``str()`` writes but for its exponents: 1e-07 is "1e-7"). A float from 2**53 on
    (an integer beyond 64 bits reaches here rounded by the JSON parser: 2**64 and 2**64 + 1 would be one
    person), NaN or an infinity is refused, naming ``field``."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):  # NaN and the infinities: no JSON number (the standard parser's)
        raise MessageError(field, f"{field} must be a string or an integer")
    if abs(value) >= EXACT_FLOAT:
        raise MessageError(
            field,
            f"{field} must be a string or an integer: a number this large is not exact (send it as text)",
        )
    if value.is_integer():
        return str(int(value))
    return _javascript_number(value)


def _javascript_number(value: float) -> str:
    """``String(value)`` in JavaScript (ECMAScript's Number::toString): the shortest digits that read back
    as ``value`` (Python's ``repr`` finds the same), fixed-point from 1e-6 to 1e21, else ``1.5e-7``."""
    if value < 0:
        return "-" + _javascript_number(-value)
    shortest = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, shortest.digits))
    point = int(shortest.exponent) + len(digits)  # digits before the decimal point
    if len(digits) <= point <= 21:
        return digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return f"{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent = point - 1
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def sent_at_given(value: Any) -> bool:
    """Whether a message or its envelope gives a send time (``sentAt``, PostHog's ``sent_at``): absent, null
    and "" give none; epoch milliseconds 0 is 1970-01-01, a time like any other (as ``timestamp: 0`` is),
    and corrects the clock as any other send time does."""
    return value is not None and value != ""


def _id(raw: dict[str, Any], key: str) -> str | None:
    """A person's id (``userId``, ``anonymousId``, ``previousId``) or an account's (``groupId``) as ``_text``
    reads it; one of whitespace only is no id (it would be a person of its own, ``u:   ``, or one account of
    everyone sent with it), refused as a missing one is, naming the field (PostHog's ``distinct_id``,
    ``$group_key`` and ``$groups`` values are among these: ``ingest.posthog``)."""
    value = _text(raw, key)
    if value is not None and value.isspace():
        raise MessageError(key, f"{key} is blank (whitespace only): an id is required")
    return value


def _mapping(raw: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if value.__class__ is not dict and not isinstance(value, dict):
        raise MessageError(where + key, f"{where}{key} must be an object")
    return value


def _url_path(url: str) -> str | None:
    """The path of a URL; None for text that does not parse as one (``http://[::1``): the URL is kept."""
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


def derived_message_id(raw: dict[str, Any]) -> str:
    """A deterministic id for a message that has none, so re-importing it adds nothing."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return "derived-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def normalise(
    raw: Any, *, received_ms: int, default_type: str | None = None, trust_received_at: bool = False
) -> Message:
    """Validate and normalise one message; raises MessageError (a ValueError) naming the field.

    ``received_ms`` is the server's receive time; ``trust_received_at`` honours the message's own
    ``receivedAt`` instead (imports of recorded history; never a live client, which could date its
    events anywhere). The ingest hot path (every tracked event passes here): optional fields are looked
    at only when the message has them.
    """
    if not isinstance(raw, dict):
        raise MessageError(None, "a message is a JSON object")
    check_values(raw)
    kind = raw.get("type") or default_type
    if kind not in TYPES:
        raise MessageError("type", f"type must be one of {', '.join(TYPES)}, not {shown(kind)}")
    user_id, anonymous_id = _id(raw, "userId"), _id(raw, "anonymousId")
    if not user_id and not anonymous_id and kind != "alias":
        raise MessageError("userId", "userId or anonymousId is required")
    context = _mapping(raw, "context")
    properties = _mapping(raw, "properties")
    traits, traits_at = _mapping(raw, "traits"), "traits"
    if not traits and context:
        traits, traits_at = _mapping(context, "traits", "context."), "context.traits"
    received = received_ms
    # a time is missing only when absent or null: epoch milliseconds 0 is 1970-01-01, a time like any other
    if trust_received_at and raw.get("receivedAt") not in (None, ""):
        received = parse_time(raw["receivedAt"], "receivedAt")
        if received > received_ms + MAX_FUTURE_MS:
            raise MessageError(
                "receivedAt", f"receivedAt {ms_to_iso(received)} is more than 24 h after the import"
            )
    for key in ("timestamp", "originalTimestamp"):
        # missing (or null) means "when it arrived"; an empty text is a broken export, and reading it as
        # the import time would move the newest data to now
        if isinstance(raw.get(key), str) and not raw[key].strip():
            raise MessageError(key, f"{key} is empty; leave it out to mean the time the message arrived")
    stamp_field = (
        "timestamp"
        if raw.get("timestamp") is not None
        else "originalTimestamp"
        if raw.get("originalTimestamp") is not None
        else None
    )
    corrected = ""
    if stamp_field is None:
        ts = received
    else:
        ts = parse_time(raw[stamp_field], stamp_field)
        if sent_at_given(raw.get("sentAt")):
            # the client's clock is off by (sentAt - its receive time): its timestamp is too
            ts = received - (parse_time(raw["sentAt"], "sentAt") - ts)
            corrected = " corrected for the sender's clock (sentAt)"
            if not EARLIEST_MS <= ts <= LATEST_MS:
                raise MessageError(stamp_field, f"{stamp_field}{corrected} falls outside 1970 to 9999")
    if ts > received + MAX_FUTURE_MS:
        raise MessageError(
            stamp_field,
            f"timestamp{corrected} {ms_to_iso(ts)} is more than 24 h after the message was received",
        )
    name, name_field = None, "event"
    if kind == "track":
        name = _text(raw, "event")
        if not name:
            raise MessageError("event", "a track message needs 'event'")
    elif kind in ("page", "screen"):
        name, name_field = _text(raw, "name"), "name"
        if not name:
            name, name_field = _text(properties, "name", "properties."), "properties.name"
    page = _mapping(context, "page", "context.") if "page" in context else None
    url = _text(properties, "url", "properties.") or (_text(page, "url", "context.page.") if page else None)
    path, path_field = _text(properties, "path", "properties."), "properties.path"
    if path is None and page:
        path, path_field = _text(page, "path", "context.page."), "context.page.path"
    if path is None and url:
        path = _url_path(url)
        path_field = "properties.url" if _text(properties, "url", "properties.") else "context.page.url"
    if name is not None and not name.isascii():
        # its length as kept: NFC lengthens a few letters (U+FB2C is three characters)
        name = normalise_text(name)
        check_length(name_field, name, FIELD_LENGTH["event"])
    if path is not None:
        path = normalise_text(path)
        if kind == "track" and path_field.startswith("context."):
            # the page a browser SDK adds to every track message: the event is not about it, so a path
            # over the limit is cut (as a stored one is), never the reason a conversion is refused
            path = cut_path(path)
        else:
            check_path(path_field, path)
    previous_id = _id(raw, "previousId") if "previousId" in raw else None
    if kind == "alias" and (not previous_id or not user_id):
        missing = "previousId" if not previous_id else "userId"
        raise MessageError(missing, "an alias message needs 'previousId' and 'userId'")
    group_id = _id(raw, "groupId") if "groupId" in raw else None
    if traits:
        check_traits(traits, traits_at, names=kind != "group")
        if kind == "group":
            check_group(traits, group_id, traits_at)
    if context and "traits_once" in context:
        # leadscore's own key (PostHog's $set_once): traits set only where the lead has no value yet
        check_traits(_mapping(context, "traits_once", "context."), "context.traits_once")
    if context and "traits_unset" in context:
        # leadscore's own key (PostHog's $unset): trait names removed from the lead
        check_unset(context["traits_unset"], "context.traits_unset")
    message_id = _text(raw, "messageId") or derived_message_id(raw)
    if properties:
        properties = normalise_values(properties)  # in NFC, as rules' literals are (model.text_case)
    # positionally, in the fields' order (keywords cost a tenth of normalising a message)
    return Message(
        message_id, kind, ts, received, user_id, anonymous_id, name, path, url,
        properties, traits, context, group_id, previous_id,
    )  # fmt: skip


def parse_line(line: str, number: int, file: str, *, received_ms: int) -> Message:
    """One JSONL line → Message, or InputError naming the line (and column for JSON syntax, the field
    path for a value). The line is parsed as the tracking API parses a body, and its ``receivedAt`` is
    honoured (an import of recorded history)."""
    size = len(line.encode(errors="surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise InputError(
            Problem(f"message is {size} bytes; at most {MAX_MESSAGE_BYTES} are allowed", file, number)
        )
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InputError(Problem(f"invalid JSON: {exc.msg}", file, number, exc.colno)) from None
    return line_message(raw, number, file, received_ms=received_ms)


def line_message(raw: Any, number: int, file: str, *, received_ms: int) -> Message:
    """A line's decoded JSON value → Message, or InputError naming the line and the field's path."""
    try:
        return normalise(raw, received_ms=received_ms, trust_received_at=True)
    except MessageError as exc:
        raise InputError(Problem(str(exc), file, number, field=exc.problem.field)) from None

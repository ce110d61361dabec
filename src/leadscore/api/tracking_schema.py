"""The tracking API's bodies as JSON Schema, for the OpenAPI document only: the Segment messages (track,
page, screen, identify, group, alias, a batch of them) and the answers.

Nothing validates with these schemas: the tracking routes read their bodies themselves and
``ingest.segment.normalise`` decides (with the limits of ``ingest.limits``). The schemas spell the same
rules, built from the same constants, so a client or a schema-driven fuzzer can produce messages that are
stored. Rules JSON Schema cannot say are in the descriptions: nesting depth, and that an event time (after
the ``sentAt`` correction) may not lie more than 24 h after its receipt.
"""

from __future__ import annotations

from typing import Any

from leadscore.ingest.attributes import snake
from leadscore.ingest.limits import (
    ACCOUNT_DOMAIN_LENGTH,
    ACCOUNT_NAME_LENGTH,
    EARLIEST_MS,
    EMAIL_DOMAIN_LENGTH,
    FIELD_LENGTH,
    LATEST_MS,
    LEAD_LENGTH,
    MAX_DEPTH,
)
from leadscore.ingest.person_names import REFUSED_CONTROLS
from leadscore.ingest.segment import MAX_FUTURE_MS, TYPES
from leadscore.store.schema import INT64_MAX, INT64_MIN

Schema = dict[str, Any]
NO_NUL = "^[^\\x00]*$"  # PostgreSQL holds no NUL in text or JSONB
# a name's text: no control character but whitespace (``ingest.person_names.REFUSED_CONTROLS``)
NAME_TEXT = "^[^" + "".join(f"\\x{ord(ch):02x}" for ch in REFUSED_CONTROLS) + "]*$"
# a person's id has a character that is not whitespace (``ingest.segment._id``: ``str.isspace``, whose
# characters all lie below U+3001), and no NUL
_SPACES = "".join(f"\\u{c:04x}" for c in range(0x3001) if chr(c).isspace())
PERSON_ID = f"^[^\\x00]*[^\\x00{_SPACES}][^\\x00]*$"
# an ISO-8601 time from 1971 (an offset could take 1970-01-01 before the epoch) to 9999, in the forms
# clients send; days 29 to 31 left out, as JSON Schema has no calendar
ISO_TIME = (
    "^(197[1-9]|19[89][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
NAMES = {kind: kind.capitalize() for kind in TYPES}  # the schema of a track message is TrackMessage


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(max_length: int | None = None, min_length: int = 0) -> Schema:
    schema: Schema = {"type": "string", "pattern": NO_NUL}
    if max_length is not None:
        schema["maxLength"] = max_length
    if min_length:
        schema["minLength"] = min_length
    return schema


NUMBER: Schema = {"type": "number", "minimum": INT64_MIN, "maximum": INT64_MAX}
# an id sent as a number is read as its integer's text: an integer within 64 bits (``5.0`` is the integer
# 5, for JSON Schema and for ``ingest/segment.py: _text`` alike; 1.5 is refused). Past ``EXACT_FLOAT`` only an
# integer literal is exact (a literal such as 1e16 is read as a float and refused: stricter than JSON
# Schema, which sees one number)
ID_NUMBER: Schema = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}


def _id(max_length: int | None, description: str, *, required: bool = False, person: bool = False) -> Schema:
    """A text field of the event log: a string (numbers are read as their text); null or "" is absent. A
    ``person``'s id (userId, anonymousId, previousId; an account's groupId too) is not of whitespace only."""
    text = _text(max_length, 1 if required else 0)
    if person:
        text["pattern"] = PERSON_ID if required else f"{PERSON_ID}|^$"
    choices = [text, ID_NUMBER]
    if not required:
        choices.append({"type": "null"})
    return {"anyOf": choices, "description": description}


def _object(properties: dict[str, Schema], description: str, *, nullable: bool = True) -> Schema:
    return {
        "type": ["object", "null"] if nullable else "object",
        "description": description,
        "properties": properties,
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": ref("JsonValue"),
    }


def _named_key() -> str:
    """A trait's key names an attribute (``ingest.limits.check_traits`` refuses one of no letter or digit):
    it holds a character that is one by itself (``model.names.snake``), of the Basic Multilingual
    Plane (the schema is stricter than the app beyond it), and no NUL."""
    named = [c for c in range(0x30, 0x10000) if not 0xD800 <= c < 0xE000 and snake(chr(c))]
    ranges: list[list[int]] = []
    for c in named:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    spelled = "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)
    return f"^[^\\x00]*[{spelled}][^\\x00]*$"


def _traits(group: bool) -> Schema:
    # the keys are read under their canonical names (ingest.attributes): email, Email Address and e_mail
    # are one trait; the lengths are the lead's (and for a group the account's) columns
    company = _text(LEAD_LENGTH["company"])
    if not group:  # Segment's company object; a group's company is its account's name, text only
        named = _object({"name": _text(LEAD_LENGTH["company"])}, "the company, by name", nullable=False)
        company = {"anyOf": [company, named]}
    email = {
        **_text(LEAD_LENGTH["email"]),
        # the part after the last '@' (the e-mail domain) fits its column too
        "pattern": f"^([^@\\x00]*@)*[^@\\x00]{{0,{EMAIL_DOMAIN_LENGTH}}}$",
        "description": f"at most {LEAD_LENGTH['email']} characters, its domain at most {EMAIL_DOMAIN_LENGTH}",
    }
    properties: dict[str, Schema] = {
        "email": email,
        "firstName": {**_text(LEAD_LENGTH["first_name"]), "pattern": NAME_TEXT},
        "lastName": {**_text(LEAD_LENGTH["last_name"]), "pattern": NAME_TEXT},
        # no maxLength: ingest.person_names bounds the parts a full name gives, each by its column, after
        # folding its blanks (511 characters as "First Last", 512 as "Last, First", more with blanks that
        # fold); a bound on the whole text would refuse names the parser keeps
        "name": {
            **_text(),
            "pattern": NAME_TEXT,
            "description": (
                "a full name: its first word the first name, the rest the last name ('Last, First' read so, "
                "one word a first name: docs/ingest.md 'Names'); each part, its runs of whitespace folded, "
                f"at most {LEAD_LENGTH['first_name']} (first) and {LEAD_LENGTH['last_name']} (last) characters"
            ),
        },
        "company": company,
    }
    if group:
        properties["website"] = _text(ACCOUNT_DOMAIN_LENGTH)
        properties["domain"] = _text(ACCOUNT_DOMAIN_LENGTH)
        properties["company"] = _text(ACCOUNT_NAME_LENGTH)
    traits = _object(
        properties,
        "Traits; other keys are attributes. Spellings of the same trait (firstName, first_name, First Name) "
        "are one trait and share its limit; a key of no letter or digit names no attribute and is refused.",
    )
    return {**traits, "propertyNames": {"pattern": _named_key()}}


def _context(traits: str) -> Schema:
    page = _object(
        {"url": _id(None, "the page's URL"), "path": _id(None, "the page's path")},
        "the page the event is from",
    )
    return _object(
        {"page": page, "traits": ref(traits), "ip": {"description": "protected before storage (ingest.ip)"}},
        "Segment context: library, page, ip (truncated or hashed), traits (read when the message has none)",
    )


def _properties(page: bool) -> Schema:
    properties: dict[str, Schema] = {"url": _id(None, "the page's URL"), "path": _id(None, "the page's path")}
    if page:
        properties["name"] = _id(FIELD_LENGTH["name"], "the page's name (when the message has none)")
    return _object(properties, "event properties")


def _common(kind: str) -> dict[str, Schema]:
    group = kind == "group"
    return {
        "type": {"const": kind, "description": "the message type (a single message's path sets it)"},
        "messageId": _id(
            FIELD_LENGTH["messageId"], "unique per message; a resend is stored once (derived when absent)"
        ),
        "userId": _id(FIELD_LENGTH["userId"], "the person's id in your systems", person=True),
        "anonymousId": _id(FIELD_LENGTH["anonymousId"], "the visitor's cookie id", person=True),
        "timestamp": ref("Time"),
        "originalTimestamp": ref("Time"),
        "sentAt": ref("Time"),
        "receivedAt": {"description": "ignored: the receive time is the server's"},
        "context": ref("GroupContext" if group else "Context"),
        "traits": ref("GroupTraits" if group else "Traits"),
        "properties": ref("PageProperties" if kind in ("page", "screen") else "Properties"),
        "integrations": {
            "type": ["object", "null"],
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": ref("JsonValue"),
        },
        "writeKey": {"type": "string", "description": "the write key, when not sent as HTTP Basic user name"},
    }


def message(kind: str) -> Schema:
    """One message of ``kind`` as ``ingest.segment.normalise`` accepts it."""
    properties = _common(kind)
    schema: Schema = {
        "type": "object",
        "title": f"{NAMES[kind]}Message",
        "properties": properties,
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": ref("JsonValue"),
    }
    someone = [
        {"required": [key], "properties": {key: _id(FIELD_LENGTH[key], key, required=True, person=True)}}
        for key in ("userId", "anonymousId")
    ]
    if kind == "track":
        properties["event"] = _id(FIELD_LENGTH["event"], "the event's name", required=True)
        schema["required"] = ["event"]
        schema["anyOf"] = someone
    elif kind in ("page", "screen"):
        properties["name"] = _id(FIELD_LENGTH["name"], f"the {kind}'s name")
        schema["anyOf"] = someone
    elif kind == "group":
        properties["groupId"] = _id(FIELD_LENGTH["groupId"], "the account's id", person=True)
        schema["anyOf"] = someone
    elif kind == "alias":
        properties["previousId"] = _id(
            FIELD_LENGTH["previousId"], "the id being merged", required=True, person=True
        )
        properties["userId"] = _id(
            FIELD_LENGTH["userId"], "the id it is merged into", required=True, person=True
        )
        schema["required"] = ["previousId", "userId"]
    else:
        schema["anyOf"] = someone
    who = "previousId and userId are" if kind == "alias" else "userId or anonymousId is"
    schema["description"] = (
        f"A Segment {kind} message: {who} required. Objects and arrays nest "
        f"at most {MAX_DEPTH} levels (the message is the first); the event time (timestamp, else "
        f"originalTimestamp, corrected by sentAt for the sender's clock) is at most "
        f"{MAX_FUTURE_MS // 3_600_000} h after its receipt and not before 1970."
    )
    return schema


EXAMPLES: dict[str, dict[str, Any]] = {
    "track": {"userId": "u-1", "event": "Signed Up", "properties": {"plan": "pro"}},
    "page": {"anonymousId": "a-1", "name": "Pricing", "properties": {"url": "https://example.com/pricing"}},
    "screen": {"userId": "u-1", "name": "Settings"},
    "identify": {"userId": "u-1", "traits": {"email": "ada@example.com", "name": "Ada Lovelace"}},
    "group": {"userId": "u-1", "groupId": "g-1", "traits": {"company": "Example", "website": "example.com"}},
    "alias": {"previousId": "a-1", "userId": "u-1"},
}


def components() -> dict[str, Schema]:
    """Every schema the tracking bodies refer to, named for ``components.schemas``."""
    out: dict[str, Schema] = {
        "JsonValue": {
            "description": (
                f"Any JSON value a store can hold: no NUL character in text or keys, integers within 64 bits, "
                f"at most {MAX_DEPTH} levels of nesting"
            ),
            "anyOf": [
                {"type": "null"},
                {"type": "boolean"},
                NUMBER,
                _text(),
                {"type": "array", "items": ref("JsonValue")},
                {
                    "type": "object",
                    "propertyNames": {"pattern": NO_NUL},
                    "additionalProperties": ref("JsonValue"),
                },
            ],
        },
        "Time": {
            "description": "ISO-8601 text (Z or an offset) or epoch milliseconds, between 1970 and 9999 (UTC)",
            "anyOf": [
                {"type": "string", "pattern": ISO_TIME},
                {"type": "number", "minimum": EARLIEST_MS, "maximum": LATEST_MS},
            ],
        },
        "Traits": _traits(group=False),
        "GroupTraits": _traits(group=True),
        "Context": _context("Traits"),
        "GroupContext": _context("GroupTraits"),
        "Properties": _properties(page=False),
        "PageProperties": _properties(page=True),
    }
    for kind in TYPES:
        out[f"{NAMES[kind]}Message"] = message(kind)
    out["Batch"] = {
        "type": "object",
        "required": ["batch"],
        "description": (
            "Messages of any type; each needs its type. context and integrations apply to the messages "
            "that have none, sentAt to those without one. Good messages are stored, bad ones listed."
        ),
        "properties": {
            "batch": {
                "type": "array",
                "items": {
                    "oneOf": [
                        {"allOf": [ref(f"{NAMES[kind]}Message"), {"required": ["type"]}]} for kind in TYPES
                    ]
                },
            },
            "context": {
                "type": ["object", "null"],
                "propertyNames": {"pattern": NO_NUL},
                "additionalProperties": ref("JsonValue"),
            },
            "integrations": {
                "type": ["object", "null"],
                "propertyNames": {"pattern": NO_NUL},
                "additionalProperties": ref("JsonValue"),
            },
            "sentAt": ref("Time"),
            "writeKey": {
                "type": "string",
                "description": "the write key, when not sent as HTTP Basic user name",
            },
        },
    }
    out["Accepted"] = {
        "type": "object",
        "required": ["ok", "success", "accepted", "duplicates"],
        "properties": {
            "ok": {"const": True},
            "success": {"const": True, "description": "what Segment's libraries look for"},
            "accepted": {"type": "integer", "minimum": 0, "description": "messages stored durably"},
            "duplicates": {
                "type": "integer",
                "minimum": 0,
                "description": "of those, messages whose messageId was already stored (kept once)",
            },
        },
    }
    refusal = {
        "type": "object",
        "required": ["index", "messageId", "field", "message"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "messageId": {"type": ["string", "null"]},
            "field": {
                "type": ["string", "null"],
                "description": "the refused value's path, e.g. batch[3].userId",
            },
            "message": {"type": "string"},
        },
    }
    out["BatchAccepted"] = {
        "allOf": [
            ref("Accepted"),
            {
                "type": "object",
                "required": ["rejected", "rejected_count"],
                "properties": {
                    "rejected": {
                        "type": "array",
                        "items": refusal,
                        "description": "the first refused messages",
                    },
                    "rejected_count": {"type": "integer", "minimum": 0},
                },
            },
        ]
    }
    return out


def request_body(kind: str | None) -> Schema:
    """The ``requestBody`` of a tracking route: a message of ``kind``, or a batch (None)."""
    name = "Batch" if kind is None else f"{NAMES[kind]}Message"
    example = {"batch": [{"type": k, **EXAMPLES[k]} for k in TYPES]} if kind is None else EXAMPLES[kind]
    return {
        "required": True,
        "content": {
            "application/json": {"schema": ref(name), "example": example},
            "text/plain": {
                "schema": {
                    "type": "string",
                    "description": "the same JSON as text (what analytics.js sends, to avoid a CORS preflight)",
                }
            },
        },
    }

"""Hypothesis strategies of hostile tracking requests: ordinary Segment messages with values placed
anywhere in them that no store can hold or that a careless parser trips on (NUL, lone surrogates,
integers beyond 64 bits, times outside 1970 to 9999, text longer than its column, deep nesting, wrong
types, NaN and other text that is not JSON), sent alone or inside batches with good messages.

A request is drawn as JSON *text*: some hostile inputs cannot be written by a JSON library (NaN, a
nesting deeper than its encoder allows), so they are spelled as ``Raw`` fragments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

TYPES = ("track", "page", "screen", "identify", "group", "alias")
SHORT = {"track": "t", "page": "p", "screen": "s", "identify": "i", "group": "g", "alias": "a"}


@dataclass(frozen=True)
class Raw:
    """A value spelled as this JSON text, as it is."""

    text: str


def to_json(value: Any) -> str:
    """JSON text with ``Raw`` fragments in place; lone surrogates written as ``\\ud800`` escapes."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)  # NaN and Infinity come out as the non-JSON tokens they are


def nested(depth: int, arrays: bool = False) -> Raw:
    """A value ``depth`` objects (or arrays) deep."""
    return Raw(("[" * depth + "1" + "]" * depth) if arrays else ('{"a":' * depth + "1" + "}" * depth))


HOSTILE_CONSTANTS: list[Any] = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -1e19,
    1e20,
    1e308,
    Raw("99999999999999999999999"),
    Raw("-99999999999999999999999"),
    Raw("1e400"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    True,
    None,
    [],
    {},
    "",
    " ",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "1969-12-31T23:59:59Z",
    "2024-13-45T00:00:00Z",
    "+275760-09-13T00:00:00Z",
    "http://[::1",
    "http://[zz]/p",
]

hostile_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(HOSTILE_CONSTANTS),
    st.sampled_from([254, 255, 256, 300, 301, 320, 321, 500, 501, 2000]).map(lambda n: "x" * n),
    st.sampled_from([30, 31, 32, 33, 40, 256, 1000]).flatmap(
        lambda d: st.booleans().map(lambda arrays: nested(d, arrays))
    ),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=12),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
)

hostile_keys: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["\x00", "a\x00", "\ud800", "k" * 1000, "", "a.b", "a b", "$", "__proto__"]),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=8),
)

# where a hostile value goes: a dotted path into the message (missing objects are created)
FIELDS = (
    "userId",
    "anonymousId",
    "messageId",
    "event",
    "name",
    "groupId",
    "previousId",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "receivedAt",
    "type",
    "properties",
    "properties.p",
    "properties.path",
    "properties.url",
    "properties.name",
    "properties.deep.er",
    "traits",
    "traits.email",
    "traits.firstName",
    "traits.lastName",
    "traits.name",
    "traits.company",
    "traits.company.name",
    "traits.website",
    "traits.domain",
    "traits.employees",
    "context",
    "context.traits.email",
    "context.page",
    "context.page.url",
    "context.page.path",
    "context.ip",
    "integrations",
)


def put(message: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (dotted) in ``message`` to ``value``, creating (or replacing) objects on the way."""
    *parents, last = path.split(".")
    here = message
    for key in parents:
        if not isinstance(here.get(key), dict):
            here[key] = {}
        here = here[key]
    here[last] = value


@st.composite
def good_messages(draw: st.DrawFn, index: int = 0) -> dict[str, Any]:
    """An ordinary message of any type (as Segment libraries send them)."""
    kind = draw(st.sampled_from(TYPES))
    user = f"user-{draw(st.integers(0, 5))}"
    message: dict[str, Any] = {"type": kind, "userId": user, "messageId": f"good-{index}-{draw(st.uuids())}"}
    if kind == "track":
        message["event"] = draw(st.sampled_from(["Signed Up", "Demo Requested", "Clicked"]))
        message["properties"] = {"plan": "team", "value": draw(st.integers(0, 1000))}
    elif kind in ("page", "screen"):
        message["properties"] = {"path": "/pricing", "url": "https://example.com/pricing"}
    elif kind == "identify":
        message["traits"] = {"email": f"{user}@example.com", "firstName": "Ada", "company": "Acme"}
    elif kind == "group":
        message["groupId"] = "acme"
        message["traits"] = {"name": "Acme", "website": "https://acme.example"}
    else:
        message["previousId"] = f"anon-{user}"
    if draw(st.booleans()):
        message["context"] = {"page": {"path": "/x"}, "ip": "203.0.113.9"}
    return message


@st.composite
def hostile_messages(draw: st.DrawFn, index: int = 0) -> dict[str, Any]:
    """An ordinary message with one to three values (or keys) replaced by hostile ones."""
    message = draw(good_messages(index))
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 5)) == 0:
            where = draw(st.sampled_from(["properties", "traits", "context", "properties.deep"]))
            put(message, f"{where}.x", None)
            parent = message
            for key in where.split("."):
                parent = parent[key]
            parent.pop("x")
            parent[draw(hostile_keys)] = draw(hostile_values)
        else:
            put(message, draw(st.sampled_from(FIELDS)), draw(hostile_values))
    return message


@dataclass(frozen=True)
class Request:
    """A tracking request: the path, the body as sent, and how many messages a batch holds."""

    path: str
    body: str
    items: int | None = None
    origin: bool = False  # browsers send one (the full middleware stack); server libraries do not


@st.composite
def hostile_requests(draw: st.DrawFn) -> Request:
    """One hostile message to its endpoint, or a batch mixing hostile and good messages."""
    origin = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        items = [
            draw(hostile_messages(i)) if draw(st.booleans()) else draw(good_messages(i))
            for i in range(draw(st.integers(1, 6)))
        ]
        path = draw(st.sampled_from(["/v1/batch", "/v1/b", "/v1/import"]))
        body: dict[str, Any] = {"batch": items}
        if draw(st.booleans()):
            body["sentAt"] = draw(st.one_of(st.just("2024-01-01T00:00:00Z"), hostile_values))
        if draw(st.booleans()):
            body["context"] = {"ip": draw(st.one_of(st.just("203.0.113.1"), hostile_values))}
        return Request(path, to_json(body), len(items), origin)
    message = draw(hostile_messages())
    kind = message.get("type") if message.get("type") in TYPES else "track"
    path = f"/v1/{kind}" if draw(st.booleans()) else f"/v1/{SHORT[kind]}"
    return Request(path, to_json(message), None, origin)

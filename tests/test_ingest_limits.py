"""What the stores can hold, checked per message (ingest/limits.py): each refusal names the field's path,
each value at a limit is accepted, and whatever normalise accepts can be stored (a property over hostile
messages). JSON Lines imports share the checks and honour ``receivedAt``; the HTTP API does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hostile_strategies import hostile_messages, to_json
from leadscore.errors import MessageError
from leadscore.ingest.apply import event_row
from leadscore.ingest.attributes import coerce
from leadscore.ingest.csv_import import import_leads
from leadscore.ingest.jsonl_import import import_events
from leadscore.ingest.limits import FIELD_LENGTH, MAX_DEPTH, PATH_BYTES
from leadscore.ingest.segment import normalise, parse_line
from leadscore.scoring.pipeline import ingest
from leadscore.store import Store
from leadscore.store.event_log import stored_message_ids
from leadscore.store.schema import events, identities, leads

NOW = 1_717_200_000_000  # 2024-06-01T00:00:00Z
DAY = 86_400_000


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u", "event": "E", **fields}


# message → (field path, the error's text): written by hand from the limits in store/schema.py
REFUSED: list[tuple[dict[str, Any], str | None, str]] = [
    (track(timestamp=-1e19), "timestamp", "timestamp is not a time between 1970-01-01 and 9999-12-31 (UTC)"),
    (track(timestamp=1e20), "timestamp", "timestamp is not a time between 1970-01-01 and 9999-12-31 (UTC)"),
    (track(timestamp=-1), "timestamp", "timestamp is not a time between 1970-01-01 and 9999-12-31 (UTC)"),
    (track(timestamp=float("inf")), "timestamp", "timestamp is not a finite number"),
    (track(sentAt="1970-01-01T00:00:00Z", timestamp="9999-12-31T00:00:00Z"), "timestamp",
     "timestamp corrected for the sender's clock (sentAt) falls outside 1970 to 9999"),
    (track(timestamp="2024-06-03T00:00:01Z"), "timestamp",
     "timestamp 2024-06-03T00:00:01Z is more than 24 h after the message was received"),
    (track(userId="u\x00"), "userId", "userId has a NUL character (\\u0000)"),
    (track(event="E\x00"), "event", "event has a NUL character (\\u0000)"),
    (track(messageId="\x00"), "messageId", "messageId has a NUL character (\\u0000)"),
    (track(properties={"a": {"b": "\x00"}}), "properties.a.b", "properties.a.b has a NUL character (\\u0000)"),
    (track(properties={"a": ["x", "\ud800"]}), "properties.a[1]",
     "properties.a[1] has a lone surrogate (not UTF-8)"),
    (track(properties={"k\x00": 1}), 'properties["k\\u0000"]',
     'properties["k\\u0000"] has a NUL character (\\u0000) in its name'),
    (track(properties={"n": 2**63}), "properties.n", "properties.n is an integer beyond the 64-bit range"),
    (track(properties={"n": -(2**63) - 1}), "properties.n", "properties.n is an integer beyond the 64-bit range"),
    (track(properties={"n": float("nan")}), "properties.n", "properties.n is not a finite number"),
    (track(context={"x": [float("-inf")]}), "context.x[0]", "context.x[0] is not a finite number"),
    (track(properties={"p": deep(31)}), "properties.p" + ".a" * 30,
     f"properties.p{'.a' * 30} nests objects and arrays more than {MAX_DEPTH} levels deep"),
    (track(userId="u" * 256), "userId", "userId is 256 characters long; at most 255 are allowed"),
    (track(messageId="m" * 301), "messageId", "messageId is 301 characters long; at most 300 are allowed"),
    (track(event="e" * 501), "event", "event is 501 characters long; at most 500 are allowed"),
    ({"type": "page", "userId": "u", "properties": {"name": "n" * 501}}, "properties.name",
     "properties.name is 501 characters long; at most 500 are allowed"),
    ({"type": "identify", "userId": "u", "traits": {"Email": "e" * 309 + "@example.com"}}, "traits.Email",
     "traits.Email is 321 characters long; at most 320 are allowed"),
    # stored in lower case, where "İ" is two characters: the length sent (320) is told, and the lower case's
    ({"type": "identify", "userId": "u", "traits": {"email": "İ" * 310 + "@x.example"}}, "traits.email",
     "traits.email is 320 characters long, 630 in lower case as it is stored; at most 320 are allowed"),
    ({"type": "identify", "userId": "u", "traits": {"email": "e@" + "d" * 256}}, "traits.email",
     "traits.email has a domain of 256 characters; at most 255 are allowed"),
    ({"type": "identify", "userId": "u", "traits": {"first_name": "f" * 256}}, "traits.first_name",
     "traits.first_name is 256 characters long; at most 255 are allowed"),
    ({"type": "identify", "userId": "u", "traits": {"name": "f" * 256 + " Last"}}, "traits.name",
     "traits.name gives a first name of 256 characters; at most 255 are allowed"),
    ({"type": "identify", "userId": "u", "traits": {"company": {"name": "c" * 501}}}, "traits.company.name",
     "traits.company.name is 501 characters long; at most 500 are allowed"),
    ({"type": "track", "userId": "u", "event": "E", "context": {"traits": {"lastName": "l" * 256}}},
     "context.traits.lastName", "context.traits.lastName is 256 characters long; at most 255 are allowed"),
    ({"type": "group", "userId": "u", "groupId": "g", "traits": {"website": "http://www." + "w" * 256}},
     "traits.website", "traits.website is 256 characters long; at most 255 are allowed"),
    ({"type": "group", "userId": "u", "groupId": "g", "traits": {"company": "c" * 501}}, "traits.company",
     "traits.company is 501 characters long; at most 500 are allowed"),
    # a page path: 1,000 bytes of UTF-8, given or read from the URL ("é" is 2 bytes, "😀" 4)
    ({"type": "page", "userId": "u", "properties": {"path": "/" + "p" * 1000}}, "properties.path",
     "properties.path is 1,001 bytes long in UTF-8; a page path may have at most 1,000"),
    ({"type": "page", "userId": "u", "properties": {"path": "/" + "é" * 500}}, "properties.path",
     "properties.path is 1,001 bytes long in UTF-8; a page path may have at most 1,000"),
    ({"type": "page", "userId": "u", "context": {"page": {"path": "/" + "😀" * 250}}}, "context.page.path",
     "context.page.path is 1,001 bytes long in UTF-8; a page path may have at most 1,000"),
    ({"type": "page", "userId": "u", "properties": {"url": "https://a.example/" + "p" * 1000 + "?q=1"}},
     "properties.url", "properties.url is 1,001 bytes long in UTF-8; a page path may have at most 1,000"),
    ({"type": "page", "userId": "u", "context": {"page": {"url": "https://a.example/" + "p" * 1000}}},
     "context.page.url", "context.page.url is 1,001 bytes long in UTF-8; a page path may have at most 1,000"),
    (track(userId=["u"]), "userId", "userId must be a string"),
    (track(properties=[]), "properties", "properties must be an object"),
    ({"type": "nope", "userId": "u"}, "type",
     "type must be one of track, page, screen, identify, group, alias, not 'nope'"),
    ({"type": "alias", "userId": "u"}, "previousId", "an alias message needs 'previousId' and 'userId'"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "field", "text"), REFUSED)
def test_a_value_no_store_holds_is_refused_with_its_path(raw: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(MessageError) as caught:
        normalise(raw, received_ms=NOW)
    assert (caught.value.problem.field, str(caught.value)) == (field, text)


def test_values_at_each_limit_are_accepted() -> None:
    m = normalise(
        {
            "type": "identify",
            "userId": "u" * 255,
            "anonymousId": "a" * 255,
            "messageId": "m" * 300,
            "timestamp": 1,
            "traits": {"email": "e" * 64 + "@" + "d" * 255, "firstName": "f" * 255, "company": "c" * 500},
            "properties": {"big": 2**63 - 1, "small": -(2**63), "p": deep(30), "f": 1e308},
        },
        received_ms=NOW,
    )
    assert (m.ts, len(m.message_id), m.traits["email"][-3:]) == (1, 300, "ddd")
    assert normalise(track(timestamp=NOW + DAY), received_ms=NOW).ts == NOW + DAY  # 24 h ahead: accepted


def test_page_paths_at_the_limit_are_accepted() -> None:
    """1,000 bytes of UTF-8: 1,000 ASCII characters, 500 two-byte ones, 250 four-byte ones; and a URL whose
    query makes it longer, its path being within the limit."""
    for path in ("/" + "p" * 999, "/" + "é" * 499 + "p", "/" + "😀" * 249 + "ppp"):
        assert len(path.encode()) == 1000
        m = normalise({"type": "page", "userId": "u", "properties": {"path": path}}, received_ms=NOW)
        assert m.path == path
    url = "https://a.example/" + "p" * 999 + "?q=" + "x" * 5000
    m = normalise({"type": "page", "userId": "u", "properties": {"url": url}}, received_ms=NOW)
    assert (m.path, m.url) == ("/" + "p" * 999, url)


def test_a_track_message_whose_page_context_path_is_too_long_is_kept_with_the_path_cut() -> None:
    """A browser SDK puts the page on every track message: a conversion ("Demo Requested") is not refused
    for it. "/" then 600 × "é" (1,201 bytes) keeps "/" and 499 × "é" (999 bytes): the 500th "é" would end
    at byte 1,001, so the cut falls before it, at a character's boundary."""
    long_path = "/" + "é" * 600
    for page in ({"path": long_path}, {"url": "https://a.example" + long_path + "?q=1"}):
        m = normalise(
            {"type": "track", "userId": "u", "event": "Demo Requested", "context": {"page": page}},
            received_ms=NOW,
        )
        assert (m.name, m.path) == ("Demo Requested", "/" + "é" * 499)
    # the event's own path is what the sender asked to record: over the limit, it is refused
    with pytest.raises(MessageError) as caught:
        normalise(
            {"type": "track", "userId": "u", "event": "E", "properties": {"path": long_path}}, received_ms=NOW
        )
    assert caught.value.problem.field == "properties.path"


def test_an_indexed_event_row_fits_a_postgresql_index_entry() -> None:
    """``ix_events_type_ts_path`` holds type, time, path and person key: at their longest (every character
    4 bytes of UTF-8, the path at PATH_BYTES) they stay under PostgreSQL's 2,704 bytes per entry."""
    type_bytes = 4 * events.c.type.type.length  # type: ignore[attr-defined]
    person_bytes = 4 * events.c.person_key.type.length  # type: ignore[attr-defined]
    assert PATH_BYTES == events.c.path.type.length == 1000  # type: ignore[attr-defined]
    assert type_bytes + 8 + PATH_BYTES + person_bytes + 64 < 2704  # 64: tuple and varlena headers, padding


def test_a_url_that_does_not_parse_gives_no_path_and_is_kept() -> None:
    m = normalise({"type": "page", "userId": "u", "properties": {"url": "http://[::1"}}, received_ms=NOW)
    assert (m.url, m.path) == ("http://[::1", None)


def test_person_keys_fit_their_columns() -> None:
    """``u:``/``a:`` and the longest id fit the identity key and the event's person key."""
    for field in ("userId", "anonymousId", "previousId"):
        assert 2 + FIELD_LENGTH[field] <= identities.c.key.type.length  # type: ignore[attr-defined]
        assert 2 + FIELD_LENGTH[field] <= events.c.person_key.type.length  # type: ignore[attr-defined]


def test_received_at_is_the_servers_except_for_imports() -> None:
    raw = track(
        receivedAt="2020-01-01T00:00:00Z", sentAt="2020-01-01T00:00:10Z", timestamp="2020-01-01T00:00:00Z"
    )
    live = normalise(raw, received_ms=NOW)
    assert (live.received_ms, live.ts) == (NOW, NOW - 10_000)  # corrected against the server's clock
    imported = normalise(raw, received_ms=NOW, trust_received_at=True)
    assert (imported.received_ms, imported.ts) == (1_577_836_800_000, 1_577_836_790_000)
    with pytest.raises(MessageError) as caught:
        normalise(track(receivedAt="9999-01-01T00:00:00Z"), received_ms=NOW, trust_received_at=True)
    assert caught.value.problem.field == "receivedAt"


def test_coerce_keeps_numbers_no_store_holds_as_text() -> None:
    assert coerce("9223372036854775807") == 2**63 - 1
    assert coerce("9223372036854775808") == "9223372036854775808"
    assert coerce("-" + "9" * 5000) == "-" + "9" * 5000  # int() would refuse over 4300 digits
    assert coerce("1" * 400 + ".5") == "1" * 400 + ".5"  # float() gives infinity
    assert coerce("02134") == "02134" and coerce("12.5") == 12.5


def test_jsonl_lines_with_hostile_values_are_reported_and_the_rest_imported(
    store: Store, tmp_path: Path
) -> None:
    lines = [
        '{"type":"track","userId":"j","event":"E","messageId":"j-1"}',
        '{"type":"track","userId":"j","event":"E","messageId":"j-2","properties":{"a":"\\u0000"}}',
        '{"type":"track","userId":"j","event":"E","messageId":"j-3","properties":{"a":"\\ud800"}}',
        '{"type":"track","userId":"j","event":"E","messageId":"j-4","properties":{"n":18446744073709551615}}',
        '{"type":"track","userId":"j","event":"E","messageId":"j-5","timestamp":-1e19}',
        '{"type":"track","userId":"j","event":"E","messageId":"j-6","receivedAt":"9999-01-01T00:00:00Z"}',
        '{"type":"track","userId":"j","event":"E","messageId":"j-7","properties":{"n":NaN}}',
        '{"type":"track","userId":"j","event":"E","messageId":"j-8","receivedAt":"2024-01-01T00:00:00Z"}',
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = import_events(path, lambda messages: ingest(store, messages, source="import"))
    assert [(p.line, p.field) for p in report.problems] == [
        (2, "properties.a"),
        (3, None),  # not JSON: a lone surrogate escape
        (4, "properties.n"),
        (5, "timestamp"),
        (6, "receivedAt"),
        (7, None),  # not JSON: NaN
    ]
    assert report.accepted == 2
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"j-1", "j-8"}


def test_a_jsonl_problem_names_line_and_field() -> None:
    with pytest.raises(Exception) as caught:
        parse_line(
            '{"type":"track","userId":"x","event":"E","properties":{"a":[1,2**9]}}',
            3,
            "f.jsonl",
            received_ms=NOW,
        )
    assert str(caught.value).startswith("f.jsonl:3:")  # invalid JSON: 2**9 is not a number
    with pytest.raises(Exception) as caught:
        parse_line(
            '{"type":"track","userId":"x","event":"E","properties":{"a":[1,"\\u0000"]}}',
            3,
            "f.jsonl",
            received_ms=NOW,
        )
    assert (
        str(caught.value) == "f.jsonl:3 field properties.a[1]: properties.a[1] has a NUL character (\\u0000)"
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@given(raw=hostile_messages())
@settings(max_examples=300, deadline=None)
def test_whatever_normalise_accepts_can_be_stored(raw: dict[str, Any]) -> None:
    """Parsed as the API parses it; if accepted, the event-log row has only what every store holds."""
    try:
        parsed = orjson.loads(to_json(raw))
        message = normalise(parsed, received_ms=NOW)
    except (orjson.JSONDecodeError, MessageError):
        return
    row = event_row(message, "api")
    text = orjson.dumps(row)  # no integer beyond 64 bits, no lone surrogate
    assert b"\\u0000" not in text
    assert 0 <= row["ts"] <= NOW + DAY and row["received_ms"] == NOW
    for name in ("message_id", "name", "person_key", "user_id", "anonymous_id", "group_id", "previous_id"):
        limit = events.c[name].type.length  # type: ignore[attr-defined]
        assert row[name] is None or len(row[name]) <= limit, name
    assert row["path"] is None or len(row["path"].encode()) <= PATH_BYTES
    for s in _strings(orjson.loads(text)):
        assert "\x00" not in s


@given(st.integers())
def test_any_integer_property_is_accepted_exactly_when_it_has_64_bits(n: int) -> None:
    try:
        normalise(track(properties={"n": n}), received_ms=NOW)
        accepted = True
    except MessageError:
        accepted = False
    assert accepted == (-(2**63) <= n < 2**63)


def test_csv_rows_with_values_no_store_holds(store: Store, tmp_path: Path) -> None:
    """A 20-digit number in a numeric column is reported (never kept as text, never stored beyond 64 bits);
    an e-mail whose domain outgrows its column is refused; each row alone."""
    path = tmp_path / "leads.csv"
    long_domain = "d" * 252 + ".com"  # 256 characters
    path.write_text(
        "Email,Employees\n"
        "ok@example.com,99999999999999999999\n"
        f"long@{long_domain},10\n"
        "fine@example.com,9223372036854775807\n"
    )
    report = import_leads(store, path)
    assert [(p.line, p.field) for p in report.problems] == [(2, "Employees"), (3, "Email")]
    assert report.created == 1
    with store.connect() as conn:
        employees = dict(conn.execute(select(leads.c.email, leads.c.attributes)).all())
    assert set(employees) == {"fine@example.com"}
    assert employees["fine@example.com"]["employees"] == 2**63 - 1

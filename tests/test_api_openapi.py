"""The OpenAPI document says what the app does: each route's security is the credential the authorisation
matrix enforces, every refusal is documented in the error envelope, the Segment message schemas accept and
refuse what the parser does at each limit, and a 405 lists the path's methods in ``Allow`` (also for the
tracking paths, whose ``POST`` the tracking lane answers ahead of the app)."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from leadscore.api import create_app
from leadscore.api.tracking_schema import EXAMPLES, NAMES
from leadscore.errors import MessageError
from leadscore.ingest.segment import TYPES, normalise
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from live_server import serving
from test_api_authz import CREDENTIALS, policy

DOC = create_app(Settings()).openapi()
OPERATIONS = [(method, path, op) for path, item in DOC["paths"].items() for method, op in item.items()]
# the credential kinds a security scheme admits (test_api_authz.CREDENTIALS)
ADMITS = {"writeKey": {"write"}, "readToken": {"read", "admin"}, "adminToken": {"admin"}}
NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def validator(name: str) -> Any:
    """A validator of the document's schema ``name`` (its references resolved in the document)."""
    return jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]}
    )


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_security_is_the_credential_the_route_enforces(method: str, path: str, op: dict[str, Any]) -> None:
    requirements = op.get("security", [])
    if requirements:
        admitted = set().union(*(ADMITS[scheme] for r in requirements for scheme in r))
        assert policy(path) == admitted
        assert "401" in op["responses"]
    else:  # public: every credential passes, or none does (the unsubscribe link checks its own signature)
        assert policy(path) in (set(CREDENTIALS), set())
        assert "401" not in op["responses"]


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_every_refusal_is_the_envelope(method: str, path: str, op: dict[str, Any]) -> None:
    refusals = {code: answer for code, answer in op["responses"].items() if int(code) >= 400}
    assert "413" in refusals  # every request passes the body limit
    for answer in refusals.values():
        schema = answer["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"} or schema["allOf"][0] == {
            "$ref": "#/components/schemas/ErrorEnvelope"
        }
    if "requestBody" in op:
        assert "400" in refusals  # a body that is not JSON


def test_fastapis_validation_body_is_gone() -> None:
    assert "HTTPValidationError" not in DOC["components"]["schemas"]
    assert "ValidationError" not in DOC["components"]["schemas"]


def test_public_metrics_declare_no_credential() -> None:
    doc = create_app(Settings(metrics_public=True)).openapi()
    metrics = doc["paths"]["/metrics"]["get"]
    assert "security" not in metrics and "401" not in metrics["responses"]
    assert DOC["paths"]["/metrics"]["get"]["security"] == [{"readToken": []}]


def test_tracking_bodies_are_the_message_schemas() -> None:
    for path, kind in (("/v1/track", "track"), ("/v1/p", "page"), ("/v1/alias", "alias"), ("/v1/b", None)):
        body = DOC["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        name = "Batch" if kind is None else f"{NAMES[kind]}Message"
        assert body["schema"] == {"$ref": f"#/components/schemas/{name}"}
        assert validator(name).is_valid(body["example"])


def _case(kind: str, accepted: bool, **message: Any) -> Any:
    return pytest.param(
        kind, message, accepted, id=f"{kind}-{'ok' if accepted else 'refused'}-{message}"[:90]
    )


W = "https://example.com"
# messages at the limits of ingest.segment and ingest.limits, hand-written: (type, message, accepted)
CASES = [
    *(_case(kind, True, **example) for kind, example in EXAMPLES.items()),
    _case("track", True, anonymousId="a", event="E"),
    _case("track", False, userId="u"),
    _case("track", False, event="E"),
    _case("track", False, userId="", event="E"),  # an empty id is no id
    _case("track", False, userId="   ", event="E"),  # nor is one of whitespace only
    _case("track", False, userId="\u3000", anonymousId="a", event="E"),
    _case("track", False, anonymousId="\t\n", event="E"),
    _case("track", True, userId=" u ", event="E"),  # text around an id is kept
    _case("alias", False, userId="u", previousId=" "),
    _case("alias", False, userId="\x85", previousId="p"),
    _case("track", True, userId=42, event="E"),  # a number is read as its text
    _case("track", False, userId=True, event="E"),
    _case("track", True, userId="x" * 255, event="E"),
    _case("track", False, userId="x" * 256, event="E"),
    _case("track", True, anonymousId="x" * 255, event="E"),
    _case("track", False, anonymousId="x" * 256, event="E"),
    _case("track", True, userId="u", event="e" * 500),
    _case("track", False, userId="u", event="e" * 501),
    _case("track", True, userId="u", event="E", messageId="m" * 300),
    _case("track", False, userId="u", event="E", messageId="m" * 301),
    _case("track", True, userId="u", event="E", properties={"n": 2**63 - 1, "m": -(2**63)}),
    _case("track", False, userId="u", event="E", properties={"n": 2**63}),
    _case("track", False, userId="u", event="E", properties={"deep": [{"s": "a\x00b"}]}),
    _case("track", False, userId="u", event="E", properties={"a\x00": 1}),
    _case("track", True, userId="u", event="E", properties=None),
    _case("track", False, userId="u", event="E", properties="text"),
    _case("track", False, userId="u", event="E", properties={"url": {"href": W}}),
    _case("track", True, userId="u", event="E", timestamp="2023-01-01T00:00:00Z"),
    _case("track", True, userId="u", event="E", timestamp="1971-01-01T00:00:00+23:59"),
    _case("track", True, userId="u", event="E", timestamp=1),  # epoch milliseconds (0 is no time)
    _case("track", False, userId="u", event="E", timestamp="1969-12-31T23:59:59Z"),
    _case("track", False, userId="u", event="E", timestamp="yesterday"),
    _case("track", True, userId="u", event="E", timestamp=0),
    _case("track", False, userId="u", event="E", timestamp=-1),
    _case("track", False, userId="u", event="E", timestamp="2023-01-01T00:00:00Z", sentAt={"at": 1}),
    _case("page", True, anonymousId="a", name="n" * 500),
    _case("page", False, anonymousId="a", name="n" * 501),
    _case("page", True, anonymousId="a", properties={"url": W, "path": "/", "name": "n" * 500}),
    _case("page", False, anonymousId="a", properties={"name": "n" * 501}),
    _case("page", True, anonymousId="a", context={"page": {"url": W, "path": 7}}),
    _case("page", False, anonymousId="a", context={"page": "/pricing"}),
    _case("screen", False, name="Settings"),
    _case("identify", True, userId="u", traits={"email": "x" * 64 + "@" + "d" * 255}),  # 320 characters
    _case("identify", False, userId="u", traits={"email": "x" * 65 + "@" + "d" * 255}),
    _case("identify", False, userId="u", traits={"email": "x@" + "d" * 256}),  # its domain is too long
    _case("identify", True, userId="u", traits={"firstName": "f" * 255, "lastName": "l" * 255}),
    _case("identify", False, userId="u", traits={"firstName": "f" * 256}),
    _case("identify", False, userId="u", traits={"lastName": "l" * 256}),
    # a full name gives a first and a last name of up to 255 characters each (ingest.person_names): 511
    # characters as "First Last", 512 as "Last, First", more with blanks that fold; the schema said 255
    _case("identify", True, userId="u", traits={"name": "f" * 255 + " " + "l" * 255}),
    _case("identify", True, userId="u", traits={"name": "l" * 255 + ", " + "f" * 255}),
    _case("identify", True, userId="u", traits={"name": "  " + "f" * 255 + " \t " + "l" * 255 + "  "}),
    _case("identify", True, userId="u", context={"traits": {"name": "f" * 255 + " " + "l" * 255}}),
    _case("identify", True, userId="u", traits={"company": "c" * 500}),
    _case("identify", False, userId="u", traits={"company": "c" * 501}),
    _case("identify", True, userId="u", traits={"company": {"name": "c" * 500, "plan": "pro"}}),
    _case("identify", False, userId="u", traits={"company": {"name": "c" * 501}}),
    _case("identify", True, userId="u", context={"traits": {"email": "ada@example.com"}}),
    _case("identify", False, userId="u", context={"traits": {"firstName": "f" * 256}}),
    _case("identify", False, userId="u", traits=["email"]),
    # a trait's key names an attribute: one of no letter or digit is refused (CI's fuzzer sent traits[""],
    # which the schema allowed), one beyond ASCII is kept
    _case("identify", False, userId="u", traits={"": 1}),
    _case("identify", False, userId="u", traits={"$$": 1}),
    _case("identify", False, userId="u", traits={"\u0301": 1}),
    _case("identify", False, userId="u", context={"traits": {"#": 1}}),
    _case("identify", True, userId="u", traits={"Größe": 1, "名前": "x", "$plan": "pro"}),
    _case("group", True, userId="u", groupId="g" * 255, traits={"website": "w" * 255, "company": "c" * 500}),
    _case("group", False, userId="u", groupId="g" * 256),
    _case("group", False, userId="u", groupId="  "),  # an account's id of whitespace only is none
    _case("group", True, userId="u", groupId=" g "),
    _case("group", False, userId="u", traits={"website": "w" * 256}),
    _case("group", False, userId="u", traits={"domain": "d" * 256}),
    _case("group", False, userId="u", traits={"company": "c" * 501}),
    _case("alias", True, previousId="p" * 255, userId="u"),
    _case("alias", False, previousId="p" * 256, userId="u"),
    _case("alias", False, previousId="a"),
    _case("alias", False, userId="u"),
    _case("alias", False, previousId="a", anonymousId="x"),
]


@pytest.mark.parametrize(("kind", "message", "accepted"), CASES)
def test_message_schema_and_parser_agree(kind: str, message: dict[str, Any], accepted: bool) -> None:
    assert validator(f"{NAMES[kind]}Message").is_valid(message) is accepted
    try:
        normalise({**message, "type": kind}, received_ms=NOW)
        parsed = True
    except MessageError:
        parsed = False
    assert parsed is accepted


def test_batch_items_need_their_type() -> None:
    batch = validator("Batch")
    items = [{"type": kind, **EXAMPLES[kind]} for kind in TYPES]
    assert batch.is_valid({"batch": items, "context": {"library": {"name": "x"}}})
    assert batch.is_valid({"batch": []})
    assert not batch.is_valid({"batch": [EXAMPLES["track"]]})
    with pytest.raises(MessageError):
        normalise(EXAMPLES["track"], received_ms=NOW)
    assert not batch.is_valid({"batch": [{"type": "visit", "userId": "u"}]})
    assert not batch.is_valid({"messages": items})


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, dict[str, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "allow.db"))
        with store.begin() as conn:
            _, write = create_key(conn, "write", "allow", 0)
        app = create_app(Settings(database_url="unused", run_processor=False), store=store)
        with serving(app) as url:
            yield url, {"Authorization": "Basic " + base64.b64encode(f"{write}:".encode()).decode()}
        store.dispose()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/track", "POST"),
        ("PUT", "/v1/batch", "POST"),
        ("DELETE", "/v1/i", "POST"),
        ("OPTIONS", "/v1/import", "POST"),
        ("PUT", "/v1/unsubscribe", "GET, POST"),  # two routes serve the path: both are named
        ("DELETE", "/v1/leads/1", "GET"),
        ("PATCH", "/v1/outcomes", "POST"),
        ("POST", "/healthz", "GET"),
        ("PUT", "/openapi.json", "GET, HEAD"),
        ("POST", "/signin", None),  # served: not a 405
        ("PUT", "/signin", "GET, POST"),
        ("DELETE", "/static/app.css", "GET, HEAD"),
    ],
)
@pytest.mark.parametrize("origin", [None, "https://shop.example"], ids=["server", "browser"])
def test_405_names_the_methods_in_allow(
    live: tuple[str, dict[str, str]], method: str, path: str, allow: str | None, origin: str | None
) -> None:
    url, write = live
    headers = {**write, **({"Origin": origin} if origin else {})}  # without Origin the lane looks first
    answer = httpx.request(method, url + path, headers=headers)
    if allow is None:
        assert answer.status_code != 405
        return
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.json() == {
        "ok": False,
        "error": "Method Not Allowed",
        "errors": [],
        "code": "method_not_allowed",
        "message": "Method Not Allowed",
    }


def test_the_tracking_lane_still_answers_post(live: tuple[str, dict[str, str]]) -> None:
    url, write = live
    answer = httpx.post(url + "/v1/track", headers=write, json={"userId": "u", "event": "E"})
    assert answer.json() == {"ok": True, "success": True, "accepted": 1, "duplicates": 0}


def test_a_real_422_is_the_documented_envelope(live: tuple[str, dict[str, str]]) -> None:
    url, _ = live
    answer = httpx.get(url + "/v1/unsubscribe", params={"email": "x" * 321})  # max_length 320
    assert answer.status_code == 422
    documented = DOC["paths"]["/v1/unsubscribe"]["get"]["responses"]["422"]["content"]["application/json"]
    assert documented["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert validator("ErrorEnvelope").is_valid(answer.json())
    assert answer.json()["errors"][0]["field"] == "email"

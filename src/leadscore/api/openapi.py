"""The OpenAPI document at ``/openapi.json``: the credential each route checks (security schemes), every
status each route answers with (the refusals in the one error envelope of ``api.errors``), and the real
schemas of the tracking bodies (``api.tracking_schema``), which the tracking routes read themselves.

Routes name their own refusals (``responses=refusals(404, 409)``); ``document`` adds what follows from
the app as a whole: 401 and 403 from each route's security, 413 from the body limit every request passes,
and the envelope in place of FastAPI's ``{detail}`` for 422 (what ``errors.install`` really answers).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from leadscore.api import tracking_schema
from leadscore.api.errors import CODES, LISTED_ERRORS
from leadscore.api.tracking_schema import Schema, ref, request_body
from leadscore.settings import Settings

ENVELOPE = "ErrorEnvelope"
PROBLEM: Schema = {
    "type": "object",
    "required": ["message"],
    "description": "One problem: what, and where (field path, file, line, column, rule, batch index)",
    "properties": {
        "message": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "file": {"type": "string"},
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "rule": {"type": "string"},
        "index": {"type": "integer", "minimum": 0},
        "messageId": {
            "type": ["string", "null"],
            "description": "the refused item's own id: a Segment message's messageId, a PostHog event's uuid",
        },
    },
}
ERROR_ENVELOPE: Schema = {
    "type": "object",
    "required": ["ok", "error", "errors", "code", "message"],
    "description": (
        "Every API error: what went wrong, and the problems behind it (at most 100); `code` and `message` "
        "are the fields Segment's and RudderStack's libraries read"
    ),
    "properties": {
        "ok": {"const": False},
        "error": {"type": "string", "minLength": 1},
        "errors": {"type": "array", "maxItems": LISTED_ERRORS, "items": ref("ErrorProblem")},
        "code": {"type": "string", "enum": sorted({*CODES.values(), "client_error", "server_error"})},
        "message": {"type": "string", "minLength": 1},
    },
}
WRITE_KEY: Schema = {
    "type": "http",
    "scheme": "basic",
    "description": (
        "A write key as the HTTP Basic user name, password empty (as Segment's libraries send it), or as "
        "`writeKey` in the JSON body (which OpenAPI cannot declare as a scheme). "
        "`leadscore keys create --kind write`."
    ),
}
WRITE: dict[str, Any] = {"security": [{"writeKey": []}]}
READ: dict[str, Any] = {"security": [{"readToken": []}]}
# what a route declaring a scheme answers when the credential is missing or not good enough
SCHEME_REFUSALS = {"writeKey": (401,), "readToken": (401, 403), "adminToken": (401, 403)}
REFUSALS = {
    400: "Malformed input: invalid JSON, or a value the stores cannot hold (`errors` names each field)",
    401: "No credential, or an unknown or revoked one",
    403: "The credential is valid but not allowed here",
    404: "No such record",
    409: "The current state does not allow it: no active model, no lifecycle section, a stage that cannot move",
    413: "The body is larger than the route allows (also once decompressed)",
    415: "A Content-Encoding other than gzip or deflate",
    422: "Invalid parameters or body (`errors` names each field)",
    503: "Not ready (`errors` names each failing check)",
}
CONVENTIONS = (
    "Every error is answered with a status and the `ErrorEnvelope` (`ok: false`, `error`, `errors`); each "
    "operation lists the statuses it answers with. A method a path does not serve is answered 405 with "
    "`Allow`. The tracking routes read their bodies themselves: their schemas say what ingest accepts, with "
    "the limits of the stores."
)
HEADERS = {
    401: {
        "WWW-Authenticate": {"description": "the scheme to authenticate with", "schema": {"type": "string"}}
    },
}


def refusal(status: int, **more: Schema) -> dict[str, Any]:
    """The response object of an error ``status``: the envelope (with ``more`` properties beside it)."""
    schema = {"allOf": [ref(ENVELOPE), {"properties": more}]} if more else ref(ENVELOPE)
    answer: dict[str, Any] = {
        "description": REFUSALS[status],
        "content": {"application/json": {"schema": schema}},
    }
    if status in HEADERS:
        answer["headers"] = HEADERS[status]
    return answer


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route decorator: the refusals the route itself answers with."""
    return {status: refusal(status) for status in statuses}


def tracking_route(kind: str | None) -> dict[str, Any]:
    """The documentation arguments of a tracking route (its body is read by the route itself): the
    message of ``kind`` it takes (a batch for None), its write key, its answers."""
    stored = "The good messages stored durably, the bad ones listed" if kind is None else "Stored durably"
    answer = ref("BatchAccepted" if kind is None else "Accepted")
    return {
        "openapi_extra": {**WRITE, "requestBody": request_body(kind)},
        "responses": {
            200: {"description": stored, "content": {"application/json": {"schema": answer}}},
            **refusals(400, 415),
        },
    }


def document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of ``app`` as it runs with ``settings``."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=f"{app.description}\n\n{CONVENTIONS}",
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, never sent here
        schemas.pop(unused, None)
    schemas.update(tracking_schema.components())
    schemas[ENVELOPE] = ERROR_ENVELOPE
    schemas["ErrorProblem"] = PROBLEM
    components.setdefault("securitySchemes", {})["writeKey"] = WRITE_KEY
    for path, item in doc["paths"].items():
        for operation in item.values():
            if path == "/metrics" and settings.metrics_public:
                operation.pop("security", None)
            responses = operation["responses"]
            for requirement in operation.get("security", []):
                for scheme in requirement:
                    for status in SCHEME_REFUSALS[scheme]:
                        responses.setdefault(str(status), refusal(status))
            if "422" in responses:
                responses["422"] = refusal(422)
            if "requestBody" in operation:  # a body that is not JSON at all
                responses.setdefault("400", refusal(400))
            responses.setdefault("413", refusal(413))
            operation["responses"] = dict(sorted(responses.items()))
    return doc


def install(app: FastAPI, settings: Settings) -> None:
    """Serve ``document`` (built once, on the first request for it) as the app's OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

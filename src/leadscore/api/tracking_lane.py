"""The tracking lane: server-to-server tracking requests answered ahead of the middleware stack.

A Segment server library posts one small message per request, thousands per second. Through FastAPI and
Starlette each request passes about ten middleware layers (error handling, telemetry, body limits, CORS,
security headers, exception mapping, routing), which together cost more CPU than storing the event. The
lane serves ``POST`` to a tracking path *without* an ``Origin`` header (no browser, so no CORS) directly:
it reads the body within the path's limit (compressed bodies are inflated within it too), calls the same ``record_single``/``record_batch`` as the routes,
and answers with the same JSON, the same error envelope and the same security headers. Everything else,
browser requests included, goes through the full application, where the same paths are routed, documented
in OpenAPI and answered identically.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from leadscore.api.errors import ApiError, error_body, from_leadscore_error
from leadscore.api.state import AppState
from leadscore.api.tracking import PATHS, body_limit, record_batch, record_single
from leadscore.errors import LeadscoreError
from leadscore.web.security import HEADERS

log = logging.getLogger("leadscore.api")
JSON = (b"content-type", b"application/json")


def serves(scope: Scope) -> bool:
    """Whether the lane answers this request (else the full application does)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in PATHS:
        return False
    return not any(name == b"origin" for name, _ in scope["headers"])


async def answer(state: AppState, scope: Scope, receive: Receive, send: Send) -> None:
    kind = PATHS[scope["path"]]
    authorization: str | None = None
    codings: list[str] = []  # several Content-Encoding headers are one list (RFC 9110)
    declared: int | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-encoding":
            codings.append(value.decode("latin-1"))
        elif name == b"content-length" and value.isdigit():
            declared = int(value)
    encoding = ", ".join(codings) or None
    limit = body_limit(state, batch=kind is None)
    try:
        if declared is not None and declared > limit:
            raise ApiError(413, f"body is {declared} bytes; at most {limit} are allowed")
        raw = await _read_body(receive, limit)
        if raw is None:
            return  # the client went away
        if kind is None:
            payload = await record_batch(state, authorization, raw, encoding)
        else:
            payload = await record_single(state, authorization, raw, kind, encoding)
        await _send(send, 200, payload)
    except (ApiError, LeadscoreError) as caught:
        exc = caught if isinstance(caught, ApiError) else from_leadscore_error(caught)
        extra = [(b"www-authenticate", b'Basic realm="leadscore"')] if exc.status == 401 else []
        await _send(send, exc.status, error_body(exc.status, exc.message, exc.errors), extra)
    except Exception:
        log.exception("tracking request to %s failed", scope["path"])
        await _send(send, 500, error_body(500, "internal error"))


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body; ApiError 413 as soon as it grows past ``limit`` (bodies sent without a length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body is more than {limit} bytes; at most {limit} are allowed")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(
    send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps(payload)
    headers = [JSON, (b"content-length", str(len(body)).encode()), *HEADERS, *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

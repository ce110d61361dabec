"""Segment-compatible tracking API: ``/v1/track|page|screen|identify|group|alias|batch|import`` and the
short paths analytics.js (analytics-next) uses (``/v1/t``, ``/v1/p``, ``/v1/s``, ``/v1/i``, ``/v1/g``,
``/v1/a``, ``/v1/b``). Bodies may be sent as ``application/json`` or ``text/plain``, plain or with
``Content-Encoding: gzip`` or ``deflate`` (``api.content_encoding``: inflated within the body limit).

A 200 means every accepted event is committed to disk (group commit); a batch stores its good messages
and reports the bad ones per item (the first ``LISTED_ERRORS``, and how many there were). The receive
time is the server's: a client's ``receivedAt`` is ignored here (see ``ingest.segment``).

These are the hottest routes of the app. ``record_single`` and ``record_batch`` do the work from the raw
``Authorization`` header and body; requests without an ``Origin`` (server libraries) reach them through
``api.tracking_lane`` ahead of the middleware stack, and browser requests (which need CORS) through these
routes, which run as ``TrackingRoute``s: documented in OpenAPI like any route, but called with the bare
request and answering a ready ``Response``, without FastAPI's dependency solving and serialisation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from leadscore.api.auth import write_key
from leadscore.api.content_encoding import decoded
from leadscore.api.errors import LISTED_ERRORS, ApiError
from leadscore.api.openapi import tracking_route
from leadscore.api.state import AppState, state_of
from leadscore.errors import DroppedMessage, MessageError
from leadscore.ingest.apply import event_row
from leadscore.ingest.limits import FIELD_LENGTH, check_message_size
from leadscore.ingest.segment import TYPES, normalise, sent_at_given


class TrackingRoute(APIRoute):
    """A route whose endpoint takes the request and returns the response itself."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


router = APIRouter(prefix="/v1", tags=["tracking"], route_class=TrackingRoute)
SHORT = {"t": "track", "p": "page", "s": "screen", "i": "identify", "g": "group", "a": "alias"}
BATCH_PATHS = ("batch", "b", "import")
# path → message type, or None for a batch: what the tracking lane serves
PATHS: dict[str, str | None] = {
    **{f"/v1/{kind}": kind for kind in TYPES},
    **{f"/v1/{short}": kind for short, kind in SHORT.items()},
    **{f"/v1/{path}": None for path in BATCH_PATHS},
}
BATCH_KEYS = ("context", "integrations")


def parse_json(raw: bytes, limit: int) -> Any:
    """A request body's JSON. orjson refuses a whole text for a value in one of its messages that JSON
    can spell but UTF-8 cannot hold (a lone surrogate, ``\\ud800`` or its raw bytes) or that is no JSON
    number (NaN): such a text is read again by the standard library, which keeps them, and each message
    holding one is refused alone (``ingest.limits.check_values`` names its field), so one bad event never
    sinks the good ones of its batch. Only a text that is not JSON at all is refused whole."""
    if len(raw) > limit:
        raise ApiError(413, f"body is {len(raw)} bytes; at most {limit} are allowed")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:  # the rare malformed body only: the hot path pays nothing
            return json.loads(raw)  # bytes are decoded with surrogatepass
        except (ValueError, RecursionError):  # not JSON; bytes that are no UTF-8; nested too deep
            raise ApiError(400, f"invalid JSON: {exc}") from None


def _answer(payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


def body_limit(state: AppState, batch: bool) -> int:
    return state.settings.max_batch_bytes if batch else state.settings.max_message_bytes


def _refusal(
    index: int, item: Any, exc: MessageError, prefix: str = "", id_field: str = "messageId"
) -> dict[str, Any]:
    """A refused message as the answer lists it: where (index, field path) and what. Its id (the item's
    ``id_field``: a PostHog event's is ``uuid``) is echoed as ``messageId`` only when it could be one (a
    refused 30 KB id is not sent back)."""
    message_id = item.get(id_field) if isinstance(item, dict) else None
    if not _echoable(message_id):
        message_id = None
    field = exc.problem.field
    return {
        "index": index,
        "messageId": message_id,
        "field": f"{prefix}{field}" if field else prefix.rstrip(".") or None,
        "message": str(exc),
    }


def _echoable(message_id: Any) -> bool:
    """A refused message's id can be sent back: a text that fits the column, without NUL, in UTF-8 (a
    lone surrogate, kept by the JSON parser, cannot be written in an answer)."""
    if not isinstance(message_id, str) or len(message_id) > FIELD_LENGTH["messageId"] or "\x00" in message_id:
        return False
    try:
        message_id.encode()
    except UnicodeEncodeError:
        return False
    return True


async def record_single(
    state: AppState, authorization: str | None, raw: bytes, kind: str, encoding: str | None = None
) -> dict[str, Any]:
    """One message of ``kind`` (``raw`` sent with Content-Encoding ``encoding``): stored durably, then
    the answer's payload. Raises ApiError."""
    raw = decoded(raw, encoding, state.settings.max_message_bytes)
    body = parse_json(raw, state.settings.max_message_bytes)
    write_key(authorization, body, state.keys)
    if not isinstance(body, dict):
        raise ApiError(400, "a message is a JSON object")
    try:
        message = normalise({**body, "type": kind}, received_ms=int(time.time() * 1000))
    except MessageError as exc:
        raise ApiError(400, str(exc), [_refusal(0, body, exc)]) from None
    row = event_row(message, "api", state.settings.ip_mode, state.settings.secret_key)
    inserted = await state.committer.commit([row])
    return {"ok": True, "success": True, "accepted": 1, "duplicates": 1 - len(inserted)}


async def record_batch(
    state: AppState, authorization: str | None, raw: bytes, encoding: str | None = None
) -> dict[str, Any]:
    """A batch (``raw`` sent with Content-Encoding ``encoding``): its good messages stored durably, the
    bad ones reported per item. Raises ApiError."""
    raw = decoded(raw, encoding, state.settings.max_batch_bytes)
    body = parse_json(raw, state.settings.max_batch_bytes)
    # no message can be larger than the whole body: measure each one only when the body is larger
    check_size = len(raw) > state.settings.max_message_bytes
    write_key(authorization, body, state.keys)
    items = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ApiError(400, "a batch is a JSON object with a 'batch' array")
    received = int(time.time() * 1000)
    shared = {k: body[k] for k in BATCH_KEYS if isinstance(body.get(k), dict)}
    limit = state.settings.max_message_bytes
    numbered: list[tuple[int, Any, list[Any] | MessageError]] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise MessageError(None, "a message is a JSON object")
            if check_size:
                check_message_size(item, limit)
        except MessageError as exc:
            numbered.append((index, item, exc))
            continue
        merged = {**shared, **item} if shared else item
        if "sentAt" not in merged and sent_at_given(body.get("sentAt")):
            merged = {**merged, "sentAt": body["sentAt"]}
        numbered.append((index, item, [merged]))
    return await commit_messages(state, numbered, received, "batch")


async def commit_messages(
    state: AppState,
    numbered: list[tuple[int, Any, list[Any] | MessageError]],
    received: int,
    where: str,
    source: str = "api",
    as_sent: Callable[[MessageError, Any], MessageError] | None = None,
    id_field: str = "messageId",
) -> dict[str, Any]:
    """Store the Segment messages of a request's items durably and report the bad items: each entry is
    (the item's index, the item as sent, its Segment messages or why it was refused), ``where`` names
    the list in the field paths of the refusals, ``source`` is the events' source, ``as_sent`` words a
    refusal of an item's Segment message in the item's own fields (items of another format), ``id_field``
    is the item's field that names it (a PostHog event's ``uuid``), echoed as a refusal's ``messageId``. Raises
    ApiError 400 when every item was refused, none of them dropped (``DroppedMessage``: left out as the
    client's own server leaves it out, which answers success)."""
    ip_mode, secret = state.settings.ip_mode, state.settings.secret_key
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    refused = dropped = 0
    for index, item, messages in numbered:
        try:
            if isinstance(messages, MessageError):
                raise messages
            # all of an item's messages or none of them
            rows.extend(
                [event_row(normalise(m, received_ms=received), source, ip_mode, secret) for m in messages]
            )
        except MessageError as exc:
            refused += 1
            dropped += isinstance(exc, DroppedMessage)
            if len(rejected) < LISTED_ERRORS:
                worded = as_sent(exc, item) if as_sent is not None and messages is not exc else exc
                rejected.append(_refusal(index, item, worded, f"{where}[{index}].", id_field))
    if numbered and not rows and not dropped:
        shown = f" (the first {LISTED_ERRORS} are listed)" if refused > LISTED_ERRORS else ""
        raise ApiError(400, f"all {refused} messages were rejected{shown}", rejected)
    inserted = await state.committer.commit(rows)
    return {
        "ok": True,
        "success": True,
        "accepted": len(rows),
        "duplicates": len(rows) - len(inserted),
        "rejected": rejected,
        "rejected_count": refused,
    }


def _encoding(request: Request) -> str | None:
    """The request's content codings; several Content-Encoding headers are one list (RFC 9110)."""
    return ", ".join(request.headers.getlist("content-encoding")) or None


async def _single(request: Request, kind: str) -> Response:
    state = state_of(request)
    raw = await request.body()
    authorization = request.headers.get("authorization")
    return _answer(await record_single(state, authorization, raw, kind, _encoding(request)))


async def _batch(request: Request) -> Response:
    state = state_of(request)
    raw = await request.body()
    return _answer(await record_batch(state, request.headers.get("authorization"), raw, _encoding(request)))


def _single_route(kind: str, path: str, include: bool = True) -> None:
    async def endpoint(request: Request) -> Response:
        return await _single(request, kind)

    endpoint.__name__ = f"{kind}_{path}"
    router.add_api_route(
        f"/{path}",
        endpoint,
        methods=["POST"],
        summary=f"Record a {kind} message",
        include_in_schema=include,
        **tracking_route(kind),
    )


for _kind in TYPES:
    _single_route(_kind, _kind)
for _short, _kind in SHORT.items():
    _single_route(_kind, _short, include=True)


@router.post("/batch", summary="Record a batch of messages", **tracking_route(None))
async def batch(request: Request) -> Response:
    return await _batch(request)


@router.post("/b", summary="Record a batch of messages (analytics.js short path)", **tracking_route(None))
async def batch_short(request: Request) -> Response:
    return await _batch(request)


@router.post("/import", summary="Import historical messages (a batch)", **tracking_route(None))
async def import_(request: Request) -> Response:
    return await _batch(request)

"""PostHog's capture API, so posthog-python, posthog-node and posthog-js send to leadscore with only their
host and project key set: ``/batch/`` (posthog-python), ``/e/`` and ``/i/v0/e/`` (posthog-js), ``/capture/``
(one event), and ``/flags/``, ``/decide/`` and ``/array/{token}/config`` (posthog-js' remote configuration)
answered with every feature off. PostHog's HTML snippet loads posthog-js from ``{api_host}/static/array.js``:
leadscore serves the build shipped in ``web/static/vendor/`` there (its no-external build: it loads no
other script).

A body is JSON, plain or with ``Content-Encoding: gzip``/``deflate``, or gzip with the query flag
``compression=gzip-js``, or a form whose ``data`` field is base64 JSON (``compression=base64``); all of
a gzip body without either (posthog-js sends gzip as text/plain and drops the flag); all of
it is inflated by the one bounded decoder (``api.content_encoding``). The project key (``api_key`` or
``token``) is a leadscore write key (HTTP Basic works too). Each event becomes Segment messages
(``ingest.posthog``) stored by the same path as the Segment routes (``api.tracking.commit_messages``).
"""

from __future__ import annotations

import base64
import binascii
import time
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request, Response

from leadscore.api.auth import write_key
from leadscore.api.content_encoding import decoded
from leadscore.api.errors import ApiError
from leadscore.api.openapi import WRITE, refusals
from leadscore.api.state import state_of
from leadscore.api.tracking import TrackingRoute, commit_messages, parse_json
from leadscore.errors import MessageError
from leadscore.ingest.limits import check_message_size
from leadscore.ingest.posthog import MAX_EVENT_BYTES, as_sent, events_of, to_segment, token_of
from leadscore.ingest.segment import sent_at_given

router = APIRouter(tags=["tracking"], route_class=TrackingRoute)
GZIP_MAGIC = b"\x1f\x8b"
CAPTURE_PATHS = ("/batch/", "/e/", "/i/v0/e/", "/capture/")
# a capture body, plain or inflated: posthog-python fills a batch until its events reach 5 MiB, the last
# one up to 900 KiB (its consumer's BATCH_SIZE_LIMIT and MAX_MSG_SIZE), and drops a batch answered 413
# without retrying it; posthog-js' batches have no size bound at all. PostHog's own capture takes 20 MiB.
# So not the Segment batch limit (max_batch_bytes, 500 KB, which Segment's libraries keep under): 100
# events of 6.4 KB each came to 641 KB, and all 100 were lost. One event has a limit of its own:
# ``ingest.posthog.MAX_EVENT_BYTES``
MAX_BODY_BYTES = 8 * 1024 * 1024
# events in one request: posthog-python sends 100 (``flush_at``), posthog-node 20 (at most 100), posthog-js
# those of a few seconds. 8 MiB of ``{}`` is 2.7 million events, each refused with its own error: 3.4 GB
# and 41 CPU-seconds of the event loop for one request whose gzip is 8 KB; 10,000 cost what a Segment
# batch of its 500 KB can
MAX_EVENTS = 10_000
# the client's send time in epoch ms, in the query: posthog-js' "query" mode, and ``_`` of its older builds
SENT_AT_PARAMS = ("sent_at", "_")
PLAUSIBLE_MS = 366 * 86_400_000  # a query's send time further than this from the arrival is not one
FLAGS_PATHS = ("/flags/", "/decide/")
# what posthog-js needs to start, with every feature off
FEATURES_OFF = {
    "featureFlags": {},
    "featureFlagPayloads": {},
    "flags": {},
    "errorsWhileComputingFlags": False,
    "quotaLimited": [],
    "sessionRecording": False,
    "autocapture_opt_out": True,
    "capturePerformance": False,
    "heatmaps": False,
    "surveys": False,
    "toolbarParams": {},
    "supportedCompression": ["gzip", "gzip-js"],
}
BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "description": "one PostHog event, an array of events, or {'api_key': ..., 'batch': [...]}",
                "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
            }
        }
    },
}
# no PostHog client reads a 200's body (posthog-python, posthog-node and posthog-js' retry queue look at the
# status only): the counts are the operator's, in the unit of the event log and of
# leadscore_events_acknowledged_total (which grows by accepted - duplicates): Segment messages
ACCEPTED = {
    "type": "object",
    "required": ["status", "accepted"],
    "properties": {
        "status": {"type": "integer"},
        "accepted": {
            "type": "integer",
            "minimum": 0,
            "description": "Segment messages stored durably: an event is one, two with person properties "
            "($set, $set_once: an identify beside it) or as an $identify with $anon_distinct_id (and an alias)",
        },
        "duplicates": {"type": "integer", "minimum": 0, "description": "of those, messages already stored"},
        "rejected_count": {
            "type": "integer",
            "minimum": 0,
            "description": "PostHog events refused, each whole",
        },
    },
}


def _body(request: Request, raw: bytes, limit: int) -> tuple[Any, int]:
    """The JSON a PostHog client sent, its codings and compression flags undone, and its length in bytes
    so (no event of a shorter body can be over the message limit)."""
    encoding = ", ".join(request.headers.getlist("content-encoding")) or None
    raw = decoded(raw, encoding, limit)
    compression = request.query_params.get("compression") or ""
    form = "form-urlencoded" in request.headers.get("content-type", "") or raw.startswith(b"data=")
    if form:
        try:
            fields = parse_qs(raw.decode("latin-1"), max_num_fields=8)
        except ValueError:  # more fields than any client sends
            raise ApiError(400, "a form body has at most 8 fields") from None
        if not fields.get("data"):
            raise ApiError(400, "a form body needs a 'data' field")
        try:
            raw = base64.b64decode(fields["data"][0], validate=False)
        except (binascii.Error, ValueError):
            raise ApiError(400, "the 'data' field is not base64") from None
        if compression == "gzip-js" or raw[:2] == GZIP_MAGIC:
            raw = decoded(raw, "gzip", limit)
    elif compression == "gzip-js" or raw[:2] == GZIP_MAGIC:
        # posthog-js (fetch) sends gzip as text/plain and takes the flag off the URL: the magic bytes
        # tell (a JSON text never starts with 0x1f)
        raw = decoded(raw, "gzip", limit)
    elif compression not in ("", "base64"):
        raise ApiError(
            415, f"compression {compression[:40]!r} is not supported: send gzip-js, base64 or none"
        )
    return parse_json(raw, limit), len(raw)


def _sent_at(request: Request, body: Any) -> Any:
    """When the client sent the request, on its own clock: the envelope's ``sent_at`` (posthog-python,
    posthog-js' ``{batch, sent_at}``), else the query's epoch milliseconds, ``sent_at`` or ``_``, as PostHog's
    capture reads them (posthog-js before the envelope sends an array of events on the browser's clock and
    ``?_=<Date.now()>``: without it a browser two hours fast has its events stored two hours ahead).
    A ``_`` that is no number, or no time within a year of the arrival, is a cache-buster only, and
    ignored."""
    if isinstance(body, dict) and sent_at_given(body.get("sent_at")):  # 0 is 1970 (a broken clock), not none
        return body["sent_at"]
    now = time.time() * 1000
    for param in SENT_AT_PARAMS:
        value = request.query_params.get(param, "")
        # a counter (``_=1``) or a number of any length is no send time: the events keep their own times
        if value.isascii() and value.isdigit() and len(value) <= 15 and abs(int(value) - now) <= PLAUSIBLE_MS:
            return int(value)
    return None


async def capture(request: Request) -> Response:
    state = state_of(request)
    body, size = _body(request, await request.body(), MAX_BODY_BYTES)
    token = token_of(body) if isinstance(body, dict | list) else None
    write_key(request.headers.get("authorization"), {"writeKey": token} if token else None, state.keys)
    try:
        events = events_of(body)
    except MessageError as exc:
        raise ApiError(400, str(exc)) from None
    if len(events) > MAX_EVENTS:
        raise ApiError(
            413,
            f"{len(events):,} events in one request; at most {MAX_EVENTS:,} are allowed:"
            " send them in several requests",
        )
    sent_at = _sent_at(request, body)
    # an event over its limit (not the body's) is refused alone, as a Segment batch's message over its own
    check_size = size > MAX_EVENT_BYTES
    numbered: list[tuple[int, Any, list[Any] | MessageError]] = []
    for index, event in enumerate(events):
        try:
            if check_size:
                check_message_size(event, MAX_EVENT_BYTES, "event")
            numbered.append((index, event, to_segment(event, sent_at)))
        except MessageError as exc:  # kept without its traceback (the frames and the event they hold)
            numbered.append((index, event, exc.with_traceback(None)))
    # source "posthog": a product analytics client's events (web.data.product reads them as product usage)
    # a refusal names the event by its uuid, the id its client gave it
    received = int(time.time() * 1000)
    payload = await commit_messages(state, numbered, received, "batch", "posthog", as_sent, "uuid")
    return Response(orjson.dumps({"status": 1, **payload}), media_type="application/json")


async def flags(request: Request) -> Response:
    return Response(orjson.dumps(FEATURES_OFF), media_type="application/json")


POSTHOG_JS = "posthog-js-1.449.2.array.no-external.js"


@cache
def _posthog_js() -> bytes:
    return (files("leadscore.web") / "static" / "vendor" / POSTHOG_JS).read_bytes()


@router.get(
    "/static/array.js",
    summary="posthog-js, where PostHog's HTML snippet loads it from ({api_host}/static/array.js)",
    responses={200: {"description": "posthog-js 1.449.2", "content": {"text/javascript": {}}}},
)
async def posthog_js(request: Request) -> Response:
    """Before the dashboard's own ``/static/`` files (a route wins over the mount). The snippet loads it
    with ``crossorigin="anonymous"``: the CORS middleware answers a website in ``cors_origins``, which
    posthog-js needs anyway to send its events."""
    # cached an hour by browsers; the file changes only with a leadscore release
    return Response(
        _posthog_js(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get(
    "/array/{token}/config",
    summary="posthog-js remote configuration: every feature off",
    # the route is called with the bare request (TrackingRoute): its path parameter is documented here
    openapi_extra={
        "parameters": [
            {
                "name": "token",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "the project key (not checked: the answer is the same for every key)",
            }
        ]
    },
    responses={
        200: {
            "description": "Every feature off",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def remote_config(request: Request) -> Response:
    """posthog-js reads this before it sends anything; the same answer for every token (nothing secret)."""
    return Response(orjson.dumps({**FEATURES_OFF, "hasFeatureFlags": False}), media_type="application/json")


for _path in CAPTURE_PATHS:
    router.add_api_route(
        _path,
        capture,
        methods=["POST"],
        name=f"posthog_capture_{_path.strip('/').replace('/', '_')}",
        summary=f"Record PostHog events ({_path})",
        openapi_extra={**WRITE, "requestBody": BODY},
        max_body_size=MAX_BODY_BYTES,
        responses={
            200: {
                "description": "The good events stored durably, the bad ones listed",
                "content": {"application/json": {"schema": ACCEPTED}},
            },
            **refusals(400, 413, 415),
        },
    )
for _path in FLAGS_PATHS:
    router.add_api_route(
        _path,
        flags,
        methods=["POST"],
        name=f"posthog_flags_{_path.strip('/')}",
        summary=f"PostHog feature flags ({_path}): every feature off",
        responses={
            200: {
                "description": "Every feature off",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )

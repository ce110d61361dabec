"""The configuration documents browser libraries load before they send anything, and the request
headers they send across origins.

**analytics.js** (@segment/analytics-next): a page loads the library with ``cdnURL`` set to leadscore;
the library then asks for ``{cdnURL}/v1/projects/{writeKey}/settings`` and sends its events wherever
``integrations["Segment.io"]["apiHost"]`` points. leadscore answers with itself as the API host, no
other destinations, and the library's own metrics switched off, so a browser talks to leadscore alone.

**RudderStack's JavaScript SDK v3** (@rudderstack/analytics-js): loaded with leadscore as both its data
plane and its ``configUrl``, it asks for ``{configUrl}/sourceConfig/?writeKey=...`` (with the key as
HTTP Basic user too) and refuses to start unless the answer has ``source.id``, ``source.config`` and a
``source.destinations`` array. leadscore answers with an enabled source, no destinations (so no
integration script is loaded from a CDN) and the SDK's error and metrics reporting switched off. Its
event requests carry the headers in ``CORS_HEADERS``, which the CORS preflight must allow.

**The tracking tag** (``GET /analytics.js``): the analytics.js build shipped in ``web/static/vendor/``
followed by ``web/static/analytics-loader.js``, which loads it pointed at this server with the write key
of its own ``<script data-write-key=...>`` tag and records a page view. A plain HTML site needs that one
tag (the dashboard's "Tracking code" page shows it).

**Segment's snippet** with ``cdn.segment.com`` changed to leadscore loads
``{host}/analytics.js/v1/{writeKey}/analytics.min.js``: analytics.js's standalone build (which reads the
snippet's queued calls and write key), after ``web/static/snippet-cdn.js``, which points its CDN at this
server (the library reads a CDN from a script URL only when it is https).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from leadscore.api.auth import write_key as verified_write_key
from leadscore.api.errors import ApiError
from leadscore.api.openapi import WRITE, refusals
from leadscore.api.state import state_of

router = APIRouter(tags=["tracking"])
# request headers browser libraries send across origins beyond the CORS-safelisted ones: analytics.js
# sends text/plain bodies with Basic auth; RudderStack's SDK v3 sends JSON with these (XhrQueue plugin)
CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "AnonymousId",
    "SentAt",
    "Rsa-Recovered",
    "Rsa-Retry-Attempt",
    "Rsa-Retry-Reason",
    "Rsa-Since-First-Attempt",
    "Rsa-Since-Last-Attempt",
]
# the SDK's own error reports and metrics would go to RudderStack's servers
NO_REPORTING = {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}}


@router.get(
    "/v1/projects/{write_key}/settings",
    summary="Settings for analytics.js (analytics-next) pointed at leadscore",
    responses=refusals(404),
)
def settings(write_key: str, request: Request) -> dict[str, Any]:
    key = state_of(request).keys.lookup(write_key)
    if key is None or key.kind != "write":
        # the path holds the credential: an unknown one learns nothing, as on Segment's CDN
        raise ApiError(404, "unknown or revoked write key")
    base = request.base_url
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{base.netloc}{base.path.rstrip('/')}/v1",
                "protocol": base.scheme,
            }
        },
        "plan": {},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
        # the library would otherwise report its own metrics to api.segment.io
        "metrics": {"sampleRate": 0},
    }


@router.get(
    "/sourceConfig/",
    summary="Source configuration for RudderStack's JavaScript SDK v3 (configUrl)",
    description="The write key as the HTTP Basic user name, or as the `writeKey` query parameter.",
    openapi_extra=WRITE,
)
def source_config(
    request: Request, write_key: Annotated[str | None, Query(alias="writeKey")] = None
) -> dict[str, Any]:
    key = verified_write_key(
        request.headers.get("authorization"),
        {"writeKey": write_key} if write_key else None,
        state_of(request).keys,
    )
    return {
        "isHosted": False,
        "source": {
            "id": f"leadscore-{key.id}",
            "name": key.name,
            "workspaceId": "leadscore",
            "enabled": True,
            "config": NO_REPORTING,
            "destinations": [],
        },
    }


# the SDK strips a trailing slash from configUrl and adds "/sourceConfig/"; a configUrl that already
# ends in /sourceConfig is kept as given
router.add_api_route("/sourceConfig", source_config, methods=["GET"], include_in_schema=False)


ANALYTICS_JS = "analytics-next-1.84.3.umd.js"
ANALYTICS_JS_STANDALONE = "analytics-next-1.84.3.standalone.js"


@cache
def _tag_script() -> bytes:
    static = files("leadscore.web") / "static"
    library = (static / "vendor" / ANALYTICS_JS).read_bytes()
    return library + b"\n" + (static / "analytics-loader.js").read_bytes()


@cache
def _snippet_script() -> bytes:
    static = files("leadscore.web") / "static"
    return (
        (static / "snippet-cdn.js").read_bytes()
        + b"\n"
        + (static / "vendor" / ANALYTICS_JS_STANDALONE).read_bytes()
    )


def _script(body: bytes) -> Response:
    # cached an hour by browsers; the file changes only with a leadscore release
    return Response(
        body, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get(
    "/analytics.js",
    summary="The tracking tag: analytics.js (analytics-next) that loads itself pointed at this server",
    response_class=Response,
)
def tag_script() -> Response:
    return _script(_tag_script())


@router.get(
    "/analytics.js/v1/{write_key}/analytics.min.js",
    summary="analytics.js for Segment's snippet, its CDN host changed to leadscore",
    description="The same file for every write key (the settings request checks the key): nothing of the "
    "path is written into the script.",
    response_class=Response,
)
def snippet_script(write_key: str) -> Response:
    return _script(_snippet_script())

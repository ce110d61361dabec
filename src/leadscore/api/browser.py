"""The settings document analytics.js (@segment/analytics-next) loads before it sends anything.

A page loads the library with ``cdnURL`` set to leadscore; the library then asks for
``{cdnURL}/v1/projects/{writeKey}/settings`` and sends its events wherever
``integrations["Segment.io"]["apiHost"]`` points. leadscore answers with itself as the API host, no
other destinations, and the library's own metrics switched off, so a browser talks to leadscore alone.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from leadscore.api.errors import ApiError
from leadscore.api.openapi import refusals
from leadscore.api.state import state_of

router = APIRouter(prefix="/v1/projects", tags=["tracking"])


@router.get(
    "/{write_key}/settings",
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

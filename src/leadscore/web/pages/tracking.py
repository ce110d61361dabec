"""Tracking code (admins): the one ``<script>`` tag a website needs, with this server's URL and a write
key, and the settings for RudderStack's SDK and the server libraries. A new write key can be created
here; its secret is shown once, in the snippet, and stored only as a hash (as ``leadscore keys create``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.ingest.limits import column_length
from leadscore.scoring.run import now_ms
from leadscore.store.audit import audit
from leadscore.store.keys import create_key
from leadscore.store.schema import api_keys
from leadscore.web.render import page
from leadscore.web.security import KeyManager, WebDenied

router = APIRouter()
PLACEHOLDER = "YOUR_WRITE_KEY"


def _server(request: Request) -> str:
    """The URL the admin reached this server at, which a website's visitors are to reach too."""
    return str(request.base_url).rstrip("/")


@router.get("/tracking", response_class=HTMLResponse, include_in_schema=False)
def tracking_page(request: Request, viewer: KeyManager) -> HTMLResponse:
    return page(
        request, viewer, "tracking.html", server=_server(request), write_key=PLACEHOLDER, created=None
    )


@router.post("/tracking/key", response_class=HTMLResponse, include_in_schema=False)
def tracking_key(
    request: Request, viewer: KeyManager, name: Annotated[str, Form(max_length=1000)] = "website"
) -> HTMLResponse:
    """A new write key, shown once in the snippet."""
    name = name.strip() or "website"
    longest = column_length(api_keys.c.name)
    if len(name) > longest:
        raise WebDenied(400, f"A key's name has at most {longest} characters; this one has {len(name)}.")
    stamp = now_ms()
    with state_of(request).store.begin() as conn:
        key, token = create_key(conn, "write", name, stamp)
        audit(conn, stamp, viewer.email, "key.create", f"key:{key.id}", kind="write", name=name)
    return page(request, viewer, "tracking.html", server=_server(request), write_key=token, created=key)

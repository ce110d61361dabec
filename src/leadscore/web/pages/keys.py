"""API keys (admins): every key with its kind, name and state; create one (its secret shown once, in
this response only, and stored as a hash) or revoke one. The same store operations and audit records as
``leadscore keys create|revoke``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.api.state import state_of
from leadscore.errors import NotFoundError
from leadscore.ingest.limits import column_length
from leadscore.scoring.run import now_ms
from leadscore.store.audit import audit
from leadscore.store.keys import KINDS, create_key, list_keys, revoke
from leadscore.store.schema import api_keys
from leadscore.web.render import page
from leadscore.web.security import KeyManager, WebDenied

router = APIRouter()
HELP = {
    "write": "sends events (websites, server libraries)",
    "read": "reads scores and leads through the API",
    "admin": "everything the API does, feedback and publishing included",
}


def _page(request: Request, viewer: KeyManager, status: int = 200, **extra: object) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        keys = list_keys(conn)
    return page(request, viewer, "keys.html", status=status, keys=keys, kinds=KINDS, help=HELP, **extra)


@router.get("/keys", response_class=HTMLResponse, include_in_schema=False)
def keys_page(
    request: Request, viewer: KeyManager, revoked: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
) -> HTMLResponse:
    return _page(request, viewer, revoked=revoked)


@router.post("/keys", response_class=HTMLResponse, include_in_schema=False)
def create(
    request: Request,
    viewer: KeyManager,
    kind: Annotated[str, Form(pattern="^(write|read|admin)$")] = "write",
    name: Annotated[str, Form(max_length=1000)] = "",
) -> HTMLResponse:
    """A new key; the response (not a redirect, so it is in no URL or history) shows the secret once."""
    name = name.strip() or kind
    longest = column_length(api_keys.c.name)
    if len(name) > longest:
        return _page(
            request,
            viewer,
            status=400,
            error=f"A key's name has at most {longest} characters; this one has {len(name)}.",
        )
    stamp = now_ms()
    with state_of(request).store.begin() as conn:
        key, token = create_key(conn, kind, name, stamp)  # type: ignore[arg-type]
        audit(conn, stamp, viewer.email, "key.create", f"key:{key.id}", kind=kind, name=name)
    return _page(request, viewer, status=201, created=key, token=token)


@router.post("/keys/{key_id}/revoke", include_in_schema=False)
def revoke_key(request: Request, viewer: KeyManager, key_id: int) -> Response:
    stamp = now_ms()
    try:
        with state_of(request).store.begin() as conn:
            revoke(conn, key_id, stamp)
            audit(conn, stamp, viewer.email, "key.revoke", f"key:{key_id}")
    except NotFoundError:
        raise WebDenied(404, f"There is no live key {key_id}.") from None
    return RedirectResponse(f"/keys?revoked={key_id}", status_code=303)

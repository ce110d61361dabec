"""Authorisation matrix for the HTTP API, generated from the app's routes: every route × every credential
kind is tried and must be allowed or refused (401/403) as its policy says. A route that no policy covers
fails the test, so a new endpoint cannot ship without a decision."""

from __future__ import annotations

import base64
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from leadscore.api import create_app
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from live_server import serving

CREDENTIALS = ("none", "write", "read", "admin", "revoked")
# route pattern → credential kinds allowed; everything else must get 401 or 403
POLICIES: list[tuple[str, set[str]]] = [
    (r"^/health$|^/healthz$|^/readyz$", set(CREDENTIALS)),
    (r"^/metrics$", {"read", "admin"}),  # unless LEADSCORE_METRICS_PUBLIC
    (r"^/openapi\.json$", set(CREDENTIALS)),
    (r"^/v1/(track|page|screen|identify|group|alias|t|p|s|i|g|a|batch|b|import)$", {"write"}),
    (
        r"^/v1/projects/\{[^}]+\}/settings$",
        set(CREDENTIALS),
    ),  # analytics.js settings: public, like Segment's CDN
    # PostHog's capture API: the project key (a write key) in the body, or HTTP Basic
    (r"^/(batch|e|i/v0/e|capture)/$", {"write"}),
    (
        r"^/(flags|decide)/$|^/array/\{[^}]+\}/config$",
        set(CREDENTIALS),
    ),  # posthog-js asks before it starts: every feature off, public
    (r"^/analytics\.js$", set(CREDENTIALS)),  # the tracking tag: public, like a CDN's script
    (r"^/analytics\.js/v1/\{[^}]+\}/analytics\.min\.js$", set(CREDENTIALS)),  # Segment's snippet: a script
    (r"^/static/array\.js$", set(CREDENTIALS)),  # posthog-js for PostHog's snippet: public, a script
    (r"^/sourceConfig/?$", {"write"}),  # RudderStack's source config: the write key in the query
    (
        r"^/v1/leads(/\{ref\})?$|^/v1/leads/\{ref\}/explanation(/lines/\{rule_id\}/events)?$",
        {"read", "admin"},
    ),
    (r"^/v1/leads/\{ref\}/stage$|^/v1/segments|^/v1/assignments$|^/v1/reports/", {"read", "admin"}),
    (r"^/v1/leads/\{ref\}/(feedback|assignment)$|^/v1/outcomes$", {"admin"}),
    (r"^/v1/unsubscribe$", set()),  # public page, but refused without the signed token it was mailed with
]


def policy(path: str) -> set[str]:
    for pattern, allowed in POLICIES:
        if re.match(pattern, path):
            return allowed
    raise AssertionError(f"route {path} has no authorisation policy: add one to POLICIES")


def _walk(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI keeps those nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _walk(route.original_router.routes)


def api_routes() -> list[tuple[str, str]]:
    app = create_app(Settings())
    # dashboard pages (session cookies, roles) have their own matrix: tests/test_web_authz.py
    routes = [
        (m, r.path)
        for r in _walk(app.routes)
        if not r.endpoint.__module__.startswith("leadscore.web")
        for m in sorted(r.methods)
    ]
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    # the walk must see at least everything the OpenAPI document lists
    assert documented <= set(routes), documented - set(routes)
    routes += [("GET", "/openapi.json")]
    return sorted(set(routes))


@pytest.fixture(scope="module")
def creds() -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "authz.db"))
        with store.begin() as conn:
            tokens = {kind: create_key(conn, kind, kind, 0)[1] for kind in ("write", "read", "admin")}
            revoked_key, revoked = create_key(conn, "admin", "old", 0)
        from leadscore.store.keys import revoke

        with store.begin() as conn:
            revoke(conn, revoked_key.id, 1)
        headers = {
            "none": {},
            "write": {"Authorization": "Basic " + base64.b64encode(f"{tokens['write']}:".encode()).decode()},
            "read": {"Authorization": f"Bearer {tokens['read']}"},
            "admin": {"Authorization": f"Bearer {tokens['admin']}"},
            "revoked": {"Authorization": f"Bearer {revoked}"},
        }
        app = create_app(Settings(database_url="unused", run_processor=False), store=store)
        with serving(app) as url:
            yield url, headers
        store.dispose()


@pytest.mark.parametrize(("method", "path"), api_routes())
def test_route_policy(method: str, path: str, creds: tuple[str, dict[str, dict[str, str]]]) -> None:
    url, headers = creds
    allowed = policy(path)
    concrete = path.replace("{ref}", "1").replace("{write_key}", "x").replace("{key}", "x")
    concrete = re.sub(r"\{[^}]+\}", "x", concrete)
    body = {"userId": "authz", "event": "E", "batch": [{"type": "track", "userId": "authz", "event": "E"}]}
    with httpx.Client(base_url=url) as client:
        for kind in CREDENTIALS:
            r = client.request(
                method, concrete, headers=headers[kind], json=body if method == "POST" else None
            )
            if kind in allowed:
                assert r.status_code not in (401, 403), f"{kind} refused on {method} {path}: {r.text}"
            else:
                assert r.status_code in (401, 403), f"{kind} allowed on {method} {path}: {r.status_code}"
                assert r.json()["ok"] is False

"""Every dashboard route × every role, generated from the app's routes: anonymous requests are sent to
sign-in (pages) or refused with 401 (actions); each role is allowed or refused (403) exactly as
``auth.roles.PERMISSIONS`` says for the permission the route's guard names; every POST needs the CSRF
token. A route without a guard, or a route outside the API and the dashboard, fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from starlette.routing import Mount

from leadscore.api import create_app
from leadscore.auth.roles import PERMISSIONS
from leadscore.settings import Settings
from leadscore.store.schema import leads
from leadscore.web import STATIC_PATH
from leadscore.web.security import PUBLIC, Guard
from web_support import ROLES, Site, csrf_of, signed_in, site

# the JSON API, and what browser tracking libraries load (RudderStack's source configuration, analytics.js)
API_PATHS = (
    "/v1/",
    "/health",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/sourceConfig",
    "/analytics.js",
    # PostHog's capture API (api/posthog.py)
    "/batch",
    "/capture",
    "/e/",
    "/i/v0/e",
    "/flags",
    "/decide",
    "/array/",
    "/static/array.js",  # posthog-js for PostHog's snippet (api/posthog.py): public, tested with the API
)


def _guards(route: APIRoute) -> list[Guard]:
    found: list[Guard] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, Guard):
            found.append(dep.call)
        stack.extend(dep.dependencies)
    return found


def _walk(routes: list[Any]) -> Iterator[Any]:
    """Every route, including those of included routers (FastAPI keeps them behind a wrapper)."""
    for route in routes:
        if hasattr(route, "original_router"):
            assert not route.include_context.prefix if hasattr(route, "include_context") else True
            yield from _walk(route.original_router.routes)
        else:
            yield route


def web_routes() -> list[tuple[str, str, str]]:
    """(method, path, permission) of every dashboard route; fails on a route that has no rule."""
    app = create_app(Settings(database_url="sqlite:///:memory:", run_processor=False))
    out: list[tuple[str, str, str]] = []
    for route in _walk(app.routes):
        if isinstance(route, Mount):
            assert route.path == STATIC_PATH, f"unexpected mount {route.path}"
            continue
        if not isinstance(route, APIRoute):
            continue  # Starlette's own documentation routes are off (docs_url=None)
        if route.path.startswith(API_PATHS):
            continue  # the JSON API: its credentials are tested with the API
        assert route.endpoint.__module__.startswith("leadscore.web."), (
            f"{route.path}: not an API or dashboard route"
        )
        guards = _guards(route)
        assert len(guards) == 1, (
            f"{route.path}: every dashboard route needs exactly one Guard, found {guards}"
        )
        out.extend((method, route.path, guards[0].permission) for method in sorted(route.methods))
    return out


ROUTES = web_routes()
GUARDED = [r for r in ROUTES if r[2] != PUBLIC]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, int]]:
    with site(tmp_path_factory.mktemp("authz"), leads=20) as s:
        with s.store.connect() as conn:
            lead_id = int(conn.execute(select(func.min(leads.c.id))).scalar_one())
        yield s, lead_id


@pytest.fixture(scope="module")
def clients(running: tuple[Site, int]) -> Iterator[dict[str, httpx.Client]]:
    """One signed-in client per role (sign-in hashes are slow on purpose)."""
    s, _ = running
    with (
        signed_in(s.url, s.email("admin")) as a,
        signed_in(s.url, s.email("marketing")) as m,
        signed_in(s.url, s.email("sales")) as sales,
    ):
        yield {"admin": a, "marketing": m, "sales": sales}


def _path(template: str, lead_id: int) -> str:
    return template.replace("{lead_id}", str(lead_id)).replace("{account_id}", "1")


def test_routes_cover_every_page() -> None:
    paths = {path for _, path, _ in ROUTES}
    assert {p for _, p, perm in ROUTES if perm == PUBLIC} == {"/signin"}, "only sign-in is public"
    for page in (
        "/signin",
        "/leads",
        "/leads/{lead_id}",
        "/handoff",
        "/funnel",
        "/accounts",
        "/accounts/{account_id}",
        "/model",
        "/evaluation",
    ):
        assert page in paths
    assert {perm for _, _, perm in ROUTES} - {PUBLIC} <= set().union(*PERMISSIONS.values())


@pytest.mark.parametrize(("method", "path", "permission"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_anonymous(running: tuple[Site, int], method: str, path: str, permission: str) -> None:
    s, lead_id = running
    with httpx.Client(base_url=s.url, follow_redirects=False, timeout=30) as client:
        response = client.request(method, _path(path, lead_id))
    if permission == PUBLIC:
        assert response.status_code in ((200,) if method == "GET" else (403,))  # POST: no sign-in token
    elif method == "GET":
        assert response.status_code == 303
        assert response.headers["location"].startswith("/signin?next=")
    else:
        assert response.status_code == 401
    assert "leadscore_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "permission"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED])
def test_role(
    running: tuple[Site, int],
    clients: dict[str, httpx.Client],
    role: str,
    method: str,
    path: str,
    permission: str,
) -> None:
    s, lead_id = running
    allowed = permission in PERMISSIONS[role]
    url = _path(path, lead_id)
    if path == "/signout":  # ends the session: a session of its own
        with signed_in(s.url, s.email(role)) as own:
            response = _request(own, method, url, role)
            assert own.get("/leads").status_code == 303 if allowed else 200
    else:
        response = _request(clients[role], method, url, role)
    if allowed:
        assert response.status_code not in (401, 403), f"{role} should be allowed {method} {path}"
        assert response.status_code < 500
    else:
        assert response.status_code == 403, f"{role} must be refused {method} {path}"


def _request(client: httpx.Client, method: str, url: str, role: str) -> httpx.Response:
    if method != "POST":
        return client.request(method, url)
    missing = client.post(url, data={})
    assert missing.status_code == 403, f"{role} POST {url} without a CSRF token"
    return client.post(url, data={"csrf_token": csrf_of(client)})


def test_sales_cannot_publish(clients: dict[str, httpx.Client]) -> None:
    client = clients["sales"]
    draft = "model: x\nfit: []\nengagement: []\n"
    response = client.post("/model/publish", data={"csrf_token": csrf_of(client), "draft": draft})
    assert response.status_code == 403
    assert "model.publish" in response.text
    page = client.get("/model")
    assert page.status_code == 200
    assert 'formaction="/model/publish"' not in page.text

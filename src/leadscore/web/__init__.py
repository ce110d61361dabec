"""The dashboard: server-rendered pages (Jinja2 + htmx) on top of the store, scoring and lifecycle.

``install(app)`` adds the pages, the static files (vendored htmx and Chart.js, our JS and CSS; nothing
from a CDN) and the security headers to the FastAPI app. Each page lives in ``pages/`` with the queries it
needs in ``data/``; every route names its permission with a guard from ``security``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from leadscore.web.pages import (
    account,
    accounts,
    builder,
    deadletters,
    evaluation,
    funnel,
    handoff,
    keys,
    lead,
    leads,
    model,
    notifications,
    review,
    signin,
    tracking,
    users,
)
from leadscore.web.render import HERE, page
from leadscore.web.security import SecurityHeaders, Viewer, WebDenied, signin_url
from leadscore.web.warmup import warm_up

ROUTERS = (
    signin.router,
    leads.router,
    lead.router,
    handoff.router,
    funnel.router,
    accounts.router,
    account.router,
    model.router,
    builder.router,
    evaluation.router,
    review.router,
    deadletters.router,
    tracking.router,
    users.router,
    keys.router,
    notifications.router,
)
STATIC_PATH = "/static"


def install(app: FastAPI) -> None:
    """Mount the dashboard on ``app``."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(WebDenied)
    async def _denied(request: Request, exc: WebDenied) -> Response:
        if exc.signin:
            return RedirectResponse(signin_url(request), status_code=303)
        response = page(request, Viewer(None), "error.html", status=exc.status, message=exc.message)
        if exc.status == 401:
            response.headers["HX-Redirect"] = "/signin"
        return response


__all__ = ["STATIC_PATH", "install", "warm_up"]

"""405 answers: the error envelope with an ``Allow`` header listing every method the path serves
(RFC 9110 requires it).

Starlette answers 405 from the first route whose path matches and names that route's methods alone; a
path several routes serve (``GET`` and ``POST /v1/unsubscribe``, the dashboard's sign-in page) is
answered here with the methods of all of them. Tracking paths reach this too: the tracking lane serves
only ``POST`` and leaves every other method to the full application.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from leadscore.api.errors import envelope

PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> set[str]:
    """The methods some route serves at the request's path: each method is routed as the router would
    (asked of every route, included routers too; a mount answers its own 405 and is left out)."""
    base = {k: v for k, v in scope.items() if k != "fastapi"}  # FastAPI's per-request routing state
    return {
        method
        for method in PROBED
        if any(
            not isinstance(route, Mount) and route.matches({**base, "method": method})[0] is Match.FULL
            for route in routes
        )
    }


def install(app: FastAPI) -> None:
    @app.exception_handler(405)
    async def _not_allowed(request: Request, exc: HTTPException) -> JSONResponse:
        named = (exc.headers or {}).get("Allow", "")  # a mount (the static files) names its own
        methods = {m.strip() for m in named.split(",") if m.strip()}
        methods |= allowed_methods(request.app.router.routes, request.scope)
        return envelope(405, "Method Not Allowed", Allow=", ".join(sorted(methods)))

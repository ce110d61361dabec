"""One JSON error envelope for every API error: ``{"ok": false, "error": "...", "errors": [...]}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadscore.errors import NotFoundError


class ApiError(Exception):
    """An error answered with ``status`` and the envelope."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or []


def envelope(
    status: int, message: str, errors: list[dict[str, Any]] | None = None, **headers: str
) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error": message, "errors": errors or []}, status_code=status, headers=headers or None
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="leadscore"'} if exc.status == 401 else {}
        return envelope(exc.status, exc.message, exc.errors, **headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return envelope(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p not in ("query", "path", "body")),
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        return envelope(422, "invalid request", errors)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return envelope(404, str(exc))

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        return envelope(500, "internal error")


class DeclaredBodyLimit:
    """Refuse a request whose declared Content-Length is over ``max_bytes`` before reading it, with the
    JSON envelope (API) or a short text (pages). FastAPI's own ``max_body_size`` still stops bodies that
    declare no length (chunked) while they stream."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            declared = dict(scope.get("headers") or []).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                message = f"body is {int(declared)} bytes; at most {self.max_bytes} are allowed"
                response = envelope(413, message)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""One JSON error envelope for every API error:
``{"ok": false, "error": "...", "errors": [...], "code": "...", "message": "..."}``.

``code`` (a short name for the status: ``invalid_request``, ``unauthorized``, ``payload_too_large``...) and
``message`` (the same text as ``error``) are the two fields the Segment and RudderStack server libraries
read from an error answer (``payload['code']``, ``payload['message']``); without them rudder-sdk-python
raises ``KeyError`` and retries a refused batch as if the network had failed.

Every ``LeadscoreError`` that reaches the app is answered with its 4xx (``STATUS``), never a 500: a
record that does not exist 404, malformed input 400 (with its position), an unusable model 422, and a
request the current state does not allow (no active model, a stage that cannot move) 409. An error list
holds at most ``LISTED_ERRORS`` entries, so an error body stays small whatever the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadscore.errors import (
    CompileError,
    InputError,
    LeadscoreError,
    ModelError,
    ModelValidationError,
    NotFoundError,
    Problem,
)

LISTED_ERRORS = 100
# the most specific class first
STATUS: tuple[tuple[type[LeadscoreError], int], ...] = (
    (NotFoundError, 404),
    (InputError, 400),
    (ModelError, 422),
    (CompileError, 422),
    (LeadscoreError, 409),
)


class ApiError(Exception):
    """An error answered with ``status`` and the envelope."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or []


def _problem(problem: Problem) -> dict[str, Any]:
    return {k: v for k, v in vars(problem).items() if v is not None}


def from_leadscore_error(exc: LeadscoreError) -> ApiError:
    """The answer to an error leadscore raised on purpose: its status and its positioned problems."""
    status = next(code for kind, code in STATUS if isinstance(exc, kind))
    problems: list[Problem] = []
    if isinstance(exc, InputError):
        problems = [exc.problem]
    elif isinstance(exc, ModelValidationError):
        problems = exc.problems
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ApiError(status, message, [_problem(p) for p in problems[:LISTED_ERRORS]])


# the ``code`` of each status; any other status is named by its class (``client_error``, ``server_error``)
CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_body(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The envelope's fields for an error answered with ``status``."""
    code = CODES.get(status) or ("client_error" if status < 500 else "server_error")
    return {"ok": False, "error": message, "errors": errors or [], "code": code, "message": message}


def envelope(
    status: int, message: str, errors: list[dict[str, Any]] | None = None, **headers: str
) -> JSONResponse:
    return JSONResponse(error_body(status, message, errors), status_code=status, headers=headers or None)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="leadscore"'} if exc.status == 401 else {}
        return envelope(exc.status, exc.message, exc.errors, **headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, ApiError):  # FastAPI's 400 for a body it could not read: ours, said
            return await _api(request, exc.__cause__)
        return envelope(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p not in ("query", "path", "body")),
                "message": e["msg"],
            }
            for e in exc.errors()[:LISTED_ERRORS]
        ]
        return envelope(422, "invalid request", errors)

    @app.exception_handler(LeadscoreError)
    async def _leadscore(_: Request, exc: LeadscoreError) -> JSONResponse:
        answer = from_leadscore_error(exc)
        return envelope(answer.status, answer.message, answer.errors)

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        return envelope(500, "internal error")


class DeclaredBodyLimit:
    """Refuse a request whose declared Content-Length is over ``max_bytes`` before reading it, with the
    JSON envelope (API) or a short text (pages). FastAPI's own ``max_body_size`` still stops bodies that
    declare no length (chunked) while they stream. The paths in ``larger`` have limits of their own."""

    def __init__(self, app: Any, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        self.app, self.max_bytes, self.larger = app, max_bytes, dict(larger or {})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            declared = dict(scope.get("headers") or []).get(b"content-length")
            limit = self.larger.get(scope["path"], self.max_bytes)
            if declared is not None and declared.isdigit() and int(declared) > limit:
                message = f"body is {int(declared)} bytes; at most {limit} are allowed"
                response = envelope(413, message)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""Dependencies named as types: the app state behind a read token (``ReaderState``) or an admin token
(``AdminState``). Each declares its security scheme, so the OpenAPI document lists, per route, the
credential the route really checks (``api.auth.read_token``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leadscore.api.auth import read_token
from leadscore.api.errors import ApiError
from leadscore.api.state import AppState, state_of

# auto_error=False: these only declare the scheme; read_token answers a missing or bad token (401/403)
READ_TOKEN = HTTPBearer(
    scheme_name="readToken",
    description="A read or admin token: `leadscore keys create --kind read` (write keys cannot read).",
    auto_error=False,
)
ADMIN_TOKEN = HTTPBearer(
    scheme_name="adminToken",
    description="An admin token: `leadscore keys create --kind admin`.",
    auto_error=False,
)
Bearer = HTTPAuthorizationCredentials | None


def reader(request: Request, _: Annotated[Bearer, Security(READ_TOKEN)]) -> AppState:
    state = state_of(request)
    read_token(request, state.keys)
    return state


def admin(request: Request, _: Annotated[Bearer, Security(ADMIN_TOKEN)]) -> AppState:
    state = state_of(request)
    key = read_token(request, state.keys)
    if key.kind != "admin":
        raise ApiError(
            403, "feedback and outcomes need an admin token (`leadscore keys create --kind admin`)"
        )
    return state


ReaderState = Annotated[AppState, Depends(reader)]
AdminState = Annotated[AppState, Depends(admin)]

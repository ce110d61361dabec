"""Sign-in and sign-out: the session cookie (HttpOnly, SameSite=Lax, Secure over https)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.api.state import state_of
from leadscore.auth.sessions import SESSION_MS, LoginRefused, login, logout
from leadscore.scoring.run import now_ms
from leadscore.web.render import page
from leadscore.web.security import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Anyone,
    LeadsReader,
    cookie_secure,
    new_signin_token,
    safe_next,
)

router = APIRouter()


def _form(request: Request, viewer: Anyone, next_: str, error: str = "", status: int = 200) -> Response:
    token = new_signin_token()
    response = page(
        request, viewer, "signin.html", status=status, next=safe_next(next_), error=error, signin_token=token
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request),
        path="/signin",
    )
    return response


@router.get("/signin", response_class=HTMLResponse, include_in_schema=False)
def signin_page(request: Request, viewer: Anyone, next: str = "/leads") -> Response:
    if viewer.signed_in:
        return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, viewer, next)


@router.post("/signin", response_class=HTMLResponse, include_in_schema=False)
def signin(
    request: Request,
    viewer: Anyone,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/leads",
) -> Response:
    client = request.client.host if request.client else "unknown"
    # a refused attempt is committed too: the throttle counts it
    refused: LoginRefused | None = None
    with state_of(request).store.begin() as conn:
        try:
            session = login(conn, email, password, client, now_ms())
        except LoginRefused as exc:
            refused = exc
    if refused is not None:
        if refused.retry_after_s is None:
            return _form(request, viewer, next, str(refused), status=401)
        throttled = _form(request, viewer, next, str(refused), status=429)
        throttled.headers["Retry-After"] = str(refused.retry_after_s)
        return throttled
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=SESSION_MS // 1000,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/",
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


@router.post("/signout", include_in_schema=False)
def signout(request: Request, viewer: LeadsReader) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with state_of(request).store.begin() as conn:
            logout(conn, token)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_secure(request)
    )
    return response

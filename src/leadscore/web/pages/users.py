"""Users (admins): invite a user with a one-time password shown once, change a role, reset a password
(a new one-time password, shown once; every session of the user ends), disable a user (every session
ends; a seller of the model's teams then gets no new leads) or enable them again. The same store operations and
audit records as ``leadscore users`` (the CLI reads a password from the terminal; here the server makes
one, since it shows it only once)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.api.state import state_of
from leadscore.auth.passwords import hash_password
from leadscore.errors import NotFoundError, StoreError
from leadscore.scoring.run import now_ms
from leadscore.store.audit import audit
from leadscore.store.users import (
    ROLES,
    add_user,
    change_password,
    disable_user,
    enable_user,
    get_user,
    list_users,
    set_role,
)
from leadscore.web.render import page
from leadscore.web.security import UserManager, WebDenied

router = APIRouter()
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


def one_time_password() -> str:
    """16 random URL-safe characters (96 bits), for the user to change with ``leadscore users password``."""
    return secrets.token_urlsafe(12)


def _page(request: Request, viewer: UserManager, status: int = 200, **extra: object) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        users = list_users(conn)
    return page(request, viewer, "users.html", status=status, users=users, roles=ROLES, **extra)


@router.get("/users", response_class=HTMLResponse, include_in_schema=False)
def users_page(
    request: Request,
    viewer: UserManager,
    done: Annotated[str, Query(pattern="^(|role|disabled|enabled)$")] = "",
) -> HTMLResponse:
    return _page(request, viewer, done=done)


@router.post("/users", response_class=HTMLResponse, include_in_schema=False)
def invite(
    request: Request,
    viewer: UserManager,
    email: Annotated[str, Form(pattern=EMAIL, max_length=320)],
    role: Annotated[str, Form(pattern="^(admin|marketing|sales)$")],
    name: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """Create the user; the response (not a redirect, so it is in no URL or history) shows the password."""
    password = one_time_password()
    stamp = now_ms()
    try:
        with state_of(request).store.begin() as conn:
            user = add_user(
                conn, email, name.strip() or email.split("@")[0], role, hash_password(password), stamp
            )
            audit(conn, stamp, viewer.email, "user.create", user.email, role=role)
    except StoreError as exc:
        return _page(request, viewer, status=409, error=str(exc))
    return _page(request, viewer, status=201, issued={"email": user.email, "password": password, "new": True})


@router.post("/users/{user_id}/role", include_in_schema=False)
def change_role(
    request: Request,
    viewer: UserManager,
    user_id: int,
    role: Annotated[str, Form(pattern="^(admin|marketing|sales)$")],
) -> Response:
    stamp = now_ms()
    try:
        with state_of(request).store.begin() as conn:
            user = get_user(conn, user_id)
            if user.email == viewer.email and role != "admin":
                raise WebDenied(409, "You cannot take the admin role from yourself; ask another admin.")
            set_role(conn, user_id, role)
            audit(conn, stamp, viewer.email, "user.role", user.email, role=role)
    except NotFoundError:
        raise WebDenied(404, f"There is no user {user_id}.") from None
    return RedirectResponse("/users?done=role", status_code=303)


@router.post("/users/{user_id}/password", response_class=HTMLResponse, include_in_schema=False)
def reset_password(request: Request, viewer: UserManager, user_id: int) -> HTMLResponse:
    password = one_time_password()
    stamp = now_ms()
    try:
        with state_of(request).store.begin() as conn:
            user = get_user(conn, user_id)
            change_password(conn, user_id, hash_password(password))
            audit(conn, stamp, viewer.email, "user.password", user.email)
    except NotFoundError:
        raise WebDenied(404, f"There is no user {user_id}.") from None
    return _page(request, viewer, issued={"email": user.email, "password": password, "new": False})


@router.post("/users/{user_id}/access", include_in_schema=False)
def change_access(
    request: Request,
    viewer: UserManager,
    user_id: int,
    access: Annotated[str, Form(pattern="^(disable|enable)$")],
) -> Response:
    """Disable a user (their sessions end; as ``leadscore users disable``) or enable them again."""
    stamp = now_ms()
    try:
        with state_of(request).store.begin() as conn:
            user = get_user(conn, user_id)
            if access == "disable":
                if user.email == viewer.email:
                    raise WebDenied(409, "You cannot disable yourself; ask another admin.")
                disable_user(conn, user_id, stamp)
            else:
                enable_user(conn, user_id)
            audit(conn, stamp, viewer.email, f"user.{access}", user.email)
    except NotFoundError:
        raise WebDenied(404, f"There is no user {user_id}.") from None
    return RedirectResponse(f"/users?done={access}d", status_code=303)

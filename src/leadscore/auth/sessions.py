"""Sign-in: login limits, server-side sessions (cookie = random token, database = its hash), CSRF tokens.

Login rate limiting: after ``MAX_FAILURES`` failed attempts for one e-mail (or ``MAX_CLIENT_FAILURES``
from one client address) within ``WINDOW_MS``, further attempts are refused until the window passes,
whether the password is right or not. Attempts are stored, so the limit holds across processes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection

from leadscore.auth.passwords import hash_password, needs_rehash, verify_password
from leadscore.store.users import (
    User,
    add_session,
    drop_session,
    failures_since,
    find_user,
    record_attempt,
    session_user,
    set_password_hash,
)

SESSION_MS = 12 * 3600 * 1000
WINDOW_MS = 15 * 60 * 1000
MAX_FAILURES = 5
MAX_CLIENT_FAILURES = 30
# verifying against a real hash when the user does not exist keeps timing from revealing who exists
_DUMMY_HASH = hash_password("not-a-real-password-at-all")


class LoginRefused(Exception):
    """Wrong credentials, a disabled user, or too many recent failures (``locked``)."""

    def __init__(self, message: str, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


@dataclass(frozen=True)
class Session:
    token: str  # goes in the cookie, never stored
    user: User
    csrf: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(conn: Connection, email: str, password: str, client: str, now_ms: int) -> Session:
    by_email, by_client = failures_since(conn, email, client, now_ms - WINDOW_MS)
    if by_email >= MAX_FAILURES or by_client >= MAX_CLIENT_FAILURES:
        raise LoginRefused("too many failed sign-ins; try again in 15 minutes", locked=True)
    user = find_user(conn, email)
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok or not user.active:
        record_attempt(conn, email, client, False, now_ms)
        raise LoginRefused("wrong e-mail or password")
    record_attempt(conn, email, client, True, now_ms)
    if needs_rehash(user.password_hash):
        set_password_hash(conn, user.id, hash_password(password))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    add_session(conn, token_hash(token), user.id, csrf, now_ms, now_ms + SESSION_MS)
    return Session(token, user, csrf)


def current(conn: Connection, token: str | None, now_ms: int) -> Session | None:
    if not token:
        return None
    found = session_user(conn, token_hash(token), now_ms)
    if found is None:
        return None
    user, csrf = found
    return Session(token, user, csrf)


def logout(conn: Connection, token: str) -> None:
    drop_session(conn, token_hash(token))


def csrf_ok(session: Session, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(session.csrf, submitted)

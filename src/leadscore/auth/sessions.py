"""Sign-in: server-side sessions (cookie = random token, database = its hash), CSRF tokens, and the
sign-in throttle per (account, client address) of ``auth.throttle``: while a pair must wait, its attempts
are refused without looking at the password, and the refusal says when to try again.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Connection

from leadscore.auth.passwords import hash_password, needs_rehash, verify_password
from leadscore.auth.throttle import retry_at
from leadscore.store.users import (
    User,
    add_session,
    drop_session,
    find_user,
    record_attempt,
    rehash_password,
    session_user,
)

SESSION_MS = 12 * 3600 * 1000


@cache
def _dummy_hash() -> str:
    """Verifying against a real hash when the user does not exist keeps timing from revealing who exists.
    Made on first use rather than at import (hashing takes a third of a second: every command and server
    start paid it), so the first such attempt in a process also pays for making it."""
    return hash_password("not-a-real-password-at-all")


class LoginRefused(Exception):
    """Wrong credentials, a disabled user, or a throttled attempt (``retry_after_s`` set: try again then)."""

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def throttled(self) -> bool:
        return self.retry_after_s is not None


@dataclass(frozen=True)
class Session:
    token: str  # goes in the cookie, never stored
    user: User
    csrf: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(conn: Connection, email: str, password: str, client: str, now_ms: int) -> Session:
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in email + client):
        raise LoginRefused("wrong e-mail or password")  # no account has such an e-mail; nothing to count
    until = retry_at(conn, email, client, now_ms)
    if until is not None:
        wait_s = max(1, math.ceil((until - now_ms) / 1000))
        raise LoginRefused(
            f"too many failed sign-ins from this address; try again in {wait_s} seconds", retry_after_s=wait_s
        )
    user = find_user(conn, email)
    ok = verify_password(user.password_hash if user else _dummy_hash(), password)
    if user is None or not ok or not user.active:
        record_attempt(conn, email, client, False, now_ms)
        raise LoginRefused("wrong e-mail or password")
    record_attempt(conn, email, client, True, now_ms)
    if needs_rehash(user.password_hash):
        rehash_password(conn, user.id, hash_password(password))
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

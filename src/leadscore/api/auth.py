"""Credentials: write keys (HTTP Basic user name, or ``writeKey`` in the body) and bearer tokens.

Verified keys are cached for a few seconds so a busy tracking endpoint does not query the key table on
every request; a revoked key stops working within ``TTL_S``.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from leadscore.api.errors import ApiError
from leadscore.store import Store
from leadscore.store.keys import ApiKey, may_be_key, verify

TTL_S = 5.0


@dataclass
class KeyCache:
    store: Store
    _entries: dict[str, tuple[float, ApiKey | None]] = field(default_factory=dict)

    def lookup(self, token: str) -> ApiKey | None:
        if not may_be_key(token):  # not kept: a client could fill the cache with megabyte tokens
            return None
        hit = self._entries.get(token)
        now = time.monotonic()
        if hit is not None and now - hit[0] < TTL_S:
            return hit[1]
        with self.store.connect() as conn:
            key = verify(conn, token)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token] = (now, key)
        return key


def basic_user(authorization: str | None) -> str | None:
    """The user name of an ``Authorization: Basic`` header (None for another scheme or none)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, _, _ = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(401, "malformed Basic authorization header") from None
    return user or None


def write_key(authorization: str | None, body: Any, cache: KeyCache) -> ApiKey:
    """The write key of a tracking request: Basic auth user name (from the ``Authorization`` header),
    else ``writeKey`` in the JSON body."""
    token = basic_user(authorization)
    if token is None and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        token = body["writeKey"]
    if not token:
        raise ApiError(
            401, "a write key is required: HTTP Basic with the key as user name, or writeKey in the body"
        )
    key = cache.lookup(token)
    if key is None or key.kind != "write":
        raise ApiError(401, "unknown or revoked write key")
    return key


def read_token(request: Request, cache: KeyCache) -> ApiKey:
    """A read or admin token from ``Authorization: Bearer``; write keys cannot read."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "a read token is required: Authorization: Bearer <token>")
    key = cache.lookup(token.strip())
    if key is None:
        raise ApiError(401, "unknown or revoked token")
    if key.kind not in ("read", "admin"):
        raise ApiError(
            403, f"a {key.kind} key cannot read; create a read token with `leadscore keys create --kind read`"
        )
    return key

"""API keys: write keys (ingest only), read tokens, admin tokens. Only a SHA-256 of each key is stored.

Keys are 32 random bytes (URL-safe base64), so a fast hash is enough: nothing can be brute-forced back
from it, unlike a human password (those use a KDF).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, select, update

from leadscore.errors import NotFoundError
from leadscore.store.schema import api_keys, fits_id

KeyKind = Literal["write", "read", "admin"]
KINDS: tuple[KeyKind, ...] = ("write", "read", "admin")
PREFIXES = {"write": "lsw_", "read": "lsr_", "admin": "lsa_"}
TOKEN_BYTES = 32
# a key ``create_key`` makes is 47 characters (a prefix of four, 32 bytes in URL-safe base64); longer
# text is no key
MAX_TOKEN_LENGTH = 128


def may_be_key(token: str) -> bool:
    """Whether ``token`` could be a key (ASCII, at most ``MAX_TOKEN_LENGTH``): else no key, without a query."""
    return len(token) <= MAX_TOKEN_LENGTH and token.isascii()


@dataclass(frozen=True)
class ApiKey:
    id: int
    kind: str
    name: str
    prefix: str
    created_ms: int
    revoked_ms: int | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(conn: Connection, kind: KeyKind, name: str, now_ms: int) -> tuple[ApiKey, str]:
    """A new key; the secret is returned once and never stored."""
    if kind not in KINDS:
        raise ValueError(f"key kind must be one of {', '.join(KINDS)}")
    token = PREFIXES[kind] + secrets.token_urlsafe(TOKEN_BYTES)
    key_id = conn.execute(
        api_keys.insert()
        .values(kind=kind, name=name, prefix=token[:10], token_hash=digest(token), created_ms=now_ms)
        .returning(api_keys.c.id)
    ).scalar_one()
    return ApiKey(int(key_id), kind, name, token[:10], now_ms, None), token


def verify(conn: Connection, token: str) -> ApiKey | None:
    """The live key behind a token, or None (unknown or revoked)."""
    row = conn.execute(
        select(api_keys).where(api_keys.c.token_hash == digest(token), api_keys.c.revoked_ms.is_(None))
    ).first()
    if row is None:
        return None
    return ApiKey(row.id, row.kind, row.name, row.prefix, row.created_ms, row.revoked_ms)


def revoke(conn: Connection, key_id: int, now_ms: int) -> None:
    done = (
        fits_id(key_id)
        and conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_ms.is_(None))
            .values(revoked_ms=now_ms)
        ).rowcount
    )
    if not done:
        raise NotFoundError(f"no live key with id {key_id}")


def list_keys(conn: Connection) -> list[ApiKey]:
    rows = conn.execute(select(api_keys).order_by(api_keys.c.id))
    return [ApiKey(r.id, r.kind, r.name, r.prefix, r.created_ms, r.revoked_ms) for r in rows]

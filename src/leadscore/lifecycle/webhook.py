"""Webhook delivery: a JSON POST signed with HMAC-SHA256 over ``timestamp.body``.

Headers: ``X-Leadscore-Timestamp`` (Unix seconds), ``X-Leadscore-Signature: sha256=<hex>``,
``Idempotency-Key`` (the same on every attempt), ``X-Leadscore-Event``. A receiver verifies with
``verify()`` (or its own three lines), rejects timestamps older than a few minutes, and drops a key it
has already processed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import httpx
import orjson

TOLERANCE_S = 300


@dataclass(frozen=True)
class Outcome:
    """How a delivery attempt ended: ``ok``, ``retry`` (worth trying again) or ``fail`` (never will work)."""

    status: str
    detail: str = ""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now_s: int) -> bool:
    """Check a delivery's signature and that it is recent (receivers use this; so do the tests)."""
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now_s - int(timestamp)) > TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def resolve_url(target: str) -> str | None:
    """A stored target is a URL or ``env:NAME`` (the URL is a secret kept in the environment)."""
    if target.startswith("env:"):
        return os.environ.get(target.removeprefix("env:")) or None
    return target


def post(
    client: httpx.Client, target: str, body: dict[str, object], key: str, event: str, secret: str, now_s: int
) -> Outcome:
    url = resolve_url(target)
    if url is None:
        return Outcome("retry", f"environment variable {target.removeprefix('env:')} is not set")
    data = orjson.dumps(body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "leadscore-webhook",
        "X-Leadscore-Timestamp": str(now_s),
        "X-Leadscore-Signature": sign(secret, now_s, data),
        "X-Leadscore-Event": event,
        "Idempotency-Key": key,
    }
    try:
        response = client.post(url, content=data, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome("retry", f"{type(exc).__name__}: {exc}")
    if 200 <= response.status_code < 300:
        return Outcome("ok")
    detail = f"HTTP {response.status_code}: {response.text[:200]}"
    # 408/425/429 and every 5xx may pass; other 4xx answers will not change by asking again
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        return Outcome("retry", detail)
    return Outcome("fail", detail)

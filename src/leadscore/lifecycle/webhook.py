"""Webhook delivery: a JSON POST signed with HMAC-SHA256 over ``timestamp.body``.

Headers: ``X-Leadscore-Timestamp`` (Unix seconds), ``X-Leadscore-Signature: sha256=<hex>``,
``Idempotency-Key`` (the same on every attempt), ``X-Leadscore-Event``. A receiver verifies with
``verify()`` (or its own three lines), rejects timestamps older than a few minutes, and drops a key it
has already processed.

Every wait is bounded: connecting (``LEADSCORE_WEBHOOK_CONNECT_TIMEOUT_S``), each read
(``LEADSCORE_WEBHOOK_TIMEOUT_S``) and the whole attempt (``LEADSCORE_WEBHOOK_TOTAL_TIMEOUT_S``: every
name lookup, connect, TLS handshake, write and read of the attempt, the answer's status line and headers
included, waits at most what is left of it; ``lifecycle.deadline``). ``lifecycle.outbox`` runs attempts in
their own threads, per endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import orjson

from leadscore.settings import WebhookSettings

if TYPE_CHECKING:
    import httpx

TOLERANCE_S = 300
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class Outcome:
    """How a delivery attempt ended: ``ok``, ``retry`` (worth trying again) or ``fail`` (never will work)."""

    status: str
    detail: str = ""
    # what the receiver asked to wait before the next attempt (a 429's or 503's ``Retry-After``), seconds
    wait_s: float | None = None


RETRY_AFTER_DIGITS = 10  # more is "a very long time": read as such, never as a number past 64 bits


def retry_after_s(value: str | None, now_s: float) -> float | None:
    """The wait a ``Retry-After`` header asks for (RFC 9110 §10.2.3: delay-seconds or an HTTP date), in
    seconds from ``now_s``; None where there is none or it says nothing readable (a negative number, a
    bare word). A date already past asks for no wait; a number too long to be a delay is infinity (the
    sender caps every wait at its own ``retry_max_s``)."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text)) if len(text) <= RETRY_AFTER_DIGITS else float("inf")
    if not text.isascii() or len(text) > 64:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # an HTTP date is GMT; a zone-less one is read so
        return None
    return max(moment.timestamp() - now_s, 0.0)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now_s: int) -> bool:
    """Check a delivery's signature and that it is recent (receivers use this; so do the tests)."""
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now_s - int(timestamp)) > TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def client(settings: WebhookSettings) -> httpx.Client:
    """One client for every endpoint: timeouts from the settings, connections up to the worker count."""
    import httpx  # loaded when the first webhook is due, not when the server starts

    from leadscore.lifecycle.deadline import bounded_transport

    timeout = httpx.Timeout(
        settings.timeout_s, connect=settings.connect_timeout_s, pool=settings.connect_timeout_s
    )
    limits = httpx.Limits(max_connections=settings.workers, max_keepalive_connections=settings.workers)
    return httpx.Client(timeout=timeout, transport=bounded_transport(limits), follow_redirects=False)


def post(
    client: httpx.Client,
    settings: WebhookSettings,
    target: str,
    body: dict[str, object],
    key: str,
    event: str,
    now_s: int,
    *,
    public_only: bool = False,
) -> Outcome:
    """One attempt. ``public_only``: ``target`` is a dashboard user's URL, which reaches public addresses
    and ``settings.private_networks`` only (``deadline.vetted_address``; a refused address fails the
    row at once: asking again will not change it)."""
    import httpx

    from leadscore.lifecycle.deadline import RefusedAddress, attempt_deadline

    url = settings.url(target)
    if url is None:
        return Outcome("retry", f"environment variable {target.removeprefix('env:')} is not set")
    data = orjson.dumps(body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "leadscore-webhook",
        "X-Leadscore-Timestamp": str(now_s),
        "X-Leadscore-Signature": sign(settings.secret, now_s, data),
        "X-Leadscore-Event": event,
        "Idempotency-Key": key,
        # the answer as sent: httpx inflates a gzip answer a network read at a time, 64 KiB into 64 MiB
        "Accept-Encoding": "identity",
    }
    deadline = time.monotonic() + settings.total_timeout_s
    try:
        with (
            attempt_deadline(deadline, settings.user_networks() if public_only else None),
            client.stream("POST", url, content=data, headers=headers) as response,
        ):
            answer = b""
            for chunk in response.iter_raw():  # never inflated (an answer encoded anyway is not shown)
                answer += chunk
                if len(answer) >= MAX_ANSWER_BYTES:
                    break  # only the start of an error answer is kept
    except (httpx.InvalidURL, UnicodeError) as exc:  # a host no lookup takes, a port that is no number
        return Outcome("fail", f"the URL cannot be requested: {exc}")
    except httpx.HTTPError as exc:
        if isinstance(exc.__cause__, RefusedAddress):
            return Outcome("fail", f"refused: {exc}")
        overran = isinstance(exc, httpx.TimeoutException) and time.monotonic() >= deadline
        why = f"the attempt took longer than {settings.total_timeout_s} s" if overran else str(exc)
        return Outcome("retry", f"{type(exc).__name__}: {why}")
    if 200 <= response.status_code < 300:
        return Outcome("ok")
    coding = response.headers.get("content-encoding", "identity").strip().lower()
    shown = (
        answer[:200].decode("utf-8", "replace") if coding in ("", "identity") else f"(a {coding[:20]} answer)"
    )
    detail = f"HTTP {response.status_code}: {shown}"
    # 408/425/429 and every 5xx may pass; other 4xx answers will not change by asking again
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        return Outcome("retry", detail, retry_after_s(response.headers.get("retry-after"), time.time()))
    return Outcome("fail", detail)

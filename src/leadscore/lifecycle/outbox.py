"""Delivering the outbox: claim due rows under a lease, send each (webhook or mail), record the result;
failures are retried with exponential backoff until ``max_attempts``, then marked failed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from leadscore.lifecycle import mail, webhook
from leadscore.lifecycle.config import LifecycleSettings
from leadscore.model import Lifecycle
from leadscore.store import Store
from leadscore.store.outbox import claim_due, finish, retry_at

log = logging.getLogger("leadscore.lifecycle")
BATCH = 50


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


def backoff_ms(settings: LifecycleSettings, attempts: int) -> int:
    """Wait after the ``attempts``-th failed attempt: base × 2^(attempts−1), capped."""
    return int(min(settings.retry_max_s, settings.retry_base_s * 2 ** max(attempts - 1, 0)) * 1000)


def deliver_due(
    store: Store, settings: LifecycleSettings, lifecycle: Lifecycle | None, now_ms: int | None = None
) -> DeliveryStats:
    """Deliver every row due now (one lease per batch); returns what happened."""
    stats = DeliveryStats()
    lease_ms = int((max(settings.webhook_timeout_s, settings.smtp_timeout_s) * 2 + 30) * 1000)
    client: httpx.Client | None = None  # made only when something is due (it builds a TLS context)
    try:
        while True:
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            with store.begin() as conn:
                rows = claim_due(conn, now, lease_ms, BATCH)
            if rows and client is None:
                client = httpx.Client(timeout=settings.webhook_timeout_s)
            for row in rows:
                assert client is not None
                _deliver(store, settings, lifecycle, client, row, now, stats)
            if len(rows) < BATCH or now_ms is not None:
                return stats
    finally:
        if client is not None:
            client.close()


def _deliver(
    store: Store,
    settings: LifecycleSettings,
    lifecycle: Lifecycle | None,
    client: httpx.Client,
    row: dict[str, Any],
    now: int,
    stats: DeliveryStats,
) -> None:
    key, payload = str(row["key"]), dict(row["payload"])
    if row["channel"] == "mail":
        with store.connect() as conn:
            problem = (
                mail.consent_problem(
                    conn, lifecycle, row["lead_id"], str(payload["to"]), settings.suppression_pepper
                )
                if payload.get("to_lead")
                else None
            )
        if problem is not None:
            with store.begin() as conn:
                finish(conn, int(row["id"]), "skipped", now, problem)
            stats.skipped += 1
            return
        outcome = mail.send(settings, payload, key)
    else:
        outcome = webhook.post(
            client,
            str(row["target"]),
            payload["body"],
            key,
            str(payload["event"]),
            settings.webhook_secret,
            int(time.time()),  # the wall clock, which receivers check
        )
    attempts = int(row["attempts"]) + 1
    with store.begin() as conn:
        if outcome.status == "ok":
            finish(conn, int(row["id"]), "sent", now)
            stats.sent += 1
        elif outcome.status == "retry" and attempts < settings.max_attempts:
            retry_at(conn, int(row["id"]), now + backoff_ms(settings, attempts), outcome.detail)
            stats.retried += 1
        else:
            finish(conn, int(row["id"]), "failed", now, outcome.detail)
            stats.failed += 1
            log.warning("giving up on %s after %d attempts: %s", key, attempts, outcome.detail)

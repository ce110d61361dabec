"""One slow receiver host holds at most its share of the webhook workers, however many URLs it has.

A chat server or a CRM takes webhooks at several URLs (each dashboard user's Slack URL, a CRM's /leads and
/accounts): each URL was an endpoint of its own, with ``concurrency`` deliveries in flight, so a host
that accepts connections and never answers took every worker with three URLs, and a delivery to any
other host waited for the stalled attempts' total timeout, round after round. The stall is real (a TCP
server that accepts and never answers); the other receiver is the tests' HTTP receiver.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from leadscore.lifecycle.outbox import Deliverer, host_of
from leadscore.settings import LifecycleSettings, Settings, WebhookSettings
from leadscore.store import Store
from leadscore.store.outbox import claim_due, enqueue, read_outbox
from receivers import socket_server, wait_for, webhook_receiver

STALL_S = 120.0  # the stalled attempts' total timeout: the test ends long before it
PROMPT_S = 20.0  # liveness bound for the other host's delivery, far below STALL_S


def _sent(store: Store, key: str) -> dict[str, str] | None:
    """Every row's status once ``key``'s is sent."""
    with store.connect() as conn:
        statuses = {str(r["key"]): str(r["status"]) for r in read_outbox(conn)}
    return statuses if statuses[key] == "sent" else None


def test_a_host_that_never_answers_at_three_urls_leaves_workers_for_another_host(store: Store) -> None:
    connections: list[str] = []
    lock = threading.Lock()

    def silent(conn: socket.socket, stop: threading.Event) -> None:
        request = conn.recv(65536).split(b" ", 2)
        with lock:
            connections.append(request[1].decode() if len(request) > 1 else "")
        stop.wait()  # accepted, read, never answered

    settings = Settings(
        database_url="unused",
        webhook=WebhookSettings(
            secret="test-webhook-secret",
            workers=4,
            concurrency=2,
            timeout_s=STALL_S,
            total_timeout_s=STALL_S,
        ),
        lifecycle=LifecycleSettings(lifecycle_idle_s=0.05),
    )
    now_ms = int(time.time() * 1000)
    deliverer = Deliverer(store, settings)
    try:
        with socket_server(silent) as port, webhook_receiver() as fast:
            stalled = [f"http://127.0.0.1:{port}/{path}" for path in ("a", "b", "c")]
            rows = [
                {"key": f"stalled:{i}", "channel": "webhook", "action": "t", "lead_id": None, "target": url}
                for i, url in enumerate(u for u in stalled for _ in range(2))
            ]
            other = {"key": "other", "channel": "webhook", "action": "t", "lead_id": None, "target": fast.url}
            payload = {"payload": {"body": {}, "event": "t"}}
            with store.begin() as conn:
                # the stalled host's rows first in line
                enqueue(conn, [{**r, **payload} for r in rows], now_ms - 1000)
                enqueue(conn, [{**other, **payload}], now_ms)
            deliverer.start()
            wait_for(lambda: "other" in fast.hooks.processed, PROMPT_S)
            # delivered while the stalled host still holds its connections, unanswered
            with lock:
                held = list(connections)
            assert held and len(held) <= settings.webhook.concurrency
            statuses = wait_for(lambda: _sent(store, "other"), PROMPT_S)
            assert {statuses[f"stalled:{i}"] for i in range(6)} == {"pending"}
    finally:
        deliverer.stop()  # the server has closed its connections: the stalled attempts have ended


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://Hooks.Example.com/services/T1/B2", "https://hooks.example.com:443"),
        ("HTTP://hooks.example.com:80?x=1", "http://hooks.example.com:80"),
        ("http://[::1]:8080/a", "http://::1:8080"),
        ("http://h.example:99999/a", "http://h.example:99999/a"),  # no port: the URL is its own host
        ("env:LEADSCORE_HOOK", "env:LEADSCORE_HOOK"),
    ],
)
def test_the_host_of_a_url(url: str, host: str) -> None:
    assert host_of(url) == host


def test_a_busy_hosts_prefix_skips_only_its_own_urls(store: Store) -> None:
    """The claim's prefixes are literal: ``_`` and ``%`` in a busy host's URL match themselves only."""
    rows = [
        {"key": k, "channel": "webhook", "action": "t", "lead_id": None, "target": t, "payload": {}}
        for k, t in [
            ("busy", "http://a_b%:1/x"),
            ("lookalike", "http://axbx:1/x"),
            ("longer port", "http://a_b%:10/x"),
        ]
    ]
    with store.begin() as conn:
        enqueue(conn, rows, 0)
        claimed = claim_due(conn, 0, 1000, 10, skip_prefixes=["http://a_b%:1/", "http://a_b%:1?"])
    assert sorted(r["key"] for r in claimed) == ["longer port", "lookalike"]

"""A receiver that answers its status line and then trickles header bytes for ever: the attempt ends at the
total timeout (``lifecycle.deadline``), the row is retried, and ``deliver_due`` (``lifecycle run --once``)
returns. Before, httpx bounded each read only, so the attempt, the worker thread and the cron run hung."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from leadscore.lifecycle import webhook
from leadscore.settings import LifecycleSettings, Settings, WebhookSettings
from leadscore.store import Store
from leadscore.store.outbox import enqueue, read_outbox
from receivers import delivery_round_ends, socket_server

# liveness bound, far above the 1 s total timeout; the old attempt never ended
FINISHES_WITHIN_S = 15.0
TRICKLE_EVERY_S = 0.2  # far below the 5 s per-read timeout, so no single read ever times out


def _trickle(conn: socket.socket, stop: threading.Event) -> None:
    """Sends ``200 OK`` and then one header line every TRICKLE_EVERY_S, never a body."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(TRICKLE_EVERY_S):
        conn.sendall(b"X-Still-Coming: yes\r\n")


@contextmanager
def trickling_receiver() -> Iterator[str]:
    """An HTTP server that trickles its headers (``_trickle``); yields its URL."""
    with socket_server(_trickle) as port:
        yield f"http://127.0.0.1:{port}/hook"


def _hooks() -> WebhookSettings:
    return WebhookSettings(connect_timeout_s=1.0, timeout_s=5.0, total_timeout_s=1.0, secret="s" * 32)


def test_an_attempt_ends_at_the_total_timeout_while_headers_trickle_in() -> None:
    settings = _hooks()
    outcome: list[webhook.Outcome] = []
    with trickling_receiver() as url, webhook.client(settings) as client:
        attempt = threading.Thread(
            target=lambda: outcome.append(webhook.post(client, settings, url, {}, "k", "lead.mql", 0)),
            daemon=True,
        )
        attempt.start()
        attempt.join(FINISHES_WITHIN_S)
        assert not attempt.is_alive(), "the attempt still waits for the receiver's headers"
    assert outcome == [webhook.Outcome("retry", "ReadTimeout: the attempt took longer than 1.0 s")]


def test_a_trickling_receiver_does_not_hang_a_delivery_round(store: Store) -> None:
    settings = Settings(
        database_url="unused", webhook=_hooks(), lifecycle=LifecycleSettings(retry_base_s=60.0)
    )
    now_ms = int(time.time() * 1000)
    with trickling_receiver() as url:
        with store.begin() as conn:
            row = {"key": "t:1", "channel": "webhook", "action": "a", "lead_id": None, "target": url}
            enqueue(conn, [{**row, "payload": {"body": {"n": 1}, "event": "lead.mql"}}], now_ms)
        delivery_round_ends(store, settings, FINISHES_WITHIN_S, "the trickling receiver")
    with store.connect() as conn:
        (found,) = read_outbox(conn)
    # one failed attempt, due again after the first backoff: 60 s less at most half of it (the jitter)
    assert (found["status"], found["attempts"], found["failures"]) == ("pending", 1, 1)
    assert found["last_error"] == "ReadTimeout: the attempt took longer than 1.0 s"
    assert now_ms + 30_000 <= found["next_attempt_ms"] <= int(time.time() * 1000) + 60_000


# 200 MB of zeros in about 200 KB of gzip: a receiver's error answer that inflates on the way in
INFLATED_BYTES = 200 * 1024 * 1024
ZEROS_GZIPPED = zlib.compress(bytes(INFLATED_BYTES), 9, wbits=31)


def _gzip_bomb(conn: socket.socket, stop: threading.Event) -> None:
    """Answers 500 with a gzip body that inflates to INFLATED_BYTES."""
    conn.recv(65536)
    head = (
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(ZEROS_GZIPPED)
    )
    conn.sendall(head + ZEROS_GZIPPED)


def test_an_answer_that_inflates_is_not_held_inflated() -> None:
    """The start of an error answer is kept (4 KiB), but httpx inflated every network read of a gzip answer
    whole first: 64 KiB read became 64 MiB, so one attempt held about 130 MB at a time, and a receiver
    (anyone whose URL a user saves for notifications) could make each delivery round take that much. The
    answer is asked for and read as sent (identity), and the attempt is retried with its start."""
    settings = _hooks()
    with socket_server(_gzip_bomb) as port, webhook.client(settings) as client:
        tracemalloc.start()
        try:
            outcome = webhook.post(client, settings, f"http://127.0.0.1:{port}/hook", {}, "k", "lead.mql", 0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert outcome == webhook.Outcome("retry", "HTTP 500: (a gzip answer)")
    assert peak < 10_000_000, peak

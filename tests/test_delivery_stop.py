"""Stopping the deliverer (the server shutting down) does not wait on a slow endpoint: over a real HTTP
receiver and a real SMTP server (aiosmtpd) that each hold the request, ``stop`` cancels the attempt in
flight and returns while the receiver still holds it; the row is pending again, the attempt not counted
(no failure, no error, due at once), and the next deliverer sends it (at least once: the receiver sees the
request again, under the same key)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from leadscore.lifecycle.outbox import Deliverer, deliver_due
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.outbox import enqueue, read_outbox
from lifecycle_model import settings
from receivers import Receiver, free_port, wait_for

# liveness bound, not a timing: far below the attempt's timeouts (120 s a read, 300 s in all), which the
# stop used to wait out
PROMPT_S = 10.0
LONG = {"timeout_s": 120.0, "total_timeout_s": 300.0}


@pytest.fixture
def slow() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.hooks.delay_s = 600.0
    receiver.up()
    try:
        yield receiver
    finally:
        receiver.down()


class HoldingMailbox:
    """An SMTP server's handler that holds every message's DATA until ``release`` is set."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self.answered = 0
        self.subjects: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.held.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        self.answered += 1
        self.subjects.append(envelope.content.decode().split("Subject: ", 1)[1].split("\r\n", 1)[0])
        return "250 OK"


def _enqueue(store: Store, row: dict[str, Any]) -> None:
    with store.begin() as conn:
        assert enqueue(conn, [{"action": "test", "lead_id": None, **row}], int(time.time() * 1000)) == 1


def _stop_within(deliverer: Deliverer) -> None:
    stopping = threading.Thread(target=deliverer.stop, daemon=True)
    stopping.start()
    stopping.join(PROMPT_S)
    assert not stopping.is_alive(), "stop waits on the slow endpoint's attempt"


def _given_back(store: Store, key: str) -> None:
    with store.connect() as conn:
        (row,) = [r for r in read_outbox(conn) if r["key"] == key]
    assert (row["status"], row["attempts"], row["failures"], row["last_error"]) == ("pending", 0, 0, None)
    assert row["next_attempt_ms"] <= int(time.time() * 1000)  # due again now, not after a backoff or lease


def test_stop_cancels_a_webhook_held_by_a_slow_receiver(store: Store, slow: Receiver) -> None:
    cfg = settings(**LONG)
    _enqueue(store, {"key": "test:held", "channel": "webhook", "target": slow.url,
                     "payload": {"body": {"n": 1}, "event": "test"}})  # fmt: skip
    deliverer = Deliverer(store, cfg, lambda: None).start()
    wait_for(lambda: len(slow.hooks.attempts) == 1, PROMPT_S)  # the receiver holds the request now
    _stop_within(deliverer)
    assert slow.hooks.answered == 0  # stop returned while the receiver still held the request
    _given_back(store, "test:held")
    assert deliverer.stats.retried == deliverer.stats.failed == 0 and deliverer.errors == 0
    # the receiver answers again; the next deliverer sends the row, under the same key
    slow.hooks.release.set()
    stats = deliver_due(store, cfg, None)
    assert stats.sent == 1
    with store.connect() as conn:
        assert [r["status"] for r in read_outbox(conn)] == ["sent"]
    assert [a["key"] for a in slow.hooks.attempts] == ["test:held", "test:held"]
    assert list(slow.hooks.processed) == ["test:held"]


def test_stop_cancels_a_mail_held_by_a_slow_smtp_server(store: Store) -> None:
    box = HoldingMailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        base = settings(smtp_port=port)
        cfg: Settings = base.model_copy(
            update={"smtp": base.smtp.model_copy(update={"timeout_s": 120.0, "total_timeout_s": 300.0})}
        )
        payload = {"subject": "Held", "body": "b", "to": "lena@vendor.example", "to_lead": False,
                   "unsubscribe_url": ""}  # fmt: skip
        _enqueue(store, {"key": "test:mail", "channel": "mail", "target": "lena@vendor.example",
                         "payload": payload})  # fmt: skip
        deliverer = Deliverer(store, cfg, lambda: None).start()
        assert box.held.wait(PROMPT_S)  # the server holds the message's DATA now
        _stop_within(deliverer)
        assert box.answered == 0  # stop returned while the server still held the message
        _given_back(store, "test:mail")
        box.release.set()
        assert deliver_due(store, cfg, None).sent == 1
        with store.connect() as conn:
            assert [r["status"] for r in read_outbox(conn)] == ["sent"]
    finally:
        box.release.set()
        controller.stop()

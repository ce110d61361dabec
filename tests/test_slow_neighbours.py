"""A slow neighbour never holds up the rest, with real servers: a webhook receiver that sends its status and
headers and then trickles its body a byte at a time, an SMTP server that greets only after minutes, and
one (aiosmtpd) that takes the message and then stalls in DATA. While one of them holds its attempt, a lead
still reaches MQL, is assigned, and the other channel's receivers get their deliveries (the manager's
webhook; for a webhook stall, the seller's mail too). A receiver that answers with an endless redirect
chain is asked once per attempt: redirects are not followed, the row fails on its 302.

The bounded waits below are liveness bounds far below the stalls' 120 s, never timings.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from leadscore.lifecycle.runner import LifecycleRunner
from leadscore.scoring.pipeline import publish
from leadscore.settings import LifecycleSettings
from leadscore.store import Store
from leadscore.store.outbox import enqueue, read_outbox
from leadscore.store.people import find_lead
from leadscore.store.schema import assignments, lead_stages
from lifecycle_model import HOOK_ENV, model, person, points, send, settings
from receivers import free_port, smtp_server, socket_server, wait_for, webhook_receiver

STALL_S = 120.0  # the stalled attempts' timeouts: the test ends long before
PROMPT_S = 20.0  # liveness bound for everything else


@contextmanager
def trickling_body() -> Iterator[tuple[str, Callable[[], bool]]]:
    """A webhook receiver answering 200 with a 1 MB body sent one byte every 0.2 s; yields its URL and
    whether a connection is still being trickled to."""
    open_now = threading.Event()

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        open_now.set()
        try:
            while not stop.wait(0.2):
                conn.sendall(b".")
        finally:
            open_now.clear()

    with socket_server(serve) as port:
        yield f"http://127.0.0.1:{port}/hook", open_now.is_set


@contextmanager
def late_greeting() -> Iterator[tuple[int, Callable[[], bool]]]:
    """An SMTP server that accepts and says nothing (its greeting would come minutes later)."""
    waiting = threading.Event()

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        waiting.set()
        try:
            stop.wait(STALL_S)
        finally:
            waiting.clear()

    with socket_server(serve) as port:
        yield port, waiting.is_set


class _StallInData:
    def __init__(self) -> None:
        self.in_data = threading.Event()
        self.done = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data.set()
        await asyncio.sleep(STALL_S)  # the message is in; the answer never comes
        self.done += 1
        return "250 OK"


@contextmanager
def stall_in_data() -> Iterator[tuple[int, Callable[[], bool]]]:
    handler = _StallInData()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, lambda: handler.in_data.is_set() and handler.done == 0
    finally:
        controller.stop()


def _stage(store: Store, user: str) -> str | None:
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id=user)
        if lead_id is None:
            return None
        return conn.execute(select(lead_stages.c.stage).where(lead_stages.c.lead_id == lead_id)).scalar()


def _assigned(store: Store, user: str) -> list[str]:
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id=user)
        query = select(assignments.c.seller).where(assignments.c.lead_id == lead_id)
        return [str(s) for s in conn.execute(query).scalars()]


NEIGHBOURS: dict[str, Callable[[], AbstractContextManager[tuple[Any, Callable[[], bool]]]]] = {
    "webhook body trickled": trickling_body,
    "smtp greeting late": late_greeting,
    "smtp stalled in DATA": stall_in_data,
}


@pytest.mark.parametrize("neighbour", list(NEIGHBOURS))
def test_a_stalled_neighbour_holds_up_nothing_else(store: Store, neighbour: str) -> None:
    publish(store, model())
    webhook_stall = neighbour.startswith("webhook")
    runners: list[LifecycleRunner] = []
    try:
        with (
            NEIGHBOURS[neighbour]() as (where, stalled),
            webhook_receiver() as fast,
            smtp_server() as (mailbox, good_smtp),
        ):
            cfg = settings(
                smtp_port=good_smtp if webhook_stall else where,
                timeout_s=STALL_S,
                total_timeout_s=STALL_S,
                url_environment={HOOK_ENV: fast.url + "/slack"},
            )
            cfg = cfg.model_copy(
                update={
                    "smtp": cfg.smtp.model_copy(update={"timeout_s": STALL_S, "total_timeout_s": STALL_S}),
                    "lifecycle": LifecycleSettings(retry_base_s=0.05, retry_max_s=0.1, lifecycle_idle_s=0.05),
                }
            )
            now_ms = int(time.time() * 1000)
            row: dict[str, Any] = {"key": "stalled", "action": "test", "lead_id": None}
            if webhook_stall:
                row |= {"channel": "webhook", "target": where, "payload": {"body": {}, "event": "test"}}
            else:
                to = "someone@example.com"
                row |= {"channel": "mail", "target": to, "payload": {"to": to, "subject": "s", "body": "b"}}
            with store.begin() as conn:
                enqueue(conn, [row], now_ms)
            runners.append(runner := LifecycleRunner(store, cfg).start())
            wait_for(stalled, PROMPT_S)  # the neighbour holds its attempt now
            send(store, [person("ann", country="se"), *points("ann", 75)])
            runner.wake()
            wait_for(lambda: _stage(store, "ann") == "mql", PROMPT_S)
            assert wait_for(lambda: _assigned(store, "ann"), PROMPT_S)[0] in ("erik", "sara")
            wait_for(lambda: [k for k in fast.hooks.processed if k.startswith("manager_alert")], PROMPT_S)
            if webhook_stall:
                wait_for(
                    lambda: mailbox.to("erik@vendor.example") or mailbox.to("sara@vendor.example"), PROMPT_S
                )
            assert stalled()  # all of it while the neighbour still stalls
            with store.connect() as conn:
                (mine,) = [r for r in read_outbox(conn) if r["key"] == "stalled"]
            assert mine["status"] == "pending"
    finally:
        for runner in runners:  # the neighbour has closed its connections: its attempt has ended
            runner.stop()


def test_an_endless_redirect_chain_is_asked_once_and_the_row_fails(store: Store) -> None:
    from leadscore.lifecycle.outbox import deliver_due

    asked: list[bytes] = []

    def redirect(conn: socket.socket, stop: threading.Event) -> None:
        asked.append(conn.recv(65536).split(b"\r\n", 1)[0])
        n = len(asked)
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: /hop-%d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % n
        )

    with socket_server(redirect) as port:
        with store.begin() as conn:
            row = {"key": "r", "channel": "webhook", "action": "t", "lead_id": None}
            target = f"http://127.0.0.1:{port}/hop-0"
            enqueue(conn, [{**row, "target": target, "payload": {"body": {}, "event": "t"}}], 0)
        stats = deliver_due(store, settings(), None, now_ms=0)
    assert (stats.sent, stats.retried, stats.failed) == (0, 0, 1)
    assert asked == [b"POST /hop-0 HTTP/1.1"]
    with store.connect() as conn:
        (found,) = read_outbox(conn)
    assert (found["status"], found["last_error"]) == ("failed", "HTTP 302: ")

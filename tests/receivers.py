"""Real receivers for lifecycle tests: an SMTP server (aiosmtpd) and an HTTP webhook receiver
(http.server) on loopback ports. The webhook receiver verifies signatures, processes each
Idempotency-Key once (as a real receiver should), and can be told to fail, to answer slowly or to go down."""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from leadscore.lifecycle.webhook import verify

SECRET = "test-webhook-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass
class Hooks:
    """What the webhook receiver saw: every attempt, and the deliveries it processed (once per key)."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_signatures: int = 0
    fail_next: int = 0  # answer this many requests with 500
    delay_s: float = 0.0  # wait this long (or until ``release`` is set) before answering: a slow endpoint
    release: threading.Event = field(default_factory=threading.Event)
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(hooks: Hooks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = verify(
                SECRET,
                self.headers.get("X-Leadscore-Timestamp", ""),
                body,
                self.headers.get("X-Leadscore-Signature", ""),
                int(time.time()),
            )
            key = self.headers.get("Idempotency-Key", "")
            with hooks.lock:
                hooks.attempts.append({"key": key, "path": self.path})
            if hooks.delay_s and not hooks.release.is_set():
                hooks.release.wait(hooks.delay_s)
            with hooks.lock:
                hooks.answered += 1
                if not ok:
                    hooks.bad_signatures += 1
                    status = 401
                elif hooks.fail_next > 0:
                    hooks.fail_next -= 1
                    status = 500
                else:
                    hooks.processed.setdefault(key, {"path": self.path, "body": json.loads(body)})
                    status = 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    return Handler


class Receiver:
    """A webhook receiver that can be stopped (down: connections refused) and started again on its port."""

    def __init__(self) -> None:
        self.hooks = Hooks()
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> Receiver:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self.hooks))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def down(self) -> None:
        self.hooks.release.set()  # a slow handler answers now, so the server stops at once
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver().up()
    try:
        yield receiver
    finally:
        receiver.down()


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def delivery_round_ends(store: Any, settings: Any, within_s: float, what: str) -> None:
    """One ``deliver_due`` round in a thread of its own; the test fails if it still runs after ``within_s``
    (a liveness bound for a receiver that never finishes answering, not a timing: ``what`` names it)."""
    from leadscore.lifecycle.outbox import deliver_due

    run = threading.Thread(target=lambda: deliver_due(store, settings, None), daemon=True)
    run.start()
    run.join(within_s)
    assert not run.is_alive(), f"deliver_due still waits on {what}"


@contextmanager
def socket_server(serve: Callable[[socket.socket, threading.Event], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that runs ``serve(conn, stop)`` on each connection in a thread of its own
    (a receiver that answers slowly or never: ``stop`` is set as the block ends); yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run(conn: socket.socket) -> None:
        with conn:
            try:
                serve(conn, stop)
            except OSError:
                return  # the client hung up, as it should

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=run, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        server.close()

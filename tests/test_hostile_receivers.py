"""Hostile and slow receivers, real ones on 127.0.0.1: each webhook attempt ends by its total timeout with
its memory bounded however the receiver answers (or does not); a receiver that hangs holds up no other
receiver's delivery nor the writes to the store; one that keeps failing is tried again after a growing
backoff that its own Retry-After can stretch up to the sender's cap but not shrink or break, and its row ends failed, counted by
endpoint for the dashboard, while the healthy receiver got its one delivery once. SMTP likewise: a server
that refuses for now (4xx, at RCPT as greylisting does, or at DATA), drops the connection or stalls in DATA
is tried again and given up only after ``max_attempts``.

Every bound below is a liveness bound far from the stalls it is set against, never a timing.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from leadscore.lifecycle import mail, webhook
from leadscore.lifecycle.outbox import Deliverer, deliver_due
from leadscore.lifecycle.webhook import retry_after_s
from leadscore.settings import LifecycleSettings, Settings, SmtpSettings, WebhookSettings
from leadscore.store import Store
from leadscore.store.outbox import delivery_failures, enqueue, read_outbox
from receivers import free_port, socket_server, wait_for, webhook_receiver

ENDS_WITHIN_S = 15.0  # an attempt with a 1 s total timeout: liveness bound
STALL_S = 120.0  # the hanging receivers' timeouts in the neighbour tests: the test ends long before
PROMPT_S = 20.0  # liveness bound for the healthy receiver, far below STALL_S
MEMORY_CAP = 4_000_000  # bytes an attempt may hold at its peak, whatever the receiver sends

Serve = Callable[[socket.socket, threading.Event], None]


def _answer(head: bytes, body: bytes = b"") -> Serve:
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        conn.sendall(head + body)
        stop.wait(2.0)  # then closes

    return serve


def _silent(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    stop.wait()  # accepted, read, never answered


def _trickled_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while not stop.wait(0.2):
        conn.sendall(b".")  # a byte at a time: no read ever times out


def _trickled_headers(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 500 Oops\r\n")
    while not stop.wait(0.2):
        conn.sendall(b"X-More: 1\r\n")


def _endless(status: bytes, chunked: bool) -> Serve:
    """Answers ``status`` with a body that never ends (chunked) or claims 1 GB, sent as fast as it is read."""
    piece = b"x" * 65536

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 1073741824"
        conn.sendall(b"HTTP/1.1 " + status + b"\r\n" + framing + b"\r\n\r\n")
        sent = 0
        while not stop.is_set() and sent < 1 << 30:
            conn.sendall(b"10000\r\n" + piece + b"\r\n" if chunked else piece)
            sent += len(piece)

    return serve


def _closes_mid_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    conn.shutdown(socket.SHUT_RDWR)  # ten bytes of a hundred, then gone


def _garbage(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 no http here\r\n\r\n")
    stop.wait(2.0)


RETRY_AFTER = {
    "past 64 bits": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 36893488147419103232\r\n",
    "negative": b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: -30\r\n",
    "a century": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3155760000\r\n",
    "a date long past": b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    "a word": b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: soon\r\n",
    "two minutes": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\n",
}


@contextmanager
def _full_backlog() -> Iterator[int]:
    """A listening socket that never accepts, its backlog full: a connection to it is never completed
    (the kernel drops the SYN), as with an address that does not route."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)  # the one place in the queue
    try:
        yield port
    finally:
        filler.close()
        server.close()


@contextmanager
def _hostile(serve: Serve | None) -> Iterator[str]:
    """The URL of a receiver running ``serve`` (None: one whose connections never complete)."""
    if serve is None:
        with _full_backlog() as port:
            yield f"http://127.0.0.1:{port}/hook"
    else:
        with socket_server(serve) as port:
            yield f"http://127.0.0.1:{port}/hook"


def _hooks(**kw: Any) -> WebhookSettings:
    fields: dict[str, Any] = {"connect_timeout_s": 1.0, "timeout_s": 5.0, "total_timeout_s": 1.0}
    return WebhookSettings(secret="test-webhook-secret", **{**fields, **kw})


# (1)-(3): one attempt ends by its total timeout, its memory bounded, with the outcome the answer deserves

ATTEMPTS: dict[str, tuple[Serve | None, str, str]] = {
    # name: (the receiver, the outcome's status, how its detail begins)
    "never answers": (_silent, "retry", "ReadTimeout: the attempt took longer than 1.0 s"),
    "trickles its body": (_trickled_body, "retry", "ReadTimeout: the attempt took longer than 1.0 s"),
    "trickles its headers": (_trickled_headers, "retry", "ReadTimeout: the attempt took longer than 1.0 s"),
    "never accepts": (None, "retry", "ConnectTimeout: "),
    "endless chunked 200": (_endless(b"200 OK", chunked=True), "ok", ""),
    "1 GB 200": (_endless(b"200 OK", chunked=False), "ok", ""),
    "endless chunked 500": (_endless(b"500 Oops", chunked=True), "retry", "HTTP 500: " + "x" * 190),
    "1 GB 502": (_endless(b"502 Bad Gateway", chunked=False), "retry", "HTTP 502: " + "x" * 190),
    "closes mid-body": (_closes_mid_body, "retry", "RemoteProtocolError: "),
    "garbage, no HTTP": (_garbage, "retry", "RemoteProtocolError: "),
    "redirect to another host": (
        _answer(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://10.255.255.1/x\r\nContent-Length: 0\r\n\r\n"
        ),
        "fail",
        "HTTP 307: ",
    ),
    "https: plain HTTP, no TLS": (
        _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        "retry",
        "ConnectError: ",
    ),
    "https: a TLS record cut short": (
        _garbage,
        "retry",
        "ConnectTimeout: the attempt took longer than 1.0 s",
    ),
    "https: silent in the handshake": (
        _silent,
        "retry",
        "ConnectTimeout: the attempt took longer than 1.0 s",
    ),
    **{
        f"Retry-After {name}": (_answer(head + b"Content-Length: 4\r\n\r\nbusy"), "retry", "HTTP ")
        for name, head in RETRY_AFTER.items()
    },
}


@pytest.mark.parametrize("receiver", list(ATTEMPTS))
def test_an_attempt_is_bounded_in_time_and_memory(receiver: str) -> None:
    serve, status, detail = ATTEMPTS[receiver]
    settings = _hooks()
    outcome: list[webhook.Outcome] = []
    with _hostile(serve) as plain, webhook.client(settings) as client:
        url = "https" + plain.removeprefix("http") if receiver.startswith("https:") else plain
        tracemalloc.start()
        try:
            attempt = threading.Thread(
                target=lambda: outcome.append(webhook.post(client, settings, url, {}, "k", "t", 0)),
                daemon=True,
            )
            attempt.start()
            attempt.join(ENDS_WITHIN_S)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert not attempt.is_alive(), f"the attempt still waits on a receiver that {receiver}"
    (found,) = outcome
    assert (found.status, found.detail[: len(detail)]) == (status, detail), found
    assert len(found.detail) <= 300
    assert peak < MEMORY_CAP, peak


# (1), (5): while one receiver hangs, another gets its deliveries and the store takes writes


def _statuses(store: Store) -> dict[str, str]:
    with store.connect() as conn:
        return {str(r["key"]): str(r["status"]) for r in read_outbox(conn)}


def _row(key: str, url: str) -> dict[str, Any]:
    return {
        "key": key, "channel": "webhook", "action": "t", "lead_id": None, "target": url,
        "payload": {"body": {"k": key}, "event": "t"},
    }  # fmt: skip


HANGING: dict[str, Serve | None] = {
    "never answers": _silent,
    "trickles its body": _trickled_body,
    "trickles its headers": _trickled_headers,
    "never accepts": None,
}


@pytest.mark.parametrize("receiver", list(HANGING))
def test_a_hanging_receiver_holds_up_no_other_delivery(store: Store, receiver: str) -> None:
    """The hanging receiver's rows are first in line and as many as the webhook workers; the healthy
    receiver's two rows (one enqueued before the start, one while the hang lasts: a write the store must
    take meanwhile) are each delivered once while the hanging attempts still hold their connections."""
    settings = Settings(
        database_url="unused",
        webhook=_hooks(
            workers=4, concurrency=2, connect_timeout_s=STALL_S, timeout_s=STALL_S, total_timeout_s=STALL_S
        ),
        lifecycle=LifecycleSettings(lifecycle_idle_s=0.05),
    )
    now_ms = int(time.time() * 1000)
    deliverer = Deliverer(store, settings)
    try:
        with _hostile(HANGING[receiver]) as url, webhook_receiver() as healthy:
            with store.begin() as conn:
                enqueue(conn, [_row(f"hang:{i}", url) for i in range(4)], now_ms - 1000)
                enqueue(conn, [_row("first", healthy.url + "/a")], now_ms)
            deliverer.start()
            wait_for(lambda: "first" in healthy.hooks.processed, PROMPT_S)
            with store.begin() as conn:  # ingest's write while attempts hang: no lock is held across them
                enqueue(conn, [_row("second", healthy.url + "/b")], int(time.time() * 1000))
            deliverer.wake()
            wait_for(lambda: _statuses(store).get("second") == "sent", PROMPT_S)
            statuses = _statuses(store)
            assert {statuses[f"hang:{i}"] for i in range(4)} == {"pending"}  # still hanging, not given up
            assert statuses["first"] == "sent"
            with healthy.hooks.lock:
                keys = [a["key"] for a in healthy.hooks.attempts]
            assert sorted(keys) == ["first", "second"]  # each once
    finally:
        deliverer.stop()  # cancels the hanging attempts


# (4): a receiver that keeps failing backs off, then ends failed, counted; the healthy one gets one delivery

FAILING: dict[str, Serve] = {
    **{
        f"Retry-After {name}": _answer(head + b"Content-Length: 4\r\nConnection: close\r\n\r\nbusy")
        for name, head in RETRY_AFTER.items()
    },
    "closes mid-body": _closes_mid_body,
    "garbage, no HTTP": _garbage,
    "endless chunked 500": _endless(b"500 Oops", chunked=True),
}


@pytest.mark.parametrize("receiver", list(FAILING))
def test_a_failing_receiver_backs_off_and_ends_failed(store: Store, receiver: str) -> None:
    """Retries after 5 s then 10 s (less up to half of each: the jitter), or after what Retry-After asked
    where that is longer (at most retry_max_s); the third failure gives the row up. Each round runs at the time the row is next due."""
    settings = Settings(
        database_url="unused",
        webhook=_hooks(),
        lifecycle=LifecycleSettings(retry_base_s=5.0, retry_max_s=900.0, retry_jitter=0.5, max_attempts=3),
    )
    with socket_server(FAILING[receiver]) as port, webhook_receiver() as healthy:
        url = f"http://127.0.0.1:{port}/hook"
        with store.begin() as conn:
            enqueue(conn, [_row("bad", url), _row("good", healthy.url)], 0)
        now, waits = 0, []
        for _ in range(3):
            deliver_due(store, settings, None, now_ms=now)
            with store.connect() as conn:
                bad = next(r for r in read_outbox(conn) if r["key"] == "bad")
            if bad["status"] != "pending":
                break
            waits.append(bad["next_attempt_ms"] - now)
            now = bad["next_attempt_ms"]
        with store.connect() as conn:
            rows = {r["key"]: r for r in read_outbox(conn)}
            failures = delivery_failures(conn)
    # a Retry-After lengthens the wait up to retry_max_s (900 s), never shortens it; one that says no
    # readable wait (negative, a word, a date past) leaves the backoff
    asked = {
        "Retry-After past 64 bits": 900_000,
        "Retry-After a century": 900_000,
        "Retry-After two minutes": 120_000,
    }
    if receiver in asked:
        assert waits == [asked[receiver]] * 2, waits
    else:
        assert len(waits) == 2 and 2_500 <= waits[0] <= 5_000 and 5_000 <= waits[1] <= 10_000, waits
    assert (rows["bad"]["status"], rows["bad"]["failures"], rows["bad"]["attempts"]) == ("failed", 3, 3)
    assert rows["bad"]["last_error"]
    assert failures == {url: {"failures": 3, "failed": 1, "retrying": 0}}
    assert rows["good"]["status"] == "sent"
    assert [a["key"] for a in healthy.hooks.attempts] == ["good"]


# SMTP: refused for now, dropped, stalled


class _Refusing:
    """An SMTP server's handler that refuses every message for now at ``where`` (RCPT or DATA)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.asked = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.where == "RCPT":
            self.asked += 1
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.asked += 1
        return "452 4.3.1 Insufficient system storage"


class _Stalling:
    def __init__(self) -> None:
        self.in_data = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data.set()
        await asyncio.sleep(STALL_S)
        return "250 OK"


@contextmanager
def _aiosmtpd(handler: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _drops_after_greeting(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"220 mx.example ESMTP\r\n")
    conn.recv(65536)  # EHLO
    conn.shutdown(socket.SHUT_RDWR)


def _mail_settings(port: int, **lifecycle: Any) -> Settings:
    return Settings(
        database_url="unused",
        smtp=SmtpSettings(host="127.0.0.1", port=port, timeout_s=5.0, total_timeout_s=1.0),
        lifecycle=LifecycleSettings(
            **{"retry_base_s": 5.0, "retry_max_s": 900.0, "max_attempts": 3, **lifecycle}
        ),
    )


PAYLOAD = {"to": "seller@example.com", "subject": "s", "body": "b"}


LAST_ERROR = {
    "RCPT": "recipient refused: {'seller@example.com': (451, b'4.7.1 Greylisted, please try again later')}",
    "DATA": "SMTP 452: b'4.3.1 Insufficient system storage'",
}


@pytest.mark.parametrize("where", list(LAST_ERROR))
def test_an_smtp_server_that_refuses_for_now_is_tried_again_then_given_up(store: Store, where: str) -> None:
    """Refused for now at RCPT (greylisting) or at DATA: tried again after its backoff, and given up (failed,
    counted) only at ``max_attempts``. Before, a 4xx at RCPT failed the row at its first attempt, as a
    5xx does: every greylisting server's first answer lost the mail."""
    handler = _Refusing(where)
    with _aiosmtpd(handler) as port:
        settings = _mail_settings(port)
        with store.begin() as conn:
            row = {"key": "m", "channel": "mail", "action": "t", "lead_id": None, "target": PAYLOAD["to"]}
            enqueue(conn, [{**row, "payload": PAYLOAD}], 0)
        now, seen = 0, []
        for _ in range(3):
            deliver_due(store, settings, None, now_ms=now)
            with store.connect() as conn:
                (found,) = read_outbox(conn)
            seen.append((found["status"], found["failures"]))
            now = found["next_attempt_ms"]
    assert seen == [("pending", 1), ("pending", 2), ("failed", 3)]
    assert handler.asked == 3
    assert found["last_error"] == LAST_ERROR[where]


def test_an_smtp_server_that_refuses_a_recipient_for_good_fails_the_row_at_once(store: Store) -> None:
    class Unknown:
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            return "550 5.1.1 No such user"

    with _aiosmtpd(Unknown()) as port:
        with store.begin() as conn:
            row = {"key": "m", "channel": "mail", "action": "t", "lead_id": None, "target": PAYLOAD["to"]}
            enqueue(conn, [{**row, "payload": PAYLOAD}], 0)
        deliver_due(store, _mail_settings(port), None, now_ms=0)
    with store.connect() as conn:
        (found,) = read_outbox(conn)
    assert (found["status"], found["failures"]) == ("failed", 1)
    assert found["last_error"] == "recipient refused: {'seller@example.com': (550, b'5.1.1 No such user')}"


SMTP_ATTEMPTS: dict[str, str] = {
    "drops the connection": "SMTPServerDisconnected: ",
    "stalls in DATA": "TimeoutError: the attempt took longer than 1.0 s",
}


@pytest.mark.parametrize("server", list(SMTP_ATTEMPTS))
def test_an_smtp_attempt_that_is_dropped_or_stalled_is_retried_within_its_deadline(server: str) -> None:
    stalling = _Stalling()
    context = socket_server(_drops_after_greeting) if server.startswith("drops") else _aiosmtpd(stalling)
    outcome: list[webhook.Outcome] = []
    with context as port:
        settings = _mail_settings(port)
        attempt = threading.Thread(
            target=lambda: outcome.append(mail.send(settings, PAYLOAD, "k:1")), daemon=True
        )
        attempt.start()
        attempt.join(ENDS_WITHIN_S)
        assert not attempt.is_alive(), f"the mail attempt still waits on a server that {server}"
    (found,) = outcome
    expected = SMTP_ATTEMPTS[server]
    assert (found.status, found.detail[: len(expected)]) == ("retry", expected), found
    if server == "stalls in DATA":
        assert stalling.in_data.is_set()


# ``leadscore notify`` and ``lifecycle run --once`` (``deliver_due``): the hang holds up no other delivery


@pytest.mark.parametrize("receiver", ["never answers", "never accepts"])
def test_a_hanging_receiver_holds_up_no_other_delivery_of_a_once_round(store: Store, receiver: str) -> None:
    """Four workers, two of them held by the hanging receiver's rows (first in line) until its attempts
    time out: the healthy receiver's ten rows go out through the other two while they hang. Before, the
    round started four attempts and waited for all four to end before it claimed more: the healthy rows
    beyond the first two waited for the hanging attempts' total timeout, round after round."""
    settings = Settings(
        database_url="unused",
        webhook=_hooks(
            workers=4, concurrency=2, connect_timeout_s=STALL_S, timeout_s=STALL_S, total_timeout_s=STALL_S
        ),
        lifecycle=LifecycleSettings(retry_base_s=600.0),
    )
    now_ms = int(time.time() * 1000)
    healthy_keys = [f"healthy:{i}" for i in range(10)]
    done = threading.Event()
    with webhook_receiver() as healthy:
        run = threading.Thread(
            target=lambda: (deliver_due(store, settings, None, now_ms), done.set()), daemon=True
        )
        try:
            with _hostile(HANGING[receiver]) as url:
                with store.begin() as conn:
                    enqueue(conn, [_row(f"hang:{i}", url) for i in range(2)], now_ms - 1000)
                    enqueue(conn, [_row(k, healthy.url) for k in healthy_keys], now_ms)
                run.start()
                wait_for(lambda: len(healthy.hooks.processed) == 10 or done.is_set(), PROMPT_S)
                assert not done.is_set()  # the hanging attempts still hang
                assert sorted(healthy.hooks.processed) == sorted(healthy_keys)
        finally:
            # the hanging receiver is gone now (its connections closed, or never made): the round ends
            if run.is_alive():
                run.join(STALL_S)
        assert done.is_set()
    statuses = _statuses(store)
    assert {statuses[k] for k in healthy_keys} == {"sent"}
    assert sorted(a["key"] for a in healthy.hooks.attempts) == sorted(healthy_keys)  # each once


# a Retry-After as the receiver wrote it → the wait it asks for, seconds after "now" (RFC 9110 §10.2.3)
NOW_S = 784_111_777.0  # Sun, 06 Nov 1994 08:49:37 GMT
RETRY_AFTER_VALUES = [
    ("120", 120.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("-30", None),  # not delay-seconds
    ("1.5", None),
    ("soon", None),
    ("", None),
    ("36893488147419103232", float("inf")),  # past 64 bits: "a very long time", capped by the sender
    ("Sun, 06 Nov 1994 08:51:37 GMT", 120.0),
    ("Sun, 06 Nov 1994 08:40:00 GMT", 0.0),  # already past
    ("Sun, 06 Nov 1994 08:49:37", None),  # an HTTP date is GMT
    ("Sun, 06 Nov 99999 08:51:37 GMT", None),
    ("Sün, 06 Nov 1994 08:51:37 GMT", None),
    ("x" * 100, None),
]


@pytest.mark.parametrize(("value", "wait"), RETRY_AFTER_VALUES)
def test_a_retry_after_reads_as_the_wait_it_asks_for(value: str, wait: float | None) -> None:
    assert retry_after_s(value, NOW_S) == wait


# one slow neighbour never blocks the rest: hanging hosts together never hold every worker


@pytest.mark.parametrize(
    ("receiver", "mode"),
    [("never answers", "runner"), ("trickles its body", "runner"), ("never answers", "once")],
)
def test_hanging_hosts_leave_a_worker_for_a_healthy_one(store: Store, receiver: str, mode: str) -> None:
    """Two hanging receivers (two hosts: ``host_of`` keys by port too), each with as many rows as its
    ``concurrency`` and first in line: together as many as the four webhook workers. The healthy receiver's
    row, enqueued after them, is delivered while the hanging attempts still hang, by the runner and by a
    once round (``deliver_due``). Before, the hanging rows took all four workers and the healthy row waited
    for their total timeout."""
    settings = Settings(
        database_url="unused",
        webhook=_hooks(
            workers=4, concurrency=2, connect_timeout_s=STALL_S, timeout_s=STALL_S, total_timeout_s=STALL_S
        ),
        lifecycle=LifecycleSettings(lifecycle_idle_s=0.05, retry_base_s=600.0),
    )
    now_ms = int(time.time() * 1000)
    hanging = [f"{h}:{i}" for h in ("one", "two") for i in range(2)]
    deliverer = Deliverer(store, settings)
    done = threading.Event()
    once = threading.Thread(
        target=lambda: (deliver_due(store, settings, None, now_ms), done.set()), daemon=True
    )
    serve = HANGING[receiver]
    try:
        with _hostile(serve) as one, _hostile(serve) as two, webhook_receiver() as healthy:
            with store.begin() as conn:
                enqueue(conn, [_row(k, one) for k in hanging[:2]], now_ms - 2000)
                enqueue(conn, [_row(k, two) for k in hanging[2:]], now_ms - 1000)
                enqueue(conn, [_row("healthy", healthy.url + "/a")], now_ms)
            if mode == "runner":
                deliverer.start()
            else:
                once.start()
            wait_for(lambda: _statuses(store).get("healthy") == "sent", PROMPT_S)
            statuses = _statuses(store)
            assert {statuses[k] for k in hanging} == {"pending"}  # still hanging, not given up
            assert not done.is_set()  # the once round too: its hanging attempts still hang
            with healthy.hooks.lock:
                assert [a["key"] for a in healthy.hooks.attempts] == ["healthy"]
    finally:
        deliverer.stop()  # cancels the runner's hanging attempts
        if once.is_alive():
            once.join(STALL_S)  # the hanging receivers are gone: the round ends
    assert mode == "runner" or done.is_set()


def test_a_run_once_delivers_a_row_its_host_refused_while_an_attempt_ended_during_the_claim(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``deliver_due`` (``--once``, ``notify``): one host at a time (concurrency 1), two rows. The claim
    that finds the host busy with the first row starts nothing; if that attempt ends before the run looks
    whether anything is in flight, nothing is, and the run ended with the second row never tried (a
    digest's mail lost that way, one run in seven under load). Forced here: the claim returns only once
    the attempt in flight has ended. Both rows are sent, each once."""
    settings = Settings(database_url="unused", webhook=_hooks(concurrency=1))
    real = Deliverer.dispatch

    def claim_then_let_the_attempt_end(self: Deliverer, now_ms: int) -> int:
        started = real(self, now_ms)
        if not started:
            self.wait_idle()  # the attempt in flight ends during the claim
        return started

    monkeypatch.setattr(Deliverer, "dispatch", claim_then_let_the_attempt_end)
    with webhook_receiver() as healthy:
        with store.begin() as conn:
            enqueue(conn, [_row("first", healthy.url), _row("second", healthy.url)], 0)
        stats = deliver_due(store, settings, None, now_ms=0)
        with store.connect() as conn:
            statuses = {r["key"]: r["status"] for r in read_outbox(conn)}
        with healthy.hooks.lock:
            keys = sorted(a["key"] for a in healthy.hooks.attempts)
    assert statuses == {"first": "sent", "second": "sent"}
    assert keys == ["first", "second"]
    assert stats.sent == 2

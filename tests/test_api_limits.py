"""Request size limits on every endpoint, answered in the JSON error envelope."""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from pathlib import Path

import httpx

from leadscore.api import create_app
from leadscore.api.app import MAX_BODY_BYTES
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from live_server import serving


def test_oversized_bodies_are_refused_everywhere() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "limits.db"))
        with store.begin() as conn:
            _, admin = create_key(conn, "admin", "ops", 0)
        app = create_app(Settings(database_url="unused", run_processor=False), store=store)
        big = b"x" * (MAX_BODY_BYTES + 1)
        with serving(app) as url, httpx.Client(base_url=url) as client:
            for path in ("/v1/outcomes", "/v1/batch", "/signin"):
                r = client.post(
                    path,
                    content=big,
                    headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
                )
                assert r.status_code == 413, (path, r.status_code)
                if path.startswith("/v1"):
                    body = r.json()
                    assert body["ok"] is False and body["error"]
        store.dispose()


def _trickle(url: str, path: str, origin: bool) -> tuple[bytes, bytes]:
    """A request declaring 100 bytes of body, of which it sends one: the answer, and what the server
    sends after it (b"": it closed the connection)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
        sock.sendall((head + ("Origin: https://site.example\r\n" if origin else "") + "\r\n{").encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer, sock.recv(65536)


def test_a_body_that_trickles_in_is_answered_408_and_its_connection_closed() -> None:
    """A client that declares a body and never finishes it held its connection for ever (uvicorn bounds
    no request's time), and 2,048 of them, with no key, left every other request a 503: past
    LEADSCORE_BODY_READ_S (here 1 s) it is answered 408 and closed, through the tracking lane (no
    Origin) and the full application (an Origin), on a tracking path and another one."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "slow.db"))
        app = create_app(Settings(database_url="unused", run_processor=False, body_read_s=1.0), store=store)
        with serving(app) as url:
            for path, origin in (("/v1/track", False), ("/v1/batch", True), ("/v1/outcomes", False)):
                answer, after = _trickle(url, path, origin)
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408"), (path, answer[:300])
                assert b"connection: close" in head.lower(), (path, head)
                assert b"did not arrive within 1 s" in body, (path, body)
                assert after == b"", (path, after)
            assert httpx.get(f"{url}/healthz").status_code == 200
        store.dispose()


def _start_body(url: str, path: str, declared: int, sent: int) -> socket.socket:
    """A connection that declared a body of ``declared`` bytes and sent the first ``sent`` of them."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n")  # fmt: skip
    sock.sendall(head.encode() + b" " * sent)
    return sock


def _answer(sock: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_bodies_held_at_once_are_bounded_per_process() -> None:
    """Each request's limit bounds one body (PostHog's batches: 8 MiB), not 2,048 sent at once. With a
    16 MiB budget (LEADSCORE_BODY_BUDGET_MB), two clients holding 6 MiB each of unfinished PostHog
    batches leave room for 4 MiB: a third one's 6 MiB is answered 503 and its connection closed, and
    once the first two are gone a 6 MiB body is read again (here a 400: it is not JSON)."""
    six = 6 * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "budget.db"))
        settings = Settings(database_url="unused", run_processor=False, body_budget_mb=16, body_read_s=60)
        app = create_app(settings, store=store)
        with serving(app) as url:
            held = [_start_body(url, "/batch/", six + 100, six) for _ in range(2)]
            time.sleep(1.0)  # the server has read what they sent
            third = _start_body(url, "/batch/", six, six)
            head, _, body = _answer(third).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), head
            assert b"connection: close" in head.lower(), head
            assert b"too many request bodies at once" in body, body
            third.close()
            for sock in held:
                sock.close()
            time.sleep(1.0)  # their requests end and give their bytes back
            again = _start_body(url, "/batch/", six, six)
            assert _answer(again).startswith(b"HTTP/1.1 400")
            again.close()
            assert httpx.get(f"{url}/healthz").status_code == 200
            time.sleep(0.5)
            assert app.body_budget.held == 0  # every request gave its bytes back  # type: ignore[attr-defined]
        store.dispose()


def test_one_timer_keeps_every_body_deadline_of_a_loop() -> None:
    """The deadlines of one event loop share one timer: a body still arriving when its own deadline
    passes is answered 408 even when a request with a later deadline came first (another app on the same
    loop), a body whose chunks all arrive in time is read whole, and a request answered before its
    deadline leaves nothing behind for the timer."""
    import asyncio

    from leadscore.api.body_deadline import BodyBudget, BodyDeadline
    from leadscore.api.errors import ApiError

    async def never() -> dict[str, object]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: object) -> None:
        return None

    async def main() -> None:
        budget = BodyBudget(1 << 20)
        chunks = iter([b"ab", b"cd", b""])

        async def trickle() -> dict[str, object]:
            await asyncio.sleep(0.05)
            body = next(chunks)
            return {"type": "http.request", "body": body, "more_body": body != b""}

        slow = BodyDeadline(never, send, 60.0, budget)  # the first request: its deadline an hour away
        quick = BodyDeadline(never, send, 0.2, budget)
        fine = BodyDeadline(trickle, send, 0.5, budget)
        began = asyncio.get_running_loop().time()
        try:
            await quick.receive()
            raise AssertionError("a body that never arrives was read")
        except ApiError as error:
            assert error.status == 408
            assert "did not arrive within 0.2 s" in str(error)
        waited = asyncio.get_running_loop().time() - began
        assert 0.2 <= waited < 1.0, waited  # on its own deadline, not the first request's
        assert quick.expired
        received = [await fine.receive() for _ in range(3)]
        assert b"".join(m["body"] for m in received) == b"abcd"  # type: ignore[misc]
        assert fine.held == 4 and not fine.expired
        for request in (slow, quick, fine):
            request.release()
        assert budget.held == 0
        assert not slow._watch.waiting  # nothing left for the timer

    asyncio.run(main())


def test_a_client_gone_before_its_body_ends_is_no_error() -> None:
    """A client that sends part of a body and goes away (a closed tab, a killed job) is nothing to answer.
    The tracking lane returned quietly; through the full application (PostHog's ``/batch/``, a browser's
    ``/v1/batch`` with an Origin) starlette's ClientDisconnect reached uvicorn, which logged each as
    "Exception in ASGI application" with a 60-line traceback: anyone, no key needed, could write an error
    a connection into the server's log. Counted as ERROR records of uvicorn's logger."""
    errors: list[logging.LogRecord] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record)

    kept = Kept(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.from_url(str(Path(tmp) / "gone.db"))
            app = create_app(Settings(database_url="unused", run_processor=False), store=store)
            with serving(app) as url:
                logging.getLogger("uvicorn.error").addHandler(kept)  # once uvicorn has configured its logging
                host, port = url.removeprefix("http://").split(":")
                for path, origin in (
                    ("/batch/", ""),
                    ("/v1/batch", "Origin: http://x.test\r\n"),
                    ("/v1/batch", ""),
                ):
                    with socket.create_connection((host, int(port)), timeout=10) as sock:
                        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/json\r\n"
                                     f"Content-Length: 1000\r\n\r\n{{\"batch\": [".encode())  # fmt: skip
                        time.sleep(0.3)  # the server is reading the body
                time.sleep(1.0)  # and has seen each connection close
                assert httpx.get(f"{url}/healthz").status_code == 200
                assert app.body_budget.held == 0  # type: ignore[attr-defined]
            store.dispose()
    finally:
        logging.getLogger("uvicorn.error").removeHandler(kept)
    assert [r.getMessage() for r in errors] == []

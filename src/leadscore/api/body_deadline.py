"""A request's body arrives within ``LEADSCORE_BODY_READ_S`` of the request's start, or it is answered
408 and its connection closed ("slowloris").

uvicorn closes idle keep-alive connections, but has no limit on how long a request's body may take: a
client that declared 100 bytes and sent one every two seconds held its connection for as long as it
liked (measured: still open after 40 s, no key needed), and 2,048 such clients (``limit_concurrency``)
left every other request a 503. One wrapper of ``receive`` and ``send`` for every request with a body,
whichever way it is served (the tracking lane or the full application), bounds the whole body's time, not
the time between two chunks (a chunk every few seconds would pass that). The default, 30 s, lets a 512 KB
batch come in at 17 KB/s. Headers that never end are uvicorn's to bound (a reverse proxy does:
``client_header_timeout``, docs/ingest.md).

The same wrapper counts the bytes a request's body holds, as received and as inflated (``charge``, from
``content_encoding.decoded``), against the process's ``BodyBudget`` (``LEADSCORE_BODY_BUDGET_MB``, 64 MiB):
every request's own limit (1 MiB, PostHog's 8 MiB) bounds one body, not 2,048 of them sent at once
(measured before: each connection's bytes stayed in memory until its request was answered). A body that
would take the process past its budget is answered 503 (clients retry it later) and its connection
closed; what a request holds is given back when it is answered.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from contextvars import ContextVar

from starlette.types import Message, Receive, Scope, Send

from leadscore.api.errors import ApiError

CLOSE = (b"connection", b"close")


def has_body(scope: Scope) -> bool:
    """Whether an HTTP request declares a body (a length above 0, or chunks)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value != b"0"
        if name == b"transfer-encoding":
            return True
    return False


class BodyBudget:
    """The bytes of request bodies a process holds at once, at most ``limit`` (thread-safe: a sync route's
    body may be inflated on a worker thread)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.held + n > self.limit:
                return False
            self.held += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.held -= n


_request: ContextVar[BodyDeadline | None] = ContextVar("leadscore_body", default=None)


def charge(n: int) -> None:
    """``n`` more bytes held for the body of the request being answered (its inflated copy): ApiError 503
    when the process's budget has no room for them. Outside a request (a test calling a decoder), nothing."""
    held = _request.get()
    if held is not None and n > 0:
        held.take(n)


class _Watch:
    """The requests of one event loop whose body is still arriving, with one timer for all of them, set at
    the earliest deadline. A timeout context around every ``receive`` (``asyncio.timeout_at``) cost
    3.5–5.7 µs a request, about a tenth of what answering ``/v1/track`` costs; a request here costs a dict
    entry, and the timer fires only when a deadline passes (normally: every ``seconds``)."""

    __slots__ = ("_at", "_handle", "waiting")

    def __init__(self) -> None:  # no reference to its loop: the watches are weakly keyed by theirs
        self.waiting: dict[BodyDeadline, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    def add(self, request: BodyDeadline, loop: asyncio.AbstractEventLoop) -> None:
        self.waiting[request] = None
        if self._handle is None or request.deadline < self._at:
            if self._handle is not None:
                self._handle.cancel()
            self._at = request.deadline
            self._handle = loop.call_at(request.deadline, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        loop = asyncio.get_running_loop()  # the timer's callback runs on the watch's loop
        now = loop.time()
        for request in [r for r in self.waiting if r.deadline <= now]:
            del self.waiting[request]
            request.expire()
        if self.waiting:
            first = min(r.deadline for r in self.waiting)
            self._at = first
            self._handle = loop.call_at(first, self._sweep)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()
_last: tuple[asyncio.AbstractEventLoop | None, _Watch | None] = (None, None)


def _watch_of(loop: asyncio.AbstractEventLoop) -> _Watch:
    """The watch of ``loop`` (one per loop: a test may run several servers, each on a loop of its own)."""
    global _last
    held, watch = _last
    if held is not loop or watch is None:
        watch = _watches.get(loop)
        if watch is None:
            watch = _watches[loop] = _Watch()
        _last = (loop, watch)
    return watch


class BodyDeadline:
    """``receive`` and ``send`` of one request whose body must arrive within ``seconds``: past that,
    ``receive`` raises ApiError 408 (answered by the lane or the app's handler), and the answer, whatever
    it is, closes the connection (the rest of the body is never read). The deadline is kept by the loop's
    ``_Watch``: when it passes, a ``receive`` waiting for the body is cancelled (its task uncancelled and
    the 408 raised in its place), and a later one raises the 408 at once."""

    __slots__ = ("_budget", "_done", "_late", "_receive", "_send", "_task", "_watch", "deadline", "expired",
                 "held", "seconds")  # fmt: skip

    def __init__(self, receive: Receive, send: Send, seconds: float, budget: BodyBudget) -> None:
        self._receive, self._send, self.seconds, self._budget = receive, send, seconds, budget
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + seconds
        self._done = self._late = False
        self._task: asyncio.Task[object] | None = None  # the task waiting in ``receive``, if one is
        self.expired = False
        self.held = 0  # bytes taken from the budget, given back by ``release``
        self._watch = _watch_of(loop)
        self._watch.add(self, loop)
        _request.set(self)

    def take(self, n: int) -> None:
        if not self._budget.take(n):
            self.expired = True  # the rest of the body is never read: the connection closes
            raise ApiError(503, "the server holds too many request bodies at once: send this one again later")
        self.held += n

    def release(self) -> None:
        """The request is answered: its bytes are given back (once), and the watch forgets it."""
        self._watch.waiting.pop(self, None)
        held, self.held = self.held, 0
        if held:
            self._budget.give(held)

    def expire(self) -> None:
        """The deadline passed with the body still arriving (called by the watch)."""
        self._late = True
        if self._task is not None:
            self._task.cancel()

    def _timed_out(self) -> ApiError:
        self.expired = True
        return ApiError(408, f"the request body did not arrive within {self.seconds:g} s")

    async def receive(self) -> Message:
        if self._done:  # the body is in: the app may wait for a disconnect as long as it likes
            return await self._receive()
        if self._late:
            raise self._timed_out()
        self._task = task = asyncio.current_task()
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if self._late and task is not None and task.uncancel() == 0:
                raise self._timed_out() from None
            raise
        finally:
            self._task = None
        body = message.get("body")
        if body:
            self.take(len(body))
        if not message.get("more_body", False):
            self._done = True
            self._watch.waiting.pop(self, None)
        return message

    async def send(self, message: Message) -> None:
        if self.expired and message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), CLOSE]}
        await self._send(message)

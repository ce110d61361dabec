"""One deadline for a whole delivery attempt (a webhook's or a mail's), enforced on the socket: every name
lookup, connect, TLS handshake, write and read waits at most what is left of it.

httpx bounds each operation on its own (connect, each read), never a request as a whole, so a receiver
that sends its status line and then one header byte every few seconds held a delivery thread for ever
(and outlived the outbox row's lease, so the row was claimed again while the first attempt still hung).
``bounded_transport`` gives the webhook client a network backend whose streams clamp every wait to the
deadline that ``attempt_deadline`` sets for the calling thread (the client is synchronous: each attempt
runs in one worker thread, which is what the context variable follows); ``lifecycle.smtp`` does the same for
smtplib. ``resolve`` bounds the name lookup, which no socket timeout reaches (``getaddrinfo`` blocks for as
long as the system resolver likes): it runs in a small thread pool and is waited on with the time left.

An attempt may also be cancelled before its deadline (``Cancel``, set for the thread by ``cancellable``: the
deliverer stopping): every socket the attempt waits on is shut down, which ends a blocked read or write at
once, and every later wait raises as a deadline passed would.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import httpcore

if TYPE_CHECKING:
    import ssl

    import httpx

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")
_DEADLINE: ContextVar[float | None] = ContextVar("leadscore_webhook_deadline", default=None)
# an attempt to a URL a dashboard user gave: the private networks it may reach anyway (None: any address)
_PUBLIC_ONLY: ContextVar[tuple[Network, ...] | None] = ContextVar("leadscore_webhook_public", default=None)
_CANCEL: ContextVar[Cancel | None] = ContextVar("leadscore_attempt_cancel", default=None)
LOOKUP_POLL_S = 0.05  # how often a wait on a name lookup looks whether its attempt was cancelled


class Cancel:
    """One attempt's way to be ended early from another thread: ``cancel()`` shuts down the sockets it
    waits on (``guard``) and makes every later wait of it raise (``time_left``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.cancelled = False

    def guard(self, sock: socket.socket | None) -> None:
        """``sock`` is shut down when the attempt is cancelled (at once if it already is)."""
        if sock is None:
            return
        with self._lock:
            if not self.cancelled:
                if not any(s is sock for s in self._sockets):
                    self._sockets.append(sock)
                return
        _shut(sock)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # the plain socket's shutdown, also for a TLS one (whose own would drop its TLS state under the reader):
    # a read or write blocked in another thread returns at once, the descriptor is closed by its owner
    with contextlib.suppress(OSError):  # not connected yet, or already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextmanager
def cancellable(cancel: Cancel) -> Iterator[None]:
    """Within the block, this thread's attempt ends early when ``cancel`` is cancelled."""
    token = _CANCEL.set(cancel)
    try:
        yield
    finally:
        _CANCEL.reset(token)


def guard(sock: socket.socket | None) -> None:
    """``Cancel.guard`` of the calling thread's attempt (nothing outside one)."""
    cancel = _CANCEL.get()
    if cancel is not None:
        cancel.guard(sock)


class RefusedAddress(httpcore.ConnectError):
    """A user's URL names a host on a private, loopback, link-local or reserved address."""


@contextmanager
def attempt_deadline(at_monotonic: float, public_only: Sequence[Network] | None = None) -> Iterator[None]:
    """Within the block, every network wait of this thread ends by ``at_monotonic`` (time.monotonic); with
    ``public_only``, a connection goes only to a public address or one inside those networks
    (``vetted_address``)."""
    token = _DEADLINE.set(at_monotonic)
    public = _PUBLIC_ONLY.set(None if public_only is None else tuple(public_only))
    try:
        yield
    finally:
        _PUBLIC_ONLY.reset(public)
        _DEADLINE.reset(token)


def vetted_address(host: str, port: int, allowed: Sequence[Network]) -> str:
    """The address to connect to for ``host``: the first it resolves to, when every one is public (a
    global address) or inside ``allowed``; otherwise ``RefusedAddress``. The connection then goes to that
    very address, so a name that resolves differently a moment later (DNS rebinding) changes nothing."""
    addresses = _resolve_for_httpcore(host, port)
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global and not any(address in network for network in allowed):
            raise RefusedAddress(
                f"{host} resolves to {address}, not a public address: a user's notification URL may reach "
                "a private network only where LEADSCORE_WEBHOOK_PRIVATE_NETWORKS allows it"
            )
    return addresses[0]


def time_left(timeout: float | None, timed_out: type[Exception]) -> float | None:
    """``timeout`` clamped to what is left of the deadline; raises ``timed_out`` once it has passed or the
    attempt was cancelled."""
    cancel = _CANCEL.get()
    if cancel is not None and cancel.cancelled:
        raise timed_out("the attempt was cancelled: delivery is stopping")
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out("the attempt ran past its total timeout")
    return left if timeout is None else min(timeout, left)


def within_deadline(call: Callable[[], T], timed_out: type[Exception]) -> T:
    """``call()`` run in a thread of its own (``look_up``), waited on at most what is left of the deadline
    (``timed_out`` after that; the call itself runs on, and its thread ends when it returns)."""
    if _DEADLINE.get() is None:
        return call()
    return wait_within_deadline(look_up(call), timed_out)


def wait_within_deadline(future: Future[T], timed_out: type[Exception]) -> T:
    """The future's result, waited on at most what is left of the deadline (a cancelled attempt stops
    waiting within ``LOOKUP_POLL_S``)."""
    while True:
        left = time_left(None, timed_out)
        polled = _CANCEL.get() is not None and (left is None or left > LOOKUP_POLL_S)
        try:
            return future.result(LOOKUP_POLL_S if polled else left)
        except FutureTimeout:
            if not polled:
                raise timed_out("the name lookup ran past the attempt's total timeout") from None


def look_up(call: Callable[[], T]) -> Future[T]:
    """``call()`` started in a daemon thread of its own: a lookup that outlives its attempt runs on until
    the resolver gives up, and holds up neither a later lookup nor the process's exit (a pool's threads
    are joined at exit)."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to whoever waits, as a pool would
            future.set_exception(exc)

    threading.Thread(target=run, name="leadscore-resolve", daemon=True).start()
    return future


def resolve(host: str, port: int, timed_out: type[Exception]) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, looked up within the deadline."""
    found = within_deadline(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timed_out)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def _resolve_for_httpcore(host: str, port: int) -> list[str]:
    try:
        return resolve(host, port, httpcore.ConnectTimeout)
    except OSError as exc:
        raise httpcore.ConnectError(f"{host}: {exc}") from exc


class _BoundedStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._sock: socket.socket | None = stream.get_extra_info("socket")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        left = time_left(timeout, httpcore.ReadTimeout)
        guard(self._sock)  # the attempt reading now: a kept-alive connection serves several in turn
        return self._stream.read(max_bytes, left)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        left = time_left(timeout, httpcore.WriteTimeout)
        guard(self._sock)
        self._stream.write(buffer, left)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(
            ssl_context, server_hostname, time_left(timeout, httpcore.ConnectTimeout)
        )
        return _BoundedStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BoundedBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connects to the host's addresses in turn (the first that answers), each connect bounded by
        ``timeout`` and the deadline; the name is resolved here, within the deadline, and so is never
        looked up again by ``socket.create_connection``."""
        time_left(timeout, httpcore.ConnectTimeout)
        allowed = _PUBLIC_ONLY.get()
        if allowed is not None:
            addresses = [vetted_address(host, port, allowed)]
        else:
            addresses = _resolve_for_httpcore(host, port)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout = httpcore.ConnectError(
            f"{host}: no address"
        )
        for address in addresses:
            left = time_left(timeout, httpcore.ConnectTimeout)
            try:
                stream = super().connect_tcp(address, port, left, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _BoundedStream(stream)
        raise failure


def bounded_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's own transport (TLS verification, proxies from the environment) on the bounded backend."""
    import httpx

    transport = httpx.HTTPTransport(limits=limits)
    # httpx takes no network backend; its pool (a ConnectionPool, or a proxy that is one) keeps it here
    transport._pool._network_backend = _BoundedBackend()
    return transport

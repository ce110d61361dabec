"""smtplib clients whose whole attempt ends at the deadline that ``deadline.attempt_deadline`` sets.

smtplib bounds each socket operation on its own (``timeout=``), so a server that answers every command one
byte at a time, or trickles a long multi-line reply, held a mail attempt for ever: its worker thread,
``lifecycle run --once`` and the serve shutdown waited on it, and past the outbox row's lease the row was
claimed again and the lead mailed twice. Here every receive and send of the connection, plain or TLS (the
handshake included), waits at most what is left of the deadline, and the names (the server's, this
machine's for EHLO) are looked up within it (``deadline.resolve``, ``local_name``).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
from concurrent.futures import Future
from typing import Any

from leadscore.lifecycle.deadline import guard, look_up, resolve, time_left, wait_within_deadline


class _BoundedSocket(socket.socket):
    """A socket whose every receive and send waits at most ``op_timeout`` and what is left of the deadline."""

    op_timeout: float | None = None

    def _clamp(self) -> None:
        self.settimeout(time_left(self.op_timeout, TimeoutError))
        guard(self)  # shut down when the attempt is cancelled (``deadline.Cancel``)

    def recv(self, *args: Any) -> bytes:
        self._clamp()
        return super().recv(*args)

    def recv_into(self, *args: Any) -> int:
        self._clamp()  # what smtplib's reader (makefile) calls
        return super().recv_into(*args)

    def send(self, *args: Any) -> int:
        self._clamp()
        return super().send(*args)

    def sendall(self, *args: Any) -> None:
        self._clamp()  # a plain socket's sendall waits at most its timeout in all; TLS sends in turn
        super().sendall(*args)


class _BoundedTLSSocket(_BoundedSocket, ssl.SSLSocket):
    """The same over TLS (``SSLContext.sslsocket_class``); the handshake ends by the deadline too."""

    def do_handshake(self, block: bool = False) -> None:
        if self.op_timeout is None:
            # made by wrap_socket from a bounded socket, whose timeout it copied: at most the per-op timeout
            self.op_timeout = self.gettimeout()
        self._clamp()
        super().do_handshake(block)


def tls_context() -> ssl.SSLContext:
    """The default verifying context, its sockets bounded."""
    context = ssl.create_default_context()
    context.sslsocket_class = _BoundedTLSSocket
    return context


def _connect(host: str, port: int, timeout: float, source: Any) -> _BoundedSocket:
    """A bounded connection to the first of the host's addresses that answers (as create_connection)."""
    failure: OSError = OSError(f"{host}: no address")
    for address in resolve(host, port, TimeoutError):
        try:
            # an address, not a name: create_connection looks nothing up
            plain = socket.create_connection((address, port), time_left(timeout, TimeoutError), source)
        except OSError as exc:
            failure = exc
            continue
        sock = _BoundedSocket(fileno=plain.detach())
        sock.op_timeout = timeout
        return sock
    raise failure


_LOCAL_NAME_LOCK = threading.Lock()
_local_name: Future[str] | None = None


def _fqdn_as_smtplib_does() -> str:
    # smtplib.SMTP.__init__'s own choice of this machine's name for EHLO (a reverse lookup, unbounded)
    fqdn = socket.getfqdn()
    if "." in fqdn:
        return fqdn
    try:
        return f"[{socket.gethostbyname(socket.gethostname())}]"
    except socket.gaierror:
        return "[127.0.0.1]"


def local_name() -> str:
    """This machine's name for EHLO, looked up once per process, waited on within the deadline."""
    global _local_name
    with _LOCAL_NAME_LOCK:
        if _local_name is None:
            _local_name = look_up(_fqdn_as_smtplib_does)
        lookup = _local_name
    return wait_within_deadline(lookup, TimeoutError)


class BoundedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` on a bounded socket (STARTTLS stays bounded with a ``tls_context()``)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return _connect(host, port, timeout, self.source_address)


class BoundedSMTP_SSL(smtplib.SMTP_SSL, BoundedSMTP):  # named as smtplib names it
    """``smtplib.SMTP_SSL`` on a bounded socket (give it a ``tls_context()``)."""

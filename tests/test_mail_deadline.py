"""An SMTP server that answers slowly (one byte of a long multi-line reply at a time, or nothing once TLS
begins): the mail attempt ends at LEADSCORE_SMTP_TOTAL_TIMEOUT_S (``lifecycle.smtp``), the row is retried,
and ``deliver_due`` (``lifecycle run --once``) returns. Before, smtplib bounded each socket operation only,
so the attempt, its worker thread and the cron run hung, past the row's lease (a second worker could then
mail the lead again)."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from leadscore.lifecycle import mail
from leadscore.lifecycle.outbox import Deliverer
from leadscore.lifecycle.webhook import Outcome
from leadscore.settings import LifecycleSettings, Settings, SmtpSettings
from leadscore.store import Store
from leadscore.store.outbox import enqueue, read_outbox
from receivers import delivery_round_ends, socket_server

# liveness bound, far above the 1 s total timeout; the old attempt never ended
FINISHES_WITHIN_S = 15.0
TRICKLE_EVERY_S = 0.2  # far below the 5 s per-operation timeout, so no single read ever times out
TIMED_OUT = Outcome("retry", "TimeoutError: the attempt took longer than 1.0 s")
PAYLOAD = {"to": "lead@example.com", "subject": "Hello", "body": "Hi"}


def _trickle_ehlo_reply(conn: socket.socket, stop: threading.Event) -> None:
    """Greets at once, then answers EHLO with an endless multi-line 250 reply, one byte at a time."""
    conn.sendall(b"220 slow.example ESMTP\r\n")
    conn.recv(1024)
    line = b"250-still-coming\r\n"
    index = 0
    while not stop.wait(TRICKLE_EVERY_S):
        conn.sendall(line[index % len(line) :][:1])
        index += 1


def _trickle(conn: socket.socket, stop: threading.Event) -> None:
    line = b"250-still-coming\r\n"
    index = 0
    while not stop.wait(TRICKLE_EVERY_S):
        conn.sendall(line[index % len(line) :][:1])  # over TLS: one record a byte
        index += 1


def _offer_starttls(conn: socket.socket) -> None:
    conn.sendall(b"220 slow.example ESMTP\r\n")
    conn.recv(1024)
    conn.sendall(b"250-slow.example\r\n250 STARTTLS\r\n")
    conn.recv(1024)
    conn.sendall(b"220 go ahead\r\n")


def _trickle_after_starttls(server_tls: ssl.SSLContext) -> Callable[[socket.socket, threading.Event], None]:
    """Completes STARTTLS, then answers the second EHLO one byte at a time (each read over TLS)."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        _offer_starttls(conn)
        with server_tls.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1024)
            _trickle(tls, stop)

    return serve


def _trickle_over_implicit_tls(
    server_tls: ssl.SSLContext,
) -> Callable[[socket.socket, threading.Event], None]:
    """Completes the TLS handshake, then greets one byte at a time."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with server_tls.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"220-")
            _trickle(tls, stop)

    return serve


@pytest.fixture
def trusted_server_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that the mail client trusts (its default context
    loads the certificate too)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", functools.partial(real, cafile=str(cert_path)))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return server


def _silent_after_starttls(conn: socket.socket, stop: threading.Event) -> None:
    """Offers STARTTLS, agrees to it, and then never sends a byte of the TLS handshake."""
    _offer_starttls(conn)
    stop.wait()


def _silent(conn: socket.socket, stop: threading.Event) -> None:
    """Accepts the connection and never answers (an implicit-TLS client waits for the handshake)."""
    stop.wait()


def _settings(port: int, **smtp: object) -> Settings:
    limits = {"timeout_s": 5.0, "total_timeout_s": 1.0, **smtp}
    return Settings(
        database_url="unused",
        smtp=SmtpSettings(port=port, **limits),  # type: ignore[arg-type]
        lifecycle=LifecycleSettings(retry_base_s=60.0),
    )


def _send_in_thread(settings: Settings) -> list[Outcome]:
    outcome: list[Outcome] = []
    attempt = threading.Thread(
        target=lambda: outcome.append(mail.send(settings, PAYLOAD, "m:1")), daemon=True
    )
    attempt.start()
    attempt.join(FINISHES_WITHIN_S)
    assert not attempt.is_alive(), "the mail attempt still waits on the server"
    return outcome


def test_a_mail_attempt_ends_at_the_total_timeout_while_a_reply_trickles_in() -> None:
    with socket_server(_trickle_ehlo_reply) as port:
        outcome = _send_in_thread(_settings(port))
    assert outcome == [TIMED_OUT]


@pytest.mark.parametrize(
    ("serve", "tls"),
    [(_silent_after_starttls, {"starttls": True}), (_silent, {"ssl": True})],
    ids=["starttls", "implicit-tls"],
)
def test_a_stalled_tls_handshake_ends_at_the_total_timeout(
    serve: Callable[[socket.socket, threading.Event], None], tls: dict[str, bool]
) -> None:
    # each wait alone may last 60 s, past the liveness bound: only the total ends the handshake in time
    with socket_server(serve) as port:
        outcome = _send_in_thread(_settings(port, timeout_s=60.0, **tls))
    assert outcome == [TIMED_OUT]


@pytest.mark.parametrize(
    ("serve", "tls"),
    [(_trickle_after_starttls, {"starttls": True}), (_trickle_over_implicit_tls, {"ssl": True})],
    ids=["starttls", "implicit-tls"],
)
def test_a_reply_trickled_over_tls_ends_at_the_total_timeout(
    trusted_server_tls: ssl.SSLContext,
    serve: Callable[[ssl.SSLContext], Callable[[socket.socket, threading.Event], None]],
    tls: dict[str, bool],
) -> None:
    with socket_server(serve(trusted_server_tls)) as port:
        outcome = _send_in_thread(_settings(port, **tls))
    assert outcome == [TIMED_OUT]


def test_a_trickling_server_does_not_hang_a_delivery_round(store: Store) -> None:
    now_ms = int(time.time() * 1000)
    with socket_server(_trickle_ehlo_reply) as port:
        settings = _settings(port)
        with store.begin() as conn:
            row = {"key": "m:1", "channel": "mail", "action": "a", "lead_id": None, "target": PAYLOAD["to"]}
            enqueue(conn, [{**row, "payload": PAYLOAD}], now_ms)
        delivery_round_ends(store, settings, FINISHES_WITHIN_S, "the trickling SMTP server")
    with store.connect() as conn:
        (found,) = read_outbox(conn)
    # one failed attempt, due again after the first backoff: 60 s less at most half of it (the jitter)
    assert (found["status"], found["attempts"], found["failures"]) == ("pending", 1, 1)
    assert found["last_error"] == TIMED_OUT.detail
    assert now_ms + 30_000 <= found["next_attempt_ms"] <= int(time.time() * 1000) + 60_000


def test_the_lease_outlasts_a_mail_attempt(store: Store) -> None:
    settings = Settings(database_url="unused", smtp=SmtpSettings(timeout_s=10.0, total_timeout_s=600.0))
    deliverer = Deliverer(store, settings)
    try:
        # the 600 s total (above the webhook's 5 s connect + 30 s total) and a 30 s margin
        assert deliverer.lease_ms == 630_000
    finally:
        deliverer.stop()

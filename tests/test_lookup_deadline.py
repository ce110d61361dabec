"""A name lookup that never answers ends at the attempt's total timeout, for a webhook (the model's, and a
dashboard user's, whose address is vetted first) and for a mail. ``socket.getaddrinfo`` is replaced by a
function that waits: a stand-in for a slow resolver, since no real slow DNS server can run here. Before,
the lookup (httpcore's ``socket.create_connection``, ``deadline.vetted_address``, smtplib) blocked with no
bound at all."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from leadscore.lifecycle import mail, webhook
from leadscore.lifecycle.webhook import Outcome
from leadscore.settings import Settings, SmtpSettings, WebhookSettings

FINISHES_WITHIN_S = 15.0  # liveness bound, far above the 1 s total; the slow lookup waits 30 s
SLOW_HOST = "slow-resolver.example"


@pytest.fixture
def slow_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``getaddrinfo`` of SLOW_HOST waits 30 s (or until the test ends); other names resolve as usual."""
    real = socket.getaddrinfo
    release = threading.Event()

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == SLOW_HOST:
            release.wait(30)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    release.set()


def _finishes(attempt: Callable[[], Outcome]) -> list[Outcome]:
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(attempt()), daemon=True)
    thread.start()
    thread.join(FINISHES_WITHIN_S)
    assert not thread.is_alive(), "the attempt still waits on the name lookup"
    return outcome


@pytest.mark.usefixtures("slow_resolver")
@pytest.mark.parametrize("public_only", [False, True], ids=["model-webhook", "user-webhook"])
def test_a_webhook_attempt_ends_at_the_total_timeout_while_the_name_resolves(public_only: bool) -> None:
    # the connect timeout alone (20 s) is past the liveness bound: only the total ends the lookup in time
    settings = WebhookSettings(connect_timeout_s=20.0, timeout_s=20.0, total_timeout_s=1.0, secret="s" * 32)
    url = f"http://{SLOW_HOST}/hook"
    with webhook.client(settings) as client:
        outcome = _finishes(
            lambda: webhook.post(client, settings, url, {}, "k", "lead.mql", 0, public_only=public_only)
        )
    assert outcome == [Outcome("retry", "ConnectTimeout: the attempt took longer than 1.0 s")]


@pytest.mark.usefixtures("slow_resolver")
def test_a_mail_attempt_ends_at_the_total_timeout_while_the_name_resolves() -> None:
    smtp = SmtpSettings(host=SLOW_HOST, timeout_s=20.0, total_timeout_s=1.0)
    settings = Settings(database_url="unused", smtp=smtp)
    payload = {"to": "lead@example.com", "subject": "Hello", "body": "Hi"}
    outcome = _finishes(lambda: mail.send(settings, payload, "m:1"))
    assert outcome == [Outcome("retry", "TimeoutError: the attempt took longer than 1.0 s")]


def test_a_lookup_still_running_does_not_hold_up_the_process_exit() -> None:
    """A lookup outlives its attempt in its own daemon thread: the process ends without waiting for it (a
    thread pool's workers are joined at exit, so a resolver that never answers held up a server's stop)."""
    import subprocess
    import sys

    script = (
        "import time\n"
        "from leadscore.lifecycle.deadline import look_up\n"
        "look_up(lambda: time.sleep(60))\n"
        "print('exiting')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=FINISHES_WITHIN_S, check=True
    )
    assert done.stdout == "exiting\n"

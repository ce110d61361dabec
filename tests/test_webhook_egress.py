"""A URL a dashboard user sets (their Slack-compatible notifications) reaches public addresses only: never
the machine itself, the cloud's metadata service or the private network leadscore runs in, unless
``LEADSCORE_WEBHOOK_PRIVATE_NETWORKS`` allows a network (an in-house chat server). The model's webhooks,
set by whoever publishes the model, reach any address. Checked against a real receiver on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import pytest

from leadscore.lifecycle import webhook
from leadscore.lifecycle.deadline import RefusedAddress, vetted_address
from leadscore.lifecycle.notify import _rows
from leadscore.lifecycle.outbox import deliver_due
from leadscore.settings import LifecycleSettings, Settings, WebhookSettings
from leadscore.store import Store
from leadscore.store.notifications import NotificationSettings
from leadscore.store.outbox import enqueue, read_outbox

SECRET = "s" * 32


@contextmanager
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server on 127.0.0.1 that answers 200 and keeps every body it was sent."""
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "169.254.169.254", "10.1.2.3", "192.168.0.9", "::1", "::ffff:127.0.0.1"],
)
def test_private_loopback_and_link_local_addresses_are_refused(host: str) -> None:
    with pytest.raises(RefusedAddress, match="not a public address"):
        vetted_address(host, 443, [])


def test_a_public_address_and_an_allowed_network_pass() -> None:
    assert vetted_address("93.184.216.34", 443, []) == "93.184.216.34"
    assert vetted_address("10.1.2.3", 443, [ipaddress.ip_network("10.1.2.0/24")]) == "10.1.2.3"
    with pytest.raises(RefusedAddress):
        vetted_address("10.1.3.3", 443, [ipaddress.ip_network("10.1.2.0/24")])


def test_an_unresolvable_name_is_a_connect_error_not_a_refusal() -> None:
    with pytest.raises(httpcore.ConnectError) as found:
        vetted_address("no-such-host.invalid", 443, [])
    assert not isinstance(found.value, RefusedAddress)


def test_a_user_url_on_loopback_fails_at_once_and_sends_nothing() -> None:
    settings = WebhookSettings(secret=SECRET)
    with receiver() as (url, got), webhook.client(settings) as client:
        refused = webhook.post(client, settings, url, {"n": 1}, "k1", "digest", 0, public_only=True)
        sent = webhook.post(client, settings, url, {"n": 2}, "k2", "lead.mql", 0)  # the model's webhook
    assert refused.status == "fail"
    assert refused.detail.startswith("refused: 127.0.0.1 resolves to 127.0.0.1, not a public address")
    assert sent == webhook.Outcome("ok")
    assert got == [b'{"n":2}']


def test_an_allowed_private_network_is_reached() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300/8' is not a network"):
        WebhookSettings(secret=SECRET, private_networks="10.0.0.300/8")
    settings = WebhookSettings(secret=SECRET, private_networks="10.9.0.0/16, 127.0.0.1")
    with receiver() as (url, got), webhook.client(settings) as client:
        outcome = webhook.post(client, settings, url, {"n": 3}, "k3", "digest", 0, public_only=True)
    assert outcome == webhook.Outcome("ok")
    assert got == [b'{"n":3}']


def test_a_users_slack_notification_to_loopback_is_failed_not_sent(store: Store) -> None:
    """The notification rows of a user's Slack URL are marked for public addresses only, and a delivery
    round fails such a row on its first attempt (no retries for hours), sending nothing."""
    settings = Settings(
        database_url="unused", webhook=WebhookSettings(secret=SECRET), lifecycle=LifecycleSettings()
    )
    with receiver() as (url, got):
        user = NotificationSettings(slack_url=url, slack_immediate=True)
        rows = _rows(
            7, "seller@example.com", user, "n:1", "notify", None, None, {"text": "hi"}, "lead.assigned"
        )
        assert [r["payload"]["public_only"] for r in rows] == [True]
        with store.begin() as conn:
            enqueue(conn, rows, int(time.time() * 1000))
        deliver_due(store, settings, None)
    with store.connect() as conn:
        (row,) = read_outbox(conn)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "not a public address" in row["last_error"]
    assert got == []


@pytest.mark.parametrize(
    "url",
    [
        "http://" + "a" * 70 + ".example/x",
        "http://a..example/x",
        "http://[::1/x",
    ],
)
def test_a_url_no_request_can_use_is_refused_when_saved_and_fails_when_sent(url: str) -> None:
    """A host label over 63 characters or empty, a broken IPv6 address: the profile refuses the URL, and a
    row holding one (saved before this check, or from the environment) fails at once. Before, the attempt
    raised, and the row came back with every lease, for ever."""
    with pytest.raises(ValueError, match="host or port cannot be read"):
        NotificationSettings(slack_url=url, slack_immediate=True)
    settings = WebhookSettings(secret=SECRET)
    with webhook.client(settings) as client:
        outcome = webhook.post(client, settings, url, {"n": 1}, "k", "digest", 0, public_only=True)
    assert outcome.status == "fail"
    assert outcome.detail.startswith("the URL cannot be requested: ")


def test_a_port_out_of_range_is_refused_when_saved() -> None:
    """``urlsplit`` reads the port only when asked, and then raises: the check asks."""
    with pytest.raises(ValueError, match="host or port cannot be read"):
        NotificationSettings(slack_url="https://example.com:99999/x", slack_immediate=True)

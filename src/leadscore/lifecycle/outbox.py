"""Delivering the outbox, apart from everything else: a dispatcher thread claims due rows under a lease and
hands each to a worker thread (webhooks and mail have their own threads), so stage evaluation never waits
on a receiver.

Every wait is bounded: per receiving host at most ``concurrency`` deliveries are in flight (the rest of its
rows stay pending, so one slow host holds a few threads and never the others' turn, however many of its
URLs are due: a chat server's URL per user, a CRM's per object; ``host_of``), and a host with an attempt
in flight starts another only while more than half the webhook workers are free (``_has_room``): the
last half is kept for hosts with nothing in flight, so a few hosts that hang (a user's bad notification
URL) never hold every worker while a healthy host's rows wait behind them. Every attempt has its
timeouts, and a circuit breaker per endpoint (``lifecycle.breaker``) stops trying an endpoint that keeps
failing until a cool-down has passed. A failed attempt is counted on its row (``failures``, ``last_error``)
and the row is due again after an exponential backoff with jitter (``next_attempt_ms``, durable), until
``max_attempts``; then it is marked failed.

Delivery is at least once: a row is sent again until an attempt is known to have succeeded, with its key
as the Idempotency-Key (a webhook) or Message-ID (a mail), so a receiver can tell a repeat. ``stop`` cancels
the attempts in flight (``deadline.Cancel``: their sockets shut down) rather than waiting up to an
attempt's total timeout for a slow endpoint: each cancelled row is given back, due again at once with the
attempt not counted (``release``), to be sent by the next deliverer; an attempt that had already
succeeded is recorded as sent. A receiver that got a cancelled request may see it again, as after any
attempt whose answer was lost.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from leadscore.lifecycle import mail, webhook
from leadscore.lifecycle.breaker import Breakers
from leadscore.lifecycle.deadline import Cancel, cancellable
from leadscore.lifecycle.lead_filter import withheld
from leadscore.lifecycle.webhook import Outcome
from leadscore.model import Lifecycle
from leadscore.scoring.pipeline import current_model
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.outbox import MAIL_ENDPOINT, claim_due, endpoint_of, finish, release, retry_at

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("leadscore.lifecycle")
BATCH = 50
CHANNELS = ("webhook", "mail")


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


def backoff_ms(settings: Settings, attempts: int, draw: Callable[[], float] = random.random) -> int:
    """Wait after the ``attempts``-th failed attempt: base × 2^(attempts−1), capped, less a random part
    (at most ``retry_jitter`` of it) so that rows failing together are not retried together."""
    lc = settings.lifecycle
    full = min(lc.retry_max_s, lc.retry_base_s * 2.0 ** min(max(attempts - 1, 0), 62))
    return int(full * (1.0 - lc.retry_jitter * draw()) * 1000)


def retry_wait_ms(settings: Settings, attempts: int, outcome: Outcome) -> int:
    """Wait after a failed attempt: the backoff, or longer where the receiver asked for longer
    (``Outcome.wait_s``, its ``Retry-After``), never past ``retry_max_s``: a receiver can slow its own
    retries within the sender's bounds, never speed them up or stop them."""
    wait = backoff_ms(settings, attempts)
    if outcome.wait_s is None:
        return wait
    asked = min(outcome.wait_s, settings.lifecycle.retry_max_s) * 1000
    return max(wait, int(asked))


DEFAULT_PORTS = {"http": 80, "https": 443}


def host_of(url: str) -> str:
    """The receiver a URL reaches, ``scheme://host:port`` (the scheme and host in lower case, the default
    port spelt out); the URL itself when it names no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if not parts.hostname:
        return url
    scheme = parts.scheme.lower()
    return f"{scheme}://{parts.hostname}:{port or DEFAULT_PORTS.get(scheme, 0)}"


def _url_prefixes(url: str) -> tuple[str, ...]:
    """How the URLs of ``url``'s host begin, as ``url`` writes its scheme and host (for the claim's skip)."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return ()
    if "://" not in url or not netloc:
        return ()
    origin = url[: url.index("://")] + "://" + netloc
    return (origin + "/", origin + "?", origin + "#")


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _active_lifecycle(store: Store) -> Lifecycle | None:
    active = current_model(store)
    return active.model.lifecycle if active is not None else None


class Deliverer:
    """Delivers due outbox rows in its own threads; ``start()`` runs the dispatcher in the background,
    ``deliver_due`` uses it once. ``clock_ms`` stamps results (tests pass a fixed time)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        lifecycle: Callable[[], Lifecycle | None] | None = None,
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.store, self.settings, self.clock_ms = store, settings, clock_ms
        self.lifecycle = lifecycle or (lambda: _active_lifecycle(store))
        hooks = settings.webhook
        self.breakers = Breakers(hooks.breaker_failures, hooks.breaker_cooldown_s)
        self.stats = DeliveryStats()
        self.errors = 0
        self._limits = {"webhook": hooks.workers, "mail": settings.smtp.concurrency}
        self._pools = {
            "webhook": ThreadPoolExecutor(hooks.workers, thread_name_prefix="leadscore-webhook"),
            "mail": ThreadPoolExecutor(settings.smtp.concurrency, thread_name_prefix="leadscore-mail"),
        }
        # an attempt may hold its row this long before another worker may take it again: longer than any
        # attempt can last (each ends at its total timeout, lifecycle.deadline), so no row is sent twice
        longest = max(hooks.connect_timeout_s + hooks.total_timeout_s, settings.smtp.total_timeout_s)
        self.lease_ms = int((longest + 30) * 1000)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # in flight by receiving host (``host_of``; "smtp" for every mail), and by (host, endpoint, URL)
        self._by_host: Counter[str] = Counter()
        self._in_flight: Counter[tuple[str, str, str]] = Counter()
        self._by_channel: Counter[str] = Counter()
        self._ended = 0  # attempts ended so far (held under ``_lock``): ``wait_for_an_end``
        self._client: httpx.Client | None = None
        self._cancels: set[Cancel] = set()  # the attempts in flight (held under ``_lock``)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadscore-deliverer", daemon=True)

    # the background dispatcher

    def start(self) -> Deliverer:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming and cancel the attempts in flight: their rows are given back, due again (the
        attempt not counted), as are those claimed and not yet started; returns once each is recorded."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            cancels = list(self._cancels)
        for cancel in cancels:
            cancel.cancel()
        for pool in self._pools.values():
            # the attempts not started yet run too: each sees the stop and gives its row back at once
            pool.shutdown(wait=True)
        if self._client is not None:
            self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                started = self.dispatch(_wall_ms())
            except Exception:
                self.errors += 1
                started = 0
                log.exception("claiming deliveries failed; trying again")
            if not started:
                self._wake.wait(self.settings.lifecycle.lifecycle_idle_s)
                self._wake.clear()

    # claiming and attempting

    def _host_limit(self, host: str) -> int:
        return self.settings.smtp.concurrency if host == MAIL_ENDPOINT else self.settings.webhook.concurrency

    def _has_room(self, host: str) -> bool:
        """Whether ``host`` may start one more attempt now (held under ``_lock``): below its ``concurrency``,
        and, for a webhook host with an attempt in flight already, only while more than half the webhook
        workers are free. The last half is kept for hosts with nothing in flight: hosts that hang hold every
        worker only when they are more than half as many as the workers (10 of the default 16), and fewer
        leave a healthy host a worker whatever their number of rows."""
        in_flight = self._by_host[host]
        if in_flight >= self._host_limit(host):
            return False
        if host == MAIL_ENDPOINT or not in_flight:
            return True
        workers = self._limits["webhook"]
        return workers - self._by_channel["webhook"] > workers // 2

    def _where(self, channel: str, target: str) -> tuple[str, str]:
        """(the receiving host, the URL) of a row; a webhook whose URL is unknown (an unset ``env:``
        name) is its own host."""
        if channel == "mail":
            return MAIL_ENDPOINT, MAIL_ENDPOINT
        url = self.settings.webhook.url(target) or target
        return host_of(url), url

    def _skips(self) -> tuple[set[str], set[str]]:
        """The endpoints and URL prefixes of the hosts with no room (held under ``_lock``)."""
        busy = {h for h in self._by_host if not self._has_room(h)}
        endpoints = {e for (h, e, _), n in self._in_flight.items() if n and h in busy}
        prefixes = {
            p for (h, _, url), n in self._in_flight.items() if n and h in busy for p in _url_prefixes(url)
        }
        if busy - {MAIL_ENDPOINT}:
            environment = self.settings.webhook.url_environment
            endpoints |= {f"env:{name}" for name, url in environment.items() if host_of(url) in busy}
        return endpoints, prefixes

    def dispatch(self, now_ms: int) -> int:
        """Claim rows due at ``now_ms`` whose host has room and start their attempts; returns how many."""
        with self._lock:
            channels = [c for c in CHANNELS if self._by_channel[c] < self._limits[c]]
            busy, prefixes = self._skips()
        if not channels:
            return 0
        skip = busy | self.breakers.blocked()
        with self.store.begin() as conn:
            rows = claim_due(
                conn,
                now_ms,
                self.lease_ms,
                BATCH,
                skip_endpoints=skip,
                skip_prefixes=prefixes,
                channels=channels,
            )
        accepted: list[tuple[dict[str, Any], tuple[str, str, str]]] = []
        released: list[int] = []
        with self._lock:
            for row in rows:
                channel = str(row["channel"])
                endpoint = str(row["endpoint"] or endpoint_of(channel, str(row["target"])))
                host, url = self._where(channel, str(row["target"]))
                if (
                    self._by_channel[channel] < self._limits[channel]
                    and self._has_room(host)
                    and self.breakers.try_acquire(endpoint)
                ):
                    self._by_channel[channel] += 1
                    self._by_host[host] += 1
                    self._in_flight[host, endpoint, url] += 1
                    accepted.append((row, (host, endpoint, url)))
                else:
                    released.append(int(row["id"]))
        if released:
            with self.store.begin() as conn:
                release(conn, released, now_ms)
        lifecycle = self.lifecycle() if any(r["channel"] == "mail" for r, _ in accepted) else None
        for row, where in accepted:
            self._pools[str(row["channel"])].submit(self._attempt, row, where, lifecycle)
        return len(accepted)

    def wait_idle(self) -> None:
        """Wait until no attempt is in flight."""
        with self._idle:
            self._idle.wait_for(lambda: not any(self._by_channel.values()))

    def ended(self) -> tuple[int, bool]:
        """(attempts ended so far, whether any is in flight now)."""
        with self._lock:
            return self._ended, any(self._by_channel.values())

    def wait_for_an_end(self, seen: int) -> None:
        """Wait until an attempt has ended since ``ended()`` said ``seen`` (at once if one has)."""
        with self._idle:
            self._idle.wait_for(lambda: self._ended != seen)

    def _attempt(self, row: dict[str, Any], where: tuple[str, str, str], lifecycle: Lifecycle | None) -> None:
        channel, (host, endpoint, _) = str(row["channel"]), where
        cancel = Cancel()
        with self._lock:
            self._cancels.add(cancel)
            if self._stop.is_set():
                cancel.cancel()  # claimed before the stop, started after it: given back unsent
        try:
            if cancel.cancelled:
                self._give_back(row)
                return
            with cancellable(cancel):
                outcome = self._send(row, lifecycle)
            if outcome is not None and outcome.status != "ok" and cancel.cancelled:
                # ended by the stop, not by the endpoint: no failure of its, the row due again
                self._give_back(row)
            elif outcome is not None:
                # the row first: whoever sees the breaker's state sees the failures that set it
                self._record(row, outcome)
                self.breakers.record(endpoint, outcome.status != "retry")
        except Exception:  # a bug or a lost database: the lease brings the row back
            self.errors += 1
            log.exception("delivering %s failed", row["key"])
            self.breakers.record(endpoint, False)
        finally:
            with self._idle:
                self._ended += 1
                self._cancels.discard(cancel)
                self._by_channel[channel] -= 1
                self._by_host[host] -= 1
                if not self._by_host[host]:
                    del self._by_host[host]
                self._in_flight[where] -= 1
                if not self._in_flight[where]:
                    del self._in_flight[where]
                self._idle.notify_all()
            self._wake.set()  # room for the next row

    def _give_back(self, row: dict[str, Any]) -> None:
        """A claimed row not delivered because delivery is stopping: due again now, the attempt uncounted."""
        with self.store.begin() as conn:
            release(conn, [int(row["id"])], self.clock_ms())

    def _send(self, row: dict[str, Any], lifecycle: Lifecycle | None) -> Outcome | None:
        """One attempt; None when it is not sent for lack of consent (the row is marked skipped): a mail to a
        lead without it, or a webhook naming someone who withdrew tracking consent (a model's action, a
        segment's announcement: every webhook with a lead but a user's own notice, ``staff_notice``). Decided
        now, as consent can be withdrawn after the row was made."""
        key, payload = str(row["key"]), dict(row["payload"])
        problem = None
        if row["channel"] == "mail" and payload.get("to_lead"):
            with self.store.connect() as conn:
                problem = mail.consent_problem(
                    conn, lifecycle, row["lead_id"], str(payload["to"]), self.settings.suppression_pepper
                )
        elif row["channel"] == "webhook" and row["lead_id"] is not None and not payload.get("staff_notice"):
            with self.store.connect() as conn:
                problem = withheld(conn, int(row["lead_id"]))
        if problem is not None:
            with self.store.begin() as conn:
                finish(conn, int(row["id"]), "skipped", self.clock_ms(), problem)
            with self._lock:
                self.stats.skipped += 1
            return None
        if row["channel"] == "mail":
            return mail.send(self.settings, payload, key)
        with self._lock:
            if self._client is None:  # made only when a webhook is due (it builds a TLS context)
                self._client = webhook.client(self.settings.webhook)
            client = self._client
        return webhook.post(
            client,
            self.settings.webhook,
            str(row["target"]),
            payload["body"],
            key,
            str(payload["event"]),
            int(time.time()),  # the wall clock, which receivers check
            public_only=bool(payload.get("public_only")),
        )

    def _record(self, row: dict[str, Any], outcome: Outcome) -> None:
        now, attempts = self.clock_ms(), int(row["attempts"]) + 1
        with self.store.begin() as conn:
            if outcome.status == "ok":
                finish(conn, int(row["id"]), "sent", now)
                field = "sent"
            elif outcome.status == "retry" and attempts < self.settings.lifecycle.max_attempts:
                retry_at(
                    conn,
                    int(row["id"]),
                    now + retry_wait_ms(self.settings, attempts, outcome),
                    outcome.detail,
                )
                field = "retried"
            else:
                finish(conn, int(row["id"]), "failed", now, outcome.detail)
                field = "failed"
                log.warning("giving up on %s after %d attempts: %s", row["key"], attempts, outcome.detail)
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)


def deliver_due(
    store: Store, settings: Settings, lifecycle: Lifecycle | None, now_ms: int | None = None
) -> DeliveryStats:
    """Deliver every row due now (``leadscore lifecycle run --once``, ``leadscore notify``); returns what
    happened. Rows that fail come due again after their backoff, which is after this call's ``now``.

    More rows are claimed as soon as any attempt ends, not once all have: an endpoint whose attempts hang
    until their total timeout holds its own workers only, while the rest go out through the others."""
    now = now_ms if now_ms is not None else _wall_ms()
    deliverer = Deliverer(
        store, settings, lambda: lifecycle, (lambda: now) if now_ms is not None else _wall_ms
    )
    try:
        while True:
            seen, _ = deliverer.ended()
            if deliverer.dispatch(now):
                continue  # room may be left: claim again
            ended, busy = deliverer.ended()
            if not busy:
                if ended != seen:
                    continue  # an attempt ended during the claim, whose host refused a row: claim again
                break  # nothing due that may start, nothing in flight
            deliverer.wait_for_an_end(seen)  # room for a row, or the row of an endpoint no longer busy
    finally:
        deliverer.stop()
    return deliverer.stats

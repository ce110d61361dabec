"""Delivery never stalls the lifecycle: over a real SMTP server and two real webhook receivers, one of
which answers only after 60 s, a lead still reaches MQL and the fast endpoint's webhook and the seller's
mail arrive while the slow endpoint hangs; the slow endpoint is retried, its circuit breaker opens after
repeated failures and closes again through a probe once it answers. Also: the breaker's states, the
jittered backoff and failure counts by endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from leadscore.lifecycle.breaker import Breakers
from leadscore.lifecycle.outbox import backoff_ms
from leadscore.lifecycle.runner import LifecycleRunner
from leadscore.scoring.pipeline import publish
from leadscore.settings import LifecycleSettings, Settings
from leadscore.store import Store
from leadscore.store.outbox import delivery_failures, enqueue, read_outbox
from leadscore.store.people import find_lead
from leadscore.store.schema import lead_stages
from lifecycle_model import HOOK_ENV, model, person, points, send, settings
from receivers import Receiver, smtp_server, wait_for, webhook_receiver

# liveness bound: far below the slow endpoint's 60 s and the old one-at-a-time 10 s per delivery
PROMPT_S = 5.0


@pytest.fixture
def slow() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.hooks.delay_s = 60.0
    receiver.up()
    try:
        yield receiver
    finally:
        receiver.down()


def _stage(store: Store, user: str) -> str | None:
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id=user)
        if lead_id is None:
            return None
        return conn.execute(select(lead_stages.c.stage).where(lead_stages.c.lead_id == lead_id)).scalar()


def test_a_hanging_endpoint_delays_neither_stages_nor_other_deliveries(store: Store, slow: Receiver) -> None:
    publish(store, model())
    with webhook_receiver() as fast, smtp_server() as (mailbox, port):
        cfg = settings(
            smtp_port=port,
            # one at a time, the two hanging deliveries alone would hold everything for 2 × 3 s
            timeout_s=3.0,
            total_timeout_s=5.0,
            concurrency=2,
            breaker_failures=3,
            breaker_cooldown_s=2.0,
            url_environment={HOOK_ENV: fast.url + "/slack"},
        )
        cfg = cfg.model_copy(
            update={"lifecycle": LifecycleSettings(retry_base_s=0.05, retry_max_s=0.1, lifecycle_idle_s=0.05)}
        )
        # two notifications for the slow endpoint are due before anything else happens
        with store.begin() as conn:
            rows = [
                {
                    "key": f"test:slow:{i}",
                    "channel": "webhook",
                    "action": "test",
                    "lead_id": None,
                    "target": slow.url,
                    "payload": {"body": {"n": i}, "event": "test"},
                }
                for i in range(2)
            ]
            assert enqueue(conn, rows, int(time.time() * 1000)) == 2
        runner = LifecycleRunner(store, cfg).start()
        try:
            wait_for(lambda: len(slow.hooks.attempts) == 2, PROMPT_S)  # both are hanging now
            send(store, [person("ann", country="se"), *points("ann", 75)])
            runner.wake()
            # the lead moves, the fast endpoint hears of it and the seller is mailed, all while the slow
            # endpoint has answered nothing
            wait_for(lambda: _stage(store, "ann") == "mql", PROMPT_S)
            alert = wait_for(
                lambda: [k for k in fast.hooks.processed if k.startswith("manager_alert")], PROMPT_S
            )
            mails = wait_for(
                lambda: mailbox.to("erik@vendor.example") or mailbox.to("sara@vendor.example"), PROMPT_S
            )
            assert slow.hooks.answered == 0
            assert len(alert) == 1 and mails[0]["Subject"] == "New lead: Ann"

            # the slow endpoint's attempts time out (3 s) and are retried until 3 consecutive failures
            # open its breaker; its rows wait, pending, with the failures counted
            wait_for(lambda: runner.deliverer.breakers.state(slow.url) == "open", 15.0)

            def settled() -> tuple[list[dict], dict] | None:
                """The rows and the failure counts read when no attempt finished between the two reads (an
                attempt under way when the breaker opened still ends, and counts, afterwards)."""
                with store.connect() as conn:
                    rows = [r for r in read_outbox(conn) if r["endpoint"] == slow.url]
                    counts = delivery_failures(conn)
                agree = counts.get(slow.url, {}).get("failures") == sum(r["failures"] for r in rows)
                return (rows, counts) if agree else None

            slow_rows, failures = wait_for(settled, 15.0)
            assert [r["status"] for r in slow_rows] == ["pending", "pending"]
            assert max(r["failures"] for r in slow_rows) >= 2  # retried
            assert failures[slow.url]["failures"] == sum(r["failures"] for r in slow_rows) >= 3
            assert failures[slow.url]["retrying"] == 2 and failures[slow.url]["failed"] == 0
            assert all("Timeout" in r["last_error"] for r in slow_rows)
            assert fast.url + "/slack" not in failures and "smtp" not in failures
            assert slow.hooks.answered == 0

            # the endpoint recovers: after the cool-down one probe goes through, closes the breaker, and
            # the rest follows
            slow.hooks.delay_s = 0.0
            slow.hooks.release.set()
            wait_for(
                lambda: {r["status"] for r in _rows(store, slow.url)} == {"sent"},
                10.0,
            )
            assert runner.deliverer.breakers.state(slow.url) == "closed"
            assert set(slow.hooks.processed) == {"test:slow:0", "test:slow:1"}
        finally:
            runner.stop()


def _rows(store: Store, endpoint: str) -> list[dict[str, object]]:
    with store.connect() as conn:
        return [r for r in read_outbox(conn) if r["endpoint"] == endpoint]


def test_a_breaker_opens_after_consecutive_failures_and_probes_once_after_the_cooldown() -> None:
    now = [100.0]
    breakers = Breakers(threshold=3, cooldown_s=30.0, clock=lambda: now[0])
    assert breakers.try_acquire("x") and breakers.state("x") == "closed"
    breakers.record("x", False)
    breakers.record("x", True)  # a success resets the count
    for _ in range(2):
        breakers.record("x", False)
    assert breakers.state("x") == "closed" and breakers.blocked() == set()
    breakers.record("x", False)  # the third in a row
    assert breakers.state("x") == "open" and breakers.blocked() == {"x"}
    assert not breakers.try_acquire("x")
    now[0] = 129.9
    assert not breakers.try_acquire("x")
    now[0] = 130.0  # cooled down: exactly one probe
    assert breakers.blocked() == set() and breakers.try_acquire("x")
    assert not breakers.try_acquire("x") and breakers.blocked() == {"x"}
    breakers.record("x", False)  # the probe failed: open for another 30 s
    assert breakers.state("x") == "open" and not breakers.try_acquire("x")
    now[0] = 160.0
    assert breakers.try_acquire("x")
    breakers.record("x", True)  # the probe succeeded
    assert breakers.state("x") == "closed" and breakers.try_acquire("x") and breakers.try_acquire("x")
    assert breakers.state("y") == "closed" and breakers.try_acquire("y")  # endpoints are independent


def test_backoff_doubles_up_to_the_cap_less_at_most_the_jitter() -> None:
    cfg = Settings(lifecycle=LifecycleSettings(retry_base_s=5, retry_max_s=900, retry_jitter=0.5))
    # base 5 s doubling: 5, 10, 20, ... 640, then capped at 900; jitter takes off up to half
    assert [backoff_ms(cfg, n, lambda: 0.0) for n in (1, 2, 3, 8, 9, 50, 10_000)] == [
        5_000,
        10_000,
        20_000,
        640_000,
        900_000,
        900_000,
        900_000,
    ]
    assert backoff_ms(cfg, 3, lambda: 1.0) == 10_000  # 20 s less half
    assert backoff_ms(cfg, 3, lambda: 0.25) == 17_500
    exact = Settings(lifecycle=LifecycleSettings(retry_base_s=5, retry_jitter=0))
    assert backoff_ms(exact, 2) == 10_000

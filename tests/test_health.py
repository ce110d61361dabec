"""Stalls that cannot be missed: /healthz, /readyz, /metrics (Prometheus text), the dashboard's banner
and dead-letter page, ``leadscore deadletters``. Every number asserted is hand-counted from the events
and rows the test itself sends or inserts."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.api.health import exposition
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.ingest.committer import GroupCommitter
from leadscore.model import loads_model
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.processor import process_pending
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store import dead_letters as dead_letters_store
from leadscore.store.engine import make_engine
from leadscore.store.health import backlog
from leadscore.store.keys import create_key
from leadscore.store.outbox import enqueue
from leadscore.store.schema import dead_letters, inbox, outbox
from leadscore.store.users import add_user
from live_server import serving
from test_clock import QUIET, track
from test_dead_letters import MODEL, _row, allow_again, refuse_user
from web_support import PASSWORD, signed_in

T = 1_717_200_000_000


def _samples(body: str) -> dict[str, str]:
    """``name{labels}`` -> value of every sample line of an exposition."""
    return dict(line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))


def test_the_exposition_reports_the_tables_as_they_are(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(inbox.insert().values(received_ms=T - 90_000, events=2, rows="[]"))
        conn.execute(inbox.insert().values(received_ms=T - 5_000, events=1, rows="[]"))
        hook = "https://user:secret@hooks.example.com/in?token=abc"
        enqueue(
            conn,
            [
                {
                    "key": "k1",
                    "channel": "webhook",
                    "action": "a",
                    "lead_id": None,
                    "target": hook,
                    "payload": {},
                },
                {
                    "key": "k2",
                    "channel": "webhook",
                    "action": "a",
                    "lead_id": None,
                    "target": hook,
                    "payload": {},
                },
                {
                    "key": "k3",
                    "channel": "webhook",
                    "action": "a",
                    "lead_id": None,
                    "target": hook,
                    "payload": {},
                },
                {
                    "key": "k4",
                    "channel": "mail",
                    "action": "a",
                    "lead_id": None,
                    "target": "x@y.test",
                    "payload": {},
                },
            ],
            T - 30_000,
        )
        conn.execute(outbox.update().where(outbox.c.key == "k1").values(created_ms=T - 10_000))
        conn.execute(outbox.update().where(outbox.c.key == "k2").values(last_error="HTTP 500", failures=1))
        conn.execute(
            outbox.update().where(outbox.c.key.in_(["k3", "k4"])).values(status="failed", failures=3)
        )
        conn.execute(
            dead_letters.insert().values(
                message_id="m", message="{}", error="e", failed_ms=T, last_attempt_ms=T, attempts=1
            )
        )
        current = backlog(conn, T)
    samples = _samples(exposition(current))
    assert samples == {
        "leadscore_events_acknowledged_total": "3",  # nothing processed yet, 2 + 1 waiting
        "leadscore_events_scored_total": "0",
        "leadscore_events_dead_lettered_total": "0",  # the dead letter above was inserted by hand
        "leadscore_events_suppressed_total": "0",
        "leadscore_dead_letters": "1",
        "leadscore_inbox_events": "3",
        "leadscore_inbox_lag_seconds": "90",
        "leadscore_rescore_due_lag_seconds": "0",  # no model, no stored score
        "leadscore_processor_running": "0",
        'leadscore_outbox_backlog{channel="webhook"}': "2",  # k1, k2 pending
        'leadscore_outbox_oldest_age_seconds{channel="webhook"}': "30",  # k2 (k1 is 10 s old)
        'leadscore_delivery_failures{channel="mail",endpoint="smtp"}': "1",
        'leadscore_delivery_failures{channel="webhook",endpoint="https://hooks.example.com/in"}': "1",
        'leadscore_delivery_retrying{channel="webhook",endpoint="https://hooks.example.com/in"}': "1",
    }


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def served(store: Store) -> Iterator[tuple[str, str, str, Store]]:
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "site", 0)
        _, read = create_key(conn, "read", "prometheus", 0)
    app = create_app(Settings(database_url="unused", processor_idle_s=0.05), store=store)
    with serving(app) as url:
        yield url, write, read, store


def _scrape(client: httpx.Client, read: str) -> dict[str, str]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {read}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return _samples(response.text)


def test_metrics_after_three_events_one_of_them_poison(served: tuple[str, str, str, Store]) -> None:
    url, write, read, store = served
    refuse_user(store, "poison")
    with httpx.Client(base_url=url, timeout=30) as client:
        for mid, user in (("m1", "ann"), ("m2", "poison"), ("m3", "bob")):
            message = {"type": "page", "userId": user, "messageId": mid, "name": "Home"}
            assert client.post("/v1/page", json=message, headers=_basic(write)).status_code == 200
        deadline = time.monotonic() + 30
        while (samples := _scrape(client, read))["leadscore_inbox_events"] != "0":
            assert time.monotonic() < deadline, samples
            time.sleep(0.05)
        assert samples["leadscore_events_acknowledged_total"] == "3"
        assert samples["leadscore_events_scored_total"] == "2"
        assert samples["leadscore_events_dead_lettered_total"] == "1"
        assert samples["leadscore_dead_letters"] == "1"
        assert samples["leadscore_inbox_lag_seconds"] == "0"
        assert samples["leadscore_processor_running"] == "1"
        # a read or admin token: anonymous scrapers and write keys are refused with the JSON envelope
        anonymous = client.get("/metrics")
        assert anonymous.status_code == 401 and anonymous.json()["ok"] is False
        assert client.get("/metrics", headers={"Authorization": f"Bearer {write}"}).status_code == 403
        assert client.get("/healthz").json()["ok"] is True
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "ok": True,
            "checks": {"database": "ok", "migrations": "ok", "processor": "ok"},
        }


def test_metrics_may_be_public(store: Store) -> None:
    app = create_app(Settings(database_url="unused", run_processor=False, metrics_public=True), store=store)
    with serving(app) as url:
        response = httpx.get(f"{url}/metrics", timeout=30)
        ready = httpx.get(f"{url}/readyz", timeout=30).json()
    assert _samples(response.text)["leadscore_events_acknowledged_total"] == "0"
    assert ready["checks"]["processor"] == "disabled" and ready["ok"]


def test_not_ready_when_the_processor_stopped_or_the_schema_is_behind(store: Store) -> None:
    app = create_app(Settings(database_url="unused", processor_idle_s=0.05), store=store)
    with serving(app) as url:
        app.state.leadscore.processor.stop()
        stopped = httpx.get(f"{url}/readyz", timeout=30)
        with store.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
        behind = httpx.get(f"{url}/readyz", timeout=30)
    assert stopped.status_code == 503
    assert stopped.json() == {
        "ok": False,
        "error": "not ready: processor",
        "errors": [{"field": "processor", "message": "stopped"}],
        "code": "unavailable",
        "message": "not ready: processor",
        "checks": {"database": "ok", "migrations": "ok", "processor": "stopped"},
    }
    assert behind.status_code == 503
    # the expected head moves with every migration added; the database's is the one set above
    assert behind.json()["checks"]["migrations"].startswith("database at 0008, this version expects ")


def test_not_ready_when_the_database_is_unreachable() -> None:
    unreachable = Store(make_engine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"))
    app = create_app(Settings(database_url="unused", run_processor=False), store=unreachable)
    with serving(app) as url:
        response = httpx.get(f"{url}/readyz", timeout=30)
        alive = httpx.get(f"{url}/healthz", timeout=30)
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("OperationalError")
    assert alive.status_code == 200


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_the_dashboard_warns_and_admins_retry_or_drop(store: Store) -> None:
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        add_user(conn, "admin@example.test", "Admin", "admin", hash_password(PASSWORD), 0)
        add_user(conn, "sales@example.test", "Sales", "sales", hash_password(PASSWORD), 0)
    refuse_user(store, "poison")
    committer = GroupCommitter(store).start()
    committer.submit([_row("p1", user="poison"), _row("p2", user="poison")]).result()
    committer.stop()
    assert process_pending(store) == 2
    settings = Settings(database_url="unused", run_processor=False, lag_alert_s=60)
    with (
        serving(create_app(settings, store=store)) as url,
        signed_in(url, "admin@example.test") as admin,
        signed_in(url, "sales@example.test") as sales,
    ):
        listing = admin.get("/deadletters")
        assert listing.status_code == 200
        assert "2 messages</strong> could not be applied" in listing.text  # the banner
        assert '<a href="/deadletters">retry or drop</a>' in listing.text
        assert "<code>p1</code>" in listing.text and "<code>p2</code>" in listing.text
        ids = [int(i) for i in re.findall(r'<a href="/deadletters/(\d+)">', listing.text)]
        assert len(ids) == 2
        # sales see the banner, not the page
        leads_page = sales.get("/leads")
        assert "2 messages</strong> could not be applied" in leads_page.text
        assert "an admin can retry or drop them" in leads_page.text
        assert sales.get("/deadletters").status_code == 403
        assert "Scoring lags" not in leads_page.text

        shown = admin.get(f"/deadletters/{ids[0]}")
        assert "refused by the test trigger" in shown.text
        token = _csrf(shown.text)
        failed = admin.post(f"/deadletters/{ids[0]}/retry", data={"csrf_token": token})
        assert failed.status_code == 409 and "The retry failed again" in failed.text
        allow_again(store)
        applied = admin.post(f"/deadletters/{ids[0]}/retry", data={"csrf_token": token})
        assert (applied.status_code, applied.headers["location"]) == (303, "/deadletters?done=applied")
        dropped = admin.post(f"/deadletters/{ids[1]}/drop", data={"csrf_token": token})
        assert (dropped.status_code, dropped.headers["location"]) == (303, "/deadletters?done=dropped")
        assert admin.post(f"/deadletters/{ids[1]}/drop", data={"csrf_token": token}).status_code == 404
        after = admin.get("/deadletters")
        assert "None: every acknowledged message was applied." in after.text
        assert "could not be applied and wait" not in after.text
        # an event waiting longer than the threshold: the lag banner
        with store.begin() as conn:
            conn.execute(
                inbox.insert().values(received_ms=int(time.time() * 1000) - 600_000, events=1, rows="[]")
            )
        assert re.search(r"has waited 1\d\.\d min to be scored", admin.get("/leads").text)


def _db_arg(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def test_the_deadletters_commands(store: Store) -> None:
    runner = CliRunner()
    publish(store, loads_model(MODEL))
    refuse_user(store, "poison")
    committer = GroupCommitter(store).start()
    committer.submit([_row("p1", user="poison"), _row("p2", user="poison")]).result()
    committer.stop()
    process_pending(store)
    db = _db_arg(store)
    listed = runner.invoke(cli, ["deadletters", "list", "--db", db, "-f", "json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["message_id"], r["attempts"]) for r in rows] == [("p1", 1), ("p2", 1)]
    first, second = rows[0]["id"], rows[1]["id"]
    shown = runner.invoke(cli, ["deadletters", "show", str(first), "--db", db])
    assert shown.exit_code == 0
    assert json.loads(json.loads(shown.output)["message"])["user_id"] == "poison"
    again = runner.invoke(cli, ["deadletters", "retry", str(first), "--db", db])
    assert again.exit_code == 1 and "failed again" in again.output
    allow_again(store)
    applied = runner.invoke(cli, ["deadletters", "retry", str(first), "--db", db])
    assert applied.exit_code == 0 and "applied and scored" in applied.output
    dropped = runner.invoke(cli, ["deadletters", "drop", str(second), "--db", db])
    assert dropped.exit_code == 0
    assert json.loads(runner.invoke(cli, ["deadletters", "list", "--db", db, "-f", "json"]).output) == []
    missing = runner.invoke(cli, ["deadletters", "drop", str(second), "--db", db])
    assert missing.exit_code == 1 and "no dead letter" in str(missing.exception)


def test_deadletters_list_prints_hostile_text_as_it_is(store: Store) -> None:
    with store.begin() as conn:
        dead_letters_store.add(conn, {"message_id": "[/bad] [red]x"}, "Err [/]\nsecond line", T)
    listed = CliRunner().invoke(cli, ["deadletters", "list", "--db", _db_arg(store)])
    assert listed.exit_code == 0, listed.exception
    assert "[/bad] [red]x" in listed.output and "Err [/]" in listed.output
    assert "second line" not in listed.output  # the table shows an error's first line


def test_stale_scores_are_reported_when_no_clock_rescores_them(store: Store) -> None:
    """``serve --no-processor`` with no ``leadscore process``: nothing rescores a score whose window
    closed, and every screen shows it as it was, so the banner and /metrics say so until a tick runs."""
    day = 86_400_000
    start = int(time.time() * 1000) - 11 * day  # the demo (10-day window) left it a day ago
    publish(store, loads_model(QUIET), as_of=start)
    ingest(
        store,
        [track("ann", 1, "Demo Requested", start), track("ann", 2, "Webinar Joined", start)],
        source="test",
        as_of=start,
    )
    with store.begin() as conn:
        add_user(conn, "sales@example.test", "Sales", "sales", hash_password(PASSWORD), 0)
        # due when the demo leaves its window: 10 days after it; 90 s later it has waited 90 s
        assert backlog(conn, start + 10 * day + 90_000).due_lag_s == 90
        assert backlog(conn, start + 10 * day - 1).due_lag_s == 0
    settings = Settings(database_url="unused", run_processor=False, lag_alert_s=60, clock_tick_s=60)
    with serving(create_app(settings, store=store)) as url, signed_in(url, "sales@example.test") as sales:
        page = sales.get("/leads").text
        # due a day ago, less the one tick a due score waits by design: 86,340 s = 24.0 h (24.x as the
        # test's own seconds pass)
        assert "Scores are stale:</strong> a stored score has been due to change" in page
        assert re.search(r"for 24\.\d h more than a clock tick", page)
        assert tick(store).leads == 1  # the webinar alone now: 40
        assert "Scores are stale" not in sales.get("/leads").text

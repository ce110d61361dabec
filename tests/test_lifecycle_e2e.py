"""End to end over real HTTP, SMTP and a webhook receiver: events through the tracking API push a lead
over the MQL line; the right seller is assigned and mailed, the manager's Slack-style webhook arrives,
each exactly once; the seller's acceptance is recorded through the API."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from leadscore.api import create_app
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.lifecycle_tables import read_feedback
from lifecycle_model import HOOK_ENV, model
from live_server import serving
from receivers import SECRET, smtp_server, wait_for, webhook_receiver


def test_event_to_mql_to_seller_and_manager_exactly_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(store, model())
    with store.begin() as conn:
        _, write = create_key(conn, "write", "site", 0)
        _, read = create_key(conn, "read", "dashboard", 0)
        _, admin = create_key(conn, "admin", "crm", 0)
    with smtp_server() as (mailbox, port), webhook_receiver() as receiver:
        for name, value in {
            "LEADSCORE_SMTP_PORT": str(port),
            "LEADSCORE_WEBHOOK_SECRET": SECRET,
            "LEADSCORE_LIFECYCLE_IDLE_S": "0.05",
            "LEADSCORE_RETRY_BASE_S": "0.05",
            HOOK_ENV: receiver.url + "/slack",
        }.items():
            monkeypatch.setenv(name, value)
        app = create_app(Settings(database_url="unused", processor_idle_s=0.05), store=store)
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            auth = {"Authorization": "Basic " + base64.b64encode(f"{write}:".encode()).decode()}
            batch = [
                {
                    "type": "identify",
                    "userId": "sven",
                    "messageId": "e2e-id",
                    "traits": {
                        "email": "sven@nordic.example",
                        "firstName": "Sven",
                        "title": "Marketing Manager",
                        "country": "SE",
                    },
                }
            ]
            batch += [
                {"type": "track", "event": "Plus", "userId": "sven", "messageId": f"e2e-{i}"}
                for i in range(64)
            ]
            assert client.post("/v1/batch", json={"batch": batch}, headers=auth).status_code == 200
            mails = wait_for(lambda: mailbox.to("erik@vendor.example") or mailbox.to("sara@vendor.example"))
            alerts = wait_for(
                lambda: [v for k, v in receiver.hooks.processed.items() if k.startswith("manager_alert")]
            )
            bearer = {"Authorization": f"Bearer {admin}"}
            stage = client.get("/v1/leads/sven/stage", headers={"Authorization": f"Bearer {read}"}).json()
            assert stage["stage"] == "mql"
            seller = stage["assignment"]["seller"]
            assert (stage["assignment"]["team"], stage["assignment"]["reason"]) == ("nordics", "territory")
            assert mails[0]["To"] == f"{seller}@vendor.example" and mails[0]["Subject"] == "New lead: Sven"
            assert alerts[0]["path"] == "/slack"
            assert (
                alerts[0]["body"]["text"]
                == f"New MQL Sven for {'Erik Holm' if seller == 'erik' else 'Sara Nyberg'}"
            )
            # a read token may not give feedback; an admin token may
            denied = client.post(
                "/v1/leads/sven/feedback",
                json={"decision": "accept", "by": seller},
                headers={"Authorization": f"Bearer {read}"},
            )
            assert denied.status_code == 403 and denied.json()["ok"] is False
            accepted = client.post(
                "/v1/leads/sven/feedback", json={"decision": "accept", "by": seller}, headers=bearer
            )
            assert accepted.json() == {"ok": True, "lead_id": stage["lead_id"], "from": "mql", "to": "sql"}
            again = client.post(
                "/v1/leads/sven/feedback", json={"decision": "accept", "by": seller}, headers=bearer
            )
            assert again.status_code == 409
            report = client.get("/v1/reports/acceptance", headers=bearer).json()
            assert (report["accepted"], report["acceptance_rate"]) == (1, 1.0)
            # more events and time: nothing is sent twice
            more = [
                {"type": "track", "event": "Plus", "userId": "sven", "messageId": f"e2e-more-{i}"}
                for i in range(5)
            ]
            assert client.post("/v1/batch", json={"batch": more}, headers=auth).status_code == 200
            time.sleep(1.0)
        with store.connect() as conn:
            feedback = read_feedback(conn)
    assert [(f["decision"], f["by"], f["stage_from"]) for f in feedback] == [("accepted", seller, "mql")]
    assert len(mailbox.messages) == 1
    assert [a["key"] for a in receiver.hooks.attempts if a["key"].startswith("manager_alert")] == [
        next(k for k in receiver.hooks.processed if k.startswith("manager_alert"))
    ]

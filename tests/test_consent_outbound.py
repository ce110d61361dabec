"""Whoever withdrew tracking consent is sent out of the system by no webhook and listed by no CLI export, as
by the leads and segment exports (``lead_filter.exportable``): hand-made leads "yes" (consent given), "no"
(withdrawn) and "unknown" (never said), all VPs, so all three score on fit alone and reach MQL."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.ingest.segment import normalise
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.notifications import NotificationSettings, save_settings
from leadscore.store.outbox import read_outbox
from leadscore.store.people import find_lead
from leadscore.store.users import add_user
from lifecycle_model import settings
from receivers import smtp_server, webhook_receiver
from test_consent import MODEL, NOW, _people

HOOK = "LEADSCORE_TEST_HOOK_URL"
# fit 100 for a VP; score = (fit + engagement) / 2: 75 for "yes" and "unknown" (one visit), 50 for "no"
OUTBOUND = (
    MODEL
    + f"""lifecycle:
  initial: lead
  stages:
    - {{id: lead, name: Lead}}
    - {{id: mql, name: MQL}}
  transitions:
    - {{id: qualified, from: [lead], to: mql, when: {{score_at_least: 40}}}}
  teams:
    - id: sales
      name: Sales
      manager: {{name: Maja Lind, email: maja@vendor.example}}
      sellers: [{{id: erik, name: Erik Holm, email: erik@vendor.example}}]
  assignment: {{stage: mql, default_team: sales}}
  actions:
    - id: seller_mail
      trigger: {{assigned: true}}
      mail: {{to: seller, subject: "New lead {{{{ lead.id }}}}", body: "Call {{{{ lead.id }}}}."}}
    - id: crm_push
      trigger: {{enter: mql}}
      webhook: {{url_env: {HOOK}}}
    - id: slack_mql
      trigger: {{enter: mql}}
      webhook: {{url_env: {HOOK}, format: slack}}
  segments:
    - {{id: everyone, name: Everyone, stages: [lead, mql], webhook: {{url_env: {HOOK}}}}}
"""
)
REASON = "consent withdrawn (consent_tracking is false)"


def _lead(store: Store, user: str) -> int:
    with store.connect() as conn:
        found = find_lead(conn, external_id=user)
    assert found is not None
    return found


def test_no_webhook_announces_whoever_withdrew_tracking_consent(store: Store) -> None:
    """Each lead makes three webhook rows (the CRM push and the Slack message on entering MQL, the segment's
    ``segment.entered``): the receiver gets the three of "yes" and of "unknown" and none of "no", whose rows
    are skipped saying why, as a mail to someone without consent is; the receiver got all nine before. The
    seller's mail and his own Slack notice, notices to the business's own staff, go for all three
    (docs/privacy.md)."""
    publish(store, loads_model(OUTBOUND), as_of=NOW)
    _people(store)
    with webhook_receiver() as receiver, smtp_server() as (mailbox, port):
        with store.begin() as conn:  # Erik asked for a Slack message when a lead is assigned to him
            erik = add_user(conn, "erik@vendor.example", "Erik Holm", "sales", hash_password("x" * 12), 0)
            wants = NotificationSettings(slack_url=f"{receiver.url}/erik", slack_immediate=True)
            save_settings(conn, erik.id, wants, 0)
        cfg = settings(smtp_port=port, url_environment={HOOK: receiver.url + "/hook"})
        run_round(store, cfg, now_ms=NOW, timers=False)
        got = receiver.hooks.processed
        mailed = sorted(str(m["Subject"]) for m in mailbox.to("erik@vendor.example"))
    ids = {user: _lead(store, user) for user in ("yes", "no", "unknown")}
    with store.connect() as conn:
        rows = {user: read_outbox(conn, lead_id) for user, lead_id in ids.items()}
    hooks, notices = ["crm_push", "segment_everyone", "slack_mql"], ["notify.assigned", "seller_mail"]
    for user in ("yes", "unknown"):
        assert sorted(r["action"] for r in rows[user]) == sorted([*hooks, *notices])
        assert {r["status"] for r in rows[user]} == {"sent"}
        assert {r["key"] for r in rows[user] if r["channel"] == "webhook"} <= set(got)
    assert sorted(r["action"] for r in rows["no"]) == sorted([*hooks, *notices])
    assert {(r["status"], r["last_error"]) for r in rows["no"] if r["action"] in hooks} == {
        ("skipped", REASON)
    }
    assert {r["status"] for r in rows["no"] if r["action"] in notices} == {"sent"}
    assert mailed == sorted(f"New lead {i}" for i in ids.values())
    assert len(got) == 9  # 3 for "yes", 3 for "unknown", Erik's 3 notices
    assert sorted(d["path"] for d in got.values()).count("/erik") == 3
    told = [d["body"]["lead"]["external_id"] for d in got.values() if "lead" in d["body"]]
    assert sorted(told) == ["unknown", "unknown", "yes", "yes"]


def test_a_withdrawal_before_delivery_stops_the_webhooks_already_due(store: Store) -> None:
    """ "yes" withdraws consent after her webhooks were made, before they are delivered: none is sent."""
    publish(store, loads_model(OUTBOUND), as_of=NOW)
    _people(store)
    with webhook_receiver() as receiver, smtp_server() as (_, port):
        cfg = settings(smtp_port=port, url_environment={HOOK: receiver.url + "/hook"})
        run_round(store, cfg, now_ms=NOW, timers=False, deliver=False)
        withdraw = {"type": "identify", "userId": "yes", "traits": {"consent": {"tracking": False}}}
        ingest(store, [normalise({**withdraw, "timestamp": NOW}, received_ms=NOW)], source="test", as_of=NOW)
        run_round(store, cfg, now_ms=NOW + 1000, timers=False)
        got = receiver.hooks.processed
    with store.connect() as conn:
        yes = [r for r in read_outbox(conn, _lead(store, "yes")) if r["channel"] == "webhook"]
        unknown = [r for r in read_outbox(conn, _lead(store, "unknown")) if r["channel"] == "webhook"]
    assert len(yes) == 3 and {(r["status"], r["last_error"]) for r in yes} == {("skipped", REASON)}
    assert len(unknown) == 3 and {r["status"] for r in unknown} == {"sent"}
    assert set(got) == {r["key"] for r in unknown}


def _cli(store: Store, *args: str) -> tuple[str, str]:
    out = CliRunner().invoke(cli, [*args, "--db", str(store.url)])
    assert out.exit_code == 0, out.output
    return out.stdout, out.stderr


def test_score_exports_leave_out_whoever_withdrew_tracking_consent(store: Store) -> None:
    """``score -f csv`` and ``-f json`` list "yes" and "unknown" (75 each), not "no" (50), and say on stderr
    that one lead was left out; they listed "no" too. The table, a screen as the dashboard's list, shows
    all three."""
    publish(store, loads_model(MODEL), as_of=NOW)
    _people(store)
    as_of = ("--as-of", "2024-06-01T00:00:00Z")
    listed, note = _cli(store, "score", "-f", "json", *as_of)
    assert sorted((row["lead_id"], row["score"]) for row in json.loads(listed)) == sorted(
        [(_lead(store, "yes"), 75.0), (_lead(store, "unknown"), 75.0)]
    )
    assert "1 lead left out: withdrew tracking consent" in note
    listed, note = _cli(store, "score", "-f", "csv", *as_of)
    lines = listed.splitlines()
    assert len(lines) == 3 and f"\n{_lead(store, 'no')}," not in listed and "1 lead left out" in note
    now, _ = _cli(store, "score", "-f", "csv")  # scoring now saves the scores, and lists the same
    assert len(now.splitlines()) == 3
    table, _ = _cli(store, "score", *as_of)
    assert "50" in table

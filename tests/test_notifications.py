"""Notifications per user over a real SMTP server (aiosmtpd) and real HTTP receivers: a seller who asked
for them gets a mail and a Slack-compatible message at once when a lead is assigned to them, each with
the lead's top three reasons (hand-computed from the lifecycle test model) and a link; the daily digest
goes once per user and day from the user's hour, a manager's with the team's leads; a receiver that
hangs delays no other delivery, and one that is down ends as a failed row (a dead letter) while mail
still goes. Also: ``leadscore digest`` from a script, and the settings' validation."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from email.message import Message

import pytest
from typer.testing import CliRunner

from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app
from leadscore.lifecycle.notify import digest_notes, send_digests
from leadscore.lifecycle.outbox import Deliverer, deliver_due
from leadscore.lifecycle.runner import run_round
from leadscore.privacy.erase import erase
from leadscore.privacy.person import find_person
from leadscore.scoring.pipeline import publish
from leadscore.settings import LifecycleSettings, Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import claim_breaches, current_assignment
from leadscore.store.notifications import NotificationSettings, save_settings
from leadscore.store.outbox import read_outbox
from leadscore.store.people import find_lead
from leadscore.store.schema import digest_leads
from leadscore.store.users import add_user
from lifecycle_model import DAY, HOUR, model, person, points, send, settings
from receivers import Receiver, smtp_server, wait_for, webhook_receiver

SELLERS = {"lena": "lena@vendor.example", "paul": "paul@vendor.example", "ines": "ines@vendor.example"}
MANAGER = "tom@vendor.example"  # manager of EMEA, where every lead of these tests goes (country de)
NOW = 1_714_986_000_000  # 2024-05-06T09:00:00Z
PUBLIC = "http://127.0.0.1:8000"  # LifecycleSettings.public_url's default


def _users(store: Store, hook_url: str | None, **flags: bool) -> dict[str, int]:
    """The EMEA sellers and their manager as dashboard users, each with the given notifications on
    (Slack to ``hook_url`` + /<name>)."""
    ids = {}
    with store.begin() as conn:
        for name, email in {**SELLERS, "tom": MANAGER}.items():
            user = add_user(conn, email, name.title(), "sales", hash_password("x" * 12), 0)
            url = f"{hook_url}/{name}" if hook_url else None
            save_settings(conn, user.id, NotificationSettings(slack_url=url, **flags), 0)
            ids[name] = user.id
    return ids


def _mql(store: Store, user: str, plus: int, minus: int, cfg: Settings, now_ms: int) -> int:
    """A lead with a marketing title (grade B) and ``plus`` − ``minus`` points: an MQL at ``now_ms``."""
    send(store, [person(user, company="Acme GmbH"), *points(user, plus), *points(user, -minus)])
    run_round(store, cfg, now_ms=now_ms, timers=False, deliver=False)
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id=user)
        assert lead_id is not None
        return lead_id


def _body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode().replace("\r\n", "\n")


def _seller_of(store: Store, lead_id: int) -> str:
    with store.connect() as conn:
        found = current_assignment(conn, lead_id)
    assert found is not None
    return str(found["seller"])


def test_the_assigned_seller_is_mailed_and_messaged_at_once_with_the_top_reasons(store: Store) -> None:
    publish(store, model())
    with smtp_server() as (mailbox, port), webhook_receiver() as receiver:
        cfg = settings(smtp_port=port)
        _users(store, receiver.url, mail_immediate=True, slack_immediate=True)
        # 70 Plus (+1 each) and 3 Minus (−1 each), engagement weight 1, fit weight 0: score 67, and the
        # ledger lines are "Showed interest" +70 and "Lost interest" −3 (the fit lines count 0 points)
        lead_id = _mql(store, "anna", 70, 3, cfg, NOW)
        seller = _seller_of(store, lead_id)
        stats = deliver_due(store, cfg, model().lifecycle, None)
        assert stats.failed == 0
        mails = [m for m in mailbox.to(SELLERS[seller]) if m["Subject"].startswith("New lead for you")]
        assert len(mails) == 1
        assert mails[0]["Subject"] == "New lead for you: Anna (Acme GmbH), score 67.0 (warm)"
        body = _body(mails[0])
        assert "Why (top reasons):\n- Showed interest: +70.0\n- Lost interest: -3.0\n" in body
        assert f"Open the lead: {PUBLIC}/leads/{lead_id}" in body
        assert "4.0 h left to act" in body  # the model's SLA is 4h, and no time has passed
        # nobody else was told: the other sellers and the manager get nothing at once
        others = [a for s, a in {**SELLERS, "tom": MANAGER}.items() if s != seller]
        assert not [m for a in others for m in mailbox.to(a) if m["Subject"].startswith("New lead for you")]
        slack = {k: v for k, v in receiver.hooks.processed.items() if k.startswith("notify:")}
        assert len(slack) == 1
        (message,) = slack.values()
        assert message["path"] == f"/{seller}"
        text = message["body"]["text"]
        assert text.startswith("New lead for you: Anna (Acme GmbH), score 67.0 (warm).")
        assert "Why: Showed interest +70.0; Lost interest -3.0." in text
        blocks = message["body"]["blocks"]
        assert blocks[1]["type"] == "section" and blocks[1]["text"]["type"] == "mrkdwn"
        assert blocks[1]["text"]["text"].startswith(
            f"*<{PUBLIC}/leads/{lead_id}|Anna>* (Acme GmbH), score 67.0"
        )
        assert blocks[1]["text"]["text"].endswith("\n• Showed interest +70.0\n• Lost interest -3.0")
        # a second round enqueues nothing new: one message per assignment and channel
        run_round(store, cfg, now_ms=NOW + 1, timers=False)
        with store.connect() as conn:
            assert len([r for r in read_outbox(conn) if r["action"] == "notify.assigned"]) == 2


def test_nothing_is_sent_to_users_who_did_not_ask(store: Store) -> None:
    publish(store, model())
    with smtp_server() as (mailbox, port):
        cfg = settings(smtp_port=port)
        _users(store, None, mail_digest=True)  # a digest, but nothing at once
        _mql(store, "bo", 65, 0, cfg, NOW)
        deliver_due(store, cfg, model().lifecycle, None)
        assert not [m for m in mailbox.messages if m["Subject"].startswith("New lead for you")]
        assert [m["Subject"] for m in mailbox.messages] == ["New lead: Bo"]  # the model's own mail


def test_the_digest_goes_once_a_day_from_the_users_hour_and_a_manager_sees_the_team(store: Store) -> None:
    publish(store, model())
    with smtp_server() as (mailbox, port), webhook_receiver() as receiver:
        cfg = settings(smtp_port=port)
        ids = _users(store, receiver.url, mail_digest=True, slack_digest=True)
        # anna assigned 5 h before NOW (SLA 4 h: overdue by 1.0 h), ben 1 h before (3.0 h left: new)
        anna = _mql(store, "anna", 70, 3, cfg, NOW - 5 * HOUR)
        ben = _mql(store, "ben", 80, 0, cfg, NOW - HOUR)
        sellers = {_seller_of(store, anna), _seller_of(store, ben)}
        assert len(sellers) == 2  # round robin: two different EMEA sellers
        with store.begin() as conn:  # Ines wants hers at 10:00, which has not come at 09:00
            save_settings(conn, ids["ines"], NotificationSettings(mail_digest=True, digest_hour=10), 0)
        run = send_digests(store, model(), cfg, NOW)
        # due: lena, paul, tom (ines: not yet); the one seller of the three with no lead gets none
        expected_sent = {s for s in sellers if s != "ines"} | {"tom"}
        assert run.users == 3
        assert run.sent == 2 * len(expected_sent)  # mail and Slack each
        assert send_digests(store, model(), cfg, NOW + HOUR).sent == 0  # idempotent the same day
        assert send_digests(store, model(), cfg, NOW + HOUR).already == len(expected_sent)
        deliver_due(store, cfg, model().lifecycle, None)
        digests = [m for m in mailbox.messages if m["Subject"].startswith("Your leads on")]
        assert sorted(m["To"] for m in digests) == sorted(
            SELLERS[s] if s != "tom" else MANAGER for s in expected_sent
        )
        manager = next(m for m in digests if m["To"] == MANAGER)
        assert manager["Subject"] == "Your leads on 2024-05-06: 1 past their sla, 1 new since yesterday"
        body = _body(manager)
        anna_owner = {"lena": "Lena Vogt", "paul": "Paul Martin", "ines": "Ines Garcia"}[
            _seller_of(store, anna)
        ]
        assert (
            "Past their SLA (1):\n"
            f"- Anna (Acme GmbH), score 67.0 (warm), overdue by 1.0 h, {anna_owner}'s\n"
            "  Why: Showed interest +70.0; Lost interest -3.0\n"
            f"  {PUBLIC}/leads/{anna}\n"
        ) in body
        assert "New since yesterday (1):\n- Ben (Acme GmbH), score 80.0 (hot), 3.0 h left to act" in body
        assert "  Why: Showed interest +80.0\n" in body
        assert f"Your desk: {PUBLIC}/handoff" in body
        # a seller's digest holds only their own lead
        if _seller_of(store, ben) != "ines":
            own = next(m for m in digests if m["To"] == SELLERS[_seller_of(store, ben)])
            assert "Ben (Acme GmbH)" in _body(own) and "Anna" not in _body(own)
        tom_slack = receiver.hooks.processed[f"digest:{ids['tom']}:2024-05-06:slack"]
        assert tom_slack["path"] == "/tom"
        sections = [b["text"]["text"] for b in tom_slack["body"]["blocks"] if b["type"] == "section"]
        assert sections[1].startswith(f"*Past their SLA*\n*<{PUBLIC}/leads/{anna}|Anna>* (Acme GmbH)")
        assert "\n• Showed interest +70.0\n• Lost interest -3.0" in sections[1]
        # the lifecycle runner's timer round (serve, process) sends them too: nothing more today, and the
        # next day's digests
        assert run_round(store, cfg, now_ms=NOW + 2 * HOUR, deliver=False).digests == 0
        assert run_round(store, cfg, now_ms=NOW + DAY, deliver=False).digests == 2 * len(expected_sent)


OWNERS = {"lena": "Lena Vogt", "paul": "Paul Martin", "ines": "Ines Garcia"}


def test_erasing_a_lead_takes_it_out_of_every_digest_pending_sent_or_failed(store: Store) -> None:
    """The manager's digests tell of Anna and Ben: one sent (day 1), one whose Slack message failed
    (day 2), one pending (day 3). Erasing Anna leaves no trace of her in any outbox row (her name, e-mail,
    her own reason "Lost interest -3.0" and her "+70.0"), keeps Ben's lines as they were, deletes the
    digests that told of her alone and her immediate messages, and the pending digest still goes once."""
    publish(store, model())
    dead = Receiver()  # never started: connections are refused
    with smtp_server() as (mailbox, port), webhook_receiver() as receiver:
        cfg = settings(smtp_port=port)
        ids = _users(store, receiver.url, mail_immediate=True, slack_immediate=True, mail_digest=True,
                     slack_digest=True)  # fmt: skip
        anna = _mql(store, "anna", 70, 3, cfg, NOW - 5 * HOUR)  # overdue by 1.0 h at NOW
        ben = _mql(store, "ben", 80, 0, cfg, NOW - HOUR)  # 3.0 h left at NOW: due NOW + 3 h
        anna_seller, ben_seller = _seller_of(store, anna), _seller_of(store, ben)
        assert anna_seller != ben_seller
        # day 1: every digest delivered (sent)
        assert send_digests(store, model(), cfg, NOW).sent == 6  # Anna's seller, Ben's, the manager
        deliver_due(store, cfg, model().lifecycle, None)
        # day 2: the manager's Slack URL is dead and one attempt is all there is: a failed row
        with store.begin() as conn:
            flags = NotificationSettings(mail_digest=True, slack_digest=True, slack_url=dead.url)
            save_settings(conn, ids["tom"], flags, 0)
        assert send_digests(store, model(), cfg, NOW + DAY).sent == 6
        once = cfg.model_copy(update={"lifecycle": LifecycleSettings(max_attempts=1, retry_jitter=0)})
        deliver_due(store, once, model().lifecycle, None)
        # day 3: enqueued, not yet delivered (pending), the manager's Slack back on the live receiver
        with store.begin() as conn:
            flags = NotificationSettings(mail_digest=True, slack_digest=True, slack_url=f"{receiver.url}/tom")
            save_settings(conn, ids["tom"], flags, 0)
        assert send_digests(store, model(), cfg, NOW + 2 * DAY).sent == 6
        tom = ids["tom"]
        with store.connect() as conn:
            rows = {r["key"]: r for r in read_outbox(conn)}
        assert rows[f"digest:{tom}:2024-05-06:mail"]["status"] == "sent"
        assert rows[f"digest:{tom}:2024-05-06:slack"]["status"] == "sent"
        assert rows[f"digest:{tom}:2024-05-07:slack"]["status"] == "failed"
        assert rows[f"digest:{tom}:2024-05-08:mail"]["status"] == "pending"
        assert "Anna (Acme GmbH)" in rows[f"digest:{tom}:2024-05-08:mail"]["payload"]["body"]
        assert "Anna" in json.dumps(rows[f"digest:{tom}:2024-05-07:slack"]["payload"])

        with store.connect() as conn:
            person = find_person(conn, f"lead:{anna}")
        report = erase(store, person, "pepper", NOW + 2 * DAY, "test")
        assert report.clean
        # the manager's 6 digests (3 days × mail and Slack) are rendered again without her; her
        # seller's 6 told of her alone and are deleted, with her 2 immediate messages (mail, Slack)
        assert report.redacted["outbox"] == 6
        with store.connect() as conn:
            kept = read_outbox(conn)
            assert conn.execute(digest_leads.select().where(digest_leads.c.lead_id == anna)).all() == []
        for row in kept:
            text = json.dumps(row, default=str).lower()
            for trace in ("anna", "lost interest", "+70.0", f"/leads/{anna}"):
                assert trace not in text, (row["key"], trace)
        keys = {r["key"] for r in kept}
        assert not {k for k in keys if k.startswith(f"digest:{ids[anna_seller]}:")}
        assert not {k for k in keys if k.startswith(f"notify:{ids[anna_seller]}:")}
        assert {k for k in keys if k.startswith(f"digest:{tom}:")} == {
            f"digest:{tom}:{day}:{channel}"
            for day in ("2024-05-06", "2024-05-07", "2024-05-08")
            for channel in ("mail", "slack")
        }
        by_key = {r["key"]: r for r in kept}
        # Ben's lines as they were: new on day 1, overdue by 24 − 3 = 21.0 h on day 2, by 45.0 h on day 3
        ben_line = f"  Why: Showed interest +80.0\n  {PUBLIC}/leads/{ben}\n"
        sent = by_key[f"digest:{tom}:2024-05-06:mail"]
        assert sent["status"] == "sent"
        assert sent["payload"]["subject"] == "Your leads on 2024-05-06: 1 new since yesterday"
        assert (
            f"New since yesterday (1):\n- Ben (Acme GmbH), score 80.0 (hot), 3.0 h left to act, "
            f"{OWNERS[ben_seller]}'s\n{ben_line}"
        ) in sent["payload"]["body"]
        failed = by_key[f"digest:{tom}:2024-05-07:slack"]
        assert failed["status"] == "failed"
        sections = [b["text"]["text"] for b in failed["payload"]["body"]["blocks"] if b["type"] == "section"]
        assert sections == [
            "*Your leads on 2024-05-07*: 1 past their sla",
            f"*Past their SLA*\n*<{PUBLIC}/leads/{ben}|Ben>* (Acme GmbH), score 80.0 (hot), overdue by "
            f"21.0 h, {OWNERS[ben_seller]}'s\n• Showed interest +80.0",
        ]
        assert by_key[f"digest:{tom}:2024-05-08:mail"]["status"] == "pending"

        # the pending digest goes, once, with Ben's line and without Anna
        deliver_due(store, cfg, model().lifecycle, None)
        deliver_due(store, cfg, model().lifecycle, None)
        day3 = [m for m in mailbox.to(MANAGER) if m["Subject"].startswith("Your leads on 2024-05-08")]
        assert len(day3) == 1
        assert day3[0]["Subject"] == "Your leads on 2024-05-08: 1 past their sla"
        body = _body(day3[0])
        assert (
            f"Past their SLA (1):\n- Ben (Acme GmbH), score 80.0 (hot), overdue by 45.0 h, "
            f"{OWNERS[ben_seller]}'s\n{ben_line}"
        ) in body
        assert "anna" not in body.lower() and "Lost interest" not in body
        key = f"digest:{tom}:2024-05-08:slack"
        assert len([a for a in receiver.hooks.attempts if a["key"] == key]) == 1
        slack = json.dumps(receiver.hooks.processed[key]["body"])
        assert f"/leads/{ben}|Ben>" in slack and "anna" not in slack.lower()
        # Ben's own seller's pending digest is untouched and went too
        assert len([m for m in mailbox.to(SELLERS[ben_seller]) if "2024-05-08" in m["Subject"]]) == 1


@pytest.fixture
def slow() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.hooks.delay_s = 60.0
    receiver.up()
    try:
        yield receiver
    finally:
        receiver.down()


def test_a_hanging_webhook_delays_no_other_users_message(store: Store, slow: Receiver) -> None:
    publish(store, model())
    with smtp_server() as (mailbox, port), webhook_receiver() as fast:
        cfg = settings(smtp_port=port, timeout_s=3.0, total_timeout_s=5.0, concurrency=1)
        cfg = cfg.model_copy(
            update={"lifecycle": LifecycleSettings(retry_base_s=0.05, retry_max_s=0.1, lifecycle_idle_s=0.05)}
        )
        ids = _users(store, fast.url, mail_digest=True, slack_digest=True)
        with store.begin() as conn:  # the manager's Slack hangs
            settings_tom = NotificationSettings(
                mail_digest=True, slack_digest=True, slack_url=slow.url, digest_hour=0
            )
            save_settings(conn, ids["tom"], settings_tom, 0)
        anna = _mql(store, "anna", 70, 3, cfg, NOW - HOUR)
        seller = _seller_of(store, anna)
        assert send_digests(store, model(), cfg, NOW).sent == 4  # the seller's and the manager's, two each
        deliverer = Deliverer(store, cfg).start()
        try:
            wait_for(lambda: len(slow.hooks.attempts) == 1, 5.0)  # the manager's Slack is hanging now
            # the seller's Slack message and both mails arrive while it hangs
            wait_for(lambda: f"digest:{ids[seller]}:2024-05-06:slack" in fast.hooks.processed, 5.0)
            wait_for(
                lambda: len([m for m in mailbox.messages if m["Subject"].startswith("Your leads")]) == 2, 5.0
            )
            assert slow.hooks.answered == 0

            def statuses() -> dict[str, str]:
                with store.connect() as conn:
                    return {
                        r["key"]: r["status"] for r in read_outbox(conn) if r["action"] == "notify.digest"
                    }

            # the three others are recorded sent (the receivers saw them just before) ...
            wait_for(lambda: sorted(statuses().values()) == ["pending", "sent", "sent", "sent"], 5.0)
            assert statuses()[f"digest:{ids['tom']}:2024-05-06:slack"] == "pending"  # ... this one hangs
        finally:
            slow.down()
            deliverer.stop()


def test_a_dead_webhook_ends_as_a_failed_row_and_the_mail_still_goes(store: Store) -> None:
    publish(store, model())
    dead = Receiver()  # never started: connections are refused
    with smtp_server() as (mailbox, port):
        cfg = settings(smtp_port=port)
        cfg = cfg.model_copy(
            update={"lifecycle": LifecycleSettings(max_attempts=2, retry_base_s=1, retry_jitter=0)}
        )
        _users(store, dead.url, mail_immediate=True, slack_immediate=True)
        lead_id = _mql(store, "anna", 70, 3, cfg, NOW)
        now = int(time.time() * 1000)
        deliver_due(store, cfg, model().lifecycle, now)
        deliver_due(store, cfg, model().lifecycle, now + 2_000)  # after the 1 s backoff
        with store.connect() as conn:
            rows = {r["channel"]: r for r in read_outbox(conn, lead_id) if r["action"] == "notify.assigned"}
        assert rows["mail"]["status"] == "sent"
        assert rows["webhook"]["status"] == "failed" and rows["webhook"]["failures"] == 2
        assert "ConnectError" in rows["webhook"]["last_error"]
        assert len([m for m in mailbox.messages if m["Subject"].startswith("New lead for you")]) == 1


def test_leadscore_digest_from_a_script(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path_factory.mktemp("digest") / "d.db")
    store = Store.from_url(db)
    try:
        publish(store, model())
        with smtp_server() as (mailbox, port):
            monkeypatch.setenv("LEADSCORE_SMTP_PORT", str(port))
            ids = _users(store, None, mail_digest=True)
            with store.begin() as conn:  # digest hour 0: due at any time of the day the test runs
                for user_id in ids.values():
                    save_settings(conn, user_id, NotificationSettings(mail_digest=True, digest_hour=0), 0)
            _mql(store, "anna", 70, 3, settings(smtp_port=port), int(time.time() * 1000))
            runner = CliRunner()
            first = runner.invoke(app, ["digest", "--db", db])
            assert first.exit_code == 0, first.output
            assert "2 enqueued, 0 already sent today" in first.output  # the seller's and the manager's
            # delivered at once: the two digests, and the model's own mail to the seller (the model's
            # webhook actions wait for their URL, which this test leaves unset)
            assert "delivered: 3 sent, 1 to retry, 0 failed" in first.output
            again = runner.invoke(app, ["digest", "--db", db])
            assert "0 enqueued, 2 already sent today" in again.output
            assert len([m for m in mailbox.messages if m["Subject"].startswith("Your leads on")]) == 2
    finally:
        store.dispose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"digest_hour": 24}, "the digest hour is 0 to 23 (UTC), not 24"),
        ({"slack_immediate": True}, "Slack messages need the incoming webhook's URL"),
        ({"slack_url": "ftp://hooks.example/x"}, "must start with https://"),
        ({"slack_url": "https://hooks.example/a b"}, "a space or a control character"),
        ({"slack_url": "https://h.example/" + "a" * 2000}, "at most 2000 characters; this one has 2018"),
    ],
)
def test_settings_refuse_what_cannot_work(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        NotificationSettings(**kwargs)  # type: ignore[arg-type]


def test_past_the_sla_is_one_moment_for_the_escalation_and_the_digest(store: Store) -> None:
    # anna assigned exactly 4 h (the SLA) before NOW: at NOW the escalation takes her as breached, so the
    # digest of the same moment lists her past her SLA (by 0.0 h), not with 0.0 h left to act
    publish(store, model())
    cfg = settings()
    anna = _mql(store, "anna", 70, 3, cfg, NOW - 4 * HOUR)
    with store.connect() as conn:
        assert [a["lead_id"] for a in claim_breaches(conn, NOW)] == [anna]
        notes, _ = digest_notes(conn, model(), MANAGER, cfg, NOW)
    assert [n.lead_id for n in notes["overdue"]] == [anna]
    assert notes["new"] == [] and notes["waiting"] == []


def test_line_breaks_in_a_leads_name_and_company_reach_no_mail_header(store: Store) -> None:
    """A lead's name and company are the traits a public write key sends: a line break in them (CR, LF or
    any other that Python's mail headers refuse) made the seller's mail unwritable (ValueError in every
    attempt, the row leased again and again, the SMTP endpoint's breaker counting failures) or, written
    raw, a header of the sender's choosing. The header says them on one line; the good lead's mail goes."""
    publish(store, model())
    with smtp_server() as (mailbox, port):
        cfg = settings(smtp_port=port)
        _users(store, None, mail_immediate=True)
        send(
            store,
            [
                person("eve", firstName="Eve\r\nBcc: spy@evil.example", company="Acme\u2028X-Evil: 1"),
                *points("eve", 70),
                *points("eve", -3),
            ],
        )
        run_round(store, cfg, now_ms=NOW, timers=False, deliver=False)
        _mql(store, "anna", 70, 3, cfg, NOW)
        stats = deliver_due(store, cfg, model().lifecycle, None)
        assert stats.failed == 0
        subjects = sorted(str(m["Subject"]) for m in mailbox.messages if "New lead for you" in m["Subject"])
        assert subjects == [
            "New lead for you: Anna (Acme GmbH), score 67.0 (warm)",
            "New lead for you: Eve Bcc: spy@evil.example (Acme X-Evil: 1), score 67.0 (warm)",
        ]
        assert not [m for m in mailbox.messages if m["Bcc"] is not None or m["X-Evil"] is not None]
        with store.connect() as conn:
            rows = [r for r in read_outbox(conn) if r["channel"] == "mail"]
        assert rows and {r["status"] for r in rows} == {"sent"}


@pytest.mark.parametrize(
    "address",
    [
        "eve@eve.example, spy@evil.example",
        "eve@eve.example\r\nbcc: spy@evil.example",
        "eve <spy@evil.example>",
        "eve@eve.example;spy@evil.example",
    ],
)
def test_a_leads_address_that_is_not_one_address_is_not_mailed(address: str) -> None:
    """The address of a mail to a lead is the e-mail trait a public write key sends: a list (the mail went
    to every address in it) or a header is no address. The attempt fails saying so; the next mail goes."""
    from leadscore.lifecycle import mail

    with smtp_server() as (mailbox, port):
        cfg = settings(smtp_port=port)
        payload = {"subject": "Shall we meet?", "body": "Hi", "to_lead": True, "unsubscribe_url": ""}
        bad = mail.send(cfg, {**payload, "to": address}, "k:1")
        good = mail.send(cfg, {**payload, "to": "anna@anna.example"}, "k:2")
        assert (bad.status, good.status) == ("fail", "ok")
        assert "is not one e-mail address" in bad.detail
        assert [m["To"] for m in mailbox.messages] == ["anna@anna.example"]


def test_a_digest_reads_a_page_of_the_queue_however_long_it_is(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tom's digest lists 3 leads a section (``DIGEST_SHOWN`` made 3) and counts the rest: on day 1 six
    EMEA leads (scores 61 to 66) are past their SLA (assigned 5 h before, SLA 4 h), on day 2 six more
    (67 to 72): twelve. Both digests read the same rows from the store (the page of 3 with their reasons,
    a count per section), not the 6 and then 12 leads of the queue with all their reasons; day 2's lists
    the hottest three (72, 71, 70) and says "and 9 more" with the desk's link."""
    from sqlalchemy import event

    from leadscore.lifecycle import notify

    monkeypatch.setattr(notify, "DIGEST_SHOWN", 3)
    publish(store, model())
    cfg = settings()
    _users(store, None, mail_digest=True)
    statements: list[tuple[str, object]] = []

    def seen(_c: object, _cursor: object, statement: str, parameters: object, _ctx: object, _m: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    def rows_read(now_ms: int) -> int:
        """Rows the manager's digest at ``now_ms`` read: each SELECT it ran, counted again."""
        statements.clear()
        event.listen(store.engine, "after_cursor_execute", seen)
        try:
            assert send_digests(store, model(), cfg, now_ms, email=MANAGER).sent == 1
        finally:
            event.remove(store.engine, "after_cursor_execute", seen)
        with store.connect() as conn:
            return sum(
                int(conn.exec_driver_sql(f"SELECT count(*) FROM ({sql}) AS read_rows", params).scalar_one())
                for sql, params in statements
            )

    def mqls(names: list[str], first_score: int, now_ms: int) -> None:
        send(store, [m for i, u in enumerate(names) for m in (person(u), *points(u, first_score + i))])
        run_round(store, cfg, now_ms=now_ms, timers=False, deliver=False)

    mqls([f"a{i}" for i in range(6)], 61, NOW - 5 * HOUR)
    day1 = rows_read(NOW)
    mqls([f"b{i}" for i in range(6)], 67, NOW + DAY - 5 * HOUR)
    day2 = rows_read(NOW + DAY)
    assert day2 == day1
    with store.connect() as conn:
        row = next(r for r in read_outbox(conn) if r["key"].endswith(":2024-05-07:mail"))
        told = conn.execute(digest_leads.select().where(digest_leads.c.outbox_id == row["id"])).all()
    assert row["payload"]["subject"] == "Your leads on 2024-05-07: 12 past their sla"
    body = row["payload"]["body"]
    listed = re.findall(r"^- (B\d) \(", body, flags=re.M)
    assert listed == ["B5", "B4", "B3"]
    assert "Past their SLA (12):\n" in body and f"- and 9 more: {PUBLIC}/handoff\n" in body
    assert len(told) == 3


def test_a_name_sent_with_line_breaks_cannot_add_a_lead_to_a_message() -> None:
    """A write key sent Ann's first name as "Ann" + a line break + "- Eve (Acme), score 99.9 (hot), ...",
    and her company with a CR LF: the digest showed a line for a lead "Eve" scored 99.9 that no model
    scored. A name and a company are told on one line (the mail subject's rule), in the digest, the
    mail at once and Slack's blocks."""
    from leadscore.lifecycle.notify import Note, digest_messages, immediate_messages

    fake = "Ann\n- Eve (Acme), score 99.9 (hot), 2.0 h left to act\n  Why: Demo +99.9"
    note = Note(7, fake, "Acme\r\nGmbH", 12.0, "cold", [], "http://x/leads/7", NOW + HOUR)
    told = (
        "Ann - Eve (Acme), score 99.9 (hot), 2.0 h left to act Why: Demo +99.9 (Acme GmbH), score 12.0 (cold)"
    )
    mail, slack = digest_messages(
        {"overdue": [], "new": [note], "waiting": []}, "2024-05-06", "http://x", NOW
    )
    assert [line for line in mail["body"].splitlines() if line.startswith("- ")] == [
        f"- {told}, 1.0 h left to act"
    ]
    assert "\n- Eve" not in slack["blocks"][1]["text"]["text"]
    at_once, at_once_slack = immediate_messages(note, NOW)
    assert at_once["body"].splitlines()[0] == (
        "Ann - Eve (Acme), score 99.9 (hot), 2.0 h left to act Why: Demo +99.9 (Acme GmbH) was assigned to "
        "you: score 12.0 (cold); 1.0 h left to act."
    )
    assert "\n- Eve" not in at_once_slack["blocks"][1]["text"]["text"]


def test_a_slack_webhooks_default_text_tells_a_name_on_one_line() -> None:
    """A model's Slack-format webhook without a text of its own says "kind: name (company), score, stage";
    a name with a line break there added a line no model wrote."""
    from leadscore.lifecycle.actions import _default_text

    lead = {"name": "Ann\n*Eve*, score 99.9", "company": "Acme\r\nGmbH", "score": 12.0, "stage": "mql"}
    assert _default_text("stage.entered", {"lead": lead}) == (
        "stage.entered: Ann *Eve*, score 99.9 (Acme GmbH), score 12.0, stage mql"
    )

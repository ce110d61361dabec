"""The lifecycle on both engines: stage machine with hysteresis, recycling, feedback, assignment
fairness and territories, stage history as of any time, delivery through a failing webhook receiver,
and re-scoring that never repeats a notification."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.lifecycle.feedback import TransitionError, give_feedback, record_outcome
from leadscore.lifecycle.reports import funnel, time_in_stage
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish, rescore_all
from leadscore.store import Store
from leadscore.store.lifecycle_tables import list_assignments, read_feedback, read_stage_history, stage_as_of
from leadscore.store.outbox import read_outbox
from leadscore.store.people import find_lead
from leadscore.store.schema import leads as leads_table
from leadscore.store.schema import outcomes
from leadscore.web.data.stages import stage_view
from lifecycle_model import DAY, HOOK_ENV, HOUR, MODEL, T0, model, person, points, send, settings
from receivers import smtp_server, wait_for, webhook_receiver


def lead(store: Store, user: str) -> int:
    with store.connect() as conn:
        found = find_lead(conn, external_id=user)
    assert found is not None
    return found


def stages(store: Store, user: str) -> list[str]:
    with store.connect() as conn:
        return [h["to_stage"] for h in read_stage_history(conn, lead(store, user))]


def round_(store: Store, now: int, **kw: Any) -> Any:
    return run_round(store, settings(), now_ms=now, deliver=False, **kw)


@pytest.fixture
def lc_store(store: Store) -> Store:
    publish(store, model())
    return store


def test_mql_needs_score_and_fit_grade(lc_store: Store) -> None:
    send(lc_store, [person("ann"), person("bob", title="Student"), *points("ann", 65), *points("bob", 80)])
    round_(lc_store, T0 + DAY)
    assert stages(lc_store, "ann") == ["lead", "mql"]  # score 65, grade B (fit 60)
    assert stages(lc_store, "bob") == ["lead"]  # score 80, but grade D: not for sales


def test_hysteresis_keeps_a_hovering_lead_in_place(lc_store: Store) -> None:
    send(lc_store, [person("ann"), *points("ann", 58)])
    path = [58]
    for delta in (+3, -3, -1, +4, -7, +7):  # 61 58 57 61 54 61
        send(lc_store, points("ann", delta))
        path.append(path[-1] + delta)
        round_(lc_store, T0 + DAY)
    assert path == [58, 61, 58, 57, 61, 54, 61]
    # enters at 61, stays at 58/57 (above 60 − 5), falls back only at 54, re-enters at 61
    assert stages(lc_store, "ann") == ["lead", "mql", "lead", "mql"]


def test_recycled_after_30_days_without_activity(lc_store: Store) -> None:
    send(lc_store, [person("ann"), *points("ann", 70)])
    round_(lc_store, T0 + DAY)
    round_(lc_store, T0 + 30 * DAY)  # entered at T0 + 1 day: 29 days of quiet
    assert stages(lc_store, "ann")[-1] == "mql"
    round_(lc_store, T0 + 31 * DAY + HOUR)
    with lc_store.connect() as conn:
        history = read_stage_history(conn, lead(lc_store, "ann"))
    assert [h["to_stage"] for h in history] == ["lead", "mql", "recycled"]
    assert history[-1]["cause"] == "timer" and history[-1]["cause_ref"] == "no activity for 30d"


def test_feedback_accept_and_reject(lc_store: Store) -> None:
    send(lc_store, [person("ann"), person("bob"), *points("ann", 70), *points("bob", 70)])
    round_(lc_store, T0 + DAY)
    model_ = model()
    ann, bob = lead(lc_store, "ann"), lead(lc_store, "bob")
    move = give_feedback(
        lc_store,
        model_,
        ann,
        "accepted",
        reason=None,
        note="",
        by="lena",
        at_ms=T0 + 2 * DAY,
        settings=settings(),
        now_ms=T0 + 2 * DAY,
    )
    assert (move.from_stage, move.to_stage) == ("mql", "sql")
    with pytest.raises(Exception, match="rejection needs a reason"):
        give_feedback(
            lc_store,
            model_,
            bob,
            "rejected",
            reason="meh",
            note="",
            by="paul",
            at_ms=T0,
            settings=settings(),
            now_ms=T0,
        )
    give_feedback(
        lc_store,
        model_,
        bob,
        "rejected",
        reason="no_budget",
        note="next year",
        by="paul",
        at_ms=T0 + 2 * DAY,
        settings=settings(),
        now_ms=T0 + 2 * DAY,
    )
    assert stages(lc_store, "bob") == ["lead", "mql", "recycled"]
    with pytest.raises(TransitionError, match="no transition on 'accepted'"):
        give_feedback(
            lc_store,
            model_,
            bob,
            "accepted",
            reason=None,
            note="",
            by="paul",
            at_ms=T0,
            settings=settings(),
            now_ms=T0,
        )
    with lc_store.connect() as conn:
        fb = read_feedback(conn)
        kinds = sorted((r.lead_id, r.kind, r.reason) for r in conn.execute(select(outcomes)).all())
        assigned = {a["lead_id"]: a for a in list_assignments(conn)}
    assert [(f["lead_id"], f["decision"], f["reason"]) for f in fb] == [
        (ann, "accepted", None),
        (bob, "rejected", "no_budget"),
    ]
    assert kinds == sorted([(ann, "sql", None), (bob, "disqualified", "no_budget")])
    assert assigned[ann]["touched_ms"] == T0 + 2 * DAY
    # an outcome moves the stage once; importing it again changes nothing
    assert record_outcome(
        lc_store,
        model_,
        ann,
        "won",
        at_ms=T0 + 9 * DAY,
        amount=12000,
        reason=None,
        source="csv",
        settings=settings(),
        now_ms=T0 + 9 * DAY,
    )[0]
    assert not record_outcome(
        lc_store,
        model_,
        ann,
        "won",
        at_ms=T0 + 9 * DAY,
        amount=12000,
        reason=None,
        source="csv",
        settings=settings(),
        now_ms=T0 + 9 * DAY,
    )[0]
    assert stages(lc_store, "ann") == ["lead", "mql", "sql", "customer"]


def test_assignment_round_robin_territories_and_account_owner(lc_store: Store) -> None:
    users = [f"u{i:02d}" for i in range(31)]
    raws = [person(u, country="se" if i < 10 else "de") for i, u in enumerate(users)]
    raws += [person("acct1", domain="acme.example"), person("acct2", domain="acme.example", country="se")]
    raws += [
        {
            "type": "group",
            "userId": "acct1",
            "groupId": "acme",
            "messageId": "g1",
            "traits": {"name": "Acme", "domain": "acme.example"},
        }
    ]
    raws += [e for u in [*users, "acct1"] for e in points(u, 61)]
    send(lc_store, raws)
    round_(lc_store, T0 + DAY)
    send(lc_store, points("acct2", 61))  # a second contact at the same account, later, from another territory
    round_(lc_store, T0 + DAY)
    with lc_store.connect() as conn:
        rows = {a["lead_id"]: a for a in list_assignments(conn)}
    assert len(rows) == 33
    nordic = Counter(rows[lead(lc_store, u)]["seller"] for u in users[:10])
    emea = Counter(rows[lead(lc_store, u)]["seller"] for u in users[10:])
    assert set(nordic) == {"erik", "sara"} and max(nordic.values()) - min(nordic.values()) <= 1
    assert set(emea) == {"lena", "paul", "ines"} and max(emea.values()) - min(emea.values()) <= 1
    assert {rows[lead(lc_store, u)]["team"] for u in users[:10]} == {"nordics"}
    # acct2 is Swedish (territory: nordics) but its account is owned by acct1's seller in EMEA
    first, second = rows[lead(lc_store, "acct1")], rows[lead(lc_store, "acct2")]
    assert first["team"] == "emea" and first["reason"] == "default"
    assert (second["seller"], second["reason"]) == (first["seller"], "account_owner")


def test_stage_as_of_any_time(lc_store: Store) -> None:
    send(lc_store, [person("ann"), *points("ann", 70)])
    round_(lc_store, T0 + DAY)
    give_feedback(
        lc_store,
        model(),
        lead(lc_store, "ann"),
        "accepted",
        reason=None,
        note="",
        by="x",
        at_ms=T0 + 3 * DAY,
        settings=settings(),
        now_ms=T0 + 3 * DAY,
    )
    with lc_store.connect() as conn:
        ann = lead(lc_store, "ann")
        at = {
            t: (stage_as_of(conn, ann, t) or {}).get("to_stage")
            for t in (T0 + DAY - 1, T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY)
        }
    assert at[T0 + DAY] == "mql" and at[T0 + 2 * DAY] == "mql" and at[T0 + 3 * DAY] == "sql"
    assert at[T0 + DAY - 1] is None  # a lead's first stage starts when it is first evaluated


def test_rescoring_repeats_nothing_and_delivery_survives_a_failing_receiver(
    lc_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver() as receiver, smtp_server() as (mailbox, port):
        monkeypatch.setenv(HOOK_ENV, receiver.url)
        cfg = settings(smtp_port=port)
        send(lc_store, [person("ann"), person("bob", country="se"), *points("ann", 75), *points("bob", 62)])
        run_round(lc_store, cfg, now_ms=T0 + DAY, deliver=False)
        with lc_store.connect() as conn:
            queued = {o["key"] for o in read_outbox(conn)}
        # manager alerts and seller mails for both, ann's hot crossing, ann entering the hot segment
        assert len(queued) == 6
        receiver.hooks.fail_next = 3
        run_round(lc_store, cfg, now_ms=T0 + DAY)  # webhooks fail (500) and are retried later
        receiver.down()
        run_round(lc_store, cfg, now_ms=T0 + DAY + 1000)  # receiver down: connection refused
        rescore_all(lc_store)  # re-scoring the same history
        publish(lc_store, model())  # republishing the same model
        send(lc_store, [person("ann"), person("bob", country="se")])  # same traits again
        receiver.up()
        for i in range(2, 8):
            run_round(lc_store, cfg, now_ms=T0 + DAY + i * 60_000)
        with lc_store.connect() as conn:
            rows = read_outbox(conn)
        assert {r["key"] for r in rows} == queued
        assert all(r["status"] == "sent" for r in rows), [
            (r["key"], r["status"], r["last_error"]) for r in rows
        ]
        hooks = receiver.hooks
        assert hooks.bad_signatures == 0
        assert set(hooks.processed) == {k for k in queued if not k.startswith("seller_mail")}
        assert len(hooks.attempts) > len(hooks.processed)  # there were failed attempts
        assert sorted(m["To"] for m in mailbox.messages) == ["erik@vendor.example", "lena@vendor.example"]
        slack = [v["body"]["text"] for k, v in hooks.processed.items() if k.startswith("manager_alert")]
        assert sorted(slack) == ["New MQL Ann for Lena Vogt", "New MQL Bob for Erik Holm"]
        assert "Showed interest" in wait_for(lambda: mailbox.to("lena@vendor.example"))[0].get_payload()


def test_sla_escalation_once_and_consent(lc_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    with smtp_server() as (mailbox, port):
        monkeypatch.setenv(HOOK_ENV, "http://127.0.0.1:9/unused")
        cfg = settings(smtp_port=port)
        send(
            lc_store,
            [person("ann"), person("bob", unsubscribed=True), *points("ann", 70), *points("bob", 70)],
        )
        run_round(lc_store, cfg, now_ms=T0 + DAY, deliver=False)
        run_round(lc_store, cfg, now_ms=T0 + DAY + 5 * HOUR, deliver=False)
        run_round(lc_store, cfg, now_ms=T0 + DAY + 6 * HOUR, deliver=False)
        with lc_store.connect() as conn:
            escalations = [o for o in read_outbox(conn) if o["action"] == "escalate"]
        assert sorted(o["target"] for o in escalations) == ["tom@vendor.example", "tom@vendor.example"]
        for user in ("ann", "bob"):
            give_feedback(
                lc_store,
                model(),
                lead(lc_store, user),
                "rejected",
                reason="bad_timing",
                note="",
                by="t",
                at_ms=T0 + 2 * DAY,
                settings=cfg,
                now_ms=T0 + 2 * DAY,
            )
        with lc_store.connect() as conn:
            nurture = {o["lead_id"]: o for o in read_outbox(conn) if o["action"] == "nurture_mail"}
        assert len(nurture) == 2
        from leadscore.lifecycle.outbox import deliver_due

        stats = deliver_due(lc_store, cfg, model().lifecycle, T0 + 2 * DAY)
        with lc_store.connect() as conn:
            after = {o["lead_id"]: o for o in read_outbox(conn) if o["action"] == "nurture_mail"}
        assert after[lead(lc_store, "bob")]["status"] == "skipped"
        assert after[lead(lc_store, "bob")]["last_error"] == "attribute unsubscribed is true"
        assert after[lead(lc_store, "ann")]["status"] == "sent"
        ann_mail = mailbox.to("ann@ann.example")[0]
        assert ann_mail["List-Unsubscribe"].startswith(
            "<http://127.0.0.1:8000/v1/unsubscribe?email=ann%40ann.example&token="
        )
        assert stats.skipped == 1


def test_sla_escalates_only_a_lead_still_waiting_in_the_stage_it_was_assigned_in(lc_store: Store) -> None:
    """An assignment whose lead left the assignment stage without feedback (it cooled back to lead) is no
    seller's to work any more: its SLA passing escalates nothing. Ann enters MQL at day 1 (Lena, due
    day 1 + 4 h), cools at day 1 + 1 h (70 − 20 = 50 < 60 − 5), re-enters at day 1 + 7 h (50 + 20 = 70:
    Paul, the EMEA rotation's next, due day 1 + 11 h): one escalation, Paul's, not one for Lena's too."""
    send(lc_store, [person("ann"), *points("ann", 70)])
    round_(lc_store, T0 + DAY)
    send(lc_store, points("ann", -20, at=T0 + DAY + HOUR))
    round_(lc_store, T0 + DAY + HOUR)
    assert stages(lc_store, "ann") == ["lead", "mql", "lead"]
    round_(lc_store, T0 + DAY + 6 * HOUR)  # Lena's deadline (day 1 + 4 h) has passed
    with lc_store.connect() as conn:
        assert [o for o in read_outbox(conn) if o["action"] == "escalate"] == []
        cooled = stage_view(conn, model().lifecycle, lead(lc_store, "ann"))  # type: ignore[arg-type]
    assert (cooled.stage, cooled.owner, cooled.due_ms) == ("lead", "Lena Vogt (EMEA)", None)  # no SLA clock
    send(lc_store, points("ann", 20, at=T0 + DAY + 7 * HOUR))
    round_(lc_store, T0 + DAY + 7 * HOUR)
    round_(lc_store, T0 + DAY + 12 * HOUR)  # Paul's deadline (day 1 + 11 h) has passed
    with lc_store.connect() as conn:
        escalated = {a["seller"]: a["escalated_ms"] for a in list_assignments(conn)}
        escalations = [o for o in read_outbox(conn) if o["action"] == "escalate"]
    assert stages(lc_store, "ann") == ["lead", "mql", "lead", "mql"]
    assert escalated == {"lena": None, "paul": T0 + DAY + 12 * HOUR}
    assert [o["target"] for o in escalations] == ["tom@vendor.example"]
    with lc_store.connect() as conn:
        waiting = stage_view(conn, model().lifecycle, lead(lc_store, "ann"))  # type: ignore[arg-type]
    assert (waiting.stage, waiting.owner, waiting.due_ms) == (
        "mql",
        "Paul Martin (EMEA)",
        T0 + DAY + 11 * HOUR,
    )


def test_a_backdated_outcome_moves_the_lead_no_earlier_than_it_entered_its_stage(lc_store: Store) -> None:
    """A CRM import may date an outcome before the lead entered the stage it leaves (an SQL recorded at
    T0 + 1 h for a lead that became an MQL at T0 + 1 day). The move is dated at that entry, not before it,
    so the history reads in order and the stage as of any time is the stage the lead is in; the outcome
    keeps its own date for learning."""
    send(lc_store, [person("ann"), *points("ann", 70)])
    round_(lc_store, T0 + DAY)
    ann = lead(lc_store, "ann")
    stored, move = record_outcome(
        lc_store, model(), ann, "sql", at_ms=T0 + HOUR, amount=None, reason=None, source="csv",
        settings=settings(), now_ms=T0 + 2 * DAY,
    )  # fmt: skip
    assert stored and move is not None and (move.from_stage, move.to_stage) == ("mql", "sql")
    with lc_store.connect() as conn:
        history = [(h["to_stage"], h["at_ms"]) for h in read_stage_history(conn, ann)]
        now = stage_as_of(conn, ann, T0 + 2 * DAY)
        kept = conn.execute(select(outcomes.c.kind, outcomes.c.at_ms).where(outcomes.c.lead_id == ann)).all()
        lifecycle = model().lifecycle
        assert lifecycle is not None
        mql = next(r for r in funnel(conn, lifecycle)["stages"] if r["stage"] == "mql")
        now_in = {r["stage"]: r["current"] for r in time_in_stage(conn, lifecycle, T0 + 2 * DAY)}
    assert [stage for stage, _ in history] == ["lead", "mql", "sql"]
    assert history[1:] == [("mql", T0 + DAY), ("sql", T0 + DAY)]
    assert now is not None and now["to_stage"] == "sql"
    assert [tuple(r) for r in kept] == [("sql", T0 + HOUR)]
    assert (mql["entered"], mql["converted"]) == (1, 1)  # the funnel counts the MQL as converted
    assert (now_in["mql"], now_in["sql"]) == (0, 1)


def test_an_account_whose_owner_left_the_team_gets_a_new_owner(lc_store: Store) -> None:
    """``sticky_accounts``: the first EMEA contact of Acme goes to Lena (the rotation's position 0) and
    makes her the account's EMEA owner. Lena then leaves the team (a version without her). The next contact
    goes round the rotation again: Lena, the last served, is not in [Paul, Ines], so it starts from its
    first, Paul (the cursor as an index gave position 1: Ines, and Paul lost his turn), and Paul becomes
    the owner, so the third contact is his too (account_owner), not the rotation's next (Ines)."""
    acme = [
        {"type": "group", "userId": "acct1", "groupId": "acme", "messageId": "g-acme",
         "traits": {"name": "Acme", "domain": "acme.example"}},
    ]  # fmt: skip
    send(lc_store, [person("acct1", domain="acme.example"), *acme, *points("acct1", 61)])
    round_(lc_store, T0 + DAY)
    publish(
        lc_store,
        loads_model(MODEL.replace("        - {id: lena, name: Lena Vogt, email: lena@vendor.example}\n", "")),
    )
    for i, user in enumerate(("acct2", "acct3"), start=2):
        send(lc_store, [person(user, domain="acme.example"), *points(user, 61, at=T0 + i * DAY)])
        round_(lc_store, T0 + i * DAY)
    with lc_store.connect() as conn:
        rows = {a["lead_id"]: (a["seller"], a["reason"]) for a in list_assignments(conn)}
    assert rows[lead(lc_store, "acct1")] == ("lena", "default")
    assert rows[lead(lc_store, "acct2")] == ("paul", "default")
    assert rows[lead(lc_store, "acct3")] == ("paul", "account_owner")


def test_a_disabled_seller_gets_no_new_leads(lc_store: Store) -> None:
    """A seller whose dashboard user is disabled has left: the rotation passes over her and her accounts
    get a new owner. EMEA's rotation is [Lena, Paul, Ines]. Acme's first contact takes position 0 (Lena,
    who becomes Acme's owner). Lena's user is then disabled: Acme's second contact goes round the rotation
    to the seller after Lena, Paul (the new owner), its third to Paul as the owner, and Bob (no account)
    takes the turn after Paul's: Ines. (Counting turns over [Paul, Ines] gave Ines then Paul: Paul lost
    the turn after Lena's.)"""
    from leadscore.store.users import add_user, disable_user

    acme = [
        {"type": "group", "userId": "acct1", "groupId": "acme", "messageId": "g-acme",
         "traits": {"name": "Acme", "domain": "acme.example"}},
    ]  # fmt: skip
    send(lc_store, [person("acct1", domain="acme.example"), *acme, *points("acct1", 61)])
    round_(lc_store, T0 + DAY)
    with lc_store.begin() as conn:
        lena = add_user(conn, "Lena@Vendor.example", "Lena Vogt", "sales", "x", T0)
        disable_user(conn, lena.id, T0 + DAY)
    for i, user in enumerate(("acct2", "acct3"), start=2):
        send(lc_store, [person(user, domain="acme.example"), *points(user, 61, at=T0 + i * DAY)])
        round_(lc_store, T0 + i * DAY)
    send(lc_store, [person("bob"), *points("bob", 61, at=T0 + 4 * DAY)])
    round_(lc_store, T0 + 4 * DAY)
    with lc_store.connect() as conn:
        rows = {a["lead_id"]: (a["seller"], a["reason"]) for a in list_assignments(conn)}
    assert rows[lead(lc_store, "acct1")] == ("lena", "default")
    assert rows[lead(lc_store, "acct2")] == ("paul", "default")
    assert rows[lead(lc_store, "acct3")] == ("paul", "account_owner")
    assert rows[lead(lc_store, "bob")] == ("ines", "default")


def test_the_rotation_goes_on_after_the_last_seller_served(lc_store: Store) -> None:
    """Each turn goes to the seller after the last one served, in the team's order, passing over those
    who left. EMEA's rotation is [Lena, Paul, Ines], leads without an account (no owner): a1 Lena, a2
    Paul; Paul leaves (his user disabled): a3 Ines (after Paul), a4 Lena, a5 Ines (Paul passed over);
    Paul comes back (his user enabled): a6 Lena (after Ines), a7 Paul. Counting turns over the shrunken
    list gave a3 Lena (position 2 of [Lena, Ines]): Ines lost her turn, Lena had two in three."""
    from leadscore.store.users import add_user, disable_user, enable_user

    with lc_store.begin() as conn:
        paul = add_user(conn, "paul@vendor.example", "Paul Martin", "sales", "x", T0)
    users = [f"a{i}" for i in range(1, 8)]
    for i, user in enumerate(users, start=1):
        if user == "a3":
            with lc_store.begin() as conn:
                disable_user(conn, paul.id, T0 + i * DAY)
        if user == "a6":
            with lc_store.begin() as conn:
                enable_user(conn, paul.id)
        send(lc_store, [person(user), *points(user, 61, at=T0 + i * DAY)])
        round_(lc_store, T0 + i * DAY)
    with lc_store.connect() as conn:
        rows = {a["lead_id"]: a["seller"] for a in list_assignments(conn)}
    got = [rows[lead(lc_store, user)] for user in users]
    assert got == ["lena", "paul", "ines", "lena", "ines", "lena", "paul"]


def _emea(*sellers: str) -> str:
    """The lifecycle model with EMEA's sellers ``sellers``, in that order (omar is a new one)."""
    lines = {
        "lena": "{id: lena, name: Lena Vogt, email: lena@vendor.example}",
        "paul": "{id: paul, name: Paul Martin, email: paul@vendor.example}",
        "ines": "{id: ines, name: Ines Garcia, email: ines@vendor.example}",
        "omar": "{id: omar, name: Omar Haddad, email: omar@vendor.example}",
    }
    old = "".join(f"        - {lines[s]}\n" for s in ("lena", "paul", "ines"))
    assert old in MODEL
    return MODEL.replace(old, "".join(f"        - {lines[s]}\n" for s in sellers))


def test_the_rotation_goes_on_from_the_last_seller_served_whatever_the_new_order(lc_store: Store) -> None:
    """A version that reorders, adds or removes sellers: the next turn is the seller after the last one
    served in the new order, the first seller when that one was removed. EMEA [lena, paul, ines]: a1 lena,
    a2 paul. [paul, lena, ines]: after paul, a3 lena, a4 ines, a5 paul. [paul, omar, lena] (ines out, omar
    in): after paul, a6 omar, a7 lena, a8 paul. [lena, omar] (paul, the last served, out): the first, a9
    lena, then a10 omar. The cursor as an index gave a3 ines (index 2 of the new list) while lena waited:
    a3 ines, a4 paul, a5 lena, then a6 lena after a5 lena."""
    versions = {3: _emea("paul", "lena", "ines"), 6: _emea("paul", "omar", "lena"), 9: _emea("lena", "omar")}
    users = [f"a{i}" for i in range(1, 11)]
    for i, user in enumerate(users, start=1):
        if i in versions:
            publish(lc_store, loads_model(versions[i]))
        send(lc_store, [person(user), *points(user, 61, at=T0 + i * DAY)])
        round_(lc_store, T0 + i * DAY)
    with lc_store.connect() as conn:
        rows = {a["lead_id"]: a["seller"] for a in list_assignments(conn)}
    got = [rows[lead(lc_store, user)] for user in users]
    assert got == ["lena", "paul", "lena", "ines", "paul", "omar", "lena", "paul", "lena", "omar"]


def test_a_rotation_cursor_of_the_earlier_kind_is_read_as_a_place_in_the_list(lc_store: Store) -> None:
    """A cursor stored before sellers were kept by identity counts places: 4 turns taken of EMEA's
    [lena, paul, ines] → the next is place 4 mod 3 = 1, paul; from then on by identity: ines, lena."""
    from sqlalchemy import insert

    from leadscore.store.schema import team_cursors

    with lc_store.begin() as conn:
        conn.execute(insert(team_cursors).values(team="emea", position=4))
    users = ["b1", "b2", "b3"]
    for i, user in enumerate(users, start=1):
        send(lc_store, [person(user), *points(user, 61, at=T0 + i * DAY)])
        round_(lc_store, T0 + i * DAY)
    with lc_store.connect() as conn:
        rows = {a["lead_id"]: a["seller"] for a in list_assignments(conn)}
    assert [rows[lead(lc_store, user)] for user in users] == ["paul", "ines", "lena"]


def test_a_manager_reassigns_an_open_assignment(lc_store: Store) -> None:
    """Ann (of Acme) becomes an MQL at day 1: Lena's (EMEA rotation position 0), due day 1 + 4 h, and Acme's
    EMEA owner. At day 1 + 1 h Tom gives her to Paul: Paul's SLA runs from then (due day 1 + 5 h), the
    seller mail goes to Paul, Acme's owner is Paul, the audit log names Tom, Lena and Paul. Lena's old
    deadline passing (day 1 + 4.5 h) escalates nothing; Paul's (day 1 + 6 h) escalates once. A seller who
    is not in the model, the seller she already has, and a lead with no open assignment are refused."""
    from leadscore.errors import InputError
    from leadscore.lifecycle.feedback import reassign
    from leadscore.store.audit import read_audit
    from leadscore.store.lifecycle_tables import account_owners_in

    acme = [{"type": "group", "userId": "ann", "groupId": "acme", "messageId": "g-acme",
             "traits": {"name": "Acme", "domain": "acme.example"}}]  # fmt: skip
    send(lc_store, [person("ann", domain="acme.example"), *acme, *points("ann", 70)])
    send(lc_store, [person("bob"), *points("bob", 10)])
    round_(lc_store, T0 + DAY)
    ann = lead(lc_store, "ann")
    done = reassign(
        lc_store, model(), ann, "paul", by="Tom Becker", settings=settings(), now_ms=T0 + DAY + HOUR
    )
    assert (done.previous, done.seller, done.team, done.due_ms) == (
        "lena",
        "paul",
        "emea",
        T0 + DAY + 5 * HOUR,
    )
    with pytest.raises(
        InputError, match="no seller 'nobody' in the model's teams \\(sellers: erik, sara, lena"
    ):
        reassign(lc_store, model(), ann, "nobody", by="Tom", settings=settings(), now_ms=T0 + DAY + HOUR)
    with pytest.raises(InputError, match="already assigned to paul"):
        reassign(lc_store, model(), ann, "paul", by="Tom", settings=settings(), now_ms=T0 + DAY + HOUR)
    with pytest.raises(TransitionError, match="has no open assignment"):
        reassign(lc_store, model(), lead(lc_store, "bob"), "paul", by="Tom", settings=settings(),
                 now_ms=T0 + DAY + HOUR)  # fmt: skip
    round_(lc_store, T0 + DAY + 4 * HOUR + HOUR // 2)  # Lena's deadline has passed: not hers any more
    with lc_store.connect() as conn:
        assert [o for o in read_outbox(conn) if o["action"] == "escalate"] == []
        [row] = list_assignments(conn)
        account = conn.execute(select(leads_table.c.account_id).where(leads_table.c.id == ann)).scalar()
        owners = [(o["team"], o["seller"]) for o in account_owners_in(conn, account, ["emea"])]
        [entry] = [a for a in read_audit(conn) if a["action"] == "lead.reassign"]
        mails = [(o["target"], o["key"]) for o in read_outbox(conn) if o["action"] == "seller_mail"]
    assert (row["seller"], row["team"], row["reason"], row["at_ms"], row["due_ms"]) == (
        "paul", "emea", "reassigned", T0 + DAY + HOUR, T0 + DAY + 5 * HOUR
    )  # fmt: skip
    assert owners == [("emea", "paul")]
    assert (entry["actor"], entry["target"]) == ("Tom Becker", f"lead:{ann}")
    assert (entry["details"]["previous"], entry["details"]["seller"]) == ("lena", "paul")
    assert [target for target, _ in mails] == ["lena@vendor.example", "paul@vendor.example"]
    round_(lc_store, T0 + DAY + 6 * HOUR)  # Paul's deadline has passed
    with lc_store.connect() as conn:
        escalations = [o["target"] for o in read_outbox(conn) if o["action"] == "escalate"]
        [row] = list_assignments(conn)
    assert escalations == ["tom@vendor.example"]
    assert row["escalated_ms"] == T0 + DAY + 6 * HOUR


def test_reassignment_over_the_api_and_the_cli(lc_store: Store) -> None:
    """POST /v1/leads/{lead}/assignment and ``leadscore reassign``: Ann (Lena's since day 1) to Ines,
    then back to Lena; an unknown seller is a 422 naming the field, a lead without an open assignment a
    409."""
    import httpx
    from typer.testing import CliRunner

    from leadscore.api import create_app
    from leadscore.cli.main import app as cli
    from leadscore.settings import Settings
    from leadscore.store.keys import create_key
    from live_server import serving

    send(lc_store, [person("ann"), *points("ann", 70), person("bob"), *points("bob", 10)])
    round_(lc_store, T0 + DAY)
    with lc_store.begin() as conn:
        _, admin = create_key(conn, "admin", "crm", 0)
    bearer = {"Authorization": f"Bearer {admin}"}
    api = create_app(Settings(database_url="unused", run_processor=False), store=lc_store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=10, headers=bearer) as client:
        r = client.post("/v1/leads/ann/assignment", json={"seller": "ines", "by": "Tom"})
        assert r.status_code == 200, r.text
        assert {k: r.json()[k] for k in ("from", "seller", "team")} == {"from": "lena", "seller": "ines",
                                                                        "team": "emea"}  # fmt: skip
        r = client.post("/v1/leads/ann/assignment", json={"seller": "nobody", "by": "Tom"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "seller", r.text
        r = client.post("/v1/leads/bob/assignment", json={"seller": "ines", "by": "Tom"})
        assert r.status_code == 409 and "no open assignment" in r.json()["error"], r.text
    db = lc_store.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["reassign", "ann", "lena", "--by", "Tom", "--db", db])
    assert result.exit_code == 0, result.output
    assert "ann: ines → lena (emea), due" in result.output
    with lc_store.connect() as conn:
        [row] = list_assignments(conn)
    assert (row["seller"], row["reason"]) == ("lena", "reassigned")


def test_an_action_with_quiet_for_runs_once_for_a_lead_bouncing_around_a_line(lc_store: Store) -> None:
    """Ann crosses into hot (70) at day 0, falls to 69 and comes back to 71 at day 1, and again at day 9.
    hot_crossing runs for each of the three crossings; hot_once (``quiet_for: 7d``) at day 1's round and
    again at day 10's (its run at day 1 is then more than 7 days old), not at day 2's."""
    once = MODEL.replace(
        "    - id: seller_mail\n",
        "    - id: hot_once\n"
        "      trigger: {crossing: [band, hot]}\n"
        "      quiet_for: 7d\n"
        "      webhook: {url_env: LEADSCORE_TEST_HOOK_URL}\n"
        "    - id: seller_mail\n",
    )
    publish(lc_store, loads_model(once))
    send(lc_store, [person("ann"), *points("ann", 71)])
    round_(lc_store, T0 + DAY)
    for day in (1, 9):  # each batch on its own: the current score falls to 69 (warm), then back to 71
        send(lc_store, points("ann", -2, at=T0 + day * DAY + HOUR))
        send(lc_store, points("ann", 2, at=T0 + day * DAY + 2 * HOUR))
        round_(lc_store, T0 + (day + 1) * DAY)
    with lc_store.connect() as conn:
        runs = Counter(
            (o["action"], o["created_ms"]) for o in read_outbox(conn) if o["action"].startswith("hot_")
        )
    assert runs == {
        ("hot_crossing", T0 + DAY): 1,
        ("hot_crossing", T0 + 2 * DAY): 1,
        ("hot_crossing", T0 + 10 * DAY): 1,
        ("hot_once", T0 + DAY): 1,
        ("hot_once", T0 + 10 * DAY): 1,
    }


def test_a_rejection_after_an_acceptance_is_no_second_decision_on_the_mql(lc_store: Store) -> None:
    """Ann (MQL) is accepted (→ SQL) and later rejected from SQL (→ recycled); Bob (MQL) is rejected.
    Sales decided on two MQLs: one accepted, one rejected (50 %), the rejection reason Bob's; Ann's later
    turn-down is a disqualification of an SQL, not a second decision on her MQL."""
    from leadscore.lifecycle.reports import acceptance

    send(lc_store, [person("ann"), *points("ann", 70), person("bob"), *points("bob", 70)])
    round_(lc_store, T0 + DAY)
    ann, bob = lead(lc_store, "ann"), lead(lc_store, "bob")
    for who, decision, reason, at in (
        (ann, "accepted", None, T0 + DAY + HOUR),
        (bob, "rejected", "not_icp", T0 + DAY + HOUR),
        (ann, "rejected", "no_budget", T0 + 3 * DAY),
    ):
        give_feedback(lc_store, model(), who, decision, reason=reason, note="", by="lena", at_ms=at,
                      settings=settings(), now_ms=at)  # fmt: skip
    assert stages(lc_store, "ann") == ["lead", "mql", "sql", "recycled"]
    with lc_store.connect() as conn:
        result = acceptance(conn)
    assert (result["accepted"], result["rejected"], result["acceptance_rate"]) == (1, 1, 0.5)
    assert result["reasons"] == [{"reason": "not_icp", "count": 1}]


def test_reassignment_refuses_hostile_values_with_their_field(lc_store: Store) -> None:
    """A NUL in who moves it (PostgreSQL refuses it in any text), a seller id over 63 characters, a seller
    id with a NUL or not in the model: each a 422 naming its field, and Ann stays Lena's."""
    import httpx

    from leadscore.api import create_app
    from leadscore.settings import Settings
    from leadscore.store.keys import create_key
    from live_server import serving

    send(lc_store, [person("ann"), *points("ann", 70)])
    round_(lc_store, T0 + DAY)
    with lc_store.begin() as conn:
        _, admin = create_key(conn, "admin", "crm", 0)
    api = create_app(Settings(database_url="unused", run_processor=False), store=lc_store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=10) as client:
        for body, field in (
            ('{"seller": "paul", "by": "T\\u0000m"}', "by"),
            ('{"seller": "' + "p" * 64 + '", "by": "Tom"}', "seller"),
            ('{"seller": "pa\\u0000ul", "by": "Tom"}', "seller"),
            ('{"seller": "paul\\u00e9", "by": "Tom"}', "seller"),
        ):
            r = client.post("/v1/leads/ann/assignment", content=body,
                            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})  # fmt: skip
            assert r.status_code == 422, (body, r.text)
            assert [e.get("field", e.get("loc", [None])[-1]) for e in r.json()["errors"]][-1] == field, r.text
    with lc_store.connect() as conn:
        [row] = list_assignments(conn)
    assert (row["seller"], row["reason"]) == ("lena", "default")


def test_an_acceptance_into_another_assignment_stage_leaves_the_new_assignment_open(store: Store) -> None:
    """Assignment in both MQL and SQL (an SDR team qualifies, the account executives take the SQLs): the
    acceptance that moves a lead to SQL closes the MQL's assignment and opens the SQL's. Ann (accepted by
    feedback) and Bob (an ``sql`` outcome) enter MQL at day 1 (EMEA: Germany), are accepted at day 2, so
    their SQL assignments are made at day 2, due day 2 + 4 h, and untouched: open in ``GET
    /v1/assignments?open=true``, escalated to Tom (EMEA's manager) by the round at day 2 + 5 h; the MQL
    assignments were handled at day 2 and escalate nothing."""
    two_stages = loads_model(MODEL.replace("    stage: mql\n", "    stages: [mql, sql]\n"))
    publish(store, two_stages)
    send(store, [person("ann"), person("bob"), *points("ann", 70), *points("bob", 70)])
    round_(store, T0 + DAY)
    accepted = T0 + 2 * DAY
    give_feedback(store, two_stages, lead(store, "ann"), "accepted", reason=None, note="", by="lena",
                  at_ms=accepted, settings=settings(), now_ms=accepted)  # fmt: skip
    record_outcome(store, two_stages, lead(store, "bob"), "sql", at_ms=accepted, amount=None, reason=None,
                   source="api", settings=settings(), now_ms=accepted)  # fmt: skip
    assert stages(store, "ann") == stages(store, "bob") == ["lead", "mql", "sql"]
    round_(store, accepted + 5 * HOUR)
    with store.connect() as conn:
        done = {
            (a["lead_id"], a["at_ms"]): (a["due_ms"], a["touched_ms"], a["escalated_ms"])
            for a in list_assignments(conn)
        }
        still_open = {(a["lead_id"], a["at_ms"]) for a in list_assignments(conn, open_only=True)}
        escalations = [o["target"] for o in read_outbox(conn) if o["action"] == "escalate"]
    ann, bob = lead(store, "ann"), lead(store, "bob")
    in_sql = (accepted + 4 * HOUR, None, accepted + 5 * HOUR)
    assert done == {
        (ann, T0 + DAY): (T0 + DAY + 4 * HOUR, accepted, None),
        (bob, T0 + DAY): (T0 + DAY + 4 * HOUR, accepted, None),
        (ann, accepted): in_sql,
        (bob, accepted): in_sql,
    }
    assert still_open == {(ann, accepted), (bob, accepted)}
    assert escalations == ["tom@vendor.example"] * 2


def test_open_assignments_over_the_api_are_the_ones_a_seller_still_has_to_work(lc_store: Store) -> None:
    """``GET /v1/assignments?open=true`` lists what the desk, the escalation and a reassignment call open:
    no feedback yet and the lead still in the stay it was assigned in. Ann and Bob enter MQL at day 1
    (70 points each, EMEA); Ann cools at day 1 + 1 h (70 − 20 = 50 < 60 − 5) without feedback: her
    assignment is nobody's to work (a reassignment is refused, her SLA escalates nothing), so only Bob's
    is open; both are in the full list."""
    import httpx

    from leadscore.api import create_app
    from leadscore.settings import Settings
    from leadscore.store.keys import create_key
    from live_server import serving

    send(lc_store, [person("ann"), person("bob"), *points("ann", 70), *points("bob", 70)])
    round_(lc_store, T0 + DAY)
    send(lc_store, points("ann", -20, at=T0 + DAY + HOUR))
    round_(lc_store, T0 + DAY + HOUR)
    assert stages(lc_store, "ann") == ["lead", "mql", "lead"]
    with lc_store.begin() as conn:
        _, reader = create_key(conn, "read", "crm", 0)
        _, admin = create_key(conn, "admin", "crm", 0)
    api = create_app(Settings(database_url="unused", run_processor=False), store=lc_store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=10) as client:
        read = {"Authorization": f"Bearer {reader}"}
        opened = client.get("/v1/assignments", params={"open": "true"}, headers=read)
        every = client.get("/v1/assignments", headers=read)
        moved = client.post("/v1/leads/ann/assignment", json={"seller": "ines", "by": "Tom"},
                            headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    assert opened.status_code == every.status_code == 200, opened.text
    ann, bob = lead(lc_store, "ann"), lead(lc_store, "bob")
    assert [a["lead_id"] for a in opened.json()["assignments"]] == [bob]
    assert sorted(a["lead_id"] for a in every.json()["assignments"]) == sorted([ann, bob])
    assert moved.status_code == 409 and "no open assignment" in moved.json()["error"], moved.text


def test_an_sql_outcome_for_a_lead_already_in_sql_leaves_its_sql_assignment_open(store: Store) -> None:
    """Assignment in MQL and SQL: Ann is accepted on the desk at day 2 (MQL → SQL: an SQL assignment at
    day 2, due day 2 + 4 h). The CRM then reports the SQL at its own time, day 2 + 1 h: a new outcome that
    moves nothing (SQL has no transition on it), so it decides nothing about the SQL assignment: still
    open at day 2 + 5 h (lead page: due day 2 + 4 h, not handled) and escalated to Tom by that round."""
    two_stages = loads_model(MODEL.replace("    stage: mql\n", "    stages: [mql, sql]\n"))
    publish(store, two_stages)
    send(store, [person("ann"), *points("ann", 70)])
    round_(store, T0 + DAY)
    accepted = T0 + 2 * DAY
    give_feedback(store, two_stages, lead(store, "ann"), "accepted", reason=None, note="", by="lena",
                  at_ms=accepted, settings=settings(), now_ms=accepted)  # fmt: skip
    stored, move = record_outcome(store, two_stages, lead(store, "ann"), "sql", at_ms=accepted + HOUR,
                                  amount=None, reason=None, source="crm", settings=settings(),
                                  now_ms=accepted + HOUR)  # fmt: skip
    assert stored and move is not None and move.to_stage is None
    round_(store, accepted + 5 * HOUR)
    with store.connect() as conn:
        sql_assignment = [a for a in list_assignments(conn) if a["at_ms"] == accepted]
        page = stage_view(conn, two_stages.lifecycle, lead(store, "ann"))  # type: ignore[arg-type]
    assert [(a["due_ms"], a["touched_ms"], a["escalated_ms"]) for a in sql_assignment] == [
        (accepted + 4 * HOUR, None, accepted + 5 * HOUR)
    ]
    assert (page.stage, page.due_ms, page.touched_ms) == ("sql", accepted + 4 * HOUR, None)


def _two_sellers_then_one_person(lc_store: Store) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Ann enters MQL at day 1, Amy at day 1 + 30 min (EMEA's rotation: two sellers); an alias at day 1 +
    1 h makes them one person, Ann's lead kept. Ann's lead, her own assignment, Amy's."""
    from leadscore.store.lifecycle_tables import current_assignment

    send(lc_store, [person("ann"), person("amy"), *points("ann", 70)])
    round_(lc_store, T0 + DAY)
    send(lc_store, points("amy", 70, at=T0 + DAY + HOUR // 2))
    round_(lc_store, T0 + DAY + HOUR // 2)
    ann = lead(lc_store, "ann")
    with lc_store.connect() as conn:
        own, other = (current_assignment(conn, lead(lc_store, u)) for u in ("ann", "amy"))
    assert own is not None and other is not None and own["seller"] != other["seller"]
    alias = {"type": "alias", "previousId": "ann", "userId": "amy", "messageId": "alias-amy",
             "timestamp": T0 + DAY + HOUR}  # fmt: skip
    send(lc_store, [alias])
    assert lead(lc_store, "amy") == ann
    return ann, own, other


def test_after_a_merge_the_desk_the_lead_page_and_the_escalation_name_the_same_seller(
    lc_store: Store,
) -> None:
    """Ann enters MQL at day 1, Amy at day 1 + 30 min (EMEA's rotation: two different sellers, due 4 h
    later); an alias at day 1 + 1 h makes them one person, Ann's lead kept (her stage stands), Amy's
    assignment moved to it, made later. The assignment a seller still works is Ann's own (the escalation at day 1 + 5 h
    takes it): the desk row, the lead page and who may act name Ann's seller, not Amy's."""
    from leadscore.lifecycle.reports import ready_for_handoff
    from leadscore.web.data.desk import may_act_on

    ann, own, other = _two_sellers_then_one_person(lc_store)
    round_(lc_store, T0 + DAY + 5 * HOUR)
    lifecycle = model().lifecycle
    assert lifecycle is not None
    sellers = {s.id: s for t in lifecycle.teams for s in t.sellers}
    with lc_store.connect() as conn:
        escalated = [a["seller"] for a in list_assignments(conn) if a["escalated_ms"] is not None]
        [row] = [r for r in ready_for_handoff(conn, lifecycle) if r["lead_id"] == ann]
        page = stage_view(conn, lifecycle, ann)
        acts = {s: may_act_on(conn, lifecycle, ann, sellers[s].email, "rep")
                for s in (own["seller"], other["seller"])}  # fmt: skip
    assert escalated == [own["seller"]]
    assert (row["seller"], row["due_ms"]) == (own["seller"], T0 + DAY + 4 * HOUR)
    assert (page.owner, page.due_ms) == (f"{sellers[own['seller']].name} (EMEA)", T0 + DAY + 4 * HOUR)
    assert acts == {own["seller"]: True, other["seller"]: False}


def test_a_merge_of_two_leads_assigned_in_the_same_millisecond_escalates_once(
    lc_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann and Amy both enter MQL in the round at day 1 (the same millisecond: two assignments, Lena's
    and Paul's by EMEA's rotation, both due day 1 + 4 h); an alias at day 1 + 1 h makes them one person.
    The merged lead has one stay in MQL, so one seller still works it: the round at day 1 + 5 h escalates
    one assignment, and the manager gets one mail (delivered through a real SMTP server), not two."""
    with smtp_server() as (mailbox, port):
        monkeypatch.setenv(HOOK_ENV, "http://127.0.0.1:9/unused")
        cfg = settings(smtp_port=port)
        send(lc_store, [person("ann"), person("amy"), *points("ann", 70), *points("amy", 70)])
        run_round(lc_store, cfg, now_ms=T0 + DAY, deliver=False)
        with lc_store.connect() as conn:
            made = [(a["seller"], a["at_ms"], a["due_ms"]) for a in list_assignments(conn)]
        assert sorted(made) == [
            ("lena", T0 + DAY, T0 + DAY + 4 * HOUR),
            ("paul", T0 + DAY, T0 + DAY + 4 * HOUR),
        ]
        alias = {"type": "alias", "previousId": "ann", "userId": "amy", "messageId": "alias-amy-same-ms",
                 "timestamp": T0 + DAY + HOUR}  # fmt: skip
        send(lc_store, [alias])
        merged = lead(lc_store, "ann")
        assert lead(lc_store, "amy") == merged
        stats = run_round(lc_store, cfg, now_ms=T0 + DAY + 5 * HOUR, deliver=False)
        from leadscore.lifecycle.outbox import deliver_due
        from leadscore.store.lifecycle_tables import current_assignment

        deliver_due(lc_store, cfg, model().lifecycle, T0 + DAY + 5 * HOUR)
        with lc_store.connect() as conn:
            escalated = [a for a in list_assignments(conn) if a["escalated_ms"] is not None]
            held = current_assignment(conn, merged)
        assert stats.escalated == 1
        assert len(escalated) == 1
        assert held is not None and held["id"] == escalated[0]["id"]  # the desk's seller is the escalated one
        assert [m["Subject"] for m in mailbox.to("tom@vendor.example")] == ["Untouched: Ann"]


def test_a_lead_is_not_reassigned_to_a_seller_who_left(lc_store: Store) -> None:
    """Ines's dashboard user is disabled (she left: the rotation gives her no new leads). Tom giving Ann
    (Lena's, day 1) to Ines is refused, naming the seller field, and Ann stays Lena's; giving her to Paul
    works."""
    from leadscore.errors import InputError
    from leadscore.lifecycle.feedback import reassign
    from leadscore.store.users import add_user, disable_user

    send(lc_store, [person("ann"), *points("ann", 70)])
    round_(lc_store, T0 + DAY)
    with lc_store.begin() as conn:
        ines = add_user(conn, "Ines@Vendor.example", "Ines Garcia", "sales", "x", T0)
        disable_user(conn, ines.id, T0 + DAY)
    ann = lead(lc_store, "ann")
    with pytest.raises(InputError, match="ines has left") as refused:
        reassign(lc_store, model(), ann, "ines", by="Tom", settings=settings(), now_ms=T0 + DAY + HOUR)
    assert refused.value.problem.field == "seller"
    with lc_store.connect() as conn:
        assert [(a["seller"], a["reason"]) for a in list_assignments(conn)] == [("lena", "default")]
    done = reassign(lc_store, model(), ann, "paul", by="Tom", settings=settings(), now_ms=T0 + DAY + HOUR)
    assert (done.previous, done.seller) == ("lena", "paul")


@pytest.mark.parametrize(
    "subject",
    [
        "New lead: {{ 1 // lead.no_such_field }}",  # an author's slip: undefined, used in arithmetic
        "New lead: {{ 1 // (lead.score - lead.score) }}",  # ZeroDivisionError
        "New lead: {{ 'x' * 10 ** 12 }}",  # a terabyte of text
    ],
)
def test_a_template_that_fails_to_render_fails_its_own_row_only(store: Store, subject: str) -> None:
    """A mail or webhook template is only parsed when the model is published; one that fails when
    rendered for a lead (an undefined field in arithmetic, a division by zero, a repetition no memory
    holds) raised out of the lifecycle round: no lead was assigned nor told, round after round. Now the
    action's row is failed with the reason and the rest goes on: anna is assigned, her seller notified."""
    bad = MODEL.replace('subject: "New lead: {{ lead.name }}"', f'subject: "{subject}"')
    assert bad != MODEL
    publish(store, loads_model(bad))
    send(store, [person("anna", company="Acme GmbH"), *points("anna", 70), *points("anna", -3)])
    run_round(store, settings(), now_ms=T0 + 2 * HOUR, timers=False, deliver=False)
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id="anna")
        assert [a["lead_id"] for a in list_assignments(conn)] == [lead_id]
        rows = {r["action"]: r for r in read_outbox(conn, lead_id)}
    assert rows["seller_mail"]["status"] == "failed"
    assert rows["seller_mail"]["last_error"].startswith("the subject template failed: ")
    assert rows["manager_alert"]["status"] == "pending"  # the MQL's other action


def test_after_a_merge_the_leads_list_names_the_owner_the_desk_names(lc_store: Store) -> None:
    """As above (Ann's own MQL assignment, due day 1 + 4 h, is the one a seller works; Amy's, merged into
    Ann's lead and made later, is not): the leads list's owner column, its owner filter and its CSV export
    name Ann's seller, as the desk and the lead page do, not the seller of the newest assignment row."""
    from leadscore.lifecycle.lead_filter import LeadFilter
    from leadscore.store.lifecycle_tables import current_assignment
    from leadscore.web.data import leadlist

    ann, own, other = _two_sellers_then_one_person(lc_store)
    with lc_store.connect() as conn:
        assert current_assignment(conn, ann)["seller"] == own["seller"]  # type: ignore[index]
        listed = {
            r["lead_id"]: r["owner"] for r in leadlist.list_page(conn, LeadFilter(), "score", "desc", 1).rows
        }
        exported = {r["lead_id"]: r["owner"] for r in leadlist.export_rows(conn, LeadFilter(), "name", "asc")}
        owned = {s: [r["lead_id"] for r in leadlist.list_page(conn, LeadFilter(owner=s), "score", "desc", 1).rows]
                 for s in (own["seller"], other["seller"])}  # fmt: skip
    assert (listed[ann], exported[ann]) == (own["seller"], own["seller"])
    assert owned == {own["seller"]: [ann], other["seller"]: []}


def test_every_reading_of_a_leads_owner_names_the_desks_seller(lc_store: Store) -> None:
    """Four kinds of lead, one owner each, whichever page reads it: Ann's merged lead (her own MQL
    assignment, still open, before Amy's, made later and moved onto it: Ann's seller, not the newest
    row's), Bob reassigned to Erik of the Nordics while open (Erik), Cid accepted (his only assignment handled, so none
    open: its seller), Dan never assigned (no owner). The leads list's column, its owner filter for every
    seller of the model, the CSV export, ``GET /v1/leads?owner=``, and the desk (the hand-off queue and
    the lead's assignment) agree on these owners; the owner filter reads them as a semi-join on the
    seller's assignments, the column and the desk as a probe per lead."""
    import httpx

    from leadscore.api import create_app
    from leadscore.lifecycle.feedback import reassign
    from leadscore.lifecycle.lead_filter import LeadFilter
    from leadscore.lifecycle.reports import ready_for_handoff
    from leadscore.settings import Settings
    from leadscore.store.keys import create_key
    from leadscore.store.lifecycle_tables import current_assignment
    from leadscore.web.data import leadlist
    from live_server import serving

    ann, own, other = _two_sellers_then_one_person(lc_store)
    send(lc_store, [person("bob"), person("cid"), person("dan"), *points("bob", 70), *points("cid", 70)])
    round_(lc_store, T0 + DAY + 2 * HOUR)
    bob, cid, dan = (lead(lc_store, u) for u in ("bob", "cid", "dan"))
    reassign(lc_store, model(), bob, "erik", by="Tom", settings=settings(), now_ms=T0 + DAY + 3 * HOUR)
    give_feedback(lc_store, model(), cid, "accepted", reason=None, note="", by="Tom", at_ms=T0 + DAY + 3 * HOUR,
                  settings=settings(), now_ms=T0 + DAY + 3 * HOUR)  # fmt: skip
    with lc_store.begin() as conn:
        _, reader = create_key(conn, "read", "crm", 0)
        made = list_assignments(conn)
    [cids] = [a["seller"] for a in made if a["lead_id"] == cid]  # his only assignment, handled
    assert [a["touched_ms"] for a in made if a["lead_id"] == cid] == [T0 + DAY + 3 * HOUR]
    assert sorted(a["seller"] for a in made if a["lead_id"] == ann) == sorted(
        [own["seller"], other["seller"]]
    )
    expected = {ann: own["seller"], bob: "erik", cid: cids, dan: None}
    sellers = ("lena", "paul", "ines", "erik", "sara")
    owned = {s: sorted(lid for lid, o in expected.items() if o == s) for s in sellers}

    with lc_store.connect() as conn:
        listed = {
            r["lead_id"]: r["owner"] for r in leadlist.list_page(conn, LeadFilter(), "name", "asc", 1).rows
        }
        exported = {
            r["lead_id"]: r["owner"] for r in leadlist.export_rows(conn, LeadFilter(), "score", "desc")
        }
        filtered = {
            s: sorted(
                r["lead_id"] for r in leadlist.list_page(conn, LeadFilter(owner=s), "score", "desc", 1).rows
            )
            for s in sellers
        }
        filtered_export = {
            s: sorted(r["lead_id"] for r in leadlist.export_rows(conn, LeadFilter(owner=s), "name", "asc"))
            for s in sellers
        }
        counted = {s: leadlist.count(conn, LeadFilter(owner=s)) for s in sellers}
        desk = {r["lead_id"]: r["seller"] for r in ready_for_handoff(conn, model().lifecycle)}  # type: ignore[arg-type]
        held = {lid: (current_assignment(conn, lid) or {}).get("seller") for lid in expected}
    api = create_app(Settings(database_url="unused", run_processor=False), store=lc_store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=10) as client:
        auth = {"Authorization": f"Bearer {reader}"}
        replies = {s: client.get("/v1/leads", params={"owner": s}, headers=auth) for s in sellers}
    assert all(r.status_code == 200 for r in replies.values()), [r.text for r in replies.values()]
    by_api = {s: sorted(row["lead_id"] for row in r.json()["leads"]) for s, r in replies.items()}

    assert {lid: listed[lid] for lid in expected} == expected
    assert {lid: exported[lid] for lid in expected} == expected
    assert held == expected
    assert desk == {ann: own["seller"], bob: "erik"}  # in MQL; Cid went on to SQL, Dan never came
    assert filtered == filtered_export == by_api == owned
    assert counted == {s: len(ids) for s, ids in owned.items()}
    assert owned["erik"] == [bob] and ann in owned[own["seller"]] and ann not in owned[other["seller"]]

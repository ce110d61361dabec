"""Assignment in several stages, one per team's score (docs/lifecycle.md "Assignment and the SLA",
docs/named-scores.md): each team's MQL stage routes to its own team, with its own SLA and its own
notification, and each score's hand-off queue shows its own stage.

Two models score the same events (scale: fit and engagement weighted ½ each, 100 raw points = 100; grades
A ≥ 75, B ≥ 50):

- ``core`` (the primary; fit: marketing role 60; engagement: demo 40, webinar 10);
- ``analytics`` (fit: analyst role 80; engagement: report 80, demo 20).

=====  ==================  ===============  ==========================  ===========================
lead   job title           events           core: fit, eng → score      analytics: fit, eng → score
=====  ==================  ===============  ==========================  ===========================
carl   Marketing Manager   demo, webinar    60 B, 50 → 55               0 D, 20 → 10
dana   Data Analyst        report           0 D, 0 → 0                  80 A, 80 → 80
=====  ==================  ===============  ==========================  ===========================

Gates: lead → mql_core when core ≥ 55 and core's fit grade ≥ B (carl: 55, B; dana: 0), lead →
mql_analytics when analytics ≥ 60 and analytics' fit grade ≥ B (dana: 80, A; carl: 10, D). So carl is an
MQL for the core team only, dana for the analytics team only.

Assignment in both stages: the territory limited to ``mql_analytics`` sends dana to the analytics team
(its one seller Ada), carl falls to the default team core (Sam). SLA: 4 h, 1 d in ``mql_analytics``: carl
due at now + 4 h, dana at now + 24 h. Notifications: ``core_mail`` (assigned in mql_core) mails Sam once,
about Carl; ``analytics_hook`` (assigned in mql_analytics) posts once, about Dana. ``analytics_late``
(an SLA breach in mql_analytics): not at now + 5 h (carl's 4 h SLA is past, but carl is core's), once at
now + 25 h (dana's day is past).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.errors import ModelValidationError
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.reports import count_ready, ready_for_handoff
from leadscore.lifecycle.runner import run_round
from leadscore.lifecycle.score_stages import view_of
from leadscore.model import dump_model, load_model, loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import list_assignments, read_stage_history
from leadscore.store.notifications import NotificationSettings, save_settings
from leadscore.store.outbox import read_outbox
from leadscore.store.people import find_lead
from leadscore.store.schema import account_owners
from leadscore.store.users import add_user
from lifecycle_model import HOOK_ENV, settings
from live_server import serving
from receivers import smtp_server, wait_for, webhook_receiver
from two_teams import messages as team_messages
from web_support import PASSWORD, signed_in

T0 = parse_time("2024-05-01T00:00:00Z", "t0")
HOUR = 3_600_000
MANAGER = "manager@example.test"

CORE = """model: core
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
engagement:
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 40}
  - {id: webinar, name: Joined a webinar, kind: once, event: {type: track, name: Webinar Joined}, points: 10}
lifecycle:
  initial: lead
  stages:
    - {id: lead, name: Lead}
    - {id: mql_core, name: MQL core}
    - {id: mql_analytics, name: MQL analytics}
  transitions:
    - {id: core_mql, from: [lead], to: mql_core, when: {score: core, score_at_least: 55, grade_at_least: B}}
    - id: analytics_mql
      from: [lead]
      to: mql_analytics
      when: {score: analytics, score_at_least: 60, grade_at_least: B}
  teams:
    - {id: core, name: Core sales, sellers: [{id: sam, name: Sam Seller, email: sam@example.test}]}
    - {id: analytics, name: Analytics sales, sellers: [{id: ada, name: Ada Analyst, email: ada@example.test}]}
  assignment:
    stages: [mql_core, mql_analytics]
    default_team: core
    territories:
      - {team: analytics, stages: [mql_analytics]}
    sticky_accounts: false
    sla: 4h
    sla_by_stage: {mql_analytics: 1d}
  actions:
    - id: core_mail
      trigger: {assigned: true, stage: mql_core}
      mail: {to: seller, subject: "Core MQL {{ lead.first_name }}", body: "For {{ seller.name }}"}
    - id: analytics_hook
      trigger: {assigned: true, stage: mql_analytics}
      webhook: {url_env: LEADSCORE_TEST_HOOK_URL}
    - id: analytics_late
      trigger: {sla_breach: true, stage: mql_analytics}
      webhook: {url_env: LEADSCORE_TEST_HOOK_URL}
"""

ANALYTICS = """model: analytics
fit:
  - {id: analyst, name: Analyst role, when: {attribute: job_title, contains: analyst}, points: 80}
engagement:
  - {id: report, name: Built a report, kind: once, event: {type: track, name: Report Built}, points: 80}
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 20}
"""

PEOPLE = {
    "carl": ("Marketing Manager", ["Demo Requested", "Webinar Joined"]),
    "dana": ("Data Analyst", ["Report Built"]),
}


def messages() -> list[Any]:
    return team_messages(PEOPLE)


def test_each_team_assigns_and_notifies_its_own_mqls(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    core = loads_model(CORE)
    publish(store, core, score_name="core", as_of=T0)
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0)
    now = T0 + 3 * HOUR
    ingest(store, messages(), source="test", as_of=now)
    with webhook_receiver() as receiver, smtp_server() as (mailbox, port):
        monkeypatch.setenv(HOOK_ENV, receiver.url)
        cfg = settings(smtp_port=port)
        run_round(store, cfg, now_ms=now)
        run_round(store, cfg, now_ms=now + 1000)  # a second round assigns and notifies nothing again
        with store.connect() as conn:
            ids = {user: find_lead(conn, external_id=user) for user in PEOPLE}
            path = {u: [h["to_stage"] for h in read_stage_history(conn, int(i or 0))] for u, i in ids.items()}
            assigned = {a["lead_id"]: a for a in list_assignments(conn)}
            outbox = read_outbox(conn)
            assert lifecycle_ready(conn, core, None) == ["carl", "dana"]
            assert lifecycle_ready(conn, core, "core") == ["carl"]
            assert lifecycle_ready(conn, core, "analytics") == ["dana"]
            assert core.lifecycle is not None
            assert count_ready(conn, core.lifecycle, view_of(conn, core.lifecycle, "analytics")) == 1
            assert count_ready(conn, core.lifecycle, view_of(conn, core.lifecycle, "core")) == 1
        assert path == {"carl": ["lead", "mql_core"], "dana": ["lead", "mql_analytics"]}
        carl, dana = assigned[ids["carl"]], assigned[ids["dana"]]
        assert (carl["team"], carl["seller"], carl["due_ms"]) == ("core", "sam", now + 4 * HOUR)
        assert (dana["team"], dana["seller"], dana["due_ms"]) == ("analytics", "ada", now + 24 * HOUR)
        assert len(assigned) == 2
        assert sorted(o["action"] for o in outbox) == ["analytics_hook", "core_mail"]
        assert all(o["status"] == "sent" for o in outbox), [(o["key"], o["last_error"]) for o in outbox]
        mails = wait_for(lambda: mailbox.to("sam@example.test"))
        assert [m["Subject"] for m in mails] == ["Core MQL Carl"]
        assert mailbox.to("ada@example.test") == []
        posted = list(receiver.hooks.processed.values())
        assert len(posted) == 1 and receiver.hooks.bad_signatures == 0
        body = posted[0]["body"]
        assert body["lead"]["id"] == ids["dana"]
        assert (body["assignment"]["team"], body["assignment"]["seller"]) == ("analytics", "ada")
    # the hand-off page: the score picked selects its own assignment stage and its own seller
    with store.begin() as conn:
        add_user(conn, MANAGER, "Mia Manager", "admin", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        pages = {score: client.get(f"/handoff?score={score}").text for score in ("core", "analytics")}
    assert "Leads in stage <strong>MQL analytics</strong>" in pages["analytics"]
    assert "Dana" in pages["analytics"] and "Ada Analyst" in pages["analytics"]
    assert "Carl" not in pages["analytics"] and "Sam Seller" not in pages["analytics"]
    assert "Leads in stage <strong>MQL core</strong>" in pages["core"]
    assert "Carl" in pages["core"] and "Sam Seller" in pages["core"]
    assert "Dana" not in pages["core"] and "Ada Analyst" not in pages["core"]
    # a seller's desk with no score picked opens on their team's queue: Ada works analytics' MQLs (her
    # team is routed leads in mql_analytics only), Sam core's; the manager, in no team, the primary's
    with store.begin() as conn:
        for email, name in (("ada@example.test", "Ada Analyst"), ("sam@example.test", "Sam Seller")):
            add_user(conn, email, name, "sales", hash_password(PASSWORD), 0)
    desks: dict[str, str] = {}
    with serving(app) as url:
        for email in ("ada@example.test", "sam@example.test", MANAGER):
            with signed_in(url, email) as client:
                desks[email] = client.get("/handoff").text
    assert "Leads in stage <strong>MQL analytics</strong>" in desks["ada@example.test"]
    assert "Dana" in desks["ada@example.test"] and "Carl" not in desks["ada@example.test"]
    assert '<option value="analytics" selected' in desks["ada@example.test"]
    assert "Leads in stage <strong>MQL core</strong>" in desks["sam@example.test"]
    assert "Carl" in desks["sam@example.test"] and "Dana" not in desks["sam@example.test"]
    assert "Leads in stage <strong>MQL core</strong>" in desks[MANAGER]


def test_an_sla_breach_action_limited_to_a_stage(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(store, loads_model(CORE), score_name="core", as_of=T0)
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0)
    now = T0 + 3 * HOUR
    ingest(store, messages(), source="test", as_of=now)
    monkeypatch.setenv(HOOK_ENV, "http://127.0.0.1:9/unused")
    late: dict[int, list[int]] = {}
    for at in (now, now + 5 * HOUR, now + 25 * HOUR, now + 26 * HOUR):
        run_round(store, settings(), now_ms=at, deliver=False)
        with store.connect() as conn:
            late[at] = [o["lead_id"] for o in read_outbox(conn) if o["action"] == "analytics_late"]
            dana = find_lead(conn, external_id="dana")
            escalated = {a["seller"]: a["escalated_ms"] for a in list_assignments(conn)}
    assert late[now] == [] and late[now + 5 * HOUR] == []
    assert late[now + 25 * HOUR] == [dana] and late[now + 26 * HOUR] == [dana]
    # both breached, each once: carl (sam) at the round of now + 5 h, dana (ada) at now + 25 h
    assert escalated == {"sam": now + 5 * HOUR, "ada": now + 25 * HOUR}


def lifecycle_ready(conn: object, model: object, score: str | None) -> list[str]:
    """The first names in the hand-off queue of ``score`` (every assignment stage without one)."""
    lifecycle = model.lifecycle  # type: ignore[attr-defined]
    view = None if score is None else view_of(conn, lifecycle, score)  # type: ignore[arg-type]
    rows = ready_for_handoff(conn, lifecycle, view)  # type: ignore[arg-type]
    return sorted(str(r["first_name"]).lower() for r in rows)


def problems(text: str) -> list[str]:
    with pytest.raises(ModelValidationError) as info:
        load_model("model.yaml", text=text)
    return [str(p) for p in info.value.problems]


def test_stage_alone_still_reads_and_round_trips() -> None:
    text = CORE.replace("stages: [mql_core, mql_analytics]", "stage: mql_core")
    text = text.replace("stages: [mql_analytics]}", "when: {attribute: country, equals: se}}")
    text = text.replace("sla_by_stage: {mql_analytics: 1d}", "sla_by_stage: {}")
    text = text.replace(", stage: mql_analytics}", "}")
    text = text.replace(", stage: mql_core}", "}")
    model = loads_model(text)
    assert model.lifecycle is not None and model.lifecycle.assignment is not None
    assert model.lifecycle.assignment.stage_ids == ("mql_core",)
    assert loads_model(dump_model(model)) == model
    both = loads_model(CORE)
    assert loads_model(dump_model(both)) == both


def test_unknown_stages_and_teams_are_positioned() -> None:
    text = CORE.replace("stages: [mql_core, mql_analytics]", "stages: [mql_core, mql_analytcs]")
    text = text.replace("{team: analytics, stages: [mql_analytics]}", "{team: analytic, stages: [lead]}")
    text = text.replace("stage: mql_core}", "stage: mql_cor}")
    assert problems(text) == [
        "model.yaml:23:24 field lifecycle.assignment.stages.1: unknown stage 'mql_analytcs' "
        "(stages: lead, mql_analytics, mql_core)",
        "model.yaml:26:16 field lifecycle.assignment.territories.0.team: unknown team 'analytic' "
        "(teams: analytics, core)",
        "model.yaml:26:35 field lifecycle.assignment.territories.0.stages.0: unknown assignment stage 'lead' "
        "(assignment stages: mql_analytcs, mql_core)",
        "model.yaml:29:35 field lifecycle.assignment.sla_by_stage.mql_analytics.[key]: unknown assignment "
        "stage 'mql_analytics' (assignment stages: mql_analytcs, mql_core)",
        "model.yaml:32:40 field lifecycle.actions.0.trigger.stage: unknown stage 'mql_cor' "
        "(stages: lead, mql_analytics, mql_core)",
        "model.yaml:35:40 field lifecycle.actions.1.trigger.stage: unknown assignment stage 'mql_analytics' "
        "(assignment stages: mql_analytcs, mql_core)",
        "model.yaml:38:42 field lifecycle.actions.2.trigger.stage: unknown assignment stage 'mql_analytics' "
        "(assignment stages: mql_analytcs, mql_core)",
    ]
    empty = CORE.replace("stages: [mql_analytics]}", "stages: []}")
    assert any("names one assignment stage or more" in p for p in problems(empty))
    both = CORE.replace(
        "    stages: [mql_core, mql_analytics]", "    stage: mql_core\n    stages: [mql_core, mql_analytics]"
    )
    assert any("exactly one of 'stage' or 'stages'" in p for p in problems(both))
    crossing = CORE.replace("{assigned: true, stage: mql_core}", "{crossing: [band, hot], stage: mql_core}")
    assert any("names a stage only with assigned or sla_breach" in p for p in problems(crossing))


STICKY_PEOPLE = {
    "carl": ("Marketing Manager", ["Demo Requested", "Webinar Joined"]),  # core 55 B: mql_core
    "dana": ("Data Analyst", ["Report Built"]),  # analytics 80 A: mql_analytics
    "eve": ("Marketing Director", ["Demo Requested", "Webinar Joined"]),  # core 55 B
    "fay": ("Data Analyst", ["Report Built"]),  # analytics 80 A
    "gus": ("Marketing Lead", ["Demo Requested", "Webinar Joined"]),  # core 55 B, another account
}
ACCOUNT_OF = {"carl": "acme.example", "dana": "acme.example", "eve": "acme.example", "fay": "acme.example"}


def sticky_messages(users: list[str]) -> list[Any]:
    """``users``' identify and track messages (two_teams.messages), and a group message putting each in
    its account (ACME, or Other for gus)."""
    out = team_messages({u: STICKY_PEOPLE[u] for u in users})
    for user in users:
        domain = ACCOUNT_OF.get(user, "other.example")
        raw = {"userId": user, "messageId": f"{user}-g", "timestamp": T0, "type": "group",
               "groupId": domain, "traits": {"name": domain.split(".")[0].upper(), "domain": domain}}  # fmt: skip
        out.append(normalise(raw, received_ms=T0))
    return out


def test_sticky_account_owners_are_per_team(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sticky_accounts`` with two sellers a team (core: sam then sue; analytics: ada then abe in rotation).

    Round 1: carl (ACME) enters mql_core, which routes to core alone (the analytics territory applies to
    mql_analytics only): no core owner of ACME, so the rotation's first, sam, who becomes core's owner of
    ACME. dana (ACME) enters mql_analytics, which routes to analytics alone (its territory matches every
    lead): core's owner sam is not analytics', so the rotation's first, ada, analytics' owner of ACME (one
    owner per account, as before, would have given dana to sam).
    Round 2: eve (ACME, mql_core) stays with core's owner sam, fay (ACME, mql_analytics) with analytics'
    owner ada (the rotation would have given them sue and abe), and gus (another account, mql_core) gets
    core's next in rotation, sue.
    """
    text = CORE.replace("sticky_accounts: false", "sticky_accounts: true")
    text = text.replace(
        "sellers: [{id: sam, name: Sam Seller, email: sam@example.test}]",
        "sellers: [{id: sam, name: Sam Seller, email: sam@example.test}, "
        "{id: sue, name: Sue Seller, email: sue@example.test}]",
    ).replace(
        "sellers: [{id: ada, name: Ada Analyst, email: ada@example.test}]",
        "sellers: [{id: ada, name: Ada Analyst, email: ada@example.test}, "
        "{id: abe, name: Abe Analyst, email: abe@example.test}]",
    )
    publish(store, loads_model(text), score_name="core", as_of=T0)
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0)
    monkeypatch.setenv(HOOK_ENV, "http://127.0.0.1:9/unused")
    now = T0 + 3 * HOUR
    ingest(store, sticky_messages(["carl", "dana"]), source="test", as_of=now)
    run_round(store, settings(), now_ms=now, deliver=False)
    ingest(store, sticky_messages(["eve", "fay", "gus"]), source="test", as_of=now + HOUR)
    run_round(store, settings(), now_ms=now + HOUR, deliver=False)
    with store.connect() as conn:
        names = {find_lead(conn, external_id=u): u for u in STICKY_PEOPLE}
        got = {names[a["lead_id"]]: (a["team"], a["seller"], a["reason"]) for a in list_assignments(conn)}
        owners = sorted(
            (str(r["team"]), str(r["seller"])) for r in conn.execute(select(account_owners)).mappings()
        )
    assert got == {
        "carl": ("core", "sam", "default"),
        "dana": ("analytics", "ada", "territory"),
        "eve": ("core", "sam", "account_owner"),
        "fay": ("analytics", "ada", "account_owner"),
        "gus": ("core", "sue", "default"),
    }
    # ACME: an owner per team; Other: core's sue
    assert owners == [("analytics", "ada"), ("core", "sam"), ("core", "sue")]


def test_the_teams_a_stage_routes_to() -> None:
    """The owners a stage's lead may stay with: the territories applying to it up to one matching every
    lead, then the default team."""
    model = loads_model(CORE)
    assert model.lifecycle is not None and model.lifecycle.assignment is not None
    rules = model.lifecycle.assignment
    assert rules.teams_for("mql_core") == ("core",)
    assert rules.teams_for("mql_analytics") == ("analytics",)
    guarded = loads_model(
        CORE.replace(
            "{team: analytics, stages: [mql_analytics]}",
            "{team: analytics, when: {attribute: country, equals: se}}",
        )
    ).lifecycle
    assert guarded is not None and guarded.assignment is not None
    assert guarded.assignment.teams_for("mql_core") == ("analytics", "core")


TOLD = CORE.replace(
    'mail: {to: seller, subject: "Core MQL {{ lead.first_name }}", body: "For {{ seller.name }}"}',
    'mail: {to: seller, subject: "Core MQL {{ lead.first_name }}", body: "{{ lead.score }} {{ lead.grade }}'
    '{% for r in reasons %} {{ r.rule_id }} {{ r.points }}{% endfor %}"}',
).replace(
    "    - id: analytics_late\n",
    "    - id: analytics_hot\n"
    "      trigger: {crossing: [grade, A], score: analytics}\n"
    "      webhook: {url_env: LEADSCORE_TEST_HOOK_URL}\n"
    "    - id: analytics_late\n",
)


def test_a_teams_messages_tell_its_own_score_and_reasons(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the messages about a lead say is the score of the team they are for: the stage's owner (an
    action or notification of an assignment in mql_analytics: the analytics score), the score a crossing
    names, and that score's own top reasons (its ledger's lines, rounded to a tenth).

    dana (analytics 80 = analyst 80 × ½ + report 80 × ½, grade A; core 0, grade D, no line) is assigned in
    mql_analytics: the ``analytics_hook`` webhook and Ada's own message read 80.0, grade A, analyst +40.0
    and report +40.0 (ties by rule id), not core's 0 and no reason. Her analytics grade crossing into A
    (``analytics_hot``) reads the same. carl (core 55 = marketing 60 × ½ + (demo 40 + webinar 10) × ½, grade
    B) is assigned in mql_core: ``core_mail`` and Sam's message read core's 55.0, marketing +30.0, demo
    +20.0, webinar +5.0 (analytics would say 10.0 and demo +10.0)."""
    publish(store, loads_model(TOLD), score_name="core", as_of=T0)
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0)
    with store.begin() as conn:
        for email, name in (("sam@example.test", "Sam Seller"), ("ada@example.test", "Ada Analyst")):
            user = add_user(conn, email, name, "sales", hash_password(PASSWORD), 0)
            save_settings(
                conn, user.id, NotificationSettings(mail_immediate=True, mail_digest=True, digest_hour=0), 0
            )
    monkeypatch.setenv(HOOK_ENV, "http://127.0.0.1:9/unused")
    now = T0 + 3 * HOUR
    ingest(store, messages(), source="test", as_of=now)
    run_round(store, settings(), now_ms=now, deliver=False)
    with store.connect() as conn:
        outbox = read_outbox(conn)
        dana = find_lead(conn, external_id="dana")
    rows = {str(o["action"]): o["payload"] for o in outbox if not str(o["action"]).startswith("notify.")}
    told = {str(o["target"]): o["payload"] for o in outbox if o["action"] == "notify.assigned"}
    assert sorted(rows) == ["analytics_hook", "analytics_hot", "core_mail"]
    assert sorted(told) == ["ada@example.test", "sam@example.test"]
    for action in ("analytics_hook", "analytics_hot"):
        body = rows[action]["body"]
        assert body["lead"]["id"] == dana
        assert (body["lead"]["score"], body["lead"]["grade"], body["lead"]["band"]) == (80.0, "A", "hot")
        assert (body["lead"]["fit_score"], body["lead"]["engagement_score"]) == (80.0, 80.0)
        assert body["lead"]["score_name"] == "analytics"
        assert [(r["rule_id"], r["points"]) for r in body["reasons"]] == [("analyst", 40.0), ("report", 40.0)]
    assert rows["core_mail"]["body"] == "55.0 B marketing 30.0 demo 20.0 webinar 5.0"
    assert "score 80.0 (hot)" in told["ada@example.test"]["body"]
    assert "Analyst role: +40" in told["ada@example.test"]["body"]
    assert "Built a report: +40" in told["ada@example.test"]["body"]
    assert "score 55.0" in told["sam@example.test"]["body"]
    assert "Marketing role: +30" in told["sam@example.test"]["body"]
    # each seller's digest of the day (the round's timer sent it: their hour, 0:00, had come): dana
    # (Ada's) on analytics, carl (Sam's) on core
    digests = {str(o["target"]): o["payload"]["body"] for o in outbox if o["action"] == "notify.digest"}
    assert "- Dana (no company), score 80.0 (hot), 24.0 h left to act\n" in digests["ada@example.test"]
    assert "  Why: Analyst role +40.0; Built a report +40.0\n" in digests["ada@example.test"]
    assert "- Carl (no company), score 55.0 (warm), 4.0 h left to act\n" in digests["sam@example.test"]
    why = "  Why: Marketing role +30.0; Requested a demo +20.0; Joined a webinar +5.0\n"
    assert why in digests["sam@example.test"]
    # and links to the desk showing that score's queue (the desk without ?score= shows core's, no dana)
    assert digests["ada@example.test"].endswith("Your desk: http://127.0.0.1:8000/handoff?score=analytics\n")
    assert digests["sam@example.test"].endswith("Your desk: http://127.0.0.1:8000/handoff\n")

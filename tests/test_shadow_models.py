"""Shadow models: a candidate scored beside the active one on live events through the processor, with no
lifecycle actions; promotion, and rollback to an earlier version restoring its scores (both engines)."""

from __future__ import annotations

from html import unescape
from typing import Any

from sqlalchemy import func, select

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.learn.labels import DAY_MS
from leadscore.learn.shadow_compare import compare
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.pipeline import activate_version, publish
from leadscore.scoring.processor import process_pending
from leadscore.scoring.shadow import publish_shadow
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.audit import read_audit
from leadscore.store.event_log import enqueue
from leadscore.store.lifecycle_tables import leads_in_stages
from leadscore.store.schema import outbox, score_events, score_history, scores
from leadscore.store.shadows import read_shadow_scores, shadow_versions
from leadscore.store.users import add_user
from lifecycle_model import settings
from live_server import serving
from web_support import PASSWORD, csrf_of, signed_in

NOW = 1_717_200_000_000
MODEL = """
model: shadowed
engagement:
  - {{id: plus, name: Showed interest, event: {{type: track, name: Plus}}, points: {points}}}
scale: {{weights: {{fit: 0, engagement: 1}}, bands: {{hot: 60, warm: 40}}}}
lifecycle:
  initial: lead
  stages:
    - {{id: lead, name: Lead}}
    - {{id: mql, name: MQL}}
  transitions:
    - {{id: qualified, from: [lead], to: mql, when: {{score_at_least: 60}}}}
  actions:
    - id: hot
      trigger: {{crossing: [band, hot]}}
      webhook: {{url: "http://127.0.0.1:9/hook"}}
    - id: new_mql
      trigger: {{enter: mql}}
      webhook: {{url: "http://127.0.0.1:9/hook"}}
"""


def _plus(user: str, n: int) -> list[dict[str, Any]]:
    return [
        event_row(
            normalise(
                {
                    "type": "track",
                    "event": "Plus",
                    "userId": user,
                    "messageId": f"{user}-{i}",
                    "timestamp": NOW - (n - i) * 60_000,
                },
                received_ms=NOW,
            ),
            "api",
        )
        for i in range(n)
    ]


def _scores(store: Store) -> dict[int, tuple[Any, ...]]:
    with store.connect() as conn:
        rows = conn.execute(
            select(scores.c.lead_id, scores.c.model_version_id, scores.c.score, scores.c.band)
        )
        return {int(r[0]): tuple(r[1:]) for r in rows}


def _count(store: Store, table: Any, *where: Any) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_a_shadow_is_scored_live_without_actions_then_promoted_and_rolled_back(store: Store) -> None:
    active, _ = publish(store, loads_model(MODEL.format(points=1)))
    shadow, scored = publish_shadow(store, loads_model(MODEL.format(points=10)))
    assert (active.version, shadow.version, shadow.active, scored) == (1, 2, False, 0)
    with store.begin() as conn:
        enqueue(conn, _plus("ann", 7) + _plus("bob", 3))
    rounds = 0
    while process_pending(store):
        rounds += 1
    assert rounds >= 1  # the inbox held work
    # the active version: 7 and 3 points (cold); the shadow, in the same transaction: 70 (hot) and 30
    before = _scores(store)
    assert sorted(before.values()) == [(1, 3.0, "cold"), (1, 7.0, "cold")]
    with store.connect() as conn:
        beside = read_shadow_scores(conn, shadow.id)
        assert shadow_versions(conn).keys() == {shadow.id}
    assert sorted((r["score"], r["band"]) for r in beside.values()) == [(30.0, "cold"), (70.0, "hot")]
    # no crossing, no history, no stage move, no outbox row from the shadow
    assert _count(store, score_events, score_events.c.model_version_id == shadow.id) == 0
    assert _count(store, score_history, score_history.c.model_version_id == shadow.id) == 0
    run_round(store, settings(), now_ms=NOW, deliver=False)
    assert _count(store, outbox) == 0
    with store.connect() as conn:
        assert leads_in_stages(conn, ["mql"]) == []
        # compared on the same two leads: active 7 and 3, shadow 70 and 30; only the shadow's 70 reaches 60
        cmp = compare(conn, store.sources(), shadow.id, outcome="sql", horizon_ms=30 * DAY_MS, now_ms=NOW)
    assert (cmp.leads, cmp.mean_active, cmp.mean_shadow, cmp.mean_abs_difference) == (2, 5.0, 50.0, 45.0)
    assert (cmp.mql_both, cmp.mql_only_active, cmp.mql_only_shadow) == (0, 0, 1)

    # promoted: it scores every lead as the active version (ann crosses into hot: actions now)
    activate_version(store, shadow.id, action="promoted")
    assert sorted(_scores(store).values()) == [(2, 30.0, "cold"), (2, 70.0, "hot")]
    with store.connect() as conn:
        assert shadow_versions(conn) == {}
    run_round(store, settings(), now_ms=NOW, deliver=False)
    assert _count(store, outbox) == 2  # ann: the hot crossing and the entry into mql

    # rolled back to version 1: its scores exactly as they were
    activate_version(store, active.id, action="rolled back")
    assert _scores(store) == before


def test_the_dashboard_scores_a_shadow_promotes_it_and_rolls_back(store: Store) -> None:
    active, _ = publish(store, loads_model(MODEL.format(points=1)))
    with store.begin() as conn:
        enqueue(conn, _plus("ann", 7))
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    rounds = 0
    while process_pending(store):
        rounds += 1
    assert rounds >= 1  # the inbox held work
    before = _scores(store)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        token = csrf_of(client)
        shadowed = client.post("/model/shadow", data={"csrf_token": token, "draft": MODEL.format(points=10)})
        assert (shadowed.status_code, shadowed.headers["location"]) == (303, "/review")
        page = unescape(client.get("/review").text)
        # ann: 7 points active, 70 in shadow; only the shadow makes her an MQL (60)
        assert "shadowed@2 beside shadowed@1" in page
        assert "<dt>Only the shadow</dt><dd>1</dd>" in page
        promoted = client.post(
            "/review/activate", data={"csrf_token": token, "version": 2, "action": "promoted"}
        )
        assert promoted.status_code == 303
        assert list(_scores(store).values()) == [(2, 70.0, "hot")]
        back = client.post(
            "/review/activate", data={"csrf_token": token, "version": active.id, "action": "rolled back"}
        )
        assert back.status_code == 303
        refused = client.post(
            "/review/activate", data={"csrf_token": token, "version": 99, "action": "promoted"}
        )
        assert refused.status_code == 404
    assert _scores(store) == before
    with store.connect() as conn:
        actions = [r["action"] for r in read_audit(conn)]
    assert {"model.shadow", "model.promote", "model.rollback"} <= set(actions)

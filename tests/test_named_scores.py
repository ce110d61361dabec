"""Several scores per lead (one per product line): two models score the same events differently, each
kept under its own name with its own versions; publishing or rolling back one leaves the other as it was.

The expected numbers are worked out by hand from the two models below (scale: fit and engagement weighted
½ each, 100 raw points = 100; bands hot ≥ 70, warm ≥ 40; grades A ≥ 75, B ≥ 50, C ≥ 25; levels 1 ≥ 75,
2 ≥ 50, 3 ≥ 25).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

import leadscore.scoring.pipeline as pipeline
from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.demo import run_demo
from leadscore.errors import InputError, NotFoundError
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.runner import run_round
from leadscore.lifecycle.score_stages import unpublished_scores
from leadscore.model import loads_model
from leadscore.scoring.clock import tick
from leadscore.scoring.explain import explain_current
from leadscore.scoring.pipeline import activate_version, ingest, publish, rescore_all
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.ledger_lines import expand
from leadscore.store.lifecycle_tables import read_stage_history, segment_member_ids
from leadscore.store.model_versions import active_version, active_versions, find_version
from leadscore.store.people import find_lead
from leadscore.store.results import read_crossings, read_current, read_history
from leadscore.store.schema import outbox, score_history, scores
from leadscore.store.score_names import check_name, list_scores, primary_score, set_primary
from leadscore.store.users import add_user
from live_server import serving
from migration_steps import migrate
from web_support import PASSWORD, signed_in

T0 = parse_time("2024-05-01T00:00:00Z", "t0")
NOW = parse_time("2024-06-01T00:00:00Z", "now")
HOUR = 3_600_000

CORE = """
model: core
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
engagement:
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 40}
  - {id: webinar, name: Joined a webinar, kind: once, event: {type: track, name: Webinar Joined}, points: 10}
"""

ANALYTICS = """
model: analytics
fit:
  - {id: analyst, name: Analyst role, when: {attribute: job_title, contains: analyst}, points: 80}
engagement:
  - {id: report, name: Built a report, kind: once, event: {type: track, name: Report Built}, points: 80}
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 20}
"""

# a second analytics version: the report is worth 40 (ann: engagement 40 + 20 = 60, score ½·80 + ½·60 = 70)
ANALYTICS_2 = ANALYTICS.replace("points: 80}\n  - {id: demo", "points: 40}\n  - {id: demo")


def message(user: str, n: int, at: int, **fields: Any) -> Any:
    raw = {"userId": user, "messageId": f"{user}-{n}", "timestamp": at, **fields}
    return normalise(raw, received_ms=at)


def events() -> list[Any]:
    """ann: a marketing analyst who requested a demo and built a report; bob: in sales, requested a demo."""
    return [
        message("ann", 0, T0, type="identify", traits={"job_title": "Marketing Analyst"}),
        message("ann", 1, T0 + HOUR, type="track", event="Demo Requested"),
        message("ann", 2, T0 + 2 * HOUR, type="track", event="Report Built"),
        message("bob", 0, T0, type="identify", traits={"job_title": "Sales"}),
        message("bob", 1, T0 + HOUR, type="track", event="Demo Requested"),
    ]


def current(store: Store, user: str, name: str | None) -> dict[str, Any]:
    with store.connect() as conn:
        lead = find_lead(conn, external_id=user)
        assert lead is not None
        row, _ = read_current(conn, lead, name)
    assert row is not None
    return row


def numbers(row: dict[str, Any]) -> tuple[float, float, float, str, int, str]:
    keys = ("score", "fit_score", "engagement_score", "grade", "level", "band")
    return tuple(row[k] for k in keys)  # type: ignore[return-value]


# ann, core: fit 60 (B), engagement 40 (level 3), score ½·60 + ½·40 = 50 (warm)
ANN_CORE = (50.0, 60.0, 40.0, "B", 3, "warm")
# ann, analytics: fit 80 (A), engagement 80 + 20 = 100 (level 1), score ½·80 + ½·100 = 90 (hot)
ANN_ANALYTICS = (90.0, 80.0, 100.0, "A", 1, "hot")
# bob, core: fit 0 (D), engagement 40 (level 3), score 20 (cold)
BOB_CORE = (20.0, 0.0, 40.0, "D", 3, "cold")
# bob, analytics: fit 0 (D), engagement 20 (level 4), score 10 (cold)
BOB_ANALYTICS = (10.0, 0.0, 20.0, "D", 4, "cold")


def two_scores(store: Store) -> None:
    publish(store, loads_model(CORE), score_name="core", as_of=T0)
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0)
    ingest(store, events(), source="test", as_of=T0 + 3 * HOUR)


def test_two_models_score_the_same_events_each_under_its_own_name(store: Store) -> None:
    two_scores(store)
    assert numbers(current(store, "ann", "core")) == ANN_CORE
    assert numbers(current(store, "ann", "analytics")) == ANN_ANALYTICS
    assert numbers(current(store, "bob", "core")) == BOB_CORE
    assert numbers(current(store, "bob", "analytics")) == BOB_ANALYTICS
    # the first score published is the primary: what every surface reads when no score is named
    assert numbers(current(store, "ann", None)) == ANN_CORE
    with store.connect() as conn:
        assert primary_score(conn) == "core"
        assert [(s.name, s.is_primary) for s in list_scores(conn)] == [("core", True), ("analytics", False)]
        assert [(v.score_name, v.label) for v in active_versions(conn)] == [
            ("core", "core@1"),
            ("analytics", "analytics@1"),
        ]
        ann = find_lead(conn, external_id="ann")
        assert ann is not None
        # each score's history: created at 0, then a row where that score moved (hand-computed)
        core_history = [(h["at_ms"], h["score"]) for h in read_history(conn, ann, "core")]
        analytics_history = [(h["at_ms"], h["score"]) for h in read_history(conn, ann, "analytics")]
        # core: identify makes fit 60 → 30; the demo → 50; the report changes nothing in core
        assert core_history == [(T0 - 1, 0.0), (T0, 30.0), (T0 + HOUR, 50.0)]
        # analytics: fit 80 → 40; demo 20 → 50; report 80 → 90
        assert analytics_history == [(T0 - 1, 0.0), (T0, 40.0), (T0 + HOUR, 50.0), (T0 + 2 * HOUR, 90.0)]
        # ledgers per score: core's lines and analytics' lines, never mixed
        _, core_lines = read_current(conn, ann, "core")
        _, analytics_lines = read_current(conn, ann, "analytics")
        assert {(line["rule_id"], line["score_points"]) for line in core_lines if line["score_points"]} == {
            ("marketing", 30.0),
            ("demo", 20.0),
        }
        assert {
            (line["rule_id"], line["score_points"]) for line in analytics_lines if line["score_points"]
        } == {("analyst", 40.0), ("report", 40.0), ("demo", 10.0)}
        # crossings per score: ann's analytics score crossed into hot (cold → warm at 50, then hot at 90
        # within one batch: one current-state change, cold → hot); her core score went cold → warm
        assert [(c["kind"], c["from_value"], c["to_value"]) for c in read_crossings(conn, ann, "analytics")
                if c["kind"] == "band"] == [("band", None, "hot")]  # fmt: skip
        assert [
            (c["kind"], c["to_value"]) for c in read_crossings(conn, ann, "core") if c["kind"] == "band"
        ] == [("band", "warm")]
        # the explanation of each score adds up to that score
        for name, expected in (("core", 50.0), ("analytics", 90.0)):
            explained = explain_current(conn, store.sources(), ann, name)
            assert explained is not None
            version, explanation = explained
            assert version.score_name == name
            assert explanation.ledger.score == expected
            assert sum(line.score_points for line in explanation.ledger.lines) == pytest.approx(expected)
            # the demo event counts in both scores, for its own points in each (core 40 → 20, analytics 20
            # → 10 on the 0–100 scale)
            demo = explanation.line_events("demo")
            assert [share for _, share in demo] == [20.0 if name == "core" else 10.0]


def test_publishing_one_score_rescores_only_that_score(store: Store) -> None:
    two_scores(store)
    with store.connect() as conn:
        before_core = conn.execute(
            select(scores.c.lead_id, scores.c.scored_ms, scores.c.score).where(scores.c.score_name == "core")
        ).all()
        core_history = conn.execute(
            select(score_history.c.id).where(score_history.c.score_name == "core")
        ).all()
    version, rescored = publish(store, loads_model(ANALYTICS_2), score_name="analytics", as_of=T0 + 3 * HOUR)
    assert (version.label, version.score_name, rescored) == ("analytics@2", "analytics", 2)
    # analytics, version 2 (report 40): ann ½·80 + ½·(40 + 20) = 70 (hot, level 2); bob unchanged
    assert numbers(current(store, "ann", "analytics")) == (70.0, 80.0, 60.0, "A", 2, "hot")
    assert numbers(current(store, "bob", "analytics")) == BOB_ANALYTICS
    with store.connect() as conn:
        # core untouched: the same rows, stamped at the same time, and no history row added
        assert (
            conn.execute(
                select(scores.c.lead_id, scores.c.scored_ms, scores.c.score).where(
                    scores.c.score_name == "core"
                )
            ).all()
            == before_core
        )
        assert (
            conn.execute(select(score_history.c.id).where(score_history.c.score_name == "core")).all()
            == core_history
        )
        assert active_version(conn, "core").label == "core@1"
        assert active_version(conn, "analytics").label == "analytics@2"
        first = next(v for v in active_versions(conn) if v.score_name == "core")
    # rolling analytics back restores its numbers, and core is still core@1
    with store.connect() as conn:
        from leadscore.store.model_versions import find_version

        v1 = find_version(conn, "analytics@1")
    activate_version(store, v1.id, action="rolled back", as_of=T0 + 3 * HOUR)
    assert numbers(current(store, "ann", "analytics")) == ANN_ANALYTICS
    with store.connect() as conn:
        assert active_version(conn, "core").id == first.id


def test_full_rescoring_and_the_clock_score_every_active_model(store: Store) -> None:
    two_scores(store)
    ledgers = rescore_all(store, as_of=T0 + 3 * HOUR)
    # the primary score's ledgers are returned; both scores are saved
    assert sorted(lg.score for lg in ledgers) == [20.0, 50.0]
    assert numbers(current(store, "bob", "analytics")) == BOB_ANALYTICS
    assert tick(store, now=T0 + 4 * HOUR).leads == 0  # no window or decay: nothing is ever due


def test_a_repeated_full_rescoring_follows_each_publication_and_store(store: Store, tmp_path: Path) -> None:
    """The statement ``rescore_all`` keeps across calls (``score_everyone``) scores with the models active
    now: after a publication, a rollback, another store's rescoring, and at another time."""
    two_scores(store)
    at = T0 + 3 * HOUR
    rescore_all(store, as_of=at)
    assert numbers(current(store, "ann", "analytics")) == ANN_ANALYTICS
    publish(store, loads_model(ANALYTICS_2), score_name="analytics", as_of=at)
    rescore_all(store, as_of=at)
    # analytics, version 2 (report 40): ann ½·80 + ½·(40 + 20) = 70 (hot, level 2)
    assert numbers(current(store, "ann", "analytics")) == (70.0, 80.0, 60.0, "A", 2, "hot")
    with store.connect() as conn:
        v1 = find_version(conn, "analytics@1")
    activate_version(store, v1.id, action="rolled back", as_of=at)
    rescore_all(store, as_of=at)
    assert numbers(current(store, "ann", "analytics")) == ANN_ANALYTICS
    assert numbers(current(store, "ann", "core")) == ANN_CORE
    other = Store.from_url(str(tmp_path / "other.db"))
    try:
        two_scores(other)
        publish(other, loads_model(ANALYTICS_2), score_name="analytics", as_of=at)
        rescore_all(other, as_of=at)
        assert numbers(current(other, "ann", "analytics")) == (70.0, 80.0, 60.0, "A", 2, "hot")
    finally:
        other.dispose()
    rescore_all(store, as_of=at)
    assert numbers(current(store, "ann", "analytics")) == ANN_ANALYTICS
    # at T0 ann is an analyst with no event yet: fit 80 (A), engagement 0 (level 4), score 40 (warm)
    rescore_all(store, as_of=T0)
    assert numbers(current(store, "ann", "analytics")) == (40.0, 80.0, 0.0, "A", 4, "warm")


def test_a_publication_during_a_full_rescoring_is_not_undone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publication committed while ``rescore_all`` is under way (here: just after it read the active
    models) is either seen by it or comes after it: the full rescoring never saves the scores of the
    version the publication replaced (SQLite: the models are read under the write lock; PostgreSQL: the
    activation waits for the rescoring's share of the models, ``model_versions.share_models``)."""
    two_scores(store)
    at = T0 + 3 * HOUR
    read = pipeline.active_models
    racer: list[threading.Thread] = []

    def publishing_meanwhile(conn: Any, **how: Any) -> Any:
        models = read(conn, **how)
        if not racer:
            racer.append(
                threading.Thread(
                    target=publish,
                    args=(store, loads_model(ANALYTICS_2)),
                    kwargs={"score_name": "analytics", "as_of": at},
                )
            )
            racer[0].start()
            racer[0].join(2.0)  # done unless it waits for the write lock
        return models

    monkeypatch.setattr(pipeline, "active_models", publishing_meanwhile)
    rescore_all(store, as_of=at)
    racer[0].join()
    with store.connect() as conn:
        assert active_version(conn, "analytics").label == "analytics@2"
    # analytics, version 2 (report 40): ann ½·80 + ½·(40 + 20) = 70 (hot, level 2), not version 1's 90
    assert numbers(current(store, "ann", "analytics")) == (70.0, 80.0, 60.0, "A", 2, "hot")


def test_score_names_are_checked_and_the_primary_can_move(store: Store) -> None:
    two_scores(store)
    for bad in ("", "Core", "9lives", "a b", "x" * 64, "core\x00"):
        with pytest.raises(InputError):
            check_name(bad)
    with store.begin() as conn:
        with pytest.raises(NotFoundError):
            set_primary(conn, "partners")
        set_primary(conn, "analytics")
    assert numbers(current(store, "ann", None)) == ANN_ANALYTICS
    with store.connect() as conn:
        assert [s.name for s in list_scores(conn) if s.is_primary] == ["analytics"]


def test_a_store_of_one_model_has_one_score_named_primary(store: Store) -> None:
    publish(store, loads_model(CORE), as_of=T0)
    ingest(store, events(), source="test", as_of=T0 + 3 * HOUR)
    assert numbers(current(store, "ann", None)) == ANN_CORE
    with store.connect() as conn:
        assert primary_score(conn) == "primary"
        assert set(conn.execute(select(scores.c.score_name)).scalars()) == {"primary"}
    # publishing another model without naming a score replaces the primary one, as before
    publish(store, loads_model(ANALYTICS), as_of=T0 + 3 * HOUR)
    assert numbers(current(store, "ann", None)) == ANN_ANALYTICS
    with store.connect() as conn:
        assert [v.label for v in active_versions(conn)] == ["analytics@1"]


# --- migration 0016: a store of one model becomes the primary score, no number changes

TABLES = {
    "scores": "lead_id",
    "ledger": "lead_id",  # then by rule id: the lines of a lead's score read as rows (below)
    "score_history": "id",
    "score_events": "id",
}


def _rows(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables that hold numbers, less the score name column, in key order."""
    out: dict[str, list[dict[str, Any]]] = {}
    with store.engine.connect() as conn:
        for table, key in TABLES.items():
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}")).mappings().all()
            if rows and "lines" in rows[0]:  # a row a score since 0028: its lines as the rows they were
                rows = expand((r["lead_id"], r["score_name"], r["lines"]) for r in rows)
            elif table == "ledger":
                rows = sorted(rows, key=lambda r: (r["lead_id"], r["rule_id"]))
            out[table] = [{k: v for k, v in r.items() if k != "score_name"} for r in rows]
    return out


def test_the_migration_keeps_every_number_of_the_demo(store: Store, tmp_path: Path) -> None:
    url = store.url if store.dialect == "postgresql" else str(tmp_path / "demo.db")
    run_demo(url, leads=30, seed=7, now_ms=NOW)
    demo = Store.from_url(url)
    try:
        migrate(demo, "downgrade", "0018")  # the store as the previous head holds it
        before = _rows(demo)
        assert len(before["scores"]) == 30 and len(before["score_history"]) > 60
        with demo.engine.connect() as conn:
            assert "score_name" not in {c["name"] for c in inspect(conn).get_columns("scores")}
        migrate(demo, "upgrade", "heads")
        assert _rows(demo) == before
        with demo.connect() as conn:
            assert primary_score(conn) == "primary"
            assert [(s.name, s.is_primary) for s in list_scores(conn)] == [("primary", True)]
            for table in TABLES:
                names = conn.execute(text(f"SELECT DISTINCT score_name FROM {table}")).scalars().all()
                assert names == ["primary"]
            assert [v.score_name for v in active_versions(conn)] == ["primary"]
        # the migrated store scores as before: rescoring as of the demo's time changes no score
        rescore_all(demo, as_of=NOW // 1000 * 1000)
        after = _rows(demo)["scores"]
        assert [(r["lead_id"], r["score"], r["grade"], r["level"], r["band"]) for r in after] == [
            (r["lead_id"], r["score"], r["grade"], r["level"], r["band"]) for r in before["scores"]
        ]
        # a second score published beside it leaves the primary's numbers alone
        publish(demo, loads_model(ANALYTICS), score_name="analytics", as_of=NOW // 1000 * 1000)
        with demo.connect() as conn:
            primary_rows = conn.execute(
                select(scores.c.lead_id, scores.c.score)
                .where(scores.c.score_name == "primary")
                .order_by(scores.c.lead_id)
            ).all()
            assert (
                len(conn.execute(select(scores.c.lead_id).where(scores.c.score_name == "analytics")).all())
                == 30
            )
        assert [(lid, s) for lid, s in primary_rows] == [(r["lead_id"], r["score"]) for r in before["scores"]]
        # and the downgrade keeps the primary score, dropping the other
        migrate(demo, "downgrade", "0018")
        assert [(r["lead_id"], r["score"]) for r in _rows(demo)["scores"]] == [
            (r["lead_id"], r["score"]) for r in before["scores"]
        ]
        migrate(demo, "upgrade", "heads")
    finally:
        demo.dispose()


# --- lifecycle gates name a score: one lead is an MQL for one team and not for the other

CORE_LIFECYCLE = (
    CORE
    + """
lifecycle:
  initial: lead
  stages:
    - {id: lead, name: Lead}
    - {id: mql_core, name: MQL for the core team}
    - {id: mql_analytics, name: MQL for the analytics team}
  transitions:
    - {id: core_mql, from: [lead], to: mql_core, when: {score: core, score_at_least: 55, grade_at_least: B}}
    - {id: analytics_mql, from: [lead], to: mql_analytics, when: {score: analytics, score_at_least: 60, grade_at_least: B}}
  actions:
    - {id: tell_core, trigger: {crossing: [band, hot]}, webhook: {url: "http://hooks.example/core"}}
    - {id: tell_analytics, trigger: {crossing: [band, hot], score: analytics}, webhook: {url: "http://hooks.example/analytics"}}
"""
)
# analytics with the report worth 10: ann's engagement 10 + 20 = 30, score ½·80 + ½·30 = 55 (warm)
ANALYTICS_WEAK = ANALYTICS.replace("points: 80}\n  - {id: demo", "points: 10}\n  - {id: demo")


def stages(store: Store, user: str) -> list[str]:
    with store.connect() as conn:
        lead = find_lead(conn, external_id=user)
        return [h["to_stage"] for h in read_stage_history(conn, lead)]  # type: ignore[arg-type]


def test_a_lead_is_an_mql_for_one_team_and_not_the_other(store: Store) -> None:
    publish(store, loads_model(CORE_LIFECYCLE), score_name="core", as_of=T0)
    publish(store, loads_model(ANALYTICS_WEAK), score_name="analytics", as_of=T0)
    carl = [
        message("carl", 0, T0, type="identify", traits={"job_title": "Marketing Manager"}),
        message("carl", 1, T0 + HOUR, type="track", event="Demo Requested"),
        message("carl", 2, T0 + HOUR, type="track", event="Webinar Joined"),
    ]
    ingest(store, [*events(), *carl], source="test", as_of=T0 + 3 * HOUR)
    run_round(store, Settings(), now_ms=T0 + 3 * HOUR, deliver=False)
    # carl, core: fit 60 (B), engagement 40 + 10 = 50, score 55 ≥ 55 → MQL for the core team;
    # carl, analytics: fit 0 (D), engagement 20, score 10 → not
    assert numbers(current(store, "carl", "core")) == (55.0, 60.0, 50.0, "B", 2, "warm")
    assert numbers(current(store, "carl", "analytics")) == (10.0, 0.0, 20.0, "D", 4, "cold")
    assert stages(store, "carl") == ["lead", "mql_core"]
    # ann: core 50 < 55, analytics 55 < 60: an MQL for neither yet; bob: for neither
    assert stages(store, "ann") == ["lead"]
    assert stages(store, "bob") == ["lead"]
    # the analytics team's model values the report more: only the analytics score is rescored, and the
    # lifecycle sees it (ann, analytics: 90, A) → an MQL for the analytics team, not for the core team
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0 + 3 * HOUR)
    run_round(store, Settings(), now_ms=T0 + 4 * HOUR, deliver=False)
    assert numbers(current(store, "ann", "analytics")) == ANN_ANALYTICS
    assert numbers(current(store, "ann", "core")) == ANN_CORE
    assert stages(store, "ann") == ["lead", "mql_analytics"]
    assert stages(store, "carl") == ["lead", "mql_core"]
    # notifications per score: ann's analytics score crossed into hot (55 → 90); no core score is hot
    with store.connect() as conn:
        ann = find_lead(conn, external_id="ann")
        sent = conn.execute(select(outbox.c.action, outbox.c.lead_id, outbox.c.target)).all()
    assert [(a, lid, t) for a, lid, t in sent if a.startswith("tell_")] == [
        ("tell_analytics", ann, "http://hooks.example/analytics")
    ]


def test_a_gate_naming_an_unknown_score_never_holds(store: Store) -> None:
    model = CORE_LIFECYCLE.replace(
        "score: analytics, score_at_least: 60", "score: partners, score_at_least: 0"
    )
    publish(store, loads_model(model), score_name="core", as_of=T0)
    ingest(store, events(), source="test", as_of=T0 + 3 * HOUR)
    run_round(store, Settings(), now_ms=T0 + 3 * HOUR, deliver=False)
    # no lead has a "partners" score, so no one takes that transition, though it asks for 0 points
    assert stages(store, "ann") == ["lead"]
    assert stages(store, "bob") == ["lead"]


SEGMENTS = (
    CORE
    + """
lifecycle:
  initial: lead
  stages:
    - {id: lead, name: Lead}
  segments:
    - {id: hot_analytics, name: Hot for analytics, score: analytics, bands: [hot], webhook: {url: "http://hooks.example/audience"}}
    - {id: hot, name: Hot, bands: [hot]}
    - {id: top_analytics, name: Analytics A at 85, score: analytics, grades: [A], score_at_least: 85}
"""
)


def _segments_with_dana(store: Store) -> None:
    """The segments model as core (the primary) beside analytics; ann and bob's events, and dana, a data
    analyst who built a report; the lifecycle run once (segment memberships)."""
    publish(store, loads_model(SEGMENTS), score_name="core", as_of=T0)
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0)
    dana = [
        message("dana", 0, T0, type="identify", traits={"job_title": "Data Analyst"}),
        message("dana", 1, T0 + HOUR, type="track", event="Report Built"),
    ]
    ingest(store, [*events(), *dana], source="test", as_of=T0 + 3 * HOUR)
    run_round(store, Settings(), now_ms=T0 + 3 * HOUR, deliver=False)


def test_a_segment_tests_the_score_it_names(store: Store) -> None:
    _segments_with_dana(store)
    # dana, core: fit 0 (D), engagement 0 (level 4), score 0 (cold); analytics: fit 80 (A), engagement 80
    # (level 1), score ½·80 + ½·80 = 80 (hot): hot on analytics and cold on the primary
    assert numbers(current(store, "dana", "core")) == (0.0, 0.0, 0.0, "D", 4, "cold")
    assert numbers(current(store, "dana", "analytics")) == (80.0, 80.0, 80.0, "A", 1, "hot")
    lifecycle = loads_model(SEGMENTS).lifecycle
    assert lifecycle is not None
    with store.connect() as conn:
        ann, bob, dana_id = (find_lead(conn, external_id=u) for u in ("ann", "bob", "dana"))
        # hot on analytics: ann (90) and dana (80); hot on the primary (core): no one (ann 50, bob 20,
        # dana 0); analytics grade A and ≥ 85: ann (90, A), not dana (80, A)
        assert segment_member_ids(conn, "hot_analytics") == {ann, dana_id}
        assert segment_member_ids(conn, "hot") == set()
        assert segment_member_ids(conn, "top_analytics") == {ann}
        assert bob not in segment_member_ids(conn, "hot_analytics")
        bodies = [
            json.loads(p) if isinstance(p, str) else p
            for (p,) in conn.execute(
                select(outbox.c.payload)
                .where(outbox.c.action == "segment_hot_analytics")
                .order_by(outbox.c.lead_id)
            )
        ]
    # the export tells the segment's score, the highest first (core: ann 50, warm; dana 0, cold)
    out = CliRunner().invoke(cli, ["segments", "export", "hot_analytics", "--db", str(store.url)])
    assert out.exit_code == 0, out.output
    exported = [
        (r["external_id"], r["score"], r["grade"], r["band"]) for r in csv.DictReader(io.StringIO(out.output))
    ]
    assert exported == [("ann", "90.0", "A", "hot"), ("dana", "80.0", "A", "hot")]
    # the webhook announcing each entry tells the analytics score, not the primary's
    assert [
        (
            b["event"],
            b["body"]["lead"]["external_id"],
            b["body"]["lead"]["score_name"],
            b["body"]["lead"]["score"],
        )
        for b in bodies
    ] == [
        ("segment.entered", "ann", "analytics", 90.0),
        ("segment.entered", "dana", "analytics", 80.0),
    ]
    # publishing warns of a segment naming a score no model is published as
    assert lifecycle.named_scores() == [
        ("segment hot_analytics", "analytics"),
        ("segment top_analytics", "analytics"),
    ]
    warnings = unpublished_scores(lifecycle, {"core"})
    assert [w.split(",")[0] for w in warnings] == [
        "segment hot_analytics names the score 'analytics'",
        "segment top_analytics names the score 'analytics'",
    ]
    assert unpublished_scores(lifecycle, {"core", "analytics"}) == []


# --- surfaces: the read API, CSV export, the CLI, each reading the score named (the primary by default)


def test_the_api_and_cli_read_the_score_named(store: Store) -> None:
    two_scores(store)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "reader", 0)
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        default = httpx.get(f"{url}/v1/leads", headers=auth).json()
        analytics = httpx.get(f"{url}/v1/leads?score=analytics", headers=auth).json()
        hot = httpx.get(f"{url}/v1/leads?score=analytics&band=hot", headers=auth).json()
        csv_text = httpx.get(f"{url}/v1/leads?score=analytics&format=csv", headers=auth).text
        unknown = httpx.get(f"{url}/v1/leads?score=partners", headers=auth)
        malformed = httpx.get(f"{url}/v1/leads?score=Not%20a%20name", headers=auth)
        lead = httpx.get(f"{url}/v1/leads/ann?score=analytics", headers=auth).json()
        explained = httpx.get(f"{url}/v1/leads/ann/explanation?score=analytics", headers=auth).json()
        unknown_lead_score = httpx.get(f"{url}/v1/leads/ann?score=partners", headers=auth)
        # an empty ?score= is the primary on every route, as the list's filter and the dashboard read it
        empty = [
            httpx.get(f"{url}{path}?score=", headers=auth)
            for path in ("/v1/leads", "/v1/leads/ann", "/v1/leads/ann/explanation")
        ]
    assert [r.status_code for r in empty] == [200, 200, 200], [r.text for r in empty]
    assert [r["score"] for r in empty[0].json()["leads"]] == [50.0, 20.0]
    assert empty[1].json()["score"]["score"] == 50.0 and empty[1].json()["score"]["score_name"] == "core"
    assert empty[2].json()["model"] == "core@1" and empty[2].json()["explanation"]["score"] == 50.0
    # by default the primary score (core): ann 50, bob 20; every row lists both named scores
    assert [(r["email"] or r["external_id"], r["score"]) for r in default["leads"]] == [
        ("ann", 50.0),
        ("bob", 20.0),
    ]
    ann_row = default["leads"][0]
    assert {name: s["score"] for name, s in ann_row["scores"].items()} == {"core": 50.0, "analytics": 90.0}
    assert [(r["external_id"], r["score"]) for r in analytics["leads"]] == [("ann", 90.0), ("bob", 10.0)]
    # the filter reads the score named: only ann's analytics score is hot (core: nobody is)
    assert [r["external_id"] for r in hot["leads"]] == ["ann"]
    lines = csv_text.strip().splitlines()
    header = lines[0].split(",")
    ann_csv = dict(
        zip(header, next(line for line in lines if ",ann," in f",{line},").split(","), strict=True)
    )
    assert float(ann_csv["score"]) == 90.0
    assert unknown.status_code == 404 and "partners" in unknown.json()["error"]
    assert malformed.status_code == 422
    assert lead["score"]["score"] == 90.0 and lead["score"]["score_name"] == "analytics"
    assert [h["score"] for h in lead["history"]] == [0.0, 40.0, 50.0, 90.0]
    assert set(lead["scores"]) == {"core", "analytics"}
    assert explained["model"] == "analytics@1" and explained["explanation"]["score"] == 90.0
    assert unknown_lead_score.status_code == 404

    runner = CliRunner()
    db = ["--db", str(store.url)]
    out = runner.invoke(
        cli,
        [
            "explain",
            "ann",
            "--score",
            "analytics",
            "--format",
            "json",
            "--as-of",
            "2024-05-01T03:00:00Z",
            *db,
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["score"] == 90.0 and json.loads(out.output)["model"] == "analytics@1"
    out = runner.invoke(cli, ["explain", "ann", "--format", "json", "--as-of", "2024-05-01T03:00:00Z", *db])
    assert json.loads(out.output)["score"] == 50.0 and json.loads(out.output)["model"] == "core@1"
    out = runner.invoke(cli, ["model", "show", "--score", "analytics", *db])
    assert out.exit_code == 0 and "model: analytics" in out.output
    out = runner.invoke(cli, ["model", "rollback", "core@1", "--score", "analytics", *db])
    assert out.exit_code != 0 and "not 'analytics'" in str(out.exception or out.output)
    out = runner.invoke(cli, ["history", "ann", "--score", "analytics", "--format", "json", *db])
    assert out.exit_code == 0, out.output
    assert [row["score"] for row in json.loads(out.output)] == [0.0, 40.0, 50.0, 90.0]
    # a score never published is named as such, as the API and the other commands name it
    out = runner.invoke(cli, ["explain", "ann", "--score", "partners", *db])
    assert out.exit_code != 0
    assert "no score named 'partners' (scores: core, analytics)" in str(out.exception or out.output)


def test_the_dashboard_shows_every_score_and_picks_one(store: Store) -> None:
    two_scores(store)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        ann = find_lead(conn, external_id="ann")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        lead_page = client.get(f"/leads/{ann}").text
        primary_list = client.get("/leads").text
        analytics_list = client.get("/leads?score=analytics&band=hot").text
    # the lead page: the primary score (core, 50) and beside it the analytics score (90) with its ledger
    assert "core@1" in lead_page and "Score: analytics" in lead_page and "analytics@1" in lead_page
    analytics_ledger = lead_page.split('data-score="analytics"')[1].split("</table>")[0]
    assert (
        "Built a report" in analytics_ledger and "+40.00" in analytics_ledger and "+10.00" in analytics_ledger
    )
    # the list: a score picker (primary first), and the filter reads the score picked
    assert '<select id="score" name="score">' in primary_list
    assert '<option value="" selected>core (primary)</option>' in primary_list
    assert '<option value="analytics" selected>analytics</option>' in analytics_list
    assert f'href="/leads/{ann}"' in analytics_list
    assert "bob" not in analytics_list.split('id="results"')[1]


def test_a_score_never_published_is_a_404_on_every_list_and_export(store: Store) -> None:
    two_scores(store)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        _, token = create_key(conn, "read", "reader", 0)
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        dashboard = {
            path: client.get(f"{path}?score=partners")
            for path in ("/leads", "/leads/matrix", "/leads/export.csv")
        }
        analytics_csv = client.get("/leads/export.csv?score=analytics").text
        api = {
            query: httpx.get(f"{url}/v1/leads?score=partners{query}", headers=auth)
            for query in ("", "&band=hot", "&format=csv")
        }
        anonymous = httpx.get(f"{url}/v1/leads?score=partners")
    # "partners" was never published: each surface says so, naming the two scores that exist (before, the
    # dashboard's list and CSV export answered 200, every lead with empty score columns)
    refusal = "no score named 'partners' (scores: core, analytics)"
    for path, answer in dashboard.items():
        assert (path, answer.status_code, answer.json()["error"]) == (path, 404, refusal)
    for query, answer in api.items():
        assert (query, answer.status_code, answer.json()["error"]) == (query, 404, refusal)
    # a caller without credentials learns no score names
    assert anonymous.status_code == 401 and "partners" not in anonymous.text
    # a published score still exports: analytics ann 90 (½·80 fit + ½·100 engagement), bob 10 (½·0 fit + ½·20 engagement)
    rows = {r["lead_id"]: r["score"] for r in csv.DictReader(io.StringIO(analytics_csv))}
    with store.connect() as conn:
        ann, bob = find_lead(conn, external_id="ann"), find_lead(conn, external_id="bob")
    assert {int(k): float(v) for k, v in rows.items()} == {ann: 90.0, bob: 10.0}


SPARK_MISSING = (
    "pyspark is not installed (pip install -e '.[spark]')"
    if importlib.util.find_spec("pyspark") is None
    else "no Java runtime on PATH or JAVA_HOME (Spark needs Java 17+)"
    if not (shutil.which("java") or os.environ.get("JAVA_HOME"))
    else None
)
# every engine batch scores: SQLite and DuckDB and Spark read a SQLite store, PostgreSQL its own store
BATCH_ENGINES = [
    "sqlite",
    "duckdb",
    pytest.param(
        "spark",
        marks=[
            pytest.mark.skipif(bool(SPARK_MISSING), reason=str(SPARK_MISSING)),
            pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
        ],
    ),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture
def batch_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The store an engine's batch run reads: PostgreSQL for postgres, SQLite for the others."""
    engine = request.node.callspec.params["engine"]
    if engine == "spark":
        # Spark's Python workers are this interpreter (with sqlalchemy and the rest), not the PATH's python3
        monkeypatch.setenv("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", sys.executable))
    if engine != "postgres":
        return request.getfixturevalue("sqlite_store")  # type: ignore[no-any-return]
    if not os.environ.get("LEADSCORE_TEST_POSTGRES_URL"):
        pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
    return request.getfixturevalue("pg_store")  # type: ignore[no-any-return]


def batch_scores(folder: Path) -> list[tuple[int, float]]:
    import pyarrow.parquet as pq

    table = pq.read_table(folder / "scores.parquet").sort_by("lead_id")
    return list(zip(table.column("lead_id").to_pylist(), table.column("score").to_pylist(), strict=True))


@pytest.mark.parametrize("engine", BATCH_ENGINES)
def test_batch_score_scores_the_score_named(engine: str, batch_store: Store, tmp_path: Path) -> None:
    two_scores(batch_store)
    db = str(batch_store.url)
    base = ["batch", "score", "--engine", engine, "--db", db, "--events", "store", "--leads", "store"]
    as_of = ["--as-of", "2024-05-01T03:00:00Z"]
    by_score = {}
    for name in ("core", "analytics"):
        out = tmp_path / f"{engine}-{name}"
        result = CliRunner().invoke(cli, [*base, *as_of, "--score", name, "--out", str(out)])
        assert result.exit_code == 0, result.output
        by_score[name] = batch_scores(out)
    with batch_store.connect() as conn:
        ann, bob = find_lead(conn, external_id="ann"), find_lead(conn, external_id="bob")
    # the same numbers as the store's (hand-computed above), each from its own model
    assert by_score == {"core": [(ann, 50.0), (bob, 20.0)], "analytics": [(ann, 90.0), (bob, 10.0)]}
    # into the store: that score's rows only
    result = CliRunner().invoke(cli, [*base, *as_of, "--score", "analytics", "--out", "store"])
    assert result.exit_code == 0, result.output
    assert numbers(current(batch_store, "ann", "analytics")) == ANN_ANALYTICS
    assert numbers(current(batch_store, "ann", "core")) == ANN_CORE


@pytest.mark.parametrize("engine", BATCH_ENGINES)
def test_batch_score_runs_several_scores_in_one_job_as_one_at_a_time(
    engine: str, batch_store: Store, tmp_path: Path
) -> None:
    """--score core --score analytics (one statement for both models: the events read once) writes
    OUT/core and OUT/analytics with what two runs of one score write, on every engine; --all-scores runs
    every active score."""
    two_scores(batch_store)
    db = str(batch_store.url)
    base = ["batch", "score", "--engine", engine, "--db", db, "--events", "store", "--leads", "store",
            "--as-of", "2024-05-01T03:00:00Z"]  # fmt: skip
    with batch_store.connect() as conn:
        ann, bob = find_lead(conn, external_id="ann"), find_lead(conn, external_id="bob")
    both = CliRunner().invoke(
        cli, [*base, "--score", "core", "--score", "analytics", "--out", str(tmp_path / "both")]
    )
    assert both.exit_code == 0, both.output
    assert "core: scored 2 leads" in both.output and "analytics: scored 2 leads" in both.output
    everything = CliRunner().invoke(cli, [*base, "--all-scores", "--out", str(tmp_path / "all")])
    assert everything.exit_code == 0, everything.output
    import pyarrow.parquet as pq

    for name, expected in (("core", [(ann, 50.0), (bob, 20.0)]), ("analytics", [(ann, 90.0), (bob, 10.0)])):
        one = CliRunner().invoke(cli, [*base, "--score", name, "--out", str(tmp_path / f"one-{name}")])
        assert one.exit_code == 0, one.output
        assert batch_scores(tmp_path / "both" / name) == expected == batch_scores(tmp_path / "all" / name)
        for file in ("scores.parquet", "ledger.parquet"):
            alone = pq.read_table(tmp_path / f"one-{name}" / file)
            assert pq.read_table(tmp_path / "both" / name / file).equals(alone)
    # into the store: both scores' rows, each from its own model
    stored = CliRunner().invoke(cli, [*base, "--score", "analytics", "--score", "core", "--out", "store"])
    assert stored.exit_code == 0, stored.output
    assert numbers(current(batch_store, "ann", "analytics")) == ANN_ANALYTICS
    assert numbers(current(batch_store, "bob", "core")) == BOB_CORE


@pytest.mark.parametrize("engine", BATCH_ENGINES)
def test_several_scores_in_one_batch_job_are_one_statement(
    engine: str, batch_store: Store, tmp_path: Path
) -> None:
    """``run_batch_scores`` compiles the models into one statement (``compile_models``: one row per score
    and lead, ``score_index`` first), so the events are read once; each score's rows go to its own output."""
    from leadscore.batch.locations import ParquetLocation, StoreLocation
    from leadscore.batch.run import BatchJob, NamedModel, run_batch_scores

    two_scores(batch_store)
    with batch_store.connect() as conn:
        versions = {v.score_name: v.id for v in active_versions(conn)}
        ann, bob = find_lead(conn, external_id="ann"), find_lead(conn, external_id="bob")
    named = [
        NamedModel("analytics", versions["analytics"], loads_model(ANALYTICS)),
        NamedModel("core", versions["core"], loads_model(CORE)),
    ]
    job = BatchJob(
        engine=engine,
        events=StoreLocation(),
        leads=StoreLocation(),
        out=ParquetLocation(str(tmp_path / "out")),
        model=named[0].model,
        as_of=T0 + 3 * HOUR,
        db=str(batch_store.url),
    )
    results = run_batch_scores(job, named)
    assert [r.leads for r in results] == [2, 2]
    assert results[0].sql == results[1].sql and "score_index" in results[0].sql
    # ann 90 and bob 10 for analytics, 50 and 20 for core (hand-computed above), each in its own folder
    assert batch_scores(tmp_path / "out" / "analytics") == [(ann, 90.0), (bob, 10.0)]
    assert batch_scores(tmp_path / "out" / "core") == [(ann, 50.0), (bob, 20.0)]


def test_batch_score_refuses_several_scores_with_a_model_file_or_an_unknown_score(
    sqlite_store: Store, tmp_path: Path
) -> None:
    two_scores(sqlite_store)
    base = ["batch", "score", "--db", str(sqlite_store.url), "--events", "store", "--leads", "store",
            "--out", str(tmp_path / "x")]  # fmt: skip
    model_file = tmp_path / "core.yaml"
    model_file.write_text(CORE)
    with_file = CliRunner().invoke(cli, [*base, "--all-scores", "--model", str(model_file)])
    assert with_file.exit_code != 0 and "--model" in with_file.output
    unknown = CliRunner().invoke(cli, [*base, "--score", "core", "--score", "partners"])
    assert unknown.exit_code != 0 and "no score named 'partners'" in str(unknown.exception)
    assert not (tmp_path / "x").exists()


def test_getting_warmer_reads_the_score_named(store: Store) -> None:
    """Both leads had no history a week before T0 + 3 h, so each one's increase is its whole score."""
    from leadscore.lifecycle.reports import getting_warmer

    two_scores(store)
    now = T0 + 3 * HOUR
    with store.connect() as conn:
        warmer = {
            name: [
                (r["email"] or r["first_name"] or r["lead_id"], r["score_then"], r["score"], r["increase"])
                for r in getting_warmer(conn, now, score_name=name)
            ]
            for name in (None, "core", "analytics")
        }
        ann, bob = find_lead(conn, external_id="ann"), find_lead(conn, external_id="bob")
    # core: ann 0 → 50, bob 0 → 20; analytics: ann 0 → 90, bob 0 → 10; the primary is core (published first)
    assert warmer["core"] == [(ann, 0.0, 50.0, 50.0), (bob, 0.0, 20.0, 20.0)]
    assert warmer["analytics"] == [(ann, 0.0, 90.0, 90.0), (bob, 0.0, 10.0, 10.0)]
    assert warmer[None] == warmer["core"]


def test_reports_pick_the_score_they_read(store: Store) -> None:
    """The matrix, funnel and evaluation pages offer a score picker (two scores here) and read the score
    picked: the matrix of analytics puts ann in A1 and bob in D4, the one of core ann in B3 and bob in D3."""
    two_scores(store)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        pages = {
            path: client.get(path)
            for path in (
                "/leads/matrix",
                "/leads/matrix?score=analytics",
                "/leads/matrix?score=core&grade=D",
                "/funnel",
                "/funnel?score=analytics&by=utm_campaign",
                "/evaluation",
                "/evaluation?score=analytics&outcome=won",
                "/leads/matrix?score=partners",
                "/funnel?score=Bad-Name",
            )
        }
    assert all(r.status_code == 200 for p, r in pages.items() if "partners" not in p and "Bad" not in p)
    assert pages["/leads/matrix?score=partners"].status_code == 404
    assert pages["/funnel?score=Bad-Name"].status_code in (400, 422)

    def cell(html: str, grade: str, level: int) -> str:
        return html.split(f'aria-label="Grade {grade}, level {level}: ')[1].split(" leads")[0]

    core, analytics = pages["/leads/matrix"].text, pages["/leads/matrix?score=analytics"].text
    assert (cell(core, "B", 3), cell(core, "D", 3), cell(core, "A", 1), cell(core, "D", 4)) == (
        "1",
        "1",
        "0",
        "0",
    )
    assert (cell(analytics, "A", 1), cell(analytics, "D", 4), cell(analytics, "B", 3)) == ("1", "1", "0")
    assert "2 scored leads under the current filter" in analytics
    # the picker: core (the primary) first, the score picked selected, the page's filter kept (the matrix
    # itself shows every cell of the filter: grade D selects a cell, not the grid)
    assert '<option value="" selected>core (primary)</option>' in core
    assert '<option value="analytics" selected>analytics</option>' in analytics
    filtered = pages["/leads/matrix?score=core&grade=D"].text
    assert '<input type="hidden" name="grade" value="D">' in filtered
    funnel = pages["/funnel?score=analytics&by=utm_campaign"].text
    assert '<option value="analytics" selected>analytics</option>' in funnel
    assert '<input type="hidden" name="by" value="utm_campaign">' in funnel
    # evaluation scores the picked score's model (the analytics model here, core by default)
    assert "core@1 scored as of every" in pages["/evaluation"].text
    evaluation = pages["/evaluation?score=analytics&outcome=won"].text
    assert "analytics@1 scored as of every" in evaluation
    assert '<input type="hidden" name="score" value="analytics">' in evaluation


def test_reports_show_no_score_picker_for_one_score(store: Store) -> None:
    publish(store, loads_model(CORE), as_of=T0)
    ingest(store, events(), source="test", as_of=T0 + 3 * HOUR)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        for path in ("/leads/matrix", "/funnel", "/evaluation", "/leads"):
            response = client.get(path)
            assert response.status_code == 200 and 'name="score"' not in response.text, path


def test_evaluate_measures_the_score_named_against_outcomes(store: Store) -> None:
    """carl, a data analyst with no activity, scores 0 on core (fit 0, engagement 0) and 40 on analytics
    (fit 80, engagement 0). bob converts (an opportunity a day later), ann and carl do not. Core ranks ann
    50 > bob 20 > carl 0: bob beats one of two non-converters, ROC-AUC ½, average precision ½ (bob is 2nd).
    Analytics ranks ann 90 > carl 40 > bob 10: ROC-AUC 0, average precision ⅓ (bob is 3rd)."""
    from leadscore.store.schema import outcomes

    two_scores(store)
    carl = message("carl", 0, T0, type="identify", traits={"job_title": "Data Analyst"})
    ingest(store, [carl], source="test", as_of=T0 + 3 * HOUR)
    day = 24 * HOUR
    with store.begin() as conn:
        bob, carl_id = find_lead(conn, external_id="bob"), find_lead(conn, external_id="carl")
        # carl's loss 40 days on makes the data end late enough that every 30-day window has closed
        conn.execute(outcomes.insert(), [
            {"lead_id": bob, "kind": "opportunity", "at_ms": T0 + day, "source": "test", "recorded_ms": T0},
            {"lead_id": carl_id, "kind": "lost", "at_ms": T0 + 40 * day, "source": "test", "recorded_ms": T0},
        ])  # fmt: skip
    measured = {}
    for name in (None, "core", "analytics"):
        args = ["evaluate", "--db", str(store.url), "--json", "--since", "2024-05-01T03:00:00Z"]
        result = CliRunner().invoke(cli, args + (["--score", name] if name else []))
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        measured[name] = (out["model"], out["rows"], out["converted"], out["roc_auc"], out["pr_auc"])
    assert measured["core"] == measured[None] == ("core@1", 3, 1, 0.5, 0.5)
    assert measured["analytics"][:4] == ("analytics@1", 3, 1, 0.0)
    assert measured["analytics"][4] == pytest.approx(1 / 3)


# --- reports by score: each team's stages, hand-off queue and funnel (tests/two_teams.py; the numbers are
# worked out in tests/test_web_scores_browser.py's docstring)


def test_reports_count_each_scores_stages_and_leads(store: Store) -> None:
    from leadscore.lifecycle import reports
    from leadscore.lifecycle.score_stages import view_of
    from leadscore.scoring.pipeline import active_model
    from two_teams import build

    ids = build(store)
    name = {lead: user for user, lead in ids.items()}
    with store.connect() as conn:
        active = active_model(conn)
        assert active is not None and active.model.lifecycle is not None
        lifecycle = active.model.lifecycle
        views = {s: view_of(conn, lifecycle, s) for s in (None, "core", "analytics")}
        got = {
            s: {
                "funnel": [
                    (r["stage"], r["entered"], r["converted"])
                    for r in reports.funnel(conn, lifecycle, view=v)["stages"]
                ],
                "nurtured": [name[int(r["lead_id"])] for r in reports.nurtured(conn, lifecycle, v)],
                "nurtured_count": reports.count_in_stages(conn, list(lifecycle.nurture), v),
                "ready": sorted(
                    (name[int(r["lead_id"])], r["score"])
                    for r in reports.ready_for_handoff(conn, lifecycle, v)
                ),
                "ready_count": reports.count_ready(conn, lifecycle, v),
                "current": {
                    r["stage"]: r["current"] for r in reports.time_in_stage(conn, lifecycle, T0 + 9 * HOUR, v)
                },
            }
            for s, v in views.items()
        }
        whole = reports.funnel(conn, lifecycle)["stages"]
    # core: lead 6 (3 reach mql_core), mql_core 3 (all 3 reach ready), ready 3 (none reaches sql), sql 0
    assert got["core"]["funnel"] == [("lead", 6, 3), ("mql_core", 3, 3), ("ready", 3, 0), ("sql", 0, None)]
    assert got["core"]["nurtured"] == ["eve"] and got["core"]["nurtured_count"] == 1
    assert got["core"]["ready"] == [("carl", 55.0), ("frank", 55.0)] and got["core"]["ready_count"] == 2
    # in each stage now: bob in lead; carl and frank in ready; eve in nurture (dana and ann: analytics')
    assert got["core"]["current"] == {"lead": 1, "mql_core": 0, "ready": 2, "sql": 0, "nurture": 1}
    # analytics: lead 6 (2 reach mql_analytics), mql_analytics 2 (1 reaches ready), ready 1, sql 0
    assert got["analytics"]["funnel"] == [
        ("lead", 6, 2),
        ("mql_analytics", 2, 1),
        ("ready", 1, 0),
        ("sql", 0, None),
    ]
    assert got["analytics"]["nurtured"] == [] and got["analytics"]["nurtured_count"] == 0
    assert got["analytics"]["ready"] == [("ann", 90.0)] and got["analytics"]["ready_count"] == 1
    assert got["analytics"]["current"] == {"lead": 1, "mql_analytics": 1, "ready": 1, "sql": 0, "nurture": 0}
    # no score named: the primary's (core's); without a view every entry counts, as before
    assert got[None] == got["core"]
    assert [(r["stage"], r["entered"]) for r in whole] == [
        ("lead", 6),
        ("mql_core", 3),
        ("mql_analytics", 2),
        ("ready", 4),
        ("sql", 0),
    ]


def test_the_report_api_reads_the_score_named(store: Store) -> None:
    from two_teams import build

    ids = build(store)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "reports", 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    headers = {"Authorization": f"Bearer {token}"}
    with serving(app) as url, httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        core = client.get("/v1/reports/handoff").json()
        analytics = client.get("/v1/reports/handoff?score=analytics").json()
        funnel = client.get("/v1/reports/funnel?score=analytics").json()
        unknown = client.get("/v1/reports/funnel?score=partners")
        # an empty ?score= is the primary's report (core's), as on /v1/leads and the dashboard
        empty = {
            report: client.get(f"/v1/reports/{report}?score=")
            for report in ("handoff", "funnel", "nurtured", "warmer", "time-in-stage", "accounts")
        }
        primary = {report: client.get(f"/v1/reports/{report}").json() for report in empty}
    assert {r: e.status_code for r, e in empty.items()} == dict.fromkeys(empty, 200)
    assert sorted(r["lead_id"] for r in empty["handoff"].json()["leads"]) == sorted(
        [ids["carl"], ids["frank"]]
    )
    assert {r: e.json() for r, e in empty.items() if r != "time-in-stage"} == {
        r: p for r, p in primary.items() if r != "time-in-stage"
    }
    assert sorted(r["lead_id"] for r in core["leads"]) == sorted([ids["carl"], ids["frank"]])
    assert [(r["lead_id"], r["score"]) for r in analytics["leads"]] == [(ids["ann"], 90.0)]
    assert [(r["stage"], r["entered"]) for r in funnel["stages"]] == [
        ("lead", 6),
        ("mql_analytics", 2),
        ("ready", 1),
        ("sql", 0),
    ]
    assert unknown.status_code == 404 and "partners" in unknown.text
    # the CLI's report commands take --score the same way
    runner, db = CliRunner(), ["--db", str(store.url)]
    out = runner.invoke(cli, ["reports", "handoff", "--score", "analytics", "--format", "json", *db])
    assert out.exit_code == 0, out.output
    assert [(r["lead_id"], r["score"]) for r in json.loads(out.output)] == [(ids["ann"], 90.0)]
    out = runner.invoke(cli, ["reports", "nurtured", "--format", "json", *db])
    assert out.exit_code == 0, out.output
    assert [r["lead_id"] for r in json.loads(out.output)] == [ids["eve"]]


def test_a_scores_stages_are_those_its_gates_lead_into_and_the_shared_ones() -> None:
    """Pure: which stages and entries each score's reports count (lifecycle/score_stages.py)."""
    from leadscore.lifecycle.score_stages import ScoreView

    lifecycle = loads_model(CORE_LIFECYCLE).lifecycle
    assert lifecycle is not None
    core = ScoreView.of(lifecycle, "core", "core")
    analytics = ScoreView.of(lifecycle, "analytics", "core")
    assert (core.stages, core.own, core.others) == (("lead", "mql_core"), {"mql_core"}, {"mql_analytics"})
    assert analytics.stages == ("lead", "mql_analytics") and not analytics.whole
    # a lead that went lead → mql_core → lead → mql_analytics: its first entry into lead counts for both;
    # its return to lead counts for core (it came through mql_core), not for analytics (it came through
    # another score's stage only), its later mql_analytics for analytics only
    moves = ["lead", "mql_core", "lead", "mql_analytics"]
    assert core.counted(moves) == [True, True, True, False]
    assert analytics.counted(moves) == [True, False, False, True]
    # a score no gate names sees every stage and entry, as does the primary of a lifecycle naming none
    partners = ScoreView.of(lifecycle, "partners", "core")
    assert partners.whole and partners.stages == ("lead", "mql_core", "mql_analytics")
    assert partners.counted(moves) == [True] * 4
    unnamed = loads_model(CORE_LIFECYCLE.replace("score: core, ", "").replace("score: analytics, ", ""))
    assert unnamed.lifecycle is not None
    only = ScoreView.of(unnamed.lifecycle, "core", "core")
    assert only.whole and only.counted(moves) == [True] * 4
    # a gate that tests no score (inactivity alone) owns nothing: its stage is shared
    idle = CORE_LIFECYCLE.replace(
        "  actions:",
        "    - {id: idle, from: [mql_core, mql_analytics], to: lead, when: {inactive_for: 30d}}\n  actions:",
    )
    view = ScoreView.of(loads_model(idle).lifecycle, "analytics", "core")  # type: ignore[arg-type]
    assert view.stages == ("lead", "mql_analytics")


def test_publishing_warns_of_a_score_the_lifecycle_names_that_no_model_is(tmp_path: Path) -> None:
    """A gate naming a score with no published model never lets a lead in, and an action naming one never
    runs; a typo (``analytcs``) said nothing. ``model publish`` warns of each, with where it is named,
    until a model is published as that score."""
    runner = CliRunner()
    db = ["--db", str(tmp_path / "w.db")]
    core = tmp_path / "core.yaml"
    core.write_text(
        CORE_LIFECYCLE.replace(
            "{score: analytics, score_at_least: 60", "{score: analytcs, score_at_least: 60"
        )
    )
    analytics = tmp_path / "analytics.yaml"
    analytics.write_text(ANALYTICS)
    out = runner.invoke(cli, ["model", "publish", str(core), "--score", "core", *db])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "transition analytics_mql names the score 'analytcs', which has no published model" in text
    assert "action tell_analytics names the score 'analytics', which has no published model" in text
    out = runner.invoke(cli, ["model", "publish", str(analytics), "--score", "analytics", *db])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "'analytcs', which has no published model" in text  # the typo is still no score
    assert "'analytics', which has no published model" not in text  # that one is published now


@pytest.mark.parametrize("bad", ["Analytics", "a" * 64, "ana\x00lytics", "аnalytics", "1st", ""])
def test_a_segment_naming_a_score_that_cannot_be_one_is_refused_with_its_place(bad: str) -> None:
    """A segment's ``score`` is a score name as a gate's is (a lowercase letter, then up to 62 lowercase
    letters, digits or _): an upper-case letter, 64 characters, a NUL, a Cyrillic а, a leading digit or
    nothing is refused, naming the segment's line in the model."""
    from leadscore.errors import ModelValidationError

    text = CORE + (
        "lifecycle:\n  initial: lead\n  stages:\n    - {id: lead, name: Lead}\n  segments:\n"
        f"    - {{id: hot_x, name: Hot, score: {json.dumps(bad)}, bands: [hot]}}\n"
    )
    with pytest.raises(ModelValidationError) as caught:
        loads_model(text)
    message = str(caught.value)
    assert "score" in message and "segments" in message, message
    segment_line = text.splitlines().index(next(line for line in text.splitlines() if "hot_x" in line)) + 1
    assert f":{segment_line}:" in message, (segment_line, message)


def test_a_segments_members_stream_from_the_api_and_the_cli(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GET /v1/segments/{id}/members`` (JSON and CSV), ``segments export`` and ``segments list`` read the
    members a chunk of rows at a time (here one: every row its own chunk), never a segment whole: the hot
    analytics segment of ``test_a_segment_tests_the_score_it_names``, ann 90 then dana 80."""
    from leadscore.lifecycle import segments

    monkeypatch.setattr(segments, "CHUNK", 1)
    _segments_with_dana(store)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "crm", 0)
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        answer = httpx.get(f"{url}/v1/segments/hot_analytics/members", headers=auth)
        empty = httpx.get(f"{url}/v1/segments/hot/members", headers=auth)
        as_csv = httpx.get(f"{url}/v1/segments/hot_analytics/members?format=csv", headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["ok"], body["segment"]) == (True, "hot_analytics")
    assert [(m["external_id"], m["score"], m["grade"], m["band"]) for m in body["members"]] == [
        ("ann", 90.0, "A", "hot"),
        ("dana", 80.0, "A", "hot"),
    ]
    assert all(m["entered"].endswith("Z") and isinstance(m["entered_ms"], int) for m in body["members"])
    assert empty.json() == {"ok": True, "segment": "hot", "members": []}
    rows = [(r["external_id"], r["score"]) for r in csv.DictReader(io.StringIO(as_csv.text))]
    assert rows == [("ann", "90.0"), ("dana", "80.0")]
    listed = CliRunner().invoke(cli, ["segments", "list", "--db", str(store.url)])
    assert listed.exit_code == 0, listed.output
    sizes = {
        line.split("│")[1].strip(): line.split("│")[3].strip()
        for line in listed.output.splitlines()
        if line.count("│") >= 4
    }
    assert (sizes["hot_analytics"], sizes["hot"], sizes["top_analytics"]) == ("2", "0", "1")


def test_acceptance_counts_the_decisions_on_each_scores_hand_offs(store: Store) -> None:
    """Sales acceptance by score: a decision counts for the score whose gate handed the lead to sales (the
    entry into the stage it was decided in counts for that score, as the hand-off queue counts it).

    tests/two_teams.py: eve came through mql_core into ready and was rejected (bad_timing). Here gil, a
    marketing analyst with a demo, a webinar and a report, qualifies for both teams (core: fit 60, engagement
    40 + 10 = 50 → 55 ≥ 55; analytics: fit 80, engagement 80 + 20 = 100 → 90 ≥ 60), and the core gate is
    tried first: lead → mql_core → ready (grade B). Then sales rejects ann (handed off by the analytics
    gate: mql_analytics → ready) for no_budget and accepts carl and gil (both through mql_core).

    core (and no score named, the primary's): carl and gil accepted, eve rejected → 2 / 3 = 67 %, reasons
    bad_timing 1. analytics: ann rejected → 0 / 1 = 0 %, reasons no_budget 1. Every decision: 2 accepted,
    2 rejected."""
    from leadscore.lifecycle import reports
    from leadscore.lifecycle.feedback import give_feedback
    from leadscore.lifecycle.score_stages import view_of
    from leadscore.scoring.pipeline import active_model
    from two_teams import CORE as TEAMS_CORE
    from two_teams import MANAGER, build
    from two_teams import messages as team_messages

    ids = build(store)
    settings = Settings()
    later = T0 + 4 * HOUR
    gil = {"gil": ("Marketing Analyst", ["Demo Requested", "Webinar Joined", "Report Built"])}
    ingest(store, team_messages(gil), source="test", as_of=later)
    run_round(store, settings, now_ms=later, deliver=False)
    with store.connect() as conn:
        found = find_lead(conn, external_id="gil")
        assert found is not None
        ids["gil"] = int(found)
        assert [h["to_stage"] for h in read_stage_history(conn, ids["gil"])] == ["lead", "mql_core", "ready"]
    core = loads_model(TEAMS_CORE)
    decided = T0 + 5 * HOUR
    for user, decision, reason in (("ann", "rejected", "no_budget"), ("carl", "accepted", None),
                                   ("gil", "accepted", None)):  # fmt: skip
        give_feedback(store, core, ids[user], decision, reason=reason, note="", by=MANAGER, at_ms=decided,
                      settings=settings, now_ms=decided)  # fmt: skip
    core_rate = {"accepted": 2, "rejected": 1, "acceptance_rate": pytest.approx(2 / 3),
                 "reasons": [{"reason": "bad_timing", "count": 1}]}  # fmt: skip
    analytics_rate = {"accepted": 0, "rejected": 1, "acceptance_rate": 0.0,
                      "reasons": [{"reason": "no_budget", "count": 1}]}  # fmt: skip
    with store.connect() as conn:
        active = active_model(conn)
        assert active is not None and active.model.lifecycle is not None
        lifecycle = active.model.lifecycle
        by_score = {
            s: reports.acceptance(conn, view_of(conn, lifecycle, s)) for s in (None, "core", "analytics")
        }
        every = reports.acceptance(conn)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "reports", 0)
    assert by_score == {None: core_rate, "core": core_rate, "analytics": analytics_rate}
    assert (every["accepted"], every["rejected"]) == (2, 2)
    # the API, the funnel page's tile and reasons, and the CLI read the score picked the same way
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    headers = {"Authorization": f"Bearer {token}"}
    with serving(app) as url:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            api = {s: client.get(f"/v1/reports/acceptance{q}").json()
                   for s, q in (("", ""), ("core", "?score=core"), ("analytics", "?score=analytics"))}  # fmt: skip
            unknown = client.get("/v1/reports/acceptance?score=partners")
        with signed_in(url, MANAGER) as client:
            pages = {s: client.get(f"/funnel?score={s}").text for s in ("", "analytics")}
    assert api == {
        "": {"ok": True, **core_rate},
        "core": {"ok": True, **core_rate},
        "analytics": {"ok": True, **analytics_rate},
    }
    assert unknown.status_code == 404 and "partners" in unknown.text
    assert '<dd class="big" id="acceptance">67 %</dd>' in pages[""]
    assert "bad timing: 1" in pages[""] and "no budget" not in pages[""]
    assert '<dd class="big" id="acceptance">0 %</dd>' in pages["analytics"]
    assert "no budget: 1" in pages["analytics"] and "bad timing" not in pages["analytics"]
    runner, db = CliRunner(), ["--db", str(store.url)]
    for score, line, reason in (("core", "accepted 2, rejected 1, acceptance rate 67%", "bad_timing"),
                                ("analytics", "accepted 0, rejected 1, acceptance rate 0%", "no_budget")):  # fmt: skip
        out = runner.invoke(cli, ["reports", "acceptance", "--score", score, "--format", "json", *db])
        assert out.exit_code == 0, out.output
        assert out.output.splitlines()[0] == line
        assert json.loads("\n".join(out.output.splitlines()[1:])) == [{"reason": reason, "count": 1}]


def test_a_decision_is_the_score_whose_gate_handed_the_lead_over_then() -> None:
    """Pure: ``ScoreView.decided`` on tests/two_teams.py's lifecycle (mql_core is core's, mql_analytics
    analytics', ready and nurture shared). A lead that came through mql_analytics into ready, was rejected
    into nurture, went back to lead (a made-up path: the entries alone are read) and came through mql_core
    into ready again: core counts its entries lead, mql_core and the second ready (through its own stage
    then), analytics every entry but mql_core (it came through mql_analytics first)."""
    from leadscore.lifecycle.score_stages import ScoreView
    from two_teams import CORE as TEAMS_CORE

    lifecycle = loads_model(TEAMS_CORE).lifecycle
    assert lifecycle is not None
    core = ScoreView.of(lifecycle, "core", "core")
    analytics = ScoreView.of(lifecycle, "analytics", "core")
    path = [("lead", 0), ("mql_analytics", 10), ("ready", 20), ("nurture", 30), ("lead", 40), ("mql_core", 50),
            ("ready", 60)]  # fmt: skip
    # decided at 25 in ready: the stay entered at 20, through mql_analytics: analytics', not core's
    assert (core.decided(path, "ready", 25), analytics.decided(path, "ready", 25)) == (False, True)
    # decided at 20 (the entry's own time) too; at 65, the stay entered at 60: core's and analytics'
    assert (core.decided(path, "ready", 20), analytics.decided(path, "ready", 20)) == (False, True)
    assert (core.decided(path, "ready", 65), analytics.decided(path, "ready", 65)) == (True, True)
    # dated before any entry into ready: the first stay's
    assert (core.decided(path, "ready", 5), analytics.decided(path, "ready", 5)) == (False, True)
    # a lead handed over by the core gate alone
    straight = [("lead", 0), ("mql_core", 10), ("ready", 20)]
    assert (core.decided(straight, "ready", 30), analytics.decided(straight, "ready", 30)) == (True, False)
    # no entry recorded: a shared stage counts for both, another score's stage for its score only
    assert (core.decided([], "ready", 30), analytics.decided([], "ready", 30)) == (True, True)
    assert (core.decided([], "mql_analytics", 30), analytics.decided([], "mql_analytics", 30)) == (
        False,
        True,
    )
    # a score no gate names sees every decision
    assert ScoreView.of(lifecycle, "partners", "core").decided(straight, "ready", 30)

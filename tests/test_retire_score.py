"""Retiring a named score (issue #20): a product line dropped, its score stops being computed and offered,
and its record stays for audit; publishing a version of it again brings it back.

The stores and numbers are those of ``tests/test_named_scores.py`` (core, the primary, and analytics; fit
and engagement weighted ½ each). After analytics is retired bob joins a webinar (core: +10) and builds a
report (analytics: +80). Core: fit 0, engagement 40 + 10 = 50, score 25. Analytics, retired: stays 10 (fit
0, engagement 20); once published again: engagement 20 + 80 = 100, score ½·100 = 50.
"""

from __future__ import annotations

from html import unescape
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.errors import NotFoundError, StoreError
from leadscore.lifecycle.retire import retire_score
from leadscore.model import loads_model
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import ingest, publish, rescore_all
from leadscore.scoring.shadow import publish_shadow
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.alerts import list_alerts, open_alerts, raise_alert
from leadscore.store.audit import read_audit
from leadscore.store.keys import create_key
from leadscore.store.model_versions import active_versions, find_version, list_versions
from leadscore.store.schema import score_history, scores
from leadscore.store.score_names import list_scores, picker_names
from leadscore.store.shadows import shadow_versions
from leadscore.store.users import add_user
from live_server import serving
from test_named_scores import ANALYTICS, ANALYTICS_2, CORE, HOUR, NOW, T0, current, message, two_scores
from two_teams import CORE as TEAMS_CORE
from two_teams import MANAGER, build
from web_support import PASSWORD, csrf_of, signed_in

LATER = [
    message("bob", 2, T0 + 4 * HOUR, type="track", event="Webinar Joined"),
    message("bob", 3, T0 + 5 * HOUR, type="track", event="Report Built"),
]


def _rows(store: Store, table: object, name: str) -> int:
    with store.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.score_name == name)  # type: ignore[attr-defined]
        return int(conn.execute(query).scalar_one())


def test_a_retired_score_is_not_computed_nor_offered_and_its_record_stays(store: Store) -> None:
    two_scores(store)
    publish_shadow(store, loads_model(ANALYTICS_2), score_name="analytics", as_of=T0 + 3 * HOUR)
    history = _rows(store, score_history, "analytics")
    assert history > 0 and _rows(store, scores, "analytics") == 2

    retired = retire_score(store, "analytics", actor="ops@example.test")

    assert retired.label == "analytics@1"
    with store.connect() as conn:
        assert [v.score_name for v in active_versions(conn)] == ["core"]
        assert picker_names(conn) == []  # one live score: no picker
        assert [(s.name, s.retired) for s in list_scores(conn)] == [("core", False), ("analytics", True)]
        assert shadow_versions(conn) == {}  # its shadow stopped with it
        entry = read_audit(conn, 1)[0]
    assert (entry["action"], entry["target"], entry["actor"]) == (
        "model.retire",
        "analytics@1",
        "ops@example.test",
    )
    # events, full rescoring and the clock score core only; analytics' rows and history stay as they were
    ingest(store, LATER, source="test", as_of=T0 + 5 * HOUR)
    rescore_all(store, as_of=T0 + 6 * HOUR)
    tick(store, now=NOW)
    assert current(store, "bob", "core")["score"] == 25.0
    assert current(store, "bob", "analytics")["score"] == 10.0
    assert _rows(store, score_history, "analytics") == history and _rows(store, scores, "analytics") == 2

    # publishing it again (the same YAML: its version 1 again) brings it back, rescored as of now
    version, _ = publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0 + 6 * HOUR)
    assert version.label == "analytics@1"
    assert current(store, "bob", "analytics")["score"] == 50.0
    with store.connect() as conn:
        assert picker_names(conn) == ["core", "analytics"]
        assert [s.retired for s in list_scores(conn)] == [False, False]


def test_retiring_is_refused_for_the_primary_an_unknown_or_retired_score_and_one_the_lifecycle_names(
    store: Store,
) -> None:
    build(store)  # core's lifecycle: transitions analytics_mql and analytics_ready test analytics
    with pytest.raises(StoreError, match="'core' is the primary score"):
        retire_score(store, "core")
    with pytest.raises(NotFoundError, match="no score named 'partners'"):
        retire_score(store, "partners")
    with pytest.raises(StoreError) as named:
        retire_score(store, "analytics")
    assert "transition analytics_mql" in str(named.value) and "transition analytics_ready" in str(named.value)
    with store.connect() as conn:
        assert [v.score_name for v in active_versions(conn)] == ["core", "analytics"]
    # once nothing names it, it retires, and a second retirement says it is retired already
    publish(store, loads_model(TEAMS_CORE.replace("score: analytics", "score: core")), score_name="core")
    retire_score(store, "analytics")
    with pytest.raises(StoreError, match="'analytics' is retired already"):
        retire_score(store, "analytics")
    # and a lifecycle naming it is not published while it is retired (its gates would read frozen scores)
    with pytest.raises(StoreError, match="transition analytics_mql names 'analytics'"):
        publish(store, loads_model(TEAMS_CORE), score_name="core")
    with store.connect() as conn:
        assert active_versions(conn)[0].label == "core@2"


def test_the_cli_api_and_dashboard_retire_and_stop_listing_a_score(store: Store) -> None:
    two_scores(store)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "reader", 0)
        add_user(conn, MANAGER, "Mia Manager", "admin", hash_password(PASSWORD), 0)
    runner = CliRunner()
    db = ["--db", str(store.url)]
    refused = runner.invoke(cli, ["model", "retire", "--score", "core", *db])
    assert refused.exit_code != 0 and "'core' is the primary score" in str(
        refused.exception or refused.output
    )
    missing = runner.invoke(cli, ["model", "retire", *db])
    assert missing.exit_code != 0 and "--score" in missing.output

    out = runner.invoke(cli, ["model", "retire", "--score", "analytics", *db])
    assert out.exit_code == 0, out.output
    assert "retired the score 'analytics' (analytics@1)" in out.output
    listed = runner.invoke(cli, ["model", "list", "--score", "analytics", *db])
    assert listed.exit_code == 0 and "│  │ analytics │ analytics@1 │" in listed.output
    assert "the score 'analytics' is retired" in listed.output
    shown = runner.invoke(cli, ["model", "show", "--score", "analytics", *db])
    assert shown.exit_code != 0 and "the score 'analytics' is retired" in str(shown.exception or shown.output)
    batch = [
        "batch",
        "score",
        "--engine",
        "duckdb",
        "--events",
        "store",
        "--leads",
        "store",
        "--out",
        "store",
    ]
    batched = runner.invoke(cli, [*batch, "--score", "analytics", *db])
    assert batched.exit_code != 0 and "the score 'analytics' is retired" in str(
        batched.exception or batched.output
    )

    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        rows = httpx.get(f"{url}/v1/leads", headers=auth).json()["leads"]
        record = httpx.get(f"{url}/v1/leads/ann?score=analytics", headers=auth)
        with signed_in(url, MANAGER) as client:
            leads_page = client.get("/leads").text
            model_page = client.get("/model", params={"score": "analytics"}).text
    # every lead's scores list the live scores only; the retired one is read when named (its record)
    assert [set(r["scores"]) for r in rows] == [{"core"}, {"core"}]
    assert record.status_code == 200 and record.json()["score"]["score"] == 90.0
    assert '<select id="score" name="score">' not in leads_page
    assert "The analytics score is retired." in model_page
    # its page has no picker (one live score) but its forms still post it: a draft published there is its own
    assert 'name="score" value="analytics"' in model_page and 'action="/model/retire"' not in model_page


def test_the_model_page_retires_the_score_picked(store: Store) -> None:
    two_scores(store)
    with store.begin() as conn:
        add_user(conn, MANAGER, "Mia Manager", "admin", hash_password(PASSWORD), 0)
        add_user(conn, "sales@example.test", "Sam", "sales", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        with signed_in(url, "sales@example.test") as client:
            denied = client.post("/model/retire", data={"csrf_token": csrf_of(client), "score": "analytics"})
        with signed_in(url, MANAGER) as client:
            page = client.get("/model", params={"score": "analytics"}).text
            token = csrf_of(client)
            primary = client.post("/model/retire", data={"csrf_token": token, "score": ""})
            done = client.post("/model/retire", data={"csrf_token": token, "score": "analytics"})
            after = client.get(done.headers["location"]).text
    assert 'action="/model/retire"' in page
    assert denied.status_code == 403
    assert primary.status_code == 409 and "primary score" in primary.text
    assert done.status_code == 303
    assert "retired" in after and 'action="/model/retire"' not in after
    with store.connect() as conn:
        assert [v.score_name for v in active_versions(conn)] == ["core"]
    # a rollback to its version brings it back, as the retirement's message says
    back = CliRunner().invoke(
        cli, ["model", "rollback", "analytics@1", "--score", "analytics", "--db", str(store.url)]
    )
    assert back.exit_code == 0, back.output
    with store.connect() as conn:
        assert [v.score_name for v in active_versions(conn)] == ["core", "analytics"]


def test_a_shadow_needs_an_active_version_of_its_score_to_be_scored_beside(store: Store) -> None:
    # a shadow of a score never published, or of a retired one, was stored and scored on every event, and
    # `model compare` then refused it ("no active model to compare the shadow with")
    two_scores(store)
    with pytest.raises(NotFoundError, match="no score named 'partners'"):
        publish_shadow(store, loads_model(ANALYTICS_2), score_name="partners")
    retire_score(store, "analytics")
    with pytest.raises(StoreError, match="the score 'analytics' is retired"):
        publish_shadow(store, loads_model(ANALYTICS_2), score_name="analytics")
    with store.connect() as conn:
        assert shadow_versions(conn) == {}
        assert [v.label for v in list_versions(conn)] == ["analytics@1", "core@1"]


def test_a_retired_scores_open_alerts_are_cleared_and_kept(store: Store) -> None:
    # the health checks run for the active versions only, so an open alert of a retired score was never
    # cleared: every dashboard page's banner kept showing it
    two_scores(store)
    with store.begin() as conn:
        raise_alert(conn, "volume:analytics", 9.0, 5.0, "analytics: 9 MQLs a week", 1)
        raise_alert(conn, "volume", 9.0, 5.0, "core: 9 MQLs a week", 1)
    retire_score(store, "analytics")
    with store.connect() as conn:
        assert set(open_alerts(conn)) == {"volume"}
        [kept] = list_alerts(conn, score="analytics")
    assert kept["message"] == "analytics: 9 MQLs a week" and kept["cleared_ms"] is not None


def test_the_review_page_rolls_back_the_score_of_the_version_and_refuses_a_retired_name(store: Store) -> None:
    # a rollback of analytics landed on the primary's review page; a rollback refused (a lifecycle naming a
    # retired score) must answer 409 with the reason, not fail the request
    two_scores(store)
    publish(store, loads_model(ANALYTICS_2), score_name="analytics")
    lifecycle = "\n".join(
        [
            "lifecycle:",
            "  initial: lead",
            "  stages: [{id: lead, name: Lead}, {id: mql, name: MQL}]",
            "  transitions: [{id: hot_analytics, from: [lead], to: mql, when: {score: analytics, score_at_least: 60}}]",
        ]
    )
    named = publish(store, loads_model(CORE + lifecycle), score_name="core")[0]
    publish(store, loads_model(CORE), score_name="core")  # core@1 again: no lifecycle
    retire_score(store, "analytics")
    publish(store, loads_model(ANALYTICS_2), score_name="analytics")  # back, as analytics@2
    with store.begin() as conn:
        add_user(conn, MANAGER, "Mia Manager", "admin", hash_password(PASSWORD), 0)
        first = find_version(conn, "analytics@1")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        token = csrf_of(client)
        back = client.post(
            "/review/activate", data={"csrf_token": token, "version": first.id, "action": "rolled back"}
        )
        retire_score(store, "analytics")
        refused = client.post(
            "/review/activate", data={"csrf_token": token, "version": named.id, "action": "rolled back"}
        )
    assert back.status_code == 303 and back.headers["location"] == "/review?score=analytics"
    assert refused.status_code == 409 and "transition hot_analytics names 'analytics'" in unescape(
        refused.text
    )
    with store.connect() as conn:
        assert [v.label for v in active_versions(conn)] == ["core@1"]


def test_a_retired_score_named_in_the_address_is_shown_as_retired_in_the_picker(store: Store) -> None:
    # with core and partners live, /leads?score=analytics (a bookmark) lists analytics' record while the
    # picker, which no longer offers analytics, showed core selected
    two_scores(store)
    publish(
        store, loads_model(ANALYTICS.replace("model: analytics", "model: partners")), score_name="partners"
    )
    retire_score(store, "analytics")
    with store.begin() as conn:
        add_user(conn, MANAGER, "Mia Manager", "admin", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        retired, live = client.get("/leads?score=analytics").text, client.get("/leads").text
    assert '<option value="analytics" selected>analytics (retired)</option>' in retired
    assert '<option value="" selected>core (primary)</option>' not in retired
    assert '<option value="" selected>core (primary)</option>' in live and "(retired)" not in live


def test_backtesting_a_retired_or_unknown_score_says_why_there_is_no_baseline(
    store: Store, tmp_path: Path
) -> None:
    """``backtest --score NAME`` compares with the score's active version; a retired score has none: the
    backtest runs without a baseline and says so (it ran silently), and a name no score has is an error."""
    two_scores(store)
    retire_score(store, "analytics")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(ANALYTICS_2)
    args = [
        "backtest",
        str(candidate),
        "--db",
        str(store.url),
        "--since",
        "2024-04-25",
        "--until",
        "2024-05-02",
    ]
    retired = CliRunner().invoke(cli, [*args, "--score", "analytics"])
    assert retired.exit_code == 0, retired.output
    assert "warning: no baseline to compare with (the score 'analytics' is retired" in retired.output
    unknown = CliRunner().invoke(cli, [*args, "--score", "analytic"])
    assert unknown.exit_code != 0 and "no score named 'analytic'" in str(unknown.exception or unknown.output)

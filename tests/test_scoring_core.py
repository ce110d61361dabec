"""The scoring core end to end on both engines: ingest, identities, duplicates, hostile values, CLI views."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.compile import compile_model
from leadscore.errors import CompileError
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.run import all_leads, score
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import events, leads

T0 = parse_time("2024-05-01T12:00:00Z", "t")
DAY = 86_400_000

MODEL = """
model: core
fit:
  - id: hostile
    name: Hostile text is bound, never spliced into SQL
    when: {attribute: job_title, equals: "'; DROP TABLE leads; --"}
    points: 7
  - id: quote_regex
    name: Regex with quotes
    when: {attribute: job_title, regex: "o'brien|\\\\$\\\\$"}
    points: 3
engagement:
  - id: visit
    name: Page view
    event: {type: page}
    points: 2
scale: {fit_max: 10, engagement_max: 10, weights: {fit: 1, engagement: 1}}
"""


def msgs(*raw: dict[str, object]) -> list:
    return [normalise(m, received_ms=T0 + 10 * DAY) for m in raw]


def test_hostile_values_are_bound(store: Store) -> None:
    publish(store, loads_model(MODEL), as_of=T0)
    ingest(
        store,
        msgs(
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"title": "'; DROP TABLE leads; --"},
                "timestamp": "2024-04-01T00:00:00Z",
            },
            {
                "type": "identify",
                "userId": "u2",
                "traits": {"title": "Mr O'Brien"},
                "timestamp": "2024-04-01T00:00:00Z",
            },
        ),
        source="test",
        as_of=T0,
    )
    with store.connect() as conn:
        by_id = {lg.lead_id: lg for lg in score(conn, loads_model(MODEL), store.sources(), all_leads(T0))}
        result = {user: by_id[find_lead(conn, external_id=user)] for user in ("u1", "u2")}  # type: ignore[index]
        assert conn.execute(select(func.count()).select_from(leads)).scalar() == 2
    # u1: fit 7 of 10 → fit score 70; engagement 0; score = (70 + 0) / 2 = 35
    assert result["u1"].fit_score == pytest.approx(70.0)
    assert result["u1"].score == pytest.approx(35.0)
    # u2: regex matches "o'brien" case-insensitively: 3 of 10 → 30; score 15
    assert result["u2"].score == pytest.approx(15.0)


def test_duplicates_and_stitching(store: Store) -> None:
    publish(store, loads_model(MODEL), as_of=T0)
    anon = [
        {
            "type": "page",
            "anonymousId": "a1",
            "messageId": f"p{i}",
            "properties": {"path": "/x"},
            "timestamp": f"2024-04-0{i + 1}T00:00:00Z",
        }
        for i in range(3)
    ]
    first = ingest(store, msgs(*anon), source="test", as_of=T0)
    assert (first.accepted, first.duplicates, first.leads_rescored) == (3, 0, 0)  # nobody to score yet
    again = ingest(store, msgs(*anon), source="test", as_of=T0)
    assert (again.accepted, again.duplicates) == (0, 3)
    alias = ingest(
        store,
        msgs(
            {
                "type": "alias",
                "previousId": "a1",
                "userId": "u9",
                "messageId": "al",
                "timestamp": "2024-04-05T00:00:00Z",
            }
        ),
        source="test",
        as_of=T0,
    )
    assert alias.leads_rescored == 1
    with store.connect() as conn:
        (ledger,) = score(conn, loads_model(MODEL), store.sources(), all_leads(T0))
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 4
    # three anonymous page views stitched by the alias: 3 x 2 = 6 of 10 → engagement 60, score 30
    assert ledger.engagement_score == pytest.approx(60.0)
    assert ledger.score == pytest.approx(30.0)
    assert [(line.rule_id, line.matched) for line in ledger.lines] == [("visit", 3)]


def test_unknown_engine_fails_at_compile_time(store: Store) -> None:
    with pytest.raises(CompileError, match="unknown engine 'oracle'"):
        compile_model(loads_model(MODEL), store.sources(), all_leads(T0), engine="oracle")


def test_numeric_operator_on_text_field_fails_at_compile_time(store: Store) -> None:
    model = loads_model(
        "model: m\nfit:\n  - {id: r, name: R, when: {attribute: email_domain, gt: 3}, points: 1}\n"
    )
    with pytest.raises(CompileError, match="rule r: email_domain is a text field"):
        compile_model(model, store.sources(), all_leads(T0), engine=store.dialect)


@pytest.fixture
def linda_db(tmp_path: Path) -> str:
    """Linda's journey ingested through the Python API, as a SQLite file the CLI can open."""
    db = str(tmp_path / "cli.db")
    store = Store.from_url(db)
    publish(store, loads_model(Path("examples/linda/model.yaml").read_text()), as_of=T0)
    ingest(
        store,
        msgs(
            {
                "type": "page",
                "anonymousId": "a",
                "messageId": "b1",
                "properties": {"path": "/blog/one"},
                "timestamp": "2024-04-01T00:00:00Z",
            },
            {
                "type": "identify",
                "anonymousId": "a",
                "userId": "linda",
                "messageId": "id",
                "traits": {"email": "linda@example.se", "firstName": "Linda"},
                "timestamp": "2024-04-02T00:00:00Z",
            },
            {
                "type": "track",
                "userId": "linda",
                "messageId": "eb",
                "event": "Ebook Downloaded",
                "timestamp": "2024-04-02T00:01:00Z",
            },
        ),
        source="test",
    )
    store.dispose()
    return db


def test_explain_cli(linda_db: str) -> None:
    result = CliRunner().invoke(
        app, ["explain", "linda@example.se", "--db", linda_db, "--as-of", "2024-05-01"]
    )
    assert result.exit_code == 0, result.output
    assert "score 21.0" in result.output
    assert "total" in result.output and "21.00" in result.output
    # the events table: one row per event behind a line, with its share of the line
    assert re.search(r"ebook_download .*Ebook Downloaded.* ebook_download .* \+20\.00", result.output)
    data = json.loads(
        CliRunner().invoke(app, ["explain", "linda", "--db", linda_db, "--format", "json"]).output
    )
    assert data["score"] == 21.0
    assert {line["rule_id"]: line["score_points"] for line in data["lines"]} == {
        "blog_articles": 1.0,
        "ebook_download": 20.0,
    }
    assert [(e["rule_id"], e["message_id"], e["score_points"]) for e in data["events"]] == [
        ("blog_articles", "b1", 1.0),
        ("ebook_download", "eb", 20.0),
    ]
    lines = {line["rule_id"]: line for line in data["lines"]}
    assert [(e["message_id"], e["score_points"]) for e in lines["ebook_download"]["events"]] == [("eb", 20.0)]


def test_history_and_score_cli(linda_db: str) -> None:
    result = CliRunner().invoke(app, ["history", "linda", "--db", linda_db])
    assert result.exit_code == 0, result.output
    assert "score path: 0 → 1 → 21\n" in result.output  # the blog article (1), then the e-book (+20)
    out = (
        CliRunner()
        .invoke(app, ["score", "--db", linda_db, "--format", "csv", "--as-of", "2024-05-01"])
        .output
    )
    header, row = out.strip().splitlines()
    assert header.startswith("lead_id,email,name,company,score")
    assert row.startswith("1,linda@example.se,Linda,,21.0,0.0,21.0,D,4,cold,")


def test_model_publish_list_diff_cli(linda_db: str, tmp_path: Path) -> None:
    changed = Path("examples/linda/model.yaml").read_text().replace("points: 20", "points: 25")
    draft = tmp_path / "linda2.yaml"
    draft.write_text(changed)
    diff = CliRunner().invoke(app, ["model", "diff", "linda@1", str(draft), "--db", linda_db])
    assert diff.exit_code == 0, diff.output
    assert "ebook_download" in diff.output and "points: 20.0 → 25.0" in diff.output
    pub = CliRunner().invoke(app, ["model", "publish", str(draft), "--db", linda_db])
    assert "published linda@2" in pub.output
    listing = CliRunner().invoke(app, ["model", "list", "--db", linda_db]).output
    assert "linda@1" in listing and "linda@2" in listing
    history = CliRunner().invoke(app, ["history", "linda", "--db", linda_db]).output
    assert "model: published linda@2" in history
    assert "score path: 0 → 1 → 21 → 26" in history


PORTABLE = """
model: portable
fit:
  - id: city
    name: Gothenburg, any case
    when: {attribute: city, equals: göteborg}
    points: 10
  - id: vip_text
    name: A JSON true read as text
    when: {attribute: vip, equals: "true"}
    points: 1
  - id: vip_flag
    name: A JSON true read as a boolean
    when: {attribute: vip, equals: true}
    points: 2
scale: {fit_max: 100, engagement_max: 100, weights: {fit: 1, engagement: 0}}
"""


def test_text_semantics_agree_across_engines(store: Store) -> None:
    """Non-ASCII case folding and JSON booleans read as text give the same answer on every engine."""
    ingest(
        store,
        msgs(
            {
                "type": "identify",
                "userId": "u",
                "traits": {"city": "GÖTEBORG", "vip": True},
                "timestamp": "2024-04-01T00:00:00Z",
            }
        ),
        source="test",
    )
    with store.connect() as conn:
        (ledger,) = score(conn, loads_model(PORTABLE), store.sources(), all_leads(T0))
    assert {line.rule_id: line.value for line in ledger.lines} == {
        "city": 10.0,
        "vip_text": 1.0,
        "vip_flag": 2.0,
    }


def test_duplicate_message_changes_no_traits(store: Store) -> None:
    first = {
        "type": "identify",
        "userId": "u",
        "messageId": "same",
        "traits": {"city": "Oslo"},
        "timestamp": "2024-04-01T00:00:00Z",
    }
    ingest(store, msgs(first), source="test")
    report = ingest(store, msgs({**first, "traits": {"city": "Bergen"}}), source="test")
    assert report.duplicates == 1
    with store.connect() as conn:
        assert conn.execute(select(leads.c.attributes)).scalar_one() == {"city": "Oslo"}


def test_unportable_regex_is_a_validation_error() -> None:
    from leadscore.errors import ModelValidationError

    with pytest.raises(ModelValidationError, match=r"uses \\b: a word boundary in Python but a backspace"):
        loads_model(
            'model: m\nfit:\n  - {id: r, name: R, when: {attribute: t, regex: "\\\\bcmo\\\\b"}, points: 1}\n'
        )

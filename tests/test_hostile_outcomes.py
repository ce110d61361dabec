"""Outcomes and feedback from a CRM export, the REST API and the CLI, with values a store cannot hold as
meant (a NUL character, which PostgreSQL refuses in any text; an amount that is not a finite number; a
date before 1970; bytes that are not UTF-8): each is refused with its row or item and field, on SQLite and
PostgreSQL alike, and the good rows are recorded. These once failed the whole import (PostgreSQL, a
Latin-1 byte) or answered 500 (PostgreSQL), or stored ``inf`` (both) and ``NaN`` (PostgreSQL; SQLite
stored NULL)."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.cli.main import app
from leadscore.ingest.segment import normalise
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.lifecycle_tables import read_feedback
from leadscore.store.people import find_lead
from leadscore.store.schema import outcomes
from lifecycle_model import model, person, points
from live_server import serving

runner = CliRunner()
T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
DAY = 86_400_000
EXPORT = (
    b"Email,Outcome,Date,Amount,Reason\n"
    b"ann@a.example,lost,2024-05-03,,bad\x00reason\n"  # row 2
    b"ann@a.example,won,2024-05-04,inf,\n"  # row 3
    b"ann@a.example,won,2024-05-05,nan,\n"  # row 4
    b"ann@a.example,won,2024-05-06,1e999,\n"  # row 5
    b"ann@a.example,lost,2024-05-07,,Soci\xe9t\xe9\n"  # row 6: Latin-1 among UTF-8
    b"ann@a.example,won,0001-01-01,,\n"  # row 7
    b"ann@a.example,opportunity,2024-05-02,100,Caf\xc3\xa9\n"  # row 8: the good one
)


def stored(store: Store) -> set[tuple[object, ...]]:
    with store.connect() as conn:
        return {
            tuple(r)
            for r in conn.execute(
                select(
                    outcomes.c.lead_id,
                    outcomes.c.kind,
                    outcomes.c.at_ms,
                    outcomes.c.amount,
                    outcomes.c.reason,
                )
            )
        }


def test_an_export_with_unstorable_values_records_the_good_rows(store: Store, tmp_path: Path) -> None:
    ingest(store, [normalise({"type": "identify", "userId": "ann", "messageId": "id-ann",
                              "traits": {"email": "ann@a.example"}}, received_ms=T0)], source="test")  # fmt: skip
    path = tmp_path / "crm.csv"
    path.write_bytes(EXPORT)
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["outcomes", "import", str(path), "--db", url])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for line in (
        "crm.csv:2 field reason: has a NUL character (\\u0000)",
        "crm.csv:3 field amount: 'inf' is not a finite number",
        "crm.csv:4 field amount: 'nan' is not a finite number",
        "crm.csv:5 field amount: '1e999' is not a finite number",
        "crm.csv:6 field reason: not valid UTF-8 (byte 0xE9 at position 5)",
        "crm.csv:7 field date: '0001-01-01' is not a time between 1970-01-01 and 9999-12-31 (UTC)",
    ):
        assert line in result.output, (line, result.output)
    assert "1 outcomes recorded, 0 already known, 0 stage moves, 6 bad rows" in result.output
    assert result.exit_code == 1
    with store.connect() as conn:
        ann = find_lead(conn, external_id="ann")
    assert stored(store) == {(ann, "opportunity", T0 + DAY, 100.0, "Café")}


def test_the_api_refuses_unstorable_outcomes_and_feedback_per_item(store: Store) -> None:
    publish(store, model())
    ingest(store, [normalise(m, received_ms=T0 + 2 * 3_600_000) for m in [person("sven"), *points("sven", 64)]],
           source="test")  # fmt: skip
    with store.begin() as conn:
        _, admin = create_key(conn, "admin", "crm", 0)
    bearer = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    api = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=10) as client:
        body = (
            '{"outcomes": ['
            '{"lead": "sven", "kind": "lost", "at": "2024-05-03", "reason": "bad\\u0000reason"},'
            '{"lead": "sven", "kind": "won", "at": "2024-05-04", "amount": Infinity},'
            '{"lead": "sven", "kind": "won", "at": "1000-01-01"},'
            '{"lead": "sven", "kind": "opportunity", "at": "2024-05-02", "amount": 100}'
            "]}"
        )
        r = client.post("/v1/outcomes", content=body, headers=bearer)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [(x["index"], x["ok"], x.get("message")) for x in results[:3]] == [
            (0, False, "field reason: has a NUL character (\\u0000)"),
            (1, False, "field amount: inf is not a finite number"),
            (2, False, "field at: '1000-01-01' is not a time between 1970-01-01 and 9999-12-31 (UTC)"),
        ]
        assert results[3]["ok"] is True
        for field, feedback in (
            ("note", '{"decision": "accept", "by": "erik", "note": "n\\u0000"}'),
            ("by", '{"decision": "accept", "by": "e\\u0000rik"}'),
        ):
            r = client.post("/v1/leads/sven/feedback", content=feedback, headers=bearer)
            assert r.status_code == 422, r.text
            assert r.json()["errors"] == [{"field": field, "message": "has a NUL character (\\u0000)"}]
    with store.connect() as conn:
        sven = find_lead(conn, external_id="sven")
        assert read_feedback(conn) == []
    assert {(k, a) for _, k, _, a, _ in stored(store)} == {("opportunity", 100.0)}
    assert all(a is None or math.isfinite(a) for *_, a, _ in stored(store)) and sven is not None


def test_an_outcome_or_decision_dated_in_the_future_is_refused_with_its_row(
    store: Store, tmp_path: Path
) -> None:
    """A close date typed with the wrong year (9000) would move the lead's stage at a time still to come:
    its stage now and its history would disagree for 7,000 years. Refused, per row or item, like an
    event more than a day ahead; the good row beside it is recorded, and nothing of the decision."""
    publish(store, model())
    ingest(store, [normalise(m, received_ms=T0) for m in [person("sven"), *points("sven", 64)]],
           source="test")  # fmt: skip
    path = tmp_path / "crm.csv"
    path.write_bytes(
        b"Email,Outcome,Date,Amount\n"
        b"sven@sven.example,won,9000-01-01,10\n"  # row 2: the future
        b"sven@sven.example,opportunity,2024-05-02,100\n"  # row 3
    )
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["outcomes", "import", str(path), "--db", url])
    assert "crm.csv:2 field at: '9000-01-01' is more than 24 h after now" in result.output, result.output
    assert "1 outcomes recorded, 0 already known, 0 stage moves, 1 bad rows" in result.output
    assert result.exit_code == 1
    with store.begin() as conn:
        _, admin = create_key(conn, "admin", "crm", 0)
    bearer = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    api = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=10) as client:
        body = '{"outcomes": [{"lead": "sven", "kind": "lost", "at": "9000-01-02"}]}'
        r = client.post("/v1/outcomes", content=body, headers=bearer)
        assert r.status_code == 200, r.text
        [item] = r.json()["results"]
        assert item["ok"] is False
        assert item["message"].startswith("field at: '9000-01-02' is more than 24 h after now")
        feedback = '{"decision": "accept", "by": "erik", "at": "9000-01-03T00:00:00Z"}'
        r = client.post("/v1/leads/sven/feedback", content=feedback, headers=bearer)
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["field"] == "at" and error["message"].startswith("'9000-01-03' is more than 24 h")
    with store.connect() as conn:
        sven = find_lead(conn, external_id="sven")
        assert read_feedback(conn) == []
    assert stored(store) == {(sven, "opportunity", T0 + DAY, 100.0, None)}


def test_an_export_with_a_long_cell_and_a_stray_quote_records_the_good_rows(
    store: Store, tmp_path: Path
) -> None:
    """A 200,000-character reason (past the csv module's field limit) stopped the whole import with
    ``_csv.Error``; a quote that never closes made the rows after it one reason (an unknown outcome). Each
    loses its own row only, named, and the others are recorded, as lead imports read a file
    (``ingest.csv_import``)."""
    people = ("ann", "bob", "dora", "eve")
    ingest(store, [normalise({"type": "identify", "userId": p, "messageId": f"id-{p}",
                              "traits": {"email": f"{p}@{p[0]}.example"}}, received_ms=T0) for p in people],
           source="test")  # fmt: skip
    path = tmp_path / "crm.csv"
    path.write_bytes(
        b"Email,Outcome,Date,Reason\n"
        b"ann@a.example,won,2024-05-02,\n"  # row 2
        b"bob@b.example,lost,2024-05-03," + b"x" * 200_000 + b"\n"  # row 3
        b'bob@b.example,lost,2024-05-03,"never closed\n'  # row 4
        b"dora@d.example,won,2024-05-04,\n"  # row 5
        b"eve@e.example,won,2024-05-05,\n"  # row 6
    )
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["outcomes", "import", str(path), "--db", url])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for line in (
        "crm.csv:3: the row is longer than 131,072 characters (the most a row may hold)",
        "crm.csv:4 field reason: a quote opened in this cell is never closed; the lines after it are read as rows",
    ):
        assert line in result.output, (line, result.output)
    assert "3 outcomes recorded, 0 already known, 0 stage moves, 2 bad rows" in result.output
    with store.connect() as conn:
        ids = {p: find_lead(conn, external_id=p) for p in people}
    assert stored(store) == {
        (ids["ann"], "won", T0 + DAY, None, None),
        (ids["dora"], "won", T0 + 3 * DAY, None, None),
        (ids["eve"], "won", T0 + 4 * DAY, None, None),
    }

"""Erasure with ``--suppress`` (Segment's "delete and suppress"): her user and anonymous ids are kept as
peppered hashes, and whatever names her afterwards (the tracking API through the processor, ``import
events``, a CSV lead import) is dropped before anything is stored, counted, until ``privacy unsuppress``.
Erasure without it keeps the old behaviour: she comes back as a new lead."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.ingest import jsonl_import
from leadscore.ingest.csv_import import import_leads
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.privacy.erase import erase, lift_suppression, mentions
from leadscore.privacy.export import export_person
from leadscore.privacy.person import find_person
from leadscore.scoring.pipeline import Backfill, ingest, publish
from leadscore.scoring.processor import process_pending
from leadscore.settings import Settings
from leadscore.store import Store, counters
from leadscore.store.audit import read_audit
from leadscore.store.event_log import stored_message_ids, waiting_events
from leadscore.store.keys import create_key
from leadscore.store.results import read_current
from leadscore.store.schema import events, leads, tracking_suppressions
from live_server import tracking
from suppression_support import pepper, peppered  # noqa: F401  (pepper: autouse)
from test_api_tracking import basic, wait_until

NOW = parse_time("2024-06-01T00:00:00Z", "now")
DAY = 86_400_000
MODEL = """
model: suppress
engagement:
  - {id: pricing, name: Pricing page, event: {type: page}, where: {property: path, prefix: /pricing}, points: 30}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""
EMAIL, USER, ANON = "erin.zapata@example.org", "usr-erin-4711", "anon-erin-99"


def _erin(store: Store) -> None:
    """Erin: an anonymous page view, then an identify linking her user id and e-mail."""
    publish(store, loads_model(MODEL), as_of=NOW)
    messages = [
        {"type": "page", "anonymousId": ANON, "messageId": "e1", "properties": {"path": "/pricing"},
         "timestamp": NOW - 2 * DAY},
        {"type": "identify", "anonymousId": ANON, "userId": USER, "messageId": "e2", "timestamp": NOW - DAY,
         "traits": {"email": EMAIL, "firstName": "Erin"}},
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=NOW) for m in messages], source="test", as_of=NOW)


def _erase(store: Store, *, suppress: bool) -> None:
    with store.connect() as conn:
        who = find_person(conn, EMAIL)
    erase(store, who, Settings().suppression_pepper, NOW, "test", suppress_ids=suppress)


def _after() -> list[dict[str, Any]]:
    """Five messages naming her (user id, anonymous id, an alias's previous id), then Bob's page view."""
    return [
        {"type": "track", "userId": USER, "event": "Demo Requested", "messageId": "s1", "timestamp": NOW},
        {"type": "page", "anonymousId": ANON, "messageId": "s2", "properties": {"path": "/pricing"},
         "timestamp": NOW},
        {"type": "identify", "userId": USER, "messageId": "s3", "traits": {"email": EMAIL}, "timestamp": NOW},
        {"type": "identify", "userId": "usr-new", "anonymousId": ANON, "messageId": "s4", "timestamp": NOW},
        {"type": "alias", "userId": "usr-new", "previousId": ANON, "messageId": "s5", "timestamp": NOW},
        {"type": "page", "userId": "usr-bob", "messageId": "b1", "properties": {"path": "/pricing"},
         "timestamp": NOW},
    ]  # fmt: skip


def _lead_ids(store: Store) -> dict[str | None, int]:
    with store.connect() as conn:
        return {ext: lid for lid, ext in conn.execute(select(leads.c.id, leads.c.external_id)).all()}


def _score(store: Store, lead_id: int) -> float:
    with store.connect() as conn:
        current, _ = read_current(conn, lead_id)
    assert current is not None
    return float(current["score"])


def _suppressed_total(store: Store) -> int:
    with store.connect() as conn:
        return counters.read(conn).get(counters.SUPPRESSED, 0)


def test_erase_with_suppress_keeps_only_hashes_of_her_keys(store: Store) -> None:
    _erin(store)
    _erase(store, suppress=True)
    with store.connect() as conn:
        rows = conn.execute(select(tracking_suppressions)).mappings().all()
        # her two identity keys and her address (``e:``), as HMAC-SHA256 under the pepper; her address's
        # hash beside each, to match a message's address and for unsuppress
        assert {r["key_hash"] for r in rows} == {
            peppered(f"u:{USER}"),
            peppered(f"a:{ANON}"),
            peppered(f"e:{EMAIL}"),
        }
        assert {r["email_hash"] for r in rows} == {peppered(EMAIL)}
        assert len({r["person"] for r in rows}) == 1
        assert mentions(conn, (EMAIL, USER, ANON, "Erin")) == {}  # no id of hers anywhere
        entry = next(e for e in read_audit(conn) if e["action"] == "privacy.erase")
        assert entry["details"]["suppressed_keys"] == 2 and entry["target"] == rows[0]["person"]
        assert entry["details"]["suppressed_addresses"] == 1


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, str, Store]]:
    _erin(store)
    with store.begin() as conn:
        _, read = create_key(conn, "read", "ops", 0)
    with tracking(store) as (url, write):
        yield url, write, read, store


def _send(url: str, write: str, batch: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=url) as client:
        r = client.post("/v1/batch", json={"batch": batch}, headers=basic(write))
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == len(batch)  # acknowledged: the drop happens when processed


def _drained(store: Store) -> bool:
    with store.connect() as conn:
        return waiting_events(conn) == 0


def test_her_messages_over_http_are_dropped_and_bobs_are_scored(api: tuple[str, str, str, Store]) -> None:
    url, write, read, store = api
    _erase(store, suppress=True)
    _send(url, write, _after())
    wait_until(lambda: _drained(store) and _suppressed_total(store) == 5)
    time.sleep(0.2)  # a processor still saving would show below
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"b1"}  # none of s1..s5, not even in the inbox
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 1
    ids = _lead_ids(store)
    assert set(ids) == {"usr-bob"}  # no lead of hers, nor of usr-new (whose messages named her)
    assert wait_until(lambda: _score(store, ids["usr-bob"]) == 30)  # a /pricing page: 30 of 100
    with httpx.Client(base_url=url) as client:
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {read}"}).text
    assert "leadscore_events_suppressed_total 5" in metrics


def test_unsuppress_lets_her_back(store: Store) -> None:
    _erin(store)
    _erase(store, suppress=True)
    with store.connect() as conn:
        who = conn.execute(select(tracking_suppressions.c.person)).scalars().first()
    # by her anonymous id: both keys and the address the erasure suppressed are lifted
    assert lift_suppression(store, ANON, Settings().suppression_pepper, NOW, "test") == 3
    assert lift_suppression(store, ANON, Settings().suppression_pepper, NOW, "test") == 0
    ingest(store, [normalise(m, received_ms=NOW) for m in _after()], source="test", as_of=NOW)
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"s1", "s2", "s3", "s4", "s5", "b1"}
        entry = next(e for e in read_audit(conn) if e["action"] == "privacy.unsuppress")
        assert entry["target"] == who and entry["details"] == {"lifted": 3}
    assert {USER, "usr-bob"} <= set(_lead_ids(store))


def test_erase_without_suppress_lets_her_come_back_as_new(store: Store) -> None:
    _erin(store)
    _erase(store, suppress=False)
    report = ingest(store, [normalise(m, received_ms=NOW) for m in _after()], source="test", as_of=NOW)
    assert (report.accepted, report.suppressed) == (6, 0)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tracking_suppressions)).scalar() == 0
    assert {USER, "usr-bob"} <= set(_lead_ids(store))


def test_the_processor_drops_her_messages_with_two_statements_per_batch(store: Store) -> None:
    """Both processors (SQLite's snapshot batch, PostgreSQL's turn): her messages are not logged, Bob's
    are; the suppression table is read once to see it is not empty and once for the batch's keys."""
    _erin(store)
    _erase(store, suppress=True)
    from leadscore.ingest.apply import event_row
    from leadscore.ingest.committer import GroupCommitter

    bobs = [
        {"type": "page", "userId": f"usr-b{i}", "messageId": f"b{i}", "timestamp": NOW} for i in range(40)
    ]
    committer = GroupCommitter(store).start()
    rows = [event_row(normalise(m, received_ms=NOW), "api") for m in [*_after()[:5], *bobs]]
    committer.submit(rows).result()
    committer.stop()
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "tracking_suppressions" in statement:
            reads.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert process_pending(store, limit=1000) == 45
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(reads) == 2
    with store.connect() as conn:
        assert stored_message_ids(conn) == {f"b{i}" for i in range(40)}
    assert _suppressed_total(store) == 5


def test_with_no_one_suppressed_the_processor_asks_once_a_batch(store: Store) -> None:
    """SQLite: one probe of the empty table; PostgreSQL: the claim's statement asks, no statement of its
    own."""
    from leadscore.ingest.apply import event_row
    from leadscore.ingest.committer import GroupCommitter

    publish(store, loads_model(MODEL), as_of=NOW)
    committer = GroupCommitter(store).start()
    committer.submit([event_row(normalise(m, received_ms=NOW), "api") for m in _after()]).result()
    committer.stop()
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "tracking_suppressions" in statement:
            reads.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert process_pending(store, limit=1000) == 6
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(reads) == 1
    if store.dialect == "postgresql":
        assert "DELETE FROM inbox" in reads[0]
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"s1", "s2", "s3", "s4", "s5", "b1"}


def test_an_empty_suppression_table_is_one_probe_per_batch(store: Store) -> None:
    publish(store, loads_model(MODEL), as_of=NOW)
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "tracking_suppressions" in statement:
            reads.append(statement)

    messages = [normalise(m, received_ms=NOW) for m in _after()]
    event.listen(store.engine, "before_cursor_execute", count)
    try:
        report = ingest(store, messages, source="test", as_of=NOW)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(reads) == 1 and report.accepted == 6


def test_import_events_drops_her_lines(store: Store, tmp_path: Path) -> None:
    _erin(store)
    _erase(store, suppress=True)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({**m, "timestamp": NOW}) + "\n" for m in _after()))
    backfill = Backfill(store, source="import", cause_ref="import events.jsonl")
    report = jsonl_import.import_events(path, backfill.add)
    backfill.finish()
    assert (report.lines, report.accepted, report.suppressed, report.rejected) == (6, 1, 5, 0)
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"b1"}
    ids = _lead_ids(store)
    assert set(ids) == {"usr-bob"} and _score(store, ids["usr-bob"]) == 30


def test_csv_lead_import_skips_her_row(store: Store, tmp_path: Path) -> None:
    _erin(store)
    _erase(store, suppress=True)
    path = tmp_path / "leads.csv"
    path.write_text(
        f"email,user_id,first_name\nbob@example.com,usr-bob,Bob\n{EMAIL},{USER},Erin\nx@example.com,,X\n"
    )
    report = import_leads(store, path)
    # header = row 1: Bob row 2, Erin row 3 (skipped, not an error), X row 4 (no user id: imported)
    assert (report.rows, report.created, report.rejected, report.suppressed) == (3, 2, 0, 1)
    assert [(p.line, p.field) for p in report.skipped] == [(3, "user_id")]
    assert "erased with --suppress" in report.skipped[0].message
    assert set(_lead_ids(store)) == {"usr-bob", None}


def test_export_shows_no_suppression(store: Store) -> None:
    _erin(store)
    _erase(store, suppress=True)
    ingest(store, [normalise(m, received_ms=NOW) for m in _after()], source="test", as_of=NOW)
    with store.connect() as conn:
        data = export_person(conn, find_person(conn, "usr-bob"), store.sources(), None, NOW)
    assert "tracking_suppressions" not in json.dumps(data, default=str)


def test_the_cli_erases_with_suppress_and_unsuppresses(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    store = Store.from_url(db)
    _erin(store)
    store.dispose()
    runner = CliRunner()
    result = runner.invoke(app, ["privacy", "erase", EMAIL, "--suppress", "--yes", "--db", db])
    assert result.exit_code == 0, result.output
    assert "suppressed: 2 of their ids and 1 of their e-mail addresses" in " ".join(result.output.split())
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in _after()))
    result = runner.invoke(app, ["import", "events", str(path), "--db", db])
    assert result.exit_code == 0, result.output
    csv_path = tmp_path / "leads.csv"
    csv_path.write_text(f"email,user_id\n{EMAIL},{USER}\n")
    result = runner.invoke(app, ["import", "leads", str(csv_path), "--db", db])
    assert result.exit_code == 0, result.output
    assert "skipped row 2" in " ".join(result.output.split())
    result = runner.invoke(app, ["privacy", "unsuppress", EMAIL, "--db", db])
    assert result.exit_code == 0 and "lifted: 3" in result.output, result.output
    result = runner.invoke(app, ["privacy", "unsuppress", EMAIL, "--db", db])
    assert result.exit_code == 1 and "nothing suppressed" in result.output
    result = runner.invoke(app, ["import", "leads", str(csv_path), "--db", db])
    assert result.exit_code == 0, result.output
    store = Store.from_url(db)
    assert set(_lead_ids(store)) == {"usr-bob", USER}
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"b1"}
        assert all(USER not in str(e) and EMAIL not in str(e) for e in read_audit(conn))
    store.dispose()

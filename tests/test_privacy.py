"""GDPR: export everything about a person, erase them without a trace, IP protection, retention."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import GroupCommitter
from leadscore.ingest.ip import protect_ip
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.privacy.erase import erase_person, mentions
from leadscore.privacy.export import export_person
from leadscore.privacy.person import find_person
from leadscore.privacy.retention import apply_retention
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.processor import process_pending
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.event_log import mark_pending, stored_message_ids, waiting_events, waiting_rows
from leadscore.store.schema import events, leads, outcomes, scores

NOW = parse_time("2024-06-01T00:00:00Z", "now")
DAY = 86_400_000
MODEL = """
model: privacy
fit:
  - {id: vp, name: VP, description: Senior buyers decide, when: {attribute: job_title, contains: vp}, points: 10}
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 5}
scale: {fit_max: 10, engagement_max: 20, bands: {hot: 70, warm: 20}}
"""
ERIN = ("erin.zapata@example.org", "usr-erin-4711", "anon-erin-99", "Erin Zapata")


def _people(store: Store) -> None:
    email, user, anon, name = ERIN
    first, last = name.split()
    messages = [
        {
            "type": "page",
            "anonymousId": anon,
            "messageId": "e1",
            "properties": {"path": "/a"},
            "timestamp": NOW - 9 * DAY,
            "context": {"ip": "203.0.113.77"},
        },
        {
            "type": "identify",
            "anonymousId": anon,
            "userId": user,
            "messageId": "e2",
            "timestamp": NOW - 8 * DAY,
            "traits": {"email": email, "firstName": first, "lastName": last, "title": "VP Sales"},
        },
        {
            "type": "track",
            "userId": user,
            "messageId": "e3",
            "event": "Form Submitted",
            "timestamp": NOW - 400 * DAY,
            "properties": {"email": email},
        },
        {
            "type": "identify",
            "userId": "usr-other-1234",
            "messageId": "o1",
            "timestamp": NOW - 8 * DAY,
            "traits": {"email": "other.person@example.org", "firstName": "Otto", "lastName": "Other"},
        },
        {
            "type": "page",
            "userId": "usr-other-1234",
            "messageId": "o2",
            "properties": {"path": "/b"},
            "timestamp": NOW - 500 * DAY,
        },
    ]
    publish(store, loads_model(MODEL), as_of=NOW)
    ingest(store, [normalise(m, received_ms=NOW) for m in messages], source="test", as_of=NOW)
    with store.begin() as conn:
        lead_id = find_person(conn, email).lead_id
        conn.execute(
            outcomes.insert().values(
                lead_id=lead_id,
                kind="won",
                at_ms=NOW,
                amount=1000.0,
                reason=None,
                source="test",
                recorded_ms=NOW,
            )
        )
        audit(conn, NOW, "ann@example.com", "leads.export", email, note=f"exported {name}")


def test_ip_addresses_are_truncated_on_ingest(store: Store) -> None:
    _people(store)
    with store.connect() as conn:
        context = conn.execute(select(events.c.context).where(events.c.message_id == "e1")).scalar_one()
    assert context["ip"] == "203.0.113.0"
    assert protect_ip("2001:db8:abcd:12:1::5", "truncate") == "2001:db8:abcd::"
    assert protect_ip("203.0.113.77", "hash", "k" * 40) != protect_ip("203.0.113.78", "hash", "k" * 40)
    with pytest.raises(ValueError, match="needs a secret"):
        protect_ip("203.0.113.77", "hash", "")


def _by_ipaddress(text: str) -> str | None:
    """IPv4 truncation the slow, obviously right way: the reference for the fast path."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if address.version != 4:
        return "not v4"
    return str(ipaddress.ip_network(f"{address}/24", strict=False).network_address)


OCTET = st.one_of(
    st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "1e2", "-1", "", " 1", "٣", "0x1"])
)


@given(st.lists(OCTET, min_size=3, max_size=5).map(".".join) | st.ip_addresses(v=4).map(str))
def test_ipv4_truncation_fast_path_agrees_with_ipaddress(text: str) -> None:
    expected = _by_ipaddress(text)
    if expected != "not v4":
        assert protect_ip(text, "truncate") == expected
    assert protect_ip("198.51.100.255", "truncate") == "198.51.100.0"
    assert protect_ip("01.2.3.4", "truncate") is None  # leading zeros: refused, as ipaddress does


def test_erase_leaves_no_trace_and_keeps_others(store: Store) -> None:
    _people(store)
    with store.begin() as conn:
        person = find_person(conn, ERIN[0])
        assert set(person.identifiers) == set(ERIN)
        assert mentions(conn, person.identifiers)  # before: she is everywhere
        report = erase_person(conn, person, "", NOW)
    assert report.clean, report.remaining
    assert (
        report.deleted["events"] == 3 and report.deleted["leads"] == 1 and report.redacted == {"audit_log": 1}
    )
    with store.connect() as conn:
        # the whole database, every text and JSON column: no e-mail, id or name of hers
        assert mentions(conn, ERIN) == {}
        assert conn.execute(select(func.count()).select_from(leads)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 2
        assert conn.execute(select(func.count()).select_from(scores)).scalar() == 1


def _waiting(store: Store) -> None:
    """Events acknowledged but not yet processed: in one inbox row, Erin's next to someone else's."""
    email, user, anon, _ = ERIN
    messages = [
        {"type": "page", "userId": user, "messageId": "w1", "timestamp": NOW - DAY},
        {
            "type": "page",
            "anonymousId": "anon-new",
            "messageId": "w2",
            "timestamp": NOW - 2 * DAY,
            "properties": {"path": "/contact", "note": f"from {email.upper()}"},
        },
        {"type": "page", "userId": "usr-other-1234", "messageId": "w3", "timestamp": NOW - DAY},
        {"type": "page", "userId": "usr-other-1234", "messageId": "w4", "timestamp": NOW - 600 * DAY},
        {"type": "page", "anonymousId": anon, "messageId": "w5", "timestamp": NOW - DAY},
    ]
    committer = GroupCommitter(store).start()
    committer.submit([event_row(normalise(m, received_ms=NOW), "api") for m in messages]).result()
    committer.stop()


def test_erase_takes_the_persons_waiting_events_and_keeps_the_others(store: Store) -> None:
    _people(store)
    _waiting(store)
    with store.begin() as conn:
        assert waiting_events(conn) == 5
        report = erase_person(conn, find_person(conn, ERIN[0]), "", NOW)
        found = mentions(conn, report.identifiers)
    assert report.clean, report.remaining
    # w1 by user id, w5 by anonymous id; w2 is another visitor's page view that names her (in capitals):
    # kept (someone else's data, not hers by any key) and reported as a mention for review
    assert report.deleted["inbox"] == 2
    assert found == {"inbox.rows": 1}
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"o1", "o2", "w2", "w3", "w4"}
    # what is left is processed as usual
    assert process_pending(store) == 3
    with store.connect() as conn:
        assert waiting_events(conn) == 0
        assert set(conn.execute(select(events.c.message_id)).scalars()) == {"o1", "o2", "w2", "w3", "w4"}


def test_retention_reaches_waiting_events(store: Store) -> None:
    _people(store)
    _waiting(store)
    report = apply_retention(store, days=365, now=NOW)
    # e3 (400 days), o2 (500 days) in the log; w4 (600 days) still in the inbox
    assert report.deleted_events == 3
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"e1", "e2", "o1", "w1", "w2", "w3", "w5"}


def test_a_processors_pending_row_is_not_a_waiting_event(store: Store) -> None:
    """A SQLite processor leaves, between its two turns, an inbox row naming the leads it logged events
    for (``mark_pending``): it is no event, so erasure, export, retention and person lookup pass over it
    (they read ``row["person_key"]``, ``row["ts"]``: a KeyError before) and leave it for its processor."""
    _people(store)
    _waiting(store)
    with store.begin() as conn:
        lead_id = find_person(conn, ERIN[0]).lead_id
        mark_pending(conn, {"leads": [lead_id]}, 1, NOW)
        assert waiting_events(conn) == 6  # the five waiting events and the pending row's one
        assert [row["message_id"] for row in waiting_rows(conn)] == ["w1", "w2", "w3", "w4", "w5"]
        assert find_person(conn, "a:anon-new").keys == ("a:anon-new",)  # known by a waiting event only
        exported = export_person(conn, find_person(conn, ERIN[0]), store.sources, None, NOW)
        assert sorted(row["message_id"] for row in exported["waiting_events"]) == ["w1", "w5"]
    report = apply_retention(store, days=365, now=NOW)
    assert report.deleted_events == 3  # e3, o2 in the log; w4 in the inbox
    with store.begin() as conn:
        report = erase_person(conn, find_person(conn, ERIN[0]), "", NOW)
        assert report.deleted["inbox"] == 2  # w1, w5
        assert stored_message_ids(conn) == {"o1", "w2", "w3"}
        assert waiting_events(conn) == 3  # w2, w3 and the pending row, left for its processor


def test_export_and_erase_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    store = Store.from_url(db)
    _people(store)
    store.dispose()
    runner = CliRunner()
    out = tmp_path / "erin.json"
    result = runner.invoke(app, ["privacy", "export", ERIN[0], "--out", str(out), "--db", db])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["lead"]["email"] == ERIN[0]
    assert [e["message_id"] for e in data["events"]] == ["e3", "e1", "e2"]
    assert [o["kind"] for o in data["outcomes"]] == ["won"]
    explanation = data["score_explanation"]
    assert {line["rule"]: line["description"] for line in explanation["lines"]}[
        "vp"
    ] == "Senior buyers decide"
    result = runner.invoke(app, ["privacy", "erase", ERIN[1], "--yes", "--db", db])
    assert result.exit_code == 0, result.output
    assert "verified: no row of theirs left in any table" in result.output
    assert "write-ahead log emptied" in result.output
    store = Store.from_url(db)
    with store.connect() as conn:
        assert mentions(conn, ERIN) == {}
    store.dispose()
    audit_out = runner.invoke(app, ["audit", "--db", db]).output
    assert "privacy.erase" in audit_out and "privacy.export" in audit_out and ERIN[0] not in audit_out


def test_retention_deletes_old_events_and_rescores(store: Store) -> None:
    _people(store)
    report = apply_retention(store, days=365, now=NOW)
    # e3 (400 days) and o2 (500 days) go; both leads are rescored
    assert (report.deleted_events, report.rescored_leads) == (2, 2)
    with store.connect() as conn:
        assert set(conn.execute(select(events.c.message_id)).scalars()) == {"e1", "e2", "o1"}


def test_retention_job_runs_on_schedule(store: Store) -> None:
    """The server's job applies retention as soon as it starts (then once per period)."""
    import math
    import time

    from leadscore.privacy.retention import RetentionJob

    _people(store)
    # a period that puts the cutoff 100 days before NOW, whatever today's date: e3 and o2 are older
    days = math.ceil((time.time() * 1000 - (NOW - 100 * DAY)) / DAY)
    job = RetentionJob(store, days=days, every_s=3600).start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with store.connect() as conn:
                left = set(conn.execute(select(events.c.message_id)).scalars())
            if left == {"e1", "e2", "o1"}:
                break
            time.sleep(0.05)
    finally:
        job.stop()
    assert left == {"e1", "e2", "o1"}


def test_retention_scores_the_colleagues_whose_account_counted_the_deleted_events(store: Store) -> None:
    """40 points to every lead of an account where two or more people probed within 400 days. Ann (100
    days ago) and Carl (yesterday) of y.com: 40 each. A 30-day retention deletes Ann's probe; Carl lost
    no event of his own, yet his account now has one person who probed: 0, at once."""
    from leadscore.scoring.run import now_ms
    from leadscore.store.people import find_lead
    from leadscore.store.results import read_current

    now = now_ms()
    publish(store, loads_model("""
model: committee
engagement:
  - {id: team, name: 2+ people of the account, kind: threshold, scope: account, event: {type: track, name: Probe},
     count: {distinct: person}, at_least: 2, within: 400d, points: 40}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""), as_of=now)  # fmt: skip
    ago = {"ann": 200 * DAY, "carl": DAY}  # Carl's events are all within the 30 days kept
    messages = [
        *({"type": "identify", "userId": p, "messageId": f"{p}1", "timestamp": now - ago[p],
           "traits": {"email": f"{p}@y.com"}} for p in ago),
        *({"type": "group", "userId": p, "groupId": "y", "messageId": f"{p}2", "timestamp": now - ago[p],
           "traits": {"domain": "y.com"}} for p in ago),
        {"type": "track", "userId": "ann", "event": "Probe", "messageId": "a3", "timestamp": now - 100 * DAY},
        {"type": "track", "userId": "carl", "event": "Probe", "messageId": "c3", "timestamp": now - DAY},
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=now) for m in messages], source="test", as_of=now)
    with store.connect() as conn:
        carl = find_lead(conn, external_id="carl")
        assert carl is not None
        assert read_current(conn, carl)[0]["score"] == 40.0  # type: ignore[index]
    report = apply_retention(store, days=30, now=now)
    # Ann's identify and group (200 days old) and probe (100 days)
    assert report.deleted_events == 3
    with store.connect() as conn:
        current = read_current(conn, carl)[0]
    assert current is not None and current["score"] == 0.0

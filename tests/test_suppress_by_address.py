"""``privacy erase --suppress`` suppresses her e-mail addresses too, each one she used (traits change),
and every ingest path drops a message or row carrying one, whatever ids it names: a new user id or
anonymous id whose identify, event traits (``context.traits``), PostHog ``$set``/``$set_once`` or CSV row
gives her address is dropped and counted like her identity keys. Addresses are compared by the one
normalisation (``store.people.normalise_email``: NFC, trimmed, lower case), so an NFD or upper-case
spelling is the same address, for suppression and for finding a lead alike."""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadscore.ingest import jsonl_import
from leadscore.ingest.csv_import import import_leads
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.privacy.erase import erase, lift_suppression
from leadscore.privacy.person import find_person
from leadscore.scoring.pipeline import Backfill, ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store, counters
from leadscore.store.event_log import stored_message_ids, waiting_events
from leadscore.store.people import email_domain, resolve_lead_ref
from leadscore.store.schema import leads, tracking_suppressions
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
USER, ANON = "usr-renee-1", "anon-renee-1"
OLD = "r.zapata@oldmail.example"  # her first address
NEW = unicodedata.normalize("NFC", "renée.zapata@example.org")  # the one she changed it to (composed é)
NEW_NFD = unicodedata.normalize("NFD", " RENÉE.Zapata@Example.ORG ")  # the same address, decomposed É


def _renee(store: Store) -> None:
    """Renée: a page view, an identify with her first address, a later identify with her new one."""
    publish(store, loads_model(MODEL), as_of=NOW)
    messages = [
        {"type": "page", "anonymousId": ANON, "messageId": "r1", "properties": {"path": "/pricing"},
         "timestamp": NOW - 3 * DAY},
        {"type": "identify", "anonymousId": ANON, "userId": USER, "messageId": "r2", "timestamp": NOW - 2 * DAY,
         "traits": {"email": OLD, "firstName": "Renée"}},
        {"type": "identify", "userId": USER, "messageId": "r3", "timestamp": NOW - DAY, "traits": {"email": NEW}},
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=NOW) for m in messages], source="test", as_of=NOW)


def _erase(store: Store, ref: str, *, suppress: bool = True) -> None:
    with store.connect() as conn:
        who = find_person(conn, ref)
    erase(store, who, Settings().suppression_pepper, NOW, "test", suppress_ids=suppress)


def _rows(store: Store) -> set[tuple[str, str | None, str]]:
    with store.connect() as conn:
        found = conn.execute(
            select(tracking_suppressions.c.key_hash, tracking_suppressions.c.email_hash,
                   tracking_suppressions.c.person)
        ).all()  # fmt: skip
    return {(k, e, p) for k, e, p in found}


def _externals(store: Store) -> set[str | None]:
    with store.connect() as conn:
        return set(conn.execute(select(leads.c.external_id)).scalars())


def _emails(store: Store) -> set[str | None]:
    with store.connect() as conn:
        return set(conn.execute(select(leads.c.email)).scalars())


def _suppressed_total(store: Store) -> int:
    with store.connect() as conn:
        return counters.read(conn).get(counters.SUPPRESSED, 0)


def test_erase_by_her_earlier_address_suppresses_every_address_she_used(store: Store) -> None:
    _renee(store)
    assert _emails(store) == {NEW}  # the lead holds her newer address only
    _erase(store, OLD)  # a request naming the address she gave first still finds her lead
    assert _externals(store) == set()
    rows = _rows(store)
    # her two identity keys, and each address as its own row (``e:`` + the address): four hashes
    assert {k for k, _, _ in rows} == {
        peppered(f"u:{USER}"),
        peppered(f"a:{ANON}"),
        peppered(f"e:{OLD}"),
        peppered(f"e:{NEW}"),
    }
    assert {e for _, e, _ in rows} == {peppered(OLD), peppered(NEW)}
    assert len({p for _, _, p in rows}) == 1


def _segment_after() -> list[dict[str, Any]]:
    """A page view of a new user id, three messages of new ids carrying her addresses (an identify of that
    user id, a track's and a page's ``context.traits``), then Bob's identify. The identify gives her
    address under the new user id: that id is hers, and its page view goes too."""
    return [
        {"type": "page", "userId": "usr-other-1", "messageId": "s0", "properties": {"path": "/pricing"},
         "timestamp": NOW - 1000},
        {"type": "identify", "userId": "usr-other-1", "messageId": "s1", "traits": {"email": NEW_NFD},
         "timestamp": NOW},
        {"type": "track", "userId": "usr-other-2", "event": "Demo Requested", "messageId": "s2",
         "context": {"traits": {"email": OLD}}, "timestamp": NOW},
        {"type": "page", "anonymousId": "anon-other", "messageId": "s3", "properties": {"path": "/pricing"},
         "context": {"traits": {"Email": OLD.upper()}}, "timestamp": NOW},
        {"type": "identify", "userId": "usr-bob", "messageId": "b1", "traits": {"email": "bob@example.com"},
         "timestamp": NOW},
    ]  # fmt: skip


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    _renee(store)
    with tracking(store, source="site") as (url, write):
        yield url, write, store


def _drained(store: Store) -> bool:
    with store.connect() as conn:
        return waiting_events(conn) == 0


def test_segment_messages_of_new_ids_with_her_address_are_dropped(api: tuple[str, str, Store]) -> None:
    url, write, store = api
    _erase(store, USER)
    with httpx.Client(base_url=url) as client:
        r = client.post("/v1/batch", json={"batch": _segment_after()}, headers=basic(write))
        assert r.status_code == 200 and r.json()["accepted"] == 5, r.text
        # the single-message endpoint (and the tracking tag's analytics.js, which posts to these) alike
        single = {"anonymousId": "anon-x", "messageId": "s4", "traits": {"email": NEW}, "timestamp": NOW}
        r = client.post("/v1/identify", json=single, headers=basic(write))
        assert r.status_code == 200, r.text
    assert wait_until(lambda: _drained(store) and _suppressed_total(store) == 5)
    time.sleep(0.2)  # a processor still saving would show below
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"b1"}
    assert _externals(store) == {"usr-bob"} and _emails(store) == {"bob@example.com"}


def test_posthog_events_with_her_address_are_dropped(api: tuple[str, str, Store]) -> None:
    url, write, store = api
    _erase(store, OLD)
    batch = [
        {"event": "$identify", "distinct_id": "ph-1", "uuid": "p1", "properties": {"$set": {"email": NEW_NFD}}},
        {"event": "$set", "distinct_id": "ph-2", "uuid": "p2", "properties": {"$set_once": {"email": OLD}}},
        {"event": "$identify", "distinct_id": "ph-bob", "uuid": "p4",
         "properties": {"$set": {"email": "bob@example.com"}}},
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", json={"api_key": write, "batch": batch})
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text
        one = {"api_key": write, "event": "Demo Requested", "distinct_id": "ph-3", "uuid": "p3",
               "properties": {"$set": {"email": NEW}}}  # fmt: skip
        r = http.post("/e/", json=one)
        assert r.status_code == 200, r.text
    # p1, p2, and p3's event with the identify beside it that carries its $set (it gives her address under
    # ph-3: the event of ph-3 is hers too): four messages
    assert wait_until(lambda: _drained(store) and _suppressed_total(store) == 4)
    time.sleep(0.2)
    assert _externals(store) == {"ph-bob"} and _emails(store) == {"bob@example.com"}


def test_import_events_drops_lines_with_her_address(store: Store, tmp_path: Path) -> None:
    _renee(store)
    _erase(store, USER)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in _segment_after()))
    backfill = Backfill(store, source="import", cause_ref="import events.jsonl")
    report = jsonl_import.import_events(path, backfill.add)
    backfill.finish()
    assert (report.lines, report.accepted, report.suppressed, report.rejected) == (5, 1, 4, 0)
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"b1"}
    assert _externals(store) == {"usr-bob"}


def test_csv_lead_import_skips_rows_with_her_address(store: Store, tmp_path: Path) -> None:
    _renee(store)
    _erase(store, USER)
    path = tmp_path / "leads.csv"
    path.write_text(
        f"email,user_id\nbob@example.com,usr-bob\n{NEW_NFD.strip()},\n{OLD},usr-fresh\nx@example.com,\n",
        encoding="utf-8",
    )
    report = import_leads(store, path)
    # header row 1; Bob row 2; her new address (NFD, upper case) row 3 and her old one with a new user
    # id row 4 are skipped, not errors; X row 5 imported
    assert (report.rows, report.created, report.rejected, report.suppressed) == (4, 2, 0, 2)
    assert [(p.line, p.field) for p in report.skipped] == [(3, "email"), (4, "email")]
    assert _emails(store) == {"bob@example.com", "x@example.com"}


def test_unsuppress_by_any_address_lifts_exactly_that_erasure(store: Store) -> None:
    _renee(store)
    ingest(store, [normalise({"type": "identify", "userId": "usr-bob", "messageId": "b0", "timestamp": NOW,
                              "traits": {"email": "bob@example.com"}}, received_ms=NOW)],
           source="test", as_of=NOW)  # fmt: skip
    _erase(store, "usr-bob")
    bobs = _rows(store)
    assert len(bobs) == 2  # u:usr-bob, e:bob@example.com
    _erase(store, USER)
    assert len(_rows(store)) == 6
    lifted = lift_suppression(store, NEW_NFD, Settings().suppression_pepper, NOW, "test")
    assert lifted == 4 and _rows(store) == bobs  # Bob's suppression, as it was
    again = {
        "type": "identify",
        "userId": "usr-new",
        "messageId": "n1",
        "timestamp": NOW,
        "traits": {"email": OLD},
    }
    report = ingest(store, [normalise(again, received_ms=NOW)], source="test", as_of=NOW)
    assert (report.accepted, report.suppressed) == (1, 0)
    assert _emails(store) == {OLD}


def test_without_suppress_nothing_of_her_address_is_kept(store: Store) -> None:
    _renee(store)
    _erase(store, USER, suppress=False)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tracking_suppressions)).scalar() == 0


def test_nfc_and_nfd_spellings_are_one_lead(store: Store) -> None:
    """One normalisation for storing, finding and suppressing: a decomposed spelling of an address finds
    the lead of its composed spelling."""
    publish(store, loads_model(MODEL), as_of=NOW)
    messages = [
        {"type": "identify", "userId": "u-1", "messageId": "m1", "timestamp": NOW - DAY, "traits": {"email": NEW}},
        {"type": "identify", "userId": "u-2", "messageId": "m2", "timestamp": NOW, "traits": {"email": NEW_NFD}},
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=NOW) for m in messages], source="test", as_of=NOW)
    assert _emails(store) == {NEW}
    with store.connect() as conn:
        ((lead_id,),) = conn.execute(select(leads.c.id)).all()
        assert resolve_lead_ref(conn, NEW_NFD) == lead_id
    assert email_domain(unicodedata.normalize("NFD", "x@BÜCHER.example")) == "bücher.example"


def test_a_merged_leads_address_is_hers_too(store: Store) -> None:
    """An alias merges two leads of one person: the kept lead holds one address, her events still give the
    other. Erased by the other, both are suppressed."""
    publish(store, loads_model(MODEL), as_of=NOW)
    first, second = "mo@first.example", "mo@second.example"
    messages = [
        {"type": "identify", "userId": "u-b", "messageId": "m1", "timestamp": NOW - 3 * DAY, "traits": {"email": first}},
        {"type": "identify", "userId": "u-a", "messageId": "m2", "timestamp": NOW - 2 * DAY,
         "traits": {"email": second}},
        {"type": "alias", "userId": "u-a", "previousId": "u-b", "messageId": "m3", "timestamp": NOW - DAY},
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=NOW) for m in messages], source="test", as_of=NOW)
    assert len(_emails(store)) == 1  # one lead, holding one of the two
    (held,) = _emails(store)
    other = second if held == first else first
    _erase(store, other)
    assert _externals(store) == set()
    assert {e for _, e, _ in _rows(store)} == {peppered(first), peppered(second)}
    again = [
        {"type": "identify", "userId": "u-c", "messageId": "n1", "timestamp": NOW, "traits": {"email": first}},
        {"type": "identify", "userId": "u-d", "messageId": "n2", "timestamp": NOW, "traits": {"email": second}},
    ]  # fmt: skip
    report = ingest(store, [normalise(m, received_ms=NOW) for m in again], source="test", as_of=NOW)
    assert (report.accepted, report.suppressed) == (0, 2)
    assert _externals(store) == set()

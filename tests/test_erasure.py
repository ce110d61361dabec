"""Exact erasure: colliding identifiers, anonymous-only and inbox-only people, suppressions that outlive
the person, and (SQLite) no copy left in the database files.

The property test builds a world of one person ("her", every message id ``her-…``) and others whose ids,
e-mails, URLs, titles and properties collide with hers (user "1001" vs "11001", ann@ vs joann@, her id
in their URLs). After erasing her, every other row must be exactly as it was.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, event, func, select, text
from sqlalchemy import types as sa_types

from leadscore.errors import InputError, NotFoundError, StoreError
from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import GroupCommitter
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.mail import consent_problem
from leadscore.model import load_model, loads_model
from leadscore.privacy import erase as erase_module
from leadscore.privacy.erase import erase, erase_person
from leadscore.privacy.export import export_person
from leadscore.privacy.person import find_person
from leadscore.privacy.tables import present_tables, unaccounted
from leadscore.scoring import pipeline
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.processor import log_rows, process_pending
from leadscore.store import Store, dead_letters
from leadscore.store.event_log import claim, inbox_events, waiting_rows
from leadscore.store.people import find_lead
from leadscore.store.results import read_current
from leadscore.store.schema import (
    audit_log,
    events,
    identities,
    inbox,
    leads,
    mail_suppressions,
    metadata,
    outcomes,
    score_events,
    score_history,
)
from leadscore.store.suppressions import email_hash, suppress
from pg_schema import PG_URL, pg_schema_store

NOW = parse_time("2024-06-01T00:00:00Z", "now")
DAY = 86_400_000
PEPPER = "test-pepper-0123456789-0123456789"
MODEL = """
model: erasure
fit:
  - {id: vp, name: VP, when: {attribute: job_title, contains: vp}, points: 10}
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 5}
scale: {fit_max: 10, engagement_max: 20, bands: {hot: 70, warm: 20}}
"""
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def fresh_store(engine: str) -> Iterator[Store]:
    if engine == "postgres":
        if not PG_URL:
            pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
        with pg_schema_store("erase") as store:
            yield store
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "leadscore.db"))
        # as SQLite builds without SQLITE_SECURE_DELETE do (Debian's has it): deletions elsewhere (the
        # processor's inbox rows) leave their bytes in freed pages, which the erasure must deal with
        event.listen(store.engine, "connect", lambda db, _: db.execute("PRAGMA secure_delete=OFF"))
        store.engine.dispose()
        try:
            yield store
        finally:
            store.dispose()


def _ingest(store: Store, messages: list[dict[str, Any]]) -> None:
    ingest(store, [normalise(m, received_ms=NOW) for m in messages], source="test", as_of=NOW)


def _enqueue(store: Store, messages: list[dict[str, Any]]) -> None:
    """Acknowledged, not processed: the events wait in the inbox."""
    committer = GroupCommitter(store).start()
    try:
        committer.submit([event_row(normalise(m, received_ms=NOW), "api") for m in messages]).result()
    finally:
        committer.stop()


# --- the world: her and colliding others -------------------------------------------------------------


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    user = draw(st.from_regex(r"[1-9][0-9]{2,4}", fullmatch=True))
    local = draw(st.from_regex(r"[a-z]{2,5}", fullmatch=True))
    her = {
        "user": user,
        "email": f"{local}@example.com",
        "anon": f"anon{draw(st.from_regex(r'[a-z0-9]{6}', fullmatch=True))}",
        "first": local.capitalize(),
        "last": "Lee",
        "canary": f"canary{uuid.uuid4().hex}",  # only in her rows: looked for in the database files
    }
    # others whose ids contain hers, or are contained in longer ones; e-mails ending in hers
    twists = st.sampled_from(["1{}", "{}1", "{}0", "9{}9"])
    prefixes = st.sampled_from(["jo", "x", "ann.", "a-"])
    n = draw(st.integers(1, 3))
    others = []
    for i in range(n):
        other_user = draw(twists).format(user)
        others.append(
            {
                "user": other_user,
                "email": f"{draw(prefixes)}{local}@example.com" if i % 2 == 0 else f"{local}@example.com.au",
                "anon": f"o{i}{her['anon']}",
                "waiting": draw(st.booleans()),
            }
        )
    return {"her": her, "others": others}


def _her_messages(her: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"type": "page", "anonymousId": her["anon"], "messageId": "her-1", "timestamp": NOW - 9 * DAY,
         "properties": {"path": "/pricing", "c": her["canary"]}},
        {"type": "identify", "anonymousId": her["anon"], "userId": her["user"], "messageId": "her-2",
         "timestamp": NOW - 8 * DAY,
         "traits": {"email": her["email"], "firstName": her["first"], "lastName": her["last"], "title": "VP",
                    "note": her["canary"]}},
        {"type": "track", "userId": her["user"], "messageId": "her-3", "event": "Demo Requested",
         "timestamp": NOW - 7 * DAY, "properties": {"email": her["email"], "c": her["canary"]}},
    ]  # fmt: skip


def _other_messages(her: dict[str, str], i: int, other: dict[str, Any]) -> list[dict[str, Any]]:
    name = f"{her['first']} {her['last']}"
    return [
        {"type": "identify", "userId": other["user"], "anonymousId": other["anon"], "messageId": f"o-{i}-1",
         "timestamp": NOW - 6 * DAY, "traits": {"email": other["email"], "firstName": "Jo", "ref": her["user"]}},
        {"type": "page", "userId": other["user"], "messageId": f"o-{i}-2", "timestamp": NOW - 5 * DAY,
         "properties": {"path": "/pricing", "url": f"https://example.com/pricing?plan={her['user']}",
                        "title": f"Call with {name}", "invited_by": her["user"]}},
        {"type": "track", "userId": other["user"], "messageId": f"o-{i}-3", "event": f"Met {name}",
         "timestamp": NOW - 4 * DAY, "properties": {"user": her["user"]}},
    ]  # fmt: skip


def _build(store: Store, world: dict[str, Any]) -> int:
    her = world["her"]
    publish(store, loads_model(MODEL), as_of=NOW)
    _ingest(store, _her_messages(her))
    for i, other in enumerate(world["others"]):
        _ingest(store, _other_messages(her, i, other))
    with store.begin() as conn:
        lead_id = find_lead(conn, external_id=her["user"])
        assert lead_id is not None
        conn.execute(outcomes.insert().values(lead_id=lead_id, kind="won", at_ms=NOW, amount=5.0, reason=None,
                                              source="test", recorded_ms=NOW))  # fmt: skip
        suppress(conn, her["email"], "unsubscribe link", NOW, PEPPER)
    # through the inbox and processed: the processor's inbox deletions leave freed pages behind
    _enqueue(store, [{"type": "track", "userId": her["user"], "messageId": f"her-p{i}", "event": "Signed Up",
                      "timestamp": NOW - 2 * DAY, "properties": {"c": her["canary"], "pad": "-" * 400}}
                     for i in range(20)])  # fmt: skip
    assert process_pending(store) == 20
    # waiting in the inbox: hers and (for some) theirs, in the same inbox rows
    waiting = [{"type": "page", "userId": her["user"], "messageId": "her-w1", "timestamp": NOW - DAY,
                "properties": {"c": her["canary"]}},
               {"type": "page", "anonymousId": her["anon"], "messageId": "her-w2", "timestamp": NOW - DAY}]  # fmt: skip
    for i, other in enumerate(world["others"]):
        if other["waiting"]:
            waiting.append({"type": "page", "userId": other["user"], "messageId": f"o-{i}-w",
                            "timestamp": NOW - DAY, "properties": {"q": f"?plan={her['user']}"}})  # fmt: skip
    _enqueue(store, waiting)
    return lead_id


def _snapshot(store: Store) -> dict[str, list[str]]:
    """Every table's rows as text, sorted; the inbox as the events it holds; the audit log left out
    (an erasure adds its own entry)."""
    out: dict[str, list[str]] = {}
    with store.connect() as conn:
        for table in present_tables(conn):
            if table.name in ("inbox", "audit_log"):
                continue
            out[table.name] = sorted(
                repr(sorted(dict(r).items())) for r in conn.execute(select(table)).mappings()
            )
        out["inbox"] = sorted(repr(sorted(r.items())) for r in waiting_rows(conn))
    return out


def _is_hers(table: str, row: str, lead_id: int) -> bool:
    """Her rows, by what the test built (not by the erasure's rules): her lead, her identities, her
    ``her-…`` message ids."""
    if table in ("events", "inbox"):
        return "('message_id', 'her-" in row
    if table == "leads":
        return f"('id', {lead_id})," in row
    return f"('lead_id', {lead_id})" in row


WORD = r"(?<![\w.@+-]){}(?![\w@+-]|\.\w)"


def _file_traces(db: Path, her: dict[str, str]) -> dict[str, int]:
    """Her canary, e-mail and anonymous id as whole words in the bytes of the database files."""
    found: dict[str, int] = {}
    for path in db.parent.glob(db.name + "*"):
        data = path.read_bytes()
        for what in ("canary", "email", "anon"):
            n = len(re.findall(WORD.format(re.escape(her[what])).encode(), data))
            if n:
                found[f"{path.name}:{what}"] = n
    return found


@pytest.mark.parametrize("engine", ENGINES)
@given(world=worlds())
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_erasing_her_changes_no_one_else_and_leaves_no_trace(engine: str, world: dict[str, Any]) -> None:
    her = world["her"]
    with fresh_store(engine) as store:
        lead_id = _build(store, world)
        before = _snapshot(store)
        db = Path(store.engine.url.database or "") if engine == "sqlite" else None
        if db is not None:
            assert _file_traces(db, her)  # the scan can see her before
        with store.connect() as conn:
            person = find_person(conn, her["user"])
        assert person.lead_id == lead_id
        report = erase(store, person, PEPPER, NOW, "test")
        after = _snapshot(store)
        expected = {t: [r for r in rows if not _is_hers(t, r, lead_id)] for t, rows in before.items()}
        assert after == expected
        # deleted by key: her 3 + 20 logged events and her two waiting ones, never another's
        assert (report.deleted["events"], report.deleted["inbox"], report.deleted["leads"]) == (23, 2, 1)
        values = {her["email"], her["user"], her["anon"], f"u:{her['user']}", f"a:{her['anon']}"}
        with store.connect() as conn:
            for table in present_tables(conn):  # no text column holds one of her identifiers as its value
                for column in (c for c in table.columns if isinstance(c.type, String)):
                    hit = conn.execute(
                        select(func.count()).select_from(table).where(column.in_(values))
                    ).scalar()
                    assert hit == 0, (table.name, column.name)
            # her unsubscribe outlives her, as a hash
            assert conn.execute(select(mail_suppressions.c.email_hash)).scalars().all() == [
                email_hash(her["email"], PEPPER)
            ]
        if db is not None:
            assert _file_traces(db, her) == {}
            assert Path(f"{db}-wal").stat().st_size == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_an_anonymous_only_person_is_exported_and_erased(engine: str) -> None:
    with fresh_store(engine) as store:
        _ingest(store, [
            {"type": "page", "anonymousId": "anon-solo", "messageId": "s1", "timestamp": NOW - DAY,
             "properties": {"path": "/a"}},
            {"type": "page", "anonymousId": "anon-solo", "messageId": "s2", "timestamp": NOW},
            {"type": "page", "anonymousId": "anon-solo2", "messageId": "k1", "timestamp": NOW,
             "properties": {"from": "anon-solo"}},
        ])  # fmt: skip
        with store.connect() as conn:
            with pytest.raises(NotFoundError):
                find_person(conn, "a:nobody")
            person = find_person(conn, "a:anon-solo")
            assert (person.lead_id, person.keys) == (None, ("a:anon-solo",))
            assert find_person(conn, "anon-solo") == person  # a plain reference finds her too
            data = export_person(conn, person, store.sources(), None, NOW)
        assert data["lead"] is None
        assert [e["message_id"] for e in data["events"]] == ["s1", "s2"]
        report = erase(store, person, PEPPER, NOW, "test")
        assert report.deleted == {"events": 2}
        assert report.mentions == {"events.properties": 1}  # anon-solo2's page names her: kept
        with store.connect() as conn:
            assert [
                r["message_id"] for r in conn.execute(text("SELECT message_id FROM events")).mappings()
            ] == ["k1"]
            audit_row = conn.execute(select(audit_log.c.target)).scalar_one()
        assert audit_row.startswith("person:") and "anon" not in audit_row


@pytest.mark.parametrize("engine", ENGINES)
def test_mentions_of_a_name_with_letters_beyond_ascii_are_reported(engine: str) -> None:
    """Jürgen Öberg (user jürgen-7, jürgen@exämple.test) is named in three of Bob's events, each in
    another case than his own (a fourth names "Öbergs", a longer word), in Carl's traits and in Carl's
    attributes: the report counts each. On SQLite it found one of Bob's events and not Carl's attributes:
    SQLite's lower() folds ASCII only ("JÜRGEN" did not contain "jürgen"), and a JSON column written by
    SQLAlchemy keeps ü as the escape \\u00fc there."""
    with fresh_store(engine) as store:
        _ingest(store, [
            {"type": "identify", "userId": "jürgen-7", "messageId": "j1", "timestamp": NOW,
             "traits": {"email": "Jürgen@Exämple.test", "firstName": "Jürgen", "lastName": "Öberg"}},
            {"type": "track", "userId": "bob", "event": "Call", "messageId": "k1", "timestamp": NOW,
             "properties": {"note": "call JÜRGEN ÖBERG back"}},
            {"type": "track", "userId": "bob", "event": "Call", "messageId": "k2", "timestamp": NOW,
             "properties": {"from": "JÜRGEN@EXÄMPLE.TEST"}},
            {"type": "track", "userId": "bob", "event": "Call", "messageId": "k3", "timestamp": NOW,
             "properties": {"ref": "Jürgen-7"}},
            {"type": "track", "userId": "bob", "event": "Call", "messageId": "k4", "timestamp": NOW,
             "properties": {"note": "the Jürgen Öbergs"}},
            {"type": "identify", "userId": "carl", "messageId": "c1", "timestamp": NOW,
             "traits": {"referred_by": "jürgen öberg"}},
        ])  # fmt: skip
        with store.connect() as conn:
            person = find_person(conn, "jürgen-7")
        assert person.identifiers == ("Jürgen Öberg", "jürgen-7", "jürgen@exämple.test")
        report = erase(store, person, PEPPER, NOW, "test")
        assert report.mentions == {"events.properties": 3, "events.context": 1, "leads.attributes": 1}


@pytest.mark.parametrize("engine", ENGINES)
def test_an_inbox_only_person_is_exported_and_erased(engine: str) -> None:
    with fresh_store(engine) as store:
        _enqueue(store, [
            {"type": "identify", "userId": "u-new", "messageId": "n1", "timestamp": NOW,
             "traits": {"email": "Nina@Example.com", "firstName": "Nina"}},
            {"type": "page", "userId": "u-new", "messageId": "n2", "timestamp": NOW},
            {"type": "page", "userId": "u-new1", "messageId": "m1", "timestamp": NOW},
        ])  # fmt: skip
        with store.connect() as conn:
            by_email = find_person(conn, "nina@example.com")  # the identify's traits, case aside
            assert (by_email.lead_id, by_email.keys) == (None, ("u:u-new",))
            assert find_person(conn, "u:u-new").keys == ("u:u-new",)
            data = export_person(conn, by_email, store.sources(), None, NOW)
        assert [e["message_id"] for e in data["waiting_events"]] == ["n1", "n2"] and data["events"] == []
        report = erase(store, by_email, PEPPER, NOW, "test")
        assert report.deleted == {"inbox": 2}
        with store.connect() as conn:
            assert [r["message_id"] for r in waiting_rows(conn)] == ["m1"]
        assert process_pending(store) == 1
        with store.connect() as conn:
            assert conn.execute(select(leads.c.external_id)).scalars().all() == ["u-new1"]


@pytest.mark.parametrize("engine", ENGINES)
def test_suppression_outlives_erasure_and_blocks_mail_after_reidentify(engine: str) -> None:
    with fresh_store(engine) as store:
        _ingest(store, [
            {"type": "identify", "userId": "u1", "messageId": "a1", "timestamp": NOW - DAY,
             "traits": {"email": "ann@example.com"}},
            {"type": "identify", "userId": "u2", "messageId": "b1", "timestamp": NOW - DAY,
             "traits": {"email": "bea@example.com", "unsubscribed": True}},
            {"type": "identify", "userId": "u3", "messageId": "c1", "timestamp": NOW - DAY,
             "traits": {"email": "joann@example.com"}},
        ])  # fmt: skip
        with store.begin() as conn:
            assert suppress(conn, " Ann@Example.com ", "unsubscribe link", NOW, PEPPER)
            assert not suppress(conn, "ann@example.com", "unsubscribe link", NOW, PEPPER)  # the same address
        for ref in ("ann@example.com", "bea@example.com"):
            with store.connect() as conn:
                person = find_person(conn, ref)
            report = erase(store, person, PEPPER, NOW, "test")
            # Bea withdrew consent (unsubscribed: true): her address is suppressed as she is erased
            assert report.suppressed == (ref == "bea@example.com")
        _ingest(store, [
            {"type": "identify", "userId": "u9", "messageId": "a2", "timestamp": NOW,
             "traits": {"email": "ANN@example.com"}},
            {"type": "identify", "userId": "u8", "messageId": "b2", "timestamp": NOW,
             "traits": {"email": "bea@example.com"}},
        ])  # fmt: skip
        with store.connect() as conn:
            ann, bea, joann = (find_lead(conn, external_id=u) for u in ("u9", "u8", "u3"))
            assert consent_problem(conn, None, ann, "ANN@example.com", PEPPER) == "the address unsubscribed"
            assert consent_problem(conn, None, bea, "bea@example.com", PEPPER) == "the address unsubscribed"
            assert consent_problem(conn, None, joann, "joann@example.com", PEPPER) is None
            assert consent_problem(conn, None, ann, "ann@example.com", "another pepper") is None
            rows = conn.execute(select(mail_suppressions)).mappings().all()
        assert len(rows) == 2 and all("@" not in str(dict(r)) for r in rows)


def test_a_reference_naming_two_leads_is_refused(sqlite_store: Store) -> None:
    _ingest(sqlite_store, [
        {"type": "identify", "userId": "x", "messageId": "1", "timestamp": NOW, "traits": {"email": "x@x.io"}},
        {"type": "identify", "userId": "1", "messageId": "2", "timestamp": NOW, "traits": {"email": "y@x.io"}},
    ])  # fmt: skip
    with sqlite_store.connect() as conn:
        assert find_lead(conn, external_id="x") == 1  # so "1" is lead 1 and the user id of lead 2
        with pytest.raises(InputError, match=r"'1' names more than one lead \(lead:1, lead:2\)"):
            find_person(conn, "1")
        assert find_person(conn, "lead:1").email == "x@x.io"
        assert find_person(conn, "u:1").email == "y@x.io"


def test_every_table_has_an_erasure_rule_and_a_new_one_stops_erasure(sqlite_store: Store) -> None:
    with sqlite_store.connect() as conn:
        assert unaccounted(conn) == []
        assert {t.name for t in present_tables(conn)} == set(metadata.tables)
    with sqlite_store.begin() as conn:
        conn.execute(text("CREATE TABLE webhook_log (id INTEGER PRIMARY KEY, payload TEXT)"))
    _ingest(sqlite_store, [{"type": "page", "anonymousId": "z", "messageId": "z1", "timestamp": NOW}])
    with sqlite_store.begin() as conn:
        assert unaccounted(conn) == ["webhook_log"]
        with pytest.raises(Exception, match="no erasure rule for table\\(s\\) webhook_log"):
            erase_person(conn, find_person(conn, "a:z"), PEPPER, NOW)


def test_inbox_rows_keep_their_other_events_in_order(sqlite_store: Store) -> None:
    _enqueue(sqlite_store, [
        {"type": "page", "userId": "o", "messageId": f"m{i}", "timestamp": NOW} if i % 3 else
        {"type": "page", "userId": "me", "messageId": f"m{i}", "timestamp": NOW}
        for i in range(7)
    ])  # fmt: skip
    with sqlite_store.connect() as conn:
        person = find_person(conn, "u:me")
    erase(sqlite_store, person, PEPPER, NOW, "test")
    with sqlite_store.connect() as conn:
        ((count, rows),) = conn.execute(select(inbox.c.events, inbox.c.rows)).all()
    assert (count, [e["message_id"] for e in inbox_events(rows)]) == (4, ["m1", "m2", "m4", "m5"])


def test_the_migration_hashes_existing_suppressions(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic import command
    from alembic.config import Config

    from leadscore.store.engine import MIGRATIONS

    def alembic(action: str, revision: str) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)

    alembic("downgrade", "0008")
    with store.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO mail_suppressions (email, reason, at_ms) VALUES ('ann@example.com', 'link', 5)")
        )
    monkeypatch.delenv("LEADSCORE_SUPPRESSION_SECRET", raising=False)
    monkeypatch.setenv("LEADSCORE_SECRET_KEY", PEPPER)
    alembic("upgrade", "heads")
    with store.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(mail_suppressions)).all()] == [
            (hmac.new(PEPPER.encode(), b"ann@example.com", hashlib.sha256).hexdigest(), "link", 5)
        ]


def test_audit_entries_of_her_dead_letters_are_redacted(store: Store) -> None:
    """An operator retried one of her dead letters (it failed again) and dropped another before she asked
    to be erased: their audit entries name her message ids and keep errors quoting her user id. Erasure
    redacts them, the dropped one's too (its message is gone, so only what the entry kept of its owner
    finds it); the colliding user "11001"'s dropped letter keeps its entry as written."""
    from leadscore.scoring.dead_letters import drop, retry
    from leadscore.store import dead_letters

    _ingest(
        store, [{"type": "track", "event": "E", "userId": "1001", "messageId": "her-1", "timestamp": NOW}]
    )
    unappliable = {"user_id": "1001", "event": "E"}  # no message id: a retry fails again
    with store.begin() as conn:
        retried = dead_letters.add(conn, unappliable, "bad row of user 1001", NOW)
        dropped = dead_letters.add(conn, {"message_id": "her-3", "user_id": "1001"}, "user 1001 failed", NOW)
        theirs = dead_letters.add(
            conn, {"message_id": "other-3", "user_id": "11001"}, "user 11001 failed", NOW
        )
    assert not retry(store, retried, actor="ops").applied
    drop(store, dropped, actor="ops")
    drop(store, theirs, actor="ops")
    with store.begin() as conn:
        erase_person(conn, find_person(conn, "u:1001"), PEPPER, NOW)
    with store.connect() as conn:
        entries = [
            (r.action, r.target, r.details)
            for r in conn.execute(
                select(audit_log).where(audit_log.c.action.like("deadletter.%")).order_by(audit_log.c.id)
            )
        ]
    assert entries == [
        ("deadletter.retry", "[erased]", {"redacted": True}),
        ("deadletter.drop", "[erased]", {"redacted": True}),
        ("deadletter.drop", "other-3", {"error": "user 11001 failed", "user_id": "11001"}),
    ]


def test_a_dead_letter_whose_ids_no_person_can_have_is_retried_and_dropped(store: Store) -> None:
    """A dead letter's user id with a NUL (PostgreSQL's JSON refuses one), a lone surrogate or 5,000
    characters is no one's id: its audit entries keep only the owner ids a person can have, and the
    retry and drop are written on both stores (a NUL made PostgreSQL refuse the audit entry)."""
    from leadscore.scoring.dead_letters import drop, retry
    from leadscore.store import dead_letters

    with store.begin() as conn:
        nul = dead_letters.add(conn, {"user_id": "u\x00", "anonymous_id": "anon-7"}, "boom", NOW)
        surrogate = dead_letters.add(conn, {"message_id": "m-2", "user_id": "\ud800"}, "boom", NOW)
        long = dead_letters.add(conn, {"message_id": "m-3", "user_id": "u" * 5000}, "boom", NOW)
    assert not retry(store, nul, actor="ops").applied
    drop(store, surrogate, actor="ops")
    drop(store, long, actor="ops")
    with store.connect() as conn:
        owners = [
            {k: v for k, v in r.details.items() if k in dead_letters.OWNER_FIELDS}
            for r in conn.execute(select(audit_log).order_by(audit_log.c.id))
        ]
    assert owners == [{"anonymous_id": "anon-7"}, {}, {}]


def test_her_dead_letters_are_erased_and_others_kept(store: Store) -> None:
    """A message of hers the processor set aside (a dead letter) is hers: erased with her; a colliding
    user id's dead letter stays."""
    from leadscore.store import dead_letters

    _ingest(
        store,
        [
            {"type": "track", "event": "E", "userId": "1001", "messageId": "her-1", "timestamp": NOW},
            {"type": "track", "event": "E", "userId": "11001", "messageId": "other-1", "timestamp": NOW},
        ],
    )
    with store.begin() as conn:
        hers = dead_letters.add(conn, {"message_id": "her-2", "user_id": "1001", "event": "E"}, "boom", NOW)
        others = dead_letters.add(
            conn, {"message_id": "other-2", "user_id": "11001", "event": "E 1001"}, "boom", NOW
        )
    with store.begin() as conn:
        erase_person(conn, find_person(conn, "u:1001"), PEPPER, NOW)
    with store.connect() as conn:
        assert [d.id for d in dead_letters.listed(conn)] == [others]
        assert dead_letters.get(conn, hers) is None


# 40 points to every lead of an account where two or more people probed within 30 days
COMMITTEE = Path(__file__).resolve().parent / "models" / "committee.yaml"


@pytest.mark.parametrize("crowd", [200, 0])
def test_her_colleagues_are_scored_again_without_her_events(
    store: Store, crowd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann and Carl of y.com probed: two people, 40 each. Erased, Ann's probe no longer counts for
    Carl: one person, 0, at once (not at his next event), his history replayed without her. So too
    where the colleagues a group call leaves are many enough to be left for the clock
    (``pipeline.COLLEAGUES_NOW`` 0: her one colleague is a crowd): an erasure is exact in its transaction."""
    monkeypatch.setattr(pipeline, "COLLEAGUES_NOW", crowd)
    publish(store, load_model(COMMITTEE), as_of=NOW)
    _ingest(store, [
        {"type": "identify", "userId": "ann", "messageId": "a1", "timestamp": NOW - 3 * DAY,
         "traits": {"email": "ann@y.com"}},
        {"type": "identify", "userId": "carl", "messageId": "c1", "timestamp": NOW - 3 * DAY,
         "traits": {"email": "carl@y.com"}},
        {"type": "group", "userId": "ann", "groupId": "y", "messageId": "a2", "timestamp": NOW - 3 * DAY,
         "traits": {"domain": "y.com"}},
        {"type": "group", "userId": "carl", "groupId": "y", "messageId": "c2", "timestamp": NOW - 3 * DAY,
         "traits": {"domain": "y.com"}},
        {"type": "track", "userId": "ann", "event": "Probe", "messageId": "a3", "timestamp": NOW - 2 * DAY},
        {"type": "track", "userId": "carl", "event": "Probe", "messageId": "c3", "timestamp": NOW - DAY},
    ])  # fmt: skip
    with store.connect() as conn:
        carl = find_lead(conn, external_id="carl")
        assert carl is not None
        assert read_current(conn, carl)[0]["score"] == 40.0  # type: ignore[index]
        person = find_person(conn, "ann")
    report = erase(store, person, PEPPER, NOW, "test")
    assert report.rescored == 1
    with store.connect() as conn:
        score, ledger = read_current(conn, carl)
        points = (
            conn.execute(
                select(score_history.c.score)
                .where(score_history.c.lead_id == carl)
                .order_by(score_history.c.at_ms)
            )
            .scalars()
            .all()
        )
        crossings = conn.execute(
            select(score_events.c.kind, score_events.c.to_value, score_events.c.cause_ref)
            .where(score_events.c.lead_id == carl)
            .order_by(score_events.c.id)
        ).all()
    assert score is not None and (score["score"], score["as_of_ms"]) == (0.0, NOW)
    assert [(line["rule_id"], line["raw"], line["matched"]) for line in ledger] == [("team", 0.0, 1)]
    assert set(points) == {0.0}  # his probe alone never made two people
    # the last: warm (30 or more) to cold, level 3 to 4, naming no id of hers
    assert [tuple(c) for c in crossings[-2:]] == [
        ("band", "cold", "erasure of a colleague"),
        ("level", "4", "erasure of a colleague"),
    ]


def test_a_colleagues_events_with_her_anonymous_id_stay_his(store: Store) -> None:
    """A browser Ann used first (dev1, linked to her), then Carl, who identified on it: his events carry
    anonymousId dev1 beside his userId, and are his. Erasing Ann takes dev1's anonymous events and hers,
    never Carl's, nor his score."""
    publish(store, loads_model(MODEL), as_of=NOW)
    _ingest(store, [
        {"type": "page", "anonymousId": "dev1", "messageId": "d1", "timestamp": NOW - 4 * DAY},
        {"type": "identify", "userId": "ann", "anonymousId": "dev1", "messageId": "a1",
         "timestamp": NOW - 3 * DAY, "traits": {"email": "ann@y.com"}},
        {"type": "identify", "userId": "carl", "anonymousId": "dev1", "messageId": "c1",
         "timestamp": NOW - 2 * DAY, "traits": {"email": "carl@y.com"}},
        {"type": "page", "userId": "carl", "anonymousId": "dev1", "messageId": "c2", "timestamp": NOW - DAY},
    ])  # fmt: skip
    _enqueue(store, [{"type": "page", "userId": "carl", "anonymousId": "dev1", "messageId": "c3",
                      "timestamp": NOW}])  # fmt: skip
    with store.begin() as conn:  # set aside by the processor: a message lacking its person_key
        dead_letters.add(conn, {"message_id": "x1", "anonymous_id": "dev1"}, "boom", NOW)
        carls = dead_letters.add(
            conn, {"message_id": "x2", "user_id": "carl", "anonymous_id": "dev1"}, "boom", NOW
        )
    with store.connect() as conn:
        carl = find_lead(conn, external_id="carl")
        assert carl is not None
        person = find_person(conn, "ann")
        assert person.keys == ("a:dev1", "u:ann")
    report = erase(store, person, PEPPER, NOW, "test")
    assert (report.deleted["events"], report.deleted.get("inbox", 0)) == (2, 0)  # d1 and a1
    # Carl's, naming dev1: kept
    assert report.mentions == {"events.anonymous_id": 2, "inbox.rows": 1, "dead_letters.message": 1}
    with store.connect() as conn:
        kept = conn.execute(select(events.c.message_id).order_by(events.c.message_id)).scalars().all()
        waiting = [row["message_id"] for row in waiting_rows(conn)]
        score = read_current(conn, carl)[0]
        letters = [letter.id for letter in dead_letters.listed(conn)]
    assert (kept, waiting, letters) == (["c1", "c2"], ["c3"], [carls])
    assert (
        score is not None and score["score"] == 12.5
    )  # c2's visit: 5 of 20 engagement points, half the score


@pytest.mark.parametrize("engine", ENGINES)
def test_keys_her_waiting_events_would_link_are_hers_processed_or_not(engine: str) -> None:
    """Anonymous page views from browsers dev9 and prev7, then (waiting in the inbox) Ann's identify from
    dev9 and her alias of prev7, which link both keys to her when processed: erased before or after the
    processor runs, the same rows are left (dev8's page view, someone else's browser)."""
    left = []
    for processed in (False, True):
        with fresh_store(engine) as store:
            _ingest(store, [
                {"type": "identify", "userId": "ann", "messageId": "a1", "timestamp": NOW - 3 * DAY,
                 "traits": {"email": "ann@y.com"}},
                {"type": "page", "anonymousId": "dev9", "messageId": "d9", "timestamp": NOW - 2 * DAY},
                {"type": "page", "anonymousId": "prev7", "messageId": "p7", "timestamp": NOW - 2 * DAY},
                {"type": "page", "anonymousId": "dev8", "messageId": "d8", "timestamp": NOW - 2 * DAY},
            ])  # fmt: skip
            _enqueue(store, [
                {"type": "identify", "userId": "ann", "anonymousId": "dev9", "messageId": "a2",
                 "timestamp": NOW - DAY},
                {"type": "alias", "userId": "ann", "previousId": "prev7", "messageId": "a3", "timestamp": NOW},
            ])  # fmt: skip
            if processed:
                assert process_pending(store) == 2
            with store.connect() as conn:
                person = find_person(conn, "ann")
            # processed, the alias links u:prev7 too (no event of its own)
            assert person.keys == ("a:dev9", "a:prev7", "u:ann", *(("u:prev7",) if processed else ()))
            report = erase(store, person, PEPPER, NOW, "test")
            with store.connect() as conn:
                kept = conn.execute(select(events.c.message_id)).scalars().all()
                left.append(
                    (kept, waiting_rows(conn), conn.execute(select(func.count()).select_from(leads)).scalar())
                )
            assert report.deleted["events"] + report.deleted.get("inbox", 0) == 5  # a1, d9, p7, a2, a3
    assert left == [(["d8"], [], 0), (["d8"], [], 0)]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_erasure_looks_her_up_again_in_its_transaction(engine: str) -> None:
    """Between the lookup and the erasure (the operator confirming) the processor runs: Ann's new identify
    links browser dev5, whose page view is then hers; Nina, known only by waiting events, gets a lead.
    Ann's erasure takes dev5's page view too; Nina's refuses, changing nothing, until she is looked up
    again (before: her new lead, with her e-mail and name, stayed behind a clean verification)."""
    with fresh_store(engine) as store:
        _ingest(store, [
            {"type": "identify", "userId": "ann", "messageId": "a1", "timestamp": NOW - 3 * DAY,
             "traits": {"email": "ann@y.com"}},
            {"type": "page", "anonymousId": "dev5", "messageId": "d5", "timestamp": NOW - 2 * DAY},
        ])  # fmt: skip
        _enqueue(store, [{"type": "identify", "userId": "nina", "messageId": "n1", "timestamp": NOW - DAY,
                          "traits": {"email": "nina@y.com", "firstName": "Nina"}}])  # fmt: skip
        with store.connect() as conn:
            ann, nina = find_person(conn, "ann"), find_person(conn, "nina@y.com")
        assert (ann.keys, nina.lead_id, nina.keys) == (("u:ann",), None, ("u:nina",))
        _enqueue(store, [{"type": "identify", "userId": "ann", "anonymousId": "dev5", "messageId": "a2",
                          "timestamp": NOW}])  # fmt: skip
        assert process_pending(store) == 2
        report = erase(store, ann, PEPPER, NOW, "test")
        assert (report.deleted["events"], report.deleted["identities"]) == (3, 2)  # a1, d5, a2; u:ann, a:dev5
        with pytest.raises(StoreError, match=r"linked to lead \d+ since the lookup"):
            erase(store, nina, PEPPER, NOW, "test")
        with store.connect() as conn:
            assert conn.execute(select(leads.c.email)).scalars().all() == ["nina@y.com"]
            again = find_person(conn, "nina@y.com")
        assert erase(store, again, PEPPER, NOW, "test").deleted["leads"] == 1
        with store.connect() as conn:
            assert conn.execute(select(func.count()).select_from(events)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(leads)).scalar() == 0


@pytest.mark.postgres
def test_a_postgres_erasure_waits_for_the_processor_holding_her_waiting_events() -> None:
    """PostgreSQL: a processor has claimed Nina's waiting identify (the claim deletes the inbox row) and
    made her a lead, not yet committed, when her erasure starts. The erasure waits for that transaction
    (its lock on the inbox rows), then sees the lead and refuses; before, it went on with the lookup's
    lead-less Nina and left the new lead behind."""
    with fresh_store("postgres") as store:
        _enqueue(store, [{"type": "identify", "userId": "nina", "messageId": "n1", "timestamp": NOW,
                          "traits": {"email": "nina@y.com"}}])  # fmt: skip
        with store.connect() as conn:
            nina = find_person(conn, "nina@y.com")
        outcome: list[BaseException | None] = []
        with store.begin() as processor:
            claimed = claim(processor, 100)
            assert claimed is not None
            log_rows(processor, claimed.rows)
            pid = processor.exec_driver_sql("SELECT pg_backend_pid()").scalar()

            def erasing() -> None:
                try:
                    erase(store, nina, PEPPER, NOW, "test")
                    outcome.append(None)
                except BaseException as exc:  # handed to the test's thread
                    outcome.append(exc)

            thread = threading.Thread(target=erasing)
            thread.start()
            with store.connect() as watch:  # until the erasure waits for the processor's lock
                blocked = f"SELECT count(*) FROM pg_stat_activity WHERE {pid} = ANY(pg_blocking_pids(pid))"
                while not watch.exec_driver_sql(blocked).scalar() and thread.is_alive():
                    watch.rollback()
                    time.sleep(0.01)
        thread.join()
        assert isinstance(outcome[0], StoreError) and "since the lookup" in str(outcome[0])
        with store.connect() as conn:
            assert conn.execute(select(leads.c.email)).scalars().all() == ["nina@y.com"]


def test_the_audit_entry_of_a_lead_merged_into_hers_is_redacted(store: Store) -> None:
    """Ann's two leads (user old, then user ann) are merged by her alias: the merge's audit entry names the
    merged-away lead (lead:<id>, one of her ids), the kept one and her alias. Erased, it is redacted."""
    _ingest(store, [{"type": "identify", "userId": "old", "messageId": "a1", "timestamp": NOW - 2 * DAY,
                     "traits": {"email": "ann@old.example"}}])  # fmt: skip
    _ingest(store, [{"type": "identify", "userId": "ann", "messageId": "a2", "timestamp": NOW - DAY,
                     "traits": {"email": "ann@y.example"}}])  # fmt: skip
    _ingest(
        store, [{"type": "alias", "userId": "ann", "previousId": "old", "messageId": "a3", "timestamp": NOW}]
    )
    with store.connect() as conn:
        person = find_person(conn, "u:ann")
        merge = conn.execute(
            select(audit_log.c.target).where(audit_log.c.action == "lead.merge")
        ).scalar_one()
    assert merge in person.keys and merge != f"lead:{person.lead_id}"
    report = erase(store, person, PEPPER, NOW, "test")
    assert report.redacted == {"audit_log": 1}
    with store.connect() as conn:
        entries = [
            (r.action, r.target, r.details) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))
        ]
    assert entries[0] == ("lead.merge", "[erased]", {"redacted": True})
    assert [action for action, _, _ in entries] == ["lead.merge", "privacy.erase"]


def test_the_cli_says_what_it_redacted_and_scored_again(tmp_path: Path) -> None:
    """The CLI's report names every change: rows deleted, rows kept redacted (the merge's audit entry),
    colleagues scored again (Carl, whose committee counted Ann)."""
    from typer.testing import CliRunner

    from leadscore.cli.main import app

    db = str(tmp_path / "cli.db")
    store = Store.from_url(db)
    publish(store, load_model(COMMITTEE), as_of=NOW)
    _ingest(store, [{"type": "identify", "userId": "old", "messageId": "a1", "timestamp": NOW - 3 * DAY}])
    _ingest(store, [
        {"type": "identify", "userId": "ann", "messageId": "a2", "timestamp": NOW - 3 * DAY,
         "traits": {"email": "ann@y.com"}},
        {"type": "identify", "userId": "carl", "messageId": "c1", "timestamp": NOW - 3 * DAY,
         "traits": {"email": "carl@y.com"}},
        {"type": "group", "userId": "ann", "groupId": "y", "messageId": "a5", "timestamp": NOW - 3 * DAY,
         "traits": {"domain": "y.com"}},
        {"type": "group", "userId": "carl", "groupId": "y", "messageId": "c3", "timestamp": NOW - 3 * DAY,
         "traits": {"domain": "y.com"}},
        {"type": "track", "userId": "ann", "event": "Probe", "messageId": "a3", "timestamp": NOW - 2 * DAY},
        {"type": "track", "userId": "carl", "event": "Probe", "messageId": "c2", "timestamp": NOW - DAY},
    ])  # fmt: skip
    _ingest(
        store, [{"type": "alias", "userId": "ann", "previousId": "old", "messageId": "a4", "timestamp": NOW}]
    )
    store.dispose()
    result = CliRunner().invoke(app, ["privacy", "erase", "u:ann", "--yes", "--db", db])
    assert result.exit_code == 0, result.output
    assert "kept with their parts redacted or rendered again without them: audit_log 1" in result.output
    assert "scored again without their events: 1 colleague(s)" in result.output


@pytest.mark.parametrize("engine", ENGINES)
def test_a_browser_her_and_anothers_waiting_events_name_stays(engine: str) -> None:
    """dev8's anonymous page view, then (waiting) page views of Ann and of Bob from dev8: whose browser it
    becomes depends on which the processor applies first, so erasing Ann leaves it."""
    with fresh_store(engine) as store:
        _ingest(store, [
            {"type": "identify", "userId": "ann", "messageId": "a1", "timestamp": NOW - 3 * DAY},
            {"type": "page", "anonymousId": "dev8", "messageId": "d8", "timestamp": NOW - 2 * DAY},
        ])  # fmt: skip
        _enqueue(store, [
            {"type": "page", "userId": "ann", "anonymousId": "dev8", "messageId": "a2", "timestamp": NOW},
            {"type": "page", "userId": "bob", "anonymousId": "dev8", "messageId": "b1", "timestamp": NOW},
        ])  # fmt: skip
        with store.connect() as conn:
            person = find_person(conn, "ann")
        assert person.keys == ("u:ann",)
        erase(store, person, PEPPER, NOW, "test")
        with store.connect() as conn:
            kept = conn.execute(select(events.c.message_id)).scalars().all()
            waiting = [row["message_id"] for row in waiting_rows(conn)]
        assert (kept, waiting) == (["d8"], ["b1"])


MENTIONING_ROWS = 20_000
SCAN_IN_CHILD = """
import sys
from leadscore.privacy.erase import mentions
from leadscore.store import Store

def high_water_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

store = Store.from_url(sys.argv[1])
with store.connect() as conn:
    mentions(conn, ("nobody-at-all",))  # every table's statement prepared once
    before = high_water_kb()
    found = mentions(conn, ("Ann",))
    print(found["events.properties"], high_water_kb() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from /proc")
def test_the_scan_for_mentions_holds_a_bounded_part_of_what_it_reads(store: Store) -> None:
    """20,000 events of another person, each with a 2,000-character note naming Ann (40 MB): the scan for
    her mentions after an erasure read every such row in one result, held whole before the first was
    looked at (PostgreSQL's client takes a result at once), so a few million mentioning rows (an
    attacker's events naming her, or a common name) exhausted the memory of the erasure. It reads them
    a bounded batch at a time and counts every one."""
    note = "a note about Ann " + "x" * 1_983
    row = {"type": "track", "name": "Noted", "person_key": "u:bob", "user_id": "bob",
           "properties": {"note": note}, "context": {}, "source": "test"}  # fmt: skip
    with store.begin() as conn:
        conn.execute(
            events.insert(),
            [{**row, "message_id": f"note-{n}", "ts": n, "received_ms": n} for n in range(MENTIONING_ROWS)],
        )
    url = store.engine.url.render_as_string(hide_password=False)
    child = subprocess.run(
        [sys.executable, "-c", SCAN_IN_CHILD, url], capture_output=True, text=True, check=True, timeout=120
    )
    found, grown_kb = (int(word) for word in child.stdout.split())
    assert found == MENTIONING_ROWS
    assert grown_kb < 15_000, grown_kb  # the rows are 40,000 KB


HEAVY_EVENTS = 70_000


def test_a_person_with_70000_events_is_erased(store: Store) -> None:
    """Each of her event ids was bound as a parameter of its own (``message_id IN (?, ?, ...)``, in the
    events' and the audit log's rules): past 65,535, the most one PostgreSQL statement takes, the erasure
    of anyone with that many events (a busy user over years, or a write key's flood of one user id)
    failed and erased nothing. The lists are bound as one value each, and every one of her 70,001 events
    goes while Bob's stays."""
    ingest(store, [normalise({"type": "identify", "userId": "heavy", "messageId": "id-heavy",
                              "traits": {"email": "heavy@example.com"}}, received_ms=NOW),
                   normalise({"type": "track", "userId": "bob", "event": "E", "messageId": "bob-1"},
                             received_ms=NOW)], source="test")  # fmt: skip
    row = {"type": "track", "name": "E", "person_key": "u:heavy", "user_id": "heavy", "properties": {},
           "context": {}, "source": "test"}  # fmt: skip
    with store.begin() as conn:
        conn.execute(
            events.insert(),
            [{**row, "message_id": f"heavy-{n}", "ts": n, "received_ms": n} for n in range(HEAVY_EVENTS)],
        )
    with store.connect() as conn:
        person = find_person(conn, "heavy@example.com")
    report = erase(store, person, PEPPER, NOW, "test")
    assert report.deleted["events"] == HEAVY_EVENTS + 1
    with store.connect() as conn:
        assert conn.execute(select(events.c.message_id)).scalars().all() == ["bob-1"]
        assert find_lead(conn, external_id="heavy") is None


def test_a_person_with_1500_anonymous_ids_is_erased_and_mentions_of_them_found(store: Store) -> None:
    """The scan for mentions looked for each identifier with a LIKE of its own, joined by OR: past 1,000
    identifiers SQLite refused the statement ("Expression tree is too large"), and past 65,535 PostgreSQL
    (a parameter each), so the erasure of a person with that many browsers (anonymous ids: a write key can
    make them) failed and erased nothing. The identifiers are one list parameter; her 1,501 keys go, and
    Bob's note naming her last anonymous id is the one mention."""
    ingest(store, [normalise({"type": "identify", "userId": "many", "messageId": "id-many",
                              "traits": {"email": "many@example.com"}}, received_ms=NOW),
                   normalise({"type": "track", "userId": "bob", "event": "E", "messageId": "bob-1",
                              "properties": {"note": "saw many-1499 again"}}, received_ms=NOW)],
           source="test")  # fmt: skip
    with store.begin() as conn:
        lead = find_lead(conn, external_id="many")
        conn.execute(
            identities.insert(),
            [{"key": f"a:many-{n}", "lead_id": lead, "created_ms": n} for n in range(1500)],
        )
    with store.connect() as conn:
        person = find_person(conn, "many@example.com")
    report = erase(store, person, PEPPER, NOW, "test")
    assert report.deleted["identities"] == 1501
    assert report.mentions == {"events.properties": 1}


def test_70000_browsers_that_sent_her_e_mail_are_erased_with_her(store: Store) -> None:
    """Events of 70,000 anonymous ids whose traits carry her e-mail, claimed by no lead, are hers: the
    look-up of which of those keys a lead holds bound each as a parameter of its own, and past 65,535
    PostgreSQL refused it, so she could not even be looked up. They are one list parameter; her lead's
    event and the 70,000 go."""
    ingest(store, [normalise({"type": "identify", "userId": "mail", "messageId": "id-mail",
                              "traits": {"email": "mail@example.com"}}, received_ms=NOW)], source="test")  # fmt: skip
    row = {"type": "identify", "properties": {}, "context": {"traits": {"email": "MAIL@example.com"}},
           "source": "test", "received_ms": 0}  # fmt: skip
    with store.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {**row, "message_id": f"b-{n}", "person_key": f"a:b-{n}", "anonymous_id": f"b-{n}", "ts": n}
                for n in range(HEAVY_EVENTS)
            ],
        )
    with store.connect() as conn:
        person = find_person(conn, "mail@example.com")
    assert len(person.keys) == HEAVY_EVENTS + 1
    report = erase(store, person, PEPPER, NOW, "test")
    assert report.deleted["events"] == HEAVY_EVENTS + 1
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0


def test_a_person_merged_with_many_is_erased_exactly_and_scanned_once_a_value(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty users aliased one into the next and the last into her (u:her, whose browser a:ann three
    colleagues later shared): erasing her takes all their events, every merge's, and nothing of anyone
    else's. The mention scan then reports the colleagues' three events that carry a:ann and the one note
    naming p7, not the forty "annual" plans (ann inside a longer word). It folded every value read once
    per identifier of hers (and compiled a pattern per identifier past a cache of 256): a person merged
    n times cost n times every value that contains one of her ids. Counted as calls of ``fold_case``:
    at most one a value read and one an identifier."""
    n = 30
    t = NOW - 10 * DAY
    hers: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": "ann", "messageId": "her-anon", "timestamp": t},
        {"type": "identify", "userId": "her", "anonymousId": "ann", "messageId": "her-id", "timestamp": t + 1,
         "traits": {"email": "her@x.test"}},
    ]  # fmt: skip
    for i in range(n):
        hers += [
            {"type": "identify", "userId": f"p{i}", "messageId": f"her-id{i}", "timestamp": t + 2 + i,
             "traits": {"email": f"p{i}@x.test"}},
            {"type": "page", "userId": f"p{i}", "messageId": f"her-pg{i}", "timestamp": t + 2 + i},
            {"type": "alias", "userId": f"p{i + 1}" if i + 1 < n else "her", "previousId": f"p{i}",
             "messageId": f"her-al{i}", "timestamp": t + 100 + i},
        ]  # fmt: skip
    others: list[dict[str, Any]] = [
        {"type": "track", "userId": f"o{j}", "event": "Plan", "messageId": f"other-{j}", "timestamp": t + 200,
         "properties": {"plan": "annual"}}
        for j in range(40)
    ]  # fmt: skip
    others += [
        {"type": "identify", "userId": f"o{j}", "anonymousId": "ann", "messageId": f"other-ann{j}",
         "timestamp": t + 300 + j, "traits": {"email": f"o{j}@y.test"}}
        for j in range(3)
    ]  # fmt: skip
    others.append({"type": "track", "userId": "o0", "event": "Note", "messageId": "other-note",
                   "timestamp": t + 400, "properties": {"note": "ask p7 about it"}})  # fmt: skip
    _ingest(store, hers + others)
    with store.connect() as conn:
        person = find_person(conn, "her")
        kept = {
            str(tuple(r)) for r in conn.execute(select(events).where(events.c.message_id.like("other-%")))
        }
    assert len(kept) == len(others)
    folded: list[str] = []
    real = erase_module.fold_case

    def counted(text: str) -> str:
        folded.append(text)
        return real(text)

    monkeypatch.setattr(erase_module, "fold_case", counted)
    report = erase(store, person, PEPPER, NOW, "test")
    assert report.deleted["events"] == 2 + 3 * n
    assert report.mentions == {"events.anonymous_id": 3, "events.properties": 1}
    with store.connect() as conn:
        # every text and JSON value the scan (run after the deletions) could read
        values = sum(
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            * sum(isinstance(c.type, String | sa_types.JSON) for c in table.columns)
            for table in present_tables(conn)
        )
        assert len(folded) <= values + len(person.identifiers)
        assert {str(tuple(r)) for r in conn.execute(select(events))} == kept
        assert set(conn.execute(select(leads.c.external_id)).scalars()) == {f"o{j}" for j in range(40)}
        assert {key for key in conn.execute(select(identities.c.key)).scalars()} <= {
            f"u:o{j}" for j in range(40)
        }


def test_the_mention_scan_runs_after_the_erasure_has_committed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan reads every text and JSON value of everyone's rows, once per identifier of hers in SQL
    (20,000 events of others and a person merged 300 times: 33.7 of the erasure's 33.8 CPU-s). It ran in
    the erasure's transaction, which holds SQLite's write lock and, on PostgreSQL, every inbox row: no
    event was scored meanwhile. It only reports, so it runs once her rows are gone and the locks given
    back: a connection of its own sees the erasure committed when the scan starts."""
    _ingest(store, [
        {"type": "identify", "userId": "her", "messageId": "h1", "timestamp": NOW, "traits": {"email": "her@x.test"}},
        {"type": "track", "userId": "bob", "event": "Note", "messageId": "b1", "timestamp": NOW,
         "properties": {"note": "call her@x.test"}},
    ])  # fmt: skip
    seen: list[int] = []
    real = erase_module.mentions

    def looking(conn: Any, identifiers: tuple[str, ...]) -> dict[str, int]:
        with store.connect() as other:
            seen.append(other.execute(select(func.count()).select_from(leads)).scalar_one())
        return real(conn, identifiers)

    monkeypatch.setattr(erase_module, "mentions", looking)
    with store.connect() as conn:
        person = find_person(conn, "her")
    report = erase(store, person, PEPPER, NOW, "test")
    assert seen == [1]  # bob's lead alone: hers is gone for everyone
    assert report.mentions == {"events.properties": 1}

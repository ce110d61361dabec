"""A batch of messages applied in one go (one key lookup for the batch, bare leads created together, user
keys linked through the lookup) leaves the store exactly as applying the same messages one at a time, in
event-time order, does: the same leads with the same traits (newest wins by event time), the same key
links (first link wins), the same accounts. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, select

from leadscore.ingest.apply import KeyLookup, LinkRaced, apply_messages
from leadscore.ingest.segment import Message, normalise
from leadscore.store import Store
from leadscore.store.people import PeopleCache, create_bare_leads, link_identity, upsert_account, upsert_lead
from leadscore.store.schema import accounts, events, identities, leads

T0 = 1_717_200_000_000
USERS = ["u1", "u2", "u3", "kim@acme.example"]
ANONS = ["a1", "a2", "a3"]
EMAILS = ["kim@acme.example", "lee@beta.example", "ann@acme.example", "bo@gamma.example"]
DOMAINS = ["acme.example", "beta.example", "gamma.example"]


@st.composite
def _traits(draw: st.DrawFn) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    if draw(st.booleans()):
        traits["email"] = draw(st.sampled_from(EMAILS))
    if draw(st.booleans()):
        traits["title"] = draw(st.sampled_from(["CTO", "VP Sales", "Engineer"]))
    if draw(st.booleans()):
        traits["employees"] = draw(st.sampled_from([5, 60, 2000]))
    if draw(st.booleans()):
        traits["first_name"] = draw(st.sampled_from(["Kim", "Lee"]))
    return traits


@st.composite
def _message(draw: st.DrawFn, index: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["identify", "track", "page", "alias", "group"]))
    # few distinct times: ties are ordered by message id
    out: dict[str, Any] = {
        "type": kind,
        "messageId": f"m{index:02d}",
        "timestamp": T0 + draw(st.integers(0, 5)),
    }
    user = draw(st.none() | st.sampled_from(USERS))
    anon = draw(st.none() | st.sampled_from(ANONS))
    if kind == "alias":
        out["userId"] = draw(st.sampled_from(USERS))
        out["previousId"] = draw(st.sampled_from([*ANONS, *USERS]))
        return out
    if user is None and anon is None:
        anon = draw(st.sampled_from(ANONS))
    if user is not None:
        out["userId"] = user
    if anon is not None:
        out["anonymousId"] = anon
    if kind == "track":
        out["event"] = "Clicked"
    if kind == "identify":
        out["traits"] = draw(_traits())
    elif kind == "group":
        domain = draw(st.sampled_from(DOMAINS))
        out["groupId"] = domain
        out["traits"] = {
            "name": domain.split(".")[0],
            "domain": domain,
            "plan": draw(st.sampled_from(["a", "b"])),
        }
    elif draw(st.integers(0, 3)) == 0:
        out["context"] = {"traits": draw(_traits())}
    return out


@st.composite
def _streams(draw: st.DrawFn) -> list[Message]:
    raw = [draw(_message(i)) for i in range(draw(st.integers(1, 14)))]
    if raw and draw(st.booleans()):
        raw.append(dict(draw(st.sampled_from(raw))))  # a resent copy: applied once
    received = T0 + 10
    return [normalise(m, received_ms=received, trust_received_at=True) for m in raw]


def _state(conn: Connection) -> dict[str, Any]:
    """The people-side state with ids replaced by names (ids differ between runs on PostgreSQL)."""
    account_domain = {r.id: r.domain or r.name for r in conn.execute(select(accounts))}
    rows = conn.execute(select(leads)).mappings().all()
    name = {r["id"]: (r["external_id"], r["email"]) for r in rows}
    return {
        "leads": sorted(
            (
                str(r["external_id"]),
                str(r["email"]),
                str(r["email_domain"]),
                str(r["first_name"]),
                str(r["last_name"]),
                str(r["company"]),
                str(sorted((r["attributes"] or {}).items())),
                str(sorted((r["attribute_ts"] or {}).items())),
                str(account_domain.get(r["account_id"])),
                # the time of the last write: a batch holds its leads' changes and writes them at its end
                r["updated_ms"],
            )
            for r in rows
        ),
        # a merged-away lead's id (people.merged_key) is an id too: named by the lead it resolves to
        "links": sorted(
            ("lead:merged" if r.key.startswith("lead:") else r.key, name[r.lead_id])
            for r in conn.execute(select(identities))
        ),
        "accounts": sorted(
            (str(r.domain), str(r.name), str(sorted(r.attributes.items())))
            for r in conn.execute(select(accounts))
        ),
        "events": sorted(r.message_id for r in conn.execute(select(events.c.message_id))),
    }


def _applied(store: Store, messages: list[Message], *, one_by_one: bool) -> dict[str, Any]:
    with store.connect() as conn, conn.begin() as tx:
        # a lead known beforehand by e-mail only (a CSV import), so identifies may find it by e-mail
        upsert_lead(conn, now_ms=T0, email="kim@acme.example", fields={"first_name": "Kimberly"})
        if one_by_one:  # every key linked as its message is applied
            for m in sorted(messages, key=lambda m: (m.ts, m.message_id)):
                apply_messages(conn, [m], "test", defer_links=False)
        else:  # anonymous keys linked together at the end (as a backfill's chunk does, on either store)
            apply_messages(conn, messages, "test", defer_links=True)
        state = _state(conn)
        tx.rollback()  # the store stays empty for the next example
    return state


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=_streams())
def test_a_batch_applies_as_its_messages_one_by_one(store: Store, messages: list[Message]) -> None:
    assert _applied(store, messages, one_by_one=False) == _applied(store, messages, one_by_one=True)


def test_first_link_wins_and_newest_trait_wins_in_a_batch(store: Store) -> None:
    """Worked by hand: u1 is seen anonymously as a1, a1 is then aliased to u2 (too late: a1 is u1's),
    and u1's two identifies arrive newest first; the older title must not overwrite the newer."""
    raw: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "messageId": "m1", "timestamp": T0 + 3, "traits": {"title": "CTO"}},
        {"type": "identify", "userId": "u1", "messageId": "m2", "timestamp": T0 + 1, "traits": {"title": "Engineer"}},
        {"type": "page", "userId": "u1", "anonymousId": "a1", "messageId": "m3", "timestamp": T0 + 2},
        {"type": "alias", "userId": "u2", "previousId": "a1", "messageId": "m4", "timestamp": T0 + 4},
    ]  # fmt: skip
    state = _applied(
        store, [normalise(m, received_ms=T0 + 10, trust_received_at=True) for m in raw], one_by_one=False
    )
    links = dict(state["links"])
    assert links["a:a1"] == ("u1", None)
    assert links["u:u1"] == ("u1", None) and links["u:u2"] == ("u2", None)
    u1 = next(lead for lead in state["leads"] if lead[0] == "u1")
    assert u1[6] == str([("job_title", "CTO")]) and u1[7] == str([("job_title", T0 + 3)])


@pytest.mark.postgres
def test_a_deferred_link_raced_by_another_writer_is_refused(pg_store: Store) -> None:
    """A batch links anonymous key a:a9 in memory; another transaction links it to a second lead and
    commits before the batch writes its links: the batch must not go on believing its own link (first
    link wins, and the other writer was first), so ``flush`` raises ``LinkRaced`` and the key stays the
    other lead's."""
    page = normalise(
        {"type": "page", "messageId": "m1", "anonymousId": "a9", "timestamp": T0}, received_ms=T0 + 10
    )
    with pg_store.begin() as setup:
        mine, _ = upsert_lead(setup, now_ms=T0, external_id="u1")
        theirs, _ = upsert_lead(setup, now_ms=T0, external_id="u2")
    with pytest.raises(LinkRaced), pg_store.begin() as conn:
        lookup = KeyLookup(conn, [page], defer=True)
        assert lookup.link("a:a9", mine, T0) is True
        with pg_store.begin() as other:
            link_identity(other, "a:a9", theirs, T0)
        lookup.flush()
    with pg_store.connect() as conn:
        owner = conn.execute(select(identities.c.lead_id).where(identities.c.key == "a:a9")).scalar_one()
    assert owner == theirs


def test_a_batch_moves_an_email_between_leads_and_links_an_accounts_leads(store: Store) -> None:
    """Worked by hand: u2's lead is older (smaller id) than u1's. In one batch u1 moves from
    kim@acme.example to ann@acme.example, then u2 takes kim@acme.example (free by then), then u2 joins the
    group acme.example, whose new account takes every lead of that e-mail domain without one: both. The
    batch holds these changes and writes them at its end; u2's row must not be written with kim's address
    while u1's row still holds it (the column is unique)."""
    received = T0 + 10
    raw: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "messageId": "m1", "timestamp": T0 + 1, "traits": {"email": "ann@acme.example"}},
        {"type": "identify", "userId": "u2", "messageId": "m2", "timestamp": T0 + 2,
         "traits": {"email": "KIM@acme.example", "name": "Kim Lee", "company": "Acme"}},
        {"type": "group", "userId": "u2", "messageId": "m3", "timestamp": T0 + 3, "groupId": "g1",
         "traits": {"name": "Acme Inc", "domain": "www.acme.example"}},
    ]  # fmt: skip
    with store.connect() as conn, conn.begin() as tx:
        u2, _ = upsert_lead(conn, now_ms=T0, external_id="u2")
        u1, _ = upsert_lead(conn, now_ms=T0, external_id="u1", email="kim@acme.example")
        assert u2 < u1
        apply_messages(conn, [normalise(m, received_ms=received) for m in raw], "test", defer_links=True)
        rows = {
            r.id: (r.email, r.email_domain, r.first_name, r.last_name, r.company, r.account_id, r.updated_ms)
            for r in conn.execute(select(leads))
        }
        (account,) = conn.execute(select(accounts.c.id, accounts.c.domain, accounts.c.name)).all()
        tx.rollback()
    assert tuple(account)[1:] == ("acme.example", "Acme Inc")
    assert rows == {
        u1: ("ann@acme.example", "acme.example", None, None, None, account.id, received),
        u2: ("kim@acme.example", "acme.example", "Kim", "Lee", "Acme", account.id, received),
    }


def test_a_new_lead_takes_an_address_the_batch_moved_off_another(store: Store) -> None:
    """Worked by hand: in one batch u1 is created with kim@acme.example, moves to ann@acme.example (held
    in the batch's cache, not yet written), then a new user u2 identifies as kim@acme.example. u2's lead
    is inserted at once; the stored row of u1 must not still hold kim's address then (the column is
    unique): u1 ends with ann, u2 with kim, as applying the messages one by one gives."""
    raw: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "messageId": "m1", "timestamp": T0 + 1, "traits": {"email": "kim@acme.example"}},
        {"type": "identify", "userId": "u1", "messageId": "m2", "timestamp": T0 + 2, "traits": {"email": "ann@acme.example"}},
        {"type": "identify", "userId": "u2", "messageId": "m3", "timestamp": T0 + 3, "traits": {"email": "kim@acme.example"}},
    ]  # fmt: skip
    messages = [normalise(m, received_ms=T0 + 10, trust_received_at=True) for m in raw]
    with store.connect() as conn, conn.begin() as tx:
        apply_messages(conn, messages, "test", defer_links=True)
        emails = dict(conn.execute(select(leads.c.external_id, leads.c.email)).all())
        tx.rollback()
    assert emails == {"u1": "ann@acme.example", "u2": "kim@acme.example"}
    assert _applied(store, messages, one_by_one=False) == _applied(store, messages, one_by_one=True)


def test_an_account_the_cache_was_not_told_of_links_leads_after_the_held_changes(store: Store) -> None:
    """Worked by hand: kim's lead is stored at beta.example; in a batch her e-mail moves to acme.example
    (held in the cache, not yet written), then an account for beta.example, a domain the cache did not
    read up front, links the leads of that domain by its statement. The held move must be written
    first: kim is no longer at beta.example and stays without an account."""
    with store.connect() as conn, conn.begin() as tx:
        lead, _ = upsert_lead(conn, now_ms=T0, external_id="u1", email="kim@beta.example")
        cache = PeopleCache(
            conn, lambda key: None, lead_ids=[lead], external_ids=["u1"], emails=[], domains=[]
        )
        upsert_lead(conn, now_ms=T0 + 1, external_id="u1", email="kim@acme.example", cache=cache)
        upsert_account(conn, now_ms=T0 + 2, domain="beta.example", name="Beta", cache=cache)
        cache.flush(conn)
        row = conn.execute(
            select(leads.c.email, leads.c.email_domain, leads.c.account_id, leads.c.updated_ms)
        ).one()
        tx.rollback()
    assert tuple(row) == ("kim@acme.example", "acme.example", None, T0 + 1)


def test_bare_leads_are_created_once_with_nothing_but_their_user_id(store: Store) -> None:
    """Three new user ids (and one that looks like an e-mail, left to ``upsert_lead``): three leads, each
    with its user id, no e-mail, empty attributes, created and updated at its first-seen time, linked by a
    ``u:`` key; asked again for two of them, the same leads come back and none is created."""
    with store.begin() as conn:
        found, created = create_bare_leads(
            conn, {"ann": T0, "bob": T0 + 1, "kim@acme.example": T0 + 2, "cy": T0 + 3}
        )
        again, created_again = create_bare_leads(conn, {"bob": T0 + 9, "ann": T0 + 9})
        rows = conn.execute(
            select(
                leads.c.external_id,
                leads.c.email,
                leads.c.attributes,
                leads.c.attribute_ts,
                leads.c.created_ms,
                leads.c.updated_ms,
            ).order_by(leads.c.external_id)
        ).all()
        keys = dict(conn.execute(select(identities.c.key, identities.c.lead_id)).all())
    assert sorted(found) == ["ann", "bob", "cy"]
    assert created == set(found.values()) and len(created) == 3
    assert again == {"ann": found["ann"], "bob": found["bob"]}
    assert created_again == set()
    assert [tuple(row) for row in rows] == [
        ("ann", None, {}, {}, T0, T0),
        ("bob", None, {}, {}, T0 + 1, T0 + 1),
        ("cy", None, {}, {}, T0 + 3, T0 + 3),
    ]
    assert keys == {"u:ann": found["ann"], "u:bob": found["bob"], "u:cy": found["cy"]}

"""PostHog group analytics → accounts. An account is keyed by its group key (``accounts.group_key``,
migration 0029gk): ``$groupidentify`` finds it by that key, so two companies that share a display name
stay two accounts, and an event naming its group (``$groups``) puts a contact without an account into
it. Both searches use ``ix_accounts_group_key`` (EXPLAIN on each store).

Model: demo 40, pricing page 30 (engagement max 100, weights fit 0 engagement 1); accounts: committee of
2, engaged from 35. Hand-computed:

=====  ==========================================  ===========  ==========
lead   how she joins                               account      engagement
=====  ==========================================  ===========  ==========
ada    ``$groupidentify`` company acme-1 ("Acme")   acme-1       demo 40
bo     an event with ``$groups: {company: acme-1}`` acme-1       pricing 30 + demo 40 = 70
cy     ``$groupidentify`` company acme-2 ("Acme")   acme-2       0
carl   ``$groupidentify`` acme-2, then an event     acme-2       demo 40
       naming acme-1 (an account already: stays)
=====  ==========================================  ===========  ==========

acme-1: (70 + 40) / 2 = 55, 2 engaged; acme-2: (40 + 0) / 2 = 20, 1 engaged. Before: acme-2's
``$groupidentify`` found acme-1's account by its name (one account "Acme" of ada, cy and carl), and bo
joined none."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from leadscore.lifecycle.accounts import named_account_scores
from leadscore.scoring.run import now_ms
from leadscore.store import Store
from leadscore.store.event_log import waiting_events
from leadscore.store.people import _ACCOUNT_BY_GROUP_KEY, _ACCOUNT_BY_NAME, _ACCOUNTS_BY_GROUP_KEYS
from leadscore.store.schema import accounts, events, leads
from live_server import tracking
from test_api_tracking import wait_until

MODEL = """
model: groups
engagement:
  - {id: demo, name: Demo request, kind: once, event: {type: track, name: Demo Requested}, points: 40}
  - {id: pricing, name: Pricing page, kind: once, event: {type: page}, where: {property: path, prefix: /pricing}, points: 30}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
lifecycle:
  initial: lead
  stages:
    - {id: lead, name: Lead}
  accounts:
    committee_size: 2
    engaged_at_least: 35
    weights: {fit: 0, engagement: 1}
    mqa: {score_at_least: 40, engaged_contacts_at_least: 1}
"""


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    with tracking(store, MODEL, "product") as (url, write):
        yield url, write, store


def _event(name: str, who: str, minute: int, **properties: Any) -> dict[str, Any]:
    """An event as posthog-python sends it in a batch (its person properties inside ``properties``)."""
    at = datetime.now(UTC) - timedelta(minutes=60 - minute)
    return {"event": name, "distinct_id": who, "properties": properties, "timestamp": at.isoformat(),
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{who}/{minute}"))}  # fmt: skip


def _company(who: str, key: str, minute: int) -> dict[str, Any]:
    return _event("$groupidentify", who, minute, **{"$group_type": "company", "$group_key": key,
                                                     "$group_set": {"name": "Acme"}})  # fmt: skip


def test_group_keys_make_accounts_and_events_attach_their_contacts(api: tuple[str, str, Store]) -> None:
    url, write, store = api
    people = [
        _event("$identify", who, 1, **{"$set": {"email": f"{who}@mail.test"}})
        for who in ("ada", "bo", "cy", "carl")
    ]
    batch = [
        *people,
        _company("ada", "acme-1", 2),
        _company("cy", "acme-2", 3),
        _company("carl", "acme-2", 4),
        _event("Demo Requested", "ada", 5, **{"$groups": {"company": "acme-1"}}),
        _event("$pageview", "bo", 6, **{"$current_url": "https://ex.com/pricing", "$groups": {"company": "acme-1"}}),
        _event("Demo Requested", "bo", 7, **{"$groups": {"company": "acme-1"}}),
        _event("Demo Requested", "carl", 8, **{"$groups": {"company": "acme-1"}}),
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        # the people first, then their companies and events (two batches, as a client's flushes may be)
        for body in (batch[:4], batch[4:]):
            r = http.post("/batch/", json={"api_key": write, "batch": body})
            assert r.status_code == 200 and r.json()["rejected"] == [], r.text
            assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        keyed = {
            str(r.group_key): int(r.id) for r in conn.execute(select(accounts.c.id, accounts.c.group_key))
        }
        members = {
            str(r.external_id): r.account_id
            for r in conn.execute(select(leads.c.external_id, leads.c.account_id))
        }
        scores = named_account_scores(conn, None, list(keyed.values()), now_ms())
    assert set(keyed) == {"acme-1", "acme-2"}
    assert members == {
        "ada": keyed["acme-1"],
        "bo": keyed["acme-1"],
        "cy": keyed["acme-2"],
        "carl": keyed["acme-2"],
    }
    acme1, acme2 = scores[keyed["acme-1"]], scores[keyed["acme-2"]]
    assert (acme1.score, acme1.engaged_contacts) == (55, 2)
    assert (acme2.score, acme2.engaged_contacts) == (20, 1)


def _waiting(store: Store) -> int:
    with store.connect() as conn:
        return waiting_events(conn)


def test_an_account_is_found_by_its_group_key_through_its_index(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            accounts.insert(),
            [{"name": f"c{i}", "domain": f"c{i}.test", "group_key": f"k{i}", "attributes": {}, "created_ms": 0,
              "updated_ms": 0} for i in range(5000)],
        )  # fmt: skip
        conn.execute(text("ANALYZE"))
    with store.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        plans = []
        for statement, params in (
            (_ACCOUNT_BY_GROUP_KEY, {"value": "k7"}),
            (_ACCOUNTS_BY_GROUP_KEYS, {"values": ["k7", "k9"]}),
            (_ACCOUNT_BY_NAME, {"value": "c7"}),  # a group with neither a key nor a domain
        ):
            compiled = statement.compile(conn)
            if sqlite:
                bound = tuple(
                    '["k7", "k9"]' if isinstance(v, list) else v
                    for v in (params[k] for k in compiled.positiontup or [])
                )
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", bound).all()
                plans.append(" ".join(str(r[-1]) for r in plan))
            else:
                plans.append(" ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}", params)))
    for plan, index in zip(plans, ("ix_accounts_group_key",) * 2 + ("ix_accounts_name",), strict=True):
        assert index in plan, plan


def test_a_posthog_timestamp_of_epoch_zero_is_1970_not_the_arrival_time(api: tuple[str, str, Store]) -> None:
    """``timestamp: 0`` (epoch milliseconds, docs/ingest.md) is 1970-01-01T00:00Z, stored as sent; it was
    dropped as missing and the event took the time it arrived."""
    url, write, store = api
    batch = [
        {"event": "Demo Requested", "distinct_id": "ep", "properties": {}, "timestamp": 0, "uuid": "e0"},
        {"event": "Demo Requested", "distinct_id": "ep", "properties": {}, "timestamp": 1000, "uuid": "e1"},
    ]
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", json={"api_key": write, "batch": batch})
    assert r.status_code == 200 and r.json()["rejected"] == [], r.text
    assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        times = dict(conn.execute(select(events.c.message_id, events.c.ts)).all())
    assert times == {"e0": 0, "e1": 1000}


def test_person_events_without_person_processing_are_dropped_as_posthog_drops_them(
    api: tuple[str, str, Store],
) -> None:
    """PostHog drops ``$identify``, ``$create_alias``, ``$merge_dangerously`` and ``$groupidentify`` whose
    ``properties.$process_person_profile`` is false (ingestion warning
    ``invalid_event_when_process_person_profile_is_false``), and a ``$set`` event's person properties with
    it: leadscore refused none of them and made the lead, its e-mail, the alias and the account."""
    url, write, store = api
    off = {"$process_person_profile": False}
    batch = [
        _event("$identify", "pp", 1, **off, **{"$set": {"email": "pp@mail.test"}, "$anon_distinct_id": "anon-pp"}),
        _event("$groupidentify", "qq", 2, **off, **{"$group_type": "company", "$group_key": "acme-pp",
                                                    "$group_set": {"name": "Acme"}}),
        _event("$create_alias", "qq", 3, **off, alias="alias-pp"),
        _event("$merge_dangerously", "qq", 4, **off, alias="merge-pp"),
        _event("$set", "qq", 5, **off, **{"$set": {"email": "qq@mail.test"}}),
        _event("$identify", "qq", 6, **{"$set": {"company": "Q Ltd"}}),  # person processing on: applied
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", json={"api_key": write, "batch": batch})
    assert r.status_code == 200, r.text
    rejected = r.json()["rejected"]
    assert [(e["index"], e["field"]) for e in rejected] == [
        (i, f"batch[{i}].properties.$process_person_profile") for i in range(4)
    ]
    assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        people = {str(r.external_id): (r.email, r.company) for r in conn.execute(select(leads))}
        keys = [r.group_key for r in conn.execute(select(accounts.c.group_key))]
        stored = {(r.message_id, r.type) for r in conn.execute(select(events.c.message_id, events.c.type))}
    assert people == {"qq": (None, "Q Ltd")}
    assert keys == []
    assert {kind for _, kind in stored} == {"track", "identify"} and len(stored) == 2

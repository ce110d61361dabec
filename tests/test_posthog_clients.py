"""posthog-python, unchanged and with its own defaults (only the host and project key set; and once with
``gzip=True``), pointed at a live leadscore: an anonymous visitor's page views, her ``$identify`` with
``$set`` traits, her company's ``$groupidentify`` and an event with ``$groups`` arrive in batches on
``/batch/``; every event is stored, her anonymous history is stitched to her lead, the company becomes
her account, and the lead is scored by the same compiled query as Segment messages."""

from __future__ import annotations

import base64
import gzip
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.event_log import stored_message_ids, waiting_events
from leadscore.store.keys import create_key
from leadscore.store.results import read_current
from leadscore.store.schema import accounts, events, identities, leads
from live_server import serve_command, tracking
from test_api_tracking import MODEL, wait_until

posthog = pytest.importorskip("posthog", reason="posthog (posthog-python) is not installed")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
RECORDED = Path(__file__).parent / "data" / "clients"
PAGES = 30  # page views before she identifies herself: the first is the pricing page


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    with tracking(store, MODEL, "product") as (url, write):
        yield url, write, store


def _uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _waiting(store: Store) -> int:
    with store.connect() as conn:
        return waiting_events(conn)


@pytest.mark.parametrize("compress", [False, True], ids=["defaults", "gzip"])
def test_posthog_python_events_are_stored_stitched_grouped_and_scored(
    api: tuple[str, str, Store], compress: bool
) -> None:
    url, write, store = api
    client = posthog.Posthog(write, host=url, gzip=compress) if compress else posthog.Posthog(write, host=url)
    # anonymous: her distinct id is her device id, as posthog-js sends it before identify
    for i in range(PAGES):
        path = "/pricing" if i == 0 else f"/blog/{i}"
        client.capture(
            "$pageview",
            distinct_id="anon-7",
            properties={"$current_url": f"https://ex.com{path}", "$device_id": "anon-7"},
            uuid=_uuid(f"p{i}"),
        )
    client.capture(
        "$identify",
        distinct_id="ada",
        properties={"$anon_distinct_id": "anon-7", "$set": {"email": "ada@example.com", "role": "CTO"}},
        uuid=_uuid("who"),
    )
    client.group_identify(
        "company", "acme", {"name": "Acme", "domain": "acme.com"}, distinct_id="ada", uuid=_uuid("co")
    )
    client.capture("Demo Requested", distinct_id="ada", groups={"company": "acme"}, uuid=_uuid("demo"))
    client.flush(timeout_seconds=180)  # not its default 10 s: a loaded machine (see below)
    client.shutdown()

    ids = {_uuid(f"p{i}") for i in range(PAGES)} | {_uuid("who"), _uuid("co"), _uuid("demo")}
    with store.connect() as conn:
        # every event, and the alias that her $identify also is
        assert stored_message_ids(conn) == ids | {_uuid("who") + ":alias"}
    assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        lead = conn.execute(select(leads).where(leads.c.email == "ada@example.com")).one()
        keys = set(conn.execute(select(identities.c.key).where(identities.c.lead_id == lead.id)).scalars())
        account = conn.execute(select(accounts).where(accounts.c.id == lead.account_id)).one()
        current, _ = read_current(conn, lead.id)
    # the $identify links her device id (a:) and, as an alias, the same id sent as a distinct id (u:)
    assert keys == {"u:ada", "a:anon-7", "u:anon-7"}
    assert (account.domain, account.name) == ("acme.com", "Acme")
    # her anonymous pricing page view (30) counts for her, and the demo request (50): 80
    assert current is not None and current["score"] == 80


def test_posthog_js_wire_forms(api: tuple[str, str, Store]) -> None:
    """What posthog-js sends: an array of events on ``/e/`` with the token in each event's properties,
    gzip flagged by ``compression=gzip-js``, or base64 JSON in a ``data=`` form; a resent uuid is a
    duplicate; ``/flags/`` answers with every feature off."""
    url, write, store = api
    view = {
        "event": "$pageview",
        "uuid": _uuid("js-1"),
        "properties": {
            "distinct_id": "dev-1",
            "$device_id": "dev-1",
            "token": write,
            "$current_url": "https://ex.com/pricing",
        },
    }
    demo = {
        "event": "Demo Requested",
        "uuid": _uuid("js-2"),
        "properties": {"distinct_id": "bo", "$device_id": "dev-1", "token": write},
        "$set": {"email": "bo@example.com"},
    }
    with httpx.Client(base_url=url) as http:
        r = http.post("/e/?compression=gzip-js", content=gzip.compress(orjson.dumps([view])))
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        form = {"data": base64.b64encode(orjson.dumps([view, demo])).decode()}
        r = http.post("/i/v0/e/?compression=base64", data=form)
        assert r.status_code == 200, r.text
        # counted in stored messages: the resent view, the demo and the identify its $set makes
        assert (r.json()["accepted"], r.json()["duplicates"]) == (3, 1)
        assert (
            http.post("/e/", json=[{**view, "properties": {"token": "nope", "distinct_id": "x"}}]).status_code
            == 401
        )
        assert http.post("/e/?compression=lz64", content=b"x").status_code == 415
        many = http.post("/e/", content="&".join(f"f{i}=1" for i in range(9)).encode(), headers=FORM)
        assert (many.status_code, many.json()["error"]) == (400, "a form body has at most 8 fields")
        corrupt = http.post("/e/", content=b"\x1f\x8b\x08\x00garbage")
        assert corrupt.status_code == 400 and corrupt.json()["error"] == "the gzip body is truncated"
        assert http.post("/flags/?v=2", json={"token": write}).json()["featureFlags"] == {}
    assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        lead = conn.execute(select(leads).where(leads.c.email == "bo@example.com")).one()
        keys = set(conn.execute(select(identities.c.key).where(identities.c.lead_id == lead.id)).scalars())
        current, _ = read_current(conn, lead.id)
    # the device's anonymous pricing view (30) is hers once an event names both ids, and the demo (50)
    assert keys == {"u:bo", "a:dev-1"}
    assert current is not None and current["score"] == 80


def test_posthog_python_set_once_fills_only_what_the_lead_lacks(api: tuple[str, str, Store]) -> None:
    """``$set`` overrides and ``$set_once`` sets a person property only where the lead has none yet:
    from ``posthog.set``/``set_once``, from an event's ``properties.$set``/``$set_once`` and from an
    ``$identify``, applied in event-time order (each a minute after the one before)."""
    url, write, store = api
    client = posthog.Posthog(write, host=url)
    start = datetime.now(UTC) - timedelta(minutes=30)

    def at(minute: int) -> datetime:
        return start + timedelta(minutes=minute)

    # 1: the lead is made with email and plan trial
    client.set(distinct_id="cy", properties={"email": "cy@example.com", "plan": "trial"}, timestamp=at(1),
               uuid=_uuid("s1"))  # fmt: skip
    # 2: plan is set already (stays trial); first_source is new (ads)
    client.set_once(distinct_id="cy", properties={"plan": "free", "first_source": "ads"}, timestamp=at(2),
                    uuid=_uuid("s2"))  # fmt: skip
    # 3: an event's person properties: first_source stays ads, first_feature is new, seats_used is set
    client.capture(
        "Feature Used",
        distinct_id="cy",
        properties={"feature": "alerts", "$set": {"seats_used": 3},
                    "$set_once": {"first_source": "webinar", "first_feature": "alerts"}},
        timestamp=at(3),
        uuid=_uuid("s3"),
    )  # fmt: skip
    # 4: $identify: $set wins over $set_once for plan (pro); first_feature stays; company is new (a lead field)
    client.capture(
        "$identify",
        distinct_id="cy",
        properties={"$set": {"plan": "pro"},
                    "$set_once": {"plan": "enterprise", "first_feature": "reports", "company": "Cyco"}},
        timestamp=at(4),
        uuid=_uuid("s4"),
    )  # fmt: skip
    # 5: $set overrides a value that $set_once put there
    client.set(distinct_id="cy", properties={"first_source": "partner"}, timestamp=at(5), uuid=_uuid("s5"))
    # a lead first made by $set_once has its values; a later $set overrides one of them
    client.set_once(distinct_id="dee", properties={"email": "dee@example.com", "plan": "free", "seats_used": 1},
                    timestamp=at(6), uuid=_uuid("d1"))  # fmt: skip
    client.set(distinct_id="dee", properties={"plan": "pro"}, timestamp=at(7), uuid=_uuid("d2"))
    client.flush(timeout_seconds=180)  # not its default 10 s: a loaded machine (see below)
    client.shutdown()

    sent = {_uuid(name) for name in ("s1", "s2", "s3", "s4", "s5", "d1", "d2")}
    with store.connect() as conn:
        # the event with person properties is stored with the identify that applies them
        assert stored_message_ids(conn) == sent | {_uuid("s3") + ":set"}
    assert wait_until(
        lambda: _waiting(store) == 0, timeout=60
    )  # a bound, not a timing: the machine may be busy
    with store.connect() as conn:
        cy = conn.execute(select(leads).where(leads.c.external_id == "cy")).one()
        dee = conn.execute(select(leads).where(leads.c.external_id == "dee")).one()
    assert (cy.email, cy.company) == ("cy@example.com", "Cyco")
    assert cy.attributes == {
        "plan": "pro",
        "first_source": "partner",
        "first_feature": "alerts",
        "seats_used": 3,
    }
    assert dee.email == "dee@example.com"
    assert dee.attributes == {"plan": "pro", "seats_used": 1}


def test_posthog_python_against_the_leadscore_serve_command(tmp_path: Path) -> None:
    """The same client with its defaults against ``leadscore serve`` itself (a child process, its
    processor on): the events are stored, the device's history stitched, the company made her account,
    her ``$set_once`` kept, and the lead scored (pricing 30 + demo 50 = 80)."""
    db = str(tmp_path / "serve.db")
    store = Store.from_url(db)
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "product", 0)
    with serve_command(db, tmp_path / "serve.log") as url:
        client = posthog.Posthog(write, host=url)
        client.capture("$pageview", distinct_id="dev-9", uuid=_uuid("v1"),
                       properties={"$current_url": "https://ex.com/pricing", "$device_id": "dev-9"})  # fmt: skip
        client.capture("$identify", distinct_id="eve", uuid=_uuid("v2"),
                       properties={"$anon_distinct_id": "dev-9", "$set": {"email": "eve@example.com"},
                                   "$set_once": {"plan": "free"}})  # fmt: skip
        client.group_identify("company", "evco", {"name": "Evco", "domain": "evco.com"}, distinct_id="eve",
                              uuid=_uuid("v3"))  # fmt: skip
        client.capture("Demo Requested", distinct_id="eve", groups={"company": "evco"}, uuid=_uuid("v4"))
        client.flush(timeout_seconds=180)  # not its default 10 s: a loaded machine (see below)
        client.shutdown()

        def scored() -> int | None:
            with store.connect() as conn:
                lead = conn.execute(select(leads.c.id).where(leads.c.email == "eve@example.com")).first()
                current = read_current(conn, lead.id)[0] if lead is not None else None
                return int(current["score"]) if current is not None and _waiting(store) == 0 else None

        assert wait_until(lambda: scored() == 80, timeout=30)
        with store.connect() as conn:
            assert stored_message_ids(conn) == {_uuid(f"v{i}") for i in range(1, 5)} | {
                _uuid("v2") + ":alias"
            }
            lead = conn.execute(select(leads).where(leads.c.email == "eve@example.com")).one()
            keys = set(
                conn.execute(select(identities.c.key).where(identities.c.lead_id == lead.id)).scalars()
            )
            account = conn.execute(select(accounts).where(accounts.c.id == lead.account_id)).one()
        assert keys == {"u:eve", "a:dev-9", "u:dev-9"}
        assert (account.domain, account.name) == ("evco.com", "Evco")
        assert lead.attributes == {"plan": "free"}
    store.dispose()


def test_a_posthog_python_batch_over_500_kb_is_stored(api: tuple[str, str, Store]) -> None:
    """posthog-python fills a batch up to 5 MiB and drops one answered 413 without a retry: 100 events of
    6.4 KB each (641 KB) were all lost to the Segment batch limit (500 KB), and so were 5 MiB batches. The real client, and the body
    it sent (recorded from posthog-python 7.91.1, its ``api_key`` replaced), plain and gzipped."""
    url, write, store = api
    failures: list[Exception] = []
    client = posthog.Posthog(write, host=url, on_error=lambda exc, batch: failures.append(exc))
    for i in range(100):
        client.capture("Doc Viewed", distinct_id="big-1", properties={"blob": "x" * 6000, "i": i},
                       uuid=_uuid(f"big{i}"))  # fmt: skip
    # and its largest batches: events of 60 KB fill one up to 5 MiB (87 events, 5.26 MB), then the rest
    for i in range(100):
        client.capture("Doc Viewed", distinct_id="big-2", properties={"blob": "y" * 60_000, "i": i},
                       uuid=_uuid(f"huge{i}"))  # fmt: skip
    # posthog-python's flush waits 10 s by default, and its shutdown then drops what is still queued
    # without a word (on_error is not called): 200 events of up to 60 KB took longer on a loaded CI machine
    client.flush(timeout_seconds=180)
    client.shutdown()
    assert failures == []
    with store.connect() as conn:
        assert stored_message_ids(conn) == {
            _uuid(f"{name}{i}") for name in ("big", "huge") for i in range(100)
        }

    recorded = orjson.loads(
        gzip.decompress((RECORDED / "posthog-python-7.91.1-batch-641k.json.gz").read_bytes())
    )
    body = orjson.dumps({**recorded, "api_key": write})
    assert len(body) > 600_000 and len(recorded["batch"]) == 100
    with httpx.Client(base_url=url) as http:
        plain = http.post("/batch/", content=body, headers={"Content-Type": "application/json"})
        zipped = http.post("/batch/", content=gzip.compress(body), headers={"Content-Encoding": "gzip"})
    # the recorded events are those the client sent above (same uuids): stored once
    assert (plain.status_code, plain.json()["accepted"], plain.json()["duplicates"]) == (200, 100, 100)
    assert (zipped.status_code, zipped.json()["accepted"], zipped.json()["duplicates"]) == (200, 100, 100)


def test_posthog_node_alias_stitches_the_browsers_anonymous_history(api: tuple[str, str, Store]) -> None:
    """posthog-node's ``alias({distinctId: 'paula', alias: <the browser's distinct id>})`` names the old
    id as the alias, the opposite of posthog-python: mapped to one Segment alias, the browser's device id
    (an anonymous id) was never linked, and her anonymous pricing page view never counted. The browser's
    page view as posthog-js sends it, then the batch posthog-node 5.74.0 sent (recorded, gzipped as it
    sends it): her lead has the device's history, 30 + 50."""
    url, write, store = api
    device = "019a0000-0000-7000-8000-00000000d001"  # posthog-js: the anonymous distinct id is the device id
    view = {
        "event": "$pageview",
        "uuid": _uuid("pv"),
        "properties": {"distinct_id": device, "$device_id": device, "token": write,
                       "$current_url": "https://ex.com/pricing"},
    }  # fmt: skip
    recorded = (
        (RECORDED / "posthog-node-5.74.0-alias.json").read_bytes().replace(b"<write key>", write.encode())
    )
    with httpx.Client(base_url=url) as http:
        assert http.post("/e/", json=[view]).status_code == 200
        r = http.post("/batch/", content=gzip.compress(recorded), headers={"Content-Encoding": "gzip"})
    # $identify, the two aliases of $create_alias, the demo request
    assert (r.status_code, r.json()["accepted"], r.json()["rejected"]) == (200, 4, [])
    assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        lead = conn.execute(select(leads).where(leads.c.email == "paula@example.com")).one()
        keys = set(conn.execute(select(identities.c.key).where(identities.c.lead_id == lead.id)).scalars())
        current, _ = read_current(conn, lead.id)
    assert keys == {"u:paula", "a:paula", f"u:{device}", f"a:{device}"}
    assert current is not None and current["score"] == 80


def test_posthog_python_group_identify_without_a_person_makes_no_lead(api: tuple[str, str, Store]) -> None:
    """``group_identify`` sets its company's traits; only a person already known joins the company.
    posthog-python without a ``distinct_id`` sends a new random id with each call (a server syncing its
    companies' seats), posthog-node ``$<type>_<key>``: neither is a person, so neither becomes a lead
    or a contact of the account (before, each call added one)."""
    url, write, store = api
    client = posthog.Posthog(write, host=url)
    start = datetime.now(UTC) - timedelta(minutes=30)

    def at(minute: int) -> datetime:
        return start + timedelta(minutes=minute)

    client.capture("$identify", distinct_id="ada", properties={"$set": {"email": "ada@example.com"}},
                   timestamp=at(1), uuid=_uuid("g1"))  # fmt: skip
    # ada, known, joins Acme
    client.group_identify("company", "acme", {"name": "Acme", "domain": "acme.com"}, distinct_id="ada",
                          timestamp=at(2), uuid=_uuid("g2"))  # fmt: skip
    # the server's syncs of Acme's seats, without a person: 10, then 12
    client.group_identify("company", "acme", {"name": "Acme", "domain": "acme.com", "seats": 10},
                          timestamp=at(3), uuid=_uuid("g3"))  # fmt: skip
    client.group_identify("company", "acme", {"name": "Acme", "domain": "acme.com", "seats": 12},
                          timestamp=at(4), uuid=_uuid("g4"))  # fmt: skip
    # posthog-node's group id as its distinct id, here with a device id: Beta is made, with no one in it
    client.capture("$groupidentify", distinct_id="$company_beta", timestamp=at(5), uuid=_uuid("g5"),
                   properties={"$group_type": "company", "$group_key": "beta", "$device_id": "dev-b",
                               "$group_set": {"name": "Beta", "domain": "beta.io"}})  # fmt: skip
    client.flush(timeout_seconds=180)  # not its default 10 s: a loaded machine (see below)
    client.shutdown()

    assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        assert stored_message_ids(conn) == {_uuid(f"g{i}") for i in range(1, 6)}
        people = conn.execute(select(leads.c.external_id, leads.c.account_id)).all()
        found = {a.domain: a for a in conn.execute(select(accounts)).all()}
        keys = set(conn.execute(select(identities.c.key)).scalars())
    assert keys == {"u:ada"}
    assert set(found) == {"acme.com", "beta.io"}
    assert found["acme.com"].attributes == {"group_id": "acme", "seats": 12}
    assert found["beta.io"].name == "Beta"
    assert [(p.external_id, p.account_id) for p in people] == [("ada", found["acme.com"].id)]


def test_posthog_js_send_time_in_the_query_corrects_its_clock(api: tuple[str, str, Store]) -> None:
    """posthog-js before the ``{batch, sent_at}`` envelope (1.x up to about 1.2xx, still what npm installs
    pin) sends an array of events, each ``timestamp`` on the browser's clock, and its send time on that
    clock as ``?_=<epoch ms>`` (newer builds, for a POST in their "query" mode, as ``?sent_at=<epoch ms>``);
    PostHog's capture takes either as the ``sent_at`` of the request. A browser two hours fast whose visitor
    viewed the pricing page one minute before the send: the view is stored one minute before it arrived,
    not two hours ahead."""
    url, write, store = api
    fast = timedelta(hours=2)
    sends = {"_": "js-old", "sent_at": "js-query"}
    stored: dict[str, tuple[int, int]] = {}
    with httpx.Client(base_url=url) as http:
        for param, name in sends.items():
            before = int(datetime.now(UTC).timestamp() * 1000)
            browser_now = datetime.now(UTC) + fast
            view = {
                "event": "$pageview",
                "uuid": _uuid(name),
                "timestamp": (browser_now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
                "properties": {"distinct_id": "dev-9", "$device_id": "dev-9", "token": write},
            }
            sent = int(browser_now.timestamp() * 1000)
            r = http.post(f"/e/?{param}={sent}&ver=1.150.0", json=[view])
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
            after = int(datetime.now(UTC).timestamp() * 1000)
            stored[name] = (before, after)
    assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        rows = {row.message_id: row.ts for row in conn.execute(select(events.c.message_id, events.c.ts))}
    for name, (before, after) in stored.items():
        # received between `before` and `after`; the event happened 60 000 ms before it was sent
        assert before - 60_000 <= rows[_uuid(name)] <= after - 60_000, name


def test_a_query_number_that_is_no_send_time_leaves_the_events_times(api: tuple[str, str, Store]) -> None:
    """A ``?_=`` cache-buster that counts (``1``), a 5,000-digit number, a time 30 years off: none is a
    send time, so the event keeps its own timestamp (before, ``_=1`` moved it 56 years ahead and it was
    refused, and 5,000 digits failed the request)."""
    url, write, store = api
    at = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    stamp = at.isoformat().replace("+00:00", "Z")
    with httpx.Client(base_url=url) as http:
        for i, value in enumerate(
            ["1", "9" * 5000, str(int((at - timedelta(days=365 * 30)).timestamp() * 1000))]
        ):
            view = {"event": "$pageview", "uuid": _uuid(f"bust-{i}"), "timestamp": stamp,
                    "properties": {"distinct_id": "dev-8", "token": write}}  # fmt: skip
            r = http.post(f"/e/?_={value}", json=[view])
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        rows = {row.message_id: row.ts for row in conn.execute(select(events.c.message_id, events.c.ts))}
    assert [rows[_uuid(f"bust-{i}")] for i in range(3)] == [int(at.timestamp() * 1000)] * 3


def _js(name: str, distinct_id: str, device_id: str, write: str, at: datetime, **top: Any) -> dict[str, Any]:
    """An event as posthog-js sends it: the ids and token in its properties, ``$set``/``$set_once`` at the
    top, its own ``timestamp``."""
    properties = {"distinct_id": distinct_id, "$device_id": device_id, "token": write}
    properties.update(top.pop("properties", {}))
    stamp = at.isoformat().replace("+00:00", "Z")
    return {"event": name, "uuid": _uuid(f"{name}-{distinct_id}-{stamp}"), "timestamp": stamp,
            "properties": properties, **top}  # fmt: skip


def test_anonymous_person_properties_land_on_the_identified_lead(api: tuple[str, str, Store]) -> None:
    """posthog-js before ``identify``: ``setPersonProperties`` (a ``$set`` event) and a ``capture`` with
    ``$set``, both under the device id; then ``$identify``. PostHog keeps them on the anonymous person and
    merges it into the identified one ($set: the latest observation wins; $set_once: only where unset, the
    earliest first). Before, leadscore dropped them. Each request is processed before the next is sent,
    so the identify finds the anonymous properties in the event log; a late anonymous ``$set`` after the
    identify goes to her lead too, by its time."""
    url, write, store = api
    start = datetime.now(UTC) - timedelta(minutes=30)

    def at(minute: float) -> datetime:
        return start + timedelta(minutes=minute)

    device = "019a0000-0000-7000-8000-00000000a001"
    requests = [
        [   # setPersonProperties({plan: 'trial', role: 'CTO'}, {first_source: 'ads'}), then a capture with $set
            _js("$set", device, device, write, at(1), **{"$set": {"plan": "trial", "role": "CTO"},
                                                         "$set_once": {"first_source": "ads"}}),
            _js("Pricing Viewed", device, device, write, at(2), **{"$set": {"plan": "team"}}),
        ],
        [   # identify('ana', {email}, {first_source: 'webinar', seats: 5}): ads was set first, seats is new
            _js("$identify", "ana", device, write, at(3), properties={"$anon_distinct_id": device},
                **{"$set": {"email": "ana@example.com"}, "$set_once": {"first_source": "webinar", "seats": 5}}),
        ],
        [   # delivered late, observed before the identify: plan team (minute 2) is newer; size is new
            _js("Feature Used", device, device, write, at(1.5), **{"$set": {"plan": "free", "size": "large"}}),
        ],
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        for body in requests:
            r = http.post("/e/", json=body)
            assert r.status_code == 200 and r.json()["rejected"] == [], r.text
            assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        ana = conn.execute(select(leads).where(leads.c.external_id == "ana")).one()
        assert conn.execute(select(leads.c.id)).scalars().all() == [ana.id]  # no lead for the device
    assert ana.email == "ana@example.com"
    assert ana.attributes == {
        "plan": "team",
        "job_title": "CTO",  # role's canonical name (``ingest.attributes``)
        "first_source": "ads",
        "seats": 5,
        "size": "large",
    }


def test_anonymous_person_properties_join_a_known_lead_in_the_same_request(
    api: tuple[str, str, Store],
) -> None:
    """A person already known (bo: plan pro observed at minute 5, first_source partner) signs in on a new
    device whose anonymous ``$set`` (minute 1) and ``$set_once`` arrive in the same request as her
    ``$identify`` (minute 6): plan stays pro (newer), first_source stays partner (set), industry is new."""
    url, write, store = api
    start = datetime.now(UTC) - timedelta(minutes=30)

    def at(minute: float) -> datetime:
        return start + timedelta(minutes=minute)

    device = "019a0000-0000-7000-8000-00000000b002"
    known = _js("$identify", "bo", "bo-old-device", write, at(5),
                **{"$set": {"email": "bo@example.com", "plan": "pro"}, "$set_once": {"first_source": "partner"}})  # fmt: skip
    together = [
        _js("$set", device, device, write, at(1), **{"$set": {"plan": "trial", "industry": "retail"},
                                                     "$set_once": {"first_source": "ads"}}),
        _js("$identify", "bo", device, write, at(6), properties={"$anon_distinct_id": device}),
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        for body in ([known], together):
            r = http.post("/e/", json=body)
            assert r.status_code == 200 and r.json()["rejected"] == [], r.text
            assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        bo = conn.execute(select(leads).where(leads.c.external_id == "bo")).one()
        keys = set(conn.execute(select(identities.c.key).where(identities.c.lead_id == bo.id)).scalars())
    assert f"a:{device}" in keys
    assert bo.attributes == {"plan": "pro", "first_source": "partner", "industry": "retail"}


def _metric(http: httpx.Client, read: str, name: str) -> int:
    text = http.get("/metrics", headers={"Authorization": f"Bearer {read}"}).text
    return int(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_accepted_counts_what_the_operators_counters_count(api: tuple[str, str, Store]) -> None:
    """No PostHog client reads a 200's body (posthog-python and posthog-node look at the status, posthog-js'
    retry queue too): ``accepted`` and ``duplicates`` are the operator's, in the unit of
    ``leadscore_events_acknowledged_total`` and of the event log, the Segment messages stored (the
    counter grows by ``accepted - duplicates``: a duplicate is not acknowledged again); an event refused
    is refused whole and ``rejected_count`` counts it once. Five events: an ``$identify`` with
    ``$anon_distinct_id`` (an identify and an alias: 2), an identified event with ``$set`` (2), an anonymous
    page view with ``$set_once`` (2), a plain event (1), and one without a ``distinct_id`` (refused):
    accepted 7, rejected 1; sent again, 7 duplicates; acknowledged 7 + 0, the log 7."""
    url, write, store = api
    with store.begin() as conn:
        _, read = create_key(conn, "read", "ops", 0)
    batch = [
        {"event": "$identify", "distinct_id": "ida", "uuid": _uuid("c1"),
         "properties": {"$anon_distinct_id": "dev-c", "$set": {"email": "ida@example.com"}}},
        {"event": "Feature Used", "distinct_id": "ida", "uuid": _uuid("c2"), "properties": {"$set": {"plan": "pro"}}},
        {"event": "$pageview", "distinct_id": "dev-d", "uuid": _uuid("c3"),
         "properties": {"$device_id": "dev-d", "$set_once": {"first_source": "ads"}}},
        {"event": "Demo Requested", "distinct_id": "ida", "uuid": _uuid("c4")},
        {"event": "Demo Requested", "uuid": _uuid("c5")},
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        first = http.post("/batch/", json={"api_key": write, "batch": batch}).json()
        again = http.post("/batch/", json={"api_key": write, "batch": batch}).json()
        assert wait_until(lambda: _waiting(store) == 0)
        acknowledged = _metric(http, read, "leadscore_events_acknowledged_total")
    assert (first["accepted"], first["duplicates"], first["rejected_count"]) == (7, 0, 1)
    assert [r["index"] for r in first["rejected"]] == [4]
    assert (again["accepted"], again["duplicates"], again["rejected_count"]) == (7, 7, 1)
    assert acknowledged == (7 - 0) + (7 - 7)
    with store.connect() as conn:
        assert len(stored_message_ids(conn)) == 7


def test_anonymous_person_properties_go_to_the_lead_its_identify_names(api: tuple[str, str, Store]) -> None:
    """The anonymous person's ``$set`` names an e-mail another lead holds (old: old@example.com): its
    properties still go to the lead of the ``$identify`` that links the device (new, made by it), as the
    identify's own would; the e-mail stays the other lead's (an e-mail is one lead's)."""
    url, write, store = api
    start = datetime.now(UTC) - timedelta(minutes=30)
    device = "019a0000-0000-7000-8000-00000000c003"
    old = _js("$identify", "old", "old-device", write, start, **{"$set": {"email": "old@example.com"}})
    body = [
        _js("$set", device, device, write, start + timedelta(minutes=1),
            **{"$set": {"email": "old@example.com", "plan": "trial"}}),
        _js("$identify", "new", device, write, start + timedelta(minutes=2), properties={"$anon_distinct_id": device}),
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        for sent in ([old], body):
            r = http.post("/e/", json=sent)
            assert r.status_code == 200 and r.json()["rejected"] == [], r.text
            assert wait_until(lambda: _waiting(store) == 0)
    with store.connect() as conn:
        found = {r.external_id: r for r in conn.execute(select(leads))}
    assert set(found) == {"old", "new"}
    assert (found["new"].email, found["new"].attributes) == (None, {"plan": "trial"})
    assert (found["old"].email, found["old"].attributes) == ("old@example.com", {})


def test_a_refused_event_is_named_by_its_uuid(api: tuple[str, str, Store]) -> None:
    """PostHog clients name an event by ``uuid`` (posthog-python, posthog-js): a refusal reports that id in
    ``messageId``, so the client's developer can find the event (it read null: the refusal looked for a
    Segment ``messageId`` the client never sends). A refusal of an event without a uuid names none; one
    of the derived messages (the ``$set`` identify beside an event, ``<uuid>:set``) names the event's."""
    url, write, _ = api
    batch = [
        {"event": "Demo Requested", "distinct_id": "ida", "uuid": _uuid("r1")},
        {"event": "Demo Requested", "uuid": _uuid("r2")},  # no distinct_id
        {"event": "Demo Requested"},  # no distinct_id, no uuid: no id to name
        {"event": "Feature Used", "distinct_id": "ida", "uuid": _uuid("r4"),
         "properties": {"$set": {"email": "not an e-mail " + "x" * 600}}},
    ]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", json={"api_key": write, "batch": batch})
    assert r.status_code == 200, r.text
    refused = {entry["index"]: entry for entry in r.json()["rejected"]}
    assert set(refused) == {1, 2, 3}, r.text
    assert refused[1]["messageId"] == _uuid("r2")
    assert refused[2]["messageId"] is None
    assert refused[3]["messageId"] == _uuid("r4")

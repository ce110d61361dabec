"""The tracking API over real HTTP: Segment's wire format, auth, limits, per-item batch errors,
durability of acknowledged events, and the score moving in real time."""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from leadscore.api import create_app
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.event_log import stored_message_ids, waiting_events
from leadscore.store.keys import create_key
from leadscore.store.results import read_crossings, read_current
from leadscore.store.schema import events, leads
from live_server import serving

MODEL = """
model: api
engagement:
  - id: pricing
    name: Pricing page
    event: {type: page}
    where: {property: path, prefix: /pricing}
    points: 30
  - id: demo
    name: Demo request
    event: {type: track, name: Demo Requested}
    points: 50
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""


def _keys(store: Store) -> tuple[str, str]:
    with store.begin() as conn:
        _, write = create_key(conn, "write", "site", 0)
        _, read = create_key(conn, "read", "crm", 0)
    return write, read


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, str, Store]]:
    publish(store, loads_model(MODEL))
    write, read = _keys(store)
    app = create_app(Settings(database_url="unused", processor_idle_s=0.05), store=store)
    with serving(app) as url:
        yield url, write, read, store


def _drained(store: Store) -> bool:
    with store.connect() as conn:
        return waiting_events(conn) == 0


def wait_until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_track_is_durable_scored_and_crossing_recorded(api: tuple[str, str, str, Store]) -> None:
    url, write, read, store = api
    with httpx.Client(base_url=url) as client:
        r = client.post(
            "/v1/identify",
            json={"userId": "ada", "traits": {"email": "ada@example.com"}, "messageId": "m1"},
            headers=basic(write),
        )
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True
        r = client.post(
            "/v1/page",
            json={"userId": "ada", "properties": {"path": "/pricing"}, "messageId": "m2"},
            headers=basic(write),
        )
        assert r.status_code == 200
        # acknowledged means stored, before any processing (in the inbox or already in the log)
        with store.connect() as conn:
            assert stored_message_ids(conn) == {"m1", "m2"}
        r = client.post(
            "/v1/track",
            json={"userId": "ada", "event": "Demo Requested", "messageId": "m3"},
            headers=basic(write),
        )
        assert r.status_code == 200

        def scored() -> float | None:
            with store.connect() as conn:
                current, _ = read_current(conn, 1)
            return current["score"] if current and current["score"] == 80 else None

        # 30 (pricing) + 50 (demo) = 80 of 100 → 80, band hot (≥ 70)
        assert wait_until(scored) == 80

        # the score may already count an event whose inbox row the processor takes in its next batch
        assert wait_until(lambda: _drained(store))
        with store.connect() as conn:
            bands = [(c["from_value"], c["to_value"]) for c in read_crossings(conn, 1) if c["kind"] == "band"]
        # the processor may see the events in one batch or several: a chain from nothing (or cold) to hot
        assert bands[0][0] in (None, "cold") and bands[-1][1] == "hot"
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bands))
        lead = client.get("/v1/leads/ada@example.com", headers={"Authorization": f"Bearer {read}"}).json()
        assert lead["score"]["score"] == 80
        assert {line["rule_id"] for line in lead["ledger"]} == {"pricing", "demo"}


def test_auth_and_errors_use_the_envelope(api: tuple[str, str, str, Store]) -> None:
    url, write, read, _ = api
    with httpx.Client(base_url=url) as client:
        r = client.post("/v1/track", json={"userId": "x", "event": "E"})
        assert r.status_code == 401
        assert r.json()["ok"] is False and "write key" in r.json()["error"]
        r = client.post("/v1/track", json={"userId": "x", "event": "E"}, headers=basic("lsw_wrong"))
        assert r.status_code == 401
        # the body's writeKey works as well (Segment accepts both)
        r = client.post("/v1/track", json={"userId": "x", "event": "E", "writeKey": write})
        assert r.status_code == 200
        # a read token cannot write; a write key cannot read
        assert (
            client.post("/v1/track", json={"userId": "x", "event": "E"}, headers=basic(read)).status_code
            == 401
        )
        r = client.get("/v1/leads", headers={"Authorization": f"Bearer {write}"})
        assert r.status_code == 403 and r.json()["ok"] is False
        r = client.post("/v1/track", content=b"{not json", headers=basic(write))
        assert r.status_code == 400 and r.json()["error"].startswith("invalid JSON")
        r = client.post("/v1/track", json={"userId": "x"}, headers=basic(write))
        assert r.status_code == 400 and "needs 'event'" in r.json()["error"]
        big = {"userId": "x", "event": "E", "properties": {"blob": "x" * 40_000}}
        assert client.post("/v1/track", json=big, headers=basic(write)).status_code == 413
        r = client.get("/v1/nowhere")
        assert r.status_code == 404 and r.json() == {
            "ok": False,
            "error": "Not Found",
            "errors": [],
            "code": "not_found",
            "message": "Not Found",
        }
        r = client.get("/v1/leads?limit=0", headers={"Authorization": f"Bearer {read}"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"


def test_batch_keeps_good_messages_and_reports_bad_ones(api: tuple[str, str, str, Store]) -> None:
    url, write, _, store = api
    batch = {
        "batch": [
            {"type": "track", "userId": "u", "event": "A", "messageId": "b1"},
            {"type": "nonsense", "userId": "u", "messageId": "b2"},
            {"type": "page", "messageId": "b3"},
            {"type": "track", "userId": "u", "event": "B", "messageId": "b4"},
            {"type": "track", "userId": "u", "event": "A", "messageId": "b1"},
        ],
        "sentAt": "2024-01-01T00:00:00Z",
    }
    with httpx.Client(base_url=url) as client:
        # text/plain, as analytics.js sends it to avoid a CORS preflight
        r = client.post(
            "/v1/b",
            content=httpx.Request("POST", "/", json=batch).content,
            headers={**basic(write), "Content-Type": "text/plain"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3 and body["duplicates"] == 1
    assert [(e["index"], e["messageId"]) for e in body["rejected"]] == [(1, "b2"), (2, "b3")]
    assert "type must be one of" in body["rejected"][0]["message"]
    assert "userId or anonymousId is required" in body["rejected"][1]["message"]
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"b1", "b4"}


def test_resending_changes_nothing(api: tuple[str, str, str, Store]) -> None:
    url, write, _, store = api
    message = {"userId": "r", "event": "Demo Requested", "messageId": "same"}
    with httpx.Client(base_url=url) as client:
        first = client.post("/v1/track", json=message, headers=basic(write)).json()
        again = client.post("/v1/track", json=message, headers=basic(write)).json()
    assert (first["duplicates"], again["duplicates"]) == (0, 1)
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"same"}
    assert wait_until(lambda: _drained(store))
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 1


def test_official_segment_python_client(api: tuple[str, str, str, Store]) -> None:
    """segment-analytics-python, unchanged, pointed at leadscore with a leadscore write key."""
    segment = pytest.importorskip("segment.analytics", reason="segment-analytics-python is not installed")
    url, write, read, _ = api
    client = segment.Client(write_key=write, host=url, sync_mode=True, max_retries=1)
    client.identify("grace", {"email": "grace@example.com", "firstName": "Grace"})
    client.page("grace", name="Pricing", properties={"path": "/pricing", "url": f"{url}/pricing"})
    client.track("grace", "Demo Requested", {"plan": "team"})
    client.flush()

    def scored() -> float | None:
        with httpx.Client(base_url=url) as http:
            r = http.get("/v1/leads/grace@example.com", headers={"Authorization": f"Bearer {read}"})
        score = r.json().get("score") if r.status_code == 200 else None
        return score["score"] if score and score["score"] == 80 else None

    assert wait_until(scored) == 80


def test_read_api_lists_pages_and_exports(api: tuple[str, str, str, Store]) -> None:
    url, write, read, _ = api
    auth = {"Authorization": f"Bearer {read}"}
    with httpx.Client(base_url=url) as client:
        batch = {
            "batch": [
                {
                    "type": "identify",
                    "userId": f"p{i}",
                    "traits": {"email": f"p{i}@x.com", "company": "=HYPERLINK(1)"},
                }
                for i in range(5)
            ]
        }
        batch["batch"] += [{"type": "page", "userId": "p3", "properties": {"path": "/pricing"}}]
        assert client.post("/v1/batch", json=batch, headers=basic(write)).status_code == 200
        wait_until(lambda: client.get("/v1/leads?band=warm", headers=auth).json()["leads"])
        page1 = client.get("/v1/leads?limit=2", headers=auth).json()
        assert page1["leads"][0]["email"] == "p3@x.com" and page1["leads"][0]["score"] == 30
        page2 = client.get(f"/v1/leads?limit=2&cursor={page1['next_cursor']}", headers=auth).json()
        page3 = client.get(f"/v1/leads?limit=2&cursor={page2['next_cursor']}", headers=auth).json()
        seen = [row["lead_id"] for page in (page1, page2, page3) for row in page["leads"]]
        assert len(seen) == 5 == len(set(seen)) and page3["next_cursor"] is None
        csv_text = client.get("/v1/leads?format=csv", headers=auth).text
        assert csv_text.splitlines()[0].startswith("lead_id,external_id,email")
        assert "'=HYPERLINK(1)" in csv_text  # formula neutralised
        assert len(client.get("/v1/leads?format=ndjson", headers=auth).text.splitlines()) == 5
        assert client.get("/openapi.json").json()["paths"]["/v1/track"]["post"]["summary"]


def test_sqlite_file_survives_reopen(tmp_path: Path) -> None:
    """What a 200 acknowledged is on disk: a new process (a fresh engine) reads it back."""
    db = str(tmp_path / "durable.db")
    store = Store.from_url(db)
    write, _ = _keys(store)
    app = create_app(Settings(database_url=db, run_processor=False), store=store)
    with serving(app) as url, httpx.Client(base_url=url) as client:
        for i in range(20):
            assert (
                client.post(
                    "/v1/track",
                    json={"userId": "d", "event": "E", "messageId": f"d{i}"},
                    headers=basic(write),
                ).status_code
                == 200
            )
    store.dispose()
    again = Store.from_url(db)
    with again.connect() as conn:
        assert stored_message_ids(conn) == {f"d{i}" for i in range(20)}
        assert waiting_events(conn) == 20  # not processed: the processor was off
    again.dispose()


def test_an_oversized_field_is_rejected_alone(api: tuple[str, str, str, Store]) -> None:
    """One message with a 400-character messageId must not fail the group commit of the others."""
    url, write, _, store = api
    batch = {
        "batch": [
            {"type": "track", "userId": "ok", "event": "E", "messageId": "fine-1"},
            {"type": "track", "userId": "ok", "event": "E", "messageId": "x" * 400},
            {"type": "track", "userId": "u" * 300, "event": "E", "messageId": "long-user"},
        ]
    }
    with httpx.Client(base_url=url) as client:
        body = client.post("/v1/batch", json=batch, headers=basic(write)).json()
    assert body["accepted"] == 1
    assert [(e["index"], e["message"].split(" is ")[0]) for e in body["rejected"]] == [
        (1, "messageId"),
        (2, "userId"),
    ]
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"fine-1"}


def test_lead_reference_with_non_ascii_digits_is_not_found(api: tuple[str, str, str, Store]) -> None:
    """'³7'.isdigit() is true in Python; it is not a lead id (found by the API fuzzer)."""
    url, _, read, _ = api
    with httpx.Client(base_url=url) as client:
        r = client.get("/v1/leads/%C2%B37", headers={"Authorization": f"Bearer {read}"})
    assert r.status_code == 404
    message = "no lead '³7' (give an id, e-mail or user id)"
    assert r.json() == {"ok": False, "error": message, "errors": [], "code": "not_found", "message": message}


def test_trait_in_non_ascii_digits_stays_text(api: tuple[str, str, str, Store]) -> None:
    """Only ASCII digits make a trait text a number, as in JSON: "1٠" (a 1 and an Arabic-Indic zero) and
    "3.٥" stay texts, never the numbers 10 and 3.5 that `seats >= 10` would match (Python's ``\\d`` and
    ``int()`` read every script's digits); "10" is still the number 10."""
    url, write, _, store = api
    traits = {
        "email": "ola@example.com",
        "seats": "1٠",
        "employees": "10",
        "rank": "3.٥",
        "code": "1２",
        "tier": "١٠",
    }
    with httpx.Client(base_url=url) as client:
        r = client.post("/v1/identify", json={"userId": "ola", "traits": traits}, headers=basic(write))
        assert r.status_code == 200, r.text
        assert wait_until(lambda: _drained(store))
    with store.connect() as conn:
        attributes = conn.execute(select(leads.c.attributes).where(leads.c.external_id == "ola")).scalar_one()
    assert (attributes["seats"], attributes["rank"], attributes["code"], attributes["tier"]) == (
        "1٠",
        "3.٥",
        "1２",
        "١٠",
    )
    assert attributes["employees"] == 10 and type(attributes["employees"]) is int


def test_a_timestamp_of_epoch_zero_is_1970_not_the_arrival_time(api: tuple[str, str, str, Store]) -> None:
    """Times may be epoch milliseconds (docs/ingest.md: 1970-01-01 to 9999-12-31), so 0 is 1970-01-01T00:00Z:
    an odd but real time, stored as sent; it was read as "no timestamp" and became the time it arrived."""
    url, write, _, store = api
    batch = [
        {"type": "track", "userId": "z", "event": "A", "messageId": "z1", "timestamp": 0},
        {"type": "track", "userId": "z", "event": "A", "messageId": "z2", "originalTimestamp": 0.0},
        {
            "type": "track",
            "userId": "z",
            "event": "A",
            "messageId": "z3",
            "timestamp": "1970-01-01T00:00:00Z",
        },
        {"type": "track", "userId": "z", "event": "A", "messageId": "z4", "timestamp": 86_400_000},
    ]
    with httpx.Client(base_url=url) as client:
        r = client.post("/v1/batch", json={"batch": batch}, headers=basic(write))
    assert r.status_code == 200 and r.json()["rejected"] == [], r.text
    assert wait_until(lambda: _drained(store))
    with store.connect() as conn:
        times = dict(conn.execute(select(events.c.message_id, events.c.ts)).all())
    assert times == {"z1": 0, "z2": 0, "z3": 0, "z4": 86_400_000}

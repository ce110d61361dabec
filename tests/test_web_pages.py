"""Dashboard pages over HTTP: Linda's journey on her lead page, the CSV export of a filter (formulas
neutralised, audited), security headers and cookie flags, the sign-in form's CSRF token and throttle."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.ingest.segment import parse_line, parse_time
from leadscore.model import load_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.audit import read_audit
from leadscore.store.people import find_lead
from leadscore.store.schema import leads
from leadscore.store.users import add_user
from live_server import serving
from web_support import PASSWORD, csrf_of, signed_in

LINDA = Path(__file__).resolve().parent.parent / "examples" / "linda"


@pytest.fixture
def linda(store: Store) -> Iterator[tuple[str, Store, int]]:
    """Linda's three steps ingested (as in the README tour), a marketer, and the server."""
    publish(store, load_model(LINDA / "model.yaml"), as_of=parse_time("2024-03-01T00:00:00Z", "as_of"))
    for step in ("step1.jsonl", "step2.jsonl", "step3.jsonl"):
        path = LINDA / "events" / step
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        messages = [
            parse_line(line, n, step, received_ms=1_712_275_200_000) for n, line in enumerate(lines, 1)
        ]
        ingest(store, messages, source="jsonl", as_of=max(m.ts for m in messages))
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        lead_id = find_lead(conn, external_id="linda")
        assert lead_id is not None
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        yield url, store, lead_id


def test_linda_journey_reads_her_per_event_path(linda: tuple[str, Store, int]) -> None:
    url, _, lead_id = linda
    with signed_in(url, "marketing@example.test") as client:
        page = client.get(f"/leads/{lead_id}")
    assert page.status_code == 200
    # history has a row at every event that moved her score (tests/test_linda.py explains each step)
    path = "0 → 1 → 21 → 22 → 23 → 24 → 25 → 26 → 27 → 28 → 29 → 30 → 43 → 65"
    assert f"Score path: <strong>{path}</strong>" in page.text
    data = json.loads(unescape(re.search(r'id="journey-data">(.*?)</script>', page.text, re.S).group(1)))
    scores = [p["score"] for p in data["points"]]
    assert scores[0] == 0 and scores[-1] == 65
    # every move is annotated with the events at its time; the three steps' totals are on the path
    moved = [p for p in data["points"] if p["moved"]]
    assert moved and all(p["events"] for p in moved)
    assert {21, 43, 65} <= {round(p["score"]) for p in data["points"]}
    assert "Webinar" in " ".join(e for p in moved for e in p["events"])


def test_csv_export_neutralises_formulas_and_is_audited(linda: tuple[str, Store, int]) -> None:
    url, store, lead_id = linda
    with store.begin() as conn:
        conn.execute(
            update(leads).where(leads.c.id == lead_id).values(first_name="=HYPERLINK(1)", company="@evil")
        )
    with signed_in(url, "marketing@example.test") as client:
        response = client.get("/leads/export.csv?q=hyperlink")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["first_name"] for r in rows] == ["'=HYPERLINK(1)"]
    assert rows[0]["company"] == "'@evil"
    with store.connect() as conn:
        entry = read_audit(conn)[0]
    assert (entry["actor"], entry["action"], entry["details"]["filter"]) == (
        "marketing@example.test",
        "leads.export",
        {"q": "hyperlink"},
    )


def test_headers_cookies_and_signin_protection(linda: tuple[str, Store, int]) -> None:
    url, _, _ = linda
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        form = client.get("/signin")
        csp = form.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert form.headers["x-content-type-options"] == "nosniff"
        assert form.headers["referrer-policy"] == "same-origin"
        assert form.headers["cache-control"] == "no-store"
        assert "<script>" not in form.text and "style=" not in form.text  # nothing inline
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        # without the form's token the sign-in is refused, even with the right password
        forged = client.post("/signin", data={"email": "marketing@example.test", "password": PASSWORD})
        assert forged.status_code == 403
        for _ in range(5):
            wrong = client.post(
                "/signin", data={"email": "marketing@example.test", "password": "x" * 12, "csrf_token": token}
            )
            assert wrong.status_code == 401
            token = re.search(r'name="csrf_token" value="([^"]+)"', wrong.text).group(1)  # a fresh form
        # this address must now wait 30 s (auth.throttle): even the right password is refused, and the
        # answer says when to come back
        throttled = client.post(
            "/signin", data={"email": "marketing@example.test", "password": PASSWORD, "csrf_token": token}
        )
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= 30
        assert f"try again in {throttled.headers['retry-after']} seconds" in throttled.text
        assert "session" not in throttled.headers.get("set-cookie", "")
    # the account is not locked: the right password from another address signs in meanwhile
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=url, follow_redirects=False, transport=other) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text).group(1)
        done = client.post(
            "/signin", data={"email": "marketing@example.test", "password": PASSWORD, "csrf_token": token}
        )
        assert done.status_code == 303, done.text


def test_session_cookie_flags_and_safe_redirect(tmp_path: Path) -> None:
    store = Store.from_url(str(tmp_path / "c.db"))
    with store.begin() as conn:
        add_user(conn, "sales@example.test", "S", "sales", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, httpx.Client(base_url=url, follow_redirects=False) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text).group(1)
        done = client.post(
            "/signin",
            data={
                "email": "sales@example.test",
                "password": PASSWORD,
                "csrf_token": token,
                "next": "//evil.example/",
            },
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/leads"
        cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("leadscore_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http here; https (or LEADSCORE_COOKIE_SECURE=true) adds it
    store.dispose()


def test_csv_export_leaves_out_withdrawn_consent(linda: tuple[str, Store, int]) -> None:
    url, store, lead_id = linda
    with signed_in(url, "marketing@example.test") as client:
        before = list(csv.DictReader(io.StringIO(client.get("/leads/export.csv").text)))
        with store.begin() as conn:
            attributes = conn.execute(select(leads.c.attributes).where(leads.c.id == lead_id)).scalar_one()
            conn.execute(
                update(leads)
                .where(leads.c.id == lead_id)
                .values(attributes={**attributes, "consent_tracking": False})
            )
        after = list(csv.DictReader(io.StringIO(client.get("/leads/export.csv").text)))
    assert str(lead_id) in {r["lead_id"] for r in before}
    assert str(lead_id) not in {r["lead_id"] for r in after}
    assert len(after) == len(before) - 1


def test_ids_beyond_64_bits_are_not_found_on_the_dashboard(linda: tuple[str, Store, int]) -> None:
    """An id no BIGINT can hold (typed into the address bar) is a 404 page, never a 500, on both stores."""
    url, store, _ = linda
    with store.begin() as conn:
        add_user(conn, "admin@example.test", "A", "admin", hash_password(PASSWORD), 0)
    huge = "99999999999999999999999"
    with signed_in(url, "admin@example.test") as client:
        assert client.get(f"/leads/{huge}").status_code == 404
        assert client.get(f"/leads/-{huge}").status_code == 404
        assert client.get(f"/deadletters/{huge}").status_code == 404
        # 64-bit but past PostgreSQL's 32-bit INTEGER ids: was a 500 page there ("integer out of range")
        for big in ("2147483648", "9223372036854775807"):
            for path in (f"/leads/{big}", f"/accounts/{big}", f"/deadletters/{big}"):
                assert client.get(path).status_code == 404, path


def test_version_user_and_key_ids_past_the_stores_are_not_found(linda: tuple[str, Store, int]) -> None:
    """Ids of model versions, users and keys typed into the address bar or a form: 404, never a 500
    page (PostgreSQL: "integer out of range" past 32 bits; SQLite: OverflowError past 64 bits)."""
    url, store, _ = linda
    with store.begin() as conn:
        add_user(conn, "admin@example.test", "A", "admin", hash_password(PASSWORD), 0)
    with signed_in(url, "admin@example.test") as client:
        token = csrf_of(client)
        for big in ("2147483648", "9223372036854775807", "99999999999999999999999"):
            for path in (f"/model?version={big}", f"/model?published={big}", f"/model/diff?old={big}&new=1",
                         f"/model/diff?old=1&new={big}", f"/users/{big}/notifications"):  # fmt: skip
                assert client.get(path).status_code == 404, path
            for path in (f"/users/{big}/role", f"/users/{big}/password", f"/keys/{big}/revoke"):
                r = client.post(path, data={"csrf_token": token, "role": "sales"})
                assert r.status_code == 404, (path, r.status_code)

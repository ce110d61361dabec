"""Product usage on the lead and account pages (``web.data.product``): a trial team's PostHog events
arrive on ``/batch/`` of a live server; the pages show counts of their product events (only those from
the PostHog routes: a Segment event of the same name is not one) and the ledger lines of the model's
product rules (examples/pql_trial: the rules its PQL gate names). Every figure is counted by hand below."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from browser_support import launched_chromium
from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.model import load_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.event_log import waiting_events
from leadscore.store.keys import create_key
from leadscore.store.schema import leads
from leadscore.store.users import add_user
from live_server import serving
from test_api_tracking import wait_until
from web_support import signed_in

EXAMPLE = Path(__file__).parent.parent / "examples" / "pql_trial" / "model.yaml"
PASSWORD = "correct horse battery staple"
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)  # noon: days never straddle


def _at(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def _event(name: str, who: str, days: float, **properties: Any) -> dict[str, Any]:
    return {"event": name, "distinct_id": who, "timestamp": _at(days), "uuid": str(uuid.uuid4()),
            "properties": {"$groups": {"company": "trialco"}, **properties}}  # fmt: skip


def _team() -> list[dict[str, Any]]:
    out = []
    for who in ("tina", "uma", "vic"):
        out.append({**_event("$identify", who, 30), "$set": {"email": f"{who}@trial.example"}})
        out.append(_event("$groupidentify", who, 30, **{"$group_type": "company", "$group_key": "trialco",
                          "$group_set": {"name": "Trialco", "domain": "trial.example", "seats": 10}}))  # fmt: skip
    return [
        *out,
        _event("Logged In", "tina", 1),
        _event("Logged In", "tina", 3),
        _event("Feature Used", "tina", 2, feature="Dashboards"),
        _event("Feature Used", "tina", 2, feature="alerts"),
        _event("Feature Used", "tina", 20, feature="dashboards"),  # the same feature, ignoring case
        _event("Logged In", "tina", 40),  # older than 30 days
        _event("Logged In", "uma", 5),
        _event("Logged In", "vic", 6),
    ]


@pytest.fixture
def live(store: Store) -> Iterator[tuple[str, Store]]:
    publish(store, load_model(EXAMPLE))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "product", 0)
        add_user(conn, "admin@example.test", "Admin", "admin", hash_password(PASSWORD), 0)
    with serving(create_app(Settings(database_url="unused", processor_idle_s=0.05), store=store)) as url:
        with httpx.Client(base_url=url) as http:
            r = http.post("/batch/", json={"api_key": write, "batch": _team()})
            assert r.status_code == 200 and r.json()["rejected_count"] == 0, r.text
            # the same login from the Segment route: scored by the model, but not a product event
            r = http.post("/v1/track", auth=(write, ""),
                          json={"userId": "tina", "event": "Logged In", "timestamp": _at(1)})  # fmt: skip
            assert r.status_code == 200, r.text
        assert wait_until(lambda: _waiting(store) == 0, timeout=60)
        yield url, store


def _waiting(store: Store) -> int:
    with store.connect() as conn:
        return waiting_events(conn)


def _figures(html: str) -> dict[str, str]:
    """The product usage section's figures: term → value, tags and spacing removed."""
    section = html.split('id="product-title"', 1)[1].split("</section>", 1)[0]
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", section, re.S)
    return {dt: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dd)).strip() for dt, dd in pairs}


def _rules(html: str) -> dict[str, list[str]]:
    table = html.split('class="product-rules"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</th>(.*?)</tr>", table, re.S)
    return {
        name: [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)] for name, cells in rows
    }


def test_lead_and_account_pages_show_product_usage(live: tuple[str, Store]) -> None:
    url, store = live
    with store.connect() as conn:
        tina = conn.execute(select(leads).where(leads.c.external_id == "tina")).one()
    with signed_in(url, "admin@example.test") as client:
        lead = client.get(f"/leads/{tina.id}")
        account = client.get(f"/accounts/{tina.account_id}")
    assert lead.status_code == 200 and account.status_code == 200
    figures = _figures(lead.text)
    # tina in 14 days: logins 1 and 3 days ago, two features 2 days ago = 4 (her Segment login is not a
    # product event, her $identify and $groupidentify only say who she is); in 30 days also the feature
    # 20 days ago: 5. Days: 1, 2, 3 and 20 days ago = 4. Features: dashboards (twice), alerts = 2.
    assert figures["Product events, 14 days"] == "4"
    assert figures["Product events, 30 days"] == "5"
    assert figures["Active days, 30 days"] == "4"
    assert figures["Features adopted, 30 days"] == "2"
    assert (
        figures["Last seen in the product"] == (NOW - timedelta(days=1)).strftime("%Y-%m-%d %H:%M") + " UTC"
    )
    # the PQL gate's rules as the ledger holds them: tina, uma and vic logged in within 14 days (5 logins,
    # her Segment one included: the model counts every login) → 40; 2 features < 4 → a line of 0 points
    # over the 2 uses within 14 days
    rules = _rules(lead.text)
    assert rules["3+ active users in the account"] == ["yes", "40.0", "5"]
    assert rules["4+ features adopted by the account"] == ["no", "0.0", "2"]
    # Trialco: tina, uma (5 days), vic (6 days) active within 14 days: 3 of 3; 3 of 10 seats = 30 %;
    # product events in 30 days: tina 5, uma 1, vic 1 = 7; no lifecycle round has run: no PQL yet
    figures = _figures(account.text)
    assert figures["Active users, 14 days"] == "3 of 3 contacts"
    assert figures["Seats"] == "10"
    assert figures["Share of seats active"] == "30 %"
    assert figures["Product events, 30 days"] == "7"
    assert figures["Product-qualified contacts"] == "0"
    assert "stage Product-qualified lead" in account.text


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


def test_the_lead_page_shows_product_usage_in_chromium(chromium: Browser, live: tuple[str, Store]) -> None:
    url, store = live
    with store.connect() as conn:
        tina = conn.execute(select(leads.c.id).where(leads.c.external_id == "tina")).scalar_one()
    context = chromium.new_context(base_url=url)
    try:
        page = context.new_page()
        page.goto("/signin")
        page.get_by_label("E-mail").fill("admin@example.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")
        expect(page).to_have_url(re.compile(r"/$|/leads"))
        page.goto(f"/leads/{tina}")
        usage = page.get_by_role("region", name="Product usage")
        # counted by hand above: 4 product events in 14 days, 2 features
        expect(usage.locator("dt:text-is('Product events, 14 days') + dd")).to_have_text("4")
        expect(usage.locator("dt:text-is('Features adopted, 30 days') + dd")).to_have_text("2")
        counts = usage.locator("dd").all_inner_texts()
        assert "4" in counts and "2" in counts, counts
    finally:
        context.close()


def test_features_are_one_value_ignoring_case_as_the_score_counts_them(live: tuple[str, Store]) -> None:
    """The lead page's features adopted and the ledger's line count the same values: text ignoring case
    as the compiled query compares it (Unicode lower-casing on every engine). Before, the page case-folded
    (``Straße`` and ``STRASSE`` one feature) while the score kept them two, and SQLite's score kept
    ``Éxport`` and ``éxport`` two while PostgreSQL's made them one."""
    url, store = live
    with store.begin() as conn:
        _, write = create_key(conn, "write", "solo", 0)
    used = ("Éxport", "éxport", "Straße", "STRASSE")
    batch = [{**_event("$identify", "wes", 3), "$set": {"email": "wes@solo.example"}}]
    batch += [{**_event("Feature Used", "wes", 2, feature=f), "properties": {"feature": f}} for f in used]
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", json={"api_key": write, "batch": batch})
    assert r.status_code == 200 and r.json()["rejected_count"] == 0, r.text
    assert wait_until(lambda: _waiting(store) == 0, timeout=60)
    with store.connect() as conn:
        wes = conn.execute(select(leads).where(leads.c.external_id == "wes")).one()
    with signed_in(url, "admin@example.test") as client:
        page = client.get(f"/leads/{wes.id}")
    assert page.status_code == 200
    # éxport (twice), straße, strasse: 3 features on the page; 3 < 4 for the score, a line of 0 points
    # over the 4 uses within 14 days (wes has no account: the account's events are his own)
    assert _figures(page.text)["Features adopted, 30 days"] == "3"
    assert _rules(page.text)["4+ features adopted by the account"] == ["no", "0.0", "4"]


def test_features_of_any_json_value_are_counted_as_the_score_counts_them(live: tuple[str, Store]) -> None:
    """Features sent as an object, an empty text, a boolean and a number are values of the property as the
    compiled query's distinct count reads them ('{"x": 1}', '', 'true', '3'): with Dashboards and
    dashboards (one value) that is 5 features, so the rule's 4+ is met. The page counted them in Python
    and left the object and the empty text out (3 features beside a line that said 4+ were met); it now
    counts in the database, through the query's own ``folded_property``, and reads no event into the page."""
    url, store = live
    with store.begin() as conn:
        _, write = create_key(conn, "write", "odd", 0)
    used: list[Any] = ["Dashboards", "dashboards", {"x": 1}, "", True, 3]
    batch = [{**_event("$identify", "xia", 3), "$set": {"email": "xia@odd.example"}}]
    batch += [{**_event("Feature Used", "xia", 2), "properties": {"feature": f}} for f in used]
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", json={"api_key": write, "batch": batch})
    assert r.status_code == 200 and r.json()["rejected_count"] == 0, r.text
    assert wait_until(lambda: _waiting(store) == 0, timeout=60)
    with store.connect() as conn:
        xia = conn.execute(select(leads).where(leads.c.external_id == "xia")).one()
    with signed_in(url, "admin@example.test") as client:
        page = client.get(f"/leads/{xia.id}")
    assert page.status_code == 200
    assert _figures(page.text)["Features adopted, 30 days"] == "5"
    assert _figures(page.text)["Product events, 14 days"] == "6"
    assert _rules(page.text)["4+ features adopted by the account"][0] == "yes"


def test_an_account_of_66000_contacts_reads_its_activity_and_usage(store: Store) -> None:
    """A write key can give an account any number of contacts (identifies with its domain). The account
    page's activity chart and product usage bound one parameter per contact, and PostgreSQL takes at most
    65,535 in a statement: the page failed there (fails on the code before). Each list is one parameter now."""
    from sqlalchemy import insert

    from leadscore.store.schema import accounts
    from leadscore.web.data import account as account_data
    from leadscore.web.data import product as product_data

    with store.begin() as conn:
        account_id = conn.execute(
            insert(accounts)
            .values(domain="acme.test", name="Acme", attributes={}, created_ms=0, updated_ms=0)
            .returning(accounts.c.id)
        ).scalar_one()
        conn.execute(insert(leads), [
            {"external_id": f"u{i}", "email": f"u{i}@acme.test", "account_id": account_id, "attributes": {},
             "created_ms": 0, "updated_ms": 0}
            for i in range(66_000)
        ])  # fmt: skip
    with store.connect() as conn:
        contacts = account_data.members_of(conn, account_id, {})
        chart, first = account_data.activity(conn, contacts)
        usage = product_data.usage(conn, [int(c["id"]) for c in contacts], 0)
    assert len(contacts) == 66_000
    assert (chart["x"], first) == ([], None)  # no events
    assert len(usage) == 66_000 and all(
        u.events == {14: 0, 30: 0} and u.features == 0 for u in usage.values()
    )


def test_an_account_with_seats_of_1e30_shows_its_page(live: tuple[str, Store]) -> None:
    """A group's ``seats`` is whatever a write key sends: 1e30 reached the account page's ``num`` filter,
    which cut it with a 28-digit decimal context and failed (a 500). Shown in full now; one active user
    of 1e30 seats is 0 %."""
    url, store = live
    with store.begin() as conn:
        _, write = create_key(conn, "write", "big", 0)
    batch = [{**_event("$identify", "yan", 3), "$set": {"email": "yan@big.example"}},
             _event("$groupidentify", "yan", 3, **{"$group_type": "company", "$group_key": "bigco",
                    "$group_set": {"name": "Bigco", "domain": "big.example", "seats": 1e30}}),
             {**_event("Logged In", "yan", 1), "properties": {"$groups": {"company": "bigco"}}}]  # fmt: skip
    with httpx.Client(base_url=url) as http:
        r = http.post("/batch/", json={"api_key": write, "batch": batch})
    assert r.status_code == 200 and r.json()["rejected_count"] == 0, r.text
    assert wait_until(lambda: _waiting(store) == 0, timeout=60)
    with store.connect() as conn:
        yan = conn.execute(select(leads).where(leads.c.external_id == "yan")).one()
    assert yan.account_id is not None
    with signed_in(url, "admin@example.test") as client:
        account = client.get(f"/accounts/{yan.account_id}")
    assert account.status_code == 200, account.text[:300]
    figures = _figures(account.text)
    assert figures["Seats"] == "1,000,000,000,000,000,019,884,624,838,656"  # the float 1e30 in full
    assert figures["Share of seats active"] == "0 %"

"""The seller's desk in real headless Chromium (SQLite demo, seed 8, where the EMEA sellers Lena and Paul
own the leads ready for handoff): Lena signs in and sees only her leads, each with its top three reasons
(the largest stored ledger lines), last activity and SLA clock, accepts one and sees the confirmation;
Tom, EMEA's manager, sees the whole team's queue with each lead's owner and may act on all of it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser_support import launched_chromium
from leadscore.auth.passwords import hash_password
from leadscore.lifecycle.reports import ready_for_handoff
from leadscore.scoring.pipeline import active_model
from leadscore.store.results import read_current
from leadscore.store.users import add_user
from leadscore.web.data.lead import rule_names
from web_support import PASSWORD, SELLER, Site, site

MANAGER = "tom.becker@vendor.example"  # manager of the EMEA team in the demo model


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site(tmp_path_factory.mktemp("deskbrowser"), leads=60, seed=8) as s:
        with s.store.begin() as conn:
            add_user(conn, MANAGER, "Tom Becker", "sales", hash_password(PASSWORD), 0)
        yield s


def _queue(demo: Site) -> dict[int, str]:
    with demo.store.connect() as conn:
        lifecycle = active_model(conn).model.lifecycle  # type: ignore[union-attr]
        assert lifecycle is not None
        return {int(r["lead_id"]): str(r["seller"]) for r in ready_for_handoff(conn, lifecycle)}


def _top_three(demo: Site, lead_id: int) -> list[str]:
    """The names of the lead's three largest ledger lines by points (either sign), read from the store."""
    with demo.store.connect() as conn:
        _, lines = read_current(conn, lead_id)
        names = rule_names(active_model(conn).model)  # type: ignore[union-attr]
    ranked = sorted(
        (ln for ln in lines if ln["score_points"]), key=lambda ln: (-abs(ln["score_points"]), ln["rule_id"])
    )
    return [names[ln["rule_id"]][0] for ln in ranked[:3]]


def _sign_in(browser: Browser, demo: Site, email: str) -> Page:
    page = browser.new_context(base_url=demo.url).new_page()
    page.goto("/handoff")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(re.compile(r"/handoff$"))
    return page


def _rows(page: Page, caption: str) -> list[int]:
    table = page.locator("table.handoff").filter(has=page.locator("caption", has_text=caption))
    return [
        int(x) for x in table.locator("tbody tr[data-lead]").evaluate_all("rs => rs.map(r => r.dataset.lead)")
    ]


def test_a_seller_sees_only_their_leads_with_reasons_and_accepts_one(chromium: Browser, demo: Site) -> None:
    queue = _queue(demo)
    lenas = [lead for lead, seller in queue.items() if seller == "lena"]
    assert lenas and len(lenas) < len(queue)  # others own leads too
    page = _sign_in(chromium, demo, SELLER)
    expect(page.get_by_role("heading", level=1)).to_have_text("My leads")
    assert sorted(_rows(page, "My leads")) == sorted(lenas)
    assert page.locator("table.handoff").count() == 1  # no one else's table for a rep
    for lead_id in lenas:
        row = page.locator(f'tr[data-lead="{lead_id}"]')
        shown = [
            re.sub(r"\s+[+−-][\d.,]+$", "", t.strip()) for t in row.locator("ul.reasons li").all_inner_texts()
        ]
        assert shown == _top_three(demo, lead_id)
        cells = row.locator("td").all_inner_texts()
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", cells[2])  # last activity
        assert re.search(r"(left|overdue)", cells[3])  # the SLA clock
    first = lenas[0]
    name = page.locator(f'tr[data-lead="{first}"] th a').inner_text()
    page.locator(f'tr[data-lead="{first}"]').get_by_role("button", name="Accept").click()
    expect(page).to_have_url(re.compile(rf"/handoff\?lead={first}&done=accepted$"))
    status = page.get_by_role("status")
    expect(status).to_contain_text("Accepted:")
    expect(status).to_contain_text("is yours to work as a sales-qualified lead")
    expect(page.locator("table.handoff")).not_to_contain_text(name)
    assert first not in _queue(demo)
    page.context.close()


def test_a_manager_sees_the_team_and_may_act_on_it(chromium: Browser, demo: Site) -> None:
    queue = _queue(demo)
    page = _sign_in(chromium, demo, MANAGER)
    expect(page.get_by_role("heading", level=1)).to_have_text("Handoff")
    expect(page.get_by_role("heading", name="The team's")).to_be_visible()
    team = _rows(page, "Ready for handoff")
    assert sorted(team) == sorted(queue)  # every queued lead is EMEA's in this demo
    owners = {lead: page.locator(f'tr[data-lead="{lead}"] td').nth(4).inner_text() for lead in team}
    with demo.store.connect() as conn:
        lifecycle = active_model(conn).model.lifecycle  # type: ignore[union-attr]
    assert lifecycle is not None
    sellers = {s.id: f"{s.name} ({t.name})" for t in lifecycle.teams for s in t.sellers}
    assert owners == {lead: sellers[queue[lead]] for lead in team}  # each lead's owner is named
    for lead in team:  # the manager may accept any of them
        expect(page.locator(f'tr[data-lead="{lead}"]').get_by_role("button", name="Accept")).to_have_count(1)
    page.context.close()


AXE = Path(__file__).parent / "web" / "vendor" / "axe-4.11.0.min.js"


def test_the_settings_and_admin_pages_pass_axe(chromium: Browser, demo: Site) -> None:
    """The profile's notification settings, the API keys page and a user's settings from the Users page:
    no serious or critical axe violation, no console error (a CSP violation is one), and each fits a
    390 px phone."""
    for email, paths in (
        (SELLER, ["/profile"]),
        ("admin@example.test", ["/keys", "/users", "/users/1/notifications"]),
    ):
        context = chromium.new_context(base_url=demo.url)
        context.add_init_script(path=str(AXE))
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m, seen=errors: seen.append(m.text) if m.type == "error" else None)
        page.goto("/signin")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")
        expect(page).to_have_url(re.compile(r"/leads$"))
        for path in paths:
            page.goto(path)
            found = page.evaluate(
                "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            )
            serious = [
                (v["id"], v["nodes"][0]["html"][:120])
                for v in found
                if v["impact"] in ("serious", "critical")
            ]
            assert serious == [], (path, serious)
            page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing scrolls sideways
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
            page.set_viewport_size({"width": 1440, "height": 900})
        assert errors == []
        context.close()


def test_a_managers_reject_from_a_page_loaded_before_the_sellers_accept_is_refused(
    chromium: Browser, demo: Site
) -> None:
    """Tom (EMEA's manager) and Lena have the desk open on one of her leads, in MQL. Lena accepts it (into
    SQL); Tom, on the page he loaded before, opens "Reject…", picks a reason and rejects. The demo model
    lets a lead be rejected from SQL, so his reject used to send her accepted lead to recycled; now he is
    told that the lead moved (the page's alert) and the lead stays in SQL with Lena's acceptance."""
    from sqlalchemy import text

    lenas = [lead for lead, seller in _queue(demo).items() if seller == "lena"]
    assert lenas
    lead = lenas[-1]
    tom = _sign_in(chromium, demo, MANAGER)
    lena = _sign_in(chromium, demo, SELLER)
    row = tom.locator(f'tr[data-lead="{lead}"]')
    expect(row.get_by_role("button", name="Accept")).to_have_count(1)  # Tom's page: the lead in MQL
    lena.locator(f'tr[data-lead="{lead}"]').get_by_role("button", name="Accept").click()
    expect(lena.get_by_role("status")).to_contain_text("Accepted:")
    row.locator("summary", has_text="Reject…").click()
    row.get_by_label("Reason").select_option("no_budget")
    row.get_by_role("button", name="Reject").click()
    expect(tom.get_by_role("alert").filter(has_text="Not done")).to_contain_text(
        "moved since this page was loaded"
    )
    with demo.store.connect() as conn:
        stage = conn.execute(text(f"SELECT stage FROM lead_stages WHERE lead_id = {lead}")).scalar_one()
        said = [
            str(d) for (d,) in conn.execute(text(f"SELECT decision FROM feedback WHERE lead_id = {lead}"))
        ]
    assert (stage, said) == ("sql", ["accepted"])
    tom.context.close()
    lena.context.close()

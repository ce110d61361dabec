"""Reports by score in real headless Chromium: a store with two models (``core``, the primary, and
``analytics``) scoring the same events differently, and a lifecycle whose MQL gates name a score, so each
team has its own MQL stage before a shared hand-off stage. A manager switches the score picker on the lead
list, the matrix, the funnel and the hand-off page and reads each score's numbers; the lead page shows both
scores side by side, each ledger adding up to its score.

The numbers below are worked out by hand (scale: fit and engagement weighted ½ each, 100 raw points =
100; bands hot ≥ 70, warm ≥ 40; grades A ≥ 75, B ≥ 50, C ≥ 25; levels 1 ≥ 75, 2 ≥ 50, 3 ≥ 25).

core (fit: marketing role 60; engagement: demo 40, webinar 10) and analytics (fit: analyst role 80;
engagement: report 80, demo 20):

=====  =====================  ==============  ==============================  ==========================
lead   job title              events          core: fit, eng → score          analytics: fit, eng → score
=====  =====================  ==============  ==============================  ==========================
ann    Marketing Analyst      demo, report    60 B, 40 (3) → 50 warm  B3      80 A, 100 (1) → 90 hot  A1
bob    Sales                  demo            0 D, 40 (3) → 20 cold   D3      0 D, 20 (4) → 10 cold   D4
carl   Marketing Manager      demo, webinar   60 B, 50 (2) → 55 warm  B2      0 D, 20 (4) → 10 cold   D4
dana   Data Analyst           report          0 D, 0 (4) → 0 cold     D4      80 A, 80 (1) → 80 hot   A1
eve    Marketing Director     demo, webinar   60 B, 50 (2) → 55 warm  B2      0 D, 20 (4) → 10 cold   D4
frank  Head of Marketing      demo, webinar   60 B, 50 (2) → 55 warm  B2      0 D, 20 (4) → 10 cold   D4
=====  =====================  ==============  ==============================  ==========================

Matrix: core B2 3, B3 1, D3 1, D4 1; analytics A1 2, D4 4.

The lifecycle (tried in order): lead → mql_core when core ≥ 55 (carl, eve, frank; ann's 50 is not), lead →
mql_analytics when analytics ≥ 60 (ann 90, dana 80); mql_core → ready when core grade ≥ B (carl, eve,
frank), mql_analytics → ready when analytics ≥ 85 (ann; dana's 80 stays an analytics MQL). Sales rejects
eve: ready → nurture. So carl is an MQL for the core team and not for the analytics team, ann the reverse.

Stage entries: ann lead, mql_analytics, ready; bob lead; carl lead, mql_core, ready; dana lead,
mql_analytics; eve lead, mql_core, ready, nurture; frank lead, mql_core, ready.

The core team's funnel (funnel order lead, mql_core, ready, sql: mql_analytics is the analytics team's; the
shared ``ready`` counts those that came through mql_core): lead 6, mql_core 3 (carl, eve, frank), ready 3,
sql 0; conversion lead → mql_core 3 / 6 = 50.0 %, mql_core → ready 3 / 3 = 100.0 %, ready → sql 0 / 3 =
0.0 %. Being nurtured: eve, 1. Ready for handoff now: carl and frank, 2 (scores 55 and 55).

The analytics team's: lead 6, mql_analytics 2 (ann, dana), ready 1 (ann), sql 0; conversion lead →
mql_analytics 2 / 6 = 33.3 %, mql_analytics → ready 1 / 2 = 50.0 %, ready → sql 0 / 1 = 0.0 %. Being
nurtured: 0 (eve came through the core team's MQL). Ready for handoff: ann, 1 (score 90).

Accounts (ann, carl, dana at ACME; bob, eve, frank at Globex; the account score is the mean engagement of
the 2 most engaged contacts, worked out in tests/test_account_scores.py): core Globex 50, ACME 45;
analytics ACME (100 + 80) / 2 = 90, Globex 20. ACME's contacts on analytics: Ann 90, Dana 80, Carl 10.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from browser_support import launched_chromium
from leadscore.api import create_app
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import read_stage_history
from leadscore.store.schema import accounts
from live_server import serving
from test_web_browser import Tab
from two_teams import MANAGER, build
from web_support import PASSWORD


@dataclass
class Shop:
    url: str
    store: Store
    ids: dict[str, int]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    db = str(Path(tmp_path_factory.mktemp("scoresbrowser")) / "scores.db")
    store = Store.from_url(db)
    try:
        ids = build(store)
        app = create_app(Settings(database_url=db, run_processor=False), store)
        with serving(app) as url:
            yield Shop(url, store, ids)
    finally:
        store.dispose()


def _stages(shop: Shop, user: str) -> list[str]:
    with shop.store.connect() as conn:
        return [str(h["to_stage"]) for h in read_stage_history(conn, shop.ids[user])]


def _signed_in(chromium: Browser, shop: Shop) -> Page:
    page = chromium.new_context(base_url=shop.url).new_page()
    page.goto("/signin")
    page.get_by_label("E-mail").fill(MANAGER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(re.compile(r"/leads"))
    return page


def _pick(page: Page, score: str) -> None:
    """Choose a score in the page's picker and show it (the picker's own form)."""
    picker = page.get_by_role("form", name="Pick a score")
    picker.get_by_label("Score").select_option(label=score)
    picker.get_by_role("button", name="Show").click()


def _list(page: Page) -> dict[str, str]:
    """The lead list's rows: name → the score column."""
    rows = page.locator("table.leads tbody tr").all()
    return {r.locator("td a").first.inner_text(): r.locator("td.num").first.inner_text() for r in rows}


def _cell(page: Page, grade: str, level: int) -> int:
    label = page.locator(f'a[aria-label^="Grade {grade}, level {level}: "]').first.get_attribute("aria-label")
    assert label is not None
    return int(label.split(": ")[1].split(" ")[0])


def _grid(page: Page) -> dict[str, int]:
    return {f"{g}{lv}": _cell(page, g, lv) for g in "ABCD" for lv in (1, 2, 3, 4) if _cell(page, g, lv)}


def _funnel(page: Page) -> dict[str, tuple[str, str]]:
    """The all-time stage table: stage id → (entered, conversion)."""
    out = {}
    for row in page.locator("#funnel-totals tbody tr").all():
        stage = row.locator("td[data-stage]").get_attribute("data-stage")
        assert stage is not None
        out[stage] = (row.locator("td[data-stage]").inner_text(), row.locator("td[data-rate]").inner_text())
    return out


def _queue(page: Page) -> dict[str, str]:
    """The hand-off rows shown: lead name → its score cell's number."""
    out = {}
    for row in page.locator("table.handoff tbody tr[data-lead]").all():
        name = row.locator("th a").inner_text().strip()
        out[name] = row.locator("td.num").first.inner_text().split("\n")[0].strip()
    return out


def test_the_lifecycle_made_carl_a_core_mql_and_ann_an_analytics_mql(shop: Shop) -> None:
    assert _stages(shop, "ann") == ["lead", "mql_analytics", "ready"]
    assert _stages(shop, "carl") == ["lead", "mql_core", "ready"]
    assert _stages(shop, "dana") == ["lead", "mql_analytics"]
    assert _stages(shop, "eve") == ["lead", "mql_core", "ready", "nurture"]
    assert _stages(shop, "bob") == ["lead"]


def test_a_manager_switches_the_score_on_every_report(chromium: Browser, shop: Shop) -> None:
    page = _signed_in(chromium, shop)

    # the lead list: its filter's picker reloads the results (htmx) with the score picked
    page.goto("/leads")
    expect(page.locator("table.leads tbody tr")).to_have_count(6)
    assert _list(page) == {
        "Ann": "50.0",
        "Bob": "20.0",
        "Carl": "55.0",
        "Dana": "0.0",
        "Eve": "55.0",
        "Frank": "55.0",
    }
    search = page.get_by_role("search", name="Filter leads")
    search.get_by_label("Score", exact=True).select_option(label="analytics")
    expect(page).to_have_url(re.compile(r"score=analytics"))
    expect(page.locator("table.leads tbody tr").first.locator("td.num").first).to_have_text("90.0")
    assert _list(page) == {
        "Ann": "90.0",
        "Bob": "10.0",
        "Carl": "10.0",
        "Dana": "80.0",
        "Eve": "10.0",
        "Frank": "10.0",
    }

    # the matrix
    page.goto("/leads/matrix")
    assert _grid(page) == {"B2": 3, "B3": 1, "D3": 1, "D4": 1}
    _pick(page, "analytics")
    expect(page).to_have_url(re.compile(r"/leads/matrix\?score=analytics"))
    assert _grid(page) == {"A1": 2, "D4": 4}

    # the funnel: each team's stages, counts and conversion
    page.goto("/funnel")
    expect(page.locator("#score-view")).to_contain_text("core")
    assert _funnel(page) == {
        "lead": ("6", "50.0 %"),
        "mql_core": ("3", "100.0 %"),
        "ready": ("3", "0.0 %"),
        "sql": ("0", "—"),
    }
    assert page.locator("#count-nurtured").inner_text() == "1"
    assert page.locator("#count-ready").inner_text() == "2"
    _pick(page, "analytics")
    expect(page).to_have_url(re.compile(r"/funnel\?score=analytics"))
    assert _funnel(page) == {
        "lead": ("6", "33.3 %"),
        "mql_analytics": ("2", "50.0 %"),
        "ready": ("1", "0.0 %"),
        "sql": ("0", "—"),
    }
    assert page.locator("#count-nurtured").inner_text() == "0"
    assert page.locator("#count-ready").inner_text() == "1"

    # the hand-off queue: carl and frank for the core team, ann for the analytics team
    page.goto("/handoff")
    assert _queue(page) == {"Carl": "55.0", "Frank": "55.0"}
    _pick(page, "analytics")
    expect(page).to_have_url(re.compile(r"/handoff\?score=analytics"))
    assert _queue(page) == {"Ann": "90.0"}
    # ann's reasons are the analytics ledger's largest lines: analyst 40, report 40 (ties by rule id), demo 10
    reasons = page.locator('tr[data-lead="{}"] ul.reasons li'.format(shop.ids["ann"]))
    expect(reasons).to_have_count(3)
    assert [li.inner_text() for li in reasons.all()] == [
        "Analyst role +40.0",
        "Built a report +40.0",
        "Requested a demo +10.0",
    ]


def _account_scores(page: Page) -> dict[str, str]:
    """The accounts list's rows: account name → its account score cell."""
    rows = page.locator("table.accounts tbody tr").all()
    return {r.locator("th a").first.inner_text(): r.locator("td.num").first.inner_text() for r in rows}


def _acme(shop: Shop) -> int:
    with shop.store.connect() as conn:
        return int(conn.execute(select(accounts.c.id).where(accounts.c.name == "Acme")).scalar_one())


def test_a_manager_switches_the_score_on_the_accounts_pages(chromium: Browser, shop: Shop) -> None:
    page = _signed_in(chromium, shop)
    page.goto("/accounts")
    assert _account_scores(page) == {"Globex": "50.0", "Acme": "45.0"}
    _pick(page, "analytics")
    expect(page).to_have_url(re.compile(r"/accounts\?score=analytics"))
    assert _account_scores(page) == {"Acme": "90.0", "Globex": "20.0"}
    # the account: its score on both, its contacts and chart on the score picked
    page.get_by_role("link", name="Acme").first.click()
    expect(page).to_have_url(re.compile(rf"/accounts/{_acme(shop)}\?score=analytics"))
    names = page.locator("table.contacts tbody th a")
    expect(names).to_have_count(3)
    assert names.all_inner_texts() == ["Ann", "Dana", "Carl"]
    side = page.locator("table.account-scores tbody tr")
    assert [r.locator("td.num").first.inner_text() for r in side.all()] == ["45.0", "90.0"]
    _pick(page, "core (primary)")
    assert page.locator("table.contacts tbody th a").all_inner_texts() == ["Carl", "Ann", "Dana"]


def _ledger(page: Page, score: str) -> list[float]:
    table = page.locator(f'table.ledger[data-score="{score}"]')
    cells = table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.lastElementChild.innerText)")
    return [float(c) for c in cells]


def test_the_lead_page_shows_both_scores_with_ledgers_that_add_up(chromium: Browser, shop: Shop) -> None:
    page = _signed_in(chromium, shop)
    page.goto(f"/leads/{shop.ids['ann']}")
    # side by side: core (the primary) 50, analytics 90
    table = page.locator("#all-scores")
    expect(table.locator("tbody tr")).to_have_count(2)
    assert table.locator('tr[data-score-row="core"] td.num').first.inner_text() == "50.0"
    assert table.locator('tr[data-score-row="analytics"] td.num').first.inner_text() == "90.0"
    # core: marketing ½·60 = 30, demo ½·40 = 20 → 50; analytics: analyst ½·80 = 40, report ½·80 = 40,
    # demo ½·20 = 10 → 90
    assert _ledger(page, "core") == [30.0, 20.0]
    assert _ledger(page, "analytics") == [40.0, 40.0, 10.0]
    assert sum(_ledger(page, "core")) == 50.0 and sum(_ledger(page, "analytics")) == 90.0


@pytest.mark.parametrize("width", [1440, 390])
def test_the_pages_with_a_score_picker_pass_axe_and_fit_a_phone(
    chromium: Browser, shop: Shop, width: int
) -> None:
    """The screenshot test (test_web_screens.py) shows a store of one score, where no picker is drawn:
    here the same checks on the pages with two scores, each score picked."""
    tab = Tab(chromium, shop.url)
    tab.page.set_viewport_size({"width": width, "height": 900})
    tab.sign_in(MANAGER)
    problems = []
    for path in (
        "/leads?score=analytics",
        "/leads/matrix?score=analytics",
        "/funnel",
        "/funnel?score=analytics",
        "/handoff",
        "/handoff?score=analytics",
        f"/leads/{shop.ids['ann']}",
        "/accounts?score=analytics",
        f"/accounts/{_acme(shop)}?score=analytics",
        "/review?score=analytics",
    ):
        response = tab.page.goto(path)
        assert response is not None and response.status == 200, path
        tab.page.wait_for_load_state("networkidle")
        if violations := tab.axe():
            problems.append(f"{path} at {width} px: {violations}")
        wide = tab.page.evaluate("document.scrollingElement.scrollWidth")
        if wide > width:
            problems.append(f"{path} is {wide} px wide at {width} px")
    assert tab.problems == [] and problems == [], (tab.problems, problems)
    tab.close()
